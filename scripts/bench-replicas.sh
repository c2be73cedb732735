#!/usr/bin/env bash
# One replica against three, interleaved, with the database's CPU kept apart from the
# replicas' (issue 24, P7): PostgreSQL (the postmaster and every backend, present and
# forked later) pinned to core 0 with `taskset`, the replicas and the loader to core 1, so
# the replicas compete with each other and the loader, never with the database.
# Usage: scripts/bench-replicas.sh BINARY [ROUNDS]   (TASKS=10000 WORKERS=100)
#   MODE=heartbeat: one replica under `owp bench-heartbeat` (HB_WORKERS=20000 HB_DURATION=30s)
#   MODE=idle: one replica under `owp bench-idle` (IDLE_WORKERS=10000 IDLE_FOR=30s)
# Each run prints the CPU seconds each side spent (core 0's busy time from /proc/stat for
# the database, the replicas' own utime + stime), setup included: the capacity model's
# inputs (docs/operations.md). The lifecycle runs without the raw-SQL ceiling and the
# invariant checker (scripts/bench-ab.sh runs both), whose work would count as the
# database's.
# Restores PostgreSQL's affinity to every core on exit. Linux, as root or PostgreSQL's owner.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/postgres.sh
bin=$1 rounds=${2:-2}
ensure_postgres
ensure_database owp_ab
token=bench-admin-token-0001
url="postgres://owp:owp@$PGHOST_ADDR:$PGPORT_NUM/owp_ab"
all_cores="0-$(($(nproc) - 1))"
hz=$(getconf CLK_TCK)
pids=()

pin_postgres() {
  for p in $(pgrep -x postgres || true); do taskset -a -p -c "$1" "$p" >/dev/null 2>&1 || true; done
}
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  pin_postgres "$all_cores"
}
trap cleanup EXIT
# busy jiffies of core 0 (user nice system irq softirq steal)
core0_busy() { awk '$1 == "cpu0" { print $2 + $3 + $4 + $7 + $8 + $9 }' /proc/stat; }
# utime + stime jiffies of the given processes
procs_cpu() { local t=0 p; for p in "$@"; do t=$((t + $(awk '{ print $14 + $15 }' "/proc/$p/stat"))); done; echo $t; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

run() {
  local n=$1 urls="" ports=() port
  pg_admin -c "drop database if exists owp_ab with (force)" -c "create database owp_ab owner owp" >/dev/null
  pin_postgres 0 # backends forked later inherit it from the postmaster
  pids=()
  for i in $(seq 1 "$n"); do
    port=$(free_port)
    OWP_ADMIN_TOKEN=$token OWP_OPEN_REGISTRATION=true OWP_IP_RATE=1000000 OWP_IP_BURST=1000000 \
      DATABASE_URL=$url OWP_HOST=127.0.0.1 \
      OWP_PORT=$port OWP_REPLICA_ID="r$i" RUST_LOG=warn OWP_DB_MAX_CONNECTIONS=20 \
      taskset -c 1 "$bin" serve >/dev/null 2>&1 &
    pids+=($!)
    ports+=("$port")
    urls="${urls:+$urls,}http://127.0.0.1:$port"
  done
  for port in "${ports[@]}"; do
    for _ in $(seq 1 100); do curl -fsS "http://127.0.0.1:$port/readyz" >/dev/null 2>&1 && break; sleep 0.2; done
  done
  echo "=== ${MODE:-lifecycle}: $n replica(s), PostgreSQL on core 0, replicas and loader on core 1"
  local db0 app0 t0 db1 app1 t1
  db0=$(core0_busy) app0=$(procs_cpu "${pids[@]}") t0=$(date +%s.%N)
  case ${MODE:-lifecycle} in
    heartbeat)
      taskset -c 1 "$bin" bench-heartbeat --url "$urls" --admin-token $token --database-url "$url" \
        --workers "${HB_WORKERS:-20000}" --duration "${HB_DURATION:-30s}" ;;
    idle)
      taskset -c 1 "$bin" bench-idle --url "$urls" --admin-token $token --database-url "$url" \
        --workers "${IDLE_WORKERS:-10000}" --idle "${IDLE_FOR:-30s}" --server-pid "${pids[0]}" ;;
    *)
      # no --database-url: its raw-SQL ceiling and checker would count as database CPU
      taskset -c 1 "$bin" bench --url "$urls" --admin-token $token --workers "${WORKERS:-100}" \
        --tasks "${TASKS:-10000}" ;;
  esac
  db1=$(core0_busy) app1=$(procs_cpu "${pids[@]}") t1=$(date +%s.%N)
  python3 -c 'import sys; d, a, hz, t0, t1 = (float(x) for x in sys.argv[1:]); print(f"cpu: database {d / hz:.1f} s, replicas {a / hz:.1f} s, over {t1 - t0:.1f} s of wall time")' \
    "$((db1 - db0))" "$((app1 - app0))" "$hz" "$t0" "$t1"
  for p in "${pids[@]}"; do kill "$p"; wait "$p" 2>/dev/null || true; done
  pids=()
}

ulimit -n 65536 2>/dev/null || true # a socket per idle worker, on both sides
pin_postgres 0
for _ in $(seq 1 "$rounds"); do
  run 1
  if [ "${MODE:-lifecycle}" = lifecycle ]; then run 3; fi
done
