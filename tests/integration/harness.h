/* The integration test harness: a real meerkatd on loopback, driven by
 * libstrophe clients, with TAP output.
 *
 * A test program is one scenario group:
 *
 *   int main(void)
 *   {
 *       mkt_init("test-routing", 120);
 *       const char *mods[] = {"mod_roster", NULL};
 *       MktServer *srv = mkt_server_start("[auth]\nmechanisms = PLAIN\n", mods);
 *       mkt_ok(srv != NULL, "server starts");
 *       mkt_server_register(srv, "alice", "secret");
 *       MktClient *a = mkt_client_connect(srv, "alice@localhost/r1", "secret", 0, NULL);
 *       mkt_client_send(a, "<message to='%s' type='chat'><body>hi</body></message>", jid);
 *       xmpp_stanza_t *st = mkt_client_wait(b, "message type=chat >body", 5000);
 *       mkt_ok(st != NULL, "message arrives");
 *       ...
 *       mkt_server_stop(srv);
 *       return mkt_done();
 *   }
 *
 * Everything runs on one thread: waiting on one client pumps the event
 * loops of every live client, so a stanza sent by A to B is read by B
 * while the test waits on A. Nothing here is thread-safe.
 *
 * Environment: MK_TOP_BUILDDIR (meerkatd, meerkatctl, modules/.libs) and
 * MK_TOP_SRCDIR (conf.d/available, tests/pg-tmp.sh), set by `make check`;
 * MK_KEEP_TMP=1 keeps every server's temporary directory. */
#pragma once

#include <glib.h>
#include <strophe.h>

G_BEGIN_DECLS

/* ---- TAP --------------------------------------------------------------- */

/* Starts the TAP output of program @name, and arms an alarm of
 * @timeout_s seconds after which the program prints a failing test
 * case with the name "timeout" and exits (a hung server must not hang
 * `make check`). Call first. */
void mkt_init(const char *name, guint timeout_s);

/* Prints "ok N - NAME" or "not ok N - NAME"; NAME is printf-formatted.
 * Returns @cond so checks can guard the ones that depend on them. */
gboolean mkt_ok(gboolean cond, const char *fmt, ...) G_GNUC_PRINTF(2, 3);

/* Prints "ok N - NAME # SKIP REASON" (counted as skipped, not failed). */
void mkt_skip(const char *reason, const char *fmt, ...) G_GNUC_PRINTF(2, 3);

/* Prints "# TEXT" for each line of the formatted text (diagnostics). */
void mkt_diag(const char *fmt, ...) G_GNUC_PRINTF(1, 2);

/* Prints the plan "1..N" (N = cases printed) and returns the exit status:
 * 0 when every case passed, 1 otherwise. `return mkt_done();` from main. */
int mkt_done(void);

/* ---- servers ----------------------------------------------------------- */

typedef struct MktServer MktServer;

/* Writes a configuration into a new temporary directory and starts
 * meerkatd on it. The configuration has: hosts = localhost, sqlite in
 * DIR/state, log_level = debug, module_dir = BUILDDIR/modules/.libs,
 * [auth] mechanisms = PLAIN;SCRAM-SHA-1;SCRAM-SHA-256, and a listener
 * [listen.c2s] on 127.0.0.1:PORT (a free port) with tls = optional.
 * @extra_conf (nullable) is appended: a section named again there is
 * merged by GKeyFile, later keys winning, so it can override any key
 * above. @modules (nullable, NULL-terminated) names modules whose
 * conf.d/available/NAME.conf is copied into DIR/conf.d/.
 * Waits until the port accepts connections (10 s at most).
 * Returns: (transfer full) (nullable) the server, or NULL (the failure
 * and the tail of the log printed as TAP diagnostics). */
MktServer *mkt_server_start(const char *extra_conf, const char *const *modules);

/* Like mkt_server_start, but does not start meerkatd: for tests that
 * edit the directory first or run meerkatd themselves. Start it with
 * mkt_server_launch. (transfer full) */
MktServer *mkt_server_prepare(const char *extra_conf, const char *const *modules);
/* Starts meerkatd on a prepared server and waits for its port.
 * FALSE (with diagnostics) when it exits or does not listen in time. */
gboolean mkt_server_launch(MktServer *srv);

/* SIGTERM, wait (5 s, then SIGKILL), remove the directory. When any
 * test case of the program has failed so far, or the server died by a
 * signal or exited non-zero, the log's tail is printed as diagnostics
 * and the directory is kept. Returns TRUE when meerkatd exited with 0.
 * (transfer full) @srv is freed. */
gboolean mkt_server_stop(MktServer *srv);

/* Stops meerkatd (SIGTERM, wait) and starts it again on the same
 * directory, configuration and port. FALSE when it did not exit
 * cleanly or did not come back. */
gboolean mkt_server_restart(MktServer *srv);

