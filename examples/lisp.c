/* lisp.c — a tiny Lisp interpreter whose values live in the rudo heap.
 *
 * What it shows:
 *  - kinds: pairs are a traced kind (a trace callback visits car and cdr);
 *    symbols, closures and environment frames are layout kinds (a bitmap
 *    says which words are pointers); names are atomic strings; buffers are
 *    an atomic kind with a finalizer that frees their malloc'd memory;
 *  - roots: the symbol table and the global environment are precise roots
 *    (rudo_root_add); static data is not scanned (scan_static_data = false);
 *    C locals of the interpreter are found by the conservative stack scan;
 *  - cycles: a closure defined inside a function and the frame it captures
 *    refer to each other, and a list is made circular with set-cdr!; both
 *    become garbage and are reclaimed;
 *  - statistics: rudo_get_stats at the end.
 *
 * The program checks its own results and exits with status 0 if they are
 * right. Set RUDO_GC_LOG=1 to see one line per collection. */
#include <ctype.h>
#include <rudo.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A value: NULL is the empty list, an odd word is a fixnum (n << 1 | 1),
 * anything else is a heap object whose first word is its type. */
typedef void *val;

enum type { T_PAIR = 2, T_SYMBOL, T_CLOSURE, T_FRAME, T_PRIM, T_BUFFER };

typedef struct pair { intptr_t type; val car, cdr; } pair;
typedef struct symbol { intptr_t type; char *name; val next; } symbol;
typedef struct closure { intptr_t type; val params, body, env; } closure;
typedef struct frame { intptr_t type; val vars, vals, parent; } frame;
typedef struct prim { intptr_t type; intptr_t op; } prim;
typedef struct buffer { intptr_t type; unsigned char *mem; size_t size; } buffer;

static rudo_kind k_pair, k_symbol, k_closure, k_frame, k_buffer;
static val symtab;  /* chain of every symbol (precise root) */
static val global;  /* the global frame (precise root) */
static val s_quote, s_if, s_define, s_lambda, s_t, s_done;
static unsigned long buffers_made, buffers_freed;

static void fail(const char *msg, const char *what) {
    fprintf(stderr, "lisp: %s%s%s\n", msg, what ? ": " : "", what ? what : "");
    exit(1);
}

/* ---- objects ------------------------------------------------------------ */

static int is_fix(val v) { return ((uintptr_t)v & 1) != 0; }
static val fix(intptr_t n) { return (val)(uintptr_t)(((uintptr_t)n << 1) | 1); }
static intptr_t unfix(val v) { return (intptr_t)(uintptr_t)v >> 1; }
static intptr_t type_of(val v) { return v && !is_fix(v) ? *(intptr_t *)v : 0; }

static void *new_obj(rudo_kind k, size_t size, intptr_t type) {
    intptr_t *o = rudo_alloc(k, size); /* zeroed; may collect */
    if (o == NULL)
        fail("out of memory", NULL);
    *o = type;
    return o;
}

static void pair_trace(void *obj, size_t size, rudo_tracer *tr) {
    (void)size;
    pair *p = obj;
    rudo_visit(tr, &p->car); /* fixnums are ignored: they point nowhere */
    rudo_visit(tr, &p->cdr);
}

static void buffer_finalize(void *obj, void *data) {
    (void)data;
    buffer *b = obj;
    free(b->mem);
    buffers_freed++;
}

static val cons(val a, val d) {
    pair *p = new_obj(k_pair, sizeof *p, T_PAIR);
    p->car = a;
    p->cdr = d;
    return p;
}

static val car(val v) {
    if (type_of(v) != T_PAIR) fail("car of a non-pair", NULL);
    return ((pair *)v)->car;
}

static val cdr(val v) {
    if (type_of(v) != T_PAIR) fail("cdr of a non-pair", NULL);
    return ((pair *)v)->cdr;
}

