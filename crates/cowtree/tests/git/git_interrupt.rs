//! `cowtree git worktree add` stopped at random points: Ctrl-C (SIGINT), SIGTERM and SIGHUP take
//! back everything the run made (staging, registration, the branch it created, the parents of
//! DST it created) and say so in one line; what `kill -9` leaves is taken back by `cowtree gc`.
//! Afterwards no staging, no stray branch, no stray registration, and `git worktree prune` and
//! `git fsck` are clean.

use crate::common;

use std::fs;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::BIN;
use cowtree_testutil::git;
use cowtree_testutil::{Fs, XorShift, git_cmd, scratch};

/// The binary with HOME and the XDG directories under `root` (its run records land there).
fn cowtree(root: &Path) -> Command {
    let mut c = Command::new(BIN);
    c.env_remove("COWTREE_STORE")
        .env("HOME", root.join("home"))
        .env("XDG_STATE_HOME", root.join("state"))
        .env("XDG_DATA_HOME", root.join("data"))
        .env("XDG_CONFIG_HOME", root.join("config"))
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", cowtree_testutil::git_global_config());
    c
}

/// A repository at `root/src` with `n` files in 40 directories and an ignored `.env` named by
/// `.worktreeinclude`; its index is refreshed a second after the files were written.
fn make_repo(root: &Path, n: usize) -> PathBuf {
    let src = root.join("src");
    fs::create_dir_all(&src).unwrap();
    git(&src, &["init", "-q", "-b", "main"]);
    for i in 0..n {
        let p = src.join(format!("d{}/f{i}.txt", i % 40));
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(&p, format!("file {i}\n").repeat(1 + i % 50)).unwrap();
    }
    fs::write(src.join(".gitignore"), ".env\n").unwrap();
    fs::write(src.join(".worktreeinclude"), ".env\n").unwrap();
    fs::write(src.join(".env"), "SECRET=1\n").unwrap();
    git(&src, &["add", "-A"]);
    git(&src, &["commit", "-qm", "one"]);
    std::thread::sleep(Duration::from_millis(1100));
    git(&src, &["update-index", "-q", "--refresh"]);
    src
}

/// Every path under `dir` whose name says it is cowtree's staging.
fn staging_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(list) = fs::read_dir(&d) else { continue };
        for e in list.flatten() {
            if e.file_name()
                .to_string_lossy()
                .contains(".cowtree-staging.")
            {
                out.push(e.path());
            } else if e.file_type().unwrap().is_dir() && e.file_name() != ".git" {
                stack.push(e.path());
            }
        }
    }
    out
}

