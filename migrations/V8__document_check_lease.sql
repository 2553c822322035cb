-- A doc.callback check asks the vendor without holding the document's row: instead it leases the
-- document for the length of its calls, so that a vendor webhook and a status poll arriving together do
-- not both ask the vendor and both announce the signature. A lease whose holder died runs out.
ALTER TABLE documents ADD COLUMN checking_by uuid, ADD COLUMN checking_until timestamptz;
