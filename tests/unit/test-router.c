/* Routing rules of RFC 6121 section 8 against the real router, session
 * table, host table and worker mailboxes; sessions use a transport that
 * records what would be written to each client. */
#include "conffile.h"
#include "fanout.h"
#include "hosts.h"
#include "modules-priv.h"
#include "modules.h"
#include "router.h"
#include "server.h"
#include "sm.h"
#include "worker.h"
#include <glib/gstdio.h>

void mk_server_set_for_tests(MkServer *srv);

typedef struct {
    MkServer srv;
    char *dir;
    GAsyncQueue *got;     /* "resource|xml" strings */
    GHashTable *sessions; /* resource -> MkSession* */
} Fixture;

static Fixture *fx; /* GTest fixtures cannot reach the transport callbacks */

static void rec_deliver(MkSession *s, MkStanza *st)
{
    g_autofree char *xml = mk_xml_to_string(mk_stanza_xml(st), "jabber:client");
    g_async_queue_push(fx->got, g_strdup_printf("%s|%s", mk_jid_string(s->jid), xml));
    /* A fan-out copy: also what a client stream would write (c2s.c). */
    MkWire *wire = mk_stanza_wire(st);
    if (wire) {
        GString *out = g_string_new(NULL);
        mk_wire_write(wire, mk_stanza_to(st), out);
        g_async_queue_push(fx->got, g_strdup_printf("WIRE %s|%s", mk_jid_string(s->jid), out->str));
        g_string_free(out, TRUE);
    }
}

static void rec_close(MkSession *s, const char *err)
{
}

static const MkSessionTransport recorder = {rec_deliver, rec_close};

static void marker(gpointer data)
{
    g_async_queue_push(fx->got, g_strdup("MARK"));
}

/* Everything routed before this call has been delivered when it returns:
 * the mailbox is FIFO per poster and the test thread posts everything. */
static GPtrArray *drain(void)
{
    GPtrArray *out = g_ptr_array_new_with_free_func(g_free);
    mk_worker_post(mk_workers_get(fx->srv.workers, 0), marker, NULL, NULL);
    for (;;) {
        char *item = g_async_queue_timeout_pop(fx->got, 5 * G_USEC_PER_SEC);
        g_assert_nonnull(item);
        if (g_str_equal(item, "MARK")) {
            g_free(item);
            break;
        }
        g_ptr_array_add(out, item);
    }
    return out;
}

static guint count_for(GPtrArray *got, const char *jid)
{
    guint n = 0;
    g_autofree char *prefix = g_strdup_printf("%s|", jid);
    for (guint i = 0; i < got->len; i++)
        n += g_str_has_prefix(got->pdata[i], prefix);
    return n;
}

static gboolean has(GPtrArray *got, const char *jid, const char *needle)
{
    g_autofree char *prefix = g_strdup_printf("%s|", jid);
    for (guint i = 0; i < got->len; i++)
        if (g_str_has_prefix(got->pdata[i], prefix) && strstr(got->pdata[i], needle))
            return TRUE;
    return FALSE;
}

static MkSession *add_session(const char *full, gboolean available, int prio)
{
    g_autoptr(MkJid) jid = mk_jid_new(full, NULL);
    g_assert_nonnull(jid);
    MkSession *s = mk_session_new(jid, mk_workers_get(fx->srv.workers, 0), &recorder, fx);
    g_autoptr(MkSession) old = mk_sm_register(fx->srv.sm, s);
    g_assert_null(old);
    if (available) {
        g_autoptr(MkXml) p = mk_xml_new("presence", "jabber:client");
        g_autoptr(MkStanza) st = mk_stanza_new_addressed(p, jid, NULL);
        mk_sm_set_presence(fx->srv.sm, s, st, TRUE, prio);
    }
    g_hash_table_insert(fx->sessions, g_strdup(full), s);
    return s;
}

static void route_xml(const char *xml)
{
    g_autoptr(GError) error = NULL;
    g_autoptr(MkXml) el = mk_xml_parse(xml, -1, &error);
    g_assert_no_error(error);
    g_autoptr(MkStanza) st = mk_stanza_new(el, &error);
    g_assert_no_error(error);
    mk_router_route(st, NULL);
}

