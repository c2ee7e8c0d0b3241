/* meerkat-bench's pep scenario (XEP-0163): users in roster groups of R
 * contacts, each client's caps naming the tune node's +notify; users
 * publish a tune at a rate (--toggles per second, all processes) and the
 * server fans each one out to the publisher's online contacts and own
 * client. What counts is notifications received per server CPU-second;
 * the latency runs from the publish to each notification. The stanzas
 * are built here; worker.c drives them. */
#define _GNU_SOURCE
#include "bench.h"

#include <string.h>

#define NS_TUNE  "http://jabber.org/protocol/tune"
#define IDENTITY "client/bot//bench"
#define FEATURES "http://jabber.org/protocol/disco#info<" NS_TUNE "+notify<"

/* The XEP-0115 'ver' of the disco#info answer below: SHA-1 over the
 * identity and the features, so that servers which verify caps (Meerkat,
 * ejabberd's mod_caps) accept it and ask only the first client. */
static char *caps_ver(void)
{
    static const char s[] = IDENTITY "<" FEATURES;
    guint8 digest[20];
    gsize len = sizeof digest;
    g_autoptr(GChecksum) sum = g_checksum_new(G_CHECKSUM_SHA1);
    g_checksum_update(sum, (const guchar *)s, sizeof s - 1);
    g_checksum_get_digest(sum, digest, &len);
    return g_base64_encode(digest, len);
}

/* Available presence with caps. (transfer full) */
char *pep_presence(void)
{
    g_autofree char *ver = caps_ver();
    return g_strdup_printf("<presence><c xmlns='http://jabber.org/protocol/caps' hash='sha-1'"
                           " node='https://meerkat.example/bench' ver='%s'/></presence>",
                           ver);
}

/* Whether @el (an <iq type='get'/>) is the server's caps query. */
gboolean pep_is_caps_query(const char *el, gsize len)
{
    return memmem(el, len, "disco#info", 10) != NULL;
}

/* The answer to the caps query of id @id from @from. (transfer full) */
char *pep_caps_answer(const char *id, const char *from)
{
    g_autofree char *ver = caps_ver();
    return g_strdup_printf("<iq type='result' id='%s' to='%s'>"
                           "<query xmlns='http://jabber.org/protocol/disco#info'"
                           " node='https://meerkat.example/bench#%s'>"
                           "<identity category='client' type='bot' name='bench'/>"
                           "<feature var='http://jabber.org/protocol/disco#info'/>"
                           "<feature var='" NS_TUNE "+notify'/></query></iq>",
                           id ? id : "", from ? from : "", ver);
}

/* A publish of a tune stamped with @sent_us. (transfer full) */
char *pep_publish(guint64 seq, guint64 sent_us)
{
    return g_strdup_printf("<iq type='set' id='p%" G_GUINT64_FORMAT "'>"
                           "<pubsub xmlns='http://jabber.org/protocol/pubsub'>"
                           "<publish node='" NS_TUNE "'><item id='current'>"
                           "<tune xmlns='" NS_TUNE "'><artist>bench</artist>"
                           "<title>%" G_GUINT64_FORMAT "</title></tune>"
                           "</item></publish></pubsub></iq>",
                           seq, sent_us);
}

/* The publish time in a tune notification @el, or 0 when @el is none. */
guint64 pep_notification_sent_us(const char *el, gsize len)
{
    if (!memmem(el, len, "pubsub#event", 12))
        return 0;
    const char *t = memmem(el, len, "<title>", 7);
    return t ? g_ascii_strtoull(t + 7, NULL, 10) : 0;
}
