/* test_thr_free_matrix.c — rudo's explicit memory calls (rudo_free,
 * rudo_realloc, rudo_alloc_aligned, rudo_alloc_array), case by case, over
 * the cross product
 *
 *     kind     (conservative; atomic; layout {0, 2} of 3 words; trace
 *               callback; atomic RUDO_KIND_UNINIT), each with and without
 *               a kind finalizer (alternating by case)
 *   x size     (every small size class, in CI a sample around the band
 *               boundaries; large objects of 32 KiB + 1, 64 KiB, 200 KiB)
 *   x cell     (index 0, 1, the middle and the last cell of a page run)
 *   x state    of the freed object's page when rudo_free is called:
 *                own      the calling thread's current page;
 *                other    another attached thread's current page (that
 *                         thread allocated it; the main thread frees it);
 *                retired  after rudo_collect: no thread allocates there;
 *                stashed  in an allocator's page batch (RUDO_PAGE_BATCH=8
 *                         heaps only);
 *                old      promoted by a minor collection, page retired
 *                         (generational heaps only);
 *                old-cur  promoted, then its page made current again by a
 *                         later allocation (generational heaps only)
 *   x heap     (markers 1 and 2; RUDO_VERIFY=1 or not; plain, page batch
 *               of 8, generational).
 *
 * One case: a run of cells 0 .. pos+1 of one page (test_page_run), all
 * rooted in a registered range and filled with id-derived patterns; the
 * object X at `pos` gets a short and a long weak slot and a per-object
 * finalizer or a guardian registration. Its page is brought to the state
 * (and the state read back from the page descriptor: a case whose state
 * could not be reached is skipped, and counted), then X is freed. What
 * rudo.h promises and is asserted:
 *  - the neighbours (every other cell of the run) are untouched, after the
 *    free, after the reuse and after collections;
 *  - without verification, on a page no thread allocates from, X is free
 *    at once (rudo_is_heap_ptr false) and an allocation of its size class
 *    hands the cell out again (within a bound), zeroed but for UNINIT
 *    kinds, with the asked kind and size; a large object's pages go back
 *    at once (pages in use drop by its span);
 *  - on a current page, X is zeroed, still counts as allocated, and is
 *    reclaimed by the next collection (minor ones included), after which
 *    its cell is handed out again;
 *  - with verification (RUDO_VERIFY=1, RUDO_DEBUG builds) nothing is
 *    reused before the next collection: X stays allocated, its contents
 *    0xdb bytes (zeros for trace-callback kinds), and that collection
 *    ends the quarantine;
 *  - no finalizer runs for X (kind or per-object), no guardian hands it
 *    back; the registration has ended (registering the object reusing the
 *    cell succeeds); an object of a finalized kind reusing the cell is
 *    finalized once when it dies (no stale finalizer bit);
 *  - weak slots to X are not cleared by rudo_free; after a collection that
 *    finds a live object in X's cell they point to it (rudo.h's warning);
 *    otherwise they are NULL or still X (not specified: counted);
 *  - generational: the object reusing an old cell is young (an unrooted
 *    one dies in the next minor collection).
 * Once per heap configuration (claims_*): rudo_realloc growth and shrink
 * (contents, kind, zeroed tails, the old object left as it was, NULL
 * argument), rudo_alloc_aligned for every power of two up to 64 KiB (the
 * alignment, rudo_size, the whole object usable, nothing overlapping),
 * rudo_alloc_array (size, zeroing, kind).
 * A shadow model (1 and 2 threads, each heap variant's markers and
 * verification): each thread keeps its own table of live objects with
 * their patterns, allocates (plain, aligned, array), frees, reallocates,
 * hands objects to the other thread through a mailbox (so that objects
 * are freed by a thread that did not allocate them), collects now and
 * then and checks every live object after each of its collections.
 * Misuse, each in a forked child (expect_death checks the message):
 * double free, interior pointers, non-heap pointers, frees in a blocking
 * region or from an unattached thread, referenced freed objects under
 * the verifier, bad alignments, sizes 0, array overflow, realloc misuse.
 *
 * Precise roots only (no stack or static-data scanning). Collections are
 * disabled while runs are placed and while a freed cell is hunted for, and
 * every configuration sets its own environment (RUDO_GC_STRESS,
 * RUDO_VERIFY, RUDO_PAGE_BATCH, ... are cleared first: the states under
 * test need collections at known points).
 *
 * Default (CI) mode: a fixed-seed sample (TEST_SAMPLE per mille of the
 * non-edge cases: 12; 5 under ASan, TSan and in RUDO_DEBUG builds) plus
 * the edges: sizes 16, 32768, the large ones, cells 0 and last, every
 * state and kind. TEST_LONG=1 (or --long) runs the whole product;
 * TEST_SEED changes the sample. */
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "debug/debug.h"
#include "heap/heap.h"
#include "rudo.h"
#include "testlib.h"
#include "threads/threads.h"

#define WORD sizeof(uint64_t)

#ifdef RUDO_TEST_DEBUG_BUILD
#define DEBUG_BUILD 1
#else
#define DEBUG_BUILD 0
#endif

/* ---- dimensions --------------------------------------------------------- */

enum { K_CONS, K_ATOMIC, K_LAYOUT, K_CALLBACK, K_UNINIT, NK };
static const char *const k_name[NK] = {"conservative", "atomic", "layout3", "callback",
                                       "uninit"};

enum { S_OWN, S_OTHER, S_RETIRED, S_STASHED, S_OLD, S_OLD_CUR, NS };
static const char *const s_name[NS] = {"own", "other", "retired", "stashed", "old", "old-cur"};

enum { V_PLAIN, V_BATCH, V_GEN, NV };
static const char *const v_name[NV] = {"plain", "batch8", "generational"};

static bool state_in(int v, int s) {
    if (s == S_STASHED)
        return v == V_BATCH;
    if (s == S_OLD || s == S_OLD_CUR)
        return v == V_GEN;
    return true;
}

static const size_t large_sizes[] = {32768 + 1, 65536, 200 * 1024};
#define NLARGE (sizeof large_sizes / sizeof large_sizes[0])
#define NSIZES (RUDO_NCLASSES + NLARGE)

static size_t size_of_index(unsigned si) {
    return si < RUDO_NCLASSES ? rudo__class_size[si] : large_sizes[si - RUDO_NCLASSES];
}
static size_t ncells_of(size_t size) { return size > RUDO_SMALL_MAX ? 1 : RUDO_PAGE_SIZE / size; }
static size_t usable(size_t size) { return (size + 15) / 16 * 16; }

/* ---- failures ----------------------------------------------------------- */

static atomic_ulong failures, checks, printed;
static unsigned long print_limit = 40; /* TEST_PRINT */
static char ctx[200]; /* the case being run (main thread) */
static unsigned long bad_by_state[NS], bad_by_kind[NK];
static bool case_bad;
static int cur_s = -1, cur_k = -1;

static void expect_at(bool ok, const char *what, int line) {
    atomic_fetch_add_explicit(&checks, 1, memory_order_relaxed);
    if (ok)
        return;
    atomic_fetch_add(&failures, 1);
    case_bad = true;
    if (atomic_fetch_add(&printed, 1) < print_limit)
        fprintf(stderr, "FAIL line %d [%s]: %s\n", line, ctx, what);
}
#define EXPECT(c) expect_at((c) ? true : false, #c, __LINE__)

