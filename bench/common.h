/*
 * common.h — what every benchmark program shares: a clock, option parsing,
 * a random-number generator, the pause recorder the collector backends feed,
 * and the one RESULT line each program prints for bench/run.py.
 */
#ifndef BENCH_COMMON_H
#define BENCH_COMMON_H

#include <stddef.h>
#include <stdint.h>

/* Monotonic clock, nanoseconds. Safe to call from collector callbacks. */
uint64_t bench_now_ns(void);

/* Remembers argv for bench_opt*; handles the options every program takes:
 *   --pauses FILE   write every recorded pause (microseconds, one per line)
 *   --help          print `usage` and exit
 * Starts the wall clock. Call first in main. */
void bench_start(int argc, char **argv, const char *usage);

/* Value of option `name` ("--depth") given as "--depth N" or "--depth=N",
 * or `def` when absent. Exits with a message on a malformed number. */
long bench_opt_long(const char *name, long def);
const char *bench_opt_str(const char *name, const char *def);

/* Prints "bench: <message>" to stderr and exits with status 2: the
 * benchmark found a wrong result (a collector lost or corrupted data). */
void bench_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

/* xorshift64*: a fast deterministic generator. */
typedef struct bench_rng {
    uint64_t s;
} bench_rng;
static inline uint64_t bench_rand(bench_rng *r) {
    r->s ^= r->s >> 12;
    r->s ^= r->s << 25;
    r->s ^= r->s >> 27;
    return r->s * 0x2545F4914F6CDD1DULL;
}
/* Uniform in [0, n). */
static inline uint64_t bench_rand_below(bench_rng *r, uint64_t n) {
    __extension__ typedef unsigned __int128 u128;
    return (uint64_t)(((u128)bench_rand(r) * n) >> 64);
}

/* ---- Pause recorder (filled by the collector backends) ------------------ */

/* Records one collection: how long mutators were paused and how long the
 * mark phase took. Thread-safe, lock-free, never allocates (the arrays are
 * mapped once, outside any collector's heap and outside static data, so no
 * collector scans them). */
void bench_gc_record(uint64_t pause_ns, uint64_t mark_ns);

/* Number of collections recorded so far. */
size_t bench_gc_count(void);

/* Mark time of collection i (0-based, i < bench_gc_count()). */
uint64_t bench_gc_mark_ns(size_t i);

/* Pause (the whole collection as the backend times it) of collection i. */
uint64_t bench_gc_pause_ns(size_t i);

/* ---- Result ------------------------------------------------------------- */

/* Prints the result line
 *   RESULT bench=B backend=K threads=T markers=M wall_ms=W gc_count=N
 *          max_pause_us=X p99_pause_us=Y <extra>
 * with the wall time since bench_start, and writes the pause file if asked.
 * `extra` (may be NULL) is appended as is ("key=value ..."). */
void bench_result(const char *bench, unsigned threads, const char *extra);

#endif /* BENCH_COMMON_H */
