/* parallel.c — the marker pool: helper threads, push-based transfer
 * through inboxes, work stealing, and termination detection.
 *
 * Termination (docs/marking.md). `active` counts markers that are not
 * parked; it changes only under pool->lock. Invariant: a parked marker has
 * an empty deque, an empty inbox and no unsent batch — it parks only after
 * draining, sending, and checking its inbox under the lock. Work moves
 * between markers only (a) by stealing, done by an active thief, or (b) by
 * an inbox delivery, done under the lock by an active sender, which makes a
 * parked receiver active before releasing the lock (as Chez Scheme counts
 * the receiver in on its behalf). So when `active` reaches 0 under the
 * lock, no work is left anywhere: the last marker to park sets `done` and
 * wakes the others. */
#include <sched.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/base.h"
#include "mark/mark.h"
#include "platform/platform.h"
#include "threads/threads.h"

static void *helper_main(void *arg);
static void pool_send(rudo__marker *mk, unsigned dest, void *obj);
static void pool_flush(rudo__marker *mk);
static void pool_offer(rudo__marker *mk);
/* What the pool's markers call to hand work on (mark.h). */
static const rudo__marker_ops pool_ops = {pool_send, pool_flush, pool_offer};

/* fork() copies only the calling thread: in the child the marker threads
 * are gone, so the child forgets the pool (its memory is leaked) and makes
 * a new one at its next collection. The pool lock is held across fork so
 * the child never sees it taken by a vanished helper. Called by the
 * atfork handlers in mutator.c, after gc_lock and heap_lock (rank order),
 * with no collection running, so h->pool cannot change meanwhile. */
void rudo__pool_fork_prepare(rudo__heap *h) {
    if (h->pool)
        rudo__lock_acquire(&h->pool->lock);
}

void rudo__pool_fork_parent(rudo__heap *h) {
    if (h->pool)
        rudo__lock_release(&h->pool->lock);
}

void rudo__pool_fork_child(rudo__heap *h) {
    if (h->pool) {
        rudo__lock_release(&h->pool->lock);
        h->pool = NULL;
    }
}

rudo__mark_pool *rudo__pool_get(rudo__heap *h) {
    /* Relaxed: the caller holds gc_lock or has the world stopped, either
     * of which orders it after the store below (rudo__mark_prepare reads
     * it with acquire, unlocked). */
    rudo__mark_pool *have = __atomic_load_n(&h->pool, __ATOMIC_RELAXED);
    if (have)
        return have;
    const char *fn = "rudo_collect";
    rudo__mark_pool *pool = calloc(1, sizeof *pool);
    if (!pool)
        rudo__fatal(fn, "out of memory for the marker pool");
    pool->n = h->cfg.markers ? h->cfg.markers : 1;
    pool->steal = h->cfg.mark_steal;
    pool->inbox = h->cfg.mark_inbox;
    /* Routing needs inboxes to send through. */
    pool->route = pool->inbox && h->cfg.mark_route;
    pool->batch = h->cfg.mark_batch;
    rudo__lock_init(&pool->lock, RUDO_RANK_MARK, "mark_pool_lock");
    pthread_cond_init(&pool->start_cv, NULL);
    /* The collector's waits on these have deadlines (timed_wait). */
    rudo__os_cond_init_monotonic(&pool->work_cv);
    rudo__os_cond_init_monotonic(&pool->done_cv);
    pool->m = calloc(pool->n, sizeof *pool->m);
    if (!pool->m)
        rudo__fatal(fn, "out of memory for the marker pool");
    for (unsigned i = 0; i < pool->n; i++) {
        rudo__marker *mk = aligned_alloc(64, (sizeof *mk + 63) & ~(size_t)63);
        if (!mk)
            rudo__fatal(fn, "out of memory for marker %u", i);
        memset(mk, 0, sizeof *mk);
        mk->h = h;
        mk->pool = pool;
        mk->ops = &pool_ops;
        mk->id = i;
        mk->rng = 0x9E3779B97F4A7C15ULL * (i + 1);
        mk->out = calloc(pool->n, sizeof *mk->out);
        mk->out_n = calloc(pool->n, sizeof *mk->out_n);
        if (!mk->out || !mk->out_n)
            rudo__fatal(fn, "out of memory for marker %u", i);
        pool->m[i] = mk;
    }
    for (unsigned i = 1; i < pool->n; i++)
        if (pthread_create(&pool->m[i]->thread, NULL, helper_main, pool->m[i]) != 0)
            rudo__fatal(fn, "cannot create marker thread %u", i);
    /* Release: pairs with rudo__mark_prepare's unlocked acquire load. */
    __atomic_store_n(&h->pool, pool, __ATOMIC_RELEASE);
    return pool;
}

