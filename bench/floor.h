/* What the syscall floors bench/clone-floor.c and bench/merge-floor.c share: a queue of
 * directories that THREADS workers drain (a directory's subdirectories are queued as it is
 * listed), their counts, and the per-entry syscalls both make. The includer defines FLOOR_NAME
 * (its name in messages) before including this file, and defines
 *   static void one_dir(int src, const char *rel, struct counts *c);
 * which lists the directory `rel` of source `src` into the destination. */
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
    int src; /* index of the source root */
    char *rel; /* path beneath both roots; "." for the roots */
    struct job *next;
};

struct counts {
    long files, dirs, links, collisions;
};

static struct job *queue;
static int pending; /* jobs queued or running */
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t more = PTHREAD_COND_INITIALIZER;
static struct counts total; /* every worker's counts, added when it ends */

static void die(const char *what, const char *path) {
    fprintf(stderr, FLOOR_NAME ": %s %s: %s\n", what, path, strerror(errno));
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

/* The entry's type: the dirent's, or (DT_UNKNOWN) fstatat's; 0 for what is neither a
 * directory, a regular file nor a symlink. */
static unsigned char entry_type(int sd, const struct dirent *e) {
    if (e->d_type != DT_UNKNOWN)
        return e->d_type;
    struct stat st;
    if (fstatat(sd, e->d_name, &st, AT_SYMLINK_NOFOLLOW))
        die("stat", e->d_name);
    return S_ISDIR(st.st_mode) ? DT_DIR : S_ISLNK(st.st_mode) ? DT_LNK : S_ISREG(st.st_mode) ? DT_REG : 0;
}

/* Reflinks the file n of directory sd to a new file n of dd (mode 0644: no stat for the
 * source's mode). Returns 0, or -1 with errno EEXIST when dd has an n already. */
static int clone_file(int sd, int dd, const char *n) {
    int s = openat(sd, n, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (s < 0)
        die("open", n);
    int f = openat(dd, n, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
    if (f < 0 && errno == EEXIST) {
        close(s);
        errno = EEXIST;
        return -1;
    }
    if (f < 0)
        die("create", n);
    if (ioctl(f, FICLONE, s))
        die("FICLONE", n);
    close(f);
    close(s);
    return 0;
}

/* Copies the symlink n of directory sd to dd. Returns symlinkat's result. */
static int copy_symlink(int sd, int dd, const char *n) {
    char target[4096];
    ssize_t len = readlinkat(sd, n, target, sizeof target - 1);
    if (len < 0)
        die("readlink", n);
    target[len] = 0;
    return symlinkat(target, dd, n);
}

static void one_dir(int src, const char *rel, struct counts *c);

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
    total.files += c.files;
    total.dirs += c.dirs;
    total.links += c.links;
    total.collisions += c.collisions;
    pthread_mutex_unlock(&lock);
    return NULL;
}

/* Runs `threads` workers until the queue is drained (`what` names the run in errors). */
static void run_workers(long threads, const char *what) {
    pthread_t *tids = calloc(threads, sizeof *tids);
    if (!tids)
        die("malloc", what);
    for (long i = 0; i < threads; i++)
        if (pthread_create(&tids[i], NULL, worker, NULL))
            die("pthread_create", what);
    for (long i = 0; i < threads; i++)
        pthread_join(tids[i], NULL);
    free(tids);
}

/* Opens directory `rel` of root `root` and of the destination root `dst_root` (both
 * O_NOFOLLOW), and a DIR stream of the first. */
static DIR *open_pair(int root, int dst_root, const char *rel, int *sd, int *dd) {
    *sd = openat(root, rel, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (*sd < 0)
        die("open", rel);
    *dd = openat(dst_root, rel, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (*dd < 0)
        die("open destination", rel);
    DIR *d = fdopendir(dup(*sd));
    if (!d)
        die("fdopendir", rel);
    return d;
}
