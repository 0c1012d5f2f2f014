/* fork.c — the atfork handlers. fork() copies only the calling thread. The handlers make the child's heap
 * consistent: prepare takes, in rank order, gc_lock at a moment when no
 * collection runs (parking an attached caller, as the statistics calls do),
 * heap_lock, the marker pool's lock, final_lock and loader_lock, so no
 * other thread is inside the handshake, the page pool, a mark phase, the
 * finalizer queue or an attach's dl_iterate_phdr call (whose loader
 * lock glibc does not reset in the child) when the address space is
 * copied; the parent releases them. The child
 * forgets every mutator but its own thread's (their threads do not exist
 * there: their stacks may be unmapped or reused by new threads, so scanning
 * them would crash), hands their pages back to the heap, and drops the
 * marker pool, which its next collection re-creates. Registered once, at
 * the first heap creation; they do nothing while no heap exists. */
#include "final/final.h"
#include "gc/gc.h"
#include "mark/mark.h"

/* The heap prepare locked, or NULL. Per thread: the three handlers run in
 * the forking thread (the child's one thread is its copy). */
static __thread rudo__heap *fork_heap;

static void fork_prepare(void) {
    rudo__heap *h = rudo__the_heap;
    fork_heap = h;
    if (!h)
        return;
    rudo__mutator *self = rudo__self();
    if (self && self->state == RUDO_MUT_BLOCKED) {
        /* Its roots were recorded on entering the region and a collection
         * may be reading them: do not record them again, just wait. */
        rudo__lock_acquire(&h->world.lock);
        rudo__park(h, NULL);
    } else {
        rudo__lock_idle(h, "fork");
    }
    rudo__lock_acquire(&h->heap_lock);
    rudo__pool_fork_prepare(h);
    rudo__final_fork_prepare(h);
    rudo__lock_acquire(&h->loader_lock);
}

static void fork_parent(void) {
    rudo__heap *h = fork_heap;
    if (!h)
        return;
    rudo__lock_release(&h->loader_lock);
    rudo__final_fork_parent(h);
    rudo__pool_fork_parent(h);
    rudo__lock_release(&h->heap_lock);
    rudo__lock_release(&h->world.lock);
}

static void fork_child(void) {
    rudo__heap *h = fork_heap;
    if (!h)
        return;
    rudo__lock_release(&h->loader_lock);
    rudo__final_fork_child(h);
    rudo__pool_fork_child(h);
    rudo__mutators_fork_child(h);
    rudo__lock_release(&h->heap_lock);
    rudo__lock_release(&h->world.lock);
}

static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;
static void install(void) { pthread_atfork(fork_prepare, fork_parent, fork_child); }

void rudo__gc_install_atfork(void) { pthread_once(&atfork_once, install); }
