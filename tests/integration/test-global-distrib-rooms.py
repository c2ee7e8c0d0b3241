#!/usr/bin/python3
"""mod_global_distrib with rooms (docs/mod_global_distrib.md, "Rooms and
components"): two regions of localhost on loopback, "eu" serving
conference.localhost (mod_muc) and muclight.localhost (mod_muc_light),
"us" serving neither and listing them in remote_services; one global
redis-server started here. A user of us creates and joins a MUC room in
eu with a user of eu: presence and groupchat both ways, each copy once;
a MUC Light room created from us with a member in eu; a service listed
remote but served nowhere answers service-unavailable; the REST listing
of regions and links (GET /api/global-distrib/regions, with and without
the admin's credentials). Skipped without redis-server. Prints TAP;
ignores --tap."""
import os
import shutil
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from modtest import NS_CLIENT, Client, Tap, error_condition, q  # noqa: E402
from clustertest import Redis, wait_for  # noqa: E402
from gdtest import region, stop_all  # noqa: E402
import muctest  # noqa: E402
import muclighttest as ml  # noqa: E402
import resttest  # noqa: E402

SERVICES = "conference.localhost;muclight.localhost"
ADMIN_PW = "gd-admin-password"


def rooms_region(name, redis, address, pwfile, **extra):
    mods = {"mod_roster": None}
    if name == "eu":
        mods["mod_muc"] = None
        mods["mod_muc_light"] = None
    return region(name, redis, address, mods, rest_admin_password_file=pwfile, **extra)


def up(srv, user):
    c = Client(srv, user)
    c.presence()
    c.expect(lambda e: e.tag == q(NS_CLIENT, "presence") and e.get("from") == c.jid, 10,
             "own presence")
    return c


def test_muc(t, eu, us, redis):
    t.ok(wait_for(lambda: redis.cli("GET", "gd:s:conference.localhost") == "eu" and
                  redis.cli("GET", "gd:s:muclight.localhost") == "eu", 10),
         "eu records its room services in the global Redis")
    t.ok(redis.cli("PTTL", "gd:s:conference.localhost") > 0, "with an expiry")
    an = up(eu, "anna")
    bo = up(us, "ben")
    wait_for(lambda: redis.cli("GET", "gd:j:" + bo.jid) == "us", 10)
    room = muctest.room_jid("lounge")
    p = muctest.join(bo, "lounge", "ben")
    t.ok(p.get("type") != "error" and 201 in muctest.codes(p),
         "ben (us) creates a room in eu's MUC service (%s)" % error_condition(p))
    r = muctest.configure(bo, "lounge")
    t.ok(r.get("type") == "result", "and configures it (an IQ to the room and its result)")
    p = muctest.join(an, "lounge", "anna")
    t.ok(p.get("type") != "error", "anna (eu) joins it")
    e = bo.maybe(muctest.is_presence_from(room + "/anna"), 5)
    t.ok(e is not None, "ben (us) gets anna's presence in the room")
    for i in range(5):
        muctest.say(bo, "lounge", "b%d" % i)
    got_a = [a.findtext(q(NS_CLIENT, "body")) for a in
             iter(lambda: an.maybe(muctest.is_groupchat(room + "/ben"), 3), None)]
    got_b = [a.findtext(q(NS_CLIENT, "body")) for a in
             iter(lambda: bo.maybe(muctest.is_groupchat(room + "/ben"), 1.5), None)]
    want = ["b%d" % i for i in range(5)]
    t.ok(got_a == want, "ben's 5 room messages reach anna, in order, once (%s)" % got_a)
    t.ok(got_b == want, "and ben gets his own copies back from eu (%s)" % got_b)
    muctest.say(an, "lounge", "hello-us")
    e = bo.maybe(muctest.is_groupchat(room + "/anna", "hello-us"), 5)
    t.ok(e is not None, "anna's room message reaches ben in us")
    bo.send("<presence to='%s/ben' type='unavailable'/>" % room)
    e = an.maybe(muctest.is_presence_from(room + "/ben", "unavailable"), 5)
    t.ok(e is not None, "ben leaves: anna gets his unavailable presence")
    an.close()
    bo.close()


