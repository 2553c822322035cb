-- A dead letter an operator threw away with `pasarela dlq discard`: when, and the reason given.
ALTER TABLE dead_letters
    ADD COLUMN discarded_at   timestamptz,
    ADD COLUMN discard_reason text;
