/* The registries modules fill: hook order and results, IQ keys and
 * dispatch (answers captured through a module route), disco lists,
 * routes, timers, counters, mk_iq_send, and lock-free readers while
 * registrations change. Module instances are made with
 * mk_module_start_adhoc, so no .so is involved here (see test-modules). */
#include "conffile.h"
#include "hosts.h"
#include "metrics.h"
#include "modules-priv.h"
#include "modules.h"
#include "server.h"
#include "sm.h"
#include <glib/gstdio.h>
#include <string.h>

void mk_server_set_for_tests(MkServer *srv);

static MkServer srv;
static GPtrArray *captured; /* serialised stanzas routed to probe.test */
static GString *trace;      /* hook handlers append their tag */

static void capture(MkStanza *st, gpointer user_data)
{
    g_ptr_array_add(captured, mk_xml_to_string(mk_stanza_xml(st), "jabber:client"));
}

static gboolean probe_start(MkModule *mod, GError **error)
{
    return mk_route_register(mod, "Probe.Test", capture, NULL, error);
}

static const MkModuleDesc probe_desc = {MK_MODULE_DESC_HEADER, .name = "mod_probe",
                                        .start = probe_start};

static MkModule *probe;

static void setup(void)
{
    g_autoptr(GError) error = NULL;
    g_autofree char *dir = g_dir_make_tmp("mk-registry-XXXXXX", &error);
    g_assert_no_error(error);
    g_autofree char *conf = g_build_filename(dir, "meerkat.conf", NULL);
    g_assert_true(g_file_set_contents(conf,
                                      "[general]\nhosts = localhost\n"
                                      "[host_type.other]\ndomains = other.test\n",
                                      -1, NULL));
    srv.config = mk_config_load(conf, &error);
    g_assert_no_error(error);
    g_unlink(conf);
    g_rmdir(dir);
    srv.hosts = mk_hosts_new(srv.config);
    srv.modules = mk_modules_new(&srv);
    mk_server_set_for_tests(&srv);
    captured = g_ptr_array_new_with_free_func(g_free);
    trace = g_string_new(NULL);
    probe = mk_module_start_adhoc(srv.modules, &probe_desc, "default", &error);
    g_assert_no_error(error);
}

static void teardown(void)
{
    mk_module_stop_adhoc(probe);
    mk_modules_free(srv.modules);
    mk_hosts_free(srv.hosts);
    mk_config_free(srv.config);
    mk_server_set_for_tests(NULL);
    memset(&srv, 0, sizeof srv);
    g_ptr_array_unref(captured);
    g_string_free(trace, TRUE);
}

/* A module instance whose start() runs @start with @data in a global:
 * GTest functions cannot pass closures to a descriptor. */
static gboolean (*next_start)(MkModule *mod, GError **error);

static gboolean adhoc_start(MkModule *mod, GError **error)
{
    return next_start ? next_start(mod, error) : TRUE;
}

static MkModule *start_module(const char *name, const char *host_type,
                              gboolean (*start)(MkModule *, GError **), GError **error)
{
    /* Descriptors must outlive the instance: keep one per name. */
    static GHashTable *descs;
    if (!descs)
        descs = g_hash_table_new(g_str_hash, g_str_equal);
    MkModuleDesc *desc = g_hash_table_lookup(descs, name);
    if (!desc) {
        desc = g_new0(MkModuleDesc, 1);
        desc->abi_major = MK_ABI_MAJOR;
        desc->abi_minor = MK_ABI_MINOR;
        desc->name = g_strdup(name);
        desc->start = adhoc_start;
        g_hash_table_insert(descs, (gpointer)desc->name, desc);
    }
    next_start = start;
    MkModule *m = mk_module_start_adhoc(srv.modules, desc, host_type, error);
    next_start = NULL;
    return m;
}

static gboolean set_flag(gpointer data)
{
    *(gboolean *)data = TRUE;
    return G_SOURCE_REMOVE;
}

/* Runs the default main context for @ms milliseconds. */
static void spin_ms(guint ms)
{
    gboolean done = FALSE;
    g_timeout_add(ms, set_flag, &done);
    while (!done)
        g_main_context_iteration(NULL, TRUE);
}

static gpointer answer_thread(gpointer data)
{
    return GINT_TO_POINTER(mk_iq_take_response(srv.modules, data));
}

/* ---- Hooks ---- */

static MkResult tag_pass(MkHookCall *call, gpointer user_data)
{
    g_string_append(trace, user_data);
    return MK_PASS;
}

static MkResult tag_handled(MkHookCall *call, gpointer user_data)
{
    g_string_append(trace, user_data);
    return MK_HANDLED;
}

static MkResult tag_error(MkHookCall *call, gpointer user_data)
{
    g_string_append(trace, user_data);
    mk_hook_call_set_error(call, MK_ERR_FORBIDDEN, "no");
    return MK_ERROR;
}

static gboolean hooks_one(MkModule *mod, GError **error)
{
    mk_hook_add(mod, "h", 10, tag_pass, "A");
    mk_hook_add(mod, "h", 50, tag_pass, "B");
    mk_hook_add(mod, "stop", 5, tag_handled, "S");
    mk_hook_add(mod, "err", 5, tag_error, "E");
    return TRUE;
}

static gboolean hooks_two(MkModule *mod, GError **error)
{
    mk_hook_add(mod, "h", 10, tag_pass, "C"); /* same priority as A, later */
    mk_hook_add(mod, "h", 100, tag_pass, "D");
    mk_hook_add(mod, "h", -5, tag_pass, "Z");
    mk_hook_add(mod, "stop", 1, tag_pass, "never");
    mk_hook_add(mod, "err", 1, tag_pass, "never");
    return TRUE;
}

