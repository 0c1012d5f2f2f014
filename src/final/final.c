/* final.c — finalization: the per-object registrations (finalizers and
 * guardians), finding the objects due after marking, the queue of due
 * entries (roots until their finalizer has run), running it, and the
 * guardians' queues. docs/design.md, "Finalization". */
#include <stdint.h>
#include <stdlib.h>

#include "base/base.h"
#include "final/final.h"

/* A guardian: the objects registered with it that became unreachable
 * (resurrected: they are roots here), until the program polls them. */
struct rudo_guardian {
    void **ready;              /* FIFO [head, tail) */
    size_t head, tail, cap;
    struct rudo_guardian *next, *prev; /* the heap's list */
};

void rudo__final_init(rudo__heap *h) {
    rudo__final *f = &h->final;
    rudo__lock_init(&f->lock, RUDO_RANK_FINAL, "final_lock");
}

void rudo__final_destroy(rudo__heap *h) {
    rudo__final *f = &h->final;
    while (f->guardians)
        rudo__guardian_destroy(h, f->guardians);
    rudo__meta_free(f->kq);
    rudo__meta_free(f->queue);
    free(f->reg);
    rudo__lock_destroy(&f->lock);
    *f = (rudo__final){0};
}

/* Appends to a FIFO of `size`-byte elements, compacting or doubling it. */
static void *fifo_push(void *items, size_t *head, size_t *tail, size_t *cap,
                       size_t size, const char *fn) {
    char *q = items;
    if (*tail == *cap) {
        if (*head > 0) {
            for (size_t i = *head; i < *tail; i++)
                for (size_t b = 0; b < size; b++)
                    q[(i - *head) * size + b] = q[i * size + b];
            *tail -= *head;
            *head = 0;
        }
        if (*tail == *cap) {
            size_t c = *cap ? *cap * 2 : 64;
            /* Meta memory: queued while the world is stopped (base.h). */
            char *n = rudo__meta_realloc_n(q, c, size);
            if (!n)
                rudo__fatal(fn, "out of memory in a finalization queue");
            q = n;
            *cap = c;
        }
    }
    (*tail)++;
    return q;
}

/* Queues e as due (world stopped, or final_lock held by the caller). */
static void queue_due(rudo__final *f, rudo__final_entry e) {
    f->queue = fifo_push(f->queue, &f->head, &f->tail, &f->cap, sizeof e,
                         "rudo_collect");
    f->queue[f->tail - 1] = e;
}

/* Queues obj for its kind's finalizer (as above). */
static void queue_kind(rudo__final *f, void *obj) {
    f->kq = fifo_push(f->kq, &f->khead, &f->ktail, &f->kcap, sizeof obj,
                      "rudo_collect");
    f->kq[f->ktail - 1] = obj;
}

/* ---- the registration map ---------------------------------------------- */

/* The entry of obj, or (for_insert) where it would go. */
static size_t reg_probe(const rudo__final *f, const void *obj, bool for_insert) {
    size_t mask = f->reg_cap - 1, i = rudo__hash_ptr(obj) & mask, tomb = SIZE_MAX;
    for (;;) {
        void *o = f->reg[i].obj;
        if (o == NULL)
            return for_insert && tomb != SIZE_MAX ? tomb : i;
        if (o == RUDO__FINAL_TOMB) {
            if (tomb == SIZE_MAX)
                tomb = i;
        } else if (o == obj) {
            return i;
        }
        i = (i + 1) & mask;
    }
}

static void reg_grow(rudo__final *f, const char *fn) {
    size_t cap = f->reg_cap && f->reg_live * 4 > f->reg_cap ? f->reg_cap * 2
                 : f->reg_cap ? f->reg_cap : 64;
    rudo__final_entry *old = f->reg;
    size_t old_cap = f->reg_cap;
    f->reg = calloc(cap, sizeof *f->reg);
    if (!f->reg)
        rudo__fatal(fn, "out of memory for finalizer registrations");
    f->reg_cap = cap;
    f->reg_used = f->reg_live = 0;
    for (size_t i = 0; i < old_cap; i++) {
        if (old[i].obj && old[i].obj != RUDO__FINAL_TOMB) {
            f->reg[reg_probe(f, old[i].obj, true)] = old[i];
            f->reg_used++;
            f->reg_live++;
        }
    }
    free(old);
}

