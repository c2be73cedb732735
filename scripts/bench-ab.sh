#!/usr/bin/env bash
# A/B lifecycle benchmark of two release binaries, interleaved (A, B, A, B), a fresh
# database per run, so both meet the same machine drift (docs/BENCHMARKS.md).
# Usage: scripts/bench-ab.sh OLD_BINARY NEW_BINARY [ROUNDS]   (TASKS=20000 WORKERS=100)
#   the lifecycle benchmark is NEW_BINARY's (LOADER= another), BENCH_ARGS= more of its flags
#   (e.g. "--open-loop 20s" or "--rounds 5")
#   MODE=heartbeat: `owp bench-heartbeat` instead (HB_WORKERS=50000 HB_DURATION=60s
#   LIFECYCLE_TASKS=0: the lifecycle beside the heartbeats when above 0)
#   POOLER_A / POOLER_B: `none` (default), `rules` (OWP_DB_POOLER=transaction straight to
#   PostgreSQL: the pooled mode's rules without the hop) or `pgbouncer` (through a
#   PgBouncer in transaction mode started for the run, PGBOUNCER_POOL=20 server sessions)
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/postgres.sh
old=$1 new=$2 rounds=${3:-2}
ensure_postgres
ensure_database owp_ab
token=bench-admin-token-0001
url="postgres://owp:owp@$PGHOST_ADDR:$PGPORT_NUM/owp_ab"
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
bouncer_pid=
trap '[ -n "$bouncer_pid" ] && kill "$bouncer_pid" 2>/dev/null || true' EXIT
# starts PgBouncer in transaction mode in front of $url; sets bouncer_pid and pooled_url
start_pgbouncer() {
  ensure_pgbouncer
  local dir bport
  dir=$(mktemp -d) bport=$(free_port)
  printf '"owp" "owp"\n' > "$dir/users.txt"
  cat > "$dir/pgbouncer.ini" <<INI
[databases]
* = host=$PGHOST_ADDR port=$PGPORT_NUM
[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $bport
unix_socket_dir =
auth_type = trust
auth_file = $dir/users.txt
pool_mode = transaction
default_pool_size = ${PGBOUNCER_POOL:-20}
max_client_conn = 1000
ignore_startup_parameters = extra_float_digits
INI
  chmod -R a+rX "$dir"
  if [ "$(id -u)" = 0 ]; then /usr/sbin/pgbouncer -q -u postgres "$dir/pgbouncer.ini" & else pgbouncer -q "$dir/pgbouncer.ini" & fi
  bouncer_pid=$!
  for _ in $(seq 1 50); do (exec 3<>/dev/tcp/127.0.0.1/$bport) 2>/dev/null && break; sleep 0.1; done
  pooled_url="postgres://owp:owp@127.0.0.1:$bport/owp_ab"
}
run() {
  local label=$1 bin=$2 pooler=${3:-none} port
  port=$(free_port)
  pg_admin -c "drop database if exists owp_ab with (force)" -c "create database owp_ab owner owp" >/dev/null
  local db_url=$url mode=none
  case $pooler in
    rules) mode=transaction ;;
    pgbouncer) start_pgbouncer; db_url=$pooled_url mode=transaction ;;
  esac
  OWP_ADMIN_TOKEN=$token OWP_OPEN_REGISTRATION=true DATABASE_URL=$db_url OWP_DB_POOLER=$mode \
    OWP_LEADER_DATABASE_URL=$url OWP_HOST=127.0.0.1 \
    OWP_PORT=$port RUST_LOG=warn OWP_DB_MAX_CONNECTIONS=20 "$bin" serve >/dev/null 2>&1 &
  local pid=$!
  for _ in $(seq 1 100); do curl -fsS "http://127.0.0.1:$port/readyz" >/dev/null 2>&1 && break; sleep 0.2; done
  echo "=== $label ($bin, pooler: $pooler)"
  if [ "${MODE:-lifecycle}" = heartbeat ]; then
    "$bin" bench-heartbeat --url "http://127.0.0.1:$port" --admin-token $token --database-url "$url" \
      --workers "${HB_WORKERS:-50000}" --duration "${HB_DURATION:-60s}" \
      --lifecycle-tasks "${LIFECYCLE_TASKS:-0}"
  else
    # one loader for both sides (the new binary's benchmark), so only the server differs
    # shellcheck disable=SC2086 # BENCH_ARGS is a list of flags
    "${LOADER:-$new}" bench --url "http://127.0.0.1:$port" --admin-token $token --workers "${WORKERS:-100}" \
      --tasks "${TASKS:-20000}" --database-url "$url" --server-pid $pid ${BENCH_ARGS:-}
  fi
  kill $pid
  wait $pid 2>/dev/null || true
  if [ -n "$bouncer_pid" ]; then kill "$bouncer_pid"; wait "$bouncer_pid" 2>/dev/null || true; bouncer_pid=; fi
}
for _ in $(seq 1 "$rounds"); do
  run A "$old" "${POOLER_A:-none}"
  run B "$new" "${POOLER_B:-none}"
done
