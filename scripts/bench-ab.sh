#!/usr/bin/env bash
# A/B lifecycle benchmark of two release binaries, interleaved (A, B, A, B), a fresh
# database per run, so both meet the same machine drift (docs/BENCHMARKS.md).
# Usage: scripts/bench-ab.sh OLD_BINARY NEW_BINARY [ROUNDS]   (TASKS=20000 WORKERS=100)
#   MODE=heartbeat: `owp bench-heartbeat` instead (HB_WORKERS=50000 HB_DURATION=60s
#   LIFECYCLE_TASKS=0: the lifecycle beside the heartbeats when above 0)
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/postgres.sh
old=$1 new=$2 rounds=${3:-2}
ensure_postgres
ensure_database owp_ab
token=bench-admin-token-0001
url="postgres://owp:owp@$PGHOST_ADDR:$PGPORT_NUM/owp_ab"
run() {
  local label=$1 bin=$2 port
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  pg_admin -c "drop database if exists owp_ab with (force)" -c "create database owp_ab owner owp" >/dev/null
  OWP_ADMIN_TOKEN=$token OWP_OPEN_REGISTRATION=true DATABASE_URL=$url OWP_HOST=127.0.0.1 \
    OWP_PORT=$port RUST_LOG=warn OWP_DB_MAX_CONNECTIONS=20 "$bin" serve >/dev/null 2>&1 &
  local pid=$!
  for _ in $(seq 1 100); do curl -fsS "http://127.0.0.1:$port/readyz" >/dev/null 2>&1 && break; sleep 0.2; done
  echo "=== $label ($bin)"
  if [ "${MODE:-lifecycle}" = heartbeat ]; then
    "$bin" bench-heartbeat --url "http://127.0.0.1:$port" --admin-token $token --database-url "$url" \
      --workers "${HB_WORKERS:-50000}" --duration "${HB_DURATION:-60s}" \
      --lifecycle-tasks "${LIFECYCLE_TASKS:-0}"
  else
    "$bin" bench --url "http://127.0.0.1:$port" --admin-token $token --workers "${WORKERS:-100}" \
      --tasks "${TASKS:-20000}" --database-url "$url" --server-pid $pid
  fi
  kill $pid
  wait $pid 2>/dev/null || true
}
for _ in $(seq 1 "$rounds"); do
  run A "$old"
  run B "$new"
done
