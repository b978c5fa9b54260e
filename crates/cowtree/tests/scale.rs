//! Memory that grows faster than the tree: the peak resident set of `snapshot`, `checkout`,
//! `verify`, `ls`, `show`, `gc`, `status` and `switch` on a tree of 200,000 files, on real XFS, per
//! file, against a bound per command.
//!
//! The peak is the command's own high-water mark (`VmHWM`), less that of the same command on a
//! one-file tree (the binary, its threads and buffers), divided by the files. A child's `ru_maxrss`
//! starts from the mark of the address space it replaces at exec, its parent's: each command is run
//! under GNU time (`/usr/bin/time`, which scripts/mounts.sh installs), whose own mark is a
//! megabyte, and its `%M` taken; without it, `wait4`'s figure, which must then be well above what
//! this process held ([`peak`]). What must hold the whole tree costs about a hundred bytes a file
//! in the snapshot (names, not paths: a second test checks that longer paths cost it next to
//! nothing), a few hundred in checkout, status and switch (the manifest's entries by their
//! names, and the stat cache's, which the second test checks they hold without their paths);
//! anything that grows with the square of the tree, or of a directory, passes the bound at this
//! size. One directory holds a quarter of the
//! files: big directories are split among workers, and a split that kept every chunk's whole
//! allocation held 24·N²/256 bytes for N names (234 MiB for these 50,000, 2.5 GiB for a directory
//! of 165,000 in a 500,000-file tree).
//!
//! Not a timing: the figures are printed (`--nocapture`); bench/scale.sh has the sweep. Heavy by
//! nature: both tests run in the full tier (`COWTREE_TEST_FULL=1`, which .ci/run sets).

mod common;

use std::ffi::OsStr;
use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

use common::*;
use cowtree_testutil::{Fs, scratch};

/// Held by each test for its whole run: a child's peak cannot be told from this process's
/// resident set ([`peak`]), which the other test's data would swell, and two 200,000-file
/// runs at once would measure each other.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Files in the tree.
const FILES: usize = 200_000;
/// Of which in one directory.
const BIG_DIR: usize = 50_000;
/// Files per directory elsewhere.
const PER_DIR: usize = 100;
/// One file in this many has content of its own.
const DISTINCT: usize = 8;
/// Peak resident bytes per file allowed above the one-file run's, per command: about twice
/// what each takes now (snapshot 89-105, checkout 150-153, verify 25; a debug build
/// holds the same data as a release one). The snapshot's split that held N²/256 names took
/// 1,300, and its manifest held as entries with their whole paths 340-370; the checkout took
/// 570 while it held the stat cache's records as records, then encoded, beside the manifest,
/// and 203 while it held the manifest as entries with their whole paths; verify took 163-165
/// while it held each snapshot's entries (it now checks each entry's blob as the manifest is
/// read: what is left is its list of this store's 25,000 blobs); the checkout and verify held
/// a manifest's encoding beside its entries while decoding it (verify 250).
///
/// `ls`, `gc --dry-run` and `show --json` read each manifest as it is stored, holding none of
/// its entries (`show` prints each as it is read): `ls` 3 and `show` 7 bytes a file, `gc` 15
/// (its set of the store's 25,000 blobs). Before, they held the decoded entries (and `show
/// --json` a JSON value of the whole manifest): 134-145 bytes a file more than now for `ls`,
/// `gc` and `show`, 2,100 for `show --json` (release builds, this test's tree).
///
/// `status` and `switch` of the checkout's worktree, one file in a hundred changed, hold the
/// base's manifest in its compact form and the worktree's stat cache (each a name and a few
/// dozen bytes a file) and write the new stat cache as they merge it: 229-230 and 277-279
/// bytes a file (debug; 247-248 and 313-314 while they held the manifest and the cache as
/// stored). While they built the new cache in memory beside the old one, 364 and 343:
/// status's bound catches that; switch's is a little over twice its figure.
const BOUNDS: [(&str, u64); 8] = [
    ("snapshot", 200),
    ("checkout", 320),
    ("verify", 64),
    ("ls", 16),
    ("gc --dry-run", 40),
    ("show --json", 16),
    ("status", 320),
    ("switch", 640),
];
/// Peak resident bytes per file the snapshot may gain when every path is 204 bytes longer
/// (the same files under four more directories of 50-byte names): it holds names, not paths
/// (each path held whole would add at least its 204 bytes).
const LONG_PATHS_BOUND: u64 = 48;
/// The same for the checkout, which holds the manifest in its compact form (each entry by its
/// directory and name, each directory's path once) and builds a whole path only to write it
/// (a stat cache record) or name it: measured 0 now; 208-210 while it held the manifest as
/// entries with their whole paths, 399 while the manifest's encoding was also held whole
/// during its decoding (and the stat cache's records once held them three times over).
const CHECKOUT_LONG_PATHS_BOUND: u64 = 48;
/// The same for `status` and `switch` of a checkout ([`worktree_peaks`]), which hold the base
/// in its compact form and the stat cache as names beside their directories' paths (each held
/// once per kind of record).
const WORKTREE_LONG_PATHS_BOUND: u64 = 48;

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

