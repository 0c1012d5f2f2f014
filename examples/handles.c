/* handles.c — precise rooting with scopes and handles.
 *
 * The heap is created with scan_stacks = false and scan_static_data = false:
 * nothing is found conservatively, so a pointer held only in a C local does
 * not keep its object alive across an allocation (any allocation may
 * collect). Every object the program still needs is held in a handle
 * (rudo_handle) of an open scope (rudo_scope_enter / rudo_scope_exit).
 *
 * What it shows:
 *  - a recursive function that builds a binary tree holding its
 *    intermediate results only in handles of its own scope;
 *  - returning a result through the caller's scope: the caller makes a
 *    handle in its scope and passes it down; the callee stores the result
 *    there before its own scope exits (the handles it made die with it);
 *  - a scope per loop iteration, so the number of live handles stays
 *    bounded however long the loop runs;
 *  - garbage is reclaimed: a weak slot to a dropped tree becomes NULL, and
 *    live_bytes after a collection is exactly what the handles keep.
 *
 * Exits 0 if every check passes. */
#include <rudo.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

/* A tree node and a list cell, both layout kinds: bit i of the bitmap says
 * word i holds a pointer. */
typedef struct node {
    struct node *left, *right; /* words 0 and 1: pointers */
    long value;                /* word 2: not a pointer */
} node;

typedef struct cell {
    struct cell *next; /* word 0: pointer */
    node *tree;        /* word 1: pointer */
    long n;            /* word 2 */
} cell;

static rudo_kind k_node, k_cell;
static int errors;

static void *alloc_or_die(rudo_kind k, size_t size) {
    void *p = rudo_alloc(k, size);
    if (p == NULL) {
        fprintf(stderr, "handles: out of memory\n");
        exit(1);
    }
    return p;
}

/* Builds a complete tree of the given depth whose values are base,
 * base+1, ... in pre-order, and stores its root in *out (a handle of the
 * caller's scope). */
static void make_tree(int depth, long base, void **out) {
    if (depth == 0) {
        *out = NULL;
        return;
    }
    rudo_scope scope;
    rudo_scope_enter(&scope);
    /* The subtrees are kept in this scope's handles while the node that
     * will hold them is allocated. */
    void **left = rudo_handle(NULL);
    void **right = rudo_handle(NULL);
    long half = (1L << (depth - 1)) - 1; /* nodes in each subtree */
    make_tree(depth - 1, base + 1, left);
    make_tree(depth - 1, base + 1 + half, right);
    node *n = alloc_or_die(k_node, sizeof *n); /* may collect: left and
                                                * right are still rooted */
    n->left = *left;
    n->right = *right;
    n->value = base;
    /* No allocation from here to the exit: n needs no handle of its own. */
    *out = n;
    rudo_scope_exit(&scope);
}

/* Sum and count of a tree's values; checks that they are in pre-order. */
static long tree_sum(const node *t, long *expect, long *count) {
    if (t == NULL)
        return 0;
    if (t->value != (*expect)++)
        errors++;
    ++*count;
    long s = t->value;
    s += tree_sum(t->left, expect, count);
    return s + tree_sum(t->right, expect, count);
}

/* Builds a list of n cells, each with a small tree, and stores it in *out.
 * Each iteration has its own scope, so the loop keeps a bounded number of
 * handles; the growing list lives in the handle `head`, made in the outer
 * scope of this function. */
static void make_list(long n, void **out) {
    rudo_scope outer;
    rudo_scope_enter(&outer);
    void **head = rudo_handle(NULL);
    for (long i = 0; i < n; i++) {
        rudo_scope inner;
        rudo_scope_enter(&inner);
        void **tree = rudo_handle(NULL);
        make_tree(3, i * 7, tree);
        cell *c = alloc_or_die(k_cell, sizeof *c);
        c->next = *head;
        c->tree = *tree;
        c->n = i;
        *head = c;
        rudo_scope_exit(&inner);
    }
    *out = *head;
    rudo_scope_exit(&outer);
}

static long check_list(const cell *c, long n) {
    long len = 0;
    for (; c != NULL; c = c->next, len++) {
        long expect = c->n * 7, count = 0;
        if (c->n != n - 1 - len)
            errors++;
        tree_sum(c->tree, &expect, &count);
        if (count != 7)
            errors++;
    }
    return len;
}

#define DEPTH 12   /* the kept tree: 4095 nodes */
#define NCELLS 300 /* the kept list: 300 cells and 300 trees of 7 nodes */
#define ROUNDS 200

int main(void) {
    rudo_config cfg;
    rudo_config_init(&cfg);
    cfg.scan_stacks = false;      /* no conservative roots at all: */
    cfg.scan_static_data = false; /* handles are the only roots */
    cfg.initial_heap = 256 * 1024;
    if (rudo_heap_create(&cfg) != RUDO_OK)
        return 1;
    static const uint64_t node_layout = 0x3; /* words 0 and 1 */
    static const uint64_t cell_layout = 0x3;
    k_node = rudo_kind_layout("node", 3, &node_layout);
    k_cell = rudo_kind_layout("cell", 3, &cell_layout);

    rudo_scope top;
    rudo_scope_enter(&top);
    void **tree = rudo_handle(NULL);
    void **list = rudo_handle(NULL);
    make_tree(DEPTH, 0, tree);
    make_list(NCELLS, list);
    const long tree_nodes = (1L << DEPTH) - 1;
    const long tree_total = tree_nodes * (tree_nodes - 1) / 2; /* 0+1+...*/

    /* A tree that is dropped at once, watched by a weak slot (in static
     * data, which is not scanned: the slot does not keep it alive). */
    static void *watched;
    {
        rudo_scope s;
        rudo_scope_enter(&s);
        void **tmp = rudo_handle(NULL);
        make_tree(8, 0, tmp);
        watched = *tmp;
        rudo_weak_register(&watched);
        rudo_scope_exit(&s); /* the tree is garbage from here on */
    }

    /* Many rounds of garbage: each round builds a tree and a list in its
     * own scope and drops them; the kept objects are checked every round. */
    for (int r = 0; r < ROUNDS; r++) {
        rudo_scope s;
        rudo_scope_enter(&s);
        void **t = rudo_handle(NULL);
        make_tree(9, r, t);
        void **l = rudo_handle(NULL);
        make_list(20, l);
        rudo_scope_exit(&s);
        if (r % 50 == 0)
            rudo_collect();
        long expect = 0, count = 0;
        if (tree_sum(*tree, &expect, &count) != tree_total ||
            count != tree_nodes || check_list(*list, NCELLS) != NCELLS)
            errors++;
    }

    /* Exactly the kept tree and list are live after a collection. */
    rudo_collect();
    size_t node_bytes = rudo_size(*tree), cell_bytes = rudo_size(*list);
    size_t kept = (size_t)tree_nodes * node_bytes +
                  NCELLS * (cell_bytes + 7 * node_bytes);
    rudo_stats st;
    rudo_get_stats(&st);
    if (st.live_bytes != kept || watched != NULL)
        errors++;
    printf("handles: %llu collections, %zu bytes live (expected %zu), "
           "dropped tree %s, %d errors\n",
           (unsigned long long)st.collections, st.live_bytes, kept,
           watched == NULL ? "reclaimed" : "still alive", errors);

    /* Leaving the top scope drops everything. */
    rudo_scope_exit(&top);
    rudo_collect();
    rudo_get_stats(&st);
    if (st.live_bytes != 0)
        errors++;
    rudo_weak_unregister(&watched);
    rudo_heap_destroy();
    return errors == 0 && st.collections > 10 ? 0 : 1;
}
