/* loader.c — the loaded modules' writable segments, found while other
 * threads are stopped, without waiting for ever on the dynamic loader.
 *
 * dl_iterate_phdr holds the loader's write lock while it reports the
 * modules; dlclose holds it while it unmaps and unlinks one. A thread that
 * the collector stopped (parked at a safepoint from inside its own
 * dl_iterate_phdr callback, or suspended by signal anywhere) may hold that
 * lock, and a collector that called dl_iterate_phdr then waited for ever.
 *
 * So the call goes through a helper thread (one per process, started
 * before a stop by rudo__os_loader_start):
 *
 *   client (the collector)              helper
 *   state = REQUEST, signal  ------->   dl_iterate_phdr: in its first
 *                                       callback, holding the lock, it
 *                                       records every module's segments
 *   waits up to timeout_ms   <-------   state = HELD, signal; waits
 *   reports the recorded segments
 *   state = RELEASE, signal  ------->   returns from the callback (the
 *                                       lock is released), state = IDLE
 *
 * If HELD does not come in time, the lock is most likely held by a stopped
 * thread. The client then sets FALLBACK and walks the module list itself
 * without the lock (rudo__os_static_segments_unlocked): the loader's list (_r_debug), each
 * module's program headers read from its mapped ELF header (the main
 * program's from the auxiliary vector), every range checked with mincore
 * before it is read. That is safe while the lock stays held by someone
 * who is not unmapping: the stopped holder, or the helper itself, which,
 * if it gets the lock meanwhile, sees FALLBACK and holds the lock (state
 * HELD_LATE) until the client is done. A holder stopped in dlclose
 * between the unmap and the unlink leaves a module in the list whose
 * memory is gone: mincore reports it, and it is skipped. Once the client
 * is done, a helper still waiting for the lock finds STALE when it gets
 * it and releases it at once; a later call waits for that within its own
 * timeout, then walks without the lock as above.
 *
 * Without the helper (it could not be started, or the client says no
 * other thread is stopped: then no stopped thread holds the lock), the
 * client calls dl_iterate_phdr itself. */
#include "platform/platform.h"

#include <errno.h>
#include <link.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

enum { IDLE, REQUEST, HELD, RELEASE, FALLBACK, HELD_LATE, STALE };

/* The segments the helper recorded: rudo__os_map'd, grown by doubling. */
struct seg {
    char *lo, *hi;
    unsigned module;
};

/* Process-wide, like the loader's lock it works around (and a forked
 * child's copy is reset by fork_child below). `mu` orders every field.
 * Not in static data: the static-data scan reads that, while the helper,
 * a thread the collector never stops, writes here (a race for
 * ThreadSanitizer, and words the scan need not see). Mapped by a
 * constructor, before any thread exists, so the pointer is written once. */
struct loader {
    pthread_mutex_t mu;
    pthread_cond_t cv;      /* CLOCK_MONOTONIC */
    /* One client at a time (collector, or root callbacks on markers). */
    pthread_mutex_t client;
    int state;
    /* Requests posted by clients and seen by the helper: it walks once
     * per request, even one whose client has given up (then it only takes
     * and releases the lock, and ends a STALE state). */
    unsigned long posted, seen;
    /* The helper serves while `gen` is the one it was created for:
     * rudo__os_loader_stop moves it on and waits until `exited` (the
     * generation of the last helper that exited) is the old one. */
    unsigned long gen, exited;
    bool started, failed;
    /* Helpers inside dl_iterate_phdr (one may hold the loader's lock,
     * even after saying IDLE: the lock is released when its callback has
     * returned). The fork handler waits for none to be in: a child would
     * inherit the lock held, as glibc does not reset it. A count, not a
     * flag: a helper that rudo__os_loader_stop gave up on may still be
     * in there, waiting for the lock, beside the next heap's helper. */
    unsigned in_walk;
    pthread_t thread;       /* the helper, while started */
    struct seg *segs;
    size_t nsegs, cap;
    bool overflow;          /* rudo__os_map failed while recording */
};
static struct loader *L;

static void init_sync(void) {
    pthread_mutex_init(&L->mu, NULL);
    pthread_mutex_init(&L->client, NULL);
    rudo__os_cond_init_monotonic(&L->cv);
}

/* Run last among the prepare handlers (registered first, by the
 * constructor). Holds mu across the fork, and waits for the helper to be
 * out of dl_iterate_phdr; at most a second: a helper that waits that long
 * for the loader's lock waits for a thread that holds it, which a child
 * inherits held anyway (docs/threads.md, "fork"). */
