//! Cancelling a `Linker` from another thread, on real mounts: the call stops, and the
//! destination is as it was (a new one absent, a merged one restored). Run through
//! scripts/test.sh, which mounts them.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, mpsc};

use cowtree_link::{CancelHandle, LinkError, LinkOptions, Linker, OnExisting, Progress};
use cowtree_testutil::tree::{Kind, snapshot};
use cowtree_testutil::{Fs, pattern, scratch};

fn write(path: &Path, bytes: &[u8]) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, bytes).unwrap();
}

/// A tree of `dirs` directories of `files` small files each, and a file every source of a
/// merge test replaces.
fn big_tree(root: &Path, dirs: usize, files: usize) {
    for d in 0..dirs {
        for f in 0..files {
            write(
                &root.join(format!("d{d:03}/f{f:04}.py")),
                &pattern(64 + f, (d * files + f) as u64),
            );
        }
    }
    write(&root.join("lib/shared.txt"), b"new\n");
}

/// Kind, content, mode and inode of every entry (directories' times change with the temporary
/// names a rolled-back merge adds and removes, so they are left out).
fn listing(root: &Path) -> BTreeMap<PathBuf, (Kind, u32, u64)> {
    snapshot(root)
        .into_iter()
        .map(|(rel, e)| {
            let ino = fs::symlink_metadata(root.join(&rel)).unwrap().ino();
            (rel, (e.kind, e.mode, ino))
        })
        .collect()
}

/// Names a run of cowtree leaves behind when it does not clean up (staging, temporary
/// entries, journals) anywhere under `root`.
fn leftovers(root: &Path) -> Vec<PathBuf> {
    snapshot(root)
        .into_keys()
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.as_bytes().windows(8).any(|w| w == b"cowtree-"))
        })
        .collect()
}

/// Once `after` entries are done, the worker reporting them hands the cancel to another
/// thread and waits until that thread has cancelled: the call is then cancelled midway, from
/// another thread, whatever the speed of the machine.
struct CancelMidway {
    after: u64,
    done: AtomicU64,
    fired: AtomicBool,
    ask: Mutex<mpsc::Sender<()>>,
    acked: Mutex<mpsc::Receiver<()>>,
    total: AtomicU64,
}

impl Progress for CancelMidway {
    fn scanned(&self, totals: &cowtree_link::ScanTotals) {
        self.total.store(totals.entries(), Ordering::Relaxed);
    }

    fn advanced(&self, entries: u64, _bytes: u64) {
        let done = self.done.fetch_add(entries, Ordering::Relaxed) + entries;
        if done >= self.after && !self.fired.swap(true, Ordering::SeqCst) {
            self.ask.lock().unwrap().send(()).unwrap();
            self.acked.lock().unwrap().recv().unwrap();
        }
    }
}

/// Runs `link` with a linker whose progress cancels it (from a thread of its own) once
/// `after` entries are done. Returns the call's result and the entries it had done when it
/// returned, of how many.
fn cancelled_midway(
    after: u64,
    on_existing: OnExisting,
    link: impl FnOnce(&Linker) -> Result<cowtree_link::LinkReport, LinkError>,
) -> (Result<cowtree_link::LinkReport, LinkError>, u64, u64) {
    let (ask_tx, ask_rx) = mpsc::channel::<()>();
    let (ack_tx, ack_rx) = mpsc::channel::<()>();
    let progress = Arc::new(CancelMidway {
        after,
        done: AtomicU64::new(0),
        fired: AtomicBool::new(false),
        ask: Mutex::new(ask_tx),
        acked: Mutex::new(ack_rx),
        total: AtomicU64::new(0),
    });
    let linker = Linker::new(LinkOptions {
        on_existing,
        jobs: 2,
        progress: Some(progress.clone()),
        ..LinkOptions::default()
    });
    let handle: CancelHandle = linker.cancel_handle();
    let canceller = std::thread::spawn(move || {
        if ask_rx.recv().is_ok() {
            handle.cancel();
            let _ = ack_tx.send(());
        }
    });
    let result = link(&linker);
    drop(linker);
    canceller.join().unwrap();
    (
        result,
        progress.done.load(Ordering::Relaxed),
        progress.total.load(Ordering::Relaxed),
    )
}

#[test]
fn cancelling_a_link_into_a_new_destination_from_another_thread_leaves_nothing_there() {
    for fsys in [Fs::Xfs, Fs::Btrfs, Fs::Tmpfs] {
        let Some(dir) = scratch(fsys) else { continue };
        let src = dir.path().join("src");
        big_tree(&src, 40, 100);
        let dst = dir.path().join("dst");
        let (result, done, total) =
            cancelled_midway(600, OnExisting::Fail, |l| l.link_tree(&src, &dst));
        let err = result.expect_err("the link was cancelled midway");
        assert!(
            matches!(err, LinkError::Cancelled(ref p) if p == &dst),
            "{fsys:?}: {err}"
        );
        assert!(err.destination_unchanged());
        assert!(done < total, "{fsys:?}: cancelled after {done} of {total}");
        assert!(
            !dst.exists(),
            "{fsys:?}: a cancelled new destination appeared"
        );
        let parent: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(parent, vec![std::ffi::OsString::from("src")], "{fsys:?}");
    }
}

#[test]
fn cancelling_a_merge_from_another_thread_restores_the_destination() {
    for fsys in [Fs::Xfs, Fs::Btrfs, Fs::Tmpfs] {
        let Some(dir) = scratch(fsys) else { continue };
        let src = dir.path().join("src");
        big_tree(&src, 40, 100);
        let dst = dir.path().join("dst");
        // DST has entries the merge replaces, merges into, and leaves alone.
        write(&dst.join("lib/shared.txt"), b"old\n");
        write(&dst.join("d000/f0000.py"), b"old\n");
        write(&dst.join("d039/f0099.py"), b"old\n");
        write(&dst.join("mine/keep.txt"), b"keep\n");
        let before = listing(&dst);
        let (result, done, total) =
            cancelled_midway(600, OnExisting::Overwrite, |l| l.link_tree(&src, &dst));
        let err = result.expect_err("the merge was cancelled midway");
        assert!(
            matches!(err, LinkError::Cancelled(ref p) if p == &dst),
            "{fsys:?}: {err}"
        );
        assert!(err.destination_unchanged());
        assert!(done < total, "{fsys:?}: cancelled after {done} of {total}");
        assert_eq!(listing(&dst), before, "{fsys:?}: the merge was not undone");
        assert_eq!(leftovers(dir.path()), Vec::<PathBuf>::new(), "{fsys:?}");
    }
}

#[test]
fn a_cancelled_session_refuses_every_later_call_before_writing() {
    let Some(dir) = scratch(Fs::Xfs) else { return };
    let src = dir.path().join("src");
    big_tree(&src, 2, 3);
    let linker = Linker::new(LinkOptions::default());
    linker.cancel_handle().cancel();
    let dst = dir.path().join("dst");
    for result in [
        linker.link_tree(&src, &dst),
        linker.link_trees(&[&src], &dst),
        linker.link_tree(&src.join("lib/shared.txt"), &dst),
        linker.link_files(&[], &dst),
    ] {
        let err = result.expect_err("cancelled");
        assert!(matches!(err, LinkError::Cancelled(_)), "{err}");
    }
    assert!(!dst.exists());
    assert_eq!(leftovers(dir.path()), Vec::<PathBuf>::new());
}
