/* threads.c — bdwgc's thread interface, mapped onto rudo's.
 *
 * This is the one place where the two thread models meet. bdwgc stops
 * threads with signals, wherever they are; rudo stops them at safepoints
 * first and suspends those that do not get there with a signal (docs/
 * threads.md). The mapping is therefore:
 *  - a registered thread (GC_register_my_thread, GC_pthread_create, or the
 *    first allocation of an unregistered thread) is a rudo thread attached
 *    with RUDO_ATTACH_SIGNAL: bdwgc's clients never poll, so every
 *    collection suspends it with a signal at once (compat_thread_attach);
 *    the main thread, attached when the heap is made, is suspended so
 *    after signal_stop_ms (2 ms) when it does not reach a safepoint;
 *  - waits the library performs for the program (GC_pthread_join,
 *    GC_call_with_alloc_lock's lock) still run in a rudo blocking region,
 *    which spares the signal, and GC_do_blocking is one. */
#include "compat.h"

#include <dlfcn.h>
#include <semaphore.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>

/* Depth of GC_do_blocking on this thread (GC_call_with_gc_active inside it
 * counts down): rudo's regions do not nest, bdwgc's do. */
static __thread int blocking_depth;

int compat_thread_attach(void) {
    int rc = rudo_thread_attach_flags(RUDO_ATTACH_SIGNAL);
    if (rc == RUDO_ESTATE && rudo_heap_exists())
        rc = rudo_thread_attach(); /* signals are off (RUDO_SUSPEND_SIGNAL=0) */
    if (rc == RUDO_ESTATE) {
        fprintf(stderr, "rudo-compat: cannot attach a thread: no heap\n");
        abort();
    }
    return rc == RUDO_EEXIST ? GC_DUPLICATE : GC_SUCCESS;
}

void compat_thread_detach(void) {
    if (rudo_thread_is_attached()) {
        if (blocking_depth > 0) {
            rudo_blocking_leave();
            blocking_depth = 0;
        }
        rudo_thread_detach();
    }
}

bool compat_in_blocking(void) { return blocking_depth > 0; }

void compat_blocking_enter(void) {
    if (blocking_depth++ == 0)
        rudo_blocking_enter();
}

void compat_blocking_leave(void) {
    if (--blocking_depth == 0)
        rudo_blocking_leave();
}

/* ---- registration ---- */

GC_API void GC_allow_register_threads(void) { compat_enter(); }

GC_API int GC_register_my_thread(const struct GC_stack_base *sb) {
    compat_init();
    int rc = compat_thread_attach();
    if (rc == GC_SUCCESS && sb && sb->mem_base) {
        void *lo, *hi;
        rudo_stack_get(&lo, &hi);
        if ((char *)sb->mem_base > (char *)lo && (char *)sb->mem_base <= (char *)hi)
            rudo_stack_set(lo, sb->mem_base);
    }
    return rc;
}

GC_API int GC_unregister_my_thread(void) {
    if (rudo_heap_exists())
        compat_thread_detach();
    return GC_SUCCESS;
}

GC_API int GC_thread_is_registered(void) {
    return rudo_heap_exists() && rudo_thread_is_attached();
}

GC_API void GC_start_mark_threads(void) {
    /* rudo starts its markers at the first collection. */
}

/* ---- pthread wrappers ---- */

/* Threads of GC_pthread_create that have finished (detached from rudo)
 * but are not joined yet: bdwgc keeps their records until the join, and
 * GC_suspend_thread on such a thread only marks it suspended (gctest's
 * fork_a_thread relies on it). A short list under its own mutex: entries
 * live from the thread's end to GC_pthread_join or GC_pthread_detach. */
struct finished {
    pthread_t thread;
    bool suspended;
    struct finished *next;
};
static pthread_mutex_t finished_lock = PTHREAD_MUTEX_INITIALIZER;
static struct finished *finished_list;

void compat_threads_fork_prepare(void) { pthread_mutex_lock(&finished_lock); }
void compat_threads_fork_release(void) { pthread_mutex_unlock(&finished_lock); }

