/* mod_mam's internal interfaces: archive IDs (mam-id.c), the parsed
 * query (mam-query.c) and preferences (mam-prefs.c), which are pure and
 * unit-tested on their own; storage (mam-db.c), the batched writer
 * (mam-writer.c), archiving (mam-archive.c) and the IQs (mam-iq.c). */
#pragma once

#include <meerkat/module.h>
#include <stdatomic.h>

#define NS_MAM "urn:xmpp:mam:2"

/* ---- archive IDs (mam-id.c) -------------------------------------------- */

/* Characters of an ID as clients see it. */
#define MAM_ID_TEXT_LEN 13

typedef struct {
    _Atomic guint64 last_us; /* the last timestamp handed out */
    guint node;              /* 0..255, the low byte of every ID */
} MamIdGen;

void mam_id_gen_init(MamIdGen *gen, guint node);
/* The next ID for a message received at @now_us (microseconds since the
 * epoch): larger than every ID @gen gave before. Any thread. */
guint64 mam_id_next(MamIdGen *gen, gint64 now_us);
/* The smallest ID any node can give at @us, for time bounds. */
guint64 mam_id_for_time(gint64 us);
/* When the message of @id was archived, in microseconds since the epoch. */
gint64 mam_id_time_us(guint64 id);
/* The text form: MAM_ID_TEXT_LEN characters and a NUL into @out. */
void mam_id_format(guint64 id, char out[MAM_ID_TEXT_LEN + 1]);
/* FALSE when @text is not exactly what mam_id_format writes. */
gboolean mam_id_parse(const char *text, guint64 *out);

/* ---- queries (mam-query.c) --------------------------------------------- */

#define MAM_QUERY_ERROR (mam_query_error_quark())
GQuark mam_query_error_quark(void);
typedef enum {
    MAM_QUERY_ERROR_BAD_REQUEST, /* the message names the field */
} MamQueryError;

/* At most this many values in the 'ids' field. */
#define MAM_MAX_IDS 100

typedef struct {
    char *query_id;          /* (nullable) echoed in every <result/> */
    MkJid *with;             /* (nullable) bare or full */
    gint64 start_us, end_us; /* inclusive; G_MININT64/G_MAXINT64 when open */
    gboolean has_after_id, has_before_id;
    guint64 after_id, before_id; /* exclusive bounds (mam#extended) */
    GArray *ids;                 /* (nullable) of guint64: only these */
    guint max;                   /* page size, already cut to the limit */
    gboolean from_end;           /* RSM <before/>: the page ends at the bound */
    gboolean has_rsm_after, has_rsm_before;
    guint64 rsm_after, rsm_before;
    gboolean has_index;
    guint index;
    gboolean flip; /* <flip-page/>: the page's order reversed */
} MamQuery;

/* Parses a <query xmlns='urn:xmpp:mam:2'/> element. @limit is the largest
 * page (max_result_limit) and the default when the client names none.
 * Returns: (transfer full) or NULL with MAM_QUERY_ERROR_BAD_REQUEST. */
MamQuery *mam_query_parse(MkXml *query, guint limit, GError **error);
void mam_query_free(MamQuery *q);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(MamQuery, mam_query_free)

/* ---- preferences (mam-prefs.c) ----------------------------------------- */

typedef enum {
    MAM_PREFS_ALWAYS,
    MAM_PREFS_NEVER,
    MAM_PREFS_ROSTER,
} MamPrefsMode;

/* At most this many JIDs in each list. */
#define MAM_PREFS_MAX_JIDS 1000

/* Immutable once built; shared by reference (the preferences cache). */
typedef struct {
    gint ref;
    MamPrefsMode mode;
    GPtrArray *always; /* of bare JID strings, in the client's order */
    GPtrArray *never;
    /* The same JIDs as sets (keys borrowed from the arrays): a message's
     * check costs one lookup, not a scan of up to MAM_PREFS_MAX_JIDS. */
    GHashTable *always_set;
    GHashTable *never_set;
    GHashTable *contacts; /* (nullable) the roster's bare JIDs, for the roster mode */
} MamPrefs;

/* From stored text (NULL lists are empty; an unknown mode is always).
 * Returns: (transfer full). */
