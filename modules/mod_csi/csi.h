/* mod_csi: Client State Indication (XEP-0352). Shared between its files. */
#pragma once

#include <meerkat/module.h>

#define NS_CSI        "urn:xmpp:csi:0"
#define NS_CHATSTATES "http://jabber.org/protocol/chatstates"

/* What to do with a stanza for an inactive client. */
typedef enum {
    CSI_PASS,  /* deliver now (IQs, messages with a body, anything unknown) */
    CSI_QUEUE, /* hold until the client is active */
    CSI_LATEST /* hold, replacing an earlier one from the same full JID (presence) */
} CsiAction;

/* csi-policy.c: pure. @xml is a stanza being delivered. */
CsiAction csi_classify(MkXml *xml);

/* The held stanzas of one session, in arrival order, with at most one
 * presence per sender full JID. Pure: the session's worker. */
typedef struct CsiQueue CsiQueue;
/* (transfer full) */
CsiQueue *csi_queue_new(void);
void csi_queue_free(gpointer q);
guint csi_queue_length(CsiQueue *q);
/* Holds @st (ref taken) under @action; TRUE when it replaced an older
 * presence of the same sender (@sender = the sender's full JID string). */
gboolean csi_queue_push(CsiQueue *q, MkStanza *st, const char *sender, CsiAction action);
/* Removes and returns the held stanzas, oldest first; only those from
 * @sender when it is not NULL. (transfer full) array of referenced stanzas. */
GPtrArray *csi_queue_take(CsiQueue *q, const char *sender);
