#!/bin/sh
# The out-of-tree module example, end to end, as a third party would do it:
# install only the module headers and meerkat-module.pc into a private
# prefix, build tests/example-module with nothing but pkg-config, load the
# result into a real meerkatd and ask it for an echo with a real client
# (slixmpp, logging in anonymously). Prints TAP; ignores --tap.
set -u

top_builddir=${MK_TOP_BUILDDIR:-$(pwd)}
top_srcdir=${MK_TOP_SRCDIR:-$(cd "$(dirname "$0")/../.." && pwd)}
PYTHON=${MK_PYTHON:-/usr/bin/python3}
MEERKATD=$top_builddir/core/meerkatd

n=0
failed=0
ok() { n=$((n + 1)); echo "ok $n - $1"; }
not_ok() { n=$((n + 1)); failed=1; echo "not ok $n - $1"; }
diag() { sed 's/^/# /'; }

tmp=$(mktemp -d "${TMPDIR:-/tmp}/mk-example.XXXXXX")
pid=
cleanup() {
    if [ -n "$pid" ]; then
        kill "$pid" 2>/dev/null
        wait "$pid" 2>/dev/null
    fi
    rm -rf "$tmp"
}
trap cleanup EXIT INT TERM

echo "1..8"

# 1. Install just the API: headers and the .pc file. The .pc carries the
# configured prefix; a packager's DESTDIR staging would too, so relocate it
# the way a private-prefix install sees itself.
if make -s -C "$top_builddir" install-meerkatincludeHEADERS \
        install-nodist_meerkatincludeHEADERS install-nodist_pkgconfigDATA \
        prefix="$tmp/prefix" >"$tmp/install.log" 2>&1 &&
    [ -f "$tmp/prefix/include/meerkat/module.h" ] &&
    [ -f "$tmp/prefix/lib/pkgconfig/meerkat-module.pc" ]; then
    sed -i "s|^prefix=.*|prefix=$tmp/prefix|" "$tmp/prefix/lib/pkgconfig/meerkat-module.pc"
    ok "module headers and meerkat-module.pc installed into a private prefix"
else
    diag <"$tmp/install.log"
    not_ok "module headers and meerkat-module.pc installed into a private prefix"
fi

# 2. Build with the example's own Makefile, from a copy of the source so
# that no in-tree include path can leak in.
mkdir -p "$tmp/src" "$tmp/modules"
cp "$top_srcdir/tests/example-module/mod_example.c" "$top_srcdir/tests/example-module/mod_pinger.c" \
    "$top_srcdir/tests/example-module/Makefile" "$tmp/src/"
if PKG_CONFIG_PATH="$tmp/prefix/lib/pkgconfig" make -s -C "$tmp/src" O="$tmp/modules" \
        >"$tmp/build.log" 2>&1 && [ -f "$tmp/modules/mod_example.so" ]; then
    ok "mod_example.so built out of tree with pkg-config --cflags meerkat-module"
else
    diag <"$tmp/build.log"
    not_ok "mod_example.so built out of tree with pkg-config --cflags meerkat-module"
fi

# 3. It exports exactly the descriptor.
syms=$(nm -D --defined-only "$tmp/modules/mod_example.so" 2>/dev/null | awk '{print $3}' | grep -v '^_' | tr '\n' ' ')
if [ "$syms" = "mk_module_desc " ]; then
    ok "mod_example.so exports only mk_module_desc"
else
    echo "exported: $syms" | diag
    not_ok "mod_example.so exports only mk_module_desc"
fi
# mod_pinger: a whole server-pinging module in some 40 lines.
syms=$(nm -D --defined-only "$tmp/modules/mod_pinger.so" 2>/dev/null | awk '{print $3}' | grep -v '^_' | tr '\n' ' ')
if [ "$syms" = "mk_module_desc " ]; then
    ok "mod_pinger.so built out of tree, exports only mk_module_desc"
else
    diag <"$tmp/build.log"
    echo "exported: $syms" | diag
    not_ok "mod_pinger.so built out of tree, exports only mk_module_desc"
fi

