/* mod_register: In-Band Registration (XEP-0077). Shared between its files. */
#pragma once

#include <meerkat/module.h>
#include <string.h>

#define NS_REGISTER "jabber:iq:register"

typedef struct RegLimiter RegLimiter;

/* Module state. Account jobs that complete after stop() still find it:
 * the core frees it once they returned. */
typedef struct {
    MkModule *mod;
    gboolean allow_registration;
    gint64 min_password_length;
    RegLimiter *limiter;
    MkCounter *registered;
    MkCounter *refused;
    MkCounter *rate_limited;
    MkCounter *password_changed;
    MkCounter *removed;
} Reg;

/* The password policy: NULL when @password is acceptable, else the
 * reason (transfer none) for a not-acceptable error. */
const char *reg_password_problem(Reg *r, const char *password);

/* reg-preauth.c: registration before authentication. */
MkResult reg_preauth_iq(MkPreauthIq *iq, gpointer user_data);
/* reg-account.c: the logged-in user's password change and removal. */
MkResult reg_account_iq(MkIq *iq, gpointer user_data);

/* reg-limit.c: registrations per client address in a sliding window,
 * shared by every worker (its own lock). Pure logic, unit-tested. */
/* @max 0 = no limit. (transfer full) */
RegLimiter *reg_limiter_new(guint max, gint64 window_us);
void reg_limiter_free(RegLimiter *l);
/* Takes a slot for @addr at @now_us; FALSE when @addr used all of its
 * slots in the window. Any thread. */
gboolean reg_limiter_take(RegLimiter *l, const char *addr, gint64 now_us);
/* Gives back the most recent slot of @addr (its registration failed). */
void reg_limiter_give_back(RegLimiter *l, const char *addr);
/* Forgets slots older than the window. Any thread. */
void reg_limiter_expire(RegLimiter *l, gint64 now_us);
/* Addresses with slots in use, for tests. */
guint reg_limiter_size(RegLimiter *l);
