/* JIDs (RFC 7622): parsing and preparation with libidn's XMPP stringprep
 * profiles, nameprep plus an IDNA (STD3) check for domains.
 *
 * A JID is one allocation: the struct, then "full\0[bare\0]node\0domain\0
 * resource\0". Pure-ASCII parts (nearly all of them) take a fast path that
 * applies the same rules as the profiles do to ASCII: nodeprep folds case
 * and forbids space, controls and "&'/:<>@; resourceprep keeps case and
 * forbids controls; domains fold case and must be LDH labels. */
#include "mk-core.h"

#include <arpa/inet.h>
#include <idn-free.h>
#include <idna.h>
#include <stringprep.h>
#include <string.h>

#define PART_MAX 1023

struct MkJid {
    gint ref;
    /* mk_jid_bare_hash, made on first use (0: not yet); in the padding
     * after @ref, so a JID is no bigger. */
    guint bare_hash;
    const char *node; /* nullable */
    const char *domain;
    const char *resource; /* nullable */
    const char *full;
    const char *bare;
    char data[];
};

/* Unformatted: clang-format would put spaces into the quark's name. */
/* clang-format off */
G_DEFINE_QUARK(mk-jid-error-quark, mk_jid_error)
/* clang-format on */

static gboolean is_ascii(const char *s, gsize len)
{
    for (gsize i = 0; i < len; i++)
        if ((guchar)s[i] >= 0x80)
            return FALSE;
    return TRUE;
}

static gboolean malformed(GError **error, const char *what, const char *part)
{
    g_set_error(error, MK_JID_ERROR, MK_JID_ERROR_MALFORMED, "invalid %s: %s", what, part);
    return FALSE;
}

/* Runs a stringprep profile on @len bytes of @in. Returns: (transfer full)
 * (nullable) the prepared part, 1..PART_MAX bytes. */
static char *prep_unicode(const char *in, gsize len, const Stringprep_profile *profile)
{
    if (len > 4 * PART_MAX || !g_utf8_validate(in, len, NULL))
        return NULL;
    gsize size = MAX(2 * len + 1, PART_MAX + 1);
    char *buf = g_malloc(size);
    memcpy(buf, in, len);
    buf[len] = '\0';
    if (stringprep(buf, size, 0, profile) != STRINGPREP_OK) {
        g_free(buf);
        return NULL;
    }
    gsize n = strlen(buf);
    if (n == 0 || n > PART_MAX) {
        g_free(buf);
        return NULL;
    }
    return buf;
}

static char *prep_node(const char *in, gsize len)
{
    if (len == 0)
        return NULL;
    if (!is_ascii(in, len))
        return prep_unicode(in, len, stringprep_xmpp_nodeprep);
    if (len > PART_MAX)
        return NULL;
    char *out = g_malloc(len + 1);
    for (gsize i = 0; i < len; i++) {
        char c = in[i];
        if ((guchar)c <= 0x20 || c == 0x7f || strchr("\"&'/:<>@", c))
            goto bad;
        out[i] = g_ascii_tolower(c);
    }
    out[len] = '\0';
    return out;
bad:
    g_free(out);
    return NULL;
}

static char *prep_resource(const char *in, gsize len)
{
    if (len == 0)
        return NULL;
    if (!is_ascii(in, len))
        return prep_unicode(in, len, stringprep_xmpp_resourceprep);
    if (len > PART_MAX)
        return NULL;
    for (gsize i = 0; i < len; i++)
        if ((guchar)in[i] < 0x20 || in[i] == 0x7f)
            return NULL;
    return g_strndup(in, len);
}

/* LDH labels of 1..63 bytes, no hyphen at either end (STD3). */
static gboolean ascii_domain_ok(const char *d)
{
    const char *label = d;
    for (const char *p = d;; p++) {
        if (*p == '.' || *p == '\0') {
            gsize l = p - label;
            if (l == 0 || l > 63 || label[0] == '-' || p[-1] == '-')
                return FALSE;
            if (*p == '\0')
                return TRUE;
            label = p + 1;
        } else if (!g_ascii_isalnum(*p) && *p != '-') {
            return FALSE;
        }
    }
}

