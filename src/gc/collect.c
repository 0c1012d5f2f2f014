/* collect.c — the collection driver: stopping the world, the phases of a
 * full collection in order, resuming, then the callback and finalizers. */
#include <stdlib.h>

#include "alloc/alloc.h"
#include "debug/debug.h"
#include "final/final.h"
#include "gc/gc.h"
#include "mark/mark.h"
#include "platform/platform.h"
#include "roots/roots.h"
#include "sweep/sweep.h"

/* The collection itself, with the world stopped: retire allocation pages,
 * prepare, mark, verify (if enabled), eager sweep, statistics, log.
 * t_request is when the collection was requested, ttsp how long stopping
 * took. Fills *ev. */
/* Ends a phase: its time into ev, and the listener told. *t is the start
 * of the phase on entry, of the next one on return. */
static void phase_end(rudo__heap *h, rudo_gc_event *ev, rudo_gc_phase ph,
                      uint64_t *t) {
    uint64_t now = rudo__now_ns();
    ev->phase_ns[ph] = now - *t;
    *t = now;
    if (RUDO_UNLIKELY(h->has_listener) && h->listener.phase) {
        rudo__world_doing(h, "in the gc listener's phase");
        rudo__tracing_kind = "(gc listener)"; /* no allocation: see rudo.h */
        h->listener.phase(ph, ev->phase_ns[ph], h->listener.data);
        rudo__tracing_kind = NULL;
    }
}

/* Whether the collection about to run is major: always without
 * generations; with them, when asked for (rudo_collect, the heap limit,
 * part of GC stress mode) or when the policy chose it (set_trigger). */
static bool choose_major(const rudo__heap *h, bool major) {
    return !h->gen.on || major || h->gen.next_major;
}

/* The nursery after a collection that left `live` bytes: the configured
 * size, doubled after a minor collection where most of it survived
 * (minors then only copy work from the majors: marking what will be old
 * anyway) and halved back when little did, but never beyond the trigger
 * that the collector would use without generations; and at least the
 * configured size per allocating thread (h->gen.threads). The floor and
 * the doubling are not multiplied: each answers a different question
 * (are the threads' nurseries too small? does the nursery promote too
 * much?), and a product doubles what the adaptation already grew. */
static size_t nursery(rudo__heap *h, size_t live) {
    const rudo_config *c = &h->cfg;
    size_t n = h->gen.nursery ? h->gen.nursery : c->nursery;
    if (h->gen.minor && c->nursery_adapt) {
        /* Survival is measured against the nursery that ran. */
        size_t ran = h->gen.nursery_total ? h->gen.nursery_total : n;
        double rate = (double)h->gen.last_promoted / (double)ran;
        if (rate > 0.5)
            n *= 2;
        else if (rate < 0.125 && n / 2 >= c->nursery)
            n /= 2;
    }
    double cap = (double)live * c->growth;
    if (c->growth_limit && cap > (double)live + (double)c->growth_limit)
        cap = (double)live + (double)c->growth_limit;
    if ((double)n > cap)
        n = (size_t)cap;
    if (n < c->nursery)
        n = c->nursery;
    double t = (double)n;
    if (t < (double)c->nursery * h->gen.threads)
        t = (double)c->nursery * h->gen.threads;
    /* The pause goal caps it last: at the measured pause per young byte,
     * the goal allows goal / pause_per_byte bytes (rudo.h), aimed an
     * eighth under the goal. The controller settles where the average
     * pause equals its aim, so half the pauses would exceed an aim at the
     * goal itself (large-heap, 256 MiB: median 1.01 ms for a 1 ms goal,
     * p10 0.91, p90 1.14); an eighth under, most meet it. The floor
     * keeps a fixed cost larger than the goal (stacks, static data, the
     * handshake) from shrinking it to nothing. */
    h->gen.goal_capped = false;
    if (c->minor_pause_goal_us && h->gen.pause_per_byte > 0) {
        double fit = (double)c->minor_pause_goal_us * 1e3 * 0.875 / h->gen.pause_per_byte;
        double floor = (double)(c->nursery / 16);
        if (floor < 256.0 * 1024)
            floor = 256.0 * 1024;
        if (fit < floor)
            fit = floor;
        if (t > fit) {
            t = fit;
            h->gen.goal_capped = true;
        }
    }
    h->gen.nursery_total = (size_t)t;
    /* A capped nursery adapts from the cap (one thread: from what ran). */
    h->gen.nursery = (double)n < t ? n : (size_t)t;
    return h->gen.nursery_total;
}

