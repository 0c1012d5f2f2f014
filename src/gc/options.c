/* options.c — the table of settings and everything it drives:
 * rudo_config_init, the environment overrides and their messages, and the
 * validation of a config (options.h). README.md's configuration tables are
 * checked against this table by tests/test_options_readme.c. */
#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/base.h"
#include "gc/options.h"
#include "heap/heap.h"
#include "mark/mark.h"
#include "platform/platform.h"
#include "threads/threads.h"

/* Messages name the public function that reads the settings. */
static const char FN[] = "rudo_heap_create";

#define CFG(field) offsetof(rudo_config, field)
#define ENV(field) offsetof(rudo__env_settings, field)
#define MIB (1024.0 * 1024.0)

/* The settings. Order: the rudo_config fields in declaration order, then
 * the environment-only settings; environment variables are applied, and
 * their errors reported, in this order. */
static const rudo__option options[] = {
    {"initial_heap", "RUDO_HEAP_INITIAL", RUDO_OPT_SIZE, RUDO_OPT_ZERO_DEFAULT,
     CFG(initial_heap), 4 * MIB, 0, 0,
     "bytes allocated before the first automatic collection; 0 = the default"},
    {"max_heap", "RUDO_HEAP_MAX", RUDO_OPT_SIZE, 0, CFG(max_heap), 0, 0, 0,
     "bound on the bytes of pages in use; 0 = no bound but the reservation"},
    {"growth", "RUDO_GROWTH", RUDO_OPT_DOUBLE,
     RUDO_OPT_CHECK_CONFIG | RUDO_OPT_MIN_EXCLUSIVE, CFG(growth), 1.25, 0,
     RUDO_GROWTH_MAX, "trigger = max(initial_heap, min(live * growth, "
     "live + growth_limit))"},
    {"growth_limit", "RUDO_GROWTH_LIMIT", RUDO_OPT_SIZE, 0, CFG(growth_limit),
     16 * MIB, 0, 0, "how far the trigger may exceed the live size; 0 = no bound"},
    {"scan_static_data", NULL, RUDO_OPT_BOOL, 0, CFG(scan_static_data), 1, 0, 1,
     "scan the writable static data of the program and its libraries"},
    {"scan_stacks", NULL, RUDO_OPT_BOOL, 0, CFG(scan_stacks), 1, 0, 1,
     "scan attached threads' stacks, registers and TLS"},
    {"markers", "RUDO_MARKERS", RUDO_OPT_UNSIGNED,
     RUDO_OPT_ZERO_CPUS | RUDO_OPT_CHECK_CONFIG,
     CFG(markers), 0, 1, 1024,
     "marking threads, the collecting thread included; 0 = online CPUs"},
    {"mark_steal", "RUDO_STEAL", RUDO_OPT_BOOL, 0, CFG(mark_steal), 1, 0, 1,
     "an idle marker steals from another marker's deque"},
    {"mark_inbox", "RUDO_INBOX", RUDO_OPT_BOOL, 0, CFG(mark_inbox), 1, 0, 1,
     "markers hand each other work in batches through inboxes"},
    {"mark_route", "RUDO_ROUTE", RUDO_OPT_BOOL, 0, CFG(mark_route), 0, 0, 1,
     "send an object to the inbox of the marker owning its page"},
    {"mark_batch", "RUDO_MARK_BATCH", RUDO_OPT_UNSIGNED, RUDO_OPT_CHECK_CONFIG,
     CFG(mark_batch), RUDO_BATCH, 1, 65536, "objects per inbox transfer"},
    {"release_delay", NULL, RUDO_OPT_UNSIGNED, 0, CFG(release_delay), 2, 0,
     UINT_MAX, "collections an empty page stays committed before madvise"},
    {"on_oom", NULL, RUDO_OPT_POINTER, 0, CFG(on_oom), 0, 0, 0,
     "called when an allocation fails after a full collection"},
    {"oom_data", NULL, RUDO_OPT_POINTER, 0, CFG(oom_data), 0, 0, 0,
     "the argument of on_oom"},
    {"generational", "RUDO_GENERATIONAL", RUDO_OPT_BOOL, 0, CFG(generational),
     0, 0, 1, "minor collections with sticky marks; stores need rudo_write"},
    {"nursery", "RUDO_NURSERY", RUDO_OPT_SIZE, RUDO_OPT_ZERO_DEFAULT,
     CFG(nursery), 8 * MIB, 0, 0,
     "generational: bytes allocated between minor collections; 0 = the default"},
    {"nursery_adapt", "RUDO_NURSERY_ADAPT", RUDO_OPT_BOOL, 0, CFG(nursery_adapt),
     1, 0, 1, "generational: the nursery doubles while most of it survives"},
    {"nursery_per_thread", "RUDO_NURSERY_PER_THREAD", RUDO_OPT_BOOL, 0,
     CFG(nursery_per_thread), 1, 0, 1,
     "generational: the nursery is at least nursery x the threads allocating (at most the CPUs)"},
    {"minor_pause_goal_us", "RUDO_MINOR_PAUSE_GOAL_US", RUDO_OPT_UNSIGNED,
     RUDO_OPT_CHECK_CONFIG,
     CFG(minor_pause_goal_us), 0, 0, 10000000,
     "generational: caps the nursery so minor pauses meet this goal; 0 = none"},
    {"major_growth", "RUDO_MAJOR_GROWTH", RUDO_OPT_DOUBLE, RUDO_OPT_CHECK_CONFIG,
     CFG(major_growth), 1.5, 1, RUDO_GROWTH_MAX,
     "generational: major when old data > major_growth * live after the last major"},
    {"interior_pointers", "RUDO_INTERIOR_POINTERS", RUDO_OPT_BOOL, 0,
     CFG(interior_pointers), 1, 0, 1,
     "conservative words inside an object keep it; false: bases and "
     "registered displacements only"},
    {"suspend_signal", "RUDO_SUSPEND_SIGNAL", RUDO_OPT_UNSIGNED,
     RUDO_OPT_CHECK_CONFIG, CFG(suspend_signal), RUDO_SUSPEND_SIGNAL_DEFAULT, 0,
     64, "suspends a thread that has not stopped; 0 = cooperative only"},
    {"restart_signal", "RUDO_RESTART_SIGNAL", RUDO_OPT_UNSIGNED,
     RUDO_OPT_CHECK_CONFIG, CFG(restart_signal), RUDO_RESTART_SIGNAL_DEFAULT, 1,
     64, "resumes a thread suspended by signal"},
    {"signal_stop_ms", "RUDO_SIGNAL_STOP_MS", RUDO_OPT_UNSIGNED,
     RUDO_OPT_CHECK_CONFIG, CFG(signal_stop_ms), RUDO_SIGNAL_STOP_DEFAULT_MS, 0,
     3600000, "ms a collection waits for a thread to stop before signalling it"},
    {"gc_stress", "RUDO_GC_STRESS", RUDO_OPT_UNSIGNED, RUDO_OPT_ENV_ONLY,
     ENV(gc_stress), 0, 0, 1000000000,
     "a full collection every N allocations (0 = off); for tests"},
    {"page_batch", "RUDO_PAGE_BATCH", RUDO_OPT_UNSIGNED, RUDO_OPT_ENV_ONLY,
     ENV(page_batch), 0, 0, RUDO_PAGE_BATCH_MAX,
     "pages a refill takes per heap_lock acquisition; 0 = adaptive (more while the lock is contended)"},
    {"stop_warn_ms", "RUDO_STOP_WARN_MS", RUDO_OPT_UNSIGNED, RUDO_OPT_ENV_ONLY,
     ENV(stop_warn_ms), RUDO_STOP_WARN_DEFAULT_MS, 0, 3600000,
     "ms a collection waits for a thread to stop before naming it; 0 = never"},
    {"verify", "RUDO_VERIFY", RUDO_OPT_FLAG, RUDO_OPT_ENV_ONLY, ENV(verify), 0,
     0, 1, "run the heap verifier after every collection"},
    {"gc_log", "RUDO_GC_LOG", RUDO_OPT_FLAG, RUDO_OPT_ENV_ONLY, ENV(gc_log), 0,
     0, 1, "one line per collection on stderr"},
    {"lock_check", "RUDO_LOCK_CHECK", RUDO_OPT_TRISTATE, RUDO_OPT_ENV_ONLY,
     ENV(lock_check), -1, 0, 1, "turn the lock-order checker on or off"},
    {"poison", "RUDO_POISON", RUDO_OPT_FLAG, RUDO_OPT_ENV_ONLY, ENV(poison), 0,
     0, 1, "fill the cells that die in a collection with 0xdb"},
};

