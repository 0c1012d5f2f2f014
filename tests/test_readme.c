/* test_readme.c — compiles and runs the usage example of README.md.
 *
 * The code between the two marker comments is the README's example,
 * verbatim: the ctest test readme_example_in_sync (examples/CMakeLists.txt)
 * fails if the two differ. The example's main is renamed so that this
 * file's main can run it and check what it did. */
#include <rudo.h>
#include <stdio.h>

#include "testlib.h"

#define main readme_example
int readme_example(void);

/* README example begin */
#include <rudo.h>
#include <stdio.h>

/* A cons cell: car and cdr may each point to a heap object. */
typedef struct cons {
    void *car;
    struct cons *cdr;
} cons;

/* Reports every field that may hold a heap pointer. NULL and values that
 * point outside the heap (tagged integers, say) are ignored. */
static void cons_trace(void *obj, size_t size, rudo_tracer *tr) {
    (void)size;
    cons *c = obj;
    rudo_visit(tr, &c->car);
    rudo_visit(tr, (void **)&c->cdr);
}

static int finalized; /* cells whose finalizer has run */

static void cons_finalize(void *obj, void *data) {
    (void)obj;
    ++*(int *)data;
}

static cons *list; /* a precise root (registered below) */

int main(void) {
    /* Precise roots only, so that what dies below is exactly known. With
     * rudo_heap_create(NULL) the stacks and static data are also scanned
     * conservatively: a pointer in a local variable is then a root too. */
    rudo_config cfg;
    rudo_config_init(&cfg);
    cfg.scan_stacks = false;
    cfg.scan_static_data = false;
    if (rudo_heap_create(&cfg) != RUDO_OK)
        return 1;

    rudo_kind_desc desc = {
        .name = "cons",
        .tracing = RUDO_TRACE_CALLBACK,
        .trace = cons_trace,
        .finalize = cons_finalize,
        .finalize_data = &finalized,
    };
    rudo_kind cons_kind = rudo_kind_register(&desc);
    rudo_root_add((void **)&list);

    /* 1000 cells, each linked into the rooted list as soon as it exists:
     * any allocation may collect, and with stack scanning off a pointer
     * held only in a local variable does not keep its object alive. */
    for (int i = 0; i < 1000; i++) {
        cons *c = rudo_alloc(cons_kind, sizeof *c); /* zeroed */
        c->cdr = list;
        list = c;
        char *name = rudo_malloc_atomic(16); /* no pointers inside */
        snprintf(name, 16, "cell %d", i);
        list->car = name;
    }
    cons *last = list;
    while (last->cdr != NULL)
        last = last->cdr;
    last->cdr = list; /* close the ring: a cycle */

    rudo_collect(); /* the ring is reachable from `list`: kept */
    int n = 0;
    cons *c = list;
    do {
        n++;
        c = c->cdr;
    } while (c != list);
    printf("ring of %d cells, first is \"%s\", %d finalized\n", n,
           (char *)list->car, finalized);

    list = NULL;    /* the ring is garbage now, cycle and all */
    rudo_collect(); /* finds it dead, keeps it for the finalizers, runs them */
    rudo_collect(); /* frees the cells and their names */

    rudo_stats st;
    rudo_get_stats(&st);
    printf("%llu collections, %llu finalizers run, %zu bytes live\n",
           (unsigned long long)st.collections,
           (unsigned long long)st.finalizers_run, st.live_bytes);

    rudo_root_remove((void **)&list);
    rudo_heap_destroy();
    return finalized == 1000 ? 0 : 1;
}
/* README example end */

#undef main

int main(void) {
    CHECK(readme_example() == 0); /* it returns 0 iff 1000 were finalized */
    CHECK(finalized == 1000);
    CHECK(list == NULL);
    CHECK(!rudo_heap_exists());
    CHECK(!rudo_thread_is_attached());

    /* The heap can be created again after rudo_heap_destroy: a second run
     * behaves exactly like the first. */
    finalized = 0;
    CHECK(readme_example() == 0);
    CHECK(finalized == 1000);
    CHECK(!rudo_heap_exists());
    return test_report();
}
