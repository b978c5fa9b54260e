//! Operations on Windows relative to a `Dir` beyond opening and listing: rename (replacing or
//! not), hardlinks, times, flushes, symlinks and whole-tree removal, end to end on the volume
//! the tests run on. Under Wine 8 (scripts/windows.sh) symlinks cannot be made: those tests
//! print "NOT RUN" and what was refused, and check nothing more.
#![cfg(windows)]

use std::ffi::OsStr;
use std::fs;
use std::io::ErrorKind;
use std::os::windows::fs::MetadataExt;
use std::path::Path;

use cowtree_fs::dir::{Dir, Timespec};
use cowtree_fs::{HardlinkOutcome, HardlinkRefusal, hardlink_at};

fn os(s: &str) -> &OsStr {
    OsStr::new(s)
}

fn tree() -> (tempfile::TempDir, Dir) {
    let t = tempfile::tempdir().expect("tempdir");
    let d = Dir::open(t.path()).expect("open root");
    (t, d)
}

fn read(p: &Path) -> String {
    fs::read_to_string(p).expect("read")
}

#[test]
fn rename_noreplace_moves_files_and_directories_between_handles_and_never_replaces() {
    let (t, root) = tree();
    let p = t.path();
    fs::create_dir_all(p.join("a/inner")).expect("mkdir");
    fs::create_dir(p.join("b")).expect("mkdir");
    fs::write(p.join("a/f"), "one").expect("write");
    fs::write(p.join("b/taken"), "kept").expect("write");
    let (a, b) = (
        root.open_dir(os("a")).expect("a"),
        root.open_dir(os("b")).expect("b"),
    );

    a.rename_noreplace(os("f"), &b, os("g"))
        .expect("file moves");
    assert_eq!(read(&p.join("b/g")), "one");
    assert!(!p.join("a/f").exists());
    a.rename_noreplace(os("inner"), &b, os("moved"))
        .expect("directory moves");
    assert!(p.join("b/moved").is_dir() && !p.join("a/inner").exists());

    // Anything at the new name, in any case, stays as it was.
    for taken in ["taken", "TAKEN", "moved"] {
        let e = b.rename_noreplace(os("g"), &b, os(taken)).expect_err(taken);
        assert_eq!(e.kind(), ErrorKind::AlreadyExists, "{taken}: {e}");
        assert!(e.to_string().contains("g"), "{e}");
    }
    assert_eq!(read(&p.join("b/taken")), "kept");
    assert_eq!(read(&p.join("b/g")), "one");
    // Names are checked before any call.
    for bad in ["..", "x/y", "x\\y", "CON", "x."] {
        let e = b.rename_noreplace(os("g"), &b, os(bad)).expect_err(bad);
        assert_eq!(e.kind(), ErrorKind::InvalidInput, "{bad}");
        let e = b.rename_noreplace(os(bad), &b, os("h")).expect_err(bad);
        assert_eq!(e.kind(), ErrorKind::InvalidInput, "{bad}");
    }
    let e = b
        .rename_noreplace(os("absent"), &b, os("h"))
        .expect_err("absent");
    assert_eq!(e.kind(), ErrorKind::NotFound);
}

#[test]
fn rename_replaces_a_file_and_an_empty_directory_but_not_a_full_one_and_exchange_is_unsupported() {
    let (t, root) = tree();
    let p = t.path();
    fs::write(p.join("new"), "new").expect("write");
    fs::write(p.join("old"), "old").expect("write");
    root.rename(os("new"), &root, os("old"))
        .expect("replace a file");
    assert_eq!(read(&p.join("old")), "new");
    assert!(!p.join("new").exists());

    fs::create_dir_all(p.join("staged/sub")).expect("mkdir");
    fs::create_dir(p.join("empty")).expect("mkdir");
    root.rename(os("staged"), &root, os("empty"))
        .expect("replace an empty directory");
    assert!(p.join("empty/sub").is_dir() && !p.join("staged").exists());

    fs::create_dir(p.join("staged2")).expect("mkdir");
    let e = root
        .rename(os("staged2"), &root, os("empty"))
        .expect_err("a directory with something in it is not replaced");
    println!("rename over a full directory refused: {e}");
    assert!(p.join("empty/sub").is_dir() && p.join("staged2").is_dir());

    let e = root
        .rename_exchange(os("old"), &root, os("empty"))
        .expect_err("no exchange on Windows");
    assert_eq!(e.kind(), ErrorKind::Unsupported);
    assert_eq!(read(&p.join("old")), "new");
}

