#!/bin/bash
# `make bench`: the standard scenarios against a freshly started meerkatd
# (temporary config and database, plain TCP, SASL PLAIN) and against the
# bare relay, then a table. Not part of `make check`; wall-clock figures
# are noisy on a shared machine, CPU-second ratios much less.
#
# Sizes (environment or make variables):
#   BENCH_SESSIONS=10000  idle sessions held (plain TCP)
#   BENCH_TLS_SESSIONS=2000  idle sessions held over STARTTLS
#   BENCH_SCRAM=5000      SCRAM-SHA-256 logins
#   BENCH_PAIRS=1000      chatting pairs
#   BENCH_WINDOW=4        messages in flight per direction
#   BENCH_DURATION=10     measured seconds per traffic scenario
#   BENCH_PRESENCE=1100   presence users (rosters of BENCH_ROSTER=10)
#   BENCH_TOGGLES=500     presence changes per second
#   BENCH_PEP_RATE=200    PEP publishes per second (pep scenario, same groups)
#   BENCH_RATE=1000       connects per second (paced logins)
#   BENCH_INFLIGHT=100    logins in flight per generator process (unpaced)
#   BENCH_MAM_USERS=1000  archives of the mam-query scenario ...
#   BENCH_MAM_EACH=1000   ... of this many messages each (1,000,000 rows)
#   BENCH_MAM_CLIENTS=20  users querying, one query in flight each
#   BENCH_ML_ROOMS=10     MUC Light rooms ...
#   BENCH_ML_SIZE=100     ... of this many occupants ...
#   BENCH_ML_RATE=3000    ... sent groupchat messages per second (all rooms)
#   BENCH_REST_CLIENTS=50 keep-alive clients of the rest scenario
#   BENCH_MUC_ROOMS=10    muc: rooms of BENCH_MUC_OCCUPANTS=100 users ...
#   BENCH_MUC_RATE=500    ... sending this many groupchat messages per second
#   BENCH_MUC_IDLE=100000 idle persistent rooms woken for their RSS
#   BENCH_OUT=FILE        also keep the JSON lines here
# Quick run: make bench BENCH_SESSIONS=1000 BENCH_PAIRS=100 BENCH_DURATION=3
set -eu
# bash for /dev/tcp in bench_wait_port.
. "$(dirname "$0")/bench-lib.sh"

B=${MK_TOP_BUILDDIR:-.}
SESSIONS=${BENCH_SESSIONS:-10000}
TLS_SESSIONS=${BENCH_TLS_SESSIONS:-2000}
SCRAM=${BENCH_SCRAM:-5000}
INFLIGHT=${BENCH_INFLIGHT:-100}
PAIRS=${BENCH_PAIRS:-1000}
WINDOW=${BENCH_WINDOW:-4}
DURATION=${BENCH_DURATION:-10}
PRESENCE=${BENCH_PRESENCE:-1100}
MAM_USERS=${BENCH_MAM_USERS:-1000}
MAM_EACH=${BENCH_MAM_EACH:-1000}
MAM_CLIENTS=${BENCH_MAM_CLIENTS:-20}
ROSTER=${BENCH_ROSTER:-10}
MUC_ROOMS=${BENCH_MUC_ROOMS:-10}
MUC_OCCUPANTS=${BENCH_MUC_OCCUPANTS:-100}
MUC_RATE=${BENCH_MUC_RATE:-500}
MUC_IDLE=${BENCH_MUC_IDLE:-100000}
RATE=${BENCH_RATE:-1000}
ML_ROOMS=${BENCH_ML_ROOMS:-10}
ML_SIZE=${BENCH_ML_SIZE:-100}
ML_RATE=${BENCH_ML_RATE:-3000}
PORT=${BENCH_PORT:-25400}
RELAY_PORT=$((PORT + 1))
BENCH="$B/tools/bench/meerkat-bench"

SRV_PID=
bench_setup run

USERS=$SESSIONS
for n in $TLS_SESSIONS $((2 * PAIRS)) $PRESENCE $MAM_USERS $((ML_ROOMS * ML_SIZE)) $((MUC_ROOMS * MUC_OCCUPANTS)); do
    [ "$n" -gt "$USERS" ] && USERS=$n
done

# $1: password_format, $2: more modules ("mam")
write_config() {
    bench_meerkat_config "$DIR" "$PORT" "$1" "${2:-}"
}

