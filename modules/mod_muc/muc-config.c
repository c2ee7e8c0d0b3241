/* Room configuration: as text for the database (a key file's "room"
 * group, so new fields need no schema change) and as the muc#roomconfig
 * data form (XEP-0045 10.2). Pure: no room, no thread. */
#include "muc.h"

char *muc_config_to_string(const MucConfig *cfg)
{
    g_autoptr(GKeyFile) kf = g_key_file_new();
    g_key_file_set_string(kf, "room", "title", cfg->title ? cfg->title : "");
    g_key_file_set_string(kf, "room", "description", cfg->description ? cfg->description : "");
    g_key_file_set_string(kf, "room", "password", cfg->password ? cfg->password : "");
    if (cfg->creator)
        g_key_file_set_string(kf, "room", "creator", cfg->creator);
    g_key_file_set_boolean(kf, "room", "persistent", cfg->persistent);
    g_key_file_set_boolean(kf, "room", "public", cfg->public_room);
    g_key_file_set_boolean(kf, "room", "members_only", cfg->members_only);
    g_key_file_set_boolean(kf, "room", "moderated", cfg->moderated);
    g_key_file_set_boolean(kf, "room", "password_protected", cfg->password_protected);
    g_key_file_set_boolean(kf, "room", "non_anonymous", cfg->non_anonymous);
    g_key_file_set_boolean(kf, "room", "allow_invites", cfg->allow_invites);
    g_key_file_set_boolean(kf, "room", "change_subject", cfg->change_subject);
    g_key_file_set_boolean(kf, "room", "logging", cfg->logging);
    g_key_file_set_boolean(kf, "room", "allow_pm", cfg->allow_pm);
    g_key_file_set_int64(kf, "room", "max_users", cfg->max_users);
    g_key_file_set_int64(kf, "room", "history_length", cfg->history_length);
    return g_key_file_to_data(kf, NULL, NULL);
}

static gboolean kf_bool(GKeyFile *kf, const char *key, gboolean dflt)
{
    g_autoptr(GError) e = NULL;
    gboolean v = g_key_file_get_boolean(kf, "room", key, &e);
    return e ? dflt : v;
}

static gint64 kf_int(GKeyFile *kf, const char *key, gint64 dflt)
{
    g_autoptr(GError) e = NULL;
    gint64 v = g_key_file_get_int64(kf, "room", key, &e);
    return e ? dflt : v;
}

static char *kf_str(GKeyFile *kf, const char *key)
{
    char *v = g_key_file_get_string(kf, "room", key, NULL);
    return v ? v : g_strdup("");
}

/* Fills @cfg from @text; keys not there keep @cfg's values. */
void muc_config_from_string(MucConfig *cfg, const char *text)
{
    g_autoptr(GKeyFile) kf = g_key_file_new();
    if (!g_key_file_load_from_data(kf, text, -1, G_KEY_FILE_NONE, NULL))
        return;
    g_free(cfg->title);
    cfg->title = kf_str(kf, "title");
    g_free(cfg->description);
    cfg->description = kf_str(kf, "description");
    g_free(cfg->password);
    cfg->password = kf_str(kf, "password");
    g_free(cfg->creator);
    cfg->creator = g_key_file_get_string(kf, "room", "creator", NULL);
    cfg->persistent = kf_bool(kf, "persistent", cfg->persistent);
    cfg->public_room = kf_bool(kf, "public", cfg->public_room);
    cfg->members_only = kf_bool(kf, "members_only", cfg->members_only);
    cfg->moderated = kf_bool(kf, "moderated", cfg->moderated);
    cfg->password_protected = kf_bool(kf, "password_protected", cfg->password_protected);
    cfg->non_anonymous = kf_bool(kf, "non_anonymous", cfg->non_anonymous);
    cfg->allow_invites = kf_bool(kf, "allow_invites", cfg->allow_invites);
    cfg->change_subject = kf_bool(kf, "change_subject", cfg->change_subject);
    cfg->logging = kf_bool(kf, "logging", cfg->logging);
    cfg->allow_pm = kf_bool(kf, "allow_pm", cfg->allow_pm);
    cfg->max_users = kf_int(kf, "max_users", cfg->max_users);
    cfg->history_length = kf_int(kf, "history_length", cfg->history_length);
}