#define NOPTIONS (sizeof options / sizeof options[0])

size_t rudo__options_count(void) { return NOPTIONS; }

const rudo__option *rudo__option_at(size_t i) {
    return i < NOPTIONS ? &options[i] : NULL;
}

/* Where option o lives in *cfg or *env. */
static void *slot(const rudo__option *o, rudo_config *cfg,
                  rudo__env_settings *env) {
    char *base = (o->flags & RUDO_OPT_ENV_ONLY) ? (char *)env : (char *)cfg;
    return base + o->offset;
}

/* Stores v, known to be in range for o's type, into o's slot. */
static void store(const rudo__option *o, void *p, double v) {
    switch (o->type) {
    case RUDO_OPT_SIZE: *(size_t *)p = (size_t)v; break;
    case RUDO_OPT_UNSIGNED: *(unsigned *)p = (unsigned)v; break;
    case RUDO_OPT_DOUBLE: *(double *)p = v; break;
    case RUDO_OPT_BOOL:
    case RUDO_OPT_FLAG: *(bool *)p = v != 0; break;
    case RUDO_OPT_TRISTATE: *(int *)p = (int)v; break;
    case RUDO_OPT_POINTER: break; /* NULL already: see set_defaults */
    }
}

/* Every field of *cfg and *env to its default. */
static void set_defaults(rudo_config *cfg, rudo__env_settings *env) {
    /* A compound literal, not memset: it makes the pointers NULL however
     * the platform represents NULL. */
    *cfg = (rudo_config){.size = sizeof(rudo_config)};
    *env = (rudo__env_settings){0};
    for (size_t i = 0; i < NOPTIONS; i++)
        store(&options[i], slot(&options[i], cfg, env), options[i].def);
}