/* ---- kinds and patterns ----------------------------------------------------- */

static rudo_kind kinds[NK][2]; /* [kind][with kind finalizer] */
static const uint64_t layout_bits = 5; /* words 0 and 2 of every 3 */

static void cb_trace(void *obj, size_t size, rudo_tracer *tr) {
    void **w = obj;
    size_t nw = size / sizeof(void *);
    for (size_t i = 0; i < nw; i += 4)
        rudo_visit(tr, &w[i]);
    if ((nw - 1) % 4 != 0)
        rudo_visit(tr, &w[nw - 1]);
}

/* A word of object `tag`: never a heap address (the top byte makes it
 * non-canonical), so the patterns keep nothing alive in traced kinds, need
 * no barrier, and the verifier ignores them. */
static uint64_t pat(uint64_t tag, size_t w) {
    return (test_mix64(tag * 0x9e3779b97f4a7c15ULL + w) & 0x0000ffffffffffffULL) |
           0xa500000000000000ULL;
}
static void fill(void *obj, uint64_t tag) {
    uint64_t *p = obj;
    size_t nw = rudo_size(obj) / WORD;
    for (size_t i = 0; i < nw; i++)
        p[i] = pat(tag, i);
}
static bool intact_n(const void *obj, uint64_t tag, size_t nw) {
    const uint64_t *p = obj;
    for (size_t i = 0; i < nw; i++)
        if (p[i] != pat(tag, i))
            return false;
    return true;
}
static bool all_bytes(const void *p, size_t n, unsigned char b) {
    const unsigned char *c = p;
    for (size_t i = 0; i < n; i++)
        if (c[i] != b)
            return false;
    return true;
}

static void *must_alloc(rudo_kind k, size_t size) {
    void *p = rudo_alloc(k, size);
    if (!p) {
        fprintf(stderr, "rudo_alloc returned NULL\n");
        abort();
    }
    return p;
}

/* ---- finalizers and guardians -------------------------------------------------- */

static void *_Atomic watch;         /* the freed X while its cell is unused */
static atomic_ulong watch_hits;     /* kind finalizer calls on it: a bug */
static void *_Atomic fin_target;    /* the object reusing X's cell, dropped */
static atomic_ulong fin_target_hits;
static atomic_ulong obj_fin_calls;  /* per-object finalizer calls: all bugs */
static rudo_guardian *guard;

static void kind_fin(void *obj, void *data) {
    (void)data;
    if (obj == atomic_load(&watch))
        atomic_fetch_add(&watch_hits, 1);
    if (obj == atomic_load(&fin_target))
        atomic_fetch_add(&fin_target_hits, 1);
}
static void obj_fin(void *obj, void *data) {
    (void)obj;
    (void)data;
    atomic_fetch_add(&obj_fin_calls, 1);
}

/* ---- held objects: a registered root range ---------------------------------------- */

#define H_RUN 0
#define H_R RUDO_MAX_CELLS
#define H_EXTRA (2 * RUDO_MAX_CELLS)
#define HOLD_CAP (2 * RUDO_MAX_CELLS + 16)
static void **hold;     /* malloc'd, a conservative root range */
static void **wslots;   /* two weak slots, malloc'd (never scanned) */
static void **run, **rrun; /* scratch for test_page_run */

static void *run_alloc(rudo_kind kind, size_t size, void *data) {
    (void)data;
    return must_alloc(kind, size);
}

/* Cells 0 .. need-1 of one page of (kind, size), in out[] and held at
 * hold[at ..]. Collections are disabled meanwhile (a collection would cut
 * the run). False if no such run came, or the placement is not what the
 * page arithmetic says. */
static bool place(rudo_kind kind, size_t size, size_t need, void **out, size_t at) {
    size_t ncells = ncells_of(size);
    rudo_disable();
    bool ok = test_page_run(kind, size, need, 16 * ncells + 256, out, run_alloc, NULL);
    if (ok)
        for (size_t j = 0; j < need; j++) {
            hold[at + j] = out[j];
            ok = ok && rudo_size(out[j]) == size && rudo_kind_of(out[j]) == kind &&
                 ((uintptr_t)out[j] & (RUDO_PAGE_SIZE - 1)) / size == j;
        }
    rudo_enable();
    return ok;
}

/* ---- page states (read from the page descriptor) ------------------------------- */

enum { PS_NONE, PS_OWN, PS_OTHER, PS_STASHED, PS_LARGE, PS_ODD };
static const char *const ps_name[] = {"none", "own", "other", "stashed", "large", "odd"};

static int page_state(const void *x) {
    rudo__heap *h = rudo__the_heap;
    rudo__page *p;
    size_t i;
    if (!rudo__cell_of(h, x, &p, &i))
        return PS_ODD;
    if (p->type == RUDO_PAGE_LARGE)
        return PS_LARGE;
    void **ol = atomic_load(&p->owner_list);
    if (ol == NULL)
        return PS_NONE;
    if (rudo__owner_stashed(ol))
        return PS_STASHED;
    if (ol == RUDO_OWNER_CLAIMED)
        return PS_ODD;
    return p->owner == rudo__self()->id ? PS_OWN : PS_OTHER;
}
static uintptr_t page_of(const void *x) { return (uintptr_t)x >> RUDO_PAGE_SHIFT; }
static bool verifying(void) { return rudo__the_heap->verify; }

/* ---- the second thread (allocates runs for the "other" state) -------------------- */


struct place_job {
    rudo_kind kind;
    size_t size, need;
    bool ok;
};
static void job_place(void *arg) {
    struct place_job *j = arg;
    if (j->size > RUDO_SMALL_MAX) {
        run[0] = hold[H_RUN] = must_alloc(j->kind, j->size);
        j->ok = true;
    } else {
        j->ok = place(j->kind, j->size, j->need, run, H_RUN);
    }
}

/* ---- one case --------------------------------------------------------------------- */

static int g_variant;
static unsigned long cases_run, cases_skipped, skipped_by_state[NS];
static unsigned long reuse_first, reuse_later, max_hunt, reuse_after_major;
static unsigned long weak_null_after, weak_kept_after; /* the unspecified outcome */
static unsigned long large_tail_unpoisoned;
static uint64_t serial = 1;

/* Allocates (kind, size) until `want` comes back; at most `bound` tries,
 * collections disabled (the allocations in between are garbage). */
static void *hunt(rudo_kind kind, size_t size, void *want, size_t bound) {
    void *got = NULL;
    rudo_disable();
    for (size_t t = 0; t < bound; t++) {
        void *y = must_alloc(kind, size);
        if (y == want) {
            got = y;
            if (t == 0)
                reuse_first++;
            else
                reuse_later++;
            if (t > max_hunt)
                max_hunt = t;
            break;
        }
    }
    rudo_enable();
    return got;
}

static void collect(bool minor) {
    if (minor)
        rudo_collect_minor();
    else
        rudo_collect();
}

static bool run_intact(size_t need, size_t pos, size_t spare, uint64_t base) {
    for (size_t j = 0; j < need; j++)
        if (j != pos && j != spare && !intact_n(run[j], base + j, rudo_size(run[j]) / WORD))
            return false;
    return true;
}

/* The object Y now in X's cell: fresh as rudo_alloc promises, and free of
 * X's registration; then held (or not) and filled. */
