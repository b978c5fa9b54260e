/* The syscall floor of a switch: what any tool that moves a worktree to a snapshot differing
 * in N files must do at least, and nothing else.
 *
 *   cc -O2 -o /tmp/switch-floor bench/switch-floor.c
 *   /tmp/switch-floor [-n] SRC DST < LIST
 *
 * LIST holds one relative path a line: files present in both SRC (the new content, e.g. a
 * tree on the same filesystem holding the target snapshot, or the store's blobs laid out by
 * path) and DST (the worktree). Per path: open the source, create a temp file beside the
 * destination (O_CREAT|O_EXCL, with the source's permission bits from an fstat of it, so the
 * tree it leaves has the target's modes), ioctl(FICLONE), close both, rename the temp over
 * the destination; then one syncfs of DST's filesystem (left out with -n). If the clone or
 * the rename fails, the temp is removed before it exits. The temp is named
 * `<name>.switch-floor-tmp`, so a file name over 238 bytes fails with ENAMETOOLONG.
 * Single-threaded: one file after the other on one thread (a switch writes its files on
 * several threads, so on a machine with free cores it can beat this floor's wall time;
 * compare CPU time too). No check of what the destination held, no record of any kind, no
 * journal, no stat cache: a switch adds those (the check that it overwrites no local change, the journal that makes
 * an interrupted switch finishable, the record and stat cache that let the next status read
 * nothing, each made durable in order). It prints the count and the wall time on stderr. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static void die(const char *what, const char *path) {
    perror(path);
    fprintf(stderr, "switch-floor: %s failed\n", what);
    exit(1);
}

int main(int argc, char **argv) {
    int nosync = 0, a = 1;
    if (a < argc && strcmp(argv[a], "-n") == 0) {
        nosync = 1;
        a++;
    }
    if (argc - a != 2) {
        fprintf(stderr, "usage: switch-floor [-n] SRC DST < LIST  (single-threaded)\n");
        return 2;
    }
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    int src = open(argv[a], O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (src < 0) die("open", argv[a]);
    int dst = open(argv[a + 1], O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dst < 0) die("open", argv[a + 1]);
    char line[4096], tmp[4200];
    long n = 0;
    while (fgets(line, sizeof line, stdin)) {
        size_t len = strcspn(line, "\n");
        if (len == 0) continue;
        line[len] = 0;
        int s = openat(src, line, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
        if (s < 0) die("open source", line);
        struct stat st;
        if (fstat(s, &st) != 0) die("fstat source", line);
        snprintf(tmp, sizeof tmp, "%s.switch-floor-tmp", line);
        int d = openat(dst, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
                       st.st_mode & 07777);
        if (d < 0) die("create", tmp);
        if (ioctl(d, FICLONE, s) != 0) {
            int e = errno;
            unlinkat(dst, tmp, 0);
            errno = e;
            die("FICLONE", line);
        }
        close(s);
        close(d);
        if (renameat(dst, tmp, dst, line) != 0) {
            int e = errno;
            unlinkat(dst, tmp, 0);
            errno = e;
            die("rename", line);
        }
        n++;
    }
    if (!nosync && syncfs(dst) != 0) die("syncfs", argv[a + 1]);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    fprintf(stderr, "switch-floor: %ld files in %.6f s\n", n,
            (t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9);
    return 0;
}
