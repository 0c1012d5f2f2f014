/* test_destroy.c — rudo_heap_destroy releases every mapping the heap made
 * (and every thread it started), runs no finalizer, and create/destroy can
 * be repeated without the process's mappings growing.
 *
 * Method: /proc/self/maps is read before the first rudo_heap_create, while a
 * heap is in use, and after rudo_heap_destroy. Compared are the anonymous
 * mappings (no path, or "[anon:...]"): their number and total size
 * (reserved PROT_NONE address space included). Also, the addresses of
 * objects allocated in the heap must not be mapped at all afterwards.
 *
 * What may legitimately remain after destroy, and why it is small:
 *  - malloc'd memory the library freed: glibc's main arena lives in the brk
 *    heap ("[heap]", not anonymous here, and not compared); chunks of
 *    128 KiB and more are mmapped but unmapped again by free().
 *  - thread stacks and per-thread malloc arenas: glibc caches the stack of a
 *    joined thread and keeps arenas of threads that malloc'd. The test
 *    starts and joins one thread that mallocs before taking the baseline,
 *    so a helper thread the library might start reuses that stack and arena.
 *  - one-time lazy initialisation in libc (stdio buffers live in [heap]).
 * Allowed growth: 1 MiB of anonymous mappings and 2 more of them (the
 * kernel may split or merge neighbours; see COUNT_SLACK for ASan).
 *
 * In each lifetime a second thread attaches, allocates and detaches: a
 * second attached thread starts the loader helper (platform/loader.c),
 * which the destroy must end too. Then 200 short lifetimes of that alone
 * (create, second thread, destroy) check that the process is back to its
 * threads after each: a helper that had not yet run when the destroy came
 * once hung a later destroy. */
#include <fcntl.h>
#include <malloc.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "rudo.h"
#include "testlib.h"

#define MIB ((size_t)1 << 20)


/* How many more anonymous mappings than at the start are tolerated. Under
 * AddressSanitizer its allocator carves its reserved region into more and
 * more mappings as size classes get used (the bytes do not change). Under
 * ThreadSanitizer the mappings of its per-thread state split and merge as
 * the library's threads (marker helpers, the watch) come and go: 4 to 10
 * more in 20 lifetimes, the bytes unchanged. */
#if TEST_UNDER_ASAN || TEST_UNDER_TSAN
#define COUNT_SLACK 16
#else
#define COUNT_SLACK 2
#endif

struct maps_info {
    size_t count;      /* all mappings */
    size_t anon_count; /* anonymous mappings */
    size_t anon_bytes;
};

static char text[64 << 10]; /* read(2) buffer: no malloc while measuring */

static size_t read_file(const char *path) {
    int fd = open(path, O_RDONLY);
    size_t len = 0;
    if (fd < 0)
        return 0;
    ssize_t n;
    while (len < sizeof text - 1 && (n = read(fd, text + len, sizeof text - 1 - len)) > 0)
        len += (size_t)n;
    close(fd);
    text[len] = '\0';
    return len;
}

/* Parses /proc/self/maps; if addr != 0, returns through *hit whether addr
 * lies in any mapping. */
static struct maps_info read_maps(uintptr_t addr, bool *hit) {
    struct maps_info mi = {0, 0, 0};
    read_file("/proc/self/maps");
    if (hit)
        *hit = false;
    for (char *line = text; *line;) {
        char *eol = strchr(line, '\n');
        if (eol)
            *eol = '\0';
        unsigned long lo, hi, inode;
        int pos = 0;
        if (sscanf(line, "%lx-%lx %*s %*s %*s %lu %n", &lo, &hi, &inode, &pos) >= 3) {
            const char *path = line + pos;
            mi.count++;
            if (inode == 0 && (path[0] == '\0' || strncmp(path, "[anon:", 6) == 0)) {
                mi.anon_count++;
                mi.anon_bytes += hi - lo;
            }
            if (hit && addr >= lo && addr < hi)
                *hit = true;
        }
        if (!eol)
            break;
        line = eol + 1;
    }
    return mi;
}

static bool is_mapped(uintptr_t addr) {
    bool hit;
    (void)read_maps(addr, &hit);
    return hit;
}

static void *malloc_in_thread(void *a) {
    (void)a;
    free(malloc(100));
    return NULL;
}

