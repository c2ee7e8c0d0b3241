/* The subscription state machine against RFC 6121 Appendix A. States are
 * written as in the RFC: "None", "To+PendingIn", "From+PendingOut", ...,
 * plus "+Approved" for a pre-approval and "+Hidden" for a relation that
 * is not (yet) a roster item. */
#include "roster.h"

static RosterState parse_state(const char *text)
{
    RosterState st = {0};
    st.in_roster = TRUE;
    g_auto(GStrv) parts = g_strsplit(text, "+", -1);
    st.sub = g_str_equal(parts[0], "None")   ? ROSTER_SUB_NONE
             : g_str_equal(parts[0], "To")   ? ROSTER_SUB_TO
             : g_str_equal(parts[0], "From") ? ROSTER_SUB_FROM
                                             : ROSTER_SUB_BOTH;
    g_assert_true(g_str_equal(parts[0], "None") || g_str_equal(parts[0], "To") ||
                  g_str_equal(parts[0], "From") || g_str_equal(parts[0], "Both"));
    for (guint i = 1; parts[i]; i++) {
        if (g_str_equal(parts[i], "PendingOut"))
            st.ask = TRUE;
        else if (g_str_equal(parts[i], "PendingIn"))
            st.pending_in = TRUE;
        else if (g_str_equal(parts[i], "Approved"))
            st.approved = TRUE;
        else if (g_str_equal(parts[i], "Hidden"))
            st.in_roster = FALSE;
        else
            g_assert_not_reached();
    }
    return st;
}

static char *format_state(const RosterState *st)
{
    const char *base[] = {"None", "To", "From", "Both"};
    return g_strconcat(base[st->sub], st->ask ? "+PendingOut" : "",
                       st->pending_in ? "+PendingIn" : "", st->approved ? "+Approved" : "",
                       st->in_roster ? "" : "+Hidden", NULL);
}

typedef struct {
    const char *before;
    RosterPresType type;
    const char *after;
    guint actions;
} Step;

#define FWD   ROSTER_ACT_FORWARD
#define REPLY ROSTER_ACT_REPLY_SUBSCRIBED
#define PRES  ROSTER_ACT_SEND_PRESENCE
#define UNAV  ROSTER_ACT_SEND_UNAVAILABLE
#define STORE ROSTER_ACT_STORE_PENDING

static void run_steps(const Step *steps, gsize n, gboolean inbound)
{
    for (gsize i = 0; i < n; i++) {
        RosterState st = parse_state(steps[i].before);
        guint act = inbound ? roster_sm_inbound(steps[i].type, &st)
                            : roster_sm_outbound(steps[i].type, &st);
        g_autofree char *got = format_state(&st);
        g_test_message("%s %s --%d--> %s (actions %#x)", inbound ? "in" : "out", steps[i].before,
                       steps[i].type, got, act);
        g_assert_cmpstr(got, ==, steps[i].after);
        g_assert_cmphex(act, ==, steps[i].actions);
    }
}

/* A.2: what the user sends. */
static void test_outbound(void)
{
    static const Step steps[] = {
        /* A.2.1 subscribe: routed always; Pending Out unless subscribed. */
        {"None+Hidden", ROSTER_SUBSCRIBE, "None+PendingOut", FWD},
        {"None", ROSTER_SUBSCRIBE, "None+PendingOut", FWD},
        {"None+PendingOut", ROSTER_SUBSCRIBE, "None+PendingOut", FWD},
        {"None+PendingIn+Hidden", ROSTER_SUBSCRIBE, "None+PendingOut+PendingIn", FWD},
        {"To", ROSTER_SUBSCRIBE, "To", FWD},
        {"From", ROSTER_SUBSCRIBE, "From+PendingOut", FWD},
        {"Both", ROSTER_SUBSCRIBE, "Both", FWD},
        /* A.2.2 subscribed: approval, or pre-approval (3.4). */
        {"None+PendingIn+Hidden", ROSTER_SUBSCRIBED, "From", FWD | PRES},
        {"None+PendingOut+PendingIn", ROSTER_SUBSCRIBED, "From+PendingOut", FWD | PRES},
        {"To+PendingIn", ROSTER_SUBSCRIBED, "Both", FWD | PRES},
        {"None+Hidden", ROSTER_SUBSCRIBED, "None+Approved", 0},
        {"None+PendingOut", ROSTER_SUBSCRIBED, "None+PendingOut+Approved", 0},
        {"To", ROSTER_SUBSCRIBED, "To+Approved", 0},
        {"From", ROSTER_SUBSCRIBED, "From", 0},
        {"Both", ROSTER_SUBSCRIBED, "Both", 0},
        /* A.2.3 unsubscribe. */
        {"None+PendingOut", ROSTER_UNSUBSCRIBE, "None", FWD},
        {"None+PendingOut+PendingIn", ROSTER_UNSUBSCRIBE, "None+PendingIn", FWD},
        {"To", ROSTER_UNSUBSCRIBE, "None", FWD},
        {"To+PendingIn", ROSTER_UNSUBSCRIBE, "None+PendingIn", FWD},
        {"From+PendingOut", ROSTER_UNSUBSCRIBE, "From", FWD},
        {"Both", ROSTER_UNSUBSCRIBE, "From", FWD},
        /* A.2.4 unsubscribed: denial, cancellation, pre-approval withdrawn. */
        {"None+PendingIn+Hidden", ROSTER_UNSUBSCRIBED, "None+Hidden", FWD},
        {"None+PendingOut+PendingIn", ROSTER_UNSUBSCRIBED, "None+PendingOut", FWD},
        {"To+PendingIn", ROSTER_UNSUBSCRIBED, "To", FWD},
        {"From", ROSTER_UNSUBSCRIBED, "None", FWD | UNAV},
        {"From+PendingOut", ROSTER_UNSUBSCRIBED, "None+PendingOut", FWD | UNAV},
        {"Both", ROSTER_UNSUBSCRIBED, "To", FWD | UNAV},
        {"None+Approved", ROSTER_UNSUBSCRIBED, "None", FWD},
    };
    run_steps(steps, G_N_ELEMENTS(steps), FALSE);
}

