/* os.c — Linux implementation of the platform layer. */
#include "platform/platform.h"

#include <fcntl.h>
#include <link.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <ucontext.h>
#include <time.h>
#include <unistd.h>

/* Test hook, per thread: a test sets it on the thread that then reserves
 * (rudo_heap_create). */
static __thread bool fail_next_reserve;

void rudo__os_fail_next_reserve(void) { fail_next_reserve = true; }

void *rudo__os_reserve(size_t size, size_t align) {
    if (fail_next_reserve) {
        fail_next_reserve = false;
        return NULL;
    }
    /* Over-reserve by `align`, then trim both ends so the range is aligned. */
    size_t total = size + align;
    char *raw = mmap(NULL, total, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (raw == MAP_FAILED)
        return NULL;
    uintptr_t start = ((uintptr_t)raw + align - 1) & ~(uintptr_t)(align - 1);
    size_t head = start - (uintptr_t)raw;
    size_t tail = total - head - size;
    if (head)
        munmap(raw, head);
    if (tail)
        munmap((char *)start + size, tail);
    return (void *)start;
}

void rudo__os_release(void *p, size_t size) { munmap(p, size); }

void *rudo__os_map(size_t size) {
    void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    return p == MAP_FAILED ? NULL : p;
}

void rudo__os_unmap(void *p, size_t size) { munmap(p, size); }

void rudo__os_decommit(void *p, size_t size) {
    madvise(p, size, MADV_DONTNEED);
}

void rudo__os_cond_init_monotonic(pthread_cond_t *cv) {
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(cv, &ca);
    pthread_condattr_destroy(&ca);
}

bool rudo__os_stack_bounds(void **lo, void **hi) {
    pthread_attr_t attr;
    if (pthread_getattr_np(pthread_self(), &attr) != 0)
        return false;
    void *addr;
    size_t size;
    int rc = pthread_attr_getstack(&attr, &addr, &size);
    pthread_attr_destroy(&attr);
    if (rc != 0)
        return false;
    *lo = addr;
    *hi = (char *)addr + size;
    return true;
}

struct segs_arg {
    void (*fn)(void *lo, void *hi, void *arg);
    void *arg;
};

static int tls_cb(struct dl_phdr_info *info, size_t size, void *data) {
    struct segs_arg *a = data;
    /* dlpi_tls_data appeared with the adds/subs counters' generation of
     * the struct; older C libraries pass a shorter one. */
    if (size < offsetof(struct dl_phdr_info, dlpi_tls_data) +
                   sizeof info->dlpi_tls_data)
        return 1;
    /* NULL: the module has no TLS, or its block is not allocated for this
     * thread yet (dynamic TLS of a module loaded by dlopen is allocated at
     * the thread's first access to it). */
    if (info->dlpi_tls_modid == 0 || info->dlpi_tls_data == NULL)
        return 0;
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type != PT_TLS)
            continue;
        /* The block holds the initialised image (.tdata) followed by the
         * zeroed part (.tbss): p_memsz bytes from dlpi_tls_data. */
        char *lo = info->dlpi_tls_data;
        a->fn(lo, lo + ph->p_memsz, a->arg);
    }
    return 0;
}

void rudo__os_tls_blocks(void (*fn)(void *lo, void *hi, void *arg),
                         void *arg) {
    struct segs_arg a = {fn, arg};
    dl_iterate_phdr(tls_cb, &a);
}

uint64_t rudo__now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

unsigned rudo__os_cpus(void) {
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (unsigned)n : 1u;
}

/* ---- signals ---------------------------------------------------------------- */

/* glibc's internal signals: SIGCANCEL (pthread_cancel) and SIGSETXID
 * (setuid and friends in a threaded process), the first two real-time
 * signals, which sigset_t helpers hide. */
#define GLIBC_SIGCANCEL 32
#define GLIBC_SIGSETXID 33

/* The kernel's sigset_t: one bit per signal, 64 signals. */
typedef unsigned long long kernel_sigset;
static kernel_sigset sigbit(int sig) { return 1ull << (sig - 1); }

bool rudo__os_signal_install(int sig, rudo__os_sig_fn fn) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    /* The type differs only in the second parameter, siginfo_t * there
     * and void * here (the same representation). */
    sa.sa_sigaction = (void (*)(int, siginfo_t *, void *))(void (*)(void))fn;
    sa.sa_flags = SA_SIGINFO | SA_RESTART;
    sigfillset(&sa.sa_mask);
    return sigaction(sig, &sa, NULL) == 0;
}

