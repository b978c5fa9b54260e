//! Hostile worktrees on real XFS: symlinks, hardlinks and FIFOs planted where `switch` and
//! `reset` write, directories swapped for symlinks while `switch` runs, and `switch` killed
//! with SIGKILL at random points. Each test records an enclosing sandbox before and after and
//! asserts that nothing outside the worktree and the store was created or changed.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::fs;
use std::os::unix::fs::{MetadataExt, symlink};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::common::*;
use crate::plant::{mkfifo, swapper};
use cowtree_testutil::TreeState;
use cowtree_testutil::tree::{assert_same_tree, snapshot as tree_of};
use cowtree_testutil::{Fs, XorShift, pattern, scratch};

/// `outside/` with files and a directory whose names are those a worktree directory holds,
/// so that a write or removal that followed a symlink would land on (or remove) them.
fn outside(root: &Path) -> PathBuf {
    let o = root.join("outside");
    fs::create_dir_all(o.join("dir/sub")).unwrap();
    fs::write(o.join("secret"), b"do not touch").unwrap();
    fs::write(o.join("linked"), b"hardlinked outside").unwrap();
    for name in ["inner", "sub/x", "f0", "f1", "f2", "keep"] {
        fs::write(o.join("dir").join(name), b"outside").unwrap();
    }
    o
}

/// The small tree of the destination tests; `seed` varies every file's content.
fn small_tree(dir: &Path, seed: u64) {
    fs::create_dir_all(dir.join("d/sub")).unwrap();
    fs::write(dir.join("d/inner"), pattern(5000, seed + 1)).unwrap();
    fs::write(dir.join("d/sub/x"), pattern(3000, seed + 2)).unwrap();
    fs::write(dir.join("f"), pattern(4000, seed + 3)).unwrap();
    fs::write(dir.join("h"), pattern(4000, seed + 4)).unwrap();
    fs::write(dir.join("p"), pattern(100, seed + 5)).unwrap();
}

/// Plants, in worktree `wt`: `d` (a tracked directory) as a symlink to `outside/dir`, `f` as a
/// symlink to `outside/secret`, `h` as a hardlink of `outside/linked`, `p` as a FIFO.
fn plant(wt: &Path, out: &Path) {
    fs::remove_dir_all(wt.join("d")).unwrap();
    symlink(out.join("dir"), wt.join("d")).unwrap();
    fs::remove_file(wt.join("f")).unwrap();
    symlink(out.join("secret"), wt.join("f")).unwrap();
    fs::remove_file(wt.join("h")).unwrap();
    fs::hard_link(out.join("linked"), wt.join("h")).unwrap();
    fs::remove_file(wt.join("p")).unwrap();
    mkfifo(&wt.join("p"));
}

fn run60(store: &Path, args: &[&OsStr]) -> Ran {
    let mut c = bin();
    c.arg("--store").arg(store).args(args);
    run_limited(c, Duration::from_secs(60))
}

/// Every `.cowtree-` name anywhere beneath `dir`.
fn leftovers_beneath(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            if e.file_name().to_string_lossy().contains(".cowtree-") {
                out.push(e.path());
            }
            if e.file_type().unwrap().is_dir() {
                stack.push(e.path());
            }
        }
    }
    out
}

/// What a hardening test's worktree command works between: the scratch root, the worktree,
/// the store, the directory outside that plants point at, and the tree the command must reach.
struct Ends<'a> {
    root: &'a Path,
    wt: &'a Path,
    store: &'a Path,
    out: &'a Path,
    target: &'a Path,
}

