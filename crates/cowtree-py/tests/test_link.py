"""The `cowtree` module on real filesystems: clones that share data on XFS, the fallback to
copying on ext4 and how it is reported, strict mode, existing-destination policies, several
sources in one pass, the record, errors as exception classes with their attributes, the
interpreter released during the work, and the stubs against the module."""

import ast
import hashlib
import os
import stat
import threading
import time
from pathlib import Path

import pytest

import cowtree
from conftest import all_shared, make_tree, none_shared


def read(p):
    with open(p, "rb") as f:
        return f.read()


def test_link_tree_on_xfs_clones_every_file_and_a_write_to_the_clone_leaves_the_source(xfs):
    src = make_tree(os.path.join(xfs, "src"))
    dst = os.path.join(xfs, "dst")
    r = cowtree.link_tree(src, dst)
    assert (r.files, r.cloned, r.copied, r.symlinks) == (4, 4, 0, 1)
    assert r.fallbacks == []
    assert r.destination == dst
    f0, c0 = os.path.join(src, "pkg/f0.bin"), os.path.join(dst, "pkg/f0.bin")
    assert read(f0) == read(c0)
    assert all_shared(c0) and all_shared(f0)
    assert os.stat(f0).st_ino != os.stat(c0).st_ino
    before = read(f0)
    with open(c0, "r+b") as f:
        f.write(b"changed")
    assert read(f0) == before
    assert os.readlink(os.path.join(dst, "link")) == "pkg/f0.bin"
    assert os.path.isdir(os.path.join(dst, "empty"))
    assert os.stat(os.path.join(dst, "pkg/sub/run.sh")).st_mode & 0o777 == 0o755


def test_link_tree_on_ext4_copies_and_reports_the_fallback_with_its_cause(ext4):
    src = make_tree(os.path.join(ext4, "src"))
    dst = os.path.join(ext4, "dst")
    r = cowtree.link_tree(src, dst, mode="auto")
    assert (r.files, r.cloned, r.copied) == (4, 0, 4)
    [fb] = r.fallbacks
    assert fb.reason == "filesystem-cannot-reflink"
    assert fb.per_file is False and fb.count == 4 and fb.description
    assert fb.example.startswith(src)
    assert none_shared(os.path.join(dst, "pkg/f0.bin"))
    assert read(os.path.join(src, "pkg/f1.bin")) == read(os.path.join(dst, "pkg/f1.bin"))


def test_strict_refuses_the_fallback_on_ext4_with_the_paths_and_creates_nothing(ext4):
    src = make_tree(os.path.join(ext4, "src"), files=1)
    dst = os.path.join(ext4, "dst")
    with pytest.raises(cowtree.StrictFallbackError) as info:
        cowtree.link_tree(src, dst, mode="clone", strict=True)
    e = info.value
    assert isinstance(e, cowtree.LinkError) and isinstance(e, OSError)
    assert e.kind == "strict_fallback"
    assert e.attempt == "clone" and e.reason == "filesystem-cannot-reflink"
    assert e.path == e.src and e.src.startswith(src) and e.dst
    assert e.errno is None and e.destination_unchanged
    assert not os.path.exists(dst)


def test_an_existing_destination_is_refused_by_default_and_merged_by_the_policies(xfs):
    src = make_tree(os.path.join(xfs, "src"), files=2)
    dst = os.path.join(xfs, "dst")
    os.mkdir(dst)
    with open(os.path.join(dst, "mine"), "w") as f:
        f.write("keep")
    os.makedirs(os.path.join(dst, "pkg"))
    with open(os.path.join(dst, "pkg", "f0.bin"), "w") as f:
        f.write("old")
    with pytest.raises(cowtree.DestinationExistsError) as info:
        cowtree.link_tree(src, dst)
    assert info.value.kind == "destination_exists" and info.value.path == dst
    assert str(info.value).startswith(f"destination {dst} already exists")
    assert read(os.path.join(dst, "pkg/f0.bin")) == b"old"

    r = cowtree.link_tree(src, dst, on_existing="skip")
    assert r.skipped == 1 and read(os.path.join(dst, "pkg/f0.bin")) == b"old"
    assert read(os.path.join(dst, "pkg/f1.bin")) == read(os.path.join(src, "pkg/f1.bin"))

    r = cowtree.link_tree(src, dst, on_existing="overwrite")
    assert r.replaced >= 1
    assert read(os.path.join(dst, "pkg/f0.bin")) == read(os.path.join(src, "pkg/f0.bin"))
    assert read(os.path.join(dst, "mine")) == b"keep"