static void setup(void)
{
    g_autoptr(GError) error = NULL;
    fx = g_new0(Fixture, 1);
    fx->dir = g_dir_make_tmp("mk-router-XXXXXX", &error);
    g_assert_no_error(error);
    g_autofree char *conf = g_build_filename(fx->dir, "meerkat.conf", NULL);
    g_autofree char *text = g_strdup_printf("[general]\nhosts = localhost\nstate_dir = %s\n"
                                            "workers = 1\n[storage]\ndriver = sqlite3\n",
                                            fx->dir);
    g_assert_true(g_file_set_contents(conf, text, -1, NULL));
    fx->srv.config = mk_config_load(conf, &error);
    g_assert_no_error(error);
    mk_server_set_for_tests(&fx->srv);
    fx->srv.hosts = mk_hosts_new(fx->srv.config);
    fx->srv.sm = mk_sm_new();
    fx->srv.workers = mk_workers_start(1, &error);
    g_assert_no_error(error);
    fx->srv.modules = mk_modules_new(&fx->srv);
    g_assert_true(mk_modules_apply(fx->srv.modules, fx->srv.config, &error));
    fx->got = g_async_queue_new_full(g_free);
    fx->sessions = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);

    add_session("juliet@localhost/a", TRUE, 5);
    add_session("juliet@localhost/b", TRUE, 5);
    add_session("juliet@localhost/c", TRUE, 1);
    add_session("juliet@localhost/d", TRUE, -1);
    add_session("juliet@localhost/e", FALSE, 0);
    add_session("romeo@localhost/r", TRUE, 0);
    add_session("nurse@localhost/n", TRUE, -5);
}

static void teardown(void)
{
    GHashTableIter it;
    gpointer v;
    g_hash_table_iter_init(&it, fx->sessions);
    while (g_hash_table_iter_next(&it, NULL, &v)) {
        mk_sm_unregister(fx->srv.sm, v);
        mk_session_unref(v);
    }
    g_hash_table_destroy(fx->sessions);
    mk_modules_stop_all(fx->srv.modules);
    mk_workers_stop(fx->srv.workers);
    mk_modules_free(fx->srv.modules);
    mk_sm_free(fx->srv.sm);
    mk_hosts_free(fx->srv.hosts);
    mk_config_free(fx->srv.config);
    g_async_queue_unref(fx->got);
    mk_server_set_for_tests(NULL);
    g_autofree char *cmd = g_strdup_printf("rm -rf '%s'", fx->dir);
    g_assert_cmpint(system(cmd), ==, 0);
    g_free(fx->dir);
    g_clear_pointer(&fx, g_free);
}

/* mk_session_is_bound follows the session table: a session replaced by
 * another with its full JID, or removed, is no longer bound. */
static void test_session_bound(void)
{
    setup();
    MkSession *a = g_hash_table_lookup(fx->sessions, "juliet@localhost/a");
    g_assert_true(mk_session_is_bound(a));
    g_autoptr(MkJid) jid = mk_jid_new("juliet@localhost/a", NULL);
    g_autoptr(MkSession) again =
        mk_session_new(jid, mk_workers_get(fx->srv.workers, 0), &recorder, fx);
    g_assert_false(mk_session_is_bound(again));
    g_autoptr(MkSession) old = mk_sm_register(fx->srv.sm, again);
    g_assert_true(old == a);
    g_assert_false(mk_session_is_bound(a));
    g_assert_true(mk_session_is_bound(again));
    mk_sm_unregister(fx->srv.sm, again);
    g_assert_false(mk_session_is_bound(again));
    teardown();
}

static void test_chat_to_bare_highest_priority(void)
{
    setup();
    route_xml("<message xmlns='jabber:client' type='chat' from='romeo@localhost/r' "
              "to='juliet@localhost'><body>hi</body></message>");
    g_autoptr(GPtrArray) got = drain();
    g_assert_cmpuint(count_for(got, "juliet@localhost/a"), ==, 1);
    g_assert_cmpuint(count_for(got, "juliet@localhost/b"), ==, 1);
    g_assert_cmpuint(count_for(got, "juliet@localhost/c"), ==, 0);
    g_assert_cmpuint(count_for(got, "juliet@localhost/d"), ==, 0);
    g_assert_cmpuint(count_for(got, "juliet@localhost/e"), ==, 0);
    g_assert_cmpuint(got->len, ==, 2);
    teardown();
}

/* The time of a bare-JID choice is ordered exactly with availability
 * stamps (c2s-sm.c relies on it to know whether another resource got a
 * message a detached session never acknowledged): a resource available
 * before the choice has a stamp <= it, one available after has a later
 * stamp, even within the same microsecond. */