/* A second attached thread: it starts the loader helper (above). */
static void *attach_alloc_detach(void *a) {
    (void)a;
    CHECK(rudo_thread_attach() == RUDO_OK);
    for (int i = 0; i < 100; i++)
        (void)rudo_malloc(48);
    rudo_thread_detach();
    return NULL;
}
static void second_thread(void) {
    pthread_t t;
    pthread_create(&t, NULL, attach_alloc_detach, NULL);
    pthread_join(t, NULL);
}

/* ---- one heap lifetime ---- */

static unsigned long finalized;
static void count_finalized(void *obj, void *data) {
    (void)obj;
    (void)data;
    finalized++;
}

static void trace_first(void *obj, size_t size, rudo_tracer *tr) {
    (void)size;
    rudo_visit(tr, (void **)obj);
}

#define N_SAMPLES 16
static uintptr_t samples[N_SAMPLES]; /* addresses of heap objects */
static size_t n_samples;
static void *g_root;

static void sample(void *p) {
    if (n_samples < N_SAMPLES)
        samples[n_samples++] = (uintptr_t)p;
}

/* Creates a heap, uses every kind of allocation and root, collects, leaves
 * finalizable garbage uncollected, and destroys the heap. If `measure`,
 * records a sample of object addresses and checks the heap is visible in
 * the mappings while alive. */
static void heap_lifetime(bool measure, const struct maps_info *before) {
    rudo_config cfg;
    rudo_config_init(&cfg);
    cfg.initial_heap = 256 * MIB; /* only the explicit collections: faster */
    CHECK(rudo_heap_create(&cfg) == RUDO_OK);
    static const uint64_t layout[1] = {0x1};
    rudo_kind_desc fd = {0};
    fd.name = "destroy-finalized";
    fd.tracing = RUDO_TRACE_ATOMIC;
    fd.finalize = count_finalized;
    rudo_kind kinds[5] = {rudo_kind_traced("destroy-traced", trace_first),
                          rudo_kind_layout("destroy-layout", 1, layout),
                          rudo_kind_conservative("destroy-cons"),
                          rudo_kind_atomic("destroy-atomic"), rudo_kind_register(&fd)};
    n_samples = 0;

    /* Small objects of many classes and kinds, linked so some survive. */
    void **keep = rudo_alloc_array(RUDO_KIND_CONSERVATIVE, 2000, sizeof(void *));
    rudo_root_add(&g_root);
    g_root = keep;
    for (int i = 0; i < 20000; i++) {
        void **o = rudo_alloc(kinds[i % 5], 16 + (size_t)(i % 97) * 8);
        if (i % 10 == 0)
            keep[i / 10] = o;
        if (i < 5)
            sample(o);
    }
    /* Large objects. */
    void *large[3] = {rudo_alloc(RUDO_KIND_ATOMIC, 100000),
                      rudo_alloc(RUDO_KIND_CONSERVATIVE, MIB),
                      rudo_alloc(kinds[0], 20 * MIB)};
    for (int i = 0; i < 3; i++) {
        sample(large[i]);
        keep[1999 - i] = large[i];
    }
    /* Roots of every sort. */
    void **range = calloc(16, sizeof(void *));
    range[3] = rudo_malloc(64);
    rudo_root_add_range(range, range + 16);
    rudo_scope scope;
    rudo_scope_enter(&scope);
    (void)rudo_handle(rudo_malloc(32));
    rudo_collect();
    rudo_collect();
    /* The second thread; it allocates, so before the finalizable garbage. */
    second_thread();
    /* Finalizable garbage never collected: destroy must not finalize it.
     * Collection is off while it is made, so that in GC stress mode
     * (RUDO_GC_STRESS) no collection finds it dead and runs its finalizers
     * before the destroy: the heap is big enough that none would run here
     * otherwise. */
    finalized = 0;
    rudo_disable();
    for (int i = 0; i < 100; i++)
        (void)rudo_alloc(kinds[4], 48);
    (void)rudo_alloc(kinds[4], 50000);
    rudo_enable();

    if (measure) {
        bool hit;
        struct maps_info during = read_maps(samples[0], &hit);
        CHECK(hit);
        CHECK(during.anon_bytes >= before->anon_bytes + 20 * MIB);
    }

    rudo_scope_exit(&scope);
    CHECK(rudo_root_remove_range(range) == RUDO_OK);
    free(range);
    g_root = NULL;
    CHECK(rudo_root_remove(&g_root) == RUDO_OK);
    rudo_heap_destroy();
    CHECK(finalized == 0);
    CHECK(!rudo_heap_exists());
}