def test_errors_are_classes_carrying_the_path_and_kind(xfs):
    missing = os.path.join(xfs, "nope")
    with pytest.raises(cowtree.SourceMissingError) as info:
        cowtree.link_tree(missing, os.path.join(xfs, "d"))
    assert (info.value.kind, info.value.path) == ("source_missing", missing)
    src = make_tree(os.path.join(xfs, "src"), files=1)
    with pytest.raises(cowtree.DestinationInsideSourceError) as info:
        cowtree.link_tree(src, os.path.join(src, "pkg", "inner"))
    assert info.value.src == src and info.value.path == os.path.join(src, "pkg", "inner")
    os.symlink(xfs, os.path.join(xfs, "sym"))
    with pytest.raises(cowtree.DestinationIsSymlinkError) as info:
        cowtree.link_tree(src, os.path.join(xfs, "sym"), on_existing="overwrite")
    assert info.value.kind == "destination_is_symlink"
    os.mkfifo(os.path.join(src, "fifo"))
    with pytest.raises(cowtree.SpecialFilesError) as info:
        cowtree.link_tree(src, os.path.join(xfs, "d2"))
    assert info.value.paths == [os.path.join(src, "fifo")]
    r = cowtree.link_tree(src, os.path.join(xfs, "d3"), skip_special=True)
    assert r.special == 1
    with pytest.raises(ValueError, match="unknown mode"):
        cowtree.Linker(mode="reflink")


def test_an_os_error_carries_its_errno_and_op(xfs):
    src = make_tree(os.path.join(xfs, "src"), files=1)
    os.chmod(os.path.join(src, "pkg", "f0.bin"), 0)
    # As root, permissions do not stop a read: take a directory away instead.
    parent = os.path.join(xfs, "parent-file")
    with open(parent, "w") as f:
        f.write("x")
    with pytest.raises(cowtree.LinkError) as info:
        cowtree.link_tree(src, os.path.join(parent, "dst"))
    e = info.value
    assert e.kind == "io" and isinstance(e, cowtree.IoError)
    assert e.errno is not None and e.op and e.path
    assert str(e).startswith(f"[Errno {e.errno}]")


def test_several_sources_in_one_pass_with_collisions_and_mapping_rules(xfs):
    a = make_tree(os.path.join(xfs, "a"), files=1)
    b = make_tree(os.path.join(xfs, "b"), files=2)
    dst = os.path.join(xfs, "dst")
    with pytest.raises(cowtree.CollisionError) as info:
        cowtree.Linker().link_trees([a, b], dst)
    assert info.value.kind == "collision"
    assert len(info.value.sources) == 2 and not os.path.exists(dst)

    linker = cowtree.Linker(on_existing="overwrite", record=True)
    r = linker.link_trees([a, cowtree.Source(b)], dst)
    assert {c.action for c in r.collisions} == {"replaced"}
    assert read(os.path.join(dst, "pkg/f0.bin")) == read(os.path.join(b, "pkg/f0.bin"))
    assert {e.source for e in r.record} == {0, 1}

    # A wheel-like layout: scripts to bin/, RECORD left out, the rest beneath a prefix.
    rules = [("pkg/sub", "bin"), ("pkg/f1.bin", None), ("", "lib/site")]
    r = linker.link_trees([cowtree.Source(b, rules)], os.path.join(xfs, "venv"))
    venv = Path(xfs, "venv")
    assert (venv / "bin/run.sh").read_bytes() == Path(b, "pkg/sub/run.sh").read_bytes()
    assert not (venv / "lib/site/pkg/f1.bin").exists()
    assert (venv / "lib/site/pkg/f0.bin").exists() and (venv / "lib/site/link").is_symlink()
    assert r.dropped >= 1
    assert {e.from_path for e in r.record if e.path == "bin/run.sh"} == {"pkg/sub/run.sh"}


