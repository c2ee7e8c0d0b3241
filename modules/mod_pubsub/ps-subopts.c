/* Subscription options (XEP-0060 section 6.3, the subscribe_options form
 * of section 16.4.3): what this service does with them.
 *
 * pubsub#deliver switches a subscription's notifications off and on,
 * pubsub#expire makes it a lease that ends at a time (section 12.18),
 * and pubsub#show-values sends only while the subscriber's presence has
 * one of the listed shows. The other fields of the registry have no
 * meaning here and are refused when asked for anything but their
 * default: digests (pubsub#digest) would need a timer and a store per
 * subscription, a message body (pubsub#include_body) an XSLT of the node
 * (pubsub#body_xslt) that nodes do not have, and subscription_type
 * "nodes" and subscription_depth "all" collection nodes (XEP-0248).
 * Pure: any thread. */
#include "pubsub.h"

#include <string.h>

static const struct {
    const char *name;
    guint bit;
} shows[] = {
    {"online", PS_SHOW_ONLINE}, {"chat", PS_SHOW_CHAT}, {"away", PS_SHOW_AWAY},
    {"xa", PS_SHOW_XA},         {"dnd", PS_SHOW_DND},
};

void ps_subopts_init(PsSubOpts *o)
{
    o->deliver = TRUE;
    o->expire = 0;
    o->show = 0;
}

guint ps_show_bit(const char *show)
{
    if (!show || !*show)
        return PS_SHOW_ONLINE;
    for (guint i = 0; i < G_N_ELEMENTS(shows); i++)
        if (g_str_equal(shows[i].name, show))
            return shows[i].bit;
    return PS_SHOW_ONLINE; /* RFC 6121 4.7.2.1: an unknown show is plain available */
}

gboolean ps_subopts_expired(const PsSubOpts *o, gint64 now_ms)
{
    return o->expire > 0 && o->expire <= now_ms;
}

/* "a,b" of @mask's show names. (transfer full) */
static char *show_list(guint mask)
{
    GString *s = g_string_new(NULL);
    for (guint i = 0; i < G_N_ELEMENTS(shows); i++)
        if (mask & shows[i].bit)
            g_string_append_printf(s, "%s%s", s->len ? "," : "", shows[i].name);
    return g_string_free(s, FALSE);
}

char *ps_subopts_serialize(const PsSubOpts *o)
{
    GString *s = g_string_new(NULL);
    if (!o->deliver)
        g_string_append(s, "deliver=0\n");
    if (o->expire > 0)
        g_string_append_printf(s, "expire=%" G_GINT64_FORMAT "\n", o->expire);
    if (o->show) {
        g_autofree char *l = show_list(o->show);
        g_string_append_printf(s, "show=%s\n", l);
    }
    return g_string_free(s, FALSE);
}

void ps_subopts_parse(const char *text, PsSubOpts *o)
{
    ps_subopts_init(o);
    g_auto(GStrv) lines = g_strsplit(text ? text : "", "\n", -1);
    for (guint i = 0; lines[i]; i++) {
        const char *v = strchr(lines[i], '=');
        if (!v)
            continue;
        v++;
        if (g_str_has_prefix(lines[i], "deliver="))
            o->deliver = g_str_equal(v, "1");
        else if (g_str_has_prefix(lines[i], "expire="))
            o->expire = g_ascii_strtoll(v, NULL, 10);
        else if (g_str_has_prefix(lines[i], "show=")) {
            g_auto(GStrv) names = g_strsplit(v, ",", -1);
            for (guint k = 0; names[k]; k++)
                o->show |= *names[k] ? ps_show_bit(names[k]) : 0;
        }
    }
}

static gboolean parse_bool(const char *v, gboolean *out)
{
    if (g_strcmp0(v, "1") == 0 || g_strcmp0(v, "true") == 0)
        *out = TRUE;
    else if (g_strcmp0(v, "0") == 0 || g_strcmp0(v, "false") == 0)
        *out = FALSE;
    else
        return FALSE;
    return TRUE;
}

/* XEP-0082 DateTime to unix ms; FALSE when it is none. */
static gboolean parse_datetime(const char *v, gint64 *out)
{
    g_autoptr(GDateTime) dt = mk_xep82_parse(v);
    if (!dt)
        return FALSE;
    *out = g_date_time_to_unix(dt) * 1000 + g_date_time_get_microsecond(dt) / 1000;
    return TRUE;
}

