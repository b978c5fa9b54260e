//! The worktree checkout's stat cache, made from the stats the checkout took as it wrote the
//! tree, on real mounts (run through scripts/test.sh): the same records a walk of the new
//! tree makes, trusted as soon as the checkout returns, and still blind to no change.

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};
use std::path::Path;

use cowtree_fs::dir::Dir;
use cowtree_store::checkout::{CheckoutMode, CheckoutOptions};
use cowtree_store::{Hash, Store, ingest};
use cowtree_testutil::{Fs, pattern, scratch};
use cowtree_worktree::base::Base;
use cowtree_worktree::cache::{Rec, StatCache};
use cowtree_worktree::checkout::CheckedOut;
use cowtree_worktree::scan::{self, Mode};
use cowtree_worktree::{ChangeKind, registry, status};

fn write(p: &Path, data: &[u8]) {
    fs::create_dir_all(p.parent().unwrap()).unwrap();
    fs::write(p, data).unwrap();
}

/// Nested directories, one directory of more files than one checkout work item takes, a
/// directory holding only directories, empty directories, executables, symlinks (one
/// dangling), an empty file.
fn tree(root: &Path) {
    for i in 0..40 {
        write(
            &root.join(format!("d{}/sub/f{i}", i % 4)),
            &pattern(100 + i * 131, i as u64),
        );
    }
    for i in 0..600 {
        write(
            &root.join(format!("big/n{i:04}")),
            format!("{i}\n").as_bytes(),
        );
    }
    write(&root.join("only-dirs/a/x"), b"x");
    write(&root.join("only-dirs/b/y"), b"y");
    fs::create_dir_all(root.join("empty/inner-empty")).unwrap();
    write(&root.join("top.txt"), b"top\n");
    write(&root.join("zero"), b"");
    write(&root.join("bin/tool"), b"#!/bin/sh\necho tool\n");
    fs::set_permissions(root.join("bin/tool"), fs::Permissions::from_mode(0o755)).unwrap();
    symlink("../top.txt", root.join("d1/up")).unwrap();
    symlink("nowhere", root.join("dangling")).unwrap();
}

fn key_list(recs: impl Iterator<Item = Rec>) -> Vec<(Vec<u8>, String)> {
    recs.map(|r| (r.path, format!("{:?} {}", r.key, r.hash.to_hex())))
        .collect()
}

/// The tree of [`tree`] at ROOT/src, snapshotted into a store at ROOT/store and checked out
/// (auto mode) into ROOT/wt.
fn snapshot_and_check_out(root: &Path) -> (Store, Hash, CheckedOut) {
    let store = Store::open(&root.join("store")).unwrap();
    tree(&root.join("src"));
    let id = ingest::snapshot_dir(&store, &root.join("src"), None)
        .unwrap()
        .id;
    let opts = CheckoutOptions {
        mode: CheckoutMode::Auto,
        strict: false,
        preserve: cowtree_store::Preserve::NONE,
    };
    let p = cowtree_fs::Progress::default();
    let made =
        cowtree_worktree::checkout::checkout(&store, &id, &root.join("wt"), opts, &|_| {}, &p)
            .unwrap();
    (store, id, made)
}

#[test]
fn checkout_records_what_a_walk_of_the_new_tree_records_and_status_right_after_reads_nothing() {
    for fsys in [Fs::Xfs, Fs::Btrfs, Fs::NoCow, Fs::Tmpfs] {
        let Some(dir) = scratch(fsys) else { continue };
        let root = dir.path();
        let (store, id, made) = snapshot_and_check_out(root);
        let dst = root.join("wt");
        assert!(
            made.cache_error.is_none(),
            "{fsys:?}: {:?}",
            made.cache_error
        );

        // Right away, with no wait for the timestamp granularity: nothing is read, and no
        // directory is listed where directory records are kept.
        let mut wt = registry::open(&store, &dst).unwrap();
        let s = status::status(&store, &mut wt).unwrap();
        assert!(s.changes.is_empty(), "{fsys:?}: {:?}", s.changes);
        assert_eq!(
            s.hashed, 0,
            "{fsys:?}: status right after checkout hashed files"
        );
        let dir_records = cowtree_fs::fstype::fs_type(Dir::open(&dst).unwrap())
            .is_ok_and(|t| scan::keeps_dir_times(t.name()));
        if dir_records {
            assert_eq!(s.listed, 0, "{fsys:?}: status listed directories");
        }

        // The checkout's records are exactly those a walk of the tree makes.
        let cache = registry::load_cache(&store, &wt);
        let base = Base::load(&store, &id).unwrap();
        let walk = scan::scan(&dst, &base, &StatCache::default(), Mode::Adopt).unwrap();
        let walked = StatCache::with_dirs(0, walk.recs, walk.dir_recs);
        assert_eq!(cache.len(), 40 + 600 + 2 + 3 + 2, "{fsys:?}: records");
        assert_eq!(
            key_list(cache.recs()),
            key_list(walked.recs()),
            "{fsys:?}: file records"
        );
        assert_eq!(
            key_list(cache.dirs()),
            key_list(walked.dirs()),
            "{fsys:?}: directory records"
        );
        assert_eq!(cache.blobs_of, Some(id), "{fsys:?}");

        // Every recorded time is before the tree was renamed into place (the root's ctime is
        // that rename's, or the marker's after it): a change made once the tree can be
        // reached by its path is stamped later than what the records hold.
        let m = fs::symlink_metadata(&dst).unwrap();
        let placed = m.ctime() * 1_000_000_000 + m.ctime_nsec();
        for r in cache
            .recs()
            .chain(cache.dirs())
            .filter(|r| !r.path.is_empty())
        {
            assert!(
                r.key.mtime_ns.max(r.key.ctime_ns) < placed,
                "{fsys:?} {:?}: {:?} not before {placed}",
                String::from_utf8_lossy(&r.path),
                r.key
            );
        }

        // Modes as the kinds say, whatever the filesystem or method.
        let mode = |rel: &str| fs::symlink_metadata(dst.join(rel)).unwrap().mode() & 0o7777;
        assert_eq!(mode("bin/tool"), 0o755, "{fsys:?}");
        assert_eq!(mode("top.txt"), 0o644, "{fsys:?}");
        assert_eq!(mode("big/n0007"), 0o644, "{fsys:?}");

        // A change made right after the checkout is seen: a same-size rewrite is racy
        // against the cache's time, so it is read.
        write(&dst.join("top.txt"), b"TOP\n");
        let s = status::status(&store, &mut wt).unwrap();
        let got: Vec<_> = s.changes.iter().map(|c| (c.kind, c.path.clone())).collect();
        assert_eq!(
            got,
            vec![(ChangeKind::Modified, b"top.txt".to_vec())],
            "{fsys:?}"
        );
    }
}

