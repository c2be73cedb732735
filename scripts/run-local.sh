#!/usr/bin/env bash
# Starts OWP Pool on http://127.0.0.1:8787 against a local PostgreSQL, installing or
# starting PostgreSQL first when it is missing (Debian/Ubuntu). Prints the admin token.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/postgres.sh

ensure_postgres
ensure_database "${OWP_DB_NAME:-owp}"
export DATABASE_URL=${DATABASE_URL:-postgres://owp:owp@$PGHOST_ADDR:$PGPORT_NUM/${OWP_DB_NAME:-owp}}
# a stable local admin token, kept out of git (.gitignore)
if [ -z "${OWP_ADMIN_TOKEN:-}" ]; then
  [ -s .owp-admin-token ] || head -c 32 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n' > .owp-admin-token
  OWP_ADMIN_TOKEN=$(cat .owp-admin-token)
fi
export OWP_ADMIN_TOKEN
export OWP_HOST=${OWP_HOST:-127.0.0.1} OWP_PORT=${OWP_PORT:-8787} OWP_LOG_FORMAT=${OWP_LOG_FORMAT:-pretty}
# a local pool admits any worker (the server's own default is closed registration)
export OWP_OPEN_REGISTRATION=${OWP_OPEN_REGISTRATION:-true}

cargo build --release --locked --bin owp
echo
echo "OWP Pool:    http://$OWP_HOST:$OWP_PORT   (API docs: http://$OWP_HOST:$OWP_PORT/openapi.json)"
echo "admin token: $OWP_ADMIN_TOKEN   (X-Admin-Token header; kept in .owp-admin-token)"
echo "database:    ${DATABASE_URL%%@*}@***"
echo "registration: OWP_OPEN_REGISTRATION=$OWP_OPEN_REGISTRATION (set false, or OWP_REGISTRATION_TOKEN, before opening this to a network)"
echo
exec target/release/owp serve
