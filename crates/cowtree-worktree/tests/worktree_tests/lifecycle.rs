//! The worktree lifecycle on real mounts: status, racy rule, incremental snapshot, switch,
//! reset, registry after moves and deletions.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};
use std::path::Path;

use cowtree_store::checkout::{CheckoutMode, CheckoutOptions, checkout};
use cowtree_store::{Hash, Store, ingest};
use cowtree_testutil::{Fs, pattern, scratch};
use cowtree_worktree::cache::{Rec, StatCache, StatKey};
use cowtree_worktree::{ChangeKind, Worktree, registry, reset, snapshot, status, switch};

fn write(p: &Path, data: &[u8]) {
    fs::create_dir_all(p.parent().unwrap()).unwrap();
    fs::write(p, data).unwrap();
}

/// Tree A: files in nested directories, an executable, a symlink, an empty dir.
fn tree_a(root: &Path) {
    for i in 0..30 {
        write(
            &root.join(format!("d{}/sub/f{i}", i % 3)),
            &pattern(500 + i * 37, i as u64),
        );
    }
    write(&root.join("keep.txt"), b"unchanged\n");
    write(&root.join("tool"), b"#!/bin/sh\necho a\n");
    fs::set_permissions(root.join("tool"), fs::Permissions::from_mode(0o755)).unwrap();
    write(&root.join("becomes-link"), b"file now\n");
    write(&root.join("becomes-dir"), b"file now\n");
    write(&root.join("was-dir/inner"), b"inner\n");
    write(&root.join("modeonly"), b"same bytes\n");
    write(&root.join("gone"), b"to be deleted\n");
    symlink("keep.txt", root.join("link")).unwrap();
    fs::create_dir_all(root.join("empty")).unwrap();
}

/// Tree B: A with one of every kind of difference.
fn tree_b(root: &Path) {
    tree_a(root);
    write(&root.join("d0/sub/f0"), b"changed content");
    fs::remove_file(root.join("gone")).unwrap();
    write(&root.join("new/deep/file"), b"brand new");
    fs::remove_file(root.join("becomes-link")).unwrap();
    symlink("keep.txt", root.join("becomes-link")).unwrap();
    fs::remove_file(root.join("becomes-dir")).unwrap();
    write(&root.join("becomes-dir/x"), b"x");
    fs::remove_dir_all(root.join("was-dir")).unwrap();
    write(&root.join("was-dir"), b"now a file");
    fs::set_permissions(root.join("modeonly"), fs::Permissions::from_mode(0o755)).unwrap();
    fs::remove_file(root.join("link")).unwrap();
    symlink("tool", root.join("link")).unwrap();
    fs::remove_dir(root.join("empty")).unwrap();
    fs::create_dir_all(root.join("empty2")).unwrap();
}

struct Env {
    _dir: tempfile::TempDir,
    store: Store,
    root: std::path::PathBuf,
    a: Hash,
    b: Hash,
}

fn env(fs_kind: Fs) -> Option<Env> {
    let dir = scratch(fs_kind)?;
    let root = dir.path().to_path_buf();
    let store = Store::open(&root.join("store")).unwrap();
    tree_a(&root.join("src-a"));
    tree_b(&root.join("src-b"));
    let a = ingest::snapshot_dir(&store, &root.join("src-a"), None)
        .unwrap()
        .id;
    let b = ingest::snapshot_dir(&store, &root.join("src-b"), None)
        .unwrap()
        .id;
    Some(Env {
        _dir: dir,
        store,
        root,
        a,
        b,
    })
}

fn check_out(e: &Env, id: &Hash, name: &str) -> Worktree {
    let dst = e.root.join(name);
    let opts = CheckoutOptions {
        mode: CheckoutMode::Auto,
        strict: false,
        preserve: cowtree_store::Preserve::NONE,
    };
    let r = checkout(&e.store, id, &dst, opts, &|_| {}).unwrap();
    status::adopt(&e.store, &r.path, id).unwrap()
}

fn same_tree(a: &Path, b: &Path) {
    cowtree_testutil::assert_diff_clean(a, b);
    // diff does not compare modes.
    for (p, m) in modes(a) {
        assert_eq!(modes(b).get(&p), Some(&m), "mode of {p}");
    }
}

fn modes(root: &Path) -> BTreeMap<String, u32> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            let m = fs::symlink_metadata(e.path()).unwrap();
            let rel = e.path().strip_prefix(root).unwrap().display().to_string();
            out.insert(rel, m.mode());
            if m.is_dir() {
                stack.push(e.path());
            }
        }
    }
    out
}

fn inodes(root: &Path) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            let m = fs::symlink_metadata(e.path()).unwrap();
            let rel = e.path().strip_prefix(root).unwrap().display().to_string();
            if m.is_dir() {
                stack.push(e.path());
            } else {
                out.insert(rel, m.ino());
            }
        }
    }
    out
}

fn changes(e: &Env, wt: &mut Worktree) -> Vec<(ChangeKind, String)> {
    change_list(&status::status(&e.store, wt).unwrap())
}

/// Changes sorted by path, then kind, to compare lists made in different orders.
fn by_path(mut v: Vec<(ChangeKind, String)>) -> Vec<(ChangeKind, String)> {
    v.sort_by(|x, y| x.1.cmp(&y.1).then(x.0.cmp(&y.0)));
    v
}

/// A status's changes as (kind, path), an untracked directory's path ending in `/`.
fn change_list(s: &cowtree_worktree::Scan) -> Vec<(ChangeKind, String)> {
    s.changes
        .iter()
        .map(|c| {
            let mut p = String::from_utf8_lossy(&c.path).into_owned();
            if c.is_dir {
                p.push('/');
            }
            (c.kind, p)
        })
        .collect()
}

#[test]
fn status_finds_each_kind_of_change_and_nothing_on_a_fresh_checkout() {
    let Some(e) = env(Fs::Xfs) else { return };
    let mut wt = check_out(&e, &e.a, "wt");
    assert_eq!(changes(&e, &mut wt), vec![]);
    let w = &wt.path;
    fs::write(w.join("d1/sub/f1"), b"edited").unwrap();
    fs::remove_file(w.join("gone")).unwrap();
    fs::write(w.join("untracked"), b"u").unwrap();
    write(&w.join("newdir/a/b"), b"u");
    fs::remove_file(w.join("becomes-link")).unwrap();
    symlink("keep.txt", w.join("becomes-link")).unwrap();
    fs::remove_file(w.join("becomes-dir")).unwrap();
    fs::create_dir(w.join("becomes-dir")).unwrap();
    fs::set_permissions(w.join("modeonly"), fs::Permissions::from_mode(0o755)).unwrap();
    fs::remove_file(w.join("link")).unwrap();
    symlink("tool", w.join("link")).unwrap();
    fs::remove_dir(w.join("empty")).unwrap();
    use ChangeKind::*;
    let want = vec![
        (Modified, "d1/sub/f1".to_string()),
        (Deleted, "gone".into()),
        (Added, "untracked".into()),
        (Added, "newdir/".into()),
        (TypeChanged, "becomes-link".into()),
        (TypeChanged, "becomes-dir".into()),
        (ModeChanged, "modeonly".into()),
        (Modified, "link".into()),
        (Deleted, "empty".into()),
    ];
    assert_eq!(by_path(changes(&e, &mut wt)), by_path(want));
}

