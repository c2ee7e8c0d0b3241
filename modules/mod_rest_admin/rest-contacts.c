/* Contacts: GET/POST PREFIX/contacts/{user}, PUT/DELETE
 * PREFIX/contacts/{user}/{contact}, PUT .../manage, through the roster
 * managing service (mk-roster.h) that mod_roster provides: changes go
 * through the same roster sets and subscription presence as a client's,
 * so pushes and presence follow. Every request first reads, in one
 * storage job, whether the user exists and the items of the roster. */
#include "rest-admin.h"
#include <string.h>

typedef enum {
    CONTACTS_LIST,
    CONTACTS_ADD,
    CONTACTS_REMOVE,
    CONTACTS_SUBSCRIBE, /* PUT {action: invite | accept} */
    CONTACTS_MANAGE,    /* PUT .../manage {action: connect | disconnect} */
} ContactsKind;

typedef struct {
    MkHttpRequest *req; /* ref */
    MkModule *mod;
    ContactsKind kind;
    MkJid *user, *contact; /* bare; contact NULL for LIST */
    char *action;
    /* Results of the read. */
    gboolean exists, available;
    GPtrArray *items; /* MkRosterContact* */
    /* MANAGE: roster changes still out, and the first failure. */
    guint waiting;
    guint refs; /* the changes' destroy notifies */
    GError *failure;
} ContactsOp;

static void contacts_op_free(gpointer data)
{
    ContactsOp *op = data;
    mk_http_request_unref(op->req);
    if (op->user)
        mk_jid_unref(op->user);
    if (op->contact)
        mk_jid_unref(op->contact);
    g_free(op->action);
    g_ptr_array_unref(op->items);
    g_clear_error(&op->failure);
    g_free(op);
}

/* Storage thread. */
static gboolean contacts_read(MkDbConn *conn, gpointer data, GError **error)
{
    ContactsOp *op = data;
    g_autoptr(MkDbResult) res =
        mk_db_conn_query(conn, error, "SELECT 1 FROM users WHERE username = ? AND domain = ?",
                         MK_DB_STR(mk_jid_node(op->user)), MK_DB_STR(mk_jid_domain(op->user)));
    if (!res)
        return FALSE;
    op->exists = mk_db_result_rows(res) > 0;
    return !op->exists ||
           mk_roster_items(op->mod, conn, op->user, op->items, &op->available, error);
}

static const MkRosterContact *find_item(ContactsOp *op, MkJid *contact)
{
    for (guint i = 0; i < op->items->len; i++) {
        const MkRosterContact *c = g_ptr_array_index(op->items, i);
        if (g_str_equal(c->jid, mk_jid_bare_string(contact)))
            return c;
    }
    return NULL;
}

static void reply_list(ContactsOp *op)
{
    g_autoptr(JsonBuilder) b = json_builder_new();
    json_builder_begin_array(b);
    for (guint i = 0; i < op->items->len; i++) {
        const MkRosterContact *c = g_ptr_array_index(op->items, i);
        json_builder_begin_object(b);
        json_builder_set_member_name(b, "jid");
        json_builder_add_string_value(b, c->jid);
        json_builder_set_member_name(b, "subscription");
        json_builder_add_string_value(b, c->subscription);
        json_builder_set_member_name(b, "ask");
        json_builder_add_string_value(b, c->ask);
        json_builder_end_object(b);
    }
    json_builder_end_array(b);
    mk_http_reply_json(op->req, 200, json_builder_get_root(b));
}

static void reply_roster_error(MkHttpRequest *req, const GError *error)
{
    if (error->domain == MK_ROSTER_ERROR && error->code == MK_ROSTER_ERROR_NOT_FOUND)
        mk_http_reply_error(req, 404, NULL, "no such contact");
    else if (error->domain == MK_ROSTER_ERROR && error->code == MK_ROSTER_ERROR_REFUSED)
        mk_http_reply_error(req, 403, NULL, "%s", error->message);
    else
        mk_http_reply_error(req, 500, NULL, "%s", error->message);
}