void rudo__mark_prepare(rudo__heap *h) {
    /* Acquire: a pool seen here is complete. */
    if (__atomic_load_n(&h->pool, __ATOMIC_ACQUIRE))
        return;
    /* Made under gc_lock while no collection runs, so not with the world
     * stopped: its calloc and pthread_create could wait for ever on a
     * malloc arena's lock held by a thread suspended by signal. */
    rudo__lock_acquire(&h->world.lock);
    if (!h->world.collecting)
        rudo__pool_get(h);
    rudo__lock_release(&h->world.lock);
}

void rudo__pool_destroy(rudo__heap *h) {
    rudo__mark_pool *pool = h->pool;
    if (!pool)
        return;
    rudo__lock_acquire(&pool->lock);
    pool->shutdown = true;
    pthread_cond_broadcast(&pool->start_cv);
    rudo__lock_release(&pool->lock);
    /* pthread_join is a cancellation point: a cancel must not leave the
     * pool half destroyed. */
    int cancel_state = rudo__nocancel_begin();
    for (unsigned i = 1; i < pool->n; i++)
        pthread_join(pool->m[i]->thread, NULL);
    rudo__nocancel_end(cancel_state);
    for (unsigned i = 0; i < pool->n; i++) {
        rudo__marker *mk = pool->m[i];
        rudo__meta_free(mk->out[0]); /* one block for all (pool_send) */
        free(mk->out);
        free(mk->out_n);
        rudo__meta_free(mk->inbox);
        rudo__meta_free(mk->spare);
        rudo__meta_free(mk->local);
        rudo__meta_free(mk->weak);
        rudo__meta_free(mk->ephem);
        rudo__meta_free(mk->recorded);
        free(mk);
    }
    free(pool->m);
    rudo__meta_free(pool->tasks);
    rudo__meta_free(pool->snap);
    rudo__meta_free(pool->slots);
    rudo__lock_destroy(&pool->lock);
    pthread_cond_destroy(&pool->start_cv);
    pthread_cond_destroy(&pool->work_cv);
    pthread_cond_destroy(&pool->done_cv);
    free(pool);
    h->pool = NULL;
}

/* ---- push-based transfer ------------------------------------------------------ */

/* Hands mk's batch for dest to dest's inbox (under the lock), waking dest
 * if it is parked. If the inbox cannot grow, mk keeps the work. */
static void deliver(rudo__marker *mk, unsigned dest) {
    rudo__mark_pool *pool = mk->pool;
    rudo__marker *d = pool->m[dest];
    size_t k = mk->out_n[dest];
    mk->out_n[dest] = 0;
    rudo__lock_acquire(&pool->lock);
    if (d->inbox_n + k > d->inbox_cap) {
        size_t cap = d->inbox_cap ? d->inbox_cap * 2 : 4 * (size_t)pool->batch;
        while (cap < d->inbox_n + k)
            cap *= 2;
        /* Meta memory: the world is stopped (base.h). */
        void **n = rudo__meta_realloc_n(d->inbox, cap, sizeof *n);
        if (!n) {
            rudo__lock_release(&pool->lock);
            for (size_t i = 0; i < k; i++)
                rudo__mark_push(mk, mk->out[dest][i]); /* keep the work */
            return;
        }
        d->inbox = n;
        d->inbox_cap = cap;
    }
    memcpy(d->inbox + d->inbox_n, mk->out[dest], k * sizeof(void *));
    d->inbox_n += k;
    d->st.batches_received++;
    if (d->idle) {
        d->idle = false;
        pool->active++;
        /* Relaxed: nidle is a hint for pool_offer; the lock orders it. */
        atomic_fetch_sub_explicit(&pool->nidle, 1, memory_order_relaxed);
        pthread_cond_broadcast(&pool->work_cv);
    }
    rudo__lock_release(&pool->lock);
    mk->st.batches_sent++;
}

