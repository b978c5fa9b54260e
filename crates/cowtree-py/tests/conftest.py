"""Where the real filesystems are, as in cowtree-testutil: scripts/test.sh mounts them and
exports COWTREE_TEST_XFS (XFS, reflink=1) and COWTREE_TEST_EXT4 (ext4: no reflink). A test
whose filesystem is missing prints "skipped: ..." (and logs it to COWTREE_TEST_SKIP_LOG);
with COWTREE_TEST_REQUIRE_FS=1 (CI) it fails instead."""

import fcntl
import os
import shutil
import struct
import uuid

import pytest


def _mount(var, request):
    path = os.environ.get(var)
    if path and os.path.isdir(path):
        d = os.path.join(path, f"py-{request.node.name[:80]}-{uuid.uuid4().hex[:8]}")
        os.mkdir(d)
        yield d
        shutil.rmtree(d, ignore_errors=True)
        return
    why = f"{var} is not set (run scripts/test.sh)" if not path else f"{var}={path} is not a directory"
    if os.environ.get("COWTREE_TEST_REQUIRE_FS") == "1":
        pytest.fail(f"{request.node.name}: required filesystem missing: {why}")
    line = f"skipped: {request.node.nodeid}: {why}"
    print(line)
    log = os.environ.get("COWTREE_TEST_SKIP_LOG")
    if log:
        with open(log, "a") as f:
            f.write(line + "\n")
    pytest.skip(why)


@pytest.fixture
def xfs(request):
    """A fresh directory on XFS with reflink."""
    yield from _mount("COWTREE_TEST_XFS", request)


@pytest.fixture
def ext4(request):
    """A fresh directory on ext4 (cannot reflink)."""
    yield from _mount("COWTREE_TEST_EXT4", request)


# FIEMAP (linux/fiemap.h): the extents of a file and whether each is shared with another file.
_FS_IOC_FIEMAP = 0xC020660B
_FIEMAP_FLAG_SYNC = 0x1
_FIEMAP_EXTENT_SHARED = 0x2000
_HEADER = struct.Struct("=QQIIII")  # fm_start, fm_length, fm_flags, mapped, count, reserved
_EXTENT = struct.Struct("=QQQQQIIII")  # logical, physical, length, 2 reserved, flags, 3 reserved


def extents(path, max_extents=64):
    """[(logical, length, shared)] of `path`, from the FS_IOC_FIEMAP ioctl."""
    buf = bytearray(_HEADER.size + _EXTENT.size * max_extents)
    _HEADER.pack_into(buf, 0, 0, 2**64 - 1, _FIEMAP_FLAG_SYNC, 0, max_extents, 0)
    fd = os.open(path, os.O_RDONLY)
    try:
        fcntl.ioctl(fd, _FS_IOC_FIEMAP, buf, True)
    finally:
        os.close(fd)
    mapped = _HEADER.unpack_from(buf, 0)[3]
    out = []
    for i in range(mapped):
        e = _EXTENT.unpack_from(buf, _HEADER.size + i * _EXTENT.size)
        out.append((e[0], e[2], bool(e[5] & _FIEMAP_EXTENT_SHARED)))
    return out


def all_shared(path):
    ex = extents(path)
    return bool(ex) and all(shared for _, _, shared in ex)


def none_shared(path):
    return not any(shared for _, _, shared in extents(path))


def make_tree(root, files=3, size=256 * 1024):
    """A small tree: files of random bytes, one executable, a symlink and an empty dir."""
    os.makedirs(os.path.join(root, "pkg", "sub"))
    os.makedirs(os.path.join(root, "empty"))
    for i in range(files):
        with open(os.path.join(root, "pkg", f"f{i}.bin"), "wb") as f:
            f.write(os.urandom(size))
    with open(os.path.join(root, "pkg", "sub", "run.sh"), "w") as f:
        f.write("#!/bin/sh\necho hi\n")
    os.chmod(os.path.join(root, "pkg", "sub", "run.sh"), 0o755)
    os.symlink("pkg/f0.bin", os.path.join(root, "link"))
    return root