/* With finished_lock held: t's entry, or NULL. */
static struct finished **finished_find(pthread_t t) {
    for (struct finished **p = &finished_list; *p; p = &(*p)->next)
        if (pthread_equal((*p)->thread, t))
            return p;
    return NULL;
}

/* Called by a GC_pthread_create thread as it ends, before it detaches from
 * rudo (so that a suspension finds it in one place or the other). A thread
 * created detached is forgotten at once, as bdwgc does. */
static void finished_add(void) {
    pthread_attr_t attr;
    int state = PTHREAD_CREATE_JOINABLE;
    if (pthread_getattr_np(pthread_self(), &attr) == 0) {
        pthread_attr_getdetachstate(&attr, &state);
        pthread_attr_destroy(&attr);
    }
    struct finished *f = state == PTHREAD_CREATE_JOINABLE ? malloc(sizeof *f) : NULL;
    if (!f)
        return; /* detached, or no memory: it is then merely unknown */
    f->thread = pthread_self();
    f->suspended = false;
    pthread_mutex_lock(&finished_lock);
    f->next = finished_list;
    finished_list = f;
    pthread_mutex_unlock(&finished_lock);
}

static void finished_remove(pthread_t t) {
    pthread_mutex_lock(&finished_lock);
    struct finished **p = finished_find(t);
    struct finished *f = p ? *p : NULL;
    if (f)
        *p = f->next;
    pthread_mutex_unlock(&finished_lock);
    free(f);
}

/* Whether t is a finished thread; sets its mark to `mark` if mark >= 0;
 * returns the mark in *was. */
static bool finished_mark(pthread_t t, int mark, bool *was) {
    pthread_mutex_lock(&finished_lock);
    struct finished **p = finished_find(t);
    if (p) {
        *was = (*p)->suspended;
        if (mark >= 0)
            (*p)->suspended = mark;
    }
    pthread_mutex_unlock(&finished_lock);
    return p != NULL;
}

struct start_info {
    void *(*fn)(void *);
    void *arg;
    sem_t attached;
};

static void *thread_start(void *p) {
    struct start_info *si = p;
    void *(*fn)(void *) = si->fn;
    void *arg = si->arg;
    compat_thread_attach();
    /* As bdwgc: GC_pthread_create returns once the thread is registered
     * (GC_suspend_thread may follow at once). si is the creator's. */
    sem_post(&si->attached);
    void *r = fn(arg);
    finished_add();
    compat_thread_detach();
    return r;
}

GC_API int GC_pthread_create(pthread_t *t, const pthread_attr_t *attr,
                             void *(*fn)(void *), void *arg) {
    compat_enter();
    struct start_info si = {fn, arg, {{0}}};
    sem_init(&si.attached, 0, 0);
    int rc = pthread_create(t, attr, thread_start, &si);
    if (rc == 0) {
        /* A collection may need this thread meanwhile: wait in a blocking
         * region (the new thread's attach waits for collections). */
        bool block = rudo_thread_is_attached() && blocking_depth == 0;
        if (block)
            compat_blocking_enter();
        while (sem_wait(&si.attached) != 0) {
        }
        if (block)
            compat_blocking_leave();
    }
    sem_destroy(&si.attached);
    return rc;
}

GC_API int GC_pthread_join(pthread_t t, void **ret) {
    bool block = rudo_heap_exists() && rudo_thread_is_attached();
    if (block)
        compat_blocking_enter();
    int rc = pthread_join(t, ret);
    if (block)
        compat_blocking_leave();
    if (rc == 0)
        finished_remove(t);
    return rc;
}

GC_API int GC_pthread_detach(pthread_t t) {
    int rc = pthread_detach(t);
    if (rc == 0)
        finished_remove(t);
    return rc;
}

/* ---- suspension by request (bdwgc's javaxfc.h) ----
 * rudo_thread_suspend and friends, with bdwgc's results: no errors, an
 * unregistered thread is ignored, a second suspension or resumption does
 * nothing; a finished thread not yet joined is only marked. */
static int outside_region(int (*fn)(pthread_t), pthread_t t) {
    /* rudo's calls are not made inside a blocking region; bdwgc's may be
     * (GC_do_blocking): leave it around the call, as
     * GC_call_with_gc_active does. */
    int saved = blocking_depth;
    if (saved) {
        blocking_depth = 0;
        rudo_blocking_leave();
    }
    int rc = fn(t);
    if (saved) {
        rudo_blocking_enter();
        blocking_depth = saved;
    }
    return rc;
}

