-- What a vendor says beside its code, kept for the operator: DANAConnect's conversationRequestId (the id
-- its own reports track the conversation run by) and responseDescription (its words for the code).
-- Nullable, no default: adding them rewrites nothing.
ALTER TABLE otp_requests
    ADD COLUMN vendor_tracking_id text,
    ADD COLUMN vendor_description text;
