/* test_thr_regs.c — a pointer kept only in one callee-saved register of the
 * caller survives a collection, for each of rbx and r12–r15 (x86-64 only).
 *
 * An asm block decodes the pointer (stored XORed, so no other copy exists)
 * into one register, clears the decoding register, realigns the stack and
 * calls rudo directly, so no compiled code of the test sees the pointer:
 *  - "collect": rudo_collect() on this thread;
 *  - "blocking": rudo_blocking_enter(); zero the dead stack below; let a
 *    helper thread collect while this one spins (no calls) in the blocking
 *    region; rudo_blocking_leave(). The old capture lost rbx and r12 here:
 *    rudo_blocking_enter saved them in its own frame and changed them
 *    before getcontext, and that frame is dead (here: zeroed) once it
 *    returns, while the collection scans the thread.
 * The object survives if it is marked by that collection and not
 * finalized. A control object with no reference at all is finalized by the
 * same collections, so the test sees what the collection frees.
 * Precise config: no static data scan (the encoded copy is in a global). */
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include "debug/debug.h"
#include "rudo.h"
#include "testlib.h"

#if defined(__x86_64__)

#define MASK ((uintptr_t)0x5a5a5a5a5a5a5a5aULL)

static rudo_kind k_probe;
static atomic_int finalized[64]; /* finalizer runs per probe id */

static void probe_finalize(void *obj, void *data) {
    (void)data;
    uint64_t id = *(uint64_t *)obj;
    if (id < 64)
        atomic_fetch_add_explicit(&finalized[id], 1, memory_order_relaxed);
}

/* The pointer, encoded; read and written only by the asm blocks. */
static uintptr_t g_enc;
static const uintptr_t g_mask = MASK;

__attribute__((noinline)) static void new_probe(uint64_t id) {
    uint64_t *p = rudo_alloc(k_probe, 64);
    p[0] = id;
    g_enc = (uintptr_t)p ^ MASK;
}

/* Overwrites the dead stack below the caller, where new_probe's frames
 * left copies of the pointer. Not instrumented: AddressSanitizer would
 * leave the redzones around buf unwritten. */
__attribute__((noinline, no_sanitize_address)) static void clobber_stack(void) {
    char buf[16 * 1024];
    memset(buf, 0, sizeof buf);
    __asm__ volatile("" : : "r"(buf) : "memory");
}

/* ---- the helper that collects while the main thread is blocked ---------
 * The main thread's side is in the asm (no compiled code, no call that
 * could store the register on the stack): it increments test_regs_request
 * and spins until test_regs_done catches up. Globals with external names,
 * so the asm can name them. */
atomic_int test_regs_request, test_regs_done;
static atomic_bool quit;

static void *helper(void *arg) {
    (void)arg;
    rudo_thread_attach();
    int served = 0;
    for (;;) {
        /* Wait in a blocking region: collections of the main thread must
         * not wait for this one. Acquire: pairs with the asm's locked
         * increment (x86 stores are release). */
        rudo_blocking_enter();
        while (atomic_load_explicit(&test_regs_request, memory_order_acquire) == served &&
               !atomic_load_explicit(&quit, memory_order_acquire))
            sched_yield();
        rudo_blocking_leave();
        if (atomic_load_explicit(&quit, memory_order_acquire))
            break;
        rudo_collect(); /* also runs the finalizers it made due */
        served++;
        /* Release: the main thread reads the results after it sees this. */
        atomic_store_explicit(&test_regs_done, served, memory_order_release);
    }
    rudo_thread_detach();
    return NULL;
}

/* Every register a call may change, besides REG and SAVE (the asm's own). */
#define CALL_CLOBBERS                                                           \
    "rax", "rcx", "rdx", "rsi", "rdi", "r8", "r9", "r10", "r11", "xmm0", "xmm1",  \
        "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9", "xmm10",  \
        "xmm11", "xmm12", "xmm13", "xmm14", "xmm15", "memory", "cc"

/* Decodes g_enc into REG, clears rax, saves rsp in SAVE, steps over the red
 * zone and aligns the stack for the calls CALLS, restores rsp, re-encodes
 * REG into g_enc and clears REG. g_enc and g_mask are RIP-relative, so they
 * may be used only while rsp is the compiler's. */
#define HOLD(REG, SAVE, CALLS)                                                  \
    __asm__ volatile("movq %[enc], %%rax\n\t"                                   \
                     "xorq %[mask], %%rax\n\t"                                  \
                     "movq %%rax, %%" REG "\n\t"                                \
                     "xorl %%eax, %%eax\n\t"                                    \
                     "movq %%rsp, %%" SAVE "\n\t"                               \
                     "subq $128, %%rsp\n\t"                                     \
                     "andq $-16, %%rsp\n\t" CALLS                               \
                     "movq %%" SAVE ", %%rsp\n\t"                               \
                     "movq %%" REG ", %%rax\n\t"                                \
                     "xorq %[mask], %%rax\n\t"                                  \
                     "movq %%rax, %[enc]\n\t"                                   \
                     "xorl %%eax, %%eax\n\t"                                    \
                     "xorl %%" SAVE "d, %%" SAVE "d\n\t"                        \
                     : [enc] "+m"(g_enc)                                        \
                     : [mask] "m"(g_mask)                                       \
                     : REG, SAVE, CALL_CLOBBERS)