/// Starts `add -b br<i> <root>/deep<i>/x/wt<i>`, sends `sig` after `delay` (unless it ended),
/// and returns how it ended and its stderr.
fn add_then_signal(
    root: &Path,
    src: &Path,
    i: usize,
    delay: Duration,
    sig: i32,
) -> (std::process::ExitStatus, String) {
    let dst = root.join(format!("deep{i}/x/wt{i}"));
    let mut child = cowtree(root)
        .current_dir(src)
        .args(["git", "worktree", "add", "-b", &format!("br{i}")])
        .arg(&dst)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let until = Instant::now() + delay;
    while Instant::now() < until {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    // SAFETY: kill(2) on our own child's pid.
    unsafe { libc::kill(child.id() as i32, sig) };
    let out = child.wait_with_output().unwrap();
    (
        out.status,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// After a run that was stopped by a handled signal (or ended): either the worktree is
/// complete, or nothing of it is left at all.
#[track_caller]
fn assert_whole_or_nothing(root: &Path, src: &Path, i: usize, what: &str) -> bool {
    let dst = root.join(format!("deep{i}/x/wt{i}"));
    let branch = git_cmd(src)
        .args(["rev-parse", "--verify", "-q", &format!("refs/heads/br{i}")])
        .output()
        .unwrap()
        .status
        .success();
    if dst.exists() {
        assert!(branch, "{what}: complete worktree without its branch");
        assert_eq!(
            git(&dst, &["status", "--porcelain"]),
            "",
            "{what}: status not clean"
        );
        assert_eq!(fs::read(dst.join(".env")).unwrap(), b"SECRET=1\n");
        true
    } else {
        assert!(!branch, "{what}: branch br{i} left behind");
        assert!(
            !root.join(format!("deep{i}")).exists(),
            "{what}: parents left behind"
        );
        let listed = git(src, &["worktree", "list", "--porcelain"]);
        assert!(
            !listed.lines().any(|l| l.ends_with(&format!("/wt{i}"))),
            "{what}: registration left behind: {listed}"
        );
        false
    }
}

#[test]
fn sigint_sigterm_sighup_at_random_points_leave_nothing_and_gc_cleans_what_kill_9_left() {
    let Some(dir) = scratch(Fs::Xfs) else { return };
    let root = dir.path();
    let src = make_repo(root, 3000);
    // How long a whole run takes here, to spread the signals over it.
    let t = Instant::now();
    let ok = cowtree(root)
        .current_dir(&src)
        .args(["git", "worktree", "add", "-q", "--detach"])
        .arg(root.join("timing"))
        .output()
        .unwrap();
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let whole = t.elapsed();
    git(
        &src,
        &[
            "worktree",
            "remove",
            "--force",
            root.join("timing").to_str().unwrap(),
        ],
    );

    let mut rng = XorShift::from_clock("git interrupt");
    let signals = [
        libc::SIGINT,
        libc::SIGKILL,
        libc::SIGINT,
        libc::SIGKILL,
        libc::SIGTERM,
        libc::SIGHUP,
    ];
    let mut killed = Vec::new();
    let mut complete = 0;
    // 10 rounds in the README's run, 20 in the full tier (`cowtree_testutil::rounds`).
    let rounds = cowtree_testutil::rounds(20, 10) as usize;
    for i in 0..rounds {
        let sig = signals[i % signals.len()];
        let delay = Duration::from_micros(rng.below(whole.as_micros() as u64 * 12 / 10 + 1));
        let (status, err) = add_then_signal(root, &src, i, delay, sig);
        let what = format!("round {i}: signal {sig} after {delay:?}: {status:?}: {err}");
        if sig == libc::SIGKILL {
            if status.signal() == Some(libc::SIGKILL) {
                killed.push(i);
            } else {
                assert!(status.success(), "{what}");
            }
            continue;
        }
        match status.code() {
            Some(0) => {}
            Some(c) => {
                assert_eq!(c, 128 + sig, "{what}");
                assert_eq!(err.lines().count(), 1, "{what}");
                assert!(
                    err.contains("nothing else is left")
                        || err.contains("nothing is left")
                        || err.contains("is complete"),
                    "{what}"
                );
            }
            // Before the handler was installed: the default action, nothing made yet.
            None => assert_eq!(status.signal(), Some(sig), "{what}"),
        }
        if assert_whole_or_nothing(root, &src, i, &what) {
            complete += 1;
        }
    }
    // kill -9 may leave staging, a registration, a branch and parents: gc takes them back.
    let gc = cowtree(root)
        .current_dir(root)
        .args(["gc", "--json"])
        .output()
        .unwrap();
    assert!(
        gc.status.success(),
        "{}",
        String::from_utf8_lossy(&gc.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&gc.stdout).unwrap();
    assert!(
        fs::read_dir(root.join("state/cowtree/git-worktree-add"))
            .map(|d| d.count())
            .unwrap_or(0)
            == 0,
        "run records left after gc: {v}"
    );
    for i in 0..rounds {
        assert_whole_or_nothing(root, &src, i, &format!("after gc, round {i} ({v})"));
    }
    assert!(staging_under(root).is_empty(), "{:?}", staging_under(root));
    let branches = git(&src, &["branch", "--format=%(refname:short)"]);
    for b in branches.lines().filter(|b| b.starts_with("br")) {
        let i: usize = b[2..].parse().unwrap();
        assert!(
            root.join(format!("deep{i}/x/wt{i}")).exists(),
            "stray branch {b}"
        );
    }
    let before = git(&src, &["worktree", "list", "--porcelain"]);
    git(&src, &["worktree", "prune", "-v"]);
    assert_eq!(
        git(&src, &["worktree", "list", "--porcelain"]),
        before,
        "prune found something to remove"
    );
    assert!(!before.contains("locked"), "{before}");
    let fsck = git_cmd(&src)
        .args(["fsck", "--no-progress"])
        .output()
        .unwrap();
    assert!(
        fsck.status.success() && fsck.stderr.is_empty(),
        "git fsck: {}",
        String::from_utf8_lossy(&fsck.stderr)
    );
    eprintln!(
        "interrupts: {complete} runs completed, {} killed by SIGKILL",
        killed.len()
    );
}

/// Interrupted while a file in its staging cannot be removed (immutable, `chattr +i`): the
/// run says so, takes nothing else back (so that gc finds the run as it finds a killed one:
/// its registration names the staging, any branch made and the parents), and the `cowtree gc` it
/// prints, run as printed once the file can go, takes all of it back.
#[test]
fn an_interrupted_add_whose_staging_cannot_be_removed_leaves_it_all_to_the_printed_gc() {
    let Some(dir) = scratch(Fs::Xfs) else { return };
    if !rustix::process::geteuid().is_root() {
        cowtree_testutil::skip("needs root to make a file immutable");
        return;
    }
    let root = dir.path();
    let src = make_repo(root, 20_000);
    let chattr = |flag: &str, p: &Path| {
        let st = Command::new("chattr").arg(flag).arg(p).status().unwrap();
        assert!(st.success(), "chattr {flag} {}", p.display());
    };
    for i in 0..10 {
        let parent = root.join(format!("deep{i}/x"));
        let mut child = cowtree(root)
            .current_dir(&src)
            .args(["git", "worktree", "add", "-b", &format!("br{i}")])
            .arg(parent.join(format!("wt{i}")))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // A file written in the staging: made immutable, then the signal.
        let started = Instant::now();
        let pinned = loop {
            let found = staging_under(root).into_iter().find_map(|st| {
                fs::read_dir(st.join("d0"))
                    .ok()?
                    .flatten()
                    .find(|e| e.file_type().is_ok_and(|t| t.is_file()))
                    .map(|e| e.path())
            });
            if found.is_some() || child.try_wait().unwrap().is_some() {
                break found;
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "no staging seen"
            );
            std::thread::sleep(Duration::from_micros(200));
        };
        let Some(pinned) = pinned else {
            let _ = child.wait();
            continue;
        };
        if Command::new("chattr")
            .arg("+i")
            .arg(&pinned)
            .status()
            .is_err()
        {
            continue;
        }
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
        let out = child.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        if out.status.code() != Some(130) || !err.contains("could not remove") {
            // It ended first, or failed on the file itself before the signal: not this case.
            // (A complete run moved the immutable file into DST.)
            let _ = Command::new("chattr")
                .args(["-R", "-i"])
                .arg(root.join(format!("deep{i}")))
                .output();
            let _ = cowtree(root).current_dir(root).args(["gc"]).output();
            continue;
        }
        assert!(
            !err.contains("nothing else is left"),
            "it left something: {err}"
        );
        let printed = common::suggested::commands(&err);
        assert_eq!(printed.len(), 1, "{err}");
        assert_eq!(printed[0], ["cowtree", "gc"], "{err}");
        // Everything is still there for gc: the staging, DST's parents, the registration (the
        // branch is made after the tree, so a run stopped while filling it has none yet).
        assert_eq!(staging_under(&parent).len(), 1, "{err}");
        // (Earlier tries that completed left their own worktrees registered.)
        let registered = || {
            fs::read_dir(src.join(".git/worktrees"))
                .unwrap()
                .flatten()
                .filter(|e| {
                    e.file_name()
                        .to_string_lossy()
                        .starts_with(&format!("wt{i}"))
                })
                .count()
        };
        assert_eq!(registered(), 1, "{err}");
        let run_gc = || {
            let mut gc = cowtree(root);
            gc.current_dir(root).args(&printed[0][1..]);
            let gc = gc.output().unwrap();
            let gc_err = String::from_utf8_lossy(&gc.stderr).into_owned();
            assert!(gc.status.success(), "{gc_err}");
            gc_err
        };
        // Printed gc run while the file still cannot go: it says so, and keeps the run (its
        // record too) for the next gc.
        let first = run_gc();
        assert!(
            first.contains("the next `cowtree gc` tries again"),
            "{first}"
        );
        assert_eq!(staging_under(&parent).len(), 1, "{first}");
        assert_eq!(registered(), 1, "{first}");
        chattr("-i", &pinned);
        run_gc();
        assert!(!assert_whole_or_nothing(
            root,
            &src,
            i,
            "after the printed gc"
        ));
        assert!(staging_under(root).is_empty(), "{:?}", staging_under(root));
        return;
    }
    panic!("in 10 tries, no run was interrupted with a file of its staging immutable");
}

/// The debris two fresh-clone runs of the README's tests found under load: `kill -9` of a run
/// while a process it started still works (here `git branch`, held up by a
/// `reference-transaction` hook; under load, any child between fork and exec). The child
/// outlives the run, so a gc that judged the run dead by its own locks alone found its branch
/// not yet made (and left it, made a moment later) or its staging still locked by the child (and
/// left it). Every process of a run holds its registration's lock; gc waits for them to end,
/// then takes everything back.
#[test]
fn gc_after_kill_9_waits_for_the_processes_the_run_started_and_takes_back_what_they_made() {
    let Some(dir) = scratch(Fs::Xfs) else { return };
    let root = dir.path();
    let src = make_repo(root, 50);
    let started = root.join("hook-started");
    let hook = src.join(".git/hooks/reference-transaction");
    // Holds up only the first transaction that creates br0: `git branch` of the run.
    fs::write(
        &hook,
        format!(
            "#!/bin/sh\n\
             if [ \"$1\" = prepared ] && [ ! -e '{m}' ] && grep -q refs/heads/br0; then\n\
               : > '{m}'; sleep 2; : > '{m}.done'\n\
             fi\n\
             exit 0\n",
            m = started.display()
        ),
    )
    .unwrap();
    fs::set_permissions(&hook, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let dst = root.join("deep0/x/wt0");
    let mut child = cowtree(root)
        .current_dir(&src)
        .args(["git", "worktree", "add", "-b", "br0"])
        .arg(&dst)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let until = Instant::now() + Duration::from_secs(60);
    while !started.exists() {
        assert!(Instant::now() < until, "git branch never ran its hook");
        assert!(child.try_wait().unwrap().is_none(), "the run ended first");
        std::thread::sleep(Duration::from_millis(2));
    }
    // SAFETY: kill(2) on our own child's pid.
    unsafe { libc::kill(child.id() as i32, libc::SIGKILL) };
    assert_eq!(child.wait().unwrap().signal(), Some(libc::SIGKILL));
    // The run is dead; its `git branch` sleeps on in the hook, about to make br0.
    let out = cowtree(root).arg("gc").output().unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "gc: {said}");
    // Whatever the orphaned `git branch` does, it has done it once its hook ended.
    let done = root.join("hook-started.done");
    let until = Instant::now() + Duration::from_secs(30);
    while !done.exists() && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(10));
    }
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        staging_under(root).is_empty(),
        "{:?}; gc said: {said}",
        staging_under(root)
    );
    assert!(
        !assert_whole_or_nothing(root, &src, 0, &said),
        "the killed run finished"
    );
    assert!(
        fs::read_dir(src.join(".git/worktrees"))
            .map(|d| d.count())
            .unwrap_or(0)
            == 0,
        "a registration left; gc said: {said}"
    );
    assert!(
        fs::read_dir(root.join("state/cowtree/git-worktree-add"))
            .map(|d| d.count())
            .unwrap_or(0)
            == 0,
        "the run's record left; gc said: {said}"
    );
    git(&src, &["fsck", "--no-progress"]);
}

/// Spares in `src`'s pool, and anything else in its spares directory (what a claim or fill
/// left).
fn pool_entries(src: &Path) -> (usize, Vec<String>) {
    let mut spares = 0;
    let mut other = Vec::new();
    for e in fs::read_dir(src.join(".git/cowtree/pool/spares"))
        .unwrap()
        .flatten()
    {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') {
            other.push(name);
        } else {
            spares += 1;
        }
    }
    (spares, other)
}

