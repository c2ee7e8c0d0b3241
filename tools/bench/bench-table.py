#!/usr/bin/env python3
"""Prints the table of a benchmark run (JSON lines written by
tools/bench/bench-run.sh or tools/bench/bench-peers): one column per server, and the
ratio of each server to a baseline server where it was measured.

Usage: bench-table.py [--baseline SERVER] FILE
The baseline is the bare relay by default (make bench: Meerkat against
the machine's limit); tools/bench/bench-peers uses --baseline meerkat, so each
peer (and the relay) is given as a multiple of Meerkat's figure."""
import argparse
import json

ROWS = [
    # (label, test, key, scale, higher_is_better)
    ("sessions held (plain TCP)", "sessions", "sessions", 1, True),
    ("RSS per idle session, KiB (plain)", "sessions", "rss_per_session_kib", 1, False),
    ("RSS per idle session, KiB (STARTTLS)", "tls-sessions", "rss_per_session_kib", 1, False),
    ("sessions held (STARTTLS)", "tls-sessions", "sessions", 1, True),
    ("PLAIN logins per server CPU-s (paced)", "sessions", "logins_per_cpu_s", 1, True),
    ("PLAIN logins/s (wall, paced)", "sessions", "logins_per_s", 1, True),
    ("PLAIN logins per server CPU-s (unpaced)", "logins-max", "logins_per_cpu_s", 1, True),
    ("PLAIN logins/s (wall, unpaced)", "logins-max", "logins_per_s", 1, True),
    ("SCRAM-SHA-256 logins per server CPU-s (paced)", "scram-logins", "logins_per_cpu_s", 1, True),
    ("SCRAM-SHA-256 logins per server CPU-s (unpaced)", "scram-logins-max", "logins_per_cpu_s", 1, True),
    ("messages per server CPU-s", "chat", "messages_per_cpu_s", 1, True),
    ("messages/s (wall)", "chat", "messages_per_s", 1, True),
    ("latency p50, ms (loaded)", "chat", "latency_us.p50", 0.001, False),
    ("latency p90, ms (loaded)", "chat", "latency_us.p90", 0.001, False),
    ("latency p99, ms (loaded)", "chat", "latency_us.p99", 0.001, False),
    ("latency max, ms (loaded)", "chat", "latency_us.max", 0.001, False),
    ("latency p50, ms (1 pair, 1 in flight)", "chat-1", "latency_us.p50", 0.001, False),
    ("latency p99, ms (1 pair, 1 in flight)", "chat-1", "latency_us.p99", 0.001, False),
    ("presences delivered per server CPU-s", "presence", "presences_per_cpu_s", 1, True),
    ("messages per server CPU-s, mod_mam on", "chat-mam", "messages_per_cpu_s", 1, True),
    ("latency p99, ms (loaded, mod_mam on)", "chat-mam", "latency_us.p99", 0.001, False),
    ("messages per server CPU-s, PostgreSQL", "chat-pg", "messages_per_cpu_s", 1, True),
    ("messages per server CPU-s, mod_mam on, PostgreSQL", "chat-mam-pg", "messages_per_cpu_s", 1, True),
    ("latency p99, ms (loaded, mod_mam on, PostgreSQL)", "chat-mam-pg", "latency_us.p99", 0.001, False),
    ("MAM queries (50 results) per server CPU-s", "mam-query", "queries_per_cpu_s", 1, True),
    ("MAM query latency p50, ms", "mam-query", "latency_us.p50", 0.001, False),
    ("MAM query latency p99, ms", "mam-query", "latency_us.p99", 0.001, False),
    ("MAM queries with 'with' per server CPU-s", "mam-query-with", "queries_per_cpu_s", 1, True),
    ("MAM query latency p50, ms ('with')", "mam-query-with", "latency_us.p50", 0.001, False),
    ("MAM query latency p99, ms ('with')", "mam-query-with", "latency_us.p99", 0.001, False),
    ("MUC Light copies delivered per server CPU-s (rooms of 100)", "muclight",
     "messages_per_cpu_s", 1, True),
    ("MUC Light copies per server CPU-s, rooms archived", "muclight-mam",
     "messages_per_cpu_s", 1, True),
    ("MUC Light latency p50, ms", "muclight", "latency_us.p50", 0.001, False),
    ("MUC Light latency p99, ms", "muclight", "latency_us.p99", 0.001, False),
    ("messages per server CPU-s, /metrics scraped each second", "chat-scraped", "messages_per_cpu_s", 1, True),
    ("REST POST /api/messages per server CPU-s", "rest", "requests_per_cpu_s", 1, True),
    ("REST POST /api/messages/s (wall)", "rest", "requests_per_s", 1, True),
    ("REST latency p99, ms", "rest", "latency_us.p99", 0.001, False),
    ("MUC: groupchat delivered per server CPU-s (rooms of 100)", "muc", "messages_per_cpu_s", 1,
     True),
    ("MUC: groupchat delivered/s (wall)", "muc", "messages_per_s", 1, True),
    ("MUC latency p99, ms", "muc", "latency_us.p99", 0.001, False),
    ("MUC: RSS per joined session, KiB", "muc", "rss_per_session_kib", 1, False),
    ("MUC: RSS per stored room asleep, bytes", "muc-rooms", "rss_per_room_asleep_b", 1, False),
    ("MUC: RSS per idle room in memory, bytes", "muc-rooms", "rss_per_room_awake_b", 1, False),
    ("messages per server CPU-s, event pusher off", "chat-pusher-off", "messages_per_cpu_s", 1, True),
    ("messages per server CPU-s, http + rabbit on", "chat-pusher-on", "messages_per_cpu_s", 1, True),
    ("messages per server CPU-s, webhook hanging", "chat-pusher-hang", "messages_per_cpu_s", 1, True),
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
    ap = argparse.ArgumentParser(description="Table of a benchmark run.")
    ap.add_argument("--baseline", default="relay",
                    help="the server the others are divided by (default: relay)")
    ap.add_argument("file", help="JSON lines of the run")
    args = ap.parse_args()
    base = args.baseline
    results = {}
    servers = []
    for line in open(args.file):
        line = line.strip()
        if not line:
            continue
        r = json.loads(line)
        if r["server"] not in servers:
            servers.append(r["server"])
        results[(r["server"], r["test"])] = r["result"]
    # The relay last: it is the machine's limit, not a server.
    cols = [s for s in servers if s != "relay"] + (["relay"] if "relay" in servers else [])
    header = ["metric"] + cols
    if base in servers:
        header += ["%s / %s" % (s, base) for s in cols if s != base]
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
        if base in servers:
            bv = vals[cols.index(base)]
            for s, v in zip(cols, vals):
                if s == base:
                    continue
                row.append("%.2f" % (v / bv) if v is not None and bv else "-")
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
