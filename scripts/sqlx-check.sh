#!/usr/bin/env bash
# Checks every compile-time query against a freshly migrated schema and that the committed
# .sqlx/ metadata (used by offline builds) matches it. With --write, refreshes .sqlx/.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/postgres.sh

ensure_postgres
pg_admin -c 'drop database if exists owp_sqlx_check' -c 'create database owp_sqlx_check owner owp' 2>/dev/null \
  || { ensure_database owp_sqlx_check; }
url="postgres://owp:owp@$PGHOST_ADDR:$PGPORT_NUM/owp_sqlx_check"
# plain psql, not `owp migrate`: the binary cannot be built offline while .sqlx/ is stale
for f in migrations/*.sql; do
  PGADMIN_DB=owp_sqlx_check pg_admin -f "$f" >/dev/null
done
PGADMIN_DB=owp_sqlx_check pg_admin -c 'grant all on all tables in schema public to owp' >/dev/null

out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
# touching the sources makes rustc expand every query macro again, online this time
touch src/lib.rs tests/api/main.rs
SQLX_OFFLINE=false SQLX_OFFLINE_DIR="$out" DATABASE_URL=$url cargo check --locked --quiet --all-targets
if [ "${1:-}" = "--write" ]; then
  rm -rf .sqlx && mkdir .sqlx && cp "$out"/*.json .sqlx/
  echo ".sqlx/ refreshed ($(ls .sqlx | wc -l) queries)"
elif ! diff -r -q .sqlx "$out" >/dev/null; then
  diff -r -q .sqlx "$out" || true
  echo ".sqlx/ is stale: run scripts/sqlx-check.sh --write and commit it" >&2
  exit 1
else
  echo ".sqlx/ is fresh ($(ls .sqlx | wc -l) queries, all checked against the migrated schema)"
fi
