/* mk_router_send_as (mk-router.h): a stanza an API sends for a local
 * account runs the user_send_packet handlers a client's would (the
 * sender's archive, its roster for subscription presence, its privacy
 * and blocking lists), without a session, then is routed. */
#include "modules.h"
#include "router.h"
#include "server.h"

/* Public module API (Since ABI 2.1). Worker. */
void mk_router_send_as(MkStanza *stanza)
{
    g_return_if_fail(stanza != NULL);
    MkServer *srv = mk_server_get();
    MkJid *from = mk_stanza_from(stanza);
    MkJid *to = mk_stanza_to(stanza);
    if (!srv || !from) {
        mk_router_send(stanza);
        return;
    }
    MkHookCall call = {
        .domain = mk_jid_domain(from), .stanza = mk_stanza_ref(stanza), .from = from, .to = to};
    MkResult r = mk_hooks_run(srv->modules, MK_HOOK_USER_SEND_PACKET, &call);
    g_autoptr(MkStanza) st = mk_stanza_ref(call.stanza);
    if (r == MK_ERROR && call.has_error)
        mk_router_bounce(st, call.error, call.error_text);
    mk_hook_call_clear(&call);
    if (r == MK_PASS)
        mk_router_send(st);
}
