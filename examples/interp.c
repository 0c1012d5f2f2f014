/* interp.c — a tiny stack-based interpreter with a precisely rooted stack.
 *
 * The interpreter runs a Forth-like program of words separated by blanks.
 * Its values are fixnums (odd words), nil (NULL) and pairs in the rudo
 * heap. Its value stack is a plain malloc'd C array: the collector does not
 * scan malloc'd memory, and here it scans no stack or static data either
 * (precise mode). The value stack is reported to the collector by a root
 * callback that calls rudo_visit on each slot:
 *  - the main thread's interpreter through rudo_root_callback_add (a
 *    callback of the whole heap);
 *  - each worker thread's interpreter through rudo_thread_root_callback
 *    (a callback of that thread, which ends when it detaches).
 *
 * The discipline that makes this safe: every heap value the interpreter
 * still needs is on its value stack whenever it allocates. `cons`
 * allocates the pair first and only then pops its two operands; compound
 * words (iota, rev) are written with stack operations only.
 *
 * Exits 0 if every run of the program leaves the expected results. */
#include <pthread.h>
#include <rudo.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef void *val;
typedef struct pair { val car, cdr; } pair;

typedef struct vm {
    val *stack; /* malloc'd; slots [0, sp) are live */
    size_t sp, cap;
} vm;

static rudo_kind k_pair;

static int is_fix(val v) { return ((uintptr_t)v & 1) != 0; }
static val fix(intptr_t n) { return (val)(((uintptr_t)n << 1) | 1); }
static intptr_t unfix(val v) { return (intptr_t)(uintptr_t)v >> 1; }

static void die(const char *msg) { fprintf(stderr, "interp: %s\n", msg); exit(1); }

static void pair_trace(void *obj, size_t size, rudo_tracer *tr) {
    (void)size;
    pair *p = obj;
    rudo_visit(tr, &p->car);
    rudo_visit(tr, &p->cdr);
}

/* The root callback: runs during a collection with the world stopped, so
 * the owning thread is not in the middle of changing its stack. Fixnums
 * would be ignored anyway (they point nowhere in the heap), but skipping
 * them is cheaper and clearer. */
static void vm_roots(rudo_tracer *tr, void *data) {
    vm *m = data;
    for (size_t i = 0; i < m->sp; i++)
        if (!is_fix(m->stack[i]))
            rudo_visit(tr, &m->stack[i]);
}

static void push(vm *m, val v) {
    if (m->sp == m->cap) {
        /* realloc runs while this thread is running, so no collection
         * reads the array meanwhile (the callback runs only while this
         * thread is stopped or in a blocking region). */
        size_t cap = m->cap ? m->cap * 2 : 64;
        val *s = realloc(m->stack, cap * sizeof *s);
        if (s == NULL)
            die("out of memory");
        m->stack = s;
        m->cap = cap;
    }
    m->stack[m->sp++] = v;
}

static val *top(vm *m, size_t depth) { /* 0 = the top slot */
    if (m->sp <= depth)
        die("stack underflow");
    return &m->stack[m->sp - 1 - depth];
}
static val pop(vm *m) { val v = *top(m, 0); m->sp--; return v; }
static pair *as_pair(val v) { return v && !is_fix(v) ? v : (die("not a pair"), NULL); }

/* ( a d -- pair ) Allocate first: a and d are still on the stack, hence
 * rooted, if the allocation collects. */
static void op_cons(vm *m) {
    pair *p = rudo_alloc(k_pair, sizeof *p);
    if (p == NULL)
        die("out of memory");
    p->cdr = pop(m);
    p->car = pop(m);
    push(m, p);
}
static void op_dup(vm *m) { push(m, *top(m, 0)); }
static void op_swap(vm *m) {
    val t = *top(m, 0);
    *top(m, 0) = *top(m, 1);
    *top(m, 1) = t;
}
static void op_over(vm *m) { push(m, *top(m, 1)); }
static void op_car(vm *m) { *top(m, 0) = as_pair(*top(m, 0))->car; }
static void op_cdr(vm *m) { *top(m, 0) = as_pair(*top(m, 0))->cdr; }

/* ( n -- list ) the list 1 .. n, built on the stack: the partial list is
 * always a stack slot. */
static void op_iota(vm *m) {
    intptr_t n = unfix(pop(m));
    push(m, NULL);
    for (intptr_t i = n; i >= 1; i--) {
        push(m, fix(i));        /* ( list i ) */
        op_swap(m), op_cons(m); /* ( (i . list) ) */
    }
}

/* ( list -- reversed ) with stack words only: ( list acc ) in the loop. */
static void op_rev(vm *m) {
    push(m, NULL);
    while (*top(m, 1) != NULL) {
        op_over(m), op_car(m);             /* ( list acc x ) */
        op_swap(m), op_cons(m);            /* ( list (x . acc) ) */
        op_swap(m), op_cdr(m), op_swap(m); /* ( (cdr list) (x . acc) ) */
    }
    op_swap(m);
    pop(m);
}

/* ( list -- sum ) and ( list -- length ): no allocation, so a plain C
 * pointer may walk the list. */
