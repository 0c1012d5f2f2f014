/*
 * common.c — clock, options, pause recorder and result line shared by the
 * benchmark programs (see common.h).
 */
#include "common.h"

#include "backend.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

static int g_argc;
static char **g_argv;
static uint64_t g_start_ns;

uint64_t bench_now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

void bench_fail(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fputs("bench: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(2);
}

/* Finds option `name`; returns its value string or NULL. */
static const char *find_opt(const char *name) {
    size_t len = strlen(name);
    for (int i = 1; i < g_argc; i++) {
        const char *a = g_argv[i];
        if (strncmp(a, name, len) != 0)
            continue;
        if (a[len] == '=')
            return a + len + 1;
        if (a[len] == '\0') {
            if (i + 1 >= g_argc)
                bench_fail("option %s needs a value", name);
            return g_argv[i + 1];
        }
    }
    return NULL;
}

const char *bench_opt_str(const char *name, const char *def) {
    const char *v = find_opt(name);
    return v ? v : def;
}

long bench_opt_long(const char *name, long def) {
    const char *v = find_opt(name);
    if (v == NULL)
        return def;
    char *end;
    errno = 0;
    long n = strtol(v, &end, 10);
    if (errno != 0 || end == v || *end != '\0')
        bench_fail("option %s: not a number: '%s'", name, v);
    return n;
}

void bench_start(int argc, char **argv, const char *usage) {
    g_argc = argc;
    g_argv = argv;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            printf("usage: %s %s\n  common: --pauses FILE (pause times in us, one a line)\n",
                   argv[0], usage);
            exit(0);
        }
    }
    g_start_ns = bench_now_ns();
}

/* ---- Pause recorder ----------------------------------------------------- */

/* Room for this many collections; later ones are counted and enter the
 * maximum but are not stored. The mapping is reserved, not committed: only
 * the pages written count in the resident set. */
#define GC_RECORD_CAP ((size_t)1 << 21)

static uint64_t *g_pause_ns; /* [GC_RECORD_CAP] */
static uint64_t *g_mark_ns;  /* [GC_RECORD_CAP] */
static size_t g_gc_count;    /* atomic */
static uint64_t g_pause_max; /* atomic */

/* Maps the arrays before main, so they exist before any collection. */
__attribute__((constructor)) static void recorder_init(void) {
    size_t bytes = 2 * GC_RECORD_CAP * sizeof(uint64_t);
    void *m = mmap(NULL, bytes, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (m == MAP_FAILED) {
        perror("bench: mmap");
        exit(1);
    }
    g_pause_ns = m;
    g_mark_ns = g_pause_ns + GC_RECORD_CAP;
}

void bench_gc_record(uint64_t pause_ns, uint64_t mark_ns) {
    size_t i = __atomic_fetch_add(&g_gc_count, 1, __ATOMIC_RELAXED);
    if (i < GC_RECORD_CAP) {
        g_pause_ns[i] = pause_ns;
        g_mark_ns[i] = mark_ns;
    }
    uint64_t cur = __atomic_load_n(&g_pause_max, __ATOMIC_RELAXED);
    while (pause_ns > cur &&
           !__atomic_compare_exchange_n(&g_pause_max, &cur, pause_ns, true,
                                        __ATOMIC_RELAXED, __ATOMIC_RELAXED)) {
    }
}

size_t bench_gc_count(void) { return __atomic_load_n(&g_gc_count, __ATOMIC_ACQUIRE); }

uint64_t bench_gc_mark_ns(size_t i) {
    return i < GC_RECORD_CAP ? g_mark_ns[i] : 0;
}

uint64_t bench_gc_pause_ns(size_t i) {
    return i < GC_RECORD_CAP ? g_pause_ns[i] : 0;
}

static int cmp_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

void bench_result(const char *bench, unsigned threads, const char *extra) {
    uint64_t wall_ns = bench_now_ns() - g_start_ns;
    size_t n = bench_gc_count();
    size_t stored = n < GC_RECORD_CAP ? n : GC_RECORD_CAP;
    uint64_t p99 = 0;
    if (stored > 0) {
        uint64_t *sorted = malloc(stored * sizeof *sorted);
        if (sorted == NULL)
            bench_fail("out of memory sorting pauses");
        memcpy(sorted, g_pause_ns, stored * sizeof *sorted);
        qsort(sorted, stored, sizeof *sorted, cmp_u64);
        /* Nearest-rank percentile: the smallest value with at least 99% of
         * the pauses at or below it. */
        size_t rank = (stored * 99 + 99) / 100;
        p99 = sorted[rank - 1];
        free(sorted);
    }
    const char *path = bench_opt_str("--pauses", NULL);
    if (path != NULL) {
        FILE *f = fopen(path, "w");
        if (f == NULL)
            bench_fail("cannot write %s: %s", path, strerror(errno));
        for (size_t i = 0; i < stored; i++)
            fprintf(f, "%.1f\n", (double)g_pause_ns[i] / 1e3);
        fclose(f);
    }
    /* The backend's own figures follow the benchmark's (bk_result_extra). */
    char backend_extra[256];
    backend_extra[0] = '\0';
    bk_result_extra(backend_extra, sizeof backend_extra);
    printf("RESULT bench=%s backend=%s threads=%u markers=%u wall_ms=%.1f gc_count=%zu "
           "max_pause_us=%.1f p99_pause_us=%.1f%s%s%s%s\n",
           bench, bk_name(), threads, bk_markers(), (double)wall_ns / 1e6, n,
           (double)__atomic_load_n(&g_pause_max, __ATOMIC_RELAXED) / 1e3,
           (double)p99 / 1e3, extra && *extra ? " " : "", extra ? extra : "",
           *backend_extra ? " " : "", backend_extra);
    fflush(stdout);
}
