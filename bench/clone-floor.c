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
#define FLOOR_NAME "clone-floor"
#include "floor.h"

static int src_root, dst_root;
static char **skip; /* -x names, left out at the top level */
static int nskip;

static int skipped(const char *name) {
    for (int i = 0; i < nskip; i++)
        if (!strcmp(skip[i], name))
            return 1;
    return 0;
}

static void one_dir(int src, const char *rel, struct counts *c) {
    (void)src;
    int sd, dd;
    DIR *d = open_pair(src_root, dst_root, rel, &sd, &dd);
    struct dirent *e;
    while ((e = readdir(d))) {
        const char *n = e->d_name;
        if (!strcmp(n, ".") || !strcmp(n, ".."))
            continue;
        if (!strcmp(rel, ".") && skipped(n))
            continue;
        unsigned char t = entry_type(sd, e);
        if (t == DT_DIR) {
            if (mkdirat(dd, n, 0755))
                die("mkdir", n);
            c->dirs++;
            push(0, join(rel, n));
        } else if (t == DT_REG) {
            if (clone_file(sd, dd, n))
                die("create", n);
            c->files++;
        } else if (t == DT_LNK) {
            if (copy_symlink(sd, dd, n))
                die("symlink", n);
            c->links++;
        }
    }
    closedir(d);
    close(sd);
    close(dd);
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
    push(0, root);
    run_workers(threads, src);
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    if (durable && syncfs(dst_root))
        die("syncfs", dst);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    fprintf(stderr, "clone-floor: %ld files, %ld directories, %ld symlinks, %ld threads, %.3f s",
            total.files, total.dirs, total.links, threads, (t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9);
    if (durable)
        fprintf(stderr, " (syncfs %.3f s)", (t1.tv_sec - ts.tv_sec) + (t1.tv_nsec - ts.tv_nsec) / 1e9);
    fprintf(stderr, "\n");
    return 0;
}