MamPrefs *mam_prefs_new(const char *mode, const char *always, const char *never);
MamPrefs *mam_prefs_ref(MamPrefs *p);
void mam_prefs_unref(MamPrefs *p);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(MamPrefs, mam_prefs_unref)
/* From a client's <prefs/>; NULL with MAM_QUERY_ERROR_BAD_REQUEST. */
MamPrefs *mam_prefs_parse(MkXml *prefs, GError **error);
/* (transfer full) the <prefs/> element that shows @p. */
MkXml *mam_prefs_to_xml(const MamPrefs *p);
const char *mam_prefs_mode_name(MamPrefsMode mode);
/* (transfer full) the list as stored. */
char *mam_prefs_join(GPtrArray *jids);
/* Whether a message with @with_bare is archived under @p (nullable: the
 * default, always). */
gboolean mam_prefs_archives(const MamPrefs *p, const char *with_bare);
/* Storage thread: for the roster mode, reads the roster's contacts into
 * @p (through the core's roster service; none without one). */
gboolean mam_prefs_load_contacts(MamPrefs *p, MkModule *mod, MkDbConn *conn, MkJid *user,
                                 GError **error);

/* ---- storage (mam-db.c; storage threads only) --------------------------- */

/* Whose archive: a room's (room set) or a user's (username, domain). */
typedef struct {
    char *room;
    char *username;
    char *domain;
} MamArchive;

/* One archived message: the row and its strings are one allocation. */
typedef struct {
    MamArchive archive;
    gint64 number; /* the archive's number (a user's or a room's): set by the flush */
    guint64 id;
    char *with_bare;     /* the other party */
    char *with_resource; /* (nullable) */
    char *from_bare;     /* the sender, for retraction rights */
    char *origin_id;     /* (nullable) what a retraction names */
    /* The message as delivered, a GRefString: both copies of a 1:1
     * message share one. A user's copy may lack the archive owner's own
     * <stanza-id/>, which a query adds back (mam-iq.c). */
    char *xml;
} MamRow;

/* The strings are copied (room, or username and domain; with_resource
 * and origin_id nullable); @xml is a GRefString, (transfer full).
 * Returns: (transfer full). Any thread. */
MamRow *mam_row_new(const char *room, const char *username, const char *domain, guint64 id,
                    const char *with_bare, const char *with_resource, const char *from_bare,
                    const char *origin_id, char *xml);
void mam_row_free(MamRow *row);
/* @xml's text as a GRefString. Returns: (transfer full). */
char *mam_xml_text(MkXml *xml);

typedef struct {
    GArray *ids;        /* of guint64, chronological */
    GPtrArray *xml;     /* of char*, parallel to ids */
    gboolean complete;  /* the last page in the query's direction */
    gint64 count;       /* the result set's size, or -1 when not counted */
    gint64 first_index; /* the page's position in the set, or -1 */
} MamPage;

void mam_page_free(MamPage *page);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(MamPage, mam_page_free)

extern const MkMigration mam_migrations[];

/* A user archive's number into *@number; with @create, a new one for an
 * existing account that has none yet. 0 when there is none (or, with
 * @create, when the account does not exist). */
gboolean mam_db_archive_number(MkDbConn *conn, const char *username, const char *domain,
                               gboolean create, gint64 *number, GError **error);
/* A room archive's number into *@number, created when it has none.
 * Storage thread. */
gboolean mam_db_room_number(MkDbConn *conn, const char *room, gint64 *number, GError **error);
/* Writes @rows (MamRow*): every row needs its archive's number set;
 * a message's text is written once for the rows that share its ID.
 * @chunk: rows per INSERT statement. */
gboolean mam_db_insert(MkDbConn *conn, GPtrArray *rows, guint chunk, GError **error);
gboolean mam_db_has_id(MkDbConn *conn, const MamArchive *a, guint64 id, gboolean *found,
                       GError **error);
/* One page of @a for @q. Returns: (transfer full). */
MamPage *mam_db_page(MkDbConn *conn, const MamArchive *a, const MamQuery *q, GError **error);
gboolean mam_db_retract(MkDbConn *conn, const MamArchive *a, const char *from_bare,
                        const char *origin_id, const char *tombstone, guint64 *retracted,
                        GError **error);
gboolean mam_db_purge(MkDbConn *conn, guint64 before_id, guint limit, guint64 *deleted,
                      GError **error);
