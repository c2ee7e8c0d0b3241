/* SASL exchanges between GNU SASL's client side and Meerkat's server side
 * (core/sasl.c, core/scram-server.c) with accounts stored in a real
 * sqlite database. */
#include "auth.h"
#include "conffile.h"
#include "db.h"
#include "sasl.h"
#include <gsasl.h>

typedef struct {
    char *dir;
    MkConfigData *cfg;
    MkDb *db;
    MkSasl *sasl;
    Gsasl *client;
} Fixture;

static void fixture_setup(Fixture *f, gconstpointer data)
{
    g_autoptr(GError) error = NULL;
    f->dir = g_dir_make_tmp("mk-sasl-XXXXXX", &error);
    g_assert_no_error(error);
    g_autofree char *conf = g_build_filename(f->dir, "meerkat.conf", NULL);
    g_autofree char *text = g_strdup_printf(
        "[general]\nhosts = localhost\nstate_dir = %s\n[storage]\ndriver = sqlite3\n", f->dir);
    g_assert_true(g_file_set_contents(conf, text, -1, NULL));
    f->cfg = mk_config_load(conf, &error);
    g_assert_no_error(error);
    f->db = mk_db_open(f->cfg, &error);
    g_assert_no_error(error);
    g_assert_true(mk_db_migrate(f->db, "core", mk_core_migrations, &error));
    MkDbConn *conn = mk_db_acquire(f->db, &error);
    g_assert_no_error(error);
    g_assert_true(mk_auth_register(conn, "juliet", "localhost", "r0m3o!", FALSE, 4096, &error));
    g_assert_no_error(error);
    /* A plain-format account (password_format = plain). */
    g_assert_true(mk_auth_register(conn, "romeo", "localhost", "j4l13t", TRUE, 4096, &error));
    g_assert_no_error(error);
    mk_db_release(f->db, conn);
    f->sasl = mk_sasl_new(f->db, 4096, data != NULL, &error);
    g_assert_no_error(error);
    g_assert_cmpint(gsasl_init(&f->client), ==, GSASL_OK);
}

static void fixture_teardown(Fixture *f, gconstpointer data)
{
    gsasl_done(f->client);
    mk_sasl_free(f->sasl);
    mk_db_close(f->db);
    mk_config_free(f->cfg);
    g_autofree char *cmd = g_strdup_printf("rm -rf '%s'", f->dir);
    g_assert_cmpint(system(cmd), ==, 0);
    g_free(f->dir);
}

/* Runs a whole exchange; returns the server's final status. */
static MkSaslStatus run_exchange_authzid(Fixture *f, const char *mech, const char *user,
                                         const char *authzid, const char *password,
                                         const char *server_cb_type, const char *server_cb,
                                         const char *client_cb, char **condition)
{
    Gsasl_session *cs = NULL;
    g_assert_cmpint(gsasl_client_start(f->client, mech, &cs), ==, GSASL_OK);
    if (user)
        gsasl_property_set(cs, GSASL_AUTHID, user);
    if (authzid)
        gsasl_property_set(cs, GSASL_AUTHZID, authzid);
    if (password)
        gsasl_property_set(cs, GSASL_PASSWORD, password);
    if (g_str_equal(mech, "ANONYMOUS"))
        gsasl_property_set(cs, GSASL_ANONYMOUS_TOKEN, "guest");
    if (client_cb) {
        g_autofree char *b64 = g_base64_encode((const guchar *)client_cb, strlen(client_cb));
        gsasl_property_set(cs, GSASL_CB_TLS_EXPORTER, b64);
    }
    g_autoptr(GBytes) cb = server_cb ? g_bytes_new(server_cb, strlen(server_cb)) : NULL;
    MkSaslSession *ss = mk_sasl_session_new(f->sasl, mech, "localhost", server_cb_type, cb);
    g_assert_nonnull(ss);

    char *client_out = NULL;
    int crc = gsasl_step64(cs, "", &client_out);
    MkSaslStatus status = MK_SASL_FAILURE;
    for (int round = 0; round < 5; round++) {
        g_assert_true(crc == GSASL_OK || crc == GSASL_NEEDS_MORE);
        MkSaslResult r;
        mk_sasl_step(ss, client_out, &r);
        gsasl_free(client_out);
        client_out = NULL;
        status = r.status;
        if (condition && r.condition)
            *condition = g_strdup(r.condition);
        if (r.status == MK_SASL_SUCCESS) {
            g_assert_cmpstr(r.username, !=, NULL);
            /* SCRAM's server-final message must verify on the client. */
            if (r.out_b64)
                g_assert_cmpint(gsasl_step64(cs, r.out_b64, &client_out), ==, GSASL_OK);
            gsasl_free(client_out);
            client_out = NULL;
        }
        if (r.status != MK_SASL_CONTINUE) {
            mk_sasl_result_clear(&r);
            break;
        }
        crc = gsasl_step64(cs, r.out_b64, &client_out);
        mk_sasl_result_clear(&r);
    }
    gsasl_free(client_out);
    mk_sasl_session_free(ss);
    gsasl_finish(cs);
    return status;
}

