-- Queries of `make plpgsql-check` (schema/plpgsql_lint.py): plpgsql_check over every PL/pgSQL
-- function statusdb owns, on a freshly migrated database with the extension created.

-- name: plpgsql_check_available
-- Whether the server can create the plpgsql_check extension (its package is installed).
SELECT EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'plpgsql_check') AS available;

-- name: plpgsql_check_targets
-- What to check: every statusdb PL/pgSQL function that is not a trigger function (relation 0),
-- and every trigger function once per relation that has a trigger calling it, with the names
-- of the transition tables its triggers there declare (a function shared by the INSERT, UPDATE
-- and DELETE triggers of a table reads both tables in branches by TG_OP); trigger functions no
-- trigger calls cannot be checked (plpgsql_check needs the relation) and are listed apart.
WITH functions AS (
    SELECT p.oid, p.oid::regprocedure::text AS signature,
           p.prorettype = 'trigger'::regtype AS is_trigger
    FROM pg_proc AS p
    JOIN pg_language AS l ON l.oid = p.prolang
    WHERE p.pronamespace = 'public'::regnamespace AND l.lanname = 'plpgsql'
      AND NOT EXISTS (
          SELECT 1 FROM pg_depend AS d
          WHERE d.classid = 'pg_proc'::regclass AND d.objid = p.oid AND d.deptype = 'e'
      )
)
SELECT f.oid AS function_oid, f.signature, 0::oid AS relation_oid, '' AS relation,
       NULL::text AS old_table, NULL::text AS new_table, true AS checkable
FROM functions AS f
WHERE NOT f.is_trigger
UNION ALL
SELECT f.oid, f.signature, t.tgrelid, t.tgrelid::regclass::text,
       max(t.tgoldtable::text), max(t.tgnewtable::text), true
FROM functions AS f
JOIN pg_trigger AS t ON t.tgfoid = f.oid AND NOT t.tgisinternal
WHERE f.is_trigger
GROUP BY f.oid, f.signature, t.tgrelid
UNION ALL
SELECT f.oid, f.signature, 0::oid, '', NULL, NULL, false
FROM functions AS f
WHERE f.is_trigger AND NOT EXISTS (SELECT 1 FROM pg_trigger AS t WHERE t.tgfoid = f.oid)
ORDER BY 2, 4;

-- name: plpgsql_check_function
-- plpgsql_check's findings for one function (and relation), every class of warning enabled.
SELECT level, lineno, statement, sqlstate, message, detail, hint
FROM plpgsql_check_function_tb(
    %(function_oid)s::oid, %(relation_oid)s::oid,
    fatal_errors => false, other_warnings => true, extra_warnings => true,
    performance_warnings => true, security_warnings => true,
    oldtable => %(old_table)s::name, newtable => %(new_table)s::name
)
ORDER BY lineno NULLS FIRST, level, message;
