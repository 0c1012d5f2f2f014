/* final.c — the queue of objects whose finalizer is due. Queued objects
 * are roots until their finalizer has run. */
#include <stdlib.h>

#include "base/base.h"
#include "final/final.h"

void rudo__final_init(rudo__heap *h) {
    rudo__final *f = &h->final;
    rudo__lock_init(&f->lock, RUDO_RANK_FINAL, "final_lock");
}

void rudo__final_destroy(rudo__heap *h) {
    rudo__final *f = &h->final;
    free(f->queue);
    f->queue = NULL;
    f->head = f->tail = f->cap = 0;
    rudo__lock_destroy(&f->lock);
}

void rudo__final_queue(rudo__heap *h, void *obj) {
    rudo__final *f = &h->final;
    rudo__lock_acquire(&f->lock);
    if (f->tail == f->cap) {
        if (f->head > 0) {
            for (size_t i = f->head; i < f->tail; i++)
                f->queue[i - f->head] = f->queue[i];
            f->tail -= f->head;
            f->head = 0;
        }
        if (f->tail == f->cap) {
            size_t cap = f->cap ? f->cap * 2 : 64;
            void **q = realloc(f->queue, cap * sizeof *q);
            if (!q)
                rudo__fatal("rudo_collect", "out of memory queueing finalizers");
            f->queue = q;
            f->cap = cap;
        }
    }
    f->queue[f->tail++] = obj;
    rudo__lock_release(&f->lock);
}

size_t rudo__final_find_due(rudo__heap *h, void ***out) {
    void **due_objs = NULL;
    size_t ndue = 0, cap = 0;
    for (size_t pi = 0; pi < rudo__hwm(h); pi = rudo__pages_next(h, pi)) {
        rudo__page *p = &h->pages[pi];
        /* rudo_kind_set_finalizer may run meanwhile (from a thread that is
         * not stopped): a page's objects are queued if its kind had a
         * finalizer when this loop reached the page. Which pair runs is
         * decided when it runs (rudo__final_run). */
        if ((p->type != RUDO_PAGE_SMALL && p->type != RUDO_PAGE_LARGE) ||
            !rudo__kind_fin(&h->kinds[p->kind]))
            continue;
        char *start = rudo__page_addr(p);
        for (size_t w = 0; w * 64 < p->ncells; w++) {
            uint64_t due = rudo__ld(&p->bits[w].alloc) & ~p->fin[w] & ~rudo__ld(&p->bits[w].mark);
            while (due) {
                size_t i = w * 64 + (size_t)__builtin_ctzll(due);
                due &= due - 1;
                p->fin[w] |= (uint64_t)1 << (i % 64);
                if (ndue == cap) {
                    cap = cap ? cap * 2 : 256;
                    void **n = realloc(due_objs, cap * sizeof *n);
                    if (!n)
                        rudo__fatal("rudo_collect", "out of memory queueing finalizers");
                    due_objs = n;
                }
                due_objs[ndue++] = start + i * p->cell_size;
            }
        }
    }
    h->final_queued = ndue;
    for (size_t i = 0; i < ndue; i++)
        rudo__final_queue(h, due_objs[i]);
    *out = due_objs;
    return ndue;
}


void rudo__final_enumerate(rudo__heap *h, rudo__root_visitor *v) {
    rudo__final *f = &h->final;
    rudo__lock_acquire(&f->lock);
    for (size_t i = f->head; i < f->tail; i++)
        v->slot(v, &f->queue[i]);
    rudo__lock_release(&f->lock);
}

void rudo__final_run(rudo__heap *h) {
    rudo__final *f = &h->final;
    rudo__lock_acquire(&f->lock);
    /* One runner at a time: a finalizer that collects, or another thread
     * finishing a collection, leaves the queue to the running thread. */
    if (f->running || f->head == f->tail) {
        rudo__lock_release(&f->lock);
        return;
    }
    f->running = true;
    for (;;) {
        if (f->head == f->tail) {
            f->running = false;
            rudo__lock_release(&f->lock);
            break;
        }
        /* The object stays in the queue (a root) until its finalizer
         * returns; only the runner removes entries. */
        void *obj = f->queue[f->head];
        rudo__lock_release(&f->lock);
        rudo__page *p = rudo__head_page_of(h, obj);
        /* The pair in effect now (rudo.h, rudo_kind_set_finalizer): one
         * acquire load of the immutable record, so fn and data match even
         * if the finalizer is being changed concurrently. */
        const rudo__finalizer *fin = rudo__kind_fin(&h->kinds[p->kind]);
        if (fin)
            fin->fn(obj, fin->data);
        rudo__lock_acquire(&f->lock);
        f->head++;
        /* Relaxed: a statistic. */
        atomic_fetch_add_explicit(&h->finalizers_run, 1, memory_order_relaxed);
    }
}

void rudo__final_fork_prepare(rudo__heap *h) { rudo__lock_acquire(&h->final.lock); }

void rudo__final_fork_parent(rudo__heap *h) { rudo__lock_release(&h->final.lock); }

void rudo__final_fork_child(rudo__heap *h) {
    rudo__final *f = &h->final;
    /* A thread that was running finalizers is gone: the child's next
     * collecting thread takes over. The entry it was finalizing is still
     * at the head of the queue (entries leave after their finalizer
     * returns), so the child runs that finalizer on its copy too. */
    f->running = false;
    rudo__lock_release(&f->lock);
}
