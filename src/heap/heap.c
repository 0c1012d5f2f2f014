/* heap.c — creating and destroying the heap, configuration, queries and
 * statistics. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "debug/debug.h"
#include "heap/heap.h"
#include "mark/mark.h"
#include "platform/platform.h"
#include "roots/roots.h"
#include "sweep/sweep.h"

rudo__heap *rudo__the_heap;

rudo__heap *rudo__need_heap(const char *fn) {
    rudo__heap *h = rudo__the_heap;
    if (RUDO_UNLIKELY(!h))
        rudo__fatal(fn, "no heap (call rudo_heap_create first)");
    return h;
}

bool rudo_heap_exists(void) { return rudo__the_heap != NULL; }

const char *rudo_strerror(int err) {
    switch (err) {
    case RUDO_OK: return "success";
    case RUDO_EINVAL: return "invalid argument";
    case RUDO_EEXIST: return "already exists";
    case RUDO_ENOENT: return "not found";
    case RUDO_ENOMEM: return "out of memory";
    case RUDO_ESTATE: return "wrong state";
    default: return "unknown error";
    }
}

void rudo_config_init(rudo_config *cfg) {
    memset(cfg, 0, sizeof *cfg);
    cfg->initial_heap = (size_t)4 << 20;
    cfg->max_heap = 0;
    cfg->growth = 1.25;
    cfg->growth_limit = (size_t)16 << 20;
    cfg->scan_static_data = true;
    cfg->scan_stacks = true;
    cfg->markers = 0;
    cfg->release_delay = 2;
    cfg->mark_steal = true;
    cfg->mark_inbox = true;
    cfg->mark_route = false;
    cfg->mark_batch = RUDO_BATCH;
}

/* Parses "123", "64K", "16M", "2G" into *out. Digits only: strtoull
 * would take "-1" as 2^64 - 1 and skip leading blanks. */
static bool parse_size(const char *s, size_t *out) {
    char *end;
    if (*s < '0' || *s > '9')
        return false;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s)
        return false;
    unsigned shift = 0;
    if (*end == 'K' || *end == 'k') shift = 10, end++;
    else if (*end == 'M' || *end == 'm') shift = 20, end++;
    else if (*end == 'G' || *end == 'g') shift = 30, end++;
    if (*end != '\0' || v > (SIZE_MAX >> shift))
        return false;
    *out = (size_t)v << shift;
    return true;
}

static bool env_size(const char *name, size_t *out) {
    const char *v = getenv(name);
    if (!v || !*v)
        return true;
    if (parse_size(v, out))
        return true;
    rudo__warn("rudo_heap_create", "invalid %s='%s' (want bytes, e.g. 64M)",
               name, v);
    return false;
}

/* Reads an integer in [lo, hi] from the environment into *out if set;
 * false (with a message) if it is set to anything else. */
static bool env_unsigned(const char *name, long lo, long hi, unsigned *out) {
    const char *v = getenv(name);
    if (!v || !*v)
        return true;
    char *end;
    long n = strtol(v, &end, 10);
    if (*end != '\0' || n < lo || n > hi) {
        rudo__warn("rudo_heap_create", "invalid %s='%s' (want %ld to %ld)",
                   name, v, lo, hi);
        return false;
    }
    *out = (unsigned)n;
    return true;
}

static bool env_flag(const char *name) {
    const char *v = getenv(name);
    return v && *v && strcmp(v, "0") != 0;
}

static int apply_env(rudo_config *c) {
    if (!env_size("RUDO_HEAP_INITIAL", &c->initial_heap) ||
        !env_size("RUDO_HEAP_MAX", &c->max_heap) ||
        !env_size("RUDO_GROWTH_LIMIT", &c->growth_limit))
        return RUDO_EINVAL;
    const char *g = getenv("RUDO_GROWTH");
    if (g && *g) {
        char *end;
        double d = strtod(g, &end);
        if (*end != '\0' || !(d > 0) || d > RUDO_GROWTH_MAX) {
            rudo__warn("rudo_heap_create", "invalid RUDO_GROWTH='%s' (want a "
                       "number above 0, at most %g)", g, RUDO_GROWTH_MAX);
            return RUDO_EINVAL;
        }
        c->growth = d;
    }
    struct { const char *name; bool *field; } sw[] = {
        {"RUDO_STEAL", &c->mark_steal},
        {"RUDO_INBOX", &c->mark_inbox},
        {"RUDO_ROUTE", &c->mark_route},
    };
    for (size_t i = 0; i < sizeof sw / sizeof sw[0]; i++) {
        const char *v = getenv(sw[i].name);
        if (!v || !*v)
            continue;
        if (strcmp(v, "0") != 0 && strcmp(v, "1") != 0) {
            rudo__warn("rudo_heap_create", "invalid %s='%s' (want 0 or 1)",
                       sw[i].name, v);
            return RUDO_EINVAL;
        }
        *sw[i].field = v[0] == '1';
    }
    if (!env_unsigned("RUDO_MARK_BATCH", 1, 65536, &c->mark_batch) ||
        !env_unsigned("RUDO_MARKERS", 1, 1024, &c->markers))
        return RUDO_EINVAL;
    return RUDO_OK;
}

