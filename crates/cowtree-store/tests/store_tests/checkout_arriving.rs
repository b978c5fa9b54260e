//! A checkout of a snapshot still arriving ([`checkout_arriving`]), on each mounted
//! filesystem: every file whose blob is there is written at once, whatever comes before it,
//! each other one as its blob is handed out, the tree is placed only once the snapshot is
//! said to be recorded, and when a blob or the record never comes the destination is left
//! absent with nothing beside it.

use std::fs;
use std::path::Path;
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

use cowtree_fs::Progress;
use cowtree_store::checkout::{
    Arriving, CheckoutMode, CheckoutOptions, EntryStat, Hooks, NextArrived, StillComing, Written,
    checkout_arriving,
};
use cowtree_store::ingest::snapshot_dir;
use cowtree_store::{Error, Hash, Store};
use cowtree_testutil::tree::files_under;
use cowtree_testutil::{Fs, assert_diff_clean, pattern, scratch};

/// The checkout's staging directory beside `dst`, once there.
fn staging_of(dst: &Path) -> Option<std::path::PathBuf> {
    cowtree_testutil::tree::checkout_staging(dst)
        .into_iter()
        .next()
}

const OPTS: CheckoutOptions = CheckoutOptions {
    mode: CheckoutMode::Auto,
    strict: false,
    preserve: cowtree_store::Preserve::NONE,
};

/// Files in the tree [`setup`] makes.
const FILES: usize = 41;

/// A tree of [`FILES`] files and a symlink, snapshotted; the snapshot's id and the blob of
/// `a/f00`, the first file in name order, before its 19 siblings in the same directory.
fn setup(root: &Path) -> (Store, Hash, Hash) {
    let src = root.join("src");
    fs::create_dir_all(src.join("a/deep")).unwrap();
    fs::create_dir_all(src.join("zz")).unwrap();
    for i in 0..20u64 {
        fs::write(
            src.join(format!("a/f{i:02}")),
            pattern(3000 + i as usize, i),
        )
        .unwrap();
        fs::write(
            src.join(format!("a/deep/g{i:02}")),
            pattern(70_000, 100 + i),
        )
        .unwrap();
    }
    fs::write(src.join("zz/last"), pattern(12_345, 999)).unwrap();
    std::os::unix::fs::symlink("../a/f01", src.join("zz/link")).unwrap();
    let store = Store::open(&root.join("store")).unwrap();
    let id = snapshot_dir(&store, &src, None).unwrap().id;
    let held = fs::read(src.join("a/f00")).unwrap();
    (store, id, Hash::of(&held))
}

/// The names in `dir`, sorted.
fn names(dir: &Path) -> Vec<String> {
    let mut n: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    n.sort();
    n
}

/// Polls `what` for up to 60 s.
fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(start.elapsed() < Duration::from_secs(60), "never: {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// A gate the test opens.
#[derive(Default)]
struct Gate {
    open: Mutex<bool>,
    changed: Condvar,
}

impl Gate {
    fn wait(&self) {
        let mut open = self.open.lock().unwrap();
        while !*open {
            open = self.changed.wait(open).unwrap();
        }
    }

    fn open(&self) {
        *self.open.lock().unwrap_or_else(|p| p.into_inner()) = true;
        self.changed.notify_all();
    }
}

/// Opens its gates when dropped: a failed assertion lets the checkout it holds end, so the
/// test fails instead of waiting forever.
struct OpenOnDrop<'a>(&'a Gate, &'a Gate);

impl Drop for OpenOnDrop<'_> {
    fn drop(&mut self) {
        self.0.open();
        self.1.open();
    }
}

