#!/bin/sh
# Checks that every C source and header of the tree is as clang-format
# (the checked-in .clang-format) would write it: one TAP case per file.
# A formatting slip is a test failure, so it cannot come back unnoticed
# (clang-format once spaced the error quarks' names into "mk - db - ...").
# Skipped when clang-format is not installed.
top=${MK_TOP_SRCDIR:-$(cd "$(dirname "$0")/.." && pwd)}
cd "$top" || exit 99
if ! command -v clang-format >/dev/null 2>&1; then
    echo "1..0 # SKIP clang-format is not installed"
    exit 0
fi
# configure's output (mk-version.h from its .h.in) is not ours to format:
# it is in the source tree after an in-tree build.
files=$(find core plugins-api modules tools tests -type f \( -name '*.c' -o -name '*.h' \) |
    while read -r f; do [ -f "$f.in" ] || echo "$f"; done | LC_ALL=C sort)
n=0
for f in $files; do
    n=$((n + 1))
    if out=$(clang-format --dry-run --Werror "$f" 2>&1); then
        echo "ok $n - $f"
    else
        echo "not ok $n - $f"
        printf '%s\n' "$out" | head -n 20 | sed 's/^/# /'
    fi
done
echo "1..$n"