/* With f's lock held: aborts, naming fn, unless g is a guardian of the
 * heap that has not been destroyed. A list walk, not a tag in g: a
 * destroyed guardian's memory is freed, and reading it would be the very
 * use after free the check is for. Programs hold a handful of guardians. */
static void need_guardian(rudo__final *f, const struct rudo_guardian *g, const char *fn) {
    for (const struct rudo_guardian *o = f->guardians; o; o = o->next)
        if (o == g)
            return;
    rudo__lock_release(&f->lock);
    rudo__fatal(fn, "%p is not a guardian of this heap (destroyed already, or "
                "not made by rudo_guardian_new)", (const void *)g);
}

int rudo__final_register(rudo__heap *h, rudo__final_entry e, const char *fn) {
    rudo__final *f = &h->final;
    rudo__lock_acquire(&f->lock);
    if (e.guardian)
        need_guardian(f, e.guardian, fn);
    if ((f->reg_used + 1) * 2 > f->reg_cap)
        reg_grow(f, fn);
    size_t i = reg_probe(f, e.obj, false);
    int rc = RUDO_EEXIST;
    if (f->reg[i].obj != e.obj) {
        i = reg_probe(f, e.obj, true);
        if (f->reg[i].obj == NULL)
            f->reg_used++;
        f->reg[i] = e;
        f->reg_live++;
        rc = RUDO_OK;
    }
    rudo__lock_release(&f->lock);
    return rc;
}

int rudo__final_unregister(rudo__heap *h, void *obj) {
    rudo__final *f = &h->final;
    rudo__lock_acquire(&f->lock);
    int rc = RUDO_ENOENT;
    if (f->reg_cap) {
        size_t i = reg_probe(f, obj, false);
        if (f->reg[i].obj == obj) {
            f->reg[i].obj = RUDO__FINAL_TOMB;
            f->reg_live--;
            rc = RUDO_OK;
        }
    }
    rudo__lock_release(&f->lock);
    return rc;
}

/* ---- after marking --------------------------------------------------------- */

/* Appends obj to the collection's list of objects to mark from. */
static void add_due(void ***objs, size_t *n, size_t *cap, void *obj) {
    if (*n == *cap)
        *objs = rudo__grow(*objs, cap, sizeof **objs, 256, "rudo_collect",
                           "out of memory queueing finalizers");
    (*objs)[(*n)++] = obj;
}

/* Queues the due objects of page p (see rudo__final_find_due). */
static void page_due(rudo__heap *h, rudo__page *p, void ***due_objs, size_t *ndue,
                     size_t *cap) {
    /* rudo_kind_set_finalizer may run meanwhile (from a thread that is
     * not stopped): a page's objects are queued if its kind had a
     * finalizer when this loop reached the page. Which pair runs is
     * decided when it runs (rudo__final_run). */
    if ((p->type != RUDO_PAGE_SMALL && p->type != RUDO_PAGE_LARGE) ||
        !rudo__kind_fin(&h->kinds[p->kind]))
        return;
    char *start = rudo__page_addr(p);
    for (size_t w = 0; w * 64 < p->ncells; w++) {
        uint64_t due = rudo__ld(&p->bits[w].alloc) & ~p->fin[w] & ~rudo__ld(&p->bits[w].mark);
        while (due) {
            size_t i = w * 64 + (size_t)__builtin_ctzll(due);
            due &= due - 1;
            p->fin[w] |= (uint64_t)1 << (i % 64);
            add_due(due_objs, ndue, cap, start + i * p->cell_size);
        }
    }
}

