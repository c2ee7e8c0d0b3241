/* Certificates: loading PEM files into GnuTLS credentials, and making a
 * self-signed certificate so that a fresh install speaks TLS at once. */
#include "tls.h"

#include <errno.h>
#include <gio/gio.h>
#include <glib/gstdio.h>
#include <gnutls/crypto.h>
#include <gnutls/x509.h>

#define SELFSIGNED_YEARS 10

static gboolean tls_fail(GError **error, const char *file, const char *what, int ret)
{
    g_set_error(error, G_IO_ERROR, G_IO_ERROR_FAILED, "%s: %s: %s", file, what,
                gnutls_strerror(ret));
    return FALSE;
}

static gboolean check_readable(const char *file, const char *what, GError **error)
{
    if (g_access(file, R_OK) != 0) {
        int e = errno;
        g_set_error(error, G_IO_ERROR, g_io_error_from_errno(e), "%s %s: %s", what, file,
                    g_strerror(e));
        return FALSE;
    }
    return TRUE;
}

/* See tls.h. Returns: (transfer full) or NULL. */
gnutls_certificate_credentials_t mk_tls_load(const char *certfile, const char *keyfile,
                                             GError **error)
{
    g_return_val_if_fail(certfile && keyfile, NULL);
    if (!check_readable(certfile, "certificate", error) || !check_readable(keyfile, "key", error))
        return NULL;

    gnutls_certificate_credentials_t creds;
    int ret = gnutls_certificate_allocate_credentials(&creds);
    if (ret < 0) {
        tls_fail(error, certfile, "allocating credentials", ret);
        return NULL;
    }
    ret = gnutls_certificate_set_x509_key_file2(creds, certfile, keyfile, GNUTLS_X509_FMT_PEM, NULL,
                                                0);
    if (ret < 0) {
        g_set_error(error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA, "certificate %s with key %s: %s",
                    certfile, keyfile, gnutls_strerror(ret));
        gnutls_certificate_free_credentials(creds);
        return NULL;
    }
    return creds;
}

static gboolean write_file(const char *file, const gnutls_datum_t *pem, int mode, GError **error)
{
    g_autofree char *dir = g_path_get_dirname(file);
    if (g_mkdir_with_parents(dir, 0750) != 0) {
        int e = errno;
        g_set_error(error, G_IO_ERROR, g_io_error_from_errno(e), "cannot create %s: %s", dir,
                    g_strerror(e));
        return FALSE;
    }
    g_autoptr(GError) local = NULL;
    if (!g_file_set_contents_full(file, (const char *)pem->data, pem->size,
                                  G_FILE_SET_CONTENTS_CONSISTENT, mode, &local)) {
        /* GLib's message already names the file. */
        g_propagate_error(error, g_steal_pointer(&local));
        return FALSE;
    }
    return TRUE;
}

