/* Clients' entity capabilities (XEP-0115 section 6.3): a session's
 * available presence carries <c node ver hash/>; a 'ver' this module has
 * verified before is recorded on the session at once, an unknown one is
 * asked for with disco#info to the client (node NODE#VER) and, when the
 * answer hashes to the 'ver', kept for every client that shows it. The
 * features go on the session (mk-caps.h), and caps_changed tells the
 * modules that filter by them (PEP). */
#include "caps.h"
#include "disco.h"

#define NS_INFO "http://jabber.org/protocol/disco#info"
#define NS_CAPS "http://jabber.org/protocol/caps"

/* verified 'ver's kept: a bound, as clients can invent any number */
#define MAX_VERS 4096

struct DiscoCaps {
    GMutex lock;
    GHashTable *vers; /* ver -> GStrv features, verified */
    MkModule *mod;
};

DiscoCaps *disco_caps_new(MkModule *mod)
{
    DiscoCaps *c = g_new0(DiscoCaps, 1);
    g_mutex_init(&c->lock);
    c->vers = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, (GDestroyNotify)g_strfreev);
    c->mod = mod;
    return c;
}

void disco_caps_free(DiscoCaps *c)
{
    if (!c)
        return;
    g_hash_table_destroy(c->vers);
    g_mutex_clear(&c->lock);
    g_free(c);
}

static void record(DiscoCaps *c, MkSession *s, const char *ver, const char *const *features)
{
    if (!mk_session_set_caps(s, ver, features))
        return;
    g_debug("mod_disco: caps of %s recorded (ver %s)", mk_jid_string(mk_session_jid(s)), ver);
    mk_hook_run(c->mod, MK_HOOK_CAPS_CHANGED, mk_session_jid(s));
}

typedef struct {
    DiscoCaps *caps; /* lives as long as the module's data (the request holds it) */
    MkSession *s;
    char *ver;
} Ask;

static void ask_free(gpointer data)
{
    Ask *a = data;
    mk_session_unref(a->s);
    g_free(a->ver);
    g_free(a);
}

static void answered(MkStanza *response, gpointer user_data)
{
    Ask *a = user_data;
    if (!response || !mk_module_is_running(a->caps->mod) || !mk_session_is_bound(a->s))
        return;
    if (g_strcmp0(mk_stanza_type(response), "result") != 0)
        return;
    MkXml *q = mk_xml_child(mk_stanza_xml(response), "query", NS_INFO);
    if (!q)
        return;
    g_autoptr(GPtrArray) ids = g_ptr_array_new();
    g_autoptr(GPtrArray) vars = g_ptr_array_new();
    gboolean forms = FALSE;
    for (guint i = 0; i < mk_xml_child_count(q); i++) {
        MkXml *el = mk_xml_child_at(q, i);
        if (mk_xml_is_text(el))
            continue;
        if (g_str_equal(mk_xml_name(el), "identity")) {
            const char *cat = mk_xml_get_attr(el, "category"), *type = mk_xml_get_attr(el, "type");
            const char *name = mk_xml_get_attr(el, "name");
            if (cat && type) {
                g_ptr_array_add(ids, (gpointer)cat);
                g_ptr_array_add(ids, (gpointer)type);
                g_ptr_array_add(ids, (gpointer)(name ? name : ""));
            }
        } else if (g_str_equal(mk_xml_name(el), "feature") && mk_xml_get_attr(el, "var")) {
            g_ptr_array_add(vars, (gpointer)mk_xml_get_attr(el, "var"));
        } else if (g_str_equal(mk_xml_name(el), "x")) {
            forms = TRUE;
        }
    }
    g_ptr_array_add(ids, NULL);
    g_ptr_array_add(vars, NULL);
    /* Only a 'ver' that hashes to what the client answered is trusted for
     * other clients; one with extended forms (not hashed here) or one
     * that does not match serves this session alone. */
    g_autofree char *ver =
        disco_caps_ver((const char *const *)ids->pdata, (const char *const *)vars->pdata);
    if (!forms && g_str_equal(ver, a->ver)) {
        g_mutex_lock(&a->caps->lock);
        if (g_hash_table_size(a->caps->vers) >= MAX_VERS)
            g_hash_table_remove_all(a->caps->vers);
        g_hash_table_insert(a->caps->vers, g_strdup(a->ver), g_strdupv((char **)vars->pdata));
        g_mutex_unlock(&a->caps->lock);
    }
    record(a->caps, a->s, a->ver, (const char *const *)vars->pdata);
}

/* presence_broadcast: a session's own presence. */
static MkResult on_broadcast(MkHookCall *call, gpointer user_data)
{
    DiscoCaps *c = user_data;
    MkSession *s = mk_hook_call_session(call);
    MkStanza *st = mk_hook_call_stanza(call);
    if (!s || !st || mk_stanza_type(st))
        return MK_PASS; /* unavailable keeps the caps: the session may come back */
    MkXml *el = mk_xml_child(mk_stanza_xml(st), "c", NS_CAPS);
    const char *node = el ? mk_xml_get_attr(el, "node") : NULL;
    const char *ver = el ? mk_xml_get_attr(el, "ver") : NULL;
    if (!node || !ver)
        return MK_PASS;
    /* The same 'ver' as this session's last presence: known or asked
     * already (also one that did not verify, which is not cached). */
    const char *seen = mk_session_get_slot(s, c->mod);
    if (g_strcmp0(seen, ver) == 0)
        return MK_PASS;
    mk_session_set_slot(s, c->mod, g_strdup(ver), g_free);
    g_mutex_lock(&c->lock);
    char **known = g_strdupv(g_hash_table_lookup(c->vers, ver));
    g_mutex_unlock(&c->lock);
    if (known) {
        record(c, s, ver, (const char *const *)known);
        g_strfreev(known);
        return MK_PASS;
    }
    g_autoptr(MkXml) iq = mk_xml_new("iq", "jabber:client");
    mk_xml_set_attr(iq, "type", "get");
    g_autofree char *id = g_strdup_printf("caps%" G_GUINT64_FORMAT, g_get_monotonic_time());
    mk_xml_set_attr(iq, "id", id);
    MkXml *q = mk_xml_add_child(iq, "query", NS_INFO);
    g_autofree char *nodever = g_strconcat(node, "#", ver, NULL);
    mk_xml_set_attr(q, "node", nodever);
    g_autoptr(MkJid) server = mk_jid_new(mk_jid_domain(mk_session_jid(s)), NULL);
    g_autoptr(MkStanza) req = mk_stanza_new_addressed(iq, server, mk_session_jid(s));
    Ask *a = g_new0(Ask, 1);
    a->caps = c;
    a->s = mk_session_ref(s);
    a->ver = g_strdup(ver);
    mk_iq_send(c->mod, req, 30000, answered, a, ask_free);
    return MK_PASS;
}

void disco_caps_start(DiscoCaps *c)
{
    mk_hook_add(c->mod, MK_HOOK_PRESENCE_BROADCAST, 20, on_broadcast, c);
}
