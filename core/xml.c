/* MkXml: a small refcounted element tree and its serialiser.
 *
 * An element is one allocation holding the node, its name and (when given
 * at creation) its namespace URI; its attributes are a second allocation
 * (a pointer table followed by the strings), its children a third. A text
 * node is one allocation. This keeps the parser, which builds a node per
 * element on the hottest path, at two or three mallocs per element.
 *
 * Mutability: a tree may be changed only while one owner holds it. Checking
 * that (refcount == 1 on every ancestor) is not possible cheaply, so the
 * setters do not check; callers copy shared trees (mk_xml_copy, or the
 * core's shallow copy for a changed top element). */
#include "xmlstream.h"

#include <string.h>

enum {
    NODE_TEXT = 1 << 0,    /* a text node */
    NODE_NS_HEAP = 1 << 1, /* ns was g_strdup'ed (not inline) */
};

struct MkXml {
    gint ref;
    guint flags;
    char *name;   /* elements: inline; NULL for text nodes */
    char *ns;     /* nullable: inline, heap (NODE_NS_HEAP) */
    char **attrs; /* one block: 2 * n_attrs pointers, then the strings */
    guint n_attrs;
    guint n_children;
    guint cap_children;
    MkXml **children;
    gsize text_len; /* text nodes */
    char *text;     /* text nodes: inline */
    char data[];
};

/* ---- construction ------------------------------------------------------ */

static MkXml *element_alloc(const char *name, gsize name_len, const char *xmlns)
{
    gsize ns_len = xmlns ? strlen(xmlns) : 0;
    MkXml *el = g_malloc(sizeof(MkXml) + name_len + 1 + (xmlns ? ns_len + 1 : 0));
    el->ref = 1;
    el->flags = 0;
    el->attrs = NULL;
    el->n_attrs = 0;
    el->n_children = 0;
    el->cap_children = 0;
    el->children = NULL;
    el->text_len = 0;
    el->text = NULL;
    el->name = el->data;
    memcpy(el->name, name, name_len);
    el->name[name_len] = '\0';
    if (xmlns) {
        el->ns = el->data + name_len + 1;
        memcpy(el->ns, xmlns, ns_len + 1);
    } else {
        el->ns = NULL;
    }
    return el;
}

/* A new element named @name (no prefix) in namespace @xmlns, or in the
 * parent's namespace when @xmlns is NULL (resolved on append).
 * Returns: (transfer full). Any thread. */
MkXml *mk_xml_new(const char *name, const char *xmlns)
{
    g_return_val_if_fail(name != NULL, NULL);
    return element_alloc(name, strlen(name), xmlns);
}

/* A new text node holding @len bytes of @text (-1: NUL-terminated).
 * Returns: (transfer full). Any thread. */
MkXml *mk_xml_new_text(const char *text, gssize len)
{
    g_return_val_if_fail(text != NULL || len == 0, NULL);
    gsize n = len < 0 ? strlen(text) : (gsize)len;
    MkXml *t = g_malloc(sizeof(MkXml) + n + 1);
    memset(t, 0, sizeof(MkXml));
    t->ref = 1;
    t->flags = NODE_TEXT;
    t->text = t->data;
    if (n)
        memcpy(t->text, text, n);
    t->text[n] = '\0';
    t->text_len = n;
    return t;
}

/* Adds a reference. Returns: (transfer full) @node. Any thread. */
MkXml *mk_xml_ref(MkXml *node)
{
    g_return_val_if_fail(node != NULL, NULL);
    g_atomic_int_inc(&node->ref);
    return node;
}

/* Drops a reference; the last one frees the node and unrefs its children.
 * @node may be NULL. Any thread. */
void mk_xml_unref(MkXml *node)
{
    if (!node || !g_atomic_int_dec_and_test(&node->ref))
        return;
    for (guint i = 0; i < node->n_children; i++)
        mk_xml_unref(node->children[i]);
    g_free(node->children);
    g_free(node->attrs);
    if (node->flags & NODE_NS_HEAP)
        g_free(node->ns);
    g_free(node);
}

