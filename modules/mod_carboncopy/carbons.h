/* mod_carboncopy internals: shared by the module's files, never installed.
 *
 * Files:
 *   carbons-rules.c   which messages are copied and which resources the
 *                     router gives a message itself; pure
 *   mod_carboncopy.c  descriptor, enable/disable IQs, the copies */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

#define NS_CARBONS "urn:xmpp:carbons:2"
#define NS_FORWARD "urn:xmpp:forward:0"
#define NS_HINTS   "urn:xmpp:hints"
#define NS_CLIENT  "jabber:client"

/* What the rules look at in a message. */
typedef struct {
    const char *type;    /* NULL = normal */
    gboolean has_body;   /* a <body/> */
    gboolean is_private; /* <private xmlns='urn:xmpp:carbons:2'/> */
    gboolean no_copy;    /* <no-copy xmlns='urn:xmpp:hints'/> (XEP-0334) */
    gboolean is_carbon;  /* already a <sent/> or <received/> wrapper */
} CarbonsMessage;

/* TRUE when @m is copied to the user's other resources (XEP-0280
 * section 6): chat, and normal with a body; never error, groupchat or
 * headline, nor a message marked private or no-copy, nor a carbon. */
gboolean carbons_eligible(const CarbonsMessage *m);

/* One resource of the recipient, as the router sees it. */
typedef struct {
    gboolean available;
    int priority;
    gboolean addressed; /* the message's 'to' is this full JID */
} CarbonsResource;

/* Marks in @gets (n entries) the resources the router hands a chat or
 * normal message itself (RFC 6121 8.5.2.1.1 and 8.5.3.1): the addressed
 * one when there is one, else every available resource that shares the
 * highest non-negative priority. Those get no received carbon. */
void carbons_direct_recipients(const CarbonsResource *res, guint n, gboolean *gets);

G_END_DECLS
