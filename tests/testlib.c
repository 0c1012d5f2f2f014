#include "testlib.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

unsigned long test_passed, test_failed;

void test_check(bool ok, const char *expr, const char *file, int line) {
    if (ok) {
        test_passed++;
    } else {
        test_failed++;
        fprintf(stderr, "FAIL %s:%d: %s\n", file, line, expr);
    }
}

int test_report(void) {
    printf("%lu passed, %lu failed\n", test_passed, test_failed);
    return test_failed == 0 && test_passed > 0 ? 0 : 1;
}

void expect_death(const char *what, void (*fn)(void *), void *arg,
                  const char *needle) {
    int pipefd[2];
    if (pipe(pipefd) != 0) {
        perror("pipe");
        exit(2);
    }
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid == 0) {
        dup2(pipefd[1], 2);
        close(pipefd[0]);
        close(pipefd[1]);
        fn(arg);
        _exit(0); /* survived: the parent reports it */
    }
    close(pipefd[1]);
    char buf[8192];
    size_t len = 0;
    ssize_t n;
    while ((n = read(pipefd[0], buf + len, sizeof buf - 1 - len)) > 0)
        len += (size_t)n;
    buf[len] = '\0';
    close(pipefd[0]);
    int status = 0;
    waitpid(pid, &status, 0);
    bool died = WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT;
    bool found = strstr(buf, needle) != NULL;
    if (!died || !found)
        fprintf(stderr, "death test '%s': %s; wanted '%s' in stderr: %s\n", what,
                died ? "aborted" : "did not abort", needle, buf);
    test_check(died && found, what, __FILE__, __LINE__);
}

uint64_t test_rand(uint64_t *state) {
    uint64_t x = *state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *state = x;
    return x * 0x2545F4914F6CDD1DULL;
}

long test_env_long(const char *name, long def) {
    const char *v = getenv(name);
    return v && *v ? strtol(v, NULL, 0) : def;
}
