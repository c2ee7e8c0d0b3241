/* See arena.h. */
#include "arena.h"

#include <glib.h>
#include <stdlib.h>

/* Room for some 8,000 idle sessions per worker (about 4 KiB each). Of
 * the address space only: the pages are not touched. */
#define MK_ARENA_RESERVE (32u << 20)
/* Below glibc's smallest mmap threshold (128 KiB), so that the blocks
 * come from the arena's heap and not from mmap(). Each costs an
 * mprotect() and a page fault, once per thread. */
#define CHUNK (120u << 10)

/* See arena.h. Any thread. */
void mk_arena_reserve(void)
{
    enum { N = MK_ARENA_RESERVE / CHUNK };
    void *blocks[N];
    for (guint i = 0; i < N; i++)
        blocks[i] = malloc(CHUNK);
    /* In allocation order: each block merges with the free one before it,
     * and the last with the top of the heap, which is then trimmed once. */
    for (guint i = 0; i < N; i++)
        free(blocks[i]);
}
