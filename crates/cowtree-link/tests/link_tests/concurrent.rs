//! Several merges into one destination at once, on real mounts: they take turns on the
//! destination's lock, each one publishes everything it was asked to (none fails because of
//! another), and one told not to wait fails at once, changing nothing. Run through
//! scripts/test.sh, which mounts them.

use std::fs;
use std::os::fd::AsFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use cowtree_link::{LinkError, LinkOptions, Linker, OnExisting, Progress};
use cowtree_testutil::tree::{Kind, snapshot};
use cowtree_testutil::{Fs, pattern, scratch};

fn write(path: &Path, bytes: &[u8]) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, bytes).unwrap();
}

/// Package `n`: files of its own, files every package has (each with its own bytes), and a
/// directory every package adds to.
fn package(root: &Path, n: usize) -> PathBuf {
    let p = root.join(format!("pkg{n}"));
    for i in 0..150 {
        write(
            &p.join(format!("lib/pkg{n}/m{i}.py")),
            &pattern(200 + i, (n * 1000 + i) as u64),
        );
        write(
            &p.join(format!("bin/shared{i}")),
            format!("pkg{n}\n").as_bytes(),
        );
    }
    p
}

fn leftovers(root: &Path) -> Vec<PathBuf> {
    snapshot(root)
        .into_keys()
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.as_bytes().windows(8).any(|w| w == b"cowtree-"))
        })
        .collect()
}

