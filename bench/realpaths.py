#!/usr/bin/env python3
"""Real paths at any count: the directories, file names and symlinks of real trees, COPIES
times, each file holding one line of its own (its copy and path).

    bench/realpaths.py DST COPIES NAME=SRC [NAME=SRC ...]

makes DST/copy-K/NAME/... for K in 0..COPIES-1, a copy of each SRC's directories, names and
symlinks (targets as they are). What depends on paths and names (a snapshot's memory) is then
measured as on a real tree of COPIES times its size, without reading its data that many
times. Regular files only are copied as files; other special files are left out. Prints the
counts and the mean length of a file's path (relative to DST)."""
import os
import sys


def main() -> None:
    if len(sys.argv) < 4 or not sys.argv[2].isdigit():
        sys.exit(__doc__)
    dst, copies = sys.argv[1], int(sys.argv[2])
    dirs, files, links = [], [], []
    for arg in sys.argv[3:]:
        name, sep, src = arg.partition("=")
        if not sep or not name or "/" in name or not os.path.isdir(src):
            sys.exit(f"realpaths: {arg}: not NAME=DIR")
        for d, ds, ns in os.walk(src):
            rel = os.path.relpath(d, src)
            rel = name if rel == "." else os.path.join(name, rel)
            dirs.append(rel)
            for n in ns + [n for n in ds if os.path.islink(os.path.join(d, n))]:
                p = os.path.join(d, n)
                if os.path.islink(p):
                    links.append((os.path.join(rel, n), os.readlink(p)))
                elif os.path.isfile(p):
                    files.append(os.path.join(rel, n))
    total = plen = 0
    for k in range(copies):
        top = os.path.join(dst, f"copy-{k}")
        for r in dirs:
            os.makedirs(os.path.join(top, r), exist_ok=True)
        for r in files:
            with open(os.path.join(top, r), "w") as f:
                f.write(f"{k} {r}\n")
            total += 1
            plen += len(f"copy-{k}/{r}")
        for r, t in links:
            os.symlink(t, os.path.join(top, r))
    mean = plen / total if total else 0
    print(
        f"realpaths: {dst}: {total} files, {len(links) * copies} symlinks, "
        f"{len(dirs) * copies} directories, mean file path {mean:.1f} bytes"
    )


if __name__ == "__main__":
    main()
