/* The heap verifier (run after every collection in RUDO_DEBUG builds and
 * with RUDO_VERIFY=1): it passes on a healthy heap and fails loudly on the
 * two corruptions it looks for — a marked object that references an
 * allocated but unmarked one, and a marked free cell. */
#include <rudo.h>
#include <stdio.h>

#include "debug/debug.h"
#include "testlib.h"

typedef struct pair {
    struct pair *a, *b;
} pair;

static const uint64_t pair_layout[1] = {3};
static rudo_kind k_pair;
static pair *root;

/* Builds parent -> child, collects (both marked), then unmarks the child:
 * the parent now holds an allocated, unmarked object. */
static void unmarked_child(void *arg) {
    (void)arg;
    rudo__debug_set_mark(root->a, false);
    rudo__debug_verify_heap();
}

/* Marks a cell that was never allocated: the first object of a new kind
 * opens a fresh page, whose 65th cell nobody has been given. */
static void marked_free_cell(void *arg) {
    (void)arg;
    rudo_kind k = rudo_kind_layout("fresh", 2, pair_layout);
    pair *first = rudo_alloc(k, sizeof(pair));
    rudo__debug_set_mark((char *)first + rudo_size(first) * 64, true);
    rudo__debug_verify_heap();
}

int main(void) {
    rudo_config cfg;
    rudo_config_init(&cfg);
    cfg.scan_stacks = false;
    cfg.scan_static_data = false;
    CHECK(rudo_heap_create(&cfg) == RUDO_OK);
    k_pair = rudo_kind_layout("pair", 2, pair_layout);
    rudo_root_add((void **)&root);
    root = rudo_alloc(k_pair, sizeof(pair));
    root->a = rudo_alloc(k_pair, sizeof(pair));
    root->a->b = root; /* a cycle */
    for (int i = 0; i < 1000; i++) {
        pair *p = rudo_alloc(k_pair, sizeof(pair));
        p->a = root;
        root->b = p; /* the last one stays reachable */
    }
    rudo_collect();
    CHECK(rudo__debug_is_marked(root));
    CHECK(rudo__debug_is_marked(root->a));
    CHECK(rudo__debug_is_marked(root->b));
    rudo__debug_verify_heap(); /* healthy: returns (it aborts otherwise) */

    expect_death("marked object holding an unmarked one", unmarked_child, NULL,
                 "rudo: rudo verify: marked object");
    expect_death("marked free cell", marked_free_cell, NULL,
                 "is marked");
    CHECK(rudo_root_remove((void **)&root) == RUDO_OK);
    rudo_heap_destroy();
    return test_report();
}
