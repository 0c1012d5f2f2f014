/*
 * weak_refs.c — what weak references cost the collector, and a weak table
 * workload. Collector backends only (rudo, bdwgc). One part per process
 * (--part), each printing one RESULT line:
 *
 *   slots       --objects N 16-byte pointer-free objects, half of them kept
 *               alive by a strong array, each referenced by a weak slot in
 *               malloc'd memory (bk_weak_register: rudo_weak_register,
 *               bdwgc's GC_general_register_disappearing_link). Each round
 *               allocates a fresh dying half (kept alive by a "pending"
 *               array while it is built, so that no automatic collection
 *               sees it die early), drops the pending array and forces one
 *               full collection, timed. --collections rounds are run with
 *               the slots *not* registered (the baseline: the same heap,
 *               the same garbage, the slots just hold pointers the
 *               collector does not see), then as many with every slot
 *               registered. After each registered round, exactly the dying
 *               half of the slots must be NULL and the live half intact
 *               (rudo: the collector's weak_cleared count must be N/2 too).
 *               The cost of the weak slots per collection is the difference
 *               of the medians.
 *   ephemerons  rudo only (bdwgc has no ephemerons): a table (a strong
 *               array) of N ephemeron objects (rudo_kind_ephemeron) whose
 *               keys are N 16-byte objects, half kept alive by a strong
 *               array, and whose values are N more 16-byte objects; each
 *               round gives the odd entries a fresh dying key and value.
 *               Baseline: the same table of plain strong pairs (a two-
 *               pointer layout kind) holding the live half's keys and
 *               values, with NULL in the odd entries, and the same dying
 *               keys and values allocated as garbage: the same live set
 *               and the same garbage as the ephemeron table after its
 *               collection. After each ephemeron round, exactly the odd
 *               entries must be cleared (key and value NULL; the
 *               collector's ephemerons_cleared count N/2) and the even ones
 *               intact.
 *   intern      a weak interning table: --requests M intern calls, each for
 *               the string "h<k>" with k < --hot (probability --hot-pct %;
 *               the program keeps those strings alive, and interning one
 *               again must return the same object) or "s<k>" with k drawn
 *               from 2^24 values (mostly new strings). The program keeps
 *               each result alive for --ring further requests (a ring of
 *               strong references) and then drops it, so most entries die
 *               and are cleared by the collections that the allocation
 *               triggers. The table is open addressing with linear
 *               probing; a cleared entry (its hash set, its string NULL) is
 *               a tombstone that the next insertion on its probe path
 *               reuses; when used entries exceed 3/4 of the capacity the
 *               table is rebuilt from its live entries (doubling when they
 *               fill more than half). --variant:
 *                 registered  the table is malloc'd and each entry's
 *                             string field is a weak slot (bk_weak_register;
 *                             rebuilds register the new slots and
 *                             unregister the old ones);
 *                 visit       rudo only: the table is one heap object of a
 *                             callback kind whose trace function reports
 *                             each entry's string field with
 *                             rudo_visit_weak (no registration at all).
 *               At the end: one more collection, then every string in the
 *               ring and every hot string must be found, identical, and the
 *               table may hold no more than hot + ring live entries.
 */
#include "backend.h"
#include "common.h"

#if BK_RUDO
#include <rudo.h>
#endif

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int cmp_u64(const void *x, const void *y) {
    uint64_t a = *(const uint64_t *)x, b = *(const uint64_t *)y;
    return (a > b) - (a < b);
}

static uint64_t median_u64(uint64_t *v, long n) {
    qsort(v, (size_t)n, sizeof *v, cmp_u64);
    return v[n / 2];
}

static void *xmalloc(size_t size) {
    void *p = malloc(size);
    if (p == NULL)
        bench_fail("out of memory (malloc %zu)", size);
    return p;
}

/* Overwrites the stack below the caller's frame, where pointers to dying
 * objects may be left (a conservative stack scan would keep them alive). */
static __attribute__((noinline)) void clear_stack(void) {
    volatile uint64_t junk[8192];
    for (size_t i = 0; i < sizeof junk / sizeof junk[0]; i++)
        junk[i] = 0;
}

