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
# BENCH_RUNS="single cluster gd": which of the three run.
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

bench_setup gd

# $1: node directory, $2: client port, $3: database file, $4: "" (alone),
# "cluster NAME" or "gd REGION LINKPORT".
node_config() {
    bench_meerkat_config "$1" "$2" plain
    bench_node_tweak "$1/meerkat.conf" "$3"
    set -- "$@" "" "" ""
    case "$4" in
    cluster) bench_cluster_section "$1/meerkat.conf" "$5" "$REDIS_PORT" ;;
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

bench_redis "$REDIS_PORT"
bench_redis "$GREDIS_PORT"

echo "bench: provisioning $USERS accounts in each database (meerkatctl register-bulk)" >&2
mkdir -p "$DIR/n1" "$DIR/n2"
for db in shared eu us; do
    node_config "$DIR/n1" "$PORT" "$DIR/$db.db"
    "$B/tools/meerkatctl" -c "$DIR/n1/meerkat.conf" register-bulk bench "$USERS" localhost secret
done

CHAT="-s chat -P $PAIRS -w $WINDOW -D $DURATION -j 2 -r $RATE"
P2="--ports $PORT,$PORT2"

RUNS=" ${BENCH_RUNS:-single cluster gd} "
if [[ $RUNS == *" single "* ]]; then
    bench_start_nodes "$DIR/n1" "$PORT" "$DIR/shared.db"
    bench_run single chat --port "$PORT" $CHAT
    bench_stop_nodes
fi
if [[ $RUNS == *" cluster "* ]]; then
    bench_start_nodes "$DIR/n1" "$PORT" "$DIR/shared.db" cluster n1 -- \
        "$DIR/n2" "$PORT2" "$DIR/shared.db" cluster n2
    bench_run cluster chat $P2 $CHAT
    bench_stop_nodes
fi
if [[ $RUNS == *" gd "* ]]; then
    bench_start_nodes "$DIR/n1" "$PORT" "$DIR/eu.db" gd eu "$LINK1" -- \
        "$DIR/n2" "$PORT2" "$DIR/us.db" gd us "$LINK2"
    bench_run gd chat $P2 $CHAT
    bench_stop_nodes
fi
echo "bench: global Redis keys after the run: $(redis-cli -p "$GREDIS_PORT" dbsize)" >&2

bench_compare "one node=single,cluster=cluster,2 regions=gd" \
    "messages per server CPU-s (all nodes)|chat|messages_per_cpu_s|1" \
    "messages/s (wall)|chat|messages_per_s|1" \
    "latency p50, ms|chat|latency_us.p50|0.001" \
    "latency p99, ms|chat|latency_us.p99|0.001"
