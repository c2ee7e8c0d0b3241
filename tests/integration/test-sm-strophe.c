/* Stream management with libstrophe (issue 10, section 1): 20 logins and
 * clean logouts with XEP-0198 on, a message stored while the user was
 * away and one sent while online each round. Every message must arrive
 * exactly once over all rounds (a stream management that re-routes what
 * the client received re-delivers it at the next login), stored ones
 * with exactly one XEP-0203 delay, live ones with none. */
#include "harness.h"
#include <string.h>

#define ROUNDS 20

/* Number of <delay xmlns='urn:xmpp:delay'/> children of @st. */
static guint delays(xmpp_stanza_t *st)
{
    guint n = 0;
    for (xmpp_stanza_t *c = xmpp_stanza_get_children(st); c; c = xmpp_stanza_get_next(c)) {
        const char *name = xmpp_stanza_get_name(c);
        const char *ns = xmpp_stanza_get_ns(c);
        if (name && g_str_equal(name, "delay") && g_strcmp0(ns, "urn:xmpp:delay") == 0)
            n++;
    }
    return n;
}

typedef struct {
    GHashTable *seen;   /* body -> count */
    GHashTable *delays; /* body -> delay children of its first arrival */
} Seen;

static void note(Seen *s, xmpp_stanza_t *st)
{
    g_autofree char *body = mkt_stanza_child_text(st, "body");
    if (!body)
        return;
    guint n = GPOINTER_TO_UINT(g_hash_table_lookup(s->seen, body));
    if (!n)
        g_hash_table_insert(s->delays, g_strdup(body), GUINT_TO_POINTER(delays(st)));
    g_hash_table_insert(s->seen, g_strdup(body), GUINT_TO_POINTER(n + 1));
}

/* Takes messages until one with @body came (TRUE) or 10 s passed. */
static gboolean take_until(MktClient *c, Seen *s, const char *body)
{
    for (;;) {
        xmpp_stanza_t *st = mkt_client_wait(c, "message >body", 10000);
        if (!st)
            return FALSE;
        g_autofree char *got = mkt_stanza_child_text(st, "body");
        note(s, st);
        xmpp_stanza_release(st);
        if (g_strcmp0(got, body) == 0)
            return TRUE;
    }
}

int main(void)
{
    mkt_init("test-sm-strophe", 300);
    const char *mods[] = {"mod_stream_management", "mod_offline", NULL};
    MktServer *srv = mkt_server_start(NULL, mods);
    if (!mkt_ok(srv != NULL, "server starts with mod_stream_management and mod_offline"))
        return mkt_done();
    mkt_ok(mkt_server_register(srv, "ann", "pw") && mkt_server_register(srv, "bob", "pw"),
           "register ann and bob");
    MktClient *bob = mkt_client_connect(srv, "bob@localhost/b", "pw", 0, NULL);
    mkt_ok(bob != NULL, "bob logs in");

    Seen s = {g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL),
              g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL)};
    gboolean rounds_ok = bob != NULL, sm_used = TRUE;
    for (int i = 0; i < ROUNDS && bob && rounds_ok; i++) {
        g_autofree char *off = g_strdup_printf("off-%d", i);
        g_autofree char *live = g_strdup_printf("live-%d", i);
        mkt_client_send(bob, "<message to='ann@localhost' type='chat'><body>%s</body></message>",
                        off);
        g_autofree char *why = NULL;
        MktClient *ann = mkt_client_connect(srv, "ann@localhost/phone", "pw", MKT_ENABLE_SM, &why);
        if (!ann) {
            mkt_diag("round %d: login failed: %s", i, why ? why : "?");
            rounds_ok = FALSE;
            break;
        }
        mkt_client_send(ann, "<presence/>");
        if (!take_until(ann, &s, off)) {
            mkt_diag("round %d: %s did not arrive", i, off);
            rounds_ok = FALSE;
        }
        mkt_client_send(
            bob, "<message to='ann@localhost/phone' type='chat'><body>%s</body></message>", live);
        if (rounds_ok && !take_until(ann, &s, live)) {
            mkt_diag("round %d: %s did not arrive", i, live);
            rounds_ok = FALSE;
        }
        if (!strstr(mkt_client_received_log(ann), "urn:xmpp:sm:3"))
            sm_used = FALSE;
        mkt_client_disconnect(ann);
    }
    mkt_ok(rounds_ok, "%d rounds: the stored and the live message arrive in each", ROUNDS);
    mkt_ok(sm_used, "libstrophe used stream management in every round");

    /* Whatever the logouts re-routed would come now. */
    MktClient *ann = mkt_client_connect(srv, "ann@localhost/phone", "pw", MKT_ENABLE_SM, NULL);
    if (ann) {
        mkt_client_send(ann, "<presence/>");
        xmpp_stanza_t *st;
        while ((st = mkt_client_wait(ann, "message >body", 1500))) {
            note(&s, st);
            xmpp_stanza_release(st);
        }
        mkt_client_disconnect(ann);
    }

    guint dups = 0, missing = 0, bad_delay = 0;
    for (int i = 0; i < ROUNDS; i++) {
        for (int live = 0; live < 2; live++) {
            g_autofree char *b = g_strdup_printf(live ? "live-%d" : "off-%d", i);
            guint n = GPOINTER_TO_UINT(g_hash_table_lookup(s.seen, b));
            guint d = GPOINTER_TO_UINT(g_hash_table_lookup(s.delays, b));
            if (n == 0)
                missing++;
            if (n > 1) {
                dups++;
                mkt_diag("%s arrived %u times", b, n);
            }
            if (n && d != (live ? 0u : 1u)) {
                bad_delay++;
                mkt_diag("%s arrived with %u delays", b, d);
            }
        }
    }
    mkt_ok(missing == 0, "no message is missing (%u missing)", missing);
    mkt_ok(dups == 0, "no message arrives twice (%u duplicated)", dups);
    mkt_ok(bad_delay == 0, "stored messages carry exactly one delay, live ones none (%u wrong)",
           bad_delay);
    mkt_ok(g_hash_table_size(s.seen) == 2 * ROUNDS, "nothing else arrived (%u bodies)",
           g_hash_table_size(s.seen));
    g_hash_table_destroy(s.seen);
    g_hash_table_destroy(s.delays);
    mkt_client_disconnect(bob);
    mkt_ok(mkt_server_stop(srv), "meerkatd exits cleanly");
    return mkt_done();
}
