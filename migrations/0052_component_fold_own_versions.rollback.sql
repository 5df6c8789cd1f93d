-- statusdb 0052 rollback: the component fold as 0025 left it.

SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '5min';

CREATE OR REPLACE FUNCTION statusdb_keep_component_statuses() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = public, pg_temp
AS $$
DECLARE
    pieces row_history[];
BEGIN
    -- Bounded by the deleted changes and the versions of their components.
    WITH changes AS (
        SELECT o.component_id, o.seq, o.new_status, o.changed_at FROM old_rows o
    ),
    vers AS (
        SELECT h.* FROM row_history h
        WHERE h.table_name = 'status_page_component'
          AND h.row_id IN (SELECT c.component_id FROM changes c)
    ),
    bounds AS (
        SELECT v.row_id, v.valid_from AS b FROM vers v
        UNION
        SELECT c.component_id, c.changed_at
        FROM changes c
        JOIN vers v ON v.row_id = c.component_id AND c.changed_at > v.valid_from
                   AND (v.valid_to IS NULL OR c.changed_at < v.valid_to)
    )
    SELECT array_agg(ROW(v.table_name, v.row_id, v.status_page_id, b.b,
                         CASE WHEN b.next_b IS NULL THEN v.valid_to
                              ELSE least(b.next_b, coalesce(v.valid_to, b.next_b)) END,
                         v.written_by_xact,
                         CASE WHEN s.new_status IS NULL THEN v.row_data
                              ELSE v.row_data || jsonb_build_object(
                                  'current_status', s.new_status,
                                  'status_updated_at', s.changed_at) END,
                         -- 0025: a pending stamp stays on the piece it applies to (the first
                         -- piece of a version being written, the last of one being ended).
                         CASE WHEN v.written_by_xact = v.pending_xact
                              THEN CASE WHEN b.b = v.valid_from THEN v.pending_xact END
                              WHEN b.next_b IS NULL OR b.next_b >= v.valid_to
                              THEN v.pending_xact END)::row_history)
    INTO pieces
    FROM (SELECT bb.row_id, bb.b, lead(bb.b) OVER (PARTITION BY bb.row_id ORDER BY bb.b) AS next_b
          FROM bounds bb) AS b
    JOIN vers v ON v.row_id = b.row_id AND v.valid_from <= b.b
               AND (v.valid_to IS NULL OR v.valid_to > b.b)
    LEFT JOIN LATERAL (
        SELECT c.new_status, c.changed_at FROM changes c
        WHERE c.component_id = b.row_id AND c.changed_at <= b.b
        ORDER BY c.seq DESC LIMIT 1
    ) AS s ON true;
    IF pieces IS NULL THEN
        RETURN NULL;
    END IF;
    DELETE FROM row_history h
    WHERE h.table_name = 'status_page_component'
      AND h.row_id IN (SELECT DISTINCT p.row_id FROM unnest(pieces) AS p);
    INSERT INTO row_history SELECT * FROM unnest(pieces);
    RETURN NULL;
END;
$$;
