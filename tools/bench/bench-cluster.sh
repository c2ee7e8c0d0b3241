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

DIR=$(mktemp -d /tmp/mk-bench-cluster.XXXXXX)
RESULTS="$DIR/results.jsonl"
PIDS=
REDIS_PID=
cleanup() {
    for p in $PIDS $REDIS_PID; do kill "$p" 2>/dev/null && wait "$p" 2>/dev/null || true; done
    if [ -n "${BENCH_OUT:-}" ]; then cp "$RESULTS" "$BENCH_OUT"; fi
    if [ -n "${BENCH_KEEP:-}" ]; then echo "bench: kept $DIR" >&2; else rm -rf "$DIR"; fi
}
trap cleanup EXIT INT TERM

redis_mem() {
    redis-cli -p "$REDIS_PORT" info memory | sed -n 's/^used_memory:\([0-9]*\).*/\1/p'
}

# $1: node directory, $2: client port, $3: node name or "" (no cluster).
node_config() {
    bench_meerkat_config "$1" "$2" plain
    sed -i "s|^database = meerkat.db|database = $DIR/meerkat.db|" "$1/meerkat.conf"
    [ -n "${BENCH_LOG:-}" ] && sed -i "s|^log_level = .*|log_level = $BENCH_LOG|" "$1/meerkat.conf"
    # Many sessions per node under a 20,000-descriptor limit.
    sed -i "s|^\[general\]|[general]\nfd_reserve = 100|" "$1/meerkat.conf"
    if [ -n "$3" ]; then
        cat >>"$1/meerkat.conf" <<EOF2

[cluster]
name = $3
node_number = ${3#n}
redis_port = $REDIS_PORT
secret = bench-cluster-secret-0123456789
link_port = 0
EOF2
    fi
}

# $@: "DIR PORT NAME" triples as words.
start_nodes() {
    PIDS=
    while [ $# -ge 3 ]; do
        node_config "$1" "$2" "$3"
        "$B/core/meerkatd" --config "$1/meerkat.conf" >>"$1/meerkatd.log" 2>&1 &
        PIDS="$PIDS $!"
        bench_wait_port "$2"
        shift 3
    done
    SRV_PIDS=$(echo $PIDS | tr ' ' ,)
    # The nodes find each other within a heartbeat period (0.5 s).
    sleep 2
}

stop_nodes() {
    for p in $PIDS; do kill "$p" 2>/dev/null || true; done
    for p in $PIDS; do wait "$p" 2>/dev/null || true; done
    PIDS=
}

redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no \
    --dir "$DIR" >"$DIR/redis.log" 2>&1 &
REDIS_PID=$!
bench_wait_port "$REDIS_PORT"

echo "bench: provisioning $USERS accounts (meerkatctl register-bulk)" >&2
mkdir -p "$DIR/n1" "$DIR/n2"
node_config "$DIR/n1" "$PORT" ""
"$B/tools/meerkatctl" -c "$DIR/n1/meerkat.conf" register-bulk bench "$USERS" localhost secret

if [ -z "${BENCH_ONLY_SESSIONS:-}" ]; then
# One node alone (no [cluster]).
start_nodes "$DIR/n1" "$PORT" ""
bench_run single chat --port "$PORT" -s chat -P "$PAIRS" -w "$WINDOW" -D "$DURATION" -j 2 -r "$RATE"
stop_nodes
start_nodes "$DIR/n1" "$PORT" ""
bench_run single sessions --port "$PORT" -n "$SESSIONS" -r "$RATE"
stop_nodes
start_nodes "$DIR/n1" "$PORT" ""
bench_run single logins-max --port "$PORT" -n "$SESSIONS" -r 0 --inflight "$INFLIGHT" -j 1
stop_nodes

# Two nodes; every pair spans them.
P2="--ports $PORT,$PORT2"
start_nodes "$DIR/n1" "$PORT" n1 "$DIR/n2" "$PORT2" n2
bench_run cluster chat $P2 -s chat -P "$PAIRS" -w "$WINDOW" -D "$DURATION" -j 2 -r "$RATE"
stop_nodes
fi
SPEC=
PLIST=
for i in $(seq 1 "$NODES"); do
    mkdir -p "$DIR/n$i"
    SPEC="$SPEC $DIR/n$i $((PORT + 10 + i)) n$i"
    PLIST="$PLIST${PLIST:+,}$((PORT + 10 + i))"
done
start_nodes $SPEC
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
stop_nodes
echo "{\"server\": \"cluster\", \"test\": \"redis\", \"result\": {\"redis_bytes_per_session\": $(((m1 - m0) / SESSIONS))}}" >>"$RESULTS"
# Logins on one node of the cluster (the other idle but linked).
[ -z "${BENCH_ONLY_SESSIONS:-}" ] && start_nodes "$DIR/n1" "$PORT" n1 "$DIR/n2" "$PORT2" n2
if [ -z "${BENCH_ONLY_SESSIONS:-}" ]; then
    SRV_PIDS=${PIDS# }
    SRV_PIDS=${SRV_PIDS%% *}
    bench_run cluster logins-max --port "$PORT" -n "$SESSIONS" -r 0 --inflight "$INFLIGHT" -j 1
    stop_nodes
fi

python3 - "$RESULTS" <<'EOF2'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
res = {(r["server"], r["test"]): r["result"] for r in rows}
def get(srv, test, key):
    v = res.get((srv, test), {})
    for k in key.split("."):
        v = v.get(k, {}) if isinstance(v, dict) else {}
    return v if v != {} else None
lines = [("messages per server CPU-s (all nodes)", "chat", "messages_per_cpu_s", 1),
         ("messages/s (wall)", "chat", "messages_per_s", 1),
         ("latency p50, ms", "chat", "latency_us.p50", 0.001),
         ("latency p99, ms", "chat", "latency_us.p99", 0.001),
         ("sessions held", "sessions", "sessions", 1),
         ("RSS per session, KiB (all nodes)", "sessions", "rss_per_session_kib", 1),
         ("PLAIN logins per server CPU-s (unpaced)", "logins-max", "logins_per_cpu_s", 1),
         ("PLAIN logins/s (wall, unpaced)", "logins-max", "logins_per_s", 1),
         ("Redis bytes per session", "redis", "redis_bytes_per_session", 1)]
print("%-42s %12s %12s %8s" % ("", "one node", "cluster", "ratio"))
for label, test, key, scale in lines:
    a, b = get("single", test, key), get("cluster", test, key)
    fa = "%.1f" % (a * scale) if isinstance(a, (int, float)) else "-"
    fb = "%.1f" % (b * scale) if isinstance(b, (int, float)) else "-"
    ratio = "%.2f" % (b / a) if isinstance(a, (int, float)) and isinstance(b, (int, float)) and a else ""
    print("%-42s %12s %12s %8s" % (label, fa, fb, ratio))
EOF2
