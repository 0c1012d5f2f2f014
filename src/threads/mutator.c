/* mutator.c — attaching and detaching threads; dropping the vanished ones
 * in a forked child. */
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "alloc/alloc.h"
#include "base/base.h"
#include "heap/heap.h"
#include "threads/threads.h"
#include "platform/platform.h"

__thread rudo__mutator *rudo__me __attribute__((tls_model("initial-exec")));

static pthread_key_t exit_key;
static pthread_once_t exit_key_once = PTHREAD_ONCE_INIT;

/* Runs when a thread that is still attached exits. */
static void on_thread_exit(void *arg) {
    rudo__mutator *m = arg;
    if (!m || rudo__self() != m || !rudo__the_heap)
        return;
#ifdef RUDO_DEBUG
    rudo__warn("rudo_thread_detach", "thread exited while attached; "
               "detaching it");
#endif
    if (m->state == RUDO_MUT_BLOCKED)
        rudo_blocking_leave();
    rudo__mutator_detach(m);
}

void rudo__mutators_fork_child(rudo__heap *h) {
    rudo__mutator *self = rudo__self();
    rudo__mutator *next;
    for (rudo__mutator *m = h->world.mutators; m; m = next) {
        next = m->next;
        if (m == self) {
            /* Its current pages stay its own; its stashes go back, so that
             * rudo__alloc_fork_child finds a stashed page only where a
             * vanished thread was taking it. */
            rudo__alloc_unstash_all(h, m->kalloc);
            continue;
        }
        /* As rudo__mutator_detach, without the thread: heap_lock is held
         * and no collection runs. */
        rudo__alloc_retire_all(h, m->kalloc);
        rudo__mutator_count_flush(h, m);
        for (unsigned k = 0; k < RUDO_MAX_KINDS; k++)
            free(m->kalloc[k]);
        rudo__handles_free(m);
        free(m->tls);
        free(m);
    }
    rudo__alloc_fork_child(h, self ? self->kalloc : NULL);
    h->world.mutators = self;
    h->world.nmutators = self ? 1 : 0;
    h->world.nrunning = self && self->state == RUDO_MUT_RUNNING ? 1 : 0;
    if (self) {
        self->next = self->prev = NULL;
        self->tid = (pid_t)syscall(SYS_gettid); /* the child's own */
        /* A suspension of this thread that was asked and not yet served
         * has no asker in the child. Relaxed: no other thread exists. */
        uint64_t e = atomic_load_explicit(&self->ext_req, memory_order_relaxed);
        if (e & 1)
            atomic_store_explicit(&self->ext_req, e + 1, memory_order_relaxed);
    }
    rudo__handshake_fork_child(h);
}

static void make_key(void) { pthread_key_create(&exit_key, on_thread_exit); }

void rudo__mutators_init(void) { pthread_once(&exit_key_once, make_key); }

rudo__mutator *rudo__need_mutator(const char *fn) {
    rudo__mutator *m = rudo__self();
    if (RUDO_UNLIKELY(!m)) {
        rudo__need_heap(fn);
        rudo__fatal(fn, "the calling thread is not attached "
                    "(call rudo_thread_attach first)");
    }
    return m;
}