static void fork_prepare(void) {
    pthread_mutex_lock(&L->client);
    pthread_mutex_lock(&L->mu);
    struct timespec dl;
    clock_gettime(CLOCK_MONOTONIC, &dl);
    dl.tv_sec += 1;
    while (L->in_walk)
        if (pthread_cond_timedwait(&L->cv, &L->mu, &dl) == ETIMEDOUT)
            break;
}

static void fork_parent(void) {
    pthread_mutex_unlock(&L->mu);
    pthread_mutex_unlock(&L->client);
}

static void fork_child(void) {
    /* The helper does not exist in the child; the next start makes one.
     * The locks are this thread's (fork_prepare): released, not made
     * anew (ThreadSanitizer holds a re-made locked mutex for a double
     * lock); the condition variable, which the vanished helper may have
     * waited on, is made anew. */
    rudo__os_cond_init_monotonic(&L->cv);
    pthread_mutex_unlock(&L->mu);
    pthread_mutex_unlock(&L->client);
    L->in_walk = 0;
    L->state = IDLE;
    L->posted = L->seen = 0;
    L->started = L->failed = false;
}

__attribute__((constructor)) static void loader_init(void) {
    L = rudo__os_map((sizeof *L + 4095) & ~(size_t)4095);
    if (!L)
        return; /* the calls below then walk with dl_iterate_phdr */
    L->exited = (unsigned long)-1;
    init_sync();
    pthread_atfork(fork_prepare, fork_parent, fork_child);
}

/* ---- the walk with the lock (dl_iterate_phdr) ---------------------------- */

struct walk {
    void (*fn)(void *lo, void *hi, unsigned module, void *arg);
    void *arg;
    unsigned module;
};

static void report_phdrs(const ElfW(Phdr) *ph, size_t n, uintptr_t base,
                         unsigned module, struct walk *w) {
    for (size_t i = 0; i < n; i++) {
        if (ph[i].p_type != PT_LOAD || !(ph[i].p_flags & PF_W))
            continue;
        char *lo = (char *)(base + ph[i].p_vaddr);
        w->fn(lo, lo + ph[i].p_memsz, module, w->arg);
    }
}

static int locked_cb(struct dl_phdr_info *info, size_t size, void *data) {
    (void)size;
    struct walk *w = data;
    report_phdrs(info->dlpi_phdr, info->dlpi_phnum, info->dlpi_addr, w->module++, w);
    return 0;
}

void rudo__os_static_segments(void (*fn)(void *lo, void *hi, unsigned module, void *arg),
                              void *arg) {
    struct walk w = {fn, arg, 0};
    dl_iterate_phdr(locked_cb, &w);
}

/* ---- the walk without the lock -------------------------------------------- */


/* glibc 2.35's r_debug_extended (r_version 2): the other namespaces'. */
struct rdebug_ext {
    struct r_debug base;
    struct rdebug_ext *r_next;
};

/* The main program's headers, from the auxiliary vector, and its load
 * bias: where its PT_PHDR is against where the headers say it is. */
static const ElfW(Phdr) *main_phdrs(size_t *n, uintptr_t *bias) {
    const ElfW(Phdr) *ph = (const ElfW(Phdr) *)getauxval(AT_PHDR);
    *n = getauxval(AT_PHNUM);
    *bias = 0;
    for (size_t i = 0; ph && i < *n; i++)
        if (ph[i].p_type == PT_PHDR)
            *bias = (uintptr_t)ph - ph[i].p_vaddr;
    return ph;
}

static void report_mapped(const ElfW(Phdr) *ph, size_t n, uintptr_t base, unsigned module,
                          struct walk *w) {
    if (!ph || !rudo__os_mapped(ph, ph + n))
        return;
    for (size_t i = 0; i < n; i++) {
        if (ph[i].p_type != PT_LOAD || !(ph[i].p_flags & PF_W))
            continue;
        char *lo = (char *)(base + ph[i].p_vaddr);
        if (rudo__os_mapped(lo, lo + ph[i].p_memsz))
            w->fn(lo, lo + ph[i].p_memsz, module, w->arg);
    }
}

