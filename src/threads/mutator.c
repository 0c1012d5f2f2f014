/* mutator.c — attaching and detaching threads. */
#include <stdlib.h>
#include <string.h>

#include "alloc/alloc.h"
#include "debug/debug.h"
#include "heap/heap.h"
#include "platform/platform.h"
#include "roots/roots.h"

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

int rudo__mutator_attach(void) {
    rudo__heap *h = rudo__the_heap;
    rudo__mutator *m = calloc(1, sizeof *m);
    if (!m)
        return RUDO_ENOMEM;
    void *lo;
    if (!rudo__os_stack_bounds(&lo, &m->stack_hi)) {
        free(m);
        rudo__warn("rudo_thread_attach", "cannot find the thread's stack");
        return RUDO_ESTATE;
    }
    m->stack_sp = m->stack_hi;
    rudo__lock_acquire(&h->gc_lock);
    /* Not yet a mutator: a running collection does not wait for us. */
    while (h->collecting)
        rudo__lock_wait(&h->gc_lock, &h->resume_cv);
    m->id = h->next_mutator_id++;
    m->state = RUDO_MUT_RUNNING;
    m->next = h->mutators;
    if (h->mutators)
        h->mutators->prev = m;
    h->mutators = m;
    h->nmutators++;
    h->nrunning++;
    rudo__lock_release(&h->gc_lock);
    rudo__tl = &m->fast;
    pthread_setspecific(exit_key, m);
    return RUDO_OK;
}

void rudo__mutator_detach(rudo__mutator *m) {
    rudo__heap *h = rudo__the_heap;
    rudo__capture_roots(m);
    rudo__lock_acquire(&h->gc_lock);
    rudo__park(h, m);
    /* No collection runs while gc_lock is held: hand the pages back. */
    rudo__lock_acquire(&h->heap_lock);
    rudo__alloc_retire_all(h, m);
    rudo__lock_release(&h->heap_lock);
    if (m->prev)
        m->prev->next = m->next;
    else
        h->mutators = m->next;
    if (m->next)
        m->next->prev = m->prev;
    h->nmutators--;
    h->nrunning--;
    rudo__lock_release(&h->gc_lock);
    for (unsigned k = 0; k < RUDO_MAX_KINDS; k++)
        free(m->kalloc[k]);
    rudo__handles_free(m);
    rudo__tl = NULL;
    pthread_setspecific(exit_key, NULL);
    free(m);
}

int rudo_thread_attach(void) {
    if (!rudo__the_heap)
        return RUDO_ESTATE;
    if (rudo__self())
        return RUDO_EEXIST;
    return rudo__mutator_attach();
}

void rudo_thread_detach(void) {
    const char *fn = "rudo_thread_detach";
    rudo__mutator *m = rudo__need_mutator(fn);
    if (m->state == RUDO_MUT_BLOCKED)
        rudo__fatal(fn, "the thread is inside a blocking region");
    rudo__mutator_detach(m);
}

bool rudo_thread_is_attached(void) { return rudo__self() != NULL; }
