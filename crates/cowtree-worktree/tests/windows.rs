//! cowtree-worktree on Windows, end to end in a temporary directory: a store, a snapshot of a
//! tree made with `std::fs`, a checkout registered with its stat cache, then status, switch,
//! reset and an incremental snapshot, each checked against what `std::fs` reads back. Under
//! Wine (scripts/windows.sh) the volume cannot block-clone, so every file is a copy; symlinks
//! are not made (Wine 8 makes none).

#![cfg(windows)]

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use cowtree_fs::progress::Progress;
use cowtree_store::checkout::{CheckoutMode, CheckoutOptions};
use cowtree_store::{Hash, Store, ingest};
use cowtree_worktree::{ChangeKind, Worktree, registry, reset, snapshot, status, switch};

fn write(p: &Path, data: &[u8]) {
    fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
    fs::write(p, data).expect("write");
}

/// Tree A: files in nested directories, an empty directory.
fn tree_a(root: &Path) {
    for i in 0..12u32 {
        let body: Vec<u8> = (0..(200 + i * 37)).map(|k| (k * 7 + i) as u8).collect();
        write(&root.join(format!("d{}/sub/f{i}", i % 3)), &body);
    }
    write(&root.join("keep.txt"), b"unchanged\n");
    write(&root.join("edit.txt"), b"first words\n");
    write(&root.join("gone.txt"), b"to be deleted\n");
    write(&root.join("was-dir/inner"), b"inner\n");
    fs::create_dir_all(root.join("empty")).expect("mkdir");
}

/// Tree B: A with one of each difference a switch applies.
fn tree_b(root: &Path) {
    tree_a(root);
    write(&root.join("edit.txt"), b"other words, longer\n");
    fs::remove_file(root.join("gone.txt")).expect("rm");
    write(&root.join("new/deep/file"), b"brand new");
    fs::remove_dir_all(root.join("was-dir")).expect("rm -r");
    write(&root.join("was-dir"), b"now a file");
    fs::remove_dir(root.join("empty")).expect("rmdir");
    fs::create_dir_all(root.join("empty2")).expect("mkdir");
}

/// Every entry under `root` by relative path (`/`-separated): a file's bytes, or `None` for a
/// directory.
fn contents(root: &Path) -> BTreeMap<String, Option<Vec<u8>>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).expect("read_dir") {
            let e = e.expect("entry");
            let rel = e
                .path()
                .strip_prefix(root)
                .expect("beneath")
                .to_string_lossy()
                .replace('\\', "/");
            let m = fs::symlink_metadata(e.path()).expect("metadata");
            if m.is_dir() {
                out.insert(rel, None);
                stack.push(e.path());
            } else {
                out.insert(rel, Some(fs::read(e.path()).expect("read")));
            }
        }
    }
    out
}

struct Env {
    _dir: tempfile::TempDir,
    root: PathBuf,
    store: Store,
    a: Hash,
    b: Hash,
}

fn env() -> Env {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().to_path_buf();
    let store = Store::open(&root.join("store")).expect("store");
    tree_a(&root.join("src-a"));
    tree_b(&root.join("src-b"));
    let a = ingest::snapshot_dir(&store, &root.join("src-a"), None)
        .expect("snapshot a")
        .id;
    let b = ingest::snapshot_dir(&store, &root.join("src-b"), None)
        .expect("snapshot b")
        .id;
    assert_ne!(a, b);
    Env {
        _dir: dir,
        root,
        store,
        a,
        b,
    }
}

fn check_out(e: &Env, id: &Hash, name: &str) -> Worktree {
    let opts = CheckoutOptions {
        mode: CheckoutMode::Auto,
        strict: false,
        preserve: cowtree_store::Preserve::NONE,
    };
    let done = cowtree_worktree::checkout::checkout(
        &e.store,
        id,
        &e.root.join(name),
        opts,
        &|_| {},
        &Progress::default(),
    )
    .expect("checkout");
    assert!(done.cache_error.is_none(), "{:?}", done.cache_error);
    done.worktree.expect("registered")
}

/// Status's changes as (kind, path), a directory's path ending in `/`, sorted.
fn changes(e: &Env, wt: &mut Worktree) -> Vec<(ChangeKind, String)> {
    let s = status::status(&e.store, wt).expect("status");
    let mut v: Vec<(ChangeKind, String)> = s
        .changes
        .iter()
        .map(|c| {
            let mut p = String::from_utf8_lossy(&c.path).into_owned();
            if c.is_dir {
                p.push('/');
            }
            (c.kind, p)
        })
        .collect();
    v.sort_by(|x, y| x.1.cmp(&y.1).then(x.0.cmp(&y.0)));
    v
}

#[test]
fn a_fresh_checkout_is_the_snapshot_and_its_status_is_clean() {
    let e = env();
    let mut wt = check_out(&e, &e.a, "wt");
    assert_eq!(contents(&wt.path), contents(&e.root.join("src-a")));
    assert_eq!(changes(&e, &mut wt), vec![]);
    // The stat cache proved every file: a second status reads none of them.
    let again = status::status(&e.store, &mut wt).expect("status");
    assert_eq!(again.hashed, 0, "files read again");
    // Found again by its path.
    let found = registry::lookup(&e.store, &wt.path)
        .expect("lookup")
        .expect("registered");
    assert_eq!((found.id, found.base), (wt.id.clone(), e.a));
}