/* A 16-byte pointer-free object. */
typedef struct Obj {
    uint64_t id;
    uint64_t check;
} Obj;

static Obj *new_obj(uint64_t id) {
    Obj *o = bk_alloc_blob(sizeof(Obj));
    o->id = id;
    o->check = ~id;
    return o;
}

/* Statics the collector must see (registered with bk_root_add). */
static void **live;    /* the live half, strongly */
static void **pending; /* the dying half while it is built */
static void **table;   /* ephemerons: the table */
static void **ring;    /* intern: the recent results */
static void **hot;     /* intern: the hot strings */
static void *wtable;   /* intern, visit: the table object */

/* One timed collection: returns its wall time; *mark_ns gets the mark time
 * the backend recorded for it. */
static uint64_t timed_collect(uint64_t *mark_ns) {
    size_t before = bench_gc_count();
    uint64_t t0 = bench_now_ns();
    bk_collect();
    uint64_t t = bench_now_ns() - t0;
    size_t after = bench_gc_count();
    if (after != before + 1)
        bench_fail("weak-refs: %zu collections recorded for one forced", after - before);
    *mark_ns = bench_gc_mark_ns(before);
    return t;
}

/* ---- part 1: weak slots -------------------------------------------------- */

/* Fills the odd slots with fresh dying objects (kept by `pending`). */
static __attribute__((noinline)) void slots_fill(void **slots, long n, bool reg, uint64_t round) {
    pending = bk_alloc_ptrs((size_t)(n / 2));
    for (long i = 1; i < n; i += 2) {
        Obj *o = new_obj(round << 32 | (uint64_t)i);
        pending[i / 2] = o;
        slots[i] = o;
        if (reg)
            bk_weak_register(&slots[i]);
    }
}

static __attribute__((noinline)) void slots_drop(void) { pending = NULL; }

static void part_slots(long n, long rounds) {
    void **slots = xmalloc((size_t)n * sizeof *slots); /* not scanned */
    live = bk_alloc_ptrs((size_t)(n / 2));
    for (long i = 0; i < n; i += 2) {
        Obj *o = new_obj((uint64_t)i);
        live[i / 2] = o;
        slots[i] = o;
    }
    uint64_t *gc[2], *mark[2], fill_ns[2] = {0, 0};
    for (int w = 0; w < 2; w++) {
        gc[w] = xmalloc((size_t)rounds * sizeof(uint64_t));
        mark[w] = xmalloc((size_t)rounds * sizeof(uint64_t));
    }
    uint64_t reg_ns = 0;
    for (int w = 0; w < 2; w++) {
        if (w == 1) {
            /* Register the live half (the dying half is registered as it
             * is allocated). */
            uint64_t t0 = bench_now_ns();
            for (long i = 0; i < n; i += 2)
                bk_weak_register(&slots[i]);
            reg_ns = bench_now_ns() - t0;
        }
        for (long r = -1; r < rounds; r++) { /* round -1: warm-up, not counted */
            uint64_t t0 = bench_now_ns();
            slots_fill(slots, n, w == 1, (uint64_t)(r + 2 + w * (rounds + 1)));
            uint64_t t1 = bench_now_ns();
            slots_drop();
            clear_stack();
            int64_t cleared0 = bk_weak_cleared_total();
            uint64_t m, t = timed_collect(&m);
            int64_t cleared = cleared0 < 0 ? -1 : bk_weak_cleared_total() - cleared0;
            if (r < 0)
                continue;
            gc[w][r] = t;
            mark[w][r] = m;
            fill_ns[w] += t1 - t0;
            if (w == 0)
                continue;
            long bad_live = 0, kept_dead = 0;
            for (long i = 0; i < n; i += 2) {
                const Obj *o = slots[i];
                if (o != live[i / 2] || o->id != (uint64_t)i || o->check != ~(uint64_t)i)
                    bad_live++;
            }
            for (long i = 1; i < n; i += 2)
                kept_dead += slots[i] != NULL;
            if (bad_live != 0 || kept_dead != 0)
                bench_fail("weak-slots: round %ld: %ld live slots wrong, %ld dead slots not "
                           "cleared (of %ld each)", r, bad_live, kept_dead, n / 2);
            if (cleared >= 0 && cleared != n / 2)
                bench_fail("weak-slots: round %ld: the collector cleared %lld weak slots, "
                           "expected %ld", r, (long long)cleared, n / 2);
        }
    }
    for (long i = 0; i < n; i++)
        bk_weak_unregister(&slots[i]);
    uint64_t gc0 = median_u64(gc[0], rounds), gc1 = median_u64(gc[1], rounds);
    uint64_t mk0 = median_u64(mark[0], rounds), mk1 = median_u64(mark[1], rounds);
    char extra[400];
    snprintf(extra, sizeof extra,
             "objects=%ld collections=%ld gc_none_ms=%.2f gc_weak_ms=%.2f "
             "mark_none_ms=%.2f mark_weak_ms=%.2f weak_ns_per_slot=%.1f "
             "register_ns_per_slot=%.1f refill_none_ms=%.2f refill_weak_ms=%.2f",
             n, rounds, (double)gc0 / 1e6, (double)gc1 / 1e6, (double)mk0 / 1e6,
             (double)mk1 / 1e6, ((double)gc1 - (double)gc0) / (double)n,
             (double)reg_ns / (double)(n / 2), (double)fill_ns[0] / (double)rounds / 1e6,
             (double)fill_ns[1] / (double)rounds / 1e6);
    bench_result("weak-slots", 1, extra);
    for (int w = 0; w < 2; w++) {
        free(gc[w]);
        free(mark[w]);
    }
    free(slots);
}

