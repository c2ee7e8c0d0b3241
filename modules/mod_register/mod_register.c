/* mod_register: In-Band Registration (XEP-0077).
 *
 * Before authentication (reg-preauth.c): the stream feature, the form
 * and account creation, when allow_registration is set, limited per
 * client address. After authentication (reg-account.c): the user's
 * password change and account removal. Accounts live in the core's auth
 * backend (mk_account_*: SCRAM keys, work on the auth pool). */
#include "register.h"

static const MkConfigKey register_keys[] = {
    {"allow_registration", MK_CONFIG_BOOL, "false", 0, 0,
     "let clients create accounts before logging in"},
    {"registration_limit", MK_CONFIG_INT, "5", 0, 1000000,
     "accounts one client address may create per window (0 = no limit)"},
    {"registration_window", MK_CONFIG_INT, "600", 1, 31 * 86400,
     "seconds of the per-address registration window"},
    {"min_password_length", MK_CONFIG_INT, "0", 0, 1024,
     "shortest password accepted, in characters (0 = any non-empty)"},
    MK_CONFIG_KEYS_END,
};

static void reg_free(gpointer data)
{
    Reg *r = data;
    reg_limiter_free(r->limiter);
    g_free(r);
}

const char *reg_password_problem(Reg *r, const char *password)
{
    if (!password || !*password)
        return "The password must not be empty";
    if (!g_utf8_validate(password, -1, NULL))
        return "The password is not UTF-8";
    if ((gint64)g_utf8_strlen(password, -1) < r->min_password_length)
        return "The password is too short";
    return NULL;
}

static gboolean sweep(gpointer data)
{
    Reg *r = data;
    reg_limiter_expire(r->limiter, g_get_monotonic_time());
    return G_SOURCE_CONTINUE;
}

static gboolean register_start(MkModule *mod, GError **error)
{
    Reg *r = g_new0(Reg, 1);
    r->mod = mod;
    r->allow_registration = mk_config_get_bool(mod, "allow_registration");
    r->min_password_length = mk_config_get_int(mod, "min_password_length");
    gint64 window = mk_config_get_int(mod, "registration_window");
    r->limiter = reg_limiter_new((guint)mk_config_get_int(mod, "registration_limit"),
                                 window * G_USEC_PER_SEC);
    r->registered = mk_counter_new(mod, "registered");
    r->refused = mk_counter_new(mod, "refused");
    r->rate_limited = mk_counter_new(mod, "rate_limited");
    r->password_changed = mk_counter_new(mod, "password_changed");
    r->removed = mk_counter_new(mod, "removed");
    mk_module_set_data(mod, r, reg_free);

    /* The handler is claimed even with registration off, so that the
     * answer is service-unavailable (XEP-0077 3.1) rather than a closed
     * stream; the feature is only offered when registration is on. */
    if (!mk_preauth_iq_register(mod, NS_REGISTER, reg_preauth_iq, r, error))
        return FALSE;
    if (r->allow_registration)
        mk_stream_feature_add(mod, MK_STREAM_PRE_AUTH,
                              "<register xmlns='http://jabber.org/features/iq-register'/>");
    for (MkIqType t = MK_IQ_GET; t <= MK_IQ_SET; t++)
        if (!mk_iq_register(mod, MK_IQ_SCOPE_SERVER | MK_IQ_SCOPE_ACCOUNT, t, NS_REGISTER,
                            reg_account_iq, r, error))
            return FALSE;
    mk_disco_feature_add(mod, NS_REGISTER);
    mk_timer_add(mod, (guint)MIN(window, 60) * 1000, sweep, r);
    return TRUE;
}

MK_MODULE_EXPORT const MkModuleDesc mk_module_desc = {
    MK_MODULE_DESC_HEADER,        .name = "mod_register",  .version = "1.0",
    .config_keys = register_keys, .start = register_start,
};
