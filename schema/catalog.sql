-- Catalog queries of `make schema` (schema/generate.py): the ER diagram and data dictionary in
-- docs/schema.md, and the check that every object statusdb owns has a COMMENT.
-- "statusdb's objects": the public schema's, minus yoyo's bookkeeping tables and anything an
-- extension owns (pg_depend deptype 'e').

-- name: catalog_tables
-- statusdb's tables and views, by name, with their kind and COMMENT.
SELECT c.relname AS name,
       CASE c.relkind WHEN 'v' THEN 'view' ELSE 'table' END AS kind,
       obj_description(c.oid, 'pg_class') AS comment
FROM pg_class AS c
WHERE c.relnamespace = 'public'::regnamespace
  AND c.relkind IN ('r', 'p', 'v')
  AND c.relname NOT LIKE '\_yoyo\_%'
  AND c.relname <> 'yoyo_lock'
  AND NOT EXISTS (
      SELECT 1 FROM pg_depend AS d
      WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e'
  )
ORDER BY c.relname;

-- name: catalog_columns
-- The columns of statusdb's tables and views, in table order, with type, keys and COMMENT.
SELECT c.relname AS table_name,
       a.attname AS name,
       format_type(a.atttypid, a.atttypmod) AS type,
       a.attnotnull AS not_null,
       EXISTS (
           SELECT 1 FROM pg_constraint AS k
           WHERE k.conrelid = c.oid AND k.contype = 'p' AND a.attnum = ANY (k.conkey)
       ) AS is_primary_key,
       EXISTS (
           SELECT 1 FROM pg_constraint AS k
           WHERE k.conrelid = c.oid AND k.contype = 'f' AND a.attnum = ANY (k.conkey)
       ) AS is_foreign_key,
       col_description(c.oid, a.attnum) AS comment
FROM pg_class AS c
JOIN pg_attribute AS a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
WHERE c.relnamespace = 'public'::regnamespace
  AND c.relkind IN ('r', 'p', 'v')
  AND c.relname NOT LIKE '\_yoyo\_%'
  AND c.relname <> 'yoyo_lock'
  AND NOT EXISTS (
      SELECT 1 FROM pg_depend AS d
      WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e'
  )
ORDER BY c.relname, a.attnum;

-- name: catalog_foreign_keys
-- Foreign keys between statusdb's tables: child, parent, name, and whether the child's
-- columns are all NOT NULL (mandatory parent) and unique (one child per parent).
SELECT child.relname AS child,
       parent.relname AS parent,
       k.conname AS name,
       NOT EXISTS (
           SELECT 1 FROM pg_attribute AS a
           WHERE a.attrelid = k.conrelid AND a.attnum = ANY (k.conkey) AND NOT a.attnotnull
       ) AS mandatory,
       EXISTS (
           SELECT 1 FROM pg_constraint AS u
           WHERE u.conrelid = k.conrelid AND u.contype IN ('p', 'u')
             AND u.conkey::int2[] <@ k.conkey::int2[] AND u.conkey::int2[] @> k.conkey::int2[]
       ) AS one_to_one
FROM pg_constraint AS k
JOIN pg_class AS child ON child.oid = k.conrelid
JOIN pg_class AS parent ON parent.oid = k.confrelid
WHERE k.contype = 'f' AND child.relnamespace = 'public'::regnamespace
ORDER BY child.relname, k.conname;

-- name: catalog_functions
-- statusdb's functions and procedures (not an extension's), by signature, with their COMMENT.
SELECT p.oid::regprocedure::text AS signature,
       CASE p.prokind WHEN 'p' THEN 'procedure' ELSE 'function' END AS kind,
       obj_description(p.oid, 'pg_proc') AS comment
FROM pg_proc AS p
WHERE p.pronamespace = 'public'::regnamespace
  AND NOT EXISTS (
      SELECT 1 FROM pg_depend AS d
      WHERE d.classid = 'pg_proc'::regclass AND d.objid = p.oid AND d.deptype = 'e'
  )
