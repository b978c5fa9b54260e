/* The syscall floor of cloning a tree: what any tool that makes a reflinked copy of every file
 * cannot skip, and nothing else.
 *
 *   cc -O2 -pthread -o /tmp/clone-floor bench/clone-floor.c
 *   /tmp/clone-floor [-a] [-j THREADS] [-s] [-x NAME]... SRC DST
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
 * the entry NAME at SRC's top level out (e.g. -x .git: the files a new git worktree holds).
 *
 * With -a, the floor of an archive copy (`cp -a`, `cowtree clone --archive`): also what keeping
 * owners, modes, extended attributes (ACLs included) and times cannot skip, through the
 * descriptors already open: per file fstat of the source before the destination is made (with
 * the source's permission bits), then fchown (only where the owner or group differs from the
 * process's: what it creates is already its own), flistxattr (and fgetxattr + fsetxattr of each
 * attribute listed) and futimens of the destination; per directory, once its entries are made,
 * fstat of the source, fchown, the attributes and futimens; per symlink, fchownat and
 * utimensat (AT_SYMLINK_NOFOLLOW) after an fstatat. No hardlink map, no special files, no
 * set-ID re-check: fewer calls than a faithful copy makes, so a floor. */
#define FLOOR_NAME "clone-floor"
#include "floor.h"

#include <sys/stat.h>
#include <sys/xattr.h>

static int src_root, dst_root;
static int archive; /* -a */
/* Who the process is: what it makes is already theirs (a new directory is filled before it is
 * given its own mode, so no set-group-ID parent changes a group here). */
static uid_t euid;
static gid_t egid;

/* Whether something made by this process must be given the owner and group of st: a copy that
 * finds them already right has no call to make (cowtree and cp skip it too). */
static int needs_chown(const struct stat *st) { return st->st_uid != euid || st->st_gid != egid; }

/* The extended attributes of s given to d (both open descriptors). */
static void copy_xattrs(int s, int d, const char *n) {
    char names[65536], value[65536];
    ssize_t len = flistxattr(s, names, sizeof names);
    if (len < 0)
        die("flistxattr", n);
    for (char *k = names; k < names + len; k += strlen(k) + 1) {
        ssize_t v = fgetxattr(s, k, value, sizeof value);
        if (v < 0)
            die("fgetxattr", n);
        if (fsetxattr(d, k, value, v, 0))
            die("fsetxattr", n);
    }
}

/* The owner, attributes and times of the source (its stat st, descriptor s) given to d. */
static void give_meta(int s, int d, const struct stat *st, const char *n) {
    if (needs_chown(st) && fchown(d, st->st_uid, st->st_gid))
        die("fchown", n);
    copy_xattrs(s, d, n);
    struct timespec times[2] = {st->st_atim, st->st_mtim};
    if (futimens(d, times))
        die("futimens", n);
}

/* One file as -a copies it: clone_file's calls, and its owner, attributes and times. */
static int archive_file(int sd, int dd, const char *n) {
    int s = openat(sd, n, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (s < 0)
        die("open", n);
    struct stat st;
    if (fstat(s, &st))
        die("fstat", n);
    int f = openat(dd, n, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, st.st_mode & 0777);
    if (f < 0)
        die("create", n);
    if (ioctl(f, FICLONE, s))
        die("FICLONE", n);
    give_meta(s, f, &st, n);
    close(f);
    close(s);
    return 0;
}

/* A symlink's owner and times, as -a keeps them (after copy_symlink made it). */
static void archive_symlink(int sd, int dd, const char *n) {
    struct stat st;
    if (fstatat(sd, n, &st, AT_SYMLINK_NOFOLLOW))
        die("lstat", n);
    if (needs_chown(&st) && fchownat(dd, n, st.st_uid, st.st_gid, AT_SYMLINK_NOFOLLOW))
        die("lchown", n);
    struct timespec times[2] = {st.st_atim, st.st_mtim};
    if (utimensat(dd, n, times, AT_SYMLINK_NOFOLLOW))
        die("lutimes", n);
}
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
            if ((archive ? archive_file : clone_file)(sd, dd, n))
                die("create", n);
            c->files++;
        } else if (t == DT_LNK) {
            if (copy_symlink(sd, dd, n))
                die("symlink", n);
            if (archive)
                archive_symlink(sd, dd, n);
            c->links++;
        }
    }
    if (archive) {
        /* The directory's own owner, attributes and times, once its entries are made (a
         * subdirectory's worker may still be filling it: its times are then set again by no
         * one, which a floor may skip). */
        struct stat st;
        if (fstat(sd, &st))
            die("fstat", rel);
        give_meta(sd, dd, &st, rel);
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
    while ((opt = getopt(argc, argv, "aj:sx:")) != -1) {
        if (opt == 'a')
            archive = 1;
        else if (opt == 'j')
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
        fprintf(stderr, "usage: %s [-a] [-j THREADS] [-s] [-x NAME]... SRC DST\n", argv[0]);
        return 2;
    }
    const char *src = argv[optind], *dst = argv[optind + 1];
    euid = geteuid();
    egid = getegid();
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
