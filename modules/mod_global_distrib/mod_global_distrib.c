/* mod_global_distrib: one XMPP domain (global_host) served by several
 * regions, each a node or a cluster with its own name (local_host).
 * Sessions are recorded in a global Redis (JID → region); a stanza for
 * an account that no session here holds is looked up there and sent
 * over a link to the region that holds it, which routes it as its own.
 * docs/mod_global_distrib.md has the design, the keys and the limits. */
#include "gd.h"
#include <string.h>

typedef enum { OP_BIND, OP_UNBIND, OP_ROUTE, OP_REST } OpKind;

typedef struct {
    OpKind kind;
    char *full, *bare;
    gboolean bare_too;
    GdItem *item;
    MkHttpRequest *req; /* OP_REST */
} Op;

/* Stanzas for one account, in the order they were routed: the head is
 * looked up (or waits to be retried) while the others wait behind it,
 * so that nothing overtakes within a sender → recipient pair. */
typedef struct {
    Gd *gd;
    char *bare;
    GQueue items;
    gboolean busy; /* a lookup or a bounce timer is out for the head */
    GSource *timer;
} GdWait;

/* The stanza the module thread is handing to the router, so that the
 * route_unheld handler knows it came over a link (and how far). */
static __thread MkStanza *injecting;
static __thread int injecting_hops;
static __thread const char *injecting_origin;
/* ... and that it is a copy for the account's resources here only. */
static __thread gboolean injecting_copy;

GdItem *gd_item_new(MkStanza *stanza, int hops)
{
    GdItem *item = g_new0(GdItem, 1);
    item->stanza = mk_stanza_ref(stanza);
    item->hops = hops;
    return item;
}

void gd_item_free(gpointer p)
{
    GdItem *item = p;
    if (!item)
        return;
    mk_stanza_unref(item->stanza);
    g_free(item->origin);
    g_free(item);
}

static void op_free(Op *op)
{
    g_free(op->full);
    g_free(op->bare);
    gd_item_free(op->item);
    if (op->req)
        mk_http_request_unref(op->req);
    g_free(op);
}

/* ---- the module thread's inbox ------------------------------------------ */

static void run_op(Gd *gd, Op *op);

static gboolean on_inbox(gpointer data)
{
    Gd *gd = data;
    GQueue batch = G_QUEUE_INIT;
    g_mutex_lock(&gd->lock);
    batch = gd->inbox;
    g_queue_init(&gd->inbox);
    gd->scheduled = FALSE;
    g_mutex_unlock(&gd->lock);
    Op *op;
    while ((op = g_queue_pop_head(&batch))) {
        run_op(gd, op);
        op_free(op);
    }
    return G_SOURCE_REMOVE;
}

/* Any thread. FALSE (and @op untouched) once the module is stopping. */
static gboolean post(Gd *gd, Op *op)
{
    g_mutex_lock(&gd->lock);
    if (gd->stopping) {
        g_mutex_unlock(&gd->lock);
        return FALSE;
    }
    g_queue_push_tail(&gd->inbox, op);
    if (!gd->scheduled) {
        gd->scheduled = TRUE;
        GSource *idle = g_idle_source_new();
        g_source_set_callback(idle, on_inbox, gd, NULL);
        g_source_attach(idle, gd->ctx);
        g_source_unref(idle);
    }
    g_mutex_unlock(&gd->lock);
    return TRUE;
}

/* ---- routing decisions (module thread) ---------------------------------- */

/* Routing runs on a worker (hooks and their storage calls expect one):
 * the stanza goes to the worker that owns its recipient, so that the
 * stanzas this thread hands over for one account stay in order. */
typedef struct {
    MkStanza *stanza;
    int hops;
    char *origin;
    gboolean here, copy;
} Handoff;

static void handoff_free(gpointer p)
{
    Handoff *h = p;
    mk_stanza_unref(h->stanza);
    g_free(h->origin);
    g_free(h);
}

static gboolean handoff_run(gpointer p)
{
    Handoff *h = p;
    if (h->here) {
        mk_router_send_here(h->stanza);
        return G_SOURCE_REMOVE;
    }
    injecting = h->stanza;
    injecting_hops = h->hops;
    injecting_origin = h->origin;
    injecting_copy = h->copy;
    mk_router_send(h->stanza);
    injecting = NULL;
    injecting_origin = NULL;
    injecting_copy = FALSE;
    return G_SOURCE_REMOVE;
}

static void handoff(Gd *gd, MkStanza *stanza, int hops, const char *origin, gboolean here,
                    gboolean copy)
{
    Handoff *h = g_new0(Handoff, 1);
    h->stanza = mk_stanza_ref(stanza);
    h->hops = hops;
    h->origin = g_strdup(origin);
    h->here = here;
    h->copy = copy;
    MkJid *to = mk_stanza_to(stanza);
    mk_owner_post(gd->mod, to ? mk_jid_bare_string(to) : "", handoff_run, h, handoff_free);
}

void gd_handoff(Gd *gd, MkStanza *stanza, int hops, const char *origin, gboolean here)
{
    handoff(gd, stanza, hops, origin, here, FALSE);
}

/* A room or component domain (not an account of global_host). */
static gboolean for_service(Gd *gd, GdItem *item)
{
    return !g_str_equal(mk_jid_domain(mk_stanza_to(item->stanza)), gd->global_host);
}

