# Shell functions shared by tools/bench/bench-run.sh (make bench) and
# tools/bench/bench-peers; sourced, not run. They use the caller's variables:
#   B        the build directory (tools/bench/meerkat-bench, core/meerkatd)
#   BENCH    the generator, $B/tools/bench/meerkat-bench
#   RESULTS  the JSON-lines file the runs are appended to
#   SRV_PIDS the server's process ids, comma-separated (--server-pid)

# $1: port, $2: seconds to wait (default 10). Bash for /dev/tcp.
bench_wait_port() {
    local i=0 max=$((${2:-10} * 10))
    while ! (exec 3<>/dev/tcp/127.0.0.1/$1) 2>/dev/null; do
        i=$((i + 1))
        if [ $i -gt $max ]; then
            echo "bench: nothing listens on port $1" >&2
            return 1
        fi
        sleep 0.1
    done
}

# The meerkatd configuration of the benchmark, in directory $1 (state,
# conf.d and meerkat.conf made there): c2s on 127.0.0.1 port $2, accounts
# of password_format $3. Two workers, sqlite, STARTTLS optional, modules
# roster + disco + ping (and the modules named in $4, e.g. "mam"),
# warnings only, accept queue of 4,096, no idle timeout (idle sessions
# are what is measured). With BENCH_PG_PORT set, the storage is the
# PostgreSQL on that port of 127.0.0.1 (database and user meerkat).
bench_meerkat_config() {
    mkdir -p "$1/state" "$1/conf.d"
    rm -f "$1"/conf.d/mod_*.conf
    for m in roster disco ping ${4:-}; do
        [ -f "$B/modules/.libs/mod_$m.so" ] && : >"$1/conf.d/mod_$m.conf"
    done
    cat >"$1/meerkat.conf" <<EOF2
[general]
hosts = localhost
state_dir = state
module_dir = $B/modules/.libs
conf_dir = conf.d
workers = 2
log_level = warning

[auth]
mechanisms = PLAIN;SCRAM-SHA-256
password_format = $3

$(bench_storage)

[listen.c2s]
type = c2s
address = 127.0.0.1
port = $2
tls = optional
backlog = 4096
idle_timeout = 0
EOF2
}

# The [storage] section of bench_meerkat_config.
bench_storage() {
    if [ -n "${BENCH_PG_PORT:-}" ]; then
        printf '[storage]\ndriver = pgsql\nhost = 127.0.0.1\nport = %s\ndatabase = meerkat\nuser = meerkat\n' "$BENCH_PG_PORT"
    else
        printf '[storage]\ndriver = sqlite3\ndatabase = meerkat.db\n'
    fi
}

# $1: server label, $2: test label, rest: generator options. Appends
# {"server", "test", "result"} to $RESULTS ("result": {} when the
# generator printed nothing).
bench_run() {
    local srv=$1 label=$2 out
    shift 2
    echo "bench: $srv $label: $*" >&2
    out=$("$BENCH" --server-pid "$SRV_PIDS" "$@") || true
    [ -n "$out" ] || out='{}'
    printf '{"server": "%s", "test": "%s", "result": %s}\n' "$srv" "$label" "$out" >>"$RESULTS"
}

# Fills the archives of users bench0 .. bench($2 - 1) with $3 messages
# each, in database $1, as mod_mam writes them: one tenth with the pair
# partner bench(n xor 1), the rest with nine other users, IDs one
# millisecond apart: each text once in mam_message, each archive's entry
# in mam_entry. mod_mam must have created its tables (started once).
bench_mam_prefill() {
    local n=$(($2 * $3))
    echo "bench: filling $2 archives with $3 messages each ($n rows)" >&2
    sqlite3 "$1" <<EOF2
PRAGMA journal_mode = WAL;
BEGIN;
INSERT OR IGNORE INTO mam_archive (username, domain)
WITH RECURSIVE a(o) AS (SELECT 0 UNION ALL SELECT o + 1 FROM a WHERE o < $2 - 1)
SELECT 'bench' || o, 'localhost' FROM a;
CREATE TEMP TABLE w AS
WITH RECURSIVE r(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM r WHERE i < $n - 1),
u(i, o, m) AS (SELECT i, i % $2, (i / $2) % 10 FROM r)
SELECT i, o, CASE m WHEN 0 THEN o + 1 - 2 * (o % 2) ELSE (o + m + 1) % $2 END AS p FROM u;
INSERT INTO mam_message (id, from_bare, origin_id, xml)
SELECT (1700000000000000 + i * 1000) * 256, 'bench' || p || '@localhost', NULL,
       '<message xmlns=''jabber:client'' from=''bench' || p || '@localhost/r'' to=''bench' || o ||
       '@localhost'' type=''chat''><body>archived message ' || i || '</body></message>'
FROM w;
INSERT INTO mam_entry (archive, id, with_bare, with_resource)
SELECT x.number, (1700000000000000 + i * 1000) * 256, 'bench' || p || '@localhost', 'r'
FROM w JOIN mam_archive x ON x.username = 'bench' || w.o AND x.domain = 'localhost'
ORDER BY x.number, i;
COMMIT;
EOF2
}

