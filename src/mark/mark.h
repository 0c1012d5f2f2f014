/* mark.h — the markers (internal): mark bits, per-marker work-stealing
 * deques, inboxes for push-based transfer, page-ownership routing, and the
 * mark phase. The protocol (work distribution, termination) is described in
 * docs/marking.md. */
#ifndef RUDO_MARK_H
#define RUDO_MARK_H
#include "heap/heap.h"
#include "mark/deque.h"

#define RUDO_SLOTBUF 256
#define RUDO_BATCH 512 /* default objects per inbox transfer (docs/marking.md) */

struct rudo__mark_pool;

/* A root task: a unit of root marking that markers take with a fetch-add
 * (mark.c), so roots are divided among markers. */
enum rudo__task_type {
    RUDO_TASK_RANGE,  /* a conservative range [lo, hi) */
    RUDO_TASK_SLOTS,  /* precise slots pool->slots[first .. first+count) */
    RUDO_TASK_CARDS,  /* minor collections: old objects on dirty cards (cards.c) */
    RUDO_TASK_CALLBACK, /* a root callback: fn(the marker's tracer, data) */
};
struct rudo__root_task {
    uint8_t type;     /* rudo__task_type */
    bool all;         /* cards: every card counts as dirty (no barrier) */
    void *lo, *hi;
    /* slots: the run; cards: the page (first), the cards [c0, c1) of its
     * span to look at, and where the page's old-object bits were saved
     * (snap, a word offset in pool->snap; small pages). */
    size_t first, count;
    uint32_t c0, c1;
    size_t snap;
    rudo_root_fn fn;  /* callback */
    void *data;
};

/* The root visitor of a collection: makes root tasks of the pool. */
typedef struct {
    rudo__root_visitor v;
    struct rudo__mark_pool *pool;
} task_visitor;

/* One marker's state. The tracer handed to trace callbacks comes first so
 * the flush function can find the marker from it. */
struct rudo__marker;
/* What a marker asks of the pool that drives it. The pool (parallel.c)
 * installs these: a marker (mark.c) never calls the pool's internals, so
 * calls go one way, from the pool to its markers. */
typedef struct rudo__marker_ops {
    /* Sends obj (marked by mk) to marker dest's inbox, batched. */
    void (*send)(struct rudo__marker *mk, unsigned dest, void *obj);
    /* Delivers mk's partly filled outgoing batches. */
    void (*flush)(struct rudo__marker *mk);
    /* Wakes idle markers if mk has work to spare (cheap when none idles). */
    void (*offer)(struct rudo__marker *mk);
} rudo__marker_ops;

typedef struct rudo__marker {
    rudo_tracer tr;
    void **slotbuf[RUDO_SLOTBUF]; /* slots reported by a trace callback */
    /* Weak slots reported by trace callbacks (rudo_visit_weak) in this
     * collection: weak[weak_done .. nweak) are still to be judged. */
    void ***weak;
    size_t nweak, cap_weak, weak_done;
    /* Ephemerons traced in this collection whose key was not marked yet. */
    rudo_ephemeron **ephem;
    size_t nephem, cap_ephem;
    rudo__heap *h;
    struct rudo__mark_pool *pool;
    const rudo__marker_ops *ops;  /* the pool's, for handing work on */
    unsigned id;
    rudo__deque dq;               /* shared work; thieves steal from the top */
    /* Private mark stack: pushes and pops without fences. Part of it moves
     * to dq when other markers are hungry (rudo__mark_drain). */
    void **local;                 /* items are local[local_lo .. local_n) */
    size_t local_lo, local_n, local_cap, local_high;
    bool single;                  /* the only marker: no atomic RMW needed */
    bool whole;                   /* trace_in scans a large object at once */
    /* Marks to take note of (the collector, in the serial tail; mark.c):
     * NOTE_WAKE, the ephemeron fixpoint's woken pages; NOTE_RECORD, the
     * objects marked after the short weak slots were judged (finalization
     * marking), listed in recorded[0 .. nrecorded). */
    uint8_t note;
    void **recorded;
    size_t nrecorded, cap_recorded;
    unsigned weak_pass;           /* rudo__mark_weak_clear calls so far */
    bool base_only_slots;         /* the trace callback running is of a
                                   * RUDO_KIND_BASE_ONLY kind (flush_slots) */
    /* The kind whose trace callback (or "(root callback)") this marker
     * runs now, NULL otherwise: for the collector's report when a marker
     * does not finish (rudo__pool_mark). Written by the marker, read by
     * the collector; relaxed: a label. */
    _Atomic(const char *) in_callback;
    uint64_t rng;                 /* victim choice (xorshift) */
    /* Inbox: batches other markers sent; under pool->lock. */
    void **inbox;
    size_t inbox_n, inbox_cap;
    bool idle;                    /* parked; under pool->lock */
    /* Outgoing batches, one per destination (routing), owner only. */
    void ***out;
    size_t *out_n;
    void **spare;                 /* second inbox buffer, swapped in */
    size_t spare_cap;
    unsigned since_wake_check;
    rudo_marker_stats st;
    pthread_t thread;
} rudo__marker;

