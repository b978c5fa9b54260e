//! The store commands as real processes on real mounts: cross-device, concurrency, kill -9,
//! manifest interchange, rm, verify, store location.

use std::ffi::OsStr;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common;
use crate::common::{bin, ok_json, run, s, snapshot};
use cowtree_testutil::{Fs, pattern, scratch};
use serde_json::{Value, json};

fn make_tree(root: &Path, files: usize, size: usize) {
    for i in 0..files {
        let d = root.join(format!("d{}", i % 17));
        fs::create_dir_all(&d).unwrap();
        fs::write(d.join(format!("f{i}")), pattern(size, i as u64)).unwrap();
    }
    fs::create_dir_all(root.join("empty")).unwrap();
    std::os::unix::fs::symlink("d0/f0", root.join("link")).unwrap();
    let exe = root.join("tool");
    fs::write(&exe, b"#!/bin/sh\n").unwrap();
    fs::set_permissions(&exe, fs::Permissions::from_mode(0o755)).unwrap();
    fs::write(root.join(OsStr::from_bytes(b"odd-\xff")), b"x").unwrap();
}

fn same_tree(a: &Path, b: &Path) {
    cowtree_testutil::assert_diff_clean(a, b);
}

#[test]
fn snapshot_and_checkout_json_report_what_ran() {
    let Some(dir) = scratch(Fs::Xfs) else { return };
    let (store, src) = (dir.path().join("store"), dir.path().join("src"));
    make_tree(&src, 40, 5000);
    let v = ok_json(
        &store,
        &[
            s("snapshot"),
            s("--json"),
            s("--name"),
            s("base"),
            src.as_os_str(),
        ],
    );
    for k in [
        "id",
        "files",
        "bytes",
        "new_blobs",
        "new_bytes",
        "elapsed_ms",
    ] {
        assert!(v.get(k).is_some(), "{k} missing: {v}");
    }
    assert_eq!(v["files"], 42);
    assert_eq!(v["new_blobs"], 42);
    let id = v["id"].as_str().unwrap();
    let dst = dir.path().join("wt");
    let c = ok_json(
        &store,
        &[s("checkout"), s("--json"), s(&id[..10]), dst.as_os_str()],
    );
    for k in [
        "files",
        "dirs",
        "symlinks",
        "cloned",
        "copied",
        "bytes",
        "fallbacks",
        "elapsed_ms",
    ] {
        assert!(c.get(k).is_some(), "{k} missing: {c}");
    }
    assert_eq!(c["files"], 42);
    assert_eq!(c["cloned"], 42);
    assert_eq!(c["copied"], 0);
    assert_eq!(c["symlinks"], 1);
    assert_eq!(c["fallbacks"], json!([]));
    same_tree(&src, &dst);
    let ls = ok_json(&store, &[s("ls"), s("--json")]);
    assert_eq!(ls["snapshots"][0]["names"], json!(["base"]));
}

#[test]
fn cross_device_store_warns_naming_the_fix_and_strict_refuses() {
    let (Some(a), Some(b)) = (scratch(Fs::Xfs), scratch(Fs::Xfs2)) else {
        return;
    };
    let store = b.path().join("store");
    let src = b.path().join("src");
    make_tree(&src, 5, 100);
    let id = snapshot(&store, &src);
    let strict_dst = a.path().join("strict");
    let out = run(
        &store,
        &[s("checkout"), s("--strict"), s(&id), strict_dst.as_os_str()],
    );
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("different filesystem") && err.contains("--store"),
        "{err}"
    );
    assert_eq!(
        fs::read_dir(a.path()).unwrap().count(),
        0,
        "strict wrote something"
    );

    let dst = a.path().join("wt");
    let out = run(
        &store,
        &[s("checkout"), s("--json"), s(&id), dst.as_os_str()],
    );
    assert!(out.status.success(), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("warning") && err.contains("COWTREE_STORE"),
        "{err}"
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["cross_device"], true);
    assert_eq!(v["cloned"], 0);
    assert_eq!(v["copied"], 7);
    assert_eq!(v["fallbacks"][0]["reason"], "cross-device");
    same_tree(&src, &dst);
}

