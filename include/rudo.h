/*
 * rudo.h — the public interface of rudo, a mark-sweep garbage collector for C.
 *
 * rudo manages one process-wide heap. Objects belong to *kinds*: a kind says
 * how the collector finds the pointers inside an object (a trace callback, a
 * pointer-layout bitmap, "every word may be a pointer", or "no pointers").
 * Roots are found conservatively on the stacks and registers of attached
 * threads and (optionally) in the program's static data, and precisely in
 * registered root slots and handles.
 *
 * Conventions used below:
 *  - "Aborts" means: prints "rudo: <function>: <reason>" to stderr and calls
 *    abort(). Misuse that would otherwise corrupt the heap always aborts.
 *  - Functions returning int return 0 on success or one of RUDO_E* (> 0).
 *  - "Attached thread": a thread that called rudo_thread_attach() (or created
 *    the heap) and has not detached. Functions that touch the heap must be
 *    called from an attached thread unless stated otherwise.
 *  - "Waits while a collection runs": called from inside a collection (a
 *    trace or root callback, a gc listener's begin or phase), where the
 *    wait would be for the very collection that runs the caller, such a
 *    function aborts, saying it was called from a trace callback, instead.
 *
 * Names starting with rudo__ are internal: they appear here only because the
 * inline fast paths use them.
 */
#ifndef RUDO_H
#define RUDO_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define RUDO_VERSION_MAJOR 0
#define RUDO_VERSION_MINOR 1
#define RUDO_VERSION_PATCH 0

#if defined(__GNUC__)
#define RUDO_LIKELY(x) __builtin_expect(!!(x), 1)
#define RUDO_UNLIKELY(x) __builtin_expect(!!(x), 0)
#define RUDO_API __attribute__((visibility("default")))
#else
#define RUDO_LIKELY(x) (x)
#define RUDO_UNLIKELY(x) (x)
#define RUDO_API
#endif

/* Error codes returned by functions documented as returning int. */
enum {
    RUDO_OK = 0,
    RUDO_EINVAL = 1,  /* an argument is out of range */
    RUDO_EEXIST = 2,  /* already exists / already attached */
    RUDO_ENOENT = 3,  /* not found (e.g. a root that was never added) */
    RUDO_ENOMEM = 4,  /* the operating system refused memory */
    RUDO_ESTATE = 5,  /* wrong state (e.g. no heap, thread not attached) */
};

/* Returns a static string describing an error code; never NULL.
 * Thread-safe; may be called without a heap. */
RUDO_API const char *rudo_strerror(int err);

/* ------------------------------------------------------------------------ */
/* Heap lifecycle                                                           */
/* ------------------------------------------------------------------------ */

/* Called when an allocation cannot be satisfied even after a full collection.
 * `size` is the requested size. If the handler returns, the allocation
 * returns NULL. The handler may call rudo_collect(); it must not allocate
 * from the rudo heap (an allocation of its that fails too aborts with a
 * message), and it must return: the allocation that called it is still
 * under way (leaving by longjmp leaves the thread unable to detach). */
typedef void (*rudo_oom_fn)(size_t size, void *data);

/* Heap configuration. Fill it with rudo_config_init, then change fields:
 * a zeroed struct is not the default configuration (rudo_heap_create
 * rejects it: its size is 0). The settings, their defaults, ranges and
 * environment variables are defined by one table, in src/gc/options.c;
 * README.md lists them and a test keeps the two in agreement. */
typedef struct rudo_config {
    /* sizeof(rudo_config) as the program was compiled, set by
     * rudo_config_init; do not change it. It lets the struct grow: new
     * fields are only ever added at the end, and a library newer than the
     * program's header reads only the first `size` bytes and keeps the
     * defaults for the fields the program does not know. */
    size_t size;
    /* Bytes allocated before the first automatic collection. Default 4 MiB.
     * Environment override: RUDO_HEAP_INITIAL (bytes; suffix K, M, G). */
    size_t initial_heap;
    /* Upper bound, in bytes, on the pages holding objects (small-object
     * pages and large objects; free pages not yet returned to the OS do not
     * count); 0 = no bound other than the address-space reservation
     * (64 GiB). Any value at or above the reservation (SIZE_MAX included)
     * means the same. Environment override: RUDO_HEAP_MAX (digits with an
     * optional K, M or G suffix; a sign or a blank is rejected). */
    size_t max_heap;
    /* Heap-growth policy: an automatic collection starts when the bytes
     * allocated since the last collection exceed
     *     max(initial_heap, min(live * growth, live + growth_limit))
     * where live is the live bytes after the last collection. Larger growth
     * trades memory for fewer collections. Default 1.25; must be above 0
     * and at most 1000 (RUDO_EINVAL otherwise). Environment override:
     * RUDO_GROWTH. */
    double growth;
    /* Bounds how far the allocation between collections may exceed the live
     * size, in bytes (see growth): large heaps then collect at about
     * live + growth_limit, which keeps them compact. 0 = no bound. Default
     * 16 MiB. Environment override: RUDO_GROWTH_LIMIT. */
    size_t growth_limit;
    /* Scan the writable static data of the program and its shared libraries
     * conservatively (found as rudo_static_segments finds them: a thread
     * stopped holding the dynamic loader's lock does not hold up the
     * collection). Default true. */
    bool scan_static_data;
    /* Scan attached threads' stacks, registers and static thread-local
     * storage (__thread variables of the modules loaded when the thread
     * attached) conservatively. Default true. A runtime that roots every
     * pointer precisely may turn it off. */
    bool scan_stacks;
    /* Number of markers, 1 to 1024; 0 = number of online CPUs (at most
     * 1024). 1 marks on the collecting thread alone; N > 1 adds N-1 marker
     * threads, created at the first collection and parked between
     * collections. Environment override: RUDO_MARKERS. */
    unsigned markers;
    /* Parallel-marking switches (docs/marking.md), each overridden by its
     * environment variable set to 0 or 1: an idle marker steals from a
     * random other marker's deque (mark_steal, RUDO_STEAL; default true);
     * markers hand each other work in batches through inboxes (mark_inbox,
     * RUDO_INBOX; default true); a marker sends an object on a page that
     * another marker owns (page owner mod markers) to that marker's inbox
     * (mark_route, RUDO_ROUTE; default false; needs mark_inbox). */
    bool mark_steal;
    bool mark_inbox;
    bool mark_route;
    /* Objects per inbox transfer (1 to 65536; default 512). Environment
     * override: RUDO_MARK_BATCH. */
    unsigned mark_batch;
    /* Number of collections an empty page stays in the heap's free pool
     * before its memory is returned to the operating system (madvise).
     * Default 2. Then only the free pages beyond the most pages in use at
     * any of the last 4 collections are returned, so that memory needed
     * again next cycle is not released and faulted back in; 0 returns
     * every freed page at once. */
    unsigned release_delay;
    /* Out-of-memory handler (may be NULL) and its argument. */
    rudo_oom_fn on_oom;
    void *oom_data;
    /* Generational mode (docs/design.md, "Generations"). Default false:
     * it is a contract. With it on, every store of a heap pointer into an
     * object of a layout, callback or ephemeron kind must go through
     * rudo_write (or be followed by rudo_write_range); a store that skips
     * the barrier can make a minor collection free a reachable object.
     * Conservative and atomic kinds, roots, handles and registered ranges
     * need no barrier. Off, the barrier still marks cards (nobody reads
     * them): same cost, so a program keeps it either way. Environment
     * override: RUDO_GENERATIONAL (0 or 1), for A/B runs of a program that
     * uses the barrier. */
    bool generational;
    /* Generational mode: bytes allocated between minor collections (the
     * nursery), per allocating thread unless nursery_per_thread is false;
     * nursery_adapt may enlarge it. Default 8 MiB; 0 = the default.
     * Environment override: RUDO_NURSERY. */
    size_t nursery;
    /* Generational mode: let the nursery grow while most of it survives
     * minor collections, up to the trigger of the non-generational policy,
     * and shrink back (docs/design.md). Default true: throughput. false
     * keeps it at `nursery`, which bounds minor pauses by what a nursery
     * can promote. Environment override: RUDO_NURSERY_ADAPT (0 or 1). */
    bool nursery_adapt;
    /* Generational mode: the nursery is per allocating thread. After each
     * collection it is at least `nursery` times the number of threads
     * that shared the allocation of the cycle just ended (sum^2 / sum of
     * squares of the bytes each charged: 1 for one thread or one that did
     * nearly all of it, N for N threads allocating alike), at most the
     * online CPUs; the adaptive nursery (nursery_adapt) can make it larger
     * still. Default true. With one shared nursery, N threads each
     * allocate 1/N of it between minor collections, so what each has
     * built and still holds is promoted N times as often: more promotion,
     * more majors. false keeps one nursery for all threads (smaller heap,
     * more minors). Environment override: RUDO_NURSERY_PER_THREAD (0 or
     * 1). */
    bool nursery_per_thread;
    /* Generational mode: a goal for the pause of a minor collection, in
     * microseconds; 0 (the default) sets none. A minor collection's pause
     * is mostly the marking of what survives it, so it grows with the
     * nursery when much survives. With a goal, after each minor
     * collection the nursery is capped at the size whose pause, at the
     * pause per nursery byte measured so far (averaged over minors), meets
     * the goal with an eighth to spare (pauses scatter around the size's
     * prediction; aimed at the goal itself, half of them exceeded it);
     * the cap may go below `nursery`, down to nursery / 16 (at
     * least 256 KiB), and it also caps the nursery that a max_heap budget
     * would otherwise enlarge. A smaller nursery means more minor
     * collections: shorter pauses for some throughput where most young
     * objects survive. At most 10 000 000 (10 s). Environment override:
     * RUDO_MINOR_PAUSE_GOAL_US. */
    unsigned minor_pause_goal_us;
    /* Generational mode: a major (full) collection replaces the next minor
     * one when the old data (live after a minor collection, dead old
     * objects included) exceeds major_growth times the live bytes after
     * the last major one, or initial_heap if that is larger. With max_heap
     * set, when the old data and two nurseries no longer fit under it
     * instead. At least 1, at most 1000; default 1.5. Environment
     * override: RUDO_MAJOR_GROWTH. */
    double major_growth;
    /* Whether a conservative word (stacks, registers, static data, root
     * ranges, objects of conservative kinds) pointing inside an object
     * keeps it alive. Default true. false: only a word holding the
     * object's base, or its base plus a registered displacement
     * (rudo_register_displacement), does (bdwgc's GC_all_interior_pointers
     * = 0): less garbage retained by stray words, but a program must keep
     * base pointers where the collector looks. Precise slots (root slots,
     * handles, layout and callback kinds) are not affected; see
     * RUDO_KIND_BASE_ONLY for those. Environment override:
     * RUDO_INTERIOR_POINTERS (0 or 1). */
    bool interior_pointers;
    /* Signal suspension (docs/threads.md, "Threads that do not poll"). A
     * collection first waits for threads to stop at safepoints; an attached
     * thread still running signal_stop_ms milliseconds after the request
     * (default 2; 0 = at once; at most 3600000), and a thread attached
     * with RUDO_ATTACH_SIGNAL at once, is suspended with suspend_signal
     * (default 30, SIGPWR; 0 = never: stopping is cooperative only) and
     * resumed with restart_signal (default 24, SIGXCPU); both 1 to 64 and
     * different, not SIGKILL, SIGSTOP or a fault signal (SIGSEGV, SIGBUS,
     * SIGILL, SIGFPE, SIGTRAP, SIGABRT), else RUDO_EINVAL. rudo installs
     * handlers for both at heap creation (replacing the program's) and
     * leaves them installed. With scan_stacks false no thread is ever
     * suspended by signal (a precise runtime roots its pointers at
     * safepoints, not at every instruction). Environment overrides:
     * RUDO_SIGNAL_STOP_MS, RUDO_SUSPEND_SIGNAL, RUDO_RESTART_SIGNAL. */
    unsigned suspend_signal;
    unsigned restart_signal;
    unsigned signal_stop_ms;
} rudo_config;

