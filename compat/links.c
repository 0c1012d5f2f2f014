/* links.c — bdwgc's disappearing links on rudo's weak slots
 * (docs/compat.md, "Disappearing links").
 *
 * A link is a rudo weak slot with an explicit target
 * (rudo_weak_register_target): bdwgc clears *link when obj dies, whatever
 * *link holds (usually a disguised pointer, GC_HIDE_POINTER), so the slot's
 * own value is never what decides. Short links are cleared when obj is
 * found unreachable, before finalizers; long ones when it is reclaimed.
 * A cleared link's registration ends, as in bdwgc. rudo keeps one
 * registration per address, short or long (bdwgc has a table of each): a
 * registration of the other kind at the same address returns GC_DUPLICATE
 * and changes nothing. No state here: rudo's weak registry is the table. */
#include "compat.h"

#include <stdint.h>

static bool bad_link(void **link, const char *msg) {
    if (link && (uintptr_t)link % sizeof(void *) == 0)
        return false;
    compat_warn(msg, (GC_word)link);
    return true;
}

/* kind: RUDO_WEAK_SHORT or RUDO_WEAK_LONG. */
static int register_link(void **link, const void *obj, int kind) {
    compat_enter();
    if (bad_link(link, "GC Warning: rudo's libgc.so.1: disappearing link %p is "
                       "NULL or misaligned; not registered\n"))
        return GC_NO_MEMORY;
    if (!obj) {
        compat_warn("GC Warning: rudo's libgc.so.1: disappearing link %p has no "
                    "object; not registered\n", (GC_word)link);
        return GC_NO_MEMORY;
    }
    /* Collections are held off from the look to the change, so a link is
     * never seen half re-registered; under the allocation lock, as bdwgc,
     * so an explicit collection waits rather than being lost (threads.c). */
    compat_exclusive_begin();
    int rc = kind == RUDO_WEAK_SHORT ? rudo_weak_register_target(link, obj)
                                     : rudo_weak_register_long_target(link, obj);
    if (rc == RUDO_EEXIST) {
        /* bdwgc: a link registered again keeps only the last object. */
        if (rudo_weak_registered(link) == kind) {
            rudo_weak_unregister(link);
            if (kind == RUDO_WEAK_SHORT)
                rudo_weak_register_target(link, obj);
            else
                rudo_weak_register_long_target(link, obj);
        }
    }
    compat_exclusive_end();
    return rc == RUDO_OK ? GC_SUCCESS : GC_DUPLICATE;
}

static int unregister_link(void **link, int kind) {
    if (!link || !GC_is_init_called())
        return 0;
    compat_enter();
    compat_exclusive_begin();
    int found = rudo_weak_registered(link) == kind && rudo_weak_unregister(link) == RUDO_OK;
    compat_exclusive_end();
    return found;
}

static int move_link(void **link, void **new_link, int kind) {
    if (!link || !GC_is_init_called())
        return GC_NOT_FOUND;
    compat_enter();
    if (bad_link(new_link, "GC Warning: rudo's libgc.so.1: cannot move a "
                           "disappearing link to %p (NULL or misaligned)\n"))
        return GC_NOT_FOUND;
    compat_exclusive_begin();
    int rc = GC_NOT_FOUND;
    if (rudo_weak_registered(link) == kind) {
        /* Moving to itself checks the registration (bdwgc). */
        rc = rudo_weak_move(link, new_link) == RUDO_OK ? GC_SUCCESS : GC_DUPLICATE;
    }
    compat_exclusive_end();
    return rc;
}

GC_API int GC_general_register_disappearing_link(void **link, const void *obj) {
    return register_link(link, obj, RUDO_WEAK_SHORT);
}

/* bdwgc: the link lies in a heap object and disappears with that object
 * (a pointer a finalizer is told not to rely on). */
GC_API int GC_register_disappearing_link(void **link) {
    compat_enter();
    void *base = rudo_base(link);
    if (!base) {
        compat_warn("GC Warning: rudo's libgc.so.1: GC_register_disappearing_link: "
                    "%p is not in a heap object; not registered\n", (GC_word)link);
        return GC_NO_MEMORY;
    }
    return register_link(link, base, RUDO_WEAK_SHORT);
}

GC_API int GC_unregister_disappearing_link(void **link) {
    return unregister_link(link, RUDO_WEAK_SHORT);
}

GC_API int GC_move_disappearing_link(void **link, void **new_link) {
    return move_link(link, new_link, RUDO_WEAK_SHORT);
}

GC_API int GC_register_long_link(void **link, const void *obj) {
    return register_link(link, obj, RUDO_WEAK_LONG);
}

GC_API int GC_unregister_long_link(void **link) {
    return unregister_link(link, RUDO_WEAK_LONG);
}

GC_API int GC_move_long_link(void **link, void **new_link) {
    return move_link(link, new_link, RUDO_WEAK_LONG);
}