impl Ends<'_> {
    /// After `what`: nothing outside the worktree and the store differs from `before`, the
    /// outside files kept their content, the worktree is exactly the target's tree, and no
    /// staging is left beneath it.
    #[track_caller]
    fn assert_reached(&self, before: &TreeState, what: &str) {
        before.assert_same(
            &capture_except(self.root, &[self.wt, self.store]),
            &format!("{what} changed something outside"),
        );
        assert_outside_intact(self.out, &format!("after {what}"));
        assert_same_tree(&tree_of(self.target), &tree_of(self.wt), false);
        assert!(
            leftovers_beneath(self.wt).is_empty(),
            "{what}: {:?}",
            leftovers_beneath(self.wt)
        );
    }

    /// `switch B WT` is refused, naming each of `listed` and changing nothing outside; then
    /// `switch --force B WT` reaches the target ([`Ends::assert_reached`]). The plants are `what`.
    #[track_caller]
    fn switch_refused_then_forced(&self, b: &str, listed: &[&str], what: &str) {
        let before = capture_except(self.root, &[self.wt, self.store]);
        let r = run60(self.store, &[s("switch"), s(b), self.wt.as_os_str()]);
        r.assert_error(&format!("switch without --force over {what}"));
        for p in listed {
            assert!(
                r.stderr.contains(p),
                "refusal does not list {p}: {}",
                r.stderr
            );
        }
        before.assert_same(
            &capture_except(self.root, &[self.wt, self.store]),
            "refused switch",
        );
        run60(
            self.store,
            &[s("switch"), s("--force"), s(b), self.wt.as_os_str()],
        )
        .assert_ok("switch --force");
        self.assert_reached(&before, &format!("switch --force over {what}"));
    }
}

fn assert_outside_intact(out: &Path, what: &str) {
    assert_eq!(
        fs::read(out.join("secret")).unwrap(),
        b"do not touch",
        "{what}"
    );
    assert_eq!(
        fs::read(out.join("linked")).unwrap(),
        b"hardlinked outside",
        "{what}"
    );
    assert_eq!(
        fs::metadata(out.join("linked")).unwrap().nlink(),
        1,
        "{what}: the worktree still holds a hardlink of outside/linked"
    );
}

/// `switch` without `--force` refuses, listing every planted path, and changes nothing.
/// `switch --force` and `reset --hard` replace the planted entries and reach the target state
/// exactly (they do not fail: the planted entries are local changes that both commands are
/// told to overwrite). Plain `reset` fails cleanly naming `d` (a symlink where the base has a
/// directory counts as untracked in the way, which needs `--hard`). The planted symlinks are
/// removed, never followed; the hardlinked outside file keeps its content (the worktree's
/// name is replaced by a new file); the FIFO is replaced without being opened (a 60 s limit
/// on each run catches a hang).
#[test]
fn switch_force_and_reset_hard_replace_planted_symlinks_hardlinks_and_fifos_without_touching_outside()
 {
    let Some(dir) = scratch(Fs::Xfs) else { return };
    let root = dir.path();
    let out = outside(root);
    let (src_a, src_b) = (root.join("a"), root.join("b"));
    small_tree(&src_a, 0);
    small_tree(&src_b, 100);
    let store = root.join("store");
    let a = snapshot(&store, &src_a);
    let b = snapshot(&store, &src_b);
    let wt = root.join("wt");
    run60(&store, &[s("checkout"), s(&a), wt.as_os_str()]).assert_ok("checkout");

    // switch: every planted path is one the target changes.
    plant(&wt, &out);
    let ends = Ends {
        root,
        wt: &wt,
        store: &store,
        out: &out,
        target: &src_b,
    };
    let listed = [
        "\"d\" (untracked)",
        "\"d/inner\" (dirty)",
        "\"d/sub/x\" (dirty)",
        "\"f\" (dirty)",
        "\"h\" (dirty)",
        "\"p\" (dirty)",
    ];
    ends.switch_refused_then_forced(&b, &listed, "planted entries");
    let st = run60(&store, &[s("status"), s("--exit-code"), wt.as_os_str()]);
    assert_eq!(st.code(), Some(0), "status after switch: {}", st.stdout);

    // Plain reset: the symlink at `d` is a non-directory where the base has a directory, so
    // reset refuses it as untracked in the way (like git), naming it; nothing outside changes.
    plant(&wt, &out);
    let before = capture_except(root, &[&wt, &store]);
    let r = run60(&store, &[s("reset"), s("-C"), wt.as_os_str()]);
    r.assert_error("reset without --hard over a symlink where a directory goes");
    let d = wt.join("d");
    assert!(r.stderr.contains(&*d.to_string_lossy()), "{}", r.stderr);
    before.assert_same(
        &capture_except(root, &[&wt, &store]),
        "refused reset changed something outside",
    );
    // (The refused reset may leave the plants where they are; their targets kept content.)
    assert_eq!(fs::read(out.join("secret")).unwrap(), b"do not touch");
    assert_eq!(fs::read(out.join("linked")).unwrap(), b"hardlinked outside");
    // reset --hard: the plants (still there, or planted again) are replaced from B.
    fs::remove_file(&d).ok();
    fs::create_dir(&d).ok();
    for p in ["d/inner", "d/sub", "f", "h", "p"] {
        let _ = fs::remove_file(wt.join(p));
        let _ = fs::remove_dir_all(wt.join(p));
    }
    run60(&store, &[s("reset"), s("--hard"), s("-C"), wt.as_os_str()]).assert_ok("restore");
    plant(&wt, &out);
    let before = capture_except(root, &[&wt, &store]);
    run60(&store, &[s("reset"), s("--hard"), s("-C"), wt.as_os_str()]).assert_ok("reset --hard");
    ends.assert_reached(&before, "reset --hard over planted entries");
    let st = run60(&store, &[s("status"), s("--exit-code"), wt.as_os_str()]);
    assert_eq!(
        st.code(),
        Some(0),
        "status after reset --hard: {}",
        st.stdout
    );
    assert_verify_ok(&store, "at the end");
}

