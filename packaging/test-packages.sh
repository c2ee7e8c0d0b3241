#!/bin/sh
# test-packages.sh BUILDDIR WORKDIR: the packages, end to end, as TAP.
#
# From the release tarball (make dist in BUILDDIR, a configured build
# tree), in WORKDIR (emptied first):
#
#   - builds the .deb packages (dpkg-buildpackage -us -uc -b) and runs
#     lintian on them (no errors allowed);
#   - builds the RPM packages (rpmbuild -tb, without dependency checks:
#     the build machine is Debian) and compares their file lists with the
#     .debs'; renders the man pages with man -l;
#   - installs the .debs into this machine (apt-get install ./...), checks
#     what the maintainer scripts made, edits the configuration and
#     upgrades (the edits must stay), starts meerkatd the way the systemd
#     unit does (its User, ExecStartPre, ExecStart, LimitNOFILE, UMask;
#     there is no systemd here), registers two users with the installed
#     meerkatctl, reloads through the unit's ExecReload, logs both in over
#     STARTTLS with slixmpp (packaging/test-client.py) and passes a
#     message, stops meerkatd, purges, and compares a list of the files
#     in /etc, /usr, /var, /opt and /srv before and after.
#
# It changes the system, so it runs only as root (otherwise it reports one
# skipped case), never touches a meerkat that was installed before (those
# cases are skipped), and purges what it installed whatever happens.
# Exits 0; the TAP lines carry the results.
set -u

builddir=$(cd "$1" && pwd)
work=$2
here=$(cd "$(dirname "$0")" && pwd)
jobs=${JOBS:-2}
apt="apt-get -y -q -o DPkg::Lock::Timeout=600"
export DEBIAN_FRONTEND=noninteractive

n=0
ok() {
    n=$((n + 1))
    echo "ok $n - $1"
}
not_ok() {
    n=$((n + 1))
    echo "not ok $n - $1"
}
skip() {
    n=$((n + 1))
    echo "ok $n - $1 # SKIP $2"
}
# note FILE: the end of FILE as TAP comments.
note() {
    tail -n "${2:-25}" "$1" | sed 's/^/# /'
}
# check DESCRIPTION COMMAND...: one case; the command's output goes to
# $log and is shown when it fails.
check() {
    desc=$1
    shift
    echo "==== $desc: $*" >>"$log"
    : >"$work/last.txt"
    if "$@" >"$work/last.txt" 2>&1; then
        cat "$work/last.txt" >>"$log"
        ok "$desc"
        return 0
    fi
    cat "$work/last.txt" >>"$log"
    not_ok "$desc"
    note "$work/last.txt"
    return 1
}

if [ "$(id -u)" -ne 0 ]; then
    echo "1..0 # SKIP not root: the package test installs into the system"
    exit 0
fi

rm -rf "$work"
mkdir -p "$work"
work=$(cd "$work" && pwd)
log=$work/test-packages.txt
: >"$log"
t0=$(date +%s)

# ---- build ----------------------------------------------------------------

version=$(sed -n 's/^PACKAGE_VERSION = //p' "$builddir/Makefile")
tarball=$builddir/meerkat-$version.tar.gz
check "make dist" make -C "$builddir" -s dist

src=$work/meerkat-$version
tar -C "$work" -xzf "$tarball" 2>>"$log"

versions_agree() {
    deb=$(dpkg-parsechangelog -l "$src/debian/changelog" -S Version)
    rpmv=$(sed -n 's/^Version: *//p' "$src/rpm/meerkat.spec")
    echo "configure $version, debian/changelog $deb, rpm/meerkat.spec $rpmv"
    [ "$deb" = "$version" ] && [ "$rpmv" = "$version" ]
}
check "versions of configure.ac, debian/changelog and the spec agree" versions_agree

build_deb() {
    cd "$src" && DEB_BUILD_OPTIONS="parallel=$jobs" dpkg-buildpackage -us -uc -b
}
s=$(date +%s)
if check "dpkg-buildpackage -us -uc -b builds the tarball" build_deb; then
    have_deb=1
else
    have_deb=0