/* The exit code of meerkatd once it has exited (its process is reaped
 * here), 128+N when killed by signal N, or -1 while it runs or before
 * it was launched. */
int mkt_server_exit_code(MktServer *srv);

/* SIGHUP: reload the configuration. Waits @settle_ms afterwards. */
void mkt_server_reload(MktServer *srv, guint settle_ms);

/* TRUE while the meerkatd process has not exited. */
gboolean mkt_server_alive(MktServer *srv);

guint16 mkt_server_port(MktServer *srv);
/* (transfer none) DIR/meerkat.conf, DIR, DIR/conf.d, DIR/meerkatd.log. */
const char *mkt_server_conf_path(MktServer *srv);
const char *mkt_server_dir(MktServer *srv);
const char *mkt_server_confd(MktServer *srv);
const char *mkt_server_log_path(MktServer *srv);
/* (transfer full) The whole log so far. */
char *mkt_server_log(MktServer *srv);

/* Runs `meerkatctl -c CONF register USER localhost PASSWORD`.
 * TRUE on exit status 0; otherwise its output goes to diagnostics. */
gboolean mkt_server_register(MktServer *srv, const char *user, const char *password);

/* Copies conf.d/available/@module.conf into the server's conf.d (it
 * takes effect at the next start or reload). */
gboolean mkt_server_enable_module(MktServer *srv, const char *module);

/* (transfer full) Absolute paths of the build: BUILDDIR/core/meerkatd,
 * BUILDDIR/tools/meerkatctl, SRCDIR/FILE. */
char *mkt_meerkatd_path(void);
char *mkt_meerkatctl_path(void);
char *mkt_srcdir_path(const char *file);
char *mkt_builddir_path(const char *file);

/* Runs @argv (NULL-terminated) to completion, stdout and stderr merged
 * into *@output (nullable). Returns the exit status, or -1 when it
 * could not run or died by a signal. */
int mkt_run(const char *const *argv, char **output);

/* ---- clients ----------------------------------------------------------- */

typedef struct MktClient MktClient;

enum {
    MKT_MANDATORY_TLS = 1 << 0, /* refuse to go on without STARTTLS */
    MKT_DISABLE_TLS = 1 << 1,   /* never STARTTLS */
    MKT_DIRECT_TLS = 1 << 2,    /* TLS from the first byte (tls = direct) */
    MKT_NO_WAIT = 1 << 3,       /* return before the session is up */
    MKT_ENABLE_SM = 1 << 4,     /* let libstrophe use XEP-0198 when offered */
};

/* Connects to @srv with libstrophe as @jid (bare for a server-generated
 * resource, or full) and @password (nullable: ANONYMOUS when @jid is a
 * bare domain), authenticates, binds and waits for the session (10 s).
 * The server's certificate is always trusted (it is self-signed).
 * Returns: (transfer full) (nullable) a connected client, or NULL with
 * a reason in *@why (transfer full, nullable) such as
 * "stream error: conflict" or "disconnected: ...".
 * Every stanza received after authentication is queued for
 * mkt_client_wait. */
MktClient *mkt_client_connect(MktServer *srv, const char *jid, const char *password, guint flags,
                              char **why);

/* Sends raw XML (printf-formatted). */
void mkt_client_send(MktClient *c, const char *fmt, ...) G_GNUC_PRINTF(2, 3);

/* (transfer none) The bound full JID, or NULL before binding. */
const char *mkt_client_jid(MktClient *c);
/* TRUE while the stream is up. */
gboolean mkt_client_connected(MktClient *c);
/* TRUE when the stream is under TLS. */
gboolean mkt_client_secured(MktClient *c);
/* (transfer none) (nullable) The stream error condition the server sent
 * ("conflict", "not-well-formed", ...), once the client saw one. */
const char *mkt_client_stream_error(MktClient *c);
/* (transfer none) Everything libstrophe read from the server so far,
 * as it logged it (one line per element, "RECV: ..."). */
const char *mkt_client_received_log(MktClient *c);

/* A match spec is a space-separated string:
 *   ELEMENT       first token: element name, or "*" for any
 *   attr=value    the stanza has that attribute value
 *   attr=         the stanza has no such attribute (or an empty one)
 *   >child        a child element with that name
 *   >{NS}         a child element in namespace NS
 *   >{NS}child    a child element with that name in namespace NS
 * e.g. "iq type=result id=p1", "message from=alice@localhost/r1 >body",
 *      "iq type=error >{urn:ietf:params:xml:ns:xmpp-stanzas}service-unavailable"
 * (the last one also looks one level down, inside <error/>).
 * Values cannot contain spaces. */
gboolean mkt_stanza_matches(xmpp_stanza_t *st, const char *spec);

/* Waits until a queued stanza matches @spec (pumping every client),
 * removes it from the queue and returns it; NULL after @timeout_ms.
 * Returns: (transfer full) (nullable) release with xmpp_stanza_release. */
