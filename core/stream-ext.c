/* Stream extensions registered by modules: stream features per stage and
 * handlers for top-level elements outside jabber:client (mk-stream.h).
 * Records live on the MkModule (main thread); c2s reads the snapshot. */
#include "modules-priv.h"
#include "modules.h"
#include "sm.h"
#include <string.h>

/* Public module API (mk-stream.h). Main thread, in start(). */
void mk_stream_feature_add(MkModule *mod, guint stages, const char *xml)
{
    g_return_if_fail(mod != NULL && xml != NULL);
    g_return_if_fail((stages & (MK_STREAM_PRE_AUTH | MK_STREAM_POST_AUTH)) != 0);
    if (!mod->live) {
        g_warning("module %s: mk_stream_feature_add outside a running instance ignored", mod->name);
        return;
    }
    /* The stage mask travels as one leading digit (1..3). */
    g_ptr_array_add(mod->stream_features, g_strdup_printf("%u%s", stages & 3, xml));
    mk_modules_publish(mod->mods);
}

/* Public module API (mk-stream.h). Main thread, in start(). */
void mk_stream_feature_add_func(MkModule *mod, guint stages, MkStreamFeatureFunc func,
                                gpointer user_data)
{
    g_return_if_fail(mod != NULL && func != NULL);
    g_return_if_fail((stages & (MK_STREAM_PRE_AUTH | MK_STREAM_POST_AUTH)) != 0);
    if (!mod->live) {
        g_warning("module %s: mk_stream_feature_add_func outside a running instance ignored",
                  mod->name);
        return;
    }
    MkStreamFeatureReg *r = g_new0(MkStreamFeatureReg, 1);
    r->stages = stages & 3;
    r->func = func;
    r->user_data = user_data;
    g_ptr_array_add(mod->stream_funcs, r);
    mk_modules_publish(mod->mods);
}

/* Records a stream element (@func) or pre-auth IQ (@iq_func) handler for
 * @xmlns, refusing a namespace another instance of the host type holds
 * for the same kind. Main thread. */
static gboolean stream_reg_add(MkModule *mod, const char *xmlns, MkStreamElementFunc func,
                               MkPreauthIqFunc iq_func, gpointer user_data, GError **error)
{
    const char *what = func ? "stream elements" : "pre-auth IQs";
    if (!mod->live) {
        g_set_error(error, MK_MODULE_ERROR, MK_MODULE_ERROR_START,
                    "%s: %s handlers are registered while the module runs", mod->name, what);
        return FALSE;
    }
    MkModules *mods = mod->mods;
    for (guint i = 0; i < mods->instances->len; i++) {
        MkModule *other = g_ptr_array_index(mods->instances, i);
        if (other->host_type != mod->host_type)
            continue;
        for (guint j = 0; j < other->stream_regs->len; j++) {
            MkStreamReg *r = g_ptr_array_index(other->stream_regs, j);
            if (g_str_equal(r->xmlns, xmlns) && (r->func != NULL) == (func != NULL)) {
                g_set_error(error, MK_MODULE_ERROR, MK_MODULE_ERROR_DUPLICATE,
                            "%s: %s in %s on host type %s are taken by %s already", mod->name, what,
                            xmlns, mod->host_type, other->name);
                return FALSE;
            }
        }
    }
    MkStreamReg *r = g_new0(MkStreamReg, 1);
    r->xmlns = g_strdup(xmlns);
    r->func = func;
    r->iq_func = iq_func;
    r->user_data = user_data;
    g_ptr_array_add(mod->stream_regs, r);
    mk_modules_publish(mods);
    return TRUE;
}

/* Public module API (mk-stream.h). Main thread, in start(). */
gboolean mk_stream_element_register(MkModule *mod, const char *xmlns, MkStreamElementFunc func,
                                    gpointer user_data, GError **error)
{
    g_return_val_if_fail(mod != NULL && xmlns != NULL && func != NULL, FALSE);
    return stream_reg_add(mod, xmlns, func, NULL, user_data, error);
}

/* Public module API (mk-stream.h). Main thread, in start(). */
gboolean mk_preauth_iq_register(MkModule *mod, const char *xmlns, MkPreauthIqFunc func,
                                gpointer user_data, GError **error)
{
    g_return_val_if_fail(mod != NULL && xmlns != NULL && func != NULL, FALSE);
    return stream_reg_add(mod, xmlns, NULL, func, user_data, error);
}

/* Public module API (mk-stream.h). Main thread, in start(). */
void mk_stream_management_enable(MkModule *mod, guint resume_timeout, guint max_unacked)
{
    g_return_if_fail(mod != NULL);
    if (!mod->live) {
        g_warning("module %s: mk_stream_management_enable outside a running instance ignored",
                  mod->name);
        return;
    }
    mod->stream_mgmt.on = TRUE;
    mod->stream_mgmt.resume_timeout = resume_timeout;
    mod->stream_mgmt.max_unacked = MAX(max_unacked, 2);
    /* Until mk_stream_management_limits says otherwise. */
    mod->stream_mgmt.ack_timeout = 30;
    mod->stream_mgmt.close_wait_ms = 2000;
    mod->stream_mgmt.max_detached_bytes = 1024 * 1024;
    mod->stream_mgmt.enabled = mk_counter_new(mod, "enabled");
    mod->stream_mgmt.resumed = mk_counter_new(mod, "resumed");
    mod->stream_mgmt.resume_failed = mk_counter_new(mod, "resume_failed");
    mod->stream_mgmt.expired = mk_counter_new(mod, "expired");
    mod->stream_mgmt.rerouted = mk_counter_new(mod, "rerouted");
    mod->stream_mgmt.not_requeued = mk_counter_new(mod, "not_requeued");
    mod->stream_mgmt.detached_overflow = mk_counter_new(mod, "detached_overflow");
    mod->stream_mgmt.unacked_closed = mk_counter_new(mod, "unacked_closed");
    mk_modules_publish(mod->mods);
}

