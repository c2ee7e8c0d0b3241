/* The c2s stream object, shared by the files that implement client
 * streams: c2s.c (stream states, bind, stanzas), c2s-sasl.c (STARTTLS and
 * SASL), c2s-preauth.c (IQs before authentication) and c2s-sm.c
 * (XEP-0198). Nothing else includes this. Everything in an MkC2s belongs to its worker. */
#pragma once

#include "authguard.h"
#include "c2s.h"
#include "conn.h"
#include "sasl.h"
#include "xmlstream.h"

typedef enum {
    C2S_WAIT_STREAM, /* expecting <stream:stream> */
    C2S_OPEN,        /* features sent; negotiating or bound */
    C2S_TLS,         /* handshake running */
    C2S_CLOSING,     /* closed or closing: ignore input */
    C2S_DETACHED,    /* XEP-0198: the connection is gone, the session waits */
    C2S_MIGRATING,   /* XEP-0198: the connection moves to another worker */
} C2sState;

/* Per-listener settings resolved once. */
typedef struct {
    MkListenConfig lc; /* shallow copy; strings owned by the config kept alive */
    gnutls_certificate_credentials_t creds; /* nullable */
    gpointer connections;                   /* the gauge of its open connections */
} C2sListen;

typedef struct {
    MkXmlShared *xml; /* this worker's libxml2 dictionary */
    GQueue streams;   /* of MkC2s*, links embedded */
    GSource *sweep;
} C2sWorker;

struct MkC2sServer {
    MkServer *srv;
    MkSasl *sasl;
    GPtrArray *listens;  /* of C2sListen* */
    C2sWorker **workers; /* per worker index; created on that worker */
    guint n_workers;
    GPtrArray *configs; /* kept configs whose strings listeners point into */
    /* XEP-0198 resumption ids of this node (c2s-sm.c), any thread. */
    GMutex resume_lock;
    GHashTable *resumable; /* id -> C2sResumable* */
    /* Login and connection limits (c2s-sasl.c, docs/security.md). */
    MkAuthGuard *guard;
    gint64 preauth_timeouts, tls_timeouts, stream_failure_closes; /* atomic */
    /* XEP-0474's h= values by binding type (none, tls-unique,
     * tls-exporter), ANONYMOUS offered or not, and hash: they change only
     * with the configuration. Any worker, under the lock. */
    GMutex ssdp_lock;
    const MkConfigData *ssdp_config;
    char *ssdp[3][2][2];
    /* Binds refused over [general] max_sessions_per_account. */
    MkCounter *bind_refused;
};

typedef struct C2sSm C2sSm;
typedef struct MkC2s MkC2s;
struct MkC2s {
    gint ref;
    MkC2sServer *cs;
    C2sListen *listen;
    C2sWorker *cw;
    MkWorker *worker;
    MkConn *conn;
    MkXmlStream *xs;
    GList link;
    C2sState state;
    gboolean restart;     /* reset the parser once the current feed returns */
    gboolean header_sent; /* our <stream:stream> went out for the current stream */
    gboolean sasl_busy;
    gboolean bind_busy; /* a cluster's bind waits for Redis (c2s.c) */
    GQueue bind_held;   /* of MkStanza*: delivered meanwhile, sent after the answer */
    gboolean freed_conn;
    gint64 last_input_us;
    gint64 created_us;        /* for preauth_timeout */
    gint64 tls_started_us;    /* while a TLS handshake runs, for tls_handshake_timeout */
    MkAddrKey addr;           /* the peer, as the limits count it */
    gboolean preauth_counted; /* counted in the guard's unauthenticated connections */
    guint sasl_failures;      /* on this stream (failures_per_stream) */
    char *domain;             /* the stream's 'to', prepared */
    char *stream_id;
    char *username; /* after SASL */
    MkSaslSession *sasl;
    struct MkPreloads *preloads; /* auth_preload's results, from SASL to bind */
    MkSession *session;          /* after bind */
    gpointer sessions_gauge;     /* its host type's (metrics); moves with the session */
    C2sSm *sm;                   /* XEP-0198 state once enabled (moves with the session) */
    gboolean moved; /* the session went on on another node: it ends here without a word */
};

