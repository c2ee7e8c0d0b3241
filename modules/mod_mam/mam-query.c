/* Parsing an archive query (XEP-0313 section 4): the data form and the
 * result set management (XEP-0059) part. Pure: it checks the request's
 * shape; whether the IDs it names exist is the lookup's business. */
#include "mam.h"

G_DEFINE_QUARK(mam - query - error - quark, mam_query_error)

#define NS_DATA "jabber:x:data"
#define NS_RSM  "http://jabber.org/protocol/rsm"

/* Sets bad-request with a message naming the field; evaluates to FALSE. */
#define BAD(error, ...)                                                                            \
    (g_set_error((error), MAM_QUERY_ERROR, MAM_QUERY_ERROR_BAD_REQUEST, __VA_ARGS__), FALSE)

/* An XEP-0082 date-time with a time zone, in microseconds. */
static gboolean parse_stamp(const char *text, gint64 *out_us)
{
    g_autoptr(GDateTime) dt = mk_xep82_parse(text);
    if (!dt)
        return FALSE;
    *out_us = g_date_time_to_unix(dt) * G_USEC_PER_SEC + g_date_time_get_microsecond(dt);
    return TRUE;
}

static gboolean parse_uint(const char *text, guint max, guint *out)
{
    guint64 v;
    if (!text || !g_ascii_string_to_unsigned(g_strstrip((char *)text), 10, 0, max, &v, NULL))
        return FALSE;
    *out = (guint)v;
    return TRUE;
}

/* The <value/> texts of a form field. Returns: (transfer full). */
static GPtrArray *field_values(MkXml *field)
{
    GPtrArray *values = g_ptr_array_new_with_free_func(g_free);
    for (guint i = 0; i < mk_xml_child_count(field); i++) {
        MkXml *v = mk_xml_child_at(field, i);
        if (!mk_xml_is_text(v) && mk_xml_is(v, "value", NS_DATA))
            g_ptr_array_add(values, mk_xml_text(v));
    }
    return values;
}

/* One field of the form into @q. */
static gboolean parse_field(MamQuery *q, const char *var, GPtrArray *values, GError **error)
{
    const char *one = values->len == 1 ? values->pdata[0] : NULL;

    if (g_str_equal(var, "FORM_TYPE")) {
        if (g_strcmp0(one, NS_MAM) != 0)
            return BAD(error, "the form's FORM_TYPE is not %s", NS_MAM);
        return TRUE;
    }
    if (g_str_equal(var, "ids")) {
        if (values->len == 0 || values->len > MAM_MAX_IDS)
            return BAD(error, "field '%s' needs 1 to " G_STRINGIFY(MAM_MAX_IDS) " values", var);
        q->ids = g_array_sized_new(FALSE, FALSE, sizeof(guint64), values->len);
        for (guint i = 0; i < values->len; i++) {
            guint64 id;
            if (!mam_id_parse(values->pdata[i], &id))
                return BAD(error, "field '%s' has a value that is no archive ID", var);
            g_array_append_val(q->ids, id);
        }
        return TRUE;
    }
    /* Every other field takes exactly one value. */
    if (!one)
        return BAD(error, "field '%s' needs exactly one value", var);
    if (g_str_equal(var, "with")) {
        q->with = mk_jid_new(one, NULL);
        if (!q->with)
            return BAD(error, "field '%s' is not a JID", var);
    } else if (g_str_equal(var, "start")) {
        if (!parse_stamp(one, &q->start_us))
            return BAD(error, "field '%s' is not an XEP-0082 date-time", var);
    } else if (g_str_equal(var, "end")) {
        if (!parse_stamp(one, &q->end_us))
            return BAD(error, "field '%s' is not an XEP-0082 date-time", var);
    } else if (g_str_equal(var, "after-id")) {
        if (!mam_id_parse(one, &q->after_id))
            return BAD(error, "field '%s' is not an archive ID", var);
        q->has_after_id = TRUE;
    } else if (g_str_equal(var, "before-id")) {
        if (!mam_id_parse(one, &q->before_id))
            return BAD(error, "field '%s' is not an archive ID", var);
        q->has_before_id = TRUE;
    } else {
        return BAD(error, "field '%s' is not supported", var);
    }
    return TRUE;
}

