/* mod_vcard: vcard-temp (XEP-0054) and vCard-based avatars (XEP-0153).
 *
 * vCards are stored per account and removed with it (the row references
 * the account). A user reads and writes its own vCard (no 'to', or its
 * own bare JID); anybody may read another user's vCard with a get to that
 * bare JID; only the owner may set. An account without a vCard answers an
 * empty <vCard/>, a JID that is no account service-unavailable. A set
 * larger than max_size gets not-acceptable.
 *
 * XEP-0153: the SHA-1 of the stored PHOTO/BINVAL is cached per user while
 * the user has sessions (loaded at session start, refreshed by the owner's
 * get and by every set), and the server adds
 * <x xmlns='vcard-temp:x:update'><photo>HASH</photo></x> to the user's
 * available presence when the client did not put an <x/> there itself.
 * After a set, the next presence the client sends carries the new hash;
 * the server sends none on the user's behalf (the module API cannot run
 * the presence broadcast). A presence sent before the hash is loaded goes
 * out unchanged. */
#include <meerkat/module.h>

#include <string.h>

#define NS_VCARD  "vcard-temp"
#define NS_UPDATE "vcard-temp:x:update"

static const MkMigration vcard_migrations[] = {
    /* The common subset of sqlite3 and PostgreSQL: one step for both.
     * photo_hash: hex SHA-1 of the decoded PHOTO/BINVAL, "" for none. */
    {NULL, 1,
     "CREATE TABLE vcards ("
     " username TEXT NOT NULL,"
     " domain TEXT NOT NULL,"
     " xml TEXT NOT NULL,"
     " photo_hash TEXT NOT NULL DEFAULT '',"
     " PRIMARY KEY (username, domain),"
     " FOREIGN KEY (username, domain) REFERENCES users (username, domain) ON DELETE CASCADE"
     ")"},
    MK_MIGRATIONS_END,
};

/* Module state. Storage callbacks that complete after stop() still find
 * it: the core frees it once they returned. */
typedef struct {
    gint64 max_size;
    MkCounter *sets;
    MkCounter *gets;
    GMutex lock;
    GHashTable *hashes; /* bare JID -> photo hash ("" = no photo); under lock */
} Vcard;

static void vcard_free(gpointer data)
{
    Vcard *v = data;
    g_hash_table_unref(v->hashes);
    g_mutex_clear(&v->lock);
    g_free(v);
}

/* Sets the cached hash of @bare; with @only_if_missing, keeps a value
 * that is there already (a load must not undo a newer set). */
static void cache_put(Vcard *v, const char *bare, const char *hash, gboolean only_if_missing)
{
    g_mutex_lock(&v->lock);
    if (!only_if_missing || !g_hash_table_contains(v->hashes, bare))
        g_hash_table_replace(v->hashes, g_strdup(bare), g_strdup(hash ? hash : ""));
    g_mutex_unlock(&v->lock);
}

/* (transfer full) (nullable) The cached hash, or NULL when not loaded. */
static char *cache_get(Vcard *v, const char *bare)
{
    g_mutex_lock(&v->lock);
    char *hash = g_strdup(g_hash_table_lookup(v->hashes, bare));
    g_mutex_unlock(&v->lock);
    return hash;
}

/* Hex SHA-1 of the decoded PHOTO/BINVAL of @vcard, "" when there is no
 * photo. (transfer full) */
static char *photo_hash(MkXml *vcard)
{
    MkXml *photo = mk_xml_child(vcard, "PHOTO", NS_VCARD);
    g_autofree char *b64 = photo ? mk_xml_child_text(photo, "BINVAL", NS_VCARD) : NULL;
    if (!b64)
        return g_strdup("");
    /* g_base64_decode skips the line breaks and spaces vCards carry. */
    gsize len = 0;
    g_autofree guchar *data = g_base64_decode(b64, &len);
    if (len == 0)
        return g_strdup("");
    return g_compute_checksum_for_data(G_CHECKSUM_SHA1, data, len);
}

/* ---- get ------------------------------------------------------------------ */

typedef struct {
    Vcard *v;
    MkIq *iq;
    MkJid *account;
    gboolean own;
} GetOp;

static void got(MkDbResult *res, const GError *error, gpointer data)
{
    GetOp *op = data;
    if (error) {
        g_warning("mod_vcard: reading %s: %s", mk_jid_string(op->account), error->message);
        mk_iq_reply_error(op->iq, MK_ERR_INTERNAL_SERVER_ERROR, NULL);
    } else if (mk_db_result_rows(res) == 0) {
        /* No such account: as if nobody were there (RFC 6121 8.5.1). */
        mk_iq_reply_error(op->iq, MK_ERR_SERVICE_UNAVAILABLE, NULL);
    } else {
        const char *xml = mk_db_result_get_string(res, 0, 0);
        g_autoptr(MkXml) vcard = NULL;
        if (xml) {
            g_autoptr(GError) perr = NULL;
            vcard = mk_xml_parse(xml, -1, &perr);
            if (!vcard)
                g_warning("mod_vcard: stored vCard of %s unreadable: %s",
                          mk_jid_string(op->account), perr->message);
        }
        if (op->own)
            cache_put(op->v, mk_jid_string(op->account),
                      xml ? mk_db_result_get_string(res, 0, 1) : "", FALSE);
        mk_iq_reply(op->iq, vcard ? g_steal_pointer(&vcard) : mk_xml_new("vCard", NS_VCARD));
    }
    mk_iq_unref(op->iq);
    mk_jid_unref(op->account);
    g_free(op);
}