static char *prep_domain(const char *in, gsize len)
{
    /* One trailing dot is the DNS root, not part of the name. */
    if (len > 0 && in[len - 1] == '.')
        len--;
    if (len == 0 || len > 4 * PART_MAX)
        return NULL;
    /* IP literals: [IPv6] and dotted IPv4. */
    if (in[0] == '[') {
        if (len < 3 || in[len - 1] != ']' || len - 2 >= INET6_ADDRSTRLEN)
            return NULL;
        char addr[INET6_ADDRSTRLEN];
        memcpy(addr, in + 1, len - 2);
        addr[len - 2] = '\0';
        struct in6_addr a6;
        if (inet_pton(AF_INET6, addr, &a6) != 1)
            return NULL;
        return g_ascii_strdown(in, len);
    }
    if (is_ascii(in, len)) {
        if (len > PART_MAX)
            return NULL;
        char *d = g_ascii_strdown(in, len);
        struct in_addr a4;
        if (inet_pton(AF_INET, d, &a4) == 1)
            return d;
        if (!ascii_domain_ok(d)) {
            g_free(d);
            return NULL;
        }
        /* A-labels compare equal to their U-labels (RFC 7622 3.2). */
        if (strstr(d, "xn--")) {
            char *u = NULL;
            if (idna_to_unicode_8z8z(d, &u, IDNA_ALLOW_UNASSIGNED) != IDNA_SUCCESS || !u) {
                idn_free(u);
                g_free(d);
                return NULL;
            }
            g_free(d);
            d = g_strdup(u);
            idn_free(u);
        }
        return d;
        g_free(d);
        return NULL;
    }
    char *d = prep_unicode(in, len, stringprep_nameprep);
    if (!d)
        return NULL;
    /* Label rules: the ACE form must pass IDNA with STD3 ASCII rules. */
    char *ace = NULL;
    int rc = idna_to_ascii_8z(d, &ace, IDNA_ALLOW_UNASSIGNED | IDNA_USE_STD3_ASCII_RULES);
    gboolean ok = rc == IDNA_SUCCESS && ace && ace[0] && ascii_domain_ok(ace);
    idn_free(ace);
    if (!ok) {
        g_free(d);
        return NULL;
    }
    return d;
}

/* Builds a JID from prepared parts (node and resource nullable). */
static MkJid *build(const char *node, const char *domain, const char *resource)
{
    gsize nl = node ? strlen(node) : 0, dl = strlen(domain), rl = resource ? strlen(resource) : 0;
    gsize bare_len = (node ? nl + 1 : 0) + dl;
    gsize full_len = bare_len + (resource ? rl + 1 : 0);
    gsize size = full_len + 1 + (resource ? bare_len + 1 : 0) + (node ? nl + 1 : 0) + dl + 1 +
                 (resource ? rl + 1 : 0);
    MkJid *j = g_malloc(sizeof(MkJid) + size);
    char *p = j->data;
    j->ref = 1;
    j->bare_hash = 0;
    j->full = p;
    if (node) {
        memcpy(p, node, nl);
        p += nl;
        *p++ = '@';
    }
    memcpy(p, domain, dl);
    p += dl;
    if (resource) {
        *p++ = '/';
        memcpy(p, resource, rl);
        p += rl;
    }
    *p++ = '\0';
    if (resource) {
        j->bare = p;
        memcpy(p, j->full, bare_len);
        p += bare_len;
        *p++ = '\0';
    } else {
        j->bare = j->full;
    }
    j->node = NULL;
    if (node) {
        j->node = p;
        memcpy(p, node, nl + 1);
        p += nl + 1;
    }
    j->domain = p;
    memcpy(p, domain, dl + 1);
    p += dl + 1;
    j->resource = NULL;
    if (resource) {
        j->resource = p;
        memcpy(p, resource, rl + 1);
    }
    return j;
}

static MkJid *from_raw_parts(const char *node, gsize nl, const char *domain, gsize dl,
                             const char *resource, gsize rl, GError **error)
{
    g_autofree char *n = NULL, *d = NULL, *r = NULL;
    if (node && !(n = prep_node(node, nl))) {
        malformed(error, "localpart", node);
        return NULL;
    }
    if (!(d = prep_domain(domain, dl))) {
        g_autofree char *shown = g_strndup(domain, dl);
        malformed(error, "domainpart", shown);
        return NULL;
    }
    if (resource && !(r = prep_resource(resource, rl))) {
        malformed(error, "resourcepart", resource);
        return NULL;
    }
    return build(n, d, r);
}

