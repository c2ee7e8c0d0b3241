/* Which IQs the server answers for an account (RFC 6120 10.3.3: an IQ a
 * client sends without 'to' is handled by the server on behalf of the
 * account; RFC 6121 8.5.2.1.3: likewise one to the account's bare JID).
 * A libstrophe client (profanity's library) asks every loaded module's
 * namespaces without 'to', to its own bare JID and to the server, and
 * each answer is checked against what the namespace's XEP defines for
 * that address. */
#include "harness.h"

#define NS_STANZAS "urn:ietf:params:xml:ns:xmpp-stanzas"

typedef enum {
    NO_TO,    /* no 'to' attribute */
    OWN_BARE, /* to='alice@localhost' */
    SERVER,   /* to='localhost' */
    OTHER,    /* to='bob@localhost' */
} Addr;

static const char *addr_attr(Addr a)
{
    switch (a) {
    case OWN_BARE:
        return " to='alice@localhost'";
    case SERVER:
        return " to='localhost'";
    case OTHER:
        return " to='bob@localhost'";
    default:
        return "";
    }
}

static const char *addr_name(Addr a)
{
    static const char *const names[] = {"without 'to'", "to the own bare JID", "to the server",
                                        "to another account's bare JID"};
    return names[a];
}

typedef struct {
    const char *what;
    const char *type;
    const char *payload;
    Addr addr;
    const char *expect; /* "result" or an error condition */
} Case;

/* One request, one answer: its type (and condition) must be @c->expect. */
static void check(MktClient *c, const Case *k, guint n)
{
    g_autofree char *id = g_strdup_printf("q%u", n);
    mkt_client_send(c, "<iq type='%s' id='%s'%s>%s</iq>", k->type, id, addr_attr(k->addr),
                    k->payload);
    g_autofree char *spec = g_strdup_printf("iq id=%s", id);
    xmpp_stanza_t *st = mkt_client_wait(c, spec, 5000);
    g_autofree char *xml = st ? mkt_stanza_xml(st) : NULL;
    gboolean good;
    if (g_str_equal(k->expect, "result"))
        good = st && mkt_stanza_matches(st, "iq type=result");
    else {
        g_autofree char *err = g_strdup_printf("iq type=error >{%s}%s", NS_STANZAS, k->expect);
        good = st && mkt_stanza_matches(st, err);
    }
    if (!mkt_ok(good, "%s %s %s: %s", k->what, k->type, addr_name(k->addr), k->expect))
        mkt_diag("got: %s", xml ? xml : "(nothing)");
    if (st)
        xmpp_stanza_release(st);
}