/* ---- accessors --------------------------------------------------------- */

gboolean mk_xml_is_text(const MkXml *node)
{
    return node && (node->flags & NODE_TEXT);
}

/* (transfer none) The element's local name; NULL for a text node. */
const char *mk_xml_name(const MkXml *el)
{
    return el ? el->name : NULL;
}

/* (transfer none) (nullable) The element's namespace URI: NULL when it was
 * created without one and not yet appended to a parent that has one. */
const char *mk_xml_ns(const MkXml *el)
{
    return el ? el->ns : NULL;
}

/* TRUE when @el is an element named @name (NULL = any) in @xmlns (NULL =
 * any). */
gboolean mk_xml_is(const MkXml *el, const char *name, const char *xmlns)
{
    if (!el || (el->flags & NODE_TEXT))
        return FALSE;
    if (name && strcmp(el->name, name) != 0)
        return FALSE;
    if (xmlns && g_strcmp0(el->ns, xmlns) != 0)
        return FALSE;
    return TRUE;
}

/* (transfer none) (nullable) */
const char *mk_xml_get_attr(const MkXml *el, const char *name)
{
    g_return_val_if_fail(name != NULL, NULL);
    if (!el)
        return NULL;
    /* The first byte first: most names asked for differ there from most
     * attributes (from, to, id, type, xml:lang), and strcmp is a call. */
    for (guint i = 0; i < el->n_attrs; i++) {
        const char *an = el->attrs[2 * i];
        if (an[0] == name[0] && strcmp(an, name) == 0)
            return el->attrs[2 * i + 1];
    }
    return NULL;
}

guint mk_xml_attr_count(const MkXml *el)
{
    return el ? el->n_attrs : 0;
}

/* (transfer none) of *name and *value. */
void mk_xml_attr_at(const MkXml *el, guint i, const char **name, const char **value)
{
    g_return_if_fail(el != NULL && i < el->n_attrs);
    if (name)
        *name = el->attrs[2 * i];
    if (value)
        *value = el->attrs[2 * i + 1];
}

/* Decodes the "&#38;" that libxml2 leaves for every '&' in an attribute
 * value when entities are not replaced; in place, returns the new length. */
static gsize decode_amp(char *s, gsize len)
{
    char *r = s, *w = s, *end = s + len;
    while (r < end) {
        if (*r == '&' && end - r >= 5 && memcmp(r, "&#38;", 5) == 0) {
            *w++ = '&';
            r += 5;
        } else {
            *w++ = *r++;
        }
    }
    *w = '\0';
    return w - s;
}

/* Replaces all attributes of @el by @n specs, in one allocation. Core
 * only (the parser and mk_xml_set_attr). */
void mk_xml_set_attrs(MkXml *el, const MkXmlAttrSpec *specs, guint n, gboolean decode)
{
    gsize bytes = 2 * n * sizeof(char *);
    for (guint i = 0; i < n; i++) {
        if (specs[i].prefix)
            bytes += strlen(specs[i].prefix) + 1;
        bytes += strlen(specs[i].name) + 1 + specs[i].value_len + 1;
    }
    char **block = n ? g_malloc(bytes) : NULL;
    char *p = (char *)(block + 2 * n);
    for (guint i = 0; i < n; i++) {
        block[2 * i] = p;
        if (specs[i].prefix) {
            gsize l = strlen(specs[i].prefix);
            memcpy(p, specs[i].prefix, l);
            p += l;
            *p++ = ':';
        }
        gsize l = strlen(specs[i].name);
        memcpy(p, specs[i].name, l + 1);
        p += l + 1;
        block[2 * i + 1] = p;
        memcpy(p, specs[i].value, specs[i].value_len);
        p[specs[i].value_len] = '\0';
        gsize vl = specs[i].value_len;
        if (decode && memchr(p, '&', vl))
            vl = decode_amp(p, vl);
        p += vl + 1;
    }
    g_free(el->attrs);
    el->attrs = block;
    el->n_attrs = n;
}

