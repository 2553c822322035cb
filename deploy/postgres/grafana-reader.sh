#!/bin/sh
# Run once by the postgres image when its data directory is new (docker-entrypoint-initdb.d): the role
# Grafana's PostgreSQL datasource uses. It may read pasarela's tables (those the migrations create
# later too, through default privileges) and change nothing: Grafana runs whatever SQL an editor types.
set -eu
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
  -v password="$GRAFANA_READER_PASSWORD" <<'SQL'
CREATE ROLE grafana_reader LOGIN PASSWORD :'password';
GRANT CONNECT ON DATABASE pasarela TO grafana_reader;
GRANT USAGE ON SCHEMA public TO grafana_reader;
GRANT SELECT ON ALL TABLES IN SCHEMA public TO grafana_reader;
ALTER DEFAULT PRIVILEGES FOR ROLE postgres IN SCHEMA public GRANT SELECT ON TABLES TO grafana_reader;
ALTER ROLE grafana_reader SET default_transaction_read_only = on;
SQL