static void check_reused(void *y, int k, rudo_kind kind, size_t size, bool per_object) {
    atomic_store(&watch, NULL); /* X's window ends: y is a new object */
    EXPECT(rudo_kind_of(y) == kind);
    EXPECT(rudo_size(y) == usable(size));
    if (k != K_UNINIT)
        EXPECT(all_bytes(y, rudo_size(y), 0));
    /* rudo_free ended X's registration: the cell's new object has none. */
    if (per_object) {
        EXPECT(rudo_finalizer_register(y, obj_fin, NULL) == RUDO_OK);
        EXPECT(rudo_finalizer_unregister(y) == RUDO_OK);
    } else {
        rudo_guardian *g2 = rudo_guardian_new();
        EXPECT(g2 && rudo_guardian_register(g2, y) == RUDO_OK);
        rudo_guardian_destroy(g2); /* drops the registration */
    }
}

static void run_case(int k, int kf, unsigned si, size_t pos, int s) {
    size_t size = size_of_index(si);
    bool large = size > RUDO_SMALL_MAX;
    rudo_kind kind = kinds[k][kf];
    size_t ncells = ncells_of(size);
    bool gen = g_variant == V_GEN;
    bool verify = verifying();
    bool per_object = (serial & 1) != 0;
    uint64_t base = serial++ << 13;
    snprintf(ctx, sizeof ctx, "%s m%u%s: state %s kind %s%s size %zu cell %zu",
             v_name[g_variant], rudo__debug_markers(), verify ? " verify" : "", s_name[s],
             k_name[k], kf ? "+kf" : "", size, pos);
    case_bad = false;
    cur_s = s;
    cur_k = k;
    memset(hold, 0, HOLD_CAP * sizeof *hold);

    size_t need = large ? 1 : (pos + 2 <= ncells ? pos + 2 : ncells);
    size_t spare = (size_t)-1; /* a cell freed early so the page is not full */
    bool want_avail = s == S_STASHED || s == S_OLD_CUR;
    if (want_avail && !large && need == ncells)
        spare = pos >= 2 ? 0 : (size_t)-1;

    /* The stashed state: a full page R that will become current, so that
     * the next refill stashes X's page behind it. */
    struct place_job pj = {kind, size, need, false};
    if (s == S_OTHER)
        test_on_worker(job_place, &pj);
    else
        job_place(&pj);
    bool ok = pj.ok;
    /* After X's page: a higher page index, so that the eager sweep lists
     * R after X's page, at the head of the avail list (verifier). */
    if (ok && s == S_STASHED)
        ok = place(kind, size, ncells, rrun, H_R);
    void *X = ok ? run[pos] : NULL;
    if (ok)
        for (size_t j = 0; j < need; j++)
            fill(run[j], base + j);
    if (ok && s == S_STASHED)
        for (size_t j = 0; j < ncells; j++)
            fill(rrun[j], base + 4096 + j);
    if (ok && spare != (size_t)-1) {
        hold[H_RUN + spare] = NULL;
        rudo_free(run[spare]);
    }
    if (ok) {
        wslots[0] = wslots[1] = X;
        EXPECT(rudo_weak_register(&wslots[0]) == RUDO_OK);
        EXPECT(rudo_weak_register_long(&wslots[1]) == RUDO_OK);
        EXPECT((per_object ? rudo_finalizer_register(X, obj_fin, NULL)
                           : rudo_guardian_register(guard, X)) == RUDO_OK);
    }

    /* The page state. */
    int want_ps = PS_NONE;
    if (ok) {
        switch (s) {
        case S_OWN:
            want_ps = PS_OWN;
            break;
        case S_OTHER:
            want_ps = PS_OTHER;
            break;
        case S_RETIRED:
            collect(false);
            break;
        case S_OLD:
            collect(true);
            EXPECT(rudo__debug_is_marked(X)); /* old: survived, sticky mark */
            break;
        case S_OLD_CUR: {
            collect(true);
            EXPECT(rudo__debug_is_marked(X));
            /* Allocate until the thread allocates from X's page again. */
            rudo_disable();
            void *z = NULL;
            for (size_t t = 0; t < 16 * ncells + 64 && !z; t++) {
                void *y = must_alloc(kind, size);
                if (page_of(y) == page_of(X))
                    z = y;
            }
            hold[H_EXTRA + 1] = z;
            rudo_enable();
            want_ps = PS_OWN;
            break;
        }
        case S_STASHED: {
            /* R goes to the head of the avail list: at once without the
             * verifier, through the collection's sweep with it. */
            if (verify) {
                hold[H_R] = NULL;
                rudo_free(rrun[0]);
            }
            collect(false);
            if (!verify) {
                hold[H_R] = NULL;
                rudo_free(rrun[0]);
            }
            hold[H_EXTRA + 1] = must_alloc(kind, size); /* R current, X's page stashed */
            want_ps = PS_STASHED;
            break;
        }
        }
        if (large)
            want_ps = PS_LARGE;
        int got = page_state(X);
        if (got != want_ps) {
            if (skipped_by_state[s]++ < 5)
                fprintf(stderr, "  skipped [%s]: page state %s, not %s\n", ctx, ps_name[got],
                        ps_name[want_ps]);
            ok = false;
        }
    } else if (skipped_by_state[s]++ < 5) {
        fprintf(stderr, "  skipped [%s]: no page run\n", ctx);
    }
    if (!ok) {
        cases_skipped++;
        if (wslots[0] || wslots[1]) {
            rudo_weak_unregister(&wslots[0]);
            rudo_weak_unregister(&wslots[1]);
        }
        if (X && per_object)
            (void)rudo_finalizer_unregister(X);
        /* A guardian registration of a skipped case ends with the free. */
        if (X && !per_object) {
            hold[H_RUN + pos] = NULL;
            rudo_free(X);
        }
        wslots[0] = wslots[1] = NULL;
        memset(hold, 0, HOLD_CAP * sizeof *hold);
        return;
    }
    cases_run++;
    bool cur = !large && (s == S_OWN || s == S_OTHER || s == S_OLD_CUR);
    size_t span = (usable(size) + RUDO_PAGE_SIZE - 1) / RUDO_PAGE_SIZE;
    size_t used0 = rudo__debug_used_pages();

    /* ---- the free ---- */
    hold[H_RUN + pos] = NULL;
    atomic_store(&watch, X);
    rudo_free(X);

    EXPECT(wslots[0] == X && wslots[1] == X); /* not cleared by rudo_free */
    EXPECT(run_intact(need, pos, spare, base));
    size_t n = usable(size);
    if (verify) {
        /* Quarantined: kept, poisoned (a large object's first page). */
        EXPECT(rudo_is_heap_ptr(X));
        EXPECT(rudo_base(X) == X);
        size_t pn = n < RUDO_PAGE_SIZE ? n : RUDO_PAGE_SIZE;
        EXPECT(all_bytes(X, pn, k == K_CALLBACK ? 0 : RUDO_POISON_BYTE));
        if (n > pn && !all_bytes((char *)X + pn, n - pn, k == K_CALLBACK ? 0 : RUDO_POISON_BYTE))
            large_tail_unpoisoned++;
        EXPECT(rudo_finalizer_unregister(X) == RUDO_ENOENT); /* ended */
    } else if (cur) {
        EXPECT(rudo_is_heap_ptr(X)); /* reclaimed by the next collection */
        EXPECT(all_bytes(X, n, 0));  /* zeroed: it keeps nothing alive */
        EXPECT(rudo_finalizer_unregister(X) == RUDO_ENOENT);
    } else {
        EXPECT(!rudo_is_heap_ptr(X)); /* free at once */
        EXPECT(rudo_base(X) == NULL);
        if (large)
            EXPECT(rudo__debug_used_pages() + span == used0);
    }
    if (s == S_STASHED)
        EXPECT(page_state(X) == PS_STASHED); /* stays in the stash */

    /* ---- reuse before any collection: only a free cell ---- */
    size_t bound = 64 * ncells + 1024;
    void *Y = NULL;
    bool y_held = false;
    if (!verify && !cur && !large) {
        Y = hunt(kind, size, X, bound);
        EXPECT(Y == X);
        if (Y) {
            check_reused(Y, k, kind, size, per_object);
            fill(Y, base + 8000);
            y_held = s != S_OLD; /* old: Y stays unrooted, and must be young */
            if (y_held)
                hold[H_EXTRA] = Y;
            else if (kf)
                atomic_store(&fin_target, Y), atomic_store(&fin_target_hits, 0);
            EXPECT(run_intact(need, pos, spare, base));
        }
    }

    /* ---- the next collection ---- */
    collect(gen);
    EXPECT(run_intact(need, pos, spare, base));
    EXPECT(rudo_guardian_poll(guard) == NULL);
    if (y_held) {
        EXPECT(rudo_is_heap_ptr(Y) && intact_n(Y, base + 8000, n / WORD));
        /* The warning of rudo.h: the slots now point to the new object. */
        EXPECT(wslots[0] == Y && wslots[1] == Y);
    } else {
        /* Reclaimed: quarantine ended, current-page free reclaimed, the
         * young object in an old cell died in the minor collection (one
         * of a finalized kind is finalized first, then reclaimed by the
         * next one). */
        if (Y && kf) {
            EXPECT(atomic_load(&fin_target_hits) == 1);
            atomic_store(&fin_target, NULL);
            /* Kept for its finalizer, it was marked, so old: a major
             * collection reclaims it. */
            rudo_collect();
        }
        EXPECT(!rudo_is_heap_ptr(X));
        for (int w = 0; w < 2; w++) {
            EXPECT(wslots[w] == NULL || wslots[w] == X);
            if (wslots[w] == NULL)
                weak_null_after++;
            else
                weak_kept_after++;
        }
    }

    /* ---- reuse after the collection (quarantined, current-page frees) ---- */
    if (!Y && !large && !rudo_is_heap_ptr(X)) {
        Y = hunt(kind, size, X, bound);
        if (!Y && gen && verify) {
            /* A minor collection sweeps only the pages it touched: the
             * cell of a quarantined object on a full old page is free but
             * its page is on no list until a major one (counted, see the
             * report; rudo.h only says "may be reused"). */
            reuse_after_major++;
            rudo_collect();
            Y = hunt(kind, size, X, bound);
        }
        EXPECT(Y == X);
        if (Y) {
            check_reused(Y, k, kind, size, per_object);
            fill(Y, base + 8000);
            hold[H_EXTRA] = Y;
            y_held = true;
            EXPECT(run_intact(need, pos, spare, base));
        }
    }
    atomic_store(&watch, NULL);
    EXPECT(atomic_load(&watch_hits) == 0);
    EXPECT(atomic_load(&obj_fin_calls) == 0);

    /* An object of a finalized kind in the reused cell is finalized once
     * when it dies: rudo_free left no finalizer bit behind. Y of a kind
     * without a finalizer is simply freed. */
    if (y_held && kf) {
        atomic_store(&fin_target, Y);
        atomic_store(&fin_target_hits, 0);
        hold[H_EXTRA] = NULL;
        rudo_collect();
        EXPECT(atomic_load(&fin_target_hits) == 1);
        atomic_store(&fin_target, NULL);
    } else if (y_held) {
        hold[H_EXTRA] = NULL;
        rudo_free(Y);
    }
    EXPECT(rudo_weak_unregister(&wslots[0]) == RUDO_OK);
    EXPECT(rudo_weak_unregister(&wslots[1]) == RUDO_OK);
    wslots[0] = wslots[1] = NULL;
    memset(hold, 0, HOLD_CAP * sizeof *hold);
    /* Minor collections leave the old garbage of the cases (promoted
     * runs): a major one now and then keeps the heap, and the verifier's
     * walks of it, small. */
    if (gen && cases_run % 4 == 0)
        rudo_collect();
    if (case_bad) {
        bad_by_state[s]++;
        bad_by_kind[k]++;
    }
}

