//! Memory that grows faster than the tree: the peak resident set of `snapshot` on a tree of
//! 200,000 files, on real XFS, per file, against a bound.
//!
//! The peak is the child's own (`wait4`'s `ru_maxrss`: the high-water mark `VmHWM` in its
//! `/proc/PID/status`, kept after it exits), less that of the same command on a one-file
//! tree (the binary, its threads and buffers), divided by the files. What must hold the whole
//! tree (the manifest's entries) costs a few hundred bytes a file; anything that grows with
//! the square of the tree, or of a directory, passes the bound at this size. One
//! directory holds a quarter of the files: big directories are split among workers, and a
//! split that kept every chunk's whole allocation held 24·N²/256 bytes for N names (234 MiB
//! for these 50,000, 2.5 GiB for a directory of 165,000 in a 500,000-file tree).
//!
//! Not a timing: the figures are printed (`--nocapture`); bench/scale.sh has the sweep.

mod common;

use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

use common::*;
use cowtree_testutil::{Fs, scratch};

/// Files in the tree.
const FILES: usize = 200_000;
/// Of which in one directory.
const BIG_DIR: usize = 50_000;
/// Files per directory elsewhere.
const PER_DIR: usize = 100;
/// One file in this many has content of its own.
const DISTINCT: usize = 8;
/// Peak resident bytes per file allowed above the one-file run's: about 2.3 times what a
/// snapshot takes now (340; a debug build holds the same data as a release one). The split
/// that held N²/256 names took 1,300 here.
const BOUND_PER_FILE: u64 = 768;

/// Writes `files` files under `root`: `BIG_DIR` of them in one directory, the rest `PER_DIR`
/// to a directory two levels down, with names about as long as a source tree's. One in
/// `DISTINCT` has content of its own, the others are empty (the same entry in the manifest,
/// a tenth of the time to make, record and remove). Returns the number of distinct contents.
fn make_tree(root: &Path, files: usize) -> usize {
    let big = root.join("vendor/generated/tables");
    fs::create_dir_all(&big).unwrap();
    let in_big = if files > BIG_DIR { BIG_DIR } else { 0 };
    let content = |i: usize| {
        if i.is_multiple_of(DISTINCT) {
            format!("file {i}\n")
        } else {
            String::new()
        }
    };
    for i in 0..in_big {
        fs::write(big.join(format!("table-{i:06}.rs")), content(i)).unwrap();
    }
    for i in in_big..files {
        let d = (i - in_big) / PER_DIR;
        let dir = root.join(format!("src/module-{:03}/component-{:03}", d / 40, d % 40));
        if (i - in_big).is_multiple_of(PER_DIR) {
            fs::create_dir_all(&dir).unwrap();
        }
        fs::write(dir.join(format!("source-file-{i:06}.c")), content(i)).unwrap();
    }
    let with_content = files.div_ceil(DISTINCT);
    with_content + usize::from(files > with_content)
}

/// `cowtree --store STORE --json snapshot TREE`: its report and its peak RSS in KiB.
fn snapshot_peak(store: &Path, tree: &Path) -> (serde_json::Value, u64) {
    let mut c = bin();
    c.arg("--store")
        .arg(store)
        .args([s("--json"), s("snapshot")])
        .arg(tree);
    let r = run_limited(c, Duration::from_secs(600));
    r.assert_ok("snapshot");
    (r.json(), r.maxrss_kib)
}

#[test]
fn snapshot_memory_per_file_is_bounded_on_a_200k_file_tree() {
    let Some(dir) = scratch(Fs::Xfs) else { return };
    let root = dir.path();
    let started = Instant::now();
    let small = root.join("small");
    assert_eq!(make_tree(&small, 1), 1);
    let (v, base_kib) = snapshot_peak(&root.join("store-small"), &small);
    assert_eq!(v["files"], 1, "{v}");

    let tree = root.join("tree");
    let blobs = make_tree(&tree, FILES);
    let made = started.elapsed();
    let (v, peak_kib) = snapshot_peak(&root.join("store"), &tree);
    assert_eq!(v["files"], FILES as u64, "{v}");
    assert_eq!(v["new_blobs"], blobs as u64, "{v}");
    let per_file = peak_kib.saturating_sub(base_kib) * 1024 / FILES as u64;
    println!(
        "snapshot of {FILES} files ({BIG_DIR} in one directory): peak RSS {} MiB, one-file \
         tree {} MiB: {per_file} bytes per file (bound {BOUND_PER_FILE}); tree made in {:.1} s, \
         snapshot {:.1} s",
        peak_kib / 1024,
        base_kib / 1024,
        made.as_secs_f64(),
        (started.elapsed() - made).as_secs_f64()
    );
    assert!(
        per_file <= BOUND_PER_FILE,
        "snapshot of {FILES} files: peak RSS {} KiB, {} KiB above a one-file tree's: {per_file} \
         bytes per file, over the bound of {BOUND_PER_FILE}",
        peak_kib,
        peak_kib.saturating_sub(base_kib)
    );
}