static void *map_table(size_t bytes) {
    return rudo__os_reserve(bytes, 4096);
}

int rudo_heap_create(const rudo_config *cfg) {
    const char *fn = "rudo_heap_create";
    if (rudo__the_heap)
        return RUDO_EEXIST;
    rudo_config c;
    if (cfg)
        c = *cfg;
    else
        rudo_config_init(&c);
    int err = apply_env(&c);
    if (err)
        return err;
    /* Not config fields (yet): a testing aid and a diagnostic. */
    unsigned gc_stress = 0, stop_warn_ms = RUDO_STOP_WARN_DEFAULT_MS;
    if (!env_unsigned("RUDO_GC_STRESS", 0, 1000000000, &gc_stress) ||
        !env_unsigned("RUDO_STOP_WARN_MS", 0, 3600000, &stop_warn_ms))
        return RUDO_EINVAL;
    if (!(c.growth > 0) || c.growth > RUDO_GROWTH_MAX) {
        rudo__warn(fn, "growth must be above 0 and at most %g (got %g)",
                   RUDO_GROWTH_MAX, c.growth);
        return RUDO_EINVAL;
    }
    if (c.mark_batch < 1 || c.mark_batch > 65536) {
        rudo__warn(fn, "mark_batch must be 1 to 65536");
        return RUDO_EINVAL;
    }
    if (c.markers == 0)
        c.markers = rudo__os_cpus();
    if (c.initial_heap == 0)
        c.initial_heap = (size_t)4 << 20;

    rudo__sizeclass_check();
    rudo__heap *h = calloc(1, sizeof *h);
    if (!h)
        return RUDO_ENOMEM;
    h->cfg = c;
    h->reserve = RUDO_RESERVE_DEFAULT;
    /* A small max_heap reserves twice what it bounds (plus a page):
     * max_heap bounds the pages in use, not the address range, and the
     * slack lets a large object find a span past pages that fragmentation
     * left scattered. Written as a comparison with a quotient: max_heap may
     * be anything up to SIZE_MAX, which means "no bound but the
     * reservation". */
    if (c.max_heap && c.max_heap < (h->reserve - 2 * RUDO_PAGE_SIZE) / 2)
        h->reserve = (2 * c.max_heap + 2 * RUDO_PAGE_SIZE - 1) & ~(RUDO_PAGE_SIZE - 1);
    h->base = rudo__os_reserve(h->reserve, RUDO_PAGE_SIZE);
    /* Where address space is limited (ulimit -v, valgrind), take less. */
    while (!h->base && h->reserve > ((size_t)1 << 30) &&
           (!c.max_heap || h->reserve / 2 > c.max_heap)) {
        h->reserve /= 2;
        h->base = rudo__os_reserve(h->reserve, RUDO_PAGE_SIZE);
    }
    h->npages = h->reserve >> RUDO_PAGE_SHIFT;
    h->pages_map_bytes = h->npages * sizeof(rudo__page);
    h->pages = h->base ? map_table(h->pages_map_bytes) : NULL;
    h->free_map_bytes = (h->npages + 63) / 64 * 8;
    h->free_map = h->pages ? map_table(h->free_map_bytes) : NULL;
    h->tail_dist_bytes = h->npages * sizeof *h->tail_dist;
    h->tail_dist = h->free_map ? map_table(h->tail_dist_bytes) : NULL;
    size_t lists = (size_t)RUDO_MAX_KINDS * RUDO_NCLASSES * sizeof(rudo__page_list);
    h->avail = h->tail_dist ? map_table(lists) : NULL;
    if (!h->avail) {
        if (h->tail_dist) rudo__os_release((void *)h->tail_dist, h->tail_dist_bytes);
        if (h->free_map) rudo__os_release(h->free_map, h->free_map_bytes);
        if (h->pages) rudo__os_release(h->pages, h->pages_map_bytes);
        if (h->base) rudo__os_release(h->base, h->reserve);
        free(h);
        return RUDO_ENOMEM;
    }
    rudo__lock_init(&h->gc_lock, RUDO_RANK_GC, "gc_lock");
    rudo__lock_init(&h->heap_lock, RUDO_RANK_HEAP, "heap_lock");
    rudo__handshake_init(h, stop_warn_ms);
    pthread_cond_init(&h->resume_cv, NULL);
    atomic_init(&h->trigger, c.initial_heap);
#ifdef RUDO_DEBUG
    h->verify = true;
#endif
    if (env_flag("RUDO_VERIFY"))
        h->verify = true;
    h->gc_log = env_flag("RUDO_GC_LOG");
#ifdef RUDO_DEBUG
    h->poison = true;
#endif
    if (env_flag("RUDO_POISON"))
        h->poison = true;
    h->gc_stress = gc_stress;
    if (getenv("RUDO_LOCK_CHECK"))
        rudo__lock_check_enable(env_flag("RUDO_LOCK_CHECK"));
    rudo__roots_init(h);
    rudo__final_init(h);
    rudo__the_heap = h;
    rudo__mutators_init();

    rudo_kind_conservative("conservative");
    rudo_kind_atomic("atomic");
    err = rudo__mutator_attach();
    if (err) {
        rudo_heap_destroy();
        return err;
    }
    return RUDO_OK;
}

