/* test_stress.c — randomized stress against a shadow model.
 *
 * A seeded program builds and rewires a graph of nodes of four kinds (trace
 * callback, layout bitmap, conservative, atomic leaf) and many sizes (some
 * large), rooted in an array of precise root slots. A shadow model in
 * malloc'd memory (invisible to the collector: the heap is created with
 * scan_stacks = false and scan_static_data = false, so only the root slots
 * count) records every node by id: its kind, shape, checksum and children.
 *
 * Collections happen automatically (a small initial heap) and explicitly at
 * random points. After each one the test checks, against the shadow:
 *  - every reachable node is marked and intact (id, kind, size, checksum,
 *    children exactly as recorded);
 *  - no reachable node was finalized (each node kind has a finalizer that
 *    records the id; finalizing twice is an error too);
 *  - after an explicit rudo_collect: every node unreachable at that point has
 *    been finalized by it (exact, since only precise roots exist), and
 *    live_bytes is consistent with the reachable set. This follows rudo.h:
 *    "Finalizable objects that become unreachable together (one referencing
 *    another, cycles included) are all finalized after the same
 *    collection".
 *
 * Usage: test_stress [SEED [STEPS]]; the default run takes a few seconds. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "debug/debug.h"
#include "rudo.h"
#include "testlib.h"

enum { K_CB, K_LAYOUT, K_CONS, K_LEAF, NKINDS };
#define MAGIC(k) (0x5EED00u + (uint64_t)(k))
#define HDR 4 /* words: magic, id, shape (nslots | npayload << 8), check */
#define MAX_SLOTS 8
#define NROOTS 128
#define LAYOUT_SLOTS 4
#define LAYOUT_PAYLOAD 2

struct shadow {
    uint8_t kind;
    uint8_t finalized;
    uint8_t nslots;
    uint32_t npayload;
    uint32_t check;
    size_t req, usable;
    int32_t slot[MAX_SLOTS]; /* child ids, -1 = NULL */
};

static struct shadow *sh; /* by id (malloc'd: not a root) */
static uint32_t n_ids, max_ids;
static rudo_kind kinds[NKINDS];
static void **roots; /* NROOTS precise root slots (malloc'd) */
static int32_t root_id[NROOTS];
static uint64_t rng;
static uint64_t gc_count, gc_seen; /* collections: counted / verified */
static unsigned long errors;       /* stress_error() calls */

/* Verification scratch (malloc'd). */
static uint32_t *stamp, cur_stamp;
static int32_t *queue;
static uint64_t **ptrs;
static int32_t *fin_list; /* finalized since the last verification */
static uint32_t n_fin;
static int32_t *pending; /* ids not known to be finalized */
static uint32_t n_pending;

static uint32_t last_reach;
static unsigned long stat_explicit, stat_auto, stat_finalized, stat_max_reach;

static uint64_t rnd(uint64_t n) { return test_rand(&rng) % n; }

__attribute__((format(printf, 1, 2))) static void stress_error(const char *fmt, ...) {
    if (errors++ < 20) {
        va_list ap;
        va_start(ap, fmt);
        fprintf(stderr, "  stress error: ");
        vfprintf(stderr, fmt, ap);
        fprintf(stderr, "\n");
        va_end(ap);
    }
}

/* ---- nodes ---- */

static uint32_t checksum(uint64_t id, const uint64_t *payload, uint32_t n) {
    uint32_t h = 2166136261u ^ (uint32_t)id;
    for (uint32_t i = 0; i < n; i++)
        h = (h ^ (uint32_t)payload[i]) * 16777619u;
    return h;
}

static uint32_t nslots_of(const uint64_t *w) { return (uint32_t)(w[2] & 0xff); }
static uint32_t npayload_of(const uint64_t *w) { return (uint32_t)(w[2] >> 8); }
static uint64_t **slots_of(uint64_t *w) { return (uint64_t **)(w + HDR); }
static uint64_t *payload_of(uint64_t *w) { return w + HDR + nslots_of(w); }

static void trace_node(void *obj, size_t size, rudo_tracer *tr) {
    uint64_t *w = obj;
    if (w[0] != MAGIC(K_CB) || (HDR + nslots_of(w) + npayload_of(w)) * 8 > size) {
        stress_error("trace callback called on a bad object (magic %llx, size %zu)",
                     (unsigned long long)w[0], size);
        return;
    }
    for (uint32_t i = 0; i < nslots_of(w); i++)
        rudo_visit(tr, (void **)&slots_of(w)[i]);
}

