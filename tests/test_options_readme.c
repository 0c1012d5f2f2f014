/* test_options_readme.c — the table of settings (src/gc/options.c) is the
 * one description of rudo's tunables:
 *  - README.md's configuration tables list exactly its fields and
 *    variables, with its defaults and ranges (so the README cannot drift);
 *  - rudo__options_resolve applies it: defaults, rudo_config.size, the
 *    environment syntax of each type, each range's bounds accepted and the
 *    values just outside rejected with a message naming the culprit.
 * It calls rudo__options_resolve directly, so it tests the table whether or
 * not heap creation goes through it. README.md is read from the source
 * directory (RUDO_SOURCE_DIR, tests/CMakeLists.txt). */
#include <math.h> /* NAN */
#include <stdio.h>
#include <stdlib.h>
#include <limits.h>
#include <string.h>
#include <unistd.h>

#include "gc/options.h"
#include "rudo.h"
#include "testlib.h"

#ifndef RUDO_SOURCE_DIR
#define RUDO_SOURCE_DIR "."
#endif

/* ---- README.md ---------------------------------------------------------- */

#define MAX_ROWS 64
#define MAX_NAMES 4

/* One row of a README table: the backquoted names of its first cell and
 * its second cell (the default, or the variable's effect). */
typedef struct row {
    char names[MAX_NAMES][48];
    int nnames;
    char cell[512];
} row;

static row fields[MAX_ROWS], vars[MAX_ROWS];
static int nfields, nvars;

/* Copies the text between the n-th and (n+1)-th '|' of line into out,
 * trimmed; false if the line has fewer cells. */
static bool cell(const char *line, int n, char *out, size_t cap) {
    const char *p = line;
    for (int i = 0; i <= n; i++) {
        p = strchr(p, '|');
        if (!p)
            return false;
        p++;
    }
    const char *e = strchr(p, '|');
    if (!e)
        return false;
    while (p < e && *p == ' ')
        p++;
    while (e > p && e[-1] == ' ')
        e--;
    size_t len = (size_t)(e - p) < cap - 1 ? (size_t)(e - p) : cap - 1;
    memcpy(out, p, len);
    out[len] = '\0';
    return true;
}

/* Parses a table line into r: the names are the `quoted` words of the
 * first cell ("`mark_steal`, `mark_inbox`, `mark_route`" gives three). */
static void parse_row(const char *line, row *r) {
    char first[256];
    memset(r, 0, sizeof *r);
    if (!cell(line, 0, first, sizeof first) || !cell(line, 1, r->cell, sizeof r->cell))
        return;
    for (char *p = first; (p = strchr(p, '`')) != NULL && r->nnames < MAX_NAMES;) {
        char *q = strchr(p + 1, '`');
        if (!q)
            break;
        size_t len = (size_t)(q - p - 1);
        if (len < sizeof r->names[0]) {
            memcpy(r->names[r->nnames], p + 1, len);
            r->names[r->nnames++][len] = '\0';
        }
        p = q + 1;
    }
}

/* Reads the two tables of README.md's section "Configuration and
 * environment variables": the one headed "| field |" and the one headed
 * "| variable |". */
static bool read_readme(void) {
    FILE *f = fopen(RUDO_SOURCE_DIR "/README.md", "r");
    if (!f) {
        fprintf(stderr, "cannot open %s/README.md\n", RUDO_SOURCE_DIR);
        return false;
    }
    char line[2048];
    bool in_section = false;
    row *table = NULL;
    int *count = NULL;
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, "## ", 3) == 0) {
            in_section = strstr(line, "Configuration and environment variables") != NULL;
            table = NULL;
            continue;
        }
        if (!in_section)
            continue;
        if (line[0] != '|') {
            table = NULL;
            continue;
        }
        if (strncmp(line, "| field |", 9) == 0) {
            table = fields, count = &nfields;
            continue;
        }
        if (strncmp(line, "| variable |", 12) == 0) {
            table = vars, count = &nvars;
            continue;
        }
        if (!table || strncmp(line, "|---", 4) == 0 || *count == MAX_ROWS)
            continue;
        parse_row(line, &table[*count]);
        if (table[*count].nnames > 0)
            (*count)++;
    }
    fclose(f);
    return nfields > 0 && nvars > 0;
}

