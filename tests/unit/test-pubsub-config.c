/* mod_pubsub's node configuration (ps-config.c): defaults, the storage
 * form round trip, submitted forms (invalid values refused, fields
 * outside pubsub# ignored), publish-options preconditions and max_items
 * "max". */
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
    g_assert_true(ps_config_apply_form(c, x, 100, &why));
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
        g_assert_false(ps_config_apply_form(c, x, 100, &why));
        g_assert_nonnull(why);
    }
    /* XEP-0357's secret is not configuration: ignored. */
    g_autoptr(PsConfig) c = ps_config_new(FALSE);
    g_autoptr(MkXml) x = form(FORM(FIELD("secret", "s3cr3t")));
    g_autofree char *why = NULL;
    g_assert_true(ps_config_apply_form(c, x, 100, &why));
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
    return g_test_run();
}