#[test]
fn files_are_written_as_their_blobs_arrive_and_the_tree_is_placed_once_recorded() {
    for fsys in [Fs::Xfs, Fs::Btrfs, Fs::NoCow] {
        let Some(root) = scratch(fsys) else { continue };
        let (store, id, held) = setup(root.path());
        let manifest = store.read_snapshot(&id).unwrap();
        let dst = root.path().join("wt");
        let (blob_gate, record_gate) = (Gate::default(), Gate::default());
        let asked = Mutex::new(Vec::new());
        let coming = |hs: &[Hash]| {
            asked.lock().unwrap().extend_from_slice(hs);
            hs.iter().map(|h| *h == held).collect()
        };
        // Every worker of the checkout waits here; once the gate opens, one gets the blob.
        let handed = Mutex::new(false);
        let next = |out: &mut Vec<Hash>| {
            blob_gate.wait();
            let mut handed = handed.lock().unwrap();
            if *handed {
                return Ok(false);
            }
            *handed = true;
            out.push(held);
            Ok(true)
        };
        let recorded = || {
            record_gate.wait();
            Ok(())
        };
        let arriving = Arriving {
            manifest: &manifest,
            coming: &coming,
            next: &next,
            recorded: &recorded,
        };
        let progress = Progress::default();
        let written = std::thread::scope(|s| {
            let co = s.spawn(|| {
                // Hooks make the checkout record the stat of everything it writes (a
                // worktree's stat cache is built from it): of the files written as their blobs
                // arrive too.
                let hooks = Hooks {
                    before_placing: &|_| {},
                    record: &|_| Vec::new(),
                };
                checkout_arriving(
                    &store,
                    &id,
                    &dst,
                    OPTS,
                    &|_| {},
                    &progress,
                    Some(&hooks),
                    &arriving,
                )
            });
            let _open = OpenOnDrop(&blob_gate, &record_gate);
            // Every file but the held one is written while its blob has not arrived, its 19
            // siblings after it in its directory among them.
            eventually("every other file written", || {
                staging_of(&dst).is_some_and(|st| files_under(&st) == FILES - 1)
            });
            std::thread::sleep(Duration::from_millis(100));
            let st = staging_of(&dst).unwrap();
            assert_eq!(
                files_under(&st),
                FILES - 1,
                "{fsys:?}: the held file waited"
            );
            assert!(!dst.exists(), "{fsys:?}: placed before the blob arrived");
            blob_gate.open();
            // Whole, and still not placed until the snapshot is recorded.
            eventually("the held file written", || files_under(&st) == FILES);
            std::thread::sleep(Duration::from_millis(100));
            assert!(
                !dst.exists(),
                "{fsys:?}: placed before the snapshot was recorded"
            );
            assert!(
                !co.is_finished(),
                "{fsys:?}: returned before it was recorded"
            );
            record_gate.open();
            let (report, written) = co.join().unwrap().unwrap();
            assert_eq!(report.files, FILES as u64, "{fsys:?}");
            assert_eq!(report.symlinks, 1, "{fsys:?}");
            written
        });
        assert_diff_clean(&root.path().join("src"), &dst);
        assert_stats_are_the_trees(&written, &dst, &format!("{fsys:?}"));
        // Asked once about every file's blob, the held one among them.
        let asked = asked.into_inner().unwrap();
        assert_eq!(asked.len(), FILES, "{fsys:?}");
        assert!(asked.contains(&held), "{fsys:?}");
        assert_eq!(names(root.path()), ["src", "store", "wt"], "{fsys:?}");
    }
}

/// The stats a recording checkout returned are those of the tree at `dst`: one for every file
/// and symlink (`a/f00`, written last, among them), and every directory's.
fn assert_stats_are_the_trees(written: &Written, dst: &Path, what: &str) {
    let on_disk = |rel: &[u8]| {
        let path = dst.join(std::str::from_utf8(rel).unwrap());
        EntryStat::of(&rustix::fs::lstat(&path).unwrap())
    };
    let mut recorded = 0;
    for (e, st) in written.manifest.iter().zip(&written.stats) {
        let mut rel = written.manifest.dir_path(e.dir).to_vec();
        if !rel.is_empty() {
            rel.push(b'/');
        }
        rel.extend_from_slice(e.name);
        let Some(st) = st else { continue };
        assert_eq!(
            *st,
            on_disk(&rel),
            "{what}: the stat of {}",
            String::from_utf8_lossy(&rel)
        );
        recorded += 1;
    }
    assert_eq!(recorded, FILES + 1, "{what}: every file and the symlink");
    let dirs: Vec<&[u8]> = written.dirs.iter().map(|(p, _)| p.as_slice()).collect();
    assert_eq!(dirs, [&b"a"[..], b"a/deep", b"zz"], "{what}");
    for (rel, st) in &written.dirs {
        assert_eq!(
            *st,
            on_disk(rel),
            "{what}: the stat of {}",
            String::from_utf8_lossy(rel)
        );
    }
}