void muc_config_clear(MucConfig *cfg)
{
    g_free(cfg->title);
    g_free(cfg->description);
    g_free(cfg->password);
    g_free(cfg->creator);
    memset(cfg, 0, sizeof *cfg);
}

/* Data forms. */

MkXml *muc_form_field(MkXml *form, const char *var, const char *type, const char *label,
                      const char *value)
{
    MkXml *f = mk_xml_add_child(form, "field", NULL);
    mk_xml_set_attr(f, "var", var);
    if (type)
        mk_xml_set_attr(f, "type", type);
    if (label)
        mk_xml_set_attr(f, "label", label);
    if (value)
        mk_xml_add_text(mk_xml_add_child(f, "value", NULL), value, -1);
    return f;
}

static void option(MkXml *f, const char *label, const char *value)
{
    MkXml *o = mk_xml_add_child(f, "option", NULL);
    mk_xml_set_attr(o, "label", label);
    mk_xml_add_text(mk_xml_add_child(o, "value", NULL), value, -1);
}

#define B(x) ((x) ? "1" : "0")

/* The muc#roomconfig form with @c's values. (transfer full) */
MkXml *muc_config_form(const MucConfig *c)
{
    MkXml *x = mk_xml_new("x", NS_DATA);
    mk_xml_set_attr(x, "type", "form");
    mk_xml_add_text(mk_xml_add_child(x, "title", NULL), "Room configuration", -1);
    muc_form_field(x, "FORM_TYPE", "hidden", NULL, "http://jabber.org/protocol/muc#roomconfig");
    muc_form_field(x, "muc#roomconfig_roomname", "text-single", "Name", c->title);
    muc_form_field(x, "muc#roomconfig_roomdesc", "text-single", "Description", c->description);
    muc_form_field(x, "muc#roomconfig_persistentroom", "boolean", "Persistent", B(c->persistent));
    muc_form_field(x, "muc#roomconfig_publicroom", "boolean", "Listed in the directory",
                   B(c->public_room));
    muc_form_field(x, "muc#roomconfig_membersonly", "boolean", "Members only", B(c->members_only));
    muc_form_field(x, "muc#roomconfig_moderatedroom", "boolean", "Moderated", B(c->moderated));
    muc_form_field(x, "muc#roomconfig_passwordprotectedroom", "boolean", "Password required",
                   B(c->password_protected));
    muc_form_field(x, "muc#roomconfig_roomsecret", "text-private", "Password", c->password);
    char buf[32];
    g_snprintf(buf, sizeof buf, "%" G_GINT64_FORMAT, c->max_users);
    muc_form_field(x, "muc#roomconfig_maxusers", "text-single", "Maximum occupants", buf);
    MkXml *w = muc_form_field(x, "muc#roomconfig_whois", "list-single", "Who may see real JIDs",
                              c->non_anonymous ? "anyone" : "moderators");
    option(w, "Moderators only", "moderators");
    option(w, "Anyone", "anyone");
    g_snprintf(buf, sizeof buf, "%" G_GINT64_FORMAT, c->history_length);
    muc_form_field(x, "muc#maxhistoryfetch", "text-single", "History length", buf);
    muc_form_field(x, "muc#roomconfig_allowinvites", "boolean", "Occupants may invite",
                   B(c->allow_invites));
    muc_form_field(x, "muc#roomconfig_changesubject", "boolean", "Occupants may change the subject",
                   B(c->change_subject));
    muc_form_field(x, "muc#roomconfig_enablelogging", "boolean", "Archive messages", B(c->logging));
    MkXml *pm = muc_form_field(x, "muc#roomconfig_allowpm", "list-single", "Private messages",
                               c->allow_pm ? "anyone" : "none");
    option(pm, "Anyone", "anyone");
    option(pm, "Nobody", "none");
    return x;
}

static gboolean parse_bool(const char *v, gboolean *out)
{
    if (!g_strcmp0(v, "1") || !g_strcmp0(v, "true"))
        *out = TRUE;
    else if (!g_strcmp0(v, "0") || !g_strcmp0(v, "false"))
        *out = FALSE;
    else
        return FALSE;
    return TRUE;
}

