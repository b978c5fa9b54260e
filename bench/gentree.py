#!/usr/bin/env python3
"""Generate a deterministic synthetic tree shaped like a large source repository.

    bench/gentree.py DEST [--files N] [--dirs N] [--seed S] [--scale F] [--json]

Defaults: about 80,000 files in about 5,000 directories. Sizes are log-normal (median about
3 KiB) with a long tail of large files (3 MiB up to 100 MiB); about 3% of files are
executable (0755, the rest 0644); about 0.5% are empty; about 1% of entries are relative
symlinks, a tenth of them dangling; about 1% of directories are empty; a few names are non-ASCII
(UTF-8). File content is pseudo-random (no run of zeros, so nothing compresses), and every
non-empty file starts with a header naming it, so no two of them are equal. The same arguments and Python version give the same tree: names,
sizes, bytes, modes, symlink targets and modification times.

DEST must not exist or be an empty directory. Prints totals (files, dirs, symlinks, apparent
bytes); --json prints them as one JSON object instead.
"""

import argparse
import hashlib
import json
import math
import os
import random
import sys
import time

MIB = 1 << 20

WORDS = (
    "src lib core net fs mm io util utils common test tests bench docs doc api impl internal "
    "driver drivers arch include kernel crypto sound video block tools scripts build config "
    "parser lexer codegen runtime vm gc alloc sync thread proto rpc http json xml yaml cache "
    "store index query plan exec storage engine server client cli ui web assets static "
    "templates vendor third_party examples fixtures data schema model views handlers "
    "middleware auth session log trace metrics"
).split()

EXTS = (
    # extension, weight
    (".c", 14), (".h", 12), (".rs", 10), (".py", 8), (".go", 5), (".js", 6), (".ts", 5),
    (".cc", 4), (".java", 3), (".md", 4), (".txt", 3), (".json", 4), (".yaml", 2),
    (".toml", 1), (".html", 2), (".css", 2), (".png", 3), (".svg", 1), (".S", 1),
    ("", 2),
)

NON_ASCII = ("résumé", "naïve", "Ωmega", "日本語", "straße", "données", "café ☕", "Ünïcödé", "🚀 launch")

BASE_TIME = 1_700_000_000  # 2023-11-14; modification times spread over the year before it


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("dest", help="directory to create (must not exist, or be empty)")
    p.add_argument("--files", type=int, default=80_000, help="regular files before --scale (default 80000)")
    p.add_argument("--dirs", type=int, default=5_000, help="directories before --scale (default 5000)")
    p.add_argument("--large", type=int, default=8, help="large files (several MiB up to --max-large) before --scale (default 8)")
    p.add_argument("--max-large", type=float, default=100.0, help="size of the largest file in MiB before --scale (default 100)")
    p.add_argument("--median", type=float, default=3.0, help="median small-file size in KiB (default 3)")
    p.add_argument("--sigma", type=float, default=1.2, help="log-normal sigma of small-file sizes (default 1.2)")
    p.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    p.add_argument("--scale", type=float, default=1.0, help="multiply file, dir and large-file counts and large sizes (default 1)")
    p.add_argument("--symlink-ratio", type=float, default=0.01, help="symlinks per file (default 0.01)")
    p.add_argument("--exec-ratio", type=float, default=0.03, help="share of executable files (default 0.03)")
    p.add_argument("--no-times", action="store_true", help="leave modification times as written")
    p.add_argument("--json", action="store_true", help="print totals as one JSON object")
    a = p.parse_args(argv)
    if a.scale <= 0:
        p.error("--scale must be positive")
    return a


class Plan:
    def __init__(self):
        self.dirs = [""]  # relative paths; "" is the root
        self.depth = [0]
        self.children = [set()]  # names used in each dir
        self.subdirs = [0]
        self.files = []  # (rel, size, mode)
        self.symlinks = []  # (rel, target, dangling)
        self.empty = set()


