/* Logging through GLib's structured log: journald when stderr is the
 * journal (JOURNAL_STREAM), stderr otherwise. */
#pragma once

#include "mk-core.h"

/* Installs the writer and the level threshold. Main thread, at start. */
void mk_log_init(GLogLevelFlags threshold);
void mk_log_set_threshold(GLogLevelFlags threshold);

/* Logs with per-connection context fields MK_PEER and MK_JID (both may be
 * NULL), shown as "[peer jid] message" on stderr. */
void mk_log_conn(GLogLevelFlags level, const char *peer, const char *jid, const char *format, ...)
    G_GNUC_PRINTF(4, 5);
