-- statusdb 0044: the group roll-up and the incident open pay less (issue 20 items 3 and 6).
-- depends: 0043_lock_ahead_scope
--
-- Measured with `python -m bench --case "group roll-up" --case "trigger costs"` (numbers in
-- bench/README.md, "Issue 20: the group roll-up and the open against its floor (0044)").
--
-- * The foreign key component_group_status_change_status_page_id_fkey is dropped, as 0037
--   dropped status_change_status_page_id_fkey, for the same reasons. The group status log is
--   append-only and written only by statusdb_refresh_groups (owner only; the application roles
--   may INSERT nothing into it: grants of 0020), which copies status_page_id from the group row
--   it logs; component_group_status_change_group_id_fkey already makes the group exist, a group
--   never moves to another page (component_group_status_page_id_fixed, its guard) and its own
--   foreign key makes its page exist; deleting a page deletes its groups (ON DELETE CASCADE),
--   which deletes their log rows (the group key is ON DELETE CASCADE too), so the page key's
--   cascade never had a row left to delete, and its check on every logged change found what
--   the group key had already found. The index component_group_status_change_status_page_id_
--   changed_at_idx stays (readers by page).

SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '5min';

-- Redundant: see the top of this file.
-- squawk-ignore ban-drop-constraint
ALTER TABLE component_group_status_change DROP CONSTRAINT component_group_status_change_status_page_id_fkey;
