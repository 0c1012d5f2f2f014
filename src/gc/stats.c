/* stats.c — statistics, the collection callback, and the RUDO_GC_LOG line. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gc/gc.h"
#include "mark/mark.h"

/* The RUDO_GC_LOG line: one per collection, on stderr. */
void rudo__gc_log_line(rudo__heap *h, const char *reason, uint64_t pause,
                     uint64_t ttsp, uint64_t mark_ns, uint64_t sweep_ns,
                     size_t live) {
    rudo__mark_stats ms = h->mark.last;
    rudo__mark_pool *pool = h->pool;
    uint64_t steals = 0, won = 0, sent = 0, idle = 0;
    char per[256];
    size_t used = 0;
    per[0] = '\0';
    for (unsigned i = 0; i < pool->n; i++) {
        const rudo_marker_stats *st = &pool->m[i]->st;
        steals += st->steals_attempted;
        won += st->steals_won;
        sent += st->batches_sent;
        idle += st->idle_ns;
        if (used + 24 < sizeof per) {
            int k = snprintf(per + used, sizeof per - used, "%s%llu", i ? "/" : "",
                             (unsigned long long)st->objects_traced);
            used += k > 0 ? (size_t)k : 0;
        }
    }
    char gen[160] = "";
    /* The trigger set_trigger chose for the next cycle (the nursery, or
     * more under a max_heap budget), and the allocating threads it was
     * sized for (collect.c). Relaxed: the world is still stopped. */
    size_t next = (size_t)atomic_load_explicit(&h->trigger, memory_order_relaxed);
    if (h->gen.on && h->gen.minor)
        snprintf(gen, sizeof gen, ", minor: promoted %llu KiB, cards of %llu pages, "
                 "next nursery %zu KiB for %.1f threads",
                 (unsigned long long)(h->gen.last_promoted >> 10),
                 (unsigned long long)h->gen.card_pages, next >> 10, h->gen.threads);
    else if (h->gen.on)
        snprintf(gen, sizeof gen, ", major: next nursery %zu KiB for %.1f threads",
                 next >> 10, h->gen.threads);
    /* Formatted into a buffer and written with one write(2), not through
     * stdio: the world is stopped, and a thread suspended by signal may
     * hold stderr's lock (docs/threads.md). */
    char line[1024];
    int len = snprintf(line, sizeof line,
            "rudo gc %llu (%s%s): pause %.3f ms (ttsp %.1f us, mark %.3f ms, "
            "sweep %.3f ms), live %zu KiB, heap %zu KiB, %llu objects marked, "
            "%u markers (traced %s; steals %llu/%llu, batches %llu, idle %.3f ms), "
            "stack high water %zu, %u threads\n",
            (unsigned long long)h->gc_count, reason, gen, (double)pause / 1e6,
            (double)ttsp / 1e3, (double)mark_ns / 1e6, (double)sweep_ns / 1e6,
            live >> 10, (h->pages_committed * RUDO_PAGE_SIZE) >> 10,
            (unsigned long long)ms.objects_marked, pool->n, per,
            (unsigned long long)won, (unsigned long long)steals,
            (unsigned long long)sent, (double)idle / 1e6, ms.high_water,
            h->world.nmutators);
    if (len > 0) {
        ssize_t w = write(2, line, (size_t)len < sizeof line ? (size_t)len
                                                             : sizeof line - 1);
        (void)w;
    }
}

static int cmp_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

void rudo_get_stats(rudo_stats *out) {
    rudo__heap *h = rudo__need_heap("rudo_get_stats");
    if (!out)
        rudo__fatal("rudo_get_stats", "out is NULL");
    memset(out, 0, sizeof *out);
    /* gc_lock excludes a running collection, whose fields these are. */
    rudo__lock_idle(h, "rudo_get_stats");
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
    out->threads_attached = h->world.nmutators;
    /* The threads' unflushed counts (gc/alloc_slow.c), under gc_lock, which
     * keeps the list. Relaxed: counters; a thread that flushes meanwhile
     * may be counted twice or not at all in this snapshot, never once it
     * stopped allocating. */
    uint64_t pending = 0;
    for (rudo__mutator *m = h->world.mutators; m; m = m->next)
        pending += atomic_load_explicit(&m->count_pending, memory_order_relaxed);
    out->markers = h->cfg.markers;
    out->minor_collections = h->gen.minors;
    out->major_collections = h->gen.majors;
    out->minor_pause_ns_total = h->gen.minor_pause_ns;
    out->minor_pause_ns_max = h->gen.minor_pause_max;
    out->major_pause_ns_total = h->gen.major_pause_ns;
    out->major_pause_ns_max = h->gen.major_pause_max;
    out->promoted_bytes_total = h->gen.promoted;
    size_t n = h->gc_count < 1024 ? (size_t)h->gc_count : 1024;
    /* On the stack and with rudo__sort: no malloc (nor glibc's qsort, which
     * may call it), whose locks a thread suspended by signal may hold. */
    uint64_t tmp[1024];
    if (n) {
        memcpy(tmp, h->st.ttsp_ring, n * sizeof *tmp);
        rudo__sort(tmp, n, sizeof *tmp, cmp_u64);
        out->ttsp_ns_median = tmp[n / 2];
    }
    rudo__lock_acquire(&h->heap_lock);
    out->heap_bytes = h->pages_committed * RUDO_PAGE_SIZE;
    out->heap_peak_bytes = h->pages_committed_peak * RUDO_PAGE_SIZE;
    rudo__lock_release(&h->heap_lock);
    rudo__lock_release(&h->world.lock);
    /* Relaxed: counters; a snapshot need not be consistent across them. */
    out->bytes_allocated =
        atomic_load_explicit(&h->bytes_allocated, memory_order_relaxed) + pending;
    out->lazy_sweep_ns_total =
        atomic_load_explicit(&h->lazy_sweep_ns, memory_order_relaxed);
}

unsigned rudo_get_marker_stats(rudo_marker_stats *out, unsigned max) {
    rudo__heap *h = rudo__need_heap("rudo_get_marker_stats");
    if (!out && max > 0)
        rudo__fatal("rudo_get_marker_stats", "out is NULL (with max %u)", max);
    rudo__lock_idle(h, "rudo_get_marker_stats");
    unsigned n = 0;
    if (h->pool && h->gc_count > 0) {
        n = h->pool->n;
        for (unsigned i = 0; i < n && i < max; i++)
            out[i] = h->pool->m[i]->st;
    }
    rudo__lock_release(&h->world.lock);
    return n;
}

void rudo_set_gc_callback(rudo_gc_callback fn, void *data) {
    rudo__heap *h = rudo__need_heap("rudo_set_gc_callback");
    rudo__lock_idle(h, "rudo_set_gc_callback");
    h->gc_callback = fn;
    h->gc_callback_data = data;
    rudo__lock_release(&h->world.lock);
}

void rudo_set_gc_listener(const rudo_gc_listener *listener) {
    rudo__heap *h = rudo__need_heap("rudo_set_gc_listener");
    /* gc_lock, with no collection running: the collector reads it with the
     * world stopped. */
    rudo__lock_idle(h, "rudo_set_gc_listener");
    h->has_listener = listener != NULL;
    h->listener = listener ? *listener : (rudo_gc_listener){0};
    rudo__lock_release(&h->world.lock);
}