void rudo_heap_destroy(void) {
    const char *fn = "rudo_heap_destroy";
    rudo__heap *h = rudo__need_heap(fn);
    rudo__mutator *self = rudo__self();
    rudo__lock_acquire(&h->gc_lock);
    bool alone = h->nmutators == 0 || (h->nmutators == 1 && self &&
                                       h->mutators == self);
    rudo__lock_release(&h->gc_lock);
    if (!alone)
        rudo__fatal(fn, "other threads are still attached (%u attached)",
                    h->nmutators);
    if (self)
        rudo__mutator_detach(self);
    rudo__pool_destroy(h);
    rudo__final_destroy(h);
    rudo__roots_destroy(h);
    rudo__kinds_destroy(h);
    rudo__os_release(h->avail,
                     (size_t)RUDO_MAX_KINDS * RUDO_NCLASSES * sizeof(rudo__page_list));
    rudo__os_release((void *)h->tail_dist, h->tail_dist_bytes);
    rudo__os_release(h->free_map, h->free_map_bytes);
    rudo__os_release(h->pages, h->pages_map_bytes);
    rudo__os_release(h->base, h->reserve);
    rudo__lock_destroy(&h->gc_lock);
    rudo__lock_destroy(&h->heap_lock);
    pthread_cond_destroy(&h->stopped_cv);
    pthread_cond_destroy(&h->resume_cv);
    rudo__the_heap = NULL;
    free(h);
}

/* ---- queries --------------------------------------------------------------- */

void *rudo__find_object(const rudo__heap *h, const void *a, rudo__page **pp) {
    rudo__page *p;
    size_t i;
    char *cell = rudo__cell_of(h, a, &p, &i);
    if (!cell)
        return NULL;
    /* Acquire: seeing NULL, the alloc bits written before it are visible. */
    void **ol = atomic_load_explicit(&p->owner_list, memory_order_acquire);
    bool allocated = rudo__allocated(p, i);
    if (rudo__ld(&p->swept_gc) < h->gc_count) {
        allocated = allocated && rudo__marked(p, i);
    } else if (!allocated && ol) {
        /* A current page. On the caller's own, cells below the free-list
         * head were allocated (exact). Another thread's free list cannot be
         * read without a race: there every cell counts as allocated, which
         * is right for every object the caller can legitimately hold. */
        rudo__mutator *self = rudo__self();
        rudo__kind_alloc *ka =
            self ? self->kalloc[p->kind] : NULL;
        if (ka && ol == &ka->lists[p->cls]) {
            char *head = *ol;
            allocated = head == NULL || cell < head;
        } else {
            allocated = true;
        }
    }
    if (!allocated)
        return NULL;
    if (pp)
        *pp = p;
    return cell;
}