/* ---- part 1b: ephemerons (rudo) ------------------------------------------ */

#if BK_RUDO
typedef struct Pair {
    void *key;
    void *value;
} Pair;

/* Gives the odd entries fresh dying keys and values (kept by `pending`). */
static __attribute__((noinline)) void eph_fill(long n, bool eph, uint64_t round) {
    pending = bk_alloc_ptrs((size_t)n);
    for (long i = 1; i < n; i += 2) {
        Obj *k = new_obj(round << 32 | (uint64_t)i);
        Obj *v = new_obj(round << 32 | (uint64_t)i | 1u << 31);
        pending[i - 1] = k;
        pending[i] = v;
        if (eph) {
            rudo_ephemeron *e = table[i];
            e->key = k;
            e->value = v;
        }
    }
}

static void part_ephemerons(long n, long rounds) {
    rudo_kind eph_kind = rudo_kind_ephemeron("bench-ephemeron");
    bk_type pair_type = bk_node_type("bench-pair", sizeof(Pair), 2);
    live = bk_alloc_ptrs((size_t)(n / 2));
    for (long i = 0; i < n; i += 2)
        live[i / 2] = new_obj((uint64_t)i);
    uint64_t *gc[2], *mark[2];
    for (int w = 0; w < 2; w++) {
        gc[w] = xmalloc((size_t)rounds * sizeof(uint64_t));
        mark[w] = xmalloc((size_t)rounds * sizeof(uint64_t));
    }
    for (int w = 0; w < 2; w++) {
        /* The table: w = 0 plain pairs, w = 1 ephemerons. */
        table = NULL;
        table = bk_alloc_ptrs((size_t)n);
        for (long i = 0; i < n; i++) {
            Pair *p;
            if (w == 1) {
                p = rudo_alloc(eph_kind, sizeof(rudo_ephemeron));
                if (p == NULL)
                    bench_fail("rudo_alloc(ephemeron) returned NULL");
            } else {
                p = bk_alloc(pair_type);
            }
            p->key = NULL;
            p->value = NULL;
            table[i] = p;
            if (i % 2 == 0) {
                p->key = live[i / 2];
                p->value = new_obj((uint64_t)i | 1u << 31);
            }
        }
        for (long r = -1; r < rounds; r++) {
            eph_fill(n, w == 1, (uint64_t)(r + 2 + w * (rounds + 1)));
            slots_drop();
            clear_stack();
            int64_t cleared0 = bk_ephemerons_cleared_total();
            uint64_t m, t = timed_collect(&m);
            int64_t cleared = bk_ephemerons_cleared_total() - cleared0;
            if (r < 0)
                continue;
            gc[w][r] = t;
            mark[w][r] = m;
            long bad_live = 0, kept_dead = 0;
            for (long i = 0; i < n; i += 2) {
                const Pair *p = table[i];
                const Obj *v = p->value;
                if (p->key != live[i / 2] || v == NULL || v->id != ((uint64_t)i | 1u << 31) ||
                    v->check != ~v->id)
                    bad_live++;
            }
            for (long i = 1; i < n; i += 2) {
                const Pair *p = table[i];
                kept_dead += p->key != NULL || p->value != NULL;
            }
            if (bad_live != 0 || kept_dead != 0)
                bench_fail("ephemerons (%s): round %ld: %ld live entries wrong, %ld dead "
                           "entries not cleared (of %ld each)", w ? "ephemerons" : "pairs", r,
                           bad_live, kept_dead, n / 2);
            if (cleared != (w == 1 ? n / 2 : 0))
                bench_fail("ephemerons: round %ld: the collector cleared %lld ephemerons, "
                           "expected %ld", r, (long long)cleared, w == 1 ? n / 2 : 0);
        }
    }
    uint64_t gc0 = median_u64(gc[0], rounds), gc1 = median_u64(gc[1], rounds);
    uint64_t mk0 = median_u64(mark[0], rounds), mk1 = median_u64(mark[1], rounds);
    char extra[300];
    snprintf(extra, sizeof extra,
             "objects=%ld collections=%ld gc_none_ms=%.2f gc_weak_ms=%.2f "
             "mark_none_ms=%.2f mark_weak_ms=%.2f weak_ns_per_slot=%.1f",
             n, rounds, (double)gc0 / 1e6, (double)gc1 / 1e6, (double)mk0 / 1e6,
             (double)mk1 / 1e6, ((double)gc1 - (double)gc0) / (double)n);
    bench_result("ephemerons", 1, extra);
    for (int w = 0; w < 2; w++) {
        free(gc[w]);
        free(mark[w]);
    }
}
#endif

