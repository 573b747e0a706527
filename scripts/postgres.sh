#!/usr/bin/env bash
# A private PostgreSQL server for the directory's PostgreSQL tests
# (tests/directory_postgres.rs), from Debian's packages; .ci/run uses it.
#
# Usage:
#   postgres.sh install      apt-get Debian's postgresql when missing (root)
#   postgres.sh start DIR    a new cluster in DIR (an empty directory whose parents the
#                            `postgres` user can enter: `mktemp -d` itself), started on a free
#                            loopback port with its socket in DIR, a role iicp_ci (LOGIN
#                            CREATEDB, a random password) and a database iicp_ci it owns;
#                            prints postgres://iicp_ci:PASSWORD@127.0.0.1:PORT/iicp_ci
#   postgres.sh pause DIR    stop that server, keeping DIR (the database "lost")
#   postgres.sh resume DIR   start it again, on the same port
#   postgres.sh stop DIR     stop that server and remove DIR (no error when it is gone)
#
# As root the server runs as the `postgres` user the package creates (initdb refuses
# root); otherwise as the caller. It is not the package's own cluster (which is left as
# the package set it up): the data, the socket and the log stay in DIR. fsync is off:
# the data is thrown away after the run.
set -euo pipefail

cmd=${1:-}

pg_bin() {
  local bin
  bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
  [ -n "$bin" ] && [ -x "$bin/initdb" ] || {
    echo "postgres.sh: no PostgreSQL server found (run: postgres.sh install)" >&2
    exit 1
  }
  echo "$bin"
}

# Runs a command as the cluster's owner.
as_owner() {
  if [ "$(id -u)" = 0 ]; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

# Starts the cluster in DIR on the port recorded in DIR/port.
pg_start() {
  local bin=$1 dir=$2
  as_owner "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
    -o "-p $(cat "$dir/port") -k $dir -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200" \
    start >/dev/null || {
    cat "$dir/server.log" >&2
    exit 1
  }
}

case "$cmd" in
  install)
    if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
      [ "$(id -u)" = 0 ] || { echo "postgres.sh install: needs root" >&2; exit 2; }
      echo "postgres.sh: installing postgresql" >&2
      DEBIAN_FRONTEND=noninteractive apt-get install -y -q postgresql >/dev/null 2>&1 || {
        apt-get update -q >/dev/null
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q postgresql >/dev/null
      }
    fi
    ;;
  start)
    dir=${2:?usage: postgres.sh start DIR}
    bin=$(pg_bin)
    mkdir -p "$dir"
    if [ "$(id -u)" = 0 ]; then chown postgres: "$dir"; fi
    chmod 700 "$dir"
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    password=$(python3 -c 'import secrets; print(secrets.token_hex(16))')
    as_owner "$bin/initdb" -D "$dir/data" -U postgres -E UTF8 --auth-local=trust \
      --auth-host=scram-sha-256 >"$dir/initdb.log" 2>&1 || {
      cat "$dir/initdb.log" >&2
      exit 1
    }
    echo "$port" >"$dir/port"
    pg_start "$bin" "$dir"
    as_owner "$bin/psql" -X -q -h "$dir" -p "$port" -U postgres -d postgres -v ON_ERROR_STOP=1 \
      -c "CREATE ROLE iicp_ci LOGIN CREATEDB PASSWORD '$password'" \
      -c "CREATE DATABASE iicp_ci OWNER iicp_ci" >/dev/null
    echo "postgres://iicp_ci:$password@127.0.0.1:$port/iicp_ci"
    ;;
  pause)
    dir=${2:?usage: postgres.sh pause DIR}
    as_owner "$(pg_bin)/pg_ctl" -D "$dir/data" -m fast -w -t 60 stop >/dev/null
    ;;
  resume)
    dir=${2:?usage: postgres.sh resume DIR}
    pg_start "$(pg_bin)" "$dir"
    ;;
  stop)
    dir=${2:?usage: postgres.sh stop DIR}
    if [ -d "$dir/data" ]; then
      as_owner "$(pg_bin)/pg_ctl" -D "$dir/data" -m immediate -w stop >/dev/null 2>&1 || true
    fi
    rm -rf "$dir"
    ;;
  *)
    echo "usage: postgres.sh install | start DIR | pause DIR | resume DIR | stop DIR" >&2
    exit 2
    ;;
esac