void gd_deliver_here(Gd *gd, GdItem *item)
{
    /* A remote service has no stand-in here: routing it "here" would
     * claim it again. Its sender learns it is unreachable. */
    if (gd_service_remote(gd, mk_jid_domain(mk_stanza_to(item->stanza)))) {
        mk_counter_add(gd->c_unreachable, 1);
        g_autoptr(MkStanza) err = mk_stanza_new_error_reply(
            item->stanza, MK_ERR_SERVICE_UNAVAILABLE, "the region serving it is unreachable");
        if (err)
            gd_handoff(gd, err, 0, NULL, FALSE);
        gd_item_free(item);
        return;
    }
    mk_counter_add(gd->c_local, 1);
    gd_handoff(gd, item->stanza, 0, NULL, TRUE);
    gd_item_free(item);
}

static void wait_free(gpointer p)
{
    GdWait *w = p;
    if (w->timer) {
        g_source_destroy(w->timer);
        g_source_unref(w->timer);
    }
    GdItem *item;
    while ((item = g_queue_pop_head(&w->items)))
        gd_deliver_here(w->gd, item);
    g_free(w->bare);
    g_free(w);
}

static gboolean bounceable(GdItem *item)
{
    const char *type = mk_stanza_type(item->stanza);
    return mk_stanza_kind(item->stanza) == MK_STANZA_MESSAGE && !mk_stanza_is_error(item->stanza) &&
           g_strcmp0(type, "groupchat") != 0 && g_strcmp0(type, "headline") != 0;
}

static gboolean availability(GdItem *item)
{
    const char *type = mk_stanza_type(item->stanza);
    return mk_stanza_kind(item->stanza) == MK_STANZA_PRESENCE &&
           (!type || g_str_equal(type, "unavailable"));
}

static void forward(Gd *gd, GdItem *item, const char *host)
{
    if (item->hops >= gd->hop_limit) {
        mk_counter_add(gd->c_hop_limit, 1);
        g_warning("mod_global_distrib: %s stanza for %s crossed %d links: dropped with an error",
                  item->origin ? item->origin : gd->local_host,
                  mk_jid_string(mk_stanza_to(item->stanza)), item->hops);
        g_autofree char *text =
            g_strdup_printf("global distribution: hop limit (%d) reached", gd->hop_limit);
        g_autoptr(MkStanza) err =
            mk_stanza_new_error_reply(item->stanza, MK_ERR_SERVICE_UNAVAILABLE, text);
        if (err)
            gd_handoff(gd, err, 0, NULL, FALSE);
        gd_item_free(item);
        return;
    }
    gd_link_send(gd, host, item);
}

/* Where @item goes, given what Redis (or the cache) says: @host from the
 * full or bare JID's record, @home the region that last held the
 * account. Takes @item, except for TRUE: it stays at the head of its
 * wait, to be looked up again later (a user between regions). */
static gboolean decide(Gd *gd, GdItem *item, const char *host, const char *home)
{
    if (host && !g_str_equal(host, gd->local_host)) {
        forward(gd, item, host);
        return FALSE;
    }
    if (for_service(gd, item)) {
        gd_deliver_here(gd, item); /* no region serves it (now) */
        return FALSE;
    }
    /* Nobody, or this region while no session here holds it: came over a
     * link for a user who left, or is leaving; give them a moment to log
     * in elsewhere (bounce), then their home region, then here. */
    if (item->hops > 0 && bounceable(item) && (guint)item->retries < gd->bounce_retries) {
        item->retries++;
        mk_counter_add(gd->c_bounced, 1);
        return TRUE;
    }
    /* The home region keeps the account's data (roster, offline
     * storage), but availability presence for an account online nowhere
     * would only be dropped there. */
    if (home && !g_str_equal(home, gd->local_host) && !availability(item)) {
        forward(gd, item, home);
        return FALSE;
    }
    gd_deliver_here(gd, item);
    return FALSE;
}

/* @item was delivered here: a marked copy to each other region of the
 * account's set (@regions, space-separated), but the one it came from. */
static void fan_out(Gd *gd, GdItem *item, const char *regions)
{
    g_auto(GStrv) names = g_strsplit(regions ? regions : "", " ", -1);
    g_autoptr(MkStanza) copy = NULL;
    for (guint i = 0; names[i]; i++) {
        if (!*names[i] || g_str_equal(names[i], gd->local_host) ||
            g_strcmp0(names[i], item->origin) == 0)
            continue;
        if (!copy)
            copy = gd_fanout_marked(item->stanza, TRUE);
        GdItem *c = gd_item_new(copy, item->hops);
        c->origin = g_strdup(item->origin);
        mk_counter_add(gd->c_copies, 1);
        forward(gd, c, names[i]);
    }
    gd_item_free(item);
}

