/* Served domains for modules (mk-domains.h) over core/hosts.c, and the
 * domains added at run time that storage keeps (table `domains`),
 * served again at the next start. */
#include "db.h"
#include "hosts.h"
#include "server.h"

static char *prepare(const char *domain)
{
    g_autoptr(MkJid) jid = mk_jid_new_from_parts(NULL, domain, NULL, NULL);
    return jid ? g_strdup(mk_jid_domain(jid)) : NULL;
}

/* Public module API (mk-domains.h). Any thread. */
const char *mk_domain_host_type(const char *domain)
{
    MkServer *srv = mk_server_get();
    g_autofree char *p = domain ? prepare(domain) : NULL;
    return srv && p ? mk_hosts_lookup(srv->hosts, p) : NULL;
}

/* Public module API. Main thread. */
gboolean mk_domain_add(const char *host_type, const char *domain, GError **error)
{
    g_return_val_if_fail(host_type && domain, FALSE);
    MkServer *srv = mk_server_get();
    g_autofree char *p = prepare(domain);
    if (!srv || !p) {
        g_set_error(error, MK_MODULE_ERROR, MK_MODULE_ERROR_START, "invalid domain %s", domain);
        return FALSE;
    }
    const char *other = mk_hosts_lookup(srv->hosts, p);
    if (other) {
        g_set_error(error, MK_MODULE_ERROR, MK_MODULE_ERROR_DUPLICATE,
                    "domain %s is served by host type %s already", p, other);
        return FALSE;
    }
    g_autoptr(GError) local = NULL;
    if (!mk_hosts_add_domain(srv->hosts, host_type, p, &local)) {
        g_set_error_literal(error, MK_MODULE_ERROR, MK_MODULE_ERROR_START, local->message);
        return FALSE;
    }
    return TRUE;
}

/* Public module API. Main thread. */
gboolean mk_domain_remove(const char *domain, GError **error)
{
    g_return_val_if_fail(domain != NULL, FALSE);
    MkServer *srv = mk_server_get();
    g_autoptr(GError) local = NULL;
    if (!srv || !mk_hosts_remove_domain(srv->hosts, domain, &local)) {
        g_set_error_literal(error, MK_MODULE_ERROR, MK_MODULE_ERROR_START,
                            local ? local->message : "no server");
        return FALSE;
    }
    return TRUE;
}

/* Public module API. Any thread. */
gboolean mk_domain_is_configured(const char *domain)
{
    MkServer *srv = mk_server_get();
    g_autofree char *p = domain ? prepare(domain) : NULL;
    MkConfigData *cfg = srv ? srv->config : NULL;
    for (guint i = 0; p && cfg && i < cfg->host_types->len; i++) {
        MkHostTypeConfig *ht = g_ptr_array_index(cfg->host_types, i);
        if (ht->domains && g_strv_contains((const char *const *)ht->domains, p))
            return TRUE;
    }
    return FALSE;
}

static gboolean host_type_known(MkServer *srv, const char *host_type)
{
    g_auto(GStrv) types = mk_hosts_types(srv->hosts);
    return g_strv_contains((const char *const *)types, host_type);
}

/* A change of the stored domains, written on the storage pool, then
 * made effective on the main thread. */
typedef struct {
    char *domain;    /* prepared */
    char *host_type; /* NULL: a removal */
    MkDomainDone done;
    gpointer user_data;
} DomainChange;

static void change_free(gpointer data)
{
    DomainChange *c = data;
    g_free(c->domain);
    g_free(c->host_type);
    g_free(c);
}

/* Storage thread. */
static gboolean change_work(MkDbConn *conn, gpointer data, GError **error)
{
    DomainChange *c = data;
    g_autoptr(MkDbResult) res =
        c->host_type
            ? mk_db_conn_query(conn, error,
                               "INSERT INTO domains (domain, host_type, added_at) VALUES (?, ?, ?)"
                               " ON CONFLICT (domain) DO UPDATE SET host_type = excluded.host_type",
                               MK_DB_STR(c->domain), MK_DB_STR(c->host_type),
                               MK_DB_INT(g_get_real_time() / G_USEC_PER_SEC))
            : mk_db_conn_query(conn, error, "DELETE FROM domains WHERE domain = ?",
                               MK_DB_STR(c->domain));
    return res != NULL;
}

