#!/usr/bin/env bash
# The JavaScript clients against a live release server: installs their npm packages (from
# the lock files) when missing, starts a server of this build on a fresh database, checks
# that the committed generated types are what the served /openapi.json generates, then runs
# the TypeScript SDK's tests (node's test runner).
# OWP_BIN=path: a server binary already built (default: cargo build --release).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/postgres.sh

command -v node >/dev/null || { echo "clients-test: needs Node.js 20.3 or newer (and npm)" >&2; exit 1; }
for dir in clients/typescript clients/obsidian; do
  if [ ! -d "$dir/node_modules" ] || [ "$dir/package-lock.json" -nt "$dir/node_modules/.package-lock.json" ]; then
    echo "==> npm ci in $dir" >&2
    (cd "$dir" && npm ci --no-audit --no-fund --silent)
  fi
done

ensure_postgres
pg_admin -c 'drop database if exists owp_clients with (force)' -c 'create database owp_clients owner owp' >/dev/null
bin=${OWP_BIN:-}
if [ -z "$bin" ]; then
  cargo build --locked --quiet --release --bin owp
  bin=target/release/owp
fi
mkdir -p target/clients
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
token=$(head -c 24 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n')
# a small per-worker rate, so the SDK's 429 test meets the limit; the address limits are
# lifted, since every test client registers from one address
DATABASE_URL="postgres://owp:owp@$PGHOST_ADDR:$PGPORT_NUM/owp_clients" OWP_ADMIN_TOKEN=$token \
  OWP_OPEN_REGISTRATION=true OWP_WORKER_RATE=20 OWP_WORKER_BURST=20 \
  OWP_IP_RATE=100000 OWP_IP_BURST=100000 OWP_HOST=127.0.0.1 OWP_PORT=$port RUST_LOG=warn \
  "$bin" serve > target/clients/server.log 2>&1 &
server_pid=$!
trap 'kill $server_pid 2>/dev/null || true' EXIT
u=http://127.0.0.1:$port
for _ in $(seq 1 100); do curl -sf "$u/readyz" >/dev/null && break; sleep 0.1; done
curl -sf "$u/readyz" >/dev/null || { cat target/clients/server.log >&2; exit 1; }

# the generated types must be what the served document generates
curl -sf "$u/openapi.json" > target/clients/openapi.json
(cd clients/typescript && npx openapi-typescript ../../target/clients/openapi.json -o ../../target/clients/schema.d.ts >/dev/null)
if ! diff -q clients/typescript/src/schema.d.ts target/clients/schema.d.ts >/dev/null; then
  diff -u clients/typescript/src/schema.d.ts target/clients/schema.d.ts | head -40 >&2
  echo "clients/typescript/src/schema.d.ts is stale: run (cd clients/typescript && npm run generate) against a server of this build (OWP_OPENAPI=URL or file) and commit it" >&2
  exit 1
fi

export OWP_URL=$u OWP_ADMIN_TOKEN=$token
(cd clients/typescript && npm test --silent)
(cd clients/obsidian && npm run build --silent && npm test --silent)
