/* kinds.h — bdwgc's object kinds, mark descriptors and mark procedures
 * (gc_mark.h) on top of rudo's kinds: the ABI part, written from the
 * documented interface (the library builds without bdwgc's headers), and
 * the interface between kinds.c and typed.c.
 *
 * Every bdwgc kind is one rudo kind: the predefined ones map onto rudo's
 * two built-in kinds; a kind made by GC_new_kind gets a rudo kind of its
 * own (conservative, atomic, or a trace callback that interprets its
 * descriptor: docs/compat.md, "Kinds and mark descriptors"). */
#ifndef RUDO_COMPAT_KINDS_H
#define RUDO_COMPAT_KINDS_H

#include "compat.h"

/* ---- gc_mark.h's ABI ---- */
#define GC_DS_TAG_BITS 2
#define GC_DS_TAGS ((GC_word)3)
#define GC_DS_LENGTH 0     /* the descriptor is a length in bytes */
#define GC_DS_BITMAP 1     /* most significant bit = word 0 */
#define GC_DS_PROC 2       /* mark procedure index (6 bits), env above */
#define GC_DS_PER_OBJECT 3 /* the descriptor lies in the object (or its type) */
#define GC_LOG_MAX_MARK_PROCS 6
#define GC_MAX_MARK_PROCS (1u << GC_LOG_MAX_MARK_PROCS)
#define GC_RESERVED_MARK_PROCS 8
#define GC_INDIR_PER_OBJ_BIAS 0x10
#define GC_MAKE_PROC(index, env)                                               \
    (((((GC_word)(env) << GC_LOG_MAX_MARK_PROCS) | (GC_word)(index))           \
      << GC_DS_TAG_BITS) | GC_DS_PROC)
/* bdwgc's MAXOBJKINDS: GC_new_kind aborts past it. */
#define COMPAT_MAX_KINDS 24
/* bdwgc's BITMAP_BITS: a bitmap descriptor covers the first 62 words. */
#define COMPAT_BITMAP_BITS 62

/* A mark stack entry: what a mark procedure may push itself (bdwgc's
 * layout: the start, then the descriptor of what to scan from there). */
struct GC_ms_entry {
    void *mse_start;
    GC_word mse_descr;
};
typedef struct GC_ms_entry *(*GC_mark_proc)(GC_word *addr,
                                            struct GC_ms_entry *msp,
                                            struct GC_ms_entry *msl,
                                            GC_word env);
GC_API struct GC_ms_entry *GC_mark_and_push(void *obj, struct GC_ms_entry *msp,
                                            struct GC_ms_entry *msl, void **src);
GC_API void *GC_generic_malloc(size_t n, int k);
typedef int (*GC_disclaim_proc)(void *obj);
typedef void (*GC_describe_type_fn)(void *p, char *out_buf);
typedef void (*GC_push_other_roots_proc)(void);

/* One bdwgc kind. Written once, under compat.lock, before its number is
 * handed out; read by trace callbacks with the world stopped (the stop
 * handshake orders the two). */
struct compat_kind {
    GC_word descr;         /* the descriptor template */
    bool adjust;           /* add the object's size to descr */
    rudo_kind rk;          /* the rudo kind its objects have */
    GC_disclaim_proc disclaim;     /* GC_register_disclaim_proc */
    /* Its mark_unconditionally: each object gets an ordered finalizer
     * (kinds.c, "disclaim"). */
    bool disclaim_ordered;
    GC_describe_type_fn describe;  /* GC_register_describe_type_fn */
};

/* The kinds and mark procedures (one table per process, like bdwgc's). */
struct compat_kinds {
    struct compat_kind k[COMPAT_MAX_KINDS];
    unsigned n;                       /* kinds made, predefined included */
    GC_mark_proc procs[GC_MAX_MARK_PROCS];
    unsigned nprocs;                  /* GC_new_proc's next index */
    /* typed.c's procedures, whose descriptors it decodes itself (they
     * need the object's size, which a mark procedure is not given);
     * GC_MAX_MARK_PROCS until made. */
    unsigned typed_proc, array_proc;
};
extern struct compat_kinds compat_kinds;

/* ---- kinds.c ---- */
/* At initialization (init.c): the predefined kinds and the root callback
 * that calls GC_push_other_roots at every collection. */
void compat_kinds_init(void);
/* GC_generic_malloc(n, k) for any kind number (malloc.c routes the ones
 * it does not know here): NULL with a warning for an unknown one. */
void *compat_kind_alloc(size_t n, int k);
/* GC_new_kind and GC_new_proc without the free list argument; abort, as
 * bdwgc does, past the table's end. */
unsigned compat_new_kind(GC_word descr, int adjust, int clear);
unsigned compat_new_proc(GC_mark_proc proc);
/* Registers a disclaim procedure (GC_register_disclaim_proc). */
void compat_set_disclaim(int kind, GC_disclaim_proc proc, bool mark_from_all);
/* Called on every new object of a made kind (k >= 4): gives it its
 * kind's ordered disclaim registration, if the kind has one. */
void compat_disclaim_track(unsigned k, void *obj);
/* The initial value of GC_push_other_roots (vars.c): nothing to push,
 * rudo scans the threads itself. */
void compat_default_push_other_roots(void);

/* ---- typed.c ---- */
/* The typed procedures' descriptors, decoded where the object's size is
 * known (size is then a bound on what is scanned; SIZE_MAX: none). */
void compat_typed_trace(GC_word env, char *obj, size_t size, rudo_tracer *tr);
void compat_array_trace(char *obj, size_t size, rudo_tracer *tr, unsigned depth);
/* Scans the object at obj (size bytes at most) as descriptor d says. */
void compat_trace_descr(char *obj, size_t size, GC_word d, rudo_tracer *tr,
                        unsigned depth);

#endif /* RUDO_COMPAT_KINDS_H */