void rudo__os_static_segments_unlocked(void (*fn)(void *lo, void *hi, unsigned module,
                                                  void *arg),
                                       void *arg) {
    struct walk w = {fn, arg, 0};
    size_t n;
    uintptr_t bias;
    const ElfW(Phdr) *ph;
    for (struct rdebug_ext *r = (struct rdebug_ext *)&_r_debug; r;
         r = r->base.r_version >= 2 ? r->r_next : NULL) {
        for (struct link_map *l = r->base.r_map; l; l = l->l_next) {
            unsigned module = w.module++;
            if (module == 0) {
                /* The main program: the kernel told where its headers
                 * are (dl_iterate_phdr reports them so too). */
                ph = main_phdrs(&n, &bias);
                report_mapped(ph, n, l->l_addr, module, &w);
                continue;
            }
            /* A shared object's first segment maps its file from offset 0
             * at virtual address 0: its ELF header is at the load bias. */
            const ElfW(Ehdr) *e = (const ElfW(Ehdr) *)l->l_addr;
            if (!e || !rudo__os_mapped(e, e + 1) || memcmp(e->e_ident, ELFMAG, SELFMAG) != 0 ||
                e->e_phentsize != sizeof(ElfW(Phdr)))
                continue;
            report_mapped((const ElfW(Phdr) *)((const char *)e + e->e_phoff), e->e_phnum,
                          l->l_addr, module, &w);
        }
    }
    /* A static program has no module list: itself alone. */
    if (w.module == 0) {
        ph = main_phdrs(&n, &bias);
        report_mapped(ph, n, bias, 0, &w);
    }
}

/* ---- the helper ------------------------------------------------------------- */

static void record(void *lo, void *hi, unsigned module, void *arg) {
    (void)arg;
    if (L->nsegs == L->cap) {
        size_t cap = L->cap ? L->cap * 2 : 256;
        struct seg *s = rudo__os_map(cap * sizeof *s);
        if (!s) {
            L->overflow = true;
            return;
        }
        if (L->segs) {
            memcpy(s, L->segs, L->nsegs * sizeof *s);
            rudo__os_unmap(L->segs, L->cap * sizeof *s);
        }
        L->segs = s;
        L->cap = cap;
    }
    L->segs[L->nsegs++] = (struct seg){lo, hi, module};
}

static int helper_cb(struct dl_phdr_info *info, size_t size, void *data) {
    (void)info;
    (void)size;
    const unsigned long *gen = data;
    /* A helper that rudo__os_loader_stop gave up on, getting the lock at
     * last: another may serve now; touch nothing. */
    pthread_mutex_lock(&L->mu);
    bool mine = L->gen == *gen;
    pthread_mutex_unlock(&L->mu);
    if (!mine)
        return 1;
    /* The loader's lock is held (recursive: the nested walk takes it
     * again). Record without mu: only a client in HELD reads the table. */
    L->nsegs = 0;
    L->overflow = false;
    rudo__os_static_segments(record, NULL);
    pthread_mutex_lock(&L->mu);
    if (L->gen != *gen) {
        pthread_mutex_unlock(&L->mu);
        return 1;
    }
    if (L->state == REQUEST || L->state == FALLBACK) {
        L->state = L->state == REQUEST ? HELD : HELD_LATE;
        pthread_cond_broadcast(&L->cv);
        while (L->state != RELEASE)
            pthread_cond_wait(&L->cv, &L->mu);
    }
    /* RELEASE, or STALE: the client is gone. (IDLE too, for a request
     * already served by an earlier walk.) */
    L->state = IDLE;
    pthread_cond_broadcast(&L->cv);
    pthread_mutex_unlock(&L->mu);
    return 1; /* once: the table holds every module */
}

static void *helper(void *arg) {
    /* The generation it was created for, not the one it finds when it
     * first gets mu: rudo__os_loader_stop may have moved that on already
     * (a start and a stop in quick succession, before this thread ran).
     * A helper that read the new generation served it, unasked and for
     * ever: the stop gave up on it after its second, and the next stop
     * took its exit for that of the next helper and joined one that
     * never exits. */
    unsigned long gen = (unsigned long)(uintptr_t)arg;
    /* The collector's suspend and restart signals are not for this
     * thread, which is never attached; nor is any other. */
    sigset_t all;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, NULL);
    pthread_mutex_lock(&L->mu);
    for (;;) {
        while (L->seen == L->posted && L->gen == gen)
            pthread_cond_wait(&L->cv, &L->mu);
        if (L->gen != gen)
            break;
        L->seen = L->posted;
        L->in_walk++;
        pthread_mutex_unlock(&L->mu);
        dl_iterate_phdr(helper_cb, &gen);
        pthread_mutex_lock(&L->mu);
        L->in_walk--;
        pthread_cond_broadcast(&L->cv);
    }
    L->exited = gen;
    pthread_cond_broadcast(&L->cv);
    pthread_mutex_unlock(&L->mu);
    return NULL;
}

bool rudo__os_loader_start(void) {
    if (!L)
        return false;
    pthread_mutex_lock(&L->mu);
    if (!L->started && !L->failed) {
        /* A helper that rudo__os_loader_stop gave up on touches no state
         * when it wakes (its generation is gone). */
        L->state = IDLE;
        pthread_attr_t a;
        pthread_attr_init(&a);
        pthread_attr_setstacksize(&a, 256 * 1024); /* sanitizers want room */
        if (pthread_create(&L->thread, &a, helper, (void *)(uintptr_t)L->gen) == 0)
            L->started = true;
        else
            L->failed = true;
        pthread_attr_destroy(&a);
    }
    bool ok = L->started;
    pthread_mutex_unlock(&L->mu);
    return ok;
}