static void test_bare_choice_ordered_with_availability(void)
{
    setup();
    g_autoptr(MkJid) bare = mk_jid_new("juliet@localhost", NULL);
    for (int i = 0; i < 2000; i++) {
        g_autofree char *full = g_strdup_printf("juliet@localhost/n%d", i);
        MkSession *before = add_session(full, TRUE, 5); /* available now */
        gint64 chosen = 0;
        g_autoptr(GPtrArray) got = mk_sm_bare_targets(fx->srv.sm, bare, FALSE, &chosen);
        gboolean in_choice = FALSE;
        for (guint j = 0; j < got->len; j++)
            in_choice |= got->pdata[j] == before;
        g_assert_true(in_choice);
        g_assert_cmpint(mk_session_available_since_us(before), <=, chosen);
        /* Made available right after the choice: not in it, stamped later. */
        g_autofree char *later = g_strdup_printf("juliet@localhost/m%d", i);
        MkSession *after = add_session(later, TRUE, 5);
        g_assert_cmpint(mk_session_available_since_us(after), >, chosen);
    }
    /* The router passes the choice on with the message. */
    g_autoptr(GError) error = NULL;
    g_autoptr(MkXml) el =
        mk_xml_parse("<message xmlns='jabber:client' type='chat' from='romeo@localhost/r' "
                     "to='juliet@localhost'><body>hi</body></message>",
                     -1, &error);
    g_assert_no_error(error);
    g_autoptr(MkStanza) st = mk_stanza_new(el, &error);
    g_assert_no_error(error);
    gint64 t0 = g_get_real_time();
    mk_router_route(st, NULL);
    g_assert_cmpint(mk_stanza_chosen_us(st), >=, t0);
    g_autoptr(GPtrArray) drained = drain();
    g_assert_cmpuint(drained->len, ==, 4002); /* a, b and every n and m */
    teardown();
}

static void test_headline_to_all_non_negative(void)
{
    setup();
    route_xml("<message xmlns='jabber:client' type='headline' from='romeo@localhost/r' "
              "to='juliet@localhost'><body>news</body></message>");
    g_autoptr(GPtrArray) got = drain();
    g_assert_cmpuint(count_for(got, "juliet@localhost/a"), ==, 1);
    g_assert_cmpuint(count_for(got, "juliet@localhost/b"), ==, 1);
    g_assert_cmpuint(count_for(got, "juliet@localhost/c"), ==, 1);
    g_assert_cmpuint(got->len, ==, 3);
    teardown();
}

static void test_negative_priority_never_gets_bare(void)
{
    setup();
    /* nurse has only a negative-priority resource: nothing is delivered
     * and the sender gets service-unavailable. */
    route_xml("<message xmlns='jabber:client' type='chat' id='m1' from='romeo@localhost/r' "
              "to='nurse@localhost'><body>hi</body></message>");
    g_autoptr(GPtrArray) got = drain();
    g_assert_cmpuint(count_for(got, "nurse@localhost/n"), ==, 0);
    g_assert_true(has(got, "romeo@localhost/r", "service-unavailable"));
    g_assert_true(has(got, "romeo@localhost/r", "type='error'"));
    teardown();
}

static void test_full_jid(void)
{
    setup();
    /* An existing full JID gets it even without available presence. */
    route_xml("<message xmlns='jabber:client' type='chat' from='romeo@localhost/r' "
              "to='juliet@localhost/e'><body>1</body></message>");
    /* An unknown resource falls back to the bare-JID rules. */
    route_xml("<message xmlns='jabber:client' type='chat' from='romeo@localhost/r' "
              "to='juliet@localhost/zzz'><body>2</body></message>");
    g_autoptr(GPtrArray) got = drain();
    g_assert_cmpuint(count_for(got, "juliet@localhost/e"), ==, 1);
    g_assert_true(has(got, "juliet@localhost/e", "<body>1</body>"));
    g_assert_true(has(got, "juliet@localhost/a", "<body>2</body>"));
    g_assert_true(has(got, "juliet@localhost/b", "<body>2</body>"));
    g_assert_cmpuint(got->len, ==, 3);
    teardown();
}

static void test_iq_to_unavailable_full_jid(void)
{
    setup();
    route_xml("<iq xmlns='jabber:client' type='get' id='q1' from='romeo@localhost/r' "
              "to='juliet@localhost/gone'><query xmlns='jabber:iq:version'/></iq>");
    /* A result to a gone resource is dropped silently. */
    route_xml("<iq xmlns='jabber:client' type='result' id='q2' from='romeo@localhost/r' "
              "to='juliet@localhost/gone'/>");
    g_autoptr(GPtrArray) got = drain();
    g_assert_cmpuint(got->len, ==, 1);
    g_assert_true(has(got, "romeo@localhost/r", "service-unavailable"));
    g_assert_true(has(got, "romeo@localhost/r", "id='q1'"));
    teardown();
}