static void pool_send(rudo__marker *mk, unsigned dest, void *obj) {
    if (!mk->out[dest]) {
        /* One block of meta memory (the world is stopped: base.h) for the
         * buffers to every marker, out[0] its start. */
        size_t batch = mk->pool->batch, n = mk->pool->n;
        void **b = rudo__meta_alloc(n * batch * sizeof(void *));
        if (!b) {
            rudo__mark_push(mk, obj); /* no buffer: keep the work */
            return;
        }
        for (size_t d = 0; d < n; d++)
            mk->out[d] = b + d * batch;
    }
    mk->out[dest][mk->out_n[dest]++] = obj;
    if (mk->out_n[dest] == mk->pool->batch)
        deliver(mk, dest);
}

static void pool_flush(rudo__marker *mk) {
    for (unsigned d = 0; d < mk->pool->n; d++)
        if (mk->out_n[d])
            deliver(mk, d);
}

/* Takes the whole inbox (swapping in the spare buffer) and traces it. */
static bool take_inbox(rudo__marker *mk) {
    rudo__mark_pool *pool = mk->pool;
    if (!pool->inbox)
        return false;
    rudo__lock_acquire(&pool->lock);
    size_t n = mk->inbox_n;
    void **items = mk->inbox;
    size_t cap = mk->inbox_cap;
    if (n) {
        mk->inbox = mk->spare;
        mk->inbox_cap = mk->spare_cap;
        mk->inbox_n = 0;
    }
    rudo__lock_release(&pool->lock);
    if (!n)
        return false;
    for (size_t i = 0; i < n; i++)
        rudo__mark_trace(mk, items[i]);
    mk->spare = items;
    mk->spare_cap = cap;
    return true;
}

/* ---- stealing ------------------------------------------------------------------- */

static unsigned next_victim(rudo__marker *mk) {
    uint64_t x = mk->rng;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    mk->rng = x;
    return (unsigned)(x % mk->pool->n);
}

/* After a successful steal: takes up to half of what the victim's deque
 * still seems to hold (at most STEAL_MORE items), each by an ordinary
 * steal, onto the thief's private stack. One object per steal left a
 * thief on a random graph coming back for work after every few hundred
 * objects, each time after a failed attempt or two; with many markers
 * those rounds are what unbalances them. The items stay in an active
 * marker (the thief), so termination is unaffected (docs/marking.md). */
#define STEAL_MORE 32

static void steal_more(rudo__marker *mk, rudo__deque *victim) {
    size_t k = rudo__deque_size_hint(victim) / 2;
    if (k > STEAL_MORE)
        k = STEAL_MORE;
    for (size_t i = 0; i < k; i++) {
        void *item;
        mk->st.steals_attempted++;
        if (rudo__deque_steal(victim, &item) != RUDO__STEAL_OK)
            break;
        mk->st.steals_won++;
        rudo__mark_push(mk, item); /* a chunk keeps its tag: trace_item */
    }
}

/* Random victims, a bounded number of attempts per round; between rounds
 * the thread backs off: first a short spin, then a yield (then the caller
 * parks). Never a scan of all deques from index 0. */
static bool try_steal(rudo__marker *mk) {
    rudo__mark_pool *pool = mk->pool;
    if (!pool->steal || pool->n == 1)
        return false;
    for (int round = 0; round < 3; round++) {
        if (round == 1)
            for (int i = 0; i < 64; i++)
                rudo__cpu_relax();
        else if (round == 2)
            sched_yield();
        for (unsigned a = 0; a < 2 * pool->n; a++) {
            unsigned v = next_victim(mk);
            if (v == mk->id)
                continue;
            void *item;
            mk->st.steals_attempted++;
            if (rudo__deque_steal(&pool->m[v]->dq, &item) == RUDO__STEAL_OK) {
                mk->st.steals_won++;
                steal_more(mk, &pool->m[v]->dq);
                rudo__mark_trace(mk, item);
                return true;
            }
        }
    }
    return false;
}

static void pool_offer(rudo__marker *mk) {
    rudo__mark_pool *pool = mk->pool;
    /* Relaxed: nidle is a hint; a stale value costs one wake-up too many
     * or too few, and a parked marker is also woken by the end of work. */
    if (!pool->steal ||
        atomic_load_explicit(&pool->nidle, memory_order_relaxed) == 0 ||
        rudo__deque_size_hint(&mk->dq) < 2)
        return;
    rudo__lock_acquire(&pool->lock);
    pool->wake_seq++;
    pthread_cond_broadcast(&pool->work_cv);
    rudo__lock_release(&pool->lock);
}