static MkResult run(const char *domain, const char *hook, MkHookCall *out)
{
    g_string_truncate(trace, 0);
    MkHookCall call = {.domain = domain};
    MkResult r = mk_hooks_run(srv.modules, hook, &call);
    if (out)
        *out = call;
    else
        mk_hook_call_clear(&call);
    return r;
}

static void test_hooks(void)
{
    setup();
    g_autoptr(GError) error = NULL;
    MkModule *one = start_module("mod_one", "default", hooks_one, &error);
    MkModule *two = start_module("mod_two", "default", hooks_two, &error);
    g_assert_no_error(error);

    g_assert_cmpint(run("localhost", "h", NULL), ==, MK_PASS);
    g_assert_cmpstr(trace->str, ==, "DBACZ");
    g_assert_cmpint(run("localhost", "stop", NULL), ==, MK_HANDLED);
    g_assert_cmpstr(trace->str, ==, "S");
    MkHookCall call;
    g_assert_cmpint(run("localhost", "err", &call), ==, MK_ERROR);
    g_assert_cmpstr(trace->str, ==, "E");
    g_assert_true(call.has_error);
    g_assert_cmpint(call.error, ==, MK_ERR_FORBIDDEN);
    g_assert_cmpstr(call.error_text, ==, "no");
    mk_hook_call_clear(&call);
    g_assert_null(call.error_text);

    /* Other host type, unknown domain, unknown hook: nothing runs. */
    g_assert_cmpint(run("other.test", "h", NULL), ==, MK_PASS);
    g_assert_cmpstr(trace->str, ==, "");
    g_assert_cmpint(run("nowhere.test", "h", NULL), ==, MK_PASS);
    g_assert_cmpint(run(NULL, "h", NULL), ==, MK_PASS);
    g_assert_cmpint(run("localhost", "nohook", NULL), ==, MK_PASS);
    g_assert_cmpstr(trace->str, ==, "");

    /* Stopping a module removes its handlers. */
    mk_module_stop_adhoc(one);
    g_assert_cmpint(run("localhost", "h", NULL), ==, MK_PASS);
    g_assert_cmpstr(trace->str, ==, "DCZ");
    g_assert_cmpint(run("localhost", "stop", NULL), ==, MK_PASS);
    g_assert_cmpstr(trace->str, ==, "never");
    mk_module_stop_adhoc(two);
    g_assert_cmpint(run("localhost", "h", NULL), ==, MK_PASS);
    g_assert_cmpstr(trace->str, ==, "");
    teardown();
}

/* ---- IQ ---- */

static MkResult iq_result(MkIq *iq, gpointer user_data)
{
    g_assert_true(mk_iq_module(iq) != NULL);
    g_assert_cmpint(mk_iq_type(iq), ==, MK_IQ_GET);
    mk_iq_reply(iq, mk_xml_new("answer", mk_xml_ns(mk_iq_payload(iq))));
    mk_iq_reply(iq, NULL); /* ignored with a warning */
    return MK_HANDLED;
}

static MkResult iq_pass(MkIq *iq, gpointer user_data)
{
    return MK_PASS;
}

static MkResult iq_error(MkIq *iq, gpointer user_data)
{
    mk_iq_reply_error(iq, MK_ERR_NOT_ALLOWED, NULL);
    return MK_ERROR;
}

static MkIq *kept;

static MkResult iq_keep(MkIq *iq, gpointer user_data)
{
    kept = mk_iq_ref(iq);
    return MK_HANDLED;
}

static gboolean iq_owner(MkModule *mod, GError **error)
{
    return mk_iq_register(mod, MK_IQ_SCOPE_SERVER | MK_IQ_SCOPE_ACCOUNT, MK_IQ_GET, "urn:t:a",
                          iq_result, NULL, error) &&
           mk_iq_register(mod, MK_IQ_SCOPE_SERVER, MK_IQ_SET, "urn:t:a", iq_pass, NULL, error) &&
           mk_iq_register(mod, MK_IQ_SCOPE_SERVER, MK_IQ_GET, "urn:t:err", iq_error, NULL, error) &&
           mk_iq_register(mod, MK_IQ_SCOPE_SERVER, MK_IQ_GET, "urn:t:keep", iq_keep, NULL, error);
}

static gboolean iq_clash(MkModule *mod, GError **error)
{
    return mk_iq_register(mod, MK_IQ_SCOPE_ACCOUNT, MK_IQ_GET, "urn:t:a", iq_pass, NULL, error);
}

static gboolean iq_no_clash(MkModule *mod, GError **error)
{
    /* Same namespace, but another type / scope combination is free. */
    return mk_iq_register(mod, MK_IQ_SCOPE_ACCOUNT, MK_IQ_SET, "urn:t:a", iq_pass, NULL, error);
}

static MkStanza *parse(const char *xml)
{
    g_autoptr(GError) error = NULL;
    g_autoptr(MkXml) el = mk_xml_parse(xml, -1, &error);
    g_assert_no_error(error);
    MkStanza *st = mk_stanza_new(el, &error);
    g_assert_no_error(error);
    return st;
}

/* Dispatches @xml as an IQ to localhost and returns the one answer. */
static char *dispatch(const char *xml, MkIqScope scope)
{
    g_ptr_array_set_size(captured, 0);
    g_autoptr(MkStanza) st = parse(xml);
    mk_iq_dispatch(srv.modules, "localhost", scope, st, NULL);
    if (captured->len != 1)
        return NULL;
    return g_strdup(captured->pdata[0]);
}