static void finalize_node(void *obj, void *data) {
    uint64_t *w = obj;
    uint64_t k = (uint64_t)(uintptr_t)data;
    uint64_t id = w[1];
    if (w[0] != MAGIC(k) || id >= n_ids || sh[id].kind != k) {
        stress_error("finalizer got a bad object (magic %llx, id %llu)",
                     (unsigned long long)w[0], (unsigned long long)id);
        return;
    }
    if (sh[id].finalized) {
        stress_error("node %llu finalized twice", (unsigned long long)id);
        return;
    }
    if (w[3] != sh[id].check || checksum(id, payload_of(w), npayload_of(w)) != sh[id].check)
        stress_error("node %llu damaged when finalized", (unsigned long long)id);
    sh[id].finalized = 1;
    fin_list[n_fin++] = (int32_t)id;
    stat_finalized++;
}

static void gc_callback(const rudo_gc_event *ev, void *data) {
    (void)ev;
    (void)data;
    gc_count++;
}

/* ---- verification ---- */

/* Marks (with a new stamp) the ids reachable from the roots in the shadow;
 * returns how many, and sums their sizes. */
static uint32_t shadow_reach(size_t *req_sum, size_t *usable_sum) {
    cur_stamp++;
    uint32_t head = 0, tail = 0;
    *req_sum = *usable_sum = 0;
    for (int r = 0; r < NROOTS; r++) {
        int32_t id = root_id[r];
        if (id >= 0 && stamp[id] != cur_stamp) {
            stamp[id] = cur_stamp;
            queue[tail++] = id;
        }
    }
    while (head < tail) {
        int32_t id = queue[head++];
        *req_sum += sh[id].req;
        *usable_sum += sh[id].usable;
        for (int s = 0; s < sh[id].nslots; s++) {
            int32_t c = sh[id].slot[s];
            if (c >= 0 && stamp[c] != cur_stamp) {
                stamp[c] = cur_stamp;
                queue[tail++] = c;
            }
        }
    }
    return tail;
}

/* Checks one real node against its shadow record. */
static bool node_ok(uint64_t *w, int32_t id) {
    const struct shadow *s = &sh[id];
    if (s->finalized) {
        stress_error("reachable node %d was finalized", (int)id);
        return false; /* its memory may be reused: do not read it */
    }
    if (!rudo__debug_is_marked(w)) {
        stress_error("reachable node %d at %p not marked", (int)id, (void *)w);
        return false;
    }
    if (w[0] != MAGIC(s->kind) || w[1] != (uint64_t)id || nslots_of(w) != s->nslots ||
        npayload_of(w) != s->npayload || w[3] != s->check ||
        checksum((uint64_t)id, payload_of(w), s->npayload) != s->check) {
        stress_error("reachable node %d damaged (magic %llx)", (int)id,
                     (unsigned long long)w[0]);
        return false;
    }
    if (rudo_kind_of(w) != kinds[s->kind] || rudo_size(w) != s->usable) {
        stress_error("node %d: kind or size changed", (int)id);
        return false;
    }
    for (int i = 0; i < s->nslots; i++) {
        uint64_t *c = slots_of(w)[i];
        int32_t want = s->slot[i];
        if ((c == NULL) != (want < 0) || (c && c[1] != (uint64_t)want)) {
            stress_error("node %d: slot %d does not match the shadow", (int)id, i);
            return false;
        }
    }
    return true;
}