fi
echo "# .deb build: $(($(date +%s) - s)) s"
arch=$(dpkg --print-architecture)
changes=$work/meerkat_${version}_$arch.changes
deb=$work/meerkat_${version}_$arch.deb
devdeb=$work/meerkat-dev_${version}_$arch.deb

if [ $have_deb = 1 ]; then
    check "lintian: no errors" lintian --fail-on error "$changes"
    grep -E '^[EW]: ' "$work/last.txt" | sed 's/^/# /'
else
    not_ok "lintian: no errors (no package)"
fi

build_rpm() {
    rpmbuild -tb --nodeps --define "_topdir $work/rpm" --define "_smp_mflags -j$jobs" "$tarball"
}
s=$(date +%s)
if check "rpmbuild -tb builds the tarball (rpm/meerkat.spec)" build_rpm; then
    have_rpm=1
else
    have_rpm=0
fi
echo "# .rpm build: $(($(date +%s) - s)) s"

# Files (not directories) of a package, with the paths both systems name
# differently mapped to one name: the library and unit directories,
# compressed man pages. Documentation (changelog, copyright) and lintian
# overrides are Debian's own and left out.
normalize() {
    sed -e 's|^\./|/|' -e 's| -> .*||' \
        -e 's|^/usr/lib/[a-z0-9_]*-linux-gnu[a-z0-9_]*/|LIBDIR/|' \
        -e 's|^/usr/lib64/|LIBDIR/|' \
        -e 's|^/usr/lib/systemd/system/|UNITDIR/|' -e 's|^/lib/systemd/system/|UNITDIR/|' \
        -e 's|\(/man/man[0-9]/.*\)\.gz$|\1|' |
        grep -vE '^/usr/share/(doc|lintian)/|^/usr/lib/\.build-id(/|$)' | sort
}
deb_files() {
    dpkg-deb -c "$1" | awk '$1 !~ /^d/ { print $6 }' | normalize
}
rpm_files() {
    rpm -qp --qf '[%{FILEMODES:perms} %{FILENAMES}\n]' "$1" 2>/dev/null |
        awk '$1 !~ /^d/ { print $2 }' | normalize
}
compare_lists() {
    deb_files "$1" >"$work/files.deb"
    rpm_files "$2" >"$work/files.rpm"
    echo "$(wc -l <"$work/files.deb") files in the .deb, $(wc -l <"$work/files.rpm") in the .rpm"
    diff -u "$work/files.deb" "$work/files.rpm"
}
if [ $have_deb = 1 ] && [ $have_rpm = 1 ]; then
    rpmdir=$work/rpm/RPMS/$(rpm --eval '%{_arch}')
    rpmfile=$(ls "$rpmdir"/meerkat-"$version"-*.rpm 2>/dev/null | head -n 1)
    devrpm=$(ls "$rpmdir"/meerkat-devel-"$version"-*.rpm 2>/dev/null | head -n 1)
    check "meerkat.rpm has the files of meerkat.deb" compare_lists "$deb" "$rpmfile"
    check "meerkat-devel.rpm has the files of meerkat-dev.deb" compare_lists "$devdeb" "$devrpm"
else
    not_ok "meerkat.rpm has the files of meerkat.deb (no packages)"
    not_ok "meerkat-devel.rpm has the files of meerkat-dev.deb (no packages)"
fi

# From the package's contents rather than /usr/share/man: container
# images often keep dpkg from installing man pages (path-exclude).
man_pages() {
    rm -rf "$work/deb-root" && dpkg-deb -x "$deb" "$work/deb-root" || return 1
    for page in man8/meerkatd.8.gz man8/meerkatctl.8.gz man5/meerkat.conf.5.gz; do
        page=$work/deb-root/usr/share/man/$page
        [ -f "$page" ] || {
            echo "$page is missing"
            return 1
        }
        out=$(LC_ALL=C.UTF-8 MANWIDTH=80 man --warnings -l "$page" 2>&1 >/dev/null)
        [ -z "$out" ] || {
            echo "$page: $out"
            return 1
        }
    done
}
if [ $have_deb = 1 ]; then
    check "the packaged man pages render with man -l, no warnings" man_pages