# 4. A server with the module enabled (and nothing else) starts.
port=$("$PYTHON" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
mkdir -p "$tmp/etc/conf.d" "$tmp/state"
cat >"$tmp/etc/meerkat.conf" <<EOF
[general]
hosts = localhost
state_dir = $tmp/state
module_dir = $tmp/modules
conf_dir = conf.d
workers = 2
log_level = info

[auth]
anonymous_hosts = localhost
mechanisms = ANONYMOUS;PLAIN;SCRAM-SHA-1;SCRAM-SHA-256

[storage]
driver = sqlite3
database = meerkat.db

[listen.c2s]
type = c2s
address = 127.0.0.1
port = $port
tls = none
EOF
cat >"$tmp/etc/conf.d/mod_example.conf" <<EOF
[mod_example]
tag = out-of-tree
EOF
cat >"$tmp/etc/conf.d/mod_pinger.conf" <<EOF
[mod_pinger]
interval = 1
EOF
"$MEERKATD" --config "$tmp/etc/meerkat.conf" >"$tmp/meerkatd.log" 2>&1 &
pid=$!
up=no
for _ in $(seq 1 100); do
    if ! kill -0 "$pid" 2>/dev/null; then
        break
    fi
    if "$PYTHON" -c "import socket,sys; socket.create_connection(('127.0.0.1', $port), 0.2)" 2>/dev/null; then
        up=yes
        break
    fi
    sleep 0.1
done
if [ "$up" = yes ]; then
    ok "meerkatd starts with the out-of-tree module enabled"
else
    diag <"$tmp/meerkatd.log"
    not_ok "meerkatd starts with the out-of-tree module enabled"
fi

# 5. A real client gets its payload echoed, marked with the configured tag.
cat >"$tmp/client.py" <<'EOF'
import asyncio, sys, logging
import xml.etree.ElementTree as ET
import slixmpp

port = int(sys.argv[1])
result = {"ok": False, "why": "no answer"}

class Client(slixmpp.ClientXMPP):
    def __init__(self):
        # No node: slixmpp logs in with SASL ANONYMOUS.
        super().__init__("localhost", "")
        self.add_event_handler("session_start", self.start)
        self.add_event_handler("failed_auth", lambda *_: self.fail("auth failed"))

    def fail(self, why):
        result["why"] = why
        self.disconnect()

    async def start(self, _):
        iq = self.make_iq_get(ito="localhost")
        echo = ET.Element("{urn:example:echo}echo")
        echo.text = "hello meerkat"
        ET.SubElement(echo, "{urn:example:echo}part", {"n": "1"})
        iq.append(echo)
        try:
            reply = await iq.send(timeout=5)
        except Exception as e:  # IqError / IqTimeout
            self.fail("request failed: %r" % (e,))
            return
        got = reply.xml.find("{urn:example:echo}echo")
        if got is None:
            self.fail("no echo element in %s" % reply)
        elif got.text != "hello meerkat" or got.find("{urn:example:echo}part") is None:
            self.fail("payload changed: %s" % reply)
        elif got.get("tag") != "out-of-tree":
            self.fail("tag missing: %s" % reply)
        else:
            result["ok"] = True
            result["why"] = str(reply)
            self.disconnect()

c = Client()
# Loopback test server without TLS: nothing to protect here.
c.connect(("127.0.0.1", port), force_starttls=False, disable_starttls=True)
try:
    c.loop.run_until_complete(asyncio.wait_for(c.disconnected, 15))
except asyncio.TimeoutError:
    result["why"] = "timed out: " + result["why"]
print(result["why"])
sys.exit(0 if result["ok"] else 1)
EOF
if [ "$up" = yes ] && timeout 30 "$PYTHON" "$tmp/client.py" "$port" >"$tmp/client.log" 2>&1; then
    diag <"$tmp/client.log"
    ok "urn:example:echo answered with the payload and the configured tag"
else
    diag <"$tmp/client.log"
    tail -n 20 "$tmp/meerkatd.log" | diag
    not_ok "urn:example:echo answered with the payload and the configured tag"
fi

# 6. mod_pinger pings an idle client that answers (slixmpp's XEP-0199
# plugin) and leaves it connected; one that does not answer is closed.
for mode in answering silent; do
    if [ "$mode" = answering ]; then
        what="mod_pinger pings an idle client that answers, which stays connected"
    else
        what="mod_pinger closes a client that does not answer with connection-timeout"
    fi
    if [ "$up" = yes ] && timeout 60 "$PYTHON" "$top_srcdir/tests/integration/example-pinger.py" \
            "$mode" "$port" >"$tmp/$mode.log" 2>&1; then
        diag <"$tmp/$mode.log"
        ok "$what"
    else
        diag <"$tmp/$mode.log"
        tail -n 20 "$tmp/meerkatd.log" | diag
        not_ok "$what"
    fi
done

exit $failed