#[test]
fn sigint_sigterm_and_kill_9_during_claims_from_a_pool_leave_a_spare_or_a_worktree() {
    let Some(dir) = scratch(Fs::Xfs) else { return };
    let root = dir.path();
    let src = make_repo(root, 3000);
    let pool = |args: &[&str]| {
        let out = cowtree(root)
            .current_dir(&src)
            .args(["git", "worktree", "pool"])
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "pool {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let wait_for_fill = || {
        let st = Command::new("flock")
            .arg(src.join(".git/cowtree/pool/fill.lock"))
            .arg("true")
            .status()
            .unwrap();
        assert!(st.success());
    };
    pool(&["set", "2", "--no-fill"]);
    pool(&["fill"]);
    // How long a claim takes here, to spread the signals over it.
    let t = Instant::now();
    let ok = cowtree(root)
        .current_dir(&src)
        .args(["--json", "git", "worktree", "add", "--detach"])
        .arg(root.join("timing"))
        .output()
        .unwrap();
    let whole = t.elapsed();
    let v: serde_json::Value = serde_json::from_slice(&ok.stdout).unwrap();
    assert_eq!(v["method"], "spare", "{v}");
    wait_for_fill();
    let mut rng = XorShift::from_clock("git interrupt pool");
    let signals = [libc::SIGINT, libc::SIGKILL, libc::SIGTERM];
    let rounds = cowtree_testutil::rounds(15, 6) as usize;
    let mut complete = 0;
    for i in 0..rounds {
        let sig = signals[i % signals.len()];
        let delay = Duration::from_micros(rng.below(whole.as_micros() as u64 * 12 / 10 + 1));
        let (status, err) = add_then_signal(root, &src, i, delay, sig);
        let what = format!("round {i}: signal {sig} after {delay:?}: {status:?}: {err}");
        if sig != libc::SIGKILL {
            match status.code() {
                Some(0) => {}
                Some(c) => assert_eq!(c, 128 + sig, "{what}"),
                None => assert_eq!(status.signal(), Some(sig), "{what}"),
            }
            if assert_whole_or_nothing(root, &src, i, &what) {
                complete += 1;
            }
        }
        // A fill (after the refill the add may have started) takes back what a killed claim
        // left in the pool and makes it whole: two spares, nothing else.
        wait_for_fill();
        pool(&["fill"]);
        assert_eq!(pool_entries(&src), (2, Vec::new()), "{what}");
    }
    // kill -9 may leave staging, a registration, a branch: gc takes them back.
    let gc = cowtree(root)
        .current_dir(root)
        .args(["gc"])
        .output()
        .unwrap();
    assert!(
        gc.status.success(),
        "{}",
        String::from_utf8_lossy(&gc.stderr)
    );
    for i in 0..rounds {
        if assert_whole_or_nothing(root, &src, i, &format!("after gc, round {i}")) {
            assert_eq!(
                git(
                    &root.join(format!("deep{i}/x/wt{i}")),
                    &["status", "--porcelain"]
                ),
                ""
            );
        }
    }
    assert!(staging_under(root).is_empty(), "{:?}", staging_under(root));
    // The spares left are whole: a claim of each is git's worktree, clean.
    for k in 0..2 {
        let dst = root.join(format!("last{k}"));
        let out = cowtree(root)
            .current_dir(&src)
            .args(["--json", "git", "worktree", "add", "--detach"])
            .arg(&dst)
            .output()
            .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(v["method"], "spare", "{v}");
        assert_eq!(git(&dst, &["status", "--porcelain"]), "");
    }
    wait_for_fill();
    eprintln!("pool interrupts: {complete} of {rounds} claims completed");
}