else
    not_ok "the packaged man pages render with man -l, no warnings (no package)"
fi

# ---- install, run, purge ----------------------------------------------------

install_cases="install conffiles setup upgrade check-config start users reload client stop unit unit-verify pkg-config purge leftovers"
# skip_rest REASON: every install case, skipped.
skip_rest() {
    for c in $install_cases; do
        skip "$c" "$1"
    done
}

# The meerkat packages dpkg knows in any state (installed, half
# installed, configuration left): what a purge must name. Naming one it
# does not know makes apt-get refuse the whole purge.
present_packages() {
    dpkg-query -W -f='${Package} ${Status}\n' meerkat meerkat-dev 2>/dev/null |
        awk '$NF != "not-installed" { print $1 }'
}

pid=
installed=0
cleanup() {
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
        kill -KILL "$pid" 2>/dev/null
        wait "$pid" 2>/dev/null
    fi
    pid=
    if [ $installed = 1 ]; then
        echo "==== cleanup: purge" >>"$log"
        # shellcheck disable=SC2046
        $apt purge $(present_packages) >>"$log" 2>&1 </dev/null
        installed=0
    fi
}
trap cleanup EXIT
trap 'exit 1' INT TERM HUP

if [ $have_deb = 0 ]; then
    skip_rest "no package was built"
    echo "1..$n"
    exit 0
fi
if [ -n "$(present_packages)" ] || [ -e /etc/meerkat ] || [ -e /var/lib/meerkat ]; then
    skip_rest "meerkat is installed on this machine; not touching it"
    echo "1..$n"
    exit 0
fi

# Paths left out of the before/after comparison: package management's own
# records and logs, and the files of the system user (kept on purge, as
# Debian policy wants).
ignored='^/var/(lib/(dpkg|apt|ucf)|cache|log|tmp|backups|mail|spool)(/|$)|^/etc/(passwd|group|shadow|gshadow|subuid|subgid)-?$|^/etc/ld\.so\.cache$|/__pycache__(/|$)'
snapshot() {
    find /etc /usr /var /opt /srv 2>/dev/null | grep -vE "$ignored" | sort
}
snapshot >"$work/before.txt"

installed=1
check "apt-get install ./meerkat_*.deb ./meerkat-dev_*.deb" \
    $apt install "$deb" "$devdeb" </dev/null

conffiles() {
    dpkg-query -W -f='${Conffiles}\n' meerkat | awk 'NF { print $1 }' | sort >"$work/conffiles.txt"
    cat "$work/conffiles.txt"
    grep -qx /etc/meerkat/meerkat.conf "$work/conffiles.txt" &&
        grep -qx /etc/meerkat/conf.d/available/mod_roster.conf "$work/conffiles.txt"
}
check "meerkat.conf and conf.d/available/*.conf are conffiles" conffiles

