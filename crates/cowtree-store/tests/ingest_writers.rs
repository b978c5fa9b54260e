//! Snapshot ingest against writers that do not stop, on real XFS and btrfs: every blob must
//! match its name, including when the source (not its clone) is hashed after the clone (see
//! the module doc of `cowtree_store::ingest`).
//!
//! The writers (`support/writers.rs`) run as threads of the test process here; in
//! `ingest_writer_processes.rs` they run as separate processes. Rounds:
//! `COWTREE_TEST_INGEST_ROUNDS` (default 150 per filesystem; set it to thousands for a long
//! run).

#[path = "support/writers.rs"]
mod writers;

use std::ffi::OsStr;
use std::fs;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::Duration;

use cowtree_fs::dir::Dir;
use cowtree_store::ingest::Putter;
use cowtree_store::{Hash, Store};
use cowtree_testutil::{Fs, XorShift, pattern, scratch};
use writers::{KINDS, MARGIN_NS, check_blob};

fn run(fs_kind: Fs) {
    let Some(dir) = scratch(fs_kind) else { return };
    let store = Store::open(&dir.path().join("store")).unwrap();
    let src = dir.path().join("src");
    writers::make_sources(&src);
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
    let rounds = writers::rounds(150);
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        writers::record_rounds(&store, &src, rounds)
    }));
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        t.join().unwrap();
    }
    let counts = result.unwrap_or_else(|p| std::panic::resume_unwind(p));
    writers::report_and_check(
        &format!("{fs_kind:?}, writer threads"),
        seed,
        rounds,
        &counts,
    );
}

#[test]
fn blobs_match_their_names_while_writers_append_truncate_map_and_rename_on_xfs() {
    run(Fs::Xfs);
}

#[test]
fn blobs_match_their_names_while_writers_append_truncate_map_and_rename_on_btrfs() {
    run(Fs::Btrfs);
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
        // A source changed within the margin: its clone is hashed.
        fs::write(src.join("g"), pattern(1000, 3)).unwrap();
        let staging = store.staging("fresh").unwrap();
        let putter = Putter::new(&store, staging.dir()).with_ctime_margin(MARGIN_NS);
        let put = putter.put(&root, dev, OsStr::new("g")).unwrap().unwrap();
        assert_eq!(put.hash, Hash::of(&pattern(1000, 3)));
        assert_eq!((putter.source_hashed(), putter.source_changed()), (0, 0));
    }
}
