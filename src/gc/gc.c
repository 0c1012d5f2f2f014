/* gc.c — creating and destroying the heap: the options (options.c), the
 * heap's memory (heap layer), every module's state, the first thread. */
#include <stdlib.h>

#include "alloc/alloc.h"
#include "final/final.h"
#include "gc/gc.h"
#include "gc/options.h"
#include "mark/mark.h"
#include "platform/platform.h"
#include "roots/roots.h"

/* Serialises rudo_heap_create: two threads creating at once both found no
 * heap and both made one. File statics, not heap state: they say whether
 * the process has a heap at all. `ready` is set when a creation has
 * succeeded and cleared by destroy; rudo_heap_exists reads it without the
 * lock (acquire, pairing with the release store: a thread that sees true
 * sees the whole heap, attached creator and built-in kinds included). */
static pthread_mutex_t create_lock = PTHREAD_MUTEX_INITIALIZER;
static bool ready;

static int create(const rudo_config *cfg);

int rudo_heap_create(const rudo_config *cfg) {
    pthread_mutex_lock(&create_lock);
    int rc = rudo__the_heap ? RUDO_EEXIST : create(cfg);
    if (rc == RUDO_OK)
        __atomic_store_n(&ready, true, __ATOMIC_RELEASE);
    pthread_mutex_unlock(&create_lock);
    return rc;
}

bool rudo_heap_exists(void) { return __atomic_load_n(&ready, __ATOMIC_ACQUIRE); }

static int create(const rudo_config *cfg) {
    rudo_config c;
    rudo__env_settings env;
    int err = rudo__options_resolve(cfg, &c, &env);
    if (!err)
        err = rudo__sigstop_check(&c);
    if (err)
        return err;

    rudo__sizeclass_check();
    rudo__heap *h = calloc(1, sizeof *h);
    if (!h)
        return RUDO_ENOMEM;
    h->cfg = c;
    if (!rudo__heap_map(h)) {
        free(h);
        return RUDO_ENOMEM;
    }
    rudo__lock_init(&h->world.lock, RUDO_RANK_GC, "gc_lock");
    rudo__lock_init(&h->heap_lock, RUDO_RANK_HEAP, "heap_lock");
    rudo__lock_init(&h->loader_lock, RUDO_RANK_LOADER, "loader_lock");
    rudo__handshake_init(h, env.stop_warn_ms);
    if (rudo__sigstop_init(h) != RUDO_OK) {
        rudo__heap_unmap(h);
        free(h);
        return RUDO_EINVAL;
    }
    atomic_init(&h->trigger, c.initial_heap);
#ifdef RUDO_DEBUG
    h->verify = h->poison = true;
#endif
    h->verify |= env.verify;
    h->poison |= env.poison;
    h->gc_log = env.gc_log;
    h->gc_stress = env.gc_stress;
    h->page_batch = env.page_batch;
    h->gen.on = c.generational;
    h->gen.cpus = rudo__os_cpus();
    h->gen.threads = 1;
    rudo__barrier_publish(h);
    if (env.lock_check >= 0)
        rudo__lock_check_enable(env.lock_check);
    rudo__roots_init(h);
    rudo__final_init(h);
    rudo__the_heap = h;
    rudo__mutators_init();
    rudo__gc_install_atfork();

    rudo_kind_conservative("conservative");
    rudo_kind_atomic("atomic");
    err = rudo__mutator_attach(0);
    if (err) {
        rudo_heap_destroy();
        return err;
    }
    return RUDO_OK;
}

