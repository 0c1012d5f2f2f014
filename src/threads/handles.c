/* handles.c — scoped handles: per-thread root slots that live until the
 * scope that made them exits. Slots sit in fixed chunks so a handle's
 * address never changes. */
#include <stdlib.h>

#include "base/base.h"
#include "threads/threads.h"

#define CHUNK_SLOTS 254

typedef struct hchunk {
    struct hchunk *prev;
    size_t used;
    void *slots[CHUNK_SLOTS];
} hchunk;

/* m->handles points at the newest chunk (cast); m->nhandles counts all. */
static hchunk *top(rudo__mutator *m) { return (hchunk *)(void *)m->handles; }

/* Every call that changes the chunks runs inside rudo (rudo__runtime_enter):
 * a collection that suspended the thread by signal halfway through would
 * read a slot not yet written, or a chunk being freed. */
void rudo_scope_enter(rudo_scope *scope) {
    rudo__mutator *m = rudo__need_mutator("rudo_scope_enter");
    scope->rudo__mark = m->nhandles;
    scope->rudo__depth = ++m->scope_depth;
}

void rudo_scope_exit(rudo_scope *scope) {
    const char *fn = "rudo_scope_exit";
    rudo__mutator *m = rudo__need_mutator(fn);
    if (scope->rudo__depth != m->scope_depth || m->scope_depth == 0)
        rudo__fatal(fn, "scopes must exit in reverse order of entry "
                    "(exiting depth %u, innermost is %u)",
                    scope->rudo__depth, m->scope_depth);
    m->scope_depth--;
    rudo__runtime_enter();
    while (m->nhandles > scope->rudo__mark) {
        hchunk *c = top(m);
        size_t drop = m->nhandles - scope->rudo__mark;
        if (drop < c->used) {
            c->used -= drop;
            m->nhandles -= drop;
        } else {
            m->nhandles -= c->used;
            m->handles = (void **)(void *)c->prev;
            free(c);
        }
    }
    rudo__runtime_leave();
}

void **rudo_handle(void *obj) {
    const char *fn = "rudo_handle";
    rudo__mutator *m = rudo__need_mutator(fn);
    if (m->scope_depth == 0)
        rudo__fatal(fn, "no scope is open (call rudo_scope_enter first)");
    rudo__runtime_enter();
    hchunk *c = top(m);
    if (!c || c->used == CHUNK_SLOTS) {
        hchunk *n = malloc(sizeof *n);
        if (!n)
            rudo__fatal(fn, "out of memory");
        n->prev = c;
        n->used = 0;
        m->handles = (void **)(void *)n;
        c = n;
    }
    void **slot = &c->slots[c->used];
    *slot = obj;
    c->used++;
    m->nhandles++;
    rudo__runtime_leave();
    return slot;
}

void rudo__handles_enumerate(rudo__mutator *m, rudo__root_visitor *v) {
    for (hchunk *c = top(m); c; c = c->prev)
        for (size_t i = 0; i < c->used; i++)
            v->slot(v, &c->slots[i]);
}

void rudo__handles_free(rudo__mutator *m) {
    hchunk *c = top(m);
    while (c) {
        hchunk *p = c->prev;
        free(c);
        c = p;
    }
    m->handles = NULL;
    m->nhandles = 0;
}