static MkSaslStatus run_exchange(Fixture *f, const char *mech, const char *user,
                                 const char *password, const char *server_cb_type,
                                 const char *server_cb, const char *client_cb, char **condition)
{
    return run_exchange_authzid(f, mech, user, NULL, password, server_cb_type, server_cb, client_cb,
                                condition);
}

static void test_mechanisms_succeed(Fixture *f, gconstpointer data)
{
    const char *mechs[] = {"PLAIN", "SCRAM-SHA-1", "SCRAM-SHA-256"};
    for (guint i = 0; i < G_N_ELEMENTS(mechs); i++) {
        g_test_message("mechanism %s", mechs[i]);
        g_assert_cmpint(run_exchange(f, mechs[i], "juliet", "r0m3o!", NULL, NULL, NULL, NULL), ==,
                        MK_SASL_SUCCESS);
    }
}

static void test_wrong_password(Fixture *f, gconstpointer data)
{
    const char *mechs[] = {"PLAIN", "SCRAM-SHA-1", "SCRAM-SHA-256"};
    for (guint i = 0; i < G_N_ELEMENTS(mechs); i++) {
        g_autofree char *cond = NULL;
        g_assert_cmpint(run_exchange(f, mechs[i], "juliet", "wrong", NULL, NULL, NULL, &cond), ==,
                        MK_SASL_FAILURE);
        g_assert_cmpstr(cond, ==, "not-authorized");
    }
}

static void test_unknown_user(Fixture *f, gconstpointer data)
{
    const char *mechs[] = {"PLAIN", "SCRAM-SHA-256"};
    for (guint i = 0; i < G_N_ELEMENTS(mechs); i++) {
        g_autofree char *cond = NULL;
        g_assert_cmpint(run_exchange(f, mechs[i], "nobody", "x", NULL, NULL, NULL, &cond), ==,
                        MK_SASL_FAILURE);
        g_assert_cmpstr(cond, ==, "not-authorized");
    }
}

static void test_channel_binding(Fixture *f, gconstpointer data)
{
    /* Same binding data on both ends: success. */
    g_assert_cmpint(run_exchange(f, "SCRAM-SHA-256-PLUS", "juliet", "r0m3o!", "tls-exporter",
                                 "binding-bytes-0123456789abcdef", "binding-bytes-0123456789abcdef",
                                 NULL),
                    ==, MK_SASL_SUCCESS);
    /* The client saw another TLS session (a man in the middle): failure. */
    g_assert_cmpint(run_exchange(f, "SCRAM-SHA-256-PLUS", "juliet", "r0m3o!", "tls-exporter",
                                 "binding-bytes-0123456789abcdef", "other-bytes-0123456789abcdefgh",
                                 NULL),
                    ==, MK_SASL_FAILURE);
}