#[test]
fn checkout_on_a_filesystem_without_reflink_copies_reports_the_fallback_and_still_caches() {
    for fsys in Fs::NO_COW {
        let Some(dir) = scratch(fsys) else { continue };
        let root = dir.path();
        let (store, id, made) = snapshot_and_check_out(root);
        let dst = root.join("wt");
        let r = &made.report;
        assert_eq!((r.cloned, r.copied), (0, r.files), "{fsys:?}");
        assert_eq!(
            r.fallbacks,
            vec![("filesystem-cannot-reflink".to_string(), r.files)],
            "{fsys:?}"
        );
        assert!(
            made.cache_error.is_none(),
            "{fsys:?}: {:?}",
            made.cache_error
        );
        assert_eq!(
            fs::read(dst.join("d2/sub/f6")).unwrap(),
            pattern(100 + 6 * 131, 6),
            "{fsys:?}"
        );
        let mut wt = registry::open(&store, &dst).unwrap();
        let s = status::status(&store, &mut wt).unwrap();
        assert!(s.changes.is_empty(), "{fsys:?}: {:?}", s.changes);
        assert_eq!(s.hashed, 0, "{fsys:?}");

        // Under --strict the fallback is refused and nothing is left at the destination.
        let strict = CheckoutOptions {
            mode: CheckoutMode::Clone,
            strict: true,
            preserve: cowtree_store::Preserve::NONE,
        };
        let dst2 = root.join("wt-strict");
        let p = cowtree_fs::Progress::default();
        let err = cowtree_worktree::checkout::checkout(&store, &id, &dst2, strict, &|_| {}, &p)
            .unwrap_err();
        assert!(err.to_string().contains("--strict"), "{fsys:?}: {err}");
        assert!(fs::symlink_metadata(&dst2).is_err(), "{fsys:?}");
    }
}

#[test]
fn the_record_a_checkout_registers_is_the_worktree_record_and_is_not_written_again() {
    let Some(dir) = scratch(Fs::Xfs) else { return };
    let root = dir.path();
    let store = Store::open(&root.join("store")).unwrap();
    tree(&root.join("src"));
    let id = ingest::snapshot_dir(&store, &root.join("src"), None)
        .unwrap()
        .id;
    let opts = CheckoutOptions {
        mode: CheckoutMode::Auto,
        strict: false,
        preserve: cowtree_store::Preserve::NONE,
    };
    // The store's checkout with the hooks the worktree checkout gives it; then the
    // registration the worktree checkout makes next.
    let p = cowtree_fs::Progress::default();
    let hooks = cowtree_worktree::checkout::hooks();
    let (report, _) = cowtree_store::checkout::checkout_recording(
        &store,
        &id,
        &root.join("wt"),
        opts,
        &|_| {},
        &p,
        &hooks,
    )
    .unwrap();
    let rid = cowtree_store::worktree_records::worktree_id(&report.path);
    let rfile = store.root().join("worktrees").join(&rid);
    let rec: serde_json::Value = serde_json::from_slice(&fs::read(&rfile).unwrap()).unwrap();
    assert_eq!(rec["stat_cache"], format!("{rid}.stat"));
    assert_eq!(rec["snapshot"], id.to_hex());
    let ino = fs::metadata(&rfile).unwrap().ino();
    // Registering finds the record already written: only the stat cache is written (a
    // rewrite, as after a bare registration, would put a new inode at the record's name).
    let wt = registry::register(&store, &report.path, &id, &StatCache::default()).unwrap();
    assert_eq!(wt.id, rid);
    assert_eq!(fs::metadata(&rfile).unwrap().ino(), ino, "record rewritten");
    assert!(
        store
            .root()
            .join("worktrees")
            .join(format!("{rid}.stat"))
            .exists()
    );

    // The check above can fail: a bare registration (what the checkout would write without
    // the hooks) is rewritten by the same call.
    let bare = root.join("bare");
    fs::create_dir(&bare).unwrap();
    let abs = fs::canonicalize(&bare).unwrap();
    let st = fs::metadata(&abs).unwrap();
    let bid =
        cowtree_store::worktree_records::register_root(&store, &abs, &id, (st.dev(), st.ino()))
            .unwrap();
    let bfile = store.root().join("worktrees").join(&bid);
    let ino = fs::metadata(&bfile).unwrap().ino();
    registry::register(&store, &abs, &id, &StatCache::default()).unwrap();
    assert_ne!(fs::metadata(&bfile).unwrap().ino(), ino);
    let rec: serde_json::Value = serde_json::from_slice(&fs::read(&bfile).unwrap()).unwrap();
    assert_eq!(rec["stat_cache"], format!("{bid}.stat"));
}
