# The event pusher scenarios of `make bench` (docs/mod_event_pusher.md):
# chat with mod_event_pusher off, with its http (a webhook answering at
# once), rabbit (a private rabbitmq-server) and push backends on (every
# user online: push only looks), and with the
# http backend's webhook hanging. Sourced by bench-run.sh, whose variables
# and functions it uses (bench-pusher-series.sh too, for repeated series);
# meerkatd's CPU includes the backends' threads,
# the broker's and the webhook's do not count. BENCH_HTTP_BATCH (default
# 100) is the http backend's http_batch in chat-pusher-on.

# $1: the conf.d file of mod_event_pusher (its text).
start_meerkat_pusher() {
    write_config plain
    printf '[mod_event_pusher]\n%s\n' "$1" >"$DIR/conf.d/mod_event_pusher.conf"
    "$B/core/meerkatd" --config "$DIR/meerkat.conf" >>"$DIR/meerkatd.log" 2>&1 &
    SRV_PID=$!
    SRV_PIDS=$SRV_PID
    bench_wait_port "$PORT"
}

# A private RabbitMQ node on port $1, in $DIR/rabbit; RABBIT_PGID is its
# process group.
start_rabbit() {
    local d="$DIR/rabbit"
    mkdir -p "$d"
    echo '[].' >"$d/enabled_plugins"
    (
        export HOME="$d" RABBITMQ_NODENAME="mkbench$1@localhost" RABBITMQ_NODE_IP_ADDRESS=127.0.0.1 \
            RABBITMQ_NODE_PORT="$1" RABBITMQ_DIST_PORT=$(($1 + 1)) ERL_EPMD_PORT=$(($1 + 2)) \
            RABBITMQ_MNESIA_BASE="$d/mnesia" RABBITMQ_LOG_BASE="$d/log" \
            RABBITMQ_CONFIG_FILE="$d/rabbitmq" RABBITMQ_ADVANCED_CONFIG_FILE="$d/advanced.config" \
            RABBITMQ_CONF_ENV_FILE="$d/env" RABBITMQ_ENABLED_PLUGINS_FILE="$d/enabled_plugins"
        cd "$d" # Erlang writes its crash dumps to the current directory
        exec setsid /usr/lib/rabbitmq/bin/rabbitmq-server >"$d/out.log" 2>&1
    ) &
    RABBIT_PGID=$!
    bench_wait_port "$1" 90
}

stop_rabbit() {
    kill -TERM -"$RABBIT_PGID" 2>/dev/null || true
    wait "$RABBIT_PGID" 2>/dev/null || true
    ERL_EPMD_PORT=$(($1 + 2)) epmd -kill >/dev/null 2>&1 || true
}

# $1: --hang or nothing.
start_webhook() {
    python3 "$(dirname "${BASH_SOURCE[0]}")/bench-webhook.py" "$WEBHOOK_PORT" $1 2>>"$DIR/webhook.log" &
    WEBHOOK_PID=$!
    bench_wait_port "$WEBHOOK_PORT"
}

stop_webhook() {
    kill -TERM "$WEBHOOK_PID" 2>/dev/null || true
    wait "$WEBHOOK_PID" 2>/dev/null || true
}

WEBHOOK_PORT=$((PORT + 10))
RABBIT_PORT=$((PORT + 20))
CHAT="-s chat -P $PAIRS -w $WINDOW -D $DURATION -j 2 -r $RATE"
HTTP_KEYS="http_url = http://127.0.0.1:$WEBHOOK_PORT/events
http_timeout = 2
http_retries = 0"

# chat-pusher-on's configuration: every backend, or http alone where
# rabbitmq-server is not installed.
HTTP_ON="backends = http
$HTTP_KEYS
http_batch = ${BENCH_HTTP_BATCH:-100}"
ALL_ON="backends = http;rabbit;push
$HTTP_KEYS
http_batch = ${BENCH_HTTP_BATCH:-100}
rabbit_port = $RABBIT_PORT"
HANG_ON="backends = http
$HTTP_KEYS"

# The runs of `make bench`.
bench_pusher() {
    start_meerkat plain
    run meerkat chat-pusher-off $P $CHAT
    stop_server
    start_webhook ""
    if [ -x /usr/lib/rabbitmq/bin/rabbitmq-server ]; then
        start_rabbit "$RABBIT_PORT"
        start_meerkat_pusher "$ALL_ON"
        run meerkat chat-pusher-on $P $CHAT
        stop_server
        stop_rabbit "$RABBIT_PORT"
    else
        echo "bench: no rabbitmq-server: chat-pusher-on runs the http backend only" >&2
        start_meerkat_pusher "$HTTP_ON"
        run meerkat chat-pusher-on $P $CHAT
        stop_server
    fi
    stop_webhook
    grep -h "metric default.mod_event_pusher" "$DIR/meerkatd.log" >&2 || true
    start_webhook --hang
    start_meerkat_pusher "$HANG_ON"
    run meerkat chat-pusher-hang $P $CHAT
    stop_server
    stop_webhook
}