# What the postinst (meerkat-setup) made.
after_setup() {
    getent passwd meerkat || return 1
    [ "$(id -u meerkat)" -lt 1000 ] || return 1
    stat -c '%n %U:%G %a' /var/lib/meerkat /etc/meerkat/meerkat.key /etc/meerkat/meerkat.crt
    [ "$(stat -c '%U:%G %a' /var/lib/meerkat)" = "meerkat:meerkat 750" ] || return 1
    [ "$(stat -c '%U:%G %a' /etc/meerkat/meerkat.key)" = "root:meerkat 640" ] || return 1
    openssl x509 -in /etc/meerkat/meerkat.crt -noout -subject -ext subjectAltName || return 1
    openssl x509 -in /etc/meerkat/meerkat.crt -noout -ext subjectAltName | grep -q 'DNS:localhost' ||
        return 1
    ls -l /etc/meerkat/conf.d/
    [ "$(readlink /etc/meerkat/conf.d/mod_roster.conf)" = available/mod_roster.conf ] || return 1
    [ "$(readlink /etc/meerkat/conf.d/mod_ping.conf)" = available/mod_ping.conf ] || return 1
    # Shipped but not enabled by default.
    [ ! -e /etc/meerkat/conf.d/mod_privacy.conf ] || return 1
    # Every shipped module has its file in available/.
    for so in /usr/lib/*/meerkat/modules/mod_*.so; do
        m=$(basename "$so" .so)
        [ -f "/etc/meerkat/conf.d/available/$m.conf" ] || {
            echo "no conf.d/available/$m.conf"
            return 1
        }
    done
}
check "postinst: system user, state dir, certificate, default modules" after_setup

# An administrator's edits: the port (a free one, so that nothing else on
# this machine is disturbed), the address, and a module disabled. An
# upgrade (to the same package repacked with a higher version) must keep
# all three.
port=$(/usr/bin/python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
sed -i -e "s/^port = 5222$/port = $port/" -e 's/^address = 0\.0\.0\.0$/address = 127.0.0.1/' \
    /etc/meerkat/meerkat.conf
rm -f /etc/meerkat/conf.d/mod_time.conf
# repack DEB VERSION OUT: DEB with its version changed (meerkat-dev
# depends on meerkat of its own version, so both are repacked).
repack() {
    rm -rf "$work/repack" &&
        dpkg-deb -R "$1" "$work/repack" &&
        sed -i -e "s/^Version: .*/Version: $2/" \
            -e "s/(= $version)/(= $2)/" "$work/repack/DEBIAN/control" &&
        dpkg-deb -b "$work/repack" "$3"
}
upgrade_keeps_edits() {
    new=$version+upgrade1
    repack "$deb" "$new" "$work/up/meerkat.deb" &&
        repack "$devdeb" "$new" "$work/up/meerkat-dev.deb" &&
        $apt install "$work/up/meerkat.deb" "$work/up/meerkat-dev.deb" </dev/null || return 1
    dpkg-query -W -f='${Package} ${Version}\n' meerkat meerkat-dev
    [ "$(dpkg-query -W -f='${Version} ' meerkat meerkat-dev)" = "$new $new " ] &&
        grep -x "port = $port" /etc/meerkat/meerkat.conf &&
        [ ! -e /etc/meerkat/conf.d/mod_time.conf ] &&
        [ -e /etc/meerkat/conf.d/mod_ping.conf ]
}
mkdir -p "$work/up"
check "an upgrade keeps an edited meerkat.conf and a disabled module" upgrade_keeps_edits

# The unit's settings (User=, ExecStart=, ...): the first value of KEY.
unit=$(ls /lib/systemd/system/meerkat.service /usr/lib/systemd/system/meerkat.service 2>/dev/null | head -n 1)
unit_get() {
    sed -n "s/^$1=//p" "$unit" | head -n 1
}
user=$(unit_get User)
group=$(unit_get Group)
nofile=$(unit_get LimitNOFILE)
umask_=$(unit_get UMask)
# unit_exec COMMAND...: replaces the shell with COMMAND run as the unit
# would run it: from /, with an empty environment, as its user, without
# new privileges, with its umask and (where this machine lets root raise
# it) its LimitNOFILE. Call it in a subshell, or in the background (then
# $! is COMMAND's pid).
limit=
if prlimit --nofile="$nofile:$nofile" true 2>/dev/null; then
    limit="prlimit --nofile=$nofile:$nofile"
else
    echo "# LimitNOFILE=$nofile cannot be set here (no CAP_SYS_RESOURCE); running with $(ulimit -Hn)"
fi
unit_exec() {
    # shellcheck disable=SC2086
    exec env -i -C / PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 $limit \
        setpriv --reuid="$user" --regid="$group" --init-groups --no-new-privs \
        sh -c 'umask "$0" && exec "$@"' "${umask_:-0022}" "$@"
}

check_config() {
    # shellcheck disable=SC2046
    (unit_exec $(unit_get ExecStartPre))
}
check "the unit's ExecStartPre (--check-config) passes" check_config

