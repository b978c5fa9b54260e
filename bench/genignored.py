#!/usr/bin/env python3
"""Adds what an agent's worktree carries untracked to the repository ROOT: an ignored
node_modules/ of N small files (40 per package, half in lib/) and an ignored target/release/
of four 32 MiB artifacts. Used by bench/git.sh and bench/git-subvolume.sh.

    python3 bench/genignored.py ROOT N
"""
import os
import sys


def main() -> None:
    root, n = sys.argv[1], int(sys.argv[2])
    for i in range(n):
        d = os.path.join(root, "node_modules", f"pkg{i // 40}", "lib" if i % 2 else "")
        os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, f"m{i}.js"), "w") as f:
            f.write(f"module.exports = {i};\n" * (1 + i % 30))
    t = os.path.join(root, "target", "release")
    os.makedirs(t, exist_ok=True)
    for i in range(4):
        with open(os.path.join(t, f"artifact{i}"), "wb") as f:
            f.write(os.urandom(32 << 20))


if __name__ == "__main__":
    main()
