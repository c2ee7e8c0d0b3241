#!/bin/bash
# `make bench-gd`: 1:1 chat across two regions of mod_global_distrib
# (docs/global-distribution.md) against the same chat inside one
# two-node cluster and on one node, then a table (docs/benchmarks.md).
# Not part of `make check`.
#
#   single:  one meerkatd; BENCH_PAIRS pairs, window BENCH_WINDOW.
#   cluster: two nodes of one cluster (a private redis-server), each
#            pair's users on different nodes (--ports: user n on node
#            n mod 2).
#   gd:      two regions of one node each, "eu" and "us", each with its
#            own sqlite database, one global redis-server; each pair's
#            users in different regions, so that every message crosses
#            the link between regions.
# Messages per server CPU-second (all nodes summed) and latency p50/p99;
# the extra latency of a message over the link is gd minus cluster.
#
# Sizes: BENCH_PAIRS=1000 BENCH_WINDOW=4 BENCH_DURATION=10 BENCH_RATE=1000
# BENCH_PORT=25600
set -eu
. "$(dirname "$0")/bench-lib.sh"

B=${MK_TOP_BUILDDIR:-.}
PAIRS=${BENCH_PAIRS:-1000}
WINDOW=${BENCH_WINDOW:-4}
DURATION=${BENCH_DURATION:-10}
RATE=${BENCH_RATE:-1000}
PORT=${BENCH_PORT:-25600}
PORT2=$((PORT + 1))
REDIS_PORT=$((PORT + 2))
GREDIS_PORT=$((PORT + 3))
LINK1=$((PORT + 4))
LINK2=$((PORT + 5))
BENCH="$B/tools/bench/meerkat-bench"
USERS=$((2 * PAIRS))

DIR=$(mktemp -d /tmp/mk-bench-gd.XXXXXX)
RESULTS="$DIR/results.jsonl"
PIDS=
REDIS_PIDS=
cleanup() {
    for p in $PIDS $REDIS_PIDS; do kill "$p" 2>/dev/null && wait "$p" 2>/dev/null || true; done
    if [ -n "${BENCH_OUT:-}" ]; then cp "$RESULTS" "$BENCH_OUT"; fi
    if [ -n "${BENCH_KEEP:-}" ]; then echo "bench: kept $DIR" >&2; else rm -rf "$DIR"; fi
}
trap cleanup EXIT INT TERM

# $1: node directory, $2: client port, $3: database file, $4: "" (alone),
# "cluster NAME" or "gd REGION LINKPORT".
node_config() {
    bench_meerkat_config "$1" "$2" plain
    sed -i "s|^database = meerkat.db|database = $3|" "$1/meerkat.conf"
    [ -n "${BENCH_LOG:-}" ] && sed -i "s|^log_level = .*|log_level = $BENCH_LOG|" "$1/meerkat.conf"
    set -- "$@" "" "" ""
    case "$4" in
    cluster)
        cat >>"$1/meerkat.conf" <<EOF2

[cluster]
name = $5
node_number = ${5#n}
redis_port = $REDIS_PORT
secret = bench-cluster-secret-0123456789
link_port = 0
EOF2
        ;;
    gd)
        cat >"$1/conf.d/mod_global_distrib.conf" <<EOF2
[mod_global_distrib]
global_host = localhost
local_host = $5
regions = eu;us
redis_port = $GREDIS_PORT
secret = bench-gd-secret-0123456789
listen_port = $6
EOF2
        ;;
    esac
}