/// The target adds a directory `n`, files `nf`, `nh`, `np` and `n2/sub/x` that the worktree
/// lacks; where they go sit a symlink to an outside directory, a symlink to an outside file,
/// a hardlink of an outside file, a FIFO, and (at `n2`) a symlink to an outside directory.
/// `switch` refuses, listing each as untracked and changing nothing; `switch --force` replaces
/// them and reaches the target exactly, never following or opening them.
#[test]
fn switch_force_replaces_untracked_symlinks_hardlinks_and_fifos_where_new_entries_go() {
    let Some(dir) = scratch(Fs::Xfs) else { return };
    let root = dir.path();
    let out = outside(root);
    let (src_a, src_b) = (root.join("a"), root.join("b"));
    small_tree(&src_a, 0);
    small_tree(&src_b, 0);
    fs::create_dir_all(src_b.join("n/sub")).unwrap();
    fs::write(src_b.join("n/inner"), pattern(2000, 9)).unwrap();
    fs::write(src_b.join("n/sub/x"), pattern(2000, 10)).unwrap();
    fs::write(src_b.join("nf"), pattern(2000, 11)).unwrap();
    fs::write(src_b.join("nh"), pattern(2000, 12)).unwrap();
    fs::write(src_b.join("np"), pattern(2000, 13)).unwrap();
    fs::create_dir_all(src_b.join("n2/sub")).unwrap();
    fs::write(src_b.join("n2/sub/x"), pattern(2000, 14)).unwrap();
    let store = root.join("store");
    let a = snapshot(&store, &src_a);
    let b = snapshot(&store, &src_b);
    let wt = root.join("wt");
    run60(&store, &[s("checkout"), s(&a), wt.as_os_str()]).assert_ok("checkout");
    symlink(out.join("dir"), wt.join("n")).unwrap();
    symlink(out.join("secret"), wt.join("nf")).unwrap();
    fs::hard_link(out.join("linked"), wt.join("nh")).unwrap();
    mkfifo(&wt.join("np"));
    symlink(out.join("dir"), wt.join("n2")).unwrap();
    let ends = Ends {
        root,
        wt: &wt,
        store: &store,
        out: &out,
        target: &src_b,
    };
    let listed = ["n", "nf", "nh", "np", "n2"].map(|p| format!("\"{p}\" (untracked)"));
    ends.switch_refused_then_forced(
        &b,
        &listed.each_ref().map(String::as_str),
        "untracked plants",
    );
    assert_verify_ok(&store, "at the end");
}

/// A tree of `dirs` directories under `d/` of `files` small files each, content by `seed`.
fn wide_tree(dir: &Path, dirs: usize, files: usize, seed: u64) {
    for d in 0..dirs {
        let sub = dir.join(format!("d/s{d}"));
        fs::create_dir_all(&sub).unwrap();
        for f in 0..files {
            let n = (d * 1000 + f) as u64;
            fs::write(sub.join(format!("f{f}")), pattern(64 + f, seed + n)).unwrap();
        }
    }
}

