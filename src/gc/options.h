/* options.h — the heap's settings, described once (internal).
 *
 * Every tunable — each rudo_config field and each environment-only
 * diagnostic — is one row of a static table in options.c: its field name,
 * its environment variable, its type, where it is stored, its default, its
 * range and a one-line description. rudo_config_init, the validation of a
 * config, the environment parsing and its error messages are all driven by
 * that table, and tests/test_options_readme.c checks README.md against it,
 * so adding a setting means adding one row (and a README line the test
 * asks for) instead of editing four places that could drift apart. */
#ifndef RUDO_GC_OPTIONS_H
#define RUDO_GC_OPTIONS_H
#include <stdbool.h>
#include <stddef.h>

#include "rudo.h"

/* How a setting is stored and how its environment variable is parsed. */
typedef enum rudo__option_type {
    /* size_t bytes. The variable: digits with an optional K, M or G suffix
     * (binary); a sign, a blank or an overflow is rejected. No range other
     * than what fits in a size_t (min and max are unused). */
    RUDO_OPT_SIZE,
    /* unsigned. The variable: an integer in [min, max]. */
    RUDO_OPT_UNSIGNED,
    /* double. The variable: a number in [min, max], or (min, max] with
     * RUDO_OPT_MIN_EXCLUSIVE; NaN is always rejected. */
    RUDO_OPT_DOUBLE,
    /* bool switch. The variable: exactly "0" or "1". */
    RUDO_OPT_BOOL,
    /* bool diagnostic flag (environment only). Unset or empty: off; any
     * other value but "0": on — lenient, as RUDO_VERIFY=yes has always
     * worked. */
    RUDO_OPT_FLAG,
    /* int tri-state flag (environment only): -1 when the variable is unset
     * (leave the feature as it is), otherwise 0 or 1 as for RUDO_OPT_FLAG,
     * an empty value meaning 0. RUDO_LOCK_CHECK uses it: a RUDO_DEBUG build
     * has the lock-order checker on, and only an explicit setting changes
     * that. */
    RUDO_OPT_TRISTATE,
    /* A pointer in rudo_config (on_oom, oom_data): default NULL, no
     * variable, no check. In the table so that it describes every field. */
    RUDO_OPT_POINTER,
} rudo__option_type;

/* Option flags. */
enum {
    /* Stored in rudo__env_settings, not in rudo_config: set only through
     * the environment (a testing aid or a diagnostic, not an API promise). */
    RUDO_OPT_ENV_ONLY = 1u << 0,
    /* Check the config's value against [min, max] too, not only the
     * variable's. Without it the range applies to the variable alone and
     * any config value is accepted (markers: 0 means "the number of
     * CPUs", and a program may ask for more markers than the variable
     * allows). */
    RUDO_OPT_CHECK_CONFIG = 1u << 1,
    /* The minimum is exclusive (growth must be above 0). */
    RUDO_OPT_MIN_EXCLUSIVE = 1u << 2,
    /* 0, in the config or the variable, means the default (initial_heap:
     * a zero trigger would collect on every allocation). */
    RUDO_OPT_ZERO_DEFAULT = 1u << 3,
    /* 0, in the config, means the number of online CPUs (markers). */
    RUDO_OPT_ZERO_CPUS = 1u << 4,
};

/* One setting. Defaults and bounds are doubles: every one of them is below
 * 2^53, so each is exact, and one representation serves all the types. */
typedef struct rudo__option {
    const char *name;      /* rudo_config field (or rudo__env_settings
                            * field, for RUDO_OPT_ENV_ONLY) */
    const char *env;       /* environment variable, or NULL */
    rudo__option_type type;
    unsigned flags;        /* RUDO_OPT_* above */
    size_t offset;         /* offsetof in rudo_config or rudo__env_settings */
    double def, min, max;  /* default and range (see the types) */
    const char *help;      /* one line, for people reading the table */
} rudo__option;

/* The environment-only settings, as the environment sets them. */
typedef struct rudo__env_settings {
    unsigned gc_stress;     /* RUDO_GC_STRESS: a collection every N
                             * allocations; 0 = off */
    unsigned page_batch;    /* RUDO_PAGE_BATCH: pages per heap_lock
                             * acquisition of a refill; 0 = adaptive */
    unsigned stop_warn_ms;  /* RUDO_STOP_WARN_MS: stop-watchdog delay;
                             * 0 = never warn */
    bool verify;            /* RUDO_VERIFY (OR it with RUDO_DEBUG) */
    bool gc_log;            /* RUDO_GC_LOG */
    bool poison;            /* RUDO_POISON (OR it with RUDO_DEBUG) */
    int lock_check;         /* RUDO_LOCK_CHECK: -1 = unset (leave the
                             * checker as it is), 0 = off, 1 = on */
} rudo__env_settings;

/* Resolves the configuration a heap is created with: copies *user (or the
 * defaults when user is NULL) into *out — only user->size bytes of it over
 * the defaults, so a program built against an older, shorter rudo_config
 * keeps the defaults of the fields it does not know — then applies the
 * environment overrides, validates the result, replaces the zeros that
 * mean "default" or "number of CPUs", and fills *env with the
 * environment-only settings. On RUDO_OK, out->size is sizeof(rudo_config).
 * Returns RUDO_OK, or RUDO_EINVAL after printing one message
 * "rudo: rudo_heap_create: ..." naming the field or variable at fault
 * (user->size 0 or larger than this library's rudo_config, a value out of
 * range, an unparsable variable); *out and *env are then unspecified.
 * Reads the environment; thread-safe as far as getenv is. */
int rudo__options_resolve(const rudo_config *user, rudo_config *out,
                          rudo__env_settings *env);

/* Number of rows in the table. */
size_t rudo__options_count(void);

/* Row i of the table (i < rudo__options_count()), in the order of the
 * rudo_config fields, then the environment-only settings. */
const rudo__option *rudo__option_at(size_t i);

#endif
