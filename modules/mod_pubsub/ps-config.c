/* Node configuration (XEP-0060 section 8.2, the pubsub#node_config form):
 * defaults, the forms a client fills, the storage form, and the
 * publish-options preconditions (section 7.1.5). Pure: any thread. */
#include "pubsub.h"

#include <stdlib.h>
#include <string.h>

static const char *const access_names[] = {"open", "presence", "roster", "whitelist", "authorize"};
static const char *const publish_names[] = {"publishers", "subscribers", "open"};
static const char *const send_names[] = {"never", "on_sub", "on_sub_and_presence"};

const char *ps_access_name(PsAccess a)
{
    return access_names[a];
}

static int lookup(const char *const *names, guint n, const char *v)
{
    for (guint i = 0; v && i < n; i++)
        if (g_str_equal(names[i], v))
            return (int)i;
    return -1;
}

PsConfig *ps_config_new(gboolean pep)
{
    PsConfig *c = g_new0(PsConfig, 1);
    /* XEP-0163 section 4.3: PEP nodes default to presence access. */
    c->access = pep ? PS_ACCESS_PRESENCE : PS_ACCESS_OPEN;
    c->publish = PS_PUBLISH_PUBLISHERS;
    c->max_items = pep ? 1 : 10;
    c->persist_items = TRUE;
    c->deliver_payloads = TRUE;
    c->deliver_notifications = TRUE;
    c->notify_retract = TRUE;
    c->notify_delete = TRUE;
    c->notify_config = FALSE;
    c->send_last = pep ? PS_SEND_ON_SUB_AND_PRESENCE : PS_SEND_ON_SUB;
    c->title = g_strdup("");
    c->type = g_strdup("");
    c->notification_type = g_strdup("headline");
    c->itemreply = g_strdup("owner");
    c->roster_groups = g_new0(char *, 1);
    return c;
}

PsConfig *ps_config_copy(const PsConfig *c)
{
    PsConfig *d = g_memdup2(c, sizeof *c);
    d->title = g_strdup(c->title);
    d->type = g_strdup(c->type);
    d->notification_type = g_strdup(c->notification_type);
    d->itemreply = g_strdup(c->itemreply);
    d->roster_groups = g_strdupv(c->roster_groups);
    return d;
}