static val intern(const char *name, size_t len) {
    for (val s = symtab; s; s = ((symbol *)s)->next) {
        const char *n = ((symbol *)s)->name;
        if (strlen(n) == len && memcmp(n, name, len) == 0)
            return s;
    }
    char *copy = rudo_malloc_atomic(len + 1); /* zeroed: terminated */
    memcpy(copy, name, len);
    symbol *s = new_obj(k_symbol, sizeof *s, T_SYMBOL); /* copy is on the stack */
    s->name = copy;
    s->next = symtab;
    symtab = s;
    return s;
}

static val sym(const char *name) { return intern(name, strlen(name)); }

/* ---- environments ------------------------------------------------------- */

static val new_frame(val vars, val vals, val parent) {
    frame *f = new_obj(k_frame, sizeof *f, T_FRAME);
    f->vars = vars;
    f->vals = vals;
    f->parent = parent;
    return f;
}

static void define(val env, val var, val v) {
    frame *f = env;
    f->vars = cons(var, f->vars);
    f->vals = cons(v, f->vals);
}

static val *lookup(val env, val var) {
    for (; env; env = ((frame *)env)->parent) {
        val vars = ((frame *)env)->vars, vals = ((frame *)env)->vals;
        for (; vars; vars = cdr(vars), vals = cdr(vals))
            if (car(vars) == var)
                return &((pair *)vals)->car;
    }
    fail("unbound variable", ((symbol *)var)->name);
    return NULL;
}

/* ---- primitives --------------------------------------------------------- */

enum { P_ADD, P_SUB, P_MUL, P_LT, P_EQ, P_CONS, P_CAR, P_CDR, P_SETCDR,
       P_NULL, P_BUFFER, P_BUFSIZE, P_COUNT };
static const char *prim_names[P_COUNT] = {
    "+", "-", "*", "<", "=", "cons", "car", "cdr", "set-cdr!",
    "null?", "make-buffer", "buffer-size"};

static intptr_t num(val v) {
    if (!is_fix(v)) fail("not a number", NULL);
    return unfix(v);
}

static val apply_prim(intptr_t op, val args) {
    val a = args ? car(args) : NULL;
    val b = args && cdr(args) ? car(cdr(args)) : NULL;
    switch (op) {
    case P_ADD: return fix(num(a) + num(b));
    case P_SUB: return fix(num(a) - num(b));
    case P_MUL: return fix(num(a) * num(b));
    case P_LT: return num(a) < num(b) ? s_t : NULL;
    case P_EQ: return a == b ? s_t : NULL;
    case P_CONS: return cons(a, b);
    case P_CAR: return car(a);
    case P_CDR: return cdr(a);
    case P_SETCDR:
        if (type_of(a) != T_PAIR) fail("set-cdr! of a non-pair", NULL);
        ((pair *)a)->cdr = b;
        return a;
    case P_NULL: return a == NULL ? s_t : NULL;
    case P_BUFFER: {
        size_t n = (size_t)num(a);
        unsigned char *mem = malloc(n); /* outside the heap: freed by the finalizer */
        if (mem == NULL)
            fail("out of memory", NULL);
        memset(mem, 0xab, n);
        buffer *buf = new_obj(k_buffer, sizeof *buf, T_BUFFER);
        buf->mem = mem;
        buf->size = n;
        buffers_made++;
        return buf;
    }
    case P_BUFSIZE:
        if (type_of(a) != T_BUFFER) fail("buffer-size of a non-buffer", NULL);
        return fix((intptr_t)((buffer *)a)->size);
    }
    fail("bad primitive", NULL);
    return NULL;
}

/* ---- the evaluator ------------------------------------------------------ */

static val eval(val x, val env);

static val evlis(val xs, val env) {
    if (xs == NULL)
        return NULL;
    val first = eval(car(xs), env); /* kept alive by the stack scan */
    val rest = evlis(cdr(xs), env);
    return cons(first, rest);
}