/* Sets or (when @value is NULL) removes an attribute. Unshared trees only
 * (not checked, see the top of this file). */
void mk_xml_set_attr(MkXml *el, const char *name, const char *value)
{
    g_return_if_fail(el != NULL && !(el->flags & NODE_TEXT) && name != NULL);
    MkXmlAttrSpec stack_specs[8];
    guint n = el->n_attrs + 1;
    MkXmlAttrSpec *specs = n <= G_N_ELEMENTS(stack_specs) ? stack_specs : g_new(MkXmlAttrSpec, n);
    guint k = 0;
    gboolean found = FALSE;
    for (guint i = 0; i < el->n_attrs; i++) {
        const char *an = el->attrs[2 * i], *av = el->attrs[2 * i + 1];
        if (strcmp(an, name) == 0) {
            found = TRUE;
            if (!value)
                continue;
            av = value;
        }
        specs[k++] = (MkXmlAttrSpec){NULL, an, av, strlen(av)};
    }
    if (!found && value)
        specs[k++] = (MkXmlAttrSpec){NULL, name, value, strlen(value)};
    /* The strings point into the old block, which mk_xml_set_attrs frees
     * only after copying. */
    if (found || value)
        mk_xml_set_attrs(el, specs, k, FALSE);
    if (specs != stack_specs)
        g_free(specs);
}

/* ---- children ---------------------------------------------------------- */

guint mk_xml_child_count(const MkXml *el)
{
    return el ? el->n_children : 0;
}

/* (transfer none) */
MkXml *mk_xml_child_at(const MkXml *el, guint i)
{
    g_return_val_if_fail(el != NULL && i < el->n_children, NULL);
    return el->children[i];
}

/* (transfer none) (nullable) */
MkXml *mk_xml_child(const MkXml *el, const char *name, const char *xmlns)
{
    if (!el)
        return NULL;
    for (guint i = 0; i < el->n_children; i++)
        if (mk_xml_is(el->children[i], name, xmlns))
            return el->children[i];
    return NULL;
}

/* Gives namespace-less elements under @el (and @el itself) the namespace
 * @ns: an element created with xmlns NULL takes its parent's namespace. */
static void inherit_ns(MkXml *el, const char *ns)
{
    el->ns = g_strdup(ns);
    el->flags |= NODE_NS_HEAP;
    for (guint i = 0; i < el->n_children; i++) {
        MkXml *c = el->children[i];
        if (!(c->flags & NODE_TEXT) && !c->ns)
            inherit_ns(c, ns);
    }
}

/* Appends @child, taking its reference. An element child without a
 * namespace takes @el's. Unshared trees only. */
void mk_xml_append(MkXml *el, MkXml *child)
{
    g_return_if_fail(el != NULL && !(el->flags & NODE_TEXT) && child != NULL);
    if (el->n_children == el->cap_children) {
        el->cap_children = el->cap_children ? el->cap_children * 2 : 2;
        el->children = g_renew(MkXml *, el->children, el->cap_children);
    }
    el->children[el->n_children++] = child;
    if (!(child->flags & NODE_TEXT) && !child->ns && el->ns)
        inherit_ns(child, el->ns);
}

/* Returns: (transfer none) the new child. */
MkXml *mk_xml_add_child(MkXml *el, const char *name, const char *xmlns)
{
    MkXml *child = mk_xml_new(name, xmlns);
    mk_xml_append(el, child);
    return child;
}

void mk_xml_add_text(MkXml *el, const char *text, gssize len)
{
    mk_xml_append(el, mk_xml_new_text(text, len));
}

void mk_xml_remove_children(MkXml *el, const char *name, const char *xmlns)
{
    g_return_if_fail(el != NULL);
    guint k = 0;
    for (guint i = 0; i < el->n_children; i++) {
        MkXml *c = el->children[i];
        if (mk_xml_is(c, name, xmlns))
            mk_xml_unref(c);
        else
            el->children[k++] = c;
    }
    el->n_children = k;
}

