-- The W3C traceparent of the message that brought a document in, and of the check that queued a client
-- webhook: what happens to them later (the vendor's callback, a poll, each webhook attempt) continues
-- the producer's trace instead of starting unlinked ones. Nullable: work from before has none.
ALTER TABLE documents ADD COLUMN trace_context text;
ALTER TABLE webhook_jobs ADD COLUMN trace_context text;