static void test_iq(void)
{
    setup();
    g_autoptr(GError) error = NULL;
    MkModule *owner = start_module("mod_owner", "default", iq_owner, &error);
    g_assert_no_error(error);

    /* Duplicate key: the failed start leaves nothing behind. */
    g_assert_null(start_module("mod_clash", "default", iq_clash, &error));
    g_assert_error(error, MK_MODULE_ERROR, MK_MODULE_ERROR_START);
    g_assert_nonnull(strstr(error->message, "urn:t:a"));
    g_assert_nonnull(strstr(error->message, "mod_owner"));
    g_clear_error(&error);
    MkModule *other = start_module("mod_clash", "other", iq_clash, &error);
    g_assert_no_error(error); /* another host type */
    MkModule *free_key = start_module("mod_free", "default", iq_no_clash, &error);
    g_assert_no_error(error);

    const char *from = "from='u@probe.test/r' to='localhost'";
    g_autofree char *req = g_strdup_printf(
        "<iq xmlns='jabber:client' type='get' id='q1' %s><query xmlns='urn:t:a'/></iq>", from);
    g_autofree char *ans = dispatch(req, MK_IQ_SCOPE_SERVER);
    g_assert_nonnull(ans); /* exactly one answer although it replied twice */
    g_assert_nonnull(strstr(ans, "type='result'"));
    g_assert_nonnull(strstr(ans, "id='q1'"));
    g_assert_nonnull(strstr(ans, "to='u@probe.test/r'"));
    g_assert_nonnull(strstr(ans, "from='localhost'"));
    g_assert_nonnull(strstr(ans, "<answer xmlns='urn:t:a'/>"));

    const struct {
        const char *payload, *type;
        MkIqScope scope;
        const char *want;
    } cases[] = {
        {"<query xmlns='urn:t:nobody'/>", "get", MK_IQ_SCOPE_SERVER, "service-unavailable"},
        {"<query xmlns='urn:t:a'/>", "set", MK_IQ_SCOPE_SERVER, "service-unavailable"}, /* PASS */
        {"<query xmlns='urn:t:err'/>", "get", MK_IQ_SCOPE_SERVER, "not-allowed"},
        {"<a xmlns='urn:t:a'/><b xmlns='urn:t:a'/>", "get", MK_IQ_SCOPE_SERVER, "bad-request"},
        {"", "get", MK_IQ_SCOPE_SERVER, "bad-request"},
        {"<query xmlns='urn:t:a'/>", "get", MK_IQ_SCOPE_ACCOUNT, "<answer"},
        {"<query xmlns='urn:t:err'/>", "get", MK_IQ_SCOPE_ACCOUNT, "service-unavailable"},
    };
    for (gsize i = 0; i < G_N_ELEMENTS(cases); i++) {
        g_autofree char *x =
            g_strdup_printf("<iq xmlns='jabber:client' type='%s' id='c%zu' %s>%s</iq>",
                            cases[i].type, i, from, cases[i].payload);
        g_autofree char *a = dispatch(x, cases[i].scope);
        g_assert_nonnull(a);
        g_assert_nonnull(strstr(a, cases[i].want));
    }
    /* Responses are never answered. */
    g_autofree char *none = dispatch(
        "<iq xmlns='jabber:client' type='result' id='r' from='u@probe.test/r' to='localhost'/>",
        MK_IQ_SCOPE_SERVER);
    g_assert_null(none);
    g_assert_cmpuint(captured->len, ==, 0);

    /* A kept IQ answers when the module replies later, and an IQ dropped
     * without an answer gets internal-server-error. */
    g_autofree char *k1 = g_strdup_printf(
        "<iq xmlns='jabber:client' type='get' id='k1' %s><q xmlns='urn:t:keep'/></iq>", from);
    g_assert_null(dispatch(k1, MK_IQ_SCOPE_SERVER));
    g_assert_nonnull(kept);
    mk_iq_reply(kept, NULL);
    g_assert_cmpuint(captured->len, ==, 1);
    g_assert_nonnull(strstr(captured->pdata[0], "type='result'"));
    g_clear_pointer(&kept, mk_iq_unref);
    g_assert_null(dispatch(k1, MK_IQ_SCOPE_SERVER));
    g_clear_pointer(&kept, mk_iq_unref);
    g_assert_cmpuint(captured->len, ==, 1);
    g_assert_nonnull(strstr(captured->pdata[0], "internal-server-error"));

    /* After stop, the key is free again and the IQ is unclaimed. */
    mk_module_stop_adhoc(owner);
    g_autofree char *gone = dispatch(req, MK_IQ_SCOPE_SERVER);
    g_assert_nonnull(strstr(gone, "service-unavailable"));
    MkModule *again = start_module("mod_clash", "default", iq_clash, &error);
    g_assert_no_error(error);
    mk_module_stop_adhoc(again);
    mk_module_stop_adhoc(other);
    mk_module_stop_adhoc(free_key);
    teardown();
}

/* ---- Disco, routes, timers, counters ---- */

static gboolean disco_one(MkModule *mod, GError **error)
{
    mk_disco_feature_add(mod, "urn:z");
    mk_disco_feature_add(mod, "urn:a");
    mk_disco_identity_add(mod, "server", "im", "Meerkat");
    mk_disco_item_add(mod, "b.localhost", NULL);
    return TRUE;
}

static gboolean disco_two(MkModule *mod, GError **error)
{
    mk_disco_feature_add(mod, "urn:a"); /* duplicate across modules */
    mk_disco_feature_add(mod, "urn:m");
    mk_disco_identity_add(mod, "pubsub", "pep", NULL);
    mk_disco_identity_add(mod, "server", "im", "Meerkat");
    mk_disco_item_add(mod, "a.localhost", "A");
    return TRUE;
}