/* Fills *cfg with the defaults described above, and cfg->size with
 * sizeof(rudo_config). Aborts with a message if cfg is NULL. Thread-safe;
 * may be called without a heap. */
RUDO_API void rudo_config_init(rudo_config *cfg);

/* Creates the process-wide heap from *cfg (NULL = defaults), then applies the
 * environment overrides, and attaches the calling thread. Only the first
 * cfg->size bytes of *cfg are read (see rudo_config.size).
 * Returns RUDO_OK; RUDO_EEXIST if a heap already exists; RUDO_EINVAL if a
 * config value or environment variable is invalid (a message names it), or
 * if cfg->size is 0 (the struct did not go through rudo_config_init) or
 * larger than this library's rudo_config (a newer header than the library);
 * RUDO_ENOMEM if the address space cannot be reserved.
 * Thread-safe against itself: of threads creating at once, one creates the
 * heap and the others get RUDO_EEXIST (and stay unattached). Not
 * thread-safe with respect to rudo_heap_destroy(). */
RUDO_API int rudo_heap_create(const rudo_config *cfg);

/* Destroys the heap: every object becomes invalid, no finalizer runs, every
 * mapping the heap made is released. No other thread may be attached
 * (aborts otherwise); the caller may be attached or not. Aborts too if called from inside a
 * collection (a trace or root callback, a listener's begin or phase), or
 * from a finalizer or collection callback while the allocation, collection
 * or rudo_run_finalizers call that ran it is under way (it uses the heap
 * when that code returns). A new heap may be created afterwards.
 * Not thread-safe: no other thread may call rudo (not even the calls that
 * need no attached thread) during or after it, until a new heap exists. */
RUDO_API void rudo_heap_destroy(void);

/* True if a heap exists: from the return of a successful rudo_heap_create
 * (false while one is still under way) to rudo_heap_destroy. Thread-safe. */
RUDO_API bool rudo_heap_exists(void);

/* ------------------------------------------------------------------------ */
/* Kinds                                                                    */
/* ------------------------------------------------------------------------ */

/* A kind handle. Kinds live as long as the heap. */
typedef uint32_t rudo_kind;

#define RUDO_MAX_KINDS 1024u

/* Two kinds exist in every heap: */
#define RUDO_KIND_CONSERVATIVE ((rudo_kind)0) /* every word may be a pointer */
#define RUDO_KIND_ATOMIC ((rudo_kind)1)       /* no pointers */

typedef struct rudo_tracer rudo_tracer;

/* A trace callback: must call rudo_visit(tr, &field) for every field of `obj`
 * that may hold a pointer to a heap object (NULL is allowed; values that do
 * not point into the heap are ignored, so tagged integers are harmless).
 * `size` is the object's usable size. It runs during a collection, with the
 * world stopped, on the collecting thread or on a marker thread, possibly
 * at the same time as other trace calls on other objects: it must not
 * allocate, collect, write the heap, or take locks that mutators hold. It is
 * only ever called on an object allocated with this kind. */
typedef void (*rudo_trace_fn)(void *obj, size_t size, rudo_tracer *tr);

/* A finalizer: runs once, after the collection that found `obj` unreachable,
 * outside every collector lock, on an attached thread that has just
 * finished or waited for a collection (one thread runs finalizers at a
 * time; a thread already running them runs the new ones too).
 * It may read the object and everything it references, and may allocate.
 * Objects reachable from a finalizable object are kept until its finalizer
 * has run; if the finalizer stores `obj` somewhere reachable, it lives on
 * but is not finalized again. Finalizable objects that become unreachable
 * together (one referencing another, cycles included) are all finalized
 * after the same collection, in no particular order: a finalizer may see
 * objects whose own finalizer has already run (they are still intact). */
typedef void (*rudo_finalize_fn)(void *obj, void *data);

typedef enum rudo_tracing {
    RUDO_TRACE_CONSERVATIVE = 0, /* every aligned word may be a pointer */
    RUDO_TRACE_ATOMIC = 1,       /* contains no pointers */
    RUDO_TRACE_CALLBACK = 2,     /* `trace` visits the pointer fields */
    RUDO_TRACE_LAYOUT = 3,       /* `layout` marks the pointer words */
    RUDO_TRACE_EPHEMERON = 4,    /* a rudo_ephemeron: see rudo_kind_ephemeron */
} rudo_tracing;

/* The start of every object of an ephemeron kind. The value is traced only
 * while the key is reachable from elsewhere (from roots, other objects,
 * other ephemerons' values, but not through this ephemeron's own value).
 * When a collection finds the key unreachable, it sets both fields to NULL:
 * a table of ephemerons skips entries whose key is NULL. A key that is
 * kept for its finalizer counts as reachable in that collection: key and
 * value stay until the collection that reclaims the key. The fields are
 * plain memory: read and write them directly (reads between safepoints are
 * stable, as for weak slots); a key or value that does not point into the
 * heap counts as reachable. docs/marking.md, "Ephemerons". */
typedef struct rudo_ephemeron {
    void *key;
    void *value;
} rudo_ephemeron;

typedef struct rudo_kind_desc {
    const char *name;        /* used in messages and statistics; copied
                              * (at most 47 characters are kept) */
    rudo_tracing tracing;
    rudo_trace_fn trace;     /* RUDO_TRACE_CALLBACK */
    /* RUDO_TRACE_LAYOUT: bit i of layout[i / 64] set = word i holds a
     * pointer, for words 0 .. layout_words-1 (1 to 1024 words). An object
     * larger than the layout is treated as an array of such structs: the
     * layout repeats every layout_words words. */
    const uint64_t *layout;
    size_t layout_words;
    rudo_finalize_fn finalize; /* optional (rudo_kind_set_finalizer) */
    void *finalize_data;       /* its `data` argument */
} rudo_kind_desc;

/* Registers a kind. Returns the handle, or aborts if: no heap exists, desc
 * is NULL, the name is NULL, the tracing mode is unknown, a callback kind has
 * no trace function, a layout kind has no layout or a bad word count, or
 * RUDO_MAX_KINDS kinds exist.
 * Thread-safe: any thread, attached or not, may call it while other threads
 * allocate, collect, register kinds or change finalizers (it takes the heap
 * lock briefly and never waits for a collection). The kind is complete when
 * the call returns: a thread that gets the handle from the registering
 * thread through synchronisation (a lock, a release store read by an
 * acquire load, pthread_create, ...) may use it at once. */
RUDO_API rudo_kind rudo_kind_register(const rudo_kind_desc *desc);

/* Kind flags for rudo_kind_register_flags. */
/* The kind's pointer fields (its layout's words, or the slots its trace
 * callback visits) hold only base pointers of objects, or values that are
 * not heap pointers: a value pointing inside an object, not at its start,
 * is ignored, and its object is not kept alive by this field. Marking
 * then checks that the value is a cell's start and skips the walk from an
 * interior address to its object (docs/performance.md, "Base-pointer-only
 * marking"). For RUDO_TRACE_LAYOUT and RUDO_TRACE_CALLBACK kinds only. */
#define RUDO_KIND_BASE_ONLY 1u
/* The kind's objects are not zeroed: rudo_alloc returns them with
 * unspecified contents (what a dead object of the kind left there, or
 * zeros), as bdwgc's GC_malloc_atomic and malloc do. The collector then
 * skips zeroing the kind's dead cells and recycled pages: for a program
 * that fills its buffers itself, memory written once instead of twice.
 * For RUDO_TRACE_ATOMIC kinds only: a traced object must start zeroed, so
 * that a collection running before the program has filled it sees only
 * NULL or valid pointers. rudo_realloc to a larger size leaves the part
 * beyond the old object unspecified too. */