static void item_keys(Gd *gd, GdItem *item, char **keys)
{
    MkJid *to = mk_stanza_to(item->stanza);
    guint n = 0;
    if (for_service(gd, item) || item->fanout) {
        keys[n++] = g_strconcat(item->fanout ? "r:" : "s:",
                                item->fanout ? mk_jid_bare_string(to) : mk_jid_domain(to), NULL);
        keys[n] = NULL;
        return;
    }
    if (!mk_jid_is_bare(to))
        keys[n++] = g_strconcat("j:", mk_jid_string(to), NULL);
    keys[n++] = g_strconcat("j:", mk_jid_bare_string(to), NULL);
    keys[n++] = g_strconcat("h:", mk_jid_bare_string(to), NULL);
    keys[n] = NULL;
}

static void wait_run(Gd *gd, GdWait *w);

static gboolean on_bounce_timer(gpointer data);

/* Decides for the head of @w with @values, the records of @keys;
 * @fresh: they come from Redis (and go into the cache). */
static void wait_values(Gd *gd, GdWait *w, char **keys, char **values, gboolean fresh)
{
    GdItem *item = g_queue_pop_head(&w->items);
    guint n = g_strv_length(keys);
    gint64 now = g_get_monotonic_time();
    for (guint i = 0; fresh && values && i < n; i++)
        gd_cache_put(gd->cache, keys[i], values[i], now);
    if (item->fanout) {
        /* Redis away: unknown. From the cache, the set may be up to two
         * lifetimes old; binds elsewhere invalidate it at once. */
        gd_solo_learn(gd, mk_jid_bare_string(mk_stanza_to(item->stanza)),
                      values ? (values[0] ? values[0] : "") : NULL);
        fan_out(gd, item, values ? values[0] : NULL);
        return;
    }
    const char *host = NULL, *home = NULL;
    for (guint i = 0; values && i < n; i++) {
        if (g_str_has_prefix(keys[i], "h:"))
            home = values[i];
        else if (!host)
            host = values[i];
    }
    if (decide(gd, item, host, home)) {
        g_queue_push_head(&w->items, item);
        w->busy = TRUE;
        w->timer = g_timeout_source_new(gd->bounce_interval_ms);
        g_source_set_callback(w->timer, on_bounce_timer, w, NULL);
        g_source_attach(w->timer, gd->ctx);
    }
}

typedef struct {
    GdWait *w;
    char **keys;
} Lookup;

static void lookup_free(gpointer p)
{
    Lookup *l = p;
    g_strfreev(l->keys);
    g_free(l);
}

static void on_lookup(Gd *gd, char **values, gpointer data)
{
    /* Stopping: the waits may be gone already (on_shutdown). */
    if (g_atomic_int_get(&gd->stopping))
        return;
    Lookup *l = data;
    GdWait *w = l->w;
    w->busy = FALSE;
    if (!g_queue_is_empty(&w->items))
        wait_values(gd, w, l->keys, values, TRUE);
    wait_run(gd, w);
}

static void lookup(Gd *gd, GdWait *w, char **keys)
{
    Lookup *l = g_new0(Lookup, 1);
    l->w = w;
    l->keys = keys;
    w->busy = TRUE;
    if (g_str_has_prefix(keys[0], "r:"))
        gd_fanout_get(gd, keys[0] + 2, on_lookup, l, lookup_free);
    else
        gd_redis_get(gd, (const char *const *)keys, on_lookup, l, lookup_free);
}

static gboolean on_bounce_timer(gpointer data)
{
    GdWait *w = data;
    g_source_unref(w->timer);
    w->timer = NULL;
    GdItem *item = g_queue_peek_head(&w->items);
    char **keys = g_new0(char *, 4);
    item_keys(w->gd, item, keys);
    lookup(w->gd, w, keys); /* fresh from Redis: the cache said "nobody" */
    return G_SOURCE_REMOVE;
}

/* Handles the head of @w's queue while the cache answers; asks Redis
 * for the first one it does not. */
static void wait_run(Gd *gd, GdWait *w)
{
    while (!w->busy && !g_queue_is_empty(&w->items)) {
        GdItem *item = g_queue_peek_head(&w->items);
        char **keys = g_new0(char *, 4);
        item_keys(w->gd, item, keys);
        gint64 now = g_get_monotonic_time();
        guint n = g_strv_length(keys);
        g_autofree char **values = g_new0(char *, n + 1);
        gboolean all = TRUE;
        for (guint i = 0; i < n && all; i++) {
            const char *v = NULL;
            all = gd_cache_get(gd->cache, keys[i], now, &v);
            values[i] = g_strdup(v);
        }
        if (!all) {
            for (guint i = 0; i < n; i++)
                g_free(values[i]);
            mk_counter_add(gd->c_misses, 1);
            lookup(gd, w, keys);
            return;
        }
        mk_counter_add(gd->c_hits, 1);
        /* Copies: deciding may change the cache. */
        wait_values(gd, w, keys, values, FALSE);
        for (guint i = 0; i < n; i++)
            g_free(values[i]);
        g_strfreev(keys);
    }
    if (!w->busy && g_queue_is_empty(&w->items))
        g_hash_table_remove(gd->waits, w->bare);
}

void gd_route(Gd *gd, GdItem *item)
{
    const char *bare = mk_jid_bare_string(mk_stanza_to(item->stanza));
    GdWait *w = g_hash_table_lookup(gd->waits, bare);
    if (!w) {
        w = g_new0(GdWait, 1);
        w->gd = gd;
        w->bare = g_strdup(bare);
        g_queue_init(&w->items);
        g_hash_table_insert(gd->waits, w->bare, w);
    }
    g_queue_push_tail(&w->items, item);
    if (!w->busy)
        wait_run(gd, w);
}