/* Waits on cv (a CLOCK_MONOTONIC one) until the rudo__now_ns time `at`;
 * true if it passed. The collector's waits for helpers use it to report a
 * helper that does not finish: after stop_warn_ms (RUDO_STOP_WARN_MS), then
 * after each doubling up to 60 s (next_warn), as the stop does. */
static bool timed_wait(rudo__mark_pool *pool, pthread_cond_t *cv, uint64_t at) {
    struct timespec dl = rudo__os_mono_at(at);
    return rudo__lock_timedwait(&pool->lock, cv, &dl);
}
/* The report after the one due at `at` (t0 the wait's start): the delay
 * since t0 doubles, then grows by 60 s at a time. Computed from `at`, not
 * as t0 plus a capped delay, which stops growing at the cap: that deadline
 * stayed in the past and the wait reported at every wakeup, spinning. */
static uint64_t next_warn(uint64_t t0, uint64_t at) {
    uint64_t gap = at - t0, cap = 60000000000ull;
    return at + (gap < cap ? gap : cap);
}

/* Under pool->lock: says how long the collector has waited for the
 * helpers, naming those inside a callback (and which). snprintf, as the
 * stop's report: no lock, no allocation. */
static void report_unfinished(rudo__mark_pool *pool, uint64_t waited_ns) {
    char line[512] = "";
    size_t len = 0;
    unsigned n = 0;
    for (unsigned i = 1; i < pool->n; i++) {
        /* Relaxed: a label (mark.c). */
        const char *what = atomic_load_explicit(&pool->m[i]->in_callback,
                                                memory_order_relaxed);
        if (!what || len >= sizeof line - 96)
            continue;
        int k = snprintf(line + len, sizeof line - len, "%smarker %u in %s%s%s",
                         n++ ? ", " : ": ", i, what[0] == '(' ? "a " : "the trace callback of kind '",
                         what[0] == '(' ? what + 1 : what, what[0] == '(' ? "" : "'");
        if (k > 0)
            len += (size_t)k < sizeof line - len ? (size_t)k : sizeof line - len - 1;
        if (what[0] == '(' && len > 0 && line[len - 1] == ')')
            line[--len] = '\0'; /* "(root callback)" reads "a root callback" */
    }
    rudo__warn("collection", "waited %llu ms for the helper markers to finish%s; a "
               "trace or root callback may be waiting for a stopped thread (they must "
               "not take locks that mutators may hold) or not returning; still waiting",
               (unsigned long long)(waited_ns / 1000000), line);
}

/* ---- parking and termination ----------------------------------------------------- */

/* Parks mk until work arrives, a steal looks worth trying, or marking is
 * done. Returns true when done. */
static bool park(rudo__marker *mk) {
    rudo__mark_pool *pool = mk->pool;
    rudo__lock_acquire(&pool->lock);
    if (mk->inbox_n) {
        rudo__lock_release(&pool->lock);
        return false;
    }
    mk->idle = true;
    pool->active--;
    /* Relaxed: a hint for pool_offer; the pool lock orders it. */
    atomic_fetch_add_explicit(&pool->nidle, 1, memory_order_relaxed);
    if (pool->active == 0) {
        pool->done = true;
        pthread_cond_broadcast(&pool->work_cv);
        rudo__lock_release(&pool->lock);
        return true;
    }
    uint64_t t0 = rudo__now_ns(), seq = pool->wake_seq;
    /* The collector (marker 0) reports a wait that lasts (timed_wait). A
     * helper reports a stop that lasts, as a parked mutator does
     * (rudo__world_report_stuck: one report per deadline among them all):
     * in a program with one thread, a callback stuck on the collector has
     * no one else to say it. */
    rudo__heap *h = mk->h;
    uint64_t warn = mk->id == 0 ? (uint64_t)h->world.stop_warn_ms * 1000000u : 0;
    uint64_t at = t0 + warn;
    bool watch = mk->id != 0 && h->world.stop_warn_ms;
    while (!pool->done && mk->idle && pool->wake_seq == seq) {
        if (watch) {
            /* Relaxed: a clock reading (heap.h). */
            uint64_t next = atomic_load_explicit(&h->world.stuck_next_ns, memory_order_relaxed);
            uint64_t until = next ? next : rudo__now_ns() + h->world.stop_warn_ms * 1000000ull;
            /* stop_seq: written by the collector before this collection
             * started the helpers (under the pool lock), not during it. */
            if (timed_wait(pool, &pool->work_cv, until) && !pool->done && mk->idle &&
                pool->wake_seq == seq)
                rudo__world_report_stuck(h, h->world.stop_seq);
            continue;
        }
        if (!warn) {
            rudo__lock_wait(&pool->lock, &pool->work_cv);
            continue;
        }
        if (timed_wait(pool, &pool->work_cv, at) && !pool->done && mk->idle &&
            pool->wake_seq == seq) {
            report_unfinished(pool, rudo__now_ns() - t0);
            at = next_warn(t0, at);
        }
    }
    mk->st.idle_ns += rudo__now_ns() - t0;
    bool done = pool->done;
    if (!done && mk->idle) {
        mk->idle = false;
        pool->active++;
        /* Relaxed: as above. */
        atomic_fetch_sub_explicit(&pool->nidle, 1, memory_order_relaxed);
    }
    rudo__lock_release(&pool->lock);
    return done;
}