/* Run right after a collection, before the shadow changes. */
static void verify(bool explicit_collect) {
    size_t req_sum, usable_sum;
    uint32_t reach = shadow_reach(&req_sum, &usable_sum);
    if (reach > stat_max_reach)
        stat_max_reach = reach;
    last_reach = reach;

    /* No reachable node was finalized; sum what was. A node unreachable once
     * stays unreachable (only reachable nodes are ever linked), so this
     * holds even for finalizers run later than their collection. */
    size_t fin_usable = 0;
    for (uint32_t i = 0; i < n_fin; i++) {
        if (stamp[fin_list[i]] == cur_stamp)
            stress_error("node %d finalized while reachable", (int)fin_list[i]);
        fin_usable += sh[fin_list[i]].usable;
    }
    n_fin = 0;

    /* Every unreachable node was finalized by this collection. */
    if (explicit_collect) {
        uint32_t kept = 0;
        for (uint32_t i = 0; i < n_pending; i++) {
            int32_t id = pending[i];
            if (sh[id].finalized)
                continue;
            if (stamp[id] != cur_stamp)
                stress_error("unreachable node %d not finalized by collection %llu",
                             (int)id, (unsigned long long)gc_count);
            pending[kept++] = id;
        }
        n_pending = kept;
    }

    /* Walk the real graph from the roots, comparing with the shadow. */
    uint32_t walked = 0;
    cur_stamp++;
    for (int r = 0; r < NROOTS; r++) {
        uint64_t *w = roots[r];
        int32_t id = root_id[r];
        if ((w == NULL) != (id < 0) || (w && w[1] != (uint64_t)id)) {
            stress_error("root %d does not match the shadow (id %d)", r, (int)id);
            continue;
        }
        if (w == NULL || stamp[id] == cur_stamp)
            continue;
        stamp[id] = cur_stamp;
        uint32_t head = 0, tail = 0; /* queue: ids, ptrs: their nodes */
        ptrs[tail] = w;
        queue[tail++] = id;
        while (head < tail) {
            uint64_t *x = ptrs[head];
            int32_t xid = queue[head++];
            walked++;
            if (!node_ok(x, xid))
                continue;
            for (int i = 0; i < sh[xid].nslots; i++) {
                uint64_t *c = slots_of(x)[i];
                if (c && stamp[c[1]] != cur_stamp) {
                    stamp[c[1]] = cur_stamp;
                    ptrs[tail] = c;
                    queue[tail++] = (int32_t)c[1];
                }
            }
        }
    }
    if (walked != reach)
        stress_error("walked %u nodes, the shadow reaches %u", walked, reach);

    if (explicit_collect) {
        /* live_bytes counts at least the reachable nodes, and not much more
         * than them plus the nodes kept for their finalizers (factor 2 and
         * 64 KiB for size-class and page rounding). */
        rudo_stats st;
        rudo_get_stats(&st);
        if (st.live_bytes < req_sum)
            stress_error("live_bytes %zu < reachable bytes %zu", st.live_bytes, req_sum);
        if (st.live_bytes > 2 * (usable_sum + fin_usable) + (64u << 10))
            stress_error("live_bytes %zu, but only %zu bytes are reachable or finalized",
                         st.live_bytes, usable_sum + fin_usable);
    }
    gc_seen = gc_count;
}

/* ---- mutation ---- */

/* A random reachable node: a random root, then a random walk. With
 * want_slots, the last node on the walk that has slots. */
static uint64_t *pick(bool want_slots) {
    uint64_t *w = NULL, *with_slots = NULL;
    for (int tries = 0; tries < 8 && w == NULL; tries++)
        w = roots[rnd(NROOTS)];
    if (w == NULL)
        return NULL;
    for (uint64_t steps = rnd(16);; steps--) {
        uint32_t n = nslots_of(w);
        if (n > 0)
            with_slots = w;
        if (steps == 0 || n == 0)
            break;
        uint64_t *c = slots_of(w)[rnd(n)];
        if (c == NULL)
            break;
        w = c;
    }
    return want_slots ? with_slots : w;
}

static uint64_t *pick_reachable(void) { return pick(false); }

static int32_t id_of(const uint64_t *w) { return w ? (int32_t)w[1] : -1; }

static void fill_payload(uint64_t *w, int32_t id) {
    uint64_t *p = payload_of(w);
    for (uint32_t i = 0; i < npayload_of(w); i++)
        p[i] = test_rand(&rng) & 0xffffffffu; /* small: never a heap address */
    w[3] = checksum((uint64_t)id, p, npayload_of(w));
    sh[id].check = (uint32_t)w[3];
}