static void test_groupchat_and_error_to_bare(void)
{
    setup();
    route_xml("<message xmlns='jabber:client' type='groupchat' id='g' from='romeo@localhost/r' "
              "to='juliet@localhost'><body>x</body></message>");
    route_xml("<message xmlns='jabber:client' type='error' from='romeo@localhost/r' "
              "to='juliet@localhost'/>");
    g_autoptr(GPtrArray) got = drain();
    g_assert_cmpuint(got->len, ==, 1);
    g_assert_true(has(got, "romeo@localhost/r", "service-unavailable"));
    teardown();
}

static void test_presence_to_bare_reaches_available(void)
{
    setup();
    route_xml("<presence xmlns='jabber:client' from='romeo@localhost/r' to='juliet@localhost'/>");
    g_autoptr(GPtrArray) got = drain();
    /* Every available resource, negative priority included; not e. */
    g_assert_cmpuint(got->len, ==, 4);
    g_assert_cmpuint(count_for(got, "juliet@localhost/d"), ==, 1);
    g_assert_cmpuint(count_for(got, "juliet@localhost/e"), ==, 0);
    teardown();
}

static void test_remote_domain_bounces(void)
{
    setup();
    route_xml("<message xmlns='jabber:client' type='chat' id='x' from='romeo@localhost/r' "
              "to='someone@elsewhere.example'><body>x</body></message>");
    g_autoptr(GPtrArray) got = drain();
    g_assert_cmpuint(got->len, ==, 1);
    g_assert_true(has(got, "romeo@localhost/r", "remote-server-not-found"));
    teardown();
}

static void test_unclaimed_iq_to_server(void)
{
    setup();
    route_xml("<iq xmlns='jabber:client' type='get' id='s1' from='romeo@localhost/r' "
              "to='localhost'><query xmlns='urn:example:nobody'/></iq>");
    g_autoptr(GPtrArray) got = drain();
    g_assert_cmpuint(got->len, ==, 1);
    g_assert_true(has(got, "romeo@localhost/r", "service-unavailable"));
    g_assert_true(has(got, "romeo@localhost/r", "from='localhost'"));
    teardown();
}

static const MkModuleDesc shared_a_desc = {MK_MODULE_DESC_HEADER, .name = "mod_shared_a"};
static const MkModuleDesc shared_b_desc = {MK_MODULE_DESC_HEADER, .name = "mod_shared_b"};

/* Per-session flags and strings: per module, any thread, and the session
 * keeps a stopped module's instance until it goes. */
static void test_session_shared(void)
{
    setup();
    g_autoptr(GError) error = NULL;
    MkModule *a = mk_module_start_adhoc(fx->srv.modules, &shared_a_desc, "default", &error);
    g_assert_no_error(error);
    MkModule *b = mk_module_start_adhoc(fx->srv.modules, &shared_b_desc, "default", &error);
    g_assert_no_error(error);
    MkSession *s = g_hash_table_lookup(fx->sessions, "juliet@localhost/a");
    MkSession *t = g_hash_table_lookup(fx->sessions, "juliet@localhost/b");

    g_assert_cmpuint(mk_session_get_flags(s, a), ==, 0);
    g_assert_null(mk_session_dup_string(s, a));
    mk_session_set_flags(s, a, 0x5, 0x7);
    mk_session_set_flags(s, b, 0x2, 0x2);
    mk_session_set_flags(s, a, 0x8, 0x8); /* other bits stay */
    g_assert_cmpuint(mk_session_get_flags(s, a), ==, 0xd);
    mk_session_set_flags(s, a, 0, 0x1);
    g_assert_cmpuint(mk_session_get_flags(s, a), ==, 0xc);
    g_assert_cmpuint(mk_session_get_flags(s, b), ==, 0x2);
    g_assert_cmpuint(mk_session_get_flags(t, a), ==, 0);

    mk_session_set_string(s, a, "work");
    mk_session_set_string(t, a, "home");
    g_autofree char *sa = mk_session_dup_string(s, a);
    g_autofree char *ta = mk_session_dup_string(t, a);
    g_assert_cmpstr(sa, ==, "work");
    g_assert_cmpstr(ta, ==, "home");
    g_assert_null(mk_session_dup_string(s, b));
    mk_session_set_string(t, a, NULL);
    g_assert_null(mk_session_dup_string(t, a));

    /* The session keeps @a's instance: stopping it frees nothing the
     * session points at (ASan checks the rest in teardown). */
    mk_module_stop_adhoc(a);
    mk_module_stop_adhoc(b);
    g_assert_cmpuint(mk_session_get_flags(s, a), ==, 0xc);
    teardown();
}

