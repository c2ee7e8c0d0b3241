/* mod_carboncopy rules: pure, so that test-carbons-rules.c checks them
 * without a server. */
#include "carbons.h"

gboolean carbons_eligible(const CarbonsMessage *m)
{
    if (m->is_private || m->no_copy || m->is_carbon)
        return FALSE;
    if (!m->type || g_str_equal(m->type, "normal"))
        return m->has_body;
    return g_str_equal(m->type, "chat");
}

void carbons_direct_recipients(const CarbonsResource *res, guint n, gboolean *gets)
{
    int best = -1;
    for (guint i = 0; i < n; i++)
        gets[i] = FALSE;
    for (guint i = 0; i < n; i++) {
        if (res[i].addressed) {
            gets[i] = TRUE;
            return;
        }
    }
    for (guint i = 0; i < n; i++)
        if (res[i].available && res[i].priority > best)
            best = res[i].priority;
    for (guint i = 0; best >= 0 && i < n; i++)
        gets[i] = res[i].available && res[i].priority == best;
}
