/* The order in which a user sees the steps of a subscription change
 * (RFC 6121 3.1.5/3.1.6 and 3.2.2), with libstrophe clients reading
 * what arrives in order:
 *
 *  - approval: the contact's 'subscribed', then the roster push
 *    (subscription='to'), then the contact's available presence;
 *  - pre-approval (3.4): the same order when the request is answered
 *    for the contact at once;
 *  - cancellation: the contact's unavailable while the user is still
 *    subscribed, then 'unsubscribed', then the push (subscription='none'). */
#include "harness.h"
#include <string.h>

#define NS_ROSTER "jabber:iq:roster"

/* Logs in, asks for the roster (so pushes come) and sends initial
 * presence; waits for both. (transfer full) (nullable) */
static MktClient *online(MktServer *srv, const char *jid, const char *password)
{
    MktClient *c = mkt_client_connect(srv, jid, password, 0, NULL);
    if (!c)
        return NULL;
    mkt_client_send(c, "<iq type='get' id='roster1'><query xmlns='" NS_ROSTER "'/></iq>");
    xmpp_stanza_t *st = mkt_client_wait(c, "iq id=roster1 type=result", 5000);
    if (st)
        xmpp_stanza_release(st);
    mkt_client_send(c, "<presence/>");
    g_autofree char *own = g_strdup_printf("presence from=%s", mkt_client_jid(c));
    xmpp_stanza_t *p = mkt_client_wait(c, own, 5000);
    if (p)
        xmpp_stanza_release(p);
    return st && p ? c : NULL;
}

/* The subscription='...' of a roster push for @contact, or NULL. */
static const char *push_sub(xmpp_stanza_t *st, const char *contact)
{
    if (!mkt_stanza_matches(st, "iq type=set >{" NS_ROSTER "}query"))
        return NULL;
    xmpp_stanza_t *q = xmpp_stanza_get_child_by_ns(st, NS_ROSTER);
    xmpp_stanza_t *item = q ? xmpp_stanza_get_child_by_name(q, "item") : NULL;
    if (!item || g_strcmp0(xmpp_stanza_get_attribute(item, "jid"), contact) != 0)
        return NULL;
    return xmpp_stanza_get_attribute(item, "subscription");
}

/* Reads @c's stanzas in arrival order until @last_spec matched (or 8 s)
 * and names each step it recognises: "subscribed", "unsubscribed",
 * "push:SUB", "available", "unavailable" (presence from @contact's
 * resources); anything else is skipped. Answers roster pushes.
 * Returns: (transfer full) the names joined with ' '. */
static char *steps(MktClient *c, const char *contact, const char *last_step)
{
    GString *out = g_string_new(NULL);
    gint64 deadline = g_get_monotonic_time() + 8 * G_USEC_PER_SEC;
    while (g_get_monotonic_time() < deadline) {
        xmpp_stanza_t *st = mkt_client_wait(c, "*", 200);
        if (!st)
            continue;
        const char *from = mkt_stanza_attr(st, "from");
        const char *type = mkt_stanza_attr(st, "type");
        const char *sub = push_sub(st, contact);
        g_autofree char *name = NULL;
        gboolean from_contact = from && g_str_has_prefix(from, contact) &&
                                (from[strlen(contact)] == '\0' || from[strlen(contact)] == '/');
        if (sub) {
            name = g_strdup_printf("push:%s", sub);
            mkt_client_send(c, "<iq type='result' id='%s'/>", mkt_stanza_attr(st, "id"));
        } else if (mkt_stanza_matches(st, "presence") && from_contact) {
            if (!type)
                name = g_strdup("available");
            else if (g_str_equal(type, "unavailable") || g_str_equal(type, "subscribed") ||
                     g_str_equal(type, "unsubscribed"))
                name = g_strdup(type);
        }
        xmpp_stanza_release(st);
        if (!name)
            continue;
        g_string_append_printf(out, "%s%s", out->len ? " " : "", name);
        if (g_str_equal(name, last_step))
            break;
    }
    return g_string_free(out, FALSE);
}

static gboolean wait_for(MktClient *c, const char *spec)
{
    xmpp_stanza_t *st = mkt_client_wait(c, spec, 5000);
    if (st)
        xmpp_stanza_release(st);
    return st != NULL;
}

int main(void)
{
    mkt_init("test-subscription-order", 120);
    const char *mods[] = {"mod_roster", NULL};
    MktServer *srv = mkt_server_start("[general]\nworkers = 2\n", mods);
    if (!mkt_ok(srv != NULL, "server starts with mod_roster"))
        return mkt_done();
    const char *users[] = {"alice", "bob", "carol", "dave"};
    for (guint i = 0; i < G_N_ELEMENTS(users); i++)
        mkt_server_register(srv, users[i], "secret");
    MktClient *a = online(srv, "alice@localhost/a", "secret");
    MktClient *b = online(srv, "bob@localhost/b", "secret");
    MktClient *c = online(srv, "carol@localhost/c", "secret");
    MktClient *d = online(srv, "dave@localhost/d", "secret");
    if (!mkt_ok(a && b && c && d, "four users online with their rosters")) {
        mkt_server_stop(srv);
        return mkt_done();
    }

    /* Approval: alice asks, bob approves. */
    mkt_client_send(a, "<presence to='bob@localhost' type='subscribe'/>");
    mkt_ok(wait_for(b, "presence type=subscribe from=alice@localhost"), "bob gets the request");
    /* Alice's own push (ask='subscribe') may come after bob's request. */
    mkt_ok(wait_for(a, "iq type=set >{" NS_ROSTER "}query"), "alice's request is pushed");
    mkt_client_flush(a);
    mkt_client_send(b, "<presence to='alice@localhost' type='subscribed'/>");
    g_autofree char *seen = steps(a, "bob@localhost", "available");
    mkt_ok(g_strcmp0(seen, "subscribed push:to available") == 0,
           "approval: alice sees subscribed, the push, then bob's presence (saw: %s)", seen);

    /* Pre-approval: carol approves dave before he asks. */
    mkt_client_send(c, "<presence to='dave@localhost' type='subscribed'/>");
    mkt_ok(wait_for(c, "iq type=set >{" NS_ROSTER "}query"), "carol's pre-approval is pushed");
    mkt_client_flush(d);
    mkt_client_send(d, "<presence to='carol@localhost' type='subscribe'/>");
    g_autofree char *seen2 = steps(d, "carol@localhost", "available");
    mkt_ok(g_strcmp0(seen2, "push:none subscribed push:to available") == 0,
           "pre-approval: dave sees his push, subscribed, the push, then carol's presence "
           "(saw: %s)",
           seen2);

    /* Cancellation: bob cancels alice's subscription. */
    mkt_client_flush(a);
    mkt_client_send(b, "<presence to='alice@localhost' type='unsubscribed'/>");
    g_autofree char *seen3 = steps(a, "bob@localhost", "push:none");
    mkt_ok(g_strcmp0(seen3, "unavailable unsubscribed push:none") == 0,
           "cancellation: alice sees bob's unavailable, unsubscribed, then the push (saw: %s)",
           seen3);

    mkt_client_disconnect(a);
    mkt_client_disconnect(b);
    mkt_client_disconnect(c);
    mkt_client_disconnect(d);
    mkt_ok(mkt_server_stop(srv), "meerkatd exits cleanly");
    return mkt_done();
}
