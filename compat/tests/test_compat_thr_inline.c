/* test_compat_thr_inline.c — Guile's allocation pattern on rudo's
 * libgc.so.1, under threads and two markers: gc_inline.h's inline
 * allocator (GC_MALLOC_WORDS, GC_MALLOC_ATOMIC_WORDS) compiled into the
 * client, with per-thread free lists refilled by GC_generic_malloc_many
 * for kinds 0 and 1; the pointer-free lists' tails traced by the client
 * (as gc_inline.h requires and Guile's thread mark procedure does), here
 * from GC_push_other_roots; and objects of a kind with a mark procedure
 * (PROC descriptor with env) in the same lists. 4 threads build lists of
 * cells whose payloads carry a pattern, collect, and check every payload
 * after each round: a cell or payload freed while reachable would be
 * reused and its pattern overwritten. The same binary passes on the
 * system libgc. */
#define GC_THREADS 1
#include <gc.h>
#include <gc/gc_inline.h>
#include <gc/gc_mark.h>

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "compat_test.h"

extern void (*GC_push_other_roots)(void);

#define THREADS 4
#define CELLS 3000
#define ROUNDS 6

struct thr {
    void *fl[GC_TINY_FREELISTS];  /* kind 1 */
    void *afl[GC_TINY_FREELISTS]; /* kind 0 */
    void **list;                  /* the newest cell */
    int id, bad;
};
static struct thr ts[THREADS]; /* static data: scanned, so the heads live */
static unsigned k_proc;
static void (*old_push)(void);

/* The pointer-free lists are linked through word 0, which the collector
 * does not scan in a pointer-free object: the client marks the tails.
 * It reads other threads' lists while they are stopped, as a collector
 * does (not a data race TSan can see through signal suspension). */
__attribute__((no_sanitize("thread"))) static void push_tails(void) {
    for (int t = 0; t < THREADS; t++)
        for (int n = 0; n < GC_TINY_FREELISTS; n++)
            for (void **q = ts[t].afl[n]; (uintptr_t)q > GC_TINY_FREELISTS + 1;
                 q = *q)
                GC_push_all(q, q + 1);
    if (old_push)
        old_push();
}

/* Cells of k_proc: word 0 the previous cell, word env the payload. */
static struct GC_ms_entry *mark_cell(GC_word *addr, struct GC_ms_entry *msp,
                                     struct GC_ms_entry *msl, GC_word env) {
    msp = GC_MARK_AND_PUSH((void *)addr[0], msp, msl, (void **)&addr[0]);
    return GC_MARK_AND_PUSH((void *)addr[env], msp, msl, (void **)&addr[env]);
}

static GC_word pat(int t, int i, int w) { return ((GC_word)t << 40 | (GC_word)i << 8 | (GC_word)w) * 2 + 1; }

static void build(struct thr *t, int round) {
    t->list = NULL;
    for (int i = 0; i < CELLS; i++) {
        GC_word *payload;
        GC_MALLOC_ATOMIC_WORDS(payload, 3, t->afl);
        for (int w = 0; w < 3; w++)
            payload[w] = pat(t->id, i + round, w);
        void **c;
        if (i % 3 == 2) {
            c = GC_generic_malloc(2 * sizeof(void *), (int)k_proc);
        } else {
            /* A word more than used: with GC_all_interior_pointers bdwgc
             * does not trace the last word (gc_inline.h's warning). */
            GC_MALLOC_WORDS(c, 3, t->fl);
        }
        c[0] = t->list;
        c[1] = payload;
        t->list = c;
    }
}

static void check(struct thr *t, int round) {
    int i = CELLS - 1;
    for (void **c = t->list; c; c = c[0], i--) {
        GC_word *payload = c[1];
        for (int w = 0; w < 3; w++)
            if (payload[w] != pat(t->id, i + round, w)) {
                if (t->bad++ == 0)
                    fprintf(stderr, "thread %d round %d: cell %d's payload "
                            "changed\n", t->id, round, i);
                break;
            }
    }
    if (i != -1 && t->bad++ == 0)
        fprintf(stderr, "thread %d: list of %d cells\n", t->id, CELLS - 1 - i);
}

static void *run(void *arg) {
    struct thr *t = arg;
    for (int r = 0; r < ROUNDS; r++) {
        build(t, r);
        if (t->id == 0 || r % 2 == 1)
            GC_gcollect();
        check(t, r);
    }
    return NULL;
}

int main(void) {
    setenv("RUDO_MARKERS", "2", 0); /* two markers unless the run says */
    GC_INIT();
    unsigned pi = GC_new_proc(mark_cell);
    k_proc = GC_new_kind(GC_new_free_list(), GC_MAKE_PROC(pi, 1), 0, 1);
    old_push = GC_push_other_roots;
    GC_push_other_roots = push_tails;
    pthread_t th[THREADS];
    for (int i = 0; i < THREADS; i++) {
        ts[i].id = i;
        CHECK(pthread_create(&th[i], NULL, run, &ts[i]) == 0);
    }
    for (int i = 0; i < THREADS; i++)
        CHECK(pthread_join(th[i], NULL) == 0);
    for (int i = 0; i < THREADS; i++)
        CHECK(ts[i].bad == 0);
    return ct_report();
}