static void test_disco(void)
{
    setup();
    g_autoptr(GError) error = NULL;
    MkModule *one = start_module("mod_d1", "default", disco_one, &error);
    MkModule *two = start_module("mod_d2", "default", disco_two, &error);
    g_assert_no_error(error);
    g_auto(GStrv) f = mk_disco_features("localhost");
    g_autofree char *fj = g_strjoinv(",", f);
    g_assert_cmpstr(fj, ==, "urn:a,urn:m,urn:z");
    g_auto(GStrv) ids = mk_disco_identities("localhost");
    g_autofree char *ij = g_strjoinv(",", ids);
    g_assert_cmpstr(ij, ==, "pubsub,pep,,server,im,Meerkat");
    g_auto(GStrv) items = mk_disco_items("localhost");
    g_autofree char *tj = g_strjoinv(",", items);
    g_assert_cmpstr(tj, ==, "a.localhost,A,b.localhost,");
    g_auto(GStrv) other = mk_disco_features("other.test");
    g_assert_cmpuint(g_strv_length(other), ==, 0);
    g_auto(GStrv) unknown = mk_disco_features("nowhere.test");
    g_assert_cmpuint(g_strv_length(unknown), ==, 0);

    mk_module_stop_adhoc(one);
    g_auto(GStrv) f2 = mk_disco_features("localhost");
    g_autofree char *fj2 = g_strjoinv(",", f2);
    g_assert_cmpstr(fj2, ==, "urn:a,urn:m");
    mk_module_stop_adhoc(two);
    g_auto(GStrv) f3 = mk_disco_features("localhost");
    g_assert_cmpuint(g_strv_length(f3), ==, 0);
    teardown();
}

static MkResult stream_el(MkSession *s, MkXml *el, gpointer user_data)
{
    g_string_append_printf(trace, "%s:%s;", (const char *)user_data, mk_xml_name(el));
    return MK_HANDLED;
}

static gboolean stream_one(MkModule *mod, GError **error)
{
    mk_stream_feature_add(mod, MK_STREAM_POST_AUTH, "<sm xmlns='urn:xmpp:sm:3'/>");
    mk_stream_feature_add(mod, MK_STREAM_PRE_AUTH | MK_STREAM_POST_AUTH,
                          "<c xmlns='http://jabber.org/protocol/caps'/>");
    return mk_stream_element_register(mod, "urn:xmpp:sm:3", stream_el, "one", error);
}

static gboolean stream_dup(MkModule *mod, GError **error)
{
    return mk_stream_element_register(mod, "urn:xmpp:sm:3", stream_el, "dup", error);
}

static gboolean stream_two(MkModule *mod, GError **error)
{
    mk_stream_feature_add(mod, MK_STREAM_PRE_AUTH,
                          "<register xmlns='http://jabber.org/features/iq-register'/>");
    return mk_stream_element_register(mod, "urn:xmpp:csi:0", stream_el, "two", error);
}

/* Stream features per stage and top-level element handlers (mk-stream.h). */
static void test_stream(void)
{
    setup();
    g_autoptr(GError) error = NULL;
    MkModule *one = start_module("mod_s1", "default", stream_one, &error);
    g_assert_no_error(error);
    MkModule *two = start_module("mod_s2", "default", stream_two, &error);
    g_assert_no_error(error);
    MkModule *dup = start_module("mod_s3", "default", stream_dup, &error);
    /* The loader reports the refused start, naming the holder. */
    g_assert_error(error, MK_MODULE_ERROR, MK_MODULE_ERROR_START);
    g_assert_nonnull(
        strstr(error->message, "urn:xmpp:sm:3 on host type default are taken by mod_s1"));
    g_assert_null(dup);
    g_clear_error(&error);

    g_assert_cmpstr(mk_stream_features_for("localhost", MK_STREAM_POST_AUTH), ==,
                    "<sm xmlns='urn:xmpp:sm:3'/><c xmlns='http://jabber.org/protocol/caps'/>");
    g_assert_cmpstr(mk_stream_features_for("localhost", MK_STREAM_PRE_AUTH), ==,
                    "<c xmlns='http://jabber.org/protocol/caps'/>"
                    "<register xmlns='http://jabber.org/features/iq-register'/>");
    g_assert_null(mk_stream_features_for("other.test", MK_STREAM_PRE_AUTH));
    g_assert_null(mk_stream_features_for("nowhere.test", MK_STREAM_POST_AUTH));

    g_autoptr(MkJid) jid = mk_jid_new("alice@localhost/r", NULL);
    static const MkSessionTransport none = {0};
    MkSession *s = mk_session_new(jid, NULL, &none, NULL);
    g_autoptr(MkXml) r = mk_xml_new("r", "urn:xmpp:sm:3");
    g_autoptr(MkXml) act = mk_xml_new("active", "urn:xmpp:csi:0");
    g_autoptr(MkXml) other = mk_xml_new("x", "urn:unknown");
    g_string_truncate(trace, 0);
    g_assert_cmpint(mk_stream_element_dispatch(s, r), ==, MK_HANDLED);
    g_assert_cmpint(mk_stream_element_dispatch(s, act), ==, MK_HANDLED);
    g_assert_cmpint(mk_stream_element_dispatch(s, other), ==, MK_PASS);
    g_assert_cmpstr(trace->str, ==, "one:r;two:active;");

    mk_module_stop_adhoc(one);
    g_assert_null(mk_stream_features_for("localhost", MK_STREAM_POST_AUTH));
    g_assert_cmpint(mk_stream_element_dispatch(s, r), ==, MK_PASS);
    mk_module_stop_adhoc(two);
    g_assert_null(mk_stream_features_for("localhost", MK_STREAM_PRE_AUTH));
    g_assert_cmpint(mk_stream_element_dispatch(s, act), ==, MK_PASS);
    mk_session_unref(s);
    teardown();
}

static gboolean route_dup(MkModule *mod, GError **error)
{
    return mk_route_register(mod, "probe.test", capture, NULL, error);
}

static gboolean route_served(MkModule *mod, GError **error)
{
    return mk_route_register(mod, "other.test", capture, NULL, error);
}

