//! Push and pull against a real S3 server (SeaweedFS on loopback, started by scripts/test.sh)
//! and a file:// remote, between stores on different filesystems.

use std::fs;
use std::sync::{Arc, Barrier};

use crate::support::*;
use bytes::Bytes;
use cowtree_remote::pull::pull;
use cowtree_remote::push::{PushItem, push};
use cowtree_remote::remote::Expect;
use cowtree_remote::{Error, Progress, Remote, RemoteConfig};
use cowtree_store::checkout::{CheckoutMode, CheckoutOptions, checkout};
use cowtree_store::{Hash, Store};
use cowtree_testutil::Fs;
use cowtree_testutil::tree::{assert_same_tree, snapshot as tree_of};

fn push_named(
    store: &Store,
    remote: &Remote,
    id: Hash,
    name: &str,
) -> cowtree_remote::push::PushReport {
    push(
        store,
        remote,
        &[PushItem {
            id,
            name: Some(name.into()),
        }],
        false,
        &Progress::default(),
    )
    .expect("push")
}

fn checkout_to(
    store: &Store,
    id: &Hash,
    dst: &std::path::Path,
) -> cowtree_store::checkout::CheckoutReport {
    let opts = CheckoutOptions {
        mode: CheckoutMode::Auto,
        strict: false,
        preserve: cowtree_store::Preserve::NONE,
    };
    checkout(store, id, dst, opts, &|_| {}).expect("checkout")
}

fn assert_verify_clean(store: &Store, what: &str) {
    let r = cowtree_store::verify::verify(store).expect("verify");
    assert!(
        r.problems.is_empty(),
        "{what}: verify found {:?}",
        r.problems
    );
    assert!(r.blobs_checked > 0, "{what}: verify checked no blobs");
}