#[test]
fn status_rehashes_a_racy_entry_whose_stat_matches_the_cache() {
    let Some(e) = env(Fs::Xfs) else { return };
    let mut wt = check_out(&e, &e.a, "wt");
    let p = wt.path.join("keep.txt");
    // Same size, different bytes: a write the stat data cannot show when it lands in the same
    // clock tick as the cache was taken.
    fs::write(&p, b"UNCHANGED\n").unwrap();
    let st = rustix::fs::lstat(&p).unwrap();
    let key = StatKey::of(&st);
    let base = e.store.load(&e.a).unwrap();
    let want = *base
        .entries()
        .iter()
        .find(|x| x.path == b"keep.txt")
        .unwrap()
        .hash()
        .unwrap();
    // A cache claiming the file holds the base content, with exactly its current stat, taken
    // in the same tick as the mtime: racy, so the file must be read.
    let rec = Rec {
        path: b"keep.txt".to_vec(),
        key,
        hash: want,
    };
    let racy = StatCache::new(key.mtime_ns + 1, vec![rec.clone()]);
    registry::save(&e.store, &mut wt, Some(&racy)).unwrap();
    let s = status::status(&e.store, &mut wt).unwrap();
    assert!(
        s.changes
            .iter()
            .any(|c| c.path == b"keep.txt" && c.kind == ChangeKind::Modified),
        "racy edit missed: {:?}",
        s.changes
    );
    // The same record taken long after the mtime is trusted, so the file is not read: this
    // is what makes the racy rule the thing that caught the edit above.
    let old = StatCache::new(key.mtime_ns + 10_000_000_000, vec![rec]);
    registry::save(&e.store, &mut wt, Some(&old)).unwrap();
    let s = status::status(&e.store, &mut wt).unwrap();
    assert!(!s.changes.iter().any(|c| c.path == b"keep.txt"));
}

#[test]
fn clean_status_reads_no_file_once_the_cache_is_refreshed() {
    let Some(e) = env(Fs::Xfs) else { return };
    let mut wt = check_out(&e, &e.a, "wt");
    std::thread::sleep(std::time::Duration::from_millis(120));
    let first = status::status(&e.store, &mut wt).unwrap();
    assert!(!first.dirty());
    let second = status::status(&e.store, &mut wt).unwrap();
    assert!(!second.dirty());
    assert_eq!(second.hashed, 0);
    fs::write(wt.path.join("d2/sub/f2"), b"changed").unwrap();
    std::thread::sleep(std::time::Duration::from_millis(120));
    let third = status::status(&e.store, &mut wt).unwrap();
    assert_eq!(third.changes.len(), 1);
    let fourth = status::status(&e.store, &mut wt).unwrap();
    assert_eq!(fourth.changes.len(), 1);
    assert_eq!(
        fourth.hashed, 0,
        "a modified file known from the cache is not reread"
    );
}

#[test]
fn incremental_snapshot_reads_only_changed_files_and_gets_the_fresh_id() {
    for fs_kind in Fs::COW {
        let Some(e) = env(fs_kind) else { continue };
        let mut wt = check_out(&e, &e.a, "wt");
        std::thread::sleep(std::time::Duration::from_millis(120));
        fs::write(wt.path.join("d0/sub/f3"), b"one").unwrap();
        fs::write(wt.path.join("added"), b"two").unwrap();
        std::thread::sleep(std::time::Duration::from_millis(120));
        let r = snapshot::snapshot(&e.store, &mut wt, None, false).unwrap();
        let fresh = ingest::snapshot_dir(&e.store, &wt.path, None).unwrap();
        assert_eq!(r.id, fresh.id);
        assert_eq!(r.read, 2, "only the two changed files are read");
        assert_eq!(wt.base, e.a, "base stays without --update-base");
        let again = snapshot::snapshot(&e.store, &mut wt, Some("later"), true).unwrap();
        assert_eq!(again.id, fresh.id);
        assert_eq!(again.read, 0);
        assert_eq!(wt.base, fresh.id);
        assert!(!status::status(&e.store, &mut wt).unwrap().dirty());
    }
}

#[test]
fn incremental_snapshot_orders_entries_like_a_fresh_one_around_empty_dirs_and_prefixes() {
    for fs_kind in Fs::COW {
        let Some(e) = env(fs_kind) else { continue };
        let mut wt = check_out(&e, &e.a, "wt");
        let w = &wt.path.clone();
        // Names that sort between `x` and `x/...` (bytes below '/'), next to an empty
        // directory `x` (an entry of its own, sorted as `x`) and a non-empty one (as `x/`).
        fs::create_dir(w.join("e")).unwrap();
        write(&w.join("e-x"), b"1");
        write(&w.join("e.y/f"), b"2");
        write(&w.join("e!"), b"3");
        write(&w.join("a/in"), b"4");
        write(&w.join("a-b"), b"5");
        write(&w.join("a.c/in"), b"6");
        fs::create_dir_all(w.join("n/m")).unwrap();
        write(&w.join("n/m-1"), b"7");
        write(&w.join("n/m 2/k"), b"8");
        fs::create_dir_all(w.join("only/empty/inside")).unwrap();
        write(&w.join("d0/sub/f3-"), b"9");
        write(&w.join("\u{e9}t\u{e9}/caf\u{e9}"), b"10");
        symlink("e-x", w.join("e-")).unwrap();
        symlink("nowhere", w.join("dangling")).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(120));
        let fresh = ingest::snapshot_dir(&e.store, w, None).unwrap();
        let r = snapshot::snapshot(&e.store, &mut wt, None, true).unwrap();
        assert_eq!(r.id, fresh.id);
        assert_eq!((r.files, r.bytes), (fresh.files, fresh.bytes));
        // Again from the refreshed cache (symlink targets now come from the base).
        let again = snapshot::snapshot(&e.store, &mut wt, None, false).unwrap();
        assert_eq!((again.id, again.read), (fresh.id, 0));
        // An empty directory that gains a file, and a file that changes.
        write(&w.join("e/now"), b"11");
        write(&w.join("e-x"), b"changed");
        std::thread::sleep(std::time::Duration::from_millis(120));
        let fresh = ingest::snapshot_dir(&e.store, w, None).unwrap();
        let r = snapshot::snapshot(&e.store, &mut wt, None, false).unwrap();
        assert_eq!(r.id, fresh.id);
        assert_eq!(r.read, 2);
    }
}

#[test]
fn incremental_snapshot_finds_cached_files_around_deleted_and_retyped_entries() {
    for fs_kind in Fs::COW {
        let Some(e) = env(fs_kind) else { continue };
        let mut wt = check_out(&e, &e.a, "wt");
        let w = &wt.path.clone();
        // A base with names that sort between `x` and `x/`, deeper trees, and empty dirs.
        for p in [
            "x/1",
            "x-/2",
            "x.y",
            "x0/3",
            "old/deep/4",
            "old-5",
            "f2d",
            "m/n/6",
        ] {
            write(&w.join(p), p.as_bytes());
        }
        fs::create_dir_all(w.join("e1")).unwrap();
        fs::create_dir_all(w.join("m/e2")).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(120));
        let first = snapshot::snapshot(&e.store, &mut wt, None, true).unwrap();
        assert_eq!(
            first.id,
            ingest::snapshot_dir(&e.store, w, None).unwrap().id
        );
        // Delete a subtree, turn a file into a directory and a directory into a file, fill
        // an empty directory, empty a directory: the unchanged files must still be found in
        // the stat cache (read stays at the number of new or changed files).
        fs::remove_dir_all(w.join("old")).unwrap();
        fs::remove_file(w.join("f2d")).unwrap();
        write(&w.join("f2d/inner"), b"now a dir");
        fs::remove_dir_all(w.join("x")).unwrap();
        write(&w.join("x"), b"now a file");
        write(&w.join("e1/filled"), b"filled");
        fs::remove_file(w.join("m/n/6")).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(120));
        let fresh = ingest::snapshot_dir(&e.store, w, None).unwrap();
        let r = snapshot::snapshot(&e.store, &mut wt, None, false).unwrap();
        assert_eq!(r.id, fresh.id);
        assert_eq!(r.read, 3, "only f2d/inner, x and e1/filled are new");
        let again = snapshot::snapshot(&e.store, &mut wt, None, false).unwrap();
        assert_eq!((again.id, again.read), (fresh.id, 0));
    }
}