/* The marker pool: created at the first collection that needs it, parked
 * between collections, destroyed with the heap. */
typedef struct rudo__mark_pool {
    unsigned n;                   /* markers, including the collector (0) */
    rudo__marker **m;
    bool steal, inbox, route;     /* switches (config mark_steal ...) */
    unsigned batch;               /* objects per inbox transfer */
    rudo__lock lock;              /* rank MARK: everything below */
    pthread_cond_t start_cv;      /* helpers wait for a collection */
    pthread_cond_t work_cv;       /* idle markers wait for work or the end */
    pthread_cond_t done_cv;       /* the collector waits for helpers */
    uint64_t epoch;               /* collections started */
    unsigned active;              /* markers not idle (termination) */
    _Atomic unsigned nidle;       /* markers parked; read relaxed as a hint */
    uint64_t wake_seq;            /* bumped to wake idle markers to steal */
    unsigned finished;            /* helpers done with this epoch */
    bool done, shutdown;
    /* Root tasks of this collection: ranges (conservative) or slot runs. */
    struct rudo__root_task *tasks;
    size_t ntasks, cap_tasks;
    void ***slots;
    size_t nslots, cap_slots;
    _Atomic size_t next_task;     /* relaxed fetch-add: tasks handed out */
    /* Minor collections: the mark bits of the pages with card tasks, saved
     * before marking starts (cards.c). */
    uint64_t *snap;
    size_t nsnap, cap_snap;
    task_visitor roots;           /* what rudo__mark_begin hands out */
    task_visitor first;           /* rudo__mark_first_visitor's */
    bool saved_route, saved_single; /* switches the serial tail turns off */
} rudo__mark_pool;

/* ---- mark.c ---- */
/* The mark phase of a full collection, with the world stopped, in the
 * order the collector calls it (src/gc/collect.c):
 *  - rudo__mark_begin prepares the markers and returns the visitor that
 *    turns the roots it is shown into root tasks;
 *  - rudo__mark_closure marks everything reachable from them (in parallel),
 *    then traces deferred pages; the collector then marks alone;
 *  - rudo__mark_from marks an object and everything it reaches (serial);
 *  - rudo__mark_end restores the switches and sums the statistics into
 *    h->mark.last. */
rudo__root_visitor *rudo__mark_begin(rudo__heap *h);
/* After rudo__mark_begin: a visitor that runs the root callbacks it is
 * shown at once, on the calling thread (rudo_root_callback_add_first). */
rudo__root_visitor *rudo__mark_first_visitor(rudo__heap *h);
void rudo__mark_closure(rudo__heap *h);
void rudo__mark_from(rudo__heap *h, void *obj);
/* Marks what obj references and everything that reaches, but not obj
 * itself (ordered finalization; serial, as rudo__mark_from). */