static void test_routes(void)
{
    setup();
    g_autoptr(GError) error = NULL;
    g_assert_null(start_module("mod_r1", "other", route_dup, &error));
    g_assert_error(error, MK_MODULE_ERROR, MK_MODULE_ERROR_START);
    g_assert_nonnull(strstr(error->message, "probe.test"));
    g_clear_error(&error);
    g_assert_null(start_module("mod_r2", "default", route_served, &error));
    g_assert_nonnull(strstr(error->message, "host type other"));
    g_clear_error(&error);

    g_autoptr(MkStanza) st = parse("<message xmlns='jabber:client' to='x@probe.test'/>");
    g_assert_true(mk_routes_dispatch(srv.modules, "probe.test", st));
    g_assert_cmpuint(captured->len, ==, 1);
    g_assert_false(mk_routes_dispatch(srv.modules, "elsewhere.test", st));

    mk_module_stop_adhoc(probe);
    g_assert_false(mk_routes_dispatch(srv.modules, "probe.test", st));
    probe = start_module("mod_r1", "other", route_dup, &error); /* free again */
    g_assert_no_error(error);
    teardown();
}

static int ticks;
static MkCounter *counter;

static gboolean tick(gpointer user_data)
{
    ticks++;
    mk_counter_add(counter, 2);
    return G_SOURCE_CONTINUE;
}

static gboolean tick_once(gpointer user_data)
{
    ticks += 100;
    return G_SOURCE_REMOVE;
}

static gboolean timers_start(MkModule *mod, GError **error)
{
    counter = mk_counter_new(mod, "ticks");
    g_assert_true(mk_counter_new(mod, "ticks") == counter); /* created once */
    mk_timer_add(mod, 5, tick, NULL);
    mk_timer_add(mod, 1, tick_once, NULL);
    MkTimer *never = mk_timer_add(mod, 1, tick_once, NULL);
    mk_timer_remove(never);
    return TRUE;
}

static void test_timers_metrics(void)
{
    setup();
    g_autoptr(GError) error = NULL;
    MkModule *m = start_module("mod_tick", "default", timers_start, &error);
    g_assert_no_error(error);
    ticks = 0;
    while (ticks < 103)
        g_main_context_iteration(NULL, TRUE);
    g_assert_cmpint(ticks / 100, ==, 1); /* the removed one never ran */
    int seen = ticks % 100;
    g_autofree char *dump = mk_metrics_dump(srv.modules);
    g_autofree char *want = g_strdup_printf("default.mod_tick.ticks %d\n", seen * 2);
    g_assert_cmpstr(dump, ==, want);

    mk_module_stop_adhoc(m);
    int at_stop = ticks;
    spin_ms(40); /* several of its periods */
    g_assert_cmpint(ticks, ==, at_stop);
    g_autofree char *empty = mk_metrics_dump(srv.modules);
    g_assert_cmpstr(empty, ==, "");
    teardown();
}

/* The module API's gauges, histograms and labelled counters: exported
 * as meerkat_MODULE_NAME with the host type as the first label, listed
 * only while an instance runs, the same series again after a restart. */
static MkGauge *gauge;
static MkHistogram *histogram;
static MkCounter *labelled;

static gboolean kinds_start(MkModule *mod, GError **error)
{
    static const double bounds[] = {1, 5};
    gauge = mk_gauge_new(mod, "queue_rows", "Rows queued.", NULL);
    histogram = mk_histogram_new(mod, "batch_rows", "Rows per batch.", bounds, 2, NULL);
    labelled = mk_counter_new_full(mod, "drops", "Drops by reason.",
                                   (const char *[]){"reason", "full", NULL});
    /* Another reason is another series of the same family; a label
     * without a value is refused. */
    g_assert_true(mk_counter_new_full(mod, "drops", NULL,
                                      (const char *[]){"reason", "old", NULL}) != labelled);
    g_assert_null(mk_counter_new_full(mod, "drops", NULL, (const char *[]){"reason", NULL}));
    return TRUE;
}

static char *render_lines(const char *prefix)
{
    g_autoptr(GString) out = g_string_new(NULL);
    mk_metrics_render(srv.modules->metrics, out);
    g_auto(GStrv) lines = g_strsplit(out->str, "\n", -1);
    GString *got = g_string_new(NULL);
    for (guint i = 0; lines[i]; i++)
        if (g_str_has_prefix(lines[i], prefix) ||
            (g_str_has_prefix(lines[i], "# ") && strstr(lines[i], prefix)))
            g_string_append_printf(got, "%s\n", lines[i]);
    return g_string_free(got, FALSE);
}

