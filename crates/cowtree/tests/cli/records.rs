//! Worktree records and temporary files after crashes: a record always carries its root's
//! device and inode, one that lacks them is repaired (never zeroed, never pruned while its
//! directory exists), and gc removes the temporary files a crash leaves in `refs/` and
//! `worktrees/`.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::{Duration, SystemTime};

use crate::common::{cowtree, s};
use cowtree_store::Store;
use cowtree_store::checkout::{CheckoutMode, CheckoutOptions, checkout};
use cowtree_testutil::Fs;

fn record_path(store: &Path, wt: &Path) -> std::path::PathBuf {
    let abs = fs::canonicalize(wt).expect("canonicalize");
    store
        .join("worktrees")
        .join(cowtree_store::worktree_records::worktree_id(&abs))
}

fn record(store: &Path, wt: &Path) -> serde_json::Value {
    serde_json::from_slice(&fs::read(record_path(store, wt)).expect("read record"))
        .expect("record is JSON")
}

/// A store in `dir/store` holding the sample tree (made in `dir/src`) as snapshot `base`.
fn store_with_base(dir: &Path) -> std::path::PathBuf {
    let src = dir.join("src");
    cowtree_testutil::tree::sample_tree(&src);
    let store = dir.join("store");
    cowtree(
        &store,
        &[s("snapshot"), s("--name"), s("base"), src.as_os_str()],
    )
    .assert_ok("snapshot");
    store
}

fn set_mtime_ago(path: &Path, ago: Duration) {
    let f = fs::File::options()
        .write(true)
        .open(path)
        .expect("open temp file");
    f.set_modified(SystemTime::now() - ago).expect("set mtime");
}

#[test]
fn library_checkout_records_the_roots_device_and_inode() {
    let Some(tmp) = cowtree_testutil::scratch(Fs::Xfs) else {
        return;
    };
    let src = tmp.path().join("src");
    cowtree_testutil::tree::sample_tree(&src);
    let store_path = tmp.path().join("store");
    let store = Store::open(&store_path).expect("open store");
    let id = cowtree_store::ingest::snapshot_dir(&store, &src, None)
        .expect("snapshot")
        .id;
    let wt = tmp.path().join("wt");
    let opts = CheckoutOptions {
        mode: CheckoutMode::Auto,
        strict: true,
        preserve: cowtree_store::Preserve::NONE,
    };
    checkout(&store, &id, &wt, opts, &|w| {
        panic!("no warning expected: {w}")
    })
    .expect("checkout");
    let rec = record(&store_path, &wt);
    let md = fs::metadata(&wt).expect("stat wt");
    assert_eq!(rec["dev"], md.dev(), "{rec}");
    assert_eq!(rec["ino"], md.ino(), "{rec}");
    // And the worktree stays registered through status and gc.
    cowtree(&store_path, &[s("status"), wt.as_os_str()]).assert_ok("status");
    let gc = cowtree(&store_path, &[s("gc"), s("--json")]);
    gc.assert_ok("gc");
    assert_eq!(gc.json()["worktrees_pruned"], 0, "{}", gc.stdout);
    assert_eq!(record(&store_path, &wt)["ino"], md.ino());
}

#[test]
fn a_record_without_dev_and_ino_is_repaired_from_its_directory_not_zeroed_or_pruned() {
    let Some(tmp) = cowtree_testutil::scratch(Fs::NoCow) else {
        return;
    };
    let store = store_with_base(tmp.path());
    let wt = tmp.path().join("wt");
    cowtree(&store, &[s("checkout"), s("base"), wt.as_os_str()]).assert_ok("checkout");
    let md = fs::metadata(&wt).expect("stat wt");
    for damage in ["drop", "zero"] {
        // As an older version left it: without dev and ino, or with 0 and 0.
        let mut rec = record(&store, &wt);
        let obj = rec.as_object_mut().expect("object");
        match damage {
            "drop" => {
                obj.remove("dev");
                obj.remove("ino");
            }
            _ => {
                obj.insert("dev".into(), 0.into());
                obj.insert("ino".into(), 0.into());
            }
        }
        fs::write(record_path(&store, &wt), serde_json::to_vec(&rec).unwrap()).expect("write");

        let list = cowtree(&store, &[s("worktrees"), s("--json")]);
        list.assert_ok("worktrees");
        assert!(
            list.stdout.contains("\"present\""),
            "{damage}: a record without dev/ino whose directory is there is present: {}",
            list.stdout
        );
        let gc = cowtree(&store, &[s("gc"), s("--json")]);
        gc.assert_ok("gc");
        assert_eq!(gc.json()["worktrees_pruned"], 0, "{damage}: {}", gc.stdout);
        cowtree(&store, &[s("status"), s("--exit-code"), wt.as_os_str()]).assert_ok("status");
        let rec = record(&store, &wt);
        assert_eq!(rec["dev"], md.dev(), "{damage}: repaired: {rec}");
        assert_eq!(rec["ino"], md.ino(), "{damage}: repaired: {rec}");
        let rm = cowtree(&store, &[s("rm"), s("base")]);
        rm.assert_error("rm of the base of a registered worktree");
        assert!(rm.stderr.contains("in use"), "{}", rm.stderr);
    }
}