/* Main thread: the row is written (or @error); now the table. */
static void change_done(const GError *error, gpointer data)
{
    DomainChange *c = data;
    MkServer *srv = mk_server_get();
    g_autoptr(GError) local = NULL;
    if (error) {
        c->done(error, c->user_data);
        return;
    }
    const char *current = srv ? mk_hosts_lookup(srv->hosts, c->domain) : NULL;
    if (!srv)
        g_set_error(&local, MK_MODULE_ERROR, MK_MODULE_ERROR_START, "the server is stopping");
    else if (c->host_type && !current)
        mk_domain_add(c->host_type, c->domain, &local);
    else if (c->host_type && !g_str_equal(current, c->host_type))
        /* Another request served it meanwhile: its row says otherwise
         * now, which the next start reports. */
        g_set_error(&local, MK_MODULE_ERROR, MK_MODULE_ERROR_DUPLICATE,
                    "domain %s is served by host type %s already", c->domain, current);
    else if (!c->host_type && current)
        mk_domain_remove(c->domain, &local);
    c->done(local, c->user_data);
}

static void change_start(DomainChange *c)
{
    mk_db_run(mk_server_get()->db, change_work, change_done, c, change_free);
}

/* Public module API. Main thread. */
void mk_domain_add_stored(const char *host_type, const char *domain, MkDomainDone done,
                          gpointer user_data)
{
    g_return_if_fail(host_type && domain && done);
    MkServer *srv = mk_server_get();
    g_autofree char *p = prepare(domain);
    g_autoptr(GError) error = NULL;
    const char *current = srv && p ? mk_hosts_lookup(srv->hosts, p) : NULL;
    if (!srv || !p)
        g_set_error(&error, MK_MODULE_ERROR, MK_MODULE_ERROR_START, "invalid domain %s", domain);
    else if (current && !g_str_equal(current, host_type))
        g_set_error(&error, MK_MODULE_ERROR, MK_MODULE_ERROR_DUPLICATE,
                    "domain %s is served by host type %s already", p, current);
    else if (!host_type_known(srv, host_type))
        g_set_error(&error, MK_MODULE_ERROR, MK_MODULE_ERROR_START, "unknown host type %s",
                    host_type);
    if (error || (current && mk_domain_is_configured(p))) {
        done(error, user_data); /* a configured domain needs no row */
        return;
    }
    DomainChange *c = g_new0(DomainChange, 1);
    c->domain = g_steal_pointer(&p);
    c->host_type = g_strdup(host_type);
    c->done = done;
    c->user_data = user_data;
    change_start(c);
}

/* Public module API. Main thread. */
void mk_domain_remove_stored(const char *domain, MkDomainDone done, gpointer user_data)
{
    g_return_if_fail(domain && done);
    g_autofree char *p = prepare(domain);
    g_autoptr(GError) error = NULL;
    if (!p || !mk_server_get())
        g_set_error(&error, MK_MODULE_ERROR, MK_MODULE_ERROR_START, "invalid domain %s", domain);
    else if (mk_domain_is_configured(p))
        g_set_error(&error, MK_MODULE_ERROR, MK_MODULE_ERROR_START,
                    "domain %s is one of the configuration's hosts", p);
    if (error) {
        done(error, user_data);
        return;
    }
    DomainChange *c = g_new0(DomainChange, 1);
    c->domain = g_steal_pointer(&p);
    c->done = done;
    c->user_data = user_data;
    change_start(c);
}

/* Reads the stored domains into @srv's table, before the modules start
 * (so they start with them, as with configured ones). A stored domain
 * that the configuration now names, or whose host type it no longer
 * has, is left out with a warning. Main thread, at start. */
static gboolean restore_work(MkDbConn *conn, gpointer data, GError **error)
{
    MkServer *srv = data;
    g_autoptr(MkDbResult) res =
        mk_db_conn_query(conn, error, "SELECT domain, host_type FROM domains ORDER BY domain");
    if (!res)
        return FALSE;
    for (guint i = 0; i < mk_db_result_rows(res); i++) {
        const char *domain = mk_db_result_get_string(res, i, 0);
        const char *host_type = mk_db_result_get_string(res, i, 1);
        const char *current = mk_hosts_lookup(srv->hosts, domain);
        g_autoptr(GError) local = NULL;
        if (current) {
            if (!g_str_equal(current, host_type))
                g_warning("stored domain %s of host type %s: the configuration serves it with "
                          "%s; left out",
                          domain, host_type, current);
        } else if (!mk_hosts_add_domain(srv->hosts, host_type, domain, &local)) {
            g_warning("stored domain %s left out: %s", domain, local->message);
        }
    }
    return TRUE;
}

gboolean mk_domains_restore(MkServer *srv, GError **error)
{
    MkDbConn *conn = mk_db_acquire(srv->db, error);
    if (!conn)
        return FALSE;
    gboolean ok = mk_db_conn_reads(conn, restore_work, srv, error);
    mk_db_release(srv->db, conn);
    return ok;
}
