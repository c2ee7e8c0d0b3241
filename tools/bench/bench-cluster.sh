#!/bin/bash
# `make bench-cluster`: one meerkatd against a two-node cluster (a private
# redis-server, both nodes on one sqlite file, plain TCP, SASL PLAIN),
# then a table (docs/benchmarks.md). Not part of `make check`.
# BENCH_NODES=5 BENCH_SESSIONS=95000 BENCH_ONLY_SESSIONS=1: only the
# sessions run, on that many nodes (the chat and logins use two).
#
#   chat: BENCH_PAIRS pairs, each pair's users on different nodes
#         (--ports: user n connects to node n mod 2), window BENCH_WINDOW;
#         messages per server CPU-second (both nodes summed) and latency.
#   sessions: BENCH_SESSIONS idle sessions spread over the nodes; RSS per
#         session (both nodes summed: each holds its own sessions and a
#         stand-in for each of the other's) and Redis's own memory per
#         session (INFO memory used_memory, before and after).
#   logins: unpaced PLAIN logins on one node of the cluster vs alone.
#
# Sizes: BENCH_SESSIONS=10000 BENCH_PAIRS=1000 BENCH_WINDOW=4
# BENCH_DURATION=10 BENCH_RATE=1000 BENCH_INFLIGHT=100 BENCH_PORT=25500
set -eu
. "$(dirname "$0")/bench-lib.sh"

B=${MK_TOP_BUILDDIR:-.}
SESSIONS=${BENCH_SESSIONS:-10000}
PAIRS=${BENCH_PAIRS:-1000}
WINDOW=${BENCH_WINDOW:-4}
DURATION=${BENCH_DURATION:-10}
RATE=${BENCH_RATE:-1000}
INFLIGHT=${BENCH_INFLIGHT:-100}
PORT=${BENCH_PORT:-25500}
PORT2=$((PORT + 1))
REDIS_PORT=$((PORT + 2))
NODES=${BENCH_NODES:-2}
BENCH="$B/tools/bench/meerkat-bench"
USERS=$SESSIONS
[ $((2 * PAIRS)) -gt "$USERS" ] && USERS=$((2 * PAIRS))

bench_setup cluster

redis_mem() {
    redis-cli -p "$REDIS_PORT" info memory | sed -n 's/^used_memory:\([0-9]*\).*/\1/p'
}

# $1: node directory, $2: client port, $3: node name or "" (no cluster).
node_config() {
    bench_meerkat_config "$1" "$2" plain
    bench_node_tweak "$1/meerkat.conf" "$DIR/meerkat.db"
    # Many sessions per node under a 20,000-descriptor limit.
    sed -i "s|^\[general\]|[general]\nfd_reserve = 100|" "$1/meerkat.conf"
    if [ -n "${3:-}" ]; then bench_cluster_section "$1/meerkat.conf" "$3" "$REDIS_PORT"; fi
}

bench_redis "$REDIS_PORT"

echo "bench: provisioning $USERS accounts (meerkatctl register-bulk)" >&2
mkdir -p "$DIR/n1" "$DIR/n2"
node_config "$DIR/n1" "$PORT" ""
"$B/tools/meerkatctl" -c "$DIR/n1/meerkat.conf" register-bulk bench "$USERS" localhost secret

if [ -z "${BENCH_ONLY_SESSIONS:-}" ]; then
# One node alone (no [cluster]).
bench_start_nodes "$DIR/n1" "$PORT"
bench_run single chat --port "$PORT" -s chat -P "$PAIRS" -w "$WINDOW" -D "$DURATION" -j 2 -r "$RATE"
bench_stop_nodes
bench_start_nodes "$DIR/n1" "$PORT"
bench_run single sessions --port "$PORT" -n "$SESSIONS" -r "$RATE"
bench_stop_nodes
bench_start_nodes "$DIR/n1" "$PORT"
bench_run single logins-max --port "$PORT" -n "$SESSIONS" -r 0 --inflight "$INFLIGHT" -j 1
bench_stop_nodes

# Two nodes; every pair spans them.
P2="--ports $PORT,$PORT2"
bench_start_nodes "$DIR/n1" "$PORT" n1 -- "$DIR/n2" "$PORT2" n2
bench_run cluster chat $P2 -s chat -P "$PAIRS" -w "$WINDOW" -D "$DURATION" -j 2 -r "$RATE"
bench_stop_nodes
fi
SPEC=
PLIST=
for i in $(seq 1 "$NODES"); do
    mkdir -p "$DIR/n$i"
    SPEC="$SPEC${SPEC:+ --} $DIR/n$i $((PORT + 10 + i)) n$i"
    PLIST="$PLIST${PLIST:+,}$((PORT + 10 + i))"
done
bench_start_nodes $SPEC
m0=$(redis_mem)
# Redis's memory at its highest while the sessions are held.
touch "$DIR/sampling"
(
    max=0
    while [ -e "$DIR/sampling" ]; do
        m=$(redis_mem)
        [ "${m:-0}" -gt "$max" ] && max=$m && echo "$max" >"$DIR/redis-max"
        sleep 0.2
    done
) &
SAMPLER=$!
bench_run cluster sessions --ports "$PLIST" -n "$SESSIONS" -r "$RATE" --hold 3
rm -f "$DIR/sampling"
wait "$SAMPLER" 2>/dev/null || true
m1=$(cat "$DIR/redis-max" 2>/dev/null || echo "$m0")
bench_stop_nodes
echo "{\"server\": \"cluster\", \"test\": \"redis\", \"result\": {\"redis_bytes_per_session\": $(((m1 - m0) / SESSIONS))}}" >>"$RESULTS"
# Logins on one node of the cluster (the other idle but linked).
[ -z "${BENCH_ONLY_SESSIONS:-}" ] && bench_start_nodes "$DIR/n1" "$PORT" n1 -- "$DIR/n2" "$PORT2" n2
if [ -z "${BENCH_ONLY_SESSIONS:-}" ]; then
    SRV_PIDS=${PIDS# }
    SRV_PIDS=${SRV_PIDS%% *}
    bench_run cluster logins-max --port "$PORT" -n "$SESSIONS" -r 0 --inflight "$INFLIGHT" -j 1
    bench_stop_nodes
fi

bench_compare "one node=single,cluster=cluster" \
    "messages per server CPU-s (all nodes)|chat|messages_per_cpu_s|1" \
    "messages/s (wall)|chat|messages_per_s|1" \
    "latency p50, ms|chat|latency_us.p50|0.001" \
    "latency p99, ms|chat|latency_us.p99|0.001" \
    "sessions held|sessions|sessions|1" \
    "RSS per session, KiB (all nodes)|sessions|rss_per_session_kib|1" \
    "PLAIN logins per server CPU-s (unpaced)|logins-max|logins_per_cpu_s|1" \
    "PLAIN logins/s (wall, unpaced)|logins-max|logins_per_s|1" \
    "Redis bytes per session|redis|redis_bytes_per_session|1"
