//! `cowtree clone` on real mounts. Run through scripts/test.sh, which mounts them.

use crate::common;

use std::ffi::{OsStr, OsString};
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::process::{Command, Output};

use cowtree_fs::extents::extent_summary;
use cowtree_testutil::tree::{Kind, assert_same_tree, sample_tree, snapshot};
use cowtree_testutil::{Fs, pattern, scratch};
use serde_json::Value;

fn clone(args: &[&OsStr]) -> Output {
    common::bin()
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
        let out = common::isolated(Command::new("sh"))
            .arg("-c")
            .arg(&script)
            .arg(common::BIN)
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
    let _small = cowtree_testutil::small_alone();
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
    let out = common::isolated(Command::new("sh"))
        .arg("-c")
        .arg("ulimit -n 64; exec \"$0\" clone --quiet \"$1\" \"$2\"")
        .arg(common::BIN)
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
    let out = common::isolated(Command::new("sh"))
        .arg("-c")
        .arg("umask 077; exec \"$0\" clone --quiet \"$1\" \"$2\"")
        .arg(common::BIN)
        .arg(&src)
        .arg(&dst)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_same_tree(&snapshot(&src), &snapshot(&dst), true);
}

#[test]
fn clone_keeps_exact_modes_and_times_under_every_umask_on_xfs_and_ext4() {
    use std::os::unix::fs::PermissionsExt;
    for fsys in [Fs::Xfs, Fs::NoCow] {
        let Some(dir) = scratch(fsys) else { continue };
        let src = dir.path().join("src");
        sample_tree(&src);
        // Files and directories (one empty) whose bits one umask or another removes.
        let mut made = Vec::new();
        for mode in [
            0o600u32, 0o640, 0o644, 0o660, 0o664, 0o666, 0o750, 0o775, 0o777,
        ] {
            let f = src.join(format!("f{mode:o}"));
            fs::write(&f, pattern(20_000, u64::from(mode))).unwrap();
            let d = src.join(format!("d{mode:o}"));
            fs::create_dir_all(d.join("empty")).unwrap();
            fs::write(d.join("in"), b"inside").unwrap();
            made.push((f, mode));
            made.push((d.join("empty"), mode | 0o700));
            made.push((d, mode | 0o700));
        }
        for (i, (p, mode)) in made.iter().enumerate() {
            fs::set_permissions(p, fs::Permissions::from_mode(*mode)).unwrap();
            cowtree_testutil::tree::set_mtime(p, 1_100_000_000 + i as i64, 5_000 + i as i64);
        }
        cowtree_testutil::tree::set_mtime(&src, 1_100_000_000, 17);
        let before = snapshot(&src);
        for umask in ["000", "002", "022", "027", "037", "077"] {
            let dst = dir.path().join(format!("dst-{umask}"));
            let out = common::isolated(Command::new("sh"))
                .arg("-c")
                .arg(format!(
                    "umask {umask}; exec \"$0\" clone --quiet \"$1\" \"$2\""
                ))
                .arg(common::BIN)
                .arg(&src)
                .arg(&dst)
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{fsys:?} umask {umask}: {}",
                stderr(&out)
            );
            assert_same_tree(&before, &snapshot(&dst), true);
        }
    }
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
    let mut child = common::bin()
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

/// Entries of `root` by path with kind, content and mode, leaving out cowtree's marked
/// temporary and journal names.
fn unmarked(root: &Path) -> Vec<(std::path::PathBuf, Kind, u32)> {
    snapshot(root)
        .into_iter()
        .filter(|(p, _)| {
            !p.components().any(|c| {
                c.as_os_str()
                    .as_bytes()
                    .windows(8)
                    .any(|w| w == b"cowtree-")
            })
        })
        .map(|(p, e)| (p, e.kind, e.mode))
        .collect()
}

fn marked(root: &Path) -> Vec<std::path::PathBuf> {
    snapshot(root)
        .into_keys()
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.as_bytes().windows(8).any(|w| w == b"cowtree-"))
        })
        .collect()
}

/// `n` packages of `files` files each, in ten directories, plus a directory of their own
/// (clone_merge.rs merges them too).
pub(crate) fn packages(root: &Path, n: usize, files: usize) -> Vec<std::path::PathBuf> {
    (0..n)
        .map(|p| {
            let s = root.join(format!("pkg{p}"));
            for f in 0..files {
                let path = s.join(format!("site/mod{}/f{f}.py", f % 10));
                fs::create_dir_all(path.parent().unwrap()).unwrap();
                fs::write(&path, pattern(200 + f, (p * 1000 + f) as u64)).unwrap();
            }
            fs::create_dir_all(s.join(format!("site/new{p}"))).unwrap();
            fs::write(s.join(format!("site/new{p}/x")), b"new").unwrap();
            s
        })
        .collect()
}

