#if !defined(MK_INSIDE_MODULE_H) && !defined(MK_COMPILATION)
#error "Only <meerkat/module.h> can be included directly."
#endif
#pragma once

#include <meerkat/mk-types.h>

G_BEGIN_DECLS
/* XEP-0082 date and time stamps, as XEP-0203 delays, XEP-0202 entity
 * time, XEP-0313 archive queries and XEP-0060 items carry them. Since
 * ABI 2. */

/* @when as an XEP-0082 DateTime in UTC with milliseconds,
 * "2026-12-02T03:04:05.678Z". (transfer full) Any thread. */
MK_API char *mk_xep82_format(GDateTime *when);

/* Parses an XEP-0082 DateTime, "CCYY-MM-DDThh:mm:ss[.sss]TZD" with TZD
 * "Z" or "+hh:mm"/"-hh:mm" (any number of fraction digits). Returns:
 * (transfer full) (nullable) the time, or NULL when @text is not such a
 * stamp (a date alone, a time without zone, ISO 8601's other forms). Any
 * thread. */
MK_API GDateTime *mk_xep82_parse(const char *text);

G_END_DECLS
