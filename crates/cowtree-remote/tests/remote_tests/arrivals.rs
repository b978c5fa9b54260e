//! `Arrivals`, what a checkout beside a pull waits on: each wait ends when what it waits for
//! comes, or at once with the pull's failure; a failed pull waits until the store is released.
//! No server needed: the pull's side is played by the test.

use cowtree_remote::arrivals::{Arrivals, Stopped};
use cowtree_remote::pull::Watch;
use cowtree_store::Hash;

fn h(n: u8) -> Hash {
    Hash::of(&[n])
}

#[test]
fn a_blob_waits_until_it_arrives_and_one_not_coming_does_not_wait() {
    let a = Arrivals::new();
    let m = (h(0), bytes::Bytes::from_static(b"m"));
    a.fetching(std::slice::from_ref(&m), &[h(1), h(2)]);
    assert_eq!(a.manifest(), Some(m));
    assert_eq!(a.blob(&h(3)), Ok(()), "a blob the store had");
    std::thread::scope(|s| {
        let waiter = s.spawn(|| a.blob(&h(1)));
        std::thread::sleep(std::time::Duration::from_millis(50));
        assert!(!waiter.is_finished(), "returned before the blob arrived");
        a.arrived(&h(1));
        assert_eq!(waiter.join().unwrap(), Ok(()));
    });
    a.end(Ok(()));
    assert_eq!(a.recorded(), Ok(()));
    assert_eq!(a.blob(&h(2)), Err(Stopped::Never(h(2))));
}

#[test]
fn a_failed_pull_ends_every_wait_with_its_error() {
    let a = Arrivals::new();
    a.fetching(&[(h(0), bytes::Bytes::new())], &[h(1)]);
    std::thread::scope(|s| {
        let blob = s.spawn(|| a.blob(&h(1)));
        let recorded = s.spawn(|| a.recorded());
        std::thread::sleep(std::time::Duration::from_millis(50));
        assert!(!blob.is_finished() && !recorded.is_finished());
        a.end(Err("boom".into()));
        let failed = Err(Stopped::Failed("boom".into()));
        assert_eq!(blob.join().unwrap(), failed);
        assert_eq!(recorded.join().unwrap(), failed);
    });
}

#[test]
fn a_failed_pull_ends_the_waits_then_waits_until_the_store_is_released() {
    let a = Arrivals::new();
    a.fetching(&[(h(0), bytes::Bytes::new())], &[h(1)]);
    std::thread::scope(|s| {
        let pull = s.spawn(|| a.stopped("disk full"));
        assert_eq!(a.blob(&h(1)), Err(Stopped::Failed("disk full".into())));
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
