/* Hooks: named events per host type, handlers in descending priority
 * (equal priorities in registration order). Registration records live on
 * the MkModule; mk_hooks_run reads the published snapshot without a
 * lock. */
#include "hosts.h"
#include "modules-priv.h"
#include "modules.h"
#include "server.h"

void mk_hook_reg_free(gpointer reg)
{
    MkHookReg *r = reg;
    g_free(r->hook);
    g_free(r);
}

void mk_hooks_entries_free(gpointer array)
{
    g_array_unref(array);
}

static int cmp_entry(gconstpointer a, gconstpointer b)
{
    const MkHookEntry *x = a, *y = b;
    if (x->priority != y->priority)
        return x->priority > y->priority ? -1 : 1;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/* Adds @mod's handlers to @hr; keeps each hook's list in run order.
 * Main thread (snapshot build). */
void mk_hooks_build(MkHostReg *hr, MkModule *mod)
{
    for (guint i = 0; i < mod->hooks->len; i++) {
        MkHookReg *r = g_ptr_array_index(mod->hooks, i);
        GArray *list = g_hash_table_lookup(hr->hooks, r->hook);
        if (!list) {
            list = g_array_new(FALSE, FALSE, sizeof(MkHookEntry));
            g_hash_table_insert(hr->hooks, g_strdup(r->hook), list);
        }
        MkHookEntry e = {r->priority, r->seq, r->func, r->user_data, mod};
        g_array_append_val(list, e);
        g_array_sort(list, cmp_entry);
    }
}

/* Public module API (mk-hooks.h). Main thread, in start(). */
void mk_hook_add(MkModule *mod, const char *hook, int priority, MkHookFunc func, gpointer user_data)
{
    g_return_if_fail(mod != NULL && hook != NULL && func != NULL);
    if (!mod->live) {
        g_warning("module %s: mk_hook_add(%s) outside a running instance ignored", mod->name, hook);
        return;
    }
    MkHookReg *r = g_new0(MkHookReg, 1);
    r->hook = g_strdup(hook);
    r->priority = priority;
    r->seq = ++mod->mods->seq;
    r->func = func;
    r->user_data = user_data;
    g_ptr_array_add(mod->hooks, r);
    mk_modules_publish(mod->mods);
}

/* See modules.h. Any thread. */
MkResult mk_hooks_run(MkModules *mods, const char *hook, MkHookCall *call)
{
    g_return_val_if_fail(hook != NULL && call != NULL, MK_PASS);
    MkHostReg *hr = mk_modules_host_reg(mods, call->domain);
    if (!hr)
        return MK_PASS;
    return mk_hooks_run_list(g_hash_table_lookup(hr->hooks, hook), call);
}

/* See modules.h. The thread of the run. */
MkResult mk_hooks_run_list(GArray *list, MkHookCall *call)
{
    for (guint i = 0; list && i < list->len; i++) {
        const MkHookEntry *e = &g_array_index(list, MkHookEntry, i);
        MkResult r = e->func(call, e->user_data);
        if (r != MK_PASS)
            return r;
    }
    return MK_PASS;
}

/* See modules.h. The thread of the run. */
MkDomainHooks *mk_domain_hooks_for(MkDomainHooks *c, MkModules *mods, const char *domain)
{
    if (c->domain && g_strcmp0(c->domain, domain) == 0)
        return c;
    g_free(c->domain);
    *c = (MkDomainHooks){.domain = g_strdup(domain ? domain : "")};
    c->served = mods && mods->server && domain && mk_hosts_lookup(mods->server->hosts, domain);
    MkHostReg *hr = c->served ? mk_modules_host_reg(mods, domain) : NULL;
    if (hr) {
        c->filter = g_hash_table_lookup(hr->hooks, MK_HOOK_FILTER_LOCAL_PACKET);
        c->unheld = g_hash_table_lookup(hr->hooks, MK_HOOK_ROUTE_UNHELD);
        c->received = g_hash_table_lookup(hr->hooks, MK_HOOK_USER_RECEIVE_PACKET);
    }
    return c;
}

void mk_domain_hooks_clear(MkDomainHooks *c)
{
    g_clear_pointer(&c->domain, g_free);
}

static void entry_unref_module(gpointer p)
{
    mk_module_unref(((MkHookEntry *)p)->mod);
}

/* See modules.h. Any thread. */
gboolean mk_hooks_any(MkModules *mods, const char *domain, const char *hook)
{
    MkHostReg *hr = mk_modules_host_reg(mods, domain);
    GArray *list = hr ? g_hash_table_lookup(hr->hooks, hook) : NULL;
    return list && list->len > 0;
}

/* See modules.h. Any thread. */
GArray *mk_hooks_copy(MkModules *mods, const char *domain, const char *hook)
{
    MkHostReg *hr = mk_modules_host_reg(mods, domain);
    GArray *list = hr ? g_hash_table_lookup(hr->hooks, hook) : NULL;
    if (!list || list->len == 0)
        return NULL;
    GArray *copy = g_array_sized_new(FALSE, FALSE, sizeof(MkHookEntry), list->len);
    g_array_set_clear_func(copy, entry_unref_module);
    for (guint i = 0; i < list->len; i++) {
        MkHookEntry e = g_array_index(list, MkHookEntry, i);
        mk_module_ref(e.mod);
        g_array_append_val(copy, e);
    }
    return copy;
}

/* See modules.h. Any thread. */
void mk_hook_call_clear(MkHookCall *call)
{
    g_clear_pointer(&call->error_text, g_free);
    g_clear_pointer(&call->stanza, mk_stanza_unref);
}

/* Public module API: accessors of the running hook. (transfer none)
 * Thread of the handler. */
MkStanza *mk_hook_call_stanza(MkHookCall *call)
{
    return call->stanza;
}

MkSession *mk_hook_call_session(MkHookCall *call)
{
    return call->session;
}

MkJid *mk_hook_call_from(MkHookCall *call)
{
    return call->from;
}

MkJid *mk_hook_call_to(MkHookCall *call)
{
    return call->to;
}

const char *mk_hook_call_domain(MkHookCall *call)
{
    return call->domain;
}

/* Public module API. (transfer full) of @stanza. */
void mk_hook_call_set_stanza(MkHookCall *call, MkStanza *stanza)
{
    g_return_if_fail(call != NULL);
    if (call->stanza)
        mk_stanza_unref(call->stanza);
    call->stanza = stanza;
}

/* Public module API. */
/* Public module API (mk-hooks.h). */
MkResult mk_hook_call_refuse(MkHookCall *call, MkStanzaError cond)
{
    g_return_val_if_fail(call != NULL, MK_HANDLED);
    MkStanza *st = mk_hook_call_stanza(call);
    if (!st || mk_stanza_is_error(st))
        return MK_HANDLED;
    const char *type = mk_stanza_type(st);
    gboolean answer = mk_stanza_kind(st) == MK_STANZA_MESSAGE ||
                      (mk_stanza_kind(st) == MK_STANZA_IQ &&
                       (g_strcmp0(type, "get") == 0 || g_strcmp0(type, "set") == 0));
    if (!answer)
        return MK_HANDLED;
    mk_hook_call_set_error(call, cond, NULL);
    return MK_ERROR;
}

void mk_hook_call_set_error(MkHookCall *call, MkStanzaError cond, const char *text)
{
    g_return_if_fail(call != NULL);
    call->has_error = TRUE;
    call->error = cond;
    g_free(call->error_text);
    call->error_text = g_strdup(text);
}

/* Public module API (mk-hooks.h). Worker or main thread. */
MkResult mk_hook_run(MkModule *mod, const char *hook, MkJid *from)
{
    g_return_val_if_fail(mod != NULL && hook != NULL && from != NULL, MK_PASS);
    MkHookCall call = {.domain = mk_jid_domain(from), .from = from};
    MkResult r = mk_hooks_run(mod->mods, hook, &call);
    mk_hook_call_clear(&call);
    return r;
}
