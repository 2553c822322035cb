-- pasarela's state. PostgreSQL is the source of truth for every request (docs/ARCHITECTURE.md).

-- One row per work message, keyed on the producer's message_id: the idempotency record shared by every
-- worker. It holds where the message stands, and the result to re-publish when the message comes again.
CREATE TABLE work_items (
    queue               text        NOT NULL,
    message_id          uuid        NOT NULL,
    -- in_flight: a holder is working on it until claimed_until; retry_scheduled: a copy waits in a
    -- retry tier carrying next_attempt; done: finished, result holds the event.
    state               text        NOT NULL CHECK (state IN ('in_flight', 'retry_scheduled', 'done')),
    status              text,
    attempts            integer     NOT NULL,
    next_attempt        integer     NOT NULL,
    claimed_until       timestamptz,
    -- Times the message was taken over from a holder that vanished mid-call: the vendor may have been
    -- called twice.
    possible_duplicates integer     NOT NULL DEFAULT 0,
    result_routing_key  text,
    result              jsonb,
    last_error          jsonb,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    completed_at        timestamptz,
    PRIMARY KEY (queue, message_id)
);
CREATE INDEX work_items_open ON work_items (queue, updated_at) WHERE state <> 'done';

-- The OTP sends. The code itself is generated and checked by the vendor and never stored here.
CREATE TABLE otp_requests (
    request_id         uuid        PRIMARY KEY,
    message_id         uuid        NOT NULL,
    tenant             text        NOT NULL,
    provider           text        NOT NULL,
    channel            text        NOT NULL,
    destination_mobile text,
    destination_email  text,
    code_type          text,
    code_length        integer,
    expires_in_s       integer,
    max_tries          integer,
    status             text        NOT NULL,
    attempts           integer     NOT NULL,
    vendor_request_id  text,
    vendor_code        text,
    error_kind         text,
    error_message      text,
    created_at         timestamptz NOT NULL DEFAULT now(),
    completed_at       timestamptz
);
CREATE INDEX otp_requests_message ON otp_requests (message_id);
CREATE INDEX otp_requests_report ON otp_requests (tenant, created_at);

-- Messages to publish, written in the same transaction as the state they report. A row is deleted once
-- the broker confirms it; the relay publishes rows a crash left behind.
CREATE TABLE outbox (
    id          uuid        PRIMARY KEY,
    queue       text,
    message_id  uuid,
    properties  jsonb       NOT NULL,
    body        bytea       NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX outbox_age ON outbox (created_at);
CREATE INDEX outbox_source ON outbox (queue, message_id);

-- Every message pasarela dead-lettered, with the reason; the broker's .dead queue holds the message.
CREATE TABLE dead_letters (
    id          bigserial   PRIMARY KEY,
    queue       text        NOT NULL,
    message_id  text,
    error_kind  text        NOT NULL,
    reason      text        NOT NULL,
    attempts    integer,
    headers     jsonb,
    body        bytea,
    created_at  timestamptz NOT NULL DEFAULT now(),
    replayed_at timestamptz
);
CREATE INDEX dead_letters_queue ON dead_letters (queue, created_at);
CREATE INDEX dead_letters_message ON dead_letters (message_id);
