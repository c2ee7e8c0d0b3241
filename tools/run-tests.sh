#!/bin/sh
# Builds Meerkat twice and runs the whole test suite in each build:
#
#   _build/       --enable-werror                 make check
#   _build-asan/  --enable-werror --enable-asan   make check (AddressSanitizer
#                                                 + UndefinedBehaviorSanitizer)
#
# Installs the build and test packages first when some are missing (Debian
# 12; as root, or through sudo). Then adds up the result of every test case
# (each *.trs of both builds, one line per case) and ends with the line
#
#   N passed, M failed
#
# exiting non-zero when anything failed (a build that does not compile
# counts as one failure). The logs of failing tests are printed above it.
#
# Then the packages (packaging/test-packages.sh, as root only): the .deb
# and .rpm built from the release tarball in _build-pkg/, the .deb
# installed into this machine, run as its systemd unit would, and purged;
# its TAP cases are counted with the others.
#
# Environment: JOBS (default 2) for make -j; MK_SKIP_ASAN=1 runs the
# plain build only; MK_SKIP_PACKAGES=1 leaves the packages out.
set -u

top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
jobs=${JOBS:-2}

# ---- packages -----------------------------------------------------------

packages="autoconf automake libtool pkg-config gcc make
libglib2.0-dev libgnutls28-dev libxml2-dev libdbi-dev libdbd-pgsql
libsqlite3-dev
libgsasl-dev libidn-dev libstrophe-dev postgresql sqlite3 python3 python3-slixmpp
python3-nbxmpp clang-format"
# tests/integration/test-metrics-prom.py: the text format's parser, promtool.
packages="$packages python3-prometheus-client prometheus"
# The http listener, its JSON, the /metrics parser, the rest bench's client.
packages="$packages libmicrohttpd-dev libjson-glib-dev python3-prometheus-client wrk"
# The cluster's Redis client and server (tests/integration/test-cluster.py).
packages="$packages libhiredis-dev redis-server"
# mod_event_pusher's http (libsoup) and rabbit backends, the test's broker
# and its AMQP consumer.
packages="$packages libsoup-3.0-dev librabbitmq-dev rabbitmq-server python3-pika"
# The package test's own tools; it runs (and so needs them) only as root.
if [ "$(id -u)" -eq 0 ] && [ "${MK_SKIP_PACKAGES:-0}" != 1 ]; then
    packages="$packages debhelper dpkg-dev fakeroot lintian rpm openssl adduser man-db"
fi

missing=
for p in $packages; do
    if ! dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q 'install ok installed'; then
        missing="$missing $p"
    fi
done
if [ -n "$missing" ]; then
    echo "run-tests: installing:$missing"
    if [ "$(id -u)" -eq 0 ]; then
        sudo=
    elif command -v sudo >/dev/null 2>&1; then
        sudo=sudo
    else
        echo "run-tests: missing packages:$missing (run as root or install sudo)" >&2
        exit 1
    fi
    # shellcheck disable=SC2086
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get update &&
        $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y $missing || {
        echo "run-tests: apt-get failed" >&2
        exit 1
    }
fi

# ---- build and test -----------------------------------------------------

./autogen.sh >/dev/null 2>&1 || {
    echo "run-tests: ./autogen.sh failed:" >&2
    ./autogen.sh
    exit 1
}

build_failures=0

# run_build DIR CONFIGURE-ARGS...: configure, build, make check in DIR.
run_build() {
    dir=$1
    shift
    echo "run-tests: === $dir: configure $* ==="
    mkdir -p "$top/$dir"
    # Stale results from an earlier run must not be counted.
    find "$top/$dir" \( -name '*.trs' -o -name '*.log' \) -type f -delete 2>/dev/null
    # configure's own "rm -f core" complains about the core/ folder of
    # the build tree (harmless: Makefile.am removes the confdefs.h it
    # leaves), so its output is shown only on failure.
    if ! (cd "$top/$dir" && "$top/configure" -q "$@" >configure-output.txt 2>&1); then
        tail -n 30 "$top/$dir/configure-output.txt"
        echo "run-tests: $dir: configure failed (see $dir/config.log)"
        build_failures=$((build_failures + 1))
        return
    fi
    echo "run-tests: === $dir: make -j$jobs ==="
    if ! make -C "$top/$dir" -j"$jobs" -s >"$top/$dir/build-output.txt" 2>&1; then
        tail -n 60 "$top/$dir/build-output.txt"
        echo "run-tests: $dir: build failed"
        build_failures=$((build_failures + 1))
        return
    fi
    echo "run-tests: === $dir: make -j$jobs check ==="
    # make check fails when a test fails; the per-case counts below say
    # what failed, so its status is not needed here.
    make -C "$top/$dir" -j"$jobs" check >"$top/$dir/check-output.txt" 2>&1
    grep -E '^(PASS|FAIL|ERROR|XPASS|SKIP|XFAIL):|^# (TOTAL|PASS|FAIL|ERROR|SKIP)' \
        "$top/$dir/check-output.txt" | grep -vE '^(PASS|SKIP|XFAIL):' | head -n 100
    if [ -z "$(find "$top/$dir" -name '*.trs' -type f | head -n 1)" ]; then
        tail -n 60 "$top/$dir/check-output.txt"
        echo "run-tests: $dir: make check ran no test"
        build_failures=$((build_failures + 1))
    fi
}

