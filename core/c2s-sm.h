/* XEP-0198 Stream Management on client streams. See c2s-sm.c and
 * docs/stream-management.md. c2s.c calls these; all run on the stream's
 * worker. */
#pragma once

#include "c2s-priv.h"

#define NS_SM "urn:xmpp:sm:3"

/* An element in NS_SM from an authenticated stream. FALSE when no module
 * switched XEP-0198 on for the stream's domain (the element is then
 * treated like any unknown one). */
gboolean c2s_sm_element(MkC2s *c, MkXml *el);
/* A top-level element arrived from the client on a bound stream. */
void c2s_sm_received(MkC2s *c, MkXml *el);
/* An element is being written to the client (or queued while detached). */
void c2s_sm_sent(MkC2s *c, MkXml *el);
/* The connection is gone: TRUE when the session was kept for resumption
 * (the stream is then C2S_DETACHED and stays in the worker's list). */
gboolean c2s_sm_detach(MkC2s *c);
/* The session @s of @c ended (already out of the session table): routes
 * the unacknowledged stanzas again and drops the XEP-0198 state. */
void c2s_sm_session_ended(MkC2s *c, MkSession *s);
/* Drops the XEP-0198 state of @c without routing anything. */
void c2s_sm_free(MkC2s *c);
/* Destroy notify of MkC2sServer.resumable values. */
void c2s_sm_resumable_free(gpointer data);
