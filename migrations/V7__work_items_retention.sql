-- Finished work rows are pruned after PASARELA_WORK_RETENTION. Rows are inserted in time order, so a
-- BRIN index on created_at finds the old ones for a few pages of index, and since created_at never
-- changes it neither adds a B-tree entry per message nor keeps the outcome update from being HOT.
CREATE INDEX work_items_age ON work_items USING brin (created_at);
