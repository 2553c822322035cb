-- Document signing (docs/CONTRACT.md, `doc.sign`): the documents, their PDFs, and the client webhooks with every
-- delivery attempt.

-- One row per document a producer sent with doc.sign, keyed on the producer's document_id. The row stays
-- after retention purges the PDFs, so the status can always be read.
CREATE TABLE documents (
    document_id                    uuid        PRIMARY KEY,
    message_id                     uuid        NOT NULL,
    tenant                         text        NOT NULL,
    document_name                  text        NOT NULL,
    active_directory_user          text        NOT NULL,
    signature_type                 text        NOT NULL,
    -- The producer's webhook; null when it asked for none.
    client_callback_url            text,
    -- SHA-256 of the capability token in the vendor's callback URL: a stolen table does not give the
    -- capability, and callback-ingress compares digests.
    callback_token_sha256          bytea       NOT NULL,
    -- stored: kept, not yet accepted by the vendor; submitted: the vendor has it; signed / failed: final.
    state                          text        NOT NULL
        CHECK (state IN ('stored', 'submitted', 'signed', 'failed')),
    vendor_document_id             text,
    vendor_status                  text,
    vendor_message                 text,
    document_bytes                 bigint      NOT NULL,
    signed_bytes                   bigint,
    signed_document_name           text,
    date_sent_to_sign              timestamptz,
    signing_date                   timestamptz,
    assigned_active_directory_user text,
    error_kind                     text,
    error_message                  text,
    -- Status polls in case the vendor's webhook never comes: how many so far, when the next is due,
    -- and when pasarela stops asking.
    polls                          integer     NOT NULL DEFAULT 0,
    next_poll_at                   timestamptz,
    poll_until                     timestamptz,
    created_at                     timestamptz NOT NULL DEFAULT now(),
    submitted_at                   timestamptz,
    completed_at                   timestamptz,
    -- The doc.callback message that finished the document: only it publishes the outcome, so a
    -- webhook and a poll racing for one document never announce it twice.
    completed_by                   uuid,
    purged_at                      timestamptz
);
CREATE UNIQUE INDEX documents_vendor_id ON documents (vendor_document_id);
CREATE INDEX documents_poll_due ON documents (next_poll_at) WHERE state = 'submitted';
CREATE INDEX documents_retention ON documents (created_at) WHERE purged_at IS NULL;
CREATE INDEX documents_tenant ON documents (tenant, created_at);

-- The PDFs, apart from the status row so that status reads never touch large values. Written with
-- COPY in chunks: a worker never holds a second copy of a document to store it.
CREATE TABLE document_files (
    document_id uuid        NOT NULL REFERENCES documents ON DELETE CASCADE,
    kind        text        NOT NULL CHECK (kind IN ('original', 'signed')),
    content     bytea       NOT NULL,
    stored_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (document_id, kind)
);
-- Already compressed; TOAST compression would spend CPU for nothing.
ALTER TABLE document_files ALTER COLUMN content SET STORAGE EXTERNAL;

-- Client endpoints that answered 410 Gone: nothing more is sent to them until an operator redelivers.
CREATE TABLE webhook_endpoints (
    url             text        PRIMARY KEY,
    disabled_at     timestamptz,
    disabled_reason text
);

-- One client webhook to deliver: the payload, signed afresh at each attempt, and where it stands.
CREATE TABLE webhook_jobs (
    job_id          uuid        PRIMARY KEY,
    document_id     uuid        NOT NULL REFERENCES documents ON DELETE CASCADE,
    -- The Standard Webhooks `webhook-id`: the same for every attempt and redelivery of one event, so
    -- the receiver can drop duplicates.
    webhook_id      text        NOT NULL,
    event_type      text        NOT NULL,
    url             text        NOT NULL,
    payload         jsonb       NOT NULL,
    -- pending: waits for next_attempt_at; delivering: a dispatcher holds it until leased_until;
    -- delivered / failed: final.
    state           text        NOT NULL
        CHECK (state IN ('pending', 'delivering', 'delivered', 'failed')),
    attempts        integer     NOT NULL DEFAULT 0,
    next_attempt_at timestamptz,
    leased_until    timestamptz,
    last_http_status integer,
    last_error      text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    completed_at    timestamptz
);
CREATE INDEX webhook_jobs_due ON webhook_jobs (next_attempt_at) WHERE state = 'pending';
CREATE INDEX webhook_jobs_leased ON webhook_jobs (leased_until) WHERE state = 'delivering';
CREATE INDEX webhook_jobs_document ON webhook_jobs (document_id);

-- Every attempt at a client webhook: one row each, whatever came of it.
CREATE TABLE webhook_deliveries (
    id              bigserial   PRIMARY KEY,
    job_id          uuid        NOT NULL REFERENCES webhook_jobs ON DELETE CASCADE,
    document_id     uuid        NOT NULL,
    attempt         integer     NOT NULL,
    url             text        NOT NULL,
    http_status     integer,
    latency_ms      integer,
    error           text,
    attempted_at    timestamptz NOT NULL DEFAULT now(),
    next_attempt_at timestamptz
);
CREATE INDEX webhook_deliveries_document ON webhook_deliveries (document_id, attempted_at);