#[test]
fn clone_of_several_sources_merges_them_or_puts_each_inside_dst() {
    let Some(dir) = scratch(Fs::Xfs) else { return };
    let srcs = packages(dir.path(), 3, 30);
    let merged = dir.path().join("env");
    let out = common::bin()
        .args(["clone", "--json", "--on-existing", "overwrite"])
        .args(&srcs)
        .arg(&merged)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let json: Value = serde_json::from_slice(&out.stdout).unwrap();
    // pkg1 and pkg2 each collide with what came before at every site/mod*/f*.py.
    assert_eq!(json["collisions"].as_array().unwrap().len(), 60);
    assert_eq!(warnings(&out).len(), 60, "one line per collision");
    for f in 0..30 {
        let rel = format!("site/mod{}/f{f}.py", f % 10);
        assert_eq!(
            fs::read(merged.join(&rel)).unwrap(),
            fs::read(srcs[2].join(&rel)).unwrap()
        );
    }
    for p in 0..3 {
        assert!(merged.join(format!("site/new{p}/x")).is_file());
    }
    // Without a merge policy each source goes inside DST, which must exist.
    let missing = dir.path().join("nope");
    let out = common::bin()
        .arg("clone")
        .args(&srcs)
        .arg(&missing)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(!missing.exists());
    let inside = dir.path().join("inside");
    fs::create_dir(&inside).unwrap();
    let out = common::bin()
        .arg("clone")
        .args(&srcs)
        .arg(&inside)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    for s in &srcs {
        assert_same_tree(
            &snapshot(s),
            &snapshot(&inside.join(s.file_name().unwrap())),
            true,
        );
    }
}