/* SCRAM's authzid (a=): the account itself, as a bare JID or localpart. */
static void test_scram_authzid(Fixture *f, gconstpointer data)
{
    const char *ok[] = {"juliet@localhost", "juliet"};
    for (guint i = 0; i < G_N_ELEMENTS(ok); i++)
        g_assert_cmpint(run_exchange_authzid(f, "SCRAM-SHA-256", "juliet", ok[i], "r0m3o!", NULL,
                                             NULL, NULL, NULL),
                        ==, MK_SASL_SUCCESS);
    g_autofree char *cond = NULL;
    g_assert_cmpint(run_exchange_authzid(f, "SCRAM-SHA-256", "juliet", "romeo@localhost", "r0m3o!",
                                         NULL, NULL, NULL, &cond),
                    ==, MK_SASL_FAILURE);
    g_assert_cmpstr(cond, ==, "invalid-authzid");
}

/* One step with the raw (not yet base64) @msg. */
static MkSaslStatus raw_step(MkSaslSession *ss, const char *msg, MkSaslResult *r)
{
    g_autofree char *b64 = g_base64_encode((const guchar *)msg, strlen(msg));
    mk_sasl_step(ss, b64, r);
    return r->status;
}

/* A client that could bind says 'y' with a mechanism without -PLUS: a
 * downgrade when the stream offered -PLUS (c2s then gives the session
 * the binding), fine otherwise. */
static void test_y_flag(Fixture *f, gconstpointer data)
{
    const char *mechs[] = {"SCRAM-SHA-1", "SCRAM-SHA-256"};
    g_autoptr(GBytes) cb = g_bytes_new_static("binding-bytes", 13);
    for (guint i = 0; i < G_N_ELEMENTS(mechs); i++) {
        MkSaslSession *ss = mk_sasl_session_new(f->sasl, mechs[i], "localhost", "tls-exporter", cb);
        MkSaslResult r;
        g_assert_cmpint(raw_step(ss, "y,,n=juliet,r=abc", &r), ==, MK_SASL_FAILURE);
        g_assert_cmpstr(r.condition, ==, "not-authorized");
        mk_sasl_result_clear(&r);
        mk_sasl_session_free(ss);
        ss = mk_sasl_session_new(f->sasl, mechs[i], "localhost", NULL, NULL);
        g_assert_cmpint(raw_step(ss, "y,,n=juliet,r=abc", &r), ==, MK_SASL_CONTINUE);
        mk_sasl_result_clear(&r);
        mk_sasl_session_free(ss);
    }
}

/* The server-first message for @user, decoded. (transfer full) */
static char *scram_challenge(Fixture *f, const char *user)
{
    MkSaslSession *ss = mk_sasl_session_new(f->sasl, "SCRAM-SHA-256", "localhost", NULL, NULL);
    g_autofree char *cf = g_strdup_printf("n,,n=%s,r=clientnonce", user);
    MkSaslResult r;
    g_assert_cmpint(raw_step(ss, cf, &r), ==, MK_SASL_CONTINUE);
    gsize len = 0;
    g_autofree guchar *sf = g_base64_decode(r.out_b64, &len);
    mk_sasl_result_clear(&r);
    mk_sasl_session_free(ss);
    return g_strndup((const char *)sf, len);
}

/* "r=NONCE,s=SALT,i=N" -> the salt. (transfer full) */
static char *salt_of(const char *server_first)
{
    g_auto(GStrv) parts = g_strsplit(server_first, ",", -1);
    g_assert_cmpuint(g_strv_length(parts), ==, 3);
    g_assert_true(g_str_has_prefix(parts[0], "r=clientnonce"));
    g_assert_cmpuint(strlen(parts[0]), ==, strlen("r=clientnonce") + 24);
    g_assert_true(g_str_has_prefix(parts[1], "s="));
    g_assert_cmpstr(parts[2], ==, "i=4096");
    return g_strdup(parts[1] + 2);
}

/* An unknown user gets a challenge shaped like a real one (a 16-byte
 * salt, stable per name, the same iterations), then not-authorized
 * (/sasl/unknown-user). */
