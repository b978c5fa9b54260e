/* The syscall floor of merging many trees into one existing directory (installing unpacked
 * wheels into site-packages): what any installer that reflinks (or hardlinks) every file of
 * every package cannot skip, and nothing else.
 *
 *   cc -O2 -pthread -o /tmp/merge-floor bench/merge-floor.c
 *   /tmp/merge-floor [-j THREADS] [-m clone|hardlink] DST SRC...
 *
 * DST must exist; the contents of every SRC go into it (directories that several sources
 * share, or that DST already has, are merged). THREADS workers (default: the online CPUs)
 * share one queue of directories of all sources, so one large package is split between
 * workers as a small one is. Per directory: open the source directory (openat, relative to
 * its source root) and the destination directory (openat, relative to DST), list the source
 * (getdents through readdir), mkdirat each subdirectory (EEXIST accepted: a merge) and queue
 * it; per regular file, clone mode: openat the source, openat(O_CREAT|O_EXCL) the destination
 * (mode 0644: no stat for the source's mode), ioctl(FICLONE), close both; hardlink mode: one
 * linkat; per symlink: readlinkat and symlinkat. A file that exists already is counted as a
 * collision and left alone. No path mapping, no RECORD, no fsync, no metadata copied, no error
 * recovery (any other failure ends the run with status 1). It prints the counts and the wall
 * time (from before the first open to after the last worker ends) on stderr. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

struct job {
    int src; /* index into src_roots */
    char *rel; /* path beneath both roots; "." for the roots */
    struct job *next;
};

static int *src_roots, dst_root, hardlink;
static struct job *queue;
static int pending; /* jobs queued or running */
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t more = PTHREAD_COND_INITIALIZER;
static long files, dirs, links, collisions;

static void die(const char *what, const char *path) {
    fprintf(stderr, "merge-floor: %s %s: %s\n", what, path, strerror(errno));
    exit(1);
}

static void push(int src, char *rel) {
    struct job *j = malloc(sizeof *j);
    if (!j)
        die("malloc", rel);
    j->src = src;
    j->rel = rel;
    pthread_mutex_lock(&lock);
    j->next = queue;
    queue = j;
    pending++;
    pthread_cond_signal(&more);
    pthread_mutex_unlock(&lock);
}

static char *join(const char *a, const char *b) {
    size_t la = strlen(a), lb = strlen(b);
    char *p = malloc(la + lb + 2);
    if (!p)
        die("malloc", b);
    memcpy(p, a, la);
    p[la] = '/';
    memcpy(p + la + 1, b, lb + 1);
    return p;
}

struct counts {
    long files, dirs, links, collisions;
};

static void one_dir(int src, const char *rel, struct counts *c) {
    int sd = openat(src_roots[src], rel, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (sd < 0)
        die("open", rel);
    int dd = openat(dst_root, rel, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (dd < 0)
        die("open destination", rel);
    DIR *d = fdopendir(dup(sd));
    if (!d)
        die("fdopendir", rel);
    struct dirent *e;
    while ((e = readdir(d))) {
        const char *n = e->d_name;
        if (!strcmp(n, ".") || !strcmp(n, ".."))
            continue;
        unsigned char t = e->d_type;
        if (t == DT_UNKNOWN) {
            struct stat st;
            if (fstatat(sd, n, &st, AT_SYMLINK_NOFOLLOW))
                die("stat", n);
            t = S_ISDIR(st.st_mode) ? DT_DIR : S_ISLNK(st.st_mode) ? DT_LNK : S_ISREG(st.st_mode) ? DT_REG : 0;
        }
        if (t == DT_DIR) {
            if (mkdirat(dd, n, 0755) == 0)
                c->dirs++;
            else if (errno != EEXIST)
                die("mkdir", n);
            push(src, join(rel, n));
        } else if (t == DT_REG && hardlink) {
            if (linkat(sd, n, dd, n, 0) == 0)
                c->files++;
            else if (errno == EEXIST)
                c->collisions++;
            else
                die("link", n);
        } else if (t == DT_REG) {
            int s = openat(sd, n, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
            if (s < 0)
                die("open", n);
            int f = openat(dd, n, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
            if (f < 0 && errno == EEXIST) {
                c->collisions++;
                close(s);
                continue;
            }
            if (f < 0)
                die("create", n);
            if (ioctl(f, FICLONE, s))
                die("FICLONE", n);
            close(f);
            close(s);
            c->files++;
        } else if (t == DT_LNK) {
            char target[4096];
            ssize_t len = readlinkat(sd, n, target, sizeof target - 1);
            if (len < 0)
                die("readlink", n);
            target[len] = 0;
            if (symlinkat(target, dd, n) == 0)
                c->links++;
            else if (errno == EEXIST)
                c->collisions++;
            else
                die("symlink", n);
        }
    }
    closedir(d);
    close(sd);
    close(dd);
}

static void *worker(void *arg) {
    (void)arg;
    struct counts c = {0};
    for (;;) {
        pthread_mutex_lock(&lock);
        while (!queue && pending)
            pthread_cond_wait(&more, &lock);
        if (!queue) {
            pthread_mutex_unlock(&lock);
            break;
        }
        struct job *j = queue;
        queue = j->next;
        pthread_mutex_unlock(&lock);
        one_dir(j->src, j->rel, &c);
        free(j->rel);
        free(j);
        pthread_mutex_lock(&lock);
        if (--pending == 0)
            pthread_cond_broadcast(&more);
        pthread_mutex_unlock(&lock);
    }
    pthread_mutex_lock(&lock);
    files += c.files;
    dirs += c.dirs;
    links += c.links;
    collisions += c.collisions;
    pthread_mutex_unlock(&lock);
    return NULL;
}

int main(int argc, char **argv) {
    long threads = sysconf(_SC_NPROCESSORS_ONLN);
    int opt;
    while ((opt = getopt(argc, argv, "j:m:")) != -1) {
        if (opt == 'j')
            threads = atol(optarg);
        else if (opt == 'm' && !strcmp(optarg, "clone"))
            hardlink = 0;
        else if (opt == 'm' && !strcmp(optarg, "hardlink"))
            hardlink = 1;
        else
            goto usage;
    }
    if (argc - optind < 2 || threads < 1) {
    usage:
        fprintf(stderr, "usage: %s [-j THREADS] [-m clone|hardlink] DST SRC...\n", argv[0]);
        return 2;
    }
    const char *dst = argv[optind];
    int nsrc = argc - optind - 1;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    dst_root = open(dst, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dst_root < 0)
        die("open", dst);
    src_roots = calloc(nsrc, sizeof *src_roots);
    if (!src_roots)
        die("malloc", dst);
    for (int i = 0; i < nsrc; i++) {
        const char *src = argv[optind + 1 + i];
        src_roots[i] = open(src, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (src_roots[i] < 0)
            die("open", src);
        char *root = strdup(".");
        if (!root)
            die("malloc", src);
        push(i, root);
    }
    pthread_t *tids = calloc(threads, sizeof *tids);
    if (!tids)
        die("malloc", dst);
    for (long i = 0; i < threads; i++)
        if (pthread_create(&tids[i], NULL, worker, NULL))
            die("pthread_create", dst);
    for (long i = 0; i < threads; i++)
        pthread_join(tids[i], NULL);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    fprintf(stderr,
            "merge-floor: %d sources, %ld files %s, %ld directories made, %ld symlinks, "
            "%ld collisions, %ld threads, %.1f ms\n",
            nsrc, files, hardlink ? "hardlinked" : "cloned", dirs, links, collisions, threads,
            ((t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9) * 1000);
    return 0;
}