#define RUDO_KIND_UNINIT 2u

/* As rudo_kind_register, with flags (RUDO_KIND_* above, or 0). Aborts as
 * rudo_kind_register, and if flags has an unknown bit, RUDO_KIND_BASE_ONLY
 * is given for a kind that is not a layout or callback kind, or
 * RUDO_KIND_UNINIT for a kind that is not RUDO_TRACE_ATOMIC. Thread-safe,
 * as rudo_kind_register. */
RUDO_API rudo_kind rudo_kind_register_flags(const rudo_kind_desc *desc,
                                            unsigned flags);

/* Shorthands for rudo_kind_register; thread-safe as it is. */
RUDO_API rudo_kind rudo_kind_traced(const char *name, rudo_trace_fn trace);
RUDO_API rudo_kind rudo_kind_layout(const char *name, size_t words,
                                    const uint64_t *layout);
RUDO_API rudo_kind rudo_kind_conservative(const char *name);
RUDO_API rudo_kind rudo_kind_atomic(const char *name);
/* An ephemeron kind (RUDO_TRACE_EPHEMERON): its objects begin with a
 * rudo_ephemeron; allocate them with at least sizeof(rudo_ephemeron)
 * bytes. Words after the two fields are not traced. Thread-safe, as
 * rudo_kind_register. */
RUDO_API rudo_kind rudo_kind_ephemeron(const char *name);

/* Sets (or clears, with fn NULL) the finalizer of a kind and its `data`
 * argument. Objects allocated before the call are affected too. Aborts on
 * an unknown kind. Each distinct (fn, data) pair ever set keeps a small
 * record until the heap is destroyed (setting a pair again reuses it).
 * Thread-safe: any thread, attached or not, may call it at any time,
 * concurrently with allocation, collections, running finalizers and other
 * calls on the same kind. The pair changes atomically: a finalizer is
 * always called with the data given together with it, never another
 * call's. Which pair applies to an object:
 *  - a collection finds an unreachable object due for finalization if its
 *    kind has a finalizer when the collector examines the object's page
 *    (a change made during that collection may or may not be seen);
 *  - the pair that runs is the one in effect when the finalizer is run,
 *    not the one of the collection that found the object: a due object
 *    whose kind's finalizer was changed in between runs the new pair, and
 *    one whose kind's finalizer was cleared is not finalized (its memory is
 *    reclaimed as if it had been finalized). While the queue runs, a call
 *    applies to every finalizer started after the call returns; one
 *    started during the call runs the old pair or the new one. */
RUDO_API void rudo_kind_set_finalizer(rudo_kind kind, rudo_finalize_fn fn,
                                      void *data);

/* Per-object finalizers. rudo_finalizer_register gives the object whose
 * base is obj a finalizer of its own, called once (as a kind's finalizer,
 * rudo_finalize_fn) after the collection that finds obj unreachable; the
 * registration then ends. An object has at most one registration (a
 * finalizer or a guardian): RUDO_EEXIST otherwise. Objects that die
 * together are finalized after the same collection, in no particular
 * order (unordered, Java-style: a finalizer may see objects whose
 * finalizer already ran, intact). A kind's finalizer, if any, runs too.
 * The object and what it reaches stay intact until the finalizer returns;
 * a finalizer that stores obj somewhere reachable resurrects it (it is not
 * finalized again unless registered again). Weak slots to obj: short ones
 * are NULL when the finalizer runs, long ones still point to it.
 * rudo_finalizer_unregister ends a registration (RUDO_OK, or RUDO_ENOENT).
 * Both abort if obj is NULL or not the base of a heap object, or fn is
 * NULL; both wait while a collection runs. Thread-safe. */
RUDO_API int rudo_finalizer_register(void *obj, rudo_finalize_fn fn, void *data);
/* As rudo_finalizer_register, ordered (bdwgc's default order): if A
 * refers to B (directly or not) and both die, A is finalized first and B
 * is kept until a later collection finds it unreachable with nothing
 * dying that refers to it: an ordered object waits while any dying
 * finalizable object (ordered or not) refers to it; an unordered one
 * never waits. What an ordered object refers to stays allocated while it
 * waits. Cycles: an object that reaches itself (a cycle through any
 * objects, itself included) is never finalized and never reclaimed while
 * so registered, as in bdwgc; rudo_gc_event.ordered_cycles counts, per
 * collection, the cycles found (through the first member looked at), and
 * the program breaks the cycle or unregisters. Thread-safe, and aborts,
 * as rudo_finalizer_register. */
RUDO_API int rudo_finalizer_register_ordered(void *obj, rudo_finalize_fn fn,
                                             void *data);
/* As rudo_finalizer_register_ordered, except that obj's own pointers into
 * itself (to its base or inside it) do not count (bdwgc's
 * GC_register_finalizer_ignore_self): an object whose only cycle is a
 * pointer to itself is finalized; a cycle through another object still
 * keeps it, as above. For kinds traced by a callback, the slots it visits
 * are what counts as "its own pointers". Thread-safe, and aborts, as
 * rudo_finalizer_register. */
RUDO_API int rudo_finalizer_register_ignore_self(void *obj, rudo_finalize_fn fn,
                                                 void *data);
/* Ends obj's registration (see rudo_finalizer_register): RUDO_OK, or
 * RUDO_ENOENT if it has none. Thread-safe; waits while a collection runs. */
RUDO_API int rudo_finalizer_unregister(void *obj);

/* Guardians (Chez Scheme's): register objects with a guardian, and later
 * poll it for those that became unreachable. No callback runs: the
 * collector keeps such an object alive (a root of the guardian) until
 * rudo_guardian_poll hands it back; from then on it is an ordinary object,
 * and dies when unreachable again (register it again to be told again).
 * An object has at most one registration (see rudo_finalizer_register).
 * rudo_guardian_new returns NULL if memory is short. rudo_guardian_poll
 * returns one object or NULL; it needs an attached thread, as the object
 * must be held where the collector sees it. Destroying a guardian drops
 * its registrations and the objects it has not handed back. Abort on a
 * NULL guardian, on one destroyed already or not made by
 * rudo_guardian_new (with a message naming the call: destroying a
 * guardian twice is a message, not a use after free), or on obj as
 * rudo_finalizer_register. Thread-safe. */
typedef struct rudo_guardian rudo_guardian;
RUDO_API rudo_guardian *rudo_guardian_new(void);
RUDO_API void rudo_guardian_destroy(rudo_guardian *g);
RUDO_API int rudo_guardian_register(rudo_guardian *g, void *obj);
RUDO_API void *rudo_guardian_poll(rudo_guardian *g);

/* When finalizers run. By default, right after each collection, on the
 * collecting thread (see rudo_finalize_fn). With on_demand true they run
 * only when the program calls rudo_run_finalizers, on the calling thread
 * (for runtimes with a finalizer thread of their own); notify, if not
 * NULL, is then called on the collecting thread, outside every lock, after
 * a collection that found finalizers due (it must not allocate; typically
 * it wakes the finalizer thread). Guardians are filled by the same runs.
 * In on-demand mode, objects waiting for their finalizer stay allocated
 * until it runs: run them, or allocation may fail when the heap is full.
 * Thread-safe; waits while a collection runs. */
RUDO_API void rudo_set_finalization(bool on_demand, void (*notify)(void *data),
                                    void *data);
/* Runs the due finalizers (and fills guardians) on the calling thread;
 * returns how many ran (0 if another thread is running them). Aborts if
 * the thread is not attached or runs a trace callback. Thread-safe: one
 * thread at a time runs finalizers; the others' calls return 0. */
RUDO_API size_t rudo_run_finalizers(void);

/* The kind's name (as stored: at most 47 characters), valid until the heap
 * is destroyed. Aborts on an unknown kind. Thread-safe: any thread,
 * attached or not; the name never changes. */
RUDO_API const char *rudo_kind_name(rudo_kind kind);

/* ------------------------------------------------------------------------ */
/* Tracing (for trace callbacks)                                            */
/* ------------------------------------------------------------------------ */

/* The visible part of a tracer; the collector's own state follows it. */
struct rudo_tracer {
    void ***rudo__cur; /* next free entry of the slot buffer */
    void ***rudo__end; /* end of the slot buffer */
    void (*rudo__flush)(rudo_tracer *tr); /* empties the buffer */
    void (*rudo__weak)(rudo_tracer *tr, void **slot); /* a weak slot */
    void (*rudo__value)(rudo_tracer *tr, void *value); /* rudo_visit_value */
    void (*rudo__range)(rudo_tracer *tr, void *lo, void *hi); /* rudo_visit_range */
    void (*rudo__mark_only)(rudo_tracer *tr, const void *p); /* rudo_visit_mark_only */
};

RUDO_API void rudo__tracer_flush(rudo_tracer *tr);

/* Reports one slot of the object being traced. Cheap: the slot address is
 * buffered and processed after the callback returns. Thread-safety: call
 * it only from the trace or root callback that was given tr, on the
 * thread running it; callbacks on several markers run at once, each with
 * its own tracer. */
static inline void rudo_visit(rudo_tracer *tr, void **slot) {
    if (*slot == NULL)
        return;
    if (RUDO_UNLIKELY(tr->rudo__cur == tr->rudo__end))
        rudo__tracer_flush(tr);
    *tr->rudo__cur++ = slot;
}

/* Reports one weak slot of the object being traced: the collector does not
 * mark through it, and sets it to NULL at the end of marking if its target
 * was not found reachable otherwise (the short weak rule of
 * rudo_weak_register). For weak tables without a registration per entry.
 * The object being traced is live, so the slot stays valid. NULL and
 * non-heap values are left alone. Call only from a trace callback. */
/* (Thread-safety: as rudo_visit.) */
static inline void rudo_visit_weak(rudo_tracer *tr, void **slot) {
    if (*slot != NULL)
        tr->rudo__weak(tr, slot);
}

