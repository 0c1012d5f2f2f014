/* finalize.c — the queue of objects whose finalizer is due. Queued objects
 * are roots until their finalizer has run. */
#include <stdlib.h>

#include "debug/debug.h"
#include "sweep/sweep.h"

static rudo__lock final_lock;
static void **queue;   /* FIFO: [qhead, qtail) */
static size_t qhead, qtail, qcap;
static bool running; /* a thread is running finalizers (one at a time) */

void rudo__final_init(rudo__heap *h) {
    (void)h;
    rudo__lock_init(&final_lock, RUDO_RANK_FINAL, "final_lock");
}

void rudo__final_destroy(rudo__heap *h) {
    (void)h;
    free(queue);
    queue = NULL;
    qhead = qtail = qcap = 0;
    rudo__lock_destroy(&final_lock);
}

void rudo__final_queue(rudo__heap *h, void *obj) {
    (void)h;
    rudo__lock_acquire(&final_lock);
    if (qtail == qcap) {
        if (qhead > 0) {
            for (size_t i = qhead; i < qtail; i++)
                queue[i - qhead] = queue[i];
            qtail -= qhead;
            qhead = 0;
        }
        if (qtail == qcap) {
            size_t cap = qcap ? qcap * 2 : 64;
            void **q = realloc(queue, cap * sizeof *q);
            if (!q)
                rudo__fatal("rudo_collect", "out of memory queueing finalizers");
            queue = q;
            qcap = cap;
        }
    }
    queue[qtail++] = obj;
    rudo__lock_release(&final_lock);
}

void rudo__final_enumerate(rudo__heap *h, rudo__root_visitor *v) {
    (void)h;
    rudo__lock_acquire(&final_lock);
    for (size_t i = qhead; i < qtail; i++)
        v->slot(v, &queue[i]);
    rudo__lock_release(&final_lock);
}

void rudo__final_run(rudo__heap *h, rudo__mutator *m) {
    (void)m;
    rudo__lock_acquire(&final_lock);
    /* One runner at a time: a finalizer that collects, or another thread
     * finishing a collection, leaves the queue to the running thread. */
    if (running || qhead == qtail) {
        rudo__lock_release(&final_lock);
        return;
    }
    running = true;
    for (;;) {
        if (qhead == qtail) {
            running = false;
            rudo__lock_release(&final_lock);
            break;
        }
        /* The object stays in the queue (a root) until its finalizer
         * returns; only the runner removes entries. */
        void *obj = queue[qhead];
        rudo__lock_release(&final_lock);
        rudo__page *p = rudo__head_page_of(h, obj);
        /* The pair in effect now (rudo.h, rudo_kind_set_finalizer): one
         * acquire load of the immutable record, so fn and data match even
         * if the finalizer is being changed concurrently. */
        const rudo__finalizer *fin = rudo__kind_fin(&h->kinds[p->kind]);
        if (fin)
            fin->fn(obj, fin->data);
        rudo__lock_acquire(&final_lock);
        qhead++;
        /* Relaxed: a statistic. */
        atomic_fetch_add_explicit(&h->finalizers_run, 1, memory_order_relaxed);
    }
}

void rudo__final_fork_prepare(void) { rudo__lock_acquire(&final_lock); }

void rudo__final_fork_parent(void) { rudo__lock_release(&final_lock); }

void rudo__final_fork_child(void) {
    /* A thread that was running finalizers is gone: the child's next
     * collecting thread takes over. The entry it was finalizing is still
     * at the head of the queue (entries leave after their finalizer
     * returns), so the child runs that finalizer on its copy too. */
    running = false;
    rudo__lock_release(&final_lock);
}