/* One roster change of ADD or REMOVE: the answer. Worker. */
static void on_changed(const GError *error, gpointer data)
{
    MkHttpRequest *req = data;
    if (error)
        reply_roster_error(req, error);
    else
        mk_http_reply_json(req, 204, NULL);
}

/* One of MANAGE's roster changes. Worker. */
static void on_managed(const GError *error, gpointer data)
{
    ContactsOp *op = data;
    /* Disconnecting users who were not connected is no failure. */
    gboolean missing =
        error && error->domain == MK_ROSTER_ERROR && error->code == MK_ROSTER_ERROR_NOT_FOUND;
    if (error && !missing && !op->failure)
        op->failure = g_error_copy(error);
    if (--op->waiting > 0)
        return;
    if (op->failure) {
        reply_roster_error(op->req, op->failure);
        return;
    }
    if (g_str_equal(op->action, "connect") &&
        mk_module_serves_domain(op->mod, mk_jid_domain(op->contact))) {
        /* Both ways; a "subscribed" that overtakes its "subscribe" is a
         * pre-approval (RFC 6121 3.4), so the order does not matter. */
        mk_roster_subscription(op->mod, op->user, op->contact, "subscribe");
        mk_roster_subscription(op->mod, op->contact, op->user, "subscribed");
        mk_roster_subscription(op->mod, op->contact, op->user, "subscribe");
        mk_roster_subscription(op->mod, op->user, op->contact, "subscribed");
    } else if (g_str_equal(op->action, "connect")) {
        mk_roster_subscription(op->mod, op->user, op->contact, "subscribe");
        mk_roster_subscription(op->mod, op->user, op->contact, "subscribed");
    }
    mk_http_reply_json(op->req, 204, NULL);
}

/* The op lives until both changes' destroy notifies ran (they come back
 * in any order, on this worker). */
static void manage_release(gpointer data)
{
    ContactsOp *op = data;
    if (--op->refs == 0)
        contacts_op_free(op);
}

static void manage(ContactsOp *op)
{
    gboolean remove = g_str_equal(op->action, "disconnect");
    gboolean local = mk_module_serves_domain(op->mod, mk_jid_domain(op->contact));
    op->waiting = op->refs = local ? 2 : 1;
    if (!mk_roster_set_item(op->mod, op->user, op->contact, NULL, remove, on_managed, op,
                            manage_release)) {
        mk_http_reply_error(op->req, 503, NULL, "no roster module runs");
        contacts_op_free(op);
        return;
    }
    if (local)
        mk_roster_set_item(op->mod, op->contact, op->user, NULL, remove, on_managed, op,
                           manage_release);
}

/* Worker: the read is in; act on it. */
static void contacts_read_done(const GError *error, gpointer data)
{
    ContactsOp *op = data;
    if (error) {
        mk_http_reply_error(op->req, 500, NULL, "%s", error->message);
    } else if (!op->exists) {
        mk_http_reply_error(op->req, 404, NULL, "unknown user %s", mk_jid_string(op->user));
    } else if (!op->available) {
        mk_http_reply_error(op->req, 503, NULL, "no roster module runs for this domain");
    } else {
        switch (op->kind) {
        case CONTACTS_LIST:
            reply_list(op);
            break;
        case CONTACTS_ADD:
        case CONTACTS_REMOVE:
            if (!mk_roster_set_item(
                    op->mod, op->user, op->contact, NULL, op->kind == CONTACTS_REMOVE, on_changed,
                    mk_http_request_ref(op->req), (GDestroyNotify)mk_http_request_unref)) {
                mk_http_request_unref(op->req); /* the roster module stopped meanwhile */
                mk_http_reply_error(op->req, 503, NULL, "no roster module runs");
            }
            break;
        case CONTACTS_SUBSCRIBE:
            if (!find_item(op, op->contact)) {
                mk_http_reply_error(op->req, 404, NULL, "%s is not in the roster",
                                    mk_jid_string(op->contact));
                break;
            }
            mk_roster_subscription(op->mod, op->user, op->contact,
                                   g_str_equal(op->action, "invite") ? "subscribe" : "subscribed");
            mk_http_reply_json(op->req, 204, NULL);
            break;
        case CONTACTS_MANAGE:
            manage(op);
            return; /* freed by the last change */
        }
    }
    contacts_op_free(op);
}

