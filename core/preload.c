/* The auth_preload hook: see preload.h and mk-hooks.h.
 *
 * This is the one hook that runs off the workers, so it cannot lean on
 * the grace period that protects the published snapshot (a database
 * read may outlast it): the handlers are copied out of the snapshot at
 * once, each with a reference on its module, and each call is fenced
 * with mk_module_enter/leave so that a module stopping meanwhile (a
 * SIGHUP that removed its conf.d file) waits for the call to return
 * before its data goes. */
#include "preload.h"
#include "db.h"
#include "modules-priv.h"
#include "modules.h"
#include "server.h"

typedef struct {
    MkModule *mod; /* no ref: only compared */
    gpointer data;
    GDestroyNotify destroy;
} Preload;

struct MkPreloads {
    GArray *items; /* of Preload */
};

static void preload_clear(gpointer p)
{
    Preload *item = p;
    if (item->destroy && item->data)
        item->destroy(item->data);
}

static MkPreloads *preloads_new(void)
{
    MkPreloads *p = g_new0(MkPreloads, 1);
    p->items = g_array_new(FALSE, FALSE, sizeof(Preload));
    g_array_set_clear_func(p->items, preload_clear);
    return p;
}

void mk_preloads_free(MkPreloads *p)
{
    if (!p)
        return;
    g_array_unref(p->items);
    g_free(p);
}

/* The index of @mod's entry in @p, or -1. */
static gint find(MkPreloads *p, MkModule *mod)
{
    for (guint i = 0; i < p->items->len; i++)
        if (g_array_index(p->items, Preload, i).mod == mod)
            return (gint)i;
    return -1;
}

gpointer mk_preloads_take(MkPreloads *p, MkModule *mod)
{
    gint i = p ? find(p, mod) : -1;
    if (i < 0)
        return NULL;
    Preload *item = &g_array_index(p->items, Preload, i);
    gpointer data = item->data;
    item->data = NULL; /* the clear func skips it */
    g_array_remove_index_fast(p->items, (guint)i);
    return data;
}

gboolean mk_preloads_wanted(MkServer *srv, const char *domain)
{
    return mk_hooks_any(srv->modules, domain, MK_HOOK_AUTH_PRELOAD);
}

MkPreloads *mk_preloads_run(MkServer *srv, MkDbConn *conn, const char *username, const char *domain)
{
    g_autoptr(GArray) handlers = mk_hooks_copy(srv->modules, domain, MK_HOOK_AUTH_PRELOAD);
    if (!handlers)
        return NULL;
    g_autoptr(MkJid) user = mk_jid_new_from_parts(username, domain, NULL, NULL);
    if (!user)
        return NULL;
    MkPreloads *p = preloads_new();
    MkHookCall call = {.domain = domain, .from = user, .db = conn, .preloads = p};
    for (guint i = 0; i < handlers->len; i++) {
        const MkHookEntry *e = &g_array_index(handlers, MkHookEntry, i);
        if (!mk_module_enter(e->mod))
            continue;
        call.running = e->mod;
        e->func(&call, e->user_data);
        mk_module_leave(e->mod);
    }
    call.running = NULL;
    mk_hook_call_clear(&call);
    if (p->items->len == 0)
        g_clear_pointer(&p, mk_preloads_free);
    return p;
}

/* Public module API (mk-hooks.h). */
MkDbConn *mk_hook_call_db(MkHookCall *call)
{
    g_return_val_if_fail(call != NULL, NULL);
    return call->db;
}

/* Public module API (mk-hooks.h). (transfer full) of @data. */
void mk_hook_call_set_preload(MkHookCall *call, gpointer data, GDestroyNotify destroy)
{
    g_return_if_fail(call != NULL);
    if (!call->preloads || !call->running) {
        g_warning("mk_hook_call_set_preload outside auth_preload ignored");
        if (destroy && data)
            destroy(data);
        return;
    }
    gint i = find(call->preloads, call->running);
    if (i >= 0) {
        Preload *item = &g_array_index(call->preloads->items, Preload, i);
        preload_clear(item);
        item->data = data;
        item->destroy = destroy;
        return;
    }
    Preload item = {call->running, data, destroy};
    g_array_append_val(call->preloads->items, item);
}