/// Whether cowtree trusts directory records on the filesystem holding `p`.
fn dir_records_used(p: &Path) -> bool {
    let d = fs::File::open(p).unwrap();
    let t = cowtree_fs::fstype::fs_type(&d).unwrap();
    cowtree_worktree::scan::keeps_dir_times(t.name())
}

fn sleep_past_granularity() {
    std::thread::sleep(std::time::Duration::from_millis(120));
}

#[test]
fn unchanged_directories_are_not_listed_and_every_change_to_a_directory_is_seen() {
    for fs_kind in [Fs::Xfs, Fs::Btrfs, Fs::Tmpfs, Fs::NoCow] {
        let Some(e) = env(fs_kind) else { continue };
        let mut wt = check_out(&e, &e.a, "wt");
        let w = wt.path.clone();
        let used = dir_records_used(&w);
        // The mounts the tests make keep directory times; the host filesystem (NoCow) may be
        // one that does not (overlayfs), where every directory is listed every time.
        assert!(
            used || fs_kind == Fs::NoCow,
            "{fs_kind:?}: directory records not used"
        );
        // Every change a listing shows, in directories of their own: an entry added,
        // removed, renamed, retyped, and an empty directory filled.
        fs::write(w.join("d0/sub/new"), b"added").unwrap();
        fs::remove_file(w.join("d1/sub/f1")).unwrap();
        fs::rename(w.join("d2/sub/f2"), w.join("d2/sub/f2-renamed")).unwrap();
        fs::remove_file(w.join("gone")).unwrap();
        fs::create_dir(w.join("gone")).unwrap();
        fs::write(w.join("empty/inside"), b"x").unwrap();
        // Past the granularity, so that the records the snapshot below writes are not racy.
        sleep_past_granularity();
        use ChangeKind::*;
        let want = vec![
            (Added, "d0/sub/new".to_string()),
            (Deleted, "d1/sub/f1".into()),
            (Deleted, "d2/sub/f2".into()),
            (Added, "d2/sub/f2-renamed".into()),
            (TypeChanged, "gone".into()),
            (Added, "empty/inside".into()),
        ];
        let s = status::status(&e.store, &mut wt).unwrap();
        assert_eq!(by_path(change_list(&s)), by_path(want), "{fs_kind:?}");
        // The changed directories (the root, d0/sub, d1/sub, d2/sub, empty) and nothing
        // else; without directory records, every directory but `gone`, which is reported as
        // a type change, not walked (`dirs` counts it and not the root).
        let dirs = modes(&w)
            .values()
            .filter(|&&m| m & 0o170000 == 0o040000)
            .count() as u64;
        assert_eq!(s.listed, if used { 5 } else { dirs }, "{fs_kind:?}");

        let r = snapshot::snapshot(&e.store, &mut wt, None, false).unwrap();
        assert_eq!(r.id, ingest::snapshot_dir(&e.store, &w, None).unwrap().id);
        // The same five, and `gone`, which has no record yet.
        assert_eq!(r.listed, if used { 6 } else { dirs + 1 }, "{fs_kind:?}");
        // That snapshot recorded every directory, none of them racy: none is listed now.
        let again = snapshot::snapshot(&e.store, &mut wt, None, false).unwrap();
        assert_eq!((again.id, again.read), (r.id, 0));
        assert_eq!(again.listed, if used { 0 } else { dirs + 1 }, "{fs_kind:?}");
        if !used {
            continue;
        }
        let cache = registry::load_cache(&e.store, &wt);
        assert!(
            cache.dir_count() as u64 > dirs,
            "{fs_kind:?}: a record per directory"
        );

        // A cache whose records beneath a directory no longer match its record's hash of
        // their names (one file's record gone): that directory is listed, nothing is missed.
        let recs: Vec<Rec> = cache.recs().filter(|r| r.path != b"d0/sub/f3").collect();
        let lacking = StatCache::with_dirs(cache.written_ns, recs, cache.dirs().collect());
        registry::save(&e.store, &mut wt, Some(&lacking)).unwrap();
        let r = snapshot::snapshot(&e.store, &mut wt, None, false).unwrap();
        assert_eq!((r.id, r.read, r.listed), (again.id, 1, 1), "{fs_kind:?}");
    }
}

/// Unmounts (lazily) when dropped.
struct Mounted(std::path::PathBuf);

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .status();
    }
}

#[test]
fn a_filesystem_mounted_inside_a_worktree_gets_no_directory_records_and_is_always_listed() {
    // Directory records are made and trusted only on the worktree root's filesystem: another
    // one mounted beneath may not keep directory times (a network or FUSE mount), so its
    // directories are listed every time, while those of the root's are not.
    let Some(e) = env(Fs::Xfs) else { return };
    let mut wt = check_out(&e, &e.a, "wt");
    let w = wt.path.clone();
    let m = w.join("mnt");
    fs::create_dir(&m).unwrap();
    let ok = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=16m", "cowtree-test"])
        .arg(&m)
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        if std::env::var_os("COWTREE_TEST_REQUIRE_FS").is_some_and(|v| v == "1") {
            panic!("cannot mount a tmpfs on {} (needs root)", m.display());
        }
        println!(
            "skipped: cannot mount a tmpfs on {} (needs root)",
            m.display()
        );
        return;
    }
    let _mounted = Mounted(m.clone());
    write(&m.join("a/b/f"), b"on another filesystem");
    write(&m.join("c/g"), b"also");
    sleep_past_granularity();
    let first = snapshot::snapshot(&e.store, &mut wt, None, true).unwrap();
    assert_eq!(
        first.id,
        ingest::snapshot_dir(&e.store, &w, None).unwrap().id
    );
    // The cache now has a record of every directory of the root's filesystem but the root
    // (one of its entries, the mount point, has no record), none racy: the root and the four
    // directories of the tmpfs (mnt, mnt/a, mnt/a/b, mnt/c) are listed, and only those.
    let again = snapshot::snapshot(&e.store, &mut wt, None, true).unwrap();
    assert_eq!((again.id, again.read, again.listed), (first.id, 0, 5));
    let s = status::status(&e.store, &mut wt).unwrap();
    assert_eq!((change_list(&s).len(), s.listed), (0, 5));
    let cache = registry::load_cache(&e.store, &wt);
    assert!(
        cache.dirs().all(|d| !d.path.starts_with(b"mnt")),
        "a directory record beneath the mount point"
    );
    // A file added there is seen by both.
    write(&m.join("a/b/new"), b"added");
    let s = status::status(&e.store, &mut wt).unwrap();
    assert_eq!(
        change_list(&s),
        vec![(ChangeKind::Added, "mnt/a/b/new".to_string())]
    );
    let r = snapshot::snapshot(&e.store, &mut wt, None, true).unwrap();
    assert_eq!(r.id, ingest::snapshot_dir(&e.store, &w, None).unwrap().id);
    assert_ne!(r.id, first.id);
}

