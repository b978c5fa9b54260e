"""`preserve=` and `archive=` of the module, on real XFS: what `cowtree clone --archive` keeps
(owners, extended attributes, hardlinks, special files) is kept from Python too, the report
counts it as `cowtree clone --json` does, and a bad item name is refused before any work."""

import os
import stat

import pytest

import cowtree
from conftest import all_shared

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="owners and trusted.* need root")


def _tree(root):
    """Files owned by another user and group, a hardlinked pair, extended attributes in two
    namespaces, a set-user-ID file, a FIFO and a character device."""
    os.makedirs(os.path.join(root, "d"))
    a = os.path.join(root, "d", "a")
    with open(a, "wb") as f:
        f.write(os.urandom(64 * 1024))
    os.link(a, os.path.join(root, "b"))
    os.chown(a, 1234, 2345)
    os.chown(os.path.join(root, "d"), 1235, 2346)
    os.setxattr(a, "user.origin", b"cache")
    os.setxattr(a, "trusted.note", b"root only")
    suid = os.path.join(root, "suid")
    with open(suid, "w") as f:
        f.write("#!/bin/sh\n")
    os.chown(suid, 0, 0)
    os.chmod(suid, 0o4755)
    os.mkfifo(os.path.join(root, "fifo"), 0o640)
    os.mknod(os.path.join(root, "null"), 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    return root


@needs_root
@pytest.mark.parametrize("how", [{"archive": True}, {"preserve": "all"}, {"preserve": ["ownership", "xattr", "links", "special"]}])
def test_preserve_keeps_owners_xattrs_hardlinks_and_special_files(xfs, how):
    src = _tree(os.path.join(xfs, "src"))
    dst = os.path.join(xfs, "dst")
    linker = cowtree.Linker(**how)
    assert set(linker.preserve) >= {"ownership", "xattr", "links", "special"}
    r = linker.link_tree(src, dst)
    # One inode with two names, cloned once: `files` counts inodes, `hardlinks` later names.
    a, b = os.path.join(dst, "d", "a"), os.path.join(dst, "b")
    sa, sb = os.lstat(a), os.lstat(b)
    assert sa.st_ino == sb.st_ino and sa.st_nlink == 2
    assert os.lstat(os.path.join(src, "d", "a")).st_ino != sa.st_ino
    assert all_shared(a)
    assert (r.files, r.cloned, r.hardlinks, r.special_made) == (2, 2, 1, 2)
    assert r.not_kept == {"ownership": 0, "xattr": 0, "acl": 0, "links": 0, "special": 0}
    # Owners of files and directories, and the set-user-ID bit (kept after the chown).
    assert (sa.st_uid, sa.st_gid) == (1234, 2345)
    d = os.lstat(os.path.join(dst, "d"))
    assert (d.st_uid, d.st_gid) == (1235, 2346)
    assert stat.S_IMODE(os.lstat(os.path.join(dst, "suid")).st_mode) == 0o4755
    # Extended attributes of both namespaces.
    assert os.getxattr(a, "user.origin") == b"cache"
    assert os.getxattr(a, "trusted.note") == b"root only"
    # Special files made again, the device with its number.
    assert stat.S_ISFIFO(os.lstat(os.path.join(dst, "fifo")).st_mode)
    null = os.lstat(os.path.join(dst, "null"))
    assert stat.S_ISCHR(null.st_mode) and null.st_rdev == os.makedev(1, 3)
    # A write through one name reaches the other (one inode) and never the source.
    with open(b, "r+b") as f:
        f.write(b"changed")
    with open(a, "rb") as f:
        assert f.read(7) == b"changed"
    with open(os.path.join(src, "d", "a"), "rb") as f:
        assert f.read(7) != b"changed"


@needs_root
def test_without_preserve_the_copy_is_the_callers_with_no_attributes_nor_links(xfs):
    src = _tree(os.path.join(xfs, "src"))
    os.unlink(os.path.join(src, "fifo"))
    os.unlink(os.path.join(src, "null"))
    dst = os.path.join(xfs, "dst")
    assert cowtree.Linker().preserve == ()
    r = cowtree.link_tree(src, dst)
    a, b = os.lstat(os.path.join(dst, "d", "a")), os.lstat(os.path.join(dst, "b"))
    assert a.st_ino != b.st_ino and (r.files, r.hardlinks, r.special_made) == (3, 0, 0)
    assert (a.st_uid, a.st_gid) == (0, 0)
    assert os.listxattr(os.path.join(dst, "d", "a")) == []
    assert stat.S_IMODE(os.lstat(os.path.join(dst, "suid")).st_mode) == 0o755
    assert r.not_kept == {"ownership": 0, "xattr": 0, "acl": 0, "links": 0, "special": 0}


def test_one_item_keeps_that_item_alone(xfs):
    src = os.path.join(xfs, "src")
    os.mkdir(src)
    with open(os.path.join(src, "a"), "wb") as f:
        f.write(b"x" * 4096)
    os.link(os.path.join(src, "a"), os.path.join(src, "b"))
    os.setxattr(os.path.join(src, "a"), "user.k", b"v")
    r = cowtree.link_tree(src, os.path.join(xfs, "dst"), preserve="links")
    a, b = os.lstat(os.path.join(xfs, "dst", "a")), os.lstat(os.path.join(xfs, "dst", "b"))
    assert a.st_ino == b.st_ino and r.hardlinks == 1
    assert os.listxattr(os.path.join(xfs, "dst", "a")) == []
    assert cowtree.Linker(preserve="xattr, acl,mode").preserve == ("xattr", "acl")
    assert cowtree.Linker(preserve=("timestamps",)).preserve == ()


@pytest.mark.parametrize(
    "bad, item",
    [("owner", "owner"), ("xattr,context", "context"), (["links", "hardlinks"], "hardlinks"), ("xattr,", "")],
)
def test_an_unknown_preserve_item_raises_value_error_naming_it_and_links_nothing(xfs, bad, item):
    src = os.path.join(xfs, "src")
    os.mkdir(src)
    dst = os.path.join(xfs, "dst")
    for call in (lambda: cowtree.Linker(preserve=bad), lambda: cowtree.link_tree(src, dst, preserve=bad)):
        with pytest.raises(ValueError) as info:
            call()
        msg = str(info.value)
        assert f"unknown preserve item {item!r}" in msg.replace('"', "'"), msg
        assert "ownership, xattr, acl, links, special, all" in msg, msg
    assert not os.path.exists(dst)
    with pytest.raises(TypeError):
        cowtree.Linker(preserve=["links", 3])
    with pytest.raises(TypeError):
        cowtree.Linker(preserve=7)
