#!/usr/bin/python3
"""The `type = http` listener (core/http.c), mostly without module routes:
GET /metrics parsed by prometheus_client's text parser, its optional
Basic auth (401 with WWW-Authenticate, wrong credentials refused), JSON
404 and 405 answers, the bounds on body size (413, announced or sent
chunked) and header count (431) and their counters, connections per address,
keep-alive, HTTPS with the
listener's certificate, and a module's routes going and coming back with
the module (SIGHUP). Prints TAP; ignores --tap."""
import os
import signal
import socket
import ssl
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from modtest import Server, Tap  # noqa: E402

from prometheus_client.parser import text_string_to_metric_families  # noqa: E402


def raw_request(port, data, tls=False):
    """Sends @data as it is and returns what came back until the server closed."""
    s = socket.create_connection(("127.0.0.1", port), 10)
    if tls:
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        s = ctx.wrap_socket(s)
    s.settimeout(10)
    try:
        s.sendall(data)
    except OSError:
        pass
    out = b""
    try:
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            out += chunk
    except OSError:
        pass
    s.close()
    return out


def test_metrics(t, srv):
    status, headers, text = srv.http("GET", "/metrics", auth=("scraper", "s3cret"))
    t.ok(status == 200, "GET /metrics with the right credentials: 200 (got %d)" % status)
    t.ok(headers.get("content-type", "").startswith("text/plain; version=0.0.4"),
         "text format 0.0.4")
    families = {f.name: f for f in text_string_to_metric_families(text)}
    t.ok(len(families) > 5, "prometheus_client parses %d metric families" % len(families))
    types = {f.type for f in families.values()}
    t.ok({"counter", "gauge", "histogram"} >= types >= {"counter", "gauge"},
         "counters and gauges (and histograms), nothing else (%s)" % sorted(types))
    t.ok(any(n.startswith("meerkat_mod_ping_") for n in families),
         "a module's counters are there (mod_ping)")
    t.ok(all(n.startswith(("meerkat_", "process_")) for n in families),
         "every name starts with meerkat_ or process_")


def test_metrics_auth(t, srv):
    status, headers, body = srv.http("GET", "/metrics")
    t.ok(status == 401, "no credentials: 401 (got %d)" % status)
    t.ok(headers.get("www-authenticate", "").startswith("Basic realm="),
         "401 carries WWW-Authenticate: Basic")
    t.ok(isinstance(body, dict) and "error" in body, "the 401 body is JSON with an error")
    status, _, _ = srv.http("GET", "/metrics", auth=("scraper", "wrong"))
    t.ok(status == 401, "a wrong password: 401")
    status, _, _ = srv.http("GET", "/metrics", auth=("other", "s3cret"))
    t.ok(status == 401, "a wrong user: 401")
    status, _, _ = srv.http("GET", "/metrics", headers={"Authorization": "Basic !!!"})
    t.ok(status == 401, "a malformed Authorization header: 401")


def test_errors(t, srv):
    status, headers, body = srv.http("GET", "/no/such/thing")
    t.ok(status == 404 and isinstance(body, dict) and body.get("error"),
         "an unknown path: 404 with a JSON error")
    t.ok(headers.get("content-type") == "application/json", "errors are application/json")


def test_limits(t, srv):
    # Announced too large: refused before the body is read.
    out = raw_request(srv.http_port,
                      b"POST /x HTTP/1.1\r\nHost: a\r\nContent-Type: application/json\r\n"
                      b"Content-Length: 100000\r\n\r\n")
    t.ok(out.startswith(b"HTTP/1.1 413"), "a Content-Length over max_body_size: 413 (%r)" % out[:40])
    # Chunked, growing past the bound.
    chunk = b"%x\r\n%s\r\n" % (8000, b"a" * 8000)
    out = raw_request(srv.http_port,
                      b"POST /x HTTP/1.1\r\nHost: a\r\nContent-Type: application/json\r\n"
                      b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n" + chunk * 3 +
                      b"0\r\n\r\n")
    t.ok(out.startswith(b"HTTP/1.1 413"), "a chunked body over max_body_size: 413 (%r)" % out[:40])
    many = b"".join(b"X-H%d: v\r\n" % i for i in range(40))
    out = raw_request(srv.http_port, b"GET /metrics HTTP/1.1\r\nHost: a\r\nConnection: close\r\n" +
                      many + b"\r\n")
    t.ok(out.startswith(b"HTTP/1.1 431"), "more header fields than max_headers: 431 (%r)" % out[:40])


