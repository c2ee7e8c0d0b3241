/* mod_pubsub's node configuration (ps-config.c): defaults, the storage
 * form round trip, submitted forms (invalid values refused, fields
 * outside pubsub# ignored, collections told apart), publish-options
 * preconditions and max_items "max"; and subscription options
 * (ps-subopts.c): the form, storage, leases and show-values. */
#include "pubsub.h"

static MkXml *form(const char *xml)
{
    g_autoptr(GError) error = NULL;
    MkXml *x = mk_xml_parse(xml, -1, &error);
    g_assert_no_error(error);
    return x;
}

#define FIELD(var, value) "<field var='" var "'><value>" value "</value></field>"
#define FORM(fields)                                                                               \
    "<x xmlns='jabber:x:data' type='submit'>" FIELD("FORM_TYPE", NS_PUBSUB_CONFIG) fields "</x>"

static void test_defaults(void)
{
    g_autoptr(PsConfig) pep = ps_config_new(TRUE);
    g_autoptr(PsConfig) svc = ps_config_new(FALSE);
    g_assert_cmpint(pep->access, ==, PS_ACCESS_PRESENCE);
    g_assert_cmpint(svc->access, ==, PS_ACCESS_OPEN);
    g_assert_cmpint(pep->max_items, ==, 1);
    g_assert_cmpint(pep->send_last, ==, PS_SEND_ON_SUB_AND_PRESENCE);
}

static void test_round_trip(void)
{
    g_autoptr(PsConfig) c = ps_config_new(FALSE);
    g_autoptr(MkXml) x = form(FORM(
        FIELD("pubsub#access_model", "roster") FIELD("pubsub#max_items", "max")
            FIELD("pubsub#title", "a\nb=c") "<field var='pubsub#roster_groups_allowed'>"
                                            "<value>Friends</value><value>Work</value></field>"));
    g_autofree char *why = NULL;
    gboolean coll = TRUE;
    g_assert_true(ps_config_apply_form(c, x, 100, &why, &coll));
    g_assert_false(coll);
    g_autofree char *text = ps_config_serialize(c);
    g_autoptr(PsConfig) back = ps_config_parse(text, FALSE);
    g_autofree char *again = ps_config_serialize(back);
    g_assert_cmpstr(text, ==, again);
    g_assert_cmpint(back->access, ==, PS_ACCESS_ROSTER);
    g_assert_cmpint(back->max_items, ==, PS_MAX_ITEMS_MAX);
    g_assert_cmpint(ps_config_item_limit(back, 100), ==, 100);
    g_assert_cmpstr(back->title, ==, "a\nb=c");
    g_assert_cmpuint(g_strv_length(back->roster_groups), ==, 2);
}

static void test_invalid(void)
{
    const char *bad[] = {
        FORM(FIELD("pubsub#access_model", "everyone")),
        FORM(FIELD("pubsub#max_items", "-1")),
        FORM(FIELD("pubsub#max_items", "101")),
        FORM(FIELD("pubsub#deliver_payloads", "yes")),
        FORM(FIELD("pubsub#no_such_field", "1")),
    };
    for (guint i = 0; i < G_N_ELEMENTS(bad); i++) {
        g_autoptr(PsConfig) c = ps_config_new(FALSE);
        g_autoptr(MkXml) x = form(bad[i]);
        g_autofree char *why = NULL;
        gboolean coll = TRUE;
        g_assert_false(ps_config_apply_form(c, x, 100, &why, &coll));
        g_assert_nonnull(why);
        g_assert_false(coll);
    }
    /* XEP-0357's secret is not configuration: ignored. */
    g_autoptr(PsConfig) c = ps_config_new(FALSE);
    g_autoptr(MkXml) x = form(FORM(FIELD("secret", "s3cr3t") FIELD("pubsub#node_type", "leaf")
                                       FIELD("pubsub#collection", "")));
    g_autofree char *why = NULL;
    gboolean coll = TRUE;
    g_assert_true(ps_config_apply_form(c, x, 100, &why, &coll));
    g_assert_false(coll);
}

/* XEP-0248: asking for a collection, or a parent, is told apart. */
static void test_collections(void)
{
    const char *want[] = {
        FORM(FIELD("pubsub#node_type", "collection")),
        FORM(FIELD("pubsub#collection", "parent")),
        FORM(FIELD("pubsub#children", "child")),
    };
    for (guint i = 0; i < G_N_ELEMENTS(want); i++) {
        g_autoptr(PsConfig) c = ps_config_new(FALSE);
        g_autoptr(MkXml) x = form(want[i]);
        g_autofree char *why = NULL;
        gboolean coll = FALSE;
        g_assert_false(ps_config_apply_form(c, x, 100, &why, &coll));
        g_assert_true(coll);
    }
}

