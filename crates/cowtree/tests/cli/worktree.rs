//! The worktree commands as real processes on real mounts: status, worktrees, worktree rm,
//! snapshot of a worktree, and kill -9 during switch and reset.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::common::{bin, ok, ok_json, run, run_killed_after, s, snapshot};
use cowtree_testutil::{Fs, XorShift, pattern, scratch};
use serde_json::Value;

fn write(p: &Path, data: &[u8]) {
    fs::create_dir_all(p.parent().unwrap()).unwrap();
    fs::write(p, data).unwrap();
}

fn same_tree(a: &Path, b: &Path) {
    cowtree_testutil::assert_diff_clean(a, b);
}

/// Every non-directory beneath `root`: relative path -> content (a symlink: "->target").
fn contents(root: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            let m = fs::symlink_metadata(e.path()).unwrap();
            let rel = e.path().strip_prefix(root).unwrap().display().to_string();
            if m.is_dir() {
                stack.push(e.path());
            } else if m.file_type().is_symlink() {
                let mut v = b"->".to_vec();
                v.extend_from_slice(
                    fs::read_link(e.path())
                        .unwrap()
                        .as_os_str()
                        .as_encoded_bytes(),
                );
                out.insert(rel, v);
            } else {
                out.insert(rel, fs::read(e.path()).unwrap());
            }
        }
    }
    out
}

