/* Meerkat module API: the only header a module includes.
 *
 * Everything a module can see is declared under plugins-api/meerkat/; every
 * type is opaque and every function says who owns what it returns and from
 * which thread it may be called. Read docs/modules.md first. */
#pragma once

#define MK_INSIDE_MODULE_H
#include <meerkat/mk-version.h>
#include <meerkat/mk-types.h>
#include <meerkat/mk-xml.h>
#include <meerkat/mk-jid.h>
#include <meerkat/mk-stanza.h>
#include <meerkat/mk-config.h>
#include <meerkat/mk-db.h>
#include <meerkat/mk-moddesc.h>
#include <meerkat/mk-hooks.h>
#include <meerkat/mk-iq.h>
#include <meerkat/mk-session.h>
#include <meerkat/mk-router.h>
#include <meerkat/mk-disco.h>
#include <meerkat/mk-timer.h>
#include <meerkat/mk-metrics.h>
#include <meerkat/mk-stream.h>
#include <meerkat/mk-account.h>
#include <meerkat/mk-userqueue.h>
#include <meerkat/mk-usercache.h>
#include <meerkat/mk-archive.h>
#include <meerkat/mk-roster.h>
#include <meerkat/mk-xep82.h>
#include <meerkat/mk-server.h>
#include <meerkat/mk-fanout.h>
#include <meerkat/mk-http.h>
#include <meerkat/mk-domains.h>
#include <meerkat/mk-cluster.h>
#include <meerkat/mk-owner.h>
#include <meerkat/mk-caps.h>
#undef MK_INSIDE_MODULE_H