/* ---- part 2: weak interning table ---------------------------------------- */

/* A heap string: pointer-free. */
typedef struct Str {
    uint64_t hash;
    uint32_t len;
    char s[];
} Str;

/* A table entry. hash 0: never used; hash set and str NULL: a tombstone
 * (an entry whose string died, or was cleared). str is the weak field. */
typedef struct Ent {
    void *str;
    uint64_t hash;
} Ent;

/* The visit variant's table object: a header, then the entries. */
typedef struct WTable {
    uint64_t cap;
    uint64_t pad;
    Ent e[];
} WTable;

static bool g_visit;   /* variant */
static Ent *t_ent;     /* the entries (malloc'd, or inside wtable) */
static size_t t_cap;   /* power of two */
static size_t t_used;  /* entries with hash != 0 */
static uint64_t t_rebuilds, t_reused, t_new, t_hits;

#if BK_RUDO
static rudo_kind g_wtable_kind;

static void wtable_trace(void *obj, size_t size, rudo_tracer *tr) {
    WTable *t = obj;
    size_t n = (size - sizeof(WTable)) / sizeof(Ent);
    if (t->cap < n)
        n = (size_t)t->cap;
    for (size_t i = 0; i < n; i++)
        rudo_visit_weak(tr, &t->e[i].str);
}
#endif

static uint64_t str_hash(const char *s, size_t len) {
    uint64_t h = 0xcbf29ce484222325ULL; /* FNV-1a */
    for (size_t i = 0; i < len; i++) {
        h ^= (unsigned char)s[i];
        h *= 0x100000001b3ULL;
    }
    h ^= h >> 29;
    return h | (uint64_t)1 << 63; /* never 0 */
}

