-- OTP as a finished product: the five states Aldeamo's reports use, verifications, and the fraud guard
-- (per-destination and per-tenant send limits, max tries across vendors), enforced here so that every
-- replica agrees.

-- state: generated (sent), validated_ok, validated_failed (a verification that did not pass), expired
-- (never validated in time: a sweep marks them; or the vendor said so), errored (never generated or sent).
ALTER TABLE otp_requests
    ADD COLUMN state              text,
    ADD COLUMN requested_provider text,
    ADD COLUMN providers_tried    text[],
    ADD COLUMN vendor_otp_id      text,
    ADD COLUMN generated_at       timestamptz,
    ADD COLUMN expires_at         timestamptz,
    ADD COLUMN validated_at       timestamptz,
    ADD COLUMN verify_attempts    integer NOT NULL DEFAULT 0;

UPDATE otp_requests SET
    state = CASE WHEN status = 'sent' THEN 'generated' ELSE 'errored' END,
    requested_provider = provider,
    generated_at = CASE WHEN status = 'sent' THEN completed_at END,
    expires_at = CASE WHEN status = 'sent' THEN completed_at + make_interval(secs => expires_in_s) END;

ALTER TABLE otp_requests
    ALTER COLUMN state SET NOT NULL,
    ADD CONSTRAINT otp_requests_state CHECK
        (state IN ('generated', 'validated_ok', 'validated_failed', 'expired', 'errored'));

-- The expiry sweep reads only codes still waiting; the index holds only them.
CREATE INDEX otp_requests_expiring ON otp_requests (expires_at) WHERE state = 'generated';
-- Reports filter by time across tenants; BRIN costs next to nothing on an append-mostly table.
CREATE INDEX otp_requests_created_brin ON otp_requests USING brin (created_at);

-- One row per otp.verify. The code is checked by the vendor and never stored. A row appears when the
-- verification is counted against the request's max_tries (status pending) and holds the outcome after.
CREATE TABLE otp_verifications (
    verification_id uuid        PRIMARY KEY,
    message_id      uuid        NOT NULL,
    request_id      uuid        NOT NULL,
    tenant          text,
    provider        text,
    status          text        NOT NULL,
    outcome         text,
    attempts        integer     NOT NULL DEFAULT 0,
    error_kind      text,
    error_message   text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    completed_at    timestamptz
);
CREATE INDEX otp_verifications_request ON otp_verifications (request_id);
CREATE INDEX otp_verifications_created_brin ON otp_verifications USING brin (created_at);