/* Makes room for more node ids in the shadow and the scratch arrays. */
static void grow_ids(void) {
    uint32_t old = max_ids;
    max_ids = old ? 2 * old : 1u << 16;
    sh = realloc(sh, max_ids * sizeof *sh);
    stamp = realloc(stamp, max_ids * sizeof *stamp);
    queue = realloc(queue, max_ids * sizeof *queue);
    ptrs = realloc(ptrs, max_ids * sizeof *ptrs);
    pending = realloc(pending, max_ids * sizeof *pending);
    fin_list = realloc(fin_list, max_ids * sizeof *fin_list);
    if (!sh || !stamp || !queue || !ptrs || !pending || !fin_list) {
        fprintf(stderr, "test_stress: out of memory for the shadow model\n");
        exit(1);
    }
    memset(stamp + old, 0, (max_ids - old) * sizeof *stamp);
}

/* Allocates and initializes a node of a random kind and shape whose slots
 * point to random reachable nodes. It is reachable from nothing until the
 * caller stores it (before allocating again). */
static uint64_t *new_node(void) {
    int kind = (int)rnd(NKINDS);
    uint32_t nslots, npayload;
    switch (kind) {
    case K_CB:
        nslots = (uint32_t)rnd(MAX_SLOTS + 1);
        npayload = rnd(100) == 0 ? 4500 : (uint32_t)rnd(17); /* some large */
        break;
    case K_LAYOUT:
        nslots = LAYOUT_SLOTS;
        npayload = LAYOUT_PAYLOAD;
        break;
    case K_CONS:
        nslots = (uint32_t)rnd(7);
        npayload = (uint32_t)rnd(13);
        break;
    default:
        nslots = 0;
        npayload = rnd(50) == 0 ? 5000 : 1 + (uint32_t)rnd(32);
        break;
    }
    size_t req = (HDR + nslots + npayload) * 8;
    uint64_t *w = rudo_alloc(kinds[kind], req);
    if (w == NULL) {
        stress_error("rudo_alloc(%zu bytes) returned NULL", req);
        exit(1);
    }
    if (gc_count != gc_seen) { /* an automatic collection ran */
        stat_auto++;
        verify(false);
    }
    if (n_ids == max_ids)
        grow_ids();
    int32_t id = (int32_t)n_ids++;
    pending[n_pending++] = id;
    struct shadow *s = &sh[id];
    memset(s, 0, sizeof *s);
    s->kind = (uint8_t)kind;
    s->nslots = (uint8_t)nslots;
    s->npayload = npayload;
    s->req = req;
    s->usable = rudo_size(w);
    w[0] = MAGIC(kind);
    w[1] = (uint64_t)id;
    w[2] = nslots | (uint64_t)npayload << 8;
    for (uint32_t i = 0; i < MAX_SLOTS; i++)
        s->slot[i] = -1;
    for (uint32_t i = 0; i < nslots; i++) {
        uint64_t *c = rnd(3) ? pick_reachable() : NULL;
        slots_of(w)[i] = c;
        s->slot[i] = id_of(c);
    }
    fill_payload(w, id);
    return w;
}

static void set_root(int r, uint64_t *w) {
    roots[r] = w;
    root_id[r] = id_of(w);
}

static void set_slot(uint64_t *x, uint32_t i, uint64_t *w) {
    slots_of(x)[i] = w;
    sh[x[1]].slot[i] = id_of(w);
}

static void explicit_collect(void) {
    rudo_collect();
    stat_explicit++;
    verify(true);
    if (stat_explicit % 16 == 0)
        rudo__debug_verify_heap();
}

/* The graph grows until about this many nodes are reachable; beyond, roots
 * are dropped more often. */
#define TARGET_REACHABLE 10000