static void test_metric_kinds(void)
{
    setup();
    g_autoptr(GError) error = NULL;
    MkModule *m = start_module("mod_kinds", "other", kinds_start, &error);
    g_assert_no_error(error);
    mk_gauge_add(gauge, 7);
    mk_gauge_add(gauge, -2);
    mk_histogram_observe(histogram, 3);
    mk_counter_add(labelled, 2);
    g_autofree char *got = render_lines("meerkat_mod_kinds_");
    g_assert_cmpstr(got, ==,
                    "# HELP meerkat_mod_kinds_batch_rows Rows per batch.\n"
                    "# TYPE meerkat_mod_kinds_batch_rows histogram\n"
                    "meerkat_mod_kinds_batch_rows_bucket{host_type=\"other\",le=\"1\"} 0\n"
                    "meerkat_mod_kinds_batch_rows_bucket{host_type=\"other\",le=\"5\"} 1\n"
                    "meerkat_mod_kinds_batch_rows_bucket{host_type=\"other\",le=\"+Inf\"} 1\n"
                    "meerkat_mod_kinds_batch_rows_sum{host_type=\"other\"} 3\n"
                    "meerkat_mod_kinds_batch_rows_count{host_type=\"other\"} 1\n"
                    "# HELP meerkat_mod_kinds_drops_total Drops by reason.\n"
                    "# TYPE meerkat_mod_kinds_drops_total counter\n"
                    "meerkat_mod_kinds_drops_total{host_type=\"other\",reason=\"full\"} 2\n"
                    "meerkat_mod_kinds_drops_total{host_type=\"other\",reason=\"old\"} 0\n"
                    "# HELP meerkat_mod_kinds_queue_rows Rows queued.\n"
                    "# TYPE meerkat_mod_kinds_queue_rows gauge\n"
                    "meerkat_mod_kinds_queue_rows{host_type=\"other\"} 5\n");
    /* Only plain counters are in the log's dump. */
    g_autofree char *dump = mk_metrics_dump(srv.modules);
    g_assert_cmpstr(dump, ==, "");

    mk_module_stop_adhoc(m);
    g_autofree char *stopped = render_lines("meerkat_mod_kinds_");
    g_assert_cmpstr(stopped, ==, "");
    MkGauge *before = gauge;
    m = start_module("mod_kinds", "other", kinds_start, &error);
    g_assert_no_error(error);
    g_assert_true(gauge == before);
    g_assert_cmpint(mk_gauge_get(gauge), ==, 5);
    mk_module_stop_adhoc(m);
    teardown();
}

/* ---- mk_iq_send ---- */

static GPtrArray *responses; /* "NULL" or the response's type */

static void on_response(MkStanza *response, gpointer user_data)
{
    g_assert_true(user_data == responses);
    g_ptr_array_add(responses, g_strdup(response ? mk_stanza_type(response) : "NULL"));
}

static void test_iq_send(void)
{
    setup();
    responses = g_ptr_array_new_with_free_func(g_free);
    g_autoptr(MkStanza) req = parse("<iq xmlns='jabber:client' type='get' from='localhost' "
                                    "to='peer@probe.test/x'><ping xmlns='urn:xmpp:ping'/></iq>");
    mk_iq_send(probe, req, 10000, on_response, responses, NULL);
    g_assert_cmpuint(captured->len, ==, 1);
    /* An id was assigned to the copy that went out. */
    g_autoptr(MkXml) sent = mk_xml_parse(captured->pdata[0], -1, NULL);
    const char *id = mk_xml_get_attr(sent, "id");
    g_assert_nonnull(id);

    /* Wrong peer, wrong id: not ours. */
    g_autofree char *wrong_peer = g_strdup_printf(
        "<iq xmlns='jabber:client' type='result' id='%s' from='peer@probe.test/y'/>", id);
    g_autoptr(MkStanza) r1 = parse(wrong_peer);
    g_assert_false(mk_iq_take_response(srv.modules, r1));
    g_autoptr(MkStanza) r2 = parse("<iq xmlns='jabber:client' type='result' id='other' "
                                   "from='peer@probe.test/x'/>");
    g_assert_false(mk_iq_take_response(srv.modules, r2));

    g_autofree char *right = g_strdup_printf(
        "<iq xmlns='jabber:client' type='error' id='%s' from='peer@probe.test/x'/>", id);
    g_autoptr(MkStanza) r3 = parse(right);
    g_assert_true(mk_iq_take_response(srv.modules, r3));
    g_assert_false(mk_iq_take_response(srv.modules, r3)); /* exactly once */
    while (responses->len < 1)
        g_main_context_iteration(NULL, TRUE);
    g_assert_cmpstr(responses->pdata[0], ==, "error");

    /* Timeout: NULL once, and a late answer finds nothing. */
    g_autoptr(MkStanza) req2 =
        parse("<iq xmlns='jabber:client' type='get' id='fixed' "
              "from='localhost' to='peer@probe.test/x'><q xmlns='urn:q'/></iq>");
    mk_iq_send(probe, req2, 20, on_response, responses, NULL);
    while (responses->len < 2)
        g_main_context_iteration(NULL, TRUE);
    g_assert_cmpstr(responses->pdata[1], ==, "NULL");
    g_autoptr(MkStanza) late = parse("<iq xmlns='jabber:client' type='result' id='fixed' "
                                     "from='peer@probe.test/x'/>");
    g_assert_false(mk_iq_take_response(srv.modules, late));
    spin_ms(30);
    g_assert_cmpuint(responses->len, ==, 2);

    /* Answered from another thread: the callback still runs here. */
    mk_iq_send(probe, req2, 10000, on_response, responses, NULL);
    GThread *t = g_thread_new("answer", (GThreadFunc)answer_thread, late);
    g_assert_true(GPOINTER_TO_INT(g_thread_join(t)));
    while (responses->len < 3)
        g_main_context_iteration(NULL, TRUE);
    g_assert_cmpstr(responses->pdata[2], ==, "result");

    /* Pending at shutdown: ended with NULL, once, so the caller can free
     * what it attached. */
    mk_iq_send(probe, req2, 10000, on_response, responses, NULL);
    teardown();
    g_assert_cmpuint(responses->len, ==, 4);
    g_assert_cmpstr(responses->pdata[3], ==, "NULL");
    g_ptr_array_unref(responses);
}

/* ---- Module lifetime ---- */

/* The module data of mod_life: every field is checked after the module
 * stopped, which is only legal while the core keeps the data alive. */
typedef struct {
    gint freed;      /* atomic: the destroy notify ran (set on a copy) */
    GThread *thread; /* where the worker timer must run */
    gint ticks;      /* atomic: worker timer calls */
    gint posted;     /* atomic: mk_timer_post calls */
    gint destroyed;  /* atomic: timer/post/iq_send destroy notifies */
    gint responses;  /* mk_iq_send completions (main thread) */
    gboolean running_at_response;
} Life;

