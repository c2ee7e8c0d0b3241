/* TLS credentials (GnuTLS). */
#pragma once

#include "mk-core.h"
#include <gnutls/gnutls.h>

/* Loads a PEM certificate chain and key. Returns: (transfer full) or NULL
 * with an error naming the file. Main thread. */
gnutls_certificate_credentials_t mk_tls_load(const char *certfile, const char *keyfile,
                                             GError **error);
/* Writes a self-signed certificate for @domains (first = CN, all as
 * subjectAltName dNSName) and its key, unless both files exist already. */
gboolean mk_tls_ensure_selfsigned(const char *certfile, const char *keyfile,
                                  const char *const *domains, GError **error);