static gboolean parse_int(const char *v, gint64 lo, gint64 hi, gint64 *out)
{
    char *end = NULL;
    if (!v || !*v)
        return FALSE;
    gint64 n = g_ascii_strtoll(v, &end, 10);
    if (*end || n < lo || n > hi)
        return FALSE;
    *out = n;
    return TRUE;
}

/* Applies a submitted muc#roomconfig form to @cfg. FALSE with @why on a
 * bad value. */
gboolean muc_config_apply_form(MucConfig *cfg, MkXml *x, gint64 max_users, gint64 max_history,
                               const char **why)
{
    for (guint i = 0; i < mk_xml_child_count(x); i++) {
        MkXml *f = mk_xml_child_at(x, i);
        if (!mk_xml_is(f, "field", NULL))
            continue;
        const char *var = mk_xml_get_attr(f, "var");
        g_autofree char *v = mk_xml_child_text(f, "value", NULL);
        gboolean ok = TRUE;
        *why = var;
        if (!var || g_str_equal(var, "FORM_TYPE"))
            continue;
        if (g_str_equal(var, "muc#roomconfig_roomname")) {
            g_free(cfg->title);
            cfg->title = g_strdup(v ? v : "");
        } else if (g_str_equal(var, "muc#roomconfig_roomdesc")) {
            g_free(cfg->description);
            cfg->description = g_strdup(v ? v : "");
        } else if (g_str_equal(var, "muc#roomconfig_persistentroom"))
            ok = parse_bool(v, &cfg->persistent);
        else if (g_str_equal(var, "muc#roomconfig_publicroom"))
            ok = parse_bool(v, &cfg->public_room);
        else if (g_str_equal(var, "muc#roomconfig_membersonly"))
            ok = parse_bool(v, &cfg->members_only);
        else if (g_str_equal(var, "muc#roomconfig_moderatedroom"))
            ok = parse_bool(v, &cfg->moderated);
        else if (g_str_equal(var, "muc#roomconfig_passwordprotectedroom"))
            ok = parse_bool(v, &cfg->password_protected);
        else if (g_str_equal(var, "muc#roomconfig_roomsecret")) {
            g_free(cfg->password);
            cfg->password = g_strdup(v ? v : "");
        } else if (g_str_equal(var, "muc#roomconfig_maxusers"))
            ok = parse_int(v, 1, max_users, &cfg->max_users);
        else if (g_str_equal(var, "muc#maxhistoryfetch") ||
                 g_str_equal(var, "muc#roomconfig_historylength"))
            ok = parse_int(v, 0, max_history, &cfg->history_length);
        else if (g_str_equal(var, "muc#roomconfig_whois")) {
            if (!g_strcmp0(v, "anyone"))
                cfg->non_anonymous = TRUE;
            else if (!g_strcmp0(v, "moderators"))
                cfg->non_anonymous = FALSE;
            else
                ok = FALSE;
        } else if (g_str_equal(var, "muc#roomconfig_allowinvites"))
            ok = parse_bool(v, &cfg->allow_invites);
        else if (g_str_equal(var, "muc#roomconfig_changesubject"))
            ok = parse_bool(v, &cfg->change_subject);
        else if (g_str_equal(var, "muc#roomconfig_enablelogging"))
            ok = parse_bool(v, &cfg->logging);
        else if (g_str_equal(var, "muc#roomconfig_allowpm"))
            cfg->allow_pm = g_strcmp0(v, "none") != 0;
        /* Unknown fields are ignored (XEP-0004: a form may carry more). */
        if (!ok)
            return FALSE;
    }
    if (cfg->password_protected && (!cfg->password || !*cfg->password)) {
        *why = "muc#roomconfig_roomsecret";
        return FALSE;
    }
    return TRUE;
}

void muc_config_copy(MucConfig *dst, const MucConfig *src)
{
    *dst = *src;
    dst->title = g_strdup(src->title);
    dst->description = g_strdup(src->description);
    dst->password = g_strdup(src->password);
    dst->creator = g_strdup(src->creator);
}