xmpp_stanza_t *mkt_client_wait(MktClient *c, const char *spec, guint timeout_ms);

/* Like mkt_client_wait with a predicate. */
typedef gboolean (*MktPredicate)(xmpp_stanza_t *st, gpointer data);
xmpp_stanza_t *mkt_client_wait_pred(MktClient *c, MktPredicate pred, gpointer data,
                                    guint timeout_ms);

/* Pumps for @ms and returns TRUE when no stanza matching @spec arrived
 * (a matching one is removed from the queue). */
gboolean mkt_client_expect_nothing(MktClient *c, const char *spec, guint ms);

/* Waits until the stream is closed by the server (or @timeout_ms).
 * Returns TRUE when it closed. */
gboolean mkt_client_wait_closed(MktClient *c, guint timeout_ms);

/* Drops every queued stanza. */
void mkt_client_flush(MktClient *c);

/* Pumps every live client for @ms milliseconds. */
void mkt_pump(guint ms);

/* Closes the stream (</stream:stream>), waits up to 2 s for the server
 * to close, frees. (transfer full) @c; NULL is ignored. */
void mkt_client_disconnect(MktClient *c);

/* (transfer full) The stanza as XML text. */
char *mkt_stanza_xml(xmpp_stanza_t *st);
/* (transfer none) (nullable) An attribute of @st. */
const char *mkt_stanza_attr(xmpp_stanza_t *st, const char *name);
/* (transfer full) (nullable) The text of child @name (e.g. "body"). */
char *mkt_stanza_child_text(xmpp_stanza_t *st, const char *name);

/* ---- raw TCP ----------------------------------------------------------- */

typedef struct MktRaw MktRaw;

/* A plain TCP connection to 127.0.0.1:@port. (transfer full) (nullable) */
MktRaw *mkt_raw_connect(guint16 port);
/* Writes @len bytes (-1: strlen). FALSE when the write failed. */
gboolean mkt_raw_write(MktRaw *r, const char *data, gssize len);
/* Reads until @needle appears in everything read so far, the peer
 * closes, or @timeout_ms pass. TRUE when @needle was seen (a NULL
 * @needle waits for the close and returns TRUE when it came). */
gboolean mkt_raw_read_until(MktRaw *r, const char *needle, guint timeout_ms);
/* TRUE once the peer closed the connection (EOF or reset). */
gboolean mkt_raw_closed(MktRaw *r);
/* (transfer none) Everything read so far, NUL-terminated. */
const char *mkt_raw_data(MktRaw *r);
/* Forgets what was read so far. */
void mkt_raw_clear(MktRaw *r);
void mkt_raw_free(MktRaw *r);

/* The opening a client sends: "<?xml version='1.0'?><stream:stream
 * to='localhost' xmlns='jabber:client' xmlns:stream=... version='1.0'>". */
#define MKT_STREAM_HEADER                                                                          \
    "<?xml version='1.0'?><stream:stream to='localhost' xmlns='jabber:client' "                    \
    "xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>"

/* Opens a raw stream on a tls=none or tls=optional listener, logs in
 * with SASL PLAIN (no TLS), restarts the stream and binds @resource.
 * Returns: (transfer full) (nullable) the raw connection, with the bind
 * result already consumed (mkt_raw_data is cleared). */
MktRaw *mkt_raw_login(guint16 port, const char *user, const char *password, const char *resource);

/* ---- SCRAM-*-PLUS (sasl-plus-client.c) --------------------------------- */

typedef enum {
    MKT_CB_GOOD,  /* the channel's real binding data */
    MKT_CB_WRONG, /* random bytes instead: the server must refuse */
    /* No binding: a SCRAM-SHA-256 exchange (computed by hand, GNU SASL's
     * client does not produce it) with the gs2 flag 'y', "I could bind
     * but you seem unable to": a downgrade the server must refuse when
     * it offered -PLUS on the stream, and accept otherwise. */
    MKT_CB_CLAIM_Y,
} MktCbMode;

/* Connects to 127.0.0.1:@port, STARTTLS (TLS 1.3, or at most TLS 1.2
 * when @tls12), then authenticates as @user@localhost with @mechanism
 * ("SCRAM-SHA-256-PLUS", "SCRAM-SHA-1-PLUS", ...) through GNU SASL,
 * with channel binding tls-exporter (TLS 1.3) or tls-unique (TLS 1.2).
 * Returns TRUE when the server answered <success/> and its final
 * message verified. *@detail (transfer full, nullable) describes what
 * happened: "success", "failure: not-authorized", "mechanism not
 * offered", a TLS or SASL error... */
gboolean mkt_sasl_plus_login(guint16 port, const char *user, const char *password,
                             const char *mechanism, gboolean tls12, MktCbMode cb, char **detail);

G_END_DECLS