/* ---- claims: realloc, aligned, array ---------------------------------------------- */

static unsigned long realloc_checked, realloc_shrink_same, realloc_uninit_tail_nonzero;
static unsigned long aligned_checked, array_checked;

/* Words [0, nbytes) of p hold the pattern of tag, the last partial word
 * compared bytewise. */
static bool prefix_ok(const void *p, uint64_t tag, size_t nbytes) {
    if (!intact_n(p, tag, nbytes / WORD))
        return false;
    uint64_t w = pat(tag, nbytes / WORD);
    return memcmp((const char *)p + nbytes / WORD * WORD, &w, nbytes % WORD) == 0;
}

static void claims_realloc(bool full) {
    snprintf(ctx, sizeof ctx, "%s m%u%s: realloc", v_name[g_variant], rudo__debug_markers(),
             verifying() ? " verify" : "");
    for (int k = 0; k < NK; k++)
        for (unsigned si = 0; si < NSIZES; si++) {
            size_t size = size_of_index(si);
            if (!full && si % 7 != 0 && si + 1 != RUDO_NCLASSES && si < RUDO_NCLASSES)
                continue;
            size_t n = usable(size);
            size_t targets[] = {1, n / 2 + 1, n - 1, n, n + 1, 2 * n, 40000, 70000};
            for (size_t ti = 0; ti < sizeof targets / sizeof targets[0]; ti++) {
                size_t t = targets[ti];
                rudo_kind kind = kinds[k][0];
                void *o = must_alloc(kind, size);
                hold[H_EXTRA + 2] = o;
                uint64_t tag = serial++ << 13;
                fill(o, tag);
                void *r = rudo_realloc(o, t);
                hold[H_EXTRA + 3] = r;
                realloc_checked++;
                EXPECT(r != NULL);
                if (!r)
                    continue;
                EXPECT(rudo_kind_of(r) == kind);
                EXPECT(rudo_size(r) >= t);
                EXPECT(prefix_ok(r, tag, t < n ? t : n)); /* min(old, new) bytes kept */
                if (r == o) {
                    EXPECT(t <= n);
                    realloc_shrink_same++;
                    /* Its tail past `size` is zeroed (rudo.h says so
                     * without excluding UNINIT kinds: counted apart). */
                    if (k != K_UNINIT)
                        EXPECT(all_bytes((char *)r + t, n - t, 0));
                    else if (!all_bytes((char *)r + t, n - t, 0))
                        realloc_uninit_tail_nonzero++;
                } else {
                    EXPECT(intact_n(o, tag, n / WORD)); /* the old one as it was */
                    if (k != K_UNINIT)
                        EXPECT(all_bytes((char *)r + n, rudo_size(r) - n, 0));
                }
                /* The new object is an ordinary one: usable whole, and it
                 * survives a collection while rooted (every few). */
                fill(r, tag + 1);
                if (ti == 3 || ti == 7) {
                    hold[H_EXTRA + 2] = NULL;
                    rudo_collect();
                    EXPECT(intact_n(r, tag + 1, rudo_size(r) / WORD));
                }
                hold[H_EXTRA + 2] = hold[H_EXTRA + 3] = NULL;
            }
        }
    /* NULL: rudo_alloc of the conservative kind. */
    void *p = rudo_realloc(NULL, 100);
    EXPECT(p && rudo_kind_of(p) == RUDO_KIND_CONSERVATIVE && rudo_size(p) >= 100 &&
           all_bytes(p, rudo_size(p), 0));
}