# $1: password_format, $2: more modules.
start_meerkat() {
    bench_start_meerkat "$PORT" "$1" "${2:-}"
}

start_relay() {
    "$B/tools/bench/bare-relay" --port "$RELAY_PORT" >>"$DIR/relay.log" 2>&1 &
    SRV_PID=$!
    SRV_PIDS=$SRV_PID
    bench_wait_port "$RELAY_PORT"
}

stop_server() {
    bench_stop_server
}

run() {
    bench_run "$@"
}

echo "bench: provisioning $USERS accounts (meerkatctl register-bulk)" >&2
write_config plain
"$B/tools/meerkatctl" -c "$DIR/meerkat.conf" register-bulk bench "$USERS" localhost secret
# SCRAM logins from stored keys: accounts of the default (scram) format.
write_config scram
"$B/tools/meerkatctl" -c "$DIR/meerkat.conf" register-bulk sbench "$SCRAM" localhost secret

P="--port $PORT"
start_meerkat plain
run meerkat sessions $P -n "$SESSIONS" -r "$RATE"
stop_server
start_meerkat plain
run meerkat tls-sessions $P -n "$TLS_SESSIONS" -r "$RATE" --starttls
stop_server
# Unpaced: logins as fast as the server takes them (INFLIGHT in flight),
# so the figure is the work of a login rather than the cost of waking up
# for each one. One generator process: it needs less CPU than a server's
# login, and a second one only takes the cores from the server.
start_meerkat plain
run meerkat logins-max $P -n "$SESSIONS" -r 0 --inflight "$INFLIGHT" -j 1
stop_server
start_meerkat scram
run meerkat scram-logins $P -n "$SCRAM" -r "$RATE" -m SCRAM-SHA-256 --prefix sbench
stop_server
start_meerkat scram
run meerkat scram-logins-max $P -n "$SCRAM" -r 0 --inflight "$INFLIGHT" -j 1 -m SCRAM-SHA-256 --prefix sbench
stop_server
start_meerkat plain
run meerkat chat $P -s chat -P "$PAIRS" -w "$WINDOW" -D "$DURATION" -j 2 -r "$RATE"
run meerkat chat-1 $P -s chat -P 1 -w 1 -D 3 --settle 0.5
stop_server
start_meerkat plain
run meerkat presence $P -s presence -n "$PRESENCE" -R "$ROSTER" -r "$RATE" --toggles "${BENCH_TOGGLES:-500}" -D "$DURATION" --settle 5
stop_server

# mod_muc_light: rooms of ML_SIZE occupants, groupchat at ML_RATE; every
# copy an occupant receives counts (delivered messages per server
# CPU-second against chat's; docs/benchmarks.md). The rooms are made at
# login, before the measured window.
start_meerkat plain muc_light
run meerkat muclight $P -s muclight --rooms "$ML_ROOMS" --room-size "$ML_SIZE" --msg-rate "$ML_RATE" -D "$DURATION" -j 2 -r "$RATE" --settle 5
stop_server
# The same with the rooms archived (one mod_mam row per message).
start_meerkat plain "muc_light mam"
run meerkat muclight-mam $P -s muclight --rooms "$ML_ROOMS" --room-size "$ML_SIZE" --msg-rate "$ML_RATE" -D "$DURATION" -j 2 -r "$RATE" --settle 5
stop_server

# PEP (mod_pubsub, docs/mod_pubsub.md): the presence scenario's roster
# groups, each client's caps asking for tunes; users publish a tune,
# BENCH_PEP_RATE publishes per second in all, each fanned out to the
# publisher's contacts and own client: notifications per server CPU-second.
start_meerkat plain pubsub
run meerkat pep $P -s pep -n "$PRESENCE" -R "$ROSTER" -r "$RATE" --toggles "${BENCH_PEP_RATE:-200}" -D "$DURATION" --settle 5
stop_server

# mod_mam: the same chat with every message archived twice (both sides),
# then queries of the last 50 messages on a large archive, with and
# without a 'with' filter (docs/mod_mam.md; targets in docs/benchmarks.md).
start_meerkat plain mam
run meerkat chat-mam $P -s chat -P "$PAIRS" -w "$WINDOW" -D "$DURATION" -j 2 -r "$RATE"
stop_server
bench_mam_prefill "$DIR/state/meerkat.db" "$MAM_USERS" "$MAM_EACH"
start_meerkat plain mam
run meerkat mam-query $P -s mam -n "$MAM_CLIENTS" -r "$RATE" -D "$DURATION" -j 1
run meerkat mam-query-with $P -s mam --mam-with -n "$MAM_CLIENTS" -r "$RATE" -D "$DURATION" -j 1
stop_server