static val eval(val x, val env) {
    for (;;) { /* loops instead of recursing for calls in tail position */
        switch (type_of(x)) {
        case 0: return x; /* nil or a fixnum */
        case T_SYMBOL: return *lookup(env, x);
        case T_PAIR: break;
        default: return x;
        }
        val op = car(x);
        if (op == s_quote)
            return car(cdr(x));
        if (op == s_if) {
            val test = eval(car(cdr(x)), env);
            val rest = cdr(cdr(x));
            x = test ? car(rest) : (cdr(rest) ? car(cdr(rest)) : NULL);
            continue;
        }
        if (op == s_define) {
            val var = car(cdr(x));
            define(env, var, eval(car(cdr(cdr(x))), env));
            return var;
        }
        if (op == s_lambda) {
            closure *c = new_obj(k_closure, sizeof *c, T_CLOSURE);
            c->params = car(cdr(x));
            c->body = cdr(cdr(x));
            c->env = env;
            return c;
        }
        val f = eval(op, env);
        val args = evlis(cdr(x), env);
        if (type_of(f) == T_PRIM)
            return apply_prim(((prim *)f)->op, args);
        if (type_of(f) != T_CLOSURE)
            fail("not a function", NULL);
        closure *c = f;
        env = new_frame(c->params, args, c->env);
        val body = c->body;
        for (; cdr(body); body = cdr(body))
            eval(car(body), env);
        x = car(body);
    }
}

/* ---- reader and printer ------------------------------------------------- */

static const char *in;

static void skip_space(void) {
    for (;;) {
        while (isspace((unsigned char)*in))
            in++;
        if (*in != ';')
            return;
        while (*in && *in != '\n')
            in++;
    }
}

static val read_expr(void);

static val read_list(void) {
    skip_space();
    if (*in == ')') {
        in++;
        return NULL;
    }
    if (!*in)
        fail("missing )", NULL);
    val head = read_expr();
    val tail = read_list();
    return cons(head, tail);
}

static val read_expr(void) {
    skip_space();
    if (*in == '(') {
        in++;
        return read_list();
    }
    if (*in == '\'') {
        in++;
        val quoted = read_expr();
        return cons(s_quote, cons(quoted, NULL));
    }
    const char *start = in;
    while (*in && !isspace((unsigned char)*in) && *in != '(' && *in != ')')
        in++;
    if (in == start)
        fail("unexpected character", in);
    char *end;
    long n = strtol(start, &end, 10);
    if (end == in)
        return fix(n);
    return intern(start, (size_t)(in - start));
}

static void print(val v, int depth) {
    switch (type_of(v)) {
    case 0:
        if (v == NULL) printf("()");
        else printf("%ld", (long)unfix(v));
        break;
    case T_SYMBOL: printf("%s", ((symbol *)v)->name); break;
    case T_CLOSURE: printf("#<closure>"); break;
    case T_PRIM: printf("#<primitive %s>", prim_names[((prim *)v)->op]); break;
    case T_BUFFER: printf("#<buffer %zu>", ((buffer *)v)->size); break;
    case T_PAIR: {
        printf("(");
        int n = 0;
        for (; type_of(v) == T_PAIR; v = cdr(v)) {
            if (n++ == 10 || depth > 5) { /* cycles print as ... */
                printf("...");
                v = NULL;
                break;
            }
            if (n > 1) printf(" ");
            print(car(v), depth + 1);
        }
        if (v) {
            printf(" . ");
            print(v, depth + 1);
        }
        printf(")");
        break;
    }
    default: printf("#<frame>"); break;
    }
}

/* Reads, evaluates and prints every expression of src. Returns the value
 * of the last one. */
static val run(const char *src) {
    val v = NULL;
    in = src;
    for (skip_space(); *in; skip_space()) {
        const char *start = in;
        val x = read_expr();
        printf("> %.*s\n", (int)(in - start), start);
        v = eval(x, global);
        print(v, 0);
        printf("\n");
    }
    return v;
}

/* ---- main --------------------------------------------------------------- */

static const uint64_t closure_layout[1] = {0xe}; /* words 1..3: params, body, env */
static const uint64_t frame_layout[1] = {0xe};   /* words 1..3: vars, vals, parent */
static const uint64_t symbol_layout[1] = {0x6};  /* words 1..2: name, next */

