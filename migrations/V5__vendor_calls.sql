-- One row per vendor.call: what was called and how it went. No credentials, tokens or payloads: the path
-- is kept without its query string, which may carry a producer's parameters (GestoPago's `signed`).
CREATE TABLE vendor_calls (
    call_id      uuid        PRIMARY KEY,
    message_id   uuid        NOT NULL,
    vendor       text        NOT NULL,
    method       text        NOT NULL,
    path         text        NOT NULL,
    status       text        NOT NULL,
    http_status  integer,
    latency_ms   integer,
    attempts     integer     NOT NULL,
    error_kind   text,
    error_message text,
    created_at   timestamptz NOT NULL DEFAULT now(),
    completed_at timestamptz
);
CREATE INDEX vendor_calls_vendor ON vendor_calls (vendor, created_at);
