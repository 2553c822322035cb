-- The fraud guard admits a batch in one statement when only destinations are limited (the default):
-- the window counts of every destination in the batch from one index scan, each send's rank among the
-- batch's sends to its destination, and one insert of the admitted. Row by row, a batch of 100 sends
-- ran 300 statements inside the function. With a tenant limit the row-by-row loop stays, as a send
-- refused by one limit must not count against the other.
--
-- pasarela_admit_otp_sends_within admits inside the caller's transaction and leaves its durability
-- alone: the claim's group transaction calls it, and may hold outcomes that must commit durably.
-- pasarela_admit_otp_sends, called on its own, commits asynchronously as before: losing the last
-- admissions in a database crash only loosens a limit for a moment.
--
-- The advisory locks are taken as before (destinations, then tenants, each by key, one global order),
-- each set in one statement; the statements after them take a fresh snapshot, so they see every
-- admission committed by a batch that held a lock before. A request already admitted is admitted
-- again without counting twice; a request twice in one batch is decided once, by its first place.
CREATE FUNCTION pasarela_admit_otp_sends_within(
    p_requests uuid[], p_tenants text[], p_destinations text[],
    p_destination_limit integer, p_destination_window_s integer,
    p_tenant_limit integer, p_tenant_window_s integer)
RETURNS TABLE (admitted_request uuid, verdict text) LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    i integer;
    n bigint;
BEGIN
    IF p_destination_limit > 0 THEN
        PERFORM pg_advisory_xact_lock(l.k)
        FROM (SELECT DISTINCT hashtextextended('pasarela.otp.destination:' || d, 0) AS k
              FROM unnest(p_destinations) AS d ORDER BY 1) AS l;
    END IF;
    IF p_tenant_limit > 0 THEN
        PERFORM pg_advisory_xact_lock(l.k)
        FROM (SELECT DISTINCT hashtextextended('pasarela.otp.tenant:' || t, 0) AS k
              FROM unnest(p_tenants) AS t ORDER BY 1) AS l;
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
            INSERT INTO otp_send_admissions (request_id, tenant, destination)
                VALUES (p_requests[i], p_tenants[i], p_destinations[i])
                ON CONFLICT ON CONSTRAINT otp_send_admissions_pkey DO NOTHING;
            verdict := 'admitted';
            RETURN NEXT;
        END LOOP;
        RETURN;
    END IF;
    RETURN QUERY
    WITH batch AS (
        SELECT u.r, u.t, u.d, u.ord
        FROM unnest(p_requests, p_tenants, p_destinations) WITH ORDINALITY AS u(r, t, d, ord)
    ), firsts AS (
        SELECT DISTINCT ON (b.r) b.r, b.t, b.d, b.ord FROM batch b ORDER BY b.r, b.ord
    ), fresh AS (
        SELECT f.r, f.t, f.d, row_number() OVER (PARTITION BY f.d ORDER BY f.ord) AS nth
        FROM firsts f
        WHERE NOT EXISTS (SELECT 1 FROM otp_send_admissions a WHERE a.request_id = f.r)
    ), counted AS (
        SELECT a.destination, count(*) AS n
        FROM otp_send_admissions a
        WHERE p_destination_limit > 0
          AND a.destination = ANY (p_destinations)
          AND a.admitted_at > now() - make_interval(secs => p_destination_window_s)
        GROUP BY a.destination
    ), decided AS (
        SELECT f.r, f.t, f.d,
               (p_destination_limit <= 0 OR coalesce(c.n, 0) + f.nth <= p_destination_limit) AS ok
        FROM fresh f LEFT JOIN counted c ON c.destination = f.d
    ), admitted AS (
        INSERT INTO otp_send_admissions (request_id, tenant, destination)
        SELECT x.r, x.t, x.d FROM decided x WHERE x.ok
        ON CONFLICT ON CONSTRAINT otp_send_admissions_pkey DO NOTHING
    )
    SELECT b.r, CASE WHEN x.ok IS FALSE THEN 'destination' ELSE 'admitted' END
    FROM batch b LEFT JOIN decided x ON x.r = b.r
    ORDER BY b.ord;
END
$$;

CREATE OR REPLACE FUNCTION pasarela_admit_otp_sends(
    p_requests uuid[], p_tenants text[], p_destinations text[],
    p_destination_limit integer, p_destination_window_s integer,
    p_tenant_limit integer, p_tenant_window_s integer)
RETURNS TABLE (admitted_request uuid, verdict text) LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    PERFORM set_config('synchronous_commit', 'off', true);
    RETURN QUERY SELECT * FROM pasarela_admit_otp_sends_within(p_requests, p_tenants,
        p_destinations, p_destination_limit, p_destination_window_s, p_tenant_limit,
        p_tenant_window_s);
END
$$;