size_t rudo__final_find_due(rudo__heap *h, bool major, void ***out) {
    rudo__final *f = &h->final;
    void **due_objs = NULL;
    size_t ndue = 0, cap = 0;
    if (!major) {
        /* Young objects are only on touched pages (heap.h). A page may be
         * listed twice; its fin bits stop a second queuing. */
        for (size_t i = 0; i < h->ntouched; i++)
            page_due(h, &h->pages[h->touched[i]], &due_objs, &ndue, &cap);
    }
    for (size_t pi = 0; major && pi < rudo__hwm(h); pi = rudo__pages_next(h, pi))
        page_due(h, &h->pages[pi], &due_objs, &ndue, &cap);
    size_t nkind = ndue;
    rudo__lock_acquire(&f->lock);
    for (size_t i = 0; i < nkind; i++)
        queue_kind(f, due_objs[i]);
    /* Per-object registrations whose object is unreachable: due once (the
     * registration ends), finalizers and guardians alike. */
    for (size_t i = 0; i < f->reg_cap; i++) {
        rudo__final_entry e = f->reg[i];
        if (!e.obj || e.obj == RUDO__FINAL_TOMB || e.ordered ||
            !rudo__unmarked_cell(h, e.obj))
            continue;
        f->reg[i].obj = RUDO__FINAL_TOMB;
        f->reg_live--;
        queue_due(f, e);
        add_due(&due_objs, &ndue, &cap, e.obj);
    }
    rudo__lock_release(&f->lock);
    h->final_queued = ndue;
    *out = due_objs;
    return ndue;
}

/* The unmarked objects with an ordered registration; with `take`, they
 * are queued and their registrations end. */
static size_t ordered(rudo__heap *h, void ***out, bool take) {
    rudo__final *f = &h->final;
    void **objs = NULL;
    size_t n = 0, cap = 0;
    rudo__lock_acquire(&f->lock);
    for (size_t i = 0; i < f->reg_cap; i++) {
        rudo__final_entry e = f->reg[i];
        if (!e.obj || e.obj == RUDO__FINAL_TOMB || !e.ordered ||
            !rudo__unmarked_cell(h, e.obj))
            continue;
        if (take) {
            f->reg[i].obj = RUDO__FINAL_TOMB;
            f->reg_live--;
            queue_due(f, e);
        }
        add_due(&objs, &n, &cap, e.obj);
    }
    rudo__lock_release(&f->lock);
    if (take)
        h->final_queued += n;
    *out = objs;
    return n;
}

size_t rudo__final_ordered_candidates(rudo__heap *h, void ***out) {
    return ordered(h, out, false);
}

bool rudo__final_ignores_self(rudo__heap *h, void *obj) {
    rudo__final *f = &h->final;
    rudo__lock_acquire(&f->lock);
    bool r = false;
    if (f->reg_cap) {
        size_t i = reg_probe(f, obj, false);
        r = f->reg[i].obj == obj && f->reg[i].ignore_self;
    }
    rudo__lock_release(&f->lock);
    return r;
}

size_t rudo__final_ordered_due(rudo__heap *h, void ***out) {
    return ordered(h, out, true);
}

void rudo__final_enumerate(rudo__heap *h, rudo__root_visitor *v) {
    rudo__final *f = &h->final;
    rudo__lock_acquire(&f->lock);
    for (size_t i = f->khead; i < f->ktail; i++)
        v->slot(v, &f->kq[i]);
    for (size_t i = f->head; i < f->tail; i++)
        v->slot(v, &f->queue[i].obj);
    for (struct rudo_guardian *g = f->guardians; g; g = g->next)
        for (size_t i = g->head; i < g->tail; i++)
            v->slot(v, &g->ready[i]);
    rudo__lock_release(&f->lock);
}

/* ---- running ----------------------------------------------------------------- */

/* Runs one due entry, outside every lock. */
static void run_entry(rudo__heap *h, rudo__final_entry e) {
    if (e.fn) {
        e.fn(e.obj, e.data);
    } else if (e.data != RUDO__FINAL_TOMB) {
        rudo__page *p = rudo__head_page_of(h, e.obj);
        /* The pair in effect now (rudo.h, rudo_kind_set_finalizer): one
         * acquire load of the immutable record, so fn and data match even
         * if the finalizer is being changed concurrently. */
        const rudo__finalizer *fin = rudo__kind_fin(&h->kinds[p->kind]);
        if (fin)
            fin->fn(e.obj, fin->data);
    }
}

