#!/usr/bin/python3
"""mod_register: In-Band Registration (XEP-0077). Before login: the stream
feature, the form, creating an account that then logs in over SASL,
conflict, not-acceptable (missing password, invalid localpart), the
per-address limit (resource-constraint), and registration refused when
the configuration does not allow it. After login: the registration
query, password change (the new password works, the old one no longer),
and account removal (result, then the stream closes with not-authorized;
login fails; mod_roster's rows are gone). Prints TAP; ignores --tap."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from modtest import (NS_CLIENT, NS_ROSTER, NS_STREAM, Client, Server, Tap,  # noqa: E402
                     error_condition, q, stream_error)

NS_REGISTER = "jabber:iq:register"
NS_FEATURE = "http://jabber.org/features/iq-register"
LIMIT = 3


def register_iq(c, user, password):
    body = "<query xmlns='%s'>" % NS_REGISTER
    if user is not None:
        body += "<username>%s</username>" % user
    if password is not None:
        body += "<password>%s</password>" % password
    return c.iq(body + "</query>", "set")


def can_login(srv, user, password):
    try:
        c = Client(srv, user, password=password)
    except RuntimeError:
        return False
    c.close()
    return True


def error_type(el):
    err = el.find(q(NS_CLIENT, "error"))
    return err.get("type") if err is not None else None


def test_register(t, srv):
    c = Client.unauthenticated(srv)
    t.ok(c.features.find(q(NS_FEATURE, "register")) is not None,
         "the register feature is offered before authentication")

    form = c.iq("<query xmlns='%s'/>" % NS_REGISTER)
    query = form.find(q(NS_REGISTER, "query"))
    t.ok(form.get("type") == "result" and query is not None and
         query.find(q(NS_REGISTER, "username")) is not None and
         query.find(q(NS_REGISTER, "password")) is not None and
         (query.findtext(q(NS_REGISTER, "instructions")) or "").strip() != "",
         "the form asks for username and password, with instructions")

    res = register_iq(c, "newbie", "n3wpass")
    t.ok(res.get("type") == "result", "a new account is created (%s)" % error_condition(res))
    # Same stream, more attempts: the stream stays open after answers.
    res = register_iq(c, "alice", "whatever")
    t.ok(error_condition(res) == "conflict", "an existing name: conflict")
    res = register_iq(c, "ALICE", "whatever")
    t.ok(error_condition(res) == "conflict", "the name is nodeprep'd: ALICE is alice: conflict")
    res = register_iq(c, "nopass", None)
    t.ok(error_condition(res) == "not-acceptable", "no password: not-acceptable")
    res = register_iq(c, "a@b", "pw")
    t.ok(error_condition(res) == "not-acceptable", "a localpart nodeprep refuses: not-acceptable")
    res = c.iq("<query xmlns='%s'><remove/></query>" % NS_REGISTER, "set")
    t.ok(res.get("type") == "error", "<remove/> before login is refused")
    c.close()

    stored = srv.sql("SELECT salt, stored_key_sha256, plain_password FROM users"
                     " WHERE username = 'newbie'")
    t.ok(len(stored) == 1 and stored[0][1] and stored[0][2] is None,
         "the account holds SCRAM keys, not the password")
    t.ok(srv.sql("SELECT COUNT(*) FROM users WHERE username IN ('nopass', 'a@b')")[0][0] == 0,
         "refused registrations created nothing")
    n = Client(srv, "newbie", password="n3wpass")
    t.ok(n.jid == "newbie@localhost/r", "the new account logs in over SASL")
    n.close()


def test_rate_limit(t, srv):
    # test_register created one account from 127.0.0.1; failures do not count.
    c = Client.unauthenticated(srv)
    results = [register_iq(c, "flood%d" % i, "pw") for i in range(LIMIT)]
    ok = [r.get("type") for r in results]
    t.ok(ok[:LIMIT - 1] == ["result"] * (LIMIT - 1),
         "registrations up to the limit succeed (%s)" % ok)
    over = results[LIMIT - 1]
    t.ok(error_condition(over) == "resource-constraint" and error_type(over) == "wait",
         "over %d per window from one address: resource-constraint, type wait" % LIMIT)
    t.ok(srv.sql("SELECT COUNT(*) FROM users WHERE username = 'flood%d'" % (LIMIT - 1))[0][0] == 0,
         "the refused account was not created")
    c.close()


def test_password_change(t, srv):
    srv.register("carol", "oldpass")
    c = Client(srv, "carol", password="oldpass")
    got = c.iq("<query xmlns='%s'/>" % NS_REGISTER)
    query = got.find(q(NS_REGISTER, "query"))
    t.ok(query is not None and query.find(q(NS_REGISTER, "registered")) is not None and
         query.findtext(q(NS_REGISTER, "username")) == "carol",
         "a logged-in user's query says <registered/> with its username")
    res = c.iq("<query xmlns='%s'><username>alice</username><password>x</password></query>"
               % NS_REGISTER, "set", to="localhost")
    t.ok(error_condition(res) == "not-allowed", "changing another user's password: not-allowed")
    res = c.iq("<query xmlns='%s'><username>carol</username><password>newpass</password>"
               "</query>" % NS_REGISTER, "set", to="localhost")
    t.ok(res.get("type") == "result", "password change: result (%s)" % error_condition(res))
    c.close()
    t.ok(can_login(srv, "carol", "newpass"), "the new password logs in")
    t.ok(not can_login(srv, "carol", "oldpass"), "the old password no longer does")


def test_remove(t, srv):
    srv.register("dave")
    d = Client(srv, "dave")
    d.roster_get()
    d.iq("<query xmlns='%s'><item jid='friend@localhost'/></query>" % NS_ROSTER, "set")
    d.expect_push("friend@localhost")
    before = srv.sql("SELECT COUNT(*) FROM roster_items WHERE username = 'dave'")[0][0]
    res = d.iq("<query xmlns='%s'><remove/></query>" % NS_REGISTER, "set")
    t.ok(res.get("type") == "result", "removal: result (%s)" % error_condition(res))
    err = d.expect(lambda e: e.tag == q(NS_STREAM, "error"), what="a stream error")
    t.ok(stream_error(err) == "not-authorized", "then the stream closes with not-authorized")
    d.close()
    t.ok(not can_login(srv, "dave", "secret"), "the removed account cannot log in")
    after = srv.sql("SELECT COUNT(*) FROM roster_items WHERE username = 'dave'")[0][0]
    t.ok(before == 1 and after == 0, "its roster rows are gone (before %d, after %d)"
         % (before, after))
    t.ok(srv.sql("SELECT COUNT(*) FROM users WHERE username = 'dave'")[0][0] == 0,
         "its users row is gone")


def test_disabled(t):
    srv = Server({"mod_register": {}})
    try:
        srv.register("erin")
        c = Client.unauthenticated(srv)
        t.ok(c.features.find(q(NS_FEATURE, "register")) is None,
             "registration off (the default): no register feature")
        res = c.iq("<query xmlns='%s'/>" % NS_REGISTER)
        t.ok(error_condition(res) == "service-unavailable", "the form: service-unavailable")
        res = register_iq(c, "sneaky", "pw")
        t.ok(error_condition(res) == "service-unavailable", "a registration: service-unavailable")
        c.close()
        t.ok(srv.sql("SELECT COUNT(*) FROM users WHERE username = 'sneaky'")[0][0] == 0,
             "no account was created")
        # Logged-in users still manage their own account.
        e = Client(srv, "erin")
        res = e.iq("<query xmlns='%s'><username>erin</username><password>p2</password></query>"
                   % NS_REGISTER, "set")
        t.ok(res.get("type") == "result", "password change works with registration off")
        e.close()
    finally:
        if t.failed:
            t.diag(srv.log_text())
        srv.stop()


def main():
    t = Tap()
    try:
        srv = Server({"mod_register": {"allow_registration": "true",
                                       "registration_limit": LIMIT,
                                       "registration_window": 600},
                      "mod_roster": {}})
    except Exception as e:
        t.ok(False, "meerkatd with mod_register starts")
        t.diag(e)
        t.done()
    try:
        srv.register("alice")
        t.run("register", test_register, srv)
        t.run("rate limit", test_rate_limit, srv)
        t.run("password change", test_password_change, srv)
        t.run("remove", test_remove, srv)
    finally:
        if t.failed:
            t.diag(srv.log_text())
        srv.stop()
    t.run("disabled", test_disabled)
    t.done()


if __name__ == "__main__":
    main()