#[test]
fn a_directory_moved_away_and_back_replaced_or_with_its_times_set_back_is_listed_again() {
    for fs_kind in Fs::COW {
        let Some(e) = env(fs_kind) else { continue };
        let mut wt = check_out(&e, &e.a, "wt");
        let w = wt.path.clone();
        sleep_past_granularity();
        snapshot::snapshot(&e.store, &mut wt, None, false).unwrap();
        sleep_past_granularity();
        // A directory moved away, changed, and moved back under its own name.
        fs::rename(w.join("d0"), w.join("d9")).unwrap();
        fs::write(w.join("d9/sub/extra"), b"x").unwrap();
        fs::rename(w.join("d9"), w.join("d0")).unwrap();
        // A directory replaced by a new one of the same name with other entries.
        fs::remove_dir_all(w.join("d1/sub")).unwrap();
        write(&w.join("d1/sub/other"), b"y");
        // An entry renamed to a name of the same length, then the directory's times set back
        // to what they were (as tar, rsync and `cp -a` do): its size and mtime are the
        // recorded ones, its ctime is not.
        let before = rustix::fs::lstat(w.join("d2/sub")).unwrap();
        fs::rename(w.join("d2/sub/f2"), w.join("d2/sub/g2")).unwrap();
        let ts = |s: i64, ns: i64| rustix::fs::Timespec {
            tv_sec: s,
            tv_nsec: ns as _,
        };
        rustix::fs::utimensat(
            rustix::fs::CWD,
            w.join("d2/sub"),
            &rustix::fs::Timestamps {
                last_access: ts(before.st_atime, before.st_atime_nsec as i64),
                last_modification: ts(before.st_mtime, before.st_mtime_nsec as i64),
            },
            rustix::fs::AtFlags::empty(),
        )
        .unwrap();
        let after = rustix::fs::lstat(w.join("d2/sub")).unwrap();
        assert_eq!(
            (after.st_size, after.st_mtime, after.st_mtime_nsec),
            (before.st_size, before.st_mtime, before.st_mtime_nsec),
            "{fs_kind:?}"
        );
        let found: Vec<String> = changes(&e, &mut wt)
            .into_iter()
            .filter(|(kind, _)| *kind == ChangeKind::Added)
            .map(|(_, path)| path)
            .collect();
        for p in ["d0/sub/extra", "d1/sub/other", "d2/sub/g2"] {
            assert!(
                found.iter().any(|f| f == p),
                "{fs_kind:?}: {p} missed: {found:?}"
            );
        }
        let r = snapshot::snapshot(&e.store, &mut wt, None, false).unwrap();
        assert_eq!(r.id, ingest::snapshot_dir(&e.store, &w, None).unwrap().id);
    }
}

#[test]
fn a_directory_changed_in_the_same_tick_as_its_record_is_listed_again() {
    let Some(e) = env(Fs::Xfs) else { return };
    let mut wt = check_out(&e, &e.a, "wt");
    let w = wt.path.clone();
    sleep_past_granularity();
    snapshot::snapshot(&e.store, &mut wt, None, false).unwrap();
    // A file created in d0/sub, and a cache whose record for d0/sub has the directory's
    // stat as it is now but its entries as they were: what a cache taken in the same clock
    // tick as the creation would hold, when the creation left the directory's times as they
    // were. Taken at the directory's mtime, the record is racy and must not be trusted.
    fs::write(w.join("d0/sub/late"), b"late").unwrap();
    let key = StatKey::of(&rustix::fs::lstat(w.join("d0/sub")).unwrap());
    let cache = registry::load_cache(&e.store, &wt);
    let dirs: Vec<Rec> = cache
        .dirs()
        .map(|mut r| {
            if r.path == b"d0/sub" {
                r.key = key;
            }
            r
        })
        .collect();
    let recs: Vec<Rec> = cache.recs().collect();
    let racy = StatCache::with_dirs(key.mtime_ns + 1, recs.clone(), dirs.clone());
    registry::save(&e.store, &mut wt, Some(&racy)).unwrap();
    let s = status::status(&e.store, &mut wt).unwrap();
    assert!(
        s.changes
            .iter()
            .any(|c| c.path == b"d0/sub/late" && c.kind == ChangeKind::Added),
        "racy directory trusted: {:?}",
        s.changes
    );
    // The same record taken long after the mtime is trusted and the new file is not seen:
    // the racy rule is what found it above.
    let old = StatCache::with_dirs(key.mtime_ns + 10_000_000_000, recs, dirs);
    registry::save(&e.store, &mut wt, Some(&old)).unwrap();
    let s = status::status(&e.store, &mut wt).unwrap();
    assert!(!s.changes.iter().any(|c| c.path == b"d0/sub/late"));
}

#[test]
fn a_cache_naming_a_snapshot_that_is_gone_does_not_vouch_for_its_blobs() {
    for fs_kind in Fs::COW {
        let Some(e) = env(fs_kind) else { continue };
        let mut wt = check_out(&e, &e.a, "wt");
        // A checkout's cache names its base: every file record holds the base's content.
        assert_eq!(registry::load_cache(&e.store, &wt).blobs_of, Some(e.a));
        let content = b"only in the first snapshot";
        fs::write(wt.path.join("d0/sub/f0"), content).unwrap();
        sleep_past_granularity();
        let s1 = snapshot::snapshot(&e.store, &mut wt, None, false).unwrap();
        assert_eq!(registry::load_cache(&e.store, &wt).blobs_of, Some(s1.id));
        // While s1 is there, the base is not even read: with its manifest moved away, the
        // snapshot still succeeds (without the claim, reading the base would fail).
        let base_file = e.store.root().join("snapshots").join(e.a.to_hex());
        let aside = e.store.root().join("aside");
        fs::rename(&base_file, &aside).unwrap();
        let quick = snapshot::snapshot(&e.store, &mut wt, None, false);
        fs::rename(&aside, &base_file).unwrap();
        let quick = quick.unwrap();
        assert_eq!((quick.id, quick.read), (s1.id, 0), "{fs_kind:?}");
        // The snapshot is removed and its blobs collected (the worktree's base does not
        // hold the changed file's content). The cache still names it and still trusts the
        // file's record, but the snapshot is gone: the blob is looked up, found missing, and
        // the file is put into the store again.
        fs::remove_file(e.store.root().join("snapshots").join(s1.id.to_hex())).unwrap();
        cowtree_store::gc::gc(&e.store, false).unwrap();
        let blob = e.store.blob_path(&Hash::of(content));
        assert!(!blob.exists(), "{fs_kind:?}: gc kept the blob");
        let r = snapshot::snapshot(&e.store, &mut wt, None, false).unwrap();
        assert_eq!((r.id, r.read), (s1.id, 1), "{fs_kind:?}");
        assert!(
            blob.exists(),
            "{fs_kind:?}: a snapshot refers to a missing blob"
        );
        // And while the snapshot it names exists, nothing is looked up or read.
        let again = snapshot::snapshot(&e.store, &mut wt, None, false).unwrap();
        assert_eq!((again.id, again.read), (s1.id, 0));
    }
}

#[test]
fn snapshot_without_update_base_leaves_the_record_file_alone() {
    let Some(e) = env(Fs::Xfs) else { return };
    let mut wt = check_out(&e, &e.a, "wt");
    let record = e.store.root().join("worktrees").join(&wt.id);
    let before = fs::metadata(&record).unwrap().ino();
    write(&wt.path.join("new"), b"x");
    snapshot::snapshot(&e.store, &mut wt, None, false).unwrap();
    assert_eq!(
        fs::metadata(&record).unwrap().ino(),
        before,
        "record rewritten"
    );
    snapshot::snapshot(&e.store, &mut wt, None, true).unwrap();
    assert_ne!(
        fs::metadata(&record).unwrap().ino(),
        before,
        "new base not recorded"
    );
    let again = registry::open(&e.store, &wt.path).unwrap();
    assert_eq!(again.base, wt.base);
}

