#!/usr/bin/env bash
# A local PostgreSQL cluster for tests and CI (production runs a managed server per service).
#   pg.sh start   install Debian's postgresql if missing, init a cluster once, start it on
#                 127.0.0.1:${TECHBRIDGE_PG_PORT:-55432}, create one database per service;
#                 prints the server URL (postgresql+asyncpg://techbridge@127.0.0.1:PORT)
#   pg.sh stop    stop it
# Set TECHBRIDGE_PG_URL to use a server you already run instead (needs CREATEDB rights).
set -euo pipefail
port=${TECHBRIDGE_PG_PORT:-55432}
# Outside the checkout: the server runs as the postgres user, which may not reach the clone.
data=${TECHBRIDGE_PG_DATA:-/tmp/techbridge-postgres-$port}
databases="techbridge_catalog techbridge_matching techbridge_valuation techbridge_vouchers techbridge_gateway"

bindir() {
  local d
  d=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
  [ -n "$d" ] && [ -x "$d/initdb" ] && { echo "$d"; return; }
  if command -v pg_config >/dev/null && [ -x "$(pg_config --bindir)/initdb" ]; then pg_config --bindir; return; fi
  return 1
}

install_server() {
  echo "pg.sh: installing Debian's postgresql package" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  apt-get install -y -qq postgresql >&2
}

# initdb and postgres refuse to run as root; run them as the package's postgres user.
as_owner() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

start() {
  if [ -n "${TECHBRIDGE_PG_URL:-}" ]; then echo "$TECHBRIDGE_PG_URL"; return; fi
  local bin
  bin=$(bindir) || { install_server; bin=$(bindir); }
  if [ ! -f "$data/PG_VERSION" ]; then
    mkdir -p "$data"
    [ "$(id -u)" = 0 ] && chown postgres:postgres "$data" && chmod 700 "$data"
    as_owner "$bin/initdb" -D "$data" -U techbridge --auth=trust -E UTF8 --locale=C.UTF-8 >/dev/null
  fi
  if ! "$bin/pg_isready" -q -h 127.0.0.1 -p "$port"; then
    as_owner "$bin/pg_ctl" -D "$data" -l "$data/server.log" -w -t 60 start \
      -o "-p $port -k $data -c listen_addresses=127.0.0.1 -c max_connections=300" >/dev/null \
      || { echo "pg.sh: PostgreSQL did not start; see $data/server.log:" >&2; tail -n 5 "$data/server.log" >&2; exit 1; }
  fi
  for db in $databases; do
    if ! "$bin/psql" -h 127.0.0.1 -p "$port" -U techbridge -d postgres -tAc \
         "SELECT 1 FROM pg_database WHERE datname='$db'" | grep -q 1; then
      "$bin/psql" -h 127.0.0.1 -p "$port" -U techbridge -d postgres -qc "CREATE DATABASE $db" >/dev/null
    fi
  done
  echo "postgresql+asyncpg://techbridge@127.0.0.1:$port"
}

stop() {
  local bin
  bin=$(bindir) || exit 0
  [ -f "$data/postmaster.pid" ] && as_owner "$bin/pg_ctl" -D "$data" -m fast -w stop >/dev/null || true
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  *) echo "usage: pg.sh start | stop" >&2; exit 2 ;;
esac
