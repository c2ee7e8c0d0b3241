#!/bin/sh
# A throwaway PostgreSQL for tests, on 127.0.0.1 only.
#
#   tests/pg-tmp.sh start DIR   initdb into DIR/data (trust auth, superuser
#                               "meerkat"), start on a free port with the
#                               socket in DIR, create database "meerkat";
#                               prints the port on stdout.
#   tests/pg-tmp.sh start DIR PID   the same, and stop it by itself when
#                               process PID ends (a test that crashes
#                               leaves no server behind).
#   tests/pg-tmp.sh stop DIR    stop it (DIR itself is the caller's to remove).
#
# As root the server runs as the "postgres" user (PostgreSQL refuses root),
# and DIR is handed to that user. Needs /usr/lib/postgresql/*/bin.
set -eu

usage() {
    echo "usage: $0 start DIR [PID] | stop DIR" >&2
    exit 2
}
[ $# -eq 2 ] || [ $# -eq 3 ] || usage
cmd=$1
dir=$2
owner_pid=${3:-}

bindir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
if [ -z "$bindir" ] || [ ! -x "$bindir/pg_ctl" ]; then
    echo "$0: no PostgreSQL binaries under /usr/lib/postgresql" >&2
    exit 1
fi

# Runs a command as the user that owns the cluster.
as_owner() {
    if [ "$(id -u)" -eq 0 ]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

case $cmd in
start)
    mkdir -p "$dir"
    if [ "$(id -u)" -eq 0 ]; then
        chown postgres: "$dir"
    fi
    as_owner "$bindir/initdb" -D "$dir/data" -A trust -U meerkat --no-sync -E UTF8 \
        --locale=C >"$dir/initdb.log" 2>&1 || {
        cat "$dir/initdb.log" >&2
        exit 1
    }
    tries=0
    while :; do
        # A port from the ephemeral range the kernel is not using.
        port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])' 2>/dev/null ||
            echo $((20000 + $$ % 20000 + tries)))
        if as_owner "$bindir/pg_ctl" start -w -t 60 -D "$dir/data" -l "$dir/server.log" \
            -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off" \
            >/dev/null 2>&1; then
            break
        fi
        tries=$((tries + 1))
        if [ $tries -ge 5 ]; then
            echo "$0: PostgreSQL did not start:" >&2
            cat "$dir/server.log" >&2 || true
            exit 1
        fi
    done
    as_owner "$bindir/createdb" -h 127.0.0.1 -p "$port" -U meerkat meerkat >&2
    if [ -n "$owner_pid" ]; then
        # Detached from our stdout, so the caller's read of it ends now.
        (
            while kill -0 "$owner_pid" 2>/dev/null && [ -d "$dir/data" ]; do
                sleep 1
            done
            if [ -d "$dir/data" ]; then
                as_owner "$bindir/pg_ctl" stop -w -m immediate -D "$dir/data" || true
            fi
        ) </dev/null >/dev/null 2>&1 &
    fi
    echo "$port"
    ;;
stop)
    if [ -d "$dir/data" ]; then
        as_owner "$bindir/pg_ctl" stop -w -m fast -D "$dir/data" >/dev/null 2>&1 || true
    fi
    ;;
*)
    usage
    ;;
esac