void rudo_heap_destroy(void) {
    const char *fn = "rudo_heap_destroy";
    rudo__heap *h = rudo__need_heap(fn);
    rudo__check_not_collecting(fn);
    rudo__mutator *self = rudo__self();
    rudo__check_not_busy(self, fn, "(it uses the heap afterwards)");
    rudo__lock_acquire(&h->world.lock);
    bool alone = h->world.nmutators == 0 || (h->world.nmutators == 1 && self &&
                                       h->world.mutators == self);
    rudo__lock_release(&h->world.lock);
    if (!alone)
        rudo__fatal(fn, "other threads are still attached (%u attached)",
                    h->world.nmutators);
    if (self)
        rudo__mutator_detach(self);
    rudo__pool_destroy(h);
    rudo__world_watch_stop(h);
    rudo__final_destroy(h);
    rudo__roots_destroy(h);
    rudo__kinds_destroy(h);
    rudo__slotset_free(&h->freed);
    rudo__meta_free(h->mark.pending);
    rudo__meta_free(h->touched);
    rudo__meta_free(h->mark.woken);
    rudo__barrier_publish(NULL); /* before the card table goes */
    if (!rudo__os_loader_stop())
        rudo__warn(fn, "the loader helper thread did not end within 1 s: it waits for the "
                   "dynamic loader's lock, which another thread holds (in dl_iterate_phdr, "
                   "dlopen or dlclose); it ends by itself once it gets the lock");
    rudo__heap_unmap(h);
    rudo__lock_destroy(&h->world.lock);
    rudo__lock_destroy(&h->heap_lock);
    rudo__lock_destroy(&h->loader_lock);
    sem_destroy(&h->world.stopped_sem);
    pthread_cond_destroy(&h->world.resume_cv);
    pthread_cond_destroy(&h->world.left_cv);
    /* Relaxed: destroy is not thread-safe (rudo.h); no reader may run. */
    __atomic_store_n(&ready, false, __ATOMIC_RELAXED);
    rudo__the_heap = NULL;
    free(h);
}


static int set_max_heap(size_t bytes, bool cap, const char *name) {
    rudo__heap *h = rudo__need_heap(name);
    /* No collection runs (gc_lock idle); heap_lock orders it with the page
     * pool, which reads it when it hands out pages. */
    rudo__lock_idle(h, name);
    rudo__lock_acquire(&h->heap_lock);
    h->cfg.max_heap = bytes;
    h->max_heap_cap = cap; /* read by the trigger, world stopped */
    rudo__lock_release(&h->heap_lock);
    rudo__lock_release(&h->world.lock);
    return RUDO_OK;
}

int rudo_set_max_heap(size_t bytes) {
    return set_max_heap(bytes, false, "rudo_set_max_heap");
}

int rudo_set_max_heap_cap(size_t bytes) {
    return set_max_heap(bytes, true, "rudo_set_max_heap_cap");
}

int rudo_set_initial_heap(size_t bytes) {
    rudo__heap *h = rudo__need_heap("rudo_set_initial_heap");
    /* Read by the collector with the world stopped (the trigger). */
    rudo__lock_idle(h, "rudo_set_initial_heap");
    h->cfg.initial_heap = bytes;
    /* Relaxed, as every trigger store: mutators read it as a heuristic
     * (alloc_slow.c); the next collection's trigger applies the floor
     * again. Without generations only: there the floor is the trigger's. */
    if (!h->gen.on && atomic_load_explicit(&h->trigger, memory_order_relaxed) < bytes)
        atomic_store_explicit(&h->trigger, bytes, memory_order_relaxed);
    rudo__lock_release(&h->world.lock);
    return RUDO_OK;
}

int rudo_set_growth(double growth, size_t growth_limit) {
    const char *fn = "rudo_set_growth";
    rudo__heap *h = rudo__need_heap(fn);
    if (!(growth > 0) || growth > RUDO_GROWTH_MAX) {
        rudo__warn(fn, "growth must be above 0 and at most %g (got %g)",
                   RUDO_GROWTH_MAX, growth);
        return RUDO_EINVAL;
    }
    /* Read by the collector with the world stopped (the trigger). */
    rudo__lock_idle(h, fn);
    h->cfg.growth = growth;
    h->cfg.growth_limit = growth_limit;
    rudo__lock_release(&h->world.lock);
    return RUDO_OK;
}
