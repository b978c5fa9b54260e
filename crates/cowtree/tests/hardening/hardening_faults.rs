//! Faults on real mounts: ENOSPC on the small XFS, kill -9 at random points, a tiny open-file
//! limit, a read-only destination and an unreadable source file.

use crate::common;

use std::ffi::OsStr;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::common::*;
use cowtree_testutil::tree::{assert_same_tree, snapshot as tree_of};
use cowtree_testutil::{Fs, XorShift, pattern, scratch};

/// A small tree: `dirs` directories of `files` files of `size` bytes (content seeded by
/// `seed`), a symlink and an empty directory.
fn make_tree(root: &Path, dirs: usize, files: usize, size: usize, seed: u64) {
    for d in 0..dirs {
        let sub = root.join(format!("d{d}"));
        fs::create_dir_all(&sub).unwrap();
        for f in 0..files {
            let n = (d * files + f) as u64;
            fs::write(
                sub.join(format!("f{f}")),
                pattern(size, seed * 1_000_003 + n),
            )
            .unwrap();
        }
    }
    fs::create_dir_all(root.join("empty")).unwrap();
    std::os::unix::fs::symlink("d0/f0", root.join("link")).unwrap();
}

/// Fills the filesystem holding `dir` with a file `dir/filler`, leaving about `leave` bytes.
fn fill_leaving(dir: &Path, leave: u64) -> PathBuf {
    let st = rustix::fs::statvfs(dir).unwrap();
    let free = st.f_bavail * st.f_frsize;
    let filler = dir.join("filler");
    let len = free.saturating_sub(leave);
    let ok = Command::new("fallocate")
        .arg("-l")
        .arg(len.to_string())
        .arg(&filler)
        .status()
        .unwrap()
        .success();
    assert!(ok, "fallocate {len} bytes in {}", dir.display());
    filler
}

fn no_staging(parent: &Path, what: &str) {
    let left = leftovers(parent);
    assert!(
        left.is_empty(),
        "{what}: staging left in {}: {left:?}",
        parent.display()
    );
}

