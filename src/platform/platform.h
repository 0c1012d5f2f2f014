/* platform.h — everything that depends on the operating system (internal).
 *
 * Linux x86-64 is the first platform; a port replaces src/platform/os.c. */
#ifndef RUDO_PLATFORM_H
#define RUDO_PLATFORM_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <ucontext.h>

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

/* Saves the calling thread's registers in *ctx so that a conservative scan
 * of *ctx sees every callee-saved register. Returns 0 on success. */
int rudo__os_save_registers(ucontext_t *ctx);

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
