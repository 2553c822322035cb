-- One access token per vendor, shared by every task of every replica (docs/vendors/ and docs/ARCHITECTURE.md). The token is
-- encrypted with AES-256-GCM under PASARELA_SECRET_KEY, with the vendor's name as associated data, so
-- a row copied to another vendor does not decrypt. generation counts refreshes: a caller that got a 401
-- expires only the generation it used, so many 401s on one token cause one refresh.
CREATE TABLE vendor_tokens (
    vendor       text        PRIMARY KEY,
    ciphertext   bytea       NOT NULL,
    nonce        bytea       NOT NULL,
    expires_at   timestamptz NOT NULL,
    generation   bigint      NOT NULL,
    refreshed_at timestamptz NOT NULL DEFAULT now()
);