bool rudo_is_heap_ptr(const void *p) {
    rudo__heap *h = rudo__need_heap("rudo_is_heap_ptr");
    return rudo__find_object(h, p, NULL) != NULL;
}

void *rudo_base(const void *p) {
    rudo__heap *h = rudo__need_heap("rudo_base");
    return rudo__find_object(h, p, NULL);
}

/* The page of the object whose base is p; aborts naming fn otherwise. */
static rudo__page *object_page(const void *p, const char *fn) {
    rudo__heap *h = rudo__need_heap(fn);
    rudo__page *pg = NULL;
    if (!p) /* find_object's NULL answer would look like a match */
        rudo__fatal(fn, "the object is NULL");
    if (rudo__find_object(h, p, &pg) != p)
        rudo__fatal(fn, "%p is not the base of a heap object", p);
    return pg;
}

size_t rudo_size(const void *p) {
    return object_page(p, "rudo_size")->cell_size;
}

rudo_kind rudo_kind_of(const void *p) {
    return object_page(p, "rudo_kind_of")->kind;
}

/* ---- statistics -------------------------------------------------------------- */

void rudo__lock_idle(rudo__heap *h) {
    rudo__mutator *m = rudo__self();
    if (m)
        rudo__capture_roots(m);
    rudo__lock_acquire(&h->gc_lock);
    rudo__park(h, m);
}

static int cmp_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

void rudo_get_stats(rudo_stats *out) {
    rudo__heap *h = rudo__need_heap("rudo_get_stats");
    memset(out, 0, sizeof *out);
    /* gc_lock excludes a running collection, whose fields these are. */
    rudo__lock_idle(h);
    out->collections = h->gc_count;
    out->live_bytes = h->live_bytes;
    out->mark_ns_total = h->st.mark_ns;
    out->sweep_ns_total = h->st.sweep_ns;
    out->pause_ns_total = h->st.pause_ns;
    out->pause_ns_max = h->st.pause_max;
    out->ttsp_ns_max = h->st.ttsp_max;
    /* Relaxed: a counter (see below). */
    out->finalizers_run =
        atomic_load_explicit(&h->finalizers_run, memory_order_relaxed);
    out->threads_attached = h->nmutators;
    out->markers = h->cfg.markers;
    size_t n = h->gc_count < 1024 ? (size_t)h->gc_count : 1024;
    uint64_t *tmp = n ? malloc(n * sizeof *tmp) : NULL;
    if (tmp) {
        memcpy(tmp, h->st.ttsp_ring, n * sizeof *tmp);
        qsort(tmp, n, sizeof *tmp, cmp_u64);
        out->ttsp_ns_median = tmp[n / 2];
        free(tmp);
    }
    rudo__lock_acquire(&h->heap_lock);
    out->heap_bytes = h->pages_committed * RUDO_PAGE_SIZE;
    out->heap_peak_bytes = h->pages_committed_peak * RUDO_PAGE_SIZE;
    rudo__lock_release(&h->heap_lock);
    rudo__lock_release(&h->gc_lock);
    /* Relaxed: counters; a snapshot need not be consistent across them. */
    out->bytes_allocated =
        atomic_load_explicit(&h->bytes_allocated, memory_order_relaxed);
    out->lazy_sweep_ns_total =
        atomic_load_explicit(&h->lazy_sweep_ns, memory_order_relaxed);
}

unsigned rudo_get_marker_stats(rudo_marker_stats *out, unsigned max) {
    rudo__heap *h = rudo__need_heap("rudo_get_marker_stats");
    rudo__lock_idle(h);
    unsigned n = 0;
    if (h->pool && h->gc_count > 0) {
        n = h->pool->n;
        for (unsigned i = 0; i < n && i < max; i++)
            out[i] = h->pool->m[i]->st;
    }
    rudo__lock_release(&h->gc_lock);
    return n;
}

void rudo_set_gc_callback(rudo_gc_callback fn, void *data) {
    rudo__heap *h = rudo__need_heap("rudo_set_gc_callback");
    rudo__lock_idle(h);
    h->gc_callback = fn;
    h->gc_callback_data = data;
    rudo__lock_release(&h->gc_lock);
}
