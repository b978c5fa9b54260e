//! Checkout from a store whose blobs were tampered with (run through scripts/test.sh, which
//! mounts the filesystems): a blob that is not a regular file is an error naming the path,
//! never a fallback to copy and never a hang, and the destination is left absent.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use cowtree_store::checkout::{CheckoutMode, CheckoutOptions, Hooks, checkout, checkout_recording};
use cowtree_store::ingest::snapshot_dir;
use cowtree_store::manifest::{Data, Kind};
use cowtree_store::{Hash, Store};
use cowtree_testutil::{Fs, pattern, scratch};

fn setup(root: &Path) -> (Store, Hash, Hash) {
    let src = root.join("src");
    fs::create_dir_all(src.join("a")).unwrap();
    fs::write(src.join("a/one"), pattern(5000, 1)).unwrap();
    fs::write(src.join("a/victim"), b"the blob that goes wrong").unwrap();
    fs::write(src.join("two"), pattern(9000, 2)).unwrap();
    let store = Store::open(&root.join("store")).unwrap();
    let id = snapshot_dir(&store, &src, None).unwrap().id;
    let victim = Hash::of(b"the blob that goes wrong");
    (store, id, victim)
}

/// Puts something other than a regular file at a path.
type Make = fn(&Path);

/// Replaces the blob `hash` by what `make` puts at its path.
fn replace_blob(store: &Store, hash: &Hash, make: impl FnOnce(&Path)) {
    let path = store.blob_path(hash);
    let fanout = path.parent().unwrap();
    fs::set_permissions(fanout, fs::Permissions::from_mode(0o755)).unwrap();
    fs::remove_file(&path).unwrap();
    make(&path);
}

#[test]
fn a_blob_that_is_not_a_regular_file_fails_the_checkout_and_leaves_nothing() {
    let kinds: [(&str, Make); 2] = [
        ("fifo", |p| {
            rustix::fs::mknodat(
                rustix::fs::CWD,
                p,
                rustix::fs::FileType::Fifo,
                rustix::fs::Mode::from_raw_mode(0o444),
                0,
            )
            .unwrap()
        }),
        ("directory", |p| fs::create_dir(p).unwrap()),
    ];
    for fsys in [Fs::Xfs, Fs::Btrfs, Fs::NoCow] {
        for (what, make) in kinds {
            // Clone under --strict: a source taken for "cannot clone" would fail as a refused
            // fallback, not as the wrong kind of file.
            for (mode, strict) in [
                (CheckoutMode::Auto, false),
                (CheckoutMode::Copy, false),
                (CheckoutMode::Clone, true),
            ] {
                if strict && fsys == Fs::NoCow {
                    // No clone works there: every file is a refused fallback.
                    continue;
                }
                let Some(dir) = scratch(fsys) else { continue };
                let (store, id, victim) = setup(dir.path());
                replace_blob(&store, &victim, make);
                let dst = dir.path().join("wt");
                let opts = CheckoutOptions {
                    mode,
                    strict,
                    preserve: cowtree_store::Preserve::NONE,
                };
                let err = checkout(&store, &id, &dst, opts, &|_| {}).unwrap_err();
                let msg = err.to_string();
                assert!(msg.contains("a/victim"), "{fsys:?} {what} {mode:?}: {msg}");
                // Refused for what it is: a FIFO whose clone is refused is never taken for a
                // filesystem that cannot clone (which would copy, or hang reading it).
                if what == "fifo" {
                    assert!(
                        msg.contains("not a regular file"),
                        "{fsys:?} {what} {mode:?}: {msg}"
                    );
                }
                assert!(
                    fs::symlink_metadata(&dst).is_err(),
                    "{fsys:?} {what} {mode:?}: destination left"
                );
            }
        }
    }
}

/// Nanoseconds since the epoch of a time in seconds and nanoseconds.
fn ns(secs: i64, nsecs: i64) -> i64 {
    secs * 1_000_000_000 + nsecs
}

