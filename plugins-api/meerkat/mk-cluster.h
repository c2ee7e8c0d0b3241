#if !defined(MK_INSIDE_MODULE_H) && !defined(MK_COMPILATION)
#error "Only <meerkat/module.h> can be included directly."
#endif
#pragma once

#include <meerkat/mk-types.h>

G_BEGIN_DECLS
/* The cluster this node belongs to (docs/clustering.md). */

/* This node's number in its cluster ([cluster] node_number, 0..255), 0
 * for a node without [cluster]. Unique per node: modules put it into
 * identifiers that must not collide across nodes (mod_mam's archive
 * IDs). Any thread. Since ABI 2.1. */
MK_API guint mk_cluster_node_number(void);

/* Whether this node is one of a cluster: other nodes may then change
 * shared data (a user's roster, say) behind this node's back, so a
 * module must not trust a cache that only local writes invalidate.
 * Any thread. Since ABI 2.1. */
MK_API gboolean mk_cluster_active(void);

/* Homes (docs/clustering.md, Rooms): state kept in memory under a key (a
 * MUC room's bare JID) lives on one node, claimed in Redis by the first
 * node that needs it and claimed again by the next one after its node
 * died. Call it for each stanza addressed to the key: TRUE means the key
 * is homed here (handle @stanza now); FALSE means the cluster took
 * @stanza: it went over the node link to the key's home (one hop, in
 * order per sender), where it is routed again (mk_router_send) and
 * reaches the same module, or it waits here, in order, until Redis
 * answered and is then routed again on this node or sent to the home
 * node. A stanza whose home cannot be reached for 10 s bounces with
 * remote-server-timeout. Without [cluster]: TRUE (one pointer test).
 * Any thread. (transfer none) Since ABI 2.3. */
MK_API gboolean mk_cluster_home_take(const char *key, MkStanza *stanza);
/* The node that homes @key as far as this node knows (NULL: not known,
 * or no cluster). Any thread. Returns: (transfer full) (nullable).
 * Since ABI 2.3. */
MK_API char *mk_cluster_home_node(const char *key);
/* Whether @node (a name from mk_cluster_home_node) is this node or one
 * whose link is up; TRUE for anything without a cluster. Any thread.
 * Since ABI 2.3. */
MK_API gboolean mk_cluster_node_reachable(const char *node);

/* ---- Authenticated framed links (docs/modules.md, "Node links") -------
 * One TCP connection between two servers that share a secret, optionally
 * inside GnuTLS with mutual certificate authentication against a CA: the
 * cluster's node links and mod_global_distrib's region links both use it.
 * Since ABI 2.3.
 *
 * Frames: 4 bytes big-endian length of what follows, 1 type byte, then
 * NUL-separated text fields. Types 1..3 are the handshake's, callers use
 * the others. After TLS (when on) the acceptor sends HELLO(name, nonce),
 * the dialer AUTH(name, HMAC-SHA256(secret, "d" nonce name), nonce') and
 * the acceptor OK(HMAC(secret, "a" nonce' name)): the secret is needed
 * with TLS too, as a second factor. */

typedef struct MkLinkAuth MkLinkAuth; /* one side's name, secret, TLS credentials */
typedef struct MkLinkIo MkLinkIo;     /* one connection */

#define MK_LINK_ERROR (mk_link_error_quark())
MK_API GQuark mk_link_error_quark(void);
/* Why a handshake failed (also the refusal metrics' reasons). */
typedef enum {
    MK_LINK_ERROR_CLOSED,      /* the peer went away or the socket failed */
    MK_LINK_ERROR_PROTOCOL,    /* not our framing (a plain peer on TLS, say) */
    MK_LINK_ERROR_TLS,         /* the TLS handshake failed */
    MK_LINK_ERROR_CERTIFICATE, /* the peer's certificate does not verify */
    MK_LINK_ERROR_SECRET,      /* the peer does not know the secret */
    MK_LINK_ERROR_PEER,        /* the peer is not the one dialled */
} MkLinkError;

/* Frame types of the handshake; callers' frame types are 4 and up. */
enum { MK_LINK_FRAME_HELLO = 1, MK_LINK_FRAME_AUTH = 2, MK_LINK_FRAME_OK = 3 };

/* This side of links called @what in logs ("cluster"): its @name, the
 * @secret (16 characters or more), and when @certfile is set TLS with
 * @certfile/@keyfile (PEM) whose peers must present a certificate that
 * @cafile (PEM, required then) signed. NULL with @error naming the file.
 * Free with mk_link_auth_free after every MkLinkIo made from it. Any
 * thread; read-only afterwards. */
MK_API MkLinkAuth *mk_link_auth_new(const char *what, const char *name, const char *secret,
                                    const char *certfile, const char *keyfile, const char *cafile,
                                    GError **error);
MK_API gboolean mk_link_auth_tls(const MkLinkAuth *auth);
MK_API void mk_link_auth_free(MkLinkAuth *auth);

/* A connection on the connected (or connecting) non-blocking socket @fd,
 * which it owns from now on. @dialer: this side connected; @expect_peer
 * (dialer, nullable): the name the acceptor must announce. One thread at
 * a time, but for mk_link_io_send and mk_link_io_recv once up (below). */
MK_API MkLinkIo *mk_link_io_new(MkLinkAuth *auth, int fd, gboolean dialer, const char *expect_peer);
/* Closes the socket and frees. */
MK_API void mk_link_io_free(MkLinkIo *io);
MK_API int mk_link_io_fd(const MkLinkIo *io);
/* The peer's name once up, else NULL. */
MK_API const char *mk_link_io_peer(const MkLinkIo *io);
/* Moves the handshake on as far as the socket allows: 1 when the link is
 * up (authenticated both ways), 0 to be called again when the socket is
 * ready for mk_link_io_wants(), -1 with @error (MK_LINK_ERROR) when the
 * peer is refused or gone. Bytes that came after the handshake are
 * moved to @in. */
MK_API int mk_link_io_handshake(MkLinkIo *io, GByteArray *in, GError **error);
/* G_IO_IN, with G_IO_OUT while the handshake has bytes to write. */
MK_API GIOCondition mk_link_io_wants(const MkLinkIo *io);
/* Once up: as send(2)/recv(2) on a non-blocking socket (-1 with errno
 * EAGAIN when it would block; 0 from recv: closed). With TLS, a send that
 * returned EAGAIN must be retried with the same bytes first, and recv
 * must be called until EAGAIN (records may wait inside GnuTLS). One
 * sending thread and one receiving thread at a time; with TLS the caller
 * serialises the two (one lock). */
MK_API gssize mk_link_io_send(MkLinkIo *io, const void *data, gsize len);
MK_API gssize mk_link_io_recv(MkLinkIo *io, void *buf, gsize len);

/* Appends a frame of @type with the fields @a, @b, @c (nullable; a field
 * is left out with every field after it NULL) to @buf. Any thread. */
MK_API void mk_link_frame_append(GByteArray *buf, guint8 type, const char *a, const char *b,
                                 const char *c);
/* Splits a frame's payload into at most @max fields (the last one keeps
 * any NULs): pointers into @data and lengths. Returns how many. */
MK_API guint mk_link_frame_fields(const char *data, gsize len, const char **out, gsize *lens,
                                  guint max);
/* The next complete frame in @buf from @*off: its type, payload and
 * length; @*off moves past it. 1: a frame, 0: incomplete, -1: a length
 * over @max (drop the link). */
MK_API int mk_link_frame_next(const GByteArray *buf, guint *off, guint32 max, guint8 *type,
                              const char **data, gsize *len);

G_END_DECLS