void ps_config_free(PsConfig *c)
{
    if (!c)
        return;
    g_free(c->title);
    g_free(c->type);
    g_free(c->notification_type);
    g_free(c->itemreply);
    g_strfreev(c->roster_groups);
    g_free(c);
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

/* Sets one field from its text; FALSE when the value is invalid or the
 * field unknown. @values are all the field's values (list-multi). */
static gboolean set_field(PsConfig *c, const char *var, const char *v, char **values, gint64 limit)
{
    int i;
    if (g_str_equal(var, "pubsub#access_model")) {
        if ((i = lookup(access_names, G_N_ELEMENTS(access_names), v)) < 0)
            return FALSE;
        c->access = (PsAccess)i;
    } else if (g_str_equal(var, "pubsub#publish_model")) {
        if ((i = lookup(publish_names, G_N_ELEMENTS(publish_names), v)) < 0)
            return FALSE;
        c->publish = (PsPublish)i;
    } else if (g_str_equal(var, "pubsub#send_last_published_item")) {
        if ((i = lookup(send_names, G_N_ELEMENTS(send_names), v)) < 0)
            return FALSE;
        c->send_last = (PsSendLast)i;
    } else if (g_str_equal(var, "pubsub#max_items")) {
        if (g_strcmp0(v, "max") == 0) {
            c->max_items = PS_MAX_ITEMS_MAX;
        } else {
            char *end = NULL;
            gint64 n = v ? g_ascii_strtoll(v, &end, 10) : -1;
            if (!v || !*v || *end || n < 0 || (limit > 0 && n > limit))
                return FALSE;
            c->max_items = n;
        }
    } else if (g_str_equal(var, "pubsub#persist_items")) {
        return parse_bool(v, &c->persist_items);
    } else if (g_str_equal(var, "pubsub#deliver_payloads")) {
        return parse_bool(v, &c->deliver_payloads);
    } else if (g_str_equal(var, "pubsub#deliver_notifications")) {
        return parse_bool(v, &c->deliver_notifications);
    } else if (g_str_equal(var, "pubsub#notify_retract")) {
        return parse_bool(v, &c->notify_retract);
    } else if (g_str_equal(var, "pubsub#notify_delete")) {
        return parse_bool(v, &c->notify_delete);
    } else if (g_str_equal(var, "pubsub#notify_config")) {
        return parse_bool(v, &c->notify_config);
    } else if (g_str_equal(var, "pubsub#purge_offline")) {
        return parse_bool(v, &c->purge_offline);
    } else if (g_str_equal(var, "pubsub#title")) {
        g_free(c->title);
        c->title = g_strdup(v ? v : "");
    } else if (g_str_equal(var, "pubsub#type")) {
        g_free(c->type);
        c->type = g_strdup(v ? v : "");
    } else if (g_str_equal(var, "pubsub#notification_type")) {
        if (g_strcmp0(v, "headline") != 0 && g_strcmp0(v, "normal") != 0)
            return FALSE;
        g_free(c->notification_type);
        c->notification_type = g_strdup(v);
    } else if (g_str_equal(var, "pubsub#itemreply")) {
        if (g_strcmp0(v, "owner") != 0 && g_strcmp0(v, "publisher") != 0)
            return FALSE;
        g_free(c->itemreply);
        c->itemreply = g_strdup(v);
    } else if (g_str_equal(var, "pubsub#node_type")) {
        return g_strcmp0(v, "leaf") == 0; /* every node is one */
    } else if (g_str_equal(var, "pubsub#roster_groups_allowed")) {
        g_strfreev(c->roster_groups);
        c->roster_groups = g_strdupv(values);
    } else {
        return FALSE;
    }
    return TRUE;
}

/* The values of a <field/>. (transfer full) */
static char **field_values(MkXml *field)
{
    GPtrArray *out = g_ptr_array_new();
    for (guint i = 0; i < mk_xml_child_count(field); i++) {
        MkXml *v = mk_xml_child_at(field, i);
        if (!mk_xml_is_text(v) && g_str_equal(mk_xml_name(v), "value"))
            g_ptr_array_add(out, mk_xml_text(v));
    }
    g_ptr_array_add(out, NULL);
    return (char **)g_ptr_array_free(out, FALSE);
}

char *ps_form_value(MkXml *form, const char *var)
{
    for (guint i = 0; form && i < mk_xml_child_count(form); i++) {
        MkXml *f = mk_xml_child_at(form, i);
        if (mk_xml_is_text(f) || !g_str_equal(mk_xml_name(f), "field") ||
            g_strcmp0(mk_xml_get_attr(f, "var"), var) != 0)
            continue;
        MkXml *v = mk_xml_child(f, "value", NULL);
        return v ? mk_xml_text(v) : g_strdup("");
    }
    return NULL;
}

/* Whether @var = @v asks for a collection node or a node in one
 * (XEP-0248), which this service does not have. */
static gboolean wants_collections(const char *var, const char *v)
{
    if (g_str_equal(var, "pubsub#node_type"))
        return g_strcmp0(v, "collection") == 0;
    if (g_str_equal(var, "pubsub#collection"))
        return v && *v;
    return g_str_has_prefix(var, "pubsub#children");
}

gboolean ps_config_apply_form(PsConfig *c, MkXml *form, gint64 limit, char **why,
                              gboolean *collections)
{
    *collections = FALSE;
    if (g_strcmp0(mk_xml_get_attr(form, "type"), "cancel") == 0)
        return TRUE;
    for (guint i = 0; i < mk_xml_child_count(form); i++) {
        MkXml *f = mk_xml_child_at(form, i);
        if (mk_xml_is_text(f) || !g_str_equal(mk_xml_name(f), "field"))
            continue;
        const char *var = mk_xml_get_attr(f, "var");
        /* Fields outside pubsub# are the publisher's business with the
         * node's owner (XEP-0357's secret), not node configuration. */
        if (!var || !g_str_has_prefix(var, "pubsub#"))
            continue;
        g_auto(GStrv) values = field_values(f);
        if (wants_collections(var, values[0])) {
            *collections = TRUE;
            *why = g_strdup_printf("%s: collection nodes are not supported", var);
            return FALSE;
        }
        if (g_str_equal(var, "pubsub#collection"))
            continue; /* empty: in no collection, as every node */
        if (!set_field(c, var, values[0], values, limit)) {
            *why = g_strdup_printf("%s: unknown field or invalid value", var);
            return FALSE;
        }
    }
    return TRUE;
}

gboolean ps_config_matches(const PsConfig *c, MkXml *form)
{
    for (guint i = 0; i < mk_xml_child_count(form); i++) {
        MkXml *f = mk_xml_child_at(form, i);
        if (mk_xml_is_text(f) || !g_str_equal(mk_xml_name(f), "field"))
            continue;
        const char *var = mk_xml_get_attr(f, "var");
        if (!var || !g_str_has_prefix(var, "pubsub#"))
            continue;
        g_auto(GStrv) values = field_values(f);
        g_autoptr(PsConfig) probe = ps_config_copy(c);
        /* A precondition holds when applying it changes nothing. */
        if (!set_field(probe, var, values[0], values, 0))
            return FALSE;
        g_autofree char *a = ps_config_serialize(c);
        g_autofree char *b = ps_config_serialize(probe);
        if (!g_str_equal(a, b))
            return FALSE;
    }
    return TRUE;
}

gint64 ps_config_item_limit(const PsConfig *c, gint64 limit)
{
    return c->max_items == PS_MAX_ITEMS_MAX || c->max_items > limit ? limit : c->max_items;
}

static void add_line(GString *s, const char *key, const char *value)
{
    /* Values never hold a newline in storage: one is escaped. */
    g_autofree char *v = g_strescape(value ? value : "", NULL);
    g_string_append_printf(s, "%s=%s\n", key, v);
}

char *ps_config_serialize(const PsConfig *c)
{
    GString *s = g_string_new(NULL);
    add_line(s, "access_model", access_names[c->access]);
    add_line(s, "publish_model", publish_names[c->publish]);
    g_autofree char *mi = c->max_items == PS_MAX_ITEMS_MAX
                              ? g_strdup("max")
                              : g_strdup_printf("%" G_GINT64_FORMAT, c->max_items);
    add_line(s, "max_items", mi);
    add_line(s, "persist_items", c->persist_items ? "1" : "0");
    add_line(s, "deliver_payloads", c->deliver_payloads ? "1" : "0");
    add_line(s, "deliver_notifications", c->deliver_notifications ? "1" : "0");
    add_line(s, "notify_retract", c->notify_retract ? "1" : "0");
    add_line(s, "notify_delete", c->notify_delete ? "1" : "0");
    add_line(s, "notify_config", c->notify_config ? "1" : "0");
    add_line(s, "purge_offline", c->purge_offline ? "1" : "0");
    add_line(s, "send_last_published_item", send_names[c->send_last]);
    add_line(s, "title", c->title);
    add_line(s, "type", c->type);
    add_line(s, "notification_type", c->notification_type);
    add_line(s, "itemreply", c->itemreply);
    for (guint i = 0; c->roster_groups[i]; i++)
        add_line(s, "roster_groups_allowed", c->roster_groups[i]);
    return g_string_free(s, FALSE);
}

PsConfig *ps_config_parse(const char *text, gboolean pep)
{
    PsConfig *c = ps_config_new(pep);
    g_auto(GStrv) lines = g_strsplit(text ? text : "", "\n", -1);
    g_autoptr(GPtrArray) groups = g_ptr_array_new_with_free_func(g_free);
    for (guint i = 0; lines[i]; i++) {
        char *eq = strchr(lines[i], '=');
        if (!eq)
            continue;
        *eq = '\0';
        g_autofree char *v = g_strcompress(eq + 1);
        g_autofree char *var = g_strconcat("pubsub#", lines[i], NULL);
        if (g_str_equal(lines[i], "roster_groups_allowed")) {
            g_ptr_array_add(groups, g_steal_pointer(&v));
            continue;
        }
        char *vals[] = {v, NULL};
        set_field(c, var, v, vals, 0);
    }
    g_ptr_array_add(groups, NULL);
    g_strfreev(c->roster_groups);
    c->roster_groups = g_strdupv((char **)groups->pdata);
    return c;
}

static MkXml *add_field(MkXml *form, const char *var, const char *type, const char *value)
{
    MkXml *f = mk_xml_add_child(form, "field", NULL);
    mk_xml_set_attr(f, "var", var);
    if (type)
        mk_xml_set_attr(f, "type", type);
    if (value)
        mk_xml_add_text(mk_xml_add_child(f, "value", NULL), value, -1);
    return f;
}

static void add_options(MkXml *f, const char *const *names, guint n)
{
    for (guint i = 0; i < n; i++) {
        MkXml *o = mk_xml_add_child(f, "option", NULL);
        mk_xml_add_text(mk_xml_add_child(o, "value", NULL), names[i], -1);
    }
}

MkXml *ps_config_form(const PsConfig *c, const char *form_type, const char *type)
{
    MkXml *x = mk_xml_new("x", NS_XDATA);
    mk_xml_set_attr(x, "type", type);
    add_field(x, "FORM_TYPE", "hidden", form_type);
    MkXml *f = add_field(x, "pubsub#access_model", "list-single", access_names[c->access]);
    add_options(f, access_names, G_N_ELEMENTS(access_names));
    f = add_field(x, "pubsub#publish_model", "list-single", publish_names[c->publish]);
    add_options(f, publish_names, G_N_ELEMENTS(publish_names));
    g_autofree char *mi = c->max_items == PS_MAX_ITEMS_MAX
                              ? g_strdup("max")
                              : g_strdup_printf("%" G_GINT64_FORMAT, c->max_items);
    add_field(x, "pubsub#max_items", "text-single", mi);
    add_field(x, "pubsub#persist_items", "boolean", c->persist_items ? "1" : "0");
    add_field(x, "pubsub#deliver_payloads", "boolean", c->deliver_payloads ? "1" : "0");
    add_field(x, "pubsub#deliver_notifications", "boolean", c->deliver_notifications ? "1" : "0");
    add_field(x, "pubsub#notify_retract", "boolean", c->notify_retract ? "1" : "0");
    add_field(x, "pubsub#notify_delete", "boolean", c->notify_delete ? "1" : "0");
    add_field(x, "pubsub#notify_config", "boolean", c->notify_config ? "1" : "0");
    add_field(x, "pubsub#purge_offline", "boolean", c->purge_offline ? "1" : "0");
    f = add_field(x, "pubsub#send_last_published_item", "list-single", send_names[c->send_last]);
    add_options(f, send_names, G_N_ELEMENTS(send_names));
    add_field(x, "pubsub#title", "text-single", c->title);
    add_field(x, "pubsub#type", "text-single", c->type);
    f = add_field(x, "pubsub#notification_type", "list-single", c->notification_type);
    static const char *const nt[] = {"normal", "headline"};
    add_options(f, nt, 2);
    f = add_field(x, "pubsub#itemreply", "list-single", c->itemreply);
    static const char *const ir[] = {"owner", "publisher"};
    add_options(f, ir, 2);
    f = add_field(x, "pubsub#roster_groups_allowed", "list-multi", NULL);
    for (guint i = 0; c->roster_groups[i]; i++)
        mk_xml_add_text(mk_xml_add_child(f, "value", NULL), c->roster_groups[i], -1);
    return x;
}

/* ---- affiliations ---------------------------------------------------- */

const char *ps_aff_name(PsAffiliation a)
{
    switch (a) {
    case PS_AFF_OUTCAST:
        return "outcast";
    case PS_AFF_MEMBER:
        return "member";
    case PS_AFF_PUBLISH_ONLY:
        return "publish-only";
    case PS_AFF_PUBLISHER:
        return "publisher";
    case PS_AFF_OWNER:
        return "owner";
    default:
        return "none";
    }
}

gboolean ps_aff_parse(const char *name, PsAffiliation *out)
{
    static const PsAffiliation all[] = {PS_AFF_OUTCAST,      PS_AFF_NONE,      PS_AFF_MEMBER,
                                        PS_AFF_PUBLISH_ONLY, PS_AFF_PUBLISHER, PS_AFF_OWNER};
    for (guint i = 0; name && i < G_N_ELEMENTS(all); i++)
        if (g_str_equal(ps_aff_name(all[i]), name)) {
            *out = all[i];
            return TRUE;
        }
    return FALSE;
}
