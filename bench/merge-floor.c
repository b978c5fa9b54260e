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
#define FLOOR_NAME "merge-floor"
#include "floor.h"

static int *src_roots, dst_root, hardlink;

static void one_dir(int src, const char *rel, struct counts *c) {
    int sd, dd;
    DIR *d = open_pair(src_roots[src], dst_root, rel, &sd, &dd);
    struct dirent *e;
    while ((e = readdir(d))) {
        const char *n = e->d_name;
        if (!strcmp(n, ".") || !strcmp(n, ".."))
            continue;
        unsigned char t = entry_type(sd, e);
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
            if (clone_file(sd, dd, n) == 0)
                c->files++;
            else
                c->collisions++;
        } else if (t == DT_LNK) {
            if (copy_symlink(sd, dd, n) == 0)
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
    run_workers(threads, dst);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    fprintf(stderr,
            "merge-floor: %d sources, %ld files %s, %ld directories made, %ld symlinks, "
            "%ld collisions, %ld threads, %.1f ms\n",
            nsrc, total.files, hardlink ? "hardlinked" : "cloned", total.dirs, total.links,
            total.collisions, threads,
            ((t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9) * 1000);
    return 0;
}
