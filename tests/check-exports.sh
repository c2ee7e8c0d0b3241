#!/bin/sh
# The sealed ABI: meerkatd exports to modules exactly the functions that
# plugins-api/meerkat/*.h declare MK_API, nothing of the core's internals
# (the core is built with -fvisibility=hidden) and nothing of the API
# missing. Names the toolchain reserves (leading underscore, data_start)
# are not ours, nor are libraries' variables that the executable holds a
# copy of (copy relocations: stderr, g_ascii_table). Prints TAP.
src=${MK_TOP_SRCDIR:-$(cd "$(dirname "$0")/.." && pwd)}
build=${MK_TOP_BUILDDIR:-.}
daemon=$build/core/meerkatd
tmp=$(mktemp -d) || exit 99
trap 'rm -rf "$tmp"' EXIT

echo "1..3"
if ! command -v nm >/dev/null 2>&1 || ! command -v objdump >/dev/null 2>&1 ||
    [ ! -x "$daemon" ]; then
    echo "Bail out! no nm, no objdump or no $daemon"
    exit 1
fi
# Every declaration is one line starting with MK_API (the format check
# keeps the name on that line).
cat "$src"/plugins-api/meerkat/*.h | grep '^MK_API ' |
    sed -n 's/^MK_API[^(]*[ *]\([A-Za-z_][A-Za-z_0-9]*\)(.*/\1/p' | LC_ALL=C sort -u >"$tmp/api"
objdump -R "$daemon" | awk '$2 ~ /_COPY$/ { sub(/@.*/, "", $3); print $3 }' |
    LC_ALL=C sort -u >"$tmp/copies"
nm -D --defined-only "$daemon" | awk '{ sub(/@.*/, "", $NF); print $NF }' |
    grep -v -e '^_' -e '^data_start$' | LC_ALL=C sort -u |
    LC_ALL=C comm -23 - "$tmp/copies" >"$tmp/exported"

n=$(wc -l <"$tmp/api")
if [ "$n" -gt 100 ]; then
    echo "ok 1 - $n MK_API functions declared in plugins-api/"
else
    echo "not ok 1 - only $n MK_API functions found in plugins-api/: the parser is broken"
fi
extra=$(LC_ALL=C comm -13 "$tmp/api" "$tmp/exported")
if [ -z "$extra" ]; then
    echo "ok 2 - meerkatd exports nothing outside the API"
else
    echo "not ok 2 - meerkatd exports $(echo "$extra" | wc -l) symbols outside the API"
    echo "$extra" | sed 's/^/# /'
fi
missing=$(LC_ALL=C comm -23 "$tmp/api" "$tmp/exported")
if [ -z "$missing" ]; then
    echo "ok 3 - meerkatd exports every MK_API function"
else
    echo "not ok 3 - MK_API functions meerkatd does not export: $(echo "$missing" | wc -l)"
    echo "$missing" | sed 's/^/# /'
fi