/* Values and ranges, for callers that compute references instead of
 * holding them in slots (a bdwgc mark procedure, which decodes its own
 * fields and calls GC_mark_and_push; a root callback that scans a block
 * of memory it owns). Both mark at once (nothing is buffered), with the
 * rule of a conservative word: any address inside an object keeps it
 * alive, or, with rudo_config.interior_pointers false, only its base or
 * base plus a registered displacement (RUDO_KIND_BASE_ONLY does not
 * apply). Values that do not point into an allocated heap object (NULL,
 * integers, junk, addresses of free cells) are ignored: no value can
 * make the collector fault. In generational mode the program still owes
 * rudo_write for the slots these values came from; the verifier's card
 * check (RUDO_VERIFY) cannot see slots here and skips them.
 *
 * rudo_visit_value reports one value. rudo_visit_range scans [lo, hi)
 * as a conservative range: every aligned word inside it is reported as
 * rudo_visit_value would (a partial word at either end is ignored; lo >=
 * hi reports nothing). The memory must be readable until the call
 * returns; it is read during the call only.
 * Thread-safety: as rudo_visit (only from the trace or root callback
 * given tr, on its thread). */
static inline void rudo_visit_value(rudo_tracer *tr, void *value) {
    if (value != NULL)
        tr->rudo__value(tr, value);
}
static inline void rudo_visit_range(rudo_tracer *tr, const void *lo,
                                    const void *hi) {
    if ((const char *)lo < (const char *)hi)
        tr->rudo__range(tr, (void *)(uintptr_t)lo, (void *)(uintptr_t)hi);
}

/* True if p points into (or at) an allocated heap object that the
 * running collection has marked so far (bdwgc's GC_is_marked during
 * marking). Marks made by other markers at the same time may not be seen
 * yet; an object this marker marked, or that was marked before the
 * callback began (by the roots it follows, by earlier trace calls of the
 * same marker), is. False for NULL and non-heap addresses. Thread-safety:
 * as rudo_visit (only from a trace or root callback; tr is the one it
 * was given). */
RUDO_API bool rudo_visit_is_marked(rudo_tracer *tr, const void *p);
/* Marks the allocated heap object p points into (or at) without tracing
 * it: it survives this collection, but nothing it refers to is kept on
 * its account (bdwgc's GC_set_mark_bit during marking). For an object
 * whose live part the caller reports itself (an interpreter stack above
 * its top holds stale words); marked before anything else reaches it
 * only from a rudo_root_callback_add_first callback. The caller owes the
 * referents it needs: the others may be freed, and the object then holds
 * dangling words (the verifier, RUDO_VERIFY, reports such an object as
 * "holds an allocated but unmarked object"). An object marked already
 * (and so traced) stays so. NULL, non-heap addresses and free cells are
 * ignored. Thread-safety: as rudo_visit (only from a trace or root
 * callback given tr, on its thread). */
static inline void rudo_visit_mark_only(rudo_tracer *tr, const void *p) {
    if (p != NULL)
        tr->rudo__mark_only(tr, p);
}

/* ------------------------------------------------------------------------ */
/* Allocation                                                               */
/* ------------------------------------------------------------------------ */

/* Objects up to RUDO_SMALL_MAX bytes live in pages of one size class and one
 * kind; larger ones in the large-object space. */
#define RUDO_GRANULE 16u
#define RUDO_SMALL_MAX 32768u

/* Per-thread state the inline fast paths read (internal). */
struct rudo__mutator_fast {
    void **lists[RUDO_MAX_KINDS]; /* per kind: free-list head per size class */
    /* Scoped handles (src/threads/handles.c): the thread's newest chunk of
     * handle slots is [hbase, hlimit); the slots [hbase, hnext) are in use
     * (every older chunk is full). All NULL until the first scope, and in
     * the state of a blocking region: the fast paths then call out. */
    void **hnext;
    void **hbase;
    void **hlimit;
    unsigned hdepth;              /* open scopes */
};
extern __thread struct rudo__mutator_fast *rudo__tl
    __attribute__((tls_model("initial-exec")));
extern RUDO_API const uint8_t rudo__class_of_granules[RUDO_SMALL_MAX / RUDO_GRANULE + 1];

RUDO_API void *rudo__alloc_slow(rudo_kind kind, size_t size);
/* Nonzero while a collection waits for threads to stop (internal). */
extern RUDO_API int rudo__stop_requested;


/* Allocates `size` bytes of kind `kind`: zeroed (but for a
 * RUDO_KIND_UNINIT kind), aligned to 16 bytes. May run a collection
 * (a safepoint).
 * Returns NULL, after calling the OOM handler, only when the heap is full:
 * after a full collection that this allocation ran or waited for, which
 * found no finalizer due (finalizable garbage is finalized and collected
 * again first), the live data (counted in pages, as densely as its size
 * classes pack it) plus the request exceed max_heap (or the reservation).
 * A request that can never fit (larger than max_heap or the reservation,
 * SIZE_MAX included) returns NULL at once, without a collection. When the
 * free room cannot serve the request (it lies in partly used pages of
 * other size classes, or no free span is long enough for a large object),
 * the allocation gives up after 64 collections (8 for a large object)
 * that did not make room.
 * Aborts if: no heap, the thread is not attached, the thread is in a
 * blocking region or in a trace callback, size is 0, or the kind is
 * unknown. Thread-safe. */
static inline void *rudo_alloc(rudo_kind kind, size_t size) {
    struct rudo__mutator_fast *t = rudo__tl;
    /* A pending stop sends the allocation to the slow path, a safepoint,
     * so an allocating thread stops within one allocation (relaxed: see
     * rudo_safepoint). */
    if (RUDO_LIKELY(t != NULL && size - 1 < RUDO_SMALL_MAX &&
                    kind < RUDO_MAX_KINDS &&
                    !__atomic_load_n(&rudo__stop_requested, __ATOMIC_RELAXED))) {
        void **lists = t->lists[kind];
        if (RUDO_LIKELY(lists != NULL)) {
            unsigned cls = rudo__class_of_granules[(size + RUDO_GRANULE - 1) /
                                                   RUDO_GRANULE];
            void **cell = (void **)lists[cls];
            if (RUDO_LIKELY(cell != NULL)) {
                /* The link is cleared before the head moves past the
                 * cell, and the compiler may not swap the two stores: a
                 * collection that suspends the thread by signal between
                 * any two instructions then finds the cell either still
                 * at the head (free) or below it and all zero, never a
                 * new object holding the link (docs/threads.md). */
                void *next = *cell;
                *cell = NULL;
                __atomic_signal_fence(__ATOMIC_SEQ_CST);
                lists[cls] = next;
                return cell;
            }
        }
    }
    return rudo__alloc_slow(kind, size);
}

/* Allocates n * elem_size bytes as rudo_alloc does; aborts if the product
 * overflows or is 0 (messages here, and for the caller's misuse, name
 * rudo_alloc_array). Thread-safe, as rudo_alloc. */
RUDO_API void *rudo_alloc_array(rudo_kind kind, size_t n, size_t elem_size);

/* Allocates as rudo_alloc, aligned to `align`, a power of two up to the
 * page size (64 KiB); the object may be larger than asked (rudo_size).
 * Aborts on another alignment or size 0, and as rudo_alloc. Thread-safe,
 * as rudo_alloc. */
RUDO_API void *rudo_alloc_aligned(rudo_kind kind, size_t size, size_t align);

/* ------------------------------------------------------------------------ */
/* The write barrier (generational mode)                                    */
/* ------------------------------------------------------------------------ */

/* The heap is cut into cards of 2^RUDO_CARD_SHIFT bytes, with a byte each
 * in a card table. The barrier marks the card of the slot written; a minor
 * collection scans the old objects on dirty cards (docs/design.md). */
#define RUDO_CARD_SHIFT 9u
/* What the inline barrier reads (internal): the heap's card table and the
 * mask of its indices. The heap's range is a power of two aligned to its
 * size, so (address >> RUDO_CARD_SHIFT) & mask is the card of an address in
 * the heap, and some card of the table for any other address: no range
 * check is needed, and a slot outside the heap only dirties a card for
 * nothing. Without a heap the table is one byte (mask 0). */
struct rudo__barrier {
    uint8_t *cards;
    uintptr_t mask;
};
extern RUDO_API struct rudo__barrier rudo__barrier;

/* Marks the card holding address `slot` dirty (internal). Relaxed: the
 * collector reads the cards only with the world stopped, and the stop
 * handshake (locks) orders the stores before its reads; two threads that
 * mark the same card store the same byte. */
static inline void rudo__card_mark(const void *slot) {
    __atomic_store_n(&rudo__barrier.cards[((uintptr_t)slot >> RUDO_CARD_SHIFT) &
                                          rudo__barrier.mask],
                     1, __ATOMIC_RELAXED);
}

/* Stores `value` into `slot`, a pointer field of heap object `obj`, and
 * records the store for the next minor collection (the write barrier).
 * Needed, in generational mode (rudo_config.generational), for every
 * store of a heap pointer into an object of a layout, callback or
 * ephemeron kind, except the stores into an object made since the
 * calling thread's last allocation or safepoint (no collection can have
 * made it old yet). Not needed for conservative or atomic kinds, roots,
 * handles and registered ranges, or when the mode is off; harmless then.
 * Without it, a minor collection may free an object reachable only
 * through the slot (the verifier, RUDO_VERIFY=1, reports such a store,
 * naming the object and the slot). `obj` is not read: it documents the
 * store and leaves room for object-logging barriers. Cost: the store, two
 * loads, a shift, a mask and a byte store, with no branch
 * (docs/performance.md). A slot outside the heap (a static, a stack) is
 * stored to; at worst it dirties a card for nothing.
 * The card is marked before the store: a thread suspended by signal
 * between the two still holds the value (the collection scans its
 * registers), and its card is dirty. The other order left a window in
 * which the value was only in an old object on a clean card, and a minor
 * collection freed it (a helper's repro). Release: the compiler may not
 * move the card's store below the slot's (on x86-64 both stay plain
 * moves; no fence instruction).
 * Thread-safe as the store itself is: the caller orders concurrent stores
 * to the same slot. */
