//! `Arrivals`, what a checkout beside a pull waits on: each wait ends when what it waits for
//! comes, or at once with the pull's failure; a failed pull waits until the store is released.
//! No server needed: the pull's side is played by the test.

use std::time::{Duration, Instant};

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
        assert!(still_waits(&waiter), "returned before a blob arrived");
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
        let all_returned = wait_for(|| takers.iter().all(|t| t.is_finished()));
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
        assert!(still_waits(&blob) && !recorded.is_finished());
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
        assert!(still_waits(&pull), "went on while the store was held");
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

/// A `write_back` for [`Arrivals::settle`] that records when each call started and returns
/// only once the test opens its gate (`open`), with the result the test gave.
struct Gate {
    state: std::sync::Mutex<(Option<std::io::Result<()>>, Vec<Instant>)>,
    changed: std::sync::Condvar,
}

impl Gate {
    fn new() -> Gate {
        Gate {
            state: std::sync::Mutex::new((None, Vec::new())),
            changed: std::sync::Condvar::new(),
        }
    }

    fn write_back(&self) -> std::io::Result<()> {
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        st.1.push(Instant::now());
        loop {
            if let Some(r) = &st.0 {
                return match r {
                    Ok(()) => Ok(()),
                    Err(e) => Err(std::io::Error::new(e.kind(), e.to_string())),
                };
            }
            st = self.changed.wait(st).unwrap_or_else(|p| p.into_inner());
        }
    }

    /// Opens the gate with `r` (once: a gate open stays as it was opened).
    fn open(&self, r: std::io::Result<()>) {
        self.state
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .0
            .get_or_insert(r);
        self.changed.notify_all();
    }

    fn calls(&self) -> Vec<Instant> {
        self.state
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .1
            .clone()
    }
}

/// Opens the gate and ends the pull when dropped, so that a failed assertion ends the
/// settler and the takers rather than leaving the test waiting on them.
struct EndOnDrop<'a>(&'a Arrivals, &'a Gate);

impl Drop for EndOnDrop<'_> {
    fn drop(&mut self) {
        self.1.open(Ok(()));
        self.0.end(Err("the test ended".into()));
    }
}

/// Waits up to 10 s for `done` (then the test fails rather than hangs).
fn wait_for(done: impl Fn() -> bool) -> bool {
    let start = Instant::now();
    while !done() && start.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(5));
    }
    done()
}

/// Whether `t` still waits after a pause that a wrong wake-up would have ended (and a thread
/// started at the same time as `t` has had too).
fn still_waits<T>(t: &std::thread::ScopedJoinHandle<'_, T>) -> bool {
    std::thread::sleep(Duration::from_millis(100));
    !t.is_finished()
}

/// Waits up to 10 s for `t` to finish.
fn finishes<T>(t: &std::thread::ScopedJoinHandle<'_, T>) -> bool {
    wait_for(|| t.is_finished())
}

/// A settled pull (its manifest fetched, `coming` still to come) and a gate for its settler,
/// opened with `open` when given.
fn settled(coming: &[Hash], open: Option<std::io::Result<()>>) -> (Arrivals, Gate) {
    let a = Arrivals::settled();
    let gate = Gate::new();
    if let Some(r) = open {
        gate.open(r);
    }
    a.fetching(&[(h(0), bytes::Bytes::new())], coming);
    (a, gate)
}

/// A pace no test waits for: a round that starts sooner did not wait for it.
const LONG: Duration = Duration::from_secs(60);

#[test]
fn with_a_settler_a_blob_is_handed_out_only_once_written_back() {
    let (a, gate) = settled(&[h(1), h(2)], None);
    std::thread::scope(|s| {
        let _end = EndOnDrop(&a, &gate);
        let settler = s.spawn(|| a.settle(LONG, || gate.write_back()));
        a.arrived(&h(1));
        assert!(wait_for(|| !gate.calls().is_empty()), "no round began");
        assert_eq!(
            a.coming(&[h(1), h(2)]),
            [true, true],
            "a blob not written back yet is still to come"
        );
        let taker = s.spawn(|| next(&a));
        assert!(
            still_waits(&taker),
            "a blob was handed out while it was written back"
        );
        gate.open(Ok(()));
        assert_eq!(taker.join().unwrap(), (Ok(true), vec![h(1)]));
        assert_eq!(a.coming(&[h(1), h(2)]), [false, true]);
        // The last blob: written back at once (not after the pace), handed out, and the
        // settler is done.
        let last = Instant::now();
        a.arrived(&h(2));
        assert_eq!(next(&a), (Ok(true), vec![h(2)]));
        assert!(
            last.elapsed() < LONG / 2,
            "the last round waited for the pace: {:?}",
            last.elapsed()
        );
        assert_eq!(gate.calls().len(), 2, "one round for each blob");
        assert_eq!(next(&a), (Ok(false), vec![]));
        assert!(
            finishes(&settler),
            "the settler went on after the last blob"
        );
    });
}