static void op_sum(vm *m) {
    intptr_t s = 0;
    for (val v = pop(m); v != NULL; v = as_pair(v)->cdr)
        s += unfix(as_pair(v)->car);
    push(m, fix(s));
}
static void op_len(vm *m) {
    intptr_t n = 0;
    for (val v = pop(m); v != NULL; v = as_pair(v)->cdr)
        n++;
    push(m, fix(n));
}
static void op_add(vm *m) {
    intptr_t b = unfix(pop(m));
    *top(m, 0) = fix(unfix(*top(m, 0)) + b);
}

static void op_drop(vm *m) { pop(m); }

static const struct { const char *name; void (*fn)(vm *); } words[] = {
    {"cons", op_cons}, {"dup", op_dup}, {"swap", op_swap}, {"over", op_over},
    {"car", op_car},   {"cdr", op_cdr}, {"iota", op_iota}, {"rev", op_rev},
    {"sum", op_sum},   {"len", op_len}, {"+", op_add},     {"drop", op_drop},
};

static void run(vm *m, const char *prog) {
    char word[32];
    int n;
    while (sscanf(prog, " %31s%n", word, &n) == 1) {
        prog += n;
        char *end;
        long lit = strtol(word, &end, 10);
        size_t i = 0, nwords = sizeof words / sizeof words[0];
        if (*end == '\0') {
            push(m, fix(lit));
        } else if (strcmp(word, "nil") == 0) {
            push(m, NULL);
        } else {
            while (i < nwords && strcmp(words[i].name, word) != 0)
                i++;
            if (i == nwords)
                die("unknown word");
            words[i].fn(m);
        }
    }
}

/* Builds 1..N, reverses it twice (two lists of N pairs become garbage),
 * and leaves two results: the list's sum, and its first element plus its
 * length (the list itself is dropped: garbage too). */
#define N 2000
#define PROGRAM "%d iota rev rev dup sum swap dup car swap len +"
static const intptr_t want_sum = (intptr_t)N * (N + 1) / 2, want_x = 1 + N;

/* Runs the program `runs` times on m, keeping every result on the stack,
 * and checks them; returns the number of bad results. */
static int work(vm *m, int runs) {
    char prog[128];
    snprintf(prog, sizeof prog, PROGRAM, N);
    for (int r = 0; r < runs; r++)
        run(m, prog);
    int bad = m->sp != 2 * (size_t)runs;
    for (int r = 0; r < runs && !bad; r++)
        bad += unfix(pop(m)) != want_x || unfix(pop(m)) != want_sum;
    return bad;
}

#define NWORKERS 2
#define RUNS 60

static void *worker(void *arg) {
    int *bad = arg;
    vm m = {0};
    if (rudo_thread_attach() != RUDO_OK)
        die("attach failed");
    rudo_thread_root_callback(vm_roots, &m);
    *bad = work(&m, RUNS);
    rudo_thread_detach(); /* ends the thread's root callback */
    free(m.stack);
    return NULL;
}

int main(void) {
    rudo_config cfg;
    rudo_config_init(&cfg);
    cfg.scan_stacks = false; /* only the root callbacks report roots */
    cfg.scan_static_data = false;
    cfg.initial_heap = 512 * 1024;
    if (rudo_heap_create(&cfg) != RUDO_OK)
        return 1;
    k_pair = rudo_kind_traced("pair", pair_trace);

    static vm main_vm; /* not scanned: rooted by the callback alone */
    rudo_root_callback_add(vm_roots, &main_vm);

    pthread_t th[NWORKERS];
    int bad[NWORKERS + 1] = {0};
    for (int i = 0; i < NWORKERS; i++)
        if (pthread_create(&th[i], NULL, worker, &bad[i]) != 0)
            die("pthread_create failed");
    bad[NWORKERS] = work(&main_vm, RUNS); /* alongside the workers */
    rudo_blocking_enter();
    for (int i = 0; i < NWORKERS; i++)
        pthread_join(th[i], NULL);
    rudo_blocking_leave();

    /* A structure left on the main interpreter's stack, ((1 2 3 4 5) 100),
     * survives collections through the root callback alone. */
    run(&main_vm, "5 iota 100 nil cons cons");
    for (int i = 0; i < 3; i++)
        rudo_collect();
    run(&main_vm, "dup cdr car swap car sum +"); /* 100 + (1+...+5) */
    int errors = main_vm.sp != 1 || unfix(pop(&main_vm)) != 115;
    for (int i = 0; i <= NWORKERS; i++)
        errors += bad[i];

    rudo_stats st;
    rudo_get_stats(&st);
    printf("interp: %d interpreters x %d runs, %llu collections, "
           "%zu bytes live, %d errors\n",
           NWORKERS + 1, RUNS, (unsigned long long)st.collections,
           st.live_bytes, errors);
    rudo_root_callback_remove(vm_roots, &main_vm);
    free(main_vm.stack);
    rudo_heap_destroy();
    return errors == 0 && st.collections > 10 ? 0 : 1;
}