#[test]
fn switch_a_to_b_to_a_restores_exactly_touching_only_differing_files() {
    for fs_kind in Fs::COW {
        let Some(e) = env(fs_kind) else { continue };
        let mut wt = check_out(&e, &e.a, "wt");
        let before = inodes(&wt.path);
        let r = switch::switch(&e.store, &mut wt, &e.b, false).unwrap();
        assert!(r.changed > 0);
        same_tree(&e.root.join("src-b"), &wt.path);
        assert_eq!(wt.base, e.b);
        let mid = inodes(&wt.path);
        let differ = [
            "d0/sub/f0",
            "becomes-link",
            "becomes-dir",
            "was-dir",
            "modeonly",
            "link",
        ];
        for (p, ino) in &before {
            if differ
                .iter()
                .any(|d| p == d || p.starts_with(&format!("{d}/")))
                || p == "gone"
            {
                continue;
            }
            assert_eq!(mid.get(p), Some(ino), "{p} was touched by the switch");
        }
        for d in ["d0/sub/f0", "modeonly", "link"] {
            assert_ne!(mid.get(d), before.get(d), "{d} was not rewritten");
        }
        assert!(!status::status(&e.store, &mut wt).unwrap().dirty());
        switch::switch(&e.store, &mut wt, &e.a, false).unwrap();
        same_tree(&e.root.join("src-a"), &wt.path);
        let after = inodes(&wt.path);
        for (p, ino) in &before {
            if differ.iter().any(|d| p == d) || p == "gone" || p.starts_with("was-dir/") {
                continue;
            }
            assert_eq!(
                after.get(p),
                Some(ino),
                "{p} was touched by the switch back"
            );
        }
        assert!(!status::status(&e.store, &mut wt).unwrap().dirty());
    }
}

/// After each switch (A to B, with files removed, made directories, symlinks and empty
/// directories, and back) the stat cache holds a record for exactly the files and symlinks of
/// the target, each with the target's hash, and directory records only for directories of the
/// target: nothing of a path the switch removed or turned into a directory is carried.
#[test]
fn a_switch_leaves_records_for_exactly_the_files_and_directories_of_its_target() {
    use cowtree_store::Kind;
    use cowtree_store::manifest::DataRef;
    use cowtree_worktree::base::Base;
    for fs_kind in Fs::COW {
        let Some(e) = env(fs_kind) else { continue };
        let mut wt = check_out(&e, &e.a, "wt");
        let (a, b) = (
            Base::load(&e.store, &e.a).unwrap(),
            Base::load(&e.store, &e.b).unwrap(),
        );
        let in_both: Vec<Vec<u8>> = (0..a.dirs())
            .map(|d| a.dir_path(d).to_vec())
            .filter(|p| b.find_dir(p).is_some())
            .collect();
        assert!(in_both.len() > 2, "{fs_kind:?}: directories in A and B");
        for to in [e.b, e.a, e.b] {
            switch::switch(&e.store, &mut wt, &to, false).unwrap();
            let m = Base::load(&e.store, &to).unwrap();
            let want: BTreeMap<Vec<u8>, Hash> = m
                .iter()
                .enumerate()
                .filter_map(|(i, x)| match x.data {
                    DataRef::Blob { hash, .. } => Some((m.path(i), hash)),
                    DataRef::Target(t) => Some((m.path(i), Hash::of(t))),
                    DataRef::None => None,
                })
                .collect();
            let cache = registry::load_cache(&e.store, &wt);
            let got: BTreeMap<Vec<u8>, Hash> = cache.recs().map(|r| (r.path, r.hash)).collect();
            assert_eq!(got, want, "{fs_kind:?}: records after the switch to {to:?}");
            for d in cache.dirs() {
                let is_dir = d.path.is_empty()
                    || m.has_beneath(&d.path)
                    || m.find(&d.path)
                        .and_then(|i| m.get(i))
                        .is_some_and(|x| x.kind == Kind::Dir);
                assert!(
                    is_dir,
                    "{fs_kind:?}: a directory record of {} after the switch to {to:?}",
                    String::from_utf8_lossy(&d.path)
                );
            }
            // And the directories of the target keep theirs: the checkout recorded every
            // directory of A, and those that B has too are carried by every switch (a merge
            // that dropped every directory record would pass the check above).
            let carried: Vec<Vec<u8>> = cache.dirs().map(|d| d.path).collect();
            for p in &in_both {
                assert!(
                    carried.contains(p),
                    "{fs_kind:?}: no directory record of {:?} after the switch to {to:?}",
                    String::from_utf8_lossy(p)
                );
            }
        }
    }
}

#[test]
fn a_switch_writes_through_a_stale_temp_name_and_over_a_directory_left_in_the_way() {
    for fs_kind in Fs::COW {
        let Some(e) = env(fs_kind) else { continue };
        let mut wt = check_out(&e, &e.a, "wt");
        // What an earlier run could leave at the temp name a file is written under (the name
        // is fixed per path): a file, and a directory with a file in it.
        let tmp = |p: &str| format!(".cowtree-tmp-{}", &Hash::of(p.as_bytes()).to_hex()[..16]);
        let stale_file = wt.path.join("d0/sub").join(tmp("d0/sub/f0"));
        fs::write(&stale_file, b"left by an earlier run").unwrap();
        let stale_dir = wt.path.join(tmp("was-dir"));
        write(&stale_dir.join("inside"), b"left");
        // A symlink at the temp name of a file, to a file outside the worktree: it is
        // replaced, never written through.
        let outside = e.root.join(format!("outside-{fs_kind:?}"));
        fs::write(&outside, b"not the worktree's").unwrap();
        let stale_link = wt.path.join(tmp("modeonly"));
        symlink(&outside, &stale_link).unwrap();
        // A file at the temp name of a symlink entry (the symlink's creation finds it taken).
        let stale_for_link = wt.path.join(tmp("link"));
        fs::write(&stale_for_link, b"left by an earlier run").unwrap();
        switch::switch(&e.store, &mut wt, &e.b, false).unwrap();
        assert!(!stale_file.exists() && !stale_dir.exists());
        assert!(
            fs::symlink_metadata(&stale_link).is_err(),
            "temp symlink left"
        );
        assert!(
            fs::symlink_metadata(&stale_for_link).is_err(),
            "temp file left"
        );
        assert_eq!(fs::read(&outside).unwrap(), b"not the worktree's");
        assert_eq!(
            fs::read_link(wt.path.join("link")).unwrap(),
            Path::new("tool")
        );
        assert!(
            !fs::symlink_metadata(wt.path.join("modeonly"))
                .unwrap()
                .is_symlink()
        );
        // "was-dir" was a directory: the file took its place.
        same_tree(&e.root.join("src-b"), &wt.path);
        assert_eq!(fs::read(wt.path.join("was-dir")).unwrap(), b"now a file");
        assert_eq!(status::status(&e.store, &mut wt).unwrap().hashed, 0);
    }
}

#[test]
fn after_a_switch_status_reads_nothing_and_its_refresh_spares_the_next_listing() {
    for fs_kind in Fs::COW {
        let Some(e) = env(fs_kind) else { continue };
        let mut wt = check_out(&e, &e.a, "wt");
        switch::switch(&e.store, &mut wt, &e.b, false).unwrap();
        sleep_past_granularity();
        let first = status::status(&e.store, &mut wt).unwrap();
        assert!(!first.dirty());
        assert_eq!(first.hashed, 0, "a file the switch wrote was read");
        if !dir_records_used(&wt.path) {
            continue;
        }
        // The directories the switch changed were listed once, and that status kept their
        // new records although it read no file.
        assert!(first.listed > 0 && first.new_dir_recs > 0, "{first:?}");
        let second = status::status(&e.store, &mut wt).unwrap();
        assert_eq!((second.hashed, second.listed), (0, 0), "{second:?}");
    }
}