/* Public module API (mk-stream.h). Main thread, in start(), after
 * mk_stream_management_enable. */
void mk_stream_management_limits(MkModule *mod, guint ack_timeout, guint close_wait_ms,
                                 gsize max_detached_bytes)
{
    g_return_if_fail(mod != NULL);
    if (!mod->live || !mod->stream_mgmt.on) {
        g_warning("module %s: mk_stream_management_limits before enable ignored", mod->name);
        return;
    }
    mod->stream_mgmt.ack_timeout = MAX(ack_timeout, 1);
    mod->stream_mgmt.close_wait_ms = close_wait_ms;
    mod->stream_mgmt.max_detached_bytes = max_detached_bytes;
    mk_modules_publish(mod->mods);
}

void mk_stream_reg_free(gpointer reg)
{
    MkStreamReg *r = reg;
    g_free(r->xmlns);
    g_free(r);
}

/* Adds @mod's records to the host type's snapshot. Main thread. */
void mk_stream_build(MkHostReg *hr, MkModule *mod)
{
    for (guint i = 0; i < mod->stream_features->len; i++) {
        const char *rec = g_ptr_array_index(mod->stream_features, i);
        guint stages = (guint)(rec[0] - '0');
        for (int st = 0; st < MK_STREAM_STAGE_COUNT; st++) {
            if (!(stages & (1u << st)))
                continue;
            char *old = hr->stream_features[st];
            hr->stream_features[st] = g_strconcat(old ? old : "", rec + 1, NULL);
            g_free(old);
        }
    }
    for (guint i = 0; i < mod->stream_regs->len; i++) {
        MkStreamReg *r = g_ptr_array_index(mod->stream_regs, i);
        MkStreamEntry *e = g_new0(MkStreamEntry, 1);
        e->func = r->func;
        e->iq_func = r->iq_func;
        e->user_data = r->user_data;
        e->mod = mod;
        g_hash_table_insert(r->func ? hr->stream_elements : hr->preauth_iqs, g_strdup(r->xmlns), e);
    }
    if (mod->stream_mgmt.on)
        hr->stream_mgmt = mod->stream_mgmt;
}

static void append_feature(MkHostReg *hr, guint stages, const char *xml)
{
    for (int st = 0; st < MK_STREAM_STAGE_COUNT; st++) {
        if (!(stages & (1u << st)))
            continue;
        char *old = hr->stream_features[st];
        hr->stream_features[st] = g_strconcat(old ? old : "", xml, NULL);
        g_free(old);
    }
}

/* See modules-priv.h. Main thread, snapshot build, after mk_disco_build. */
void mk_stream_build_computed(MkHostReg *hr, MkModule *mod)
{
    for (guint i = 0; hr && i < mod->stream_funcs->len; i++) {
        MkStreamFeatureReg *r = g_ptr_array_index(mod->stream_funcs, i);
        g_autofree char *xml = r->func(mod, (const char *const *)hr->features,
                                       (const char *const *)hr->identities, r->user_data);
        if (xml)
            append_feature(hr, r->stages, xml);
    }
}

/* See modules.h. (transfer none) (nullable) Any thread; valid until the
 * caller returns to its main loop. */
const char *mk_stream_features_for(const char *domain, MkStreamStage stage)
{
    MkHostReg *hr = mk_modules_host_reg(mk_modules_get(), domain);
    if (!hr)
        return NULL;
    return hr->stream_features[stage == MK_STREAM_PRE_AUTH ? 0 : 1];
}

/* See modules.h. The session's worker. */
MkResult mk_stream_element_dispatch(MkSession *s, MkXml *el)
{
    MkHostReg *hr = mk_modules_host_reg(mk_modules_get(), mk_jid_domain(mk_session_jid(s)));
    const char *ns = mk_xml_ns(el);
    if (!hr || !ns)
        return MK_PASS;
    MkStreamEntry *e = g_hash_table_lookup(hr->stream_elements, ns);
    if (!e)
        return MK_PASS;
    return e->func(s, el, e->user_data);
}

/* See modules.h. Any thread. */
gboolean mk_stream_preauth_iq_lookup(const char *domain, const char *xmlns, MkPreauthIqFunc *func,
                                     gpointer *user_data)
{
    MkHostReg *hr = mk_modules_host_reg(mk_modules_get(), domain);
    MkStreamEntry *e = hr && xmlns ? g_hash_table_lookup(hr->preauth_iqs, xmlns) : NULL;
    if (!e)
        return FALSE;
    *func = e->iq_func;
    *user_data = e->user_data;
    return TRUE;
}

/* Public module API (mk-stream.h). The session's worker. */
void mk_session_write_xml(MkSession *s, MkXml *el)
{
    g_return_if_fail(s != NULL && el != NULL);
    g_return_if_fail(mk_worker_self() == s->worker);
    if (s->transport_data && s->transport->write_xml)
        s->transport->write_xml(s, el);
}