# The same chat with and without mod_mam on PostgreSQL, where its
# binaries are installed (tests/pg-tmp.sh starts a throwaway server).
if ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1; then
    # Its own directory: as root, pg-tmp.sh hands it to the postgres user,
    # who may not enter $DIR.
    PG_DIR=$(mktemp -d /tmp/mk-bench-pg.XXXXXX)
    BENCH_PG_PORT=$(sh "$(dirname "$0")/../../tests/pg-tmp.sh" start "$PG_DIR" $$)
    export BENCH_PG_PORT
    write_config plain
    "$B/tools/meerkatctl" -c "$DIR/meerkat.conf" register-bulk bench "$((2 * PAIRS))" localhost secret
    # The server's CPU is meerkatd's and PostgreSQL's (the postmaster and
    # the backends of meerkatd's connections, open once it listens).
    pg_pids() {
        local pm
        pm=$(head -n 1 "$PG_DIR/data/postmaster.pid")
        echo "$pm,$(pgrep -d, -P "$pm")"
    }
    # meerkatd opens its connections as work needs them: a short unmeasured
    # chat first, so that every backend exists when the pids are taken.
    pg_warm() {
        "$BENCH" $P -s chat -P "$PAIRS" -w "$WINDOW" -D 1 -j 2 -r "$RATE" >/dev/null
        SRV_PIDS="$SRV_PID,$(pg_pids)"
        echo "bench: server processes $SRV_PIDS" >&2
    }
    start_meerkat plain
    pg_warm
    run meerkat chat-pg $P -s chat -P "$PAIRS" -w "$WINDOW" -D "$DURATION" -j 2 -r "$RATE"
    stop_server
    start_meerkat plain mam
    pg_warm
    run meerkat chat-mam-pg $P -s chat -P "$PAIRS" -w "$WINDOW" -D "$DURATION" -j 2 -r "$RATE"
    stop_server
    sh "$(dirname "$0")/../../tests/pg-tmp.sh" stop "$PG_DIR"
    rm -rf "$PG_DIR"
    unset BENCH_PG_PORT
fi

# The admin REST API: POST /api/messages over keep-alive (bench-rest.sh).
. "$(dirname "$0")/bench-rest.sh"
bench_rest
bench_chat_scraped

# mod_muc: rooms of 100 with every message fanned out to each occupant
# (delivered messages per server CPU-second, to compare with chat's),
# then the memory of idle persistent rooms (docs/benchmarks.md).
start_meerkat plain muc
run meerkat muc $P -s muc -n $((MUC_ROOMS * MUC_OCCUPANTS)) --occupants "$MUC_OCCUPANTS" \
    --msg-rate "$MUC_RATE" -D "$DURATION" -j 2 -r "$RATE"
stop_server
ROOMS="$(dirname "$0")/bench-muc-rooms.py"
start_meerkat plain muc
sleep 2
RSS_EMPTY=$(python3 "$ROOMS" rss "$SRV_PID")
stop_server
python3 "$ROOMS" prefill "$DIR/state/meerkat.db" "$MUC_IDLE"
start_meerkat plain muc
sleep 2
echo "bench: meerkat muc-rooms: waking $MUC_IDLE stored rooms" >&2
python3 "$ROOMS" wake --port "$PORT" --pid "$SRV_PID" --rooms "$MUC_IDLE" \
    --rss-empty "$RSS_EMPTY" >>"$RESULTS" || true
stop_server

# mod_event_pusher's backends on and off (tools/bench/bench-pusher.sh).
. "$(dirname "$0")/bench-pusher.sh"
bench_pusher

P="--port $RELAY_PORT"
start_relay
run relay sessions $P -n "$SESSIONS" -r "$RATE"
stop_server
start_relay
run relay logins-max $P -n "$SESSIONS" -r 0 --inflight "$INFLIGHT" -j 1
stop_server
start_relay
run relay chat $P -s chat -P "$PAIRS" -w "$WINDOW" -D "$DURATION" -j 2 -r "$RATE"
run relay chat-1 $P -s chat -P 1 -w 1 -D 3 --settle 0.5
stop_server

python3 "$(dirname "$0")/bench-table.py" "$RESULTS"