-- Sends admitted by the fraud guard, kept for the longest window; the per-destination sliding window
-- counts them exactly.
CREATE TABLE otp_send_admissions (
    request_id  uuid        PRIMARY KEY,
    tenant      text        NOT NULL,
    destination text        NOT NULL,
    admitted_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX otp_send_admissions_destination ON otp_send_admissions (destination, admitted_at);

-- Per-tenant sends in one-minute buckets: a tenant may send thousands an hour, so its window sums
-- buckets instead of counting rows (the window is exact to the minute).
CREATE TABLE otp_tenant_sends (
    tenant text        NOT NULL,
    minute timestamptz NOT NULL,
    sends  integer     NOT NULL,
    PRIMARY KEY (tenant, minute)
);

-- Admits a batch of sends, saying for each 'admitted', or which limit it would break: 'destination' or
-- 'tenant'. Concurrent sends are admitted together, in one round trip and one transaction. Every
-- advisory lock is taken first, in one global order (destinations, then tenants, each by key), so two
-- batches never wait on each other in a cycle; each statement after the locks takes a fresh snapshot, so
-- it sees every admission committed before them, and those earlier in its own batch. A request already
-- admitted (a retry of the same send) is admitted again without counting twice. Losing the last
-- admissions in a database crash only loosens a limit for a moment, so the commit is asynchronous.
CREATE FUNCTION pasarela_admit_otp_sends(
    p_requests uuid[], p_tenants text[], p_destinations text[],
    p_destination_limit integer, p_destination_window_s integer,
    p_tenant_limit integer, p_tenant_window_s integer)
RETURNS TABLE (admitted_request uuid, verdict text) LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    i integer;
    k bigint;
    n bigint;
BEGIN
    PERFORM set_config('synchronous_commit', 'off', true);
    IF p_destination_limit > 0 THEN
        FOR k IN SELECT DISTINCT hashtextextended('pasarela.otp.destination:' || d, 0)
                 FROM unnest(p_destinations) AS d ORDER BY 1 LOOP
            PERFORM pg_advisory_xact_lock(k);
        END LOOP;
    END IF;
    IF p_tenant_limit > 0 THEN
        FOR k IN SELECT DISTINCT hashtextextended('pasarela.otp.tenant:' || t, 0)
                 FROM unnest(p_tenants) AS t ORDER BY 1 LOOP
            PERFORM pg_advisory_xact_lock(k);
        END LOOP;
    END IF;
    FOR i IN 1 .. coalesce(array_length(p_requests, 1), 0) LOOP
        admitted_request := p_requests[i];
        IF EXISTS (SELECT 1 FROM otp_send_admissions a WHERE a.request_id = p_requests[i]) THEN
            verdict := 'admitted';
            RETURN NEXT;
            CONTINUE;
        END IF;
        IF p_destination_limit > 0 THEN
            SELECT count(*) INTO n FROM otp_send_admissions a
                WHERE a.destination = p_destinations[i]
                  AND a.admitted_at > now() - make_interval(secs => p_destination_window_s);
            IF n >= p_destination_limit THEN
                verdict := 'destination';
                RETURN NEXT;
                CONTINUE;
            END IF;
        END IF;
        IF p_tenant_limit > 0 THEN
            SELECT coalesce(sum(s.sends), 0) INTO n FROM otp_tenant_sends s
                WHERE s.tenant = p_tenants[i]
                  AND s.minute > now() - make_interval(secs => p_tenant_window_s);
            IF n >= p_tenant_limit THEN
                verdict := 'tenant';
                RETURN NEXT;
                CONTINUE;
            END IF;
            INSERT INTO otp_tenant_sends AS s (tenant, minute, sends)
                VALUES (p_tenants[i], date_trunc('minute', now()), 1)
                ON CONFLICT (tenant, minute) DO UPDATE SET sends = s.sends + 1;
        END IF;
        INSERT INTO otp_send_admissions (request_id, tenant, destination)
            VALUES (p_requests[i], p_tenants[i], p_destinations[i])
            ON CONFLICT ON CONSTRAINT otp_send_admissions_pkey DO NOTHING;
        verdict := 'admitted';
        RETURN NEXT;
    END LOOP;
END
$$;

-- Looks up the send a verification refers to and counts the verification against its max_tries, under
-- the send's row lock so that replicas (and vendors) share one count. Returns no row for an unknown
-- request. `counted` is false when the verification may not reach the vendor: the send was not sent, was
-- already validated, or its tries are spent. A verification counted on an earlier attempt of the same
-- message stays counted; a verification_id already used by another message is `reused` and counts for
-- nothing (a producer retrying with new message ids would otherwise guess without limit).
CREATE FUNCTION pasarela_admit_otp_verify(p_verification uuid, p_message uuid, p_request uuid)
RETURNS TABLE (counted boolean, reused boolean, status text, state text, provider text,
               vendor_request_id text, vendor_otp_id text, tenant text, expires_at timestamptz,
               max_tries integer, verify_attempts integer)
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    r otp_requests%ROWTYPE;
    earlier otp_verifications%ROWTYPE;
    ok boolean := false;
    taken boolean := false;
BEGIN
    SELECT * INTO r FROM otp_requests o WHERE o.request_id = p_request FOR UPDATE;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    SELECT * INTO earlier FROM otp_verifications v WHERE v.verification_id = p_verification;
    IF FOUND THEN
        IF earlier.message_id = p_message AND earlier.request_id = p_request THEN
            ok := true;
        ELSE
            taken := true;
        END IF;
    ELSIF r.status = 'sent' AND r.state <> 'validated_ok'
          AND r.verify_attempts < coalesce(r.max_tries, 5) THEN
        UPDATE otp_requests o SET verify_attempts = o.verify_attempts + 1
            WHERE o.request_id = p_request;
        r.verify_attempts := r.verify_attempts + 1;
        INSERT INTO otp_verifications (verification_id, message_id, request_id, tenant, provider, status)
            VALUES (p_verification, p_message, p_request, r.tenant, r.provider, 'pending');
        ok := true;
    END IF;
    RETURN QUERY SELECT ok, taken, r.status, r.state, r.provider, r.vendor_request_id, r.vendor_otp_id,
        r.tenant, r.expires_at, r.max_tries, r.verify_attempts;
END
$$;

-- A destination as reports show it: enough to recognise, not enough to reuse. A mobile keeps its first
-- five and last three characters (+5730*****567); an e-mail keeps its first letter and its domain
-- (a**@example.com). The CLI's report and the Grafana dashboard both use it.
CREATE FUNCTION pasarela_mask_destination(p_mobile text, p_email text)
RETURNS text LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE
        WHEN p_mobile IS NOT NULL AND length(p_mobile) > 8 THEN
            left(p_mobile, 5) || repeat('*', length(p_mobile) - 8) || right(p_mobile, 3)
        WHEN p_mobile IS NOT NULL THEN repeat('*', length(p_mobile))
        WHEN p_email IS NOT NULL AND position('@' in p_email) > 1 THEN
            left(p_email, 1) || repeat('*', greatest(position('@' in p_email) - 2, 2))
                || substr(p_email, position('@' in p_email))
        WHEN p_email IS NOT NULL THEN '***'
    END
$$;
