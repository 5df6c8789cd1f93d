-- name: group_create
-- Insert a group on a page (optionally inside another group of the page).
INSERT INTO component_group (status_page_id, parent_id, name, description, display_order)
VALUES (%(status_page_id)s, %(parent_id)s, %(name)s, %(description)s, %(display_order)s)
RETURNING id, status_page_id, parent_id, name, description, display_order, current_status,
          status_updated_at, created_at, updated_at;

-- name: group_get
-- Fetch one group by id.
SELECT id, status_page_id, parent_id, name, description, display_order, current_status,
       status_updated_at, created_at, updated_at
FROM component_group
WHERE id = %(id)s;

-- name: group_list_for_page
-- A page's groups, flat, in display order (parents are named by parent_id).
SELECT id, status_page_id, parent_id, name, description, display_order, current_status,
       status_updated_at, created_at, updated_at
FROM component_group
WHERE status_page_id = %(status_page_id)s
ORDER BY display_order, name, id;

-- name: group_update
-- Change any of name, description, display order, parent (a flag per field says which).
UPDATE component_group
SET name = CASE WHEN %(set_name)s THEN %(name)s ELSE name END,
    description = CASE WHEN %(set_description)s THEN %(description)s ELSE description END,
    display_order = CASE WHEN %(set_display_order)s THEN %(display_order)s ELSE display_order END,
    parent_id = CASE WHEN %(set_parent_id)s THEN %(parent_id)s ELSE parent_id END
WHERE id = %(id)s
RETURNING id, status_page_id, parent_id, name, description, display_order, current_status,
          status_updated_at, created_at, updated_at;

-- name: group_delete
-- Delete a group: its components and subgroups stay, ungrouped / top-level (foreign keys).
DELETE FROM component_group
WHERE id = %(id)s;

-- name: group_assign_component
-- Put a component in a group (null: none), optionally with its display order in the group.
UPDATE status_page_component
SET group_id = %(group_id)s,
    display_order = CASE WHEN %(set_display_order)s THEN %(display_order)s ELSE display_order END
WHERE id = %(component_id)s
RETURNING id AS component_id, group_id, display_order, current_status;

-- name: group_member_component_ids
-- The components in the given groups and their subgroups (at most 3 levels), in id order;
-- a group of another page than `status_page_id`, or none, is reported in `missing`.
WITH RECURSIVE wanted AS (
    SELECT w.id
    FROM unnest(%(group_ids)s::text[]) AS w (id)
),
found AS (
    SELECT g.id
    FROM component_group g
    WHERE g.id = ANY (%(group_ids)s::text[])
      AND g.status_page_id = %(status_page_id)s
),
subtree (id, level) AS (
    SELECT found.id, 1 FROM found
    UNION ALL
    SELECT g.id, subtree.level + 1
    FROM subtree
    JOIN component_group g ON g.parent_id = subtree.id
    WHERE subtree.level < 3
)
SELECT ARRAY(SELECT w.id FROM wanted w WHERE w.id NOT IN (SELECT found.id FROM found)
             ORDER BY w.id) AS missing,
       ARRAY(SELECT DISTINCT c.id
             FROM subtree
             JOIN status_page_component c ON c.group_id = subtree.id
             ORDER BY c.id) AS component_ids;

-- name: group_recompute
-- Compare every group with a from-scratch derivation; repair the drift when asked.
SELECT group_id, current_status, derived_status
FROM statusdb_recompute_group_statuses(%(repair)s);

-- name: group_changes_for_group
-- A group's logged status changes, oldest first.
SELECT id, seq, status_page_id, group_id, previous_status, new_status, changed_at
FROM component_group_status_change
WHERE group_id = %(group_id)s
ORDER BY seq
LIMIT %(limit)s;

-- name: group_follow
-- Set the groups a subscriber follows (groups of its page; checked by trigger).
UPDATE status_subscriber
SET group_ids = %(group_ids)s::text[]
WHERE id = %(subscriber_id)s
RETURNING id AS subscriber_id, group_ids, component_ids, is_active;
