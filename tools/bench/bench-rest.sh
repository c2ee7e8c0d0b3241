# The `rest` scenario of `make bench`, sourced by tools/bench/bench-run.sh
# (its variables and functions): POST /api/messages of the admin REST API
# (mod_rest_admin) over keep-alive connections from BENCH_REST_CLIENTS
# clients (wrk, with a Lua script that writes its summary as JSON),
# measured as requests per server CPU-second and latency percentiles.
# Each request sends a chat message from bench0 to bench1 (routed, then
# dropped: no session, no offline storage in the bench configuration).
#
#   BENCH_REST_CLIENTS=50   concurrent keep-alive connections
#   BENCH_REST_THREADS=1    wrk threads (the server needs the other core)
#
# bench_chat_scraped: the chat scenario again with GET /metrics scraped
# once a second (as Prometheus would), to compare with `chat`.

# Server CPU ticks (utime + stime) of $1.
bench_cpu_ticks() {
    awk '{ print $14 + $15 }' "/proc/$1/stat"
}

bench_rest() {
    local clients=${BENCH_REST_CLIENTS:-50} threads=${BENCH_REST_THREADS:-1}
    local http_port=$((PORT + 2)) pw=bench-admin
    if ! command -v wrk >/dev/null 2>&1; then
        echo "bench: rest: wrk is not installed (Debian package wrk); skipped" >&2
        return 0
    fi
    write_config plain
    cat >>"$DIR/meerkat.conf" <<EOF2

[listen.api]
type = http
address = 127.0.0.1
port = $http_port
max_connections = 10000
EOF2
    printf '[mod_rest_admin]\npassword = %s\n' "$pw" >"$DIR/conf.d/mod_rest_admin.conf"
    "$B/core/meerkatd" --config "$DIR/meerkat.conf" >>"$DIR/meerkatd.log" 2>&1 &
    SRV_PID=$!
    bench_wait_port "$http_port"
    local auth
    auth=$(printf 'admin:%s' "$pw" | base64)
    cat >"$DIR/rest.lua" <<EOF2
wrk.method = "POST"
wrk.body = '{"caller":"bench0@localhost","to":"bench1@localhost","body":"bench message"}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Basic $auth"
done = function(summary, latency, requests)
  local bad = summary.errors.status + summary.errors.connect + summary.errors.read
              + summary.errors.write + summary.errors.timeout
  io.write(string.format('{"requests": %d, "errors": %d, "duration_us": %d, ' ..
                         '"p50_us": %d, "p90_us": %d, "p99_us": %d, "max_us": %d}\n',
                         summary.requests, bad, summary.duration, latency:percentile(50),
                         latency:percentile(90), latency:percentile(99), latency.max))
end
EOF2
    echo "bench: meerkat rest: wrk -t$threads -c$clients -d${DURATION}s POST /api/messages" >&2
    # Warm-up (connections made, caches filled), then the measured run.
    wrk -t"$threads" -c"$clients" -d1s -s "$DIR/rest.lua" "http://127.0.0.1:$http_port/api/messages" \
        >/dev/null 2>&1 || true
    local hz before after out
    hz=$(getconf CLK_TCK)
    before=$(bench_cpu_ticks "$SRV_PID")
    out=$(wrk -t"$threads" -c"$clients" -d"${DURATION}s" -s "$DIR/rest.lua" \
        "http://127.0.0.1:$http_port/api/messages" | grep '^{"requests"' || true)
    after=$(bench_cpu_ticks "$SRV_PID")
    [ -n "$out" ] || out='{}'
    python3 - "$out" "$before" "$after" "$hz" "$clients" >>"$RESULTS" <<'EOF2'
import json, sys
w = json.loads(sys.argv[1])
cpu = (int(sys.argv[3]) - int(sys.argv[2])) / float(sys.argv[4])
r = {"clients": int(sys.argv[5]), "server_cpu_s": round(cpu, 3)}
if w:
    secs = w["duration_us"] / 1e6
    r.update({"requests": w["requests"], "errors": w["errors"],
              "requests_per_s": round(w["requests"] / secs, 1),
              "requests_per_cpu_s": round(w["requests"] / cpu, 1) if cpu > 0 else None,
              "latency_us": {"p50": w["p50_us"], "p90": w["p90_us"], "p99": w["p99_us"],
                             "max": w["max_us"]}})
print(json.dumps({"server": "meerkat", "test": "rest", "result": r}))
EOF2
    stop_server
}

bench_chat_scraped() {
    local http_port=$((PORT + 2)) scraper=
    write_config plain
    printf '\n[listen.metrics]\ntype = http\naddress = 127.0.0.1\nport = %s\nmetrics = true\n' \
        "$http_port" >>"$DIR/meerkat.conf"
    "$B/core/meerkatd" --config "$DIR/meerkat.conf" >>"$DIR/meerkatd.log" 2>&1 &
    SRV_PID=$!
    SRV_PIDS=$SRV_PID
    bench_wait_port "$PORT"
    bench_wait_port "$http_port"
    (while :; do
        exec 3<>"/dev/tcp/127.0.0.1/$http_port" || exit 0
        printf 'GET /metrics HTTP/1.1\r\nHost: b\r\nConnection: close\r\n\r\n' >&3
        cat <&3 >/dev/null
        exec 3<&-
        sleep 1
    done) &
    scraper=$!
    run meerkat chat-scraped --port "$PORT" -s chat -P "$PAIRS" -w "$WINDOW" -D "$DURATION" -j 2 \
        -r "$RATE"
    kill "$scraper" 2>/dev/null || true
    wait "$scraper" 2>/dev/null || true
    stop_server
}
