/* mod_offline policy: the pure decisions, kept apart so that
 * test-offline-policy.c checks them without a server. */
#define OFFLINE_PURE
#include "offline.h"

OfflineAction offline_classify(const char *type, gboolean no_store, gboolean has_content,
                               gboolean groupchat)
{
    /* XEP-0160 section 3: normal and chat are stored; headline and error
     * never are (the router drops errors before asking us, and drops
     * headlines when we pass). Groupchat reaches us only from a room
     * service of ours (MUC Light sends it to members' bare JIDs; the
     * router bounces anyone else's): kept when @groupchat says so. */
    if (groupchat && g_strcmp0(type, "groupchat") == 0)
        type = NULL;
    if (type && !g_str_equal(type, "normal") && !g_str_equal(type, "chat"))
        return OFFLINE_PASS;
    /* XEP-0334: the sender asked us not to keep it; then the recipient is
     * simply unavailable, as without offline storage. */
    if (no_store)
        return OFFLINE_PASS;
    if (!has_content)
        return OFFLINE_DROP;
    return OFFLINE_STORE;
}

OfflineRetry offline_retry_next(guint attempt, guint retries)
{
    return attempt < retries ? OFFLINE_RETRY : OFFLINE_GIVE_UP;
}

guint offline_retry_delay_ms(guint attempt, guint base_ms)
{
    const guint cap = 30000;
    guint64 d = base_ms;
    for (guint i = 0; i < attempt && d < cap; i++)
        d *= 2;
    return (guint)MIN(d, cap);
}