#define SUBFORM(fields)                                                                            \
    "<x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE'><value>"                        \
    "http://jabber.org/protocol/pubsub#subscribe_options</value></field>" fields "</x>"

static void test_subopts(void)
{
    PsSubOpts o;
    ps_subopts_init(&o);
    g_autofree char *empty = ps_subopts_serialize(&o);
    g_assert_cmpstr(empty, ==, "");
    g_autoptr(MkXml) x = form(SUBFORM(FIELD("pubsub#deliver", "false") FIELD(
        "pubsub#expire",
        "2030-01-02T03:04:05Z") "<field "
                                "var='pubsub#show-values'><value>away</value><value>dnd</value>"
                                "</field>" FIELD("pubsub#digest", "0")));
    g_autofree char *why = NULL;
    g_assert_true(ps_subopts_apply_form(&o, x, &why));
    g_assert_false(o.deliver);
    g_assert_cmpint(o.expire, ==, G_GINT64_CONSTANT(1893553445000));
    g_assert_cmpuint(o.show, ==, PS_SHOW_AWAY | PS_SHOW_DND);
    g_autofree char *text = ps_subopts_serialize(&o);
    PsSubOpts back;
    ps_subopts_parse(text, &back);
    g_assert_true(back.deliver == o.deliver && back.expire == o.expire && back.show == o.show);
    g_assert_true(ps_subopts_expired(&o, G_GINT64_CONSTANT(1893553445000)));
    g_assert_false(ps_subopts_expired(&o, G_GINT64_CONSTANT(1893553444999)));
    g_assert_cmpuint(ps_show_bit(NULL), ==, PS_SHOW_ONLINE);
    g_assert_cmpuint(ps_show_bit("xa"), ==, PS_SHOW_XA);
    const char *bad[] = {
        SUBFORM(FIELD("pubsub#digest", "1")),
        SUBFORM(FIELD("pubsub#include_body", "true")),
        SUBFORM(FIELD("pubsub#subscription_type", "nodes")),
        SUBFORM(FIELD("pubsub#subscription_depth", "all")),
        SUBFORM(FIELD("pubsub#expire", "tomorrow")),
        SUBFORM(FIELD("pubsub#show-values", "sleeping")),
        SUBFORM(FIELD("pubsub#deliver", "maybe")),
        SUBFORM(FIELD("pubsub#no_such_option", "1")),
    };
    for (guint i = 0; i < G_N_ELEMENTS(bad); i++) {
        PsSubOpts t = o;
        g_autoptr(MkXml) y = form(bad[i]);
        g_autofree char *w = NULL;
        g_assert_false(ps_subopts_apply_form(&t, y, &w));
        g_assert_nonnull(w);
        /* nothing half applied */
        g_assert_true(t.deliver == o.deliver && t.expire == o.expire && t.show == o.show);
    }
}

static void test_preconditions(void)
{
    g_autoptr(PsConfig) c = ps_config_new(TRUE);
    c->access = PS_ACCESS_WHITELIST;
    c->max_items = PS_MAX_ITEMS_MAX;
    g_autoptr(MkXml) same = form(FORM(FIELD("pubsub#access_model", "whitelist")
                                          FIELD("pubsub#max_items", "max") FIELD("secret", "x")));
    g_autoptr(MkXml) other = form(FORM(FIELD("pubsub#access_model", "presence")));
    g_autoptr(MkXml) bool_form = form(FORM(FIELD("pubsub#persist_items", "true")));
    g_assert_true(ps_config_matches(c, same));
    g_assert_false(ps_config_matches(c, other));
    g_assert_true(ps_config_matches(c, bool_form)); /* "true" equals the stored 1 */
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/pubsub/config/defaults", test_defaults);
    g_test_add_func("/pubsub/config/round-trip", test_round_trip);
    g_test_add_func("/pubsub/config/invalid", test_invalid);
    g_test_add_func("/pubsub/config/preconditions", test_preconditions);
    g_test_add_func("/pubsub/config/collections", test_collections);
    g_test_add_func("/pubsub/subopts", test_subopts);
    return g_test_run();
}
