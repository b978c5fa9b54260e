"""The record a call wrote stays in Rust (`cowtree.Record`): a read-only sequence whose
entries are made when read, split per source without making any; and `cowtree.record_lines`
writes an installed package's RECORD lines from it in Rust: hashes from a changed file, the
Linker, the package's own RECORD or the file (read beneath the destination, never through a
symlink), in that order."""

import base64
import errno
import hashlib
import os
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import pytest

import cowtree
from conftest import all_shared, make_tree


def b64(data):
    return base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def lines_of(text):
    """{path: (hash field, size field)} of RECORD lines."""
    out = {}
    for line in text.splitlines():
        path, h, size = line.rsplit(",", 2)
        out[path] = (h, size)
    return out


def test_the_record_is_a_sequence_made_when_read(xfs):
    src = make_tree(os.path.join(xfs, "src"), files=3)
    r = cowtree.link_tree(src, os.path.join(xfs, "dst"), record=True)
    rec = r.record
    assert isinstance(rec, cowtree.Record) and isinstance(rec, Sequence)
    paths = [e.path for e in rec]
    assert paths == sorted(paths) and len(rec) == len(paths) == 8
    assert set(paths) == {"empty", "link", "pkg", "pkg/f0.bin", "pkg/f1.bin", "pkg/f2.bin", "pkg/sub", "pkg/sub/run.sh"}
    assert rec[0].path == paths[0] and rec[-1].path == paths[-1] and rec[-len(rec)].path == paths[0]
    with pytest.raises(IndexError):
        rec[len(rec)]
    with pytest.raises(IndexError):
        rec[-len(rec) - 1]
    with pytest.raises(TypeError):
        rec["pkg"]
    # Each read makes a new object, equal to the last one made for that entry.
    assert rec[2] is not rec[2] and rec[2] == rec[2] and hash(rec[2]) == hash(rec[2])
    assert rec[2] != rec[3]
    # Slices are Records over the same entries.
    part = rec[1:7:2]
    assert isinstance(part, cowtree.Record)
    assert [e.path for e in part] == paths[1:7:2]
    assert [e.path for e in part[::-1]] == paths[1:7:2][::-1]
    assert [e.path for e in reversed(rec)] == paths[::-1]
    assert len(rec[5:2]) == 0 and list(rec[5:2]) == []
    # The rest of the Sequence interface.
    assert rec[3] in rec and rec[3] in rec[3:4] and rec[3] not in rec[4:]
    assert rec.index(rec[4]) == 4 and rec.count(rec[4]) == 1
    assert part.index(rec[5]) == 2
    with pytest.raises(ValueError):
        rec.index(rec[4], 5)
    assert "record" not in repr(rec) and f"{len(rec)} entries" in repr(rec)


def test_by_source_splits_the_record_per_source_in_the_order_given(xfs):
    a = make_tree(os.path.join(xfs, "a"), files=1)
    b = make_tree(os.path.join(xfs, "b"), files=2)
    c = os.path.join(xfs, "c")
    os.mkdir(c)
    Path(c, "only.txt").write_bytes(b"c\n")
    dst = os.path.join(xfs, "dst")
    linker = cowtree.Linker(on_existing="overwrite", record=True)
    # c's one file is mapped away: it writes nothing.
    r = linker.link_trees([cowtree.Source(a, [("", "a")]), b, cowtree.Source(c, [("only.txt", None)])], dst)
    parts = r.record.by_source()
    assert len(parts) == 3 and all(isinstance(p, cowtree.Record) for p in parts)
    assert len(parts[2]) == 0
    assert sum(len(p) for p in parts) == len(r.record)
    for i, p in enumerate(parts):
        assert all(e.source == i for e in p)
        assert [e.path for e in p] == sorted(e.path for e in p)
    assert {e.path for e in parts[0] if e.kind == "file"} == {"a/pkg/f0.bin", "a/pkg/sub/run.sh"}
    assert {e.from_path for e in parts[1] if e.kind == "file"} == {"pkg/f0.bin", "pkg/f1.bin", "pkg/sub/run.sh"}
    # A part of a part: slicing and splitting compose.
    assert [e.path for e in parts[1].by_source()[1]] == [e.path for e in parts[1]]
    assert [e.path for e in parts[1][1:3]] == [e.path for e in parts[1]][1:3]


