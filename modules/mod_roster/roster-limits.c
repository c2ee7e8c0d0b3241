/* Per-user caps on what a roster stores (docs/security.md, "Stanzas and
 * per-user storage"): rows (items and requests waiting for an answer),
 * groups per item, the length of a name or group, and the roster's size.
 *
 * The size is counted in characters plus a fixed charge per item and per
 * group for the markup of a roster result. A character serialises to at
 * most 6 bytes (&quot;), so max_bytes (at most 1.25 Mi) keeps the whole
 * roster result under the 8 MiB a connection may queue: a roster that
 * could never be fetched cannot be built. */
#include "roster.h"

#include <string.h>

/* The markup around an item (<item jid='' name='' subscription='both'
 * ask='subscribe' approved='true'></item>) and a group (<group></group>). */
#define ITEM_CHARGE  80
#define GROUP_CHARGE 15

gint64 roster_item_cost(const RosterItem *item)
{
    gint64 n = ITEM_CHARGE + g_utf8_strlen(item->contact, -1);
    if (item->name)
        n += g_utf8_strlen(item->name, -1);
    if (item->st.pending_in && item->pending_xml)
        n += g_utf8_strlen(item->pending_xml, -1);
    for (guint i = 0; item->groups[i]; i++)
        n += GROUP_CHARGE + g_utf8_strlen(item->groups[i], -1);
    return n;
}

/* The user's rows and their cost as roster_item_cost counts it; SQL
 * length() counts characters on both drivers. */
static gboolean usage(MkDbConn *conn, MkJid *user, gint64 *rows, gint64 *cost, GError **error)
{
    g_autoptr(MkDbResult) res = mk_db_conn_query(
        conn, error,
        "SELECT (SELECT COUNT(*) FROM roster_items WHERE username = ? AND domain = ?),"
        " (SELECT COALESCE(SUM(80 + length(contact) + COALESCE(length(name), 0)"
        "   + COALESCE(length(pending_in), 0)), 0)"
        "  FROM roster_items WHERE username = ? AND domain = ?)"
        " + (SELECT COALESCE(SUM(15 + length(grp)), 0)"
        "  FROM roster_groups WHERE username = ? AND domain = ?)",
        MK_DB_STR(mk_jid_node(user)), MK_DB_STR(mk_jid_domain(user)), MK_DB_STR(mk_jid_node(user)),
        MK_DB_STR(mk_jid_domain(user)), MK_DB_STR(mk_jid_node(user)),
        MK_DB_STR(mk_jid_domain(user)));
    if (!res)
        return FALSE;
    *rows = mk_db_result_rows(res) ? mk_db_result_get_int(res, 0, 0) : 0;
    *cost = mk_db_result_rows(res) ? mk_db_result_get_int(res, 0, 1) : 0;
    return TRUE;
}

gboolean roster_limits_allow(Roster *r, MkDbConn *conn, MkJid *user, gint64 before_cost,
                             const RosterItem *after, const char **refusal, GError **error)
{
    *refusal = NULL;
    gint64 rows = 0, cost = 0;
    if (!usage(conn, user, &rows, &cost, error))
        return FALSE;
    if (before_cost < 0 && rows >= r->max_items) {
        *refusal = "the roster holds as many items as allowed";
    } else {
        gint64 old_cost = MAX(before_cost, 0);
        gint64 new_cost = roster_item_cost(after);
        /* Shrinking is always allowed, even over a lowered cap. */
        if (new_cost > old_cost && cost - old_cost + new_cost > r->max_bytes)
            *refusal = "the roster would exceed its size limit";
    }
    if (*refusal) {
        mk_counter_add(r->limit_refusals, 1);
        g_info("mod_roster: %s: %s (%" G_GINT64_FORMAT " items, %" G_GINT64_FORMAT
               " of %" G_GINT64_FORMAT " bytes)",
               mk_jid_string(user), *refusal, rows, cost, r->max_bytes);
    }
    return TRUE;
}
