//! Hostile destinations on real XFS and btrfs: symlinks, hardlinks and FIFOs planted where
//! cowtree writes, and directories swapped for symlinks while it runs. After each run nothing
//! outside the destination may have been created or changed.

use std::ffi::OsStr;
use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt, symlink};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::common::*;
use crate::plant::{mkfifo, swapper};
use cowtree_testutil::tree::{assert_same_tree, snapshot as tree_of};
use cowtree_testutil::{Fs, pattern, scratch};

/// `outside/` with a file, a second file and a directory: what an attacker points at.
fn outside(root: &Path) -> PathBuf {
    let o = root.join("outside");
    fs::create_dir_all(o.join("dir")).unwrap();
    fs::write(o.join("secret"), b"do not touch").unwrap();
    fs::write(o.join("linked"), b"hardlinked outside").unwrap();
    fs::write(o.join("dir/keep"), b"keep").unwrap();
    o
}

fn small_src(root: &Path) -> PathBuf {
    let src = root.join("src");
    fs::create_dir_all(src.join("d/sub")).unwrap();
    fs::write(src.join("d/inner"), pattern(5000, 1)).unwrap();
    fs::write(src.join("d/sub/x"), pattern(3000, 2)).unwrap();
    fs::write(src.join("f"), pattern(4000, 3)).unwrap();
    fs::write(src.join("h"), pattern(4000, 4)).unwrap();
    fs::write(src.join("p"), pattern(100, 5)).unwrap();
    src
}

fn clone_overwrite(src: &Path, dst: &Path) -> Ran {
    let mut c = bin();
    c.args([s("clone"), s("--on-existing"), s("overwrite")])
        .arg(src)
        .arg(dst);
    run_limited(c, Duration::from_secs(60))
}

#[test]
fn clone_overwrite_replaces_planted_symlinks_hardlinks_and_fifos_without_touching_outside() {
    for fsys in Fs::COW {
        let Some(dir) = scratch(fsys) else { continue };
        let root = dir.path();
        let out = outside(root);
        let src = small_src(root);
        let dst = root.join("dst");
        fs::create_dir(&dst).unwrap();
        symlink(out.join("dir"), dst.join("d")).unwrap(); // where a directory goes
        symlink(out.join("secret"), dst.join("f")).unwrap(); // where a file goes
        fs::hard_link(out.join("linked"), dst.join("h")).unwrap(); // hardlink to outside
        mkfifo(&dst.join("p")); // a FIFO where a file goes
        let before = capture_except(root, &[&dst]);
        let r = clone_overwrite(&src, &dst);
        r.assert_ok(&format!("{fsys:?}: clone --on-existing overwrite"));
        before.assert_same(
            &capture_except(root, &[&dst]),
            &format!("{fsys:?}: clone over planted entries changed something outside DST"),
        );
        for (name, rel) in [
            ("f", "f"),
            ("h", "h"),
            ("p", "p"),
            ("d/inner", "d/inner"),
            ("d/sub/x", "d/sub/x"),
        ] {
            let m = fs::symlink_metadata(dst.join(rel)).unwrap();
            assert!(m.is_file(), "{fsys:?}: {name} is not a regular file now");
            assert_eq!(
                fs::read(dst.join(rel)).unwrap(),
                fs::read(src.join(rel)).unwrap(),
                "{fsys:?}: {name}"
            );
        }
        assert!(fs::symlink_metadata(dst.join("d")).unwrap().is_dir());
        // The outside file that DST/h was a hardlink of kept its content and lost the link.
        assert_eq!(fs::read(out.join("linked")).unwrap(), b"hardlinked outside");
        assert_eq!(fs::metadata(out.join("linked")).unwrap().nlink(), 1);
        assert!(leftovers(&dst).is_empty(), "{:?}", leftovers(&dst));
    }
}

#[test]
fn clone_and_checkout_refuse_a_destination_that_is_a_symlink_fifo_or_hardlink() {
    let Some(dir) = scratch(Fs::Xfs) else { return };
    let root = dir.path();
    let out = outside(root);
    let src = small_src(root);
    let store = root.join("store");
    let id = snapshot(&store, &src);
    fs::create_dir(out.join("empty")).unwrap();
    let link_dir = root.join("link-dir");
    symlink(out.join("empty"), &link_dir).unwrap();
    let link_file = root.join("link-file");
    symlink(out.join("secret"), &link_file).unwrap();
    let fifo = root.join("fifo");
    mkfifo(&fifo);
    let hard = root.join("hard");
    fs::hard_link(out.join("linked"), &hard).unwrap();
    let before = capture_except(root, &[]);
    for dst in [&link_dir, &link_file, &fifo, &hard] {
        let r = clone_overwrite(&src, dst);
        r.assert_error(&format!("clone into {}", dst.display()));
        assert!(r.stderr.contains(&*dst.to_string_lossy()), "{}", r.stderr);
        let mut c = bin();
        c.arg("--store")
            .arg(&store)
            .args([s("checkout"), s(&id)])
            .arg(dst);
        let r = run_limited(c, Duration::from_secs(60));
        r.assert_error(&format!("checkout into {}", dst.display()));
        assert!(r.stderr.contains(&*dst.to_string_lossy()), "{}", r.stderr);
        before.assert_same(
            &capture_except(root, &[]),
            &format!("refused destination {}", dst.display()),
        );
    }
    // An existing empty directory is accepted by checkout and filled.
    let empty = root.join("empty-dst");
    fs::create_dir(&empty).unwrap();
    let before = capture_except(root, &[&empty, &store.join("worktrees")]);
    cowtree(&store, &[s("checkout"), s(&id), empty.as_os_str()]).assert_ok("into empty dir");
    before.assert_same(
        &capture_except(root, &[&empty, &store.join("worktrees")]),
        "checkout into an empty dir",
    );
    assert_eq!(
        fs::read(empty.join("d/sub/x")).unwrap(),
        fs::read(src.join("d/sub/x")).unwrap()
    );
}

