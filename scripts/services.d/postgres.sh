# shellcheck shell=bash
# PostgreSQL: Debian's server binaries, a throwaway cluster in the runtime folder. As root it
# runs as the `postgres` user, because the server refuses to run as root. Sourced by
# scripts/services.

pg_as() {
  if [[ $(id -u) == 0 ]]; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

pg_pid() {
  local f=$SVC/pg/data/postmaster.pid pid
  [[ -f $f ]] || return 1
  pid=$(head -n1 "$f")
  alive "$pid" || return 1
  echo "$pid"
}

start_postgres() {
  if pg_pid >/dev/null; then return; fi
  [[ -x $PG_BIN/postgres ]] || apt_install "postgresql-$PG_MAJOR"
  local d=$SVC/pg
  mkdir -p "$d/run" "$LOGS"
  touch "$LOGS/postgres.log"
  if [[ $(id -u) == 0 ]]; then chown postgres "$d" "$d/run" "$LOGS/postgres.log"; fi
  if [[ ! -f $d/data/PG_VERSION ]]; then
    say "initialising a PostgreSQL $PG_MAJOR cluster in $d/data"
    pg_as "$PG_BIN/initdb" -D "$d/data" -A trust -U postgres -E UTF8 --no-sync >>"$LOGS/postgres.log" 2>&1 ||
      fail_service postgres "$LOGS/postgres.log" "initdb failed"
  fi
  say "starting PostgreSQL $PG_MAJOR on 127.0.0.1:$PG_PORT"
  # -F: no fsync, throwaway data. pg_ctl -w waits until the server accepts connections.
  pg_as "$PG_BIN/pg_ctl" -D "$d/data" -o "-h 127.0.0.1 -p $PG_PORT -k $d/run -F" \
    -l "$LOGS/postgres.log" -w -t "$PG_READY_TIMEOUT" start >"$LOGS/pg_ctl.log" 2>&1 9>&- ||
    fail_service postgres "$LOGS/postgres.log" "pg_ctl start failed (its output: $LOGS/pg_ctl.log)"
}

pg_psql() { "$PG_BIN/psql" -h 127.0.0.1 -p "$PG_PORT" -U postgres -d postgres -v ON_ERROR_STOP=1 -tAq "$@"; }

wait_postgres() {
  local pid
  pid=$(pg_pid) || fail_service postgres "$LOGS/postgres.log" "the server is not running"
  wait_until postgres "$LOGS/postgres.log" "$PG_READY_TIMEOUT" "$pid" "$PG_BIN/pg_isready" -h 127.0.0.1 -p "$PG_PORT" -U postgres
  if [[ -z $(pg_psql -c "SELECT 1 FROM pg_database WHERE datname = 'reflex'") ]]; then
    pg_psql -c 'CREATE DATABASE reflex' >/dev/null || fail_service postgres "$LOGS/postgres.log" "CREATE DATABASE reflex failed"
  fi
}

stop_postgres() {
  local pid
  if pid=$(pg_pid); then
    say "stopping postgres (pid $pid)"
    pg_as "$PG_BIN/pg_ctl" -D "$SVC/pg/data" -m fast -w -t "$STOP_TIMEOUT" stop >/dev/null 2>&1 || stop_pid postgres "$pid"
  fi
}

status_postgres() {
  local pid
  if pid=$(pg_pid); then
    status_row postgres running "$pid" "127.0.0.1:$PG_PORT" "$("$PG_BIN/postgres" --version 2>/dev/null)"
  else
    status_row postgres stopped - "127.0.0.1:$PG_PORT" "PostgreSQL $PG_MAJOR"
    return 3
  fi
}
