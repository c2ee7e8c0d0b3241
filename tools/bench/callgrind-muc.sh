#!/bin/bash
# User-space instructions per delivered groupchat copy (docs/benchmarks.md,
# "MUC fan-out"): meerkatd under callgrind, the muc scenario with ROOMS
# rooms of 100 at RATE messages/s; the counters are zeroed once the joins
# are done (the server idle during --settle) and dumped WINDOW seconds
# into the traffic. Prints instructions, copies (calls of
# transport_deliver) and their quotient; the profile stays in OUT.
#
#   tools/bench/callgrind-muc.sh BUILDDIR OUT [ROOMS RATE WINDOW]
#   (defaults 2 rooms, 20 msg/s, 20 s)
set -eu

B=$(cd "${1:?usage: $0 BUILDDIR OUT [ROOMS RATE WINDOW]}" && pwd)
OUT=${2:?}
ROOMS=${3:-2}
RATE=${4:-20}
WINDOW=${5:-20}
PORT=${BENCH_PORT:-25470}
. "$(dirname "$0")/bench-lib.sh"

DIR=$(mktemp -d /tmp/mk-cg.XXXXXX)
VG= GEN=
cleanup() {
    [ -n "$GEN" ] && kill "$GEN" 2>/dev/null || true
    [ -n "$VG" ] && kill "$VG" 2>/dev/null && wait "$VG" 2>/dev/null || true
    rm -rf "$DIR"
}
trap cleanup EXIT INT TERM

bench_meerkat_config "$DIR" "$PORT" plain muc
"$B/tools/meerkatctl" -c "$DIR/meerkat.conf" register-bulk bench $((ROOMS * 100)) localhost secret
valgrind --tool=callgrind --callgrind-out-file="$OUT" \
    "$B/core/meerkatd" --config "$DIR/meerkat.conf" >"$DIR/vg.log" 2>&1 &
VG=$!
bench_wait_port "$PORT" 120

# Server CPU ticks (utime + stime) of the valgrind process.
ticks() { awk '{print $14 + $15}' "/proc/$VG/stat"; }
# Waits until the server used less (idle, $1 = lt) or more (busy, gt)
# than 10 ticks in a second.
wait_cpu() {
    local a b
    a=$(ticks)
    while :; do
        sleep 1
        b=$(ticks)
        if [ "$1" = lt ] && [ $((b - a)) -lt 10 ]; then return; fi
        if [ "$1" = gt ] && [ $((b - a)) -gt 10 ]; then return; fi
        a=$b
    done
}

"$B/tools/bench/meerkat-bench" --port "$PORT" -s muc -n $((ROOMS * 100)) --occupants 100 \
    --msg-rate "$RATE" -D $((WINDOW + 30)) -j 1 -r 200 --settle 40 >"$DIR/bench.json" &
GEN=$!
# Logins and joins keep the server busy; then the settle leaves it idle.
wait_cpu gt
wait_cpu lt
callgrind_control -z "$VG" >/dev/null
wait_cpu gt
sleep "$WINDOW"
callgrind_control -d "$VG" >/dev/null
kill "$GEN" 2>/dev/null || true
wait "$GEN" 2>/dev/null || true
GEN=
kill "$VG"
wait "$VG" 2>/dev/null || true
VG=
# The dump made by -d is OUT.1 (the final one at exit is OUT).
F=$OUT.1
[ -f "$F" ] || F=$(ls "$OUT".* | head -1)
# Instructions: the summary line; copies: the calls of transport_deliver
# (the "calls=" lines after each "cfn=" naming it; names are compressed
# to "(id)" after their first mention).
python3 - "$F" <<'EOF2'
import re, sys
names, total, calls, cur = {}, 0, 0, None
for line in open(sys.argv[1]):
    if line.startswith("summary:"):
        total = int(line.split()[1])
    m = re.match(r"c?fn=\((\d+)\)(?: (.*))?", line)
    if m:
        if m.group(2):
            names[m.group(1)] = m.group(2).strip()
        cur = names.get(m.group(1)) if line.startswith("cfn=") else None
        continue
    if line.startswith("calls=") and cur == "transport_deliver":
        calls += int(line.split("=")[1].split()[0])
        cur = None
print(f"profile {sys.argv[1]}: {total} instructions, {calls} copies, "
      f"{total / max(calls, 1):.0f} per copy")
EOF2