def installed(xfs, mode="clone", **linker_args):
    """A package-like tree linked into a venv-like destination: files in site-packages,
    a script in bin/, a symlink, a name with a comma; with the package's own RECORD."""
    pkg = Path(xfs, "cache", "pkg-1.0")
    files = {
        "pkg/__init__.py": b"X = 1\n" * 1000,
        "pkg/data, with comma.txt": b"comma\n",
        "pkg/mod.py": b"def f(): pass\n",
        "pkg-1.0.data/scripts/tool": b"#!python\nprint('tool')\n",
        "pkg-1.0.dist-info/METADATA": b"Metadata-Version: 2.1\nName: pkg\nVersion: 1.0\n",
    }
    record = []
    for path, data in sorted(files.items()):
        p = pkg / path
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
        q = f'"{path}"' if "," in path else path
        record.append(f"{q},sha256={b64(data)},{len(data)}")
    os.symlink("mod.py", pkg / "pkg" / "alias.py")
    record.append("pkg/alias.py,,")
    record.append("pkg-1.0.dist-info/RECORD,,")
    (pkg / "pkg-1.0.dist-info" / "RECORD").write_text("\n".join(record) + "\n")
    site = "lib/python3/site-packages"
    rules = [
        ("pkg-1.0.data/scripts", "bin"),
        ("pkg-1.0.dist-info/RECORD", None),
        ("", site),
    ]
    venv = Path(xfs, "venv")
    linker = cowtree.Linker(mode=mode, on_existing="overwrite", record=True, **linker_args)
    r = linker.link_trees([cowtree.Source(pkg, rules)], venv)
    return pkg, files, venv, site, r


def test_record_lines_writes_a_record_pip_reads_with_hashes_of_the_installed_files(xfs):
    pkg, files, venv, site, r = installed(xfs)
    assert r.cloned == len(files) and all_shared(venv / site / "pkg" / "mod.py")
    text = cowtree.record_lines(r.record, site)
    assert text.endswith("\n")
    got = lines_of(text)
    # Paths relative to site-packages; outside it with ../ per component; quoted with a comma.
    assert set(got) == {
        "pkg/__init__.py", '"pkg/data, with comma.txt"', "pkg/mod.py", "pkg/alias.py",
        "pkg-1.0.dist-info/METADATA", "../../../bin/tool",
    }
    assert got["pkg/alias.py"] == ("", "")
    for path, data in files.items():
        dest = "../../../bin/tool" if path.endswith("tool") else path
        dest = f'"{dest}"' if "," in dest else dest
        assert got[dest] == (f"sha256={b64(data)}", str(len(data))), path
    # The csv module reads the quoted path back.
    import csv
    assert "pkg/data, with comma.txt" in {row[0] for row in csv.reader(text.splitlines())}
    # Without relative_to: relative to the destination. A ValueError for one that leaves it.
    assert "lib/python3/site-packages/pkg/mod.py" in lines_of(cowtree.record_lines(r.record))
    for bad in ("/lib", "lib/../..", os.path.join(xfs, "venv")):
        with pytest.raises(ValueError):
            cowtree.record_lines(r.record, bad)


def test_record_lines_takes_the_known_record_the_linker_hash_and_changed_files_in_order(xfs):
    pkg, files, venv, site, r = installed(xfs)
    # A known RECORD whose digest differs from the file's shows which one was used.
    fake = pkg.parent / "RECORD.fake"
    fake.write_text("pkg/mod.py,sha256=FAKEFAKE,999\n")
    got = lines_of(cowtree.record_lines(r.record, site, known=fake))
    assert got["pkg/mod.py"] == ("sha256=FAKEFAKE", str(len(files["pkg/mod.py"])))
    # Not listed there: read from the destination.
    assert got["pkg/__init__.py"] == (f"sha256={b64(files['pkg/__init__.py'])}", "6000")

    # A changed file is read again, whatever the known RECORD says.
    script = venv / "bin" / "tool"
    new = b"#!/venv/bin/python\nprint('tool')\n"
    tmp = script.with_name("tool.new")
    tmp.write_bytes(new)
    os.replace(tmp, script)
    (venv / site / "pkg" / "mod.py").write_bytes(b"changed\n")
    got = lines_of(
        cowtree.record_lines(
            r.record, site, known=pkg / "pkg-1.0.dist-info" / "RECORD", changed=["bin/tool", Path(site, "pkg/mod.py")]
        )
    )
    assert got["../../../bin/tool"] == (f"sha256={b64(new)}", str(len(new)))
    assert got["pkg/mod.py"] == ("sha256=" + b64(b"changed\n"), "8")
    # Unchanged and listed: the known RECORD's digest, the file not read.
    assert got["pkg/__init__.py"] == (f"sha256={b64(files['pkg/__init__.py'])}", "6000")

    # The Linker's own SHA-256 comes before the known RECORD.
    pkg2, files2, venv2, site2, r2 = installed(os.path.join(xfs, "hashed"), hash="sha256")
    assert all(e.hash is not None for e in r2.record if e.kind == "file")
    got = lines_of(cowtree.record_lines(r2.record, site2, known=fake))
    assert got["pkg/mod.py"] == (f"sha256={b64(files2['pkg/mod.py'])}", str(len(files2["pkg/mod.py"])))