void rudo__mark_children(rudo__heap *h, void *obj);
/* As rudo__mark_children, but obj's own words that point into obj do not
 * mark it (rudo_finalizer_register_ignore_self): obj is marked only if a
 * path through other objects leads back to it. obj must be unmarked. */
void rudo__mark_children_ignore_self(rudo__heap *h, void *obj);
void rudo__mark_end(rudo__heap *h);
/* Queues a marked object on mk's own stack (or defers it, see mark.c). */
void rudo__mark_push(rudo__marker *mk, void *obj);
/* Traces one marked object: marks what it references. */
void rudo__mark_trace(rudo__marker *mk, char *obj);
/* Pops and traces the marker's own deque until it is empty. */
void rudo__mark_drain(rudo__marker *mk);
/* Marks from root task i of this collection. */
void rudo__mark_root_task(rudo__marker *mk, size_t i);
/* Appends a root task (collector, before the closure). */
void rudo__mark_add_task(rudo__mark_pool *pool, struct rudo__root_task t);
/* Traces marked object obj of page p (its kind's way); scans words
 * [from, to) of obj, of a conservative or layout kind. For cards.c. */
void rudo__mark_trace_in(rudo__marker *mk, char *obj, rudo__page *p);
void rudo__mark_scan_words(rudo__marker *mk, const rudo__kind *k, char *obj,
                           size_t from, size_t to);

/* ---- cards.c: minor collections ---- */
/* Right after rudo__mark_begin, before anything is marked: makes a card
 * task for every page with old objects on dirty cards (every card of a
 * conservative kind's page counts as dirty: it has no barrier), saving
 * which objects are old. Returns the pages it made tasks for. */
size_t rudo__mark_cards(rudo__heap *h);
/* Runs card task t: traces the old objects on its dirty cards. */
void rudo__cards_task(rudo__marker *mk, const struct rudo__root_task *t);
/* After marking (minor or major): every card of a page in use clean
 * again (those of atomic objects are never read and left alone). */
void rudo__cards_clear(rudo__heap *h);
/* The ephemeron fixpoint (world stopped, after the closure; the collector
 * marks alone): marks the values of pending ephemerons whose key is marked
 * now, and what they reach, until a round marks nothing. */
void rudo__mark_ephemerons(rudo__heap *h);
/* Sets key and value of every ephemeron still pending (its key died) to
 * NULL; returns how many. After the last fixpoint. */
uint64_t rudo__mark_ephemerons_clear(rudo__heap *h);
/* Clears the weak slots reported by trace callbacks since the last call
 * whose target is in an unmarked cell (world stopped, markers done);
 * returns the number cleared. Called twice a collection: after the
 * closure (and the ephemeron fixpoint), then after finalization marking;
 * the second call judges the slots reported meanwhile as if finalization
 * had marked nothing (the short rule, rudo.h: rudo_visit_weak). */
uint64_t rudo__mark_weak_clear(rudo__heap *h);
/* Test hook: in the next n collections every deque growth fails (and
 * deques start small), forcing the overflow slow path. */
void rudo__mark_fail_growth(unsigned n);

/* ---- parallel.c ---- */
/* The pool for heap h, created on first use (n from the config). */
rudo__mark_pool *rudo__pool_get(rudo__heap *h);
/* Makes the marker pool if there is none yet and no collection runs:
 * called by a thread about to collect, before it stops the world (the
 * pool's memory and threads are not made with threads stopped).
 * Takes gc_lock. */
void rudo__mark_prepare(rudo__heap *h);
void rudo__pool_destroy(rudo__heap *h);
/* fork handling, called by mutator.c's atfork handlers: hold the pool lock
 * across fork; the child forgets the pool (its threads are gone). */
void rudo__pool_fork_prepare(rudo__heap *h);
void rudo__pool_fork_parent(rudo__heap *h);
void rudo__pool_fork_child(rudo__heap *h);
/* Runs the parallel part of marking: root tasks, then drain, inbox,
 * stealing, until the termination protocol says every marker is out of
 * work. Called by the collector, which is marker 0. */
void rudo__pool_mark(rudo__mark_pool *pool);

#endif
