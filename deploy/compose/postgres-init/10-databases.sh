#!/bin/sh
# Runs once, when the PostgreSQL volume is first initialised: one role and one database per
# service, each owned by its service and closed to the others (as with the managed servers in
# production). Passwords come from the compose environment (deploy/compose/.env).
set -eu
# A suffix keeps a trial run on a shared server apart from the real names (tests use it).
suffix=${TECHBRIDGE_DB_SUFFIX:-}

create() {
  role=$1$suffix db=$2$suffix password=$3
  psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres \
    -v role="$role" -v db="$db" -v password="$password" <<'SQL'
CREATE ROLE :"role" LOGIN PASSWORD :'password';
CREATE DATABASE :"db" OWNER :"role";
REVOKE ALL ON DATABASE :"db" FROM PUBLIC;
SQL
}

create catalog techbridge_catalog "$CATALOG_DB_PASSWORD"
create matching techbridge_matching "$MATCHING_DB_PASSWORD"
create valuation techbridge_valuation "$VALUATION_DB_PASSWORD"
create vouchers techbridge_vouchers "$VOUCHERS_DB_PASSWORD"
create gateway techbridge_gateway "$GATEWAY_DB_PASSWORD"
