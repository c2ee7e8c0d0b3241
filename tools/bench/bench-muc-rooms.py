#!/usr/bin/env python3
"""The memory of idle persistent MUC rooms, for tools/bench/bench-run.sh.

  bench-muc-rooms.py rss PID
      prints the resident set of PID in KiB;
  bench-muc-rooms.py prefill DB N
      stores N persistent public rooms bench-r0 .. bench-r(N-1) at
      conference.localhost in the sqlite database DB (mod_muc's tables,
      as the module writes them), replacing earlier ones;
  bench-muc-rooms.py wake --port P --pid PID --rooms N --rss-empty KIB
      logs in as bench0, sends a disco#info to every room (each is read
      from the database and stays in memory, empty, until it hibernates),
      and prints a JSON line {"server": "meerkat", "test": "muc-rooms",
      "result": {...}}: RSS with the rooms stored and asleep, awake, and
      per room in each state (bytes).
Standard library only."""
import argparse
import base64
import json
import re
import socket
import sqlite3
import sys
import time

CONFIG = "[room]\ntitle=Room %d\npersistent=true\npublic=true\nhistory_length=20\n"


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def prefill(db, n):
    con = sqlite3.connect(db, timeout=30)
    with con:
        con.execute("DELETE FROM muc_affiliations WHERE name LIKE 'bench-r%'")
        con.execute("DELETE FROM muc_rooms WHERE name LIKE 'bench-r%'")
        con.executemany(
            "INSERT INTO muc_rooms (service, name, config) VALUES (?, ?, ?)",
            (("conference.localhost", "bench-r%d" % i, CONFIG % i) for i in range(n)))
        con.executemany(
            "INSERT INTO muc_affiliations (service, name, jid, affiliation) VALUES (?, ?, ?, ?)",
            (("conference.localhost", "bench-r%d" % i, "bench0@localhost", "owner")
             for i in range(n)))
    con.close()


def recv_until(sock, buf, pattern, timeout=30):
    deadline = time.time() + timeout
    while not re.search(pattern, buf):
        if time.time() > deadline:
            raise RuntimeError("timed out waiting for %r" % pattern)
        data = sock.recv(65536)
        if not data:
            raise RuntimeError("connection closed")
        buf += data
    return buf


def login(port):
    s = socket.create_connection(("127.0.0.1", port), 10)
    hdr = (b"<?xml version='1.0'?><stream:stream to='localhost' xmlns='jabber:client' "
           b"xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>")
    s.sendall(hdr)
    recv_until(s, b"", rb"</stream:features>")
    tok = base64.b64encode(b"\0bench0\0secret")
    s.sendall(b"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>" + tok +
              b"</auth>")
    recv_until(s, b"", rb"<success")
    s.sendall(hdr)
    recv_until(s, b"", rb"</stream:features>")
    s.sendall(b"<iq type='set' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></iq>")
    recv_until(s, b"", rb"id=['\"]b['\"]")
    return s


def wake(a):
    rss_asleep = rss_kib(a.pid)
    s = login(a.port)
    s.settimeout(60)
    t0 = time.time()
    answered = 0
    batch = 500
    for lo in range(0, a.rooms, batch):
        hi = min(a.rooms, lo + batch)
        s.sendall("".join("<iq type='get' id='w%d' to='bench-r%d@conference.localhost'><query "
                          "xmlns='http://jabber.org/protocol/disco#info'/></iq>" % (i, i)
                          for i in range(lo, hi)).encode())
        buf = b""
        want = hi - lo
        while buf.count(b"</iq>") + len(re.findall(rb"<iq[^>]*/>", buf)) < want:
            data = s.recv(1 << 20)
            if not data:
                raise RuntimeError("connection closed")
            buf += data
        answered += want
    wall = time.time() - t0
    s.close()
    time.sleep(1)
    rss_awake = rss_kib(a.pid)
    n = max(a.rooms, 1)
    print(json.dumps({"server": "meerkat", "test": "muc-rooms", "result": {
        "rooms": a.rooms, "woken": answered, "wake_s": round(wall, 2),
        "rss_empty_kib": a.rss_empty, "rss_asleep_kib": rss_asleep, "rss_awake_kib": rss_awake,
        "rss_per_room_asleep_b": round((rss_asleep - a.rss_empty) * 1024 / n),
        "rss_per_room_awake_b": round((rss_awake - a.rss_empty) * 1024 / n)}}))


def main():
    if len(sys.argv) >= 3 and sys.argv[1] == "rss":
        print(rss_kib(int(sys.argv[2])))
        return
    if len(sys.argv) >= 4 and sys.argv[1] == "prefill":
        prefill(sys.argv[2], int(sys.argv[3]))
        return
    ap = argparse.ArgumentParser()
    ap.add_argument("cmd", choices=["wake"])
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--pid", type=int, required=True)
    ap.add_argument("--rooms", type=int, required=True)
    ap.add_argument("--rss-empty", type=int, required=True)
    wake(ap.parse_args())


if __name__ == "__main__":
    main()