int rudo__mutator_attach(unsigned flags) {
    rudo__heap *h = rudo__the_heap;
    rudo__mutator *m = calloc(1, sizeof *m);
    if (!m)
        return RUDO_ENOMEM;
    int rc = rudo__mutator_stack_init(h, m); /* stack bounds, TLS (stacks.c) */
    if (rc != RUDO_OK) {
        free(m);
        return rc;
    }
    m->tid = (pid_t)syscall(SYS_gettid);
    m->thread = pthread_self();
    m->attach_flags = flags;
    /* Inside rudo from here to the end: once linked, the thread may be
     * signalled, and its handler must find it complete (rudo__me, its
     * fast-path state) or defer. */
    {
        /* With two threads, one may be stopped holding the loader's lock:
         * the static-data scan (or a root callback's rudo_static_segments)
         * then needs the loader helper, started here while this thread is
         * not yet one the collector waits for. Not before: a program with
         * one thread has no use for it (and forks single-threaded). */
        rudo__lock_acquire(&h->world.lock);
        bool second = h->world.nmutators > 0;
        rudo__lock_release(&h->world.lock);
        if (second)
            rudo__os_loader_start();
    }
    rudo__runtime_enter();
    rudo__me = m;
    rudo__lock_acquire(&h->world.lock);
    /* Not yet a mutator: a running collection does not wait for us. */
    while (h->world.collecting)
        rudo__lock_wait(&h->world.lock, &h->world.resume_cv);
    m->id = h->world.next_mutator_id++;
    m->state = RUDO_MUT_RUNNING;
    m->next = h->world.mutators;
    if (h->world.mutators)
        h->world.mutators->prev = m;
    h->world.mutators = m;
    h->world.nmutators++;
    h->world.nrunning++;
    rudo__tl = &m->fast;
    rudo__lock_release(&h->world.lock);
    pthread_setspecific(exit_key, m);
    rudo__runtime_leave();
    return RUDO_OK;
}

void rudo__mutator_detach(rudo__mutator *m) {
    rudo__heap *h = rudo__the_heap;
    rudo__runtime_enter(); /* until m is gone: see rudo__lock_idle */
    rudo__capture_roots(m);
    rudo__lock_acquire(&h->world.lock);
    rudo__park(h, m);
    /* No collection runs while gc_lock is held: hand the pages back. */
    rudo__lock_acquire(&h->heap_lock);
    rudo__alloc_retire_all(h, m->kalloc);
    rudo__lock_release(&h->heap_lock);
    /* Its unflushed count stays in the totals and the trigger. */
    rudo__mutator_count_flush(h, m);
    if (m->prev)
        m->prev->next = m->next;
    else
        h->world.mutators = m->next;
    if (m->next)
        m->next->prev = m->prev;
    h->world.nmutators--;
    h->world.nrunning--;
    rudo__lock_release(&h->world.lock);
    for (unsigned k = 0; k < RUDO_MAX_KINDS; k++)
        free(m->kalloc[k]);
    rudo__handles_free(m);
    free(m->tls);
    rudo__tl = NULL;
    rudo__me = NULL;
    pthread_setspecific(exit_key, NULL);
    free(m);
    rudo__runtime_leave();
}

static int attach(unsigned flags, const char *fn) {
    rudo__heap *h = rudo__the_heap;
    if (!h)
        return RUDO_ESTATE;
    /* A marker thread would wait for its own collection to end. */
    rudo__check_not_collecting(fn);
    if (flags & ~(unsigned)RUDO_ATTACH_SIGNAL)
        return RUDO_EINVAL;
    if (rudo__self())
        return RUDO_EEXIST;
    /* Such a thread could only be waited for at safepoints it never
     * reaches. */
    if ((flags & RUDO_ATTACH_SIGNAL) && !rudo__sigstop_enabled(h))
        return RUDO_ESTATE;
    return rudo__mutator_attach(flags);
}

int rudo_thread_attach(void) { return attach(0, "rudo_thread_attach"); }

int rudo_thread_attach_flags(unsigned flags) {
    return attach(flags, "rudo_thread_attach_flags");
}

void rudo_thread_detach(void) {
    const char *fn = "rudo_thread_detach";
    rudo__check_not_collecting(fn); /* it parks while a collection runs */
    rudo__mutator *m = rudo__need_mutator(fn);
    if (m->state == RUDO_MUT_BLOCKED)
        rudo__fatal(fn, "the thread is inside a blocking region");
    rudo__check_not_busy(m, fn, "(it uses the thread's state afterwards); "
                         "detach after it returns");
    rudo__mutator_detach(m);
}

bool rudo_thread_is_attached(void) { return rudo__self() != NULL; }
