"""A raw client stream for tests of hostile or unusual input (login
limits, pre-authentication limits): bytes in, regular expressions over
what comes back; and the server's log and shutdown metrics. Standard
library only."""
import base64
import re
import signal
import socket
import time

from modtest import SERVER_PROBLEMS

HEADER = ("<?xml version='1.0'?><stream:stream to='localhost' xmlns='jabber:client'"
          " xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>")


class Raw:
    """A raw client stream from source address @src."""

    def __init__(self, srv, src="127.0.0.1"):
        self.sock = socket.socket()
        self.sock.bind((src, 0))
        self.sock.settimeout(10)
        self.sock.connect(("127.0.0.1", srv.port))
        self.buf = b""
        self.eof = False

    def send(self, text):
        self.sock.sendall(text.encode())

    def wait(self, pattern, timeout=10):
        """The first match of @pattern (bytes regex) in what arrived since
        the last match; None at EOF or timeout."""
        deadline = time.time() + timeout
        rx = re.compile(pattern, re.S)
        while True:
            m = rx.search(self.buf)
            if m:
                self.buf = self.buf[m.end():]
                return m
            left = deadline - time.time()
            if self.eof or left <= 0:
                return None
            self.sock.settimeout(left)
            try:
                data = self.sock.recv(65536)
            except socket.timeout:
                return None
            except OSError:
                data = b""
            if not data:
                self.eof = True
            self.buf += data

    def closed(self, timeout=10):
        """TRUE once the server closed the connection."""
        self.wait(rb"(?!)", timeout)
        return self.eof

    def open(self, timeout=10):
        """Sends the stream header; TRUE once the features came."""
        try:
            self.send(HEADER)
        except OSError:
            # Reset or broken pipe: the server closed the connection
            # before the header went out (a refused connection can).
            self.eof = True
            return False
        return self.wait(rb"</stream:features>", timeout) is not None

    def plain(self, user, password):
        """'success' or the failure condition (None: no answer)."""
        cred = base64.b64encode(("\0%s\0%s" % (user, password)).encode()).decode()
        self.send("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>%s</auth>"
                  % cred)
        m = self.wait(rb"<success[^>]*/>|<success[^>]*>.*?</success>|<failure[^>]*><([a-z-]+)/>")
        if not m:
            return None
        return "success" if m.group(0).startswith(b"<success") else m.group(1).decode()

    def close(self):
        self.sock.close()


def log_text(srv):
    with open(srv.log_path, errors="replace") as f:
        return f.read()


def stop_with_metrics(srv):
    """Stops @srv; returns the counters it logged at shutdown."""
    srv.proc.send_signal(signal.SIGTERM)
    try:
        srv.proc.wait(10)
    except Exception:
        pass
    if srv.proc.returncode != 0:
        SERVER_PROBLEMS.append("meerkatd exited with %s" % srv.proc.returncode)
    metrics = dict((m.group(1), int(m.group(2)))
                   for m in re.finditer(r"metric (\S+) (-?\d+)", log_text(srv)))
    srv.stop()
    return metrics
