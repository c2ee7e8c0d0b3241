/* TLS credentials (GnuTLS): loading a certificate and key, and making a
 * self-signed pair on first run. Sessions themselves live in conn.c. */
#pragma once

#include "mk-core.h"
#include <gnutls/gnutls.h>

/* Loads a PEM certificate chain and its key.
 * Returns: (transfer full) (free with gnutls_certificate_free_credentials)
 * or NULL with a G_IO_ERROR naming the file. Main thread (any thread is
 * safe; nothing shared is touched). The credentials are read-only
 * afterwards and may be used by sessions on every worker. */
gnutls_certificate_credentials_t mk_tls_load(const char *certfile, const char *keyfile,
                                             GError **error);
/* When @certfile or @keyfile is missing, makes an ECDSA P-256 key and a
 * self-signed X.509 certificate for @domains (first = CN, all as
 * subjectAltName dNSName, valid 10 years) and writes both as PEM (the key
 * with mode 0600), creating their directories. Does nothing when both
 * exist. Returns FALSE with @error naming the file. Main thread. */
gboolean mk_tls_ensure_selfsigned(const char *certfile, const char *keyfile,
                                  const char *const *domains, GError **error);
