#!/usr/bin/env python3
"""The scale sweep's table (bench/scale.sh), from the timed runs in one or more results files.

    python3 bench/scale_table.py bench/out/scale-A.txt [bench/out/scale-B.txt ...]

scale.sh writes every timed run to its results file as a line

    scale-run FILES ROUND NAME WALL_S PEAK_KIB

and prints this table at its end from its own file. Given several files (rounds of one
filesystem and tree kind run at different times: a 2M round takes about an hour), the runs
of all of them are pooled: each row is the median over every run of that command and size.
The snapshot's reference is clone + b3sum of that clone, added within each round (the two
ran one after the other), then the median of those sums. Sizes are listed in increasing
order, and the last lines set the largest against the smallest.

Files are pooled only when measured alike: the same filesystem, kind of tree (gentree's
MEDIAN, or real trees from scale.sh's TREES), cache mode, loop direct I/O mode and b3sum
present or not, read from their `scale:` lines (an error otherwise, and for a file with runs
but no such line, or given twice). Not checked: the cowtree binary, the machine, what the
image sits on, and which real trees; given several files, their `scale:` lines are printed
first so the reader sees what was pooled.
"""

import os
import re
import statistics
import sys
from collections import defaultdict

# scale.sh's setup line: "scale: <date>, <fs>, image <size>, files: ..., runs: N,
# median file <K> KiB, cache <c>" (with TREES: "trees: ..., runs: N, real trees, cache <c>";
# since COMMANDS, "commands: ..." before the tree's kind, which the `.*` takes)
SETUP = re.compile(
    r"^scale: \d{4}-\d\d-\d\dT\S*, (\w+), .*, (median file \S+ KiB|real trees), cache (\w+)$"
)
# bench/lib.sh's mount line: "scale: xfs on /dev/loopN (image on ext4), direct I/O to its image: 1"
DIO = re.compile(r"direct I/O to its image: (\d)")
COMMANDS = ["snapshot", "clone", "checkout", "status", "switch", "verify", "push", "pull"]
# The reference each command is set against: a run name, or for snapshot the per-round sum.
REFERENCE = {
    "clone": "cp",
    "checkout": "cp",
    "status": "du",
    "verify": "b3sum_blobs",
    "push": "b3sum_blobs",
    "pull": "untar",
}


def median(values):
    """statistics.median (of an even count, the mean of the middle two), None for no values."""
    return statistics.median(values) if values else None


def read(paths):
    """The runs of every file, pooled: (runs, snap_ref, headers), where runs maps (files, name)
    to [(wall, rss_kib)], snap_ref maps files to each round's clone + b3sum, and headers are
    the files' `scale:` lines."""
    rounds = defaultdict(dict)  # (path, files, round) -> {name: (wall, rss_kib)}
    headers = []
    setups = defaultdict(list)  # (filesystem, tree kind, cache, direct I/O, b3sum) -> paths
    seen = {}
    for path in paths:
        try:
            with open(path, encoding="utf-8") as f:
                st = os.fstat(f.fileno())
                text = f.read()
        except (OSError, UnicodeDecodeError) as e:
            sys.exit(f"scale_table: {path}: {getattr(e, 'strerror', None) or e}")
        if (st.st_dev, st.st_ino) in seen:
            first = seen[(st.st_dev, st.st_ino)]
            sys.exit(f"scale_table: {path} is {first} again: its runs would count twice")
        seen[(st.st_dev, st.st_ino)] = path
        setup, dio, b3sum, has_runs = None, "?", "yes", False
        for lineno, line in enumerate(text.splitlines(), 1):
            line = line.rstrip()
            if line.startswith("scale: "):
                headers.append(f"{path}: {line}")
            m = SETUP.match(line)
            if m:
                setup = m.groups()
            m = DIO.search(line)
            if m:
                dio = m.group(1)
            if line.startswith("scale: no b3sum"):
                b3sum = "no"
            if not line.startswith("scale-run "):
                continue
            f = line.split()
            try:
                files, rnd, name, wall, rss = int(f[1]), int(f[2]), f[3], float(f[4]), int(f[5])
            except (IndexError, ValueError):
                sys.exit(f"scale_table: {path}:{lineno}: not a run line: {line!r}")
            if name in rounds[(path, files, rnd)]:
                sys.exit(
                    f"scale_table: {path}:{lineno}: a second {name} in round {rnd} of {files} files"
                )
            has_runs = True
            rounds[(path, files, rnd)][name] = (wall, rss)
        if has_runs:
            if setup is None:
                sys.exit(f"scale_table: {path}: runs but no setup line (scale: <date>, <fs>, ...): "
                         "what was measured is unknown")
            setups[setup + (dio, b3sum)].append(path)
    if len(setups) > 1:
        kinds = "; ".join(
            f"{fs}, {kind}, cache {cache}, direct I/O {dio}, b3sum {b3}: "
            + ", ".join(p)
            for (fs, kind, cache, dio, b3), p in setups.items()
        )
        sys.exit(f"scale_table: these files were not measured alike, not pooling them: {kinds}")
    runs = defaultdict(list)
    snap_ref = defaultdict(list)
    for (_, files, _), names in rounds.items():
        for name, run in names.items():
            runs[(files, name)].append(run)
        if "ref_clone" in names and "ref_b3sum" in names:
            snap_ref[files].append(names["ref_clone"][0] + names["ref_b3sum"][0])
    return runs, snap_ref, headers