#[test]
fn a_settlers_rounds_start_at_least_its_pace_apart() {
    let (a, gate) = settled(&[h(1), h(2), h(3)], Some(Ok(())));
    let pace = Duration::from_millis(300);
    std::thread::scope(|s| {
        let _end = EndOnDrop(&a, &gate);
        let settler = s.spawn(|| a.settle(pace, || gate.write_back()));
        a.arrived(&h(1));
        assert_eq!(next(&a), (Ok(true), vec![h(1)]));
        a.arrived(&h(2));
        assert_eq!(next(&a), (Ok(true), vec![h(2)]));
        let calls = gate.calls();
        assert_eq!(calls.len(), 2);
        // (The gate notes the time a little after the round began: 50 ms of slack.)
        assert!(
            calls[1] - calls[0] + Duration::from_millis(50) >= pace,
            "the second round started {:?} after the first",
            calls[1] - calls[0]
        );
        a.arrived(&h(3));
        assert_eq!(next(&a), (Ok(true), vec![h(3)]));
        assert!(finishes(&settler));
    });
}

#[test]
fn a_pull_that_ends_during_a_round_ends_the_settler_and_its_blobs_go_out() {
    let (a, gate) = settled(&[h(1)], None);
    std::thread::scope(|s| {
        let _end = EndOnDrop(&a, &gate);
        let settler = s.spawn(|| a.settle(LONG, || gate.write_back()));
        a.arrived(&h(1));
        assert!(wait_for(|| !gate.calls().is_empty()), "no round began");
        // The pull's own `syncfs` covered the blob: it goes out before the round ends.
        a.end(Ok(()));
        assert_eq!(next(&a), (Ok(true), vec![h(1)]));
        assert_eq!(next(&a), (Ok(false), vec![]));
        gate.open(Ok(()));
        assert!(
            finishes(&settler),
            "the settler went on after the pull ended"
        );
        assert!(settler.join().is_ok(), "the settler panicked");
    });
}

#[test]
fn a_settler_ends_once_the_checkout_let_go_of_the_store() {
    let (a, gate) = settled(&[h(1), h(2)], Some(Ok(())));
    std::thread::scope(|s| {
        let _end = EndOnDrop(&a, &gate);
        let settler = s.spawn(|| a.settle(LONG, || gate.write_back()));
        a.arrived(&h(1));
        assert!(wait_for(|| !gate.calls().is_empty()), "no round began");
        a.released();
        assert!(
            finishes(&settler),
            "the settler went on with nobody to take blobs"
        );
    });
}

#[test]
fn a_failed_write_back_hands_out_that_round_and_every_later_blob_as_they_are() {
    let (a, gate) = settled(&[h(1), h(2)], Some(Err(std::io::Error::other("EIO"))));
    std::thread::scope(|s| {
        let _end = EndOnDrop(&a, &gate);
        let settler = s.spawn(|| a.settle(LONG, || gate.write_back()));
        a.arrived(&h(1));
        assert!(wait_for(|| !gate.calls().is_empty()), "no round began");
        assert_eq!(next(&a), (Ok(true), vec![h(1)]));
        assert!(finishes(&settler), "the settler went on after a failure");
        a.arrived(&h(2));
        assert_eq!(next(&a), (Ok(true), vec![h(2)]));
        assert_eq!(gate.calls().len(), 1, "no round after the failure");
    });
}

#[test]
fn a_pull_that_fails_ends_the_settler_and_the_takers() {
    let (a, gate) = settled(&[h(1)], Some(Ok(())));
    std::thread::scope(|s| {
        let _end = EndOnDrop(&a, &gate);
        let settler = s.spawn(|| a.settle(LONG, || gate.write_back()));
        let taker = s.spawn(|| next(&a).0);
        assert!(still_waits(&settler) && !taker.is_finished());
        a.end(Err("boom".into()));
        assert!(
            finishes(&settler),
            "the settler went on after the pull ended"
        );
        assert_eq!(taker.join().unwrap(), Err(Stopped::Failed("boom".into())));
        assert!(
            gate.calls().is_empty(),
            "nothing arrived, nothing written back"
        );
    });
}

#[test]
fn without_a_settler_a_settled_pulls_blobs_are_handed_out_when_it_ends() {
    let (a, gate) = settled(&[h(1), h(2)], None);
    a.arrived(&h(1));
    std::thread::scope(|s| {
        let _end = EndOnDrop(&a, &gate);
        let taker = s.spawn(|| next(&a));
        assert!(still_waits(&taker), "handed out before it was written back");
        a.end(Ok(()));
        assert!(finishes(&taker), "the end of the pull did not hand it out");
        assert_eq!(taker.join().unwrap(), (Ok(true), vec![h(1)]));
        // h(2) never came: said, as without a settler.
        assert_eq!(next(&a), (Err(Stopped::Never(h(2))), vec![]));
    });
}