#[test]
fn status_cli_reports_json_exit_code_and_finds_the_worktree_from_a_subdirectory() {
    let Some(dir) = scratch(Fs::Xfs) else { return };
    let (store, src) = (dir.path().join("store"), dir.path().join("src"));
    for i in 0..20 {
        write(&src.join(format!("d{}/f{i}", i % 4)), &pattern(100, i));
    }
    let id = snapshot(&store, &src);
    let wt = dir.path().join("wt");
    ok(&store, &[s("checkout"), s(&id), wt.as_os_str()]);
    let out = run(&store, &[s("status"), s("--exit-code"), wt.as_os_str()]);
    assert_eq!(out.status.code(), Some(0));
    fs::write(wt.join("d1/f1"), b"edited").unwrap();
    fs::write(wt.join("new"), b"n").unwrap();
    let out = run(&store, &[s("status"), s("--exit-code"), wt.as_os_str()]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "M d1/f1\nA new\n");
    let out = bin()
        .arg("--store")
        .arg(&store)
        .args(["status", "--json"])
        .current_dir(wt.join("d2"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["modified"], serde_json::json!(["d1/f1"]));
    assert_eq!(v["added"], serde_json::json!(["new"]));
    assert_eq!(v["clean"], false);
    assert_eq!(v["base"], id.as_str());
    // Outside any worktree: an error naming the directory.
    let out = bin()
        .arg("--store")
        .arg(&store)
        .arg("status")
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not inside a worktree"));
}

#[test]
fn worktree_rm_refuses_a_dirty_worktree_unless_forced_and_worktrees_lists_states() {
    let Some(dir) = scratch(Fs::Xfs) else { return };
    let (store, src) = (dir.path().join("store"), dir.path().join("src"));
    write(&src.join("a"), b"a");
    let id = snapshot(&store, &src);
    let (w1, w2, w3) = (
        dir.path().join("w1"),
        dir.path().join("w2"),
        dir.path().join("w3"),
    );
    for w in [&w1, &w2, &w3] {
        ok(&store, &[s("checkout"), s(&id), w.as_os_str()]);
    }
    fs::write(w1.join("a"), b"changed").unwrap();
    let out = run(&store, &[s("worktree"), s("rm"), w1.as_os_str()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("\"a\""));
    assert!(w1.join("a").exists());
    ok(
        &store,
        &[s("worktree"), s("rm"), s("--force"), w1.as_os_str()],
    );
    assert!(!w1.exists());
    ok(&store, &[s("worktree"), s("rm"), w2.as_os_str()]);
    assert!(!w2.exists());
    fs::remove_dir_all(&w3).unwrap();
    let v = ok_json(&store, &[s("worktrees"), s("--json")]);
    let list = v["worktrees"].as_array().unwrap();
    assert_eq!(list.len(), 1, "{v}");
    assert_eq!(list[0]["state"], "missing");
    let g = ok_json(&store, &[s("gc"), s("--json")]);
    assert_eq!(g["worktrees_pruned"], 1);
    let v = ok_json(&store, &[s("worktrees"), s("--json")]);
    assert_eq!(v["worktrees"].as_array().unwrap().len(), 0);
    ok(&store, &[s("rm"), s(&id)]);
}

#[test]
fn snapshot_of_a_worktree_is_incremental_and_moves_the_base_unless_kept() {
    let Some(dir) = scratch(Fs::Btrfs) else {
        return;
    };
    let (store, src) = (dir.path().join("store"), dir.path().join("src"));
    for i in 0..50 {
        write(&src.join(format!("f{i}")), &pattern(1000, i));
    }
    let id = snapshot(&store, &src);
    let wt = dir.path().join("wt");
    ok(&store, &[s("checkout"), s(&id), wt.as_os_str()]);
    std::thread::sleep(Duration::from_millis(100));
    fs::write(wt.join("f7"), b"new bytes").unwrap();
    std::thread::sleep(Duration::from_millis(100));
    let v = ok_json(
        &store,
        &[s("snapshot"), s("--json"), s("--keep-base"), wt.as_os_str()],
    );
    assert_eq!(v["incremental"], true);
    assert_eq!(v["read"], 1);
    // Only a file's content changed: the root's directory record, written by the checkout,
    // proves its listing, so no directory is listed.
    assert_eq!(v["listed_dirs"], 0, "{v}");
    assert_eq!(v["base_updated"], false);
    let full = ok_json(
        &store,
        &[s("snapshot"), s("--json"), s("--full"), wt.as_os_str()],
    );
    assert_eq!(full["id"], v["id"]);
    let st = run(&store, &[s("status"), s("--exit-code"), wt.as_os_str()]);
    assert_eq!(st.status.code(), Some(1), "base stays: still dirty");
    let v2 = ok_json(&store, &[s("snapshot"), s("--json"), wt.as_os_str()]);
    assert_eq!(v2["id"], v["id"]);
    assert_eq!(v2["base_updated"], true);
    let st = run(&store, &[s("status"), s("--exit-code"), wt.as_os_str()]);
    assert_eq!(st.status.code(), Some(0));
    let help = bin().args(["help", "snapshot"]).output().unwrap();
    assert!(String::from_utf8_lossy(&help.stdout).contains("--keep-base"));
}

/// `status --json` of `wt`: (hashed, clean).
fn status_hashed(store: &Path, wt: &Path) -> (u64, bool) {
    let v = ok_json(store, &[s("status"), s("--json"), wt.as_os_str()]);
    (v["hashed"].as_u64().unwrap(), v["clean"].as_bool().unwrap())
}

#[test]
fn status_right_after_switch_and_reset_hashes_nothing_yet_sees_a_same_size_edit() {
    for fs_kind in [Fs::Xfs, Fs::Btrfs] {
        let Some(dir) = scratch(fs_kind) else {
            continue;
        };
        let (store, a, b) = (
            dir.path().join("store"),
            dir.path().join("a"),
            dir.path().join("b"),
        );
        for i in 0..300u64 {
            write(&a.join(format!("d{}/f{i}", i % 7)), &pattern(2000, i));
            let seed = if i % 3 == 0 { i + 1000 } else { i };
            write(&b.join(format!("d{}/f{i}", i % 7)), &pattern(2000, seed));
        }
        let (ia, ib) = (snapshot(&store, &a), snapshot(&store, &b));
        let wt = dir.path().join("wt");
        ok(&store, &[s("checkout"), s(&ia), wt.as_os_str()]);
        // Past the racy window of the checkout's own records and of the switch's.
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(status_hashed(&store, &wt), (0, true), "after checkout");
        ok(&store, &[s("switch"), s(&ib), wt.as_os_str()]);
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(status_hashed(&store, &wt), (0, true), "after switch");
        // Rewritten with other bytes of the same size: seen (not trusted blindly).
        fs::write(wt.join("d0/f0"), pattern(2000, 7)).unwrap();
        let v = ok_json(&store, &[s("status"), s("--json"), wt.as_os_str()]);
        assert_eq!(v["modified"], serde_json::json!(["d0/f0"]), "{v}");
        for i in (0..300u64).step_by(5) {
            fs::write(wt.join(format!("d{}/f{i}", i % 7)), pattern(2000, i + 77)).unwrap();
        }
        ok(&store, &[s("reset"), s("-C"), wt.as_os_str()]);
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(status_hashed(&store, &wt), (0, true), "after reset");
        same_tree(&b, &wt);
        ok(&store, &[s("switch"), s(&ia), wt.as_os_str()]);
        fs::write(wt.join("d3/f3"), pattern(2000, 8)).unwrap();
        let v = ok_json(&store, &[s("status"), s("--json"), wt.as_os_str()]);
        assert_eq!(v["modified"], serde_json::json!(["d3/f3"]), "{v}");
    }
}

/// Tree A, and tree B differing in half of its files plus added, removed and transformed
/// entries.
fn two_trees(a: &Path, b: &Path) {
    for i in 0..1200u64 {
        let p = format!("d{}/s{}/f{i}", i % 12, i % 5);
        write(&a.join(&p), &pattern(4000 + (i as usize % 7) * 1000, i));
        let data = if i % 2 == 0 {
            pattern(4000 + (i as usize % 7) * 1000, i + 100_000)
        } else {
            pattern(4000 + (i as usize % 7) * 1000, i)
        };
        if i % 97 != 5 {
            write(&b.join(&p), &data);
        }
    }
    for i in 0..100 {
        write(&b.join(format!("added/a{i}")), &pattern(3000, i + 7));
    }
    write(&a.join("x/file-then-dir"), b"file");
    write(&b.join("x/file-then-dir/inner"), b"dir now");
    write(&a.join("x/dir-then-file/inner"), b"dir");
    write(&b.join("x/dir-then-file"), b"file now");
    write(&a.join("x/file-then-link"), b"file");
    fs::create_dir_all(b.join("x")).unwrap();
    std::os::unix::fs::symlink("../d0", b.join("x/file-then-link")).unwrap();
}

/// Runs cowtree with `args` on `store` and sends it SIGKILL after a pseudo-random delay of up
/// to 1.1 times `one` (the command's calibrated duration; `rng` picks the delay).
/// Returns whether the command finished (successfully) before the kill.
fn run_killed_at_random(store: &Path, args: &[&OsStr], one: Duration, rng: &mut XorShift) -> bool {
    run_killed_after(
        store,
        args,
        one.mul_f64(rng.below(1000) as f64 / 1000.0 * 1.1),
    )
}

#[test]
fn kill_9_during_switch_leaves_whole_files_and_a_rerun_reaches_the_target_exactly() {
    let Some(dir) = scratch(Fs::Xfs) else { return };
    let store = dir.path().join("store");
    let (src_a, src_b) = (dir.path().join("a"), dir.path().join("b"));
    two_trees(&src_a, &src_b);
    let a = snapshot(&store, &src_a);
    let b = snapshot(&store, &src_b);
    let (ca, cb) = (contents(&src_a), contents(&src_b));
    let wt = dir.path().join("wt");
    ok(&store, &[s("checkout"), s(&a), wt.as_os_str()]);
    // Calibrate: how long one switch takes here.
    let t = Instant::now();
    ok(&store, &[s("switch"), s(&b), wt.as_os_str()]);
    ok(&store, &[s("switch"), s(&a), wt.as_os_str()]);
    let one = t.elapsed() / 2;
    let mut rng = XorShift::new(0x2545_F491_4F6C_DD1D);
    let mut interrupted = 0;
    // 20 rounds in the full tier; in the README's run 6, or more until one was interrupted.
    let rounds = cowtree_testutil::rounds_until(20, 6);
    for round in 0u64.. {
        if rounds.done(round, interrupted > 0) {
            break;
        }
        let (target, src, want) = if round % 2 == 0 {
            (&b, &src_b, &cb)
        } else {
            (&a, &src_a, &ca)
        };
        if !run_killed_at_random(
            &store,
            &[s("switch"), s(target), wt.as_os_str()],
            one,
            &mut rng,
        ) {
            interrupted += 1;
        }
        // No file holds partial content under its final name: each is whole A or whole B.
        for (p, data) in contents(&wt) {
            let name = Path::new(&p).file_name().unwrap().to_string_lossy();
            if name.starts_with(".cowtree-tmp-") {
                continue;
            }
            assert!(
                ca.get(&p) == Some(&data) || cb.get(&p) == Some(&data),
                "round {round}: {p} holds content of neither snapshot after kill -9"
            );
        }
        ok(&store, &[s("switch"), s(target), wt.as_os_str()]);
        same_tree(src, &wt);
        assert_eq!(&contents(&wt), want, "round {round}");
        let st = run(&store, &[s("status"), s("--exit-code"), wt.as_os_str()]);
        assert_eq!(st.status.code(), Some(0), "round {round}: {st:?}");
    }
    assert!(interrupted > 0, "no switch was interrupted");
}

#[test]
fn kill_9_during_reset_leaves_whole_files_and_a_rerun_restores_the_base_exactly() {
    let Some(dir) = scratch(Fs::Xfs) else { return };
    let store = dir.path().join("store");
    let (src_a, src_b) = (dir.path().join("a"), dir.path().join("b"));
    two_trees(&src_a, &src_b);
    let a = snapshot(&store, &src_a);
    let ca = contents(&src_a);
    let wt = dir.path().join("wt");
    ok(&store, &[s("checkout"), s(&a), wt.as_os_str()]);
    // Every file of the base rewritten in place with other bytes of another size, a third of
    // them deleted, and an untracked file: the state each round starts from.
    let spoil = |round: u64| -> BTreeMap<String, Vec<u8>> {
        let mut dirty = BTreeMap::new();
        for (i, p) in ca.keys().enumerate() {
            let full = wt.join(p);
            if fs::symlink_metadata(&full).is_ok_and(|m| !m.is_file()) {
                continue;
            }
            if i % 3 == 0 {
                let _ = fs::remove_file(&full);
            } else if fs::symlink_metadata(&full).is_ok() {
                let data = pattern(1000 + i, round * 10_000 + i as u64);
                fs::write(&full, &data).unwrap();
                dirty.insert(p.clone(), data);
            }
        }
        fs::write(wt.join("untracked.txt"), b"mine").unwrap();
        dirty
    };
    spoil(0);
    // Calibrate: how long one reset of that much takes here.
    let t = Instant::now();
    ok(&store, &[s("reset"), s("-C"), wt.as_os_str()]);
    let one = t.elapsed();
    let mut rng = XorShift::new(0x9E37_79B9_7F4A_7C15);
    let mut interrupted = 0;
    // 16 rounds in the full tier; in the README's run 6, or more until one was interrupted.
    let rounds = cowtree_testutil::rounds_until(16, 6);
    for round in 1u64.. {
        if rounds.done(round - 1, interrupted > 0) {
            break;
        }
        let dirty = spoil(round);
        if !run_killed_at_random(
            &store,
            &[s("reset"), s("-C"), wt.as_os_str()],
            one,
            &mut rng,
        ) {
            interrupted += 1;
        }
        // Under its final name, each file is whole: the base's bytes or the spoiled ones.
        for (p, data) in contents(&wt) {
            let name = Path::new(&p).file_name().unwrap().to_string_lossy();
            if name.starts_with(".cowtree-tmp-") || p == "untracked.txt" {
                continue;
            }
            assert!(
                ca.get(&p) == Some(&data) || dirty.get(&p) == Some(&data),
                "round {round}: {p} holds neither the base's nor the spoiled bytes after kill -9"
            );
        }
        ok(&store, &[s("reset"), s("-C"), wt.as_os_str()]);
        let mut now = contents(&wt);
        assert_eq!(now.remove("untracked.txt"), Some(b"mine".to_vec()));
        assert_eq!(
            now, ca,
            "round {round}: the re-run did not restore the base"
        );
        let st = run(&store, &[s("status"), s("--exit-code"), wt.as_os_str()]);
        // Only the untracked file differs.
        assert_eq!(st.status.code(), Some(1), "round {round}: {st:?}");
        assert!(
            String::from_utf8_lossy(&st.stdout).contains("untracked.txt"),
            "round {round}: {st:?}"
        );
    }
    assert!(interrupted > 0, "no reset was interrupted");
}