def test_record_lines_never_reads_through_a_symlink_and_names_the_file_it_cannot_read(xfs):
    pkg, files, venv, site, r = installed(xfs)
    target = venv / site / "pkg" / "mod.py"
    outside = Path(xfs, "secret")
    outside.write_bytes(b"not the package's\n")
    target.unlink()
    os.symlink(outside, target)
    with pytest.raises(OSError) as info:
        cowtree.record_lines(r.record, site)
    assert info.value.filename == str(target) and info.value.errno == errno.ELOOP
    # A symlinked directory on the way is refused too.
    os.unlink(target)
    target.write_bytes(files["pkg/mod.py"])
    real = venv / site / "pkg"
    os.rename(real, venv / site / "pkg.real")
    os.symlink("pkg.real", real)
    with pytest.raises(OSError) as info:
        cowtree.record_lines(r.record, site)
    assert info.value.filename.startswith(f"{real}/") and info.value.errno == errno.ELOOP
    os.unlink(real)
    with pytest.raises(FileNotFoundError) as info:
        cowtree.record_lines(r.record, site)
    assert info.value.filename.startswith(str(real)) and str(info.value).startswith("[Errno 2] No such file")
    # The known RECORD missing: FileNotFoundError naming it.
    with pytest.raises(FileNotFoundError) as info:
        cowtree.record_lines(r.record, site, known=pkg / "absent")
    assert info.value.filename == str(pkg / "absent")


def test_hardlinks_without_sizes_take_them_from_the_known_record_on_ext4(ext4):
    pkg, files, venv, site, r = installed(ext4, mode="hardlink", hardlink_sizes=False)
    assert r.hardlinked == len(files)
    assert os.stat(venv / site / "pkg" / "mod.py").st_ino == os.stat(pkg / "pkg" / "mod.py").st_ino
    assert all(e.size is None for e in r.record if e.kind == "file")
    fake = pkg.parent / "RECORD.sizes"
    fake.write_text("pkg/mod.py,sha256=KNOWN,12345\n")
    got = lines_of(cowtree.record_lines(r.record, site, known=fake))
    assert got["pkg/mod.py"] == ("sha256=KNOWN", "12345")
    # Not listed: hashed and sized from the file.
    data = files["pkg/__init__.py"]
    assert got["pkg/__init__.py"] == (f"sha256={b64(data)}", str(len(data)))


def test_auto_mode_copies_on_ext4_and_the_record_lines_are_the_files(ext4):
    pkg, files, venv, site, r = installed(ext4)
    assert r.copied == len(files) and [f.reason for f in r.fallbacks] == ["filesystem-cannot-reflink"]
    got = lines_of(cowtree.record_lines(r.record, site, known=pkg / "pkg-1.0.dist-info" / "RECORD"))
    for path, data in files.items():
        dest = "../../../bin/tool" if path.endswith("tool") else path
        dest = f'"{dest}"' if "," in dest else dest
        assert got[dest] == (f"sha256={b64(data)}", str(len(data))), path


def test_record_lines_runs_with_the_interpreter_released(ext4):
    # 800 names of one 1 MiB inode, linked by hardlink: 800 MiB to hash (enough to last well
    # past the 50 ms below on a fast idle machine, where 50 MiB took 47 ms) in 1 MiB of disk.
    src = Path(ext4, "big")
    src.mkdir()
    (src / "f0").write_bytes(os.urandom(1024 * 1024))
    for i in range(1, 800):
        os.link(src / "f0", src / f"f{i}")
    r = cowtree.link_tree(src, os.path.join(ext4, "dst"), mode="hardlink", record=True)
    ticks = []
    done = threading.Event()

    def tick():
        while not done.is_set():
            ticks.append(time.perf_counter())
            time.sleep(0.001)

    t = threading.Thread(target=tick)
    t.start()
    started = time.perf_counter()
    text = cowtree.record_lines(r.record)
    seconds = time.perf_counter() - started
    done.set()
    t.join()
    assert len(text.splitlines()) == 800
    assert seconds > 0.05, f"record_lines took {seconds:.3f} s: too short to tell"
    gaps = [b - a for a, b in zip(ticks, ticks[1:])]
    assert max(gaps) < seconds / 2, (max(gaps), seconds)