static inline void rudo_write(void *obj, void **slot, void *value) {
    (void)obj;
    rudo__card_mark(slot);
    __atomic_store_n(slot, value, __ATOMIC_RELEASE);
}

/* Records that pointers were stored into [start, start + len) of heap
 * object `obj` by other means (memcpy, a loop of plain stores): the
 * barrier for bulk copies, called after them and before the thread's next
 * allocation or safepoint. len 0 does nothing. Aborts if the range is not
 * inside obj (in a generational heap). A thread that can be suspended by
 * signal (docs/threads.md) may be stopped between the stores and this
 * call: until it returns, the young objects stored must also be reachable
 * from what the collector scans (the copy's source, if it is a heap object
 * or on the stack, or the thread's registers); for values held nowhere
 * else, use rudo_write. Thread-safe. */
RUDO_API void rudo_write_range(void *obj, void *start, size_t len);

/* Conservative and atomic allocation without naming a kind (bdwgc's
 * GC_MALLOC and GC_MALLOC_ATOMIC). Thread-safe, as rudo_alloc. */
static inline void *rudo_malloc(size_t size) {
    return rudo_alloc(RUDO_KIND_CONSERVATIVE, size);
}
static inline void *rudo_malloc_atomic(size_t size) {
    return rudo_alloc(RUDO_KIND_ATOMIC, size);
}

/* Resizes an object of any kind: returns an object of the same kind and at
 * least `size` bytes whose first min(old, new) bytes are the old contents
 * (the rest zeroed, so a trace callback or layout sees only valid or NULL
 * slots; unspecified for a RUDO_KIND_UNINIT kind). It may be `obj` itself
 * when it already has room (its tail past `size` is zeroed then).
 * Otherwise it is a new object: the old one stays as it was, alive while
 * anything refers to it, and the program must make its references (and
 * any registered roots, weak slots or finalizer registrations) refer to
 * the new one. obj == NULL behaves as rudo_alloc of the conservative
 * kind. Aborts if obj is not the base of a heap object, or size is 0.
 * Returns NULL as rudo_alloc does. Thread-safe, as rudo_alloc; another
 * thread must not write the object during the copy (it would be a race
 * on the object's memory, not on the heap). */
RUDO_API void *rudo_realloc(void *obj, size_t size);

/* Frees an object the program knows is dead, without waiting for a
 * collection to find it unreachable: its memory may be reused by a later
 * allocation, so nothing may refer to it any more (not even a stale copy
 * the program might read). NULL is a no-op.
 *  - A small object on a page that no thread is allocating from is free
 *    at once: the next allocation of its size class may return it. One on
 *    a page some thread is allocating from is zeroed (it keeps nothing
 *    alive) and reclaimed by the next collection. A large object's pages
 *    go back to the heap at once.
 *  - Its kind's finalizer does not run for it, and a per-object finalizer
 *    or guardian registration ends without running (as bdwgc's GC_free).
 *    Weak slots registered inside it are forgotten, as when an object
 *    dies in a collection. Weak slots and ephemerons pointing to it are
 *    not cleared: clear them first, or they may later point to an object
 *    allocated in its place.
 *  - With verification on (RUDO_DEBUG builds, RUDO_VERIFY=1) nothing is
 *    reused before the next collection: the object is kept, its contents
 *    overwritten (with 0xdb bytes; with zeros for trace-callback kinds),
 *    and that collection aborts with "rudo verify: object A (kind K)
 *    still refers to B (kind L), which was freed with rudo_free" if a
 *    reachable heap object still points into it (references from stacks,
 *    registers and root slots are not reported); freeing it twice in that
 *    time aborts ("double free").
 * Aborts if obj is not the base of an allocated object (an interior
 * pointer, a pointer not from rudo, an object freed already and not
 * reused since: a double free is caught except on a page a thread is
 * allocating from), or as rudo_alloc (no heap, thread not attached, in a
 * blocking region or a trace callback). Thread-safe: it takes the heap
 * lock briefly; two threads must not free the same object. */
RUDO_API void rudo_free(void *obj);

/* ------------------------------------------------------------------------ */
/* Roots                                                                    */
/* ------------------------------------------------------------------------ */

/* Registers a precise root: the pointer stored at *slot keeps its object
 * alive until the slot is removed. Adding the same slot twice aborts, as
 * does a NULL slot or one not aligned to a pointer (with a message).
 * Thread-safe. The root functions below wait while a collection runs (an
 * attached caller is then a safepoint), because markers read the
 * registered slots. */
RUDO_API void rudo_root_add(void **slot);

/* Removes a precise root. Returns RUDO_OK, or RUDO_ENOENT (and prints a
 * message naming the function) if the slot was never added. Thread-safe. */
RUDO_API int rudo_root_remove(void **slot);

/* With rudo_config.interior_pointers false: also count a conservative
 * word holding an object's base plus `offset` (0 < offset < 1024, and
 * less than the object's size) as a reference to the object, e.g. for
 * tagged pointers (base + 1) or a header skipped by the program's
 * pointers. Like bdwgc's GC_register_displacement. Registering an offset
 * twice is harmless; it cannot be undone. Returns RUDO_OK, or RUDO_EINVAL
 * (with a message) for offset 0 or 1024 and above. Without the mode the
 * call is accepted and has no effect (every interior address counts).
 * Thread-safe; waits while a collection runs. */
RUDO_API int rudo_register_displacement(size_t offset);

/* Registers the memory [start, end) as a conservative root range (every
 * aligned word may be a pointer), e.g. a malloc'd table. Aborts if
 * start > end, or if a page of the range is not mapped (a system call
 * checks). The range must stay mapped until it is removed. Thread-safe. */
RUDO_API void rudo_root_add_range(void *start, void *end);

/* Removes the range that started at `start`. Returns RUDO_OK or
 * RUDO_ENOENT. Thread-safe. */
RUDO_API int rudo_root_remove_range(void *start);

/* Weak slots (bdwgc's disappearing links). A registered weak slot is a
 * pointer-sized location, in static data, malloc'd memory, a stack that
 * outlives the registration, or a heap object, that does not keep its
 * target alive: when a collection finds the target unreachable, it stores
 * NULL into the slot (docs/design.md, "Weak references"). Unless the slot
 * is a word the collector scans anyway: inside a conservative object (or
 * a registered range, a scanned stack or static data) every word is a
 * root, the slot's among them, and it keeps its target; in an object of a
 * callback or layout kind the slot must be a word the kind does not
 * trace.
 *  - rudo_weak_register: a short weak slot, cleared as soon as the target
 *    is unreachable, before finalizers: a finalizable target's slots are
 *    NULL when its finalizer runs, and stay NULL if the finalizer stores
 *    the object somewhere live.
 *  - rudo_weak_register_long: cleared only when the target is reclaimed:
 *    a target kept for its finalizer keeps its long slots.
 * The slot's value may change at any time (it is the program's); any value
 * that does not point into the heap is left alone. A slot that lies inside
 * a heap object is forgotten when that object dies. Reading a weak slot
 * needs no barrier: collections stop the world cooperatively, so a value
 * read between two safepoints (allocations, rudo_safepoint, blocking
 * regions) is stable, and a non-NULL value read there may be used until
 * the next one.
 * The registration calls wait while a collection runs (an attached caller
 * is then a safepoint); the target (the slot's value when the call begins,
 * or `target`) is kept alive through that wait when stacks are scanned
 * (scan_stacks), and is weak once the call returns. Thread-safe. Return RUDO_OK, or RUDO_EEXIST if the
 * slot is registered already (either way); abort if slot is NULL or not
 * pointer-aligned, or no heap exists. */
RUDO_API int rudo_weak_register(void **slot);
RUDO_API int rudo_weak_register_long(void **slot);
/* As rudo_weak_register / rudo_weak_register_long, with an explicit
 * target: the slot is set to NULL when `target` (an object's address, or
 * any address inside it) is found unreachable (short) or is reclaimed
 * (long), whatever the slot holds: a disguised pointer, a flag, another
 * object (bdwgc's GC_general_register_disappearing_link). The slot's own
 * value is then never looked at. Once cleared the registration ends (the
 * target's memory will be reused); a target that is not in the heap is
 * never cleared. rudo_weak_unregister and rudo_weak_move apply (a move
 * keeps the target). Thread-safe, returns and aborts as rudo_weak_register,
 * and also aborts if target is NULL. */
RUDO_API int rudo_weak_register_target(void **slot, const void *target);
RUDO_API int rudo_weak_register_long_target(void **slot, const void *target);
/* How slot is registered now: 0 (not registered, or forgotten: a cleared
 * slot with an explicit target, or one inside an object that died),
 * RUDO_WEAK_SHORT or RUDO_WEAK_LONG. A collection may forget the slot
 * right after the call returns. Thread-safe; waits while a collection
 * runs. */
#define RUDO_WEAK_SHORT 1
#define RUDO_WEAK_LONG 2
RUDO_API int rudo_weak_registered(void **slot);
/* Forgets a weak slot. RUDO_OK, or RUDO_ENOENT if it was not registered.
 * Thread-safe; waits while a collection runs. */
RUDO_API int rudo_weak_unregister(void **slot);
/* Moves a registration from `from` to `to` (same kind, short or long; the
 * values are not copied). RUDO_OK; RUDO_ENOENT if `from` is not registered;
 * RUDO_EEXIST if `to` already is (nothing changes). Aborts if `to` is NULL
 * or not aligned. Thread-safe; waits while a collection runs. */
RUDO_API int rudo_weak_move(void **from, void **to);

