#!/bin/sh
# Builds Meerkat and runs it in the foreground for the domain "localhost",
# everything kept in ./state/ of the source tree:
#
#   state/meerkat.conf      the configuration (written once; edit it freely)
#   state/conf.d/           enabled modules: symlinks into conf.d/available/
#                           (every module; mod_register is a file that
#                           allows in-band registration on localhost)
#   state/meerkat.db        the sqlite database (accounts, rosters)
#   state/meerkat.crt/.key  a self-signed certificate made on first start
#   state/demo-password     the password of demo@localhost
#   state/admin-password    the password of the admin REST API (user admin)
#
# Clients connect to 127.0.0.1:5222 (STARTTLS offered, self-signed
# certificate); the admin REST API (docs/api.md) is on
# http://127.0.0.1:8088/api, loopback only. Installs the build packages first when some are missing
# (Debian 12; as root, or through sudo). Stop the server with Ctrl-C.
set -eu

top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
build=$top/_build
state=$top/state

# ---- packages -----------------------------------------------------------

packages="autoconf automake libtool pkg-config gcc make
libglib2.0-dev libgnutls28-dev libxml2-dev libdbi-dev libsqlite3-dev
libgsasl-dev libidn-dev libmicrohttpd-dev libjson-glib-dev
libhiredis-dev libsoup-3.0-dev librabbitmq-dev"
missing=
for p in $packages; do
    if ! dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q 'install ok installed'; then
        missing="$missing $p"
    fi
done
if [ -n "$missing" ]; then
    echo "quickstart: installing:$missing"
    if [ "$(id -u)" -eq 0 ]; then
        sudo=
    elif command -v sudo >/dev/null 2>&1; then
        sudo=sudo
    else
        echo "quickstart: missing packages:$missing (run as root or install sudo)" >&2
        exit 1
    fi
    # shellcheck disable=SC2086
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get update
    # shellcheck disable=SC2086
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y $missing
fi

# ---- build --------------------------------------------------------------

if [ ! -x "$top/configure" ]; then
    echo "quickstart: ./autogen.sh"
    ./autogen.sh >/dev/null
fi
mkdir -p "$build"
if [ ! -f "$build/Makefile" ]; then
    echo "quickstart: configuring in _build/"
    (cd "$build" && "$top/configure" -q >configure-output.txt 2>&1) || {
        tail -n 30 "$build/configure-output.txt"
        exit 1
    }
fi
echo "quickstart: building in _build/"
make -C "$build" -j2 -s

meerkatd=$build/core/meerkatd
meerkatctl=$build/tools/meerkatctl

# ---- state --------------------------------------------------------------

mkdir -p "$state"
conf=$state/meerkat.conf
if [ ! -f "$conf" ]; then
    cat >"$conf" <<EOF
# Written by tools/quickstart.sh; edit freely (it is not overwritten).
# The format is described in docs/operations.md.
[general]
hosts = localhost
state_dir = $state
module_dir = $build/modules/.libs
conf_dir = conf.d
log_level = info

[storage]
driver = sqlite3
database = meerkat.db

[listen.c2s]
type = c2s
address = 127.0.0.1
port = 5222
tls = optional
EOF
    echo "quickstart: wrote $conf"
fi
# The admin REST API (mod_rest_admin) on loopback; added once to a
# configuration written before it existed.
if ! grep -q '^type = http' "$conf"; then
    cat >>"$conf" <<EOF

# The admin REST API (docs/api.md): loopback only, user admin, the
# password in state/admin-password.
[listen.api]
type = http
address = 127.0.0.1
port = 8088
EOF
fi
adminpw=$state/admin-password
if [ ! -s "$adminpw" ]; then
    (umask 077 && head -c 64 /dev/urandom | od -An -tx1 | tr -d ' \n' | head -c 20 >"$adminpw")
fi