int main(void) {
    /* One malloc arena: glibc gives a thread that meets a contended arena a
     * new 64 MiB one (rudo's marker threads malloc their inbox buffers),
     * and never unmaps it; that mapping is glibc's, not the heap's. */
    mallopt(M_ARENA_MAX, 1);
    /* Prime glibc's stack cache and thread arena (see above). */
    pthread_t t;
    pthread_create(&t, NULL, malloc_in_thread, NULL);
    pthread_join(t, NULL);
    /* One heap lifetime first, unmeasured, so that what the C library
     * and the sanitizers keep for the process once it has had threads
     * does not count as leaked mappings (the address check below and the
     * repeated lifetimes still apply):
     *  - glibc caches the stack of every joined thread, and a lifetime
     *    has several at once (markers, the watch, the loader helper and
     *    the second thread, of two stack sizes): the primed stack above
     *    covers one of them (8.7 MiB and 6 mappings more, once, without
     *    this lifetime);
     *  - AddressSanitizer's malloc maps a region per size class on first
     *    use and never unmaps it;
     *  - ThreadSanitizer keeps the state it maps for each thread (the
     *    watch thread, of its own stack size, added 70 mappings and
     *    1.3 MiB that later lifetimes reuse). */
    {
        struct maps_info none = {0, 0, 0};
        heap_lifetime(false, &none);
    }
    long threads_before = test_thread_count();
    struct maps_info before = read_maps(0, NULL);

    heap_lifetime(true, &before);

    struct maps_info after = read_maps(0, NULL);
    printf("before: %zu mappings, %zu anonymous (%zu KiB); after destroy: %zu, %zu (%zu "
           "KiB)\n",
           before.count, before.anon_count, before.anon_bytes / 1024, after.count,
           after.anon_count, after.anon_bytes / 1024);
    size_t still_mapped = 0;
    for (size_t i = 0; i < n_samples; i++)
        if (is_mapped(samples[i])) {
            fprintf(stderr, "  heap object address %#lx still mapped after destroy\n",
                    (unsigned long)samples[i]);
            still_mapped++;
        }
    CHECK(n_samples == 8);
    CHECK(still_mapped == 0);
    CHECK(after.anon_bytes <= before.anon_bytes + MIB);
    CHECK(after.anon_count <= before.anon_count + COUNT_SLACK);
    CHECK(test_threads_back_to(threads_before));

    /* 20 more lifetimes: nothing accumulates. */
    size_t min_bytes = SIZE_MAX, max_bytes = 0, min_count = SIZE_MAX, max_count = 0;
    for (int i = 0; i < 20; i++) {
        heap_lifetime(false, &before);
        struct maps_info m = read_maps(0, NULL);
        min_bytes = m.anon_bytes < min_bytes ? m.anon_bytes : min_bytes;
        max_bytes = m.anon_bytes > max_bytes ? m.anon_bytes : max_bytes;
        min_count = m.anon_count < min_count ? m.anon_count : min_count;
        max_count = m.anon_count > max_count ? m.anon_count : max_count;
    }
    printf("20 lifetimes: anonymous mappings %zu..%zu, %zu..%zu KiB\n", min_count,
           max_count, min_bytes / 1024, max_bytes / 1024);
    CHECK(max_bytes <= before.anon_bytes + MIB);
    CHECK(max_count <= before.anon_count + COUNT_SLACK);
    CHECK(max_bytes - min_bytes <= 256 * 1024);
    CHECK(test_threads_back_to(threads_before));

    /* Short lifetimes: a destroy right after a second thread attached. */
    int extra = 0;
    for (int i = 0; i < 200; i++) {
        CHECK(rudo_heap_create(NULL) == RUDO_OK);
        second_thread();
        rudo_heap_destroy();
        extra += !test_threads_back_to(threads_before);
    }
    CHECK_EQ(extra, 0);
    return test_report();
}
