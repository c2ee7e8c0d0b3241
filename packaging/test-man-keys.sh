#!/bin/sh
# Every configuration key of docs/configuration.md (the first column of
# its tables) is described in man/meerkat.conf.5, one TAP case per key:
# the man page is written by hand and must follow new keys.
# Runs from make check (MK_TOP_SRCDIR) or from the source tree.
top=${MK_TOP_SRCDIR:-$(cd "$(dirname "$0")/.." && pwd)}
doc=$top/docs/configuration.md
man=$top/man/meerkat.conf.5

keys=$(sed -n 's/^| `\([a-z_][a-z0-9_]*\)` |.*/\1/p' "$doc" | sort -u)
if [ -z "$keys" ]; then
    echo "1..1"
    echo "not ok 1 - no keys found in $doc"
    exit 0
fi
# The page with roff's escaped hyphens and font changes undone.
text=$(sed -e 's/\\-/-/g' -e 's/\\f[BIRP]//g' "$man")
n=0
for key in $keys; do
    n=$((n + 1))
    if printf '%s\n' "$text" | grep -qE "^\.(B|BR|BI|IR|TP|I) .*\<$key\>|^\.B $key\$"; then
        echo "ok $n - meerkat.conf(5) describes $key"
    else
        echo "not ok $n - meerkat.conf(5) describes $key (docs/configuration.md has it)"
    fi
done
echo "1..$n"
