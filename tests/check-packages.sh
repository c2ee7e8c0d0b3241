#!/bin/sh
# Every library configure.ac requires is in the package list of each
# script that installs the build packages on a fresh Debian 12 machine
# (the README's two commands, CI) and in debian/control's Build-Depends:
# a library added to configure.ac and forgotten in one of them breaks
# that script on a new machine while every test here still passes.
# Maps each pkg-config module to its Debian package with dpkg -S. TAP.
src=${MK_TOP_SRCDIR:-$(cd "$(dirname "$0")/.." && pwd)}

if ! command -v dpkg >/dev/null 2>&1 || ! command -v pkg-config >/dev/null 2>&1; then
    echo "1..0 # SKIP no dpkg or pkg-config"
    exit 0
fi

# PKG_CHECK_MODULES([VAR], [mod >= v mod2 ...]) with no action-if-not-found:
# the required ones.
mods=$(grep '^PKG_CHECK_MODULES(' "$src/configure.ac" | grep -v '\], *\[.*\], *\[' |
    sed 's/^PKG_CHECK_MODULES(\[[^]]*\], *\[\([^]]*\)\].*/\1/' |
    tr ' ' '\n' | grep -v -e '^[<>=]' -e '^[0-9]' -e '^$' | sort -u)
pkgs=
for m in $mods; do
    pc=$(pkg-config --variable=pcfiledir "$m" 2>/dev/null)/$m.pc
    p=$(dpkg -S "$pc" 2>/dev/null | head -n 1 | cut -d: -f1)
    if [ -z "$p" ]; then
        echo "Bail out! no Debian package owns $pc (pkg-config module $m)"
        exit 1
    fi
    pkgs="$pkgs $p"
done
pkgs=$(echo "$pkgs" | tr ' ' '\n' | grep -v '^$' | sort -u)

files="tools/quickstart.sh tools/run-tests.sh .ci/run debian/control"
echo "1..$(echo "$files" | wc -w)"
n=0
for f in $files; do
    n=$((n + 1))
    if [ ! -f "$src/$f" ]; then
        echo "ok $n # SKIP $f is not in this tree (a release tarball)"
        continue
    fi
    missing=
    for p in $pkgs; do
        # A whole word of the file: a list entry, or a Build-Depends line.
        grep -q -E "(^|[[:space:]\"=,])$p([[:space:]\",(]|\$)" "$src/$f" || missing="$missing $p"
    done
    if [ -z "$missing" ]; then
        echo "ok $n - $f names all $(echo "$pkgs" | wc -l) packages configure requires"
    else
        echo "not ok $n - $f lacks:$missing"
    fi
done