# Modules are enabled once, when state/conf.d/ is made; remove a symlink
# to disable one (and send SIGHUP, or restart).
if [ ! -d "$state/conf.d" ]; then
    mkdir -p "$state/conf.d"
    # Every module in conf.d/available/ is enabled for the demo.
    for f in "$top"/conf.d/available/mod_*.conf; do
        [ -f "$f" ] || continue
        ln -s "../../conf.d/available/$(basename "$f")" "$state/conf.d/$(basename "$f")"
    done
    # The shipped mod_rest_admin.conf has no password (it refuses every
    # request): the demo's, written below, reads state/admin-password.
    if [ -f "$top/conf.d/available/mod_rest_admin.conf" ]; then
        rm "$state/conf.d/mod_rest_admin.conf"
    fi
    # The same for mod_muc_light's admin room endpoints (/api/muc-lights).
    if [ -f "$top/conf.d/available/mod_muc_light.conf" ]; then
        rm "$state/conf.d/mod_muc_light.conf"
        cat >"$state/conf.d/mod_muc_light.conf" <<EOF
# Written by tools/quickstart.sh: conf.d/available/mod_muc_light.conf with
# the admin REST endpoints' password in state/admin-password.
[mod_muc_light]
rest_admin_password_file = $adminpw
EOF
    fi
    # And for mod_muc's admin room endpoints (/api/mucs).
    if [ -f "$top/conf.d/available/mod_muc.conf" ]; then
        rm "$state/conf.d/mod_muc.conf"
        cat >"$state/conf.d/mod_muc.conf" <<EOF
# Written by tools/quickstart.sh: conf.d/available/mod_muc.conf with
# the admin REST endpoints' password in state/admin-password.
[mod_muc]
rest_admin_password_file = $adminpw
EOF
    fi
    # In-band registration is off in the shipped file (open registration
    # draws spam accounts); the local demo turns it on for localhost.
    if [ -f "$top/conf.d/available/mod_register.conf" ]; then
        rm "$state/conf.d/mod_register.conf"
        cat >"$state/conf.d/mod_register.conf" <<EOF
# Written by tools/quickstart.sh: conf.d/available/mod_register.conf with
# registration allowed, for the local demo only.
[mod_register]
allow_registration = true
EOF
    fi
fi

if [ -f "$top/conf.d/available/mod_rest_admin.conf" ] &&
    [ ! -e "$state/conf.d/mod_rest_admin.conf" ]; then
    cat >"$state/conf.d/mod_rest_admin.conf" <<EOF
# Written by tools/quickstart.sh: the admin REST API for the local demo,
# user admin, password in state/admin-password.
[mod_rest_admin]
username = admin
password_file = $adminpw
EOF
fi

"$meerkatd" -c "$conf" --check-config >/dev/null || {
    echo "quickstart: $conf is not valid (see above)" >&2
    exit 1
}

# ---- the demo user ------------------------------------------------------

pwfile=$state/demo-password
if [ ! -s "$pwfile" ]; then
    (umask 077 && head -c 64 /dev/urandom | od -An -tx1 | tr -d ' \n' | head -c 16 >"$pwfile")
fi
password=$(cat "$pwfile")
if ! "$meerkatctl" -c "$conf" check_account demo localhost 2>/dev/null; then
    "$meerkatctl" -c "$conf" register demo localhost "$password"
fi

cat <<EOF

  Meerkat is starting on 127.0.0.1:5222 for the domain localhost.
  Log in with an XMPP client as:

      JID:       demo@localhost
      password:  $password

  (STARTTLS with a self-signed certificate in state/meerkat.crt.)

  The admin REST API (docs/api.md) answers on 127.0.0.1:8088:

      user:      admin
      password:  $(cat "$adminpw")

      curl -u admin:$(cat "$adminpw") http://127.0.0.1:8088/api/users/localhost
  Add users with:
      $meerkatctl -c $conf register NAME localhost PASSWORD
  or from a client: in-band registration is allowed on this demo server.
  Stop with Ctrl-C.

EOF
exec "$meerkatd" -c "$conf"