def test_the_record_gives_each_file_its_hash_size_and_method(xfs):
    src = make_tree(os.path.join(xfs, "src"), files=2)
    r = cowtree.link_tree(src, os.path.join(xfs, "dst"), hash="sha256")
    files = {e.path: e for e in r.record if e.kind == "file"}
    assert set(files) == {"pkg/f0.bin", "pkg/f1.bin", "pkg/sub/run.sh"}
    for path, e in files.items():
        data = read(os.path.join(src, path))
        assert e.hash == hashlib.sha256(data).digest() and e.hash_algo == "sha256"
        assert e.size == len(data) and e.method == "clone" and e.from_path == path
    kinds = {e.path: e.kind for e in r.record}
    assert kinds["link"] == "symlink" and kinds["pkg"] == "dir"
    assert [e.path for e in r.record] == sorted(e.path for e in r.record)


def test_hardlink_symlink_and_copy_modes_do_what_they_say(xfs):
    src = make_tree(os.path.join(xfs, "src"), files=1)
    f = os.path.join(src, "pkg/f0.bin")
    r = cowtree.link_tree(src, os.path.join(xfs, "h"), mode="hardlink")
    assert r.hardlinked == 2 and os.stat(os.path.join(xfs, "h/pkg/f0.bin")).st_ino == os.stat(f).st_ino
    r = cowtree.link_tree(src, os.path.join(xfs, "s"), mode="symlink")
    assert r.symlinked == 2 and os.readlink(os.path.join(xfs, "s/pkg/f0.bin")) == f
    r = cowtree.link_tree(src, os.path.join(xfs, "c"), mode="copy")
    # (copy_file_range may share extents on XFS itself: the copy's own inode is what counts.)
    c = os.path.join(xfs, "c/pkg/f0.bin")
    assert r.copied == 2 and os.stat(c).st_ino != os.stat(f).st_ino and read(c) == read(f)


def test_link_files_makes_parents_and_sets_the_mode(xfs):
    src = make_tree(os.path.join(xfs, "src"), files=1)
    entries = [(os.path.join(src, "pkg/f0.bin"), "a/b/x", 0o700), (Path(src, "pkg/sub/run.sh"), "r.sh")]
    r = cowtree.Linker(record=True).link_files(entries, os.path.join(xfs, "dst"))
    assert r.cloned == 2
    assert stat.S_IMODE(os.stat(os.path.join(xfs, "dst/a/b/x")).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(os.path.join(xfs, "dst/r.sh")).st_mode) == 0o755
    assert [e.source for e in r.record if e.kind == "file"] == [0, 1]


def test_non_utf8_names_and_bytes_paths_round_trip(xfs):
    src = os.path.join(xfs, "src")
    os.mkdir(src)
    name = b"caf\xe9.txt"
    with open(os.path.join(os.fsencode(src), name), "wb") as f:
        f.write(b"x")
    r = cowtree.link_tree(os.fsencode(src), os.fsencode(os.path.join(xfs, "dst")), record=True)
    [e] = r.record
    assert os.fsencode(e.path) == name
    assert os.path.exists(os.path.join(os.fsencode(xfs), b"dst", name))


def test_the_interpreter_runs_other_threads_while_a_link_runs(ext4):
    src = os.path.join(ext4, "src")
    os.mkdir(src)
    # Enough files that the link takes a while even on an idle machine (3,000 took 0.05 s).
    for i in range(12000):
        with open(os.path.join(src, f"f{i}"), "wb") as f:
            f.write(b"x" * 512)
    done = threading.Event()
    result = {}

    def work():
        t = time.perf_counter()
        result["report"] = cowtree.link_tree(src, os.path.join(ext4, "dst"), jobs=1)
        result["seconds"] = time.perf_counter() - t
        done.set()

    ticks = []
    t = threading.Thread(target=work)
    t.start()
    while not done.is_set():
        ticks.append(time.perf_counter())
        time.sleep(0.001)
    t.join()
    assert result["report"].copied == 12000
    seconds = result["seconds"]
    assert seconds > 0.05, f"the link took {seconds:.3f} s: too short to tell"
    gaps = [b - a for a, b in zip(ticks, ticks[1:])]
    # With the interpreter held for the whole call, this thread would stall that long.
    assert max(gaps) < seconds / 2, (max(gaps), seconds)


