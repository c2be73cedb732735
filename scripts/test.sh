#!/usr/bin/env bash
# Runs every test: unit tests and the black-box API, concurrency, scheduler and
# multi-process replica tests, against a real local PostgreSQL (installed or started
# when missing), some of them through a real PgBouncer (installed when missing). Each test gets its own fresh database.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/postgres.sh

ensure_postgres
ensure_database owp_test
ensure_pgbouncer
# sqlx::test recreates each test's database by name; ones left by runs under another role
# (a failed run as `postgres`, say) cannot be dropped by `owp`, so clear them first
for db in $(pg_admin -c "select datname from pg_database d join pg_roles r on r.oid = d.datdba
                          where datname like '\_sqlx\_test\_%' and rolname <> 'owp'"); do
  pg_admin -c "drop database if exists \"$db\" with (force)"
done
export DATABASE_URL=${DATABASE_URL:-postgres://owp:owp@$PGHOST_ADDR:$PGPORT_NUM/owp_test}
# a failing test's message, not a 30-frame backtrace, is what a log's tail should show
# (CI keeps only the tail); OWP_TEST_BACKTRACE=1 bash scripts/test.sh brings them back
export RUST_BACKTRACE=${OWP_TEST_BACKTRACE:-0}
cargo test --locked --all-targets "$@"