/* Allocates an empty table of cap entries and makes it current. */
static Ent *table_alloc(size_t cap) {
#if BK_RUDO
    if (g_visit) {
        WTable *t = rudo_alloc(g_wtable_kind, sizeof(WTable) + cap * sizeof(Ent));
        if (t == NULL)
            bench_fail("rudo_alloc(weak table, %zu entries) returned NULL", cap);
        memset(t->e, 0, cap * sizeof(Ent));
        t->cap = cap;
        wtable = t; /* the old one dies: the caller copied it already */
        return t->e;
    }
#endif
    Ent *e = calloc(cap, sizeof(Ent));
    if (e == NULL)
        bench_fail("out of memory (table of %zu entries)", cap);
    return e;
}

/* Inserts a live entry into a table known not to contain it. */
static Ent *place(Ent *e, size_t cap, uint64_t h) {
    size_t i = (size_t)h & (cap - 1);
    while (e[i].hash != 0)
        i = (i + 1) & (cap - 1);
    return &e[i];
}

/* Rebuilds the table from its live entries (into a bigger one when they
 * fill more than half of it). Allocates nothing between reading the old
 * entries and the end (the visit variant allocates the new table first),
 * so no collection changes the entries meanwhile. */
static void table_rebuild(void) {
    size_t live_n = 0;
    for (size_t i = 0; i < t_cap; i++)
        live_n += t_ent[i].str != NULL;
    size_t cap = t_cap;
    while (live_n * 2 > cap)
        cap *= 2;
    Ent *old = t_ent;
    size_t old_cap = t_cap;
    void *old_obj = wtable; /* visit: keeps the old table alive while copying */
    Ent *e = table_alloc(cap);
    size_t used = 0;
    for (size_t i = 0; i < old_cap; i++) {
        if (old[i].str == NULL)
            continue;
        Ent *d = place(e, cap, old[i].hash);
        d->hash = old[i].hash;
        d->str = old[i].str;
        used++;
        if (!g_visit)
            bk_weak_register(&d->str);
    }
    if (!g_visit) {
        for (size_t i = 0; i < old_cap; i++)
            if (old[i].hash != 0)
                bk_weak_unregister(&old[i].str);
        free(old);
    } else {
        /* The old table object is garbage now, but a stale word on the
         * stack may keep it for a collection or two; emptied, it reports
         * no weak fields (and keeps no strings' entries alive twice). */
        memset(old, 0, old_cap * sizeof(Ent));
    }
    (void)old_obj;
    t_ent = e;
    t_cap = cap;
    t_used = used;
    t_rebuilds++;
}

static bool str_eq(const Str *s, uint64_t h, const char *k, size_t len) {
    return s->hash == h && s->len == len && memcmp(s->s, k, len) == 0;
}

/* Looks k up; returns the string or NULL. */
static Str *table_find(const char *k, size_t len, uint64_t h) {
    for (size_t i = (size_t)h & (t_cap - 1);; i = (i + 1) & (t_cap - 1)) {
        Ent *e = &t_ent[i];
        if (e->hash == 0)
            return NULL;
        Str *s = e->str;
        if (s != NULL && e->hash == h && str_eq(s, h, k, len))
            return s;
    }
}

static Str *intern(const char *k, size_t len) {
    uint64_t h = str_hash(k, len);
    Str *s = table_find(k, len, h);
    if (s != NULL) {
        t_hits++;
        return s;
    }
    /* A new string. Allocating may collect, which may clear entries: the
     * insertion point is found afterwards. */
    s = bk_alloc_blob(sizeof(Str) + len + 1);
    s->hash = h;
    s->len = (uint32_t)len;
    memcpy(s->s, k, len);
    s->s[len] = '\0';
    t_new++;
    size_t i = (size_t)h & (t_cap - 1);
    Ent *slot = NULL;
    for (;; i = (i + 1) & (t_cap - 1)) {
        Ent *e = &t_ent[i];
        if (e->hash == 0) {
            if (slot == NULL) {
                slot = e;
                t_used++;
            }
            break;
        }
        if (e->str == NULL && slot == NULL)
            slot = e; /* the first tombstone on the path: reused */
    }
    if (slot->hash != 0)
        t_reused++;
    slot->hash = h;
    slot->str = s;
    if (!g_visit)
        bk_weak_register(&slot->str);
    if (t_used * 4 > t_cap * 3)
        table_rebuild();
    return s;
}

