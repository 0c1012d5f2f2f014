/* platform.h — everything that depends on the operating system (internal).
 *
 * Linux x86-64 is the first platform; a port replaces src/platform/os.c. */
#ifndef RUDO_PLATFORM_H
#define RUDO_PLATFORM_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Reserves `size` bytes of address space, aligned to `align` (a power of
 * two), readable and writable but backed lazily. NULL on failure. */
void *rudo__os_reserve(size_t size, size_t align);
/* Releases a reservation made by rudo__os_reserve (whole). */
void rudo__os_release(void *p, size_t size);
/* Returns the memory of [p, p+size) to the OS; it reads as zero later. */
void rudo__os_decommit(void *p, size_t size);
/* Test hook: the next rudo__os_reserve fails. */
void rudo__os_fail_next_reserve(void);

/* Bounds of the calling thread's stack: *hi is the highest address (the
 * stack grows down from it). false if they cannot be found. */
bool rudo__os_stack_bounds(void **lo, void **hi);

/* Calls fn(lo, hi, arg) for every writable loaded segment of the program
 * and its shared libraries (static data: .data and .bss). */
void rudo__os_static_segments(void (*fn)(void *lo, void *hi, void *arg),
                              void *arg);

/* Calls fn(lo, hi, arg) for every static TLS block of the calling thread
 * (one per loaded module with a PT_TLS segment whose block exists for this
 * thread), found with dl_iterate_phdr. The blocks are the calling thread's
 * own: another thread's are found only by calling this in that thread. */
void rudo__os_tls_blocks(void (*fn)(void *lo, void *hi, void *arg),
                         void *arg);

/* Register capture. A conservative scan must see the caller's values of
 * the callee-saved registers. RUDO_OS_SPILL_REGISTERS(), placed in a
 * function F, makes F's prologue store every callee-saved register in F's
 * frame before F changes any of them; RUDO_OS_FRAME_TOP() is the top of
 * F's frame (the canonical frame address: the caller's stack pointer at
 * the call). A noinline function called from F then finds all of F's
 * frame, those saved registers included, between its own frame address
 * and RUDO_OS_FRAME_TOP() of F. This is bdwgc's approach
 * (GC_with_callee_saves_pushed), and needs no register names: both GCC
 * and Clang implement the builtins on every target. */
#define RUDO_OS_SPILL_REGISTERS() __builtin_unwind_init()
#define RUDO_OS_FRAME_TOP() ((void *)__builtin_dwarf_cfa())

/* A spin-wait hint to the CPU (x86 `pause`). */
static inline void rudo__cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

/* Monotonic clock in nanoseconds. */
uint64_t rudo__now_ns(void);

/* Number of online CPUs (at least 1). */
unsigned rudo__os_cpus(void);

#endif