static gint life_freed;
static MkIq *held_iq;
static MkModule *life_mod;

static void life_free(gpointer data)
{
    Life *l = data;
    g_atomic_int_inc(&life_freed);
    g_atomic_int_set(&l->freed, 1);
    g_free(l);
}

static MkResult life_iq(MkIq *iq, gpointer user_data)
{
    held_iq = mk_iq_ref(iq); /* answered later, after the module stopped */
    return MK_HANDLED;
}

static gboolean life_start(MkModule *mod, GError **error)
{
    mk_module_set_data(mod, g_new0(Life, 1), life_free);
    return mk_iq_register(mod, MK_IQ_SCOPE_SERVER, MK_IQ_GET, "urn:life", life_iq, NULL, error);
}

static void life_destroyed(gpointer data)
{
    Life *l = data;
    g_assert_false(g_atomic_int_get(&l->freed));
    g_atomic_int_inc(&l->destroyed);
}

static void life_response(MkStanza *response, gpointer data)
{
    Life *l = data;
    g_assert_false(g_atomic_int_get(&l->freed));
    l->responses++;
    l->running_at_response = mk_module_is_running(life_mod);
}

static gboolean life_tick(gpointer data)
{
    Life *l = data;
    g_assert_true(g_thread_self() == l->thread);
    g_atomic_int_inc(&l->ticks);
    return G_SOURCE_CONTINUE;
}

static gboolean life_posted(gpointer data)
{
    Life *l = data;
    g_assert_true(g_thread_self() == l->thread);
    g_atomic_int_inc(&l->posted);
    return G_SOURCE_CONTINUE; /* ignored: runs once */
}

/* A worker stand-in: its own main context, where the module creates a
 * repeating timer and a deferred call; runs until the timer was removed
 * by the module's stop (its destroy ran). */
static gpointer life_worker(gpointer data)
{
    Life *l = data;
    GMainContext *ctx = g_main_context_new();
    g_main_context_push_thread_default(ctx);
    l->thread = g_thread_self();
    g_assert_nonnull(mk_timer_add_full(life_mod, 1, life_tick, l, life_destroyed));
    mk_timer_post(life_mod, life_posted, l, life_destroyed);
    while (g_atomic_int_get(&l->destroyed) < 2)
        g_main_context_iteration(ctx, TRUE);
    g_main_context_pop_thread_default(ctx);
    g_main_context_unref(ctx);
    return NULL;
}

static void test_lifetime(void)
{
    setup();
    g_autoptr(GError) error = NULL;
    life_freed = 0;
    life_mod = start_module("mod_life", "default", life_start, &error);
    g_assert_no_error(error);
    Life *l = mk_module_get_data(life_mod);
    g_assert_true(mk_module_is_running(life_mod));

    /* Work in flight: an IQ the module keeps, a request waiting for its
     * response, timers on another thread. */
    g_autoptr(MkStanza) st =
        parse("<iq xmlns='jabber:client' type='get' id='l1' "
              "from='a@probe.test/x' to='localhost'><q xmlns='urn:life'/></iq>");
    mk_iq_dispatch(srv.modules, "localhost", MK_IQ_SCOPE_SERVER, st, NULL);
    g_assert_nonnull(held_iq);
    g_autoptr(MkStanza) req =
        parse("<iq xmlns='jabber:client' type='get' id='life' "
              "from='localhost' to='peer@probe.test/x'><q xmlns='urn:q'/></iq>");
    mk_iq_send(life_mod, req, 60000, life_response, l, life_destroyed);
    GThread *worker = g_thread_new("life-worker", life_worker, l);
    while (g_atomic_int_get(&l->ticks) < 3 || g_atomic_int_get(&l->posted) < 1)
        g_usleep(1000);

    /* Stop: the worker's timer ends (its destroy runs once), nothing of
     * the module's data goes while any of that is in flight. */
    mk_module_stop_adhoc(life_mod);
    g_assert_false(mk_module_is_running(life_mod));
    g_thread_join(worker);
    g_assert_cmpint(g_atomic_int_get(&l->posted), ==, 1);
    g_assert_cmpint(g_atomic_int_get(&l->destroyed), ==, 2);
    g_assert_cmpint(life_freed, ==, 0);

    /* A late completion still finds the data, and can tell the stop. */
    g_autoptr(MkStanza) answer = parse("<iq xmlns='jabber:client' type='result' id='life' "
                                       "from='peer@probe.test/x'/>");
    g_assert_true(mk_iq_take_response(srv.modules, answer));
    while (l->responses < 1)
        g_main_context_iteration(NULL, TRUE);
    g_assert_false(l->running_at_response);
    g_assert_cmpint(g_atomic_int_get(&l->destroyed), ==, 3);
    mk_iq_reply(held_iq, NULL);
    g_clear_pointer(&held_iq, mk_iq_unref);
    g_assert_cmpint(life_freed, ==, 0); /* the retired snapshot still refers to it */

    /* A timer asked for after the stop is refused (with a warning), its
     * destroy still runs. */
    Life *late = g_new0(Life, 1);
    g_assert_null(mk_timer_add_full(life_mod, 1, life_tick, late, life_destroyed));
    mk_timer_post(life_mod, life_posted, late, life_destroyed);
    g_assert_cmpint(late->destroyed, ==, 2);
    g_assert_cmpint(late->ticks + late->posted, ==, 0);
    g_free(late);

    teardown(); /* frees the retired snapshots: the last references */
    g_assert_cmpint(life_freed, ==, 1);
}

/* ---- Lock-free readers while registrations change ---- */

static gint stop_readers;
static gint bad_runs;

static MkResult count_handler(MkHookCall *call, gpointer user_data)
{
    g_atomic_int_inc((gint *)call->session);
    return GPOINTER_TO_INT(user_data) == 0x5a ? MK_PASS : MK_ERROR;
}