static size_t make_key(char *buf, size_t size, bench_rng *rng, long hot_n, long hot_pct,
                       long *hot_index) {
    *hot_index = -1;
    if ((long)bench_rand_below(rng, 100) < hot_pct) {
        *hot_index = (long)bench_rand_below(rng, (uint64_t)hot_n);
        return (size_t)snprintf(buf, size, "h%ld", *hot_index);
    }
    return (size_t)snprintf(buf, size, "s%llu",
                            (unsigned long long)bench_rand_below(rng, (uint64_t)1 << 24));
}

static void part_intern(const char *variant, long requests, long hot_n, long hot_pct,
                        long ring_n) {
    g_visit = strcmp(variant, "visit") == 0;
    if (!g_visit && strcmp(variant, "registered") != 0)
        bench_fail("weak-intern: unknown variant '%s'", variant);
#if BK_RUDO
    if (g_visit)
        g_wtable_kind = rudo_kind_traced("bench-weak-table", wtable_trace);
#else
    if (g_visit)
        bench_fail("weak-intern: the visit variant needs rudo (rudo_visit_weak)");
#endif
    t_cap = 1024;
    t_ent = table_alloc(t_cap);
    ring = bk_alloc_ptrs((size_t)ring_n);
    hot = bk_alloc_ptrs((size_t)hot_n);
    bench_rng rng = {0x9E3779B97F4A7C15ULL};
    char buf[32];
    size_t gc0 = bench_gc_count();
    int64_t cleared0 = bk_weak_cleared_total();
    uint64_t t0 = bench_now_ns();
    for (long r = 0; r < requests; r++) {
        long hi;
        size_t len = make_key(buf, sizeof buf, &rng, hot_n, hot_pct, &hi);
        Str *s = intern(buf, len);
        if (s->len != len || memcmp(s->s, buf, len) != 0)
            bench_fail("weak-intern: request %ld: interned '%.*s' for '%s'", r, (int)s->len,
                       s->s, buf);
        if (hi >= 0) {
            if (hot[hi] == NULL)
                hot[hi] = s;
            else if (hot[hi] != s)
                bench_fail("weak-intern: request %ld: hot string '%s' interned twice "
                           "(a live entry was lost)", r, buf);
        }
        ring[r % ring_n] = s;
    }
    uint64_t loop_ns = bench_now_ns() - t0;
    size_t gcs = bench_gc_count() - gc0;
    uint64_t gc_ns = 0;
    for (size_t i = gc0; i < gc0 + gcs; i++)
        gc_ns += bench_gc_pause_ns(i);
    int64_t cleared = bk_weak_cleared_total();
    cleared = cleared < 0 ? -1 : cleared - cleared0;

    /* Final checks: after a collection, everything held strongly is still
     * interned (and identical), and the dropped strings are gone. */
    size_t before_n = 0;
    for (size_t i = 0; i < t_cap; i++)
        before_n += t_ent[i].str != NULL;
    clear_stack();
    int64_t final0 = bk_weak_cleared_total();
    bk_collect();
    int64_t final_cleared = final0 < 0 ? -1 : bk_weak_cleared_total() - final0;
    for (long i = 0; i < ring_n; i++) {
        const Str *s = ring[i];
        if (s != NULL && table_find(s->s, s->len, s->hash) != s)
            bench_fail("weak-intern: ring string '%s' is no longer interned", s->s);
    }
    for (long i = 0; i < hot_n; i++) {
        const Str *s = hot[i];
        if (s != NULL && table_find(s->s, s->len, s->hash) != s)
            bench_fail("weak-intern: hot string '%s' is no longer interned", s->s);
    }
    size_t live_n = 0;
    for (size_t i = 0; i < t_cap; i++) {
        const Str *s = t_ent[i].str;
        if (s == NULL)
            continue;
        live_n++;
        if (s->hash != t_ent[i].hash || str_hash(s->s, s->len) != s->hash)
            bench_fail("weak-intern: entry %zu holds a corrupted string", i);
    }
    /* The collector's count of cleared slots must match the table's (the
     * registered variant's tombstones are NULL and not counted). */
    if (final_cleared >= 0 && (size_t)final_cleared != before_n - live_n)
        bench_fail("weak-intern: the final collection cleared %zu entries, the collector "
                   "counted %lld", before_n - live_n, (long long)final_cleared);
    /* A few may stay through conservative stack words. */
    if (live_n > (size_t)(hot_n + ring_n + 16))
        bench_fail("weak-intern: %zu live entries after a collection, at most %ld expected",
                   live_n, hot_n + ring_n);

    char extra[400], cl[32];
    if (cleared < 0)
        snprintf(cl, sizeof cl, "n/a");
    else
        snprintf(cl, sizeof cl, "%lld", (long long)cleared);
    snprintf(extra, sizeof extra,
             "variant=%s requests=%ld intern_ms=%.1f intern_ns=%.1f loop_gcs=%zu "
             "loop_gc_ms=%.1f new_strings=%llu hits=%llu reused=%llu rebuilds=%llu "
             "capacity=%zu live_end=%zu weak_cleared=%s",
             variant, requests, (double)loop_ns / 1e6, (double)loop_ns / (double)requests,
             gcs, (double)gc_ns / 1e6, (unsigned long long)t_new, (unsigned long long)t_hits,
             (unsigned long long)t_reused, (unsigned long long)t_rebuilds, t_cap, live_n, cl);
    bench_result(g_visit ? "weak-intern-visit" : "weak-intern", 1, extra);
    if (!g_visit) {
        for (size_t i = 0; i < t_cap; i++)
            if (t_ent[i].hash != 0)
                bk_weak_unregister(&t_ent[i].str);
        free(t_ent);
    }
}