GC_API void GC_suspend_thread(pthread_t t) {
    compat_enter();
    bool was;
    if (outside_region(rudo_thread_suspend, t) == RUDO_ENOENT)
        (void)finished_mark(t, 1, &was);
}

GC_API void GC_resume_thread(pthread_t t) {
    compat_enter();
    bool was;
    if (outside_region(rudo_thread_resume, t) == RUDO_ENOENT)
        (void)finished_mark(t, 0, &was);
}

GC_API int GC_is_thread_suspended(pthread_t t) {
    compat_enter();
    bool was = false;
    if (rudo_thread_is_suspended(t))
        return 1;
    return finished_mark(t, -1, &was) && was;
}

GC_API int GC_pthread_cancel(pthread_t t) {
    /* The target's attachment ends with it (rudo's thread-exit destructor). */
    return pthread_cancel(t);
}

GC_API void GC_pthread_exit(void *ret) {
    if (rudo_heap_exists() && rudo_thread_is_attached()) {
        finished_add();
        compat_thread_detach();
    }
    pthread_exit(ret);
}

GC_API int GC_pthread_sigmask(int how, const sigset_t *set, sigset_t *old) {
    /* As bdwgc: the suspend and restart signals stay unblocked, or a
     * collection could only wait for the thread's next safepoint. */
    if (set && (how == SIG_BLOCK || how == SIG_SETMASK) && rudo_heap_exists()) {
        int sus, res;
        rudo_stop_signals(&sus, &res);
        sigset_t copy = *set;
        if (sus)
            sigdelset(&copy, sus);
        if (res)
            sigdelset(&copy, res);
        return pthread_sigmask(how, &copy, old);
    }
    return pthread_sigmask(how, set, old);
}

/* ---- blocking regions and stacks ---- */

GC_API void *GC_do_blocking(GC_fn_type fn, void *data) {
    compat_enter();
    compat_blocking_enter();
    void *r = fn(data);
    compat_blocking_leave();
    return r;
}

GC_API void *GC_call_with_gc_active(GC_fn_type fn, void *data) {
    compat_enter();
    if (blocking_depth == 0)
        return fn(data);
    int saved = blocking_depth;
    blocking_depth = 0;
    rudo_blocking_leave();
    void *r = fn(data);
    rudo_blocking_enter();
    blocking_depth = saved;
    return r;
}

GC_API int GC_get_stack_base(struct GC_stack_base *sb) {
    pthread_attr_t attr;
    if (pthread_getattr_np(pthread_self(), &attr) != 0)
        return GC_UNIMPLEMENTED;
    void *addr;
    size_t size;
    int rc = pthread_attr_getstack(&attr, &addr, &size);
    pthread_attr_destroy(&attr);
    if (rc != 0)
        return GC_UNIMPLEMENTED;
    sb->mem_base = (char *)addr + size;
    return GC_SUCCESS;
}

GC_API void *GC_call_with_stack_base(GC_stack_base_func fn, void *arg) {
    /* As bdwgc: the caller's frame approximates the stack's base. */
    struct GC_stack_base sb;
    sb.mem_base = (void *)&sb;
    return fn(&sb, arg);
}

/* bdwgc's GC_get_my_stackbottom returns the thread's record, a handle that
 * is the same at every call and names the thread for GC_set_stackbottom.
 * Here it is the address of a per-thread byte. */
static __thread char stack_handle;

GC_API void *GC_get_my_stackbottom(struct GC_stack_base *sb) {
    compat_enter();
    void *lo, *hi;
    rudo_stack_get(&lo, &hi);
    sb->mem_base = hi;
    return &stack_handle;
}