/* One field; FALSE when unknown or its value is not supported. */
static gboolean set_field(PsSubOpts *o, const char *var, MkXml *field)
{
    MkXml *first = mk_xml_child(field, "value", NULL);
    g_autofree char *v = first ? mk_xml_text(first) : NULL;
    gboolean b = FALSE;
    if (g_str_equal(var, "pubsub#deliver"))
        return parse_bool(v, &o->deliver);
    if (g_str_equal(var, "pubsub#expire")) {
        /* An empty value ends the lease: the subscription stays. */
        if (!v || !*v) {
            o->expire = 0;
            return TRUE;
        }
        return parse_datetime(v, &o->expire);
    }
    if (g_str_equal(var, "pubsub#show-values")) {
        guint mask = 0;
        for (guint i = 0; i < mk_xml_child_count(field); i++) {
            MkXml *c = mk_xml_child_at(field, i);
            if (mk_xml_is_text(c) || !g_str_equal(mk_xml_name(c), "value"))
                continue;
            g_autofree char *name = mk_xml_text(c);
            guint bit = 0;
            for (guint k = 0; k < G_N_ELEMENTS(shows); k++)
                if (g_str_equal(shows[k].name, name))
                    bit = shows[k].bit;
            if (!bit)
                return FALSE;
            mask |= bit;
        }
        /* No value at all: every show, as without the field. */
        o->show = mask;
        return TRUE;
    }
    /* The registry's other fields, accepted only at their defaults. */
    if (g_str_equal(var, "pubsub#digest") || g_str_equal(var, "pubsub#include_body"))
        return parse_bool(v, &b) && !b;
    if (g_str_equal(var, "pubsub#digest_frequency"))
        return TRUE; /* meaningless without digests */
    if (g_str_equal(var, "pubsub#subscription_type"))
        return g_strcmp0(v, "items") == 0;
    if (g_str_equal(var, "pubsub#subscription_depth"))
        return g_strcmp0(v, "1") == 0;
    return FALSE;
}

gboolean ps_subopts_apply_form(PsSubOpts *o, MkXml *form, char **why)
{
    g_autofree char *ft = ps_form_value(form, "FORM_TYPE");
    if (ft && !g_str_equal(ft, NS_PUBSUB_SUBOPT)) {
        *why = g_strdup("not a subscribe_options form");
        return FALSE;
    }
    PsSubOpts next = *o;
    for (guint i = 0; i < mk_xml_child_count(form); i++) {
        MkXml *f = mk_xml_child_at(form, i);
        if (mk_xml_is_text(f) || !g_str_equal(mk_xml_name(f), "field"))
            continue;
        const char *var = mk_xml_get_attr(f, "var");
        if (!var || g_str_equal(var, "FORM_TYPE"))
            continue;
        if (!set_field(&next, var, f)) {
            *why = g_strdup_printf("%s: unknown field or unsupported value", var);
            return FALSE;
        }
    }
    *o = next;
    return TRUE;
}

static MkXml *add_field(MkXml *x, const char *var, const char *type, const char *label)
{
    MkXml *f = mk_xml_add_child(x, "field", NULL);
    mk_xml_set_attr(f, "var", var);
    mk_xml_set_attr(f, "type", type);
    if (label)
        mk_xml_set_attr(f, "label", label);
    return f;
}

static void add_value(MkXml *f, const char *v)
{
    mk_xml_add_text(mk_xml_add_child(f, "value", NULL), v, -1);
}

MkXml *ps_subopts_form(const PsSubOpts *o)
{
    MkXml *x = mk_xml_new("x", NS_XDATA);
    mk_xml_set_attr(x, "type", "form");
    add_value(add_field(x, "FORM_TYPE", "hidden", NULL), NS_PUBSUB_SUBOPT);
    add_value(add_field(x, "pubsub#deliver", "boolean", "Enable delivery?"),
              o->deliver ? "1" : "0");
    MkXml *f = add_field(x, "pubsub#expire", "text-single", "Requested lease end (UTC)");
    if (o->expire > 0) {
        g_autoptr(GDateTime) dt = g_date_time_new_from_unix_utc(o->expire / 1000);
        g_autofree char *s = dt ? g_date_time_format(dt, "%Y-%m-%dT%H:%M:%SZ") : NULL;
        if (s)
            add_value(f, s);
    }
    f = add_field(x, "pubsub#show-values", "list-multi",
                  "Receive notifications only when your presence is one of");
    for (guint i = 0; i < G_N_ELEMENTS(shows); i++)
        if (o->show & shows[i].bit)
            add_value(f, shows[i].name);
    for (guint i = 0; i < G_N_ELEMENTS(shows); i++)
        add_value(mk_xml_add_child(f, "option", NULL), shows[i].name);
    return x;
}
