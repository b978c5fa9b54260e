//! cowtree-remote on Windows, end to end against a directory remote (`file:///C:/...`, through
//! object_store's local filesystem store): a snapshot pushed from one store and pulled into a
//! second arrives with the same id and the same bytes, a name set by the push is set by the
//! pull, and a second push and pull move nothing. S3 remotes are compiled, not run here.

#![cfg(windows)]

use std::fs;
use std::path::Path;

use cowtree_remote::Progress;
use cowtree_remote::config::{self, Location};
use cowtree_remote::push::{PushItem, push};
use cowtree_remote::{Remote, RemoteConfig, pull};
use cowtree_store::{Store, ingest};

fn write(p: &Path, data: &[u8]) {
    fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
    fs::write(p, data).expect("write");
}

/// `file:///C:/...` for the absolute path `p`.
fn file_url(p: &Path) -> String {
    format!("file:///{}", p.display().to_string().replace('\\', "/"))
}

#[test]
fn a_file_url_with_a_drive_is_a_directory_and_one_without_is_refused() {
    assert_eq!(
        config::parse_url("file:///C:/remotes/one").expect("parses"),
        Location::File("C:/remotes/one".into())
    );
    for bad in ["file:///remotes/one", "file://relative", "file:///C:"] {
        assert!(config::parse_url(bad).is_err(), "{bad} accepted");
    }
}

#[test]
fn a_snapshot_pushed_to_a_directory_remote_is_pulled_into_another_store_with_the_same_id() {
    let t = tempfile::tempdir().expect("tempdir");
    let root = t.path();
    let src = root.join("src");
    for i in 0..20u32 {
        let body: Vec<u8> = (0..(300 + i * 1000)).map(|k| (k * 13 + i) as u8).collect();
        write(&src.join(format!("d{}/f{i}", i % 4)), &body);
    }
    write(&src.join("empty.txt"), b"");
    fs::create_dir_all(src.join("empty-dir")).expect("mkdir");
    // One blob larger than a pack's part, sent as an object of its own.
    let big: Vec<u8> = (0..(9u32 << 20)).map(|k| (k % 251) as u8).collect();
    write(&src.join("big.bin"), &big);

    let one = Store::open(&root.join("one")).expect("store one");
    let two = Store::open(&root.join("two")).expect("store two");
    let id = ingest::snapshot_dir(&one, &src, None).expect("snapshot").id;

    let dir = root.join("remote");
    fs::create_dir_all(&dir).expect("remote dir");
    let cfg = RemoteConfig {
        name: "origin".into(),
        url: file_url(&dir),
        endpoint: None,
        region: None,
    };
    assert_eq!(
        cfg.location().expect("location"),
        Location::File(dir.clone())
    );
    let remote = Remote::open(&cfg).expect("open remote");
    let items = [PushItem {
        id,
        name: Some("main".into()),
    }];
    let sent = push(&one, &remote, &items, false, &Progress::default()).expect("push");
    assert_eq!(sent.snapshots_sent, 1, "{sent:?}");
    assert!(dir.join("snapshots").join(id.to_hex()).is_file());

    let got = pull::pull(&two, &remote, &["main".to_string()], &Progress::default()).expect("pull");
    assert_eq!(got.ids, vec![id]);
    assert!(got.blobs_received >= 21, "{got:?}");
    assert_eq!(
        two.read_snapshot(&id).expect("manifest"),
        one.read_snapshot(&id).expect("manifest")
    );
    assert_eq!(
        cowtree_store::refs::resolve(&two, "main").expect("local name"),
        id
    );
    // Every blob arrived with its bytes: a checkout from the second store is the tree.
    let out = root.join("out");
    cowtree_store::checkout::checkout(
        &two,
        &id,
        &out,
        cowtree_store::checkout::CheckoutOptions {
            mode: cowtree_store::checkout::CheckoutMode::Auto,
            strict: false,
            preserve: cowtree_store::Preserve::NONE,
        },
        &|_| {},
    )
    .expect("checkout");
    assert_eq!(fs::read(out.join("big.bin")).expect("read"), big);
    assert_eq!(
        fs::read(out.join("d1/f5")).expect("read"),
        fs::read(src.join("d1/f5")).expect("read")
    );
    assert!(out.join("empty-dir").is_dir());

    // Nothing left to move either way.
    let again = push(&one, &remote, &items, false, &Progress::default()).expect("push again");
    assert_eq!(again.snapshots_sent, 0, "{again:?}");
    let again =
        pull::pull(&two, &remote, &[id.to_hex()], &Progress::default()).expect("pull again");
    assert_eq!(again.blobs_received, 0, "{again:?}");
}