static void test_unknown_user_challenge(Fixture *f, gconstpointer data)
{
    g_autofree char *real = scram_challenge(f, "juliet");
    g_autofree char *fake = scram_challenge(f, "nobody");
    g_autofree char *fake2 = scram_challenge(f, "nobody");
    g_autofree char *other = scram_challenge(f, "somebody");
    g_autofree char *real_salt = salt_of(real);
    g_autofree char *fake_salt = salt_of(fake);
    g_autofree char *fake2_salt = salt_of(fake2);
    g_autofree char *other_salt = salt_of(other);
    g_assert_cmpuint(strlen(real_salt), ==, strlen(fake_salt));
    g_assert_cmpstr(fake_salt, ==, fake2_salt);
    g_assert_cmpstr(fake_salt, !=, other_salt);
    g_assert_cmpstr(fake_salt, !=, real_salt);
    /* A name nodeprep refuses ('@') is answered the same way. */
    g_autofree char *bad = scram_challenge(f, "no@body");
    g_free(salt_of(bad));
}

/* Which steps may run on a worker: SCRAM's after the challenge and
 * ANONYMOUS; not PLAIN nor SCRAM's first (they read the account). */
static void test_step_blocks(Fixture *f, gconstpointer data)
{
    MkSaslSession *ss = mk_sasl_session_new(f->sasl, "SCRAM-SHA-256", "localhost", NULL, NULL);
    MkSaslResult r;
    g_assert_true(mk_sasl_step_blocks(ss));
    mk_sasl_step(ss, "=", &r); /* no initial response */
    g_assert_cmpint(r.status, ==, MK_SASL_CONTINUE);
    mk_sasl_result_clear(&r);
    g_assert_true(mk_sasl_step_blocks(ss));
    g_assert_cmpint(raw_step(ss, "n,,n=juliet,r=abc", &r), ==, MK_SASL_CONTINUE);
    mk_sasl_result_clear(&r);
    g_assert_false(mk_sasl_step_blocks(ss));
    mk_sasl_session_free(ss);
    ss = mk_sasl_session_new(f->sasl, "PLAIN", "localhost", NULL, NULL);
    g_assert_true(mk_sasl_step_blocks(ss));
    mk_sasl_session_free(ss);
    ss = mk_sasl_session_new(f->sasl, "ANONYMOUS", "localhost", NULL, NULL);
    g_assert_false(mk_sasl_step_blocks(ss));
    mk_sasl_session_free(ss);
    g_assert_null(mk_sasl_session_new(f->sasl, "CRAM-MD5", "localhost", NULL, NULL));
    g_assert_false(mk_sasl_supports(f->sasl, "DIGEST-MD5"));
    g_assert_true(mk_sasl_supports(f->sasl, "SCRAM-SHA-256-PLUS"));
}

/* Malformed SCRAM messages: malformed-request, as GNU SASL answered. */
static void test_scram_malformed(Fixture *f, gconstpointer data)
{
    const char *first[] = {"n,,n=juliet", "m=x,n=juliet,r=abc", "n,,n=juliet,r=abc,m=x"};
    for (guint i = 0; i < G_N_ELEMENTS(first); i++) {
        MkSaslSession *ss = mk_sasl_session_new(f->sasl, "SCRAM-SHA-256", "localhost", NULL, NULL);
        MkSaslResult r;
        g_assert_cmpint(raw_step(ss, first[i], &r), ==, MK_SASL_FAILURE);
        g_assert_cmpstr(r.condition, ==, "malformed-request");
        mk_sasl_result_clear(&r);
        mk_sasl_session_free(ss);
    }
    /* Not base64. */
    MkSaslSession *ss = mk_sasl_session_new(f->sasl, "SCRAM-SHA-1", "localhost", NULL, NULL);
    MkSaslResult r;
    mk_sasl_step(ss, "bi!s", &r);
    g_assert_cmpint(r.status, ==, MK_SASL_FAILURE);
    g_assert_cmpstr(r.condition, ==, "malformed-request");
    mk_sasl_result_clear(&r);
    mk_sasl_session_free(ss);
}

