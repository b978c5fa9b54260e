//! `cowtree du` and `cowtree dedupe` on real mounts.

use crate::common;

use std::ffi::OsStr;
use std::path::Path;
use std::process::Output;

use cowtree_testutil::{Fs, pattern, scratch};
use serde_json::Value;

fn cowtree(args: &[&OsStr]) -> Output {
    common::bin().args(args).output().expect("run cowtree")
}

fn json(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "not one JSON object ({e}): {}\nstderr: {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

fn tree_with_copy(root: &Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let (a, b) = (root.join("a"), root.join("b"));
    for d in [&a, &b] {
        std::fs::create_dir(d).unwrap();
        for i in 0..4u64 {
            std::fs::write(
                d.join(format!("f{i}")),
                pattern(100_000 * (i as usize + 1), i),
            )
            .unwrap();
        }
    }
    (a, b)
}

#[test]
fn du_json_has_the_documented_keys_and_counts_a_clone_once() {
    for fsys in Fs::COW {
        let Some(dir) = scratch(fsys) else { continue };
        let (a, _) = tree_with_copy(dir.path());
        let c = dir.path().join("c");
        std::fs::create_dir(&c).unwrap();
        for i in 0..4 {
            let n = format!("f{i}");
            cowtree_fs::try_reflink(&a.join(&n), &c.join(&n)).unwrap();
        }
        let one = json(&cowtree(&["du".as_ref(), "--json".as_ref(), a.as_os_str()]));
        let out = cowtree(&[
            "du".as_ref(),
            "--json".as_ref(),
            a.as_os_str(),
            c.as_os_str(),
        ]);
        assert!(out.status.success());
        let both = json(&out);
        for key in [
            "apparent",
            "allocated",
            "shared",
            "unique_physical",
            "fiemap_available",
            "files",
        ] {
            assert!(both.get(key).is_some(), "{fsys:?}: no {key}: {both}");
        }
        assert_eq!(both["files"], 8);
        assert_eq!(both["fiemap_available"], true);
        assert_eq!(both["unique_physical"], one["unique_physical"], "{fsys:?}");
        assert_eq!(
            both["shared"].as_u64().unwrap(),
            2 * one["unique_physical"].as_u64().unwrap(),
            "{fsys:?}: {both}"
        );
    }
}

#[test]
fn du_human_output_on_tmpfs_says_which_figures_are_unavailable() {
    let Some(dir) = scratch(Fs::Tmpfs) else {
        return;
    };
    std::fs::write(dir.path().join("f"), pattern(50_000, 1)).unwrap();
    let out = cowtree(&["du".as_ref(), dir.path().as_os_str()]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("apparent:") && text.contains("KiB"), "{text}");
    assert!(
        text.contains("shared:          unavailable: FIEMAP is not supported on tmpfs"),
        "{text}"
    );
    let v = json(&cowtree(&[
        "du".as_ref(),
        "--json".as_ref(),
        dir.path().as_os_str(),
    ]));
    assert!(v["unique_physical"].is_null());
    assert_eq!(v["fiemap_available"], false);
}

#[test]
fn du_of_a_missing_path_exits_1_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing");
    let out = cowtree(&["du".as_ref(), missing.as_os_str()]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.starts_with("cowtree: ") && err.contains("missing"),
        "{err}"
    );
}

#[test]
fn dedupe_json_reports_reclaimed_space_and_dry_run_changes_nothing() {
    for fsys in Fs::COW {
        let Some(dir) = scratch(fsys) else { continue };
        let (a, b) = tree_with_copy(dir.path());
        let dry = json(&cowtree(&[
            "dedupe".as_ref(),
            "--dry-run".as_ref(),
            "--json".as_ref(),
            a.as_os_str(),
            b.as_os_str(),
        ]));
        assert_eq!(dry["dry_run"], true);
        assert_eq!(dry["files_deduped"], 4, "{fsys:?}: {dry}");
        assert_eq!(dry["reclaimed"], 0);
        let out = cowtree(&[
            "dedupe".as_ref(),
            "--json".as_ref(),
            a.as_os_str(),
            b.as_os_str(),
        ]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v = json(&out);
        assert_eq!(v["files_deduped"], 4, "{fsys:?}: {v}");
        assert_eq!(v["bytes_deduped"], 1_000_000);
        assert!(v["reclaimed"].as_i64().unwrap() >= 900_000, "{fsys:?}: {v}");
        assert_eq!(v["skipped"].as_array().unwrap().len(), 0);
        // --min-size above every file: nothing is a candidate.
        let v = json(&cowtree(&[
            "dedupe".as_ref(),
            "--json".as_ref(),
            "--min-size".as_ref(),
            "1000000".as_ref(),
            a.as_os_str(),
        ]));
        assert_eq!(v["files_scanned"], 0, "{v}");
    }
}

#[test]
fn dedupe_on_the_host_filesystem_exits_1_saying_it_cannot() {
    let Some(dir) = scratch(Fs::NoCow) else {
        return;
    };
    let (a, b) = tree_with_copy(dir.path());
    let out = cowtree(&["dedupe".as_ref(), a.as_os_str(), b.as_os_str()]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("cannot share data") && err.contains("nothing was changed"),
        "{err}"
    );
    assert!(out.stdout.is_empty());
}

#[test]
fn dedupe_across_two_filesystems_exits_1_naming_both() {
    let (Some(x), Some(y)) = (scratch(Fs::Xfs), scratch(Fs::Xfs2)) else {
        return;
    };
    let out = cowtree(&[
        "dedupe".as_ref(),
        x.path().as_os_str(),
        y.path().as_os_str(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("different filesystems"), "{err}");
    assert!(err.contains(&*x.path().to_string_lossy()), "{err}");
}