bool rudo__os_signal_installed(int sig, rudo__os_sig_fn fn) {
    struct sigaction sa;
    if (sigaction(sig, NULL, &sa) != 0)
        return false;
    return (sa.sa_flags & SA_SIGINFO) &&
           sa.sa_sigaction == (void (*)(int, siginfo_t *, void *))(void (*)(void))fn;
}

bool rudo__os_signal_send(pthread_t thread, int sig) {
    return pthread_kill(thread, sig) == 0;
}

#if defined(__SANITIZE_THREAD__)
#define RUDO_OS_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define RUDO_OS_TSAN 1
#endif
#endif

void rudo__os_signal_wait(int wake) {
#ifdef RUDO_OS_TSAN
    /* Under ThreadSanitizer a short sleep with every signal still blocked
     * instead. TSan runs a handler that arrives outside an intercepted
     * blocking call later, from its ProcessPendingSignals, which blocks
     * every signal and keeps the mask to restore in one per-thread slot.
     * A wake signal let in by rt_sigsuspend in such a handler is queued
     * again, and the next intercepted call in the handler (sem_post) runs
     * ProcessPendingSignals nested: it overwrites that slot with the
     * all-blocked mask, and the thread goes on with every signal blocked
     * for good (seen: a thread suspended by request never stopped again).
     * The callers recheck their condition after each wait; the wake signal
     * stays pending and is taken after the handler returns. */
    (void)wake;
    struct timespec ts = {0, 50000};
    syscall(SYS_nanosleep, &ts, NULL);
#else
    /* rt_sigsuspend, but for at most RUDO_OS_WAKE_POLL_NS: a wake signal
     * that never comes (the program set it to SIG_IGN, whose signals the
     * kernel drops) must not freeze the thread for ever; the callers
     * recheck their condition. ppoll with no descriptors sets the mask and
     * waits atomically, as rt_sigsuspend does. */
    kernel_sigset mask = ~(kernel_sigset)0 & ~sigbit(wake) & ~sigbit(GLIBC_SIGSETXID);
    struct timespec ts = {0, RUDO_OS_WAKE_POLL_NS};
    syscall(SYS_ppoll, NULL, 0, &ts, &mask, sizeof mask);
#endif
}

void rudo__os_signal_block_cancel(void) {
    kernel_sigset mask = sigbit(GLIBC_SIGCANCEL);
    syscall(SYS_rt_sigprocmask, SIG_BLOCK, &mask, NULL, sizeof mask);
}

size_t rudo__os_context_words(const void *context, void **out, size_t max) {
    const ucontext_t *uc = context;
    size_t n = NGREG < max ? NGREG : max;
    for (size_t i = 0; i < n; i++)
        out[i] = (void *)(uintptr_t)uc->uc_mcontext.gregs[i];
    return n;
}

void *rudo__os_context_sp(const void *context) {
    const ucontext_t *uc = context;
    return (void *)(uintptr_t)uc->uc_mcontext.gregs[REG_RSP];
}

int rudo__os_thread_blocks_signal(long tid, int sig) {
    /* open and read, not stdio: called while other threads may be
     * suspended by signal inside malloc (fopen allocates). */
    char path[64], buf[4096];
    snprintf(path, sizeof path, "/proc/self/task/%ld/status", tid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0)
        return -1;
    buf[n] = '\0';
    const char *p = strstr(buf, "\nSigBlk:");
    if (!p)
        return -1;
    unsigned long long blk = strtoull(p + strlen("\nSigBlk:"), NULL, 16);
    return (blk & sigbit(sig)) != 0;
}

const char *rudo__os_signal_abbrev(int sig) { return sigabbrev_np(sig); }

int rudo__os_signal_max(void) { return SIGRTMAX; }

/* mincore fails with ENOMEM on a hole; an address past the user space
 * (a bogus bound) fails too. */
bool rudo__os_mapped(const void *lo, const void *hi) {
    long pagesz = sysconf(_SC_PAGESIZE); /* from the auxiliary vector: cheap */
    uintptr_t a = (uintptr_t)lo & ~(uintptr_t)(pagesz - 1);
    uintptr_t b = (uintptr_t)hi;
    unsigned char vec[256];
    while (a < b) {
        size_t n = (b - a + pagesz - 1) / pagesz;
        n = n > sizeof vec ? sizeof vec : n;
        if (mincore((void *)a, n * pagesz, vec) != 0)
            return false;
        a += n * pagesz;
    }
    return true;
}
