#!/usr/bin/env bash
# Make sure the services the tests use are up: PostgreSQL on 127.0.0.1:5432 (role `postgres` may connect
# over TCP from 127.0.0.1 without a password) and Redis on 127.0.0.1:6379.  Starts what is not running
# (no systemd needed); waits up to 30 s for each and fails loudly otherwise.  Needs the Debian packages
# from `scripts/bootstrap.sh test`.
set -euo pipefail

PG_HOST=127.0.0.1
PG_PORT=5432
PG_URL="postgresql://postgres@$PG_HOST:$PG_PORT/postgres"
REDIS_HOST=127.0.0.1
REDIS_PORT=6379
WAIT_SECONDS=30
TRUST_LINE="host all postgres 127.0.0.1/32 trust"

die() { echo "services: $*" >&2; exit 1; }

wait_for() {  # $1: description; rest: command that succeeds once the service answers
  local what="$1" deadline=$((SECONDS + WAIT_SECONDS))
  shift
  until "$@" >/dev/null 2>&1; do
    ((SECONDS < deadline)) || die "$what did not answer within ${WAIT_SECONDS}s"
    sleep 0.5
  done
}

pg_ready() { pg_isready -q -h "$PG_HOST" -p "$PG_PORT" -t 2; }
pg_login() { PGCONNECT_TIMEOUT=5 psql -w -X -Atq "$PG_URL" -c 'select 1' </dev/null >/dev/null 2>&1; }
redis_ping() { [[ "$(redis-cli -h "$REDIS_HOST" -p "$REDIS_PORT" ping 2>/dev/null)" == PONG ]]; }

for tool in pg_isready psql pg_ctlcluster redis-cli redis-server; do
  command -v "$tool" >/dev/null 2>&1 || die "$tool not found; run: bash scripts/bootstrap.sh test"
done

pg_version() {  # newest configured cluster version, or the newest installed server if none
  local v
  v="$(ls /etc/postgresql 2>/dev/null | sort -V | tail -n 1)"
  [[ -n "$v" ]] || v="$(ls /usr/lib/postgresql 2>/dev/null | sort -V | tail -n 1)"
  [[ -n "$v" ]] || die "no PostgreSQL server installed; run: bash scripts/bootstrap.sh test"
  echo "$v"
}

notes=()

# --- PostgreSQL -----------------------------------------------------------------------------------
PG_VER=""
if ! pg_ready; then
  PG_VER="$(pg_version)"
  if [[ ! -d "/etc/postgresql/$PG_VER/main" ]]; then
    pg_createcluster -p "$PG_PORT" "$PG_VER" main >/dev/null || die "pg_createcluster $PG_VER main failed"
    notes+=("created cluster $PG_VER/main")
  fi
  port="$(sed -nE 's/^[[:space:]]*port[[:space:]]*=[[:space:]]*([0-9]+).*/\1/p' \
    "/etc/postgresql/$PG_VER/main/postgresql.conf" | tail -n 1)"
  [[ -z "$port" || "$port" == "$PG_PORT" ]] \
    || die "cluster $PG_VER/main is configured for port $port, the tests expect $PG_PORT"
  pg_ctlcluster --skip-systemctl-redirect "$PG_VER" main start \
    || pg_ready || die "pg_ctlcluster $PG_VER main start failed"
  notes+=("started PostgreSQL $PG_VER")
fi
wait_for "PostgreSQL on $PG_HOST:$PG_PORT" pg_ready

if ! pg_login; then
  [[ -n "$PG_VER" ]] || PG_VER="$(pg_version)"
  hba="/etc/postgresql/$PG_VER/main/pg_hba.conf"
  [[ -f "$hba" ]] || die "role postgres cannot log in over TCP and $hba does not exist"
  if ! grep -qxF "$TRUST_LINE" "$hba"; then
    # Only the postgres role, only from 127.0.0.1: the throw-away test databases are made through it.
    sed -i "1i $TRUST_LINE" "$hba"
    notes+=("allowed postgres@127.0.0.1 without password in $hba")
  fi
  pg_ctlcluster --skip-systemctl-redirect "$PG_VER" main reload || die "pg_ctlcluster $PG_VER main reload failed"
  wait_for "a password-less login as postgres on $PG_HOST:$PG_PORT" pg_login
fi

# --- Redis ----------------------------------------------------------------------------------------
if ! redis_ping; then
  redis-server --daemonize yes --bind "$REDIS_HOST" --port "$REDIS_PORT" --save "" --appendonly no >/dev/null \
    || die "redis-server failed to start"
  notes+=("started Redis")
fi
wait_for "Redis on $REDIS_HOST:$REDIS_PORT" redis_ping

if [[ ${#notes[@]} -eq 0 ]]; then
  echo "services: PostgreSQL $PG_HOST:$PG_PORT and Redis $REDIS_HOST:$REDIS_PORT already up"
else
  summary="$(printf '%s; ' "${notes[@]}")"
  echo "services: ${summary%; }; PostgreSQL $PG_HOST:$PG_PORT and Redis $REDIS_HOST:$REDIS_PORT up"
fi