/// Runs `cowtree ARGS` (a `what`) on `store` while a [`swapper`] trades the worktree's `d`,
/// `d/s0` and `d/s5` for symlinks to OUT/dir: it succeeds, or fails cleanly naming a path in
/// the worktree; either way nothing outside the worktree and the store changes. Some runs swap
/// without pause, others leave the directories in place most of the time, so that the command
/// also gets further before it meets a symlink. Returns the swaps made and whether it succeeded.
#[track_caller]
fn raced(
    root: &Path,
    wt: &Path,
    store: &Path,
    out: &Path,
    run: usize,
    what: &str,
    args: &[&OsStr],
) -> (u64, bool) {
    let before = capture_except(root, &[wt, store]);
    let stop = Arc::new(AtomicBool::new(false));
    let targets = vec![wt.join("d"), wt.join("d/s0"), wt.join("d/s5")];
    let pause = Duration::from_millis([0, 5, 20, 60][run % 4]);
    let t = swapper(
        targets,
        out.join("dir"),
        pause,
        Duration::from_secs(10),
        Arc::clone(&stop),
    );
    let r = run60(store, args);
    stop.store(true, Ordering::Relaxed);
    let swaps = t.join().unwrap();
    if !r.ok() {
        r.assert_error(&format!("raced {what}"));
        assert!(
            r.stderr.contains(&*wt.to_string_lossy()),
            "run {run}: the error names no path in the worktree: {}",
            r.stderr
        );
    }
    before.assert_same(
        &capture_except(root, &[wt, store]),
        &format!("run {run}: raced {what} changed something outside"),
    );
    (swaps, r.ok())
}

const RACE_RUNS: usize = 16;

/// While `switch --force` runs, a thread swaps `d`, `d/s0` and `d/s5` with symlinks to an
/// outside directory holding files of the same names. A run may succeed or fail cleanly
/// (exit 1, naming a path in the worktree); either way nothing outside changes, and a `switch --force` + `reset --hard` afterwards
/// reaches the target exactly.
#[test]
fn switch_with_directories_swapped_for_symlinks_to_outside_never_writes_outside() {
    let Some(dir) = scratch(Fs::Xfs) else { return };
    let root = dir.path();
    let out = outside(root);
    for d in 0..8 {
        fs::create_dir_all(out.join(format!("dir/s{d}"))).unwrap();
        fs::write(out.join(format!("dir/s{d}/f0")), b"outside").unwrap();
    }
    let (src_a, src_b) = (root.join("a"), root.join("b"));
    wide_tree(&src_a, 8, 40, 0);
    wide_tree(&src_b, 8, 40, 50_000);
    let store = root.join("store");
    let ids = [snapshot(&store, &src_a), snapshot(&store, &src_b)];
    let srcs = [&src_a, &src_b];
    let wt = root.join("wt");
    run60(&store, &[s("checkout"), s(&ids[0]), wt.as_os_str()]).assert_ok("checkout");
    let mut total_swaps = 0;
    let mut outcomes = (0, 0);
    for run in 0..RACE_RUNS {
        let target = (run + 1) % 2;
        let args = [s("switch"), s("--force"), s(&ids[target]), wt.as_os_str()];
        let (swaps, ok) = raced(root, &wt, &store, &out, run, "switch", &args);
        total_swaps += swaps;
        if ok {
            outcomes.0 += 1;
        } else {
            outcomes.1 += 1;
        }
        // Without the swapper, the worktree is brought to the target exactly.
        run60(
            &store,
            &[s("switch"), s("--force"), s(&ids[target]), wt.as_os_str()],
        )
        .assert_ok("switch after the race");
        run60(&store, &[s("reset"), s("--hard"), s("-C"), wt.as_os_str()])
            .assert_ok("reset --hard");
        assert_same_tree(&files_of(srcs[target]), &files_of(&wt), false);
    }
    println!(
        "{RACE_RUNS} raced switches: {total_swaps} swaps, {} succeeded, {} failed cleanly",
        outcomes.0, outcomes.1
    );
    assert!(total_swaps > 0, "the swapper never swapped");
    assert_verify_ok(&store, "after raced switches");
}