/// GNU time, which reports its child's own peak (`%M`).
const GNU_TIME: &str = "/usr/bin/time";

/// Runs `cowtree --store STORE --json ARGS...`: its report and its peak RSS in KiB, GNU
/// time's `%M` when it is there. Without it, `wait4`'s figure, which starts from this
/// process's resident set when it started the command ([`run_limited`]): one less than 4 MiB
/// above it might be this process's figure, not the command's, and fails.
fn peak(store: &Path, args: &[&OsStr]) -> (serde_json::Value, u64) {
    let timed = Path::new(GNU_TIME).exists();
    let out = tempfile::NamedTempFile::new().unwrap();
    let mut c = if timed {
        let mut c = isolated(std::process::Command::new(GNU_TIME));
        c.args([s("-f"), s("%M"), s("-o")]).arg(out.path()).arg(BIN);
        c
    } else {
        bin()
    };
    c.arg("--store").arg(store).arg("--json").args(args);
    let r = run_limited(c, Duration::from_secs(600));
    r.assert_ok(&format!("{args:?}"));
    if timed {
        let text = fs::read_to_string(out.path()).unwrap();
        let kib: u64 = text
            .lines()
            .last()
            .and_then(|l| l.trim().parse().ok())
            .unwrap_or_else(|| panic!("{GNU_TIME} wrote {text:?}"));
        return (r.json(), kib);
    }
    assert!(
        r.maxrss_kib > r.parent_rss_kib + 4096,
        "{args:?}: peak RSS {} KiB is not 4 MiB above the test's own {} KiB when it started \
         the command: the figure may be the test's (install GNU time: {GNU_TIME})",
        r.maxrss_kib,
        r.parent_rss_kib
    );
    (r.json(), r.maxrss_kib)
}

/// Snapshot of the tree at `root/tree` into `root/store`, checkout of it into `root/co`,
/// verify, ls, show and gc of the store, then status and switch of the worktree
/// ([`worktree_peaks`]): each command's peak RSS in KiB, in the order of [`BOUNDS`].
fn peaks(root: &Path, files: usize, blobs: usize) -> [u64; 8] {
    let store = root.join("store");
    let (v, snapshot) = peak(&store, &[s("snapshot"), root.join("tree").as_os_str()]);
    assert_eq!(v["files"], files as u64, "{v}");
    assert_eq!(v["new_blobs"], blobs as u64, "{v}");
    let id = v["id"].as_str().unwrap().to_string();
    let co = root.join("co");
    let (v, checkout) = peak(&store, &[s("checkout"), s(&id), co.as_os_str()]);
    assert_eq!(v["files"], files as u64, "{v}");
    let (v, verify) = peak(&store, &[s("verify")]);
    assert_eq!(v["ok"], true, "{v}");
    let (v, ls) = peak(&store, &[s("ls")]);
    assert_eq!(v["snapshots"][0]["files"], files as u64, "{v}");
    let (v, gc) = peak(&store, &[s("gc"), s("--dry-run")]);
    assert_eq!(v["blobs_kept"], blobs as u64, "{v}");
    // Last: its output, read here, is the whole manifest (this process's resident set
    // after it would be the least any later command's peak could be).
    let (v, show) = peak(&store, &[s("show"), s(&id)]);
    assert_eq!(v["files"], files as u64);
    let listed = v["entries"].as_array().unwrap();
    assert_eq!(
        listed.iter().filter(|e| e["kind"] == "file").count(),
        files,
        "show --json lists every file"
    );
    let [status, switch] = worktree_peaks(&store, &co, &id);
    [snapshot, checkout, verify, ls, gc, show, status, switch]
}

/// The inode and size of the one worktree's stat cache in `store` (`worktrees/<id>.stat`).
fn stat_cache(store: &Path) -> (u64, u64) {
    use std::os::unix::fs::MetadataExt;
    let caches: Vec<fs::Metadata> = fs::read_dir(store.join("worktrees"))
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| e.path().extension() == Some(OsStr::new("stat")))
        .map(|e| e.metadata().unwrap())
        .collect();
    assert_eq!(caches.len(), 1, "one worktree, one stat cache");
    (caches[0].ino(), caches[0].len())
}