def test_the_stubs_name_everything_the_module_exports_and_nothing_more():
    import importlib.resources

    stub = importlib.resources.files("cowtree").joinpath("_cowtree.pyi").read_text()
    assert importlib.resources.files("cowtree").joinpath("py.typed").is_file()
    tree = ast.parse(stub)
    named = {n.name for n in tree.body if isinstance(n, (ast.ClassDef, ast.FunctionDef))}
    named |= {
        t.target.id for t in tree.body if isinstance(t, ast.AnnAssign) and isinstance(t.target, ast.Name)
    }
    aliases = {"StrPath", "Mode", "OnExisting", "HashName", "PreserveName"}
    exported = set(cowtree.__all__)
    assert named - aliases == exported
    import cowtree._cowtree as native

    assert {n for n in dir(native) if not n.startswith("_")} | {"__version__"} == exported
    for cls in (c for c in exported if c.endswith("Error")):
        assert issubclass(getattr(cowtree, cls), cowtree.LinkError)


def _many_files(root, n=5000):
    os.mkdir(root)
    for i in range(n):
        with open(os.path.join(root, f"f{i}"), "wb") as f:
            f.write(b"y" * 4096)
    return root


def _once_under_way(watched, action):
    """Runs `action` on a thread as soon as an entry of cowtree's (`DST.cowtree-staging.`, a
    merge's journal or temporary file) shows in one of the `watched` directories: the link is
    under way then, however loaded the machine (a fixed delay fires after the end of the link
    when the tests share the cores with others). Returns an Event that stops the waiting, and
    a list that gets, once it acted, the names it saw and how long after the start."""
    stop = threading.Event()
    acted = []

    def wait():
        started = time.monotonic()
        while not stop.is_set() and time.monotonic() < started + 60:
            for d in watched:
                try:
                    names = [n for n in os.listdir(d) if ".cowtree-" in n]
                except FileNotFoundError:
                    continue
                if names:
                    action()
                    acted.append((names, round(time.monotonic() - started, 3)))
                    return
            time.sleep(0.0005)

    threading.Thread(target=wait, daemon=True).start()
    return stop, acted


def test_ctrl_c_during_a_link_cancels_it_and_leaves_no_destination(ext4):
    import signal

    src = _many_files(os.path.join(ext4, "src"))
    dst = os.path.join(ext4, "dst")
    linker = cowtree.Linker(jobs=1)
    main = threading.get_ident()
    # Python's own handler, which a shell's background job (scripts/test.sh runs these tests
    # beside the Rust ones) would otherwise lack: SIGINT is ignored there from the start.
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    stop, acted = _once_under_way([ext4], lambda: signal.pthread_kill(main, signal.SIGINT))
    try:
        with pytest.raises(KeyboardInterrupt):
            linker.link_tree(src, dst)
            pytest.fail(f"the link finished before the signal (sent: {acted}): too fast to tell")
    finally:
        stop.set()
        signal.signal(signal.SIGINT, previous)
    assert not os.path.exists(dst)
    assert not [n for n in os.listdir(ext4) if "cowtree-staging" in n]
    assert linker.cancelled
    with pytest.raises(cowtree.CancelledError) as info:
        linker.link_tree(src, os.path.join(ext4, "dst2"))
    assert info.value.kind == "cancelled" and info.value.path == os.path.join(ext4, "dst2")


def test_cancel_from_another_thread_rolls_a_merge_back(ext4):
    src = _many_files(os.path.join(ext4, "src"))
    dst = os.path.join(ext4, "dst")
    os.mkdir(dst)
    with open(os.path.join(dst, "f1"), "wb") as f:
        f.write(b"mine")
    linker = cowtree.Linker(on_existing="overwrite", jobs=1)
    stop, _ = _once_under_way([ext4, dst], linker.cancel)
    try:
        with pytest.raises(cowtree.CancelledError) as info:
            linker.link_tree(src, dst)
    finally:
        stop.set()
    assert info.value.path == dst and info.value.destination_unchanged
    assert sorted(os.listdir(dst)) == ["f1"] and read(os.path.join(dst, "f1")) == b"mine"