def test_keepalive(t, srv):
    import http.client
    conn = http.client.HTTPConnection("127.0.0.1", srv.http_port, timeout=10)
    statuses = []
    for _ in range(3):
        conn.request("GET", "/nothing")
        r = conn.getresponse()
        r.read()
        statuses.append(r.status)
    conn.close()
    t.ok(statuses == [404, 404, 404], "three requests on one kept-alive connection")


def test_https(t):
    srv = Server({}, http={"tls": "direct"})
    try:
        status, _, body = srv.http("GET", "/nothing", tls=True)
        t.ok(status == 404 and body.get("error"), "HTTPS: a request is answered over TLS")
        out = raw_request(srv.http_port, b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
        t.ok(not out.startswith(b"HTTP/1.1 200"), "HTTPS: plain HTTP gets no answer")
    finally:
        srv.stop()


def test_routes_follow_modules(t):
    srv = Server({"mod_rest_admin": {"password": "pw"}}, http={})
    conf = os.path.join(srv.dir, "conf.d", "mod_rest_admin.conf")
    try:
        status, _, _ = srv.http("GET", "/api/users/localhost", auth=("admin", "pw"))
        t.ok(status == 200, "a module's route answers while it runs")
        with open(conf) as f:
            text = f.read()
        os.remove(conf)
        srv.proc.send_signal(signal.SIGHUP)
        deadline = time.time() + 10
        while time.time() < deadline:
            status, _, body = srv.http("GET", "/api/users/localhost", auth=("admin", "pw"))
            if status == 404:
                break
            time.sleep(0.05)
        t.ok(status == 404, "after the module stopped (SIGHUP) its route is gone: 404")
        with open(conf, "w") as f:
            f.write(text)
        srv.proc.send_signal(signal.SIGHUP)
        deadline = time.time() + 10
        while time.time() < deadline:
            status, _, _ = srv.http("GET", "/api/users/localhost", auth=("admin", "pw"))
            if status == 200:
                break
            time.sleep(0.05)
        t.ok(status == 200, "started again, it serves the route again")
    finally:
        srv.stop()


def test_counters(t, srv):
    status, _, text = srv.http("GET", "/metrics", auth=("scraper", "s3cret"))
    values = {}
    for f in text_string_to_metric_families(text):
        for sample in f.samples:
            values[sample.name] = sample.value
    t.ok(values.get("meerkat_core_http_requests_total", 0) >= 10,
         "core.http.requests counts the requests (%r)" % values.get("meerkat_core_http_requests_total"))
    t.ok(values.get("meerkat_core_http_body_too_large_total") == 2,
         "core.http.body_too_large counts the two 413s")
    t.ok(values.get("meerkat_core_http_too_many_headers_total") == 1,
         "core.http.too_many_headers counts the 431")
    t.ok(values.get("meerkat_core_http_not_found_total", 0) >= 4, "core.http.not_found counts 404s")


def test_per_address(t):
    srv = Server({}, http={"max_connections_per_address": 2})
    try:
        held = [socket.create_connection(("127.0.0.1", srv.http_port), 10) for _ in range(2)]
        out = raw_request(srv.http_port, b"GET /x HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
        t.ok(not out.startswith(b"HTTP/"), "a third connection from the address gets no answer")
        held.pop().close()
        deadline = time.time() + 10
        while time.time() < deadline:
            out = raw_request(srv.http_port,
                              b"GET /x HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
            if out.startswith(b"HTTP/1.1 404"):
                break
            time.sleep(0.05)
        t.ok(out.startswith(b"HTTP/1.1 404"), "once one closed, a new one is served")
        for h in held:
            h.close()
    finally:
        srv.stop()


def main():
    t = Tap()
    srv = Server({"mod_ping": {}}, http={"metrics": "true", "metrics_user": "scraper",
                                         "metrics_password_file": "metrics-password",
                                         "max_body_size": 16384, "max_headers": 32})
    try:
        with open(os.path.join(srv.state, "metrics-password"), "w") as f:
            f.write("s3cret\n")
        t.run("metrics", test_metrics, srv)
        t.run("metrics auth", test_metrics_auth, srv)
        t.run("errors", test_errors, srv)
        t.run("limits", test_limits, srv)
        t.run("keep-alive", test_keepalive, srv)
        t.run("counters", test_counters, srv)
    finally:
        srv.stop()
    t.run("https", test_https)
    t.run("routes follow modules", test_routes_follow_modules)
    t.run("connections per address", test_per_address)
    t.done()


if __name__ == "__main__":
    main()
