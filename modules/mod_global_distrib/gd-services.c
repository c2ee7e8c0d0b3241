/* Service domains across regions (docs/mod_global_distrib.md, "Rooms
 * and components"): a region lists the domains it serves (`services`,
 * e.g. its MUC or MUC Light service) and records each in the global
 * Redis as gd:s:DOMAIN → region, with the expiry of the user records; a
 * region that does not serve them lists them in `remote_services`, and
 * claims them with mk_route_register so that its users' stanzas for a
 * room or component there are looked up and sent to the owner. The
 * mapping is per service domain, not per room: the first region that
 * records a domain owns it while it refreshes the record. */
#include "gd.h"
#include <hiredis/hiredis.h>
#include <string.h>

/* Sets the record if it is free or already this region's: a second
 * region listing the same domain does not steal it. 1 when it is ours. */
static const char SET_IF_FREE[] =
    "local v = redis.call('GET', KEYS[1]) "
    "if v == false or v == ARGV[1] then redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2]) "
    "return 1 end return 0";
static const char DEL_IF_MINE[] =
    "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end "
    "return 0";

static gboolean listed(char **list, const char *domain)
{
    for (guint i = 0; list && list[i]; i++)
        if (g_ascii_strcasecmp(list[i], domain) == 0)
            return TRUE;
    return FALSE;
}

gboolean gd_service_local(Gd *gd, const char *domain)
{
    return domain && listed(gd->services, domain);
}

gboolean gd_service_remote(Gd *gd, const char *domain)
{
    return domain && listed(gd->remote_services, domain);
}

/* Worker: a stanza for a room or component of another region. */
static void on_remote_service(MkStanza *st, gpointer user_data)
{
    Gd *gd = user_data;
    if (gd_take(gd, st))
        return;
    g_autoptr(MkStanza) err =
        mk_stanza_new_error_reply(st, MK_ERR_SERVICE_UNAVAILABLE, "the server is stopping");
    if (err)
        mk_router_send(err);
}

static char **read_list(MkModule *mod, const char *key)
{
    const char *const *v = mk_config_get_strv(mod, key);
    g_autoptr(GPtrArray) out = g_ptr_array_new();
    for (guint i = 0; v && v[i]; i++)
        if (*v[i])
            g_ptr_array_add(out, g_ascii_strdown(v[i], -1));
    g_ptr_array_add(out, NULL);
    return (char **)g_ptr_array_free(g_steal_pointer(&out), FALSE);
}

gboolean gd_services_start(Gd *gd, GError **error)
{
    gd->services = read_list(gd->mod, "services");
    gd->remote_services = read_list(gd->mod, "remote_services");
    for (guint i = 0; gd->services[i]; i++) {
        if (g_str_equal(gd->services[i], gd->global_host) ||
            listed(gd->remote_services, gd->services[i])) {
            g_set_error(error, MK_MODULE_ERROR, MK_MODULE_ERROR_START,
                        "mod_global_distrib: services: %s is the global host or also in "
                        "remote_services",
                        gd->services[i]);
            return FALSE;
        }
    }
    for (guint i = 0; gd->remote_services[i]; i++) {
        if (g_str_equal(gd->remote_services[i], gd->global_host)) {
            g_set_error(error, MK_MODULE_ERROR, MK_MODULE_ERROR_START,
                        "mod_global_distrib: remote_services cannot name the global host");
            return FALSE;
        }
        if (!mk_route_register(gd->mod, gd->remote_services[i], on_remote_service, gd, error))
            return FALSE;
    }
    return TRUE;
}

typedef struct {
    Gd *gd;
    char *domain;
} Claim;

static void on_claim(redisAsyncContext *ac, void *r, void *data)
{
    Claim *c = data;
    redisReply *reply = r;
    (void)ac;
    if (reply && reply->type == REDIS_REPLY_INTEGER && reply->integer == 0)
        g_warning("mod_global_distrib: service %s is recorded by another region: its rooms "
                  "are reached there (list it in one region's services only)",
                  c->domain);
    g_free(c->domain);
    g_free(c);
}

void gd_services_refresh(Gd *gd, gboolean all)
{
    if (!gd_redis_up(gd))
        return;
    for (guint i = 0; gd->services && gd->services[i]; i++) {
        Claim *c = g_new0(Claim, 1);
        c->gd = gd;
        c->domain = g_strdup(gd->services[i]);
        redisAsyncCommand(gd->cmd, on_claim, c, "EVAL %s 1 gd:s:%s %s %d", SET_IF_FREE,
                          gd->services[i], gd->local_host, (int)gd->expire_after);
        if (all)
            redisAsyncCommand(gd->cmd, NULL, NULL, "PUBLISH gd:inval %s", gd->services[i]);
    }
}

void gd_services_unbind(Gd *gd)
{
    if (!gd_redis_up(gd))
        return;
    for (guint i = 0; gd->services && gd->services[i]; i++) {
        redisAsyncCommand(gd->cmd, NULL, NULL, "EVAL %s 1 gd:s:%s %s", DEL_IF_MINE, gd->services[i],
                          gd->local_host);
        redisAsyncCommand(gd->cmd, NULL, NULL, "PUBLISH gd:inval %s", gd->services[i]);
    }
}