static void claims_aligned(void) {
    snprintf(ctx, sizeof ctx, "%s m%u%s: aligned", v_name[g_variant], rudo__debug_markers(),
             verifying() ? " verify" : "");
    for (int k = 0; k < NK; k++) {
        rudo_kind kind = kinds[k][0];
        size_t nh = 0;
        void *objs[17 * 6];
        uint64_t tags[17 * 6];
        for (unsigned a = 0; a <= RUDO_PAGE_SHIFT; a++) {
            size_t align = (size_t)1 << a;
            size_t sizes[] = {1, align / 2 + 1, align, align + 16, 3 * align + 1, 40000};
            for (size_t z = 0; z < 6; z++) {
                size_t size = sizes[z] > 200000 ? 200000 : sizes[z];
                void *p = rudo_alloc_aligned(kind, size, align);
                aligned_checked++;
                EXPECT(p != NULL);
                if (!p)
                    continue;
                hold[H_R + nh] = p;
                EXPECT((uintptr_t)p % align == 0);
                EXPECT(rudo_base(p) == p && rudo_kind_of(p) == kind);
                EXPECT(rudo_size(p) >= size);
                if (k != K_UNINIT)
                    EXPECT(all_bytes(p, rudo_size(p), 0));
                tags[nh] = serial++ << 13;
                fill(p, tags[nh]); /* usable for its full rudo_size */
                objs[nh++] = p;
            }
        }
        rudo_collect();
        bool ok = true;
        for (size_t i = 0; i < nh; i++)
            ok = ok && intact_n(objs[i], tags[i], rudo_size(objs[i]) / WORD);
        EXPECT(ok); /* no overlap, nothing lost */
        /* Aligned objects are ordinary ones: rudo_free takes them. */
        for (size_t i = 0; i < nh; i += 2) {
            hold[H_R + i] = NULL;
            rudo_free(objs[i]);
        }
        rudo_collect();
        ok = true;
        for (size_t i = 1; i < nh; i += 2)
            ok = ok && intact_n(objs[i], tags[i], rudo_size(objs[i]) / WORD);
        EXPECT(ok);
        memset(hold, 0, HOLD_CAP * sizeof *hold);
    }
}

static void claims_array(void) {
    snprintf(ctx, sizeof ctx, "%s m%u%s: array", v_name[g_variant], rudo__debug_markers(),
             verifying() ? " verify" : "");
    static const size_t combos[][2] = {{1, 1},    {1, 16},    {3, 7},    {7, 3},
                                       {100, 8},  {1000, 33}, {2048, 16}, {4097, 8},
                                       {1, 32768}, {2, 16385}, {25600, 8}};
    for (int k = 0; k < NK; k++) {
        void *objs[11];
        uint64_t tags[11];
        for (size_t c = 0; c < 11; c++) {
            size_t bytes = combos[c][0] * combos[c][1];
            void *p = rudo_alloc_array(kinds[k][0], combos[c][0], combos[c][1]);
            array_checked++;
            EXPECT(p != NULL);
            if (!p) {
                objs[c] = NULL;
                continue;
            }
            hold[H_R + c] = p;
            EXPECT(rudo_kind_of(p) == kinds[k][0] && rudo_size(p) >= bytes);
            if (k != K_UNINIT)
                EXPECT(all_bytes(p, rudo_size(p), 0));
            tags[c] = serial++ << 13;
            fill(p, tags[c]);
            objs[c] = p;
        }
        rudo_collect();
        bool ok = true;
        for (size_t c = 0; c < 11; c++)
            ok = ok && (!objs[c] || intact_n(objs[c], tags[c], rudo_size(objs[c]) / WORD));
        EXPECT(ok);
        memset(hold, 0, HOLD_CAP * sizeof *hold);
    }
}

/* ---- heaps -------------------------------------------------------------------------- */

static void make_heap(unsigned markers, bool verify, int variant) {
    if (verify)
        setenv("RUDO_VERIFY", "1", 1);
    if (variant == V_BATCH)
        setenv("RUDO_PAGE_BATCH", "8", 1);
    rudo_config cfg = test_manual_config(markers, (size_t)512 << 20);
    cfg.generational = variant == V_GEN;
    test_heap_create(&cfg);
    unsetenv("RUDO_VERIFY");
    unsetenv("RUDO_PAGE_BATCH");
    g_variant = variant;
    for (int k = 0; k < NK; k++)
        for (int f = 0; f < 2; f++) {
            char name[48];
            snprintf(name, sizeof name, "fm-%s%s", k_name[k], f ? "-kf" : "");
            rudo_kind_desc d = {.name = name};
            switch (k) {
            case K_CONS:
                d.tracing = RUDO_TRACE_CONSERVATIVE;
                break;
            case K_ATOMIC:
            case K_UNINIT:
                d.tracing = RUDO_TRACE_ATOMIC;
                break;
            case K_LAYOUT:
                d.tracing = RUDO_TRACE_LAYOUT;
                d.layout = &layout_bits;
                d.layout_words = 3;
                break;
            case K_CALLBACK:
                d.tracing = RUDO_TRACE_CALLBACK;
                d.trace = cb_trace;
                break;
            }
            if (f)
                d.finalize = kind_fin;
            kinds[k][f] = rudo_kind_register_flags(&d, k == K_UNINIT ? RUDO_KIND_UNINIT : 0);
        }
    memset(hold, 0, HOLD_CAP * sizeof *hold);
    rudo_root_add_range(hold, hold + HOLD_CAP);
    guard = rudo_guardian_new();
    test_worker_start();
}

static void drop_heap(unsigned markers) {
    test_worker_stop();
    rudo_collect();
    CHECK_EQ(rudo__debug_markers(), markers);
    CHECK(rudo_guardian_poll(guard) == NULL);
    rudo_guardian_destroy(guard);
    CHECK_EQ(rudo_root_remove_range(hold), RUDO_OK);
    rudo_heap_destroy();
}

/* ---- the shadow model: 1 or 2 threads freeing concurrently ------------------------- */

#define NLIVE 48
typedef struct mthread {
    unsigned id;
    uint64_t rng;
    void **objs; /* malloc'd, a registered root range */
    uint64_t tags[NLIVE];
    int kind[NLIVE];
    long ops;
    unsigned long frees, reallocs, collects, handed;
} mthread;

static pthread_mutex_t mbox_mu = PTHREAD_MUTEX_INITIALIZER;
static void **mbox; /* one slot, malloc'd, a root range */
static uint64_t mbox_tag;
static int mbox_kind;
static pthread_barrier_t mbar;
static atomic_ulong model_fail;
static unsigned long model_ops;

