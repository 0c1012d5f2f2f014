/* stacks.c — the thread-specific memory the collector scans: each attached
 * thread's stack bounds (found at attach, or declared by rudo_stack_set when
 * the thread switches stacks) and its static TLS blocks. docs/threads.md,
 * "Stacks and thread-local storage". */
#include <stdlib.h>

#include "base/base.h"
#include "heap/heap.h"
#include "threads/threads.h"
#include "platform/platform.h"

struct tls_acc {
    rudo__mutator *m;
    size_t cap;
    bool failed;
};

static void add_tls_block(void *lo, void *hi, void *arg) {
    struct tls_acc *a = arg;
    rudo__mutator *m = a->m;
    if (a->failed || lo == hi)
        return;
    if (m->ntls == a->cap) {
        size_t cap = a->cap ? a->cap * 2 : 8;
        struct rudo__tls_block *t = realloc(m->tls, cap * sizeof *t);
        if (!t) {
            a->failed = true;
            return;
        }
        m->tls = t;
        a->cap = cap;
    }
    m->tls[m->ntls++] = (struct rudo__tls_block){lo, hi};
}

int rudo__mutator_stack_init(rudo__heap *h, rudo__mutator *m) {
    if (!rudo__os_stack_bounds(&m->stack_lo, &m->stack_hi)) {
        rudo__warn("rudo_thread_attach", "cannot find the thread's stack");
        return RUDO_ESTATE;
    }
    m->stack_sp = m->stack_hi;
    /* The thread's own TLS blocks: dl_iterate_phdr reports the calling
     * thread's, so this must run in the attaching thread. glibc puts a
     * thread's static TLS at the top of its stack block for threads it
     * created, but the main thread's elsewhere (allocated by the dynamic
     * loader), where no other scan reaches it. Modules loaded by dlopen
     * after this point are not recorded (docs/threads.md). */
    struct tls_acc a = {m, 0, false};
    rudo__lock_acquire(&h->loader_lock);
    rudo__os_tls_blocks(add_tls_block, &a);
    rudo__lock_release(&h->loader_lock);
    if (a.failed) {
        free(m->tls);
        m->tls = NULL;
        m->ntls = 0;
        return RUDO_ENOMEM;
    }
    return RUDO_OK;
}

int rudo_stack_set(void *lo, void *hi) {
    const char *fn = "rudo_stack_set";
    rudo__mutator *m = rudo__need_mutator(fn);
    /* While the thread is blocked a collection may be reading the bounds
     * (gc_lock does not order them then). */
    if (m->state == RUDO_MUT_BLOCKED)
        rudo__fatal(fn, "called inside a blocking region");
    if (!lo || !hi || (char *)lo >= (char *)hi) {
        rudo__warn(fn, "invalid stack [%p, %p)", lo, hi);
        return RUDO_EINVAL;
    }
    /* Plain stores: the thread is RUNNING, so no collection scans it now;
     * the next one reads the bounds after this thread passed gc_lock when
     * it stopped (docs/threads.md, "Memory ordering"). */
    rudo__runtime_enter(); /* a suspend handler must not see half of it */
    m->stack_lo = lo;
    m->stack_hi = hi;
    rudo__runtime_leave();
    return RUDO_OK;
}

void rudo_stack_get(void **lo, void **hi) {
    rudo__mutator *m = rudo__need_mutator("rudo_stack_get");
    if (lo)
        *lo = m->stack_lo;
    if (hi)
        *hi = m->stack_hi;
}
