/* Contacts: PREFIX/contacts/{user}... through the roster service
 * (mk-roster.h). */
#include "rest-admin.h"

gboolean rest_contacts_start(MkModule *mod, GError **error)
{
    return TRUE;
}