static void test_anonymous(Fixture *f, gconstpointer data)
{
    g_assert_cmpint(run_exchange(f, "ANONYMOUS", NULL, NULL, NULL, NULL, NULL, NULL), ==,
                    MK_SASL_SUCCESS);
}

/* One PLAIN message (RFC 4616) of @len raw bytes through mk_sasl_step. */
static MkSaslStatus plain_raw(Fixture *f, const char *raw, gsize len, char **condition)
{
    MkSaslSession *ss = mk_sasl_session_new(f->sasl, "PLAIN", "localhost", NULL, NULL);
    g_autofree char *b64 = g_base64_encode((const guchar *)raw, len);
    MkSaslResult r;
    mk_sasl_step(ss, b64, &r);
    MkSaslStatus st = r.status;
    if (st == MK_SASL_SUCCESS)
        g_assert_cmpstr(r.username, ==, "juliet");
    if (condition)
        *condition = g_strdup(r.condition);
    mk_sasl_result_clear(&r);
    mk_sasl_session_free(ss);
    return st;
}

#define PLAIN_MSG(s) plain_raw(f, s, sizeof s - 1, &cond)

/* PLAIN's message format and authorization identity (RFC 4616, RFC 6120
 * 6.3.8): only the account itself may be the authzid. */
static void test_plain_messages(Fixture *f, gconstpointer data)
{
    g_autofree char *cond = NULL;
    g_assert_cmpint(PLAIN_MSG("\0juliet\0r0m3o!"), ==, MK_SASL_SUCCESS);
    g_assert_cmpint(PLAIN_MSG("juliet\0juliet\0r0m3o!"), ==, MK_SASL_SUCCESS);
    g_assert_cmpint(PLAIN_MSG("juliet@localhost\0Juliet\0r0m3o!"), ==, MK_SASL_SUCCESS);
    g_clear_pointer(&cond, g_free);
    g_assert_cmpint(PLAIN_MSG("romeo@localhost\0juliet\0r0m3o!"), ==, MK_SASL_FAILURE);
    g_assert_cmpstr(cond, ==, "invalid-authzid");
    g_clear_pointer(&cond, g_free);
    g_assert_cmpint(PLAIN_MSG("\0juliet\0r0m3o"), ==, MK_SASL_FAILURE);
    g_assert_cmpstr(cond, ==, "not-authorized");
    /* Malformed: one NUL, three NULs, empty authcid or password, not UTF-8. */
    const char *bad[] = {"juliet\0r0m3o!", "\0juliet\0r0m3o!\0x", "\0\0r0m3o!", "\0juliet\0",
                         "\0juliet\0\xff\xfe"};
    const gsize bad_len[] = {13, 16, 8, 8, 10};
    for (guint i = 0; i < G_N_ELEMENTS(bad); i++) {
        g_clear_pointer(&cond, g_free);
        g_assert_cmpint(plain_raw(f, bad[i], bad_len[i], &cond), ==, MK_SASL_FAILURE);
        g_assert_cmpstr(cond, ==, "malformed-request");
    }
    /* No initial response: an empty challenge, then the credentials. */
    MkSaslSession *ss = mk_sasl_session_new(f->sasl, "PLAIN", "localhost", NULL, NULL);
    MkSaslResult r;
    mk_sasl_step(ss, NULL, &r);
    g_assert_cmpint(r.status, ==, MK_SASL_CONTINUE);
    mk_sasl_result_clear(&r);
    g_autofree char *b64 = g_base64_encode((const guchar *)"\0juliet\0r0m3o!", 14);
    mk_sasl_step(ss, b64, &r);
    g_assert_cmpint(r.status, ==, MK_SASL_SUCCESS);
    mk_sasl_result_clear(&r);
    mk_sasl_session_free(ss);
}

static const char *all_mechs[] = {"PLAIN", "SCRAM-SHA-1", "SCRAM-SHA-256"};

