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
#define CAPS_VER "bench-pep-1"

/* Available presence with caps. The 'ver' is not a real hash: the server
 * then asks each client (and records its answer for that client only),
 * which is what a crowd of first-time clients costs. (transfer full) */
char *pep_presence(void)
{
    return g_strdup("<presence><c xmlns='http://jabber.org/protocol/caps' hash='sha-1'"
                    " node='https://meerkat.example/bench' ver='" CAPS_VER "'/></presence>");
}

/* Whether @el (an <iq type='get'/>) is the server's caps query. */
gboolean pep_is_caps_query(const char *el, gsize len)
{
    return memmem(el, len, "disco#info", 10) != NULL;
}

/* The answer to the caps query of id @id from @from. (transfer full) */
char *pep_caps_answer(const char *id, const char *from)
{
    return g_strdup_printf("<iq type='result' id='%s' to='%s'>"
                           "<query xmlns='http://jabber.org/protocol/disco#info'"
                           " node='https://meerkat.example/bench#" CAPS_VER "'>"
                           "<identity category='client' type='bot' name='bench'/>"
                           "<feature var='http://jabber.org/protocol/disco#info'/>"
                           "<feature var='" NS_TUNE "+notify'/></query></iq>",
                           id ? id : "", from ? from : "");
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