/* *@out (transfer full) (nullable): NULL when the user stored none. */
gboolean mam_db_prefs_get(MkDbConn *conn, const char *username, const char *domain, MamPrefs **out,
                          GError **error);
/* The first and last ID of @a; both 0 when it is empty. */
gboolean mam_db_bounds(MkDbConn *conn, const MamArchive *a, guint64 *first, guint64 *last,
                       GError **error);
gboolean mam_db_prefs_set(MkDbConn *conn, const char *username, const char *domain,
                          const MamPrefs *prefs, GError **error);

/* ---- the batched writer (mam-writer.c) --------------------------------- */

typedef struct MamWriter MamWriter;
typedef void (*MamSynced)(gpointer user_data);

typedef struct {
    MkCounter *written;        /* rows committed */
    MkCounter *batches;        /* transactions committed */
    MkCounter *failed_batches; /* attempts that failed (and will be retried) */
    MkCounter *dropped;        /* rows refused because the queue was full */
} MamWriterCounters;

/* Main thread, in start(). Returns: (transfer full). */
MamWriter *mam_writer_new(MkModule *mod, guint batch_size, guint max_pending,
                          const MamWriterCounters *counters);
/* Once nothing is in flight (the module data's destroy). */
void mam_writer_free(MamWriter *w);
/* Queues @row (transfer full) for writing. FALSE, with @row freed, a log
 * line and the 'dropped' metric, when max_pending rows are queued. Any
 * thread. */
gboolean mam_writer_add(MamWriter *w, MamRow *row);
/* Calls @done on the calling thread's main context once every row of @a
 * added before this call was written (or its write failed once: the
 * caller then reads what the database has). May call it before
 * returning. Any thread that runs a main context. */
void mam_writer_sync(MamWriter *w, const MamArchive *a, MamSynced done, gpointer user_data);
/* The flush timer's work. Main thread. */
void mam_writer_tick(MamWriter *w);
/* stop(): hands every queued row to the storage pool at once. */
void mam_writer_stop(MamWriter *w);
/* Rows queued and not yet written, for the metrics. Any thread. */
gint mam_writer_queued(MamWriter *w);

/* ---- the module (mod_mam.c, mam-archive.c, mam-iq.c) -------------------- */

typedef struct {
    MkModule *mod;
    MamIdGen ids;
    MamWriter *writer;
    MkUserQueue *queue;
    MkUserCache *prefs; /* bare JID -> MamPrefs* */
    guint max_result_limit;
    gint64 max_age_days;
    guint purge_batch;
    MkCounter *archived; /* copies queued for writing */
    MkCounter *queries;
    MkCounter *results; /* messages sent in query results */
    MkCounter *purged;
    MkCounter *retractions;
    /* The text of a sender's copy until the recipient's copy of the same
     * message takes it (mam-archive.c): MamShared*, by the message. */
    gpointer shared[64];
} Mam;

/* Hooks that archive 1:1 messages and tag them. Main thread, start(). */
void mam_archive_start(Mam *m);
/* Frees what archiving keeps between hooks. Once no hook runs. */
void mam_archive_free(Mam *m);
/* Whether @xml holds <stanza-id by=@by/>, and a copy of @xml whose tags
 * by @by are replaced by one with @id. (transfer full) */
gboolean mam_xml_has_tag(MkXml *xml, const char *by);
MkXml *mam_xml_set_tag(MkXml *xml, const char *by, guint64 id);
/* The urn:xmpp:mam:2 IQ handlers. Main thread, start(). */
gboolean mam_iq_start(Mam *m, GError **error);
/* Answers a room archive's query (the archive service). Worker. */
void mam_query_room(Mam *m, MkJid *room, MkStanza *iq);
/* Provides the core's archive service for rooms. Main thread, start(). */
gboolean mam_rooms_start(Mam *m, GError **error);
/* Provides the users' archive service for APIs (mam-rest.c). Main
 * thread, start(). */
gboolean mam_rest_start(Mam *m, GError **error);
/* XEP-0424: @from retracts its message @origin_id sent to @to: both
 * archives keep a tombstone in its place. Any worker. */
void mam_retract(Mam *m, MkJid *from, MkJid *to, const char *origin_id);