/* The number of threads that shared the allocation of the cycle that
 * just ended, for the per-thread nursery (rudo_config.nursery_per_thread):
 * S^2 / Q, with S the sum and Q the sum of squares of the bytes each
 * thread charged (rudo__mutator.cycle_charged, zeroed here). It is N for
 * N threads allocating alike and near 1 when one did nearly all of it, so
 * a thread that allocates a little now and then does not count as one;
 * at most the online CPUs. Collector, world stopped, after the flush of
 * every thread's counts. */
static double allocating_threads(rudo__heap *h) {
    double sum = 0, squares = 0;
    for (rudo__mutator *m = h->world.mutators; m; m = m->next) {
        double a = (double)m->cycle_charged;
        m->cycle_charged = 0;
        sum += a;
        squares += a * a;
    }
    if (!h->gen.on || !h->cfg.nursery_per_thread || squares == 0)
        return 1;
    double n = sum * sum / squares;
    if (n > (double)h->gen.cpus)
        n = (double)h->gen.cpus;
    return n < 1 ? 1 : n;
}

/* Whether m's allocation pages stay current across this collection
 * (alloc.h: frozen, then thawed): m was stopped where it did not ask to be,
 * by signal or by a deferred stop, so the objects it made since its last
 * allocation or safepoint keep their exemption from the barrier. */
static bool frozen(const rudo__mutator *m) {
    return m->sig_stopped || (m->deferred_park && m->state == RUDO_MUT_STOPPED);
}

static bool any_frozen(const rudo__heap *h) {
    for (const rudo__mutator *m = h->world.mutators; m; m = m->next)
        if (frozen(m))
            return true;
    return false;
}

/* m was frozen (stopped by signal, or by a deferred stop): its last large
 * object, marked by now if it is reachable, so old, may get young
 * pointers without the barrier (rudo.h: the thread has passed no
 * safepoint since it was made). Its cards are
 * dirtied for the next minor collection, as thawing dirties those of the
 * small cells (alloc.c). Dirtying the cards of one object that died is
 * harmless; forgetting it stops the repeats. */
static void dirty_fresh_large(rudo__heap *h, rudo__mutator *m) {
    rudo__page *p;
    if (rudo__find_object(h, m->fresh_large, &p) != m->fresh_large) {
        m->fresh_large = NULL;
        return;
    }
    rudo__cards_mark(h, m->fresh_large, m->fresh_large_len);
}

/* Feeds the pause goal (nursery above) with a minor collection's pause
 * and the young bytes it ran for. Collections that ran for less than half
 * a nursery (rudo_collect_minor, the heap limit) are skipped: their fixed
 * costs would count as per-byte costs. A moving average with weight 1/2:
 * it follows a change of the workload within a few minors, and one
 * disturbed pause (a preempted marker) moves it only halfway. */
static void sample_pause(rudo__heap *h, uint64_t pause, uint64_t young) {
    if (young == 0 || young < h->gen.nursery_total / 2)
        return;
    double r = (double)pause / (double)young;
    h->gen.pause_per_byte = h->gen.pause_per_byte > 0
                                ? (h->gen.pause_per_byte + r) / 2 : r;
}

/* The next collection's trigger and, with generations, its kind (docs/
 * design.md, "Heap sizing"). */
