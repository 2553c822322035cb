-- Fewer index writes on the hot path. Each message inserts and updates a work_items row and inserts and
-- deletes an outbox row; every index on them is written each time.
-- * work_items_open indexed a column every outcome changes, which also kept the outcome update from being
--   a heap-only (HOT) update; the open rows are few and an operator's scan of them is cheap.
-- * outbox_age served only the relay, which reads a table that is empty in steady state.
DROP INDEX IF EXISTS work_items_open;
DROP INDEX IF EXISTS outbox_age;
-- Room on each page for the outcome update to stay on the same page (HOT).
ALTER TABLE work_items SET (fillfactor = 80);
