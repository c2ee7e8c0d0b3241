/* mod_mam's pure parts: archive IDs and query parsing (every bad input
 * gets bad-request naming what is wrong). */
#include "mam.h"

static void test_id_order(void)
{
    MamIdGen gen;
    mam_id_gen_init(&gen, 7);
    guint64 a = mam_id_next(&gen, 1000);
    guint64 b = mam_id_next(&gen, 1000); /* same microsecond */
    guint64 c = mam_id_next(&gen, 900);  /* the clock stepped back */
    guint64 d = mam_id_next(&gen, 5000);
    g_assert_cmpuint(a, <, b);
    g_assert_cmpuint(b, <, c);
    g_assert_cmpuint(c, <, d);
    g_assert_cmpuint(a & 0xff, ==, 7);
    g_assert_cmpuint(c & 0xff, ==, 7);
    g_assert_cmpint(mam_id_time_us(a), ==, 1000);
    g_assert_cmpint(mam_id_time_us(d), ==, 5000);
    /* Any node's ID of a later microsecond sorts after the time bound. */
    g_assert_cmpuint(mam_id_for_time(5000), <=, d);
    g_assert_cmpuint(mam_id_for_time(5001), >, d);
}

static gpointer next_many(gpointer data)
{
    MamIdGen *gen = data;
    guint64 *ids = g_new(guint64, 10000);
    for (int i = 0; i < 10000; i++)
        ids[i] = mam_id_next(gen, 42); /* one frozen instant: worst case */
    return ids;
}

static gint cmp_u64(gconstpointer a, gconstpointer b)
{
    guint64 x = *(const guint64 *)a, y = *(const guint64 *)b;
    return x < y ? -1 : x > y;
}

static void test_id_threads(void)
{
    MamIdGen gen;
    mam_id_gen_init(&gen, 1);
    GThread *t1 = g_thread_new("ids", next_many, &gen);
    GThread *t2 = g_thread_new("ids", next_many, &gen);
    g_autofree guint64 *a = g_thread_join(t1);
    g_autofree guint64 *b = g_thread_join(t2);
    g_autofree guint64 *all = g_new(guint64, 20000);
    memcpy(all, a, 10000 * sizeof *all);
    memcpy(all + 10000, b, 10000 * sizeof *all);
    qsort(all, 20000, sizeof *all, (int (*)(const void *, const void *))cmp_u64);
    for (int i = 1; i < 20000; i++)
        g_assert_cmpuint(all[i - 1], <, all[i]);
    for (int i = 1; i < 10000; i++)
        g_assert_cmpuint(a[i - 1], <, a[i]);
}

static void test_id_text(void)
{
    char text[MAM_ID_TEXT_LEN + 1];
    guint64 samples[] = {0, 1, 255, G_GUINT64_CONSTANT(0x18a2b3c4d5e6f701), G_MAXUINT64};
    char prev[MAM_ID_TEXT_LEN + 1] = "";
    for (guint i = 0; i < G_N_ELEMENTS(samples); i++) {
        guint64 back = 1;
        mam_id_format(samples[i], text);
        g_assert_cmpuint(strlen(text), ==, MAM_ID_TEXT_LEN);
        g_assert_true(mam_id_parse(text, &back));
        g_assert_cmpuint(back, ==, samples[i]);
        g_assert_cmpstr(prev, <, text); /* text order is numeric order */
        memcpy(prev, text, sizeof prev);
    }
    guint64 v;
    g_assert_false(mam_id_parse("", &v));
    g_assert_false(mam_id_parse("000000000000", &v));   /* 12 characters */
    g_assert_false(mam_id_parse("00000000000000", &v)); /* 14 */
    g_assert_false(mam_id_parse("g000000000000", &v));  /* over 64 bits */
    g_assert_false(mam_id_parse("000000000000i", &v));  /* not in the alphabet */
    g_assert_false(mam_id_parse("000000000000A", &v));  /* upper case */
    g_assert_false(mam_id_parse(NULL, &v));
}

static MamQuery *parse(const char *xml, guint limit, GError **error)
{
    g_autoptr(GError) perr = NULL;
    g_autoptr(MkXml) q = mk_xml_parse(xml, -1, &perr);
    g_assert_no_error(perr);
    return mam_query_parse(q, limit, error);
}

#define Q(body)     "<query xmlns='urn:xmpp:mam:2' queryid='f27'>" body "</query>"
#define FORM(body)  "<x xmlns='jabber:x:data' type='submit'>" body "</x>"
#define FIELD(v, x) "<field var='" v "'><value>" x "</value></field>"
#define RSM(body)   "<set xmlns='http://jabber.org/protocol/rsm'>" body "</set>"