run_build _build --enable-werror
if [ "${MK_SKIP_ASAN:-0}" != 1 ]; then
    # Leak checking is on: meerkatd and every test program must free what
    # they allocate (tests/unit/test-db keeps libdbi's PostgreSQL driver
    # mapped so that its statics stay reachable).
    ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}
    UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
    export ASAN_OPTIONS UBSAN_OPTIONS
    run_build _build-asan --enable-werror --enable-asan
fi

# The release tarball: everything needed to build is in it, and a build
# from it installs and uninstalls cleanly (make distcheck). Its tests ran
# above already, so the inner make check runs none (TESTS=); it counts as
# one test case.
dist_passed=0
if [ -f "$top/_build/Makefile" ]; then
    echo "run-tests: === _build: make distcheck ==="
    if make -C "$top/_build" -j"$jobs" distcheck TESTS= >"$top/_build/distcheck-output.txt" 2>&1; then
        dist_passed=1
    else
        tail -n 40 "$top/_build/distcheck-output.txt"
        echo "run-tests: make distcheck failed"
        build_failures=$((build_failures + 1))
    fi
fi

# The packages, end to end (skipped as one case when not root). Their TAP
# goes to _build/packages.tap, outside the folder the test empties.
pkg_passed=0
pkg_failed=0
pkg_skipped=0
pkg_tap=$top/_build/packages.tap
if [ "${MK_SKIP_PACKAGES:-0}" != 1 ] && [ -f "$top/_build/Makefile" ]; then
    echo "run-tests: === _build-pkg: packages (.deb, .rpm, install, run, purge) ==="
    JOBS=$jobs sh "$top/packaging/test-packages.sh" "$top/_build" "$top/_build-pkg" \
        >"$pkg_tap" 2>&1 </dev/null
    grep -E '^(not ok|# .* s$|# LimitNOFILE)|# SKIP' "$pkg_tap" | head -n 40
    pkg_passed=$(grep -E '^ok ' "$pkg_tap" | grep -cv '# SKIP')
    pkg_skipped=$(grep -cE '^ok .*# SKIP|^1\.\.0 # SKIP' "$pkg_tap")
    pkg_failed=$(grep -cE '^not ok ' "$pkg_tap")
    if ! grep -qE '^1\.\.[0-9]+' "$pkg_tap"; then
        tail -n 40 "$pkg_tap"
        echo "run-tests: the package test ended early"
        pkg_failed=$((pkg_failed + 1))
    fi
fi

# ---- results ------------------------------------------------------------

passed=0
failed=0
skipped=0
failing_logs=
for dir in _build _build-asan; do
    [ -d "$dir" ] || continue
    for trs in $(find "$dir" -name '*.trs' -type f | sort); do
        p=$(grep -cE '^:test-result: (PASS|XFAIL)' "$trs")
        f=$(grep -cE '^:test-result: (FAIL|ERROR|XPASS)' "$trs")
        s=$(grep -cE '^:test-result: SKIP' "$trs")
        passed=$((passed + p))
        failed=$((failed + f))
        skipped=$((skipped + s))
        if [ "$f" -gt 0 ]; then
            failing_logs="$failing_logs ${trs%.trs}.log"
        fi
    done
done
failed=$((failed + build_failures + pkg_failed))
passed=$((passed + dist_passed + pkg_passed))
skipped=$((skipped + pkg_skipped))

for log in $failing_logs; do
    echo
    echo "run-tests: ==== failing: $log (last 80 lines) ===="
    tail -n 80 "$log"
done
if [ "$pkg_failed" -gt 0 ]; then
    echo
    echo "run-tests: ==== failing: $pkg_tap (last 80 lines) ===="
    tail -n 80 "$pkg_tap"
fi
if [ -n "$failing_logs" ]; then
    echo
    echo "run-tests: failing test cases:"
    for log in $failing_logs; do
        grep -E '^(not ok|FAIL|ERROR|XPASS)' "$log" | sed "s|^|  ${log%.log}: |" | head -n 20
    done
fi

echo
echo "($skipped skipped)"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