#[test]
fn status_lists_what_was_modified_added_and_deleted() {
    let e = env();
    let mut wt = check_out(&e, &e.a, "wt");
    let w = wt.path.clone();
    fs::write(w.join("edit.txt"), b"other words\n").expect("edit, same size");
    fs::write(w.join("d1/sub/f1"), b"shorter").expect("edit");
    fs::remove_file(w.join("gone.txt")).expect("rm");
    fs::write(w.join("untracked.txt"), b"u").expect("add");
    write(&w.join("newdir/a/b"), b"u");
    fs::remove_dir(w.join("empty")).expect("rmdir");
    fs::remove_file(w.join("was-dir/inner")).expect("rm");
    fs::remove_dir(w.join("was-dir")).expect("rmdir");
    fs::write(w.join("was-dir"), b"a file now").expect("file for dir");
    use ChangeKind::*;
    let mut want = vec![
        (Modified, "d1/sub/f1".to_string()),
        (Modified, "edit.txt".into()),
        (Deleted, "empty".into()),
        (Deleted, "gone.txt".into()),
        (Added, "newdir/".into()),
        (Added, "untracked.txt".into()),
        // A directory with entries is no entry of its own in a snapshot: the file in its
        // place is new, and what was beneath it is gone.
        (Added, "was-dir".into()),
        (Deleted, "was-dir/inner".into()),
    ];
    let got = changes(&e, &mut wt);
    want.sort_by(|x, y| x.1.cmp(&y.1).then(x.0.cmp(&y.0)));
    assert_eq!(got, want);
}

#[test]
fn switch_makes_the_tree_exactly_the_other_snapshot_and_back() {
    let e = env();
    let mut wt = check_out(&e, &e.a, "wt");
    let r = switch::switch(&e.store, &mut wt, &e.b, false).expect("switch to b");
    assert!(r.written > 0, "{r:?}");
    assert_eq!(wt.base, e.b);
    assert_eq!(contents(&wt.path), contents(&e.root.join("src-b")));
    assert_eq!(changes(&e, &mut wt), vec![]);
    switch::switch(&e.store, &mut wt, &e.a, false).expect("switch back");
    assert_eq!(contents(&wt.path), contents(&e.root.join("src-a")));
    assert_eq!(changes(&e, &mut wt), vec![]);
}

#[test]
fn switch_refuses_to_lose_a_local_change_unless_forced() {
    let e = env();
    let mut wt = check_out(&e, &e.a, "wt");
    fs::write(wt.path.join("edit.txt"), b"my own change").expect("edit");
    switch::switch(&e.store, &mut wt, &e.b, false).expect_err("a local change is in the way");
    assert_eq!(
        fs::read(wt.path.join("edit.txt")).expect("read"),
        b"my own change"
    );
    switch::switch(&e.store, &mut wt, &e.b, true).expect("forced");
    assert_eq!(contents(&wt.path), contents(&e.root.join("src-b")));
}

#[test]
fn a_hard_reset_restores_the_base_exactly() {
    let e = env();
    let mut wt = check_out(&e, &e.a, "wt");
    let w = wt.path.clone();
    fs::write(w.join("edit.txt"), b"changed").expect("edit");
    fs::remove_file(w.join("d2/sub/f2")).expect("rm");
    fs::write(w.join("untracked.txt"), b"u").expect("add");
    write(&w.join("newdir/x"), b"x");
    let r = reset::reset(&e.store, &mut wt, &[], true).expect("reset");
    assert!(r.restored >= 2, "{r:?}");
    assert_eq!(contents(&w), contents(&e.root.join("src-a")));
    assert_eq!(changes(&e, &mut wt), vec![]);
}

#[test]
fn an_incremental_snapshot_records_the_tree_as_a_full_one_does() {
    let e = env();
    let mut wt = check_out(&e, &e.a, "wt");
    // Unchanged: the same snapshot as A.
    let same = snapshot::snapshot(&e.store, &mut wt, None, true).expect("snapshot");
    assert_eq!(same.id, e.a);
    // Made into B by hand: the same id as B's snapshot of a std-made tree.
    let w = wt.path.clone();
    fs::write(w.join("edit.txt"), b"other words, longer\n").expect("edit");
    fs::remove_file(w.join("gone.txt")).expect("rm");
    write(&w.join("new/deep/file"), b"brand new");
    fs::remove_dir_all(w.join("was-dir")).expect("rm -r");
    fs::write(w.join("was-dir"), b"now a file").expect("file");
    fs::remove_dir(w.join("empty")).expect("rmdir");
    fs::create_dir(w.join("empty2")).expect("mkdir");
    let made = snapshot::snapshot(&e.store, &mut wt, None, true).expect("snapshot");
    assert_eq!(made.id, e.b);
    assert_eq!(wt.base, e.b);
    assert_eq!(changes(&e, &mut wt), vec![]);
}

#[test]
fn the_worktree_lock_is_held_by_one_at_a_time() {
    let e = env();
    let wt = check_out(&e, &e.a, "wt");
    let held = registry::lock(&e.store, &wt).expect("lock");
    assert!(registry::try_lock(&e.store, &wt).is_none(), "taken twice");
    drop(held);
    assert!(registry::try_lock(&e.store, &wt).is_some(), "not released");
}