static void test_query_full(void)
{
    char a[MAM_ID_TEXT_LEN + 1], b[MAM_ID_TEXT_LEN + 1];
    mam_id_format(1000 << 8, a);
    mam_id_format(2000 << 8, b);
    g_autofree char *xml = g_strdup_printf(
        Q(FORM(FIELD("FORM_TYPE", "urn:xmpp:mam:2") FIELD("with", "juliet@capulet.lit")
                   FIELD("start", "2010-06-07T00:00:00Z") FIELD("end", "2010-07-07T13:23:54+02:00")
                       FIELD("after-id", "%s") FIELD("before-id", "%s"))
              RSM("<max>10</max><after>%s</after>") "<flip-page/>"),
        a, b, a);
    g_autoptr(GError) error = NULL;
    g_autoptr(MamQuery) q = parse(xml, 50, &error);
    g_assert_no_error(error);
    g_assert_cmpstr(q->query_id, ==, "f27");
    g_assert_cmpstr(mk_jid_string(q->with), ==, "juliet@capulet.lit");
    g_assert_cmpint(q->start_us, ==, G_GINT64_CONSTANT(1275868800) * G_USEC_PER_SEC);
    g_assert_cmpint(q->end_us, ==, G_GINT64_CONSTANT(1278501834) * G_USEC_PER_SEC);
    g_assert_true(q->has_after_id && q->has_before_id);
    g_assert_cmpuint(q->after_id, ==, 1000 << 8);
    g_assert_cmpuint(q->before_id, ==, 2000 << 8);
    g_assert_cmpuint(q->max, ==, 10);
    g_assert_true(q->has_rsm_after && !q->has_rsm_before && !q->from_end);
    g_assert_true(q->flip);
}

static void test_query_defaults(void)
{
    g_autoptr(GError) error = NULL;
    g_autoptr(MamQuery) q = parse("<query xmlns='urn:xmpp:mam:2'/>", 50, &error);
    g_assert_no_error(error);
    g_assert_null(q->query_id);
    g_assert_null(q->with);
    g_assert_null(q->ids);
    g_assert_cmpint(q->start_us, ==, G_MININT64);
    g_assert_cmpint(q->end_us, ==, G_MAXINT64);
    g_assert_cmpuint(q->max, ==, 50);
    g_assert_false(q->from_end || q->flip || q->has_index);
}

static void test_query_rsm(void)
{
    g_autoptr(GError) error = NULL;
    /* Over the limit: cut to it. An empty <before/> is the last page. */
    g_autoptr(MamQuery) q = parse(Q(RSM("<max>500</max><before/>")), 50, &error);
    g_assert_no_error(error);
    g_assert_cmpuint(q->max, ==, 50);
    g_assert_true(q->from_end);
    g_assert_false(q->has_rsm_before);
    g_autoptr(MamQuery) q2 = parse(Q(RSM("<max>0</max><index>20</index>")), 50, &error);
    g_assert_no_error(error);
    g_assert_cmpuint(q2->max, ==, 0);
    g_assert_true(q2->has_index);
    g_assert_cmpuint(q2->index, ==, 20);
}

static void test_query_ids(void)
{
    char a[MAM_ID_TEXT_LEN + 1], b[MAM_ID_TEXT_LEN + 1];
    mam_id_format(77, a);
    mam_id_format(99, b);
    g_autofree char *xml = g_strdup_printf(
        Q(FORM("<field var='ids'><value>%s</value><value>%s</value></field>")), a, b);
    g_autoptr(GError) error = NULL;
    g_autoptr(MamQuery) q = parse(xml, 50, &error);
    g_assert_no_error(error);
    g_assert_cmpuint(q->ids->len, ==, 2);
    g_assert_cmpuint(g_array_index(q->ids, guint64, 0), ==, 77);
    g_assert_cmpuint(g_array_index(q->ids, guint64, 1), ==, 99);
}