/* Parses and prepares "node@domain/resource". Returns: (transfer full)
 * (nullable) NULL with MK_JID_ERROR_MALFORMED. Any thread. */
MkJid *mk_jid_new(const char *text, GError **error)
{
    if (!text) {
        malformed(error, "JID", "(null)");
        return NULL;
    }
    gsize len = strlen(text);
    const char *slash = memchr(text, '/', len);
    const char *end = slash ? slash : text + len;
    const char *at = memchr(text, '@', end - text);
    const char *domain = at ? at + 1 : text;
    /* A separator with nothing after (or before) it is malformed. */
    if ((at && at == text) || (slash && slash[1] == '\0')) {
        malformed(error, "JID", text);
        return NULL;
    }
    return from_raw_parts(at ? text : NULL, at ? (gsize)(at - text) : 0, domain, end - domain,
                          slash ? slash + 1 : NULL, slash ? len - (slash + 1 - text) : 0, error);
}

/* From parts; @node and @resource may be NULL. Returns: (transfer full)
 * (nullable). Any thread. */
MkJid *mk_jid_new_from_parts(const char *node, const char *domain, const char *resource,
                             GError **error)
{
    if (!domain) {
        malformed(error, "domainpart", "(null)");
        return NULL;
    }
    return from_raw_parts(node, node ? strlen(node) : 0, domain, strlen(domain), resource,
                          resource ? strlen(resource) : 0, error);
}

/* (transfer full) Any thread. */
MkJid *mk_jid_ref(MkJid *jid)
{
    g_return_val_if_fail(jid != NULL, NULL);
    g_atomic_int_inc(&jid->ref);
    return jid;
}

/* @jid may be NULL. Any thread. */
void mk_jid_unref(MkJid *jid)
{
    if (jid && g_atomic_int_dec_and_test(&jid->ref))
        g_free(jid);
}

const char *mk_jid_node(const MkJid *jid)
{
    return jid->node;
}

const char *mk_jid_domain(const MkJid *jid)
{
    return jid->domain;
}

const char *mk_jid_resource(const MkJid *jid)
{
    return jid->resource;
}

const char *mk_jid_string(const MkJid *jid)
{
    return jid->full;
}

const char *mk_jid_bare_string(const MkJid *jid)
{
    return jid->bare;
}

/* See sm.h. Any thread: racing threads store the same value. */
guint mk_jid_bare_hash(const MkJid *jid)
{
    guint h = g_atomic_int_get(&jid->bare_hash);
    if (G_UNLIKELY(!h)) {
        h = mk_str_hash_nonzero(jid->bare);
        g_atomic_int_set((gint *)&((MkJid *)jid)->bare_hash, (gint)h);
    }
    return h;
}

gboolean mk_jid_is_bare(const MkJid *jid)
{
    return jid->resource == NULL;
}

/* Returns: (transfer full) the bare JID, @jid itself when already bare. */
MkJid *mk_jid_bare(MkJid *jid)
{
    g_return_val_if_fail(jid != NULL, NULL);
    if (!jid->resource)
        return mk_jid_ref(jid);
    return build(jid->node, jid->domain, NULL);
}

/* Returns: (transfer full) (nullable) NULL when @resource is invalid. */
MkJid *mk_jid_with_resource(const MkJid *jid, const char *resource, GError **error)
{
    g_return_val_if_fail(jid != NULL, NULL);
    if (!resource)
        return build(jid->node, jid->domain, NULL);
    g_autofree char *r = prep_resource(resource, strlen(resource));
    if (!r) {
        malformed(error, "resourcepart", resource);
        return NULL;
    }
    return build(jid->node, jid->domain, r);
}

/* Both may be NULL (equal only to NULL). */
gboolean mk_jid_equal(const MkJid *a, const MkJid *b)
{
    if (a == b)
        return TRUE;
    return a && b && strcmp(a->full, b->full) == 0;
}

gboolean mk_jid_bare_equal(const MkJid *a, const MkJid *b)
{
    if (a == b)
        return TRUE;
    return a && b && strcmp(a->bare, b->bare) == 0;
}