static MkResult on_get(MkIq *iq, gpointer user_data)
{
    Vcard *v = user_data;
    MkJid *from = mk_iq_from(iq);
    MkJid *to = mk_iq_to(iq);
    mk_counter_add(v->gets, 1);
    GetOp *op = g_new0(GetOp, 1);
    op->v = v;
    op->iq = mk_iq_ref(iq);
    op->account = mk_jid_bare(to && mk_jid_node(to) ? to : from);
    op->own = mk_jid_bare_equal(op->account, from);
    mk_db_query(mk_iq_module(iq),
                "SELECT v.xml, v.photo_hash FROM users u LEFT JOIN vcards v"
                " ON v.username = u.username AND v.domain = u.domain"
                " WHERE u.username = ? AND u.domain = ?",
                got, op, MK_DB_STR(mk_jid_node(op->account)),
                MK_DB_STR(mk_jid_domain(op->account)));
    return MK_HANDLED;
}

/* ---- set ------------------------------------------------------------------ */

typedef struct {
    Vcard *v;
    MkIq *iq;
    MkJid *account;
    char *xml;
    char *hash;
} SetOp;

static void set_op_free(gpointer data)
{
    SetOp *op = data;
    mk_iq_unref(op->iq);
    mk_jid_unref(op->account);
    g_free(op->xml);
    g_free(op->hash);
    g_free(op);
}

/* Storage thread, inside BEGIN. */
static gboolean set_work(MkDbConn *conn, gpointer data, GError **error)
{
    SetOp *op = data;
    g_autoptr(MkDbResult) r = mk_db_conn_query(
        conn, error,
        "INSERT INTO vcards (username, domain, xml, photo_hash) VALUES (?, ?, ?, ?)"
        " ON CONFLICT (username, domain) DO UPDATE SET xml = excluded.xml,"
        " photo_hash = excluded.photo_hash",
        MK_DB_STR(mk_jid_node(op->account)), MK_DB_STR(mk_jid_domain(op->account)),
        MK_DB_STR(op->xml), MK_DB_STR(op->hash));
    return r != NULL;
}

static void set_done(const GError *error, gpointer data)
{
    SetOp *op = data;
    if (error) {
        g_warning("mod_vcard: storing the vCard of %s: %s", mk_jid_string(op->account),
                  error->message);
        mk_iq_reply_error(op->iq, MK_ERR_INTERNAL_SERVER_ERROR, NULL);
        return;
    }
    cache_put(op->v, mk_jid_string(op->account), op->hash, FALSE);
    mk_iq_reply(op->iq, NULL);
}

static MkResult on_set(MkIq *iq, gpointer user_data)
{
    Vcard *v = user_data;
    MkJid *from = mk_iq_from(iq);
    MkJid *to = mk_iq_to(iq);
    if (!from || !mk_jid_node(from) || (to && !mk_jid_bare_equal(to, from))) {
        /* Only the owner writes its vCard. */
        mk_iq_reply_error(iq, MK_ERR_FORBIDDEN, NULL);
        return MK_HANDLED;
    }
    MkXml *vcard = mk_iq_payload(iq);
    if (!mk_xml_is(vcard, "vCard", NS_VCARD)) {
        mk_iq_reply_error(iq, MK_ERR_BAD_REQUEST, "expected <vCard xmlns='vcard-temp'/>");
        return MK_HANDLED;
    }
    g_autofree char *xml = mk_xml_to_string(vcard, NULL);
    if (v->max_size > 0 && strlen(xml) > (gsize)v->max_size) {
        mk_iq_reply_error(iq, MK_ERR_NOT_ACCEPTABLE, "vCard too large");
        return MK_HANDLED;
    }
    mk_counter_add(v->sets, 1);
    SetOp *op = g_new0(SetOp, 1);
    op->v = v;
    op->iq = mk_iq_ref(iq);
    op->account = mk_jid_bare(from);
    op->xml = g_steal_pointer(&xml);
    op->hash = photo_hash(vcard);
    mk_db_transaction_run(mk_iq_module(iq), set_work, set_done, op, set_op_free);
    return MK_HANDLED;
}

/* ---- XEP-0153 avatar hash in presence ------------------------------------- */

typedef struct {
    Vcard *v;
    char *bare;
} LoadOp;

static void loaded(MkDbResult *res, const GError *error, gpointer data)
{
    LoadOp *op = data;
    if (error)
        g_warning("mod_vcard: loading the photo hash of %s: %s", op->bare, error->message);
    else
        cache_put(op->v, op->bare,
                  mk_db_result_rows(res) > 0 ? mk_db_result_get_string(res, 0, 0) : "", TRUE);
    g_free(op->bare);
    g_free(op);
}