#[test]
fn clone_record_lists_every_entry_written_with_its_hash() {
    let Some(dir) = scratch(Fs::Btrfs) else {
        return;
    };
    let src = packages(dir.path(), 1, 40).remove(0);
    std::os::unix::fs::symlink("mod1/f1.py", src.join("site/link")).unwrap();
    fs::create_dir(src.join("site/empty")).unwrap();
    let dst = dir.path().join("dst");
    let record = dir.path().join("record.jsonl");
    let out = clone(&[
        os("--record"),
        record.as_os_str(),
        os("--record-hash"),
        os("sha256"),
        src.as_os_str(),
        dst.as_os_str(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let lines: Vec<Value> = fs::read_to_string(&record)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let on_disk = snapshot(&dst);
    let listed: Vec<String> = on_disk
        .keys()
        .filter(|p| !p.as_os_str().is_empty())
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    let mut recorded: Vec<String> = lines
        .iter()
        .map(|l| l["path"].as_str().unwrap().to_owned())
        .collect();
    recorded.sort_by(|a, b| Path::new(a).cmp(Path::new(b)));
    let mut listed_sorted = listed.clone();
    listed_sorted.sort_by(|a, b| Path::new(a).cmp(Path::new(b)));
    assert_eq!(recorded, listed_sorted);
    for l in &lines {
        let p = Path::new(l["path"].as_str().unwrap());
        if let Kind::File(bytes) = &on_disk[p].kind {
            use sha2::Digest as _;
            let want: String = sha2::Sha256::digest(bytes)
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect();
            assert_eq!(l["sha256"].as_str(), Some(want.as_str()), "{}", p.display());
            assert_eq!(l["size"].as_u64(), Some(bytes.len() as u64));
            assert_eq!(l["method"].as_str(), Some("clone"));
        }
    }
}

#[test]
fn clone_strict_merge_across_filesystems_exits_3_and_changes_nothing_at_dst() {
    let (Some(a), Some(b)) = (scratch(Fs::Xfs), scratch(Fs::Tmpfs)) else {
        return;
    };
    let srcs = packages(a.path(), 2, 20);
    let dst = b.path().join("env");
    fs::create_dir_all(dst.join("site/mod1")).unwrap();
    fs::write(dst.join("site/mod1/f1.py"), b"old").unwrap();
    fs::write(dst.join("keep"), b"keep").unwrap();
    let before = unmarked(&dst);
    let out = common::bin()
        .args(["clone", "--strict", "--on-existing", "overwrite"])
        .args(&srcs)
        .arg(&dst)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(
        stderr(&out).contains(&format!("nothing was changed at {}", dst.display())),
        "{}",
        stderr(&out)
    );
    assert_eq!(unmarked(&dst), before);
    assert_eq!(marked(&dst), Vec::<std::path::PathBuf>::new());
}

#[test]
fn clone_of_many_sources_to_another_filesystem_probes_each_call_once_and_warns_once() {
    let (Some(a), Some(b)) = (scratch(Fs::Xfs), scratch(Fs::Tmpfs)) else {
        return;
    };
    let srcs = packages(a.path(), 6, 25);
    let dst = b.path().join("env");
    let log = a.path().join("strace.log");
    let out = cowtree_testutil::strace("ioctl,copy_file_range,sendfile", &log)
        .arg(common::BIN)
        .args(["clone", "--jobs", "1", "--on-existing", "overwrite"])
        .args(&srcs)
        .arg(&dst)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let log = fs::read_to_string(&log).unwrap();
    let ficlone = log.lines().filter(|l| l.contains("FICLONE")).count();
    let range = log
        .lines()
        .filter(|l| l.contains("copy_file_range("))
        .count();
    let sendfile = log.lines().filter(|l| l.contains("sendfile(")).count();
    assert_eq!(ficlone, 1, "one clone attempt for the pair:\n{log}");
    // A copy is made with sendfile, which never shares extents; copy_file_range is not tried.
    assert_eq!(range, 0, "copy_file_range was called:\n{log}");
    assert!(sendfile > 0, "nothing copied by sendfile:\n{log}");
    assert_eq!(warnings(&out).len(), 1 + 5 * 25, "{}", stderr(&out));
    assert_eq!(
        warnings(&out)
            .iter()
            .filter(|w| w.contains("different filesystems"))
            .count(),
        1
    );
}

#[test]
fn clone_merge_killed_at_random_points_leaves_before_or_after_and_the_next_run_finishes_it() {
    let Some(dir) = scratch(Fs::Xfs) else { return };
    let srcs = packages(&dir.path().join("src"), 2, 1500);
    // The destination before: every file the sources have, older, plus one of its own.
    let base = dir.path().join("base");
    for s in &srcs {
        let out = clone(&[
            os("--on-existing"),
            os("skip"),
            s.as_os_str(),
            base.as_os_str(),
        ]);
        assert!(out.status.success(), "{}", stderr(&out));
    }
    for e in fs::read_dir(base.join("site/mod3")).unwrap() {
        fs::write(e.unwrap().path(), b"old").unwrap();
    }
    fs::write(base.join("mine"), b"mine").unwrap();
    let before = unmarked(&base);
    let merge = |dst: &Path| {
        let mut c = common::bin();
        c.args(["clone", "--quiet", "--on-existing", "overwrite"])
            .args(&srcs)
            .arg(dst);
        c
    };
    let reference = dir.path().join("reference");
    assert!(
        clone(&[base.as_os_str(), reference.as_os_str()])
            .status
            .success()
    );
    let started = std::time::Instant::now();
    assert!(merge(&reference).status().unwrap().success());
    let full = started.elapsed();
    let after = unmarked(&reference);
    assert_ne!(before, after);

    let empty = dir.path().join("empty");
    fs::create_dir(&empty).unwrap();
    let mut rng = cowtree_testutil::XorShift::from_clock("kill points");
    let mut seen = [0usize; 3]; // before, after, in between (publication under way)
    // 12 rounds in the full tier, 6 in the README's run (`cowtree_testutil::rounds`).
    for i in 0..cowtree_testutil::rounds(12, 6) {
        let dst = dir.path().join(format!("dst{i}"));
        assert!(clone(&[base.as_os_str(), dst.as_os_str()]).status.success());
        let mut child = merge(&dst).spawn().unwrap();
        if i % 2 == 0 {
            let wait = full.mul_f64(rng.below(1000) as f64 / 3000.0);
            std::thread::sleep(wait);
        } else {
            // Kill during publication: once the journal says it started, after a random
            // number of microseconds.
            while !journal_of(&dst)
                .is_some_and(|j| fs::read_to_string(j).is_ok_and(|t| t.lines().any(|l| l == "go")))
                && child.try_wait().unwrap().is_none()
            {
                std::thread::sleep(std::time::Duration::from_micros(50));
            }
            std::thread::sleep(std::time::Duration::from_micros(rng.below(20_000)));
        }
        let _ = child.kill();
        let _ = child.wait();
        let now = unmarked(&dst);
        if now == before {
            seen[0] += 1;
        } else if now == after {
            seen[1] += 1;
            continue;
        } else {
            seen[2] += 1;
            // Only a merge that had started publishing may be in between; its journal says so.
            let journal = fs::read_dir(&dst)
                .unwrap()
                .map(|e| e.unwrap().path())
                .find(|p| {
                    p.file_name()
                        .unwrap()
                        .as_bytes()
                        .starts_with(b".cowtree-txn.")
                })
                .expect("a destination in between has a journal");
            assert!(
                fs::read_to_string(journal)
                    .unwrap()
                    .lines()
                    .any(|l| l == "go"),
                "{i}: in between without having started publishing"
            );
        }
        // The next merge into DST (here of an empty directory) finishes the dead one first.
        let out = clone(&[
            os("--quiet"),
            os("--on-existing"),
            os("skip"),
            empty.as_os_str(),
            dst.as_os_str(),
        ]);
        assert!(out.status.success(), "{}", stderr(&out));
        let now = unmarked(&dst);
        assert!(
            now == before || now == after,
            "{i}: neither before nor after"
        );
        assert_eq!(marked(&dst), Vec::<std::path::PathBuf>::new(), "{i}");
    }
    println!(
        "kill points: before {}, after {}, mid-publication {}",
        seen[0], seen[1], seen[2]
    );
}

/// The merge journal in `dst`, if there is one.
fn journal_of(dst: &Path) -> Option<std::path::PathBuf> {
    fs::read_dir(dst)
        .ok()?
        .map(|e| e.unwrap().path())
        .find(|p| {
            p.file_name()
                .unwrap()
                .as_bytes()
                .starts_with(b".cowtree-txn.")
        })
}
