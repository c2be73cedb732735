# Sourced by the scripts: make a local PostgreSQL reachable on 127.0.0.1:5432 (Debian/Ubuntu),
# installing or starting it when it is missing, and create the `owp` role.
# PostgreSQL refuses to run as root; the packaged cluster runs as the postgres user.

PGHOST_ADDR=${PGHOST_ADDR:-127.0.0.1}
PGPORT_NUM=${PGPORT_NUM:-5432}

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
as_postgres() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else sudo -u postgres "$@"; fi; }

pg_up() { pg_isready -q -h "$PGHOST_ADDR" -p "$PGPORT_NUM" 2>/dev/null; }

ensure_postgres() {
  if pg_up; then return 0; fi
  if ! ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1; then
    echo "==> installing PostgreSQL (apt-get)" >&2
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
  fi
  local version
  version=$(ls /usr/lib/postgresql | sort -V | tail -n 1)
  if ! ls "/etc/postgresql/$version/main" >/dev/null 2>&1; then
    echo "==> creating PostgreSQL $version cluster" >&2
    as_root pg_createcluster "$version" main >/dev/null
  fi
  echo "==> starting PostgreSQL $version" >&2
  as_root pg_ctlcluster --skip-systemctl-redirect "$version" main start 2>/dev/null \
    || as_root pg_ctlcluster "$version" main start
  for _ in $(seq 1 60); do pg_up && return 0; sleep 0.5; done
  echo "PostgreSQL did not come up on $PGHOST_ADDR:$PGPORT_NUM" >&2
  return 1
}

# PgBouncer, for the tests that run the pool through a transaction-mode pooler; each test
# starts its own (tests/api/support/pgbouncer.rs), so the packaged service stays stopped.
ensure_pgbouncer() {
  if [ -x /usr/sbin/pgbouncer ] || command -v pgbouncer >/dev/null 2>&1; then return 0; fi
  echo "==> installing PgBouncer (apt-get)" >&2
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq pgbouncer >/dev/null
  # the package enables its own service; ours are started by the tests on free ports
  as_root systemctl disable --now pgbouncer >/dev/null 2>&1 || true
}

# psql as the database superuser: over TCP where trust auth allows it, else via the socket.
# The database is $PGADMIN_DB (default postgres).
pg_admin() {
  local db=${PGADMIN_DB:-postgres}
  if psql -h "$PGHOST_ADDR" -p "$PGPORT_NUM" -U postgres -d "$db" -Atqc 'select 1' >/dev/null 2>&1; then
    psql -h "$PGHOST_ADDR" -p "$PGPORT_NUM" -U postgres -d "$db" -v ON_ERROR_STOP=1 -Atq "$@"
  else
    as_postgres psql -p "$PGPORT_NUM" -d "$db" -v ON_ERROR_STOP=1 -Atq "$@"
  fi
}

# The `owp` login role (password `owp`, for local use only) and a database it owns.
ensure_database() {
  local db=$1
  pg_admin -c "do \$\$ begin
      if not exists (select from pg_roles where rolname = 'owp') then
        create role owp login createdb password 'owp';
      end if; end \$\$;"
  if [ -z "$(pg_admin -c "select 1 from pg_database where datname = '$db'")" ]; then
    pg_admin -c "create database \"$db\" owner owp"
  fi
}
