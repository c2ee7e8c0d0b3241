#if !defined(MK_INSIDE_MODULE_H) && !defined(MK_COMPILATION)
#error "Only <meerkat/module.h> can be included directly."
#endif
#pragma once

#include <glib.h>

G_BEGIN_DECLS

/* Functions the server exports to modules. */
#define MK_API __attribute__((visibility("default")))

/* Opaque handles. No module may depend on their layout. */
typedef struct MkXml MkXml;           /* an XML element or text node */
typedef struct MkJid MkJid;           /* a prepared, immutable JID */
typedef struct MkStanza MkStanza;     /* a routed stanza: XML + addresses */
typedef struct MkAckHold MkAckHold;   /* a held XEP-0198 acknowledgement (mk-stanza.h) */
typedef struct MkModule MkModule;     /* one module instance on one host type */
typedef struct MkHookCall MkHookCall; /* the arguments of one hook run */
typedef struct MkIq MkIq;             /* an IQ being answered */
typedef struct MkSession MkSession;   /* a bound client session */
typedef struct MkDbConn MkDbConn;     /* a database connection, DB thread only */
typedef struct MkDbResult MkDbResult; /* rows returned by a query */
typedef struct MkTimer MkTimer;       /* a module timer */
typedef struct MkCounter MkCounter;   /* a metrics counter */

/* What a handler did with what it was given. */
typedef enum {
    MK_PASS = 0, /* not mine / carry on with the next handler */
    MK_HANDLED,  /* consumed: stop, nothing further runs */
    MK_ERROR,    /* stop and bounce the stanza error set on the call */
} MkResult;

G_END_DECLS