static void set_trigger(rudo__heap *h, size_t live) {
    const rudo_config *c = &h->cfg;
    /* max_heap counts when it is below the reservation (rudo.h). */
    bool budget = c->max_heap && c->max_heap / RUDO_PAGE_SIZE < h->npages &&
                  !h->max_heap_cap; /* rudo_set_max_heap_cap: a cap only */
    double next;
    if (h->gen.on) {
        next = (double)nursery(h, live);
        double base = (double)(h->gen.major_live > c->initial_heap
                                   ? h->gen.major_live : c->initial_heap);
        if (budget) {
            /* A budget is used whole: the nursery takes at least half the
             * room the old data leaves under it (less a sixteenth for what
             * the pages cannot pack), and at most all of it; the next
             * collection is major when that room is under two nurseries. */
            double room = (double)c->max_heap - (double)live - (double)c->max_heap / 16;
            h->gen.next_major = room < 2.0 * (double)c->nursery;
            if (next < room / 2 && !h->gen.goal_capped)
                next = room / 2;
            if (next > room)
                next = room > 0 ? room : 0;
            /* No room left: the allocation that needs a page now meets
             * the budget and takes the out-of-memory path (a full
             * collection, then NULL). A trigger of 0 would make every
             * slow path before it collect again, to no use (3 majors per
             * failed request, against 1 without generations). */
            if (next < (double)RUDO_PAGE_SIZE)
                next = (double)RUDO_PAGE_SIZE;
        } else {
            /* Without one, old-data growth since the last major decides. */
            h->gen.next_major = (double)live > base * c->major_growth;
        }
    } else {
        next = (double)live * c->growth;
        if (c->growth_limit && next > (double)live + (double)c->growth_limit)
            next = (double)live + (double)c->growth_limit;
        if (next < (double)c->initial_heap)
            next = (double)c->initial_heap;
        /* With a budget, collect near it, not at live * growth: fewer
         * collections for the memory the program agreed to. A sixteenth
         * is left for what the size classes cannot pack, so that the
         * counter, not a failed page allocation, starts the collection. */
        double room = (double)c->max_heap - (double)live - (double)c->max_heap / 16;
        if (budget && room > next)
            next = room;
    }
    /* Converting a double beyond the range of uint64_t is undefined; no
     * heap gets near 2^62 bytes, so that is "never by the trigger". */
    uint64_t trigger = next < 0x1p62 ? (uint64_t)next : (uint64_t)1 << 62;
    /* Relaxed: mutators are stopped; gc_lock publishes these on resume. */
    atomic_store_explicit(&h->trigger, trigger, memory_order_relaxed);
    atomic_store_explicit(&h->alloc_since_gc, 0, memory_order_relaxed);
}