static gboolean stress_start(MkModule *mod, GError **error)
{
    mk_hook_add(mod, "s", 1, count_handler, GINT_TO_POINTER(0x5a));
    mk_hook_add(mod, "s", 2, count_handler, GINT_TO_POINTER(0x5a));
    mk_disco_feature_add(mod, "urn:stress");
    return TRUE;
}

static gboolean base_start(MkModule *mod, GError **error)
{
    mk_hook_add(mod, "s", 0, count_handler, GINT_TO_POINTER(0x5a));
    return TRUE;
}

static gpointer reader(gpointer data)
{
    guint64 runs = 0;
    while (!g_atomic_int_get(&stop_readers)) {
        gint calls = 0;
        MkHookCall call = {.domain = "localhost", .session = (MkSession *)&calls};
        MkResult r = mk_hooks_run(srv.modules, "s", &call);
        /* The base handler always, plus 0 or 2 of the changing module:
         * never a torn table. */
        if (r != MK_PASS || (calls != 1 && calls != 3))
            g_atomic_int_inc(&bad_runs);
        g_auto(GStrv) f = mk_disco_features("localhost");
        if (f[0] && !g_str_equal(f[0], "urn:stress"))
            g_atomic_int_inc(&bad_runs);
        runs++;
    }
    return GSIZE_TO_POINTER(runs);
}

static void test_concurrent_readers(void)
{
    setup();
    g_autoptr(GError) error = NULL;
    MkModule *base = start_module("mod_base", "default", base_start, &error);
    g_assert_no_error(error);
    GThread *threads[4];
    for (int i = 0; i < 4; i++)
        threads[i] = g_thread_new("reader", reader, NULL);
    for (int i = 0; i < 300; i++) {
        MkModule *m = start_module("mod_stress", "default", stress_start, &error);
        g_assert_no_error(error);
        g_thread_yield();
        mk_module_stop_adhoc(m);
        g_main_context_iteration(NULL, FALSE);
    }
    g_atomic_int_set(&stop_readers, 1);
    for (int i = 0; i < 4; i++)
        g_assert_cmpuint(GPOINTER_TO_SIZE(g_thread_join(threads[i])), >, 0);
    g_assert_cmpint(g_atomic_int_get(&bad_runs), ==, 0);
    mk_module_stop_adhoc(base);
    teardown();
}

/* ---- Host types at run time ---- */

static MkResult on_domain_added(MkHookCall *call, gpointer user_data)
{
    g_string_append_printf(trace, "%s:%s;", mk_hook_call_domain(call),
                           mk_jid_string(mk_hook_call_from(call)));
    return MK_PASS;
}

static gboolean domains_start(MkModule *mod, GError **error)
{
    mk_hook_add(mod, MK_HOOK_DOMAIN_ADDED, 0, on_domain_added, NULL);
    return TRUE;
}

static void test_domains(void)
{
    setup();
    g_autoptr(GError) error = NULL;
    MkModule *m = start_module("mod_dom", "other", domains_start, &error);
    g_assert_no_error(error);
    g_assert_true(mk_module_serves_domain(m, "other.test"));
    g_assert_false(mk_module_serves_domain(m, "localhost"));

    g_assert_true(mk_hosts_add_domain(srv.hosts, "other", "New.Test", &error));
    g_assert_no_error(error);
    g_assert_cmpstr(trace->str, ==, "new.test:new.test;");
    g_assert_cmpstr(mk_hosts_lookup(srv.hosts, "new.test"), ==, "other");
    g_auto(GStrv) doms = mk_module_domains(m);
    g_autofree char *joined = g_strjoinv(",", doms);
    g_assert_cmpstr(joined, ==, "new.test,other.test");

    /* Taken, unknown host type, not served: errors, nothing runs. */
    g_string_truncate(trace, 0);
    g_assert_false(mk_hosts_add_domain(srv.hosts, "default", "new.test", &error));
    g_assert_nonnull(strstr(error->message, "already served"));
    g_clear_error(&error);
    g_assert_false(mk_hosts_add_domain(srv.hosts, "nosuch", "x.test", &error));
    g_clear_error(&error);
    g_assert_cmpstr(trace->str, ==, "");

    g_assert_true(mk_hosts_remove_domain(srv.hosts, "new.test", &error));
    g_assert_null(mk_hosts_lookup(srv.hosts, "new.test"));
    g_assert_false(mk_module_serves_domain(m, "new.test"));
    g_assert_false(mk_hosts_remove_domain(srv.hosts, "new.test", &error));
    g_clear_error(&error);
    g_auto(GStrv) types = mk_hosts_types(srv.hosts);
    g_autofree char *tj = g_strjoinv(",", types);
    g_assert_cmpstr(tj, ==, "default,other");
    mk_module_stop_adhoc(m);
    teardown();
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    /* Double replies and dropped IQs are logged as warnings on purpose. */
    g_log_set_always_fatal(G_LOG_LEVEL_CRITICAL);
    g_test_add_func("/registry/hooks", test_hooks);
    g_test_add_func("/registry/iq", test_iq);
    g_test_add_func("/registry/disco", test_disco);
    g_test_add_func("/registry/routes", test_routes);
    g_test_add_func("/registry/stream", test_stream);
    g_test_add_func("/registry/timers-metrics", test_timers_metrics);
    g_test_add_func("/registry/iq-send", test_iq_send);
    g_test_add_func("/registry/metric-kinds", test_metric_kinds);
    g_test_add_func("/registry/lifetime", test_lifetime);
    g_test_add_func("/registry/concurrent-readers", test_concurrent_readers);
    g_test_add_func("/registry/domains", test_domains);
    return g_test_run();
}
