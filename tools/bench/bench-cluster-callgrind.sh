#!/bin/bash
# User-space instructions (callgrind) per cross-node chat message or per
# login, one node alone or two nodes on a private redis-server (as
# bench-cluster.sh). Not part of `make check`; slow (valgrind).
#
#   bash tools/bench/bench-cluster-callgrind.sh [cluster|single] [chat|login]
#
# chat: CG_PAIRS pairs (default 20; in the cluster every pair spans the
#   nodes), window 4; two runs of CG_D1 and CG_D2 seconds (3, 9), the
#   counters zeroed before and dumped after each: (I2 - I1) / (M2 - M1),
#   all nodes summed, so the logins of each run cancel out.
# login: logins on the first node only (the other linked and idle), runs
#   of CG_D1 and CG_D2 logins (set them, e.g. 100 and 500; CG_PAIRS*2
#   accounts must cover them): (I2 - I1) / (D2 - D1), all nodes summed.
# MK_TOP_BUILDDIR (default .): the build; CG_PORT (default 26100).
set -eu
B=$(cd "${MK_TOP_BUILDDIR:-.}" && pwd)
MODE=${1:-cluster}
SCEN=${2:-chat}
PAIRS=${CG_PAIRS:-20}
D1=${CG_D1:-3}
D2=${CG_D2:-9}
PORT=${CG_PORT:-26100}
. "$(dirname "$0")/bench-lib.sh"
PORT2=$((PORT + 1))
REDIS_PORT=$((PORT + 2))
DIR=$(mktemp -d /tmp/mk-bench-cg.XXXXXX)
PIDS=
REDIS_PID=
cleanup() {
    for p in $PIDS $REDIS_PID; do kill "$p" 2>/dev/null || true; done
    for p in $PIDS $REDIS_PID; do wait "$p" 2>/dev/null || true; done
    if [ -n "${BENCH_KEEP:-}" ]; then echo "bench: kept $DIR" >&2; else rm -rf "$DIR"; fi
}
trap cleanup EXIT INT TERM

# $1: node directory, $2: client port, $3: node name or "" (no cluster).
node_config() {
    bench_meerkat_config "$1" "$2" plain
    sed -i "s|^database = meerkat.db|database = $DIR/meerkat.db|" "$1/meerkat.conf"
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

redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no \
    --dir "$DIR" >"$DIR/redis.log" 2>&1 &
REDIS_PID=$!
bench_wait_port "$REDIS_PORT"
mkdir -p "$DIR/n1" "$DIR/n2"
node_config "$DIR/n1" "$PORT" ""
"$B/tools/meerkatctl" -c "$DIR/n1/meerkat.conf" register-bulk bench $((2 * PAIRS)) localhost secret >/dev/null
NODES=1
[ "$MODE" = cluster ] && NODES=2
for n in $(seq 1 $NODES); do
    name=
    [ "$MODE" = cluster ] && name=n$n
    node_config "$DIR/n$n" $((PORT + n - 1)) "$name"
    valgrind --tool=callgrind --compress-strings=no --compress-pos=no \
        --callgrind-out-file="$DIR/cg.n$n.out" "$B/core/meerkatd" --config "$DIR/n$n/meerkat.conf" \
        >"$DIR/n$n.log" 2>&1 &
    PIDS="$PIDS $!"
    bench_wait_port $((PORT + n - 1)) 60
done
PORTS="--port $PORT"
[ "$MODE" = cluster ] && [ "$SCEN" = chat ] && PORTS="--ports $PORT,$PORT2"
sleep 4 # the nodes find each other (heartbeats of 0.5 s)

# $1: seconds (chat) or logins; prints "instructions count".
run() {
    local out tot=0 n=0 f t m per=
    for p in $PIDS; do callgrind_control -z "$p" >/dev/null; done
    if [ "$SCEN" = chat ]; then
        out=$("$B/tools/bench/meerkat-bench" $PORTS -s chat -P "$PAIRS" -w 4 -D "$1" -j 1 -r 200)
        m=$(echo "$out" | python3 -c 'import json,sys; print(json.load(sys.stdin)["messages"])')
    else
        "$B/tools/bench/meerkat-bench" $PORTS -s login -n "$1" -r 0 --inflight 10 -j 1 >/dev/null
        m=$1
    fi
    for p in $PIDS; do
        n=$((n + 1))
        callgrind_control -d "$p" >/dev/null
        f=$(ls -t "$DIR"/cg.n$n.out.* | head -1)
        t=$(sed -n 's/^summary: *\([0-9]*\).*/\1/p' "$f")
        tot=$((tot + t))
        per="$per $t"
    done
    echo "$tot $m$per"
}
if [ "$SCEN" = chat ]; then run 2 >/dev/null; else run 20 >/dev/null; fi # warm-up
r1=$(run "$D1")
r2=$(run "$D2")
echo "bench: $MODE $SCEN: $r1 / $r2 (instructions count)" >&2
python3 -c "
a = list(map(int, '$r1'.split())); b = list(map(int, '$r2'.split()))
per = ' + '.join('%.0f' % ((y - x) / (b[1] - a[1])) for x, y in zip(a[2:], b[2:]))
print('$MODE $SCEN: %.0f instructions per %s (nodes: %s)' % ((b[0] - a[0]) / (b[1] - a[1]),
      '$SCEN' == 'chat' and 'message' or 'login', per))"