static void mark_loop(rudo__marker *mk) {
    rudo__mark_pool *pool = mk->pool;
    size_t i;
    /* Relaxed: the index only hands out distinct tasks; the task array was
     * published by the start signal (pool lock). */
    while ((i = atomic_fetch_add_explicit(&pool->next_task, 1,
                                          memory_order_relaxed)) < pool->ntasks) {
        rudo__mark_root_task(mk, i);
        rudo__mark_drain(mk);
    }
    for (;;) {
        rudo__mark_drain(mk);
        pool_flush(mk);
        /* A delivery that could not get memory gives its batch back. */
        if (mk->local_n > mk->local_lo || rudo__deque_size_hint(&mk->dq))
            continue;
        if (take_inbox(mk))
            continue;
        if (try_steal(mk))
            continue;
        if (park(mk))
            return;
    }
}

static void *helper_main(void *arg) {
    rudo__marker *mk = arg;
    rudo__mark_pool *pool = mk->pool;
    rudo__lock_acquire(&pool->lock);
    uint64_t seen = 0;
    for (;;) {
        while (pool->epoch == seen && !pool->shutdown)
            rudo__lock_wait(&pool->lock, &pool->start_cv);
        if (pool->shutdown)
            break;
        seen = pool->epoch;
        rudo__lock_release(&pool->lock);
        mark_loop(mk);
        rudo__lock_acquire(&pool->lock);
        pool->finished++;
        pthread_cond_signal(&pool->done_cv);
    }
    rudo__lock_release(&pool->lock);
    return NULL;
}

void rudo__pool_mark(rudo__mark_pool *pool) {
    rudo__lock_acquire(&pool->lock);
    pool->epoch++;
    pool->active = pool->n;
    /* Relaxed: under the pool lock, before the helpers start. */
    atomic_store_explicit(&pool->nidle, 0, memory_order_relaxed);
    pool->done = false;
    pool->finished = 0;
    for (unsigned i = 0; i < pool->n; i++) {
        pool->m[i]->idle = false;
        pool->m[i]->inbox_n = 0;
    }
    pthread_cond_broadcast(&pool->start_cv);
    rudo__lock_release(&pool->lock);
    mark_loop(pool->m[0]);
    rudo__lock_acquire(&pool->lock);
    /* A helper that does not finish is in a callback that waits for a
     * stopped thread or never returns (the only work without a bound): say
     * which, after stop_warn_ms and then after each doubling, as the stop
     * does for threads that do not stop. */
    rudo__heap *h = pool->m[0]->h;
    uint64_t t0 = rudo__now_ns(), warn = (uint64_t)h->world.stop_warn_ms * 1000000u;
    uint64_t at = t0 + warn;
    while (pool->finished < pool->n - 1) {
        if (!warn) {
            rudo__lock_wait(&pool->lock, &pool->done_cv);
            continue;
        }
        if (timed_wait(pool, &pool->done_cv, at) && pool->finished < pool->n - 1) {
            report_unfinished(pool, rudo__now_ns() - t0);
            at = next_warn(t0, at);
        }
    }
    rudo__lock_release(&pool->lock);
}