void rudo_config_init(rudo_config *cfg) {
    if (!cfg)
        rudo__fatal("rudo_config_init", "cfg is NULL");
    rudo__env_settings unused;
    set_defaults(cfg, &unused);
}

/* Parses "123", "64K", "16M", "2G" into *out. Digits only: strtoull
 * would take "-1" as 2^64 - 1 and skip leading blanks. */
static bool parse_size(const char *s, size_t *out) {
    char *end;
    if (*s < '0' || *s > '9')
        return false;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s)
        return false;
    unsigned shift = 0;
    if (*end == 'K' || *end == 'k') shift = 10, end++;
    else if (*end == 'M' || *end == 'm') shift = 20, end++;
    else if (*end == 'G' || *end == 'g') shift = 30, end++;
    if (*end != '\0' || v > (SIZE_MAX >> shift))
        return false;
    *out = (size_t)v << shift;
    return true;
}

/* Whether s is a plain decimal number: an optional '-', digits, and with
 * `real` a fraction and an exponent ("1.5", "2e3"). strtol and strtod
 * alone would also take leading blanks, '+', hexadecimal ("0x10"), "inf"
 * and "nan"; a variable set so is more likely a mistake than a choice. */
static bool plain_number(const char *s, bool real) {
    const char *c = s + (*s == '-');
    size_t digits = 0;
    while (*c >= '0' && *c <= '9')
        c++, digits++;
    if (real && *c == '.') {
        c++;
        while (*c >= '0' && *c <= '9')
            c++, digits++;
    }
    if (!digits)
        return false;
    if (real && (*c == 'e' || *c == 'E')) {
        c++;
        c += *c == '-' || *c == '+';
        if (*c < '0' || *c > '9')
            return false;
        while (*c >= '0' && *c <= '9')
            c++;
    }
    return *c == '\0';
}

/* Whether v is in o's range. The negated comparisons reject NaN. */
static bool in_range(const rudo__option *o, double v) {
    bool above_min = (o->flags & RUDO_OPT_MIN_EXCLUSIVE) ? v > o->min
                                                          : v >= o->min;
    return above_min && !(v > o->max);
}

/* Applies the variable of option o, which is set to the non-empty value v,
 * to its slot p. False, with a message naming the variable, if v is
 * invalid. */
static bool apply_var(const rudo__option *o, void *p, const char *v) {
    char *end;
    switch (o->type) {
    case RUDO_OPT_SIZE:
        if (parse_size(v, (size_t *)p))
            return true;
        rudo__warn(FN, "invalid %s='%s' (want bytes, e.g. 64M)", o->env, v);
        return false;
    case RUDO_OPT_UNSIGNED: {
        /* strtol, not strtoul: "-1" must not wrap to a huge count. An
         * overflow gives LONG_MAX or LONG_MIN, out of every range here. */
        long n = strtol(v, &end, 10);
        if (plain_number(v, false) && end != v && *end == '\0' &&
            in_range(o, (double)n)) {
            *(unsigned *)p = (unsigned)n;
            return true;
        }
        rudo__warn(FN, "invalid %s='%s' (want %.0f to %.0f)", o->env, v,
                   o->min, o->max);
        return false;
    }
    case RUDO_OPT_DOUBLE: {
        double d = strtod(v, &end);
        if (plain_number(v, true) && end != v && *end == '\0' && in_range(o, d)) {
            *(double *)p = d;
            return true;
        }
        rudo__warn(FN, "invalid %s='%s' (want a number %s %g, at most %g)",
                   o->env, v, (o->flags & RUDO_OPT_MIN_EXCLUSIVE) ? "above"
                   : "at least", o->min, o->max);
        return false;
    }
    case RUDO_OPT_BOOL:
        if (strcmp(v, "0") == 0 || strcmp(v, "1") == 0) {
            *(bool *)p = v[0] == '1';
            return true;
        }
        rudo__warn(FN, "invalid %s='%s' (want 0 or 1)", o->env, v);
        return false;
    case RUDO_OPT_FLAG:
        *(bool *)p = strcmp(v, "0") != 0;
        return true;
    case RUDO_OPT_TRISTATE:
        *(int *)p = strcmp(v, "0") != 0;
        return true;
    case RUDO_OPT_POINTER:
        break;
    }
    return true;
}

