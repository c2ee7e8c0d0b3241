/* The malloc heap of a long-lived thread, grown once at its start.
 *
 * glibc gives threads other than the main one arenas whose heap is a
 * 64 MiB reservation made accessible as it grows: a page at a time, with
 * an mprotect() each (M_TOP_PAD only pads a heap when it is created). A
 * worker's or an auth thread's heap grows with every session it keeps,
 * so that was about one mprotect() and one minor page fault per login.
 * What was made accessible stays so when the heap shrinks again (the
 * pages are given back with madvise), so growing the heap once at the
 * start of the thread, by allocating and freeing, makes later growth up
 * to there free of system calls, at no cost in memory: the freed pages
 * are returned at once, and the rest was never touched.
 *
 * Not mallopt(M_TOP_PAD) for the whole process: that pads every arena's
 * first heap too, but also keeps as much free memory at the top of
 * every arena when it shrinks, and turns off glibc's adaptive mmap
 * threshold. */
#pragma once

/* Grows the calling thread's malloc arena by MK_ARENA_RESERVE bytes and
 * gives the memory back. Call first thing on a thread that allocates for
 * long (workers, pool threads). Harmless elsewhere, and with allocators
 * other than glibc's. */
void mk_arena_reserve(void);
