/* `meerkatd --check-config`: everything start-up would check about the
 * enabled modules, without starting anything. */
#pragma once

#include "conffile.h"

/* Loads each enabled module's descriptor, checks its ABI and
 * dependencies, and validates its keys for every host type. FALSE with an
 * error naming the module (and file and key) at the first problem. */
gboolean mk_modules_check(const MkConfigData *cfg, GError **error);
