/*
 * backend_rudo.c — the benchmark interface on rudo.
 *
 * Node types are precise layout kinds (rudo_kind_layout): the first nptrs
 * words are pointer words, the rest are data, and the layout covers the
 * node's size rounded up to the 16-byte granule so that it never repeats
 * inside one cell. Pointer arrays are a one-word all-pointer layout kind
 * (repeated over the array); blobs are an atomic kind registered with
 * RUDO_KIND_UNINIT (not zeroed: the interface leaves their contents
 * unspecified, as bdwgc's GC_malloc_atomic and malloc do).
 * BENCH_RUDO_ZERO_BLOBS=1 allocates them as RUDO_KIND_ATOMIC (zeroed)
 * instead, for an A/B of the zeroing.
 * Setting BENCH_RUDO_CONSERVATIVE=1 in the environment allocates nodes and
 * pointer arrays as RUDO_KIND_CONSERVATIVE instead (like bdwgc's GC_MALLOC).
 * BENCH_RUDO_BASE_ONLY=1 registers the layout kinds with
 * RUDO_KIND_BASE_ONLY (the benchmarks store base pointers only); with
 * BENCH_RUDO_CONSERVATIVE=1, set the library's RUDO_INTERIOR_POINTERS=0
 * instead for the conservative counterpart.
 *
 * Pauses and mark times come from the collection callback (pause_ns and
 * mark_ns of rudo_gc_event), and so do the counts of cleared weak slots and
 * ephemerons. Weak slots are rudo_weak_register's short slots.
 */
#include "backend.h"
#include "common.h"

#include <rudo.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static rudo_kind g_ptr_array_kind;
static rudo_kind g_blob_kind;
static int g_conservative;
static unsigned g_kind_flags; /* RUDO_KIND_BASE_ONLY or 0 */

static rudo_kind layout_kind(const char *name, size_t words, const uint64_t *layout) {
    rudo_kind_desc d = {.name = name, .tracing = RUDO_TRACE_LAYOUT,
                        .layout = layout, .layout_words = words};
    return rudo_kind_register_flags(&d, g_kind_flags);
}

const char *bk_name(void) { return "rudo"; }

/* Written by the collection callback (one collection at a time), read by
 * the main thread after rudo_collect or an allocation returned. */
static uint64_t g_weak_cleared, g_ephemerons_cleared;

/* The pauses of minor and major collections, for their medians (the
 * callback runs on the collecting thread, one collection at a time; read
 * at exit). The first PAUSE_CAP of each are kept. On malloc's heap, not in
 * static data: rudo scans the data segments as roots, and 1 MiB of arrays
 * there added a quarter of a millisecond to every collection. */
#define PAUSE_CAP 65536
static uint64_t *g_minor_ns, *g_major_ns; /* [PAUSE_CAP] each */
static size_t g_nminor, g_nmajor;

static void on_gc(const rudo_gc_event *ev, void *data) {
    (void)data;
    __atomic_fetch_add(&g_weak_cleared, ev->weak_cleared, __ATOMIC_RELAXED);
    __atomic_fetch_add(&g_ephemerons_cleared, ev->ephemerons_cleared, __ATOMIC_RELAXED);
    bench_gc_record(ev->pause_ns, ev->mark_ns);
    if (ev->minor && g_nminor < PAUSE_CAP)
        g_minor_ns[g_nminor++] = ev->pause_ns;
    else if (!ev->minor && g_nmajor < PAUSE_CAP)
        g_major_ns[g_nmajor++] = ev->pause_ns;
}

