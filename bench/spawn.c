/*
 * spawn.c — bench-spawn: runs one benchmark process and reports its peak
 * resident set size, for bench/run.py.
 *
 *   bench-spawn REPORT_FILE PROGRAM [ARGS...]
 *
 * Forks, execs PROGRAM, waits with wait4() and writes
 *   maxrss_kib=N status=S
 * to REPORT_FILE, where S is the exit status or -signal. It exits with 0
 * when it could run the program at all.
 *
 * Why a launcher: Linux's ru_maxrss of a child counts the memory image it
 * had before exec, i.e. a copy of (or, after vfork, the very) parent's
 * address space. Spawned straight from Python, every benchmark would report
 * at least the interpreter's ~16 MiB. This launcher is a few hundred KiB,
 * well below any benchmark's own footprint.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: bench-spawn REPORT_FILE PROGRAM [ARGS...]\n");
        return 64;
    }
    pid_t pid = fork();
    if (pid < 0) {
        perror("bench-spawn: fork");
        return 1;
    }
    if (pid == 0) {
        execv(argv[2], argv + 2);
        fprintf(stderr, "bench-spawn: cannot run %s: %s\n", argv[2], strerror(errno));
        _exit(127);
    }
    int status;
    struct rusage ru;
    pid_t r;
    do {
        r = wait4(pid, &status, 0, &ru);
    } while (r < 0 && errno == EINTR);
    if (r < 0) {
        perror("bench-spawn: wait4");
        return 1;
    }
    int code = WIFEXITED(status) ? WEXITSTATUS(status) : -WTERMSIG(status);
    FILE *f = fopen(argv[1], "w");
    if (f == NULL) {
        fprintf(stderr, "bench-spawn: cannot write %s: %s\n", argv[1], strerror(errno));
        return 1;
    }
    fprintf(f, "maxrss_kib=%ld status=%d\n", ru.ru_maxrss, code);
    fclose(f);
    return 0;
}
