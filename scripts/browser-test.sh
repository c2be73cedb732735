#!/usr/bin/env bash
# The dashboard in a real headless Chromium: installs Debian's chromium and playwright-core
# (npm) when missing, starts two replicas of this build on a fresh database, and runs
# tests/browser/dashboard.mjs against them. Screenshots go to target/screenshots/.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/postgres.sh

ensure_postgres
if ! command -v chromium >/dev/null 2>&1; then
  echo "==> installing chromium (apt-get)" >&2
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi
TOOLS=${OWP_BROWSER_TOOLS:-$HOME/.cache/owp-pool/browser}
if [ ! -d "$TOOLS/node_modules/playwright-core" ]; then
  echo "==> installing playwright-core (npm)" >&2
  mkdir -p "$TOOLS"
  npm install --prefix "$TOOLS" --no-audit --no-fund --silent playwright-core@1.64 >/dev/null
fi

pg_admin -c 'drop database if exists owp_browser with (force)' -c 'create database owp_browser owner owp' >/dev/null
cargo build --locked --quiet --bin owp
mkdir -p target/browser target/screenshots
url="postgres://owp:owp@$PGHOST_ADDR:$PGPORT_NUM/owp_browser"
token=$(head -c 24 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n')
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true' EXIT
bases=()
for name in a b; do
  port=$(free_port)
  DATABASE_URL=$url OWP_ADMIN_TOKEN=$token OWP_HOST=127.0.0.1 OWP_PORT=$port OWP_REPLICA_ID=replica-$name \
    OWP_OPEN_REGISTRATION=true OWP_LOG_FORMAT=pretty RUST_LOG=warn \
    target/debug/owp serve > "target/browser/replica-$name.log" 2>&1 &
  pids+=($!)
  bases+=("http://127.0.0.1:$port")
done
for base in "${bases[@]}"; do
  for _ in $(seq 1 100); do curl -fsS "$base/readyz" >/dev/null 2>&1 && break; sleep 0.2; done
  curl -fsS "$base/readyz" >/dev/null || { cat target/browser/replica-*.log >&2; exit 1; }
done
OWP_A=${bases[0]} OWP_B=${bases[1]} OWP_ADMIN_TOKEN=$token OWP_SCREENSHOTS=target/screenshots \
  PW_TOOLS="$TOOLS" node tests/browser/dashboard.mjs
