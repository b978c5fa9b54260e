//! `remote gc`, locks and layout versions against a real S3 server (SeaweedFS): layout 1
//! remotes upgraded and other layouts refused, the grace period and lock staleness judged by
//! the server's clock (never a writer's), a server killed and restarted in the middle of a gc.

use std::time::{Duration, Instant};

use crate::support::*;
use cowtree_remote::gc::{GcOptions, gc};
use cowtree_remote::lock::LockTiming;
use cowtree_remote::pull::pull;
use cowtree_remote::push::{PushItem, push};
use cowtree_remote::{Error, Progress, RemoteConfig};
use cowtree_store::Hash;
use cowtree_testutil::Fs;

fn quick() -> LockTiming {
    LockTiming {
        refresh: Duration::from_millis(300),
        stale: Duration::from_secs(30),
        wait: Duration::from_secs(60),
        settle: Duration::from_millis(20),
    }
}

fn opts(grace: Duration, timing: LockTiming) -> GcOptions {
    GcOptions {
        grace,
        repack_threshold: 0.0,
        dry_run: false,
        timing,
    }
}

fn no_wait(_: &str) {}

#[test]
fn a_layout_1_remote_is_upgraded_by_gc_and_another_layout_is_refused_clearly() {
    let Some(s3) = s3() else { return };
    let Some((dir, store)) = store_on(Fs::Xfs) else {
        return;
    };
    let src = dir.path().join("src");
    make_tree(&src, 50, 8 << 10, 3);
    let id = cowtree_store::ingest::snapshot_dir(&store, &src, None)
        .unwrap()
        .id;
    let cfg = s3_config(&s3, "origin");
    let raw = Raw::new(&s3, &cfg);
    // A remote an older cowtree made: its version file says 1; this one pushes to it as is.
    raw.put("cowtree-remote", b"cowtree-remote 1\n".to_vec());
    let remote = open(&cfg, &s3);
    let item = [PushItem { id, name: None }];
    push(&store, &remote, &item, false, &Progress::default()).expect("push to layout 1");
    assert_eq!(raw.get("cowtree-remote"), b"cowtree-remote 1\n");
    // gc upgrades it before it deletes anything: older cowtrees take no locks.
    let r = gc(
        &open(&cfg, &s3),
        None,
        &opts(Duration::ZERO, quick()),
        &no_wait,
    )
    .expect("gc");
    assert!(r.upgraded);
    assert_eq!(r.snapshots, 1);
    assert_eq!(raw.get("cowtree-remote"), b"cowtree-remote 2\n");
    // A layout from the future is refused, naming both.
    raw.put("cowtree-remote", b"cowtree-remote 3\n".to_vec());
    let e = gc(
        &open(&cfg, &s3),
        None,
        &opts(Duration::ZERO, quick()),
        &no_wait,
    )
    .expect_err("layout 3");
    let text = e.to_string();
    assert!(
        text.contains("\"cowtree-remote 3\"") && text.contains("\"cowtree-remote 2\""),
        "{text}"
    );
    let (pdir, pstore) = store_on(Fs::Xfs).unwrap();
    let e = pull(
        &pstore,
        &open(&cfg, &s3),
        &[id.to_hex()],
        &Progress::default(),
    )
    .expect_err("pull of layout 3");
    assert!(e.to_string().contains("cowtree-remote 3"), "{e}");
    drop(pdir);
}