fn wide_src(root: &Path) -> PathBuf {
    let src = root.join("src");
    for d in 0..8 {
        let sub = src.join(format!("d/s{d}"));
        fs::create_dir_all(&sub).unwrap();
        for f in 0..40 {
            fs::write(sub.join(format!("f{f}")), pattern(64, (d * 100 + f) as u64)).unwrap();
        }
    }
    src
}

const RACE_RUNS: usize = 20;
/// A swapper stops by itself after this, should a test fail before it stops it.
const SWAP_LIMIT: Duration = Duration::from_secs(120);

#[test]
fn clone_overwrite_with_directories_swapped_for_symlinks_never_writes_outside() {
    let Some(dir) = scratch(Fs::Xfs) else { return };
    let root = dir.path();
    let out = outside(root);
    let src = wide_src(root);
    let mut total_swaps = 0;
    let mut failed_runs = 0;
    for run in 0..RACE_RUNS {
        let dst = root.join(format!("dst{run}"));
        // DST already holds the tree, so the clone merges into directories the swapper moves.
        clone_overwrite(&src, &dst).assert_ok("first clone");
        let before = capture_except(root, &[&dst]);
        let stop = Arc::new(AtomicBool::new(false));
        let targets = vec![dst.join("d"), dst.join("d/s0"), dst.join("d/s5")];
        let t = swapper(
            targets,
            out.join("dir"),
            Duration::ZERO,
            SWAP_LIMIT,
            Arc::clone(&stop),
        );
        let r = clone_overwrite(&src, &dst);
        stop.store(true, Ordering::Relaxed);
        total_swaps += t.join().unwrap();
        if !r.ok() {
            failed_runs += 1;
            r.assert_error("raced clone");
        }
        before.assert_same(
            &capture_except(root, &[&dst]),
            &format!("run {run}: raced clone changed something outside DST"),
        );
        fs::remove_dir_all(&dst).unwrap();
    }
    println!("{RACE_RUNS} raced clones: {total_swaps} swaps, {failed_runs} runs failed cleanly");
    assert!(total_swaps > 0, "the swapper never swapped");
}

#[test]
fn checkout_into_a_directory_swapped_for_a_symlink_never_writes_outside() {
    let Some(dir) = scratch(Fs::Xfs) else { return };
    let root = dir.path();
    let out = outside(root);
    fs::create_dir(out.join("empty")).unwrap();
    let src = wide_src(root);
    let store = root.join("store");
    let id = snapshot(&store, &src);
    let mut total_swaps = 0;
    let mut outcomes = (0, 0);
    for run in 0..RACE_RUNS {
        let dst = root.join(format!("wt{run}"));
        fs::create_dir(&dst).unwrap();
        let skip = [
            dst.as_path(),
            &store.join("worktrees"),
            &dst.with_extension("swapped-aside"),
        ];
        let before = capture_except(root, &skip);
        let stop = Arc::new(AtomicBool::new(false));
        // Some runs swap without pause, others leave DST a directory most of the time, so
        // that checkouts also start and are caught at the final rename.
        let pause = Duration::from_millis(2 * (run % 5) as u64);
        let t = swapper(
            vec![dst.clone()],
            out.join("empty"),
            pause,
            SWAP_LIMIT,
            Arc::clone(&stop),
        );
        let mut c = bin();
        c.arg("--store")
            .arg(&store)
            .args([s("checkout"), s(&id)])
            .arg(&dst);
        let r = run_limited(c, Duration::from_secs(60));
        stop.store(true, Ordering::Relaxed);
        total_swaps += t.join().unwrap();
        if r.ok() {
            outcomes.0 += 1;
            assert_same_tree(&tree_of(&src), &tree_of(&dst), false);
        } else {
            outcomes.1 += 1;
            r.assert_error("raced checkout");
        }
        before.assert_same(
            &capture_except(root, &skip),
            &format!("run {run}: raced checkout changed something outside DST"),
        );
        assert!(
            leftovers(root).is_empty(),
            "run {run}: {:?}",
            leftovers(root)
        );
        let _ = fs::remove_dir_all(&dst);
        let _ = fs::remove_file(&dst);
        let _ = fs::remove_dir_all(dst.with_extension("swapped-aside"));
    }
    println!(
        "{RACE_RUNS} raced checkouts: {total_swaps} swaps, {} succeeded, {} failed cleanly",
        outcomes.0, outcomes.1
    );
    assert!(total_swaps > 0, "the swapper never swapped");
    assert_verify_ok(&store, "after raced checkouts");
}

#[test]
fn a_fifo_in_the_destination_does_not_hang_a_clone_without_overwrite() {
    let Some(dir) = scratch(Fs::Xfs) else { return };
    let root = dir.path();
    let src = small_src(root);
    let dst = root.join("dst");
    fs::create_dir(&dst).unwrap();
    mkfifo(&dst.join("p"));
    let before = capture_except(root, &[]);
    for policy in ["fail", "skip"] {
        let mut c = bin();
        c.args([s("clone"), s("--on-existing"), OsStr::new(policy)])
            .arg(&src)
            .arg(&dst);
        let r = run_limited(c, Duration::from_secs(60));
        if policy == "fail" {
            r.assert_error("clone onto an existing DST");
            before.assert_same(&capture_except(root, &[]), "refused clone");
        } else {
            r.assert_ok("clone --on-existing skip");
            assert!(
                fs::symlink_metadata(dst.join("p"))
                    .unwrap()
                    .file_type()
                    .is_fifo()
            );
        }
    }
}
