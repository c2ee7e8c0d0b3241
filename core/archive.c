/* The room archive service (mk-archive.h) over the core's service
 * registry (services.c). */
#include "modules-priv.h"
#include "modules.h"

#define SERVICE "archive"

gboolean mk_archive_register(MkModule *mod, const MkArchiveFuncs *funcs, gpointer data,
                             GError **error)
{
    return mk_service_provide(mod, SERVICE, funcs, data, error);
}

static const MkServiceReg *provider(MkModule *user)
{
    g_return_val_if_fail(user != NULL, NULL);
    return mk_service_lookup(user->mods, user->host_type, SERVICE);
}

gboolean mk_archive_available(MkModule *user)
{
    return provider(user) != NULL;
}

char *mk_archive_store(MkModule *user, MkJid *room, MkStanza *msg, const char *nick,
                       MkJid *real_jid)
{
    const MkServiceReg *p = provider(user);
    if (!p)
        return NULL;
    const MkArchiveFuncs *f = p->funcs;
    return f->store(p->data, room, msg, nick, real_jid);
}

gboolean mk_archive_query(MkModule *user, MkJid *room, MkStanza *iq)
{
    const MkServiceReg *p = provider(user);
    if (!p)
        return FALSE;
    const MkArchiveFuncs *f = p->funcs;
    f->query(p->data, room, iq);
    return TRUE;
}

void mk_archive_remove(MkModule *user, MkJid *room)
{
    const MkServiceReg *p = provider(user);
    if (p)
        ((const MkArchiveFuncs *)p->funcs)->remove(p->data, room);
}

/* ---- users' archives for APIs (mk-archive.h, Since ABI 2.1) ---- */

#define USER_SERVICE "archive-user"

void mk_archived_message_free(MkArchivedMessage *m)
{
    if (!m)
        return;
    g_free(m->id);
    g_free(m->sender);
    g_free(m->with);
    g_free(m->body);
    g_free(m);
}

gboolean mk_user_archive_register(MkModule *mod, const MkUserArchiveFuncs *funcs, gpointer data,
                                  GError **error)
{
    return mk_service_provide(mod, USER_SERVICE, funcs, data, error);
}

gboolean mk_user_archive_messages(MkModule *caller, MkJid *owner, MkJid *with, gint64 before_us,
                                  guint limit, MkArchiveMessagesDone done, gpointer user_data,
                                  GDestroyNotify destroy)
{
    g_return_val_if_fail(caller && owner && done, FALSE);
    const MkServiceReg *p = mk_service_lookup(caller->mods, caller->host_type, USER_SERVICE);
    if (!p)
        return FALSE;
    ((const MkUserArchiveFuncs *)p->funcs)
        ->messages(p->data, owner, with, before_us, limit, done, user_data, destroy);
    return TRUE;
}

#define ROOM_READ_SERVICE "archive-room-read"

gboolean mk_room_archive_read_register(MkModule *mod, const MkUserArchiveFuncs *funcs,
                                       gpointer data, GError **error)
{
    return mk_service_provide(mod, ROOM_READ_SERVICE, funcs, data, error);
}

gboolean mk_room_archive_messages(MkModule *caller, MkJid *room, gint64 before_us, guint limit,
                                  MkArchiveMessagesDone done, gpointer user_data,
                                  GDestroyNotify destroy)
{
    g_return_val_if_fail(caller && room && done, FALSE);
    const MkServiceReg *p = mk_service_lookup(caller->mods, caller->host_type, ROOM_READ_SERVICE);
    if (!p)
        return FALSE;
    ((const MkUserArchiveFuncs *)p->funcs)
        ->messages(p->data, room, NULL, before_us, limit, done, user_data, destroy);
    return TRUE;
}
