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