static MkResult on_session_opened(MkHookCall *call, gpointer user_data)
{
    Vcard *v = mk_module_get_data(user_data);
    MkSession *s = mk_hook_call_session(call);
    if (!s)
        return MK_PASS;
    MkJid *jid = mk_session_jid(s);
    g_autofree char *have = cache_get(v, mk_jid_bare_string(jid));
    if (have)
        return MK_PASS;
    LoadOp *op = g_new0(LoadOp, 1);
    op->v = v;
    op->bare = g_strdup(mk_jid_bare_string(jid));
    mk_db_query(user_data, "SELECT photo_hash FROM vcards WHERE username = ? AND domain = ?",
                loaded, op, MK_DB_STR(mk_jid_node(jid)), MK_DB_STR(mk_jid_domain(jid)));
    return MK_PASS;
}

/* The user's last session is gone: forget the hash. */
static MkResult on_session_closed(MkHookCall *call, gpointer user_data)
{
    Vcard *v = mk_module_get_data(user_data);
    MkSession *s = mk_hook_call_session(call);
    if (!s)
        return MK_PASS;
    g_autoptr(MkJid) bare = mk_jid_bare(mk_session_jid(s));
    g_autoptr(GPtrArray) left = mk_session_list(bare);
    if (left->len == 0) {
        g_mutex_lock(&v->lock);
        g_hash_table_remove(v->hashes, mk_jid_string(bare));
        g_mutex_unlock(&v->lock);
    }
    return MK_PASS;
}

static MkResult on_remove_user(MkHookCall *call, gpointer user_data)
{
    Vcard *v = mk_module_get_data(user_data);
    MkJid *who = mk_hook_call_from(call);
    if (who) {
        g_mutex_lock(&v->lock);
        g_hash_table_remove(v->hashes, mk_jid_bare_string(who));
        g_mutex_unlock(&v->lock);
    }
    return MK_PASS;
}

/* The session's worker, before routing: an available presence without
 * an update element gets the server's. */
static MkResult on_send(MkHookCall *call, gpointer user_data)
{
    Vcard *v = mk_module_get_data(user_data);
    MkStanza *st = mk_hook_call_stanza(call);
    MkSession *s = mk_hook_call_session(call);
    if (!s || mk_stanza_kind(st) != MK_STANZA_PRESENCE || mk_stanza_type(st) != NULL)
        return MK_PASS;
    /* The client's own <x/> (with or without <photo/>) is its word. */
    if (mk_xml_child(mk_stanza_xml(st), "x", NS_UPDATE))
        return MK_PASS;
    g_autofree char *hash = cache_get(v, mk_jid_bare_string(mk_session_jid(s)));
    if (!hash)
        return MK_PASS;
    g_autoptr(MkXml) xml = mk_xml_copy(mk_stanza_xml(st));
    MkXml *x = mk_xml_add_child(xml, "x", NS_UPDATE);
    MkXml *photo = mk_xml_add_child(x, "photo", NULL);
    if (*hash)
        mk_xml_add_text(photo, hash, -1);
    mk_hook_call_set_stanza(call,
                            mk_stanza_new_addressed(xml, mk_stanza_from(st), mk_stanza_to(st)));
    return MK_PASS;
}

static gboolean vcard_start(MkModule *mod, GError **error)
{
    Vcard *v = g_new0(Vcard, 1);
    v->max_size = mk_config_get_int(mod, "max_size");
    v->sets = mk_counter_new(mod, "sets");
    v->gets = mk_counter_new(mod, "gets");
    g_mutex_init(&v->lock);
    v->hashes = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
    mk_module_set_data(mod, v, vcard_free);
    if (!mk_iq_register(mod, MK_IQ_SCOPE_ACCOUNT, MK_IQ_GET, NS_VCARD, on_get, v, error) ||
        !mk_iq_register(mod, MK_IQ_SCOPE_ACCOUNT, MK_IQ_SET, NS_VCARD, on_set, v, error))
        return FALSE;
    /* Above ordinary handlers: later ones and the core see the hash. */
    mk_hook_add(mod, MK_HOOK_USER_SEND_PACKET, 60, on_send, mod);
    mk_hook_add(mod, MK_HOOK_SESSION_OPENED, 50, on_session_opened, mod);
    mk_hook_add(mod, MK_HOOK_SESSION_CLOSED, 50, on_session_closed, mod);
    mk_hook_add(mod, MK_HOOK_REMOVE_USER, 50, on_remove_user, mod);
    mk_disco_feature_add(mod, NS_VCARD);
    return TRUE;
}

static const MkConfigKey vcard_keys[] = {
    {"max_size", MK_CONFIG_INT, "65536", 0, 16777216,
     "largest vCard accepted, in bytes of XML (0 = only the stanza size limit)"},
    MK_CONFIG_KEYS_END,
};

MK_MODULE_EXPORT const MkModuleDesc mk_module_desc = {
    MK_MODULE_DESC_HEADER,
    .name = "mod_vcard",
    .version = "1.0",
    .config_keys = vcard_keys,
    .migrations = vcard_migrations,
    .start = vcard_start,
};
