#!/usr/bin/python3
"""The client side of test-packages.sh: two slixmpp clients log in to an
installed meerkatd over STARTTLS, trusting only the certificate the
package made (so a login proves TLS with that certificate), and one sends
the other a message.

    test-client.py PORT CAFILE DOMAIN USER1 PASSWORD1 USER2 PASSWORD2

Exits 0 when USER2 got the message exactly once, 1 otherwise, with the
reason on standard error.
"""
import asyncio
import ssl
import sys
import uuid

import slixmpp

DEADLINE = 60  # seconds for the whole exchange; generous for busy machines


class Client(slixmpp.ClientXMPP):
    def __init__(self, jid, password, cafile):
        # SCRAM-SHA-256, the packaged default's strongest mechanism this
        # client can finish: slixmpp 1.8 binds -PLUS with tls-unique, which
        # TLS 1.3 lacks, so it says "y", accepted over TLS 1.3 by the
        # default [listen] scram_y_flag = tls13.
        super().__init__(jid, password, sasl_mech="SCRAM-SHA-256")
        # Only the packaged self-signed certificate is trusted, and its
        # name is checked against the domain.
        self.ssl_context = ssl.create_default_context(cafile=cafile)
        self.online = asyncio.get_event_loop().create_future()
        self.received = []
        self.register_plugin("xep_0199")
        self.add_event_handler("session_start", self.on_start)
        self.add_event_handler("failed_all_auth", self.on_failed)
        self.add_event_handler("ssl_invalid_chain", self.on_bad_cert)
        self.add_event_handler("message", self.on_message)

    async def on_start(self, _event):
        self.send_presence()
        if not self.online.done():
            self.online.set_result(True)

    def on_failed(self, _event):
        if not self.online.done():
            self.online.set_exception(RuntimeError(f"{self.boundjid.bare}: authentication failed"))

    def on_bad_cert(self, _cert):
        if not self.online.done():
            self.online.set_exception(RuntimeError(f"{self.boundjid.bare}: certificate not trusted"))

    def on_message(self, msg):
        if msg["type"] in ("chat", "normal"):
            self.received.append(msg["body"])


async def main(port, cafile, domain, user1, pw1, user2, pw2):
    loop = asyncio.get_event_loop()
    body = f"package test {uuid.uuid4()}"
    alice = Client(f"{user1}@{domain}", pw1, cafile)
    bob = Client(f"{user2}@{domain}", pw2, cafile)
    try:
        for c in (alice, bob):
            c.connect(address=("127.0.0.1", port), force_starttls=True)
        await asyncio.wait_for(asyncio.gather(alice.online, bob.online), DEADLINE)
        for c in (alice, bob):
            if c.transport is None or c.transport.get_extra_info("ssl_object") is None:
                raise RuntimeError(f"{c.boundjid.bare}: stream is not encrypted")
        alice.send_message(mto=bob.boundjid.bare, mbody=body, mtype="chat")
        end = loop.time() + DEADLINE
        while body not in bob.received and loop.time() < end:
            await asyncio.sleep(0.05)
        # A duplicate would arrive right behind the first copy: a ping
        # round trip to the server lets anything in flight land first.
        await bob.plugin["xep_0199"].ping(jid=domain, timeout=DEADLINE)
        if bob.received.count(body) != 1:
            raise RuntimeError(f"{user2} got the message {bob.received.count(body)} times")
    finally:
        for c in (alice, bob):
            c.disconnect()
        await asyncio.sleep(0)


if __name__ == "__main__":
    if len(sys.argv) != 8:
        sys.exit(__doc__)
    port, cafile, domain, u1, p1, u2, p2 = sys.argv[1:]
    try:
        asyncio.get_event_loop().run_until_complete(main(int(port), cafile, domain, u1, p1, u2, p2))
    except Exception as e:  # pylint: disable=broad-except
        print(f"test-client: {type(e).__name__}: {e}", file=sys.stderr)
        sys.exit(1)