static void run_collection(rudo__heap *h, const char *reason, bool major,
                           uint64_t t_request, uint64_t ttsp, rudo_gc_event *ev) {
    major = choose_major(h, major);
    h->gen.minor = !major;
    /* The threads' unflushed counts first (gc/alloc_slow.c): into the
     * totals, and into what was allocated since the last collection. */
    for (rudo__mutator *m = h->world.mutators; m; m = m->next)
        rudo__mutator_count_flush(h, m);
    h->gen.threads = allocating_threads(h);
    /* Relaxed: the world is stopped; the counter is only a heuristic. */
    uint64_t young = atomic_load_explicit(&h->alloc_since_gc, memory_order_relaxed);
    size_t old_before = h->live_bytes;
    *ev = (rudo_gc_event){.number = h->gc_count + 1, .ttsp_ns = ttsp,
                          .minor = !major};
    ev->phase_ns[RUDO_PHASE_STOP] = ttsp;
    if (RUDO_UNLIKELY(h->has_listener)) {
        rudo__world_doing(h, "in the gc listener's begin or phase");
        rudo__tracing_kind = "(gc listener)"; /* no allocation: see rudo.h */
        if (h->listener.begin)
            h->listener.begin(ev, h->listener.data);
        if (h->listener.phase)
            h->listener.phase(RUDO_PHASE_STOP, ttsp, h->listener.data);
        rudo__tracing_kind = NULL;
    }
    uint64_t t_mark = rudo__now_ns(), t_phase = t_mark;
    /* 1. Allocation pages stop being current: their alloc bits become
     *    exact, so marking only ever marks allocated cells. Those of
     *    threads suspended by signal, or parked by a deferred stop, stay
     *    current (alloc.h, frozen). */
    rudo__lock_acquire(&h->heap_lock);
    for (rudo__mutator *m = h->world.mutators; m; m = m->next) {
        if (frozen(m))
            rudo__alloc_freeze_all(h, m->kalloc);
        else
            rudo__alloc_retire_all(h, m->kalloc);
    }
    rudo__lock_release(&h->heap_lock);
    /* 2. Cells that died earlier and were never swept become free; marks
     *    are cleared. */
    rudo__sweep_prepare(h, major);
    /* 3. Mark from every root (and, in a minor collection, from the old
     *    objects on dirty cards); queue finalizable dead objects. */
    rudo__root_visitor *roots = rudo__mark_begin(h);
    if (!major) {
        /* Before anything is marked: the verifier and the card tasks both
         * tell old objects by their marks. */
        if (h->verify)
            rudo__debug_verify_cards(any_frozen(h));
        h->gen.card_pages = rudo__mark_cards(h);
    }
    rudo__world_doing(h, "enumerating roots: in root callbacks");
    /* First: their marks must precede every other root's (rudo.h). */
    rudo__roots_callbacks_first(h, rudo__mark_first_visitor(h));
    rudo__roots_enumerate(h, roots);
    rudo__final_enumerate(h, roots);
    rudo__roots_callbacks(h, roots); /* run by the markers, in parallel */
    phase_end(h, ev, RUDO_PHASE_ROOTS, &t_phase);
    rudo__world_doing(h, "marking: in root callbacks, then trace callbacks");
    rudo__mark_closure(h);
    /* The order of the passes is docs/design.md's ("Weak references"). */
    rudo__mark_ephemerons(h);
    if (h->verify && !major)
        rudo__debug_verify_cards_held(); /* the closure from the roots */
    phase_end(h, ev, RUDO_PHASE_MARK, &t_phase);
    rudo__world_doing(h, "weak references and finalization: in trace callbacks");
    /* Short weak slots: cleared now that the closure from the roots is
     * known, before the objects due for finalization are marked. */
    uint64_t weak = rudo__weak_clear(h, false) + rudo__mark_weak_clear(h);
    void **due, **cand, **odue;
    size_t ndue = rudo__final_find_due(h, major, &due);
    /* Ordered finalization: what an ordered candidate refers to is kept
     * (marked), so a candidate another dying object refers to waits for
     * the next collection; one that reaches itself is on a cycle. */
    size_t ncand = rudo__final_ordered_candidates(h, &cand);
    uint64_t cycles = 0;
    for (size_t i = 0; i < ncand; i++) {
        if (!rudo__unmarked_cell(h, cand[i]))
            continue; /* reached from an earlier candidate */
        if (rudo__final_ignores_self(h, cand[i]))
            rudo__mark_children_ignore_self(h, cand[i]);
        else
            rudo__mark_children(h, cand[i]);
        cycles += !rudo__unmarked_cell(h, cand[i]);
    }
    rudo__meta_free(cand);
    h->ordered_cycles = cycles;
    for (size_t i = 0; i < ndue; i++)
        rudo__mark_from(h, due[i]);
    rudo__meta_free(due);
    size_t nodue = rudo__final_ordered_due(h, &odue);
    for (size_t i = 0; i < nodue; i++)
        rudo__mark_from(h, odue[i]);
    rudo__meta_free(odue);
    if (ndue || ncand)
        rudo__mark_ephemerons(h); /* keys those objects reach */
    /* Long weak slots, and weak slots found while marking from those
     * objects; registrations inside objects that died are forgotten. */
    weak += rudo__weak_clear(h, true) + rudo__mark_weak_clear(h);
    h->weak_cleared = weak;
    h->ephemerons_cleared = rudo__mark_ephemerons_clear(h);
    rudo__mark_end(h);
    if (h->gen.on)
        rudo__cards_clear(h); /* scanned (minor) or moot (major) */
    phase_end(h, ev, RUDO_PHASE_WEAK_FINAL, &t_phase);
    h->gc_count++;
    if (h->verify)
        rudo__debug_verify_heap();
    uint64_t t_sweep = rudo__now_ns();
    rudo__world_doing(h, "sweeping");
    /* 4. Count live bytes, free empty pages and dead large objects, list
     *    pages with free cells for lazy sweeping. */
    size_t live = rudo__sweep_after_mark(h, major);
    rudo__lock_acquire(&h->heap_lock); /* the touched list (heap.h) */
    for (rudo__mutator *m = h->world.mutators; m; m = m->next)
        if (frozen(m)) {
            rudo__alloc_thaw_all(h, m->kalloc);
            if (h->gen.on && m->fresh_large)
                dirty_fresh_large(h, m);
        }
    rudo__lock_release(&h->heap_lock);
    phase_end(h, ev, RUDO_PHASE_SWEEP, &t_phase);
    uint64_t t_end = t_phase;

    h->live_bytes = live;
    /* A minor collection's live bytes are the old data: what was old
     * before (dead old objects included) and what it promoted. */
    size_t promoted = !major && live > old_before ? live - old_before : 0;
    if (major)
        h->gen.major_live = live;
    else
        h->gen.last_promoted = promoted; /* the nursery adapts to it */
    uint64_t mark_ns = t_sweep - t_mark, sweep_ns = t_end - t_sweep;
    uint64_t pause = t_end - t_request;
    if (!major)
        sample_pause(h, pause, young);
    set_trigger(h, live);

    if (major) {
        h->gen.majors++;
        h->gen.major_pause_ns += pause;
        if (pause > h->gen.major_pause_max)
            h->gen.major_pause_max = pause;
    } else {
        h->gen.minors++;
        h->gen.minor_pause_ns += pause;
        if (pause > h->gen.minor_pause_max)
            h->gen.minor_pause_max = pause;
        h->gen.promoted += promoted;
    }
    ev->promoted_bytes = promoted;
    h->st.mark_ns += mark_ns;
    h->st.sweep_ns += sweep_ns;
    h->st.pause_ns += pause;
    if (pause > h->st.pause_max)
        h->st.pause_max = pause;
    if (ttsp > h->st.ttsp_max)
        h->st.ttsp_max = ttsp;
    h->st.ttsp_ring[(h->gc_count - 1) % 1024] = ttsp;

    /* Field by field: phase_ns is filled already. */
    ev->number = h->gc_count;
    ev->pause_ns = pause;
    ev->mark_ns = mark_ns;
    ev->sweep_ns = sweep_ns;
    ev->live_bytes = live;
    ev->heap_bytes = h->pages_committed * RUDO_PAGE_SIZE;
    ev->weak_cleared = h->weak_cleared;
    ev->ephemerons_cleared = h->ephemerons_cleared;
    ev->ordered_cycles = h->ordered_cycles;
    if (h->gc_log)
        rudo__gc_log_line(h, reason, pause, ttsp, mark_ns, sweep_ns, live);
}

