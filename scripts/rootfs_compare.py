#!/usr/bin/env python3
"""Compares trees field by field, for scripts/rootfs.sh: every path's type, permission bits
(set-ID and sticky bits included), uid, gid, nlink, rdev, size (not of directories: a
directory's size is how its filesystem lays out its entries, which no copy keeps), mtime in
ns, symlink target, the groups of paths that share an inode, and the output of
`getfattr -h -d -m - -e hex` and `getfacl -P -n` for the path.

    rootfs_compare.py [--checkout] REFERENCE TREE [TREE ...]

With --checkout, each TREE is a `cowtree checkout --archive` of a snapshot of REFERENCE: times
are not compared (a snapshot records none; docs/store.md), nor is TREE's root's
`user.cowtree.store` attribute (the worktree's marker, which a checkout sets: its store's path).
Each TREE is compared with REFERENCE; every difference is printed (the first 40 per tree,
then how many), and the exit status is 1 when there is one. The summary line says how many
paths, hardlink groups, set-ID files, special files and paths with attributes and ACLs the
reference has, so that a log shows what was compared.
"""

import os
import stat
import subprocess
import sys


def walk(root):
    """{relative path: lstat} of every entry under root, root itself as "."."""
    out = {".": os.lstat(root)}
    for d, dirs, files in os.walk(root):
        for name in dirs + files:
            p = os.path.join(d, name)
            out[os.path.relpath(p, root)] = os.lstat(p)
    return out


def blocks(text, head):
    """{path: text} of the output blocks of getfattr/getfacl -R, each starting with `head`."""
    out = {}
    path = None
    for line in text.splitlines():
        if line.startswith(head):
            path = line[len(head):]
            path = path[2:] if path.startswith("./") else path
            out[path] = []
        elif path is not None and line:
            out[path].append(line)
    return {p: "\n".join(lines) for p, lines in out.items()}


def tool(root, args):
    r = subprocess.run(args, cwd=root, capture_output=True, check=False)
    # Both tools exit non-zero for a path they cannot read; what they printed is compared.
    if r.returncode not in (0, 1):
        sys.exit(f"rootfs_compare: {' '.join(args)} in {root} exited {r.returncode}: {r.stderr.decode(errors='replace')}")
    return r.stdout.decode("utf-8", errors="surrogateescape")


def fields(root, checkout=False, marked=False):
    """Every path's fields; with checkout, no times; with marked, root is a checkout: its
    store marker is required, and left out."""
    st = walk(root)
    xattrs = blocks(tool(root, ["getfattr", "-R", "-h", "-d", "-m", "-", "-e", "hex", "."]), "# file: ")
    if marked:
        lines = xattrs.get(".", "").splitlines()
        kept = [l for l in lines if not l.startswith("user.cowtree.store=")]
        if len(kept) == len(lines):
            sys.exit(f"rootfs_compare: {root} has no user.cowtree.store attribute: not a checkout")
        xattrs["."] = "\n".join(kept)
    acls = blocks(tool(root, ["getfacl", "-R", "-P", "-n", "."]), "# file: ")
    by_inode = {}
    for p, s in st.items():
        if not stat.S_ISDIR(s.st_mode):
            by_inode.setdefault(s.st_ino, []).append(p)
    group = {}
    for paths in by_inode.values():
        if len(paths) > 1:
            for p in paths:
                group[p] = tuple(sorted(paths))
    out = {}
    for p, s in st.items():
        kind = stat.S_IFMT(s.st_mode)
        f = {
            "type": kind,
            "mode": oct(stat.S_IMODE(s.st_mode)),
            "uid": s.st_uid,
            "gid": s.st_gid,
            "nlink": s.st_nlink,
            "rdev": s.st_rdev if kind in (stat.S_IFCHR, stat.S_IFBLK) else None,
            "size": None if kind == stat.S_IFDIR else s.st_size,
            "mtime_ns": None if checkout else s.st_mtime_ns,
            "target": os.readlink(os.path.join(root, p)) if kind == stat.S_IFLNK else None,
            "hardlinked_with": group.get(p),
            "getfattr": xattrs.get(p, ""),
            # getfacl -P skips symlinks.
            "getfacl": acls.get(p, "") if kind != stat.S_IFLNK else None,
        }
        out[p] = f
    return out


def summary(ref):
    n = len(ref)
    groups = {f["hardlinked_with"] for f in ref.values() if f["hardlinked_with"]}
    setid = sum(1 for f in ref.values() if int(f["mode"], 8) & 0o6000 and f["type"] == stat.S_IFREG)
    special = sum(1 for f in ref.values() if f["type"] in (stat.S_IFCHR, stat.S_IFBLK, stat.S_IFIFO, stat.S_IFSOCK))
    xattr = sum(1 for f in ref.values() if f["getfattr"])
    acl = sum(1 for f in ref.values() if f["getfacl"] and any(not l.startswith("#") and ("user:" in l and not l.startswith("user::") or "mask:" in l or l.startswith("default:")) for l in f["getfacl"].splitlines()))
    owners = len({(f["uid"], f["gid"]) for f in ref.values()})
    return (
        f"{n} paths, {len(groups)} hardlink groups, {setid} set-ID files, {special} special files, "
        f"{xattr} paths with extended attributes, {acl} with ACLs beyond the mode, {owners} owner:group pairs"
    )


def main():
    args = sys.argv[1:]
    checkout = bool(args) and args[0] == "--checkout"
    if checkout:
        args = args[1:]
    if len(args) < 2:
        sys.exit(__doc__)
    ref_root = args[0]
    ref = fields(ref_root, checkout)
    print(f"rootfs_compare: {ref_root}: {summary(ref)}")
    status = 0
    for root in args[1:]:
        other = fields(root, checkout, marked=checkout)
        diffs = []
        for p in sorted(set(ref) | set(other)):
            a, b = ref.get(p), other.get(p)
            if a is None or b is None:
                diffs.append(f"{p}: only in {ref_root if b is None else root}")
                continue
            for k in a:
                if a[k] != b[k]:
                    diffs.append(f"{p}: {k}: {a[k]!r} in {ref_root}, {b[k]!r} in {root}")
        if diffs:
            status = 1
            print(f"rootfs_compare: {root} differs from {ref_root} in {len(diffs)} field(s):")
            for d in diffs[:40]:
                print("  " + d)
            if len(diffs) > 40:
                print(f"  ... and {len(diffs) - 40} more")
        else:
            but = " (times and the root's store marker aside: a checkout)" if checkout else ""
            print(f"rootfs_compare: {root}: every field of all {len(ref)} paths equal to {ref_root}'s{but}")
    sys.exit(status)


if __name__ == "__main__":
    main()
