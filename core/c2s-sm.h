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
/* Writes @el to the client, counting and queuing it when it is a stanza
 * (also while detached: queued for a resume). */
void c2s_sm_write(MkC2s *c, MkXml *el, gint64 chosen_us);
/* The same with @el already serialised into @out (a fan-out copy's
 * shared bytes, fanout.h). @chosen_us: when the router chose this stream
 * among the account's resources (sm.h; 0: addressed otherwise). */
void c2s_sm_write_serialised(MkC2s *c, MkXml *el, const GString *out, gint64 chosen_us);
/* @st (just read from the client, not routed yet) is the stream's
 * current stanza: a module may hold its acknowledgement (ackgate.h). */
void c2s_sm_tag(MkC2s *c, MkStanza *st);
/* After a read was handled: the <r/> for what it made us send goes out
 * with the replies, in the same send(). */
void c2s_sm_flush_ask(MkC2s *c);
/* The client sent </stream:stream>: TRUE when we asked for a final <a/>
 * and wait for it (the stream then closes when it comes or later). */
gboolean c2s_sm_stream_end(MkC2s *c);
/* Bytes after the client's </stream:stream> while we wait for its final
 * <a/>: TRUE when they were taken (not for the parser). */
gboolean c2s_sm_feed_closing(MkC2s *c, const char *data, gsize len);
/* We are about to close the stream: ask for an acknowledgement first. */
void c2s_sm_before_close(MkC2s *c);
/* The connection is gone: TRUE when the session was kept for resumption
 * (the stream is then C2S_DETACHED and stays in the worker's list). */
gboolean c2s_sm_detach(MkC2s *c);
/* The session @s of @c ended (already out of the session table): routes
 * the unacknowledged stanzas again and drops the XEP-0198 state. */
void c2s_sm_session_ended(MkC2s *c, MkSession *s);
/* Whether @c's session was handed to another node (RESUME_STATE sent)
 * that has not said yet whether it took it: the other node has its
 * queue, presence and directed presence. */
gboolean c2s_sm_handed_over(MkC2s *c);
/* Drops the XEP-0198 state of @c without routing anything. */
void c2s_sm_free(MkC2s *c);
/* Destroy notify of MkC2sServer.resumable values. */
void c2s_sm_resumable_free(gpointer data);
/* Cluster: the client of this node's resumable session @previd (account
 * @bare) resumed on another node, acknowledging @h: the session ends
 * here and its unacknowledged stanzas are routed again. Any thread. */
void mk_c2s_sm_release(MkC2sServer *cs, const char *previd, const char *bare, guint32 h);
/* Cluster, on the session's node: node @node asks (request @reqid) for
 * this node's resumable session @previd of @bare, whose client
 * acknowledged @h; the answer goes back with mk_cluster_resume_answer.
 * Any thread. */
void mk_c2s_sm_move_out(MkC2sServer *cs, const char *node, const char *reqid, const char *previd,
                        const char *bare, guint32 h);
/* ... and the asking node took the session (@taken: it ends here without
 * a word) or gave up (it ends here as on timeout). Any thread. */
void mk_c2s_sm_move_done(MkC2sServer *cs, const char *previd, const char *bare, gboolean taken);
