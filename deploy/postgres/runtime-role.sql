-- The least a pasarela worker needs in its database, for a role that can neither create databases nor
-- change the schema. Run as the owner after `pasarela migrate` (which runs as a role that may), with the
-- workers on PASARELA_MIGRATE=off. psql: psql -v ON_ERROR_STOP=1 -d pasarela -f runtime-role.sql
-- (create the role first: CREATE ROLE pasarela_runtime LOGIN PASSWORD '...';  it gets NOSUPERUSER,
-- NOCREATEDB and NOCREATEROLE by default).
GRANT CONNECT ON DATABASE pasarela TO pasarela_runtime;
GRANT USAGE ON SCHEMA public TO pasarela_runtime;
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO pasarela_runtime;
GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO pasarela_runtime;
GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA public TO pasarela_runtime;
-- Tables, sequences and functions a later migration creates get the same grants.
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO pasarela_runtime;
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT USAGE, SELECT ON SEQUENCES TO pasarela_runtime;
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT EXECUTE ON FUNCTIONS TO pasarela_runtime;
