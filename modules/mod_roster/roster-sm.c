/* The subscription state machine of RFC 6121 section 3 and Appendix A,
 * as pure functions over RosterState so that it can be tested alone.
 *
 * "Outbound" is a stanza the user sends to the contact (A.2), "inbound"
 * one the contact sends to the user (A.3); both describe the user's side
 * of the relation, as stored in the user's row for the contact. */
#include "roster.h"

gboolean roster_pres_type_parse(const char *type, RosterPresType *out)
{
    if (!type)
        return FALSE;
    if (g_str_equal(type, "subscribe"))
        *out = ROSTER_SUBSCRIBE;
    else if (g_str_equal(type, "subscribed"))
        *out = ROSTER_SUBSCRIBED;
    else if (g_str_equal(type, "unsubscribe"))
        *out = ROSTER_UNSUBSCRIBE;
    else if (g_str_equal(type, "unsubscribed"))
        *out = ROSTER_UNSUBSCRIBED;
    else
        return FALSE;
    return TRUE;
}

const char *roster_sub_name(guint sub)
{
    switch (sub & ROSTER_SUB_BOTH) {
    case ROSTER_SUB_TO:
        return "to";
    case ROSTER_SUB_FROM:
        return "from";
    case ROSTER_SUB_BOTH:
        return "both";
    default:
        return "none";
    }
}

guint roster_sub_parse(const char *name)
{
    if (g_strcmp0(name, "to") == 0)
        return ROSTER_SUB_TO;
    if (g_strcmp0(name, "from") == 0)
        return ROSTER_SUB_FROM;
    if (g_strcmp0(name, "both") == 0)
        return ROSTER_SUB_BOTH;
    return ROSTER_SUB_NONE;
}

gboolean roster_state_visible_equal(const RosterState *a, const RosterState *b)
{
    return a->sub == b->sub && !a->ask == !b->ask && !a->approved == !b->approved &&
           !a->in_roster == !b->in_roster;
}

/* A relation that exists in any way is a roster item of the user's: the
 * server adds the contact when the user subscribes, pre-approves, or
 * approves a request from someone not yet in the roster (RFC 6121 3.1.2,
 * 3.1.5, 3.4). A bare pending-in request is not an item. */
static void settle(RosterState *st)
{
    if (st->sub != ROSTER_SUB_NONE || st->ask || st->approved)
        st->in_roster = TRUE;
}

guint roster_sm_outbound(RosterPresType type, RosterState *st)
{
    guint act = 0;
    switch (type) {
    case ROSTER_SUBSCRIBE:
        /* A.2.1: Pending Out unless the user has a subscription already.
         * The request is routed in every state: the contact's server may
         * have lost its side. */
        if (!(st->sub & ROSTER_SUB_TO))
            st->ask = TRUE;
        act = ROSTER_ACT_FORWARD;
        break;
    case ROSTER_SUBSCRIBED:
        /* A.2.2: approving a pending request gives the contact 'from';
         * with no request it is a pre-approval (3.4), not routed; when
         * the contact is subscribed already there is nothing to do. */
        if (st->sub & ROSTER_SUB_FROM) {
            act = 0;
        } else if (st->pending_in) {
            st->sub |= ROSTER_SUB_FROM;
            st->pending_in = FALSE;
            st->approved = FALSE;
            act = ROSTER_ACT_FORWARD | ROSTER_ACT_SEND_PRESENCE;
        } else {
            st->approved = TRUE;
            act = 0;
        }
        break;
    case ROSTER_UNSUBSCRIBE:
        /* A.2.3: the user ends its subscription or cancels its request. */
        st->sub &= ~ROSTER_SUB_TO;
        st->ask = FALSE;
        act = ROSTER_ACT_FORWARD;
        break;
    case ROSTER_UNSUBSCRIBED:
        /* A.2.4: the user cancels the contact's subscription, denies its
         * request, or withdraws a pre-approval. */
        if (st->sub & ROSTER_SUB_FROM)
            act |= ROSTER_ACT_SEND_UNAVAILABLE;
        st->sub &= ~ROSTER_SUB_FROM;
        st->pending_in = FALSE;
        st->approved = FALSE;
        act |= ROSTER_ACT_FORWARD;
        break;
    }
    settle(st);
    return act;
}

guint roster_sm_inbound(RosterPresType type, RosterState *st)
{
    guint act = 0;
    switch (type) {
    case ROSTER_SUBSCRIBE:
        /* A.3.1 and 3.1.3: a subscriber asking again is answered for the
         * user; a pre-approved contact becomes a subscriber at once;
         * otherwise the request waits for the user. */
        if (st->sub & ROSTER_SUB_FROM) {
            act = ROSTER_ACT_REPLY_SUBSCRIBED;
        } else if (st->approved) {
            st->sub |= ROSTER_SUB_FROM;
            st->approved = FALSE;
            st->pending_in = FALSE;
            act = ROSTER_ACT_REPLY_SUBSCRIBED | ROSTER_ACT_SEND_PRESENCE;
        } else {
            st->pending_in = TRUE;
            act = ROSTER_ACT_FORWARD | ROSTER_ACT_STORE_PENDING;
        }
        break;
    case ROSTER_SUBSCRIBED:
        /* A.3.2 and 3.1.6: only an answer to the user's own request
         * counts; anything else is ignored, not delivered. */
        if (st->ask) {
            st->sub |= ROSTER_SUB_TO;
            st->ask = FALSE;
            act = ROSTER_ACT_FORWARD;
        }
        break;
    case ROSTER_UNSUBSCRIBE:
        /* A.3.3 and 3.3.3: the contact ends its subscription to the user
         * or withdraws its request. */
        if ((st->sub & ROSTER_SUB_FROM) || st->pending_in) {
            if (st->sub & ROSTER_SUB_FROM)
                act |= ROSTER_ACT_SEND_UNAVAILABLE;
            st->sub &= ~ROSTER_SUB_FROM;
            st->pending_in = FALSE;
            act |= ROSTER_ACT_FORWARD;
        }
        break;
    case ROSTER_UNSUBSCRIBED:
        /* A.3.4 and 3.2.3: the contact cancels the user's subscription or
         * denies its request. */
        if ((st->sub & ROSTER_SUB_TO) || st->ask) {
            st->sub &= ~ROSTER_SUB_TO;
            st->ask = FALSE;
            act = ROSTER_ACT_FORWARD;
        }
        break;
    }
    settle(st);
    return act;
}
