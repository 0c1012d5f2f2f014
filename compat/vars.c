/* vars.c — bdwgc's exported variables, with its defaults.
 *
 * Clients read and write them directly, often through copy relocations
 * (the executable holds a copy of the size it was linked against), so each
 * has bdwgc's type and size; test compat_exports compares the sizes with
 * the system library's. This file is compiled without AddressSanitizer
 * (compat/CMakeLists.txt): its redzones would change the symbols' sizes. */
#include "compat.h"
#include "kinds.h"

int GC_all_interior_pointers = 1;
int GC_java_finalization = 1;
int GC_no_dls = 0;
int GC_dont_gc = 0;
int GC_dont_expand = 0;
int GC_dont_precollect = 0;
int GC_finalize_on_demand = 0;
int GC_find_leak = 0;
int GC_full_freq = 19;
int GC_parallel = 0;
int GC_use_entire_heap = 0;
int GC_gcj_kind = 0;
int GC_gcj_debug_kind = 0;
GC_word GC_gc_no = 0;
GC_word GC_free_space_divisor = 3;
GC_word GC_max_retries = 0;
GC_word GC_non_gc_bytes = 0;
unsigned long GC_time_limit = GC_TIME_UNLIMITED;
/* Before init no address is plausible: least above greatest. */
void *GC_least_plausible_heap_addr = (void *)~(uintptr_t)0;
void *GC_greatest_plausible_heap_addr = NULL;
char *GC_stackbottom = NULL;
GC_oom_func GC_oom_fn = compat_default_oom_fn; /* returns NULL (warn.c) */
void (*GC_on_abort)(const char *msg) = compat_default_on_abort;
void (*GC_on_heap_resize)(GC_word new_size) = NULL;
void (*GC_finalizer_notifier)(void) = NULL;
/* bdwgc's default pushes its threads' roots; rudo scans them itself. */
void (*GC_push_other_roots)(void) = compat_default_push_other_roots;
/* bdwgc's defaults abort (control.c); a client may replace them. */
void (*GC_is_visible_print_proc)(void *p) = compat_default_is_visible_print_proc;
void (*GC_is_valid_displacement_print_proc)(void *p) =
    compat_default_is_valid_displacement_print_proc;
void (*GC_same_obj_print_proc)(void *p, void *q) = compat_default_same_obj_print_proc;
/* gc_inline.h's free lists: empty lists, so an inline allocator compiled
 * into a client takes its slow path (GC_generic_malloc_many). */
static void *empty_lists[4][GC_TINY_FREELISTS];
void **GC_objfreelist_ptr = empty_lists[0];
void **GC_aobjfreelist_ptr = empty_lists[1];
void **GC_uobjfreelist_ptr = empty_lists[2];
void **GC_auobjfreelist_ptr = empty_lists[3];
const GC_word GC_debug_header_size = 0; /* GC_debug_* map to plain calls */
/* bdwgc's internal state block, exported by Debian's library: same size,
 * unused (a client that reads it reads zeros). */
GC_API char GC_arrays[0x2c9f0];
