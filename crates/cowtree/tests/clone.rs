//! `cowtree clone` on real mounts. Run through scripts/test.sh, which mounts them.

use std::ffi::{OsStr, OsString};
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::process::{Command, Output};

use cowtree_fs::extents::extent_summary;
use cowtree_testutil::tree::{Kind, assert_same_tree, sample_tree, snapshot};
use cowtree_testutil::{Fs, pattern, scratch};
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_cowtree");

fn clone(args: &[&OsStr]) -> Output {
    Command::new(BIN)
        .arg("clone")
        .args(args)
        .output()
        .expect("run cowtree")
}

fn os(s: &str) -> &OsStr {
    OsStr::new(s)
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn clone_json(src: &Path, dst: &Path) -> Value {
    let out = clone(&[os("--json"), src.as_os_str(), dst.as_os_str()]);
    assert!(out.status.success(), "{}", stderr(&out));
    serde_json::from_slice(&out.stdout).expect("one JSON object on stdout")
}

fn warnings(out: &Output) -> Vec<String> {
    stderr(out)
        .lines()
        .filter(|l| l.contains("warning"))
        .map(str::to_owned)
        .collect()
}

/// Names in `dir` that look like cowtree staging directories.
fn staging_in(dir: &Path) -> Vec<OsString> {
    fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .filter(|n| n.as_bytes().windows(16).any(|w| w == b"cowtree-staging."))
        .collect()
}

#[test]
fn clone_json_counts_match_what_is_on_disk() {
    for fsys in Fs::COW {
        let Some(dir) = scratch(fsys) else { continue };
        let src = dir.path().join("src");
        let dst = dir.path().join("dst");
        sample_tree(&src);
        let v = clone_json(&src, &dst);
        let on_disk = snapshot(&dst);
        let count = |f: fn(&Kind) -> bool| on_disk.values().filter(|e| f(&e.kind)).count() as u64;
        let files = count(|k| matches!(k, Kind::File(_)));
        let dirs = count(|k| matches!(k, Kind::Dir)) - 1; // not the top one
        let symlinks = count(|k| matches!(k, Kind::Symlink(_)));
        let bytes: u64 = on_disk
            .values()
            .map(|e| match &e.kind {
                Kind::File(b) => b.len() as u64,
                _ => 0,
            })
            .sum();
        assert_eq!(v["files"], files, "{fsys:?}: {v}");
        assert_eq!(v["dirs"], dirs, "{fsys:?}: {v}");
        assert_eq!(v["symlinks"], symlinks, "{fsys:?}: {v}");
        assert_eq!(v["bytes"], bytes, "{fsys:?}: {v}");
        assert_eq!(v["cloned"], files, "{fsys:?}: {v}");
        assert_eq!(v["copied"], 0);
        assert_eq!(v["hardlinked"], 0);
        assert_eq!(v["symlinked"], 0);
        assert_eq!(v["fallbacks"], Value::Array(vec![]));
        assert!(v["elapsed_ms"].is_u64(), "{v}");
        assert_same_tree(&snapshot(&src), &on_disk, true);
        let s = extent_summary(&dst.join("a/big.bin")).unwrap();
        assert!(s.fully_shared(), "{fsys:?}: {s:?}");
    }
}

#[test]
fn clone_on_host_fs_copies_warns_once_and_strict_exits_3_leaving_no_dst() {
    let Some(dir) = scratch(Fs::NoCow) else {
        return;
    };
    let src = dir.path().join("src");
    let (files, _, _) = sample_tree(&src);

    let strict_dst = dir.path().join("strict");
    let out = clone(&[os("--strict"), src.as_os_str(), strict_dst.as_os_str()]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(stderr(&out).contains("strict"), "{}", stderr(&out));
    assert!(!strict_dst.exists());
    assert_eq!(staging_in(dir.path()), Vec::<OsString>::new());

    let dst = dir.path().join("dst");
    let out = clone(&[src.as_os_str(), dst.as_os_str()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let summary = String::from_utf8_lossy(&out.stdout);
    assert!(
        summary.contains(&format!("copied {files} files")),
        "{summary}"
    );
    assert!(!summary.contains("cloned"), "{summary}");
    let w = warnings(&out);
    assert_eq!(w.len(), 1, "{w:?}");
    assert!(w[0].contains("cannot reflink"), "{w:?}");
    assert!(w[0].contains("ext4") || w[0].contains("copied"), "{w:?}");
    assert_same_tree(&snapshot(&src), &snapshot(&dst), true);

    let v = clone_json(&src, &dir.path().join("dst2"));
    assert_eq!(v["copied"], files);
    assert_eq!(v["fallbacks"][0]["reason"], "filesystem-cannot-reflink");
    assert_eq!(v["fallbacks"][0]["count"], files);
}

#[test]
fn clone_across_two_xfs_copies_and_names_the_cross_device_cause_once() {
    let (Some(a), Some(b)) = (scratch(Fs::Xfs), scratch(Fs::Xfs2)) else {
        return;
    };
    let src = a.path().join("src");
    let (files, _, _) = sample_tree(&src);
    let dst = b.path().join("dst");
    let out = clone(&[src.as_os_str(), dst.as_os_str()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let w = warnings(&out);
    assert_eq!(w.len(), 1, "{w:?}");
    assert!(w[0].contains("different filesystems"), "{w:?}");
    assert!(w[0].contains(&format!("copied {files} files")), "{w:?}");
    let v = clone_json(&src, &b.path().join("dst2"));
    assert_eq!(v["fallbacks"].as_array().unwrap().len(), 1, "{v}");
    assert_eq!(v["fallbacks"][0]["reason"], "cross-device");
}

#[test]
fn clone_succeeds_under_ulimit_n_64() {
    let Some(dir) = scratch(Fs::Xfs) else { return };
    let src = dir.path().join("src");
    // More directories than descriptors, a few levels deep.
    for i in 0..150 {
        let d = src.join(format!("d{i}/sub{}", i % 5));
        fs::create_dir_all(&d).unwrap();
        fs::write(d.join("f"), pattern(5000, i)).unwrap();
    }
    for jobs in ["0", "64"] {
        let dst = dir.path().join(format!("dst{jobs}"));
        let script = format!("ulimit -n 64; exec \"$0\" clone --quiet --jobs {jobs} \"$1\" \"$2\"");
        let out = Command::new("sh")
            .arg("-c")
            .arg(&script)
            .arg(BIN)
            .arg(&src)
            .arg(&dst)
            .output()
            .unwrap();
        assert!(out.status.success(), "jobs {jobs}: {}", stderr(&out));
        assert_same_tree(&snapshot(&src), &snapshot(&dst), true);
    }
}

#[test]
fn clone_refuses_dst_inside_src_and_an_existing_dst_naming_the_flag() {
    let Some(dir) = scratch(Fs::Xfs) else { return };
    let src = dir.path().join("src");
    sample_tree(&src);
    let before = snapshot(&src);
    let out = clone(&[src.as_os_str(), src.join("a/copy").as_os_str()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).starts_with("cowtree: "), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("inside the source"),
        "{}",
        stderr(&out)
    );
    assert_eq!(before, snapshot(&src));

    let dst = dir.path().join("dst");
    fs::create_dir(&dst).unwrap();
    let out = clone(&[src.as_os_str(), dst.as_os_str()]);
    assert_eq!(out.status.code(), Some(1));
    let e = stderr(&out);
    assert!(
        e.contains("already exists") && e.contains("--on-existing"),
        "{e}"
    );
    assert!(e.contains(&*dst.to_string_lossy()), "{e}");
    assert_eq!(fs::read_dir(&dst).unwrap().count(), 0);

    let out = clone(&[
        os("--on-existing"),
        os("overwrite"),
        src.as_os_str(),
        dst.as_os_str(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(dst.join("a/big.bin").is_file());

    let out = clone(&[dir.path().join("nope").as_os_str(), dst.as_os_str()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("does not exist"), "{}", stderr(&out));
}

#[test]
fn clone_of_non_utf8_paths_round_trips() {
    let Some(dir) = scratch(Fs::Xfs) else { return };
    let src = dir.path().join(OsStr::from_bytes(b"sr\xffc"));
    fs::create_dir(&src).unwrap();
    fs::write(src.join(OsStr::from_bytes(b"\xe9\xe8")), b"bytes").unwrap();
    let dst = dir.path().join(OsStr::from_bytes(b"ds\xfet"));
    let out = clone(&[os("--quiet"), src.as_os_str(), dst.as_os_str()]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(out.stdout.is_empty() && out.stderr.is_empty(), "--quiet");
    assert_eq!(
        fs::read(dst.join(OsStr::from_bytes(b"\xe9\xe8"))).unwrap(),
        b"bytes"
    );
}

#[test]
fn clone_enospc_on_the_small_fs_fails_and_leaves_no_dst() {
    let (Some(a), Some(small)) = (scratch(Fs::Xfs), scratch(Fs::Small)) else {
        return;
    };
    let src = a.path().join("src");
    fs::create_dir(&src).unwrap();
    let chunk = pattern(8 << 20, 5);
    for i in 0..12 {
        fs::write(src.join(format!("f{i}")), &chunk).unwrap();
    }
    let dst = small.path().join("dst");
    let out = clone(&[src.as_os_str(), dst.as_os_str()]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("No space left on device"),
        "{}",
        stderr(&out)
    );
    assert!(!dst.exists());
    assert_eq!(staging_in(small.path()), Vec::<OsString>::new());
}

#[test]
fn clone_hardlink_mode_warns_that_writes_reach_the_source() {
    let Some(dir) = scratch(Fs::Xfs) else { return };
    let src = dir.path().join("src");
    let (files, _, _) = sample_tree(&src);
    let dst = dir.path().join("dst");
    let out = clone(&[
        os("--mode"),
        os("hardlink"),
        os("--json"),
        src.as_os_str(),
        dst.as_os_str(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let w = warnings(&out);
    assert_eq!(w.len(), 1, "{w:?}");
    assert!(w[0].contains("changes both"), "{w:?}");
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["hardlinked"], files);
}

#[test]
fn clone_skip_special_skips_and_counts_a_fifo() {
    let Some(dir) = scratch(Fs::Xfs) else { return };
    let src = dir.path().join("src");
    sample_tree(&src);
    let fifo = src.join("fifo");
    let st = Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(st.success());
    let dst = dir.path().join("dst");
    let out = clone(&[src.as_os_str(), dst.as_os_str()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains(&*fifo.to_string_lossy()),
        "{}",
        stderr(&out)
    );
    assert!(!dst.exists());
    let out = clone(&[
        os("--skip-special"),
        os("--json"),
        src.as_os_str(),
        dst.as_os_str(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["special"], 1);
}

#[test]
fn clone_under_ulimit_n_64_removes_a_wide_stale_staging_directory() {
    let Some(dir) = scratch(Fs::Xfs) else { return };
    let src = dir.path().join("src");
    sample_tree(&src);
    // Staging left by a killed run (nothing holds its lock), wider than the descriptor limit.
    let stale = dir
        .path()
        .join(".dst.cowtree-staging.4000000.00000000deadbeef");
    for i in 0..300 {
        fs::create_dir_all(stale.join(format!("d{i}/inner"))).unwrap();
    }
    let dst = dir.path().join("dst");
    let out = Command::new("sh")
        .arg("-c")
        .arg("ulimit -n 64; exec \"$0\" clone --quiet \"$1\" \"$2\"")
        .arg(BIN)
        .arg(&src)
        .arg(&dst)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        !stale.exists(),
        "the stale staging directory is still there"
    );
    assert_same_tree(&snapshot(&src), &snapshot(&dst), true);
}

#[test]
fn clone_keeps_exact_modes_under_a_restrictive_umask() {
    use std::os::unix::fs::PermissionsExt;
    let Some(dir) = scratch(Fs::Xfs) else { return };
    let src = dir.path().join("src");
    sample_tree(&src);
    for (name, mode) in [("rw_all", 0o666u32), ("rwx_all", 0o777), ("sticky", 0o1755)] {
        let p = src.join(name);
        fs::write(&p, pattern(20_000, u64::from(mode))).unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(mode)).unwrap();
    }
    fs::set_permissions(src.join("a"), fs::Permissions::from_mode(0o777)).unwrap();
    let dst = dir.path().join("dst");
    let out = Command::new("sh")
        .arg("-c")
        .arg("umask 077; exec \"$0\" clone --quiet \"$1\" \"$2\"")
        .arg(BIN)
        .arg(&src)
        .arg(&dst)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_same_tree(&snapshot(&src), &snapshot(&dst), true);
}

#[test]
fn clone_killed_mid_run_leaves_no_dst_and_the_next_run_removes_its_staging() {
    let (Some(a), Some(b)) = (scratch(Fs::Xfs), scratch(Fs::Xfs2)) else {
        return;
    };
    // Across filesystems everything is copied, so a few hundred MiB take long enough to kill
    // the run while it is writing.
    let src = a.path().join("src");
    fs::create_dir(&src).unwrap();
    let chunk = pattern(16 << 20, 11);
    for i in 0..16 {
        fs::write(src.join(format!("f{i}")), &chunk).unwrap();
    }
    let dst = b.path().join("dst");
    let mut child = Command::new(BIN)
        .args([os("clone"), os("--quiet"), os("--jobs"), os("1")])
        .arg(&src)
        .arg(&dst)
        .spawn()
        .unwrap();
    let started = std::time::Instant::now();
    while staging_in(b.path()).is_empty() {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(30),
            "no staging directory appeared"
        );
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    child.kill().unwrap();
    let status = child.wait().unwrap();
    assert!(!status.success(), "the run finished before it was killed");
    assert!(!dst.exists(), "a killed run left a destination");
    assert_eq!(staging_in(b.path()).len(), 1);

    let out = clone(&[os("--quiet"), src.as_os_str(), dst.as_os_str()]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(staging_in(b.path()), Vec::<OsString>::new());
    assert_same_tree(&snapshot(&src), &snapshot(&dst), true);
}
