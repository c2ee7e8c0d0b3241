/* Archive IDs: 64-bit, time-ordered, strictly increasing per node.
 *
 * An ID is the microseconds since the epoch shifted left 8 bits, plus the
 * node number (0-255) in the low byte, so that the nodes of a cluster
 * never hand out the same ID and a page ordered by ID is ordered by time.
 * Clients see 13 characters of base32 (digits and lowercase letters
 * without i, l, o, u): fixed width, so text order is numeric order. */
#include "mam.h"

static const char alphabet[] = "0123456789abcdefghjkmnpqrstvwxyz";

/* Any thread: the last timestamp handed out is advanced with a CAS. */
guint64 mam_id_next(MamIdGen *gen, gint64 now_us)
{
    guint64 last = atomic_load_explicit(&gen->last_us, memory_order_relaxed);
    guint64 us;
    do {
        /* A clock that stands still or steps back still yields a larger ID. */
        us = (guint64)MAX(now_us, 0);
        if (us <= last)
            us = last + 1;
    } while (!atomic_compare_exchange_weak_explicit(&gen->last_us, &last, us, memory_order_relaxed,
                                                    memory_order_relaxed));
    return (us << 8) | gen->node;
}

void mam_id_gen_init(MamIdGen *gen, guint node)
{
    atomic_init(&gen->last_us, 0);
    gen->node = node & 0xff;
}

guint64 mam_id_for_time(gint64 us)
{
    return (guint64)MAX(us, 0) << 8;
}

gint64 mam_id_time_us(guint64 id)
{
    return (gint64)(id >> 8);
}

void mam_id_format(guint64 id, char out[MAM_ID_TEXT_LEN + 1])
{
    for (int i = MAM_ID_TEXT_LEN - 1; i >= 0; i--) {
        out[i] = alphabet[id & 31];
        id >>= 5;
    }
    out[MAM_ID_TEXT_LEN] = '\0';
}

gboolean mam_id_parse(const char *text, guint64 *out)
{
    guint64 id = 0;
    if (!text || strlen(text) != MAM_ID_TEXT_LEN)
        return FALSE;
    for (int i = 0; i < MAM_ID_TEXT_LEN; i++) {
        const char *p = strchr(alphabet, text[i]);
        if (!text[i] || !p)
            return FALSE;
        /* 13 characters carry 65 bits: the first holds only 4 of them. */
        if (i == 0 && p - alphabet > 15)
            return FALSE;
        id = (id << 5) | (guint64)(p - alphabet);
    }
    *out = id;
    return TRUE;
}