/* password_format = plain: plain accounts log in with every mechanism
 * (PLAIN without a key derivation, SCRAM from keys derived at login);
 * SCRAM-only accounts still work; unknown users are refused. */
static void test_plain_format(Fixture *f, gconstpointer data)
{
    for (guint i = 0; i < G_N_ELEMENTS(all_mechs); i++) {
        g_test_message("mechanism %s", all_mechs[i]);
        g_assert_cmpint(run_exchange(f, all_mechs[i], "romeo", "j4l13t", NULL, NULL, NULL, NULL),
                        ==, MK_SASL_SUCCESS);
        g_assert_cmpint(run_exchange(f, all_mechs[i], "romeo", "wrong", NULL, NULL, NULL, NULL), ==,
                        MK_SASL_FAILURE);
        g_assert_cmpint(run_exchange(f, all_mechs[i], "juliet", "r0m3o!", NULL, NULL, NULL, NULL),
                        ==, MK_SASL_SUCCESS);
        g_autofree char *cond = NULL;
        g_assert_cmpint(run_exchange(f, all_mechs[i], "nobody", "x", NULL, NULL, NULL, &cond), ==,
                        MK_SASL_FAILURE);
        g_assert_cmpstr(cond, ==, "not-authorized");
    }
}

/* The stored plain password is the truth, also for SCRAM: an operator
 * who sets it by hand leaves the stored keys stale. */
static void test_plain_set_by_hand(Fixture *f, gconstpointer data)
{
    g_autoptr(GError) error = NULL;
    MkDbConn *conn = mk_db_acquire(f->db, &error);
    g_assert_no_error(error);
    g_autoptr(MkDbResult) r =
        mk_db_conn_query(conn, &error, "UPDATE users SET plain_password = ? WHERE username = ?",
                         MK_DB_STR("h4nd-s3t"), MK_DB_STR("romeo"));
    g_assert_no_error(error);
    mk_db_release(f->db, conn);
    for (guint i = 0; i < G_N_ELEMENTS(all_mechs); i++) {
        g_test_message("mechanism %s", all_mechs[i]);
        g_assert_cmpint(run_exchange(f, all_mechs[i], "romeo", "h4nd-s3t", NULL, NULL, NULL, NULL),
                        ==, MK_SASL_SUCCESS);
        g_assert_cmpint(run_exchange(f, all_mechs[i], "romeo", "j4l13t", NULL, NULL, NULL, NULL),
                        ==, MK_SASL_FAILURE);
    }
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
#define ADD(path, fn) g_test_add(path, Fixture, NULL, fixture_setup, fn, fixture_teardown)
    ADD("/sasl/mechanisms-succeed", test_mechanisms_succeed);
    ADD("/sasl/wrong-password", test_wrong_password);
    ADD("/sasl/unknown-user", test_unknown_user);
    ADD("/sasl/channel-binding", test_channel_binding);
    ADD("/sasl/anonymous", test_anonymous);
    ADD("/sasl/scram/y-flag", test_y_flag);
    ADD("/sasl/scram/authzid", test_scram_authzid);
    ADD("/sasl/scram/unknown-user-challenge", test_unknown_user_challenge);
    ADD("/sasl/scram/malformed", test_scram_malformed);
    ADD("/sasl/step-blocks", test_step_blocks);
    ADD("/sasl/plain-messages", test_plain_messages);
    /* The same with a server configured for password_format = plain. */
#define ADD_PLAIN(path, fn)                                                                        \
    g_test_add(path, Fixture, GINT_TO_POINTER(1), fixture_setup, fn, fixture_teardown)
    ADD("/sasl/plain-account/scram-format-server", test_plain_format);
    ADD_PLAIN("/sasl/plain-account/plain-format-server", test_plain_format);
    ADD_PLAIN("/sasl/plain-account/set-by-hand", test_plain_set_by_hand);
    ADD_PLAIN("/sasl/plain-format/mechanisms-succeed", test_mechanisms_succeed);
    return g_test_run();
}
