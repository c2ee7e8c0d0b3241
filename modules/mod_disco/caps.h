/* Entity capabilities (XEP-0115) of the server: the verification string
 * of a disco#info answer. Pure: no server calls, unit-tested on its own. */
#pragma once

#include <glib.h>

/* The XEP-0115 section 5.1 'ver' (SHA-1, base64) of a disco#info answer
 * with @identities (groups of 3 strings: category, type, name; no
 * xml:lang) and @features (any order; duplicates are the caller's
 * business). Returns: (transfer full). */
char *disco_caps_ver(const char *const *identities, const char *const *features);
