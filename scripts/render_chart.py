"""Lints and renders helm/owp-pool offline with the Helm v4 SDK (helm-python-sdk).

Writes one directory of manifests per configuration under OUT_DIR, and fails on any lint
warning or error, on a render error, or when a guard that must fail does not.
Usage: render_chart.py CHART_DIR OUT_DIR
"""

import pathlib
import sys

import helm_python

CREDS = {"secret": {"databaseUrl": "postgres://owp:pw@db:5432/owp", "adminToken": "t0ken"}}
CONFIGS = {
    # defaults plus the credentials the chart requires
    "defaults": CREDS,
    # credentials from an existing Secret instead
    "existing-secret": {"existingSecret": "owp-credentials"},
    # every optional toggle on
    "all-on": {
        **CREDS,
        "secret": {**CREDS["secret"], "leaderDatabaseUrl": "postgres://owp:pw@db-direct:5432/owp",
                   "registrationToken": "reg"},
        "autoscaling": {"enabled": True},
        "database": {"maxConnections": 300},
        "podDisruptionBudget": {"enabled": True},
        "metrics": {"serviceMonitor": {"enabled": True, "labels": {"release": "prom"}}},
        "config": {"trustedProxies": "10.0.0.0/8"},
        "networkPolicy": {"enabled": True, "ingressFrom": [{"podSelector": {"matchLabels": {"role": "lb"}}}],
                          "metricsFrom": [{"podSelector": {"matchLabels": {"app": "prometheus"}}}]},
        "imagePullSecrets": [{"name": "regcred"}],
        "ingress": {"enabled": True, "className": "nginx",
                    "tls": [{"hosts": ["pool.example.org"], "secretName": "pool-tls"}]},
        "nodeSelector": {"kubernetes.io/os": "linux"},
        "podAnnotations": {"example.com/team": "pool"},
    },
    # autoscaling on with the default budget: the pool is sized to fit
    "autoscaling-defaults": {**CREDS, "autoscaling": {"enabled": True}},
    # the chart's PgBouncer in front of PostgreSQL, autoscaling on, default budget
    "pgbouncer": {**CREDS, "pgbouncer": {"enabled": True}, "autoscaling": {"enabled": True},
                  "networkPolicy": {"enabled": True}},
    # every optional toggle off
    "all-off": {
        **CREDS,
        "migrations": {"enabled": False},
        "podDisruptionBudget": {"enabled": False},
        "topologySpread": {"enabled": False},
        "serviceAccount": {"create": False},
    },
}


def main() -> int:
    chart_dir, out_dir = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
    failed = False
    chart = helm_python.Chart.load(str(chart_dir))
    for name, values in CONFIGS.items():
        report = helm_python.lint(str(chart_dir), values, strict=True, namespace="pool")
        for m in report["messages"]:
            if m["severity"] >= 2:
                print(f"lint [{name}] {m['path']}: {m['error']}")
                failed = True
        rendered = chart.render(values, name="owp", namespace="pool", is_install=True)
        target = out_dir / name
        target.mkdir(parents=True, exist_ok=True)
        for path, text in rendered.items():
            if path.endswith(".yaml") and text.strip():
                (target / pathlib.Path(path).name).write_text(text)
        print(f"rendered [{name}]: {sorted(p.name for p in target.iterdir())}")
    # the chart must refuse to render without credentials
    try:
        chart.render({}, name="owp", namespace="pool", is_install=True)
        print("rendering without credentials should fail")
        failed = True
    except helm_python.HelmError:
        pass
    # ... and to render a deployment that could exhaust the database's connections
    over_budget = {**CREDS, "config": {"dbMaxConnections": 50}, "database": {"maxConnections": 100}}
    try:
        chart.render(over_budget, name="owp", namespace="pool", is_install=True)
        print("rendering over the connection budget should fail")
        failed = True
    except helm_python.HelmError as e:
        if "connection budget" not in str(e):
            print(f"over budget failed for another reason: {e}")
            failed = True
    # with PgBouncer, the replicas' DATABASE_URL is the pooler's, and the migrator's is direct
    pooled = chart.render(CONFIGS["pgbouncer"], name="owp", namespace="pool", is_install=True)
    secret = next(t for p, t in pooled.items() if p.endswith("secret.yaml"))
    job = next(t for p, t in pooled.items() if p.endswith("migration-job.yaml"))
    deployment = next(t for p, t in pooled.items() if p.endswith("/deployment.yaml"))
    if ('DATABASE_URL: "postgres://owp:pw@owp-owp-pool-pgbouncer:6432/owp"' not in secret
            or "key: OWP_LEADER_DATABASE_URL" not in job
            or 'value: "transaction"' not in deployment):
        print("with pgbouncer, DATABASE_URL should be PgBouncer's, the migrator's direct, "
              "and OWP_DB_POOLER transaction")
        failed = True
    # ... and PgBouncer over the budget, or without credentials it can read
    for bad, why in [
        ({**CREDS, "pgbouncer": {"enabled": True, "poolSize": 60}}, "connection budget"),
        ({"existingSecret": "s", "pgbouncer": {"enabled": True}}, "existingSecret"),
    ]:
        try:
            chart.render(bad, name="owp", namespace="pool", is_install=True)
            print(f"rendering {bad} should fail")
            failed = True
        except helm_python.HelmError as e:
            if why not in str(e):
                print(f"{bad} failed for another reason: {e}")
                failed = True
    # ... and to put an ingress in front without believing its X-Forwarded-For
    blind_ingress = {**CREDS, "ingress": {"enabled": True}}
    try:
        chart.render(blind_ingress, name="owp", namespace="pool", is_install=True)
        print("rendering an ingress without trustedProxies should fail")
        failed = True
    except helm_python.HelmError as e:
        if "trustedProxies" not in str(e):
            print(f"ingress without trustedProxies failed for another reason: {e}")
            failed = True
    opted_out = {**CREDS, "ingress": {"enabled": True, "allowUntrustedClientAddresses": True}}
    chart.render(opted_out, name="owp", namespace="pool", is_install=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