void gd_invalidate(Gd *gd, const char *jid)
{
    g_autofree char *j = g_strconcat("j:", jid, NULL);
    g_autofree char *h = g_strconcat("h:", jid, NULL);
    g_autofree char *s = g_strconcat("s:", jid, NULL);
    g_autofree char *r = g_strconcat("r:", jid, NULL);
    gd_cache_drop(gd->cache, r);
    gd_solo_forget(gd, jid);
    gd_cache_drop(gd->cache, j);
    gd_cache_drop(gd->cache, h);
    gd_cache_drop(gd->cache, s);
}

void gd_received(Gd *gd, MkStanza *st, const char *origin, int hops, const char *peer)
{
    MkJid *to = mk_stanza_to(st), *from = mk_stanza_from(st);
    gboolean account = to && mk_jid_node(to) && g_str_equal(mk_jid_domain(to), gd->global_host);
    if (!account && !(to && gd_service_local(gd, mk_jid_domain(to)))) {
        g_warning("mod_global_distrib: region %s sent a stanza for %s, not an account of %s "
                  "nor a service of this region: dropped",
                  peer, to ? mk_jid_string(to) : "(nobody)", gd->global_host);
        return;
    }
    /* The sender lives where the stanza entered: answers need no lookup,
     * even before that region's record reached Redis. */
    if (from && !mk_jid_is_bare(from) && g_str_equal(mk_jid_domain(from), gd->global_host) &&
        !g_str_equal(origin, gd->local_host)) {
        g_autofree char *key = g_strconcat("j:", mk_jid_string(from), NULL);
        gd_cache_put(gd->cache, key, origin, g_get_monotonic_time());
    }
    if (gd_fanout_is_copy(st)) {
        g_autoptr(MkStanza) plain = gd_fanout_marked(st, FALSE);
        handoff(gd, plain, hops, origin, FALSE, TRUE);
        return;
    }
    gd_handoff(gd, st, hops, origin, FALSE);
}

static void run_op(Gd *gd, Op *op)
{
    switch (op->kind) {
    case OP_BIND:
        g_hash_table_add(gd->local_jids, g_strdup(op->full));
        gd_invalidate(gd, op->full);
        gd_invalidate(gd, op->bare);
        gd_redis_bind(gd, op->full, op->bare);
        return;
    case OP_UNBIND:
        g_hash_table_remove(gd->local_jids, op->full);
        gd_invalidate(gd, op->full);
        if (op->bare_too)
            gd_invalidate(gd, op->bare);
        gd_redis_unbind(gd, op->full, op->bare, op->bare_too);
        return;
    case OP_ROUTE:
        if (g_atomic_int_get(&gd->stopping))
            gd_deliver_here(gd, g_steal_pointer(&op->item));
        else
            gd_route(gd, g_steal_pointer(&op->item));
        return;
    case OP_REST:
        gd_rest_answer(gd, g_steal_pointer(&op->req));
        return;
    }
}

/* ---- the thread ------------------------------------------------------------ */

static gboolean on_refresh(gpointer data)
{
    gd_redis_refresh(data, FALSE);
    return G_SOURCE_CONTINUE;
}

static gpointer gd_thread(gpointer data)
{
    Gd *gd = data;
    g_main_context_push_thread_default(gd->ctx);
    gd_redis_connect(gd);
    gd->refresh_src = g_timeout_source_new_seconds((guint)gd->refresh_after);
    g_source_set_callback(gd->refresh_src, on_refresh, gd, NULL);
    g_source_attach(gd->refresh_src, gd->ctx);
    g_main_loop_run(gd->loop);
    g_main_context_pop_thread_default(gd->ctx);
    return NULL;
}

static void on_last_reply(redisAsyncContext *ac, void *reply, void *data)
{
    (void)ac;
    (void)reply;
    g_main_loop_quit(data);
}

static gboolean quit_loop(gpointer data)
{
    g_main_loop_quit(data);
    return G_SOURCE_REMOVE;
}

/* On the module thread, once: what is queued stays here, this node's
 * records leave Redis, and the loop ends when Redis confirmed (1 s at
 * most). */
static gboolean on_shutdown(gpointer data)
{
    Gd *gd = data;
    on_inbox(gd);
    g_hash_table_remove_all(gd->waits);
    gd_links_close(gd);
    GHashTableIter it;
    gpointer key;
    g_hash_table_iter_init(&it, gd->local_jids);
    while (g_hash_table_iter_next(&it, &key, NULL)) {
        g_autofree char *bare = g_strndup(key, strcspn(key, "/"));
        gd_redis_unbind(gd, key, bare, TRUE);
    }
    gd_services_unbind(gd);
    if (gd_redis_up(gd)) {
        g_autofree char *ep = g_strdup_printf("%s:%d", gd->advertise, gd->listen_port);
        redisAsyncCommand(gd->cmd, NULL, NULL, "ZREM gd:ep:%s %s", gd->local_host, ep);
        redisAsyncCommand(gd->cmd, on_last_reply, gd->loop, "PING");
    }
    GSource *t = g_timeout_source_new(gd_redis_up(gd) ? 1000 : 0);
    g_source_set_callback(t, quit_loop, gd->loop, NULL);
    g_source_attach(t, gd->ctx);
    g_source_unref(t);
    return G_SOURCE_REMOVE;
}