def unique_name(used, base):
    name, n = base, 1
    while name in used:
        n += 1
        name = f"{base}{n}" if "." not in base else base.replace(".", f"{n}.", 1)
    used.add(name)
    return name


def make_plan(a):
    rng = random.Random(a.seed)
    n_files = max(1, round(a.files * a.scale))
    n_dirs = max(1, round(a.dirs * a.scale))
    n_large = max(1, round(a.large * a.scale)) if a.large > 0 else 0
    max_large = max(1.0, a.max_large * a.scale) * MIB
    plan = Plan()

    # Directories: each new one goes under an existing one, preferring shallow ones, so the
    # tree has a few wide top levels and depth up to about 10.
    for _ in range(n_dirs - 1):
        while True:
            parent = rng.randrange(len(plan.dirs))
            if plan.depth[parent] < 10 and rng.random() < 1.0 / (1 + 0.6 * plan.depth[parent]):
                break
        name = unique_name(plan.children[parent], rng.choice(WORDS))
        rel = name if not plan.dirs[parent] else plan.dirs[parent] + "/" + name
        plan.dirs.append(rel)
        plan.depth.append(plan.depth[parent] + 1)
        plan.children.append(set())
        plan.subdirs.append(0)
        plan.subdirs[parent] += 1

    # About 1% of the leaf directories stay empty.
    leaves = [i for i in range(1, len(plan.dirs)) if plan.subdirs[i] == 0]
    rng.shuffle(leaves)
    plan.empty = set(leaves[: max(1, len(plan.dirs) // 100)]) if len(leaves) > 1 else set()
    holders = [i for i in range(len(plan.dirs)) if i not in plan.empty]
    # Uneven fan-out: a few directories hold hundreds of files, most a handful.
    weights = [rng.paretovariate(1.2) for _ in holders]

    ext_names = [e for e, _ in EXTS]
    ext_weights = [w for _, w in EXTS]
    large_at = set(rng.sample(range(n_files), min(n_large, n_files)))
    large_sizes = sorted(
        (int(max_large * (0.03 ** (rng.random() ** 0.5))) for _ in range(len(large_at) - 1)), reverse=True
    )
    large_sizes = [int(max_large)] + large_sizes if large_at else []
    non_ascii_at = set(rng.sample(range(n_files), min(len(NON_ASCII), n_files)))
    median = a.median * 1024


    mu = math.log(median)
    dir_choice = rng.choices(holders, weights=weights, k=n_files)
    for i in range(n_files):
        d = dir_choice[i]
        ext = rng.choices(ext_names, weights=ext_weights)[0]
        executable = rng.random() < a.exec_ratio
        if executable:
            ext = rng.choice((".sh", "", ".py"))
        if i in non_ascii_at:
            base = NON_ASCII[len([x for x in non_ascii_at if x < i])] + ext
        else:
            base = rng.choice(WORDS) + ("_" + rng.choice(WORDS) if rng.random() < 0.5 else "") + ext
        name = unique_name(plan.children[d], base)
        rel = name if not plan.dirs[d] else plan.dirs[d] + "/" + name
        if i in large_at:
            size = large_sizes.pop()
        else:
            size = min(int(rng.lognormvariate(mu, a.sigma)), 2 * MIB)
            if rng.random() < 0.005:
                size = 0
        plan.files.append((rel, size, 0o755 if executable else 0o644))

    # Symlinks: relative, to files and directories of the tree; a tenth dangle.
    n_links = round(n_files * a.symlink_ratio)
    for _ in range(n_links):
        d = rng.choice(holders)
        here = plan.dirs[d]
        roll = rng.random()
        if roll < 0.1:
            target = rng.choice(("missing.h", "../gone/away.c", "build/out/" + rng.choice(WORDS)))
            dangling = True
        else:
            if roll < 0.3:
                dest = plan.dirs[rng.randrange(len(plan.dirs))] or "."
            else:
                dest = plan.files[rng.randrange(len(plan.files))][0]
            target = os.path.relpath(dest, here or ".")
            dangling = False
        name = unique_name(plan.children[d], "link_" + rng.choice(WORDS))
        rel = name if not here else here + "/" + name
        plan.symlinks.append((rel, target, dangling))
    return plan, rng


def write_all(fd, data):
    view = memoryview(data)
    while view:
        n = os.write(fd, view[: 16 * MIB])
        view = view[n:]


def write_tree(a, plan, rng):
    dest = a.dest
    if os.path.lexists(dest):
        if not os.path.isdir(dest) or os.path.islink(dest) or os.listdir(dest):
            sys.exit(f"gentree: {dest}: exists and is not an empty directory")
    else:
        os.mkdir(dest)
    os.umask(0o022)
    # Content: a pool of pseudo-random bytes; a small file is a header naming it followed by a
    # slice of the pool at a random offset; a large file is a SHAKE-128 stream of its own.
    pool = hashlib.shake_128(b"cowtree-gentree-pool-%d" % a.seed).digest(64 * MIB)
    view = memoryview(pool)
    pool_len = len(pool)
    for rel in plan.dirs[1:]:
        os.mkdir(os.path.join(dest, rel), 0o755)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
    stamps = []
    for idx, (rel, size, mode) in enumerate(plan.files):
        path = os.path.join(dest, rel)
        fd = os.open(path, flags, mode)
        try:
            if size:
                header = b"# %d %s\n" % (idx, rel.encode())
                if size <= 4 * MIB:
                    body = size - len(header)
                    if body <= 0:
                        write_all(fd, header[:size])
                    else:
                        off = rng.randrange(pool_len - body)
                        write_all(fd, header)
                        write_all(fd, view[off : off + body])
                else:
                    xof = hashlib.shake_128(b"cowtree-gentree-large-%d-%d" % (a.seed, idx))
                    write_all(fd, xof.digest(size))
        finally:
            os.close(fd)
        stamps.append(BASE_TIME - rng.randrange(365 * 86400))
    for rel, target, _ in plan.symlinks:
        os.symlink(target, os.path.join(dest, rel))
    if not a.no_times:
        for (rel, _, _), t in zip(plan.files, stamps):
            os.utime(os.path.join(dest, rel), (t, t))
        for rel, _, _ in plan.symlinks:
            os.utime(os.path.join(dest, rel), (BASE_TIME, BASE_TIME), follow_symlinks=False)
        for rel in reversed(plan.dirs):
            os.utime(os.path.join(dest, rel) if rel else dest, (BASE_TIME, BASE_TIME))


def main(argv):
    a = parse_args(argv)
    t0 = time.monotonic()
    plan, rng = make_plan(a)
    write_tree(a, plan, rng)
    sizes = [s for _, s, _ in plan.files]
    totals = {
        "dest": a.dest,
        "files": len(plan.files),
        "executables": sum(1 for _, _, m in plan.files if m & 0o100),
        "dirs": len(plan.dirs),  # including the root
        "empty_dirs": len(plan.empty),
        "symlinks": len(plan.symlinks),
        "dangling_symlinks": sum(1 for *_, d in plan.symlinks if d),
        "bytes": sum(sizes),
        "largest": max(sizes) if sizes else 0,
        "median": sorted(sizes)[len(sizes) // 2] if sizes else 0,
        "seed": a.seed,
        "scale": a.scale,
        "elapsed_s": round(time.monotonic() - t0, 2),
    }
    if a.json:
        print(json.dumps(totals))
    else:
        print(
            f"gentree: {a.dest}: {totals['files']} files ({totals['executables']} executable), "
            f"{totals['dirs']} dirs ({totals['empty_dirs']} empty), {totals['symlinks']} symlinks "
            f"({totals['dangling_symlinks']} dangling), {totals['bytes']} bytes apparent "
            f"({totals['bytes'] / MIB:.1f} MiB; median file {totals['median']} B, largest "
            f"{totals['largest'] / MIB:.1f} MiB) in {totals['elapsed_s']} s"
        )


if __name__ == "__main__":
    main(sys.argv[1:])