ORDER BY 1;

-- The per-table files of schema/tables/ (and schema/functions/, schema/views/). These queries
-- run with search_path = pg_catalog, so that every name they print is schema-qualified, as
-- pg_dump prints them.

-- name: catalog_relations
-- statusdb's tables and views: name, kind, COMMENT, row-level security flags, view definition.
SELECT c.relname AS name,
       CASE c.relkind WHEN 'v' THEN 'view' ELSE 'table' END AS kind,
       obj_description(c.oid, 'pg_class') AS comment,
       c.relrowsecurity AS row_security,
       c.relforcerowsecurity AS force_row_security,
       array_to_string(c.reloptions, ', ') AS options,
       CASE c.relkind WHEN 'v' THEN pg_get_viewdef(c.oid, true) END AS view_definition
FROM pg_class AS c
WHERE c.relnamespace = 'public'::regnamespace
  AND c.relkind IN ('r', 'p', 'v')
  AND c.relname NOT LIKE '\_yoyo\_%'
  AND c.relname <> 'yoyo_lock'
  AND NOT EXISTS (
      SELECT 1 FROM pg_depend AS d
      WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e'
  )
ORDER BY c.relname;

-- name: catalog_table_columns
-- The columns of statusdb's tables, in table order, with type, default, identity and nullity.
SELECT c.relname AS table_name,
       a.attname AS name,
       format_type(a.atttypid, a.atttypmod) AS type,
       a.attnotnull AS not_null,
       a.attidentity AS identity,
       a.attgenerated AS generated,
       pg_get_expr(ad.adbin, ad.adrelid) AS default_expr,
       CASE WHEN a.attcollation <> t.typcollation THEN co.collname END AS collation
FROM pg_class AS c
JOIN pg_attribute AS a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
JOIN pg_type AS t ON t.oid = a.atttypid
LEFT JOIN pg_attrdef AS ad ON ad.adrelid = c.oid AND ad.adnum = a.attnum
LEFT JOIN pg_collation AS co ON co.oid = a.attcollation
WHERE c.relnamespace = 'public'::regnamespace AND c.relkind IN ('r', 'p')
ORDER BY c.relname, a.attnum;

-- name: catalog_constraints
-- Table constraints (not constraint triggers): primary key, unique, foreign keys, checks,
-- exclusions, in that order and then by name.
SELECT c.relname AS table_name,
       k.conname AS name,
       pg_get_constraintdef(k.oid, true) AS definition
FROM pg_constraint AS k
JOIN pg_class AS c ON c.oid = k.conrelid
WHERE c.relnamespace = 'public'::regnamespace AND k.contype IN ('p', 'u', 'f', 'c', 'x')
ORDER BY c.relname, array_position(ARRAY['p', 'u', 'f', 'c', 'x']::"char"[], k.contype),
         k.conname COLLATE "C";

-- name: catalog_indexes
-- Indexes that no constraint owns (those are part of their constraint), by name.
SELECT c.relname AS table_name,
       i.relname AS name,
       pg_get_indexdef(x.indexrelid) AS definition
FROM pg_index AS x
JOIN pg_class AS c ON c.oid = x.indrelid
JOIN pg_class AS i ON i.oid = x.indexrelid
WHERE c.relnamespace = 'public'::regnamespace
  AND NOT EXISTS (SELECT 1 FROM pg_constraint AS k WHERE k.conindid = x.indexrelid
                                                      AND k.conrelid = x.indrelid)
ORDER BY c.relname, i.relname COLLATE "C";

