/* mod_muc's pure part: a room's configuration as stored text and as the
 * muc#roomconfig form (every bad value refused, naming the field, and
 * nothing half-applied by the caller's copy). */
#include "muc.h"

static MucConfig sample(void)
{
    MucConfig c = {0};
    c.title = g_strdup("Tea & \"biscuits\"\nroom");
    c.description = g_strdup("");
    c.password = g_strdup("s3;cret=");
    c.persistent = TRUE;
    c.members_only = TRUE;
    c.non_anonymous = TRUE;
    c.logging = TRUE;
    c.allow_pm = TRUE;
    c.max_users = 42;
    c.history_length = 7;
    return c;
}

static void test_text_round_trip(void)
{
    MucConfig c = sample();
    g_autofree char *text = muc_config_to_string(&c);
    MucConfig back = {0};
    muc_config_from_string(&back, text);
    g_assert_cmpstr(back.title, ==, c.title);
    g_assert_cmpstr(back.password, ==, c.password);
    g_assert_true(back.persistent && back.members_only && back.non_anonymous && back.logging);
    g_assert_false(back.public_room || back.moderated || back.password_protected);
    g_assert_cmpint(back.max_users, ==, 42);
    g_assert_cmpint(back.history_length, ==, 7);
    /* Garbage and missing keys leave the defaults. */
    MucConfig d = {0};
    d.max_users = 9;
    muc_config_from_string(&d, "not a key file [");
    g_assert_cmpint(d.max_users, ==, 9);
    muc_config_from_string(&d, "[room]\nmax_users=x\n");
    g_assert_cmpint(d.max_users, ==, 9);
    muc_config_clear(&c);
    muc_config_clear(&back);
    muc_config_clear(&d);
}

static MkXml *form(const char *fields)
{
    g_autofree char *text =
        g_strdup_printf("<x xmlns='jabber:x:data' type='submit'>%s</x>", fields);
    MkXml *x = mk_xml_parse(text, -1, NULL);
    g_assert_nonnull(x);
    return x;
}

static void test_form(void)
{
    MucConfig c = sample();
    g_autoptr(MkXml) x = muc_config_form(&c);
    guint fields = 0;
    for (guint i = 0; i < mk_xml_child_count(x); i++)
        fields += mk_xml_is(mk_xml_child_at(x, i), "field", NULL);
    g_assert_cmpuint(fields, ==, 16);
    g_autofree char *s = mk_xml_to_string(x, NULL);
    g_assert_nonnull(strstr(s, "muc#roomconfig_whois"));
    g_assert_nonnull(strstr(s, "<value>anyone</value>"));

    g_autoptr(MkXml) ok = form("<field var='muc#roomconfig_maxusers'><value>10</value></field>"
                               "<field var='muc#roomconfig_whois'><value>moderators</value></field>"
                               "<field var='muc#roomconfig_publicroom'><value>true</value></field>"
                               "<field var='x-unknown'><value>?</value></field>");
    const char *why = NULL;
    g_assert_true(muc_config_apply_form(&c, ok, 100, 50, &why));
    g_assert_cmpint(c.max_users, ==, 10);
    g_assert_false(c.non_anonymous);
    g_assert_true(c.public_room);
    muc_config_clear(&c);
}

static void test_form_bad(void)
{
    const char *bad[][2] = {
        {"<field var='muc#roomconfig_maxusers'><value>101</value></field>",
         "muc#roomconfig_maxusers"},
        {"<field var='muc#roomconfig_maxusers'><value>0</value></field>",
         "muc#roomconfig_maxusers"},
        {"<field var='muc#maxhistoryfetch'><value>51</value></field>", "muc#maxhistoryfetch"},
        {"<field var='muc#roomconfig_persistentroom'><value>yes</value></field>",
         "muc#roomconfig_persistentroom"},
        {"<field var='muc#roomconfig_whois'><value>nobody</value></field>", "muc#roomconfig_whois"},
        {"<field var='muc#roomconfig_passwordprotectedroom'><value>1</value></field>"
         "<field var='muc#roomconfig_roomsecret'/>",
         "muc#roomconfig_roomsecret"},
    };
    for (guint i = 0; i < G_N_ELEMENTS(bad); i++) {
        MucConfig c = {0};
        c.max_users = 5;
        g_autoptr(MkXml) x = form(bad[i][0]);
        const char *why = NULL;
        g_assert_false(muc_config_apply_form(&c, x, 100, 50, &why));
        g_assert_cmpstr(why, ==, bad[i][1]);
        muc_config_clear(&c);
    }
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/muc/config/text", test_text_round_trip);
    g_test_add_func("/muc/config/form", test_form);
    g_test_add_func("/muc/config/form-bad", test_form_bad);
    return g_test_run();
}