def test_muclight(t, eu, us, redis):
    ca = up(us, "cleo")
    da = up(eu, "dan")
    wait_for(lambda: redis.cli("GET", "gd:j:" + ca.jid) == "us", 10)
    r = ml.create(ca, "crossing@muclight.localhost", members=["dan@localhost"])
    t.ok(ml.ok(r), "cleo (us) creates a MUC Light room in eu with dan (eu) as a member (%s)" %
         ml.cond(r))
    e = da.maybe(ml.is_event("crossing@muclight.localhost", "#affiliations"), 5)
    t.ok(e is not None, "dan gets the room's affiliations event")
    ml.say(ca, "crossing@muclight.localhost", "light-from-us")
    t.ok(da.maybe(ml.is_body("light-from-us"), 5) is not None,
         "cleo's message reaches dan in eu")
    t.ok(ca.maybe(ml.is_body("light-from-us"), 5) is not None,
         "and cleo's copy comes back to us")
    ml.say(da, "crossing@muclight.localhost", "light-from-eu")
    t.ok(ca.maybe(ml.is_body("light-from-eu"), 5) is not None, "dan's message reaches cleo")
    ca.close()
    da.close()


def test_unserved(t, eu, us, redis):
    ca = up(us, "cleo")
    ca.send("<message to='x@nowhere.localhost' type='chat' id='nw'><body>hi</body></message>")
    e = ca.maybe(lambda e: e.tag == q(NS_CLIENT, "message") and e.get("id") == "nw", 5)
    t.ok(e is not None and e.get("type") == "error" and
         error_condition(e) == "service-unavailable",
         "a remote service no region records answers service-unavailable (%s)" %
         (error_condition(e) if e is not None else None))
    ca.close()


def test_rest(t, eu, us, redis):
    rec = resttest.Recorder()
    rec.wrap(us)
    rec.wrap(eu)
    status, _, _ = eu.http("GET", "/api/global-distrib/regions", auth=("admin", ADMIN_PW))
    t.ok(status == 200, "eu lists the regions too (%d)" % status)
    status, _, _ = us.http("GET", "/api/global-distrib/regions")
    t.ok(status == 401, "the regions listing needs the admin's credentials (%d)" % status)
    status, _, _ = us.http("GET", "/api/global-distrib/regions", auth=("admin", "wrong"))
    t.ok(status == 401, "a wrong password is refused (%d)" % status)
    status, _, body = us.http("GET", "/api/global-distrib/regions", auth=("admin", ADMIN_PW))
    t.ok(status == 200 and isinstance(body, dict), "us lists the regions (%d)" % status)
    if status != 200 or not isinstance(body, dict):
        return
    regions = {r["name"]: r for r in body.get("regions", [])}
    t.ok(body.get("local_host") == "us" and body.get("redis") is True and
         set(regions) == {"eu", "us"}, "both regions, us the local one (%s)" % sorted(regions))
    e = regions.get("eu", {})
    t.ok(e.get("endpoints") == ["%s:%d" % (eu.address, eu.link_port)],
         "eu's link endpoint (%s)" % e.get("endpoints"))
    t.ok(e.get("link") == "up" and e.get("queued") == 0,
         "the link to eu is up with nothing queued (%s, %s)" % (e.get("link"), e.get("queued")))
    t.ok(e.get("stanzas_out", 0) >= 5 and e.get("stanzas_in", 0) >= 5,
         "with the stanzas sent to and received from eu (%s out, %s in)" % (
             e.get("stanzas_out"), e.get("stanzas_in")))
    t.ok(regions.get("us", {}).get("local") is True and "link" not in regions.get("us", {}),
         "the local region has no link")
    resttest.check_openapi(t, rec, lambda tmpl: tmpl.startswith("/global-distrib"))


def main():
    t = Tap()
    if not shutil.which("redis-server"):
        print("1..0 # SKIP no redis-server")
        return
    redis = eu = us = None
    tmp = tempfile.mkdtemp(prefix="mk-gd-rooms.")
    pwfile = os.path.join(tmp, "admin-password")
    with open(pwfile, "w") as f:
        f.write(ADMIN_PW + "\n")
    try:
        redis = Redis()
        eu = rooms_region("eu", redis, "127.0.0.1", pwfile, services=SERVICES)
        us = rooms_region("us", redis, "127.0.0.2", pwfile,
                    remote_services=SERVICES + ";nowhere.localhost")
        for srv in (eu, us):
            for u in ("anna", "ben", "cleo", "dan"):
                srv.register(u)
        t.ok(wait_for(lambda: redis.cli("ZCARD", "gd:ep:eu") == 1 and
                      redis.cli("ZCARD", "gd:ep:us") == 1, 15),
             "both regions advertise their link endpoint")
        t.run("MUC room across regions", test_muc, eu, us, redis)
        t.run("MUC Light room across regions", test_muclight, eu, us, redis)
        t.run("unserved remote service", test_unserved, eu, us, redis)
        t.run("REST listing", test_rest, eu, us, redis)
    except Exception as e:
        t.ok(False, "regions start: %s" % e)
    finally:
        stop_all(t, (eu, us), redis)
        shutil.rmtree(tmp, ignore_errors=True)
    t.done()


if __name__ == "__main__":
    main()