#[test]
fn two_checkouts_of_one_snapshot_at_once_both_succeed() {
    let Some(dir) = scratch(Fs::Xfs) else { return };
    let (store, src) = (dir.path().join("store"), dir.path().join("src"));
    make_tree(&src, 600, 2000);
    let id = snapshot(&store, &src);
    for round in 0..4 {
        let dsts: Vec<PathBuf> = (0..2)
            .map(|i| dir.path().join(format!("wt-{round}-{i}")))
            .collect();
        let kids: Vec<Child> = dsts
            .iter()
            .map(|d| {
                bin()
                    .arg("--store")
                    .arg(&store)
                    .args([s("checkout"), s(&id), d.as_os_str()])
                    .stderr(Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        for k in kids {
            let out = k.wait_with_output().unwrap();
            assert!(
                out.status.success(),
                "round {round}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        for d in &dsts {
            same_tree(&src, d);
        }
    }
}

#[test]
fn gc_running_during_snapshot_and_checkout_never_breaks_them() {
    let Some(dir) = scratch(Fs::Xfs) else { return };
    let store = dir.path().join("store");
    let src = dir.path().join("src");
    make_tree(&src, 800, 3000);
    // An unreferenced blob for gc to find: a snapshot whose manifest is then removed.
    let junk = dir.path().join("junk");
    make_tree(&junk, 3, 77);
    let junk_id = snapshot(&store, &junk);
    assert!(run(&store, &[s("rm"), s(&junk_id)]).status.success());
    for round in 0..5 {
        // Round-specific content so each snapshot adds new blobs while gc runs.
        fs::write(
            src.join(format!("round-{round}")),
            pattern(4096, 1000 + round),
        )
        .unwrap();
        let spawn = |args: &[&OsStr]| {
            bin()
                .arg("--store")
                .arg(&store)
                .args(args)
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        };
        let snap = spawn(&[s("snapshot"), s("--json"), src.as_os_str()]);
        std::thread::sleep(Duration::from_millis(5 * round));
        let gc = spawn(&[s("gc"), s("--json")]);
        let out = snap.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let id = serde_json::from_slice::<Value>(&out.stdout).unwrap()["id"]
            .as_str()
            .unwrap()
            .to_string();
        let gc_out = gc.wait_with_output().unwrap();
        assert!(gc_out.status.success(), "{gc_out:?}");
        // The finished snapshot's blobs all survived gc, and a checkout racing another gc works.
        let dst = dir.path().join(format!("wt{round}"));
        let co = spawn(&[s("checkout"), s(&id), dst.as_os_str()]);
        let gc2 = spawn(&[s("gc")]);
        let co_out = co.wait_with_output().unwrap();
        assert!(
            co_out.status.success(),
            "{}",
            String::from_utf8_lossy(&co_out.stderr)
        );
        assert!(gc2.wait_with_output().unwrap().status.success());
        same_tree(&src, &dst);
        let v = ok_json(&store, &[s("verify"), s("--json")]);
        assert_eq!(v["ok"], true, "round {round}: {v}");
    }
}

#[test]
fn interrupted_snapshot_leaves_only_staging_that_gc_removes() {
    let Some(dir) = scratch(Fs::NoCow) else {
        return;
    };
    let store = dir.path().join("store");
    let src = dir.path().join("src");
    make_tree(&src, 3000, 16 * 1024);
    // Create the store first so its tmp/ can be watched.
    common::init_store(&store);
    let mut killed_mid_run = 0;
    for _ in 0..3 {
        let mut child = bin()
            .arg("--store")
            .arg(&store)
            .args([s("snapshot"), src.as_os_str()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let started = Instant::now();
        // Wait until blobs are being placed, then kill -9.
        let mut placed = false;
        while started.elapsed() < Duration::from_secs(20) {
            let blobs = fs::read_dir(store.join("blobs"))
                .unwrap()
                .any(|f| fs::read_dir(f.unwrap().path()).unwrap().next().is_some());
            if blobs {
                placed = true;
                break;
            }
            if child.try_wait().unwrap().is_some() {
                break;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        let pid = child.id() as i32;
        let _ = Command::new("kill").arg("-9").arg(pid.to_string()).status();
        let status = child.wait().unwrap();
        if placed && !status.success() {
            killed_mid_run += 1;
            // No snapshot was recorded; only staging and unreferenced blobs remain.
            assert_eq!(fs::read_dir(store.join("snapshots")).unwrap().count(), 0);
            assert!(fs::read_dir(store.join("tmp")).unwrap().count() >= 1);
            let v = ok_json(&store, &[s("gc"), s("--json")]);
            assert!(v["staging_removed"].as_u64().unwrap() >= 1, "{v}");
            assert!(v["blobs_removed"].as_u64().unwrap() >= 1, "{v}");
            assert_eq!(fs::read_dir(store.join("tmp")).unwrap().count(), 0);
            let v = ok_json(&store, &[s("verify"), s("--json")]);
            assert_eq!(v["ok"], true, "{v}");
            assert_eq!(v["blobs_checked"], 0, "{v}");
        } else {
            // It finished before the kill: start over with an empty store.
            fs::remove_dir_all(&store).unwrap();
            common::init_store(&store);
        }
    }
    assert!(killed_mid_run >= 1, "never caught the snapshot mid-run");
}

#[test]
fn from_json_rejects_bad_entries_naming_them_and_writes_nothing() {
    let Some(dir) = scratch(Fs::Xfs) else { return };
    let store = dir.path().join("store");
    let src = dir.path().join("src");
    make_tree(&src, 3, 10);
    let id = snapshot(&store, &src);
    let shown = ok_json(&store, &[s("show"), s("--json"), s(&id)]);
    assert_eq!(shown["format"], "cowtree-manifest");
    assert_eq!(shown["version"], 1);
    let blob = shown["entries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["kind"] == "file")
        .unwrap()
        .clone();
    let file = |p: &str| {
        let mut e = blob.clone();
        e["path"] = json!(p);
        e
    };
    let cases: Vec<(&str, Vec<Value>, &str)> = vec![
        ("dotdot", vec![file("a/../../etc/x")], "'..'"),
        ("absolute", vec![file("/etc/passwd")], "absolute"),
        ("nul", vec![file("a\u{0}b")], "NUL"),
        ("empty-component", vec![file("a//b")], "empty"),
        ("duplicate", vec![file("a"), file("a")], "duplicate"),
        ("beneath-file", vec![file("a"), file("a/b")], "beneath file"),
        (
            "beneath-symlink",
            vec![
                json!({"path": "l", "kind": "symlink", "target": "/tmp"}),
                file("l/x"),
            ],
            "beneath symlink",
        ),
        (
            "unknown-kind",
            vec![json!({"path": "p", "kind": "fifo"})],
            "unknown kind",
        ),
        (
            "missing-blob",
            vec![json!({"path": "m", "kind": "file", "size": 1, "blob": "ab".repeat(32)})],
            "not in the store",
        ),
    ];
    let count = |d: &str| fs::read_dir(store.join(d)).unwrap().count();
    let before = (count("snapshots"), count("refs"));
    for (name, entries, want) in cases {
        let doc = json!({"format": "cowtree-manifest", "version": 1, "entries": entries});
        let f = dir.path().join(format!("{name}.json"));
        fs::write(&f, doc.to_string()).unwrap();
        let out = run(
            &store,
            &[
                s("snapshot"),
                s("--name"),
                s(name),
                s("--from-json"),
                f.as_os_str(),
            ],
        );
        assert_eq!(out.status.code(), Some(1), "{name}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(want) && err.contains("entry"), "{name}: {err}");
        assert_eq!((count("snapshots"), count("refs")), before, "{name} wrote");
    }
    // The show --json output reads back to the same snapshot.
    let f = dir.path().join("shown.json");
    fs::write(&f, shown.to_string()).unwrap();
    let v = ok_json(
        &store,
        &[s("snapshot"), s("--json"), s("--from-json"), f.as_os_str()],
    );
    assert_eq!(v["id"], json!(id));
}

#[test]
fn rm_refuses_while_a_registered_worktree_exists_unless_forced() {
    let Some(dir) = scratch(Fs::Btrfs) else {
        return;
    };
    let store = dir.path().join("store");
    let src = dir.path().join("src");
    make_tree(&src, 4, 10);
    let id = snapshot(&store, &src);
    assert!(
        run(&store, &[s("tag"), s("v1"), s(&id[..8])])
            .status
            .success()
    );
    let wt = dir.path().join("wt");
    assert!(
        run(&store, &[s("checkout"), s("v1"), wt.as_os_str()])
            .status
            .success()
    );
    // One record (the worktree layer adds a `<id>.stat` sidecar beside it).
    let records = fs::read_dir(store.join("worktrees"))
        .unwrap()
        .filter(|e| {
            !e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .contains('.')
        })
        .count();
    assert_eq!(records, 1);
    let out = run(&store, &[s("rm"), s("v1")]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains(wt.to_str().unwrap()));
    fs::remove_dir_all(&wt).unwrap();
    let out = run(&store, &[s("rm"), s("v1")]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(fs::read_dir(store.join("refs")).unwrap().count(), 0);
    let v = ok_json(&store, &[s("gc"), s("--json")]);
    assert_eq!(v["blobs_removed"], 6, "{v}");
    assert_eq!(v["worktrees_pruned"], 1, "{v}");
    // --force removes a snapshot that is in use.
    let id2 = snapshot(&store, &src);
    let wt2 = dir.path().join("wt2");
    assert!(
        run(&store, &[s("checkout"), s(&id2), wt2.as_os_str()])
            .status
            .success()
    );
    assert!(!run(&store, &[s("rm"), s(&id2)]).status.success());
    assert!(
        run(&store, &[s("rm"), s("--force"), s(&id2)])
            .status
            .success()
    );
}

#[test]
fn verify_exits_4_listing_a_corrupted_blob() {
    let Some(dir) = scratch(Fs::Xfs) else { return };
    let store = dir.path().join("store");
    let src = dir.path().join("src");
    make_tree(&src, 2, 100);
    snapshot(&store, &src);
    let out = run(&store, &[s("verify")]);
    assert!(out.status.success());
    let hash = blake3::hash(&pattern(100, 1)).to_hex().to_string();
    let blob = store.join("blobs").join(&hash[..2]).join(&hash[2..]);
    fs::set_permissions(&blob, fs::Permissions::from_mode(0o644)).unwrap();
    fs::write(&blob, b"tampered").unwrap();
    let out = run(&store, &[s("verify")]);
    assert_eq!(out.status.code(), Some(4));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("corrupt-blob") && text.contains(&hash[2..]),
        "{text}"
    );
    assert!(text.contains("writable-blob"), "{text}");
}

#[test]
fn store_location_comes_from_option_then_environment() {
    let Some(dir) = scratch(Fs::NoCow) else {
        return;
    };
    let src = dir.path().join("src");
    fs::create_dir(&src).unwrap();
    fs::write(src.join("f"), b"x").unwrap();
    let env_store = dir.path().join("env-store");
    let out = bin()
        .env("COWTREE_STORE", &env_store)
        .arg("snapshot")
        .arg(&src)
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(env_store.join("format").is_file());
    // The default location, on the tree's filesystem (both under the same scratch dir).
    let xdg = dir.path().join("xdg");
    let out = bin()
        .env("XDG_DATA_HOME", &xdg)
        .arg("snapshot")
        .arg(&src)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(xdg.join("cowtree/format").is_file());
    let opt = dir.path().join("opt-store");
    let out = bin()
        .env("COWTREE_STORE", &env_store)
        .arg("--store")
        .arg(&opt)
        .arg("snapshot")
        .arg(&src)
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(opt.join("format").is_file());
    fs::write(opt.join("format"), "cowtree-store 2\n").unwrap();
    let out = bin().arg("--store").arg(&opt).arg("ls").output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("format version 2"));
}

#[test]
fn checkout_refuses_a_non_empty_destination_and_accepts_an_empty_one() {
    let Some(dir) = scratch(Fs::Xfs) else { return };
    let store = dir.path().join("store");
    let src = dir.path().join("src");
    make_tree(&src, 2, 10);
    let id = snapshot(&store, &src);
    let full = dir.path().join("full");
    fs::create_dir(&full).unwrap();
    fs::write(full.join("keep"), b"mine").unwrap();
    let out = run(&store, &[s("checkout"), s(&id), full.as_os_str()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not empty"));
    assert_eq!(fs::read(full.join("keep")).unwrap(), b"mine");
    let empty = dir.path().join("empty");
    fs::create_dir(&empty).unwrap();
    assert!(
        run(&store, &[s("checkout"), s(&id), empty.as_os_str()])
            .status
            .success()
    );
    same_tree(&src, &empty);
}

/// The checkout staging directories beside a destination named `name` in `parent`.
fn checkout_staging_in(parent: &Path, name: &str) -> Vec<PathBuf> {
    let prefix = format!(".{name}.cowtree-checkout-");
    fs::read_dir(parent)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .unwrap()
                .as_bytes()
                .starts_with(prefix.as_bytes())
        })
        .collect()
}

#[test]
fn checkout_killed_mid_run_leaves_no_dst_and_the_next_checkout_removes_its_staging() {
    let Some(dir) = scratch(Fs::Xfs) else { return };
    let store = dir.path().join("store");
    let src = dir.path().join("src");
    make_tree(&src, 4000, 1024);
    let id = snapshot(&store, &src);
    let dst = dir.path().join("wt");
    let mut killed_mid_run = 0;
    for _ in 0..5 {
        let mut child = bin()
            .arg("--store")
            .arg(&store)
            .args([s("checkout"), s(&id)])
            .arg(&dst)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let started = Instant::now();
        // kill -9 as soon as the staging directory holds something.
        let mut caught = false;
        while started.elapsed() < Duration::from_secs(20) && child.try_wait().unwrap().is_none() {
            if let Some(stage) = checkout_staging_in(dir.path(), "wt").first()
                && fs::read_dir(stage).is_ok_and(|mut d| d.next().is_some())
            {
                caught = true;
                break;
            }
            std::thread::sleep(Duration::from_micros(200));
        }
        let pid = child.id() as i32;
        let _ = Command::new("kill").arg("-9").arg(pid.to_string()).status();
        let status = child.wait().unwrap();
        if caught && !status.success() {
            killed_mid_run += 1;
            assert!(!dst.exists(), "a killed checkout left a destination");
            assert_eq!(checkout_staging_in(dir.path(), "wt").len(), 1);
            break;
        }
        // It finished before the kill: try again.
        if dst.exists() {
            fs::remove_dir_all(&dst).unwrap();
        }
    }
    assert!(killed_mid_run >= 1, "never caught the checkout mid-run");

    // A checkout to another destination leaves that staging alone; the next checkout to the
    // same destination removes it and completes.
    let other = dir.path().join("other");
    ok_json(
        &store,
        &[s("checkout"), s("--json"), s(&id), other.as_os_str()],
    );
    assert_eq!(checkout_staging_in(dir.path(), "wt").len(), 1);
    ok_json(
        &store,
        &[s("checkout"), s("--json"), s(&id), dst.as_os_str()],
    );
    assert_eq!(checkout_staging_in(dir.path(), "wt"), Vec::<PathBuf>::new());
    same_tree(&src, &dst);
}

#[test]
fn blobs_are_read_only_under_a_restrictive_umask() {
    let Some(dir) = scratch(Fs::Xfs) else { return };
    let store = dir.path().join("store");
    let src = dir.path().join("src");
    make_tree(&src, 200, 4096);
    let out = common::isolated(Command::new("sh"))
        .arg("-c")
        .arg("umask 077; exec \"$0\" --store \"$1\" snapshot --json \"$2\"")
        .arg(env!("CARGO_BIN_EXE_cowtree"))
        .arg(&store)
        .arg(&src)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut blobs = 0;
    for fan in fs::read_dir(store.join("blobs")).unwrap() {
        for blob in fs::read_dir(fan.unwrap().path()).unwrap() {
            let blob = blob.unwrap().path();
            let mode = fs::symlink_metadata(&blob).unwrap().permissions().mode() & 0o7777;
            assert_eq!(mode, 0o444, "{}", blob.display());
            blobs += 1;
        }
    }
    assert!(blobs >= 200, "{blobs} blobs");
    let v = ok_json(&store, &[s("verify"), s("--json")]);
    assert_eq!(v["ok"], true, "{v}");
}

#[test]
fn gc_removes_a_temporary_manifest_left_by_a_killed_writer_and_keeps_the_snapshots() {
    let Some(dir) = scratch(Fs::Xfs) else { return };
    let store = dir.path().join("store");
    let src = dir.path().join("src");
    make_tree(&src, 40, 3000);
    let id = snapshot(&store, &src);
    // What a writer killed between writing its manifest and renaming it leaves behind.
    let leftover = store.join("snapshots/.tmp-4242-0-0badcafe");
    fs::write(&leftover, b"CTMANIF\n partial").unwrap();
    let v = ok_json(&store, &[s("gc"), s("--dry-run"), s("--json")]);
    assert_eq!(v["staging_removed"], 1, "{v}");
    assert!(leftover.exists(), "a dry run removes nothing");
    let v = ok_json(&store, &[s("gc"), s("--json")]);
    assert_eq!(v["staging_removed"], 1, "{v}");
    assert!(!leftover.exists());
    let names: Vec<_> = fs::read_dir(store.join("snapshots"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(names, vec![id.clone()]);
    let v = ok_json(&store, &[s("verify"), s("--json")]);
    assert_eq!(v["ok"], true, "{v}");
}
