//! The unit tests of the store's layout and writers.

use super::*;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

/// A syncer whose sync counts its calls and gives `result`'s error, if any.
fn counting(result: fn() -> io::Result<()>) -> (Syncer, Arc<AtomicU32>) {
    let calls = Arc::new(AtomicU32::new(0));
    let seen = Arc::clone(&calls);
    let syncer = Syncer::start(move || {
        seen.fetch_add(1, Ordering::SeqCst);
        result()
    })
    .expect("start the sync thread");
    (syncer, calls)
}

#[test]
fn a_requested_sync_runs_before_finish_returns_and_none_runs_unasked() {
    let (mut s, calls) = counting(|| Ok(()));
    s.finish().expect("no sync, no error");
    assert_eq!(calls.load(Ordering::SeqCst), 0);
    let (mut s, calls) = counting(|| Ok(()));
    s.request();
    s.finish().expect("a sync that worked");
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[test]
fn a_failed_sync_stops_the_thread_and_its_error_is_returned_by_finish() {
    let (mut s, calls) = counting(|| Err(io::Error::other("device gone")));
    for _ in 0..5 {
        s.request();
    }
    let e = s.finish().expect_err("the sync's error");
    assert_eq!(e.to_string(), "device gone");
    assert_eq!(calls.load(Ordering::SeqCst), 1, "no sync after the error");
    // Finishing again (as Drop does) reports nothing more.
    s.finish().expect("already finished");
}

#[test]
fn holds_any_snapshot_sees_a_manifest_and_not_a_temp_file() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(&tmp.path().join("store")).unwrap();
    assert!(!store.holds_any_snapshot().unwrap(), "a new store");
    // A manifest being written (or left by a killed writer) is no snapshot.
    std::fs::write(tmp.path().join("store/snapshots/.tmp-1"), b"partial").unwrap();
    assert!(!store.holds_any_snapshot().unwrap(), "a temp file only");
    let m = Manifest::new(vec![crate::manifest::Entry::dir(b"d".to_vec())]).unwrap();
    let id = store.save(&m).unwrap();
    assert!(store.holds_any_snapshot().unwrap(), "one manifest");
    assert_eq!(store.snapshot_ids().unwrap(), [id]);
    store.remove_snapshot(&id).unwrap();
    assert!(
        !store.holds_any_snapshot().unwrap(),
        "every manifest removed"
    );
}