def main(argv):
    if len(argv) < 2 or argv[1] in ("-h", "--help"):
        print(__doc__.strip())
        return 0 if len(argv) >= 2 else 2
    runs, snap_ref, headers = read(argv[1:])
    sizes = sorted({files for files, _ in runs})
    if not sizes:
        sys.exit("scale_table: no scale-run lines in " + ", ".join(argv[1:]))
    rows = []  # (files, command, wall, rss_kib, ref or None, count)
    for files in sizes:
        for c in COMMANDS:
            r = runs.get((files, c))
            if not r:
                continue
            wall = median([w for w, _ in r])
            rss = median([m for _, m in r])
            if c == "snapshot":
                ref = median(snap_ref.get(files, []))
            elif c in REFERENCE:
                ref = median([w for w, _ in runs.get((files, REFERENCE[c]), [])])
            else:
                ref = None
            rows.append((files, c, wall, rss, ref, len(r)))
    if len(argv) > 2:
        for h in headers:
            print(h)
        print()
    print(
        "%9s  %-9s %9s %9s %10s %9s %9s %7s %4s"
        % ("files", "command", "wall_s", "us/file", "peak_MiB", "B/file", "ref_s", "ratio", "runs")
    )
    for files, c, wall, rss, ref, n in rows:
        ratio = "-" if not ref else "%.2f" % (wall / ref)
        print(
            "%9d  %-9s %9.2f %9.1f %10.1f %9.0f %9s %7s %4d"
            % (files, c, wall, wall * 1e6 / files, rss / 1024, rss * 1024 / files,
               "-" if ref is None else "%.2f" % ref, ratio, n)
        )
    print()
    print("per file, largest tree against smallest (targets: memory <= 1.00x, time <= 1.20x; the")
    print("reference's own growth, and the command's growth divided by it: cowtree's own share):")
    for c in COMMANDS:
        mine = [row for row in rows if row[1] == c]
        if len(mine) < 2:
            print("  %-9s %s" % (c, "(one size only)" if mine else "(no runs)"))
            continue
        f0, _, w0, m0, r0, _ = mine[0]
        f1, _, w1, m1, r1, _ = mine[-1]
        if w0 <= 0 or m0 <= 0:
            print("  %-9s %d -> %d files: no per-file ratio (%.2f s, %d KiB at %d files)"
                  % (c, f0, f1, w0, m0, f0))
            continue
        mr = (m1 / f1) / (m0 / f0)
        tr = (w1 / f1) / (w0 / f0)
        line = "  %-9s %d -> %d files: memory per file %.2fx %s, time per file %.2fx %s" % (
            c, f0, f1, mr, "PASS" if mr <= 1.0 else "MISS", tr, "PASS" if tr <= 1.2 else "MISS")
        if r0 and r1:
            rr = (r1 / f1) / (r0 / f0)
            line += "; reference %.2fx, own share %.2fx" % (rr, tr / rr)
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