/* Returns: (transfer full). */
char *mk_xml_text(const MkXml *el)
{
    if (!el)
        return NULL;
    if (el->flags & NODE_TEXT)
        return g_strndup(el->text, el->text_len);
    /* The common case, a single text child, needs no GString. */
    if (el->n_children == 1 && (el->children[0]->flags & NODE_TEXT))
        return g_strndup(el->children[0]->text, el->children[0]->text_len);
    GString *s = g_string_new(NULL);
    for (guint i = 0; i < el->n_children; i++)
        if (el->children[i]->flags & NODE_TEXT)
            g_string_append_len(s, el->children[i]->text, el->children[i]->text_len);
    return g_string_free(s, FALSE);
}

/* Returns: (transfer full) (nullable). */
char *mk_xml_child_text(const MkXml *el, const char *name, const char *xmlns)
{
    MkXml *c = mk_xml_child(el, name, xmlns);
    return c ? mk_xml_text(c) : NULL;
}

/* ---- copies ------------------------------------------------------------ */

static MkXml *copy_node(const MkXml *el, gboolean deep, gboolean with_attrs)
{
    if (el->flags & NODE_TEXT)
        return mk_xml_new_text(el->text, el->text_len);
    MkXml *c = element_alloc(el->name, strlen(el->name), el->ns);
    if (el->n_attrs && with_attrs) {
        /* The block's pointers are relative to itself: copy and rebase. */
        const char *last = el->attrs[2 * el->n_attrs - 1];
        gsize bytes = (last + strlen(last) + 1) - (const char *)el->attrs;
        c->attrs = g_memdup2(el->attrs, bytes);
        for (guint i = 0; i < 2 * el->n_attrs; i++)
            c->attrs[i] = (char *)c->attrs + (el->attrs[i] - (char *)el->attrs);
        c->n_attrs = el->n_attrs;
    }
    if (el->n_children) {
        c->children = g_new(MkXml *, el->n_children);
        c->cap_children = c->n_children = el->n_children;
        for (guint i = 0; i < el->n_children; i++)
            c->children[i] =
                deep ? copy_node(el->children[i], TRUE, TRUE) : mk_xml_ref(el->children[i]);
    }
    return c;
}

/* A deep, unshared copy. Returns: (transfer full). Any thread. */
MkXml *mk_xml_copy(const MkXml *el)
{
    g_return_val_if_fail(el != NULL, NULL);
    return copy_node(el, TRUE, TRUE);
}

/* Public API (mk-xml.h). Returns: (transfer full). Any thread. */
MkXml *mk_xml_copy_shallow(const MkXml *el)
{
    g_return_val_if_fail(el != NULL, NULL);
    return copy_node(el, FALSE, TRUE);
}

/* mk_xml_copy_shallow, then mk_xml_set_attr(copy, @names[i], @values[i])
 * for each of the @n (at most 8) pairs, with the same result (an existing
 * attribute changes in place, a new one is appended, NULL removes), but
 * one attribute block instead of one per step. Core only (re-addressed
 * stanzas). Returns: (transfer full). Any thread. */
MkXml *mk_xml_copy_shallow_set(const MkXml *el, const char *const *names, const char *const *values,
                               guint n)
{
    g_return_val_if_fail(el != NULL && !(el->flags & NODE_TEXT) && n <= 8, NULL);
    MkXml *c = copy_node(el, FALSE, FALSE);
    MkXmlAttrSpec stack_specs[16];
    guint cap = el->n_attrs + n;
    MkXmlAttrSpec *specs =
        cap <= G_N_ELEMENTS(stack_specs) ? stack_specs : g_new(MkXmlAttrSpec, cap);
    gboolean seen[8] = {FALSE};
    guint k = 0;
    for (guint i = 0; i < el->n_attrs; i++) {
        const char *an = el->attrs[2 * i], *av = el->attrs[2 * i + 1];
        for (guint j = 0; j < n; j++) {
            if (strcmp(an, names[j]) == 0) {
                seen[j] = TRUE;
                av = values[j];
                break;
            }
        }
        if (av)
            specs[k++] = (MkXmlAttrSpec){NULL, an, av, strlen(av)};
    }
    for (guint j = 0; j < n; j++)
        if (!seen[j] && values[j])
            specs[k++] = (MkXmlAttrSpec){NULL, names[j], values[j], strlen(values[j])};
    if (k)
        mk_xml_set_attrs(c, specs, k, FALSE);
    if (specs != stack_specs)
        g_free(specs);
    return c;
}

