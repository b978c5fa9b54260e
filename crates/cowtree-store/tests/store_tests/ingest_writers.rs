//! Snapshot ingest against writers that do not stop, on real XFS and btrfs: every blob must
//! match its name, including when the source (not its clone) is hashed after the clone (see
//! the module doc of `cowtree_store::ingest`).
//!
//! The writers (`support/writers.rs`) run as threads of the test process here; in
//! `ingest_writer_processes.rs` they run as separate processes. Rounds:
//! `COWTREE_TEST_INGEST_ROUNDS` (default 150 per filesystem, 60 for the tests of files opened
//! ahead, in the full tier; 40 and 20 in the README's run; set it to thousands for a long run).
//!
//! The files are recorded one at a time ([`Putter::put`]: open, first `fstat`, clone at once),
//! and, in the tests named `..._opened_ahead_...`, the way a snapshot records a job
//! ([`Putter::put_files`]): each writer's file comes after two files nobody writes, so that it
//! is opened, its first `fstat` taken and its reads started two places before its turn, while
//! those two are recorded and its writer goes on writing.

#[path = "../support/writers.rs"]
mod writers;

use std::ffi::{OsStr, OsString};
use std::fs;
use std::ops::ControlFlow;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::Duration;

use cowtree_fs::dir::Dir;
use cowtree_store::ingest::Putter;
use cowtree_store::{Hash, Store};
use cowtree_testutil::{Fs, XorShift, pattern, scratch};
use writers::{Counts, KINDS, MARGIN_NS, check_blob};

/// How the rounds record the files: one at a time, or as a snapshot's job with files opened
/// ahead.
#[derive(Debug, Clone, Copy)]
enum Order {
    OneByOne,
    OpenedAhead,
}

/// Files nobody writes recorded before each writer's file in [`Order::OpenedAhead`]: as many as
/// ingest opens ahead, so that each writer's file is opened while they are recorded.
const IDLE_BEFORE: usize = 2;

/// The name and content of the `j`th idle file before the writer's file `kind`.
fn idle(kind: &str, j: usize) -> (String, Vec<u8>) {
    (
        format!("idle-{kind}-{j}"),
        pattern(
            256 << 10,
            kind.bytes().fold(j as u64, |h, b| h * 31 + u64::from(b)),
        ),
    )
}

/// Records `src` (made by [`writers::make_sources`] and [`idle`] files) `rounds` times through
/// [`Putter::put_files`]: each writer's file as the last of a job of three, after its idle
/// files, with a fresh [`Putter`] per job (so that the ctime margin counts from the job's
/// start, as a snapshot's from its own, and not from earlier jobs of the round). Every blob's
/// bytes are checked against its name, an idle file's against its content too. Returns the
/// counts per writer, in the order of [`KINDS`].
fn record_rounds_opened_ahead(store: &Store, src: &Path, rounds: u64) -> Vec<Counts> {
    let root = Dir::open(src).unwrap();
    let dev = root.stat_self().unwrap().st_dev;
    let mut counts: Vec<Counts> = KINDS.iter().map(|_| Counts::default()).collect();
    for round in 0..rounds {
        let staging = store.staging("writers-ahead").unwrap();
        for (i, k) in KINDS.iter().enumerate() {
            let job: Vec<OsString> = (0..IDLE_BEFORE)
                .map(|j| OsString::from(idle(k, j).0))
                .chain([OsString::from(k)])
                .collect();
            let putter = Putter::new(store, staging.dir()).with_ctime_margin(MARGIN_NS);
            let mut seen = 0;
            // The putter's counts after the idle files.
            let (mut h0, mut c0) = (0, 0);
            putter.put_files(&root, dev, &job, |name, put| {
                assert_eq!(name, job[seen].as_os_str(), "round {round}: files in turn");
                seen += 1;
                let what = format!("round {round}, {}", name.display());
                let put = put
                    .unwrap_or_else(|e| panic!("{what}: {e}"))
                    .unwrap_or_else(|| panic!("{what}: vanished"));
                check_blob(store, &put.hash, put.size, &what);
                if seen <= IDLE_BEFORE {
                    // An idle file: its content, every round.
                    assert_eq!(put.hash, Hash::of(&idle(k, seen - 1).1), "{what}");
                    (h0, c0) = (putter.source_hashed(), putter.source_changed());
                    return ControlFlow::Continue(());
                }
                let c = &mut counts[i];
                c.puts += 1;
                c.source_hashed += putter.source_hashed() - h0;
                c.source_changed += putter.source_changed() - c0;
                // Removed, as in `writers::record_rounds`, so that many rounds fit on the
                // mounts.
                match fs::remove_file(store.blob_path(&put.hash)) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => panic!("remove blob {}: {e}", put.hash),
                }
                ControlFlow::Continue(())
            });
            assert_eq!(seen, job.len(), "round {round}: every file of {k}'s job");
        }
        drop(staging);
        // Longer than the margin: a file its writer left alone is eligible next round.
        thread::sleep(Duration::from_millis(25));
    }
    counts
}

