#!/bin/bash
# The muc/chat ratio of issue 12 (docs/benchmarks.md): delivered
# groupchat messages per server CPU-second for rooms of 100 against the
# 1:1 chat figure, measured interleaved (muc, chat, muc, chat, ...) on one
# build, each run against a fresh meerkatd, so a change of the machine's
# load during the runs hits both sides alike. Prints each run and the
# medians and their ratio; the JSON lines go to BENCH_OUT if set.
#
#   tools/bench/bench-muc-ratio.sh BUILDDIR [ROUNDS]   (default 3 rounds)
#
# Sizes as make bench: BENCH_PAIRS=1000, BENCH_WINDOW=4,
# BENCH_MUC_ROOMS=10, BENCH_MUC_OCCUPANTS=100, BENCH_MUC_RATE=500,
# BENCH_DURATION=10, BENCH_RATE=1000, BENCH_PORT=25400.
set -eu

B=$(cd "${1:?usage: $0 BUILDDIR [ROUNDS]}" && pwd)
ROUNDS=${2:-3}
. "$(dirname "$0")/bench-lib.sh"

PAIRS=${BENCH_PAIRS:-1000}
WINDOW=${BENCH_WINDOW:-4}
DURATION=${BENCH_DURATION:-10}
MUC_ROOMS=${BENCH_MUC_ROOMS:-10}
MUC_OCCUPANTS=${BENCH_MUC_OCCUPANTS:-100}
MUC_RATE=${BENCH_MUC_RATE:-500}
RATE=${BENCH_RATE:-1000}
PORT=${BENCH_PORT:-25400}
BENCH="$B/tools/bench/meerkat-bench"

SRV_PID=
bench_setup ratio

# $1: more modules. A fresh server (and a fresh database of the same
# accounts) for every run.
start_meerkat() {
    bench_start_meerkat "$PORT" plain "${1:-}"
}
stop_server() {
    bench_stop_server
}

USERS=$((2 * PAIRS))
[ $((MUC_ROOMS * MUC_OCCUPANTS)) -gt $USERS ] && USERS=$((MUC_ROOMS * MUC_OCCUPANTS))
bench_meerkat_config "$DIR" "$PORT" plain
"$B/tools/meerkatctl" -c "$DIR/meerkat.conf" register-bulk bench "$USERS" localhost secret
cp "$DIR/state/meerkat.db" "$DIR/accounts.db"

P="--port $PORT"
for i in $(seq 1 "$ROUNDS"); do
    cp "$DIR/accounts.db" "$DIR/state/meerkat.db"
    start_meerkat muc
    bench_run meerkat muc $P -s muc -n $((MUC_ROOMS * MUC_OCCUPANTS)) --occupants "$MUC_OCCUPANTS" \
        --msg-rate "$MUC_RATE" -D "$DURATION" -j 2 -r "$RATE"
    stop_server
    echo "bench: load $(cut -d' ' -f1-3 /proc/loadavg)" >&2
    cp "$DIR/accounts.db" "$DIR/state/meerkat.db"
    start_meerkat
    bench_run meerkat chat $P -s chat -P "$PAIRS" -w "$WINDOW" -D "$DURATION" -j 2 -r "$RATE"
    stop_server
    echo "bench: load $(cut -d' ' -f1-3 /proc/loadavg)" >&2
done

python3 - "$RESULTS" <<'EOF'
import json, statistics, sys
runs = {"muc": [], "chat": []}
for line in open(sys.argv[1]):
    r = json.loads(line)
    v = r["result"].get("messages_per_cpu_s")
    print(r["test"], v, "delivered/s", r["result"].get("messages_per_s"),
          "p99 ms", r["result"].get("latency_us", {}).get("p99", 0) / 1000)
    if v:
        runs[r["test"]].append(v)
if runs["muc"] and runs["chat"]:
    m, c = statistics.median(runs["muc"]), statistics.median(runs["chat"])
    print(f"median muc {m:.0f}, median chat {c:.0f} per server CPU-s: ratio {m / c:.2f}")
    pairs = [a / b for a, b in zip(runs["muc"], runs["chat"])]
    print("per-round ratios", " ".join(f"{p:.2f}" for p in pairs))
EOF