/* ---- hooks (workers) ------------------------------------------------------- */

gboolean gd_take(Gd *gd, MkStanza *st)
{
    Op *op = g_new0(Op, 1);
    op->kind = OP_ROUTE;
    if (st == injecting) {
        op->item = gd_item_new(st, injecting_hops);
        op->item->origin = g_strdup(injecting_origin);
    } else if (gd_fanout_is_copy(st)) {
        /* Only this module marks copies: a client's marker goes. */
        g_autoptr(MkStanza) plain = gd_fanout_marked(st, FALSE);
        op->item = gd_item_new(plain, 0);
    } else {
        op->item = gd_item_new(st, 0);
    }
    if (!post(gd, op)) {
        op_free(op);
        return FALSE;
    }
    return TRUE;
}

/* Worker: asks the module thread for the REST listing. */
gboolean gd_rest_post(Gd *gd, MkHttpRequest *req)
{
    Op *op = g_new0(Op, 1);
    op->kind = OP_REST;
    op->req = mk_http_request_ref(req);
    if (!post(gd, op)) {
        op_free(op);
        return FALSE;
    }
    return TRUE;
}

static MkResult on_unheld(MkHookCall *call, gpointer user_data)
{
    Gd *gd = user_data;
    MkStanza *st = mk_hook_call_stanza(call);
    MkJid *to = mk_hook_call_to(call);
    if (!st || !to || !g_str_equal(mk_jid_domain(to), gd->global_host))
        return MK_PASS;
    /* A copy for resources that are gone: the original was delivered
     * in the region that sent it. */
    if (st == injecting && injecting_copy) {
        mk_counter_add(gd->c_copies_dropped, 1);
        return MK_HANDLED;
    }
    return gd_take(gd, st) ? MK_HANDLED : MK_PASS;
}

/* Worker: @st, delivered here, goes as a copy to the account's other
 * regions (after a look-up of its region set on the module thread). */
static void post_fanout(Gd *gd, MkStanza *st, int hops, const char *origin)
{
    if (gd_solo_known(gd, mk_jid_bare_string(mk_stanza_to(st))))
        return;
    Op *op = g_new0(Op, 1);
    op->kind = OP_ROUTE;
    op->item = gd_item_new(st, hops);
    op->item->origin = g_strdup(origin);
    op->item->fanout = TRUE;
    if (!post(gd, op))
        op_free(op);
}

/* filter_local_packet, late (after privacy and blocking): a stanza for a
 * bare JID that this region delivers to its resources goes, as a copy,
 * to the account's other regions too. */
static MkResult on_local(MkHookCall *call, gpointer user_data)
{
    Gd *gd = user_data;
    MkStanza *st = mk_hook_call_stanza(call);
    MkJid *to = st ? mk_stanza_to(st) : NULL;
    if (!to || !mk_jid_node(to) || injecting_copy ||
        !g_str_equal(mk_jid_domain(to), gd->global_host))
        return MK_PASS;
    if (!mk_jid_is_bare(to)) {
        /* The other regions' resources get a <received/> carbon of it,
         * whichever region it came from. */
        g_autoptr(MkStanza) carbon = gd_carbon_for(gd, st, FALSE);
        if (carbon)
            post_fanout(gd, carbon, 0, NULL);
        return MK_PASS;
    }
    if (!gd_fanout_kind(st))
        return MK_PASS;
    post_fanout(gd, st, injecting ? injecting_hops : 0, injecting ? injecting_origin : NULL);
    return MK_PASS;
}

/* user_send_packet, last: a <sent/> carbon of what a resource here sends,
 * for the account's resources in other regions (gd-carbons.c). */
static MkResult on_send(MkHookCall *call, gpointer user_data)
{
    Gd *gd = user_data;
    MkStanza *st = mk_hook_call_stanza(call);
    g_autoptr(MkStanza) carbon = st ? gd_carbon_for(gd, st, TRUE) : NULL;
    if (carbon)
        post_fanout(gd, carbon, 0, NULL);
    return MK_PASS;
}

static MkResult on_session(MkHookCall *call, gboolean opened, Gd *gd)
{
    MkSession *s = mk_hook_call_session(call);
    MkJid *jid = s ? mk_session_jid(s) : NULL;
    if (!jid || !g_str_equal(mk_jid_domain(jid), gd->global_host))
        return MK_PASS;
    Op *op = g_new0(Op, 1);
    op->kind = opened ? OP_BIND : OP_UNBIND;
    op->full = g_strdup(mk_jid_string(jid));
    op->bare = g_strdup(mk_jid_bare_string(jid));
    if (!opened) {
        /* The bare record stays while another resource (of this node or,
         * through its stand-ins, of this cluster) is bound here. */
        g_autoptr(MkJid) bare = mk_jid_bare(jid);
        g_autoptr(GPtrArray) left = mk_session_list(bare);
        op->bare_too = TRUE;
        for (guint i = 0; i < left->len; i++)
            if (!mk_jid_equal(mk_session_jid(g_ptr_array_index(left, i)), jid))
                op->bare_too = FALSE;
    }
    if (!post(gd, op))
        op_free(op);
    return MK_PASS;
}