#[test]
fn a_record_without_dev_and_ino_whose_path_holds_no_directory_is_listed_and_pruned() {
    let Some(tmp) = cowtree_testutil::scratch(Fs::NoCow) else {
        return;
    };
    let store = store_with_base(tmp.path());
    let replaced = tmp.path().join("replaced");
    let missing = tmp.path().join("missing");
    let mut files = Vec::new();
    for wt in [&replaced, &missing] {
        cowtree(&store, &[s("checkout"), s("base"), wt.as_os_str()]).assert_ok("checkout");
        // As an older version left it: without dev and ino.
        let mut rec = record(&store, wt);
        let obj = rec.as_object_mut().expect("object");
        obj.remove("dev");
        obj.remove("ino");
        let file = record_path(&store, wt);
        fs::write(&file, serde_json::to_vec(&rec).unwrap()).expect("write");
        files.push(file);
        fs::remove_dir_all(wt).expect("remove worktree");
    }
    fs::write(&replaced, b"a file where the worktree was").expect("write");

    let list = cowtree(&store, &[s("worktrees"), s("--json")]);
    list.assert_ok("worktrees");
    let mut states: Vec<(String, String)> = list.json()["worktrees"]
        .as_array()
        .expect("worktrees")
        .iter()
        .map(|w| {
            (
                w["path"].as_str().unwrap_or_default().to_string(),
                w["state"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    states.sort();
    let name = |p: &Path| p.to_str().unwrap().to_string();
    assert_eq!(
        states,
        vec![
            (name(&missing), "missing".to_string()),
            (name(&replaced), "replaced".to_string())
        ],
        "{}",
        list.stdout
    );
    // Listing writes nothing back.
    for f in &files {
        let rec: serde_json::Value = serde_json::from_slice(&fs::read(f).unwrap()).unwrap();
        assert!(rec.get("ino").is_none(), "{rec}");
    }
    let gc = cowtree(&store, &[s("gc"), s("--json")]);
    gc.assert_ok("gc");
    assert_eq!(gc.json()["worktrees_pruned"], 2, "{}", gc.stdout);
    for f in &files {
        assert!(!f.exists(), "{} pruned", f.display());
    }
    cowtree(&store, &[s("rm"), s("base")]).assert_ok("rm of a base nothing uses any more");
}

#[test]
fn snapshot_of_a_worktree_whose_record_is_unreadable_reads_every_file() {
    let Some(tmp) = cowtree_testutil::scratch(Fs::NoCow) else {
        return;
    };
    let store = store_with_base(tmp.path());
    let wt = tmp.path().join("wt");
    cowtree(&store, &[s("checkout"), s("base"), wt.as_os_str()]).assert_ok("checkout");
    let file = record_path(&store, &wt);
    fs::write(&file, b"{ not a record").expect("write");
    let snap = cowtree(&store, &[s("snapshot"), s("--json"), wt.as_os_str()]);
    snap.assert_ok("snapshot of a DIR whose record cannot be read");
    assert!(snap.json().get("incremental").is_none(), "{}", snap.stdout);
    assert!(
        snap.json()["files"].as_u64().unwrap() > 0,
        "{}",
        snap.stdout
    );
    assert_eq!(
        fs::read(&file).unwrap(),
        b"{ not a record",
        "record left alone"
    );
}

#[test]
fn gc_removes_old_temporary_files_in_refs_and_worktrees_and_keeps_fresh_ones() {
    let Some(tmp) = cowtree_testutil::scratch(Fs::NoCow) else {
        return;
    };
    let src = tmp.path().join("src");
    cowtree_testutil::tree::sample_tree(&src);
    let store = tmp.path().join("store");
    cowtree(
        &store,
        &[s("snapshot"), s("--name"), s("a"), src.as_os_str()],
    )
    .assert_ok("snapshot");
    let mut old = Vec::new();
    let mut fresh = Vec::new();
    for sub in ["refs", "worktrees"] {
        let o = store.join(sub).join(".tmp-4242-0-0000beef");
        fs::write(&o, b"left by a crash").expect("write");
        set_mtime_ago(&o, Duration::from_secs(3 * 3600));
        old.push(o);
        let f = store.join(sub).join(".tmp-4242-1-0000cafe");
        fs::write(&f, b"a writer at work").expect("write");
        fresh.push(f);
    }
    let dry = cowtree(&store, &[s("gc"), s("--dry-run"), s("--json")]);
    dry.assert_ok("gc --dry-run");
    assert_eq!(dry.json()["staging_removed"], 2, "{}", dry.stdout);
    assert!(old.iter().all(|p| p.exists()), "a dry run removes nothing");
    let gc = cowtree(&store, &[s("gc"), s("--json")]);
    gc.assert_ok("gc");
    assert_eq!(gc.json()["staging_removed"], 2, "{}", gc.stdout);
    for p in &old {
        assert!(!p.exists(), "{} was left", p.display());
    }
    for p in &fresh {
        assert!(p.exists(), "{} (fresh) was removed", p.display());
    }
    // The name is untouched.
    cowtree(&store, &[s("show"), s("a")]).assert_ok("show a");
}