#[test]
fn enospc_during_snapshot_checkout_and_clone_fails_cleanly_and_a_retry_succeeds() {
    let _small = cowtree_testutil::small_alone();
    let Some(small) = scratch(Fs::Small) else {
        return;
    };
    let Some(big) = scratch(Fs::Xfs) else { return };
    // Sources on another filesystem, so their data is copied onto the small one.
    let src = big.path().join("src");
    make_tree(&src, 6, 8, 512 * 1024, 1); // 24 MiB
    let store = small.path().join("store");
    common::init_store(&store);

    // snapshot: the store is on the small XFS.
    let filler = fill_leaving(small.path(), 8 << 20);
    // Copying across filesystems is what the snapshot is asked to do here.
    let copy = [
        s("snapshot"),
        s("--mode"),
        s("copy"),
        s("--json"),
        src.as_os_str(),
    ];
    let r = cowtree(&store, &copy);
    r.assert_error("snapshot into a full store");
    assert!(r.stderr.contains("No space left"), "{}", r.stderr);
    assert_eq!(fs::read_dir(store.join("snapshots")).unwrap().count(), 0);
    assert_eq!(
        fs::read_dir(store.join("tmp")).unwrap().count(),
        0,
        "staging left"
    );
    assert_verify_ok(&store, "after ENOSPC in snapshot");
    fs::remove_file(&filler).unwrap();
    let r = cowtree(&store, &copy);
    let id = r.assert_ok("the retried snapshot").json()["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_verify_ok(&store, "after the retried snapshot");

    // checkout from a store on the big XFS onto the small one: the data is copied (a copy
    // within one XFS may share extents, so that would not need space).
    let big_store = big.path().join("store");
    let big_id = snapshot(&big_store, &src);
    let filler = fill_leaving(small.path(), 8 << 20);
    let wt = small.path().join("wt");
    let r = cowtree(&big_store, &[s("checkout"), s(&big_id), wt.as_os_str()]);
    r.assert_error("checkout onto a full filesystem");
    assert!(r.stderr.contains("No space left"), "{}", r.stderr);
    assert!(fs::symlink_metadata(&wt).is_err(), "a partial DST exists");
    no_staging(small.path(), "checkout");
    assert_verify_ok(&big_store, "after ENOSPC in checkout");
    fs::remove_file(&filler).unwrap();
    cowtree(&big_store, &[s("checkout"), s(&big_id), wt.as_os_str()]).assert_ok("retried");
    assert_same_tree(&tree_of(&src), &tree_of(&wt), false);
    fs::remove_dir_all(&wt).unwrap();
    // The small store's snapshot checks out too (clones: no data space needed).
    let wt2 = small.path().join("wt2");
    cowtree(&store, &[s("checkout"), s(&id), wt2.as_os_str()]).assert_ok("small checkout");
    assert_same_tree(&tree_of(&src), &tree_of(&wt2), false);
    fs::remove_dir_all(&wt2).unwrap();

    // clone from the big XFS onto the small one.
    let filler = fill_leaving(small.path(), 8 << 20);
    let dst = small.path().join("dst");
    let r = cowtree_plain(&[s("clone"), src.as_os_str(), dst.as_os_str()]);
    r.assert_error("clone onto a full filesystem");
    assert!(r.stderr.contains("No space left"), "{}", r.stderr);
    assert!(fs::symlink_metadata(&dst).is_err(), "a partial DST exists");
    no_staging(small.path(), "clone");
    fs::remove_file(&filler).unwrap();
    cowtree_plain(&[s("clone"), src.as_os_str(), dst.as_os_str()]).assert_ok("retried clone");
    assert_same_tree(&tree_of(&src), &tree_of(&dst), true);
    assert_verify_ok(&store, "at the end");
}

/// Starts `cowtree --store STORE ARGS`, kills it with SIGKILL after a random 0-200 ms, and
/// returns whether it had already finished (successfully) by then.
fn kill_at_random(store: &Path, args: &[&OsStr], rng: &mut XorShift) -> bool {
    run_killed_after(store, args, Duration::from_millis(rng.below(201)))
}

/// Runs of each command killed at a random point: 30 in the full tier; in the README's run 10,
/// or more (up to 30) until one was killed before it finished, which each test asserts.
fn kills() -> cowtree_testutil::RoundsUntil {
    cowtree_testutil::rounds_until(30, 10)
}

#[test]
fn snapshot_killed_at_random_points_leaves_a_consistent_store() {
    let Some(dir) = scratch(Fs::Xfs) else { return };
    let root = dir.path();
    let store = root.join("store");
    common::init_store(&store);
    let mut rng = XorShift::from_clock("snapshot kills");
    let mut killed = 0;
    let kills = kills();
    for i in 0u64.. {
        if kills.done(i, killed > 0) {
            break;
        }
        let src = root.join(format!("src{i}"));
        make_tree(&src, 8, 40, 8 * 1024, i);
        let finished = kill_at_random(&store, &[s("snapshot"), src.as_os_str()], &mut rng);
        killed += usize::from(!finished);
        assert_verify_ok(&store, &format!("kill {i}"));
        // The re-run succeeds and records the tree completely.
        let id = snapshot(&store, &src);
        let wt = root.join(format!("wt{i}"));
        cowtree(&store, &[s("checkout"), s(&id), wt.as_os_str()]).assert_ok("checkout");
        assert_same_tree(&tree_of(&src), &tree_of(&wt), false);
        fs::remove_dir_all(&wt).unwrap();
        fs::remove_dir_all(&src).unwrap();
    }
    println!(
        "{killed} snapshots killed before they finished ({} runs or more)",
        kills.least()
    );
    assert!(killed > 0, "no snapshot was ever killed mid-run");
    let v = cowtree(&store, &[s("gc"), s("--json")]);
    v.assert_ok("gc");
    assert_eq!(fs::read_dir(store.join("tmp")).unwrap().count(), 0);
    assert_verify_ok(&store, "at the end");
}

#[test]
fn checkout_killed_at_random_points_leaves_dst_absent_or_complete() {
    let Some(dir) = scratch(Fs::Xfs) else { return };
    let root = dir.path();
    let store = root.join("store");
    let src = root.join("src");
    make_tree(&src, 10, 60, 4 * 1024, 7);
    let id = snapshot(&store, &src);
    let expect = tree_of(&src);
    let parent = root.join("wts");
    fs::create_dir(&parent).unwrap();
    let mut rng = XorShift::from_clock("checkout kills");
    let mut killed = 0;
    let kills = kills();
    for i in 0u64.. {
        if kills.done(i, killed > 0) {
            break;
        }
        let wt = parent.join(format!("wt{i}"));
        let finished = kill_at_random(&store, &[s("checkout"), s(&id), wt.as_os_str()], &mut rng);
        killed += usize::from(!finished);
        if fs::symlink_metadata(&wt).is_err() {
            // Absent: the re-run succeeds and removes what the killed run left.
            cowtree(&store, &[s("checkout"), s(&id), wt.as_os_str()]).assert_ok("re-run");
        }
        assert_same_tree(&expect, &tree_of(&wt), false);
        no_staging(&parent, &format!("kill {i}, after the re-run"));
        assert_verify_ok(&store, &format!("kill {i}"));
        fs::remove_dir_all(&wt).unwrap();
    }
    println!(
        "{killed} checkouts killed before they finished ({} runs or more)",
        kills.least()
    );
    assert!(killed > 0, "no checkout was ever killed mid-run");
}

#[test]
fn gc_killed_at_random_points_leaves_a_consistent_store() {
    let Some(dir) = scratch(Fs::Xfs) else { return };
    let root = dir.path();
    let store = root.join("store");
    let keep_src = root.join("keep");
    make_tree(&keep_src, 4, 20, 4 * 1024, 999);
    let keep = snapshot(&store, &keep_src);
    let mut rng = XorShift::from_clock("gc kills");
    let mut killed = 0;
    let kills = kills();
    for i in 0u64.. {
        if kills.done(i, killed > 0) {
            break;
        }
        // Garbage for gc: a snapshot's blobs, with the snapshot removed.
        let src = root.join("garbage");
        make_tree(&src, 10, 100, 2 * 1024, 5000 + i);
        let id = snapshot(&store, &src);
        cowtree(&store, &[s("rm"), s(&id)]).assert_ok("rm");
        fs::remove_dir_all(&src).unwrap();
        let finished = kill_at_random(&store, &[s("gc")], &mut rng);
        killed += usize::from(!finished);
        assert_verify_ok(&store, &format!("kill {i}"));
        cowtree(&store, &[s("gc")]).assert_ok("re-run of gc");
        assert_verify_ok(&store, &format!("kill {i}, after gc"));
    }
    println!(
        "{killed} gc runs killed before they finished ({} runs or more)",
        kills.least()
    );
    assert!(killed > 0, "no gc was ever killed mid-run");
    let wt = root.join("wt");
    cowtree(&store, &[s("checkout"), s(&keep), wt.as_os_str()]).assert_ok("checkout");
    assert_same_tree(&tree_of(&keep_src), &tree_of(&wt), false);
}

/// `cmd` with its open-file limit (soft and hard) at `n`, as `ulimit -n n` does.
fn with_nofile(mut cmd: std::process::Command, n: u64) -> std::process::Command {
    // SAFETY: setrlimit is async-signal-safe; nothing else runs between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            let lim = libc::rlimit {
                rlim_cur: n,
                rlim_max: n,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    cmd
}

#[test]
fn clone_snapshot_and_checkout_work_with_32_open_files() {
    let Some(dir) = scratch(Fs::Xfs) else { return };
    let root = dir.path();
    let src = root.join("src");
    make_tree(&src, 40, 30, 1024, 3);
    let limit = Duration::from_secs(120);

    let dst = root.join("dst");
    let mut c = bin();
    c.args([
        s("clone"),
        s("-j"),
        s("16"),
        src.as_os_str(),
        dst.as_os_str(),
    ]);
    run_limited(with_nofile(c, 32), limit).assert_ok("clone with 32 fds");
    assert_same_tree(&tree_of(&src), &tree_of(&dst), true);

    let store = root.join("store");
    let mut c = bin();
    c.arg("--store")
        .arg(&store)
        .args([s("snapshot"), s("--json"), src.as_os_str()]);
    let r = run_limited(with_nofile(c, 32), limit);
    r.assert_ok("snapshot with 32 fds");
    let id = r.json()["id"].as_str().unwrap().to_string();

    let wt = root.join("wt");
    let mut c = bin();
    c.arg("--store")
        .arg(&store)
        .args([s("checkout"), s(&id), wt.as_os_str()]);
    run_limited(with_nofile(c, 32), limit).assert_ok("checkout with 32 fds");
    assert_same_tree(&tree_of(&src), &tree_of(&wt), false);
    assert_verify_ok(&store, "after the 32-fd runs");
}

/// Clears the immutable flag again even when the test fails.
struct Immutable(PathBuf);

impl Immutable {
    fn set(p: &Path) -> Option<Immutable> {
        let ok = Command::new("chattr")
            .arg("+i")
            .arg(p)
            .status()
            .is_ok_and(|s| s.success());
        ok.then(|| Immutable(p.to_path_buf()))
    }
}

impl Drop for Immutable {
    fn drop(&mut self) {
        let _ = Command::new("chattr").arg("-i").arg(&self.0).status();
    }
}

#[test]
fn a_read_only_destination_gives_a_clear_error_and_no_partial_dst() {
    let Some(dir) = scratch(Fs::Xfs) else { return };
    let root = dir.path();
    let src = root.join("src");
    make_tree(&src, 3, 5, 1024, 4);
    let store = root.join("store");
    let id = snapshot(&store, &src);
    let parent = root.join("ro");
    fs::create_dir(&parent).unwrap();
    let Some(_guard) = Immutable::set(&parent) else {
        println!("skipped: chattr +i is not available here");
        return;
    };
    let before = capture_except(root, &[&store.join("worktrees")]);
    let dst = parent.join("dst");
    let r = cowtree_plain(&[s("clone"), src.as_os_str(), dst.as_os_str()]);
    r.assert_error("clone into an immutable directory");
    assert!(
        r.stderr.contains(&*parent.to_string_lossy()) && r.stderr.contains("not permitted"),
        "{}",
        r.stderr
    );
    let r = cowtree(&store, &[s("checkout"), s(&id), dst.as_os_str()]);
    r.assert_error("checkout into an immutable directory");
    assert!(
        r.stderr.contains(&*parent.to_string_lossy()) && r.stderr.contains("not permitted"),
        "{}",
        r.stderr
    );
    before.assert_same(
        &capture_except(root, &[&store.join("worktrees")]),
        "read-only destination",
    );
}

#[test]
fn an_unreadable_source_file_is_named_in_the_error() {
    let Some(dir) = scratch(Fs::Xfs) else { return };
    let root = dir.path();
    if !rustix::process::geteuid().is_root() {
        println!("skipped: unreadable source: needs root to drop capabilities");
        return;
    }
    // One file is mode 000; cowtree runs as root without CAP_DAC_OVERRIDE and
    // CAP_DAC_READ_SEARCH, so the permission bits apply to it.
    let src = root.join("src");
    make_tree(&src, 2, 3, 100, 5);
    let secret = src.join("d1/f2");
    fs::set_permissions(&secret, fs::Permissions::from_mode(0o000)).unwrap();
    let store = root.join("store");
    common::init_store(&store);
    let unprivileged = |args: &[&OsStr]| {
        let mut c = Command::new("setpriv");
        c.arg("--bounding-set=-dac_override,-dac_read_search")
            .arg("--")
            .arg(BIN)
            .args(args)
            .env_remove("COWTREE_STORE");
        run_limited(c, Duration::from_secs(60))
    };
    let before = capture_except(root, &[&store]);
    let dst = root.join("dst");
    let r = unprivileged(&[s("clone"), src.as_os_str(), dst.as_os_str()]);
    r.assert_error("clone of an unreadable file");
    assert!(
        r.stderr.contains(&*secret.to_string_lossy()),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("Permission denied"), "{}", r.stderr);
    let r = unprivileged(&[
        s("--store"),
        store.as_os_str(),
        s("snapshot"),
        src.as_os_str(),
    ]);
    r.assert_error("snapshot of an unreadable file");
    assert!(
        r.stderr.contains(&*secret.to_string_lossy()),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("Permission denied"), "{}", r.stderr);
    // No DST and no staging anywhere; in the store no snapshot and no staging (blobs placed
    // before the failure stay unreferenced until gc, by design).
    before.assert_same(&capture_except(root, &[&store]), "unreadable source");
    assert_eq!(fs::read_dir(store.join("snapshots")).unwrap().count(), 0);
    assert_eq!(fs::read_dir(store.join("tmp")).unwrap().count(), 0);
    assert_verify_ok(&store, "after the refused snapshot");
}