/// In the worktree `co` of snapshot `id`: one file in a hundred of those with content changed,
/// keeping its size, `status` (which hashes them and rewrites the worktree's stat cache), a
/// snapshot of the worktree, then `switch` back to `id` (which writes them again and rewrites the
/// cache): the peak RSS in KiB of the status and the switch.
fn worktree_peaks(store: &Path, co: &Path, id: &str) -> [u64; 2] {
    let mut files = Vec::new();
    let mut dirs = vec![co.to_path_buf()];
    while let Some(d) = dirs.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            let t = e.file_type().unwrap();
            if t.is_dir() {
                dirs.push(e.path());
            } else if t.is_file() {
                files.push(e.path());
            }
        }
    }
    files.retain(|p| p.metadata().unwrap().len() > 0);
    files.sort();
    // The same size, other bytes: only a read tells them changed.
    let changed: Vec<&Path> = files.iter().step_by(100).map(|p| p.as_path()).collect();
    for p in &changed {
        let mut b = fs::read(p).unwrap();
        b[0] ^= 0x20;
        fs::write(p, b).unwrap();
    }
    let before = stat_cache(store);
    let (v, status) = peak(store, &[s("status"), co.as_os_str()]);
    let n = changed.len() as u64;
    assert_eq!(v["hashed"], n, "{v}");
    // The peak measured is of a status that rewrote the cache (a new file, replaced whole), as
    // long as the old one (the same records, some of them fresh).
    let after = stat_cache(store);
    assert_ne!(after.0, before.0, "status did not rewrite the stat cache");
    assert!(
        after.1 >= before.1,
        "status's new stat cache is {} bytes, the old {}",
        after.1,
        before.1
    );
    assert_eq!(
        v["modified"].as_array().map(Vec::len),
        Some(changed.len()),
        "{v}"
    );
    let (v, _) = peak(store, &[s("snapshot"), co.as_os_str()]);
    assert_eq!(v["new_blobs"].as_u64().map(|b| b >= 1), Some(true), "{v}");
    let (v, switch) = peak(store, &[s("switch"), s(id), co.as_os_str()]);
    let (v2, _) = peak(store, &[s("status"), co.as_os_str()]);
    assert_eq!(v2["clean"], true, "after the switch: {v2} ({v})");
    assert_eq!(v2["hashed"], 0, "the switch's cache trusted: {v2}");
    [status, switch]
}

#[test]
fn every_command_reading_a_snapshot_has_its_memory_per_file_bounded_on_a_200k_file_tree() {
    if !cowtree_testutil::full_tier("the memory bounds of eight commands on 200,000 files") {
        return;
    }
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let Some(dir) = scratch(Fs::Xfs) else { return };
    let small = dir.path().join("small");
    let big = dir.path().join("big");
    let started = Instant::now();
    assert_eq!(make_tree(&small.join("tree"), 1), 1);
    let base = peaks(&small, 1, 1);
    let blobs = make_tree(&big.join("tree"), FILES);
    let made = started.elapsed();
    let got = peaks(&big, FILES, blobs);
    let ran = started.elapsed() - made;
    let mut over = Vec::new();
    for (((cmd, bound), base_kib), peak_kib) in BOUNDS.iter().zip(base).zip(got) {
        let per_file = peak_kib.saturating_sub(base_kib) * 1024 / FILES as u64;
        println!(
            "{cmd} of {FILES} files ({BIG_DIR} in one directory): peak RSS {} MiB, one-file \
             tree {} MiB: {per_file} bytes per file (bound {bound})",
            peak_kib / 1024,
            base_kib / 1024,
        );
        if per_file > *bound {
            over.push(format!(
                "{cmd}: peak RSS {peak_kib} KiB, {} KiB above a one-file tree's: {per_file} \
                 bytes per file, over the bound of {bound}",
                peak_kib.saturating_sub(base_kib)
            ));
        }
    }
    println!(
        "tree made in {:.1} s, the commands ran in {:.1} s",
        made.as_secs_f64(),
        ran.as_secs_f64()
    );
    assert!(over.is_empty(), "{FILES} files:\n{}", over.join("\n"));
}

/// [`worktree_peaks`] of a checkout of `tree` (of `files` files) from a new `store`.
fn worktree_peaks_of(tree: &Path, store: &Path, files: usize) -> [u64; 2] {
    let (v, _) = peak(store, &[s("snapshot"), tree.as_os_str()]);
    let id = v["id"].as_str().unwrap().to_string();
    let co = store.with_extension("wt");
    let (v, _) = peak(store, &[s("checkout"), s(&id), co.as_os_str()]);
    assert_eq!(v["files"], files as u64, "{v}");
    let got = worktree_peaks(store, &co, &id);
    let _ = fs::remove_dir_all(&co);
    let _ = fs::remove_dir_all(store);
    got
}