void rudo__collect(rudo__mutator *m, const char *reason, bool major) {
    rudo__heap *h = rudo__the_heap;
    /* Inside rudo (never suspended by signal) but for the user code at the
     * end: callbacks and finalizers run as the program's own code. */
    rudo__runtime_enter();
    rudo__capture_roots(m);
    uint64_t t0 = rudo__now_ns();
    /* From the request to the resume the collector must not be cancelled
     * (the warning and the gc log print, which are cancellation points):
     * it would leave `collecting` set and every other thread parked. The
     * callback and the finalizers, user code, run with the caller's state. */
    int cancel_state = rudo__nocancel_begin();
    rudo__mark_prepare(h); /* the first time: before any thread stops */
    rudo__world_watch_start(h); /* as well */
    if (!rudo__world_stop(h, m, t0)) {
        rudo__nocancel_end(cancel_state);
        unsigned depth = rudo__runtime_pause();
        m->busy++; /* as below */
        rudo__final_run(h, false);
        m->busy--;
        rudo__runtime_resume(depth);
        rudo__runtime_leave();
        return;
    }
    /* Relaxed: world_stop took gc_lock, which orders a rudo_disable that
     * released it before (see there). */
    if (RUDO_UNLIKELY(atomic_load_explicit(&h->disabled, memory_order_relaxed) > 0)) {
        /* rudo_disable ran after this thread's test: it promises that no
         * collection starts after it returns. */
        rudo__world_resume(h);
        rudo__nocancel_end(cancel_state);
        rudo__runtime_leave();
        return;
    }
    uint64_t ttsp = rudo__now_ns() - t0;
    rudo_gc_event ev;
    run_collection(h, reason, major, t0, ttsp, &ev);
    m->collections++;
    m->collect_ns += ev.pause_ns;
    /* Read with the world stopped: rudo_set_gc_callback waits for the end
     * of a running collection (rudo__lock_idle). */
    rudo_gc_callback cb = h->gc_callback;
    void *cb_data = h->gc_callback_data;
    rudo_gc_listener listener = h->listener;
    bool has_listener = h->has_listener;
    bool notify = h->final.on_demand && h->final_queued;
    void (*notifier)(void *) = h->final.notify;
    void *notify_data = h->final.notify_data;
    rudo__world_resume(h);
    rudo__nocancel_end(cancel_state);
    unsigned depth = rudo__runtime_pause();
    /* The program's code, with the heap still in use after each call:
     * rudo_heap_destroy aborts meanwhile (rudo__mutator.busy). */
    m->busy++;
    if (cb)
        cb(&ev, cb_data);
    if (has_listener && listener.end)
        listener.end(&ev, listener.data);
    if (notify && notifier)
        notifier(notify_data);
    rudo__final_run(h, false);
    m->busy--;
    rudo__runtime_resume(depth);
    rudo__runtime_leave();
}

