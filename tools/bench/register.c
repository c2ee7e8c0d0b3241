/* meerkat-bench: the register scenario, XEP-0077 in-band registration
 * before authentication. It provisions the accounts of the servers that
 * have no bulk tool (one `ejabberdctl register` process costs about a
 * second per account): each client opens a stream, waits for the
 * features, sends one registration request and closes the stream once
 * the server answered. The epoll loop, pacing and source-address
 * spreading are the worker's (worker.c); here is only what is said. */
#define _GNU_SOURCE /* memmem */
#include "bench.h"
#include <string.h>

char *register_request(const BenchOpts *o, int user)
{
    return g_strdup_printf("<iq type='set' id='reg'><query xmlns='jabber:iq:register'>"
                           "<username>%s%d</username><password>%s</password></query></iq>",
                           o->prefix, user, o->password);
}

RegisterOutcome register_outcome(const char *el, gsize len)
{
    /* Only the start tag carries the type. */
    const char *end = memchr(el, '>', len);
    gsize tag = end ? (gsize)(end - el) : len;
    if (memmem(el, tag, "type='result'", 13) || memmem(el, tag, "type=\"result\"", 13))
        return REGISTER_DONE;
    /* An account left by an earlier run is as good as a new one. */
    if ((memmem(el, tag, "type='error'", 12) || memmem(el, tag, "type=\"error\"", 12)) &&
        memmem(el, len, "<conflict", 9))
        return REGISTER_EXISTS;
    return REGISTER_FAILED;
}
