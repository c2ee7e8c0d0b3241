#!/usr/bin/python3
"""Drives the out-of-tree example mod_pinger (interval 1 s) for
test-example-module.sh: `answering PORT` logs in with slixmpp, whose
XEP-0199 plugin answers pings, stays silent and must see two pings from
the server and stay connected; `silent PORT` logs in over a raw socket,
never answers, and must be closed with connection-timeout after the
ping. Exits 0 on success; prints what it saw."""
import asyncio
import socket
import sys
import time

HEADER = ("<?xml version='1.0'?><stream:stream to='localhost' xmlns='jabber:client'"
          " xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>")


def answering(port):
    import slixmpp
    from slixmpp.xmlstream.handler import Callback
    from slixmpp.xmlstream.matcher import StanzaPath

    seen = []
    state = {"ended_early": False}

    class Client(slixmpp.ClientXMPP):
        def __init__(self):
            super().__init__("localhost", "")  # SASL ANONYMOUS
            self.register_plugin("xep_0199")  # answers the server's pings
            self.register_handler(Callback("seen", StanzaPath("iq@type=get/ping"),
                                           lambda iq: seen.append(str(iq["from"]))))
            self.add_event_handler("session_start", self.start)
            self.done = False

        async def start(self, _):
            deadline = time.time() + 15
            while len(seen) < 2 and time.time() < deadline:
                await asyncio.sleep(0.1)
            self.done = True
            self.disconnect()

    c = Client()
    c.add_event_handler("disconnected",
                        lambda *_: state.update(ended_early=not c.done))
    c.connect(("127.0.0.1", port), force_starttls=False, disable_starttls=True)
    try:
        c.loop.run_until_complete(asyncio.wait_for(c.disconnected, 30))
    except asyncio.TimeoutError:
        pass
    print("pings seen from %s; closed by the server: %s" % (seen, state["ended_early"]))
    return len(seen) >= 2 and seen[0] == "localhost" and not state["ended_early"]


def silent(port):
    s = socket.create_connection(("127.0.0.1", port), 5)
    deadline = time.time() + 30

    def until(token):
        buf = b""
        s.settimeout(1)
        while time.time() < deadline:
            try:
                data = s.recv(65536)
            except socket.timeout:
                continue
            if not data:
                return buf, True
            buf += data
            if token and token in buf:
                return buf, False
        return buf, False

    s.sendall(HEADER.encode())
    until(b"</stream:features>")
    s.sendall(b"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='ANONYMOUS'/>")
    until(b"<success")
    s.sendall(HEADER.encode())
    until(b"</stream:features>")
    s.sendall(b"<iq type='set' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></iq>")
    until(b"</iq>")
    # Silent from here on: the ping goes unanswered.
    buf, closed = until(None)
    pinged = b"urn:xmpp:ping" in buf
    timeout = b"connection-timeout" in buf
    print("pinged: %s, connection-timeout: %s, closed: %s" % (pinged, timeout, closed))
    return pinged and timeout and closed


if __name__ == "__main__":
    mode, port = sys.argv[1], int(sys.argv[2])
    sys.exit(0 if (answering if mode == "answering" else silent)(port) else 1)