/* The row of table[0..n) naming name, and the name's position in it. */
static const row *find_row(const row *table, int n, const char *name, int *pos) {
    for (int i = 0; i < n; i++)
        for (int j = 0; j < table[i].nnames; j++)
            if (strcmp(table[i].names[j], name) == 0) {
                *pos = j;
                return &table[i];
            }
    return NULL;
}

/* The table's option called name (field name or variable), or NULL. */
static const rudo__option *find_option(const char *name, bool by_env) {
    for (size_t i = 0; i < rudo__options_count(); i++) {
        const rudo__option *o = rudo__option_at(i);
        const char *n = by_env ? o->env : o->name;
        if (n && strcmp(n, name) == 0)
            return o;
    }
    return NULL;
}

/* o's default as the README writes it: "4 MiB", "1.25", "true", "NULL". */
static void render_default(const rudo__option *o, char *out, size_t cap) {
    switch (o->type) {
    case RUDO_OPT_SIZE:
        if (o->def != 0 && (unsigned long long)o->def % (1ull << 20) == 0)
            snprintf(out, cap, "%.0f MiB", o->def / (1 << 20));
        else
            snprintf(out, cap, "%.0f", o->def);
        break;
    case RUDO_OPT_BOOL: snprintf(out, cap, "%s", o->def ? "true" : "false"); break;
    case RUDO_OPT_POINTER: snprintf(out, cap, "NULL"); break;
    default: snprintf(out, cap, "%g", o->def); break;
    }
}

/* A bound as the README writes it: "1024", and 10^9 for a large power of
 * ten (easier to read than its digits). */
static void render_bound(double v, char *out, size_t cap) {
    int e = 0;
    double p = 1;
    while (p < v)
        p *= 10, e++;
    if (p == v && e >= 6)
        snprintf(out, cap, "10^%d", e);
    else if (v == (double)(long long)v)
        snprintf(out, cap, "%.0f", v);
    else
        snprintf(out, cap, "%g", v);
}

/* Whether text starts with want, followed by the end or a non-word
 * character ("1.25" must not accept "1.255"). */
