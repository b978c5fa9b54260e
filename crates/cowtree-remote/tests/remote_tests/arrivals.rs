//! `Arrivals`, what a checkout beside a pull waits on: each wait ends when what it waits for
//! comes, or at once with the pull's failure; a failed pull waits until the store is released.
//! No server needed: the pull's side is played by the test.

use cowtree_remote::arrivals::{Arrivals, Stopped};
use cowtree_remote::pull::Watch;
use cowtree_store::Hash;

fn h(n: u8) -> Hash {
    Hash::of(&[n])
}

/// One call of `next`, with what it handed out.
fn next(a: &Arrivals) -> (Result<bool, Stopped>, Vec<Hash>) {
    let mut out = Vec::new();
    let r = a.next(&mut out);
    (r, out)
}

#[test]
fn blobs_are_handed_out_as_they_arrive_and_next_ends_once_every_one_came() {
    let a = Arrivals::new();
    let m = (h(0), bytes::Bytes::from_static(b"m"));
    a.fetching(std::slice::from_ref(&m), &[h(1), h(2)]);
    assert_eq!(a.manifest(), Some(m));
    assert_eq!(
        a.coming(&[h(1), h(3), h(2)]),
        [true, false, true],
        "h(3): the store had it"
    );
    std::thread::scope(|s| {
        let waiter = s.spawn(|| next(&a));
        std::thread::sleep(std::time::Duration::from_millis(50));
        assert!(!waiter.is_finished(), "returned before a blob arrived");
        a.arrived(&h(1));
        assert_eq!(waiter.join().unwrap(), (Ok(true), vec![h(1)]));
    });
    assert_eq!(a.coming(&[h(1), h(2)]), [false, true]);
    a.arrived(&h(1)); // placed twice (a retried fetch): handed out once
    a.arrived(&h(2));
    assert_eq!(next(&a), (Ok(true), vec![h(2)]));
    assert_eq!(
        next(&a),
        (Ok(false), vec![]),
        "every blob came and was handed out"
    );
    a.end(Ok(()));
    assert_eq!(a.recorded(), Ok(()));
}

#[test]
fn several_takers_get_each_arrived_blob_exactly_once() {
    let a = Arrivals::new();
    let coming: Vec<Hash> = (0..=255u8).map(h).collect();
    a.fetching(&[(Hash::of(b"m"), bytes::Bytes::new())], &coming);
    let taken: Vec<Vec<Hash>> = std::thread::scope(|s| {
        let takers: Vec<_> = (0..4)
            .map(|_| {
                s.spawn(|| {
                    let mut mine = Vec::new();
                    while a.next(&mut mine).expect("no failure") {}
                    mine
                })
            })
            .collect();
        for c in &coming {
            a.arrived(c);
        }
        takers.into_iter().map(|t| t.join().unwrap()).collect()
    });
    let mut all: Vec<Hash> = taken.concat();
    assert_eq!(all.len(), coming.len(), "each blob once");
    all.sort();
    let mut want = coming.clone();
    want.sort();
    assert_eq!(all, want);
}

#[test]
fn the_last_blob_ends_every_waiting_taker_before_the_pull_ends() {
    let a = Arrivals::new();
    a.fetching(&[(h(0), bytes::Bytes::new())], &[h(1)]);
    std::thread::scope(|s| {
        let takers: Vec<_> = (0..3).map(|_| s.spawn(|| next(&a))).collect();
        std::thread::sleep(std::time::Duration::from_millis(50));
        assert!(
            takers.iter().all(|t| !t.is_finished()),
            "returned before the blob"
        );
        a.arrived(&h(1));
        // Every taker returns without `end` (checked for 10 s; then `end` frees the rest, so
        // that the test fails rather than hangs).
        let start = std::time::Instant::now();
        while !takers.iter().all(|t| t.is_finished())
            && start.elapsed() < std::time::Duration::from_secs(10)
        {
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        let all_returned = takers.iter().all(|t| t.is_finished());
        a.end(Ok(()));
        assert!(
            all_returned,
            "a taker still waited after the last blob came"
        );
        let mut got: Vec<_> = takers.into_iter().map(|t| t.join().unwrap()).collect();
        got.sort_by_key(|(_, blobs)| blobs.is_empty());
        assert_eq!(got[0], (Ok(true), vec![h(1)]), "one taker gets the blob");
        assert!(
            got[1..].iter().all(|g| *g == (Ok(false), vec![])),
            "the others are told every blob came: {got:?}"
        );
    });
}

#[test]
fn a_pull_that_ends_without_a_blob_says_which() {
    let a = Arrivals::new();
    a.fetching(&[(h(0), bytes::Bytes::new())], &[h(1)]);
    a.end(Ok(()));
    assert_eq!(next(&a), (Err(Stopped::Never(h(1))), vec![]));
}

#[test]
fn a_failed_pull_ends_every_wait_with_its_error() {
    let a = Arrivals::new();
    a.fetching(&[(h(0), bytes::Bytes::new())], &[h(1)]);
    std::thread::scope(|s| {
        let blob = s.spawn(|| next(&a).0);
        let recorded = s.spawn(|| a.recorded());
        std::thread::sleep(std::time::Duration::from_millis(50));
        assert!(!blob.is_finished() && !recorded.is_finished());
        a.end(Err("boom".into()));
        let failed = Stopped::Failed("boom".into());
        assert_eq!(blob.join().unwrap(), Err(failed.clone()));
        assert_eq!(recorded.join().unwrap(), Err(failed));
    });
}

#[test]
fn a_failed_pull_ends_the_waits_then_waits_until_the_store_is_released() {
    let a = Arrivals::new();
    a.fetching(&[(h(0), bytes::Bytes::new())], &[h(1)]);
    std::thread::scope(|s| {
        let pull = s.spawn(|| a.stopped("disk full"));
        assert_eq!(next(&a).0, Err(Stopped::Failed("disk full".into())));
        std::thread::sleep(std::time::Duration::from_millis(50));
        assert!(!pull.is_finished(), "went on while the store was held");
        a.released();
        pull.join().unwrap();
    });
}

#[test]
fn a_pull_that_fetched_no_manifest_gives_none() {
    let a = Arrivals::new();
    a.end(Ok(()));
    assert_eq!(a.manifest(), None);
    assert_eq!(a.recorded(), Ok(()));
}