-- name: catalog_triggers
-- User triggers (not the internal ones of foreign keys) in firing order: BEFORE STATEMENT,
-- BEFORE ROW, INSTEAD OF ROW, AFTER ROW, AFTER STATEMENT, deferred constraint triggers last;
-- within one of those, PostgreSQL fires triggers in name order (byte order, hence COLLATE "C").
-- tgtype bits: 1 row, 2 before, 4 insert, 8 delete, 16 update, 32 truncate, 64 instead.
SELECT c.relname AS table_name,
       t.tgname AS name,
       pg_get_triggerdef(t.oid, true) AS definition,
       CASE WHEN t.tgtype & 64 <> 0 THEN 'INSTEAD OF'
            WHEN t.tgtype & 2 <> 0 THEN 'BEFORE' ELSE 'AFTER' END AS timing,
       CASE WHEN t.tgtype & 1 <> 0 THEN 'ROW' ELSE 'STATEMENT' END AS level,
       array_remove(ARRAY[
           CASE WHEN t.tgtype & 4 <> 0 THEN 'INSERT' END,
           CASE WHEN t.tgtype & 16 <> 0 THEN 'UPDATE' END,
           CASE WHEN t.tgtype & 8 <> 0 THEN 'DELETE' END,
           CASE WHEN t.tgtype & 32 <> 0 THEN 'TRUNCATE' END
       ], NULL) AS events,
       t.tgenabled AS enabled,
       t.tginitdeferred AS deferred,
       p.proname AS function_name,
       t.tgfoid::regprocedure::text AS function_signature
FROM pg_trigger AS t
JOIN pg_class AS c ON c.oid = t.tgrelid
JOIN pg_proc AS p ON p.oid = t.tgfoid
WHERE c.relnamespace = 'public'::regnamespace AND NOT t.tgisinternal
ORDER BY c.relname,
         CASE WHEN t.tginitdeferred THEN 5
              WHEN t.tgtype & 2 <> 0 AND t.tgtype & 1 = 0 THEN 0
              WHEN t.tgtype & 2 <> 0 THEN 1
              WHEN t.tgtype & 64 <> 0 THEN 2
              WHEN t.tgtype & 1 <> 0 THEN 3
              ELSE 4 END,
         t.tgname COLLATE "C";

-- name: catalog_policies
-- Row-level security policies, by table and name.
SELECT c.relname AS table_name,
       p.polname AS name,
       p.polpermissive AS permissive,
       CASE p.polcmd WHEN 'r' THEN 'SELECT' WHEN 'a' THEN 'INSERT' WHEN 'w' THEN 'UPDATE'
                     WHEN 'd' THEN 'DELETE' ELSE 'ALL' END AS command,
       ARRAY(SELECT CASE WHEN r = 0 THEN 'PUBLIC' ELSE quote_ident(r::regrole::text) END
             FROM unnest(p.polroles) AS r ORDER BY 1) AS roles,
       pg_get_expr(p.polqual, p.polrelid) AS using_expr,
       pg_get_expr(p.polwithcheck, p.polrelid) AS check_expr
FROM pg_policy AS p
JOIN pg_class AS c ON c.oid = p.polrelid
WHERE c.relnamespace = 'public'::regnamespace
ORDER BY c.relname, p.polname COLLATE "C";

-- name: catalog_function_definitions
-- statusdb's functions and procedures (not an extension's, not aggregates) with their current
-- definition, language and whether they are trigger functions, by name and signature.
SELECT p.proname AS name,
       p.oid::regprocedure::text AS signature,
       l.lanname AS language,
       p.prorettype = 'pg_catalog.trigger'::pg_catalog.regtype AS is_trigger,
       obj_description(p.oid, 'pg_proc') AS comment,
       pg_get_functiondef(p.oid) AS definition
FROM pg_proc AS p
JOIN pg_language AS l ON l.oid = p.prolang
WHERE p.pronamespace = 'public'::regnamespace
  AND p.prokind IN ('f', 'p')
  AND NOT EXISTS (
      SELECT 1 FROM pg_depend AS d
      WHERE d.classid = 'pg_proc'::regclass AND d.objid = p.oid AND d.deptype = 'e'
  )
ORDER BY p.proname COLLATE "C", 2;