#[test]
fn hardlink_at_links_relative_to_handles_and_keeps_refusals_apart_from_errors() {
    let (t, root) = tree();
    let p = t.path();
    fs::create_dir(p.join("d")).expect("mkdir");
    fs::write(p.join("src"), "data").expect("write");
    let d = root.open_dir(os("d")).expect("d");
    assert_eq!(
        hardlink_at(&root, os("src"), &d, os("link")).expect("link"),
        HardlinkOutcome::Linked
    );
    let (a, b) = (
        root.stat(os("src")).expect("stat"),
        d.stat(os("link")).expect("stat"),
    );
    assert_eq!((a.ino, a.dev, a.nlink, b.nlink), (b.ino, b.dev, 2, 2));
    assert_eq!(
        p.join("d/link").metadata().expect("meta").file_size(),
        4,
        "the same data"
    );

    fs::write(p.join("d/taken"), "kept").expect("write");
    let e = hardlink_at(&root, os("src"), &d, os("TAKEN")).expect_err("exists");
    assert_eq!(e.kind(), ErrorKind::AlreadyExists, "{e}");
    assert_eq!(read(&p.join("d/taken")), "kept");
    assert_eq!(
        hardlink_at(&root, os("gone"), &d, os("x")).expect("vanished"),
        HardlinkOutcome::SourceVanished
    );
    assert_eq!(
        hardlink_at(&root, os("d"), &root, os("x")).expect("a directory"),
        HardlinkOutcome::Refused(HardlinkRefusal::NotPermitted)
    );
    let e = hardlink_at(&root, os("src"), &d, os("a:b")).expect_err("bad name");
    assert_eq!(e.kind(), ErrorKind::InvalidInput);
    assert!(!p.join("x").exists() && !p.join("d/x").exists());
}

#[test]
fn times_set_relative_to_a_handle_read_back_to_100_ns() {
    let (t, root) = tree();
    fs::write(t.path().join("f"), "x").expect("write");
    let atime = Timespec {
        tv_sec: 1_000_000_000,
        tv_nsec: 123_456_700,
    };
    let mtime = Timespec {
        tv_sec: 1_500_000_000,
        tv_nsec: 987_654_300,
    };
    root.set_times(os("f"), atime, mtime).expect("set times");
    let st = root.stat(os("f")).expect("stat");
    assert_eq!((st.atime(), st.mtime()), (atime, mtime));

    root.create_dir(os("d"), 0o755).expect("mkdir");
    let d = root.open_dir(os("d")).expect("open");
    d.set_own_times(atime, mtime).expect("own times");
    let st = d.stat_self().expect("stat");
    assert_eq!(st.mtime(), mtime);
    let before = Timespec {
        tv_sec: -11_644_473_600,
        tv_nsec: 0,
    };
    let e = root.set_times(os("f"), before, mtime).expect_err("1601");
    assert_eq!(e.kind(), ErrorKind::InvalidInput);
    assert_eq!(
        root.stat(os("f")).expect("stat").mtime(),
        mtime,
        "unchanged"
    );
}

#[test]
fn a_directory_flushes_and_the_volume_flush_works_or_says_permission_denied() {
    let (t, root) = tree();
    fs::write(t.path().join("f"), "x").expect("write");
    root.sync().expect("flush the directory");
    cowtree_fs::dir::sync_dir(std::os::windows::io::AsHandle::as_handle(&root)).expect("sync_dir");
    match root.sync_filesystem() {
        Ok(()) => println!("the volume was flushed"),
        Err(e) if e.kind() == ErrorKind::PermissionDenied => {
            println!("NOT RUN: volume flush refused, as for a non-administrator: {e}")
        }
        // ERROR_INVALID_FUNCTION: Wine cannot flush a volume device.
        Err(e) if cowtree_fs::raw_errno(&e) == Some(1) => {
            println!("NOT RUN: this system cannot flush a volume: {e}")
        }
        Err(e) => panic!("volume flush: {e} ({:?})", cowtree_fs::raw_errno(&e)),
    }
}