int main(int argc, char **argv) {
    bench_start(argc, argv,
                "--part slots|ephemerons|intern [--objects 1000000] [--collections 7] "
                "[--variant registered|visit] [--requests 4000000] [--hot 10000] "
                "[--hot-pct 20] [--ring 1000]");
    const char *part = bench_opt_str("--part", "slots");
    long n = bench_opt_long("--objects", 1000000);
    long rounds = bench_opt_long("--collections", 7);
    const char *variant = bench_opt_str("--variant", "registered");
    long requests = bench_opt_long("--requests", 4000000);
    long hot_n = bench_opt_long("--hot", 10000);
    long hot_pct = bench_opt_long("--hot-pct", 20);
    long ring_n = bench_opt_long("--ring", 1000);
    if (n < 2 || n > 0x7fffffffL || rounds < 1 || rounds > 1000 || requests < 1 ||
        hot_n < 1 || hot_pct < 0 || hot_pct > 100 || ring_n < 1)
        bench_fail("weak-refs: option out of range");
    n &= ~1L;

    bk_init(1);
    if (!bk_has_weak())
        bench_fail("weak-refs: the %s backend has no weak references", bk_name());
    bk_root_add((void **)&live);
    bk_root_add((void **)&pending);
    bk_root_add((void **)&table);
    bk_root_add((void **)&ring);
    bk_root_add((void **)&hot);
    bk_root_add((void **)&wtable);

    if (strcmp(part, "slots") == 0) {
        part_slots(n, rounds);
    } else if (strcmp(part, "ephemerons") == 0) {
#if BK_RUDO
        part_ephemerons(n, rounds);
#else
        bench_fail("weak-refs: %s has no ephemerons", bk_name());
#endif
    } else if (strcmp(part, "intern") == 0) {
        part_intern(variant, requests, hot_n, hot_pct, ring_n);
    } else {
        bench_fail("weak-refs: unknown part '%s'", part);
    }
    return 0;
}