/// While `reset --hard` restores a worktree whose files under `d/` were all modified, a thread
/// swaps `d`, `d/s0` and `d/s5` with symlinks to an outside directory holding files of the
/// same names. A run may succeed or fail cleanly naming a worktree path; either way nothing
/// outside changes, and an undisturbed `reset --hard` afterwards restores the base exactly.
#[test]
fn reset_hard_with_directories_swapped_for_symlinks_to_outside_never_writes_outside() {
    let Some(dir) = scratch(Fs::Xfs) else { return };
    let root = dir.path();
    let out = outside(root);
    for d in 0..8 {
        fs::create_dir_all(out.join(format!("dir/s{d}"))).unwrap();
        fs::write(out.join(format!("dir/s{d}/f0")), b"outside").unwrap();
    }
    let src = root.join("a");
    wide_tree(&src, 8, 40, 0);
    let store = root.join("store");
    let id = snapshot(&store, &src);
    let wt = root.join("wt");
    run60(&store, &[s("checkout"), s(&id), wt.as_os_str()]).assert_ok("checkout");
    let mut total_swaps = 0;
    let mut outcomes = (0, 0);
    for run in 0..RESET_RUNS {
        for d in 0..8 {
            for f in 0..40 {
                fs::write(wt.join(format!("d/s{d}/f{f}")), b"local change").unwrap();
            }
        }
        let args = [s("reset"), s("--hard"), s("-C"), wt.as_os_str()];
        let (swaps, ok) = raced(root, &wt, &store, &out, run, "reset", &args);
        total_swaps += swaps;
        if ok {
            outcomes.0 += 1;
        } else {
            outcomes.1 += 1;
        }
        run60(&store, &[s("reset"), s("--hard"), s("-C"), wt.as_os_str()]).assert_ok("reset after");
        assert_same_tree(&files_of(&src), &files_of(&wt), false);
    }
    println!(
        "{RESET_RUNS} raced resets: {total_swaps} swaps, {} succeeded, {} failed cleanly",
        outcomes.0, outcomes.1
    );
    assert!(total_swaps > 0, "the swapper never swapped");
    assert_verify_ok(&store, "after raced resets");
}

const RESET_RUNS: usize = 12;

/// The tree beneath `root` with directory modes left out: snapshots do not record them, and
/// a concurrent writer racing `remove_tree` (which makes a directory 0700 to empty it) can
/// leave a directory with another mode that no later command is meant to restore.
fn files_of(root: &Path) -> BTreeMap<PathBuf, cowtree_testutil::tree::Entry> {
    let mut t = tree_of(root);
    for e in t.values_mut() {
        if e.kind == cowtree_testutil::tree::Kind::Dir {
            e.mode = 0;
        }
    }
    t
}

/// Content of every regular file beneath `root`, by relative path.
fn contents(root: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    tree_of(root)
        .into_iter()
        .filter_map(|(p, e)| match e.kind {
            cowtree_testutil::tree::Kind::File(data) => Some((p, data)),
            _ => None,
        })
        .collect()
}

/// Tree A, and tree B: half the files changed, some removed, some added, and a file that
/// becomes a directory, a directory that becomes a file and a file that becomes a symlink.
fn two_trees(a: &Path, b: &Path) {
    for i in 0..240u64 {
        let p = format!("d{}/s{}/f{i}", i % 6, i % 3);
        let size = 2000 + (i as usize % 5) * 1500;
        fs::create_dir_all(a.join(&p).parent().unwrap()).unwrap();
        fs::write(a.join(&p), pattern(size, i)).unwrap();
        if i % 31 != 7 {
            let seed = if i % 2 == 0 { i + 100_000 } else { i };
            fs::create_dir_all(b.join(&p).parent().unwrap()).unwrap();
            fs::write(b.join(&p), pattern(size, seed)).unwrap();
        }
    }
    fs::create_dir_all(b.join("added")).unwrap();
    for i in 0..30 {
        fs::write(b.join(format!("added/a{i}")), pattern(3000, i + 7)).unwrap();
    }
    fs::create_dir_all(a.join("x/dir-then-file")).unwrap();
    fs::write(a.join("x/file-then-dir"), b"file").unwrap();
    fs::write(a.join("x/dir-then-file/inner"), b"dir").unwrap();
    fs::write(a.join("x/file-then-link"), b"file").unwrap();
    fs::create_dir_all(b.join("x/file-then-dir")).unwrap();
    fs::write(b.join("x/file-then-dir/inner"), b"dir now").unwrap();
    fs::write(b.join("x/dir-then-file"), b"file now").unwrap();
    symlink("../d0", b.join("x/file-then-link")).unwrap();
}