/* ---- serialiser -------------------------------------------------------- */

/* g_string_append_len, inline while the buffer has room: GLib 2.74's
 * goes through g_string_insert_len (~100 instructions a call, and the
 * serialiser makes a dozen calls per element). GLib 2.76 inlines it
 * the same way. */
static inline void put_len(GString *out, const char *s, gsize len)
{
    if (out->len + len < out->allocated_len) {
        memcpy(out->str + out->len, s, len);
        out->len += len;
        out->str[out->len] = '\0';
    } else {
        g_string_append_len(out, s, len);
    }
}

static inline void put(GString *out, const char *s)
{
    put_len(out, s, strlen(s));
}

/* Appends @s escaped; @attr also escapes quotes (values use '). Runs of
 * plain bytes are appended in one call. */
static void append_escaped(GString *out, const char *s, gsize len, gboolean attr)
{
    const char *end = s + len, *run = s;
    for (const char *p = s; p < end; p++) {
        const char *rep;
        switch (*p) {
        case '&':
            rep = "&amp;";
            break;
        case '<':
            rep = "&lt;";
            break;
        case '>':
            rep = "&gt;";
            break;
        case '\'':
            if (!attr)
                continue;
            rep = "&apos;";
            break;
        case '"':
            if (!attr)
                continue;
            rep = "&quot;";
            break;
        default:
            continue;
        }
        if (p > run)
            put_len(out, run, p - run);
        put(out, rep);
        run = p + 1;
    }
    if (end > run)
        put_len(out, run, end - run);
}

/* See xmlstream.h. Any thread. */
void mk_xml_append_attr_value(GString *out, const char *value)
{
    append_escaped(out, value, strlen(value), TRUE);
}

/* Appends the serialisation of @el to @out. A namespace is declared
 * (xmlns='...') where it differs from @parent_ns (NULL: always). An
 * attribute named "xmlns" is never written: the namespace field rules.
 * Any thread (read-only). */
void mk_xml_write(const MkXml *el, const char *parent_ns, GString *out)
{
    g_return_if_fail(el != NULL && out != NULL);
    if (el->flags & NODE_TEXT) {
        append_escaped(out, el->text, el->text_len, FALSE);
        return;
    }
    g_string_append_c(out, '<');
    put(out, el->name);
    const char *ns = el->ns;
    if (ns && (!parent_ns || strcmp(ns, parent_ns) != 0)) {
        put(out, " xmlns='");
        append_escaped(out, ns, strlen(ns), TRUE);
        g_string_append_c(out, '\'');
    }
    for (guint i = 0; i < el->n_attrs; i++) {
        const char *an = el->attrs[2 * i], *av = el->attrs[2 * i + 1];
        if (strcmp(an, "xmlns") == 0)
            continue;
        g_string_append_c(out, ' ');
        put(out, an);
        put(out, "='");
        append_escaped(out, av, strlen(av), TRUE);
        g_string_append_c(out, '\'');
    }
    if (!el->n_children) {
        put(out, "/>");
        return;
    }
    g_string_append_c(out, '>');
    const char *inner = ns ? ns : parent_ns;
    for (guint i = 0; i < el->n_children; i++)
        mk_xml_write(el->children[i], inner, out);
    put(out, "</");
    put(out, el->name);
    g_string_append_c(out, '>');
}

/* Returns: (transfer full). Any thread. */
char *mk_xml_to_string(const MkXml *el, const char *parent_ns)
{
    g_return_val_if_fail(el != NULL, NULL);
    GString *out = g_string_sized_new(256);
    mk_xml_write(el, parent_ns, out);
    return g_string_free(out, FALSE);
}