/// The error of a checkout of `id` into `dst` as it arrives (it must fail).
fn refused(store: &Store, id: &Hash, dst: &Path, arriving: &Arriving<'_>) -> Error {
    let progress = Progress::default();
    checkout_arriving(store, id, dst, OPTS, &|_| {}, &progress, None, arriving)
        .expect_err("the checkout failed")
}

#[test]
fn a_blob_or_a_record_that_never_comes_leaves_nothing_and_the_next_checkout_works() {
    for fsys in [Fs::Xfs, Fs::Btrfs, Fs::NoCow] {
        let Some(root) = scratch(fsys) else { continue };
        let (store, id, held) = setup(root.path());
        let manifest = store.read_snapshot(&id).unwrap();
        let dst = root.path().join("wt");
        let never = || Error::SnapshotArriving {
            id,
            why: "the pull failed: test".into(),
        };
        let ok = || Ok(());
        let held_coming = |hs: &[Hash]| hs.iter().map(|h| *h == held).collect();
        let none_coming = |hs: &[Hash]| vec![false; hs.len()];
        let next_fails = |_: &mut Vec<Hash>| Err(never());
        let none_next = |_: &mut Vec<Hash>| Ok(false);
        let record_fails = || Err(never());
        type Recorded<'a> = dyn Fn() -> cowtree_store::Result<()> + Sync + 'a;
        type Case<'a> = (
            &'a str,
            &'a StillComing<'a>,
            &'a NextArrived<'a>,
            &'a Recorded<'a>,
        );
        let cases: [Case<'_>; 2] = [
            ("a blob never arrives", &held_coming, &next_fails, &ok),
            (
                "the snapshot is never recorded",
                &none_coming,
                &none_next,
                &record_fails,
            ),
        ];
        for (what, coming, next, recorded) in cases {
            let arriving = Arriving {
                manifest: &manifest,
                coming,
                next,
                recorded,
            };
            let err = refused(&store, &id, &dst, &arriving);
            assert!(
                matches!(err.cause(), Error::SnapshotArriving { .. }),
                "{fsys:?} {what}: {err}"
            );
            assert_eq!(names(root.path()), ["src", "store"], "{fsys:?} {what}");
        }
        // Its manifest must be the snapshot's: another snapshot's bytes are refused.
        fs::write(root.path().join("src/extra"), b"x").unwrap();
        let other = snapshot_dir(&store, &root.path().join("src"), None)
            .unwrap()
            .id;
        let wrong = store.read_snapshot(&other).unwrap();
        let arriving = Arriving {
            manifest: &wrong,
            coming: &none_coming,
            next: &none_next,
            recorded: &ok,
        };
        let err = refused(&store, &id, &dst, &arriving);
        assert!(
            err.to_string()
                .contains(&format!("the manifest handed over is {other}")),
            "{fsys:?}: {err}"
        );
        assert_eq!(names(root.path()), ["src", "store"], "{fsys:?}");
        // Nothing registered is left in the way: the next checkout to DST works.
        cowtree_store::checkout::checkout(&store, &id, &dst, OPTS, &|_| {}).unwrap();
        fs::remove_file(root.path().join("src/extra")).unwrap();
        assert_diff_clean(&root.path().join("src"), &dst);
    }
}