/// `switch` killed with SIGKILL after a random 0-150 ms (capped at three quarters of the time
/// one switch takes), alternately towards A and B, until 30 runs (10 in the README's run) were
/// killed before they finished: afterwards nothing outside changed, `verify` passes, every
/// file under its final name holds whole content of A or of B, and re-running the same switch
/// reaches the target exactly (`status --exit-code` clean, no temp left).
#[test]
fn switch_killed_at_random_points_leaves_whole_files_and_a_rerun_reaches_the_target() {
    let Some(dir) = scratch(Fs::Xfs) else { return };
    let root = dir.path();
    let (src_a, src_b) = (root.join("a"), root.join("b"));
    two_trees(&src_a, &src_b);
    let store = root.join("store");
    let ids = [snapshot(&store, &src_a), snapshot(&store, &src_b)];
    let srcs = [&src_a, &src_b];
    let (ca, cb) = (contents(&src_a), contents(&src_b));
    let wt = root.join("wt");
    run60(&store, &[s("checkout"), s(&ids[0]), wt.as_os_str()]).assert_ok("checkout");
    // Calibrate: how long one switch takes here (A to B and back, the faster), so that the
    // random delay (0-150 ms, capped at three quarters of that) lands while the switch runs.
    let mut one_ms = u64::MAX;
    for id in [&ids[1], &ids[0]] {
        let t = Instant::now();
        run60(&store, &[s("switch"), s(id), wt.as_os_str()]).assert_ok("calibration");
        one_ms = one_ms.min(t.elapsed().as_millis() as u64);
    }
    let one_ms = (one_ms * 3 / 4).clamp(5, 150);
    let mut rng = XorShift::from_clock("switch kills");
    // 30 kills in the full tier, 10 in the README's run (`cowtree_testutil::rounds`).
    let kills = cowtree_testutil::rounds(30, 10);
    let mut killed = 0;
    let mut attempts = 0;
    let mut mixed = 0;
    let started = Instant::now();
    // Until that many switches were killed before they finished (at most four times as many runs).
    for i in 0..kills * 4 {
        if killed == kills {
            break;
        }
        attempts += 1;
        let target = ((i + 1) % 2) as usize;
        let before = capture_except(root, &[&wt, &store]);
        let args = [s("switch"), s(&ids[target]), wt.as_os_str()];
        let delay = Duration::from_millis(rng.below(one_ms + 1));
        if !run_killed_after(&store, &args, delay) {
            killed += 1;
        }
        before.assert_same(
            &capture_except(root, &[&wt, &store]),
            &format!("kill {i}: killed switch changed something outside"),
        );
        assert_verify_ok(&store, &format!("kill {i}"));
        let (mut of_target, mut of_other) = (false, false);
        let want = if target == 0 { &ca } else { &cb };
        for (p, data) in contents(&wt) {
            let name = p.file_name().unwrap().to_string_lossy();
            if name.starts_with(".cowtree-tmp-") {
                continue;
            }
            if want.get(&p) == Some(&data) {
                of_target |= p.starts_with("d0") && ca.get(&p) != cb.get(&p);
            } else {
                of_other |= p.starts_with("d0");
            }
            assert!(
                ca.get(&p) == Some(&data) || cb.get(&p) == Some(&data),
                "kill {i}: {} holds content of neither snapshot",
                p.display()
            );
        }
        // Killed while writing: some changed files already new, others still old.
        mixed += usize::from(of_target && of_other);
        run60(&store, &[s("switch"), s(&ids[target]), wt.as_os_str()])
            .assert_ok(&format!("kill {i}: re-run of the switch"));
        assert_same_tree(&tree_of(srcs[target]), &tree_of(&wt), false);
        assert!(
            leftovers_beneath(&wt).is_empty(),
            "{:?}",
            leftovers_beneath(&wt)
        );
        let st = run60(&store, &[s("status"), s("--exit-code"), wt.as_os_str()]);
        assert_eq!(st.code(), Some(0), "kill {i}: status: {}", st.stdout);
    }
    println!(
        "{attempts} switches (delays 0-{one_ms} ms), {killed} killed before they \
         finished, {mixed} of them in the middle of writing files, {:?}",
        started.elapsed()
    );
    assert_eq!(killed, kills, "too few switches were killed mid-run");
    assert_verify_ok(&store, "at the end");
}
