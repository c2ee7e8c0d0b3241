/* mod_disco internals shared by its files, never installed. */
#pragma once

#include <meerkat/module.h>

/* Clients' caps (caps-learn.c): learned from their presence, recorded on
 * their sessions (mk-caps.h). Main thread for new/start/free. */
typedef struct DiscoCaps DiscoCaps;
DiscoCaps *disco_caps_new(MkModule *mod);
void disco_caps_start(DiscoCaps *c);
void disco_caps_free(DiscoCaps *c);
