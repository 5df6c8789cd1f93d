-- name: status_recompute
-- Compare every component with a from-scratch derivation; repair the drift when asked.
SELECT component_id, current_status, derived_status
FROM statusdb_recompute_statuses(%(repair)s);

-- name: status_chain_breaks
-- Places where a component's status_change rows do not chain up to its current_status.
WITH ordered AS (
    SELECT sc.component_id, sc.seq, sc.previous_status, sc.new_status,
           lag(sc.new_status, 1, 'OPERATIONAL')
               OVER (PARTITION BY sc.component_id ORDER BY sc.seq) AS expected_previous,
           lead(sc.seq) OVER (PARTITION BY sc.component_id ORDER BY sc.seq) IS NULL AS is_last
    FROM status_change sc
)
SELECT o.component_id, o.seq,
       'previous_status ' || o.previous_status || ' does not follow ' || o.expected_previous
           AS problem
FROM ordered o
WHERE o.previous_status <> o.expected_previous
UNION ALL
SELECT c.id, o.seq,
       'last logged status ' || coalesce(o.new_status, 'OPERATIONAL (no change logged)')
           || ' is not current_status ' || c.current_status
FROM status_page_component c
LEFT JOIN ordered o ON o.component_id = c.id AND o.is_last
WHERE coalesce(o.new_status, 'OPERATIONAL') <> c.current_status
ORDER BY 1, 2;

-- name: status_changes_for_component
-- A component's status changes, oldest first.
SELECT id, seq, status_page_id, component_id, previous_status, new_status, cause, incident_id,
       maintenance_window_id, changed_at
FROM status_change
WHERE component_id = %(component_id)s
ORDER BY seq
LIMIT %(limit)s;

-- name: status_lock_status_inputs
-- Take ahead, in the global lock order, every slot the transaction's status-input writes will take.
SELECT statusdb_lock_status_inputs(%(windows)s::text[], %(teams)s::text[],
                                   %(components)s::text[]);
