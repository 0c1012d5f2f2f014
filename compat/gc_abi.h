/* gc_abi.h — the parts of bdwgc 8.2's ABI (gc.h) that rudo's libgc.so.1
 * implements: types, constants and the exported variables. Written from the
 * documented interface, not copied: the library builds without bdwgc's
 * headers. Sizes and layouts must match the ones Debian's libgc1 8.2.2
 * exports, because clients are compiled against those (variables read by
 * copy relocation, structs filled by the callee). */
#ifndef RUDO_COMPAT_GC_ABI_H
#define RUDO_COMPAT_GC_ABI_H

#include <stddef.h>

/* Every exported name goes through this: the version script (libgc.map)
 * exports GC_* only, and the library is built with hidden visibility. */
#define GC_API __attribute__((visibility("default")))

typedef unsigned long GC_word;
typedef long GC_signed_word;

/* bdwgc's result codes (gc.h). */
#define GC_SUCCESS 0
#define GC_DUPLICATE 1
#define GC_NO_THREADS 2 /* GC_register_my_thread; GC_NO_MEMORY elsewhere */
#define GC_UNIMPLEMENTED 3
#define GC_NO_MEMORY 2
#define GC_NOT_FOUND 4

/* The predefined kinds (gc_inline.h, gc_mark.h). */
#define GC_I_PTRFREE 0
#define GC_I_NORMAL 1
#define GC_I_UNCOLLECTABLE 2
#define GC_I_AUNCOLLECTABLE 3

#define GC_VERSION_WORD 0x80202u /* 8.2.2: major << 16 | minor << 8 | micro */
#define GC_TIME_UNLIMITED 999999
#define GC_TINY_FREELISTS 25

typedef void (*GC_warn_proc)(char *msg, GC_word arg);
typedef void *(*GC_oom_func)(size_t bytes_requested);
typedef void *(*GC_fn_type)(void *client_data);
typedef void (*GC_abort_func)(const char *msg);

struct GC_stack_base {
    void *mem_base; /* the end the stack grows down from (its highest address) */
};
typedef void *(*GC_stack_base_func)(struct GC_stack_base *sb, void *arg);

struct GC_prof_stats_s {
    GC_word heapsize_full;
    GC_word free_bytes_full;
    GC_word unmapped_bytes;
    GC_word bytes_allocd_since_gc;
    GC_word allocd_bytes_before_gc;
    GC_word non_gc_bytes;
    GC_word gc_no;
    GC_word markers_m1;
    GC_word bytes_reclaimed_since_gc;
    GC_word reclaimed_bytes_before_gc;
    GC_word expl_freed_bytes_since_gc;
    GC_word obtained_from_os_bytes;
};

struct GC_timeval_s {
    unsigned long tv_ms;
    unsigned long tv_nsec;
};

/* The exported variables, with bdwgc's types (and so its sizes). */
extern GC_API int GC_all_interior_pointers;
extern GC_API int GC_java_finalization;
extern GC_API int GC_no_dls;
extern GC_API int GC_dont_gc;
extern GC_API int GC_dont_expand;
extern GC_API int GC_dont_precollect;
extern GC_API int GC_finalize_on_demand;
extern GC_API int GC_find_leak;
extern GC_API int GC_full_freq;
extern GC_API int GC_parallel;
extern GC_API int GC_use_entire_heap;
extern GC_API int GC_gcj_kind;
extern GC_API int GC_gcj_debug_kind;
extern GC_API GC_word GC_gc_no;
extern GC_API GC_word GC_free_space_divisor;
extern GC_API GC_word GC_max_retries;
extern GC_API GC_word GC_non_gc_bytes;
extern GC_API unsigned long GC_time_limit;
extern GC_API void *GC_least_plausible_heap_addr;
extern GC_API void *GC_greatest_plausible_heap_addr;
extern GC_API char *GC_stackbottom;
extern GC_API GC_oom_func GC_oom_fn;
extern GC_API void (*GC_on_abort)(const char *msg);
extern GC_API void (*GC_on_heap_resize)(GC_word new_size);
extern GC_API void (*GC_finalizer_notifier)(void);
extern GC_API void (*GC_push_other_roots)(void);
extern GC_API void (*GC_is_visible_print_proc)(void *p);
extern GC_API void (*GC_is_valid_displacement_print_proc)(void *p);
extern GC_API void (*GC_same_obj_print_proc)(void *p, void *q);
extern GC_API void **GC_objfreelist_ptr;
extern GC_API void **GC_aobjfreelist_ptr;
extern GC_API void **GC_uobjfreelist_ptr;
extern GC_API void **GC_auobjfreelist_ptr;
extern GC_API const GC_word GC_debug_header_size;

#endif /* RUDO_COMPAT_GC_ABI_H */
