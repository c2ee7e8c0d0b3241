#if !defined(MK_INSIDE_MODULE_H) && !defined(MK_COMPILATION)
#error "Only <meerkat/module.h> can be included directly."
#endif
#pragma once

#include <meerkat/mk-types.h>

G_BEGIN_DECLS
/* Service discovery registries (read by mod_disco). */

/* Advertises a feature var / an identity of the server for @mod's host
 * type. Main thread, in start(); removed on stop. */
MK_API void mk_disco_feature_add(MkModule *mod, const char *var);
MK_API void mk_disco_identity_add(MkModule *mod, const char *category, const char *type,
                                  const char *name);
/* Advertises a feature of every account's bare JID (XEP-0313's
 * urn:xmpp:mam:2, PEP's features) for @mod's host type. Main thread, in
 * start(); removed on stop. Since ABI 2. */
MK_API void mk_disco_account_feature_add(MkModule *mod, const char *var);
/* Server disco items (such as module subdomains). */
MK_API void mk_disco_item_add(MkModule *mod, const char *jid, const char *name);

/* Every feature / identity / item registered for the host type serving
 * @domain, sorted and without duplicates. Any thread.
 * Returns: (transfer full) NULL-terminated; identities and items come as
 * consecutive groups of 3 and 2 strings ("category","type","name"). */
MK_API char **mk_disco_features(const char *domain);
MK_API char **mk_disco_identities(const char *domain);
MK_API char **mk_disco_items(const char *domain);
/* The features of accounts of @domain (mk_disco_account_feature_add).
 * Returns: (transfer full) NULL-terminated. Any thread. Since ABI 2. */
MK_API char **mk_disco_account_features(const char *domain);

/* ---- Entities at accounts (Since ABI 2.2) ----
 * The module that answers disco at an account's bare JID (mod_disco)
 * knows no nodes there; a module with entities at accounts (PEP's nodes,
 * XEP-0163) provides this service to answer what concerns them. */
typedef struct {
    /* @iq is a disco#info or disco#items get addressed to @account (an
     * existing account's bare JID) with a 'node', or a disco#items get
     * without one (the provider lists its entities). The provider
     * answers @iq, now or later from any thread. Worker. */
    void (*query)(gpointer data, MkIq *iq, MkJid *account);
} MkDiscoAccountFuncs;

/* Provides the service on @mod's host type. FALSE with an error when
 * another module provides it. Main thread, in start(); removed on stop. */
MK_API gboolean mk_disco_account_register(MkModule *mod, const MkDiscoAccountFuncs *funcs,
                                          gpointer data, GError **error);
/* Hands @iq to the provider (see MkDiscoAccountFuncs.query): TRUE when
 * one took it and will answer, FALSE (@iq untouched) when no module
 * provides the service. Worker. */
MK_API gboolean mk_disco_account_query(MkModule *caller, MkIq *iq, MkJid *account);

G_END_DECLS