/* Root callbacks, for runtimes whose roots (an interpreter's stack and
 * registers) are best visited precisely. At each collection, with the
 * world stopped, the collector calls fn(tr, data); fn reports each root
 * slot with rudo_visit(tr, &slot), or a weak one with rudo_visit_weak
 * (cleared to NULL if its target dies: the slot must stay valid until the
 * collection ends, i.e. until the thread that owns it runs again).
 * Each callback is a root task of the parallel marking: it runs on one of
 * the marker threads (the collecting thread is one), concurrently with
 * other callbacks and with the marking of other roots, and what it
 * reports is marked by that marker. So callbacks must not write data that
 * another callback reads; reading the stopped threads' data is safe. fn
 * must not allocate, collect, touch the root registry, or take locks that
 * mutators may hold (they are stopped, maybe holding them); such calls
 * from it abort.
 * rudo_root_callback_add returns RUDO_OK, or RUDO_EEXIST for a pair
 * (fn, data) added already; rudo_root_callback_remove RUDO_OK or
 * RUDO_ENOENT (with a message). Both wait while a collection runs. Thread-safe. */
typedef void (*rudo_root_fn)(rudo_tracer *tr, void *data);
RUDO_API int rudo_root_callback_add(rudo_root_fn fn, void *data);
RUDO_API int rudo_root_callback_remove(rudo_root_fn fn, void *data);
/* As rudo_root_callback_add, but fn runs before any other root is
 * visited, alone, on the collecting thread (not concurrently with other
 * callbacks or marking), in the order such callbacks were added: what it
 * marks, with rudo_visit_mark_only above all, is marked before anything
 * else can reach it. Keep it short (it delays the parallel marking).
 * Returns RUDO_OK, or RUDO_EEXIST for a pair (fn, data) added already
 * (by either call); rudo_root_callback_remove removes it. Waits while a
 * collection runs. Thread-safe. */
RUDO_API int rudo_root_callback_add_first(rudo_root_fn fn, void *data);
/* The calling thread's own root callback (one per thread; fn NULL removes
 * it), called as above at each collection, while the thread is stopped or
 * in a blocking region: for roots that live per thread. It ends when the
 * thread detaches. Aborts if the thread is not attached. Thread-safe: it
 * sets the calling thread's own callback, waiting while a collection
 * runs (the collector reads it). */
RUDO_API void rudo_thread_root_callback(rudo_root_fn fn, void *data);

/* The writable static data of the program and its shared libraries (.data
 * and .bss): calls fn(lo, hi, module, data) for each writable loaded
 * segment, module numbering the modules in the loader's order, 0 for the
 * main program. For a root callback that scans static data its own way
 * (scan_static_data off; exclusions, only the main program ...): called
 * there, it does not wait for ever on the dynamic loader's lock held by a
 * thread stopped for the collection (it waits at most 50 ms, then reads
 * the loader's module list without the lock; docs/threads.md, "The
 * static-data scan and the loader's lock"). Aborts if
 * fn is NULL or no heap exists. Thread-safe; from a root callback, or
 * from any thread outside collections (then it is dl_iterate_phdr). */
typedef void (*rudo_segment_fn)(void *lo, void *hi, unsigned module, void *data);
RUDO_API void rudo_static_segments(rudo_segment_fn fn, void *data);

/* Scoped handles, for runtimes that root precisely: a handle is a slot that
 * is a root until the scope that created it exits. Scopes nest and are per
 * thread; exit them in reverse order of entry (aborts otherwise). A scope,
 * and the handles made in it, belong to the thread that entered it: exiting
 * a scope entered by another thread aborts, and another thread may read or
 * write a handle's slot only as ordinary shared memory (it is a root of the
 * owning thread alone, and only until that thread exits the scope).
 * The three calls are inline: opening a scope, making a handle and closing
 * the scope cost a few instructions each (docs/performance.md, "Scoped
 * handles"); they call into the library only for the thread's first scope,
 * when a chunk of handle slots (254 of them) is full or left, and for
 * misuse, which aborts there with a message. They need no lock: each
 * touches the calling thread's own state. Abort if the thread is not
 * attached or is inside a blocking region. */
typedef struct rudo_scope {
    void **rudo__mark;   /* the thread's next handle slot at entry */
    unsigned rudo__depth; /* 1 for the outermost scope */
} rudo_scope;

RUDO_API void rudo__scope_enter_slow(rudo_scope *scope);
RUDO_API void rudo__scope_exit_slow(rudo_scope *scope);
RUDO_API void **rudo__handle_slow(void *obj);

/* Opens a scope: handles made from now until rudo_scope_exit(scope) belong
 * to it. Aborts with a message if scope is NULL. Thread-safe: touches only
 * the calling thread's state. (The NULL test costs nothing for the usual
 * scope, a local variable: the compiler knows its address is not NULL.) */
static inline void rudo_scope_enter(rudo_scope *scope) {
    struct rudo__mutator_fast *t = rudo__tl;
    if (RUDO_LIKELY(t != NULL && t->hnext != NULL && scope != NULL)) {
        scope->rudo__mark = t->hnext;
        scope->rudo__depth = ++t->hdepth;
        return;
    }
    rudo__scope_enter_slow(scope);
}

/* Closes the innermost scope, which must be `scope`: its handles stop being
 * roots (aborts if scope is not the innermost open scope of the thread, or
 * is NULL). Thread-safe: touches only the calling thread's state. */
static inline void rudo_scope_exit(rudo_scope *scope) {
    struct rudo__mutator_fast *t = rudo__tl;
    /* Fast when the scope is the innermost and began in the newest chunk
     * (its mark lies in [hbase, hnext]); anything else, misuse included,
     * is sorted out by the slow path. Lowering hnext drops the scope's
     * handles at once, also for a collector that reads this thread's state
     * while it is stopped at an arbitrary instruction. */
    if (RUDO_LIKELY(t != NULL && scope != NULL && scope->rudo__depth == t->hdepth &&
                    t->hdepth != 0 &&
                    (uintptr_t)scope->rudo__mark - (uintptr_t)t->hbase <=
                        (uintptr_t)t->hnext - (uintptr_t)t->hbase)) {
        t->hnext = scope->rudo__mark;
        t->hdepth--;
        return;
    }
    rudo__scope_exit_slow(scope);
}

/* Returns a slot holding obj, valid until the innermost scope exits. Aborts
 * outside any scope. The slot may be written to (e.g. after a resize).
 * Thread-safe: touches only the calling thread's state. */
static inline void **rudo_handle(void *obj) {
    struct rudo__mutator_fast *t = rudo__tl;
    if (RUDO_LIKELY(t != NULL && t->hnext != t->hlimit && t->hdepth != 0)) {
        void **slot = t->hnext;
        *slot = obj;
        /* The slot is written before hnext covers it: a collector that
         * reads [hbase, hnext) of a thread stopped by a signal at any
         * instruction sees only initialised slots. A compiler fence is
         * enough, as that reader runs on this thread's own instruction
         * stream (the signal handler) or after it. */
        __atomic_signal_fence(__ATOMIC_RELEASE);
        t->hnext = slot + 1;
        return slot;
    }
    return rudo__handle_slow(obj);
}

/* ------------------------------------------------------------------------ */
/* Collection                                                               */
/* ------------------------------------------------------------------------ */

/* Turns automatic and explicit collection off (rudo_disable) and back on
 * (rudo_enable); calls nest: collection runs again when every disable has
 * been matched. While disabled the heap grows; when it reaches max_heap,
 * the allocation prints "rudo: rudo_alloc: heap limit reached while
 * collection is disabled (rudo_disable)" and takes the out-of-memory path
 * (the handler, then NULL); rudo_collect returns without collecting.
 * rudo_enable without a matching rudo_disable aborts. When rudo_disable
 * returns, no collection runs, and none starts until the matching
 * rudo_enable (one in progress, started by another thread, is waited
 * for): weak slots are not cleared and objects do not move between
 * reachable and finalized meanwhile. Thread-safe; rudo_disable waits while
 * a collection runs, so it aborts if called with the world stopped (from a
 * listener's begin or phase, a root or trace callback). */
RUDO_API void rudo_disable(void);
RUDO_API void rudo_enable(void);
/* True while collection is disabled (rudo_disable; not the flag of
 * rudo_hold_collections). Thread-safe. */
RUDO_API bool rudo_is_disabled(void);

/* Holds collections off while *flag is nonzero, as rudo_disable does:
 * automatic ones (allocation's trigger, the heap limit, GC stress mode)
 * and explicit ones (rudo_collect returns without collecting); the heap
 * grows, and when it reaches max_heap the allocation prints "rudo:
 * rudo_alloc: heap limit reached while collections are held off
 * (rudo_hold_collections)" and takes the out-of-memory path. For a flag
 * the program writes directly, as bdwgc's GC_dont_gc (libgc.so.1 installs
 * that one): the flag is read (relaxed) each time a collection would
 * start, so there is no wait and no handshake, unlike rudo_disable. A
 * collection that another thread started before the flag became nonzero
 * runs to its end, and weak slots may be cleared by it; use rudo_disable
 * where that matters. flag NULL removes the hold. The int must stay
 * readable until another call replaces it (a static or a global).
 * Returns the flag installed before (NULL if none). Aborts if there is
 * no heap. Thread-safe. */
RUDO_API const int *rudo_hold_collections(const int *flag);

/* Changes settings at run time, as the config fields of the same name:
 * max_heap (0 or a value at or above the reservation: no bound but the
 * reservation; a value below the pages in use now stops growth there),
 * growth and growth_limit (growth above 0, at most 1000). They take effect
 * at the next allocation that needs a page and at the next collection's
 * trigger. Return RUDO_OK or RUDO_EINVAL (with a message). Thread-safe;
 * wait while a collection runs. */