/* Each bad request names what is wrong in its message. */
static void test_query_bad(void)
{
    static const struct {
        const char *xml, *names;
    } cases[] = {
        {Q(FORM(FIELD("FORM_TYPE", "urn:xmpp:mam:1"))), "FORM_TYPE"},
        {Q(FORM(FIELD("with", "@@bad@@"))), "'with'"},
        {Q(FORM(FIELD("start", "yesterday"))), "'start'"},
        {Q(FORM(FIELD("end", "2010-07-07T13:23:54"))), "'end'"}, /* no zone */
        {Q(FORM(FIELD("after-id", "28482-98726-73623"))), "'after-id'"},
        {Q(FORM(FIELD("before-id", ""))), "'before-id'"},
        {Q(FORM(FIELD("ids", "nope"))), "'ids'"},
        {Q(FORM(FIELD("colour", "red"))), "'colour'"},
        {Q(FORM("<field var='with'/>")), "'with'"},
        {Q(FORM("<field><value>x</value></field>")), "var"},
        {Q("<x xmlns='jabber:x:data' type='form'/>"), "'form'"},
        {Q(FORM(FIELD("start", "2011-01-01T00:00:00Z") FIELD("end", "2010-01-01T00:00:00Z"))),
         "'start'"},
        {Q(RSM("<max>-1</max>")), "<max/>"},
        {Q(RSM("<max>ten</max>")), "<max/>"},
        {Q(RSM("<after>x</after>")), "<after/>"},
        {Q(RSM("<before>x</before>")), "<before/>"},
        {Q(RSM("<after>0000000000001</after><before>0000000000002</before>")), "<after/>"},
        {Q(RSM("<index>1</index><before/>")), "<index/>"},
        {Q(RSM("<index>-4</index>")), "<index/>"},
        {Q("<bogus/>"), "<bogus/>"},
    };
    for (guint i = 0; i < G_N_ELEMENTS(cases); i++) {
        g_autoptr(GError) error = NULL;
        g_autoptr(MamQuery) q = parse(cases[i].xml, 50, &error);
        g_assert_null(q);
        g_assert_error(error, MAM_QUERY_ERROR, MAM_QUERY_ERROR_BAD_REQUEST);
        if (!strstr(error->message, cases[i].names))
            g_error("case %u: '%s' does not name %s", i, error->message, cases[i].names);
    }
}

static MamPrefs *prefs(const char *xml, GError **error)
{
    g_autoptr(GError) perr = NULL;
    g_autoptr(MkXml) el = mk_xml_parse(xml, -1, &perr);
    g_assert_no_error(perr);
    return mam_prefs_parse(el, error);
}

/* The lists decide before the default; never wins over always; a
 * repeated JID counts once; stored text reads back the same. */
static void test_prefs_lists(void)
{
    g_autoptr(GError) error = NULL;
    g_autoptr(MamPrefs) p =
        prefs("<prefs xmlns='urn:xmpp:mam:2' default='roster'>"
              "<always><jid>a@x</jid><jid>b@x/r</jid><jid>a@x</jid><jid>c@x</jid></always>"
              "<never><jid>c@x</jid><jid>d@x</jid></never></prefs>",
              &error);
    g_assert_no_error(error);
    g_assert_cmpuint(p->always->len, ==, 2); /* a, b (bare); c went to never */
    g_assert_true(mam_prefs_archives(p, "a@x"));
    g_assert_true(mam_prefs_archives(p, "b@x"));
    g_assert_false(mam_prefs_archives(p, "c@x"));
    g_assert_false(mam_prefs_archives(p, "d@x"));
    g_assert_false(mam_prefs_archives(p, "e@x")); /* roster mode, no contacts */
    g_autofree char *always = mam_prefs_join(p->always);
    g_autofree char *never = mam_prefs_join(p->never);
    g_autoptr(MamPrefs) back = mam_prefs_new("always", always, never);
    g_assert_true(mam_prefs_archives(back, "e@x"));
    g_assert_false(mam_prefs_archives(back, "d@x"));
    g_assert_true(mam_prefs_archives(back, "b@x"));
    g_assert_true(mam_prefs_archives(NULL, "e@x")); /* nothing stored: always */
}

/* A full list of MAM_PREFS_MAX_JIDS is accepted; one more is bad-request. */
static void test_prefs_limit(void)
{
    g_autoptr(GString) xml = g_string_new("<prefs xmlns='urn:xmpp:mam:2' default='never'><always>");
    for (guint i = 0; i < MAM_PREFS_MAX_JIDS; i++)
        g_string_append_printf(xml, "<jid>u%u@x</jid>", i);
    g_autoptr(GString) over = g_string_new(xml->str);
    g_string_append(xml, "</always></prefs>");
    g_string_append(over, "<jid>one-more@x</jid></always></prefs>");
    g_autoptr(GError) error = NULL;
    g_autoptr(MamPrefs) p = prefs(xml->str, &error);
    g_assert_no_error(error);
    g_assert_true(mam_prefs_archives(p, "u999@x"));
    g_assert_false(mam_prefs_archives(p, "u1000@x"));
    g_autoptr(MamPrefs) q = prefs(over->str, &error);
    g_assert_null(q);
    g_assert_error(error, MAM_QUERY_ERROR, MAM_QUERY_ERROR_BAD_REQUEST);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/mam/id/order", test_id_order);
    g_test_add_func("/mam/id/threads", test_id_threads);
    g_test_add_func("/mam/id/text", test_id_text);
    g_test_add_func("/mam/query/full", test_query_full);
    g_test_add_func("/mam/query/defaults", test_query_defaults);
    g_test_add_func("/mam/query/rsm", test_query_rsm);
    g_test_add_func("/mam/query/ids", test_query_ids);
    g_test_add_func("/mam/query/bad", test_query_bad);
    g_test_add_func("/mam/prefs/lists", test_prefs_lists);
    g_test_add_func("/mam/prefs/limit", test_prefs_limit);
    return g_test_run();
}