#define CALL_COLLECT "call rudo_collect@PLT\n\t"
/* After rudo_blocking_enter returns, its frames below rsp are dead: zero
 * 8 KiB there (rdi, rcx, rax are call-clobbered anyway), so that a copy of
 * the register saved in them cannot keep the object; then ask the helper
 * to collect and spin until it has, without calls. */
#define CALL_BLOCKING                                                           \
    "call rudo_blocking_enter@PLT\n\t"                                          \
    "leaq -8192(%%rsp), %%rdi\n\t"                                              \
    "movl $1024, %%ecx\n\t"                                                     \
    "xorl %%eax, %%eax\n\t"                                                     \
    "rep stosq\n\t"                                                             \
    "movl test_regs_request(%%rip), %%eax\n\t"                                  \
    "incl %%eax\n\t"                                                            \
    "lock incl test_regs_request(%%rip)\n\t"                                    \
    "1: pause\n\t"                                                              \
    "cmpl test_regs_done(%%rip), %%eax\n\t"                                     \
    "jne 1b\n\t"                                                                \
    "xorl %%eax, %%eax\n\t"                                                     \
    "call rudo_blocking_leave@PLT\n\t"

/* One noinline function per (register, path): the asm clobbers its REG, so
 * each function saves that register in its prologue; the test's value is
 * then only in the register. SAVE is another callee-saved register. The
 * 32-bit name used to clear SAVE is SAVE "d", so SAVE is one of r12–r15. */
#define DEFINE_HOLD(NAME, REG, SAVE)                                            \
    __attribute__((noinline)) static void NAME##_collect(void) {                \
        HOLD(REG, SAVE, CALL_COLLECT);                                          \
    }                                                                           \
    __attribute__((noinline)) static void NAME##_blocking(void) {               \
        HOLD(REG, SAVE, CALL_BLOCKING);                                         \
    }

DEFINE_HOLD(rbx, "rbx", "r12")
DEFINE_HOLD(r12, "r12", "r13")
DEFINE_HOLD(r13, "r13", "r14")
DEFINE_HOLD(r14, "r14", "r15")
DEFINE_HOLD(r15, "r15", "r12")

typedef struct {
    const char *name;
    void (*collect)(void);
    void (*blocking)(void);
} reg_case;

static const reg_case cases[] = {
    {"rbx", rbx_collect, rbx_blocking}, {"r12", r12_collect, r12_blocking},
    {"r13", r13_collect, r13_blocking}, {"r14", r14_collect, r14_blocking},
    {"r15", r15_collect, r15_blocking},
};

/* Runs one case: a probe with id `id` held only in the register across
 * `run`; a control probe id+32 referenced from nowhere. */
__attribute__((noinline)) static void run_case(const char *what, const char *reg,
                                               void (*run)(void), uint64_t id) {
    new_probe(id + 32); /* the control: g_enc is overwritten next */
    new_probe(id);
    clobber_stack();
    run();
    void *p = (void *)(g_enc ^ MASK);
    bool marked = rudo__debug_is_marked(p);
    int fin = atomic_load_explicit(&finalized[id], memory_order_relaxed);
    int control = atomic_load_explicit(&finalized[id + 32], memory_order_relaxed);
    bool ok = marked && fin == 0 && *(uint64_t *)p == id;
    printf("%s, %s: %s (marked %d, finalized %d; control finalized %d)\n", what,
           reg, ok ? "survived" : "LOST", marked, fin, control);
    test_check(ok, "object held only in a callee-saved register survives",
               __FILE__, __LINE__);
    CHECK(control == 1);
    g_enc = 0;
}

int main(void) {
    test_start_watchdog();
    rudo_config cfg;
    rudo_config_init(&cfg);
    cfg.scan_static_data = false; /* g_enc is a global (encoded anyway) */
    cfg.markers = 1;
    CHECK_EQ(rudo_heap_create(&cfg), RUDO_OK);
    rudo_kind_desc d = {0};
    d.name = "probe";
    d.tracing = RUDO_TRACE_ATOMIC;
    d.finalize = probe_finalize;
    k_probe = rudo_kind_register(&d);

    pthread_t t;
    CHECK_EQ(pthread_create(&t, NULL, helper, NULL), 0);
    size_t n = sizeof cases / sizeof cases[0];
    for (size_t i = 0; i < n; i++)
        run_case("collect", cases[i].name, cases[i].collect, i);
    for (size_t i = 0; i < n; i++)
        run_case("blocking", cases[i].name, cases[i].blocking, 8 + i);

    atomic_store_explicit(&quit, true, memory_order_release);
    rudo_blocking_enter();
    pthread_join(t, NULL);
    rudo_blocking_leave();
    rudo_heap_destroy();
    return test_report();
}

#else
int main(void) {
    printf("test_thr_regs: x86-64 only; skipped\n");
    return 0;
}
#endif
