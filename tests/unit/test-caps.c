/* The XEP-0115 verification string against the examples of the XEP. */
#include "caps.h"

/* XEP-0115 section 5.2, the simple example. */
static void test_simple(void)
{
    const char *ids[] = {"client", "pc", "Exodus 0.9.1", NULL};
    const char *features[] = {
        "http://jabber.org/protocol/muc", "http://jabber.org/protocol/disco#info",
        "http://jabber.org/protocol/caps", "http://jabber.org/protocol/disco#items", NULL};
    g_autofree char *ver = disco_caps_ver(ids, features);
    g_assert_cmpstr(ver, ==, "QgayPKawpkPSDYmwT/WM94uAlu0=");
}

/* Identities sort by category, then type, whatever order they come in. */
static void test_identity_order(void)
{
    const char *a[] = {"server", "im", "Meerkat", "pubsub", "pep", "", "a-b", "x", "", NULL};
    const char *b[] = {"a-b", "x", "", "pubsub", "pep", "", "server", "im", "Meerkat", NULL};
    const char *features[] = {"urn:b", "urn:a", NULL};
    const char *features2[] = {"urn:a", "urn:b", NULL};
    g_autofree char *va = disco_caps_ver(a, features);
    g_autofree char *vb = disco_caps_ver(b, features2);
    g_assert_cmpstr(va, ==, vb);
    const char *c[] = {"server", "im", "Other", NULL};
    g_autofree char *vc = disco_caps_ver(c, features);
    g_assert_cmpstr(va, !=, vc);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/disco/caps/simple", test_simple);
    g_test_add_func("/disco/caps/identity-order", test_identity_order);
    return g_test_run();
}
