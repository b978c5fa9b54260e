/* The syscall floor of cloning a tree: what any tool that makes a reflinked copy of every file
 * cannot skip, and nothing else.
 *
 *   cc -O2 -pthread -o /tmp/clone-floor bench/clone-floor.c
 *   /tmp/clone-floor [-j THREADS] [-s] [-x NAME]... SRC DST
 *
 * DST must not exist. THREADS workers (default: the online CPUs) share a queue of directories;
 * per directory: open it (openat, relative to the source root), list it (getdents through
 * readdir), mkdirat each subdirectory in the destination and queue it; per regular file:
 * openat the source, openat(O_CREAT|O_EXCL) the destination (mode 0644: no stat for the source's
 * mode), ioctl(FICLONE), close both; per symlink: readlinkat and symlinkat. No fsync, no
 * metadata copied, no error recovery (any failure ends the run with status 1). With -s, one
 * syncfs of DST's filesystem after the last file: the floor of a copy that must survive a
 * power loss once it is reported done, as a checkout must (a clone need not). It prints the
 * count of files, directories and symlinks and the wall time on stderr (with -s, also the
 * syncfs's share of it). Each -x NAME leaves
 * the entry NAME at SRC's top level out (e.g. -x .git: the files a new git worktree holds). */
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
    char *rel; /* path beneath both roots; "." for the roots */
    struct job *next;
};

static int src_root, dst_root;
static struct job *queue;
static int pending; /* jobs queued or running */
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t more = PTHREAD_COND_INITIALIZER;
static long files, dirs, links;
static char **skip; /* -x names, left out at the top level */
static int nskip;

static void die(const char *what, const char *path) {
    fprintf(stderr, "clone-floor: %s %s: %s\n", what, path, strerror(errno));
    exit(1);
}

static void push(char *rel) {
    struct job *j = malloc(sizeof *j);
    if (!j)
        die("malloc", rel);
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

static int skipped(const char *name) {
    for (int i = 0; i < nskip; i++)
        if (!strcmp(skip[i], name))
            return 1;
    return 0;
}

static void one_dir(const char *rel, long *nf, long *nd, long *nl) {
    int sd = openat(src_root, rel, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
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
        if (!strcmp(rel, ".") && skipped(n))
            continue;
        unsigned char t = e->d_type;
        if (t == DT_UNKNOWN) {
            struct stat st;
            if (fstatat(sd, n, &st, AT_SYMLINK_NOFOLLOW))
                die("stat", n);
            t = S_ISDIR(st.st_mode) ? DT_DIR : S_ISLNK(st.st_mode) ? DT_LNK : S_ISREG(st.st_mode) ? DT_REG : 0;
        }
        if (t == DT_DIR) {
            if (mkdirat(dd, n, 0755))
                die("mkdir", n);
            (*nd)++;
            push(join(rel, n));
        } else if (t == DT_REG) {
            int s = openat(sd, n, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
            if (s < 0)
                die("open", n);
            int f = openat(dd, n, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
            if (f < 0)
                die("create", n);
            if (ioctl(f, FICLONE, s))
                die("FICLONE", n);
            close(f);
            close(s);
            (*nf)++;
        } else if (t == DT_LNK) {
            char target[4096];
            ssize_t len = readlinkat(sd, n, target, sizeof target - 1);
            if (len < 0)
                die("readlink", n);
            target[len] = 0;
            if (symlinkat(target, dd, n))
                die("symlink", n);
            (*nl)++;
        }
    }
    closedir(d);
    close(sd);
    close(dd);
}

static void *worker(void *arg) {
    (void)arg;
    long nf = 0, nd = 0, nl = 0;
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
        one_dir(j->rel, &nf, &nd, &nl);
        free(j->rel);
        free(j);
        pthread_mutex_lock(&lock);
        if (--pending == 0)
            pthread_cond_broadcast(&more);
        pthread_mutex_unlock(&lock);
    }
    pthread_mutex_lock(&lock);
    files += nf;
    dirs += nd;
    links += nl;
    pthread_mutex_unlock(&lock);
    return NULL;
}

int main(int argc, char **argv) {
    long threads = sysconf(_SC_NPROCESSORS_ONLN);
    int opt, durable = 0;
    skip = calloc(argc, sizeof *skip);
    if (!skip)
        die("malloc", argv[0]);
    while ((opt = getopt(argc, argv, "j:sx:")) != -1) {
        if (opt == 'j')
            threads = atol(optarg);
        else if (opt == 's')
            durable = 1;
        else if (opt == 'x')
            skip[nskip++] = optarg;
        else
            goto usage;
    }
    if (argc - optind != 2 || threads < 1) {
    usage:
        fprintf(stderr, "usage: %s [-j THREADS] [-s] [-x NAME]... SRC DST\n", argv[0]);
        return 2;
    }
    const char *src = argv[optind], *dst = argv[optind + 1];
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    src_root = open(src, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (src_root < 0)
        die("open", src);
    if (mkdir(dst, 0755))
        die("mkdir", dst);
    dst_root = open(dst, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dst_root < 0)
        die("open", dst);
    char *root = strdup(".");
    if (!root)
        die("malloc", src);
    push(root);
    pthread_t *tids = calloc(threads, sizeof *tids);
    if (!tids)
        die("malloc", src);
    for (long i = 0; i < threads; i++)
        if (pthread_create(&tids[i], NULL, worker, NULL))
            die("pthread_create", src);
    for (long i = 0; i < threads; i++)
        pthread_join(tids[i], NULL);
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    if (durable && syncfs(dst_root))
        die("syncfs", dst);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    fprintf(stderr, "clone-floor: %ld files, %ld directories, %ld symlinks, %ld threads, %.3f s",
            files, dirs, links, threads, (t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9);
    if (durable)
        fprintf(stderr, " (syncfs %.3f s)", (t1.tv_sec - ts.tv_sec) + (t1.tv_nsec - ts.tv_nsec) / 1e9);
    fprintf(stderr, "\n");
    return 0;
}