#define NS_CLIENT      "jabber:client"
#define NS_STREAM      "http://etherx.jabber.org/streams"
#define NS_TLS         "urn:ietf:params:xml:ns:xmpp-tls"
#define NS_SASL        "urn:ietf:params:xml:ns:xmpp-sasl"
#define NS_BIND        "urn:ietf:params:xml:ns:xmpp-bind"
#define NS_SESSION     "urn:ietf:params:xml:ns:xmpp-session"
#define NS_STREAMS_ERR "urn:ietf:params:xml:ns:xmpp-streams"
#define NS_SASL_CB     "urn:xmpp:sasl-cb:0"

MkC2s *c2s_ref(MkC2s *c);
void c2s_unref(MkC2s *c);
/* Raw bytes to the client (stream-level: not counted). */
void c2s_write(MkC2s *c, const char *data);
/* Every element for the client goes through here, so that XEP-0198 sees
 * every stanza (c2s_sm_write): deliveries, module writes and the core's
 * own replies alike. */
void c2s_write_xml(MkC2s *c, MkXml *xml);
/* Sends a stream error (or a clean end when NULL) and ends the session. */
void c2s_close(MkC2s *c, const char *stream_error);
/* A stream on @w for @listen, in its list, without a connection yet.
 * Returns: (transfer none): the worker's list holds the reference. */
MkC2s *c2s_stream_new(MkC2sServer *cs, C2sListen *listen, MkWorker *w);
/* Gives @c the connection @conn moved here from another worker. */
void c2s_adopt_conn(MkC2s *c, MkConn *conn);
/* Bytes from the client, as the connection delivers them; also the
 * bytes a client pipelined after <resume/>, once the stream resumed on
 * another worker. @c may be gone afterwards if the input ended it and it
 * left its worker's list meanwhile: hold a reference to use it. */
void c2s_feed(MkC2s *c, const char *data, gsize len);
/* Drops @c from its worker's list (and the list's reference). */
void c2s_stream_remove(MkC2s *c);
/* A session of @c's stream for @jid, not registered (c2s-sm.c: a
 * session that moves here from another node). */
MkSession *c2s_session_new(MkC2s *c, MkJid *jid);

/* c2s-sasl.c: whether this stream may offer and use @mech. */
gboolean c2s_mech_allowed(MkC2s *c, const char *mech);
/* c2s-sasl.c: <starttls/>, and an element of the SASL namespace, before
 * authentication. */
void c2s_starttls(MkC2s *c);
void c2s_sasl_element(MkC2s *c, MkXml *el);
/* c2s-sasl.c: the limits (docs/security.md). Server creation and
 * shutdown, main thread: */
void c2s_limits_init(MkC2sServer *cs);
void c2s_limits_free(MkC2sServer *cs);
/* A new connection from @peer: FALSE when its address has too many
 * unauthenticated connections (the caller closes it). Its worker. */
gboolean c2s_limits_accept(MkC2s *c, const struct sockaddr_storage *peer);
/* The stream is no longer unauthenticated (authenticated, or gone). */
void c2s_limits_leave(MkC2s *c);
/* From the sweep: closes @c when it took too long to authenticate or
 * to finish a TLS handshake; TRUE when it did. */
gboolean c2s_limits_sweep(MkC2s *c, gint64 now);
/* c2s-preauth.c: offers a pre-authentication <iq/> to the module that
 * claimed its payload's namespace; FALSE when nobody did (the caller
 * closes the stream). */
gboolean c2s_preauth_iq_dispatch(MkC2s *c, MkXml *el);

#define C2S_LOG(c, level, ...)                                                                     \
    mk_log_conn((level), (c)->conn ? mk_conn_peer((c)->conn) : "detached",                         \
                (c)->session ? mk_jid_string(mk_session_jid((c)->session)) : (c)->username,        \
                __VA_ARGS__)