#[test]
fn remove_tree_removes_nested_read_only_and_unicode_entries_and_nothing_is_fine() {
    let (t, root) = tree();
    let p = t.path();
    let top = p.join("top");
    fs::create_dir_all(top.join("a/b/caf\u{e9}")).expect("mkdir");
    fs::create_dir_all(top.join("\u{1f600}")).expect("mkdir");
    for f in ["a/x", "a/b/y", "a/b/caf\u{e9}/z", "\u{1f600}/w", "ro"] {
        fs::write(top.join(f), f).expect("write");
    }
    let mut perm = fs::metadata(top.join("ro")).expect("meta").permissions();
    perm.set_readonly(true);
    fs::set_permissions(top.join("ro"), perm.clone()).expect("read-only");
    fs::set_permissions(top.join("a/b/y"), perm).expect("read-only");
    fs::write(p.join("beside"), "kept").expect("write");

    root.remove_tree(os("top")).expect("remove_tree");
    assert!(!top.exists());
    assert_eq!(read(&p.join("beside")), "kept");
    root.remove_tree(os("top"))
        .expect("nothing there is no error");
    root.remove_tree(os("beside")).expect("a file");
    assert!(!p.join("beside").exists());
    let e = root.remove_tree(os("..")).expect_err("..");
    assert_eq!(e.kind(), ErrorKind::InvalidInput);
}

/// A symlink made relative to the handle, where the volume and the privileges allow it.
fn try_symlink(dir: &Dir, target: &str, name: &str, directory: bool) -> Option<()> {
    let made = if directory {
        dir.symlink_dir(os(target), os(name))
    } else {
        dir.symlink(os(target), os(name))
    };
    match made {
        Ok(()) => Some(()),
        Err(e) => {
            println!(
                "NOT RUN: no symlink could be made here: {e} ({:?})",
                e.raw_os_error()
            );
            None
        }
    }
}

#[test]
fn symlinks_are_made_relative_to_the_handle_read_back_and_refused_over_anything() {
    let (t, root) = tree();
    let p = t.path();
    fs::write(p.join("taken"), "kept").expect("write");
    // Refusals come before anything is made, whatever the volume.
    let e = root.symlink(os("x"), os("taken")).expect_err("exists");
    assert!(
        matches!(e.kind(), ErrorKind::AlreadyExists | ErrorKind::InvalidInput),
        "{e}"
    );
    assert_eq!(read(&p.join("taken")), "kept");
    for (target, name) in [("", "l"), ("C:rel", "l"), ("\\rooted", "l"), ("x", "a/b")] {
        let e = root.symlink(os(target), os(name)).expect_err(target);
        assert_eq!(e.kind(), ErrorKind::InvalidInput, "{target:?} {name:?}");
        assert!(!p.join("l").exists());
    }
    let e = root.read_link(os("taken")).expect_err("not a symlink");
    assert_eq!(e.kind(), ErrorKind::InvalidInput);

    if try_symlink(&root, "taken", "rel", false).is_none() {
        assert!(!p.join("rel").exists(), "a failed symlink leaves nothing");
        return;
    }
    assert_eq!(root.read_link(os("rel")).expect("read"), os("taken"));
    assert!(root.stat(os("rel")).expect("stat").file_type().is_symlink());
    let abs = p.join("taken");
    try_symlink(&root, abs.to_str().expect("utf-8"), "abs", false).expect("second symlink");
    assert_eq!(root.read_link(os("abs")).expect("read"), abs.as_os_str());
    fs::create_dir_all(p.join("outside/keep")).expect("mkdir");
    root.create_dir(os("tree"), 0o755).expect("mkdir");
    let tree_dir = root.open_dir(os("tree")).expect("open");
    try_symlink(&tree_dir, "..\\outside", "up", true).expect("directory symlink");
    root.remove_tree(os("tree")).expect("remove_tree");
    assert!(p.join("outside/keep").is_dir(), "the link was not followed");
}

