#!/usr/bin/env bash
# Shows the pool at work on this machine in one command: a server on a local PostgreSQL
# (installed or started when missing; database owp_demo), three repos with review budgets,
# a few hundred tasks, simulated workers and a simulated maintainer, live progress, then a
# summary and the invariant checker's verdict. Extra arguments go to `owp demo`
# (e.g. --tasks 1000, --fast).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/postgres.sh

ensure_postgres
ensure_database owp_demo
cargo build --release --locked --bin owp
exec target/release/owp demo --database-url "postgres://owp:owp@$PGHOST_ADDR:$PGPORT_NUM/owp_demo" "$@"