static MkResult on_opened(MkHookCall *call, gpointer user_data)
{
    return on_session(call, TRUE, user_data);
}

static MkResult on_closed(MkHookCall *call, gpointer user_data)
{
    return on_session(call, FALSE, user_data);
}

/* ---- start and stop (main thread) ------------------------------------------ */

static void gd_free(gpointer data)
{
    Gd *gd = data;
    g_free(gd->global_host);
    g_free(gd->local_host);
    g_free(gd->redis_host);
    g_free(gd->redis_password);
    g_free(gd->secret);
    g_free(gd->listen_address);
    g_free(gd->advertise);
    g_strfreev(gd->services);
    g_strfreev(gd->remote_services);
    g_free(gd->rest_prefix);
    g_free(gd->rest_admin_user);
    mk_http_secret_free(gd->rest_admin_password);
    gd_cache_free(gd->cache);
    if (gd->regions)
        g_hash_table_destroy(gd->regions);
    if (gd->local_jids)
        g_hash_table_destroy(gd->local_jids);
    if (gd->waits)
        g_hash_table_destroy(gd->waits);
    if (gd->loop)
        g_main_loop_unref(gd->loop);
    if (gd->ctx)
        g_main_context_unref(gd->ctx);
    g_mutex_clear(&gd->lock);
    if (gd->solo)
        g_hash_table_destroy(gd->solo);
    g_mutex_clear(&gd->solo_lock);
    g_free(gd);
}

static void make_metrics(Gd *gd, MkModule *mod)
{
#define C(field, name, help) gd->field = mk_counter_new_full(mod, name, help, NULL)
    C(c_hits, "cache_hits", "mapping lookups answered by the local cache");
    C(c_misses, "cache_misses", "mapping lookups that went to the global Redis");
    C(c_queue_full, "queue_full", "stanzas refused because a region's queue was full");
    C(c_hop_limit, "hop_limit", "stanzas dropped with an error at the hop limit");
    C(c_unreachable, "unreachable", "stanzas kept here because their region was unreachable");
    C(c_bounced, "bounced", "bounce retries for users between regions");
    C(c_local, "kept_here", "stanzas taken over and then routed in this region");
    C(c_copies, "copies", "copies of stanzas for a bare JID sent to the account's other regions");
    C(c_copies_dropped, "copies_dropped",
      "copies received for an account no longer bound here (delivered where they came from)");
#undef C
    gd->g_queued =
        mk_gauge_new(mod, "queued", "stanzas waiting for a link to another region", NULL);
    gd->g_links_up = mk_gauge_new(mod, "links_up", "links to other regions that are up", NULL);
    /* By MkLinkError (mk-cluster.h); a closed connection is not a refusal. */
    static const char *const reasons[] = {NULL, "protocol", "tls", "certificate", "secret", "peer"};
    for (guint i = 1; i < G_N_ELEMENTS(reasons); i++) {
        const char *labels[] = {"reason", reasons[i], NULL};
        gd->c_refused[i] = mk_counter_new_full(
            mod, "link_refused", "link handshakes refused (certificate, secret, protocol...)",
            labels);
    }
    static const double bounds[] = {0.001, 0.005, 0.02, 0.1, 0.5, 2, 10};
    gd->regions = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
    const char *const *names = mk_config_get_strv(mod, "regions");
    g_autoptr(GPtrArray) all = g_ptr_array_new();
    for (guint i = 0; names && names[i]; i++)
        if (*names[i] && !g_str_equal(names[i], gd->local_host))
            g_ptr_array_add(all, (gpointer)names[i]);
    g_ptr_array_add(all, (gpointer) "other");
    for (guint i = 0; i < all->len; i++) {
        const char *name = g_ptr_array_index(all, i);
        const char *labels[] = {"region", name, NULL};
        GdRegionMetrics *m = g_new0(GdRegionMetrics, 1);
        m->out = mk_counter_new_full(mod, "stanzas_out", "stanzas sent to a region", labels);
        m->in = mk_counter_new_full(mod, "stanzas_in", "stanzas received from a region", labels);
        m->link_errors =
            mk_counter_new_full(mod, "link_errors", "failed or lost links to a region", labels);
        m->reconnects =
            mk_counter_new_full(mod, "reconnects", "reconnection attempts to a region", labels);
        m->queue_time = mk_histogram_new(mod, "queue_time_seconds",
                                         "time stanzas waited for the link to a region", bounds,
                                         G_N_ELEMENTS(bounds), labels);
        g_hash_table_replace(gd->regions, g_strdup(name), m);
    }
}

GdRegionMetrics *gd_region_metrics(Gd *gd, const char *region)
{
    GdRegionMetrics *m = region ? g_hash_table_lookup(gd->regions, region) : NULL;
    return m ? m : g_hash_table_lookup(gd->regions, "other");
}