RUDO_API int rudo_set_max_heap(size_t bytes);
/* As rudo_set_max_heap, but the bound is a cap only, never a budget: the
 * trigger stays the growth rule's (no collection is put off to "the room
 * left under max_heap"), and the heap grows past live * growth only when
 * collections cannot keep it there. For bdwgc's GC_set_max_heap_size
 * (ECL sets 1 GiB, and collected only near it with the budget rule).
 * rudo_set_max_heap makes the bound a budget again. Returns RUDO_OK.
 * Thread-safe; waits while a collection runs. */
RUDO_API int rudo_set_max_heap_cap(size_t bytes);
RUDO_API int rudo_set_growth(double growth, size_t growth_limit);
/* Changes initial_heap at run time: the least allocation between two
 * automatic collections without generations (the trigger's floor,
 * rudo_config), and with generations the least old data the major rule
 * compares with. Raised, it takes effect at once (the current trigger
 * goes up to it); lowered, at the next collection's trigger. 0 means no
 * floor: the growth rule alone. For bdwgc's GC_expand_hp, after which
 * bdwgc uses the heap it was given before it collects. Returns RUDO_OK.
 * Thread-safe; waits while a collection runs. */
RUDO_API int rudo_set_initial_heap(size_t bytes);

/* Runs a full collection now (with the world stopped), then any finalizers
 * that became due. If other threads request a collection at the same time,
 * one collection serves them all (thread-safe). Aborts if the thread is
 * not attached, is inside a blocking region, or runs a trace callback. */
RUDO_API void rudo_collect(void);

/* In generational mode, runs a minor collection now: it marks from the
 * roots and the dirty cards only, frees the young objects it did not
 * reach and makes the others old. Otherwise the same as rudo_collect.
 * Aborts as rudo_collect does. Thread-safe, as rudo_collect: concurrent
 * requests are served by one collection. */
RUDO_API void rudo_collect_minor(void);

/* Information about one collection, passed to the collection callback. */
/* The phases of a collection, in order (docs/design.md). */
typedef enum rudo_gc_phase {
    RUDO_PHASE_STOP = 0,  /* from the request until every thread stopped */
    RUDO_PHASE_ROOTS,     /* retiring pages, prepare, enumerating the roots
                           * into tasks (and card tasks of a minor one) */
    RUDO_PHASE_MARK,      /* the parallel closure, root callbacks included,
                           * and the ephemeron fixpoint */
    RUDO_PHASE_WEAK_FINAL,/* weak slots, finalization marking, ephemerons cleared */
    RUDO_PHASE_SWEEP,     /* the verifier (if on) and the eager sweep */
    RUDO_PHASE_COUNT
} rudo_gc_phase;

typedef struct rudo_gc_event {
    uint64_t number;         /* 1 for the first collection */
    uint64_t pause_ns;       /* request to the end of the collection's work
                              * (the world resumes right after) */
    uint64_t ttsp_ns;        /* time to safepoint: request to all stopped */
    uint64_t mark_ns;
    uint64_t sweep_ns;       /* eager part of the sweep */
    size_t live_bytes;       /* after the collection (after a minor one,
                              * as rudo_stats.live_bytes says) */
    size_t heap_bytes;       /* committed pages after the collection */
    uint64_t weak_cleared;   /* weak slots set to NULL (registered ones and
                              * those reported by rudo_visit_weak) */
    uint64_t ephemerons_cleared; /* ephemerons whose key died (set to NULL) */
    uint64_t ordered_cycles; /* cycles of unreachable objects with an
                              * ordered finalizer, kept because they reach
                              * themselves (rudo_finalizer_register_ordered) */
    uint64_t phase_ns[RUDO_PHASE_COUNT]; /* time in each phase */
    bool minor;              /* a minor collection (generational mode) */
    size_t promoted_bytes;   /* minor: young bytes that became old */
} rudo_gc_event;

typedef void (*rudo_gc_callback)(const rudo_gc_event *ev, void *data);

/* A collection listener: `begin` is called when the world is stopped,
 * before the collection's work (ev->number, ev->ttsp_ns, ev->minor and
 * ev->phase_ns[RUDO_PHASE_STOP], which equals ttsp_ns, are set, the rest
 * is zero); `phase` after each phase, with the phase and its time
 * (the STOP phase first); `end` after the world resumed, as the collection
 * callback. begin and phase run with the world stopped, on the collecting
 * thread: like trace callbacks they must not allocate, collect or take
 * locks that mutators may hold. Any member may be NULL. The listener is
 * copied; rudo_set_gc_listener(NULL) removes it. When none is set the
 * collector only tests one pointer per phase. Thread-safe; waits while a
 * collection runs. */
typedef struct rudo_gc_listener {
    void (*begin)(const rudo_gc_event *ev, void *data);
    void (*phase)(rudo_gc_phase phase, uint64_t ns, void *data);
    void (*end)(const rudo_gc_event *ev, void *data);
    void *data;
} rudo_gc_listener;
RUDO_API void rudo_set_gc_listener(const rudo_gc_listener *listener);

/* Sets a function called after every collection, on the collecting thread,
 * after the world is resumed and before finalizers run (NULL to remove).
 * It runs as ordinary code of that thread: it may allocate and call rudo,
 * and a collection it starts (rudo_collect, or an allocation's) calls it
 * again, nested. The calls of two collections in a row may overlap, on
 * two threads: what the function writes must tolerate that. Thread-safe;
 * waits while a collection runs. */
RUDO_API void rudo_set_gc_callback(rudo_gc_callback fn, void *data);

/* ------------------------------------------------------------------------ */
/* Threads and safepoints                                                   */
/* ------------------------------------------------------------------------ */

/* Attaches the calling thread: it gets its own allocation state and its
 * stack is scanned for roots. Returns RUDO_OK, RUDO_EEXIST if already
 * attached, RUDO_ESTATE if no heap exists. Aborts if called from inside a
 * collection (a trace or root callback, a listener's begin or phase: it
 * waits while a collection runs). A thread that exits while attached is
 * detached by a thread-exit destructor. Thread-safe.
 *
 * Cancellation: rudo's internal waits run with cancellation disabled, so a
 * thread cancelled (deferred) while waiting in rudo finishes the call and
 * acts on the cancel at its next cancellation point; one cancelled inside
 * a blocking region is detached by the destructor. Asynchronous
 * cancellation of an attached thread is not supported.
 *
 * fork: the child keeps the heap and the forking thread's attachment; the
 * other threads' attachments are dropped there (their threads do not exist
 * in the child), so the child may allocate, collect, attach new threads and
 * destroy the heap. fork waits for a running collection to end. */
RUDO_API int rudo_thread_attach(void);

/* Attach flags (rudo_thread_attach_flags). */
enum {
    /* The thread never polls (code that knows nothing of rudo, such as a
     * bdwgc client's): every collection suspends it with the suspend
     * signal at once instead of waiting for a safepoint first. It may
     * still call rudo_safepoint and blocking regions. */
    RUDO_ATTACH_SIGNAL = 1u << 0,
};

/* As rudo_thread_attach, with flags (RUDO_ATTACH_*; 0 is
 * rudo_thread_attach). Returns RUDO_OK; RUDO_EEXIST if already attached;
 * RUDO_ESTATE if no heap exists, or if RUDO_ATTACH_SIGNAL is asked while
 * signal suspension is off (suspend_signal 0, or scan_stacks false);
 * RUDO_EINVAL for an unknown flag. Thread-safe. */
RUDO_API int rudo_thread_attach_flags(unsigned flags);

/* The signals the heap suspends and restarts threads with (the config's
 * suspend_signal and restart_signal after the environment), each 0 when
 * signal suspension is off: what a program must not block in attached
 * threads (bdwgc's GC_pthread_sigmask removes them). Either pointer may
 * be NULL. Aborts if no heap exists. Thread-safe. */
RUDO_API void rudo_stop_signals(int *suspend, int *restart);

/* Detaches the calling thread; its pages are handed back to the heap and
 * reused by other threads. Objects it allocated stay alive while reachable
 * from elsewhere. Aborts if the thread is not attached or is inside a
 * blocking region; if called from inside a collection (a trace or root
 * callback, a listener's begin or phase: it waits while a collection
 * runs); and if called from a finalizer or collection callback while the
 * allocation, collection or rudo_run_finalizers call that ran it is under
 * way (that call uses the thread's state when it returns). Thread-safe. */
RUDO_API void rudo_thread_detach(void);

/* True if the calling thread is attached. Thread-safe; may be called
 * without a heap. */
RUDO_API bool rudo_thread_is_attached(void);

/* Suspension by request (bdwgc's GC_suspend_thread). rudo_thread_suspend
 * stops the attached thread `thread` until rudo_thread_resume(thread):
 * a running thread is suspended with the suspend signal wherever it is
 * outside rudo's code (one inside rudo stops as it leaves), and the call
 * returns once it has stopped; a thread in a blocking region is marked and
 * stops when it leaves the region (rudo_blocking_leave waits). Collections
 * go on meanwhile: a suspended thread is not waited for, and its registers
 * and stack are scanned as for any stopped thread. Suspending the calling
 * thread waits, as in a blocking region, until another thread resumes it.
 * A suspended thread cannot detach or exit until it is resumed. While
 * the suspender waits for the thread to stop it says so on stderr after
 * RUDO_STOP_WARN_MS, as a collection does (the thread blocks the suspend
 * signal).
 * rudo_thread_suspend returns RUDO_OK; RUDO_ENOENT if `thread` is not
 * attached (or detached before it stopped); RUDO_EEXIST if it is already
 * suspended; RUDO_ESTATE if no heap exists, or if signal suspension is off
 * (rudo_stop_signals gives 0) and the thread, other than the caller, is
 * running (suspending oneself needs no signal: the caller parks until
 * another thread resumes it).
 * rudo_thread_resume returns RUDO_OK; RUDO_ENOENT if `thread` is not
 * attached; RUDO_ESTATE if it is not suspended or no heap exists. Neither
 * ever waits for the other thread to cooperate beyond stopping; both wait
 * for a running collection to end. Abort if called from a trace callback
 * or inside a blocking region. Thread-safe: any thread, attached or not. */
