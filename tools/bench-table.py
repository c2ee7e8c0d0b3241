#!/usr/bin/env python3
"""Prints the table of a benchmark run (JSON lines written by
tools/bench-run.sh or tools/bench-peers): one column per server, and the
ratio of each server to the bare relay where the relay was measured."""
import json
import sys

ROWS = [
    # (label, test, key, scale, higher_is_better)
    ("sessions held (plain TCP)", "sessions", "sessions", 1, True),
    ("RSS per idle session, KiB (plain)", "sessions", "rss_per_session_kib", 1, False),
    ("RSS per idle session, KiB (STARTTLS)", "tls-sessions", "rss_per_session_kib", 1, False),
    ("sessions held (STARTTLS)", "tls-sessions", "sessions", 1, True),
    ("PLAIN logins per server CPU-s", "sessions", "logins_per_cpu_s", 1, True),
    ("PLAIN logins/s (wall)", "sessions", "logins_per_s", 1, True),
    ("SCRAM-SHA-256 logins per server CPU-s", "scram-logins", "logins_per_cpu_s", 1, True),
    ("messages per server CPU-s", "chat", "messages_per_cpu_s", 1, True),
    ("messages/s (wall)", "chat", "messages_per_s", 1, True),
    ("latency p50, ms (loaded)", "chat", "latency_us.p50", 0.001, False),
    ("latency p90, ms (loaded)", "chat", "latency_us.p90", 0.001, False),
    ("latency p99, ms (loaded)", "chat", "latency_us.p99", 0.001, False),
    ("latency max, ms (loaded)", "chat", "latency_us.max", 0.001, False),
    ("latency p50, ms (1 pair, 1 in flight)", "chat-1", "latency_us.p50", 0.001, False),
    ("latency p99, ms (1 pair, 1 in flight)", "chat-1", "latency_us.p99", 0.001, False),
    ("presences delivered per server CPU-s", "presence", "presences_per_cpu_s", 1, True),
    ("failed logins (all tests)", "*", "failed", 1, False),
]


def get(result, key):
    for part in key.split("."):
        if not isinstance(result, dict) or part not in result:
            return None
        result = result[part]
    return result


def fmt(v):
    if v is None:
        return "-"
    if isinstance(v, float) and abs(v) < 100:
        return "%.2f" % v
    return "{:,}".format(int(round(v)))


def main():
    results = {}
    servers = []
    for line in open(sys.argv[1]):
        line = line.strip()
        if not line:
            continue
        r = json.loads(line)
        if r["server"] not in servers:
            servers.append(r["server"])
        results[(r["server"], r["test"])] = r["result"]
    cols = [s for s in servers if s != "relay"] + (["relay"] if "relay" in servers else [])
    header = ["metric"] + cols
    if "relay" in servers:
        header += ["%s / relay" % s for s in cols if s != "relay"]
    rows = []
    for label, test, key, scale, _ in ROWS:
        vals = []
        for s in cols:
            if test == "*":
                tot = [get(v, key) for (srv, _t), v in results.items() if srv == s]
                tot = [t for t in tot if t is not None]
                vals.append(sum(tot) if tot else None)
            else:
                v = get(results.get((s, test), {}), key)
                vals.append(v * scale if v is not None else None)
        if all(v is None for v in vals):
            continue
        row = [label] + [fmt(v) for v in vals]
        if "relay" in servers:
            relay = vals[cols.index("relay")]
            for s, v in zip(cols, vals):
                if s == "relay":
                    continue
                row.append("%.2f" % (v / relay) if v is not None and relay else "-")
        rows.append(row)
    widths = [max(len(r[i]) for r in rows + [header]) for i in range(len(header))]
    def line(r):
        return "| " + " | ".join(c.ljust(widths[i]) if i == 0 else c.rjust(widths[i])
                                 for i, c in enumerate(r)) + " |"
    print(line(header))
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for r in rows:
        print(line(r))


if __name__ == "__main__":
    main()
