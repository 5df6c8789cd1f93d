-- statusdb 0044 rollback: the schema as 0041 left it.

SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '5min';

-- The page key of the group log again: NOT VALID first (no scan under the lock of the ADD),
-- then validated in this transaction, as the rollback restores the schema exactly in one step.
ALTER TABLE component_group_status_change
    ADD CONSTRAINT component_group_status_change_status_page_id_fkey
    FOREIGN KEY (status_page_id) REFERENCES status_page (id) ON DELETE CASCADE NOT VALID;
-- squawk-ignore constraint-missing-not-valid
ALTER TABLE component_group_status_change VALIDATE CONSTRAINT component_group_status_change_status_page_id_fkey;