/// A status run right after a switch (as an agent checks its worktree) refreshes the cache
/// with the directories the switch changed; the refreshed cache keeps the switch's time, so
/// that every record the switch left trusted stays trusted and the next command reads none
/// of the files the switch wrote last. Dated at the status's own start instead (earlier
/// than the switch's time, which is set past its own writes), the files written in the last
/// 50 ms of the switch turned racy, and the next switch read them all again.
#[test]
fn a_status_right_after_a_switch_leaves_the_switchs_records_trusted() {
    for fs_kind in Fs::COW {
        let Some(e) = env(fs_kind) else { continue };
        let mut wt = check_out(&e, &e.a, "wt");
        if !dir_records_used(&wt.path) {
            continue;
        }
        switch::switch(&e.store, &mut wt, &e.b, false).unwrap();
        let before = registry::load_cache(&e.store, &wt);
        // At once: no sleep past the granularity here.
        let st = status::status(&e.store, &mut wt).unwrap();
        assert!(!st.dirty() && st.hashed == 0, "{st:?}");
        assert!(
            st.new_dir_recs > 0,
            "the status did not refresh the cache: {st:?}"
        );
        let after = registry::load_cache(&e.store, &wt);
        assert!(
            after.written_ns >= before.written_ns,
            "{fs_kind:?}: the refreshed cache is dated {} ns before the switch's",
            before.written_ns - after.written_ns
        );
        let trusted_before: BTreeMap<Vec<u8>, StatKey> = before
            .recs()
            .filter(|r| !before.is_racy(&r.key))
            .map(|r| (r.path, r.key))
            .collect();
        assert!(!trusted_before.is_empty());
        for r in after.recs() {
            if trusted_before.get(&r.path) == Some(&r.key) {
                assert!(
                    !after.is_racy(&r.key),
                    "{fs_kind:?}: {} turned racy in the refreshed cache",
                    String::from_utf8_lossy(&r.path)
                );
            }
        }
        let again = status::status(&e.store, &mut wt).unwrap();
        assert_eq!(again.hashed, 0, "{fs_kind:?}: {again:?}");
    }
}

#[test]
fn switch_refuses_dirty_and_blocking_untracked_paths_changing_nothing() {
    let Some(e) = env(Fs::Xfs) else { return };
    let mut wt = check_out(&e, &e.a, "wt");
    fs::write(wt.path.join("d0/sub/f0"), b"local work").unwrap();
    write(&wt.path.join("new/deep/file"), b"untracked in the way");
    write(
        &wt.path.join("was-dir/mine"),
        b"untracked in a dir that becomes a file",
    );
    fs::write(wt.path.join("unrelated"), b"untracked elsewhere").unwrap();
    let snap = |p: &Path| (inodes(p), modes(p));
    let before = snap(&wt.path);
    let err = switch::switch(&e.store, &mut wt, &e.b, false)
        .unwrap_err()
        .to_string();
    for p in ["d0/sub/f0", "new/deep/file", "was-dir/mine"] {
        assert!(err.contains(p), "{p} not listed: {err}");
    }
    assert!(!err.contains("unrelated"));
    assert_eq!(snap(&wt.path), before);
    assert_eq!(
        fs::read(wt.path.join("d0/sub/f0")).unwrap(),
        b"local work".to_vec()
    );
    let mut again = registry::open(&e.store, &wt.path).unwrap();
    assert_eq!(again.base, e.a);
    assert!(again.pending.is_none());
    // --force overwrites them.
    switch::switch(&e.store, &mut again, &e.b, true).unwrap();
    fs::remove_file(wt.path.join("unrelated")).unwrap();
    same_tree(&e.root.join("src-b"), &wt.path);
}

#[test]
fn a_switch_adding_a_deep_new_tree_writes_it_all_and_refuses_what_is_in_its_way() {
    let Some(e) = env(Fs::Xfs) else { return };
    // C: A with a new tree of 4 x 5 x 10 files four levels down.
    let c_src = e.root.join("src-c");
    tree_a(&c_src);
    for i in 0..4 {
        for j in 0..5 {
            for k in 0..10 {
                write(
                    &c_src.join(format!("new/deep/l{i}/m{j}/f{k}")),
                    format!("{i} {j} {k}").as_bytes(),
                );
            }
        }
    }
    let c = ingest::snapshot_dir(&e.store, &c_src, None).unwrap().id;
    let mut wt = check_out(&e, &e.a, "wt");
    // In the way of directories the new tree needs: an untracked file, and a symlink to a
    // directory outside the worktree (its contents must not be taken for the worktree's).
    let outside = e.root.join("outside");
    write(&outside.join("m0/f0"), b"outside");
    write(&wt.path.join("new/deep/l1"), b"untracked in the way");
    symlink(&outside, wt.path.join("new/deep/l2")).unwrap();
    let before = (inodes(&wt.path), modes(&wt.path));
    let err = switch::switch(&e.store, &mut wt, &c, false).unwrap_err();
    // Exactly the two entries in the way: nothing beneath them (not the file the symlink's
    // target holds at m0/f0), nothing of the trees beside them.
    match &err {
        cowtree_worktree::Error::Conflict { paths, total, .. } => {
            assert_eq!(
                paths,
                &[
                    r#""new/deep/l1" (untracked)"#,
                    r#""new/deep/l2" (untracked)"#
                ],
                "{err}"
            );
            assert_eq!(*total, 2, "{err}");
        }
        other => panic!("not a conflict: {other}"),
    }
    assert_eq!((inodes(&wt.path), modes(&wt.path)), before);
    assert_eq!(fs::read(outside.join("m0/f0")).unwrap(), b"outside");
    // Out of the way, the switch writes the whole tree.
    fs::remove_file(wt.path.join("new/deep/l1")).unwrap();
    fs::remove_file(wt.path.join("new/deep/l2")).unwrap();
    let mut wt = registry::open(&e.store, &wt.path).unwrap();
    let r = switch::switch(&e.store, &mut wt, &c, false).unwrap();
    assert_eq!(r.written, 200);
    same_tree(&c_src, &wt.path);
    assert_eq!(fs::read(outside.join("m0/f0")).unwrap(), b"outside");
    assert!(!status::status(&e.store, &mut wt).unwrap().dirty());
}

#[test]
fn reset_restores_changes_keeps_untracked_and_hard_removes_them() {
    let Some(e) = env(Fs::Xfs) else { return };
    let mut wt = check_out(&e, &e.a, "wt");
    let w = wt.path.clone();
    fs::write(w.join("d1/sub/f1"), b"edited").unwrap();
    fs::write(w.join("d2/sub/f2"), b"edited too").unwrap();
    fs::remove_file(w.join("gone")).unwrap();
    fs::remove_dir_all(w.join("was-dir")).unwrap();
    fs::remove_file(w.join("becomes-link")).unwrap();
    symlink("x", w.join("becomes-link")).unwrap();
    fs::set_permissions(w.join("tool"), fs::Permissions::from_mode(0o644)).unwrap();
    fs::remove_dir(w.join("empty")).unwrap();
    fs::write(w.join("untracked"), b"u").unwrap();
    // Only one path first.
    reset::reset(&e.store, &mut wt, &[b"d1".to_vec()], false).unwrap();
    assert_eq!(
        fs::read(w.join("d1/sub/f1")).unwrap(),
        fs::read(e.root.join("src-a/d1/sub/f1")).unwrap()
    );
    assert_eq!(
        fs::read(w.join("d2/sub/f2")).unwrap(),
        b"edited too".to_vec()
    );
    reset::reset(&e.store, &mut wt, &[], false).unwrap();
    assert!(
        w.join("untracked").exists(),
        "untracked kept without --hard"
    );
    fs::remove_file(w.join("untracked")).unwrap();
    same_tree(&e.root.join("src-a"), &w);
    fs::write(w.join("untracked"), b"u").unwrap();
    write(&w.join("udir/x"), b"u");
    reset::reset(&e.store, &mut wt, &[], true).unwrap();
    same_tree(&e.root.join("src-a"), &w);
    assert!(!status::status(&e.store, &mut wt).unwrap().dirty());
}

