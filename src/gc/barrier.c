/* barrier.c — the out-of-line part of the write barrier: the range form
 * (rudo_write_range). The inline barrier is in rudo.h; the cards it marks
 * are read by minor collections (src/mark/cards.c). */
#include "gc/gc.h"

void rudo_write_range(void *obj, void *start, size_t len) {
    const char *fn = "rudo_write_range";
    rudo__heap *h = rudo__need_heap(fn);
    if (len == 0 || !h->gen.on)
        return;
    /* Inside rudo until the cards are marked: a suspend signal that lands
     * in the lookup below is deferred, and the thread parks when it leaves
     * (rudo__runtime_leave), after the marks. Parked at the lookup's own
     * leave, it was stopped at a safepoint with the stores made and the
     * cards clean: a minor collection freed what they stored. */
    rudo__runtime_enter();
    rudo__page *p;
    if (!obj || rudo__find_object(h, obj, &p) != obj)
        rudo__fatal(fn, "%p is not the base of a heap object", obj);
    size_t size = p->cell_size;
    uintptr_t off = (uintptr_t)start - (uintptr_t)obj;
    if ((uintptr_t)start < (uintptr_t)obj || off > size || len > size - off)
        rudo__fatal(fn, "range %p + %zu is not inside object %p (%zu bytes)",
                    start, len, obj, size);
    rudo__cards_mark(h, start, len);
    rudo__runtime_leave();
}