static void model_expect(bool ok, mthread *t, const char *what) {
    atomic_fetch_add_explicit(&checks, 1, memory_order_relaxed);
    if (ok)
        return;
    atomic_fetch_add(&model_fail, 1);
    atomic_fetch_add(&failures, 1);
    if (atomic_fetch_add(&printed, 1) < print_limit)
        fprintf(stderr, "FAIL model thread %u: %s\n", t->id, what);
}

static size_t model_size(mthread *t) {
    uint64_t r = test_rand(&t->rng);
    if (r % 97 == 0)
        return 32769 + (size_t)(test_rand(&t->rng) % 180000);
    if (r % 5 == 0)
        return rudo__class_size[test_rand(&t->rng) % RUDO_NCLASSES];
    return 1 + (size_t)(test_rand(&t->rng) % 600);
}

static bool model_ok(mthread *t, int i) {
    void *o = t->objs[i];
    return intact_n(o, t->tags[i], rudo_size(o) / WORD);
}

static void model_check_all(mthread *t) {
    for (int i = 0; i < NLIVE; i++)
        if (t->objs[i])
            model_expect(model_ok(t, i), t, "live object's pattern after a collection");
}

static void model_free(mthread *t, int i) {
    void *o = t->objs[i];
    model_expect(model_ok(t, i), t, "pattern before free");
    t->objs[i] = NULL;
    rudo_free(o);
    t->frees++;
}

static void *model_thread(void *arg) {
    mthread *t = arg;
    if (rudo_thread_attach() != RUDO_OK) {
        model_expect(false, t, "attach");
        return NULL;
    }
    test_barrier_wait(&mbar);
    for (long op = 0; op < t->ops; op++) {
        int i = (int)(test_rand(&t->rng) % NLIVE);
        unsigned r = (unsigned)(test_rand(&t->rng) % 100);
        if (r < 40) { /* allocate: plain, aligned or array */
            if (t->objs[i])
                model_free(t, i);
            int k = (int)(test_rand(&t->rng) % NK);
            size_t size = model_size(t);
            void *o;
            if (r < 6) {
                size_t align = (size_t)1 << (test_rand(&t->rng) % 17);
                o = rudo_alloc_aligned(kinds[k][0], size, align);
                model_expect(o && (uintptr_t)o % align == 0, t, "aligned allocation");
            } else if (r < 10) {
                o = rudo_alloc_array(kinds[k][0], size, 3);
                model_expect(o && rudo_size(o) >= size * 3, t, "array allocation");
            } else {
                o = rudo_alloc(kinds[k][0], size);
            }
            if (!o)
                continue;
            model_expect(k == K_UNINIT || all_bytes(o, rudo_size(o), 0), t,
                         "allocation zeroed");
            t->objs[i] = o;
            t->kind[i] = k;
            t->tags[i] = ((uint64_t)t->id << 56) ^ ((uint64_t)op << 8) ^ 0x11;
            fill(o, t->tags[i]);
        } else if (r < 72) {
            if (t->objs[i])
                model_free(t, i);
        } else if (r < 80) { /* realloc */
            void *o = t->objs[i];
            if (!o)
                continue;
            size_t n = rudo_size(o), ns = model_size(t);
            void *q = rudo_realloc(o, ns);
            t->reallocs++;
            model_expect(q && rudo_kind_of(q) == kinds[t->kind[i]][0] && rudo_size(q) >= ns, t,
                         "realloc kind and size");
            if (!q)
                continue;
            model_expect(prefix_ok(q, t->tags[i], ns < n ? ns : n), t, "realloc contents");
            if (q != o) {
                model_expect(intact_n(o, t->tags[i], n / WORD), t, "realloc: old object kept");
                if (t->kind[i] != K_UNINIT)
                    model_expect(all_bytes((char *)q + n, rudo_size(q) - n, 0), t,
                                 "realloc: new part zeroed");
            } else if (t->kind[i] != K_UNINIT) {
                model_expect(all_bytes((char *)q + ns, n - ns, 0), t, "realloc: tail zeroed");
            }
            t->objs[i] = q;
            t->tags[i] ^= 0x100;
            fill(q, t->tags[i]);
            if (q != o && (op & 1))
                rudo_free(o); /* the program knows the old copy is dead */
        } else if (r < 83) {
            rudo_collect();
            t->collects++;
            model_check_all(t);
        } else if (r < 88) { /* the mailbox: swap an object with the other thread */
            test_mutex_lock(&mbox_mu);
            void *o = t->objs[i];
            uint64_t tag = t->tags[i];
            int k = t->kind[i];
            t->objs[i] = *mbox;
            t->tags[i] = mbox_tag;
            t->kind[i] = mbox_kind;
            *mbox = o;
            mbox_tag = tag;
            mbox_kind = k;
            pthread_mutex_unlock(&mbox_mu);
            t->handed++;
        } else if (t->objs[i]) {
            model_expect(model_ok(t, i), t, "pattern");
        }
    }
    rudo_collect();
    model_check_all(t);
    for (int i = 0; i < NLIVE; i++)
        if (t->objs[i])
            model_free(t, i);
    test_barrier_wait(&mbar);
    rudo_thread_detach();
    return NULL;
}

static void run_model(unsigned markers, bool verify, int variant, unsigned nthreads, long ops) {
    make_heap(markers, verify, variant);
    mthread th[2];
    mbox = calloc(1, sizeof *mbox);
    rudo_root_add_range(mbox, mbox + 1);
    pthread_barrier_init(&mbar, NULL, nthreads);
    pthread_t pt[2];
    for (unsigned i = 0; i < nthreads; i++) {
        memset(&th[i], 0, sizeof th[i]);
        th[i].id = i;
        th[i].rng = test_mix64(0x5eed + i * 7919 + markers * 31 + verify * 3 + (uint64_t)variant) | 1;
        th[i].ops = ops;
        th[i].objs = calloc(NLIVE, sizeof(void *));
        rudo_root_add_range(th[i].objs, th[i].objs + NLIVE);
        if (pthread_create(&pt[i], NULL, model_thread, &th[i]) != 0) {
            perror("pthread_create");
            exit(2);
        }
    }
    rudo_blocking_enter();
    for (unsigned i = 0; i < nthreads; i++)
        pthread_join(pt[i], NULL);
    rudo_blocking_leave();
    if (*mbox) {
        /* The last object left in the mailbox: still intact. */
        mthread m = {.id = 9};
        m.objs = mbox;
        m.tags[0] = mbox_tag;
        model_expect(model_ok(&m, 0), &m, "mailbox object");
        void *o = *mbox;
        *mbox = NULL;
        rudo_free(o);
    }
    for (unsigned i = 0; i < nthreads; i++) {
        model_ops += (unsigned long)th[i].ops;
        CHECK_EQ(rudo_root_remove_range(th[i].objs), RUDO_OK);
        free(th[i].objs);
    }
    CHECK_EQ(rudo_root_remove_range(mbox), RUDO_OK);
    free(mbox);
    pthread_barrier_destroy(&mbar);
    drop_heap(markers);
}

/* ---- misuse (forked children) ------------------------------------------------------ */

static void *d_keep; /* a registered root slot of the death heap */
static int d_int;