int main(void) {
    rudo_config cfg;
    rudo_config_init(&cfg);
    cfg.scan_static_data = false; /* the two globals below are precise roots */
    if (rudo_heap_create(&cfg) != RUDO_OK)
        fail("cannot create the heap", NULL);
    rudo_root_add(&symtab);
    rudo_root_add(&global);

    k_pair = rudo_kind_traced("pair", pair_trace);
    k_symbol = rudo_kind_layout("symbol", 3, symbol_layout);
    k_closure = rudo_kind_layout("closure", 4, closure_layout);
    k_frame = rudo_kind_layout("frame", 4, frame_layout);
    k_buffer = rudo_kind_atomic("buffer"); /* its memory is malloc's */
    rudo_kind_set_finalizer(k_buffer, buffer_finalize, NULL);

    /* Symbols are reachable from symtab, so these C copies need no root. */
    s_quote = sym("quote");
    s_if = sym("if");
    s_define = sym("define");
    s_lambda = sym("lambda");
    s_t = sym("t");
    s_done = sym("done");
    global = new_frame(NULL, NULL, NULL);
    for (intptr_t op = 0; op < P_COUNT; op++) {
        prim *p = new_obj(RUDO_KIND_ATOMIC, sizeof *p, T_PRIM);
        p->op = op;
        define(global, sym(prim_names[op]), p);
    }

    val fib = run(
        "(define fib (lambda (n)\n"
        "  (if (< n 2) n (+ (fib (- n 1)) (fib (- n 2))))))\n"
        "(fib 20)");
    val sum = run(
        "(define iota (lambda (n acc) (if (= n 0) acc (iota (- n 1) (cons n acc)))))\n"
        "(define sum (lambda (l) (if (null? l) 0 (+ (car l) (sum (cdr l))))))\n"
        "(sum (iota 1000 '()))");
    /* A circular list, then dropped: garbage with a cycle. */
    run("(define ring (iota 5 '()))\n"
        "(set-cdr! (cdr (cdr (cdr (cdr ring)))) ring)\n"
        "ring\n"
        "(define ring '())");
    /* Each call makes a frame binding `loop` to a closure that captures
     * that same frame: a cycle, garbage once the call returns. */
    val done = run(
        "(define count-down (lambda (n)\n"
        "  (define loop (lambda (i) (if (= i 0) 'done (loop (- i 1)))))\n"
        "  (loop n)))\n"
        "(count-down 100000)");
    /* 500 buffers of 4 KiB of malloc'd memory each, all dropped. */
    val churn = run(
        "(define churn (lambda (n)\n"
        "  (if (= n 0) 0 (+ (buffer-size (make-buffer 4096)) (churn (- n 1))))))\n"
        "(churn 500)");

    rudo_collect(); /* finds the last buffers dead and runs their finalizers */
    rudo_stats st;
    rudo_get_stats(&st);
    printf("\nbuffers: %lu made, %lu finalized (their malloc'd memory freed)\n",
           buffers_made, buffers_freed);
    printf("heap: %llu collections, %llu MiB allocated, %zu KiB live, "
           "%zu KiB committed, longest pause %.2f ms, %u markers\n",
           (unsigned long long)st.collections,
           (unsigned long long)(st.bytes_allocated >> 20), st.live_bytes >> 10,
           st.heap_bytes >> 10, (double)st.pause_ns_max / 1e6, st.markers);

    /* A stale copy of a pointer on the stack may keep a buffer or two
     * alive (the stack is scanned conservatively): ask for most, not all. */
    int ok = unfix(fib) == 6765 && unfix(sum) == 500500 && done == s_done &&
             unfix(churn) == 500 * 4096 && buffers_made == 500 &&
             buffers_freed >= buffers_made / 2 && st.collections >= 2;
    printf("%s\n", ok ? "all results as expected" : "UNEXPECTED RESULTS");
    rudo_heap_destroy(); /* no finalizer runs: the live buffers' memory leaks */
    return ok ? 0 : 1;
}
