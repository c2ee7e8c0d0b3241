#if !defined(MK_INSIDE_MODULE_H) && !defined(MK_COMPILATION)
#error "Only <meerkat/module.h> can be included directly."
#endif
#pragma once

#include <meerkat/mk-types.h>

G_BEGIN_DECLS
/* The server's accounts, for modules such as in-band registration
 * (XEP-0077). Passwords are stored as the operator configured (salted
 * SCRAM keys by default).
 *
 * The work (key derivation, storage) runs off the workers, never on the
 * caller's thread; @done then runs on the calling thread (a
 * worker, or the main thread) with the error, if any, and @destroy
 * (nullable) frees @user_data after it. The core copies every string
 * argument before returning and wipes its copy of the password. Usernames
 * are nodeprep'd and domains nameprep'd by the core: an invalid one fails
 * with MK_ACCOUNT_ERROR_INVALID. */

#define MK_ACCOUNT_ERROR (mk_account_error_quark())
MK_API GQuark mk_account_error_quark(void);

typedef enum {
    MK_ACCOUNT_ERROR_NO_USER,        /* no such account */
    MK_ACCOUNT_ERROR_EXISTS,         /* the account exists already */
    MK_ACCOUNT_ERROR_INVALID,        /* bad username, domain or password (empty, SASLprep) */
    MK_ACCOUNT_ERROR_FAILED,         /* storage failed; the message says why */
    MK_ACCOUNT_ERROR_NOT_AUTHORIZED, /* mk_account_check_password: wrong user or password */
    MK_ACCOUNT_ERROR_THROTTLED,      /* mk_account_check_password: too many failures, later */
} MkAccountErrorCode;

/* @error is (transfer none), NULL on success. */
typedef void (*MkAccountDone)(const GError *error, gpointer user_data);

/* Creates the account @username@@domain with @password. @domain must be
 * served by @mod's host type. Any thread that runs a Meerkat main context. */
MK_API void mk_account_register(MkModule *mod, const char *username, const char *domain,
                                const char *password, MkAccountDone done, gpointer user_data,
                                GDestroyNotify destroy);
/* Replaces the password of an existing account (new salt and keys). */
MK_API void mk_account_set_password(MkModule *mod, const char *username, const char *domain,
                                    const char *password, MkAccountDone done, gpointer user_data,
                                    GDestroyNotify destroy);
/* Deletes the account: its row goes, and with it every module row that
 * references users(username, domain) ON DELETE CASCADE; then, on the
 * calling thread and before @done, the hook remove_user runs for the
 * account (from = its bare JID) so that modules drop what is not in those
 * tables. The account's sessions are left alone: closing them is the
 * caller's decision. */
MK_API void mk_account_remove(MkModule *mod, const char *username, const char *domain,
                              MkAccountDone done, gpointer user_data, GDestroyNotify destroy);
/* Checks @password for the account as a PLAIN login would (Since ABI
 * 2.1): against the stored SCRAM keys, or the stored password with
 * password_format = plain. @done gets NULL when it matches, and
 * MK_ACCOUNT_ERROR_NOT_AUTHORIZED when the user is unknown or the
 * password wrong: both cost the same work, so the answer's time does
 * not tell which. The login limits of XMPP logins apply, counted for
 * @peer (an IP address as text; nullable: none): while the address or
 * the account is in backoff the answer is MK_ACCOUNT_ERROR_THROTTLED,
 * without a hash. For APIs that take a user's credentials. */
MK_API void mk_account_check_password(MkModule *mod, const char *username, const char *domain,
                                      const char *password, const char *peer, MkAccountDone done,
                                      gpointer user_data, GDestroyNotify destroy);

G_END_DECLS