static void d_free_interior_small(void *a) {
    char *p = must_alloc(a ? kinds[K_CALLBACK][0] : RUDO_KIND_CONSERVATIVE, 64);
    d_keep = p;
    if (a)
        rudo_collect(); /* on a retired page */
    rudo_free(p + 16);
}
static void d_free_interior_large(void *a) {
    (void)a;
    char *p = must_alloc(RUDO_KIND_ATOMIC, 200 * 1024);
    d_keep = p;
    rudo_free(p + 4096);
}
static void d_free_interior_aligned(void *a) {
    (void)a;
    char *p = rudo_alloc_aligned(RUDO_KIND_ATOMIC, 64, 4096);
    d_keep = p;
    rudo_free(p + 16);
}
static void d_free_stack(void *a) {
    (void)a;
    long x[4] = {0};
    rudo_free(x);
}
static void d_free_malloc(void *a) {
    (void)a;
    rudo_free(malloc(32));
}
static void d_free_static(void *a) {
    (void)a;
    rudo_free(&d_int);
}
static void d_double_small(void *a) {
    void *p = must_alloc(kinds[K_LAYOUT][0], 48);
    d_keep = p;
    if (a)
        rudo_collect(); /* not current: exact in every mode */
    d_keep = NULL;
    rudo_free(p);
    rudo_free(p);
}
static void d_double_large(void *a) {
    (void)a;
    void *p = must_alloc(kinds[K_UNINIT][0], 65536);
    rudo_free(p);
    rudo_free(p);
}
static void d_referenced(void *a) {
    (void)a;
    void **holder = must_alloc(RUDO_KIND_CONSERVATIVE, 4 * sizeof(void *));
    d_keep = holder;
    holder[2] = must_alloc(kinds[K_ATOMIC][0], 48);
    rudo_free(holder[2]);
    rudo_collect();
}
static void d_free_blocking(void *a) {
    (void)a;
    void *p = must_alloc(RUDO_KIND_ATOMIC, 32);
    rudo_blocking_enter();
    rudo_free(p);
}
static void *unattached_free(void *p) {
    rudo_free(p);
    return NULL;
}
static void d_free_unattached(void *a) {
    (void)a;
    void *p = must_alloc(RUDO_KIND_ATOMIC, 32);
    d_keep = p;
    pthread_t t;
    if (pthread_create(&t, NULL, unattached_free, p) == 0) {
        rudo_blocking_enter();
        pthread_join(t, NULL);
        rudo_blocking_leave();
    }
}
static void d_aligned(void *a) { (void)rudo_alloc_aligned(RUDO_KIND_ATOMIC, 64, *(size_t *)a); }
static void d_aligned_size0(void *a) {
    (void)a;
    (void)rudo_alloc_aligned(RUDO_KIND_ATOMIC, 0, 64);
}
static void d_array_overflow(void *a) {
    (void)a;
    (void)rudo_alloc_array(RUDO_KIND_ATOMIC, SIZE_MAX / 2 + 1, 2);
}
static void d_array_zero(void *a) {
    (void)a;
    (void)rudo_alloc_array(RUDO_KIND_ATOMIC, 0, 8);
}
static void d_realloc_interior(void *a) {
    (void)a;
    char *p = must_alloc(RUDO_KIND_ATOMIC, 64);
    d_keep = p;
    (void)rudo_realloc(p + 16, 128);
}
static void d_realloc_size0(void *a) {
    (void)a;
    void *p = must_alloc(RUDO_KIND_ATOMIC, 64);
    d_keep = p;
    (void)rudo_realloc(p, 0);
}
static void d_realloc_nonheap(void *a) {
    (void)a;
    (void)rudo_realloc(&d_int, 64);
}
static void d_realloc_freed(void *a) {
    (void)a;
    void *p = must_alloc(RUDO_KIND_ATOMIC, 64);
    d_keep = p;
    rudo_collect();
    d_keep = NULL;
    rudo_free(p);
    (void)rudo_realloc(p, 128);
}

static void run_deaths(bool verify) {
    if (verify)
        setenv("RUDO_VERIFY", "1", 1);
    /* One marker: no marker threads in the forked children (TSan). */
    rudo_config cfg = test_precise_config(1);
    CHECK_EQ(rudo_heap_create(&cfg), RUDO_OK);
    unsetenv("RUDO_VERIFY");
    rudo_root_add(&d_keep);
    for (int k = 0; k < NK; k++) {
        rudo_kind_desc d = {.name = k_name[k]};
        d.tracing = k == K_CONS ? RUDO_TRACE_CONSERVATIVE
                    : k == K_LAYOUT ? RUDO_TRACE_LAYOUT
                    : k == K_CALLBACK ? RUDO_TRACE_CALLBACK
                                      : RUDO_TRACE_ATOMIC;
        d.layout = &layout_bits;
        d.layout_words = 3;
        d.trace = cb_trace;
        kinds[k][0] = rudo_kind_register_flags(&d, k == K_UNINIT ? RUDO_KIND_UNINIT : 0);
    }
    bool v = verifying();
    const char *notbase = "is not the base of an allocated heap object";
    int one = 1;
    expect_death("free: interior pointer (current page)", d_free_interior_small, NULL, notbase);
    expect_death("free: interior pointer (retired page)", d_free_interior_small, &one, notbase);
    expect_death("free: interior pointer (large)", d_free_interior_large, NULL, notbase);
    expect_death("free: interior pointer (aligned)", d_free_interior_aligned, NULL, notbase);
    expect_death("free: stack address", d_free_stack, NULL, notbase);
    expect_death("free: malloc'd address", d_free_malloc, NULL, notbase);
    expect_death("free: static address", d_free_static, NULL, notbase);
    expect_death("free: small twice (retired)", d_double_small, &one,
                 v ? "rudo: rudo_free: " : notbase);
    if (v) {
        expect_death("free: small twice (retired) says double free", d_double_small, &one,
                     "(double free)");
        /* The quarantine catches it on a current page too. */
        expect_death("free: small twice (current page), verifier", d_double_small, NULL,
                     "(double free)");
        expect_death("verify: freed object still referenced", d_referenced, NULL,
                     "which was freed with rudo_free");
    }
    expect_death("free: large twice", d_double_large, NULL, v ? "(double free)" : notbase);
    expect_death("free: in a blocking region", d_free_blocking, NULL, "rudo: rudo_free: ");
    expect_death("free: unattached thread", d_free_unattached, NULL, "rudo: rudo_free: ");
    static const size_t bad_align[] = {0, 3, 24, 48, 1000, 131072, (size_t)1 << 40};
    for (size_t i = 0; i < sizeof bad_align / sizeof bad_align[0]; i++) {
        char needle[128], what[64];
        snprintf(needle, sizeof needle,
                 "rudo: rudo_alloc_aligned: alignment %zu is not a power of two up to 65536",
                 bad_align[i]);
        snprintf(what, sizeof what, "aligned: alignment %zu", bad_align[i]);
        expect_death(what, d_aligned, (void *)&bad_align[i], needle);
    }
    expect_death("aligned: size 0", d_aligned_size0, NULL, "rudo: rudo_alloc_aligned: size 0");
    expect_death("array: overflow", d_array_overflow, NULL, "rudo: rudo_alloc_array: ");
    expect_death("array: overflow says so", d_array_overflow, NULL, "overflows");
    expect_death("array: n 0", d_array_zero, NULL, "size 0");
    expect_death("realloc: interior pointer", d_realloc_interior, NULL,
                 "rudo: rudo_realloc: ");
    expect_death("realloc: size 0", d_realloc_size0, NULL, "rudo: rudo_realloc: size 0");
    expect_death("realloc: non-heap", d_realloc_nonheap, NULL, "is not the base of a heap object");
    if (!v)
        expect_death("realloc: freed object", d_realloc_freed, NULL,
                     "is not the base of a heap object");
    d_keep = NULL;
    CHECK_EQ(rudo_root_remove(&d_keep), RUDO_OK);
    rudo_heap_destroy();
}

