-- name: feed_changes_since
-- Up to `limit` component (and, with `groups`, group) status changes after `seq`, in seq order.
SELECT x.seq, x.status_page_id, x.component_id, x.group_id, x.new_status, x.change_id
FROM (
    (SELECT sc.seq, sc.status_page_id, sc.component_id, NULL::text AS group_id, sc.new_status,
            sc.id AS change_id
     FROM status_change sc
     WHERE sc.seq > %(seq)s::bigint
       AND (%(status_page_id)s::text IS NULL OR sc.status_page_id = %(status_page_id)s::text)
     ORDER BY sc.seq
     LIMIT %(limit)s)
    UNION ALL
    (SELECT gc.seq, gc.status_page_id, NULL::text, gc.group_id, gc.new_status, gc.id
     FROM component_group_status_change gc
     WHERE %(groups)s::boolean
       AND gc.seq > %(seq)s::bigint
       AND (%(status_page_id)s::text IS NULL OR gc.status_page_id = %(status_page_id)s::text)
     ORDER BY gc.seq
     LIMIT %(limit)s)
) AS x
ORDER BY x.seq
LIMIT %(limit)s;

-- name: feed_changes_with_seq
-- The component (and, with `groups`, group) status changes with these seqs, in seq order.
SELECT x.seq, x.status_page_id, x.component_id, x.group_id, x.new_status, x.change_id
FROM (
    SELECT sc.seq, sc.status_page_id, sc.component_id, NULL::text AS group_id, sc.new_status,
           sc.id AS change_id
    FROM status_change sc
    WHERE sc.seq = ANY (%(seqs)s::bigint[])
      AND (%(status_page_id)s::text IS NULL OR sc.status_page_id = %(status_page_id)s::text)
    UNION ALL
    SELECT gc.seq, gc.status_page_id, NULL::text, gc.group_id, gc.new_status, gc.id
    FROM component_group_status_change gc
    WHERE %(groups)s::boolean
      AND gc.seq = ANY (%(seqs)s::bigint[])
      AND (%(status_page_id)s::text IS NULL OR gc.status_page_id = %(status_page_id)s::text)
) AS x
ORDER BY x.seq;

-- name: feed_latest_seq
-- The highest status change seq the caller may read (0 if none): where "from now on" starts.
SELECT greatest(
    (SELECT coalesce(max(sc.seq), 0) FROM status_change sc),
    (SELECT coalesce(max(gc.seq), 0) FROM component_group_status_change gc)
) AS seq;

-- name: feed_pages_changed_since
-- Up to `limit` pages whose current rendering is newer than page version `version`, oldest first.
SELECT s.page_id AS status_page_id, s.version * 256 AS version
FROM status_page_snapshot s
WHERE s.version > %(version)s::bigint / 256
  AND (%(status_page_id)s::text IS NULL OR s.page_id = %(status_page_id)s::text)
ORDER BY s.version
LIMIT %(limit)s;