static gboolean parse_form(MamQuery *q, MkXml *x, GError **error)
{
    const char *type = mk_xml_get_attr(x, "type");
    if (g_strcmp0(type, "submit") != 0)
        return BAD(error, "the data form's type is '%s', not 'submit'", type ? type : "");
    for (guint i = 0; i < mk_xml_child_count(x); i++) {
        MkXml *field = mk_xml_child_at(x, i);
        if (mk_xml_is_text(field) || !mk_xml_is(field, "field", NS_DATA))
            continue;
        const char *var = mk_xml_get_attr(field, "var");
        if (!var)
            return BAD(error, "a form field has no %s", "var");
        g_autoptr(GPtrArray) values = field_values(field);
        if (!parse_field(q, var, values, error))
            return FALSE;
    }
    return TRUE;
}

static gboolean parse_rsm(MamQuery *q, MkXml *set, guint limit, GError **error)
{
    g_autofree char *max = mk_xml_child_text(set, "max", NS_RSM);
    if (max) {
        guint v;
        if (!parse_uint(max, G_MAXINT, &v))
            return BAD(error, "RSM %s is not a non-negative integer", "<max/>");
        q->max = MIN(v, limit);
    }
    MkXml *after = mk_xml_child(set, "after", NS_RSM);
    MkXml *before = mk_xml_child(set, "before", NS_RSM);
    if (after && before)
        return BAD(error, "RSM %s cannot both be given", "<after/> and <before/>");
    if (after) {
        g_autofree char *text = mk_xml_text(after);
        if (!mam_id_parse(g_strstrip(text), &q->rsm_after))
            return BAD(error, "RSM %s is not an archive ID", "<after/>");
        q->has_rsm_after = TRUE;
    }
    if (before) {
        g_autofree char *text = mk_xml_text(before);
        q->from_end = TRUE; /* an empty <before/> asks for the last page */
        if (*g_strstrip(text)) {
            if (!mam_id_parse(text, &q->rsm_before))
                return BAD(error, "RSM %s is not an archive ID", "<before/>");
            q->has_rsm_before = TRUE;
        }
    }
    g_autofree char *index = mk_xml_child_text(set, "index", NS_RSM);
    if (index) {
        if (after || before)
            return BAD(error, "RSM %s cannot be combined with <after/> or <before/>", "<index/>");
        if (!parse_uint(index, G_MAXINT, &q->index))
            return BAD(error, "RSM %s is not a non-negative integer", "<index/>");
        q->has_index = TRUE;
    }
    return TRUE;
}

MamQuery *mam_query_parse(MkXml *query, guint limit, GError **error)
{
    g_return_val_if_fail(query != NULL, NULL);
    g_autoptr(MamQuery) q = g_new0(MamQuery, 1);
    q->start_us = G_MININT64;
    q->end_us = G_MAXINT64;
    q->max = limit;
    q->query_id = g_strdup(mk_xml_get_attr(query, "queryid"));

    for (guint i = 0; i < mk_xml_child_count(query); i++) {
        MkXml *child = mk_xml_child_at(query, i);
        if (mk_xml_is_text(child))
            continue;
        if (mk_xml_is(child, "x", NS_DATA)) {
            if (!parse_form(q, child, error))
                return NULL;
        } else if (mk_xml_is(child, "set", NS_RSM)) {
            if (!parse_rsm(q, child, limit, error))
                return NULL;
        } else if (mk_xml_is(child, "flip-page", NS_MAM)) {
            q->flip = TRUE;
        } else {
            (void)BAD(error, "unexpected <%s/> in the query", mk_xml_name(child));
            return NULL;
        }
    }
    if (q->start_us > q->end_us) {
        (void)BAD(error, "'start' is after '%s'", "end");
        return NULL;
    }
    return g_steal_pointer(&q);
}

void mam_query_free(MamQuery *q)
{
    if (!q)
        return;
    g_free(q->query_id);
    g_clear_pointer(&q->with, mk_jid_unref);
    g_clear_pointer(&q->ids, g_array_unref);
    g_free(q);
}