/// Four overwrite merges of four packages into one destination, at once: every one succeeds,
/// every package's own files are there, and each shared file is one package's whole file.
fn four_at_once(dir: &Path, round: usize, dst_exists: bool) {
    let pkgs: Vec<PathBuf> = (0..4).map(|n| package(dir, n)).collect();
    let dst = dir.join(format!("env{round}"));
    if dst_exists {
        write(&dst.join("keep.txt"), b"keep\n");
    }
    let start = Arc::new(Barrier::new(4));
    let results: Vec<Result<cowtree_link::LinkReport, LinkError>> = std::thread::scope(|s| {
        let handles: Vec<_> = pkgs
            .iter()
            .map(|p| {
                let start = start.clone();
                let dst = &dst;
                s.spawn(move || {
                    let linker = Linker::new(LinkOptions {
                        on_existing: OnExisting::Overwrite,
                        jobs: 2,
                        ..LinkOptions::default()
                    });
                    start.wait();
                    linker.link_tree(p, dst)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for (n, r) in results.iter().enumerate() {
        if let Err(e) = r {
            panic!("round {round}: merge of pkg{n} failed: {e}");
        }
    }
    let tree = snapshot(&dst);
    for n in 0..4 {
        for i in 0..150 {
            let rel = PathBuf::from(format!("lib/pkg{n}/m{i}.py"));
            assert_eq!(
                tree[&rel].kind,
                Kind::File(pattern(200 + i, (n * 1000 + i) as u64)),
                "{}",
                rel.display()
            );
        }
    }
    for i in 0..150 {
        let Kind::File(bytes) = &tree[&PathBuf::from(format!("bin/shared{i}"))].kind else {
            panic!("bin/shared{i} is not a file");
        };
        assert!(
            (0..4).any(|n| bytes == format!("pkg{n}\n").as_bytes()),
            "bin/shared{i}: {bytes:?}"
        );
    }
    if dst_exists {
        assert_eq!(
            tree[Path::new("keep.txt")].kind,
            Kind::File(b"keep\n".to_vec())
        );
    }
    assert_eq!(leftovers(dir), Vec::<PathBuf>::new());
}

#[test]
fn four_concurrent_overwrite_merges_into_one_destination_all_succeed() {
    for fsys in [Fs::Xfs, Fs::Btrfs] {
        let Some(dir) = scratch(fsys) else { continue };
        for round in 0..3 {
            four_at_once(dir.path(), round, true);
        }
    }
}

#[test]
fn four_concurrent_overwrite_links_into_one_new_destination_all_succeed() {
    // The first to finish creates the destination; the others find it there when they put
    // theirs in place, and merge.
    let Some(dir) = scratch(Fs::Xfs) else { return };
    for round in 0..3 {
        four_at_once(dir.path(), round, false);
    }
}

/// Holds the destination's lock, as a merge in another process would.
fn hold_lock(dst: &Path) -> fs::File {
    let f = fs::File::open(dst).unwrap();
    rustix::fs::flock(f.as_fd(), rustix::fs::FlockOperation::LockExclusive).unwrap();
    f
}

#[test]
fn a_merge_told_not_to_wait_fails_at_once_on_a_locked_destination_changing_nothing() {
    let Some(dir) = scratch(Fs::Xfs) else { return };
    let src = package(dir.path(), 0);
    let dst = dir.path().join("env");
    write(&dst.join("keep.txt"), b"keep\n");
    let before = snapshot(&dst);
    let lock = hold_lock(&dst);
    let err = Linker::new(LinkOptions {
        on_existing: OnExisting::Overwrite,
        wait: false,
        ..LinkOptions::default()
    })
    .link_tree(&src, &dst)
    .unwrap_err();
    assert!(
        matches!(err, LinkError::DestinationBusy(ref p) if p == &dst),
        "{err}"
    );
    assert!(
        err.to_string()
            .contains("another cowtree run is merging into"),
        "{err}"
    );
    assert_eq!(snapshot(&dst), before);
    drop(lock);
}

#[derive(Default)]
struct Waiting(AtomicBool);

impl Progress for Waiting {
    fn waiting(&self, _dst: &Path) {
        self.0.store(true, Ordering::SeqCst);
    }
}

#[test]
fn a_merge_waits_for_the_lock_says_so_and_then_merges() {
    let Some(dir) = scratch(Fs::Xfs) else { return };
    let src = package(dir.path(), 0);
    let dst = dir.path().join("env");
    write(&dst.join("keep.txt"), b"keep\n");
    let lock = hold_lock(&dst);
    let told = Arc::new(Waiting::default());
    let linker = Linker::new(LinkOptions {
        on_existing: OnExisting::Overwrite,
        progress: Some(told.clone()),
        ..LinkOptions::default()
    });
    std::thread::scope(|s| {
        let run = s.spawn(|| linker.link_tree(&src, &dst));
        let t = Instant::now();
        while !told.0.load(Ordering::SeqCst) {
            assert!(t.elapsed() < Duration::from_secs(20), "never told it waits");
            std::thread::sleep(Duration::from_millis(5));
        }
        // Still waiting: nothing of the package is there yet.
        std::thread::sleep(Duration::from_millis(200));
        assert!(!run.is_finished());
        assert!(!dst.join("lib").exists());
        drop(lock);
        let report = run
            .join()
            .unwrap()
            .expect("the merge runs once the lock is free");
        assert_eq!(report.files, 300);
    });
    assert!(dst.join("lib/pkg0/m0.py").is_file());
    assert!(dst.join("keep.txt").is_file());
}

#[test]
fn a_cancel_ends_the_wait_for_the_lock() {
    let Some(dir) = scratch(Fs::Xfs) else { return };
    let src = package(dir.path(), 0);
    let dst = dir.path().join("env");
    write(&dst.join("keep.txt"), b"keep\n");
    let before = snapshot(&dst);
    let _lock = hold_lock(&dst);
    let told = Arc::new(Waiting::default());
    let linker = Linker::new(LinkOptions {
        on_existing: OnExisting::Overwrite,
        progress: Some(told.clone()),
        ..LinkOptions::default()
    });
    let handle = linker.cancel_handle();
    std::thread::scope(|s| {
        let run = s.spawn(|| linker.link_tree(&src, &dst));
        while !told.0.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(5));
        }
        handle.cancel();
        let err = run.join().unwrap().unwrap_err();
        assert!(matches!(err, LinkError::Cancelled(_)), "{err}");
    });
    assert_eq!(snapshot(&dst), before);
}
