/* interior.c — rudo_register_displacement: the offsets into an object that
 * conservative words may hold when interior pointers are off
 * (rudo_config.interior_pointers false; marking: mark_displaced in
 * src/mark/mark.c). */
#include "gc/gc.h"

int rudo_register_displacement(size_t offset) {
    const char *fn = "rudo_register_displacement";
    rudo__heap *h = rudo__need_heap(fn);
    if (offset == 0 || offset >= RUDO_DISPLACEMENT_MAX) {
        rudo__warn(fn, "offset %zu is not in 1 .. %u", offset,
                   RUDO_DISPLACEMENT_MAX - 1);
        return RUDO_EINVAL;
    }
    /* Markers read the bitmap with the world stopped: change it while no
     * collection runs (gc_lock taken then, an attached caller parked
     * meanwhile as at a safepoint). */
    rudo__lock_idle(h, fn);
    h->displacements[offset / 64] |= (uint64_t)1 << (offset % 64);
    rudo__lock_release(&h->world.lock);
    return RUDO_OK;
}