# $@: "DIR PORT DB MODE NAME [LINK]" as words, one node per "--".
start_nodes() {
    PIDS=
    local ports=
    while [ $# -gt 0 ]; do
        local args=()
        while [ $# -gt 0 ] && [ "$1" != "--" ]; do
            args+=("$1")
            shift
        done
        [ $# -gt 0 ] && shift
        node_config "${args[@]}"
        "$B/core/meerkatd" --config "${args[0]}/meerkat.conf" >>"${args[0]}/meerkatd.log" 2>&1 &
        PIDS="$PIDS $!"
        ports="$ports ${args[1]}"
    done
    for p in $ports; do bench_wait_port "$p"; done
    SRV_PIDS=$(echo $PIDS | tr ' ' ,)
    # Cluster nodes find each other within a heartbeat period (0.5 s);
    # regions advertise their link endpoint once Redis answered.
    sleep 2
}

stop_nodes() {
    for p in $PIDS; do kill "$p" 2>/dev/null || true; done
    for p in $PIDS; do wait "$p" 2>/dev/null || true; done
    PIDS=
}

for p in $REDIS_PORT $GREDIS_PORT; do
    redis-server --port "$p" --bind 127.0.0.1 --save "" --appendonly no \
        --dir "$DIR" >"$DIR/redis-$p.log" 2>&1 &
    REDIS_PIDS="$REDIS_PIDS $!"
    bench_wait_port "$p"
done

echo "bench: provisioning $USERS accounts in each database (meerkatctl register-bulk)" >&2
mkdir -p "$DIR/n1" "$DIR/n2"
for db in shared eu us; do
    node_config "$DIR/n1" "$PORT" "$DIR/$db.db"
    "$B/tools/meerkatctl" -c "$DIR/n1/meerkat.conf" register-bulk bench "$USERS" localhost secret
done

CHAT="-s chat -P $PAIRS -w $WINDOW -D $DURATION -j 2 -r $RATE"
P2="--ports $PORT,$PORT2"

start_nodes "$DIR/n1" "$PORT" "$DIR/shared.db"
bench_run single chat --port "$PORT" $CHAT
stop_nodes

start_nodes "$DIR/n1" "$PORT" "$DIR/shared.db" cluster n1 -- "$DIR/n2" "$PORT2" "$DIR/shared.db" cluster n2
bench_run cluster chat $P2 $CHAT
stop_nodes

start_nodes "$DIR/n1" "$PORT" "$DIR/eu.db" gd eu "$LINK1" -- "$DIR/n2" "$PORT2" "$DIR/us.db" gd us "$LINK2"
bench_run gd chat $P2 $CHAT
stop_nodes
echo "bench: global Redis keys after the run: $(redis-cli -p "$GREDIS_PORT" dbsize)" >&2

python3 - "$RESULTS" <<'EOF2'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
res = {(r["server"], r["test"]): r["result"] for r in rows}
def get(srv, key):
    v = res.get((srv, "chat"), {})
    for k in key.split("."):
        v = v.get(k, {}) if isinstance(v, dict) else {}
    return v if v != {} else None
lines = [("messages per server CPU-s (all nodes)", "messages_per_cpu_s", 1),
         ("messages/s (wall)", "messages_per_s", 1),
         ("latency p50, ms", "latency_us.p50", 0.001),
         ("latency p99, ms", "latency_us.p99", 0.001)]
print("%-40s %10s %10s %10s %9s" % ("", "one node", "cluster", "2 regions", "gd/clus."))
for label, key, scale in lines:
    v = [get(s, key) for s in ("single", "cluster", "gd")]
    f = ["%.1f" % (x * scale) if isinstance(x, (int, float)) else "-" for x in v]
    a, b = v[1], v[2]
    ratio = "%.2f" % (b / a) if isinstance(a, (int, float)) and isinstance(b, (int, float)) and a else ""
    print("%-40s %10s %10s %10s %9s" % (label, f[0], f[1], f[2], ratio))
for key in ("latency_us.p50", "latency_us.p99"):
    a, b = get("cluster", key), get("gd", key)
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        print("extra latency over the link (%s), ms: %.2f" % (key.split(".")[1], (b - a) / 1000))
for s in ("single", "cluster", "gd"):
    r = res.get((s, "chat"), {})
    lost = {k: r[k] for k in ("errors", "timeouts", "lost") if k in r}
    if lost:
        print("%s: %s" % (s, lost))
EOF2