/* A.3: what the contact sends to the user. */
static void test_inbound(void)
{
    static const Step steps[] = {
        /* A.3.1 subscribe: wait for the user, unless subscribed/approved. */
        {"None+Hidden", ROSTER_SUBSCRIBE, "None+PendingIn+Hidden", FWD | STORE},
        {"None", ROSTER_SUBSCRIBE, "None+PendingIn", FWD | STORE},
        {"None+PendingOut", ROSTER_SUBSCRIBE, "None+PendingOut+PendingIn", FWD | STORE},
        {"To", ROSTER_SUBSCRIBE, "To+PendingIn", FWD | STORE},
        {"From", ROSTER_SUBSCRIBE, "From", REPLY},
        {"Both", ROSTER_SUBSCRIBE, "Both", REPLY},
        {"None+Approved", ROSTER_SUBSCRIBE, "From", REPLY | PRES},
        {"To+Approved", ROSTER_SUBSCRIBE, "Both", REPLY | PRES},
        /* A.3.2 subscribed: only as an answer to Pending Out. */
        {"None+PendingOut", ROSTER_SUBSCRIBED, "To", FWD},
        {"None+PendingOut+PendingIn", ROSTER_SUBSCRIBED, "To+PendingIn", FWD},
        {"From+PendingOut", ROSTER_SUBSCRIBED, "Both", FWD},
        {"None", ROSTER_SUBSCRIBED, "None", 0},
        {"To", ROSTER_SUBSCRIBED, "To", 0},
        {"From", ROSTER_SUBSCRIBED, "From", 0},
        /* A.3.3 unsubscribe. */
        {"None+PendingIn+Hidden", ROSTER_UNSUBSCRIBE, "None+Hidden", FWD},
        {"None+PendingOut+PendingIn", ROSTER_UNSUBSCRIBE, "None+PendingOut", FWD},
        {"To+PendingIn", ROSTER_UNSUBSCRIBE, "To", FWD},
        {"From", ROSTER_UNSUBSCRIBE, "None", FWD | UNAV},
        {"Both", ROSTER_UNSUBSCRIBE, "To", FWD | UNAV},
        {"None", ROSTER_UNSUBSCRIBE, "None", 0},
        {"To", ROSTER_UNSUBSCRIBE, "To", 0},
        /* A.3.4 unsubscribed. */
        {"None+PendingOut", ROSTER_UNSUBSCRIBED, "None", FWD},
        {"None+PendingOut+PendingIn", ROSTER_UNSUBSCRIBED, "None+PendingIn", FWD},
        {"To", ROSTER_UNSUBSCRIBED, "None", FWD},
        {"To+PendingIn", ROSTER_UNSUBSCRIBED, "None+PendingIn", FWD},
        {"Both", ROSTER_UNSUBSCRIBED, "From", FWD},
        {"From", ROSTER_UNSUBSCRIBED, "From", 0},
        {"None", ROSTER_UNSUBSCRIBED, "None", 0},
    };
    run_steps(steps, G_N_ELEMENTS(steps), TRUE);
}

static void test_names(void)
{
    RosterPresType t;
    g_assert_true(roster_pres_type_parse("unsubscribed", &t));
    g_assert_cmpint(t, ==, ROSTER_UNSUBSCRIBED);
    g_assert_false(roster_pres_type_parse("probe", &t));
    g_assert_false(roster_pres_type_parse(NULL, &t));
    for (guint sub = 0; sub < 4; sub++)
        g_assert_cmpuint(roster_sub_parse(roster_sub_name(sub)), ==, sub);
    g_assert_cmpuint(roster_sub_parse("remove"), ==, ROSTER_SUB_NONE);

    RosterState a = parse_state("To+PendingIn"), b = parse_state("To");
    /* Pending In is not shown in a roster item. */
    g_assert_true(roster_state_visible_equal(&a, &b));
    b.ask = TRUE;
    g_assert_false(roster_state_visible_equal(&a, &b));
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/roster/sm/outbound", test_outbound);
    g_test_add_func("/roster/sm/inbound", test_inbound);
    g_test_add_func("/roster/sm/names", test_names);
    return g_test_run();
}