/* Checks the config's value of option o (after the environment). False,
 * with a message naming the field, if it is out of range. */
static bool check_field(const rudo__option *o, const void *p) {
    if (!(o->flags & RUDO_OPT_CHECK_CONFIG))
        return true;
    const char *lo = (o->flags & RUDO_OPT_MIN_EXCLUSIVE) ? "above" : "at least";
    switch (o->type) {
    case RUDO_OPT_UNSIGNED: {
        unsigned u = *(const unsigned *)p;
        if (in_range(o, u) || (u == 0 && (o->flags & RUDO_OPT_ZERO_CPUS)))
            return true;
        rudo__warn(FN, "%s must be %s%.0f to %.0f (got %u)", o->name,
                   o->flags & RUDO_OPT_ZERO_CPUS ? "0 (the online CPUs) or " : "",
                   o->min, o->max, u);
        return false;
    }
    case RUDO_OPT_DOUBLE: {
        double d = *(const double *)p;
        if (in_range(o, d))
            return true;
        rudo__warn(FN, "%s must be %s %g and at most %g (got %g)", o->name, lo,
                   o->min, o->max, d);
        return false;
    }
    default:
        /* Sizes take any size_t; booleans and pointers any value. */
        return true;
    }
}

int rudo__options_resolve(const rudo_config *user, rudo_config *out,
                          rudo__env_settings *env) {
    set_defaults(out, env);
    if (user) {
        /* A program built against an older header passes a shorter struct:
         * copy what it has and keep the defaults for the rest. A larger
         * size is a newer header than this library (fields it would
         * ignore); 0 is a struct that never went through rudo_config_init
         * (a zeroed struct is not the default configuration). */
        if (user->size == 0 || user->size > sizeof(rudo_config)) {
            rudo__warn(FN, "rudo_config.size is %zu, expected %zu: fill the "
                       "struct with rudo_config_init", user->size,
                       sizeof(rudo_config));
            return RUDO_EINVAL;
        }
        memcpy(out, user, user->size);
        out->size = sizeof(rudo_config);
    }
    for (size_t i = 0; i < NOPTIONS; i++) {
        const rudo__option *o = &options[i];
        const char *v = o->env ? getenv(o->env) : NULL;
        if (o->type == RUDO_OPT_TRISTATE && v && !*v) {
            /* Set but empty: off, unlike unset (which leaves it alone). */
            store(o, slot(o, out, env), 0);
            continue;
        }
        if (v && *v && !apply_var(o, slot(o, out, env), v))
            return RUDO_EINVAL;
    }
    for (size_t i = 0; i < NOPTIONS; i++) {
        const rudo__option *o = &options[i];
        if (!(o->flags & RUDO_OPT_ENV_ONLY) && !check_field(o, slot(o, out, env)))
            return RUDO_EINVAL;
    }
    /* The zeros that stand for something else. */
    for (size_t i = 0; i < NOPTIONS; i++) {
        const rudo__option *o = &options[i];
        void *p = slot(o, out, env);
        if (o->type == RUDO_OPT_SIZE && (o->flags & RUDO_OPT_ZERO_DEFAULT) &&
            *(size_t *)p == 0)
            store(o, p, o->def);
        if (o->type == RUDO_OPT_UNSIGNED && (o->flags & RUDO_OPT_ZERO_CPUS) &&
            *(unsigned *)p == 0) {
            /* At most the option's maximum, on a machine with more CPUs. */
            unsigned cpus = rudo__os_cpus();
            *(unsigned *)p = cpus > o->max ? (unsigned)o->max : cpus;
        }
    }
    return RUDO_OK;
}