/// The lower peak RSS (KiB) of two checkouts of the tree at `tree`, snapshotted into a store at
/// `store`, each into a new directory.
fn checkout_peak(tree: &Path, store: &Path, files: usize) -> u64 {
    let (v, _) = peak(store, &[s("snapshot"), tree.as_os_str()]);
    let id = v["id"].as_str().unwrap().to_string();
    (0..2)
        .map(|i| {
            let co = store.with_extension(format!("co-{i}"));
            let (v, kib) = peak(store, &[s("checkout"), s(&id), co.as_os_str()]);
            assert_eq!(v["files"], files as u64, "{v}");
            let _ = fs::remove_dir_all(&co);
            kib
        })
        .min()
        .unwrap()
}

#[test]
fn the_snapshot_checkout_status_and_switch_hold_names_not_paths() {
    if !cowtree_testutil::full_tier("the path-length bounds on 200,000 files") {
        return;
    }
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let Some(dir) = scratch(Fs::Xfs) else { return };
    let short = dir.path().join("short");
    let blobs = make_tree(&short, FILES);
    // The lower of two runs, each into a new store: one run's peak varies by a few MiB.
    let snapshot = |tree: &Path, store: &str| {
        (0..2)
            .map(|i| {
                let store = dir.path().join(format!("{store}-{i}"));
                let (v, kib) = peak(&store, &[s("snapshot"), tree.as_os_str()]);
                assert_eq!(v["files"], FILES as u64, "{v}");
                assert_eq!(v["new_blobs"], blobs as u64, "{v}");
                let _ = fs::remove_dir_all(&store);
                kib
            })
            .min()
            .unwrap()
    };
    let short_kib = snapshot(&short, "store-short");
    let short_co = checkout_peak(&short, &dir.path().join("co-short"), FILES);
    // The lower of two runs each, as above.
    let worktree = |tree: &Path, name: &str| {
        let [a, b] = worktree_peaks_of(tree, &dir.path().join(format!("{name}-0")), FILES);
        let [c, d] = worktree_peaks_of(tree, &dir.path().join(format!("{name}-1")), FILES);
        [a.min(c), b.min(d)]
    };
    let short_wt = worktree(&short, "wt-short");
    // The same files, each path 204 bytes longer.
    let long = dir.path().join("long");
    let deep = (0..4).fold(long.clone(), |p, i| p.join(format!("{i}").repeat(50)));
    fs::create_dir_all(&deep).unwrap();
    for top in ["vendor", "src"] {
        fs::rename(short.join(top), deep.join(top)).unwrap();
    }
    let long_kib = snapshot(&long, "store-long");
    let long_co = checkout_peak(&long, &dir.path().join("co-long"), FILES);
    let long_wt = worktree(&long, "wt-long");
    let grew = long_kib.saturating_sub(short_kib) * 1024 / FILES as u64;
    println!(
        "snapshot of {FILES} files: peak RSS {} KiB with paths 204 bytes longer, {} KiB \
         without: {grew} bytes per file more (bound {LONG_PATHS_BOUND})",
        long_kib, short_kib
    );
    let co_grew = long_co.saturating_sub(short_co) * 1024 / FILES as u64;
    println!(
        "checkout of {FILES} files: peak RSS {long_co} KiB with paths 204 bytes longer, \
         {short_co} KiB without: {co_grew} bytes per file more (bound {CHECKOUT_LONG_PATHS_BOUND})"
    );
    assert!(
        grew <= LONG_PATHS_BOUND,
        "the snapshot's peak grew by {grew} bytes per file with paths 204 bytes longer \
         ({short_kib} -> {long_kib} KiB)"
    );
    assert!(
        co_grew <= CHECKOUT_LONG_PATHS_BOUND,
        "the checkout's peak grew by {co_grew} bytes per file with paths 204 bytes longer \
         ({short_co} -> {long_co} KiB)"
    );
    for ((cmd, short_kib), long_kib) in ["status", "switch"].iter().zip(short_wt).zip(long_wt) {
        let grew = long_kib.saturating_sub(short_kib) * 1024 / FILES as u64;
        println!(
            "{cmd} of {FILES} files: peak RSS {long_kib} KiB with paths 204 bytes longer, \
             {short_kib} KiB without: {grew} bytes per file more (bound \
             {WORKTREE_LONG_PATHS_BOUND})"
        );
        assert!(
            grew <= WORKTREE_LONG_PATHS_BOUND,
            "{cmd}'s peak grew by {grew} bytes per file with paths 204 bytes longer \
             ({short_kib} -> {long_kib} KiB)"
        );
    }
}
