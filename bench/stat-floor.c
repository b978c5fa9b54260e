/* The kernel's share of a walk that must lstat every file: times only the syscalls an
 * incremental snapshot cannot skip, on a tree already in the caches.
 *
 *   cc -O2 -o /tmp/stat-floor bench/stat-floor.c && /tmp/stat-floor TREE [ROUNDS]
 *
 * Per round it prints the time of one fstatat(dirfd, name, AT_SYMLINK_NOFOLLOW) per
 * non-directory entry, of the same with statx (only the fields cowtree keeps), and of
 * openat(O_PATH|O_DIRECTORY|O_NOFOLLOW) + fstat + close per directory: one thread, so the
 * times are CPU time. It holds one descriptor per directory open: raise `ulimit -n` above
 * the tree's directory count. */
#define _GNU_SOURCE
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

struct ent {
    int dir; /* descriptor of the directory holding it */
    char *name;
};

static struct ent *files, *dirs;
static size_t nfiles, ndirs, capfiles, capdirs;

static void push(struct ent **v, size_t *n, size_t *cap, int dir, const char *name) {
    if (*n == *cap) {
        *cap = *cap ? *cap * 2 : 1024;
        *v = realloc(*v, *cap * sizeof **v);
        if (!*v) {
            perror("realloc");
            exit(1);
        }
    }
    (*v)[*n].dir = dir;
    (*v)[*n].name = strdup(name);
    (*n)++;
}

static void walk(int dir) {
    DIR *d = fdopendir(dup(dir));
    if (!d) {
        perror("fdopendir");
        exit(1);
    }
    struct dirent *e;
    while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        if (e->d_type == DT_DIR) {
            int sub = openat(dir, e->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
            if (sub < 0) {
                perror(e->d_name);
                exit(1);
            }
            push(&dirs, &ndirs, &capdirs, dir, e->d_name);
            walk(sub);
        } else {
            push(&files, &nfiles, &capfiles, dir, e->d_name);
        }
    }
    closedir(d);
}

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec / 1e9;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s TREE [ROUNDS]\n", argv[0]);
        return 2;
    }
    int root = open(argv[1], O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (root < 0) {
        perror(argv[1]);
        return 1;
    }
    int rounds = argc > 2 ? atoi(argv[2]) : 5;
    walk(root);
    for (int r = 0; r < rounds; r++) {
        struct stat st;
        struct statx sx;
        double t0 = now();
        for (size_t i = 0; i < nfiles; i++)
            fstatat(files[i].dir, files[i].name, &st, AT_SYMLINK_NOFOLLOW);
        double t1 = now();
        for (size_t i = 0; i < nfiles; i++)
            statx(files[i].dir, files[i].name, AT_SYMLINK_NOFOLLOW | AT_STATX_DONT_SYNC,
                  STATX_TYPE | STATX_MODE | STATX_INO | STATX_SIZE | STATX_MTIME | STATX_CTIME,
                  &sx);
        double t2 = now();
        for (size_t i = 0; i < ndirs; i++) {
            int fd = openat(dirs[i].dir, dirs[i].name,
                            O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
            fstat(fd, &st);
            close(fd);
        }
        double t3 = now();
        printf("%zu files: fstatat %.1f ms (%.2f us each), statx %.1f ms; "
               "%zu directories: open+fstat+close %.1f ms\n",
               nfiles, (t1 - t0) * 1e3, (t1 - t0) * 1e6 / (nfiles ? nfiles : 1),
               (t2 - t1) * 1e3, ndirs, (t3 - t2) * 1e3);
    }
    return 0;
}
