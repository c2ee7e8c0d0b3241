/* mod_stream_management: XEP-0198 Stream Management.
 *
 * The protocol runs in the core (core/c2s-sm.c): acknowledgements must
 * count every stanza of a stream, including those the core answers itself
 * and those other modules write, so the counters sit on the core's read
 * and write paths. This module switches it on for its host type, holds
 * the settings and announces the stream feature. See
 * docs/stream-management.md. */
#include <meerkat/module.h>

#define NS_SM "urn:xmpp:sm:3"

static gboolean sm_start(MkModule *mod, GError **error)
{
    gint64 timeout = mk_config_get_int(mod, "resume_timeout");
    gint64 max_unacked = mk_config_get_int(mod, "max_unacked");

    mk_stream_management_enable(mod, (guint)timeout, (guint)max_unacked);
    mk_stream_management_limits(mod, (guint)mk_config_get_int(mod, "ack_timeout"),
                                (guint)mk_config_get_int(mod, "close_wait_ms"),
                                (gsize)mk_config_get_int(mod, "max_detached_bytes"));
    /* Offered once bound is possible: <enable/> and <resume/> both come
     * after SASL (XEP-0198 section 2). */
    mk_stream_feature_add(mod, MK_STREAM_POST_AUTH, "<sm xmlns='" NS_SM "'/>");
    return TRUE;
}

static const MkConfigKey sm_keys[] = {
    {"resume_timeout", MK_CONFIG_INT, "300", 0, 86400,
     "seconds a session whose connection dropped waits for <resume/> (0 = no resumption)"},
    {"max_unacked", MK_CONFIG_INT, "1000", 2, 1000000,
     "unacknowledged stanzas after which the stream is closed, once an <r/> went unanswered"},
    {"ack_timeout", MK_CONFIG_INT, "30", 1, 3600,
     "seconds an <r/> may stay unanswered before max_unacked applies"},
    {"close_wait_ms", MK_CONFIG_INT, "2000", 0, 30000,
     "after the client's </stream:stream>, how long to wait for a final <a/>"},
    {"max_detached_bytes", MK_CONFIG_INT, "1048576", 4096, 1073741824,
     "bytes queued for a detached session; beyond it the session ends as on timeout"},
    MK_CONFIG_KEYS_END,
};

MK_MODULE_EXPORT const MkModuleDesc mk_module_desc = {
    MK_MODULE_DESC_HEADER, .name = "mod_stream_management",
    .version = "1.0",      .config_keys = sm_keys,
    .start = sm_start,
};