#[test]
fn checkout_recording_returns_the_stat_of_every_entry_as_it_is_on_disk() {
    for fsys in [Fs::Xfs, Fs::NoCow] {
        let Some(dir) = scratch(fsys) else { continue };
        let (store, id, _) = setup(dir.path());
        let dst = dir.path().join("wt");
        let opts = CheckoutOptions {
            mode: CheckoutMode::Auto,
            strict: false,
            preserve: cowtree_store::Preserve::NONE,
        };
        let (report, written) = checkout_recording(
            &store,
            &id,
            &dst,
            opts,
            &|_| {},
            &Default::default(),
            &Hooks {
                before_placing: &|w| {
                    // Complete, with the manifest the stats are of, and not yet in place.
                    assert_eq!(w.stats.iter().flatten().count(), 3, "{fsys:?}");
                    assert_eq!(w.manifest.len(), w.stats.len(), "{fsys:?}");
                    assert!(!w.stats.is_empty(), "{fsys:?}");
                    assert!(fs::symlink_metadata(&dst).is_err(), "{fsys:?}");
                },
                record: &|reg| {
                    let mut v = serde_json::to_value(reg).unwrap();
                    v["caller_field"] = "kept".into();
                    serde_json::to_vec(&v).unwrap()
                },
            },
        )
        .unwrap();
        assert_eq!(report.files, 3, "{fsys:?}");
        // The record registered is the one the caller made of the registration.
        let rec: serde_json::Value = serde_json::from_slice(
            &fs::read(store.root().join("worktrees").join(&report.worktree_id)).unwrap(),
        )
        .unwrap();
        assert_eq!(rec["caller_field"], "kept", "{fsys:?}");
        assert_eq!(rec["snapshot"], id.to_hex(), "{fsys:?}");
        let manifest = written.manifest.to_manifest();
        assert_eq!(manifest, store.load(&id).unwrap(), "{fsys:?}");
        let entries = manifest.entries();
        assert_eq!(entries.len(), written.stats.len(), "{fsys:?}");
        for (e, st) in entries.iter().zip(&written.stats) {
            let path = dst.join(std::str::from_utf8(&e.path).unwrap());
            let m = fs::symlink_metadata(&path).unwrap();
            use std::os::unix::fs::MetadataExt;
            match (e.kind, st) {
                (Kind::Dir, None) => {}
                (Kind::File | Kind::Executable | Kind::Symlink, Some(st)) => {
                    assert_eq!(
                        (st.ino, st.mode, st.size),
                        (m.ino(), m.mode(), m.len()),
                        "{fsys:?} {path:?}"
                    );
                    assert_eq!(
                        (st.mtime_ns, st.ctime_ns),
                        (ns(m.mtime(), m.mtime_nsec()), ns(m.ctime(), m.ctime_nsec())),
                        "{fsys:?} {path:?}"
                    );
                    if let Data::Blob { size, .. } = e.data {
                        assert_eq!(st.size, size, "{fsys:?} {path:?}");
                    }
                }
                other => panic!("{fsys:?} {path:?}: {other:?}"),
            }
        }
        // Every directory but the root, with its final stat.
        let dirs: Vec<&[u8]> = written.dirs.iter().map(|(p, _)| &p[..]).collect();
        assert_eq!(dirs, vec![&b"a"[..]], "{fsys:?}");
        let m = fs::symlink_metadata(dst.join("a")).unwrap();
        use std::os::unix::fs::MetadataExt;
        let st = &written.dirs[0].1;
        assert_eq!(
            (st.ino, st.mtime_ns, st.ctime_ns),
            (
                m.ino(),
                ns(m.mtime(), m.mtime_nsec()),
                ns(m.ctime(), m.ctime_nsec())
            ),
            "{fsys:?}"
        );
        // The root's identity, as registered and as it is in place.
        let m = fs::symlink_metadata(&dst).unwrap();
        assert_eq!(written.root, (m.dev(), m.ino()), "{fsys:?}");
    }
}