static bool starts_with_word(const char *text, const char *want) {
    size_t n = strlen(want);
    if (strncmp(text, want, n) != 0)
        return false;
    char c = text[n];
    return c == '\0' || !(c == '.' || c == '_' || (c >= '0' && c <= '9') ||
                          (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'));
}

/* The pos-th of the comma-separated defaults of a row naming n fields
 * ("true, true, false"); a row with one default gives it to every name. */
static void default_item(const char *cellv, int pos, int n, char *out, size_t cap) {
    const char *p = cellv;
    int items = 1;
    for (const char *q = cellv; *q; q++)
        items += *q == ',';
    if (n > 1 && items >= n)
        for (int i = 0; i < pos; i++) {
            p = strchr(p, ',') + 1;
            while (*p == ' ')
                p++;
        }
    snprintf(out, cap, "%s", p);
}

static void report(bool ok, const char *what, const char *name) {
    char buf[160];
    snprintf(buf, sizeof buf, "%.80s: %.60s", what, name);
    test_check(ok, buf, __FILE__, __LINE__);
}

static void test_readme_tables(void) {
    bool read = read_readme();
    CHECK(read);
    if (!read)
        return;
    /* Table -> README. */
    for (size_t i = 0; i < rudo__options_count(); i++) {
        const rudo__option *o = rudo__option_at(i);
        int pos = 0;
        if (!(o->flags & RUDO_OPT_ENV_ONLY)) {
            const row *r = find_row(fields, nfields, o->name, &pos);
            report(r != NULL, "README field table lists", o->name);
            if (r) {
                char want[64], have[512];
                render_default(o, want, sizeof want);
                default_item(r->cell, pos, r->nnames, have, sizeof have);
                bool ok = starts_with_word(have, want);
                if (!ok)
                    fprintf(stderr, "  %s: README default '%s', table '%s'\n",
                            o->name, have, want);
                report(ok, "README default matches", o->name);
            }
        }
        if (!o->env)
            continue;
        const row *r = find_row(vars, nvars, o->env, &pos);
        report(r != NULL, "README variable table lists", o->env);
        if (!r)
            continue;
        /* The variable's row states its range. */
        char want[96], lo[32], hi[32];
        render_bound(o->min, lo, sizeof lo);
        render_bound(o->max, hi, sizeof hi);
        want[0] = '\0';
        if (o->type == RUDO_OPT_UNSIGNED)
            snprintf(want, sizeof want, "%s to %s", lo, hi);
        else if (o->type == RUDO_OPT_DOUBLE)
            snprintf(want, sizeof want, "%s %s, at most %s",
                     (o->flags & RUDO_OPT_MIN_EXCLUSIVE) ? "above" : "at least", lo, hi);
        else if (o->type == RUDO_OPT_BOOL)
            snprintf(want, sizeof want, "`0` or `1`");
        bool ok = strstr(r->cell, want) != NULL;
        if (!ok)
            fprintf(stderr, "  %s: README says '%s', want '%s' in it\n", o->env,
                    r->cell, want);
        report(ok, "README states the range of", o->env);
        /* A config field's variable names its field. */
        if (!(o->flags & RUDO_OPT_ENV_ONLY)) {
            char quoted[64];
            snprintf(quoted, sizeof quoted, "`%s`", o->name);
            report(strstr(r->cell, quoted) != NULL, "README variable row names its field", o->env);
        }
    }
    /* README -> table. `size` is not a setting but the struct's version. */
    for (int i = 0; i < nfields; i++)
        for (int j = 0; j < fields[i].nnames; j++) {
            const char *n = fields[i].names[j];
            const rudo__option *o = find_option(n, false);
            report(strcmp(n, "size") == 0 || (o && !(o->flags & RUDO_OPT_ENV_ONLY)),
                   "table has the README's field", n);
        }
    for (int i = 0; i < nvars; i++)
        for (int j = 0; j < vars[i].nnames; j++)
            report(find_option(vars[i].names[j], true) != NULL,
                   "table has the README's variable", vars[i].names[j]);
    /* The table has a row for every rudo_config field, in declaration
     * order: between one row's field and the next there is at most the
     * padding the next field's alignment needs (its size, for these
     * scalars), so a new field without a row shows up as a gap — unless it
     * is small enough to hide in padding. */
    size_t end = sizeof(size_t); /* past `size`, which is no setting */
    for (size_t i = 0; i < rudo__options_count(); i++) {
        const rudo__option *o = rudo__option_at(i);
        if (o->flags & RUDO_OPT_ENV_ONLY)
            continue;
        size_t sz = o->type == RUDO_OPT_SIZE       ? sizeof(size_t)
                    : o->type == RUDO_OPT_UNSIGNED ? sizeof(unsigned)
                    : o->type == RUDO_OPT_DOUBLE   ? sizeof(double)
                    : o->type == RUDO_OPT_BOOL     ? sizeof(bool)
                                                   : sizeof(void *);
        bool ok = o->offset >= end && o->offset - end < sz;
        if (!ok)
            fprintf(stderr, "  %s at offset %zu, previous row ends at %zu\n",
                    o->name, o->offset, end);
        report(ok, "table row follows the previous field", o->name);
        end = o->offset + sz;
    }
    CHECK(end <= sizeof(rudo_config) && sizeof(rudo_config) - end < sizeof(void *));
}

/* ---- rudo__options_resolve ---------------------------------------------- */

/* Where o lives in cfg or env. */
static void *slot(const rudo__option *o, rudo_config *cfg, rudo__env_settings *env) {
    char *base = (o->flags & RUDO_OPT_ENV_ONLY) ? (char *)env : (char *)cfg;
    return base + o->offset;
}

/* o's value in cfg or env, as a double. */
static double value(const rudo__option *o, rudo_config *cfg, rudo__env_settings *env) {
    void *p = slot(o, cfg, env);
    switch (o->type) {
    case RUDO_OPT_SIZE: return (double)*(size_t *)p;
    case RUDO_OPT_UNSIGNED: return *(unsigned *)p;
    case RUDO_OPT_DOUBLE: return *(double *)p;
    case RUDO_OPT_BOOL:
    case RUDO_OPT_FLAG: return *(bool *)p;
    case RUDO_OPT_TRISTATE: return *(int *)p;
    default: return 0;
    }
}

static rudo_config out;
static rudo__env_settings env;
static char message[4096];

/* rudo__options_resolve(user, &out, &env), capturing what it prints into
 * message. */
static int resolve(const rudo_config *user) {
    fflush(stderr);
    FILE *tmp = tmpfile();
    int saved = dup(2);
    dup2(fileno(tmp), 2);
    int rc = rudo__options_resolve(user, &out, &env);
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    rewind(tmp);
    size_t n = fread(message, 1, sizeof message - 1, tmp);
    message[n] = '\0';
    fclose(tmp);
    return rc;
}

/* Sets o's variable to v and resolves with the defaults: expects RUDO_OK
 * and the value `want`, or (accept false) RUDO_EINVAL and a message
 * "invalid VAR='v'". */
static void expect_var(const rudo__option *o, const char *v, bool accept, double want) {
    setenv(o->env, v, 1);
    int rc = resolve(NULL);
    unsetenv(o->env);
    char what[128], needle[128];
    snprintf(what, sizeof what, "%s='%s' %s", o->env, v, accept ? "accepted" : "rejected");
    snprintf(needle, sizeof needle, "rudo: rudo_heap_create: invalid %s='%s'", o->env, v);
    bool ok = accept ? rc == RUDO_OK && value(o, &out, &env) == want && !message[0]
                     : rc == RUDO_EINVAL && strstr(message, needle) != NULL;
    if (!ok)
        fprintf(stderr, "  %s: rc %d, message: %s\n", what, rc, message);
    test_check(ok, what, __FILE__, __LINE__);
}

/* Resolves *cfg: expects RUDO_OK, or RUDO_EINVAL with a message naming
 * the field. */
static void expect_config(const char *what, const rudo_config *cfg, bool accept,
                          const char *field) {
    int rc = resolve(cfg);
    bool ok = accept ? rc == RUDO_OK && !message[0]
                     : rc == RUDO_EINVAL && strstr(message, "rudo: rudo_heap_create: ") &&
                           strstr(message, field);
    if (!ok)
        fprintf(stderr, "  %s: rc %d, message: %s\n", what, rc, message);
    test_check(ok, what, __FILE__, __LINE__);
}

static void test_defaults(void) {
    rudo_config c;
    memset(&c, 0xa5, sizeof c);
    rudo_config_init(&c);
    CHECK(c.size == sizeof(rudo_config));
    CHECK(c.initial_heap == (size_t)4 << 20 && c.max_heap == 0);
    CHECK(c.growth == 1.25 && c.growth_limit == (size_t)16 << 20);
    CHECK(c.scan_static_data && c.scan_stacks && c.markers == 0);
    CHECK(c.mark_steal && c.mark_inbox && !c.mark_route);
    CHECK(c.mark_batch == 512 && c.release_delay == 2);
    CHECK(c.on_oom == NULL && c.oom_data == NULL);

    /* NULL and rudo_config_init's config resolve alike: the zeros for
     * "default" and "CPUs" replaced, the environment-only defaults set. */
    CHECK(resolve(NULL) == RUDO_OK && !message[0]);
    CHECK(out.size == sizeof(rudo_config) && out.markers >= 1);
    CHECK(out.initial_heap == c.initial_heap && out.growth == c.growth);
    CHECK(env.gc_stress == 0 && env.stop_warn_ms == 2000);
    CHECK(!env.verify && !env.gc_log && !env.poison && env.lock_check == -1);
    rudo_config from_init = out;
    CHECK(resolve(&c) == RUDO_OK && memcmp(&out, &from_init, sizeof out) == 0);

    c.initial_heap = 0; /* 0 means the default */
    c.markers = 1024;   /* the largest */
    c.release_delay = 0;
    CHECK(resolve(&c) == RUDO_OK);
    CHECK(out.initial_heap == (size_t)4 << 20 && out.markers == 1024 &&
          out.release_delay == 0);
    /* Above 1024 the marker pool (n^2 transfer slots, n-1 threads) is
     * refused at creation, not failed at the first collection. */
    c.markers = 1025;
    CHECK(resolve(&c) == RUDO_EINVAL &&
          strstr(message, "markers must be 0 (the online CPUs) or 1 to 1024 (got 1025)"));
    c.markers = UINT_MAX;
    CHECK(resolve(&c) == RUDO_EINVAL);
    c.markers = 0;
    CHECK(resolve(&c) == RUDO_OK && out.markers >= 1 && out.markers <= 1024);
}

static void test_size(void) {
    rudo_config c;
    rudo_config_init(&c);
    c.size = 0;
    expect_config("size 0 rejected", &c, false,
                  "rudo_config.size is 0, expected");
    c.size = sizeof(rudo_config) + 8;
    expect_config("size too large rejected", &c, false,
                  "fill the struct with rudo_config_init");
    /* An older, shorter struct: the fields past it keep their defaults,
     * whatever lies in memory after it. */
    memset(&c, 0x5a, sizeof c);
    c.size = offsetof(rudo_config, growth);
    c.initial_heap = 1 << 20;
    c.max_heap = 0;
    expect_config("older, shorter struct accepted", &c, true, NULL);
    CHECK(out.size == sizeof(rudo_config) && out.initial_heap == 1 << 20);
    CHECK(out.growth == 1.25 && out.mark_batch == 512 && out.on_oom == NULL);
}

static void test_env_ranges(void) {
    for (size_t i = 0; i < rudo__options_count(); i++) {
        const rudo__option *o = rudo__option_at(i);
        if (!o->env)
            continue;
        char v[64];
        switch (o->type) {
        case RUDO_OPT_UNSIGNED:
            snprintf(v, sizeof v, "%.0f", o->min);
            expect_var(o, v, true, o->min);
            snprintf(v, sizeof v, "%.0f", o->max);
            expect_var(o, v, true, o->max);
            snprintf(v, sizeof v, "%.0f", o->min - 1);
            expect_var(o, v, false, 0);
            snprintf(v, sizeof v, "%.0f", o->max + 1);
            expect_var(o, v, false, 0);
            expect_var(o, "5x", false, 0);
            expect_var(o, "99999999999999999999999", false, 0);
            break;
        case RUDO_OPT_DOUBLE:
            snprintf(v, sizeof v, "%g", o->max);
            expect_var(o, v, true, o->max);
            snprintf(v, sizeof v, "%g", o->max + 1);
            expect_var(o, v, false, 0);
            snprintf(v, sizeof v, "%g", o->min);
            expect_var(o, v, !(o->flags & RUDO_OPT_MIN_EXCLUSIVE), o->min);
            snprintf(v, sizeof v, "%g", o->min - 1);
            expect_var(o, v, false, 0);
            snprintf(v, sizeof v, "%g", o->min + 0.001);
            expect_var(o, v, true, o->min + 0.001);
            expect_var(o, "nan", false, 0);
            expect_var(o, "inf", false, 0);
            expect_var(o, "1.5x", false, 0);
            break;
        case RUDO_OPT_SIZE:
            expect_var(o, "65536", true, 65536);
            expect_var(o, "64K", true, 64 << 10);
            expect_var(o, "16m", true, 16 << 20);
            expect_var(o, "2G", true, 2.0 * (1 << 30));
            expect_var(o, "-1", false, 0);
            expect_var(o, "+1", false, 0);
            expect_var(o, " 16M", false, 0);
            expect_var(o, "16M ", false, 0);
            expect_var(o, "12Q", false, 0);
            expect_var(o, "16MB", false, 0);
            expect_var(o, "99999999999999999999999", false, 0);
            if (sizeof(size_t) == 8)
                expect_var(o, "17179869184G", false, 0); /* 2^64 */
            break;
        case RUDO_OPT_BOOL:
            expect_var(o, "0", true, 0);
            expect_var(o, "1", true, 1);
            expect_var(o, "2", false, 0);
            expect_var(o, "yes", false, 0);
            break;
        case RUDO_OPT_FLAG:
            expect_var(o, "1", true, 1);
            expect_var(o, "yes", true, 1);
            expect_var(o, "0", true, 0);
            expect_var(o, "", true, 0);
            break;
        case RUDO_OPT_TRISTATE:
            expect_var(o, "1", true, 1);
            expect_var(o, "on", true, 1);
            expect_var(o, "0", true, 0);
            expect_var(o, "", true, 0); /* set, though empty: off */
            break;
        default:
            report(false, "an environment variable for a pointer", o->env);
        }
    }
    /* The zero that means the default, through the environment too. */
    setenv("RUDO_HEAP_INITIAL", "0", 1);
    CHECK(resolve(NULL) == RUDO_OK && out.initial_heap == (size_t)4 << 20);
    unsetenv("RUDO_HEAP_INITIAL");
    /* The environment wins over the config, and is validated as such. */
    rudo_config c;
    rudo_config_init(&c);
    c.mark_batch = 0;
    setenv("RUDO_MARK_BATCH", "7", 1);
    CHECK(resolve(&c) == RUDO_OK && out.mark_batch == 7);
    unsetenv("RUDO_MARK_BATCH");
}

static void test_config_ranges(void) {
    for (size_t i = 0; i < rudo__options_count(); i++) {
        const rudo__option *o = rudo__option_at(i);
        if (!(o->flags & RUDO_OPT_CHECK_CONFIG))
            continue;
        rudo_config c;
        char what[96];
        bool excl = (o->flags & RUDO_OPT_MIN_EXCLUSIVE) != 0;
        /* A field whose 0 means the online CPUs accepts 0 below its range. */
        bool zero = o->min == 1 && (o->flags & RUDO_OPT_ZERO_CPUS);
        const double probes[][2] = {{o->min, !excl}, {o->max, 1},
                                    {o->min - 1, zero}, {o->max + 1, 0}};
        for (size_t k = 0; k < sizeof probes / sizeof probes[0]; k++) {
            /* An unsigned field cannot hold a value below 0. */
            if (o->type == RUDO_OPT_UNSIGNED && probes[k][0] < 0)
                continue;
            rudo_config_init(&c);
            if (o->type == RUDO_OPT_UNSIGNED)
                *(unsigned *)((char *)&c + o->offset) = (unsigned)probes[k][0];
            else
                *(double *)((char *)&c + o->offset) = probes[k][0];
            snprintf(what, sizeof what, "config %s = %g %s", o->name, probes[k][0],
                     probes[k][1] ? "accepted" : "rejected");
            expect_config(what, &c, probes[k][1] != 0, o->name);
        }
        if (o->type == RUDO_OPT_DOUBLE) {
            rudo_config_init(&c);
            *(double *)((char *)&c + o->offset) = NAN;
            snprintf(what, sizeof what, "config %s = NaN rejected", o->name);
            expect_config(what, &c, false, o->name);
        }
    }
}

int main(void) {
    /* Start from an environment without settings: CI may set some. */
    for (size_t i = 0; i < rudo__options_count(); i++)
        if (rudo__option_at(i)->env)
            unsetenv(rudo__option_at(i)->env);
    CHECK(rudo__option_at(rudo__options_count()) == NULL);
    test_readme_tables();
    test_defaults();
    test_size();
    test_env_ranges();
    test_config_ranges();
    return test_report();
}
