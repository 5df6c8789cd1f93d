-- name: feed_changes_by_seq
-- The status changes announced with these seq numbers that the caller may read, in that order.
SELECT sc.status_page_id, sc.component_id, sc.new_status, sc.id AS change_id
FROM unnest(%(seqs)s::bigint[]) WITH ORDINALITY AS announced (seq, position)
JOIN status_change sc ON sc.seq = announced.seq
WHERE %(status_page_id)s::text IS NULL OR sc.status_page_id = %(status_page_id)s::text
ORDER BY announced.position;

-- name: feed_page_versions
-- The announced page versions that are still current and that the caller may read, in order.
-- An announcement is the lowest version readers of a new rendering see (0017): snapshot
-- version * 256. Looked up by the snapshot's own version (its unique index); a payload that is
-- no such multiple (a hand-made NOTIFY) names nothing.
SELECT s.page_id AS status_page_id, s.version * 256 AS version
FROM unnest(%(versions)s::bigint[]) WITH ORDINALITY AS announced (version, position)
JOIN status_page_snapshot s ON s.version = announced.version / 256
WHERE mod(announced.version, 256) = 0
  AND (%(status_page_id)s::text IS NULL OR s.page_id = %(status_page_id)s::text)
ORDER BY announced.position;

-- name: feed_changes_with_groups_by_seq
-- The component and group status changes (0020) announced with these seqs that the caller may
-- read, in that order; `group_id` is null for a component's change, `component_id` for a group's.
SELECT announced.position, sc.status_page_id, sc.component_id, NULL::text AS group_id,
       sc.new_status, sc.id AS change_id
FROM unnest(%(seqs)s::bigint[]) WITH ORDINALITY AS announced (seq, position)
JOIN status_change sc ON sc.seq = announced.seq
WHERE %(status_page_id)s::text IS NULL OR sc.status_page_id = %(status_page_id)s::text
UNION ALL
SELECT announced.position, gc.status_page_id, NULL::text, gc.group_id, gc.new_status,
       gc.id
FROM unnest(%(seqs)s::bigint[]) WITH ORDINALITY AS announced (seq, position)
JOIN component_group_status_change gc ON gc.seq = announced.seq
WHERE %(status_page_id)s::text IS NULL OR gc.status_page_id = %(status_page_id)s::text
ORDER BY 1;