#[test]
fn grace_and_lock_staleness_go_by_the_servers_clock_not_the_writers() {
    let Some(s3) = s3() else { return };
    let Some((dir, store)) = store_on(Fs::Xfs) else {
        return;
    };
    let src = dir.path().join("src");
    make_tree(&src, 30, 8 << 10, 5);
    let id = cowtree_store::ingest::snapshot_dir(&store, &src, None)
        .unwrap()
        .id;
    let cfg = s3_config(&s3, "origin");
    let raw = Raw::new(&s3, &cfg);
    push(
        &store,
        &open(&cfg, &s3),
        &[PushItem { id, name: None }],
        false,
        &Progress::default(),
    )
    .expect("push");
    // What a push killed on another host leaves: a pack without an index, just written.
    let lone = Hash::of(b"a lone pack");
    raw.put(&format!("packs/{lone}.pack"), vec![7u8; 4096]);
    // A lock of another host whose clock is a day behind: its body says it started a day
    // ago. Only the server's Last-Modified counts, so it is fresh and gc waits for it.
    let day_ago = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        - 86_400;
    let foreign = "locks/push-0123456789abcdef-4242-0011223344556677";
    raw.put(
        foreign,
        format!("{{\"kind\":\"push\",\"started_unix_by_writer\":{day_ago}}}").into_bytes(),
    );
    let short_wait = LockTiming {
        stale: Duration::from_secs(4),
        wait: Duration::from_secs(1),
        ..quick()
    };
    let told = std::sync::Mutex::new(Vec::new());
    let e = gc(
        &open(&cfg, &s3),
        None,
        &opts(Duration::ZERO, short_wait),
        &|w: &str| told.lock().unwrap().push(w.to_string()),
    )
    .expect_err("a fresh push lock keeps gc waiting");
    assert!(matches!(e, Error::Locked { .. }), "{e}");
    assert!(
        told.lock().unwrap()[0].contains("waiting for 1 push(es)"),
        "{:?}",
        told.lock().unwrap()
    );
    assert!(
        raw.list("locks/").iter().all(|k| k == foreign),
        "gc took its own lock away when it gave up: {:?}",
        raw.list("locks/")
    );
    // Once the server has not seen the lock rewritten for the stale time, gc goes on and
    // deletes it. The lone pack is younger than a grace period of 1 h: kept.
    std::thread::sleep(Duration::from_secs(5));
    let r = gc(
        &open(&cfg, &s3),
        None,
        &opts(Duration::from_secs(3600), short_wait),
        &no_wait,
    )
    .expect("gc after the lock went stale");
    assert_eq!(r.locks_deleted, 1);
    assert_eq!((r.young_kept, r.leftovers_deleted), (1, 0), "{r:?}");
    assert!(raw.list("locks/").is_empty(), "{:?}", raw.list("locks/"));
    // With a grace period of 2 s (server time), it goes.
    let r = gc(
        &open(&cfg, &s3),
        None,
        &opts(Duration::from_secs(2), quick()),
        &no_wait,
    )
    .expect("gc");
    assert_eq!((r.young_kept, r.leftovers_deleted), (0, 1), "{r:?}");
    assert!(!raw.list("packs/").contains(&format!("packs/{lone}.pack")));
    // The snapshot is whole.
    let (pdir, pstore) = store_on(Fs::Xfs).unwrap();
    pull(
        &pstore,
        &open(&cfg, &s3),
        &[id.to_hex()],
        &Progress::default(),
    )
    .expect("pull");
    drop(pdir);
}

#[test]
fn a_server_killed_during_gc_and_restarted_leaves_a_remote_gc_push_and_pull_accept() {
    let Some(s3) = s3() else { return };
    let Some(own) = OwnServer::start() else {
        return;
    };
    let Some((dir, store)) = store_on(Fs::Xfs) else {
        return;
    };
    let srv = S3 {
        endpoint: own.endpoint.clone(),
        ..s3
    };
    let cfg: RemoteConfig = s3_config(&srv, "own");
    let mut ids = Vec::new();
    for g in 0..4u64 {
        let src = dir.path().join(format!("src{g}"));
        make_tree(&src, 300, 32 << 10, 20 + g);
        let id = cowtree_store::ingest::snapshot_dir(&store, &src, None)
            .unwrap()
            .id;
        push(
            &store,
            &open(&cfg, &srv),
            &[PushItem { id, name: None }],
            false,
            &Progress::default(),
        )
        .expect("push");
        ids.push(id);
    }
    // Drop the first two snapshots, so gc has packs to delete and repack.
    // A gc lock left by a gc whose requests failed is this process's own: stale after 6 s.
    let timing = LockTiming {
        stale: Duration::from_secs(6),
        ..quick()
    };
    cowtree_remote::forget::remove(
        &open(&cfg, &srv),
        &[ids[0].to_hex(), ids[1].to_hex()],
        false,
        &timing,
        &no_wait,
    )
    .expect("rm");
    // gc in a thread, the server killed under it at a few points, then restarted.
    let mut rng = cowtree_testutil::XorShift::from_clock("server kill during gc");
    let mut finished = false;
    for round in 0..4 {
        let remote = open(&cfg, &srv);
        let delay = Duration::from_millis(rng.below(400));
        let t = std::thread::spawn(move || {
            let start = Instant::now();
            let r = gc(&remote, None, &opts(Duration::ZERO, timing), &no_wait);
            (r, start.elapsed())
        });
        std::thread::sleep(delay);
        own.kill();
        own.restart();
        let (r, took) = t.join().unwrap();
        println!(
            "round {round}: server killed at {delay:?}; gc {} after {took:?}",
            match &r {
                Ok(_) => "finished".to_string(),
                Err(e) => format!("failed: {e}"),
            }
        );
        finished |= r.is_ok();
    }
    let _ = finished;
    // A gc that runs to the end; the kept snapshots pull whole; a push works.
    let r = gc(
        &open(&cfg, &srv),
        None,
        &opts(Duration::ZERO, timing),
        &no_wait,
    )
    .expect("gc after the restarts");
    assert_eq!(r.blobs_missing, 0, "{r:?}");
    let again = gc(
        &open(&cfg, &srv),
        None,
        &opts(Duration::ZERO, timing),
        &no_wait,
    )
    .expect("gc");
    assert_eq!(again.objects_deleted, 0, "{again:?}");
    for id in &ids[2..] {
        let (pdir, pstore) = store_on(Fs::Xfs).unwrap();
        pull(
            &pstore,
            &open(&cfg, &srv),
            &[id.to_hex()],
            &Progress::default(),
        )
        .expect("pull after gc and restarts");
        let r = cowtree_store::verify::verify(&pstore).expect("verify");
        assert!(r.problems.is_empty(), "{:?}", r.problems);
        drop(pdir);
    }
    let src = dir.path().join("src-last");
    make_tree(&src, 300, 32 << 10, 99);
    let id = cowtree_store::ingest::snapshot_dir(&store, &src, None)
        .unwrap()
        .id;
    push(
        &store,
        &open(&cfg, &srv),
        &[PushItem { id, name: None }],
        false,
        &Progress::default(),
    )
    .expect("push after gc and restarts");
}

