#!/usr/bin/python3
"""The table of make bench-cluster and make bench-gd: one column per
server of a results file (JSON lines {"server", "test", "result"}, from
bench_run in bench-lib.sh), one row per figure, and the ratio of the last
two columns. Rows whose key is a latency also get the difference of the
last two columns (e.g. the extra latency over a link between regions),
and runs that lost, failed or timed out messages are listed.

usage: bench-compare.py RESULTS LABEL=SERVER,... LABEL|TEST|KEY|SCALE..."""
import json
import sys


def main():
    rows = [json.loads(line) for line in open(sys.argv[1]) if line.strip()]
    res = {(r["server"], r["test"]): r["result"] for r in rows}
    cols = [c.split("=", 1) for c in sys.argv[2].split(",")]
    specs = [s.split("|") for s in sys.argv[3:]]

    def get(srv, test, key):
        v = res.get((srv, test), {})
        for k in key.split("."):
            v = v.get(k, {}) if isinstance(v, dict) else {}
        return v if isinstance(v, (int, float)) else None

    width = max(len(s[0]) for s in specs)
    print("%-*s %s %8s" % (width, "", " ".join("%12s" % c[0] for c in cols), "ratio"))
    diffs = []
    for label, test, key, scale in specs:
        v = [get(srv, test, key) for _, srv in cols]
        f = ["%.1f" % (x * float(scale)) if x is not None else "-" for x in v]
        a, b = (v[-2], v[-1]) if len(v) > 1 else (None, None)
        ratio = "%.2f" % (b / a) if a and b is not None else ""
        print("%-*s %s %8s" % (width, label, " ".join("%12s" % x for x in f), ratio))
        if key.startswith("latency") and a is not None and b is not None:
            diffs.append("%s, %s minus %s: %.2f" % (label, cols[-1][0], cols[-2][0],
                                                    (b - a) * float(scale)))
    for d in diffs:
        print(d)
    for (srv, test), r in sorted(res.items()):
        lost = {k: r[k] for k in ("errors", "timeouts", "lost", "failed") if r.get(k)}
        if lost:
            print("%s %s: %s" % (srv, test, lost))


if __name__ == "__main__":
    main()