/// Whether the volume the tests run on block-clones (ReFS, a Dev Drive; never under Wine).
fn volume_clones(dir: &Path) -> bool {
    let probe = dir.join("probe-volume");
    fs::write(&probe, "x").expect("write");
    let f = fs::File::open(&probe).expect("open");
    let clones = cowtree_fs::sys::volume_of(&f)
        .expect("volume")
        .reports_block_cloning();
    drop(f);
    fs::remove_file(&probe).expect("remove");
    clones
}

#[test]
fn transfer_at_clones_or_copies_by_handle_and_says_which_ran() {
    use cowtree_fs::{Method, Transfer, TransferOptions, UnsupportedCause, transfer_at};
    let (t, root) = tree();
    let p = t.path();
    let clones = volume_clones(p);
    fs::create_dir_all(p.join("s")).expect("mkdir");
    fs::create_dir_all(p.join("d")).expect("mkdir");
    let data: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    fs::write(p.join("s/f"), &data).expect("write");
    let (s, d) = (
        root.open_dir(os("s")).expect("s"),
        root.open_dir(os("d")).expect("d"),
    );
    let times = Timespec {
        tv_sec: 1_234_567_890,
        tv_nsec: 500_000_000,
    };
    s.set_times(os("f"), times, times).expect("times");

    let mut opts = TransferOptions::new(Method::CloneOrCopy);
    opts.preserve_times = true;
    let done = transfer_at(&s, os("f"), &d, os("auto"), &opts).expect("clone or copy");
    if clones {
        assert_eq!(done, Transfer::Cloned { bytes: 300_000 });
    } else {
        assert_eq!(
            done,
            Transfer::Copied {
                bytes: 300_000,
                because: Some(UnsupportedCause::Filesystem)
            }
        );
    }
    assert_eq!(fs::read(p.join("d/auto")).expect("read"), data);
    assert_eq!(d.stat(os("auto")).expect("stat").mtime(), times);

    let done = transfer_at(
        &s,
        os("f"),
        &d,
        os("copy"),
        &TransferOptions::new(Method::Copy),
    )
    .expect("copy");
    assert_eq!(
        done,
        Transfer::Copied {
            bytes: 300_000,
            because: None
        }
    );
    assert_eq!(fs::read(p.join("d/copy")).expect("read"), data);

    let done = transfer_at(
        &s,
        os("f"),
        &d,
        os("clone"),
        &TransferOptions::new(Method::Clone),
    )
    .expect("clone only");
    if clones {
        assert_eq!(done, Transfer::Cloned { bytes: 300_000 });
        println!("block clone by handle: ran");
    } else {
        assert_eq!(done, Transfer::Unsupported(UnsupportedCause::Filesystem));
        assert!(!p.join("d/clone").exists(), "no destination is left");
        println!("NOT RUN: a block clone by handle (this volume cannot clone)");
    }
    assert_eq!(
        cowtree_fs::try_reflink_at(&s, os("f"), &d, os("r")).expect("try_reflink_at"),
        if clones {
            cowtree_fs::ReflinkOutcome::Cloned
        } else {
            cowtree_fs::ReflinkOutcome::Unsupported(UnsupportedCause::Filesystem)
        }
    );
    assert_eq!(
        fs::read(p.join("s/f")).expect("read"),
        data,
        "source unchanged"
    );
}

#[test]
fn transfer_at_never_writes_over_an_existing_destination_and_reports_a_vanished_source() {
    use cowtree_fs::{Method, Transfer, TransferOptions, transfer_at};
    let (t, root) = tree();
    let p = t.path();
    fs::write(p.join("src"), "new").expect("write");
    fs::write(p.join("taken"), "kept").expect("write");
    fs::create_dir(p.join("dir")).expect("mkdir");
    let opts = TransferOptions::new(Method::CloneOrCopy);
    for taken in ["taken", "TAKEN", "dir"] {
        let e = transfer_at(&root, os("src"), &root, os(taken), &opts).expect_err(taken);
        assert_eq!(e.kind(), ErrorKind::AlreadyExists, "{taken}: {e}");
    }
    assert_eq!(read(&p.join("taken")), "kept");
    assert!(p.join("dir").is_dir());
    assert_eq!(
        transfer_at(&root, os("gone"), &root, os("x"), &opts).expect("vanished"),
        Transfer::SourceVanished
    );
    assert!(!p.join("x").exists());
    let e = transfer_at(&root, os("dir"), &root, os("x"), &opts).expect_err("a directory");
    assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
    assert!(!p.join("x").exists());
    for bad in ["CON", "a:b", "x.", "..", "a\\b"] {
        let e = transfer_at(&root, os("src"), &root, os(bad), &opts).expect_err(bad);
        assert_eq!(e.kind(), ErrorKind::InvalidInput, "{bad}");
    }
}