/// A gc killed after it wrote a repacked pack but before that pack's index leaves the pack
/// looking like a killed push's leftover. The next gc repacks the same blobs into the same
/// key (a pack's id is its index's hash): it must not then delete that pack as a leftover,
/// which lost every blob in it.
#[test]
fn a_pack_a_killed_gc_wrote_without_its_index_survives_the_gc_that_writes_it_again() {
    let Some(s3) = s3() else { return };
    let Some((dir, store)) = store_on(Fs::Xfs) else {
        return;
    };
    let mut ids = Vec::new();
    for seed in [11, 12] {
        let src = dir.path().join(format!("src{seed}"));
        make_tree(&src, 40, 8 << 10, seed);
        ids.push(
            cowtree_store::ingest::snapshot_dir(&store, &src, None)
                .unwrap()
                .id,
        );
    }
    let cfg = s3_config(&s3, "origin");
    let raw = Raw::new(&s3, &cfg);
    // One push: both snapshots' blobs in one pack.
    let items: Vec<PushItem> = ids.iter().map(|&id| PushItem { id, name: None }).collect();
    push(
        &store,
        &open(&cfg, &s3),
        &items,
        false,
        &Progress::default(),
    )
    .expect("push");
    let before = raw.list("packs/");
    assert_eq!(before.len(), 2, "one pack and its index: {before:?}");
    let saved: Vec<(String, Vec<u8>)> = before.iter().map(|k| (k.clone(), raw.get(k))).collect();
    cowtree_remote::forget::remove(
        &open(&cfg, &s3),
        &[ids[0].to_hex()],
        false,
        &quick(),
        &no_wait,
    )
    .expect("rm");
    // The gc that is "killed": it repacks the pack into a new one (its pack, then its index),
    // then deletes the old one.
    let r = gc(
        &open(&cfg, &s3),
        None,
        &opts(Duration::ZERO, quick()),
        &no_wait,
    )
    .expect("gc");
    assert!(r.packs_repacked >= 1 && r.packs_written >= 1, "{r:?}");
    let after = raw.list("packs/");
    let new_idx: Vec<&String> = after.iter().filter(|k| k.ends_with(".idx")).collect();
    assert_eq!(new_idx.len(), 1, "{after:?}");
    // What the kill would have left: the new pack without its index, the old pack and index.
    raw.delete(new_idx[0]);
    for (k, bytes) in &saved {
        raw.put(k, bytes.clone());
    }
    // The next gc repacks the old pack again, into the key of the lone new pack.
    let r = gc(
        &open(&cfg, &s3),
        None,
        &opts(Duration::ZERO, quick()),
        &no_wait,
    )
    .expect("gc");
    assert_eq!(r.blobs_missing, 0, "{r:?}");
    let r = gc(
        &open(&cfg, &s3),
        None,
        &opts(Duration::ZERO, quick()),
        &no_wait,
    )
    .expect("gc");
    assert_eq!(
        r.blobs_missing, 0,
        "the pack written again was deleted: {r:?}"
    );
    assert_eq!(r.objects_deleted, 0, "{r:?}");
    let (_pdir, pstore) = store_on(Fs::Xfs).unwrap();
    pull(
        &pstore,
        &open(&cfg, &s3),
        &[ids[1].to_hex()],
        &Progress::default(),
    )
    .expect("the kept snapshot pulls whole");
}