#[test]
fn registry_survives_a_worktree_moved_or_deleted_by_hand() {
    let Some(e) = env(Fs::Xfs) else { return };
    let wt1 = check_out(&e, &e.a, "wt1");
    let wt2 = check_out(&e, &e.b, "wt2");
    let moved = e.root.join("moved");
    fs::rename(&wt1.path, &moved).unwrap();
    fs::remove_dir_all(&wt2.path).unwrap();
    let states: Vec<_> = registry::list(&e.store)
        .unwrap()
        .into_iter()
        .map(|(_, _, p)| p)
        .collect();
    assert_eq!(
        states,
        vec![registry::Presence::Missing, registry::Presence::Missing]
    );
    // The moved one is found by device and inode and re-keyed; its cache stays valid.
    let mut m = registry::open(&e.store, &moved).unwrap();
    assert_eq!(m.base, e.a);
    assert_eq!(m.path, fs::canonicalize(&moved).unwrap());
    assert!(!status::status(&e.store, &mut m).unwrap().dirty());
    let list = registry::list(&e.store).unwrap();
    assert_eq!(list.len(), 2);
    assert!(
        list.iter()
            .any(|(_, r, p)| *p == registry::Presence::Present
                && r.path_buf() == Some(m.path.clone()))
    );
    // gc drops the deleted one, so it no longer pins its snapshot.
    let g = cowtree_store::gc::gc(&e.store, false).unwrap();
    assert_eq!(g.worktrees_pruned, 1);
    assert!(
        cowtree_store::worktree_records::live_users(&e.store, &e.b)
            .unwrap()
            .is_empty()
    );
    assert_eq!(registry::list(&e.store).unwrap().len(), 1);
    // A path reused by another directory is not taken for the worktree.
    fs::create_dir(&wt2.path).unwrap();
    assert!(registry::lookup(&e.store, &wt2.path).unwrap().is_none());
}

#[test]
fn switch_refuses_to_drop_untracked_work_inside_an_empty_directory_entry() {
    let Some(e) = env(Fs::Xfs) else { return };
    // C: A with the empty directory `empty` turned into a file.
    let c_src = e.root.join("src-c");
    tree_a(&c_src);
    fs::remove_dir(c_src.join("empty")).unwrap();
    write(&c_src.join("empty"), b"now a file");
    let c = ingest::snapshot_dir(&e.store, &c_src, None).unwrap().id;
    for (target, what) in [(e.b, "removed in B"), (c, "a file in C")] {
        let mut wt = check_out(&e, &e.a, &format!("wt-{}", &target.to_hex()[..8]));
        write(&wt.path.join("empty/work.txt"), b"precious");
        let err = switch::switch(&e.store, &mut wt, &target, false)
            .expect_err(what)
            .to_string();
        assert!(err.contains("empty/work.txt"), "{what}: {err}");
        assert_eq!(
            fs::read(wt.path.join("empty/work.txt")).unwrap(),
            b"precious".to_vec(),
            "{what}"
        );
    }
}

#[test]
fn an_unfinished_switch_pins_both_of_its_snapshots() {
    let Some(e) = env(Fs::Xfs) else { return };
    let mut wt = check_out(&e, &e.a, "wt-pending");
    let path = wt.path.clone();
    let users = |id: &Hash| cowtree_store::worktree_records::live_users(&e.store, id).unwrap();
    assert_eq!(users(&e.a), vec![path.clone()]);
    assert!(users(&e.b).is_empty());
    // The record a switch from A to B writes before it changes any file (and leaves behind
    // when it is killed).
    wt.pending = Some(registry::Pending { from: e.a, to: e.b });
    registry::save(&e.store, &mut wt, None).unwrap();
    assert_eq!(
        users(&e.b),
        vec![path.clone()],
        "the switch's target is in use"
    );
    assert_eq!(users(&e.a), vec![path.clone()]);
    // Running the switch again completes it; then only the new base is pinned.
    let mut wt = registry::lookup(&e.store, &path).unwrap().unwrap();
    switch::switch(&e.store, &mut wt, &e.b, false).unwrap();
    same_tree(&e.root.join("src-b"), &path);
    assert_eq!(users(&e.b), vec![path.clone()]);
    assert!(users(&e.a).is_empty());
}

#[test]
fn switch_and_reset_count_each_entry_they_change_with_its_file_bytes() {
    let Some(e) = env(Fs::Xfs) else { return };
    let mut wt = check_out(&e, &e.a, "wt");
    let p = cowtree_fs::Progress::default();
    let r = switch::switch_with_progress(&e.store, &mut wt, &e.b, false, &p).unwrap();
    let total = p.total().expect("a switch knows its total");
    // Files written: "changed content", "brand new", "x", "now a file" and the re-moded
    // "same bytes\n"; the symlinks carry no file data.
    assert_eq!(total.bytes, Some(15 + 9 + 1 + 10 + 11));
    assert_eq!(total.entries, r.written + r.removed, "{r:?}");
    assert_eq!((p.entries(), Some(p.bytes())), (total.entries, total.bytes));

    let w = wt.path.clone();
    fs::write(w.join("d1/sub/f1"), b"edited").unwrap();
    fs::write(w.join("d2/sub/f2"), b"edited too").unwrap();
    let p = cowtree_fs::Progress::default();
    let r = reset::reset_with_progress(&e.store, &mut wt, &[], false, &p).unwrap();
    assert_eq!(r.restored, 2);
    // f1 and f2 of tree A (the same in B): 500 + 37 and 500 + 2 * 37 bytes.
    let bytes = 537 + 574;
    assert_eq!(
        p.total().map(|t| (t.entries, t.bytes)),
        Some((2, Some(bytes)))
    );
    assert_eq!((p.entries(), p.bytes()), (2, bytes));
}

#[test]
fn status_and_incremental_snapshot_count_each_entry_with_the_bytes_they_read() {
    let Some(e) = env(Fs::Xfs) else { return };
    let mut wt = check_out(&e, &e.a, "wt");
    // Tree A's files and symlinks: 30 in d0..d2/sub, keep.txt, tool, becomes-link,
    // becomes-dir, was-dir/inner, modeonly, gone and link.
    let n = 38;
    let p = cowtree_fs::Progress::default();
    let s = status::status_with_progress(&e.store, &mut wt, &p).unwrap();
    assert!(!s.dirty(), "{:?}", s.changes);
    assert_eq!(s.hashed, 0);
    assert_eq!((p.entries(), p.bytes(), p.total()), (n, 0, None));

    // Same size, new content: read by the status, which learns its hash.
    let w = wt.path.clone();
    fs::write(w.join("d0/sub/f0"), pattern(500, 99)).unwrap();
    sleep_past_granularity();
    let p = cowtree_fs::Progress::default();
    let s = status::status_with_progress(&e.store, &mut wt, &p).unwrap();
    assert_eq!(s.changes.len(), 1, "{:?}", s.changes);
    assert_eq!(s.hashed, 1);
    assert_eq!((p.entries(), p.bytes()), (n, 500));

    // A new file. The snapshot reads it and f0 (whose hash the stat cache knows now, but
    // whose blob is not in the store), and nothing else.
    fs::write(w.join("added"), b"brand").unwrap();
    sleep_past_granularity();
    let p = cowtree_fs::Progress::default();
    let r = snapshot::snapshot_with_progress(&e.store, &mut wt, None, true, &p).unwrap();
    assert_eq!((r.read, r.new_bytes), (2, 500 + 5), "{r:?}");
    // The link is an entry of the walk but not a file of the report.
    assert_eq!(r.files + 1, n + 1, "{r:?}");
    assert_eq!((p.entries(), p.bytes(), p.total()), (n + 1, 500 + 5, None));

    // The worktree as snapshotted, again, without reading anything.
    let p = cowtree_fs::Progress::default();
    let s = status::status_with_progress(&e.store, &mut wt, &p).unwrap();
    assert!(!s.dirty(), "{:?}", s.changes);
    assert_eq!((p.entries(), p.bytes()), (n + 1, 0));
}