/* ---- main ---------------------------------------------------------------------------- */

int main(int argc, char **argv) {
    bool full = test_long_mode(argc, argv);
    test_start_watchdog();
    print_limit = (unsigned long)test_env_long("TEST_PRINT", 40);
    uint64_t seed = (uint64_t)test_env_long("TEST_SEED", 0x66726565);
    bool slow = TEST_UNDER_TSAN || TEST_UNDER_ASAN || DEBUG_BUILD;
    long sample = test_env_long("TEST_SAMPLE", slow ? 5 : 12);
    static const char *const env[] = {
        "RUDO_MARKERS",       "RUDO_GENERATIONAL", "RUDO_NURSERY",  "RUDO_NURSERY_ADAPT",
        "RUDO_HEAP_INITIAL",  "RUDO_MAJOR_GROWTH", "RUDO_HEAP_MAX", "RUDO_GC_STRESS",
        "RUDO_VERIFY",        "RUDO_PAGE_BATCH",   "RUDO_INTERIOR_POINTERS"};
    for (size_t i = 0; i < sizeof env / sizeof env[0]; i++)
        unsetenv(env[i]);
    hold = calloc(HOLD_CAP, sizeof *hold);
    wslots = calloc(2, sizeof *wslots);
    run = malloc(RUDO_MAX_CELLS * sizeof *run);
    rrun = malloc(RUDO_MAX_CELLS * sizeof *rrun);
    if (!hold || !wslots || !run || !rrun) {
        perror("malloc");
        return 2;
    }
    printf("seed %llu, %s, sample %ld per mille\n", (unsigned long long)seed,
           full ? "full cross product" : "CI sample (TEST_LONG=1 for all)", sample);

    unsigned long planned = 0;
    for (unsigned markers = 1; markers <= 2; markers++)
        for (int verify = 0; verify < 2; verify++)
            for (int variant = 0; variant < NV; variant++) {
                uint64_t t0 = test_now_ns();
                unsigned long run0 = cases_run;
                make_heap(markers, verify, variant);
                for (int s = 0; s < NS; s++) {
                    if (!state_in(variant, s))
                        continue;
                    for (int k = 0; k < NK; k++)
                        for (unsigned si = 0; si < NSIZES; si++) {
                            size_t size = size_of_index(si);
                            size_t nc = ncells_of(size);
                            bool large = nc == 1;
                            if (large && (s == S_STASHED || s == S_OLD_CUR))
                                continue; /* no page to share */
                            size_t poss[4] = {0, 1, nc / 2, nc - 1}, pl[4], np = 0;
                            for (int q = 0; q < 4; q++) {
                                bool dup = poss[q] >= nc;
                                for (size_t j = 0; j < np && !dup; j++)
                                    dup = pl[j] == poss[q];
                                if (!dup)
                                    pl[np++] = poss[q];
                            }
                            for (size_t pi = 0; pi < np; pi++) {
                                size_t pos = pl[pi];
                                /* Reaching these states needs a free cell
                                 * on the page that is not a neighbour. */
                                if ((s == S_STASHED || s == S_OLD_CUR) && pos + 2 >= nc &&
                                    pos < 2)
                                    continue;
                                planned++;
                                uint64_t h = test_mix64(seed ^ ((uint64_t)markers << 60) ^
                                                        ((uint64_t)verify << 58) ^
                                                        ((uint64_t)variant << 54) ^
                                                        ((uint64_t)s << 50) ^
                                                        ((uint64_t)k << 46) ^
                                                        ((uint64_t)si << 30) ^ pos);
                                bool edge = (si == 0 || si + 1 == RUDO_NCLASSES || large) &&
                                            (pos == 0 || pos + 1 == nc);
                                if (!full && !edge && (long)(h % 1000) >= sample)
                                    continue;
                                run_case(k, (int)((h >> 20) & 1), si, pos, s);
                            }
                        }
                }
                claims_realloc(full);
                claims_aligned();
                claims_array();
                drop_heap(markers);
                printf("  markers %u, %s, %s: %lu cases, %.2f s\n", markers,
                       verify ? "verify" : "no verify", v_name[variant], cases_run - run0,
                       (double)(test_now_ns() - t0) / 1e9);
                fflush(stdout);
            }
    unsigned long bad = 0;
    for (int s = 0; s < NS; s++)
        bad += bad_by_state[s];
    printf("matrix: %lu of %lu cases run, %lu skipped (state not reached), %lu bad\n",
           cases_run, planned, cases_skipped, bad);
    for (int s = 0; s < NS; s++)
        if (bad_by_state[s] || skipped_by_state[s])
            printf("  state %s: %lu bad, %lu skipped\n", s_name[s], bad_by_state[s],
                   skipped_by_state[s]);
    for (int k = 0; k < NK; k++)
        if (bad_by_kind[k])
            printf("  kind %s: %lu bad\n", k_name[k], bad_by_kind[k]);
    printf("reuse: %lu at the next allocation, %lu later (at most %lu tries), %lu only after "
           "a major collection (generational, verifier); weak slots after the collection "
           "with X's cell free: %lu NULL, %lu still X\n",
           reuse_first, reuse_later, max_hunt + 1, reuse_after_major, weak_null_after,
           weak_kept_after);
    printf("claims: %lu reallocs (%lu in place; %lu UNINIT in-place tails not zeroed), "
           "%lu aligned, %lu array allocations; %lu large quarantined objects with "
           "their tail past 64 KiB not poisoned\n",
           realloc_checked, realloc_shrink_same, realloc_uninit_tail_nonzero, aligned_checked,
           array_checked, large_tail_unpoisoned);

    uint64_t tm = test_now_ns();
    long ops = test_scaled(full ? 20000 : TEST_UNDER_TSAN ? 500 : slow ? 1000 : 2500);
    for (unsigned markers = 1; markers <= 2; markers++)
        for (int verify = 0; verify < 2; verify++)
            for (unsigned nt = 1; nt <= 2; nt++)
                run_model(markers, verify, nt == 2 && markers == 2 ? V_BATCH : V_PLAIN, nt, ops);
    printf("model: %lu operations, %lu failures, %.2f s\n", model_ops,
           (unsigned long)atomic_load(&model_fail), (double)(test_now_ns() - tm) / 1e9);

    uint64_t td = test_now_ns();
    run_deaths(false);
    run_deaths(true);
    printf("misuse: %.2f s\n", (double)(test_now_ns() - td) / 1e9);
    printf("%lu expectations checked, %lu failed\n", (unsigned long)atomic_load(&checks),
           (unsigned long)atomic_load(&failures));

    CHECK(cases_run > 0);
    CHECK(cases_skipped * 50 <= cases_run);
    CHECK_EQ(atomic_load(&failures), 0ul);
    free(hold);
    free(wslots);
    free(run);
    free(rrun);
    return test_report();
}
