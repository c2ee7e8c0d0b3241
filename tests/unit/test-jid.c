/* JIDs: splitting and preparation (RFC 7622). */
#include "mk-core.h"

#include <string.h>

static void check(const char *in, const char *node, const char *domain, const char *resource,
                  const char *full)
{
    g_autoptr(GError) error = NULL;
    g_autoptr(MkJid) j = mk_jid_new(in, &error);
    g_assert_no_error(error);
    g_assert_nonnull(j);
    g_assert_cmpstr(mk_jid_node(j), ==, node);
    g_assert_cmpstr(mk_jid_domain(j), ==, domain);
    g_assert_cmpstr(mk_jid_resource(j), ==, resource);
    g_assert_cmpstr(mk_jid_string(j), ==, full);
}

static void bad(const char *in)
{
    g_autoptr(GError) error = NULL;
    g_autoptr(MkJid) j = mk_jid_new(in, &error);
    if (j)
        g_test_message("accepted: %s -> %s", in, mk_jid_string(j));
    g_assert_null(j);
    g_assert_error(error, MK_JID_ERROR, MK_JID_ERROR_MALFORMED);
}

static void test_valid(void)
{
    check("example.com", NULL, "example.com", NULL, "example.com");
    check("Juliet@Example.COM/Balcony", "juliet", "example.com", "Balcony",
          "juliet@example.com/Balcony");
    /* The resource may hold '/' and '@'; the node ends at the first '@'. */
    check("a@b.c/d/e@f", "a", "b.c", "d/e@f", "a@b.c/d/e@f");
    check("b.c/x@y", NULL, "b.c", "x@y", "b.c/x@y");
    check("a@example.com./r", "a", "example.com", "r", "a@example.com/r");
    check("a@127.0.0.1", "a", "127.0.0.1", NULL, "a@127.0.0.1");
    check("[::1]/r", NULL, "[::1]", "r", "[::1]/r");
    check("x@[2001:DB8::1]", "x", "[2001:db8::1]", NULL, "x@[2001:db8::1]");
    check("u@localhost/with space", "u", "localhost", "with space", "u@localhost/with space");
    /* Unicode: case folding in node and domain (nameprep), IDN domain. */
    check("\xc3\x84LICE@\xc3\x9c"
          "BER.example/R\xc3\xa9s",
          "\xc3\xa4lice",
          "\xc3\xbc"
          "ber.example",
          "R\xc3\xa9s",
          "\xc3\xa4lice@\xc3\xbc"
          "ber.example/R\xc3\xa9s");
    check("user@xn--ber-goa.example", "user",
          "\xc3\xbc"
          "ber.example",
          NULL,
          "user@\xc3\xbc"
          "ber.example");
}

static void test_invalid(void)
{
    const char *bads[] = {"",
                          "@example.com",
                          "a@",
                          "a@example.com/",
                          "example.com/",
                          "a@b@c",
                          "a b@example.com",
                          "a\"b@x.y",
                          "a&b@x.y",
                          "a'b@x.y",
                          "a:b@x.y",
                          "a<b@x.y",
                          "a>b@x.y",
                          "exa mple.com",
                          "example..com",
                          "-bad.com",
                          "bad-.com",
                          "a@x.y/\x01",
                          "[::1",
                          "[not-ip]",
                          "ex_am.com",
                          "a@.",
                          "\xff@x.y",
                          "x.y..",
                          "a@b/c\x7f",
                          "a@\xe2\x80\x8b",
                          "exa@mple@com"};
    for (guint i = 0; i < G_N_ELEMENTS(bads); i++)
        bad(bads[i]);
    /* Parts over 1023 bytes; exactly 1023 is fine. */
    g_autofree char *n1023 = g_strnfill(1023, 'n');
    g_autofree char *n1024 = g_strnfill(1024, 'n');
    g_autofree char *ok = g_strdup_printf("%s@x.y/%s", n1023, n1023);
    g_autoptr(MkJid) j = mk_jid_new(ok, NULL);
    g_assert_nonnull(j);
    g_autofree char *long_node = g_strdup_printf("%s@x.y", n1024);
    g_autofree char *long_res = g_strdup_printf("x.y/%s", n1024);
    bad(long_node);
    bad(long_res);
    /* A long domain made of valid labels. */
    GString *d = g_string_new(NULL);
    while (d->len <= 1024)
        g_string_append(d, "abcdefghij.");
    g_string_append(d, "com");
    bad(d->str);
    g_string_free(d, TRUE);
}

static void test_parts_and_bare(void)
{
    g_autoptr(GError) error = NULL;
    g_autoptr(MkJid) full = mk_jid_new_from_parts("Romeo", "Montague.NET", "Orchard", &error);
    g_assert_no_error(error);
    g_assert_cmpstr(mk_jid_string(full), ==, "romeo@montague.net/Orchard");
    g_assert_cmpstr(mk_jid_bare_string(full), ==, "romeo@montague.net");
    g_assert_false(mk_jid_is_bare(full));

    g_autoptr(MkJid) bare = mk_jid_bare(full);
    g_assert_true(mk_jid_is_bare(bare));
    g_assert_cmpstr(mk_jid_string(bare), ==, "romeo@montague.net");
    g_autoptr(MkJid) bare2 = mk_jid_bare(bare);
    g_assert_true(bare2 == bare);

    g_autoptr(MkJid) other = mk_jid_with_resource(bare, "Garden", &error);
    g_assert_no_error(error);
    g_assert_cmpstr(mk_jid_string(other), ==, "romeo@montague.net/Garden");
    g_assert_false(mk_jid_equal(full, other));
    g_assert_true(mk_jid_bare_equal(full, other));
    g_autoptr(MkJid) same = mk_jid_new("ROMEO@montague.net/Orchard", NULL);
    g_assert_true(mk_jid_equal(full, same));

    g_assert_null(mk_jid_with_resource(bare, "bad\x01", &error));
    g_assert_error(error, MK_JID_ERROR, MK_JID_ERROR_MALFORMED);
    g_clear_error(&error);
    g_assert_null(mk_jid_new_from_parts("a@b", "x.y", NULL, &error));
    g_assert_error(error, MK_JID_ERROR, MK_JID_ERROR_MALFORMED);
    g_clear_error(&error);
    g_assert_null(mk_jid_new_from_parts(NULL, "x y", NULL, &error));
    g_assert_error(error, MK_JID_ERROR, MK_JID_ERROR_MALFORMED);
    g_clear_error(&error);

    g_autoptr(MkJid) domain_only = mk_jid_new_from_parts(NULL, "Example.org", NULL, &error);
    g_assert_cmpstr(mk_jid_string(domain_only), ==, "example.org");
    g_assert_null(mk_jid_node(domain_only));
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/jid/valid", test_valid);
    g_test_add_func("/jid/invalid", test_invalid);
    g_test_add_func("/jid/parts-and-bare", test_parts_and_bare);
    return g_test_run();
}