RUDO_API int rudo_thread_suspend(pthread_t thread);
RUDO_API int rudo_thread_resume(pthread_t thread);
/* True if `thread` is attached and suspended by rudo_thread_suspend (from
 * the request on, until rudo_thread_resume). False without a heap.
 * Thread-safe: any thread, attached or not. */
RUDO_API bool rudo_thread_is_suspended(pthread_t thread);

/* A safepoint: if another thread is waiting to collect, stop here until the
 * collection ends. Call it in long loops that do not allocate.
 *
 * Stopping is cooperative first: a collection waits until every attached
 * thread is at a safepoint or in a blocking region. A thread that has not
 * stopped signal_stop_ms later (rudo_config; default 2 ms) is suspended
 * with a signal wherever it is (outside rudo's own code), so a thread that
 * sits in pthread_join, a mutex or a long loop outside a blocking region
 * no longer holds collections up; its registers and stack are scanned as
 * at a safepoint. Blocking regions remain the cheaper way to wait. A
 * thread that blocks the suspend signal (or any thread, when signal
 * suspension is off) is waited for at its next safepoint. When a
 * collection has waited RUDO_STOP_WARN_MS milliseconds (environment, read
 * at heap creation; default 2000, 0 = never), it prints one line to stderr
 * naming each attached thread that has not stopped (mutator id, kernel
 * tid, pthread name, and whether it blocks the suspend signal) and the
 * remedy, then again after doubling intervals (at most 60 s apart); it
 * keeps waiting. Aborts if called from a trace callback while a
 * collection waits. Thread-safe (any attached thread; an unattached one
 * returns at once). */
RUDO_API void rudo__safepoint_slow(void);
static inline void rudo_safepoint(void) {
    /* Relaxed: a poll that misses a request just made is caught by the next
     * poll; the slow path synchronises through the handshake mutex. */
    if (RUDO_UNLIKELY(__atomic_load_n(&rudo__stop_requested, __ATOMIC_RELAXED)))
        rudo__safepoint_slow();
}

/* Brackets a region in which the thread does not touch the heap (no heap
 * pointer is read or written, no rudo call but rudo_blocking_leave), such
 * as a blocking system call. Collections proceed without waiting for it;
 * its stack (as of rudo_blocking_enter) is still scanned. Leaving waits for
 * a running collection to end. Regions do not nest (aborts). Both abort
 * if called from inside a collection (a trace or root callback, a
 * listener's begin or phase). Thread-safe: each affects the calling
 * thread. */
RUDO_API void rudo_blocking_enter(void);
RUDO_API void rudo_blocking_leave(void);

/* Stacks. An attached thread's stack is scanned from its stack pointer to
 * the top of the stack it runs on: the thread's own stack, found when it
 * attached, unless declared otherwise with rudo_stack_set. A thread that
 * switches to another stack (makecontext/swapcontext, a coroutine or fiber
 * library) must declare it before its next rudo call on that stack, and
 * declare the previous one again when it switches back. A thread that
 * enters rudo (a safepoint, a collection, a blocking region) with its
 * stack pointer outside the declared stack aborts ("the stack pointer ...
 * is outside the thread's stack ...") rather than have unrelated memory
 * scanned; one that a collection suspends by signal there (it does not
 * poll) is not stopped: it is signalled again until it is back on its
 * declared stack, and the collection's report names it ("runs outside its
 * declared stack").
 *
 * Stacks that no thread runs on (suspended coroutines, and the thread's
 * own stack while it runs on another) are not scanned: register each, with
 * the context its registers were saved in (the ucontext_t of swapcontext),
 * as a conservative range with rudo_root_add_range while it may hold heap
 * pointers, and remove it when it is resumed or freed. docs/threads.md,
 * "Stacks and thread-local storage". */

/* Declares that the calling thread now runs, or will run from its next
 * stack switch on, on the stack [lo, hi) (hi is the end the stack grows
 * down from: the highest address plus one). It may be called just before
 * switching (no rudo call may come between it and the switch) or just
 * after. Returns RUDO_OK, or RUDO_EINVAL (with a message) if lo or hi is
 * NULL or lo >= hi. Aborts if the thread is not attached or is inside a
 * blocking region. Thread-safe: affects only the calling thread; needs no
 * lock. */
RUDO_API int rudo_stack_set(void *lo, void *hi);

/* Stores the calling thread's declared stack bounds (initially its own
 * stack's) in *lo and *hi (either may be NULL), e.g. to declare them again
 * with rudo_stack_set after switching back. Aborts if the thread is not
 * attached. Thread-safe: reads only the calling thread's state. */
RUDO_API void rudo_stack_get(void **lo, void **hi);

/* ------------------------------------------------------------------------ */
/* Queries                                                                  */
/* ------------------------------------------------------------------------ */

/* Queries may be called from any attached thread, and from an unattached
 * one while no collection runs. An address inside a free cell of a page
 * another thread is allocating from counts as allocated. They ignore
 * interior_pointers and RUDO_KIND_BASE_ONLY: any address inside an object
 * finds it. */

/* True if p points into (or at) an allocated heap object. Thread-safe, as
 * said above. */
RUDO_API bool rudo_is_heap_ptr(const void *p);
/* Base address of the allocated object containing p, or NULL. Thread-safe,
 * as said above. */
RUDO_API void *rudo_base(const void *p);
/* Usable size of the object whose base is p. Aborts if p is not the base of
 * an allocated heap object. Thread-safe, as said above. */
RUDO_API size_t rudo_size(const void *p);
/* Kind of the object whose base is p. Aborts as rudo_size. Thread-safe, as
 * said above. */
RUDO_API rudo_kind rudo_kind_of(const void *p);
/* Stores the bounds of the heap's address-space reservation in *lo and *hi
 * (either may be NULL): every heap object, small or large, lies in
 * [lo, hi). They are fixed from rudo_heap_create to rudo_heap_destroy; a
 * conservative filter in the client (bdwgc's GC_least_plausible_heap_addr
 * and GC_greatest_plausible_heap_addr) may rely on them. Aborts if no heap
 * exists. Thread-safe; any thread, attached or not. */
RUDO_API void rudo_heap_bounds(void **lo, void **hi);

/* ------------------------------------------------------------------------ */
/* Statistics                                                               */
/* ------------------------------------------------------------------------ */

typedef struct rudo_stats {
    uint64_t collections;
    uint64_t bytes_allocated;   /* since heap creation; counted when a
                                 * thread takes a page (its free cells) or a
                                 * large object, so it runs slightly ahead */
    size_t heap_bytes;          /* committed pages now (small + large) */
    size_t heap_peak_bytes;     /* maximum of heap_bytes */
    size_t live_bytes;          /* live after the last collection; after
                                 * a minor one, the old data is as the last
                                 * major left it (old objects that died
                                 * since, or were freed with rudo_free,
                                 * still count until the next major) */
    uint64_t mark_ns_total;     /* time in marking, all collections */
    uint64_t sweep_ns_total;    /* eager sweep at collection end */
    uint64_t lazy_sweep_ns_total; /* page sweeps done by allocators */
    uint64_t pause_ns_total;
    uint64_t pause_ns_max;
    uint64_t ttsp_ns_max;       /* time to safepoint, maximum */
    uint64_t ttsp_ns_median;    /* over the last (up to) 1024 collections */
    uint64_t finalizers_run;
    unsigned threads_attached;
    unsigned markers;
    /* Generational mode (all collections are major otherwise). */
    uint64_t minor_collections, major_collections;
    uint64_t minor_pause_ns_total, minor_pause_ns_max;
    uint64_t major_pause_ns_total, major_pause_ns_max;
    uint64_t promoted_bytes_total; /* young bytes made old by minors */
} rudo_stats;

/* Fills *out with a snapshot. Aborts with a message if out is NULL, and
 * when called from a trace callback or a gc listener (as every call that
 * waits for a running collection to end). Thread-safe; needs a heap
 * (aborts otherwise). */
RUDO_API void rudo_get_stats(rudo_stats *out);

/* The calling thread's own figures since it attached. */
typedef struct rudo_thread_stats {
    uint64_t bytes_allocated; /* handed to its allocator: the free cells of
                               * the pages it took, and its large objects */
    uint64_t collections;     /* collections it ran (as the collector) */
    uint64_t collect_ns;      /* their pauses, summed */
} rudo_thread_stats;

/* Fills *out for the calling thread. Aborts if out is NULL or the thread
 * is not attached. Thread-safe (each thread reads its own). */
RUDO_API void rudo_get_thread_stats(rudo_thread_stats *out);

/* What one marker did in the last collection. */
typedef struct rudo_marker_stats {
    uint64_t objects_marked;    /* objects whose mark bit it set */
    uint64_t objects_traced;    /* objects it traced */
    uint64_t steals_attempted;
    uint64_t steals_won;
    uint64_t batches_sent;      /* inbox transfers to other markers */
    uint64_t batches_received;
    uint64_t idle_ns;           /* time parked waiting for work */
    uint64_t deque_high_water;  /* most objects queued at once (private
                                 * stack plus shared deque) */
    uint64_t deque_growths;     /* times its private stack or deque grew */
    uint64_t overflows;         /* pushes deferred for lack of memory */
} rudo_marker_stats;

/* Copies the per-marker statistics of the last collection into out[0 ..
 * max-1] and returns the number of markers (which may exceed max). Returns
 * 0 before the first collection. Aborts with a message if out is NULL
 * while max > 0 (out may be NULL with max 0: a count only), and as
 * rudo_get_stats. Thread-safe; needs a heap. */
RUDO_API unsigned rudo_get_marker_stats(rudo_marker_stats *out, unsigned max);

#ifdef __cplusplus
}
#endif
#endif /* RUDO_H */