#[test]
fn the_server_honours_if_none_match_and_if_match_when_writers_really_race() {
    let Some(s3) = s3() else { return };
    let cfg = s3_config(&s3, "origin");
    let dir = tempfile::tempdir().unwrap();
    let file_cfg = RemoteConfig {
        name: "f".into(),
        url: format!("file://{}", dir.path().display()),
        endpoint: None,
        region: None,
    };
    for cfg in [cfg, file_cfg] {
        const N: usize = 8;
        // Each writer has its own client and runtime; the barrier lines their requests up.
        let remotes: Vec<Remote> = (0..N).map(|_| open(&cfg, &s3)).collect();
        let barrier = Arc::new(Barrier::new(N));
        let created: Vec<bool> = std::thread::scope(|s| {
            let handles: Vec<_> = remotes
                .iter()
                .enumerate()
                .map(|(i, r)| {
                    let barrier = Arc::clone(&barrier);
                    s.spawn(move || {
                        barrier.wait();
                        r.rt_block_on_put_immutable("race/object", format!("writer {i}"))
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert_eq!(
            created.iter().filter(|c| **c).count(),
            1,
            "{}: exactly one of {N} racing If-None-Match creates wins: {created:?}",
            cfg.url
        );
        let winner = created.iter().position(|c| *c).unwrap();
        assert_eq!(
            remotes[0].get_blocking("race/object"),
            format!("writer {winner}")
        );

        // Names: all writers hold the same version and race to move the name from it.
        let v0 = remotes[0]
            .put_name_blocking("names/n", "n", "v0", &Expect::Absent)
            .expect("create the name");
        assert!(
            matches!(
                remotes[1].put_name_blocking("names/n", "n", "again", &Expect::Absent),
                Err(Error::Conflict { .. })
            ),
            "{}: a second create of a name is a conflict",
            cfg.url
        );
        let barrier = Arc::new(Barrier::new(N));
        let results: Vec<bool> = std::thread::scope(|s| {
            let handles: Vec<_> = remotes
                .iter()
                .enumerate()
                .map(|(i, r)| {
                    let barrier = Arc::clone(&barrier);
                    let v0 = v0.clone();
                    s.spawn(move || {
                        barrier.wait();
                        match r.put_name_blocking(
                            "names/n",
                            "n",
                            &format!("w{i}"),
                            &Expect::Version(v0),
                        ) {
                            Ok(_) => true,
                            Err(Error::Conflict { .. }) => false,
                            Err(e) => panic!("unexpected error: {e}"),
                        }
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert_eq!(
            results.iter().filter(|c| **c).count(),
            1,
            "{}: exactly one of {N} racing If-Match updates wins: {results:?}",
            cfg.url
        );
        let winner = results.iter().position(|c| *c).unwrap();
        assert_eq!(remotes[0].get_blocking("names/n"), format!("w{winner}"));
        assert!(
            matches!(
                remotes[2].put_name_blocking("names/n", "n", "stale", &Expect::Version(v0)),
                Err(Error::Conflict { .. })
            ),
            "{}: an update from a stale version is a conflict",
            cfg.url
        );
    }
}

/// Blocking wrappers of the async request helpers, for the tests above.
trait Blocking {
    fn rt_block_on_put_immutable(&self, rel: &str, body: String) -> bool;
    fn get_blocking(&self, rel: &str) -> String;
    fn put_name_blocking(
        &self,
        rel: &str,
        name: &str,
        body: &str,
        expect: &Expect,
    ) -> cowtree_remote::Result<object_store::UpdateVersion>;
}

impl Blocking for Remote {
    fn rt_block_on_put_immutable(&self, rel: &str, body: String) -> bool {
        self.block_on(self.put_immutable(rel, Bytes::from(body)))
            .expect("create")
    }
    fn get_blocking(&self, rel: &str) -> String {
        let b = self.block_on(self.get(rel)).expect("get").expect("exists");
        String::from_utf8(b.to_vec()).unwrap()
    }
    fn put_name_blocking(
        &self,
        rel: &str,
        name: &str,
        body: &str,
        expect: &Expect,
    ) -> cowtree_remote::Result<object_store::UpdateVersion> {
        self.block_on(self.put_name(rel, name, body, expect))
    }
}

/// A tree with small files, the sample tree's odd entries, and one file large enough to be
/// uploaded in parts as an object of its own.
fn bench_like_tree(root: &std::path::Path, seed: u64) {
    make_tree(root, 1500, 48 << 10, seed);
    fs::write(
        root.join("large.bin"),
        cowtree_testutil::pattern((17 << 20) + 123, seed),
    )
    .unwrap();
}

#[test]
fn round_trip_between_stores_on_different_filesystems_over_s3_and_file_remotes() {
    let Some(s3) = s3() else { return };
    let Some((a_dir, a)) = store_on(Fs::Xfs) else {
        return;
    };
    let Some((b_dir, b)) = store_on(Fs::Btrfs) else {
        return;
    };
    let Some(file_remote) = cowtree_testutil::scratch(Fs::Xfs2) else {
        return;
    };
    let src = a_dir.path().join("src");
    bench_like_tree(&src, 1);
    let id = cowtree_store::ingest::snapshot_dir(&a, &src, Some("base"))
        .expect("snapshot")
        .id;
    let manifest = a.load(&id).unwrap();
    let blobs: std::collections::HashSet<Hash> = manifest
        .entries()
        .iter()
        .filter_map(|e| e.hash().copied())
        .collect();
    let file_cfg = RemoteConfig {
        name: "nfs".into(),
        url: format!("file://{}", file_remote.path().display()),
        endpoint: None,
        region: None,
    };
    for (i, cfg) in [s3_config(&s3, "origin"), file_cfg].into_iter().enumerate() {
        let pushed = push_named(&a, &open(&cfg, &s3), id, "base");
        assert_eq!(pushed.snapshots_sent, 1);
        assert_eq!(pushed.blobs_sent, blobs.len() as u64, "{}", cfg.url);
        assert_eq!(pushed.bytes_sent, manifest.bytes_of_blobs(), "{}", cfg.url);
        assert!(
            pushed.requests < 40,
            "{}: {} requests for {} blobs: packing keeps them few",
            cfg.url,
            pushed.requests,
            blobs.len()
        );
        // Store B (another filesystem, its own store) gets it by name.
        let in_b = cowtree_remote::config::Scope::Store(b.root().to_path_buf());
        cowtree_remote::config::add(&in_b, cfg.clone()).unwrap();
        let b_remote = open(&cfg, &s3);
        let pulled =
            pull(&b, &b_remote, &["base".to_string()], &Progress::default()).expect("pull");
        assert_eq!(pulled.ids, vec![id]);
        if i == 0 {
            assert_eq!(pulled.blobs_received, blobs.len() as u64);
            assert_eq!(pulled.snapshots_received, 1);
        } else {
            // The second remote's pull finds everything in the store already.
            assert_eq!(pulled.blobs_received, 0);
            assert_eq!(pulled.snapshots_skipped, 1);
        }
        assert_eq!(cowtree_store::refs::get(&b, "base").unwrap(), Some(id));
        // The checkout in B is the tree A's own checkout gives (a snapshot does not record
        // directory modes, so the comparison is with a checkout, not with the source).
        let dst = b_dir.path().join(format!("out{i}"));
        let co = checkout_to(&b, &id, &dst);
        // B is on btrfs: the first checkout builds the snapshot's tree subvolume from B's
        // blobs (every file cloned), the second is one snapshot of that tree (nothing per
        // file). Either way nothing is copied: the data is B's store's.
        assert_eq!(co.copied, 0, "B's checkout copies nothing");
        if i == 0 {
            assert_eq!(co.cloned, co.files, "B's checkout clones from B's store");
        } else {
            assert_eq!(
                co.method,
                cowtree_fs::whole_tree::Method::Subvolume,
                "the second checkout on btrfs is a snapshot of the store's tree: {co:?}"
            );
        }
        let a_out = a_dir.path().join(format!("out{i}"));
        checkout_to(&a, &id, &a_out);
        assert_same_tree(&tree_of(&a_out), &tree_of(&dst), false);
    }
    assert_verify_clean(&a, "store A");
    assert_verify_clean(&b, "store B");
}

/// The sum of the sizes of the distinct blobs a manifest names.
trait BlobBytes {
    fn bytes_of_blobs(&self) -> u64;
}

impl BlobBytes for cowtree_store::Manifest {
    fn bytes_of_blobs(&self) -> u64 {
        let mut seen = std::collections::HashSet::new();
        self.entries()
            .iter()
            .filter_map(|e| e.hash().filter(|h| seen.insert(**h)).map(|_| e.size()))
            .sum()
    }
}

#[test]
fn a_second_push_sends_nothing_and_a_one_percent_change_sends_about_one_percent() {
    let Some(s3) = s3() else { return };
    let Some((a_dir, a)) = store_on(Fs::Xfs) else {
        return;
    };
    let src = a_dir.path().join("src");
    make_tree(&src, 2000, 64 << 10, 7);
    let id = cowtree_store::ingest::snapshot_dir(&a, &src, Some("t"))
        .unwrap()
        .id;
    let cfg = s3_config(&s3, "origin");
    let first = push_named(&a, &open(&cfg, &s3), id, "t");
    assert!(first.bytes_sent > 0);
    assert!(
        first.requests < 30,
        "{} requests for 2,000 files: packing keeps them few",
        first.requests
    );

    let again = push_named(&a, &open(&cfg, &s3), id, "t");
    assert_eq!(
        (
            again.bytes_sent,
            again.objects_sent,
            again.snapshots_skipped
        ),
        (0, 0, 1),
        "a second push of the same snapshot sends nothing"
    );
    assert!(
        again.requests <= 5,
        "{} requests to send nothing",
        again.requests
    );

    // Change 1% of the files (20 of 2,000) to new content of the same size.
    let mut changed = 0u64;
    for i in (0..2000).step_by(100) {
        let p = src.join(format!("d{}", i % 17)).join(format!("f{i}"));
        let len = fs::metadata(&p).unwrap().len() as usize;
        fs::write(&p, cowtree_testutil::pattern(len, 999_000 + i as u64)).unwrap();
        changed += len as u64;
    }
    let id2 = cowtree_store::ingest::snapshot_dir(&a, &src, Some("t"))
        .unwrap()
        .id;
    let second = push_named(&a, &open(&cfg, &s3), id2, "t");
    assert_eq!(second.blobs_sent, 20);
    assert_eq!(
        second.bytes_sent, changed,
        "exactly the changed files' bytes"
    );
    assert!(
        second.bytes_sent * 50 < first.bytes_sent,
        "1% of the files changed: {} of {} bytes sent",
        second.bytes_sent,
        first.bytes_sent
    );
    assert_eq!(second.names_updated, vec![("t".to_string(), id2)]);
}

#[test]
fn concurrent_pushes_of_the_same_content_both_succeed_with_one_copy_on_the_remote() {
    let Some(s3) = s3() else { return };
    let Some((a_dir, a)) = store_on(Fs::Xfs) else {
        return;
    };
    let Some((b_dir, b)) = store_on(Fs::Btrfs) else {
        return;
    };
    make_tree(&a_dir.path().join("src"), 3000, 64 << 10, 3);
    make_tree(&b_dir.path().join("src"), 3000, 64 << 10, 3);
    let ia = cowtree_store::ingest::snapshot_dir(&a, &a_dir.path().join("src"), None)
        .unwrap()
        .id;
    let ib = cowtree_store::ingest::snapshot_dir(&b, &b_dir.path().join("src"), None)
        .unwrap()
        .id;
    assert_eq!(ia, ib, "the same tree gives the same snapshot");
    let mut raced = 0;
    for _attempt in 0..5 {
        let cfg = s3_config(&s3, "origin");
        let (ra, rb) = (open(&cfg, &s3), open(&cfg, &s3));
        let barrier = Barrier::new(2);
        let one = |store: &Store, remote: &Remote| {
            barrier.wait();
            push(
                store,
                remote,
                &[PushItem { id: ia, name: None }],
                false,
                &Progress::default(),
            )
        };
        let one = &one;
        let (a, b, ra, rb) = (&a, &b, &ra, &rb);
        let (pa, pb) = std::thread::scope(|s| {
            let ha = s.spawn(move || one(a, ra));
            let hb = s.spawn(move || one(b, rb));
            (ha.join().unwrap(), hb.join().unwrap())
        });
        let (pa, pb) = (pa.expect("push from A"), pb.expect("push from B"));
        let raw = Raw::new(&s3, &cfg);
        let counts = indexed_blobs(&raw);
        assert_eq!(
            counts.len(),
            a.load(&ia)
                .unwrap()
                .entries()
                .iter()
                .filter_map(|e| e.hash())
                .collect::<std::collections::HashSet<_>>()
                .len()
        );
        assert!(
            counts.values().all(|c| *c == 1),
            "every blob is in exactly one pack index"
        );
        let packs = raw
            .list("packs/")
            .iter()
            .filter(|k| k.ends_with(".pack"))
            .count() as u64;
        // Every pack on the remote was sent by one push or both; a push that read the index
        // after the other had indexed some packs plans only the rest, so neither sends more
        // than there are. More sent than there are means both created the same pack, and it
        // exists once: the If-None-Match create let one of the pair through.
        assert!(
            pa.packs_sent <= packs && pb.packs_sent <= packs,
            "{} and {} packs sent, {packs} on the remote",
            pa.packs_sent,
            pb.packs_sent
        );
        assert!(
            pa.packs_sent + pb.packs_sent >= packs,
            "{} and {} packs sent, {packs} on the remote",
            pa.packs_sent,
            pb.packs_sent
        );
        if pa.packs_sent + pb.packs_sent > packs {
            raced += 1;
        }
        assert_eq!(raw.list("snapshots/").len(), 1);
    }
    assert!(raced > 0, "in 5 attempts the two pushes never overlapped");
}

#[test]
fn a_name_moved_by_another_host_is_a_conflict_unless_forced() {
    let Some(s3) = s3() else { return };
    let Some((a_dir, a)) = store_on(Fs::Xfs) else {
        return;
    };
    let Some((b_dir, b)) = store_on(Fs::Btrfs) else {
        return;
    };
    let cfg = s3_config(&s3, "origin");
    let snap = |store: &Store, dir: &std::path::Path, seed: u64| {
        let src = dir.join(format!("src{seed}"));
        make_tree(&src, 20, 4096, seed);
        cowtree_store::ingest::snapshot_dir(store, &src, Some("main"))
            .unwrap()
            .id
    };
    let x = snap(&a, a_dir.path(), 1);
    push_named(&a, &open(&cfg, &s3), x, "main");
    // B has its own "main" and has never seen the remote's: pushing it would overwrite A's.
    let z = snap(&b, b_dir.path(), 2);
    let e = push(
        &b,
        &open(&cfg, &s3),
        &[PushItem {
            id: z,
            name: Some("main".into()),
        }],
        false,
        &Progress::default(),
    )
    .expect_err("B never saw the remote name");
    assert!(matches!(e, Error::Conflict { .. }), "{e}");
    assert_eq!(e.exit_code(), 5);
    // B's pull of main would move B's own main: refused unless forced. B pulls main with
    // force (now tracks it), A moves it, B's next move conflicts.
    let e = pull(&b, &open(&cfg, &s3), &["main".into()], &Progress::default())
        .expect_err("a pull moving B's own main");
    assert!(matches!(e, Error::LocalName { .. }), "{e}");
    assert_eq!(cowtree_store::refs::get(&b, "main").unwrap(), Some(z));
    let forced = cowtree_remote::pull::PullOptions {
        force: true,
        ..Default::default()
    };
    let r = cowtree_remote::pull::pull_with(
        &b,
        &open(&cfg, &s3),
        &["main".into()],
        &forced,
        &Progress::default(),
    )
    .unwrap();
    assert_eq!(r.names_moved, [("main".to_string(), z)]);
    let y = snap(&a, a_dir.path(), 3);
    push_named(&a, &open(&cfg, &s3), y, "main");
    cowtree_store::refs::set(&b, "main", &z).unwrap();
    let e = push(
        &b,
        &open(&cfg, &s3),
        &[PushItem {
            id: z,
            name: Some("main".into()),
        }],
        false,
        &Progress::default(),
    )
    .expect_err("A moved it since B's pull");
    assert!(e.to_string().contains("moved there by another host"), "{e}");
    assert_eq!(
        Raw::new(&s3, &cfg).get("names/main"),
        format!("{y}\n").into_bytes()
    );
    // --force moves it, and B's store tracks the new version: its next push is plain.
    let forced = push(
        &b,
        &open(&cfg, &s3),
        &[PushItem {
            id: z,
            name: Some("main".into()),
        }],
        true,
        &Progress::default(),
    )
    .expect("forced push");
    assert_eq!(forced.names_updated, vec![("main".to_string(), z)]);
    assert_eq!(
        Raw::new(&s3, &cfg).get("names/main"),
        format!("{z}\n").into_bytes()
    );
}

#[test]
fn killing_the_server_mid_push_and_mid_pull_then_rerunning_finishes_without_duplicates() {
    let Some(s3) = s3() else { return };
    let Some(server) = OwnServer::start() else {
        return;
    };
    let Some((a_dir, a)) = store_on(Fs::Xfs) else {
        return;
    };
    let Some((b_dir, b)) = store_on(Fs::Btrfs) else {
        return;
    };
    let src = a_dir.path().join("src");
    fs::create_dir(&src).unwrap();
    // 24 files of 6 MiB: five packs, several ranges each.
    for i in 0..24u64 {
        fs::write(
            src.join(format!("f{i}")),
            cowtree_testutil::pattern(6 << 20, i + 11),
        )
        .unwrap();
    }
    let id = cowtree_store::ingest::snapshot_dir(&a, &src, Some("big"))
        .unwrap()
        .id;
    let own = S3 {
        endpoint: server.endpoint.clone(),
        ..s3.clone()
    };
    let cfg = s3_config(&own, "origin");
    let total: u64 = 24 * (6 << 20);

    let kill_midway = |run: &(dyn Fn(&Progress) -> cowtree_remote::Result<()> + Sync)| {
        let progress = Progress::default();
        std::thread::scope(|s| {
            let h = s.spawn(|| run(&progress));
            loop {
                let done = progress
                    .done_bytes
                    .load(std::sync::atomic::Ordering::Relaxed);
                if done > 0 || h.is_finished() {
                    break;
                }
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
            server.kill();
            let r = h.join().unwrap();
            let done = progress
                .done_bytes
                .load(std::sync::atomic::Ordering::Relaxed);
            assert!(
                r.is_err(),
                "the run survived the kill (done {done} of {total} bytes)"
            );
            assert!(done < total, "the kill came after the end");
            done
        })
    };
    let remote = open(&cfg, &own);
    let sent = kill_midway(&|p| {
        push(
            &a,
            &remote,
            &[PushItem {
                id,
                name: Some("big".into()),
            }],
            false,
            p,
        )
        .map(|_| ())
    });
    drop(remote);
    server.restart();
    let raw = Raw::new(&own, &cfg);
    assert!(
        raw.list("snapshots/").is_empty(),
        "no manifest before all its blobs"
    );
    let again = push_named(&a, &open(&cfg, &own), id, "big");
    assert!(
        again.bytes_sent < total,
        "the re-run sent {} of {total} bytes: what the first run finished ({sent}) is kept",
        again.bytes_sent
    );
    assert_eq!(again.bytes_sent + again.bytes_skipped, total);
    let counts = indexed_blobs(&raw);
    assert_eq!(counts.len(), 24);
    assert!(counts.values().all(|c| *c == 1), "no blob is indexed twice");

    let remote = open(&cfg, &own);
    kill_midway(&|p| pull(&b, &remote, &["big".into()], p).map(|_| ()));
    drop(remote);
    assert!(
        !b.has_snapshot(&id).unwrap(),
        "nothing recorded by the killed pull"
    );
    assert_eq!(cowtree_store::refs::get(&b, "big").unwrap(), None);
    let placed = a
        .load(&id)
        .unwrap()
        .entries()
        .iter()
        .filter(|e| b.blob_path(e.hash().unwrap()).exists())
        .count();
    server.restart();
    let r =
        pull(&b, &open(&cfg, &own), &["big".into()], &Progress::default()).expect("re-run pull");
    assert_eq!(
        r.blobs_skipped, placed as u64,
        "what arrived before the kill is not fetched again"
    );
    assert_eq!(r.blobs_received + r.blobs_skipped, 24);
    assert_verify_clean(&b, "store B after the resumed pull");
    let dst = b_dir.path().join("out");
    checkout_to(&b, &id, &dst);
    assert_same_tree(&tree_of(&src), &tree_of(&dst), false);
}

#[test]
fn corrupt_missing_and_hostile_remote_data_is_refused_and_nothing_is_recorded() {
    let Some(s3) = s3() else { return };
    let Some((a_dir, a)) = store_on(Fs::Xfs) else {
        return;
    };
    let src = a_dir.path().join("src");
    make_tree(&src, 50, 8192, 5);
    let id = cowtree_store::ingest::snapshot_dir(&a, &src, Some("s"))
        .unwrap()
        .id;
    let cfg = s3_config(&s3, "origin");
    push_named(&a, &open(&cfg, &s3), id, "s");
    let raw = Raw::new(&s3, &cfg);
    let pack = raw
        .list("packs/")
        .into_iter()
        .find(|k| k.ends_with(".pack"))
        .unwrap();

    let fresh = |what: &str| {
        let (dir, store) = store_on(Fs::Btrfs).expect("btrfs was there a moment ago");
        let e = pull(
            &store,
            &open(&cfg, &s3),
            &[what.to_string()],
            &Progress::default(),
        )
        .expect_err("refused");
        assert!(!store.has_snapshot(&id).unwrap(), "nothing recorded: {e}");
        assert_eq!(cowtree_store::refs::get(&store, "s").unwrap(), None);
        assert!(store.snapshot_ids().unwrap().is_empty());
        let outside: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(
            outside,
            vec![std::ffi::OsString::from("store")],
            "nothing written outside the store"
        );
        e
    };

    // A flipped byte in the pack: the blob's hash does not match.
    let good = raw.get(&pack);
    let mut bad = good.clone();
    bad[good.len() / 2] ^= 1;
    raw.put(&pack, bad);
    let e = fresh("s");
    assert!(matches!(e, Error::Corrupt { .. }), "{e}");
    assert_eq!(e.exit_code(), 7);
    let msg = e.to_string();
    assert!(
        msg.contains(&pack) && msg.contains(&id.to_hex()),
        "names key and snapshot: {msg}"
    );

    // The pack gone.
    raw.delete(&pack);
    let e = fresh("s");
    assert!(matches!(e, Error::Missing { .. }), "{e}");
    raw.put(&pack, good.clone());

    // A manifest that is not the one its id names; then a missing one.
    let manifest_key = format!("snapshots/{id}");
    let m = raw.get(&manifest_key);
    let mut m2 = m.clone();
    m2.truncate(m.len() - 1);
    raw.put(&manifest_key, m2);
    let e = fresh(&id.to_hex());
    assert!(e.to_string().contains("does not hash to its id"), "{e}");
    raw.delete(&manifest_key);
    // Asked for by id, it is simply not there (exit 8); through a name pointing at it, the
    // remote's data is incomplete (exit 7).
    let e = fresh(&id.to_hex());
    assert!(matches!(e, Error::NotFound { .. }), "{e}");
    assert_eq!(e.exit_code(), 8);
    let e = fresh("s");
    assert!(
        matches!(e, Error::Missing { .. }) && e.to_string().contains("points at snapshot"),
        "{e}"
    );
    assert_eq!(e.exit_code(), 7);
    raw.put(&manifest_key, m);

    // Hostile manifests whose bytes do hash to their names: `..` and absolute paths.
    let blob = Hash::of(b"x");
    for path in [&b"../evil"[..], b"/etc/evil", b"a/../../evil"] {
        let bytes = raw_manifest(&[(path, 1, blob)]);
        let hid = Hash::of(&bytes);
        raw.put(&format!("snapshots/{hid}"), bytes);
        let e = fresh(&hid.to_hex());
        assert!(
            matches!(e, Error::Corrupt { .. }) && e.to_string().contains("refused"),
            "{}: {e}",
            String::from_utf8_lossy(path)
        );
    }

    // A pack index pointing past the end of its pack.
    let data = b"0123456789".to_vec();
    let h = Hash::of(&data[5..]);
    let idx = cowtree_remote::pack::PackIndex::new(
        10,
        vec![cowtree_remote::pack::Slot {
            hash: h,
            offset: 5,
            len: 10,
        }],
    )
    .encode();
    let pid = Hash::of(&idx);
    raw.put(&format!("packs/{pid}.pack"), data);
    raw.put(&format!("packs/{pid}.idx"), idx);
    let bytes = raw_manifest(&[(b"f", 10, h)]);
    let hid = Hash::of(&bytes);
    raw.put(&format!("snapshots/{hid}"), bytes);
    let e = fresh(&hid.to_hex());
    assert!(e.to_string().contains("past the pack's end"), "{e}");
}