void rudo_collect(void) {
    rudo__check_context("rudo_collect", "collect");
    rudo__mutator *m = rudo__need_mutator("rudo_collect");
    if (rudo__collections_held(rudo__the_heap))
        return; /* rudo.h: rudo_disable, rudo_hold_collections */
    rudo__collect(m, "explicit", true);
}

void rudo_collect_minor(void) {
    rudo__check_context("rudo_collect_minor", "collect");
    rudo__mutator *m = rudo__need_mutator("rudo_collect_minor");
    if (rudo__collections_held(rudo__the_heap))
        return; /* rudo.h: rudo_disable, rudo_hold_collections */
    rudo__collect(m, "explicit minor", false);
}

void rudo_disable(void) {
    rudo__heap *h = rudo__need_heap("rudo_disable");
    /* Relaxed: a counter; see the field (heap.h). A collection whose
     * thread tested it before the increment may be under way: waiting for
     * the end of any running one (gc_lock idle) means none runs when this
     * returns, and one that takes gc_lock after this release sees the
     * count (the lock orders it) and gives up (rudo__collect). */
    atomic_fetch_add_explicit(&h->disabled, 1, memory_order_relaxed);
    rudo__lock_idle(h, "rudo_disable");
    rudo__lock_release(&h->world.lock);
}

void rudo_enable(void) {
    const char *fn = "rudo_enable";
    rudo__heap *h = rudo__need_heap(fn);
    unsigned d = atomic_load_explicit(&h->disabled, memory_order_relaxed);
    do {
        if (d == 0)
            rudo__fatal(fn, "collection is not disabled (rudo_enable without "
                        "rudo_disable)");
    } while (!atomic_compare_exchange_weak_explicit(&h->disabled, &d, d - 1,
                                                    memory_order_relaxed,
                                                    memory_order_relaxed));
}

const int *rudo_hold_collections(const int *flag) {
    rudo__heap *h = rudo__need_heap("rudo_hold_collections");
    /* Release: a thread that loads the new pointer (acquire, heap.h) may
     * read the flag the caller initialized before this call. */
    return atomic_exchange_explicit(&h->hold, flag, memory_order_acq_rel);
}

bool rudo_is_disabled(void) {
    return atomic_load_explicit(&rudo__need_heap("rudo_is_disabled")->disabled,
                                memory_order_relaxed) > 0;
}


void rudo_get_thread_stats(rudo_thread_stats *out) {
    const char *fn = "rudo_get_thread_stats";
    if (!out)
        rudo__fatal(fn, "out is NULL");
    rudo__mutator *m = rudo__need_mutator(fn);
    *out = (rudo_thread_stats){m->bytes_allocated, m->collections, m->collect_ns};
}