mdlog=$work/meerkatd.log
# wait_log TEXT: until meerkatd's log has TEXT (60 s at most), while it runs.
wait_log() {
    i=0
    while [ $i -lt 600 ]; do
        grep -qF "$1" "$mdlog" && return 0
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
        i=$((i + 1))
    done
    echo "no \"$1\" in the log of meerkatd:"
    cat "$mdlog"
    return 1
}
# shellcheck disable=SC2046
unit_exec $(unit_get ExecStart) >"$mdlog" 2>&1 &
pid=$!
check "meerkatd starts as the unit runs it, as $user" wait_log "listening on 127.0.0.1:$port"

pw1=$(od -An -tx8 -N8 /dev/urandom | tr -d ' \n')
pw2=$(od -An -tx8 -N8 /dev/urandom | tr -d ' \n')
register_users() {
    (unit_exec meerkatctl register alice localhost "$pw1") &&
        echo "$pw2" | (unit_exec meerkatctl register bob localhost -) &&
        [ "$(unit_exec meerkatctl users localhost | sort | tr '\n' ' ')" = "alice bob " ] &&
        [ "$(stat -c %U /var/lib/meerkat/meerkat.db)" = meerkat ]
}
check "the installed meerkatctl registers users" register_users

do_reload() {
    reload=$(unit_get ExecReload | sed "s/\\\$MAINPID/$pid/")
    echo "$reload"
    $reload && wait_log "configuration reloaded" && kill -0 "$pid"
}
check "the unit's ExecReload reloads meerkatd" do_reload

check "a client logs in over STARTTLS with the packaged certificate and gets a message" \
    /usr/bin/python3 "$here/test-client.py" "$port" /etc/meerkat/meerkat.crt localhost \
    alice "$pw1" bob "$pw2"

stop() {
    kill -TERM "$pid" || return 1
    wait "$pid"
    status=$?
    pid=
    echo "meerkatd exited with status $status"
    cat "$mdlog"
    [ $status -eq 0 ]
}
check "meerkatd stops cleanly on SIGTERM" stop

unit_settings() {
    grep -E '^(User|ExecReload|LimitNOFILE|ProtectSystem|NoNewPrivileges|StateDirectory)=' "$unit"
    [ "$(unit_get User)" = meerkat ] && [ -n "$(unit_get LimitNOFILE)" ] &&
        [ "$(unit_get ProtectSystem)" = strict ] && [ "$(unit_get NoNewPrivileges)" = yes ] &&
        [ "$(unit_get StateDirectory)" = meerkat ] && unit_get ExecReload | grep -q -- '-HUP'
}
check "the unit: user meerkat, LimitNOFILE, hardening, reload by SIGHUP" unit_settings
if command -v systemd-analyze >/dev/null 2>&1; then
    check "systemd-analyze verify accepts the installed unit" systemd-analyze verify "$unit"
else
    skip "systemd-analyze verify accepts the installed unit" "no systemd-analyze here"
fi

pkgconfig() {
    dir=$(pkg-config --variable=moduledir meerkat-module) &&
        echo "moduledir $dir" && [ -f "$dir/mod_roster.so" ] &&
        pkg-config --cflags meerkat-module
}
check "meerkat-dev: pkg-config names the installed module directory" pkgconfig

purge() {
    # shellcheck disable=SC2046
    $apt purge $(present_packages) </dev/null || return 1
    installed=0
    [ -z "$(present_packages)" ] && [ ! -e /etc/meerkat ] && [ ! -e /var/lib/meerkat ]
}
check "apt-get purge removes meerkat, /etc/meerkat and /var/lib/meerkat" purge

# Files that appeared or vanished, except those owned by a package: those
# come from somebody else's apt-get on this machine at the same time (or
# from a dependency of meerkat, which apt leaves installed).
leftovers() {
    snapshot >"$work/after.txt"
    comm -3 "$work/before.txt" "$work/after.txt" | sed 's/^\t//' >"$work/changed.txt"
    while read -r path; do
        if dpkg -S "$path" >/dev/null 2>&1; then
            continue
        fi
        echo "$path"
    done <"$work/changed.txt" >"$work/leftovers.txt"
    cat "$work/leftovers.txt"
    [ ! -s "$work/leftovers.txt" ]
}
check "after the purge no file is left or missing (file list before/after)" leftovers

echo "# package test: $(($(date +%s) - t0)) s"
echo "1..$n"
