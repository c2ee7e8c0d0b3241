#!/bin/bash
# `make bench-pusher`: the event pusher scenarios of `make bench`
# (bench-pusher.sh) as back-to-back series, for before/after comparisons
# on a noisy machine: ROUNDS times (default 3) chat-pusher-off, then
# chat-pusher-on (http + rabbit + push), then chat-pusher-hang, each on a
# fresh server; one broker and both webhooks (answering, hanging) run for
# the whole series, so they load the machine alike in every run. Prints
# each run and the medians with their ratios to off.
#
# Environment: BENCH_PAIRS (1000), BENCH_WINDOW (4), BENCH_DURATION (10),
# BENCH_RATE (1000), BENCH_PORT (25400), BENCH_HTTP_BATCH (100),
# BENCH_ROUNDS (3), BENCH_OUT (keep the JSON lines), BENCH_PERF_DIR (record
# `perf record -g` of each chat-pusher-on server there).
set -eu
. "$(dirname "$0")/bench-lib.sh"

B=${MK_TOP_BUILDDIR:-.}
PAIRS=${BENCH_PAIRS:-1000}
WINDOW=${BENCH_WINDOW:-4}
DURATION=${BENCH_DURATION:-10}
RATE=${BENCH_RATE:-1000}
PORT=${BENCH_PORT:-25400}
ROUNDS=${BENCH_ROUNDS:-3}
BENCH="$B/tools/bench/meerkat-bench"
P="--port $PORT"

DIR=$(mktemp -d /tmp/mk-bench-pusher.XXXXXX)
RESULTS="$DIR/results.jsonl"
SRV_PID=
WEBHOOK_PID=
HANG_PID=
RABBIT_PGID=
PERF_PID=
cleanup() {
    [ -n "$PERF_PID" ] && kill -INT "$PERF_PID" 2>/dev/null && wait "$PERF_PID" 2>/dev/null || true
    [ -n "$SRV_PID" ] && kill "$SRV_PID" 2>/dev/null && wait "$SRV_PID" 2>/dev/null || true
    [ -n "$WEBHOOK_PID" ] && kill "$WEBHOOK_PID" 2>/dev/null && wait "$WEBHOOK_PID" 2>/dev/null || true
    [ -n "$HANG_PID" ] && kill "$HANG_PID" 2>/dev/null && wait "$HANG_PID" 2>/dev/null || true
    [ -n "$RABBIT_PGID" ] && stop_rabbit "$RABBIT_PORT"
    if [ -n "${BENCH_OUT:-}" ]; then cp "$RESULTS" "$BENCH_OUT"; fi
    rm -rf "$DIR"
}
trap cleanup EXIT INT TERM

write_config() {
    bench_meerkat_config "$DIR" "$PORT" "$1" "${2:-}"
}

start_meerkat() {
    bench_start_meerkat "$PORT" "$1" "${2:-}"
}

stop_server() {
    bench_stop_server
}

run() {
    bench_run "$@"
}

. "$(dirname "$0")/bench-pusher.sh"

# The server's CPU seconds by thread name ("mk-push-http 0.52 ..."), from
# /proc: the backends' threads work only on the measured window's events.
thread_cpu() {
    local tck t
    tck=$(getconf CLK_TCK)
    for t in /proc/"$SRV_PID"/task/*; do
        # comm may hold spaces: the fields after ") " are what is counted.
        sed -e 's/^[0-9]* (\(.*\)) /\1\t/' "$t/stat"
    done | awk -F'\t' -v tck="$tck" '{ split($2, f, " "); cpu[$1] += (f[12] + f[13]) / tck }
        END { for (c in cpu) printf "%s %.2f ", c, cpu[c]; print "" }'
}

# The hanging webhook listens beside the answering one for the whole series.
HANG_PORT=$((WEBHOOK_PORT + 1))
HANG_ON="backends = http
http_url = http://127.0.0.1:$HANG_PORT/events
http_timeout = 2
http_retries = 0"

echo "bench: provisioning $((2 * PAIRS)) accounts" >&2
write_config plain
"$B/tools/meerkatctl" -c "$DIR/meerkat.conf" register-bulk bench "$((2 * PAIRS))" localhost secret

start_webhook ""
python3 "$(dirname "$0")/bench-webhook.py" "$HANG_PORT" --hang 2>>"$DIR/webhook.log" &
HANG_PID=$!
bench_wait_port "$HANG_PORT"
ON="$HTTP_ON"
if [ -x /usr/lib/rabbitmq/bin/rabbitmq-server ]; then
    start_rabbit "$RABBIT_PORT"
    ON="$ALL_ON"
else
    echo "bench: no rabbitmq-server: chat-pusher-on runs the http backend only" >&2
fi

for i in $(seq "$ROUNDS"); do
    start_meerkat plain
    run meerkat chat-pusher-off $P $CHAT
    stop_server
    start_meerkat_pusher "$ON"
    if [ -n "${BENCH_PERF_DIR:-}" ]; then
        perf record -F 499 -g -p "$SRV_PID" -o "$BENCH_PERF_DIR/perf-on-$i.data" >/dev/null 2>&1 &
        PERF_PID=$!
    fi
    run meerkat chat-pusher-on $P $CHAT
    thread_cpu >>"$DIR/threads.txt"
    if [ -n "$PERF_PID" ]; then
        kill -INT "$PERF_PID" 2>/dev/null || true
        wait "$PERF_PID" 2>/dev/null || true
        PERF_PID=
    fi
    stop_server
    grep -h "metric default.mod_event_pusher" "$DIR/meerkatd.log" >&2 || true
    start_meerkat_pusher "$HANG_ON"
    run meerkat chat-pusher-hang $P $CHAT
    stop_server
done

python3 - "$RESULTS" "$DIR/threads.txt" <<'EOF'
import json, statistics, sys
runs = {}
msgs = []
for line in open(sys.argv[1]):
    r = json.loads(line)
    runs.setdefault(r["test"], []).append(r["result"].get("messages_per_cpu_s", 0))
    if r["test"] == "chat-pusher-on":
        msgs.append(r["result"].get("messages", 0))
# The on runs' backend threads, in microseconds of CPU per message.
for n, line in zip(msgs, open(sys.argv[2])):
    f = line.split()
    cpu = dict(zip(f[::2], map(float, f[1::2])))
    print("on: %d messages; per message (us): %s" % (n, "  ".join(
        "%s %.2f" % (k, v * 1e6 / max(n, 1)) for k, v in sorted(cpu.items()))))
off = statistics.median(runs.get("chat-pusher-off", [0])) or 1
for t in ("chat-pusher-off", "chat-pusher-on", "chat-pusher-hang"):
    v = runs.get(t, [])
    m = statistics.median(v) if v else 0
    print("%-18s %s  median %.0f  %.2f of off" % (t, " / ".join("%.0f" % x for x in v), m, m / off))
EOF