#[test]
fn transfer_at_open_hands_back_the_new_file_open_for_writing() {
    use cowtree_fs::reflink::OpenSource;
    use cowtree_fs::{Method, Transfer, TransferOptions, transfer_at_open};
    use std::io::Write;
    use std::os::windows::io::AsHandle;
    let (t, root) = tree();
    let p = t.path();
    fs::write(p.join("src"), "abc").expect("write");
    let src = OpenSource::open(&root, os("src"))
        .expect("open")
        .expect("there");
    assert_eq!(src.stat.size, 3);
    assert!(OpenSource::open(&root, os("none")).expect("open").is_none());
    let (done, dst) = transfer_at_open(
        &src,
        (root.as_handle(), os("src")),
        (root.as_handle(), os("dst")),
        &TransferOptions::new(Method::CloneOrCopy),
    )
    .expect("transfer");
    assert!(matches!(
        done,
        Transfer::Cloned { bytes: 3 } | Transfer::Copied { bytes: 3, .. }
    ));
    let mut dst = dst.expect("the new file");
    dst.write_all(b"def").expect("write through the handle");
    drop(dst);
    assert_eq!(read(&p.join("dst")), "abcdef");
    assert_eq!(read(&p.join("src")), "abc");
}

fn names_in(p: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(p)
        .expect("read_dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn write_atomic_replaces_the_file_whole_and_leaves_no_temporary_file() {
    use cowtree_fs::atomic_file::{AtomicFile, write_atomic};
    use std::io::Write;
    use std::os::windows::io::AsHandle;
    let (t, root) = tree();
    let p = t.path();
    fs::write(p.join("f"), "old").expect("write");
    write_atomic(&root, os("f"), b"new", 0o644, true).expect("write_atomic");
    assert_eq!(read(&p.join("f")), "new");
    write_atomic(&root, os("g"), b"first", 0o644, false).expect("a new name");
    assert_eq!(names_in(p), ["f", "g"]);

    // Dropped without a commit: the temporary file goes, the name keeps its old content.
    let mut a = AtomicFile::create(root.as_handle(), 0o644).expect("create");
    a.file().write_all(b"half").expect("write");
    drop(a);
    assert_eq!(names_in(p), ["f", "g"]);
    assert_eq!(read(&p.join("f")), "new");

    // A directory at the name is not replaced, and the temporary file is removed.
    fs::create_dir(p.join("d")).expect("mkdir");
    write_atomic(&root, os("d"), b"x", 0o644, false).expect_err("a directory is there");
    assert!(p.join("d").is_dir());
    assert_eq!(names_in(p), ["d", "f", "g"]);
    let e = write_atomic(&root, os("a/b"), b"x", 0o644, false).expect_err("bad name");
    assert_eq!(e.kind(), ErrorKind::InvalidInput);
}

#[test]
fn an_undo_registration_removes_its_tree_or_file_and_a_forgotten_one_stays() {
    use cowtree_fs::undo::Registration;
    let (t, root) = tree();
    let p = t.path();
    let reg = Registration::tree(&root, os("staged")).expect("register");
    fs::create_dir_all(p.join("staged/a/b")).expect("mkdir");
    fs::write(p.join("staged/a/b/f"), "x").expect("write");
    reg.undo().expect("undo");
    assert!(!p.join("staged").exists());
    let reg = Registration::file(&root, os("tmpfile"), false).expect("register");
    fs::write(p.join("tmpfile"), "x").expect("write");
    reg.undo().expect("undo");
    assert!(!p.join("tmpfile").exists());
    let reg = Registration::tree(&root, os("kept")).expect("register");
    fs::create_dir(p.join("kept")).expect("mkdir");
    reg.forget();
    assert!(p.join("kept").is_dir());
    Registration::tree(&root, os("never-made"))
        .expect("register")
        .undo()
        .expect("nothing there is no error");
}
