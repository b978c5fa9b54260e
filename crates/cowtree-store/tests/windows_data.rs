//! cowtree-store's data paths on Windows, end to end on the volume the tests run on: a tree
//! made with `std::fs` recorded as a snapshot (blobs written by block clone or copy, made
//! read-only) and checked out into new directories (each file block-cloned or copied from its
//! blob), and what is refused. Under Wine (scripts/windows.sh) the volume cannot block-clone,
//! so every blob and every checked-out file is a copy; a real block clone is only compiled.
//! Wine makes no symlinks: the symlink tests print "NOT RUN" there. A name Windows cannot
//! hold is made with a `\\?\` path where this Windows allows it, else that test prints
//! "NOT RUN".
#![cfg(windows)]

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};

use cowtree_store::checkout::{CheckoutMode, CheckoutOptions, CheckoutReport, checkout};
use cowtree_store::ingest::{Putter, record_manifest, snapshot_dir, snapshot_dir_preserving};
use cowtree_store::{Entry, Hash, Kind, Manifest, Preserve, Store};

/// Bytes that differ from one offset to the next.
fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len).map(|i| (i * 7 + i / 4096) as u8 ^ seed).collect()
}

/// What a tree holds: relative path (with `/`) to `None` for a directory or the file's bytes.
fn contents(root: &Path) -> BTreeMap<String, Option<Vec<u8>>> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, Option<Vec<u8>>>) {
        for e in std::fs::read_dir(dir).expect("read_dir") {
            let e = e.expect("entry");
            let path = e.path();
            let rel = path
                .strip_prefix(root)
                .expect("below the root")
                .components()
                .map(|c| c.as_os_str().to_str().expect("unicode").to_owned())
                .collect::<Vec<_>>()
                .join("/");
            let ft = e.file_type().expect("file type");
            assert!(!ft.is_symlink(), "no symlink expected at {rel}");
            if ft.is_dir() {
                out.insert(rel, None);
                walk(root, &path, out);
            } else {
                out.insert(rel, Some(std::fs::read(&path).expect("read")));
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

/// The names in `dir`, sorted.
fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .expect("read_dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

fn is_read_only(path: &Path) -> bool {
    std::fs::metadata(path)
        .expect("stat")
        .permissions()
        .readonly()
}

fn clones_here(dir: &Path) -> bool {
    cowtree_fs::probe::volume(dir)
        .expect("volume")
        .reports_block_cloning
}

fn opts(mode: CheckoutMode) -> CheckoutOptions {
    CheckoutOptions {
        mode,
        strict: false,
        preserve: Preserve::NONE,
    }
}

/// A checkout of `id` into `dst` with no warning expected.
fn check_out(store: &Store, id: &Hash, dst: &Path, mode: CheckoutMode) -> CheckoutReport {
    checkout(store, id, dst, opts(mode), &|w| {
        panic!("unexpected warning: {w}")
    })
    .expect("checkout")
}

/// A source tree: nested directories, an empty directory, empty files, a 3 MiB file, a file
/// that is read-only, and names in several scripts. Returns the number of files, of
/// directories below the root, and the total bytes.
fn make_source(src: &Path) -> (u64, u64, u64) {
    let dirs = [
        "a",
        "a/b",
        "a/b/c",
        "empty dir",
        "ünïcødé",
        "日本語のディレクトリ",
    ];
    let files: Vec<(&str, Vec<u8>)> = vec![
        ("empty.txt", Vec::new()),
        ("a/b/also empty", Vec::new()),
        ("small.txt", b"hello, windows\n".to_vec()),
        ("a/b/c/big.bin", pattern(3 << 20, 1)),
        ("a/one.bin", pattern(70_000, 2)),
        ("ünïcødé/crème brûlée.txt", pattern(100, 3)),
        ("日本語のディレクトリ/ファイル.txt", pattern(4097, 4)),
        ("emoji 🐄 cow.txt", pattern(10, 5)),
        // The same bytes as another file: one blob for both.
        ("a/b/c/copy of one.bin", pattern(70_000, 2)),
        ("a/read-only.txt", b"read-only in the source".to_vec()),
    ];
    for d in dirs {
        std::fs::create_dir_all(src.join(d)).expect("mkdir");
    }
    let mut bytes = 0;
    for (f, data) in &files {
        std::fs::write(src.join(f), data).expect("write");
        bytes += data.len() as u64;
    }
    let ro = src.join("a/read-only.txt");
    let mut perm = std::fs::metadata(&ro).expect("stat").permissions();
    perm.set_readonly(true);
    std::fs::set_permissions(&ro, perm).expect("set read-only");
    (files.len() as u64, dirs.len() as u64, bytes)
}

/// Clears every read-only attribute below `dir`, so that the temporary directory can go.
fn writable_all(dir: &Path) {
    for e in std::fs::read_dir(dir).expect("read_dir") {
        let e = e.expect("entry");
        let path = e.path();
        if e.file_type().expect("type").is_dir() {
            writable_all(&path);
        } else {
            let mut perm = std::fs::metadata(&path).expect("stat").permissions();
            #[allow(clippy::permissions_set_readonly_false)]
            perm.set_readonly(false);
            std::fs::set_permissions(&path, perm).expect("clear read-only");
        }
    }
}

#[test]
fn a_snapshot_checks_out_twice_with_the_same_bytes_and_names_and_shares_nothing_writable() {
    let t = tempfile::tempdir().expect("tempdir");
    let src = t.path().join("src");
    std::fs::create_dir(&src).expect("mkdir");
    let (files, dirs, bytes) = make_source(&src);
    let store = Store::open(&t.path().join("store")).expect("store");

    let r = snapshot_dir(&store, &src, Some("base")).expect("snapshot");
    assert_eq!((r.files, r.bytes), (files, bytes), "{r:?}");
    // Two files hold the same bytes, and the two empty files are one blob.
    assert_eq!(r.new_blobs, files - 2, "{r:?}");
    assert_eq!(r.new_bytes, bytes - 70_000, "{r:?}");
    assert_eq!(r.cloned_bytes + r.copied_bytes, bytes, "{r:?}");
    if !clones_here(t.path()) {
        assert_eq!(r.cloned_bytes, 0, "no block cloning here: {r:?}");
    }
    assert!(!r.frozen && r.reason.is_none(), "{r:?}");

    // The manifest: every name as UTF-8, no executable (Windows has no such bit), every
    // blob in the store, read-only, with the file's bytes.
    let m = store.load(&r.id).expect("load");
    let want = contents(&src);
    let mut seen = BTreeMap::new();
    for e in m.entries() {
        let path = String::from_utf8(e.path.clone()).expect("UTF-8 path");
        assert_ne!(e.kind, Kind::Executable, "{path}");
        assert_ne!(e.kind, Kind::Symlink, "{path}");
        if let Some(hash) = e.hash() {
            let blob = store.blob_path(hash);
            assert!(is_read_only(&blob), "blob of {path} is read-only");
            let held = std::fs::read(&blob).expect("read blob");
            assert_eq!(Some(&Some(held)), want.get(&path), "{path}");
            assert_eq!(Hash::of(&std::fs::read(&blob).expect("read")), *hash);
        }
        seen.insert(path, e.kind);
    }
    assert_eq!(seen.get("empty dir"), Some(&Kind::Dir));
    assert_eq!(
        seen.keys().filter(|p| !want.contains_key(*p)).count(),
        0,
        "nothing recorded that the tree does not hold"
    );

    // Two checkouts, each the tree's bytes and names, each file its own writable copy.
    for (i, dst) in ["wt1", "wt2"].iter().enumerate() {
        let dst = t.path().join(dst);
        let c = check_out(&store, &r.id, &dst, CheckoutMode::Auto);
        assert_eq!(contents(&dst), want, "checkout {i}");
        assert_eq!((c.files, c.dirs, c.bytes), (files, dirs, bytes), "{c:?}");
        assert_eq!(c.cloned + c.copied, files, "{c:?}");
        assert_eq!(c.method, cowtree_fs::whole_tree::Method::PerFile);
        if !clones_here(t.path()) {
            assert_eq!(c.copied, files, "{c:?}");
            assert_eq!(c.fallbacks.len(), 1, "one pair-wide fallback: {c:?}");
        }
        assert!(
            !is_read_only(&dst.join("a/one.bin")),
            "a checked-out file is writable"
        );
        assert!(!c.worktree_id.is_empty());
    }
    // A write in one worktree reaches neither the other nor the store.
    std::fs::write(t.path().join("wt1/a/one.bin"), b"changed").expect("write");
    assert_eq!(
        std::fs::read(t.path().join("wt2/a/one.bin")).expect("read"),
        pattern(70_000, 2)
    );
    assert_eq!(
        std::fs::read(store.blob_path(&Hash::of(&pattern(70_000, 2)))).expect("read"),
        pattern(70_000, 2)
    );

    // The same tree again: the same id, no new blob (each file found by its pre-hash).
    let again = snapshot_dir(&store, &src, None).expect("snapshot again");
    assert_eq!(again.id, r.id);
    assert_eq!((again.new_blobs, again.new_bytes), (0, 0), "{again:?}");

    // Copy asked for: a copy, reported as asked (no fallback).
    let c = check_out(&store, &r.id, &t.path().join("wt3"), CheckoutMode::Copy);
    assert_eq!((c.copied, c.cloned), (files, 0), "{c:?}");
    assert!(c.fallbacks.is_empty(), "{c:?}");
    assert_eq!(contents(&t.path().join("wt3")), want);

    // An empty directory as the destination is replaced by the tree.
    std::fs::create_dir(t.path().join("wt4")).expect("mkdir");
    check_out(&store, &r.id, &t.path().join("wt4"), CheckoutMode::Auto);
    assert_eq!(contents(&t.path().join("wt4")), want);

    // Nothing but the worktrees appeared beside the source (no staging left), and the
    // store's staging is empty.
    assert_eq!(
        names(t.path()),
        ["src", "store", "wt1", "wt2", "wt3", "wt4"]
    );
    assert!(
        names(&t.path().join("store/tmp")).is_empty(),
        "no staging left in the store"
    );
    writable_all(t.path());
}

#[test]
fn a_checkout_into_a_destination_that_is_not_empty_is_refused_and_it_is_left_alone() {
    let t = tempfile::tempdir().expect("tempdir");
    let src = t.path().join("src");
    std::fs::create_dir_all(src.join("d")).expect("mkdir");
    std::fs::write(src.join("d/f"), b"data").expect("write");
    let store = Store::open(&t.path().join("store")).expect("store");
    let id = snapshot_dir(&store, &src, None).expect("snapshot").id;
    let dst = t.path().join("dst");
    std::fs::create_dir(&dst).expect("mkdir");
    std::fs::write(dst.join("mine"), b"keep").expect("write");
    let e = checkout(&store, &id, &dst, opts(CheckoutMode::Auto), &|_| {}).expect_err("not empty");
    assert!(e.to_string().contains("not empty"), "{e}");
    assert_eq!(names(&dst), ["mine"]);
    std::fs::write(t.path().join("file"), b"x").expect("write");
    let e = checkout(
        &store,
        &id,
        &t.path().join("file"),
        opts(CheckoutMode::Auto),
        &|_| {},
    )
    .expect_err("a file");
    assert!(e.to_string().contains("not a directory"), "{e}");
    assert_eq!(names(t.path()), ["dst", "file", "src", "store"]);
    writable_all(t.path());
}

#[test]
fn a_file_that_vanished_before_it_was_opened_is_not_recorded_and_the_others_are() {
    let t = tempfile::tempdir().expect("tempdir");
    let src = t.path().join("src");
    std::fs::create_dir(&src).expect("mkdir");
    std::fs::write(src.join("a"), b"first").expect("write");
    std::fs::write(src.join("c"), b"third").expect("write");
    let store = Store::open(&t.path().join("store")).expect("store");
    let staging = store.staging("ingest").expect("staging");
    let put = Putter::new(&store, staging.dir());
    let dir = cowtree_fs::dir::Dir::open(&src).expect("open");
    let dev = cowtree_fs::sys::stat_dev(&dir.stat_self().expect("stat"));
    assert_eq!(put.put(&dir, dev, "gone".as_ref()).expect("put"), None);
    let names: Vec<OsString> = ["a", "gone", "c"].iter().map(OsString::from).collect();
    let mut got = Vec::new();
    put.put_files(&dir, dev, &names, |name, r| {
        got.push((name.to_owned(), r.expect("put")));
        ControlFlow::Continue(())
    });
    assert_eq!(got.len(), 3);
    assert_eq!(got[1], (OsString::from("gone"), None));
    for (i, data) in [(0, &b"first"[..]), (2, b"third")] {
        let p = got[i].1.expect("recorded");
        assert_eq!((p.size, p.hash, p.executable), (5, Hash::of(data), false));
        assert_eq!(std::fs::read(store.blob_path(&p.hash)).expect("blob"), data);
        assert!(is_read_only(&store.blob_path(&p.hash)));
    }
    assert_eq!(put.new_blobs(), 2);
    // A directory in the file's place is no file: an error of its own.
    std::fs::create_dir(src.join("dir")).expect("mkdir");
    let e = put.put(&dir, dev, "dir".as_ref()).expect_err("a directory");
    assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput, "{e}");
    drop(staging);
    writable_all(t.path());
}

#[test]
fn a_source_name_windows_cannot_hold_is_refused_and_nothing_is_recorded() {
    let t = tempfile::tempdir().expect("tempdir");
    let src = t.path().join("src");
    std::fs::create_dir_all(src.join("ok")).expect("mkdir");
    std::fs::write(src.join("ok/fine.txt"), b"fine").expect("write");
    // A device name and a trailing dot: only a `\\?\` path makes these on Windows.
    let mut made = Vec::new();
    for bad in ["aux", "trailing."] {
        let mut verbatim = OsString::from(r"\\?\");
        verbatim.push(src.join("ok").join(bad).as_os_str());
        let listed = std::fs::write(PathBuf::from(&verbatim), b"x").is_ok()
            && names(&src.join("ok")).iter().any(|n| n == bad);
        if listed {
            made.push(bad);
        } else {
            let _ = std::fs::remove_file(PathBuf::from(&verbatim));
        }
    }
    if made.is_empty() {
        println!("NOT RUN: this Windows made no entry named \"aux\" or \"trailing.\"");
        return;
    }
    let store = Store::open(&t.path().join("store")).expect("store");
    let e = snapshot_dir(&store, &src, Some("bad")).expect_err("a name Windows cannot hold");
    println!("{made:?}: {e}");
    let text = e.to_string();
    assert!(
        made.iter().any(|n| text.contains(n)),
        "the name is in {text}"
    );
    assert!(
        store.snapshot_ids().expect("ids").is_empty(),
        "nothing recorded"
    );
    assert!(
        names(&t.path().join("store/tmp")).is_empty(),
        "no staging left"
    );
    for bad in made {
        let mut verbatim = OsString::from(r"\\?\");
        verbatim.push(src.join("ok").join(bad).as_os_str());
        std::fs::remove_file(PathBuf::from(&verbatim)).expect("remove");
    }
}

/// A store holding the blob of `data`, and a manifest of `entries` recorded with it.
fn recorded(t: &Path, data: &[u8], entries: Vec<Entry>) -> (Store, Hash) {
    let src = t.join("src");
    std::fs::create_dir_all(&src).expect("mkdir");
    std::fs::write(src.join("f"), data).expect("write");
    let store = Store::open(&t.join("store")).expect("store");
    snapshot_dir(&store, &src, None).expect("snapshot");
    let m = Manifest::new(entries).expect("manifest");
    let id = record_manifest(&store, &m, None).expect("record");
    (store, id)
}

#[test]
fn an_executable_entry_is_checked_out_as_a_plain_file_with_its_bytes() {
    let t = tempfile::tempdir().expect("tempdir");
    let data = b"#!/bin/sh\necho hi\n";
    let h = Hash::of(data);
    let entries = vec![
        Entry::blob(b"bin/run.sh".to_vec(), true, data.len() as u64, h),
        Entry::blob(b"plain".to_vec(), false, data.len() as u64, h),
    ];
    let (store, id) = recorded(t.path(), data, entries);
    let dst = t.path().join("wt");
    let c = check_out(&store, &id, &dst, CheckoutMode::Auto);
    assert_eq!(c.files, 2);
    assert_eq!(std::fs::read(dst.join("bin/run.sh")).expect("read"), data);
    assert!(!is_read_only(&dst.join("bin/run.sh")));
    // The manifest still says what it was.
    let m = store.load(&id).expect("load");
    assert_eq!(m.entries()[0].kind, Kind::Executable);
    writable_all(t.path());
}

#[test]
fn a_manifest_whose_blob_size_differs_is_refused() {
    let t = tempfile::tempdir().expect("tempdir");
    let data = b"twelve bytes";
    let store_dir = t.path();
    let (store, _) = recorded(
        store_dir,
        data,
        vec![Entry::blob(b"f".to_vec(), false, 12, Hash::of(data))],
    );
    let wrong = Manifest::new(vec![Entry::blob(b"f".to_vec(), false, 13, Hash::of(data))])
        .expect("manifest");
    let e = record_manifest(&store, &wrong, None).expect_err("size");
    assert!(e.to_string().contains("does not match"), "{e}");
    let missing = Manifest::new(vec![Entry::blob(b"g".to_vec(), false, 1, Hash::of(b"?"))])
        .expect("manifest");
    let e = record_manifest(&store, &missing, None).expect_err("missing");
    assert!(e.to_string().contains("is not in the store"), "{e}");
    writable_all(t.path());
}

#[test]
fn a_manifest_name_windows_cannot_hold_is_refused_at_checkout_and_no_destination_appears() {
    let data = b"x";
    let h = Hash::of(data);
    // Made on unix: names Windows cannot hold.
    for bad in [&b"a:b"[..], b"trailing.", b"aux", b"not utf-8 \xff"] {
        let t = tempfile::tempdir().expect("tempdir");
        let entries = vec![
            Entry::blob(b"d/fine".to_vec(), false, 1, h),
            Entry::blob([&b"d/"[..], bad].concat(), false, 1, h),
        ];
        let Ok(m) = Manifest::new(entries) else {
            println!(
                "the manifest refuses {:?} already",
                String::from_utf8_lossy(bad)
            );
            continue;
        };
        let store = {
            let (store, _) = recorded(
                t.path(),
                data,
                vec![Entry::blob(b"f".to_vec(), false, 1, h)],
            );
            store
        };
        let id = record_manifest(&store, &m, None).expect("record");
        let dst = t.path().join("wt");
        let e = checkout(&store, &id, &dst, opts(CheckoutMode::Auto), &|_| {})
            .expect_err("a name Windows cannot hold");
        println!("{:?}: {e}", String::from_utf8_lossy(bad));
        assert!(e.to_string().contains("d/"), "the path is named: {e}");
        assert!(!dst.exists());
        assert_eq!(names(t.path()), ["src", "store"], "no staging left");
        writable_all(t.path());
    }
}

#[test]
fn snapshot_archive_and_checkout_preserve_are_refused_in_one_line() {
    let t = tempfile::tempdir().expect("tempdir");
    let src = t.path().join("src");
    std::fs::create_dir(&src).expect("mkdir");
    std::fs::write(src.join("f"), b"data").expect("write");
    let store = Store::open(&t.path().join("store")).expect("store");
    let e = snapshot_dir_preserving(
        &store,
        &src,
        Some("a"),
        &cowtree_fs::progress::Progress::default(),
        Some(Preserve::ALL),
    )
    .expect_err("--archive");
    let text = e.to_string();
    assert!(text.contains("not available on Windows"), "{text}");
    assert_eq!(text.lines().count(), 1, "{text}");
    assert!(store.snapshot_ids().expect("ids").is_empty());

    let id = snapshot_dir(&store, &src, None).expect("snapshot").id;
    let dst = t.path().join("wt");
    let asked = CheckoutOptions {
        preserve: Preserve::ALL,
        ..opts(CheckoutMode::Auto)
    };
    let e = checkout(&store, &id, &dst, asked, &|_| {}).expect_err("--preserve");
    let text = e.to_string();
    assert!(text.contains("not available on Windows"), "{text}");
    assert_eq!(text.lines().count(), 1, "{text}");
    assert!(!dst.exists());
    assert_eq!(names(t.path()), ["src", "store"]);
    writable_all(t.path());
}

#[test]
fn symlinks_are_recorded_and_checked_out_with_their_targets() {
    let t = tempfile::tempdir().expect("tempdir");
    let src = t.path().join("src");
    std::fs::create_dir(&src).expect("mkdir");
    std::fs::write(src.join("target.txt"), b"pointed at").expect("write");
    // (Wine 8 answers success and makes nothing: the link is looked for, not trusted.)
    let made = std::os::windows::fs::symlink_file("target.txt", src.join("link"))
        .and_then(|()| std::fs::symlink_metadata(src.join("link")));
    match made {
        Ok(m) if m.file_type().is_symlink() => {}
        other => {
            println!("NOT RUN: this Windows made no symlink ({other:?})");
            return;
        }
    }
    let store = Store::open(&t.path().join("store")).expect("store");
    let id = snapshot_dir(&store, &src, None).expect("snapshot").id;
    let m = store.load(&id).expect("load");
    let link = m
        .entries()
        .iter()
        .find(|e| e.path == b"link")
        .expect("recorded");
    assert_eq!(link.kind, Kind::Symlink);
    let dst = t.path().join("wt");
    let c = check_out(&store, &id, &dst, CheckoutMode::Auto);
    assert_eq!(c.symlinks, 1);
    assert_eq!(
        std::fs::read_link(dst.join("link")).expect("read_link"),
        Path::new("target.txt")
    );
    writable_all(t.path());
}