static void step(void) {
    uint64_t r = rnd(1000);
    if (r < 50) { /* a new node into a root slot (rarely replacing one) */
        int i = (int)rnd(NROOTS);
        if (roots[i] == NULL || rnd(8) == 0) {
            uint64_t *w = new_node();
            set_root(i, w);
        }
    } else if (r < 500) { /* a new node into a slot of a reachable node */
        uint64_t *x = pick(true);
        uint32_t n = x ? nslots_of(x) : 0;
        if (n > 0) {
            /* prefer an empty slot: the graph grows; else replace one */
            uint32_t i = (uint32_t)rnd(n);
            for (uint32_t j = 0; j < n && slots_of(x)[i] != NULL; j++)
                i = (i + 1) % n;
            if (slots_of(x)[i] == NULL || rnd(4) == 0) {
                uint64_t *w = new_node(); /* x stays reachable: it survives */
                set_slot(x, i, w);
            }
        }
    } else if (r < 700) { /* rewire a slot to a reachable node or NULL */
        uint64_t *x = pick(true);
        if (x && nslots_of(x) > 0) {
            uint32_t i = (uint32_t)rnd(nslots_of(x));
            if (slots_of(x)[i] == NULL || rnd(3) == 0)
                set_slot(x, i, rnd(8) ? pick_reachable() : NULL);
        }
    } else if (r < 720 || (last_reach > TARGET_REACHABLE && r < 740)) {
        /* rewire a root */
        set_root((int)rnd(NROOTS), rnd(4) ? pick(true) : NULL);
    } else if (r < 920) { /* rewrite a payload */
        uint64_t *x = pick_reachable();
        if (x)
            fill_payload(x, (int32_t)x[1]);
    } else if (r < 998) { /* garbage from birth (pointing into the graph) */
        (void)new_node();
    } else if (rnd(8) == 0) {
        /* Rare enough that automatic collections run in between. */
        explicit_collect();
    }
}

int main(int argc, char **argv) {
    uint64_t seed = argc > 1 ? strtoull(argv[1], NULL, 0) : 20240611u;
    unsigned long steps = argc > 2 ? strtoul(argv[2], NULL, 0) : 1000000;
    rng = seed ? seed : 1;
    printf("test_stress: seed %llu, %lu steps\n", (unsigned long long)seed, steps);

    rudo_config cfg;
    rudo_config_init(&cfg);
    cfg.scan_stacks = false;
    cfg.scan_static_data = false;
    /* Frequent automatic collections: the trigger counts only cells really
     * allocated (alloc.c), and explicit collections come every few
     * hundred steps, so the trigger must sit just above the live data. */
    cfg.initial_heap = 16u << 10;
    cfg.growth_limit = 4u << 10;
    CHECK(rudo_heap_create(&cfg) == RUDO_OK);
    rudo_set_gc_callback(gc_callback, NULL);

    for (int k = 0; k < NKINDS; k++) {
        static const uint64_t layout[1] = {((1u << LAYOUT_SLOTS) - 1) << HDR};
        static const char *names[NKINDS] = {"stress-cb", "stress-layout", "stress-cons",
                                            "stress-leaf"};
        rudo_kind_desc d = {0};
        d.name = names[k];
        d.tracing = k == K_CB       ? RUDO_TRACE_CALLBACK
                    : k == K_LAYOUT ? RUDO_TRACE_LAYOUT
                    : k == K_CONS   ? RUDO_TRACE_CONSERVATIVE
                                    : RUDO_TRACE_ATOMIC;
        if (k == K_CB)
            d.trace = trace_node;
        if (k == K_LAYOUT) {
            d.layout = layout;
            d.layout_words = HDR + LAYOUT_SLOTS + LAYOUT_PAYLOAD;
        }
        d.finalize = finalize_node;
        d.finalize_data = (void *)(uintptr_t)k;
        kinds[k] = rudo_kind_register(&d);
    }

    grow_ids();
    roots = calloc(NROOTS, sizeof *roots);
    for (int r = 0; r < NROOTS; r++) {
        root_id[r] = -1;
        rudo_root_add(&roots[r]);
    }

    for (unsigned long i = 0; i < steps && errors == 0; i++)
        step();
    explicit_collect();

    /* Drop everything: every node is finalized, and nothing stays live. */
    for (int r = 0; r < NROOTS; r++)
        set_root(r, NULL);
    explicit_collect();
    explicit_collect();
    rudo_stats st;
    rudo_get_stats(&st);
    printf("%u nodes, %lu explicit and %lu automatic collections, %lu finalized, "
           "max reachable %lu, final live bytes %zu\n",
           n_ids, stat_explicit, stat_auto, stat_finalized, stat_max_reach, st.live_bytes);
    CHECK(stat_finalized == n_ids);
    CHECK(st.live_bytes <= 1024);
    CHECK(stat_auto > 0 && stat_explicit > 0);
    CHECK(errors == 0);

    for (int r = 0; r < NROOTS; r++)
        CHECK(rudo_root_remove(&roots[r]) == RUDO_OK);
    rudo_heap_destroy();
    return test_report();
}