#[test]
fn the_worktree_checkout_marks_registers_and_caches_so_a_library_user_gets_what_the_cli_gets() {
    for fs_kind in [Fs::Xfs, Fs::Btrfs] {
        let Some(e) = env(fs_kind) else { return };
        let dst = e.root.join("lib-wt");
        let opts = CheckoutOptions {
            mode: CheckoutMode::Auto,
            strict: false,
            preserve: cowtree_store::Preserve::NONE,
        };
        let p = cowtree_fs::Progress::default();
        let made =
            cowtree_worktree::checkout::checkout(&e.store, &e.a, &dst, opts, &|_| {}, &p).unwrap();
        assert!(made.cache_error.is_none(), "{:?}", made.cache_error);
        assert!(made.marker_error.is_none(), "{:?}", made.marker_error);
        same_tree(&e.root.join("src-a"), &dst);
        // The marker names the store, from the root and from a directory inside.
        let (store, at) = cowtree_store::discover::marked_store(&dst.join("d0/sub")).unwrap();
        assert_eq!(store, e.store.root());
        assert_eq!(at, made.report.path);
        // Registered with its root's device and inode, found by path.
        let mut wt = registry::open(&e.store, &dst).unwrap();
        let st = fs::metadata(&dst).unwrap();
        assert_eq!((wt.dev, wt.ino), (st.dev(), st.ino()));
        // The stat cache is there: after the racy window, a status hashes nothing.
        sleep_past_granularity();
        let s = status::status(&e.store, &mut wt).unwrap();
        assert!(s.changes.is_empty(), "{:?}", s.changes);
        assert_eq!(s.hashed, 0, "{fs_kind:?}: the first status hashed files");
        // And it survives gc.
        cowtree_store::gc::gc(&e.store, false).unwrap();
        registry::open(&e.store, &dst).unwrap();
    }
}

#[test]
fn a_worktree_gone_from_its_path_is_named_once_in_the_error() {
    let Some(e) = env(Fs::Xfs) else { return };
    let mut wt = check_out(&e, &e.a, "gone");
    fs::remove_dir_all(&wt.path).unwrap();
    let path = wt.path.display().to_string();
    let lock = registry::lock(&e.store, &wt).unwrap_err();
    let scan = status::status(&e.store, &mut wt).unwrap_err();
    for err in [lock, scan] {
        let msg = err.to_string();
        assert_eq!(msg.matches(path.as_str()).count(), 1, "{msg}");
        assert_eq!(
            err.io_error().map(|e| e.kind()),
            Some(std::io::ErrorKind::NotFound),
            "{msg}"
        );
    }
}

#[test]
fn lookup_rewrites_an_old_record_only_under_the_worktrees_lock() {
    let Some(e) = env(Fs::Xfs) else { return };
    let wt = check_out(&e, &e.a, "old");
    let file = cowtree_store::worktree_records::record_path(&e.store, &wt.id);
    let mut rec: serde_json::Value = serde_json::from_slice(&fs::read(&file).unwrap()).unwrap();
    let obj = rec.as_object_mut().unwrap();
    obj.remove("dev");
    obj.remove("ino");
    let old = serde_json::to_vec(&rec).unwrap();
    fs::write(&file, &old).unwrap();
    let ino = fs::metadata(&wt.path).unwrap().ino();

    // Another command holds the lock (a switch writing its journal): the record is left alone.
    let held = registry::lock(&e.store, &wt).unwrap();
    let found = registry::lookup(&e.store, &wt.path).unwrap().unwrap();
    assert_eq!((found.base, found.ino), (e.a, ino));
    assert_eq!(fs::read(&file).unwrap(), old, "rewritten while locked");
    drop(held);

    registry::lookup(&e.store, &wt.path).unwrap().unwrap();
    let rec: serde_json::Value = serde_json::from_slice(&fs::read(&file).unwrap()).unwrap();
    assert_eq!(rec["ino"], ino, "{rec}");
}

/// The names in the store's `worktrees/` that are temporary files (a record or cache being
/// written).
fn staged_leftovers(store: &Store) -> Vec<String> {
    fs::read_dir(store.root().join("worktrees"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".tmp-"))
        .collect()
}

#[test]
fn a_refused_switch_leaves_the_record_byte_for_byte_and_no_staged_journal() {
    let Some(e) = env(Fs::Xfs) else { return };
    let mut wt = check_out(&e, &e.a, "wt");
    let record = e.store.root().join("worktrees").join(&wt.id);
    let before = fs::read(&record).unwrap();
    fs::write(wt.path.join("d0/sub/f0"), b"local work").unwrap();
    let err = switch::switch(&e.store, &mut wt, &e.b, false).unwrap_err();
    assert!(err.to_string().contains("d0/sub/f0"), "{err}");
    assert_eq!(fs::read(&record).unwrap(), before, "the record changed");
    assert!(wt.pending.is_none());
    assert_eq!(staged_leftovers(&e.store), Vec::<String>::new());
    // A switch that goes through leaves no staged file either, and its record is the one a
    // fresh lookup reads.
    fs::write(
        wt.path.join("d0/sub/f0"),
        fs::read(e.root.join("src-a/d0/sub/f0")).unwrap(),
    )
    .unwrap();
    switch::switch(&e.store, &mut wt, &e.b, false).unwrap();
    assert_eq!(staged_leftovers(&e.store), Vec::<String>::new());
    let again = registry::open(&e.store, &wt.path).unwrap();
    assert_eq!((again.base, again.pending), (e.b, None));
    same_tree(&e.root.join("src-b"), &wt.path);
}

#[test]
fn switch_of_a_worktree_on_another_filesystem_than_its_store_finishes_and_is_trusted() {
    // The store on one XFS, the worktree (copied, not cloned) on another, so that the sync
    // of the worktree's filesystem does not write the store's: the switch still finishes,
    // leaves no staged record behind, its record is the one a fresh lookup reads, the files
    // it wrote are trusted by the next status without being read, and a switch back works.
    // (Whether the record reached the disk before a power loss is not observable here.)
    let Some(e) = env(Fs::Xfs) else { return };
    let Some(other) = scratch(Fs::Xfs2) else {
        return;
    };
    let dst = other.path().join("wt");
    let opts = CheckoutOptions {
        mode: CheckoutMode::Auto,
        strict: false,
        preserve: cowtree_store::Preserve::NONE,
    };
    let r = checkout(&e.store, &e.a, &dst, opts, &|_| {}).unwrap();
    let mut wt = status::adopt(&e.store, &r.path, &e.a).unwrap();
    switch::switch(&e.store, &mut wt, &e.b, false).unwrap();
    same_tree(&e.root.join("src-b"), &wt.path);
    assert_eq!(staged_leftovers(&e.store), Vec::<String>::new());
    let mut again = registry::open(&e.store, &wt.path).unwrap();
    assert_eq!((again.base, again.pending), (e.b, None));
    sleep_past_granularity();
    let s = status::status(&e.store, &mut again).unwrap();
    assert!(!s.dirty(), "{:?}", s.changes);
    assert_eq!(s.hashed, 0, "a file the switch wrote was read");
    switch::switch(&e.store, &mut again, &e.a, false).unwrap();
    same_tree(&e.root.join("src-a"), &wt.path);
}