static gboolean gd_start(MkModule *mod, GError **error)
{
    const char *global = mk_config_get_string(mod, "global_host");
    const char *local = mk_config_get_string(mod, "local_host");
    const char *secret = mk_config_get_string(mod, "secret");
    /* As shipped (conf.d/available): on, but nothing to do until an
     * operator names the shared domain; a single node pays nothing. */
    if ((!global || !*global) && (!local || !*local)) {
        g_message("mod_global_distrib: no global_host set: this node serves its domains alone");
        return TRUE;
    }
    if (!global || !*global || !local || !*local) {
        g_set_error(error, MK_MODULE_ERROR, MK_MODULE_ERROR_START,
                    "mod_global_distrib: global_host and local_host must be set");
        return FALSE;
    }
    g_autoptr(MkJid) gj = mk_jid_new_from_parts(NULL, global, NULL, NULL);
    if (!gj || !mk_module_serves_domain(mod, mk_jid_domain(gj))) {
        g_set_error(error, MK_MODULE_ERROR, MK_MODULE_ERROR_START,
                    "mod_global_distrib: global_host %s is not a domain of host type %s", global,
                    mk_module_host_type(mod));
        return FALSE;
    }
    if (!secret || strlen(secret) < 16) {
        g_set_error(error, MK_MODULE_ERROR, MK_MODULE_ERROR_START,
                    "mod_global_distrib: secret must be set (16 characters or more)");
        return FALSE;
    }
    if (strchr(local, ':') || strchr(local, ' ')) {
        g_set_error(error, MK_MODULE_ERROR, MK_MODULE_ERROR_START,
                    "mod_global_distrib: local_host %s: no ':' or spaces", local);
        return FALSE;
    }
    const char *listen = mk_config_get_string(mod, "listen_address");
    const char *advertise = mk_config_get_string(mod, "advertise");
    if (!advertise || !*advertise) {
        if (g_str_equal(listen, "0.0.0.0") || g_str_equal(listen, "::")) {
            g_set_error(error, MK_MODULE_ERROR, MK_MODULE_ERROR_START,
                        "mod_global_distrib: listen_address %s needs advertise (the address "
                        "other regions dial)",
                        listen);
            return FALSE;
        }
        advertise = listen;
    }
    gint64 expire = mk_config_get_int(mod, "expire_after");
    gint64 refresh = mk_config_get_int(mod, "refresh_after");
    if (refresh >= expire) {
        g_set_error(error, MK_MODULE_ERROR, MK_MODULE_ERROR_START,
                    "mod_global_distrib: refresh_after (%" G_GINT64_FORMAT
                    ") must be below expire_after (%" G_GINT64_FORMAT ")",
                    refresh, expire);
        return FALSE;
    }

    Gd *gd = g_new0(Gd, 1);
    gd->mod = mod;
    gd->global_host = g_strdup(mk_jid_domain(gj));
    gd->local_host = g_strdup(local);
    gd->redis_host = g_strdup(mk_config_get_string(mod, "redis_host"));
    gd->redis_port = (int)mk_config_get_int(mod, "redis_port");
    gd->redis_password = g_strdup(mk_config_get_string(mod, "redis_password"));
    gd->secret = g_strdup(secret);
    gd->listen_address = g_strdup(listen);
    gd->listen_port = (int)mk_config_get_int(mod, "listen_port");
    gd->advertise = g_strdup(advertise);
    gd->expire_after = expire;
    gd->refresh_after = refresh;
    gd->hop_limit = (int)mk_config_get_int(mod, "hop_limit");
    gd->queue_max = (guint)mk_config_get_int(mod, "queue_max");
    gd->pool = (guint)mk_config_get_int(mod, "connections_per_endpoint");
    gd->queue_timeout_us = mk_config_get_int(mod, "queue_timeout_ms") * 1000;
    gd->bounce_interval_ms = (guint)mk_config_get_int(mod, "bounce_interval_ms");
    gd->bounce_retries = (guint)mk_config_get_int(mod, "bounce_retries");
    gd->cache = gd_cache_new((guint)mk_config_get_int(mod, "cache_max_jids"),
                             mk_config_get_int(mod, "cache_lifetime_ms") * 1000);
    gd->local_jids = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
    gd->solo = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
    gd->solo_lifetime = mk_config_get_int(mod, "cache_lifetime_ms") * 1000;
    gd->solo_max = (guint)mk_config_get_int(mod, "cache_max_jids");
    g_mutex_init(&gd->solo_lock);
    gd->waits = g_hash_table_new_full(g_str_hash, g_str_equal, NULL, wait_free);
    gd->listen_fd = -1;
    g_mutex_init(&gd->lock);
    g_queue_init(&gd->inbox);
    gd->ctx = g_main_context_new();
    gd->loop = g_main_loop_new(gd->ctx, FALSE);
    mk_module_set_data(mod, gd, gd_free);
    make_metrics(gd, mod);

    if (!gd_services_start(gd, error) || !gd_rest_start(gd, error))
        return FALSE;
    if (!gd_links_listen(gd, error))
        return FALSE;
    gd->thread = g_thread_new("mk-gdistrib", gd_thread, gd);
    mk_hook_add(mod, MK_HOOK_ROUTE_UNHELD, 0, on_unheld, gd);
    mk_hook_add(mod, MK_HOOK_SESSION_OPENED, 0, on_opened, gd);
    mk_hook_add(mod, MK_HOOK_SESSION_CLOSED, 0, on_closed, gd);
    mk_hook_add(mod, MK_HOOK_FILTER_LOCAL_PACKET, 5, on_local, gd);
    mk_hook_add(mod, MK_HOOK_USER_SEND_PACKET, 0, on_send, gd);
    return TRUE;
}

