/* collect.c — the phases of a full collection, in order, with the world
 * stopped; statistics and the RUDO_GC_LOG line. */
#include <stdio.h>

#include "alloc/alloc.h"
#include "debug/debug.h"
#include "heap/heap.h"
#include "mark/mark.h"
#include "platform/platform.h"
#include "sweep/sweep.h"

/* The RUDO_GC_LOG line: one per collection, on stderr. */
static void log_line(rudo__heap *h, const char *reason, uint64_t pause,
                     uint64_t ttsp, uint64_t mark_ns, uint64_t sweep_ns,
                     size_t live) {
    rudo__mark_stats ms = rudo__mark_last_stats();
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
    fprintf(stderr,
            "rudo gc %llu (%s): pause %.3f ms (ttsp %.1f us, mark %.3f ms, "
            "sweep %.3f ms), live %zu KiB, heap %zu KiB, %llu objects marked, "
            "%u markers (traced %s; steals %llu/%llu, batches %llu, idle %.3f ms), "
            "stack high water %zu, %u threads\n",
            (unsigned long long)h->gc_count, reason, (double)pause / 1e6,
            (double)ttsp / 1e3, (double)mark_ns / 1e6, (double)sweep_ns / 1e6,
            live >> 10, (h->pages_committed * RUDO_PAGE_SIZE) >> 10,
            (unsigned long long)ms.objects_marked, pool->n, per,
            (unsigned long long)won, (unsigned long long)steals,
            (unsigned long long)sent, (double)idle / 1e6, ms.high_water,
            h->nmutators);
}

void rudo__run_collection(rudo__heap *h, const char *reason,
                          uint64_t t_request, uint64_t ttsp, rudo_gc_event *ev) {
    uint64_t t_mark = rudo__now_ns();
    /* 1. Allocation pages stop being current: their alloc bits become
     *    exact, so marking only ever marks allocated cells. */
    rudo__lock_acquire(&h->heap_lock);
    for (rudo__mutator *m = h->mutators; m; m = m->next)
        rudo__alloc_retire_all(h, m);
    rudo__lock_release(&h->heap_lock);
    /* 2. Cells that died earlier and were never swept become free; marks
     *    are cleared. */
    rudo__sweep_prepare(h);
    /* 3. Mark from every root; queue finalizable dead objects. */
    rudo__mark_phase(h);
    h->gc_count++;
    if (h->verify)
        rudo__debug_verify_heap();
    uint64_t t_sweep = rudo__now_ns();
    /* 4. Count live bytes, free empty pages and dead large objects, list
     *    pages with free cells for lazy sweeping. */
    size_t live = rudo__sweep_after_mark(h);
    uint64_t t_end = rudo__now_ns();

    h->live_bytes = live;
    double next = (double)live * h->cfg.growth;
    if (h->cfg.growth_limit && next > (double)live + (double)h->cfg.growth_limit)
        next = (double)live + (double)h->cfg.growth_limit;
    if (next < (double)h->cfg.initial_heap)
        next = (double)h->cfg.initial_heap;
    /* Converting a double beyond the range of uint64_t is undefined; no
     * heap gets near 2^62 bytes, so that is "never by the trigger". */
    uint64_t trigger = next < 0x1p62 ? (uint64_t)next : (uint64_t)1 << 62;
    /* Relaxed: mutators are stopped; gc_lock publishes these on resume. */
    atomic_store_explicit(&h->trigger, trigger, memory_order_relaxed);
    atomic_store_explicit(&h->alloc_since_gc, 0, memory_order_relaxed);

    uint64_t mark_ns = t_sweep - t_mark, sweep_ns = t_end - t_sweep;
    uint64_t pause = t_end - t_request;
    h->st.mark_ns += mark_ns;
    h->st.sweep_ns += sweep_ns;
    h->st.pause_ns += pause;
    if (pause > h->st.pause_max)
        h->st.pause_max = pause;
    if (ttsp > h->st.ttsp_max)
        h->st.ttsp_max = ttsp;
    h->st.ttsp_ring[(h->gc_count - 1) % 1024] = ttsp;

    *ev = (rudo_gc_event){.number = h->gc_count, .pause_ns = pause, .ttsp_ns = ttsp,
                          .mark_ns = mark_ns, .sweep_ns = sweep_ns,
                          .live_bytes = live,
                          .heap_bytes = h->pages_committed * RUDO_PAGE_SIZE};
    if (h->gc_log)
        log_line(h, reason, pause, ttsp, mark_ns, sweep_ns, live);
}