static int cmp_ns(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

/* The median of v[0..n), in microseconds (0 for none); sorts v. */
static double median_us(uint64_t *v, size_t n) {
    if (n == 0)
        return 0;
    qsort(v, n, sizeof *v, cmp_ns);
    return (double)v[n / 2] / 1e3;
}

void bk_init(unsigned threads) {
    (void)threads;
    g_minor_ns = calloc(PAUSE_CAP, sizeof *g_minor_ns);
    g_major_ns = calloc(PAUSE_CAP, sizeof *g_major_ns);
    if (g_minor_ns == NULL || g_major_ns == NULL) {
        fprintf(stderr, "bench: out of memory\n");
        exit(1);
    }
    rudo_config cfg;
    rudo_config_init(&cfg);
    int err = rudo_heap_create(&cfg);
    if (err != RUDO_OK) {
        fprintf(stderr, "bench: rudo_heap_create: %s\n", rudo_strerror(err));
        exit(1);
    }
    rudo_set_gc_callback(on_gc, NULL);
    const char *c = getenv("BENCH_RUDO_CONSERVATIVE");
    g_conservative = c != NULL && strcmp(c, "1") == 0;
    const char *b = getenv("BENCH_RUDO_BASE_ONLY");
    g_kind_flags = b != NULL && strcmp(b, "1") == 0 ? RUDO_KIND_BASE_ONLY : 0;
    const char *z = getenv("BENCH_RUDO_ZERO_BLOBS");
    rudo_kind_desc blob = {.name = "bench-blob", .tracing = RUDO_TRACE_ATOMIC};
    g_blob_kind = z != NULL && strcmp(z, "1") == 0
                      ? RUDO_KIND_ATOMIC
                      : rudo_kind_register_flags(&blob, RUDO_KIND_UNINIT);
    static const uint64_t all_pointers = 1;
    g_ptr_array_kind = g_conservative ? RUDO_KIND_CONSERVATIVE
                                      : layout_kind("bench-ptr-array", 1, &all_pointers);
}

void bk_thread_attach(void) {
    int err = rudo_thread_attach();
    if (err != RUDO_OK) {
        fprintf(stderr, "bench: rudo_thread_attach: %s\n", rudo_strerror(err));
        exit(1);
    }
}

void bk_thread_detach(void) { rudo_thread_detach(); }

void bk_blocking_enter(void) { rudo_blocking_enter(); }
void bk_blocking_leave(void) { rudo_blocking_leave(); }

bk_type bk_node_type(const char *name, size_t size, unsigned nptrs) {
    size_t words = (size + RUDO_GRANULE - 1) / RUDO_GRANULE * (RUDO_GRANULE / sizeof(void *));
    if (nptrs > 64 || nptrs > words) {
        fprintf(stderr, "bench: node type %s: %u pointers in %zu bytes\n", name, nptrs, size);
        exit(1);
    }
    bk_type t = {.size = (uint32_t)size, .id = RUDO_KIND_CONSERVATIVE};
    if (!g_conservative) {
        uint64_t layout = nptrs == 64 ? ~(uint64_t)0 : ((uint64_t)1 << nptrs) - 1;
        t.id = layout_kind(name, words, &layout);
    }
    return t;
}

void *bk_alloc(bk_type t) {
    void *p = rudo_alloc(t.id, t.size);
    if (p == NULL) {
        fprintf(stderr, "bench: rudo_alloc(%u) returned NULL\n", t.size);
        exit(1);
    }
    return p;
}

void **bk_alloc_ptrs(size_t n) {
    void **p = rudo_alloc_array(g_ptr_array_kind, n, sizeof(void *));
    if (p == NULL) {
        fprintf(stderr, "bench: rudo_alloc_array(%zu) returned NULL\n", n);
        exit(1);
    }
    return p;
}

void *bk_alloc_blob(size_t size) {
    void *p = rudo_alloc(g_blob_kind, size);
    if (p == NULL) {
        fprintf(stderr, "bench: rudo_alloc(atomic, %zu) returned NULL\n", size);
        exit(1);
    }
    return p;
}

void bk_free(void *p) { (void)p; }

void bk_heap_limit(size_t bytes) {
    if (rudo_set_max_heap(bytes) != RUDO_OK)
        exit(1);
}

void bk_root_add(void **slot) { rudo_root_add(slot); }
void bk_root_remove(void **slot) { (void)rudo_root_remove(slot); }

void bk_collect(void) { rudo_collect(); }

/* Short weak slots: rudo_weak_register registers the location, whatever it
 * holds; registering it again returns RUDO_EEXIST and changes nothing. */
bool bk_has_weak(void) { return true; }

void bk_weak_register(void **slot) {
    int err = rudo_weak_register(slot);
    if (err != RUDO_OK && err != RUDO_EEXIST) {
        fprintf(stderr, "bench: rudo_weak_register: %s\n", rudo_strerror(err));
        exit(1);
    }
}

void bk_weak_unregister(void **slot) { (void)rudo_weak_unregister(slot); }

int64_t bk_weak_cleared_total(void) {
    return (int64_t)__atomic_load_n(&g_weak_cleared, __ATOMIC_RELAXED);
}

int64_t bk_ephemerons_cleared_total(void) {
    return (int64_t)__atomic_load_n(&g_ephemerons_cleared, __ATOMIC_RELAXED);
}

unsigned bk_markers(void) {
    rudo_stats st;
    rudo_get_stats(&st);
    return st.markers;
}

static int cmp_u64(const void *x, const void *y) {
    uint64_t a = *(const uint64_t *)x, b = *(const uint64_t *)y;
    return (a > b) - (a < b);
}

void bk_print_marker_stats(void) {
    unsigned n = rudo_get_marker_stats(NULL, 0);
    if (n == 0)
        return;
    rudo_marker_stats *ms = calloc(n, sizeof *ms);
    uint64_t *traced = calloc(n, sizeof *traced);
    if (ms == NULL || traced == NULL) {
        fprintf(stderr, "bench: out of memory\n");
        exit(1);
    }
    n = rudo_get_marker_stats(ms, n);
    uint64_t won = 0, tried = 0, sent = 0, recv = 0, idle = 0;
    for (unsigned i = 0; i < n; i++) {
        const rudo_marker_stats *m = &ms[i];
        printf("MARKER %u marked=%llu traced=%llu steals=%llu/%llu sent=%llu recv=%llu "
               "idle_us=%.1f hw=%llu growths=%llu overflows=%llu\n",
               i, (unsigned long long)m->objects_marked, (unsigned long long)m->objects_traced,
               (unsigned long long)m->steals_won, (unsigned long long)m->steals_attempted,
               (unsigned long long)m->batches_sent, (unsigned long long)m->batches_received,
               (double)m->idle_ns / 1e3, (unsigned long long)m->deque_high_water,
               (unsigned long long)m->deque_growths, (unsigned long long)m->overflows);
        traced[i] = m->objects_traced;
        won += m->steals_won;
        tried += m->steals_attempted;
        sent += m->batches_sent;
        recv += m->batches_received;
        idle += m->idle_ns;
    }
    qsort(traced, n, sizeof *traced, cmp_u64);
    uint64_t lo = traced[0], hi = traced[n - 1];
    printf("MARKERS n=%u traced_min=%llu traced_med=%llu traced_max=%llu balance=%s%.2f "
           "steals_won=%llu steals_attempted=%llu batches_sent=%llu batches_received=%llu "
           "idle_us_total=%.1f\n",
           n, (unsigned long long)lo, (unsigned long long)traced[n / 2],
           (unsigned long long)hi, lo == 0 ? "inf:" : "",
           lo == 0 ? (double)hi : (double)hi / (double)lo, (unsigned long long)won,
           (unsigned long long)tried, (unsigned long long)sent, (unsigned long long)recv,
           (double)idle / 1e3);
    free(ms);
    free(traced);
}

void bk_result_extra(char *buf, size_t size) {
    rudo_stats st;
    rudo_get_stats(&st);
    snprintf(buf, size, "ttsp_med_us=%.1f ttsp_max_us=%.1f minor=%llu major=%llu "
             "minor_pause_us=%.1f minor_med_us=%.1f major_med_us=%.1f promoted_kib=%llu",
             (double)st.ttsp_ns_median / 1e3,
             (double)st.ttsp_ns_max / 1e3, (unsigned long long)st.minor_collections,
             (unsigned long long)st.major_collections,
             st.minor_collections ? (double)st.minor_pause_ns_total / 1e3 /
                                        (double)st.minor_collections : 0.0,
             median_us(g_minor_ns, g_nminor), median_us(g_major_ns, g_nmajor),
             (unsigned long long)(st.promoted_bytes_total >> 10));
}
