-- The trace a message's first delivery ran in, so that `pasarela status` opens it in Tempo. A W3C trace id
-- is 16 bytes: a uuid column holds it in those 16 bytes, the least a row can carry for it.
ALTER TABLE work_items ADD COLUMN trace_id uuid;