fn run(fs_kind: Fs, order: Order) {
    let Some(dir) = scratch(fs_kind) else { return };
    let store = Store::open(&dir.path().join("store")).unwrap();
    let src = dir.path().join("src");
    writers::make_sources(&src);
    if let Order::OpenedAhead = order {
        for k in KINDS {
            for j in 0..IDLE_BEFORE {
                let (name, data) = idle(k, j);
                fs::write(src.join(name), data).unwrap();
            }
        }
    }
    let stop = Arc::new(AtomicBool::new(false));
    let seed = XorShift::from_clock("ingest writers").next_u64();
    let threads: Vec<_> = KINDS
        .iter()
        .enumerate()
        .map(|(i, k)| {
            let (p, stop, seed) = (src.join(k), Arc::clone(&stop), seed + i as u64);
            let w = writers::writer(k).expect("every kind has a writer");
            thread::spawn(move || w(&p, &stop, seed))
        })
        .collect();
    let rounds = match order {
        Order::OneByOne => writers::rounds(150, 40),
        // Each round records three times as many files.
        Order::OpenedAhead => writers::rounds(60, 20),
    };
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| match order {
        Order::OneByOne => writers::record_rounds(&store, &src, rounds),
        Order::OpenedAhead => record_rounds_opened_ahead(&store, &src, rounds),
    }));
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        t.join().unwrap();
    }
    let counts = result.unwrap_or_else(|p| std::panic::resume_unwind(p));
    writers::report_and_check(
        &format!("{fs_kind:?}, writer threads, {order:?}"),
        seed,
        rounds,
        &counts,
    );
}

#[test]
fn blobs_match_their_names_while_writers_append_truncate_map_and_rename_on_xfs() {
    run(Fs::Xfs, Order::OneByOne);
}

#[test]
fn blobs_match_their_names_while_writers_append_truncate_map_and_rename_on_btrfs() {
    run(Fs::Btrfs, Order::OneByOne);
}

#[test]
fn blobs_match_their_names_while_writers_change_files_opened_ahead_on_xfs() {
    run(Fs::Xfs, Order::OpenedAhead);
}

#[test]
fn blobs_match_their_names_while_writers_change_files_opened_ahead_on_btrfs() {
    run(Fs::Btrfs, Order::OpenedAhead);
}