/* Parses the request and starts the read; NULL after answering. */
static void contacts_start(MkHttpRequest *req, ContactsKind kind)
{
    if (!rest_admin_authorized(req))
        return;
    g_autoptr(MkJid) user = rest_admin_param_jid(req, "user");
    if (!user || !rest_admin_domain_known(req, mk_jid_domain(user)))
        return;
    if (!mk_jid_node(user)) {
        mk_http_reply_error(req, 400, "user", "a user's JID has a local part");
        return;
    }
    g_autoptr(MkJid) contact = NULL;
    const char *action = NULL;
    if (kind == CONTACTS_ADD) {
        JsonObject *o = mk_http_request_json(req);
        if (!o || !(contact = rest_admin_field_jid(req, o, "jid")))
            return;
    } else if (kind != CONTACTS_LIST) {
        if (!(contact = rest_admin_param_jid(req, "contact")))
            return;
    }
    if (kind == CONTACTS_SUBSCRIBE || kind == CONTACTS_MANAGE) {
        JsonObject *o = mk_http_request_json(req);
        if (!o || !mk_http_json_string(req, o, "action", TRUE, &action))
            return;
        const char *a = kind == CONTACTS_SUBSCRIBE ? "invite" : "connect";
        const char *b = kind == CONTACTS_SUBSCRIBE ? "accept" : "disconnect";
        if (!g_str_equal(action, a) && !g_str_equal(action, b)) {
            mk_http_reply_error(req, 400, "action", "action must be \"%s\" or \"%s\"", a, b);
            return;
        }
    }
    if (contact && mk_jid_bare_equal(user, contact)) {
        mk_http_reply_error(req, 400, kind == CONTACTS_ADD ? "jid" : "contact",
                            "a user is not its own contact");
        return;
    }
    ContactsOp *op = g_new0(ContactsOp, 1);
    op->req = mk_http_request_ref(req);
    op->mod = mk_http_request_module(req);
    op->kind = kind;
    op->user = mk_jid_bare(user);
    op->contact = contact ? mk_jid_bare(contact) : NULL;
    op->action = g_strdup(action);
    op->items = g_ptr_array_new_with_free_func((GDestroyNotify)mk_roster_contact_free);
    /* Freed by contacts_read_done (or, for MANAGE, its last change). */
    mk_db_transaction_run(op->mod, contacts_read, contacts_read_done, op, NULL);
}

static void contacts_list(MkHttpRequest *req, gpointer user_data)
{
    contacts_start(req, CONTACTS_LIST);
}

static void contacts_add(MkHttpRequest *req, gpointer user_data)
{
    contacts_start(req, CONTACTS_ADD);
}

static void contacts_remove(MkHttpRequest *req, gpointer user_data)
{
    contacts_start(req, CONTACTS_REMOVE);
}

static void contacts_subscribe(MkHttpRequest *req, gpointer user_data)
{
    contacts_start(req, CONTACTS_SUBSCRIBE);
}

static void contacts_manage(MkHttpRequest *req, gpointer user_data)
{
    contacts_start(req, CONTACTS_MANAGE);
}

gboolean rest_contacts_start(MkModule *mod, GError **error)
{
    return rest_admin_route(mod, "GET", "/contacts/{user}", contacts_list, error) &&
           rest_admin_route(mod, "POST", "/contacts/{user}", contacts_add, error) &&
           rest_admin_route(mod, "PUT", "/contacts/{user}/{contact}", contacts_subscribe, error) &&
           rest_admin_route(mod, "DELETE", "/contacts/{user}/{contact}", contacts_remove, error) &&
           rest_admin_route(mod, "PUT", "/contacts/{user}/{contact}/manage", contacts_manage,
                            error);
}
