/* meerkat-bench: a load generator for XMPP servers (not part of the
 * server). One process (or several forked ones, each with a share of the
 * users) runs one epoll loop over non-blocking client sockets. */
#pragma once

#include <glib.h>
#include <gnutls/gnutls.h>
#include <netinet/in.h>

typedef enum {
    SCEN_LOGIN,
    SCEN_CHAT,
    SCEN_PRESENCE,
    SCEN_REGISTER, /* in-band registration, then close (register.c) */
    SCEN_MAM,      /* archive queries (XEP-0313), one in flight per user */
    SCEN_MUCLIGHT, /* MUC Light rooms, groupchat at a rate (muclight.c) */
    SCEN_MUC,      /* group chat rooms (XEP-0045), scenario-muc.c */
    SCEN_PEP,      /* PEP tunes (XEP-0163) to roster groups (pep.c) */
} Scenario;

/* Everything the command line sets; read-only after parsing. */
typedef struct {
    Scenario scenario;
    char *host;
    int port;
    char *domain;
    char *prefix;
    char *password;
    char *mech; /* PLAIN or SCRAM-SHA-256 */
    char *resource;
    gboolean starttls;
    gboolean sm;    /* enable XEP-0198 and answer the server's <r/> */
    int users;      /* login and presence */
    int first_user; /* users are PREFIX<first>..PREFIX<first+users-1> */
    double rate;    /* connects per second, all processes together; 0 = no pacing */
    int inflight;   /* logins in progress at most, per process */
    int pairs;      /* chat */
    int window;     /* chat: messages in flight per direction */
    int roster;     /* presence: contacts per user */
    double toggles; /* presence: availability changes per second, all processes */
    double duration;
    double settle;
    double hold;
    double login_timeout;
    int procs;
    int src_addrs; /* source addresses 127.0.0.2 .. 127.0.0.(1+n) */
    char *server_pids;
    int body_size;
    int page;          /* mam: results per query */
    gboolean mam_with; /* mam: filter on the pair partner (PREFIX<n xor 1>) */
    int rooms;         /* muclight: rooms */
    int room_size;     /* muclight: occupants per room */
    double msg_rate;   /* muclight, muc: groupchat messages per second, all processes */
    int *ports;        /* --ports (a cluster): user n connects to ports[n % nports] */
    int nports;
    int occupants;     /* muc: users per room (msg_rate above too) */
    char *muc_service; /* muc: the rooms' domain */
} BenchOpts;

/* Fills o->ports from "P,P,..." (ports.c). */
void bench_parse_ports(BenchOpts *o, const char *list);

/* Latency histogram in microseconds, ~1.5% resolution (HDR-like: 64
 * linear sub-buckets per power of two). */
#define HIST_SUB     64
#define HIST_BUCKETS (HIST_SUB * 40)
typedef struct {
    guint64 count[HIST_BUCKETS];
    guint64 max;
    guint64 total;
} Hist;
void hist_add(Hist *h, guint64 us);
guint64 hist_percentile(const Hist *h, double p);
/* One line "idx:count idx:count ..." (transfer full). */
char *hist_serialize(const Hist *h);
void hist_merge_text(Hist *h, const char *text);

/* Totals one worker process reports to the parent. */
typedef struct {
    guint64 logged_in, failed;
    guint64 sent, received; /* messages or presences, in the measured window */
    Hist hist;
} WorkerStats;

/* Runs one worker's share: users [lo, hi) (chat: pairs inside). Reads
 * commands on @ctl_fd, writes reports on @rep_fd. Returns the exit code. */
int worker_run(const BenchOpts *o, int lo, int hi, int ctl_fd, int rep_fd, int index);

/* SCRAM-SHA-256 client (RFC 5802/7677), no channel binding. */
typedef struct Scram Scram;
Scram *scram_new(const char *user, const char *password);
void scram_free(Scram *s);
/* The client-first message, raw (transfer none). */
const char *scram_client_first(Scram *s);
/* The client-final message for @server_first (raw bytes), or NULL when
 * it is malformed (transfer full). */
char *scram_client_final(Scram *s, const char *server_first, gsize len);

/* In-band registration (XEP-0077) of PREFIX<user> (transfer full). */
char *register_request(const BenchOpts *o, int user);
typedef enum {
    REGISTER_DONE,
    REGISTER_EXISTS, /* <conflict/>: an earlier run made it, counts as done */
    REGISTER_FAILED,
} RegisterOutcome;
/* What the server's answer @el (one complete <iq/>) says. */
RegisterOutcome register_outcome(const char *el, gsize len);

/* /proc readings of a set of processes (comma-separated pids). */
typedef struct {
    double cpu_s; /* utime + stime */
    guint64 rss_kib;
    int alive;
} ProcSample;
ProcSample proc_sample(const char *pids);

guint64 now_us(void);

/* The muclight scenario (muclight.c): rooms of --room-size consecutive
 * users, PREFIX<first + k * size> creates room k at login; then messages
 * go to the rooms round-robin at --msg-rate, and every copy an occupant
 * receives counts. */
gboolean muclight_is_creator(const BenchOpts *o, int user);
/* The creation request of @user's room (transfer full). */
char *muclight_create(const BenchOpts *o, int user);
/* A groupchat message from @user to its room, stamped @now_us and padded
 * with @pad (transfer full). */
char *muclight_message(const BenchOpts *o, int user, guint64 now_us, const char *pad);

/* What worker.c offers a scenario file, by client index in the share. */
typedef struct Worker BenchWorker;
void bench_send(BenchWorker *w, int idx, const char *data, gsize len);
gboolean bench_online(BenchWorker *w, int idx);
int bench_user(BenchWorker *w, int idx);
gboolean bench_measuring(BenchWorker *w);
gboolean bench_running(BenchWorker *w);
WorkerStats *bench_stats(BenchWorker *w);

/* The muc scenario (scenario-muc.c). */
typedef struct BenchMuc BenchMuc;
BenchMuc *bench_muc_new(BenchWorker *w, const BenchOpts *o, int n);
void bench_muc_free(BenchMuc *m);
void bench_muc_logged_in(BenchMuc *m, int idx);
void bench_muc_element(BenchMuc *m, int idx, const char *local, const char *el, gsize len);
gboolean bench_muc_ready(BenchMuc *m);
void bench_muc_start(BenchMuc *m);
void bench_muc_tick(BenchMuc *m, const char *pad);

/* The pep scenario's stanzas (pep.c); all (transfer full). */
char *pep_presence(void);
gboolean pep_is_caps_query(const char *el, gsize len);
char *pep_caps_answer(const char *id, const char *from);
char *pep_publish(guint64 seq, guint64 sent_us);
guint64 pep_notification_sent_us(const char *el, gsize len);