int rudo__os_static_segments_stopped(void (*fn)(void *lo, void *hi, unsigned module,
                                                void *arg),
                                     void *arg, unsigned timeout_ms) {
    if (!L) {
        rudo__os_static_segments(fn, arg);
        return RUDO__OS_WALK_DIRECT;
    }
    pthread_mutex_lock(&L->client);
    pthread_mutex_lock(&L->mu);
    int how = RUDO__OS_WALK_UNLOCKED;
    struct timespec dl;
    clock_gettime(CLOCK_MONOTONIC, &dl);
    dl.tv_sec += timeout_ms / 1000;
    dl.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (dl.tv_nsec >= 1000000000L) {
        dl.tv_sec++;
        dl.tv_nsec -= 1000000000L;
    }
    /* The previous call's helper has yet to say IDLE: released (it will
     * at once), or still waiting for the lock for a call that gave up
     * (STALE: it will when the holder lets go). Within the same time. */
    while (L->started && (L->state == RELEASE || L->state == STALE))
        if (pthread_cond_timedwait(&L->cv, &L->mu, &dl) == ETIMEDOUT)
            break;
    if (!L->started) {
        how = RUDO__OS_WALK_DIRECT;
    } else if (L->state == IDLE) {
        L->state = REQUEST;
        L->posted++;
        pthread_cond_broadcast(&L->cv);
        while (L->state == REQUEST)
            if (pthread_cond_timedwait(&L->cv, &L->mu, &dl) == ETIMEDOUT)
                break;
        if (L->state == HELD && !L->overflow) {
            how = RUDO__OS_WALK_HELPER;
        } else if (L->state == HELD) {
            how = RUDO__OS_WALK_UNLOCKED; /* the table is short: walk, lock held */
            L->state = HELD_LATE;
        } else {
            L->state = FALLBACK;
        }
    } else if (L->state == STALE) {
        /* The helper still waits for the lock for an earlier call, past
         * this call's time: walk unlocked, and have it hold the lock for
         * this call if it gets it meanwhile. */
        L->state = FALLBACK;
    }
    pthread_mutex_unlock(&L->mu);
    if (how == RUDO__OS_WALK_DIRECT) {
        rudo__os_static_segments(fn, arg);
    } else if (how == RUDO__OS_WALK_HELPER) {
        for (size_t i = 0; i < L->nsegs; i++)
            fn(L->segs[i].lo, L->segs[i].hi, L->segs[i].module, arg);
    } else {
        rudo__os_static_segments_unlocked(fn, arg);
    }
    pthread_mutex_lock(&L->mu);
    if (L->state == HELD || L->state == HELD_LATE)
        L->state = RELEASE;
    else if (L->state == FALLBACK)
        L->state = STALE;
    pthread_cond_broadcast(&L->cv);
    pthread_mutex_unlock(&L->mu);
    pthread_mutex_unlock(&L->client);
    return how;
}

bool rudo__os_loader_stop(void) {
    if (!L)
        return true;
    pthread_mutex_lock(&L->client);
    pthread_mutex_lock(&L->mu);
    if (L->started) {
        unsigned long old = L->gen++;
        L->started = L->failed = false;
        pthread_cond_broadcast(&L->cv);
        /* Bounded: a helper still waiting for the loader's lock for a
         * stale request exits when it gets it (its generation is gone). */
        struct timespec dl;
        clock_gettime(CLOCK_MONOTONIC, &dl);
        dl.tv_sec += 1;
        while (L->exited != old)
            if (pthread_cond_timedwait(&L->cv, &L->mu, &dl) == ETIMEDOUT)
                break;
        bool exited = L->exited == old;
        if (exited)
            L->state = IDLE;
        pthread_t t = L->thread;
        pthread_mutex_unlock(&L->mu);
        /* Joined when it has said it exits (it is then a few instructions
         * from its end): the thread is gone when this returns, so a fork
         * right after is single-threaded again (ThreadSanitizer refuses
         * threads in the child of a multi-threaded fork). One given up on
         * is detached: it exits by itself. */
        if (exited)
            pthread_join(t, NULL);
        else
            pthread_detach(t);
        pthread_mutex_unlock(&L->client);
        return exited;
    }
    pthread_mutex_unlock(&L->mu);
    pthread_mutex_unlock(&L->client);
    return true;
}