static void gd_stop(MkModule *mod)
{
    Gd *gd = mk_module_get_data(mod);
    if (!gd)
        return;
    g_mutex_lock(&gd->lock);
    g_atomic_int_set(&gd->stopping, TRUE);
    g_mutex_unlock(&gd->lock);
    if (gd->thread) {
        g_main_context_invoke(gd->ctx, on_shutdown, gd);
        g_thread_join(gd->thread);
        gd->thread = NULL;
        /* What the last iteration left (sources freed later, replies). */
        while (g_main_context_iteration(gd->ctx, FALSE))
            ;
        gd_redis_close(gd);
        if (gd->refresh_src) {
            g_source_destroy(gd->refresh_src);
            g_source_unref(gd->refresh_src);
            gd->refresh_src = NULL;
        }
        while (g_main_context_iteration(gd->ctx, FALSE))
            ;
    } else {
        gd_links_close(gd);
    }
}

static const MkConfigKey gd_keys[] = {
    {"global_host", MK_CONFIG_STRING, NULL, 0, 0, "the domain every region serves"},
    {"regions", MK_CONFIG_STRV, "", 0, 0,
     "the other regions' names, for per-region metrics (others count as \"other\")"},
    {"local_host", MK_CONFIG_STRING, NULL, 0, 0, "this region's name, unique per region"},
    {"redis_host", MK_CONFIG_STRING, "127.0.0.1", 0, 0, "the global Redis"},
    {"redis_port", MK_CONFIG_INT, "6379", 1, 65535, "its port"},
    {"redis_password", MK_CONFIG_STRING, "", 0, 0, "its password (requirepass), if any"},
    {"secret", MK_CONFIG_STRING, NULL, 0, 0,
     "shared by every node of every region: authenticates the links"},
    {"listen_address", MK_CONFIG_STRING, "127.0.0.1", 0, 0,
     "numeric address the link listener binds"},
    {"listen_port", MK_CONFIG_INT, "5291", 1, 65535, "port of the link listener"},
    {"advertise", MK_CONFIG_STRING, "", 0, 0,
     "numeric address other regions dial (default: listen_address)"},
    {"expire_after", MK_CONFIG_INT, "120", 2, 86400,
     "seconds a record in Redis lives unless refreshed"},
    {"refresh_after", MK_CONFIG_INT, "60", 1, 86400,
     "seconds between refreshes of this node's records"},
    {"hop_limit", MK_CONFIG_INT, "4", 1, 16, "links a stanza may cross before it bounces"},
    {"queue_max", MK_CONFIG_INT, "10000", 1, 10000000,
     "stanzas waiting for the link to one region, beyond which they bounce"},
    {"queue_timeout_ms", MK_CONFIG_INT, "5000", 100, 600000,
     "how long a stanza waits for a link before it stays in this region"},
    {"bounce_interval_ms", MK_CONFIG_INT, "200", 10, 60000,
     "between lookups for a user who left the region a message was sent to"},
    {"bounce_retries", MK_CONFIG_INT, "10", 0, 1000,
     "such lookups before the message goes to the user's home region or here"},
    {"cache_max_jids", MK_CONFIG_INT, "10000", 1, 10000000, "mapping entries each node caches"},
    {"cache_lifetime_ms", MK_CONFIG_INT, "5000", 0, 3600000,
     "how long a cached mapping entry is trusted (changes also invalidate it)"},
    {"connections_per_endpoint", MK_CONFIG_INT, "2", 1, 64,
     "connections each node keeps to every other region (a sender->recipient pair always "
     "uses the same one)"},
    {"link_tls", MK_CONFIG_BOOL, "false", 0, 0,
     "links in TLS, both sides presenting a certificate that link_cafile signed"},
    {"link_certfile", MK_CONFIG_STRING, "", 0, 0, "this node's certificate (PEM)"},
    {"link_keyfile", MK_CONFIG_STRING, "", 0, 0, "its key (PEM)"},
    {"link_cafile", MK_CONFIG_STRING, "", 0, 0, "the CA that signs every region's certificates"},
    {"services", MK_CONFIG_STRV, "", 0, 0,
     "room and component domains this region serves, recorded in the global Redis"},
    {"remote_services", MK_CONFIG_STRV, "", 0, 0,
     "room and component domains other regions serve: routed to the region recorded"},
    {"rest_prefix", MK_CONFIG_STRING, "/api", 0, 0,
     "prefix of GET PREFIX/global-distrib/regions on the http listeners"},
    {"rest_admin_username", MK_CONFIG_STRING, "admin", 0, 0, "user name of that endpoint"},
    {"rest_admin_password_file", MK_CONFIG_STRING, "", 0, 0,
     "file whose first line is its password (none: the endpoint answers 403)"},
    MK_CONFIG_KEYS_END,
};

MK_MODULE_EXPORT const MkModuleDesc mk_module_desc = {
    MK_MODULE_DESC_HEADER, .name = "mod_global_distrib",
    .version = "0.1",      .config_keys = gd_keys,
    .start = gd_start,     .stop = gd_stop,
};