GC_API void GC_set_stackbottom(void *gc_thread, const struct GC_stack_base *sb) {
    /* rudo sets only the calling thread's stack (rudo_stack_set): another
     * thread's handle is ignored, with a warning (it once changed the
     * caller's stack instead, and the next collection crashed scanning
     * the wrong range). NULL is the calling thread, as in bdwgc. */
    if (gc_thread && gc_thread != (void *)&stack_handle) {
        static atomic_int once;
        compat_warn_once(&once, "GC Warning: GC_set_stackbottom: another thread's "
                                "stack cannot be set here; ignored\n");
        return;
    }
    compat_enter();
    void *lo, *hi;
    rudo_stack_get(&lo, &hi);
    if (sb && (char *)sb->mem_base > (char *)lo)
        rudo_stack_set(lo, sb->mem_base);
}

/* ---- the allocation lock ----
 * bdwgc's lock serializes allocation and collection. Here it is a mutex of
 * its own, taken inside a blocking region, and collections are disabled
 * while GC_call_with_alloc_lock's function runs (so it sees no collection,
 * as under bdwgc's lock). An explicit collection (compat_collect) takes it
 * too, as bdwgc's GC_gcollect does: rudo_collect returns without
 * collecting while another thread's function holds collections off, so a
 * GC_gcollect that did not wait for the lock was lost whenever it met one
 * (Guile's weak tables run under it on another thread: weak-tables.scm's
 * three (gc) calls, under load, collected nothing in 3 runs of 150).
 * The lock counts its owner's depth: the collection runs finalizers and
 * the program's collection callbacks on the thread that holds it, and one
 * that takes the lock again (GC_call_with_alloc_lock) must not deadlock
 * on itself. */
static pthread_mutex_t alloc_lock = PTHREAD_MUTEX_INITIALIZER;
static __thread unsigned alloc_lock_depth;

GC_API void GC_alloc_lock(void) {
    if (alloc_lock_depth++ > 0)
        return;
    /* Free (the common case): no blocking region, which costs a capture
     * of this thread's registers and frames. */
    if (pthread_mutex_trylock(&alloc_lock) == 0)
        return;
    bool block = rudo_heap_exists() && rudo_thread_is_attached() && blocking_depth == 0;
    if (block)
        compat_blocking_enter();
    pthread_mutex_lock(&alloc_lock);
    if (block)
        compat_blocking_leave();
}

GC_API void GC_alloc_unlock(void) {
    if (alloc_lock_depth == 0) { /* bdwgc: undefined; here a message */
        static atomic_int once;
        compat_warn_once(&once, "GC Warning: GC_alloc_unlock without GC_alloc_lock (ignored)\n");
        return;
    }
    if (--alloc_lock_depth == 0)
        pthread_mutex_unlock(&alloc_lock);
}

void compat_exclusive_begin(void) {
    GC_alloc_lock();
    rudo_disable();
}

void compat_exclusive_end(void) {
    rudo_enable();
    GC_alloc_unlock();
}

GC_API void *GC_call_with_alloc_lock(GC_fn_type fn, void *data) {
    compat_enter();
    compat_exclusive_begin();
    void *r = fn(data);
    compat_exclusive_end();
    return r;
}

/* Not inlined, and holding no pointer of its own: its frame lies between
 * the client's and the collector's (see GC_gcollect). */
__attribute__((noinline)) bool compat_collect(void) {
    GC_alloc_lock();
    /* A rudo_disable of the program's own (not of the lock: this thread
     * holds it) still turns the collection off. */
    bool on = !rudo_is_disabled();
    if (on)
        rudo_collect();
    GC_alloc_unlock();
    return on;
}

/* fork: rudo's own atfork handlers keep the heap usable in the child. */
GC_API void GC_atfork_prepare(void) {}
GC_API void GC_atfork_parent(void) {}
GC_API void GC_atfork_child(void) {}
GC_API void GC_set_handle_fork(int on) { (void)on; }

/* gc.h redirects dlopen here (with GC_THREADS). bdwgc holds collections
 * off during dlopen; rudo needs nothing: the new library's data is found at
 * the next collection (statics.c). A constructor that allocates may stop
 * at a safepoint inside dlopen, holding the loader's main lock; the
 * collector's walk of the modules needs at most the loader's write lock,
 * which dlopen holds briefly and never while running constructors
 * (glibc), and does without it when a stopped thread holds it
 * (rudo_static_segments). */
GC_API void *GC_dlopen(const char *path, int mode) { return dlopen(path, mode); }