/* mk_fanout_send: one serialisation shared by every copy; each copy's
 * bytes carry its own 'to' (escaped) and the same payload, and parse to
 * what the copy's own XML says. */
static void test_fanout_shared_bytes(void)
{
    setup();
    add_session("romeo@localhost/it's & me", TRUE, 0);
    g_autoptr(GError) error = NULL;
    g_autoptr(MkXml) el = mk_xml_parse(
        "<message xmlns='jabber:client' type='groupchat' id='g1' to='ignored@localhost'>"
        "<body>a &amp; b &lt; c</body><x xmlns='urn:example'><y k='v'/></x></message>",
        -1, &error);
    g_assert_no_error(error);
    g_autoptr(MkJid) from = mk_jid_new("room@rooms.localhost/romeo@localhost", NULL);
    g_autoptr(MkStanza) st = mk_stanza_new_addressed(el, from, NULL);
    const char *to[] = {"juliet@localhost/a", "juliet@localhost/c", "romeo@localhost/r",
                        "romeo@localhost/it's & me"};
    MkJid *jids[G_N_ELEMENTS(to)];
    for (guint i = 0; i < G_N_ELEMENTS(to); i++)
        jids[i] = mk_jid_new(to[i], NULL);
    mk_fanout_send(st, jids, G_N_ELEMENTS(to));
    for (guint i = 0; i < G_N_ELEMENTS(to); i++)
        mk_jid_unref(jids[i]);
    g_autoptr(GPtrArray) got = drain();
    g_autofree char *payload = NULL;
    guint wires = 0;
    for (guint i = 0; i < got->len; i++) {
        const char *item = got->pdata[i];
        if (!g_str_has_prefix(item, "WIRE "))
            continue;
        wires++;
        const char *bar = strchr(item, '|');
        g_autofree char *who = g_strndup(item + 5, bar - item - 5);
        g_autoptr(MkXml) parsed = mk_xml_parse(bar + 1, -1, &error);
        g_assert_no_error(error);
        g_assert_cmpstr(mk_xml_get_attr(parsed, "to"), ==, who);
        g_assert_cmpstr(mk_xml_get_attr(parsed, "from"), ==, mk_jid_string(from));
        g_assert_cmpstr(mk_xml_get_attr(parsed, "type"), ==, "groupchat");
        g_assert_cmpstr(mk_xml_get_attr(parsed, "id"), ==, "g1");
        g_assert_cmpuint(mk_xml_attr_count(parsed), ==, 4);
        /* The payload, as bytes: identical in every copy. */
        const char *start = strchr(bar + 1, '>');
        if (!payload)
            payload = g_strdup(start);
        g_assert_cmpstr(start, ==, payload);
        g_autofree char *body = mk_xml_child_text(parsed, "body", NULL);
        g_assert_cmpstr(body, ==, "a & b < c");
        g_assert_nonnull(mk_xml_child(mk_xml_child(parsed, "x", "urn:example"), "y", NULL));
    }
    g_assert_cmpuint(wires, ==, G_N_ELEMENTS(to));
    for (guint i = 0; i < G_N_ELEMENTS(to); i++)
        g_assert_cmpuint(count_for(got, to[i]), ==, 1);
    teardown();
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/router/message/bare-highest-priority", test_chat_to_bare_highest_priority);
    g_test_add_func("/router/message/headline", test_headline_to_all_non_negative);
    g_test_add_func("/router/message/bare-choice-stamp",
                    test_bare_choice_ordered_with_availability);
    g_test_add_func("/router/message/negative-priority", test_negative_priority_never_gets_bare);
    g_test_add_func("/router/message/full-jid", test_full_jid);
    g_test_add_func("/router/message/groupchat-error", test_groupchat_and_error_to_bare);
    g_test_add_func("/router/iq/unavailable-full-jid", test_iq_to_unavailable_full_jid);
    g_test_add_func("/router/iq/unclaimed-server", test_unclaimed_iq_to_server);
    g_test_add_func("/router/presence/bare", test_presence_to_bare_reaches_available);
    g_test_add_func("/router/remote-domain", test_remote_domain_bounces);
    g_test_add_func("/router/session-bound", test_session_bound);
    g_test_add_func("/router/fanout/shared-bytes", test_fanout_shared_bytes);
    g_test_add_func("/router/session-shared", test_session_shared);
    return g_test_run();
}