size_t rudo__final_run(rudo__heap *h, bool demanded) {
    rudo__final *f = &h->final;
    size_t ran = 0;
    rudo__lock_acquire(&f->lock);
    /* One runner at a time: a finalizer that collects, or another thread
     * finishing a collection, leaves the queue to the running thread. In
     * on-demand mode only rudo_run_finalizers runs them. */
    bool empty = f->head == f->tail && f->khead == f->ktail;
    if (f->running || empty || (f->on_demand && !demanded)) {
        rudo__lock_release(&f->lock);
        return 0;
    }
    f->running = true;
    for (;;) {
        /* The object stays in its queue (a root) until its finalizer
         * returns; only the runner removes entries. */
        bool kind = f->khead != f->ktail;
        if (!kind && f->head == f->tail)
            break;
        rudo__final_entry e = kind ? (rudo__final_entry){f->kq[f->khead], NULL, NULL,
                                                         NULL, false, false}
                                   : f->queue[f->head];
        if (e.guardian) {
            /* Moves from one root to another without leaving the lock. */
            struct rudo_guardian *g = e.guardian;
            g->ready = fifo_push(g->ready, &g->head, &g->tail, &g->cap,
                                 sizeof *g->ready, "rudo_collect");
            g->ready[g->tail - 1] = e.obj;
        } else {
            rudo__lock_release(&f->lock);
            run_entry(h, e);
            rudo__lock_acquire(&f->lock);
        }
        if (kind)
            f->khead++;
        else
            f->head++;
        ran++;
        /* Relaxed: a statistic. */
        atomic_fetch_add_explicit(&h->finalizers_run, 1, memory_order_relaxed);
    }
    f->running = false;
    rudo__lock_release(&f->lock);
    return ran;
}

/* ---- guardians --------------------------------------------------------------- */

struct rudo_guardian *rudo__guardian_new(rudo__heap *h) {
    struct rudo_guardian *g = calloc(1, sizeof *g);
    if (!g)
        return NULL;
    rudo__final *f = &h->final;
    rudo__lock_acquire(&f->lock);
    g->next = f->guardians;
    if (g->next)
        g->next->prev = g;
    f->guardians = g;
    rudo__lock_release(&f->lock);
    return g;
}

void rudo__guardian_destroy(rudo__heap *h, struct rudo_guardian *g) {
    rudo__final *f = &h->final;
    rudo__lock_acquire(&f->lock);
    need_guardian(f, g, "rudo_guardian_destroy");
    if (g->prev)
        g->prev->next = g->next;
    else
        f->guardians = g->next;
    if (g->next)
        g->next->prev = g->prev;
    /* Registrations that name it deliver nowhere now: drop them, and the
     * due entries that would deliver to it. */
    for (size_t i = 0; i < f->reg_cap; i++) {
        if (f->reg[i].obj && f->reg[i].obj != RUDO__FINAL_TOMB &&
            f->reg[i].guardian == g) {
            f->reg[i].obj = RUDO__FINAL_TOMB;
            f->reg_live--;
        }
    }
    /* A due entry for it is dropped the same way: it becomes a no-op
     * (fn NULL, guardian NULL, and the kind's own finalizer, if any, has
     * its own entry), and the object is reclaimed once it is unreachable. */
    for (size_t i = f->head; i < f->tail; i++) {
        if (f->queue[i].guardian == g) {
            f->queue[i].guardian = NULL;
            f->queue[i].fn = NULL;
            f->queue[i].data = RUDO__FINAL_TOMB; /* "nothing to run" */
        }
    }
    rudo__lock_release(&f->lock);
    rudo__meta_free(g->ready);
    free(g);
}

void *rudo__guardian_poll(rudo__heap *h, struct rudo_guardian *g) {
    rudo__final *f = &h->final;
    void *obj = NULL;
    rudo__lock_acquire(&f->lock);
    need_guardian(f, g, "rudo_guardian_poll");
    if (g->head != g->tail)
        obj = g->ready[g->head++];
    rudo__lock_release(&f->lock);
    return obj;
}

/* ---- fork ----------------------------------------------------------------------- */

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