/// A file nobody writes is recorded from its own pages, and the blob is its content.
#[test]
fn an_untouched_old_source_is_hashed_itself_after_its_clone() {
    for fs_kind in Fs::COW {
        let Some(dir) = scratch(fs_kind) else {
            continue;
        };
        let store = Store::open(&dir.path().join("store")).unwrap();
        let src = dir.path().join("src");
        fs::create_dir(&src).unwrap();
        let data = pattern(300 << 10, 9);
        fs::write(src.join("f"), &data).unwrap();
        thread::sleep(Duration::from_millis(30));
        let root = Dir::open(&src).unwrap();
        let dev = root.stat_self().unwrap().st_dev;
        let staging = store.staging("old").unwrap();
        let putter = Putter::new(&store, staging.dir()).with_ctime_margin(MARGIN_NS);
        let put = putter.put(&root, dev, OsStr::new("f")).unwrap().unwrap();
        assert_eq!(put.hash, Hash::of(&data));
        assert_eq!((putter.source_hashed(), putter.source_changed()), (1, 0));
        check_blob(&store, &put.hash, put.size, "old source");
        // A source changed within the margin: its clone is hashed. Written after the putter
        // took its start (not before the staging directory is made, which on a loaded machine
        // took more than the 20 ms margin: the source was then old, and this check failed).
        let staging = store.staging("fresh").unwrap();
        let putter = Putter::new(&store, staging.dir()).with_ctime_margin(MARGIN_NS);
        fs::write(src.join("g"), pattern(1000, 3)).unwrap();
        let put = putter.put(&root, dev, OsStr::new("g")).unwrap().unwrap();
        assert_eq!(put.hash, Hash::of(&pattern(1000, 3)));
        assert_eq!((putter.source_hashed(), putter.source_changed()), (0, 0));
    }
}

/// A snapshot of a btrfs subvolume while the writers run: it is read from a read-only
/// snapshot taken first, so the manifest is that snapshot's content exactly, kept as the
/// store's tree of the snapshot; `verify` (which hashes every blob and checks every tree
/// against its manifest, file by file) finds nothing wrong, round after round.
/// `COWTREE_TEST_INGEST_ROUNDS` / 10 rounds (15 by default).
#[test]
fn a_snapshot_of_a_subvolume_under_writers_is_its_read_only_snapshot_exactly() {
    use cowtree_fs::subvolume::{At, create};
    let Some(dir) = scratch(Fs::Btrfs) else {
        return;
    };
    let store = Store::open(&dir.path().join("store")).unwrap();
    let parent = Dir::open(dir.path()).unwrap();
    create(At::new(&parent, dir.path()), OsStr::new("src")).unwrap();
    let src = dir.path().join("src");
    for k in KINDS {
        fs::write(src.join(k), pattern(64 << 10, 1)).unwrap();
    }
    let stop = Arc::new(AtomicBool::new(false));
    let seed = XorShift::from_clock("subvolume writers").next_u64();
    let threads: Vec<_> = KINDS
        .iter()
        .enumerate()
        .map(|(i, k)| {
            let (p, stop, seed) = (src.join(k), Arc::clone(&stop), seed + i as u64);
            let w = writers::writer(k).expect("every kind has a writer");
            thread::spawn(move || w(&p, &stop, seed))
        })
        .collect();
    let rounds = (writers::rounds(150, 150) / 10).max(1);
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let mut seen = std::collections::HashSet::new();
        for round in 0..rounds {
            let r = cowtree_store::ingest::snapshot_dir(&store, &src, None).unwrap();
            assert!(r.frozen, "round {round}: read from a read-only snapshot");
            assert_eq!(r.reason, None);
            let tree = cowtree_store::trees::open(&store, &r.id)
                .unwrap()
                .unwrap_or_else(|| panic!("round {round}: the tree is kept"));
            assert!(cowtree_fs::subvolume::read_only(tree.at()).unwrap());
            let v = cowtree_store::verify::verify(&store).unwrap();
            assert!(v.problems.is_empty(), "round {round}: {:?}", v.problems);
            assert!(v.trees_checked >= 1);
            seen.insert(r.id);
            thread::sleep(Duration::from_millis(25));
        }
        seen.len()
    }));
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        t.join().unwrap();
    }
    let distinct = result.unwrap_or_else(|p| std::panic::resume_unwind(p));
    eprintln!("seed {seed}: {rounds} rounds, {distinct} distinct trees");
    assert!(distinct > 1, "the writers changed the tree between rounds");
}