# ---- several meerkatd nodes (bench-cluster.sh, bench-gd.sh) -----------------
# They use, besides the above: DIR (the run's directory), PIDS (the nodes'
# process ids), REDIS_PIDS (the redis-servers') and a function
# node_config, defined by the caller, that writes one node's meerkat.conf
# from the words it is given (the first two: the node's directory and its
# client port).

# $1: the run's name. Makes DIR and RESULTS, and stops whatever the run
# started when the script ends (BENCH_OUT: keep the results there;
# BENCH_KEEP: keep DIR).
bench_setup() {
    DIR=$(mktemp -d "/tmp/mk-bench-$1.XXXXXX")
    RESULTS="$DIR/results.jsonl"
    PIDS=
    REDIS_PIDS=
    trap bench_cleanup EXIT INT TERM
}

bench_cleanup() {
    for p in ${SRV_PID:-} $PIDS $REDIS_PIDS; do kill "$p" 2>/dev/null && wait "$p" 2>/dev/null || true; done
    if [ -n "${BENCH_OUT:-}" ]; then cp "$RESULTS" "$BENCH_OUT"; fi
    if [ -n "${BENCH_KEEP:-}" ]; then echo "bench: kept $DIR" >&2; else rm -rf "$DIR"; fi
}

# $1: client port, $2: password_format, $3: more modules. A fresh
# meerkatd on a fresh config in DIR, for one scenario (so RSS starts
# clean); SRV_PID and SRV_PIDS name it, bench_stop_server ends it.
bench_start_meerkat() {
    bench_meerkat_config "$DIR" "$1" "$2" "${3:-}"
    "$B/core/meerkatd" --config "$DIR/meerkat.conf" >>"$DIR/meerkatd.log" 2>&1 &
    SRV_PID=$!
    SRV_PIDS=$SRV_PID
    bench_wait_port "$1"
}

bench_stop_server() {
    kill "$SRV_PID" 2>/dev/null || true
    wait "$SRV_PID" 2>/dev/null || true
    SRV_PID=
}

# $1: port. A private redis-server without persistence, in DIR.
bench_redis() {
    redis-server --port "$1" --bind 127.0.0.1 --save "" --appendonly no \
        --dir "$DIR" >"$DIR/redis-$1.log" 2>&1 &
    REDIS_PIDS="$REDIS_PIDS $!"
    bench_wait_port "$1"
}

# $1: meerkat.conf to adjust: sqlite database $2 (none: as written),
# BENCH_LOG's log level.
bench_node_tweak() {
    [ -n "${2:-}" ] && sed -i "s|^database = meerkat.db|database = $2|" "$1"
    [ -n "${BENCH_LOG:-}" ] && sed -i "s|^log_level = .*|log_level = $BENCH_LOG|" "$1"
    return 0
}

# Appends to $1 (a meerkat.conf) the [cluster] section of node $2 ("nN")
# on the cluster Redis at port $3.
bench_cluster_section() {
    cat >>"$1" <<EOF2

[cluster]
name = $2
node_number = ${2#n}
redis_port = $3
secret = bench-cluster-secret-0123456789
link_port = 0
EOF2
}

# $@: each node's node_config words, nodes separated by "--". Starts them
# all, waits for their client ports, sets PIDS and SRV_PIDS. The nodes of
# a cluster find each other within a heartbeat period (0.5 s) and regions
# advertise their link endpoint once Redis answered: BENCH_SETTLE seconds
# (default 2) before measuring. BENCH_WAIT: seconds to wait for a port.
bench_start_nodes() {
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
        # BENCH_WRAP (e.g. "valgrind --tool=callgrind"): the first node
        # runs under it, for instruction counts.
        local wrap=
        [ -z "$PIDS" ] && wrap=${BENCH_WRAP:-}
        $wrap "$B/core/meerkatd" --config "${args[0]}/meerkat.conf" >>"${args[0]}/meerkatd.log" 2>&1 &
        PIDS="$PIDS $!"
        ports="$ports ${args[1]}"
    done
    for p in $ports; do bench_wait_port "$p" "${BENCH_WAIT:-10}"; done
    SRV_PIDS=$(echo $PIDS | tr ' ' ,)
    sleep "${BENCH_SETTLE:-2}"
}

bench_stop_nodes() {
    for p in $PIDS; do kill "$p" 2>/dev/null || true; done
    for p in $PIDS; do wait "$p" 2>/dev/null || true; done
    PIDS=
}

# $1: servers as "label=server,..." (columns, in order), rest: rows as
# "label|test|key|scale" (key: dotted path in the result). The table of
# $RESULTS, with the ratio of the last two columns.
bench_compare() {
    python3 "$(dirname "${BASH_SOURCE[0]}")/bench-compare.py" "$RESULTS" "$@"
}