int main(void)
{
    mkt_init("test-iq-scopes", 120);
    const char *mods[] = {"mod_ping",    "mod_version",  "mod_time",     "mod_last",
                          "mod_disco",   "mod_vcard",    "mod_private",  "mod_roster",
                          "mod_privacy", "mod_blocking", "mod_register", "mod_carboncopy",
                          NULL};
    MktServer *srv = mkt_server_start(NULL, mods);
    if (!mkt_ok(srv != NULL, "server starts with the IQ modules"))
        return mkt_done();
    mkt_server_register(srv, "alice", "pa");
    mkt_server_register(srv, "bob", "pb");
    MktClient *a = mkt_client_connect(srv, "alice@localhost/a1", "pa", 0, NULL);
    if (!mkt_ok(a != NULL, "alice logs in")) {
        mkt_server_stop(srv);
        return mkt_done();
    }
    /* Available, so that last activity has an answer (seconds='0'). */
    mkt_client_send(a, "<presence/>");
    xmpp_stanza_t *own = mkt_client_wait(a, "presence from=alice@localhost/a1", 5000);
    mkt_ok(own != NULL, "alice is available");
    if (own)
        xmpp_stanza_release(own);

    static const Case cases[] = {
        /* XEP-0199: a client pings its server; profanity sends no 'to'. */
        {"ping", "get", "<ping xmlns='urn:xmpp:ping'/>", NO_TO, "result"},
        {"ping", "get", "<ping xmlns='urn:xmpp:ping'/>", OWN_BARE, "result"},
        {"ping", "get", "<ping xmlns='urn:xmpp:ping'/>", SERVER, "result"},
        /* Not answered for an account that did not ask. */
        {"ping", "get", "<ping xmlns='urn:xmpp:ping'/>", OTHER, "service-unavailable"},
        /* XEP-0092 and XEP-0202 describe an entity's software and clock:
         * an account has neither, so only the server answers. */
        {"version", "get", "<query xmlns='jabber:iq:version'/>", SERVER, "result"},
        {"version", "get", "<query xmlns='jabber:iq:version'/>", NO_TO, "service-unavailable"},
        {"time", "get", "<time xmlns='urn:xmpp:time'/>", SERVER, "result"},
        {"time", "get", "<time xmlns='urn:xmpp:time'/>", NO_TO, "service-unavailable"},
        /* XEP-0012: the server's uptime, or an account's last activity. */
        {"last", "get", "<query xmlns='jabber:iq:last'/>", SERVER, "result"},
        {"last", "get", "<query xmlns='jabber:iq:last'/>", NO_TO, "result"},
        {"last", "get", "<query xmlns='jabber:iq:last'/>", OWN_BARE, "result"},
        /* XEP-0030: the account's own identity and items. */
        {"disco#info", "get", "<query xmlns='http://jabber.org/protocol/disco#info'/>", NO_TO,
         "result"},
        {"disco#items", "get", "<query xmlns='http://jabber.org/protocol/disco#items'/>", OWN_BARE,
         "result"},
        {"disco#info", "get", "<query xmlns='http://jabber.org/protocol/disco#info'/>", SERVER,
         "result"},
        /* XEP-0054: the own vCard. */
        {"vcard", "get", "<vCard xmlns='vcard-temp'/>", NO_TO, "result"},
        {"vcard", "set", "<vCard xmlns='vcard-temp'><FN>A</FN></vCard>", NO_TO, "result"},
        /* XEP-0049: private storage is the own account's only. */
        {"private", "get", "<query xmlns='jabber:iq:private'><x xmlns='urn:t'/></query>", NO_TO,
         "result"},
        {"private", "get", "<query xmlns='jabber:iq:private'><x xmlns='urn:t'/></query>", OWN_BARE,
         "result"},
        {"private", "get", "<query xmlns='jabber:iq:private'><x xmlns='urn:t'/></query>", OTHER,
         "forbidden"},
        /* RFC 6121 2: the roster. */
        {"roster", "get", "<query xmlns='jabber:iq:roster'/>", NO_TO, "result"},
        {"roster", "get", "<query xmlns='jabber:iq:roster'/>", OWN_BARE, "result"},
        {"roster", "get", "<query xmlns='jabber:iq:roster'/>", OTHER, "forbidden"},
        /* XEP-0016 and XEP-0191. */
        {"privacy", "get", "<query xmlns='jabber:iq:privacy'/>", NO_TO, "result"},
        {"blocking", "get", "<blocklist xmlns='urn:xmpp:blocking'/>", NO_TO, "result"},
        {"blocking", "get", "<blocklist xmlns='urn:xmpp:blocking'/>", OWN_BARE, "result"},
        /* XEP-0077 after login: the account's own registration. */
        {"register", "get", "<query xmlns='jabber:iq:register'/>", NO_TO, "result"},
        {"register", "get", "<query xmlns='jabber:iq:register'/>", SERVER, "result"},
        /* XEP-0280: carbons are switched without 'to'. */
        {"carbons", "set", "<enable xmlns='urn:xmpp:carbons:2'/>", NO_TO, "result"},
        /* Nobody's namespace. */
        {"unknown", "get", "<x xmlns='urn:example:none'/>", NO_TO, "service-unavailable"},
    };
    for (guint i = 0; i < G_N_ELEMENTS(cases); i++)
        check(a, &cases[i], i);

    mkt_client_disconnect(a);
    mkt_ok(mkt_server_stop(srv), "meerkatd exits cleanly");
    return mkt_done();
}
