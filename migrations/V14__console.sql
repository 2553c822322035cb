-- What the operator console needs: a record of every operator action, the history of failed attempts,
-- and the indexes that let it find a request by trace id, tenant or destination.

-- Every action an operator took from the console: who, what, on what, why, when, and what came of it.
-- action_id is the one-time id of the form that asked for it: the same form sent twice finds its row
-- and is not carried out again.
CREATE TABLE operator_actions (
    action_id    uuid        PRIMARY KEY,
    operator     text        NOT NULL,
    action       text        NOT NULL,
    target       text        NOT NULL,
    reason       text,
    outcome      text,
    created_at   timestamptz NOT NULL DEFAULT now(),
    completed_at timestamptz
);
CREATE INDEX operator_actions_created ON operator_actions (created_at);

-- One row per attempt that failed and was scheduled for retry, written in the statement that schedules
-- it. A message that succeeds at once writes none: the hot path pays nothing. The last attempt of a
-- message is its work_items row.
CREATE TABLE work_attempts (
    queue        text        NOT NULL,
    message_id   uuid        NOT NULL,
    attempt      integer     NOT NULL,
    -- The attempt the retry copy carries, the tier it waits in (its delay, as the queue is named) and
    -- how long it waits there (jitter or a vendor's Retry-After make it shorter than the tier).
    next_attempt integer     NOT NULL,
    tier         text        NOT NULL,
    wait_ms      integer     NOT NULL,
    error        jsonb,
    -- From the claim to the settlement: the handler, the vendor call and the wait for the commit.
    latency_ms   integer,
    failed_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (queue, message_id, attempt)
);
CREATE INDEX work_attempts_age ON work_attempts USING brin (failed_at);

-- A trace id finds its work. Partial: rows without a trace (no OTLP endpoint) cost no entry.
CREATE INDEX work_items_trace ON work_items (trace_id) WHERE trace_id IS NOT NULL;
-- A destination finds its sends, newest first: one entry per row, whichever of the two it has.
CREATE INDEX otp_requests_destination
    ON otp_requests ((coalesce(destination_mobile, destination_email)), created_at);
-- Open dead letters, newest first, for the console's list.
CREATE INDEX dead_letters_open ON dead_letters (created_at)
    WHERE replayed_at IS NULL AND discarded_at IS NULL;
-- The webhook jobs of a window, for the console's page per endpoint: a BRIN index, a few pages for the
-- whole table, as jobs are written in the order they are made.
CREATE INDEX webhook_jobs_created ON webhook_jobs USING brin (created_at);