static gboolean make_selfsigned(const char *certfile, const char *keyfile,
                                const char *const *domains, GError **error)
{
    gnutls_x509_privkey_t key = NULL;
    gnutls_x509_crt_t crt = NULL;
    gnutls_datum_t key_pem = {NULL, 0}, crt_pem = {NULL, 0};
    gboolean ok = FALSE;
    int ret;

#define TRY(call, file, what)                                                                      \
    do {                                                                                           \
        if ((ret = (call)) < 0) {                                                                  \
            tls_fail(error, file, what, ret);                                                      \
            goto out;                                                                              \
        }                                                                                          \
    } while (0)

    TRY(gnutls_x509_privkey_init(&key), keyfile, "key init");
    TRY(gnutls_x509_privkey_generate2(key, GNUTLS_PK_ECDSA,
                                      GNUTLS_CURVE_TO_BITS(GNUTLS_ECC_CURVE_SECP256R1), 0, NULL, 0),
        keyfile, "generating an ECDSA P-256 key");
    TRY(gnutls_x509_crt_init(&crt), certfile, "certificate init");
    TRY(gnutls_x509_crt_set_version(crt, 3), certfile, "version");

    guint8 serial[16];
    TRY(gnutls_rnd(GNUTLS_RND_NONCE, serial, sizeof serial), certfile, "random serial");
    serial[0] &= 0x7f; /* a positive INTEGER */
    serial[0] |= 0x01; /* and no leading zero octet */
    TRY(gnutls_x509_crt_set_serial(crt, serial, sizeof serial), certfile, "serial");

    time_t now = time(NULL);
    /* An hour back tolerates clients whose clocks lag a little. */
    TRY(gnutls_x509_crt_set_activation_time(crt, now - 3600), certfile, "activation time");
    TRY(gnutls_x509_crt_set_expiration_time(crt, now + (time_t)SELFSIGNED_YEARS * 365 * 86400),
        certfile, "expiration time");
    TRY(gnutls_x509_crt_set_dn_by_oid(crt, GNUTLS_OID_X520_COMMON_NAME, 0, domains[0],
                                      strlen(domains[0])),
        certfile, "common name");
    for (guint i = 0; domains[i]; i++)
        TRY(gnutls_x509_crt_set_subject_alt_name(crt, GNUTLS_SAN_DNSNAME, domains[i],
                                                 strlen(domains[i]), GNUTLS_FSAN_APPEND),
            certfile, "subjectAltName");
    TRY(gnutls_x509_crt_set_key(crt, key), certfile, "public key");
    TRY(gnutls_x509_crt_set_basic_constraints(crt, 0, -1), certfile, "basic constraints");
    TRY(gnutls_x509_crt_set_key_usage(crt, GNUTLS_KEY_DIGITAL_SIGNATURE), certfile, "key usage");
    TRY(gnutls_x509_crt_set_key_purpose_oid(crt, GNUTLS_KP_TLS_WWW_SERVER, 0), certfile,
        "key purpose");

    guint8 keyid[64];
    size_t keyid_size = sizeof keyid;
    TRY(gnutls_x509_crt_get_key_id(crt, GNUTLS_KEYID_USE_SHA1, keyid, &keyid_size), certfile,
        "key id");
    TRY(gnutls_x509_crt_set_subject_key_id(crt, keyid, keyid_size), certfile, "subject key id");
    TRY(gnutls_x509_crt_sign2(crt, crt, key, GNUTLS_DIG_SHA256, 0), certfile, "signing");

    TRY(gnutls_x509_privkey_export2(key, GNUTLS_X509_FMT_PEM, &key_pem), keyfile, "export");
    TRY(gnutls_x509_crt_export2(crt, GNUTLS_X509_FMT_PEM, &crt_pem), certfile, "export");
#undef TRY

    /* The key first: a certificate without its key would be kept by the
     * next start, which only regenerates when a file is missing. */
    ok = write_file(keyfile, &key_pem, 0600, error) && write_file(certfile, &crt_pem, 0644, error);

out:
    gnutls_free(key_pem.data);
    gnutls_free(crt_pem.data);
    if (crt)
        gnutls_x509_crt_deinit(crt);
    if (key)
        gnutls_x509_privkey_deinit(key);
    return ok;
}

/* See tls.h. Main thread. */
gboolean mk_tls_ensure_selfsigned(const char *certfile, const char *keyfile,
                                  const char *const *domains, GError **error)
{
    g_return_val_if_fail(certfile && keyfile, FALSE);
    if (g_file_test(certfile, G_FILE_TEST_EXISTS) && g_file_test(keyfile, G_FILE_TEST_EXISTS))
        return TRUE;
    if (!domains || !domains[0]) {
        g_set_error(error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
                    "%s: no domain to make a self-signed certificate for", certfile);
        return FALSE;
    }
    if (!make_selfsigned(certfile, keyfile, domains, error))
        return FALSE;
    g_message("made a self-signed certificate for %s in %s", domains[0], certfile);
    return TRUE;
}
