//! Power-loss tests: when a command that publishes something exits 0, its result survives a
//! power loss; when power is lost while it runs, the store still verifies, a re-run finishes
//! the job, and nothing the user had is lost (docs/store.md, "Durability").
//!
//! `clone --sync` is tested the same way: after it returns, DST is there and whole.
//!
//! This kernel has no device-mapper, so a power loss is simulated in two ways:
//! - **Image copy** (XFS and btrfs): the filesystem under test lives in an image file on the
//!   reflink-capable XFS test mount (`COWTREE_TEST_XFS`), attached through a loop device. At
//!   the crash point the image is copied with `cp --reflink=always`: the copy holds every
//!   write the loop device had completed and none after (what dm-flakey's `drop_writes`
//!   gives), and loses what the filesystem still held in memory (dirty pages, an uncommitted
//!   transaction, an unforced log). The original is then unmounted and the copy mounted at
//!   the same path, so the absolute paths in the store's records stay valid.
//! - **XFS shutdown**: `xfs_io -x -c shutdown` without `-f` stops the filesystem without
//!   flushing its log, as a crash does; unmounting and mounting again replays the log.
//!
//! Each case runs on XFS, btrfs and ext4 (a store without reflinks, where every blob is a
//! copy; there only after the command returned, see `crash_case`; btrfs and ext4 in the full
//! tier only, see `runs_on`), `COWTREE_CRASH_ROUNDS`
//! rounds (default 1, 2 in the full tier `COWTREE_TEST_FULL=1` that .ci/run runs) per method;
//! a round crashes once right after the command returns and once at a random point while it
//! runs (the seed is printed).

mod common;

use std::ffi::{OsStr, OsString};
use std::fs;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::bin;
use cowtree_testutil::loop_mount::{self, LoopMount};
use cowtree_testutil::{Fs, XorShift, assert_diff_clean, pattern, tool};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Xfs,
    Btrfs,
    /// No reflinks: the store copies every blob.
    Ext4,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Method {
    ImageCopy,
    Shutdown,
}

fn o(s: &str) -> &OsStr {
    OsStr::new(s)
}

/// One loop-mounted filesystem image at a time, at a fixed mount point on the host XFS.
struct Lab {
    kind: Kind,
    /// The image mounted at `mnt`, if any (unmounted before `host` is removed).
    mounted: Option<LoopMount>,
    host: tempfile::TempDir,
    mnt: PathBuf,
}

impl Lab {
    /// None (after a skip line) when the host XFS mount is not there.
    fn new(kind: Kind) -> Option<Lab> {
        let host = cowtree_testutil::scratch(Fs::Xfs)?;
        let mnt = host.path().join("mnt");
        fs::create_dir(&mnt).expect("mkdir mnt");
        Some(Lab {
            kind,
            mounted: None,
            host,
            mnt,
        })
    }

    fn image(&self, name: &str) -> PathBuf {
        self.host.path().join(name)
    }

    fn fs(&self) -> loop_mount::Kind {
        match self.kind {
            Kind::Xfs => loop_mount::Kind::Xfs,
            Kind::Btrfs => loop_mount::Kind::Btrfs,
            Kind::Ext4 => loop_mount::Kind::Ext4,
        }
    }

    fn mkfs(&self, img: &Path) {
        loop_mount::mkfs(self.fs(), img, 512 << 20);
    }

    fn mount(&mut self, img: &Path) {
        assert!(self.mounted.is_none(), "an image is already mounted");
        self.mounted = Some(LoopMount::mount(self.fs(), img, &self.mnt, ""));
    }

    fn umount(&mut self) {
        if let Some(m) = self.mounted.take() {
            m.unmount();
        }
    }

    /// The power loss: a point-in-time copy of the mounted image.
    fn crash_copy(&self, img: &Path, to: &Path) {
        tool(
            "cp",
            &[o("--reflink=always"), img.as_os_str(), to.as_os_str()],
        );
    }

    /// The power loss, XFS only: stop the filesystem without flushing its log.
    fn shutdown(&self) {
        tool(
            "xfs_io",
            &[o("-x"), o("-c"), o("shutdown"), self.mnt.as_os_str()],
        );
    }
}

/// Paths inside the mounted filesystem under test.
struct Env {
    mnt: PathBuf,
}

impl Env {
    fn store(&self) -> PathBuf {
        self.mnt.join("store")
    }
    /// A second store, for computing expected ids without touching the one under test.
    fn refstore(&self) -> PathBuf {
        self.mnt.join("refstore")
    }
    fn p(&self, rel: &str) -> PathBuf {
        self.mnt.join(rel)
    }

    #[track_caller]
    fn ok(&self, args: &[&OsStr]) -> String {
        self.ok_with(true, args)
    }

    #[track_caller]
    fn ok_with(&self, store: bool, args: &[&OsStr]) -> String {
        let mut cmd = bin();
        if store {
            cmd.arg("--store").arg(self.store());
        }
        let out = cmd.args(args).output().expect("run cowtree");
        assert!(
            out.status.success(),
            "cowtree {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn code(&self, args: &[&OsStr]) -> (Option<i32>, String) {
        let out = bin()
            .arg("--store")
            .arg(self.store())
            .args(args)
            .output()
            .expect("run cowtree");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// The id of a fresh snapshot of `dir` (taken in the reference store).
    fn expected_id(&self, dir: &Path) -> String {
        let out = bin()
            .arg("--store")
            .arg(self.refstore())
            .args([o("snapshot"), o("--json"), dir.as_os_str()])
            .output()
            .expect("run cowtree");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        json(&String::from_utf8_lossy(&out.stdout))["id"]
            .as_str()
            .expect("id")
            .to_string()
    }

    #[track_caller]
    fn assert_verify(&self, what: &str) {
        let out = bin()
            .arg("--store")
            .arg(self.store())
            .args(["verify", "--json"])
            .output()
            .expect("run cowtree");
        assert!(
            out.status.success(),
            "{what}: verify failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Resolves a snapshot name or id to its full id.
    fn resolve(&self, what: &str) -> Option<String> {
        let out = bin()
            .arg("--store")
            .arg(self.store())
            .args([o("show"), o("--json"), o(what)])
            .output()
            .expect("run cowtree");
        out.status.success().then(|| {
            json(&String::from_utf8_lossy(&out.stdout))["id"]
                .as_str()
                .expect("id")
                .to_string()
        })
    }

    /// Checks that `wt` holds exactly `expect`'s tree and that `status` finds it clean.
    #[track_caller]
    fn assert_worktree(&self, wt: &Path, expect: &Path, what: &str) {
        assert!(wt.is_dir(), "{what}: {} is missing", wt.display());
        assert_diff_clean(wt, expect);
        let (code, err) = self.code(&[o("status"), o("--exit-code"), wt.as_os_str()]);
        assert_eq!(code, Some(0), "{what}: status of {}: {err}", wt.display());
    }
}

fn json(s: &str) -> serde_json::Value {
    serde_json::from_str(s.trim()).unwrap_or_else(|e| panic!("not JSON ({e}): {s}"))
}

/// A tree of `files` files (up to 48 KiB, in 8 directories) with an executable, a symlink
/// and an empty directory; `seed` varies the content.
fn make_tree(root: &Path, files: usize, seed: u64) {
    fs::create_dir_all(root.join("empty")).expect("mkdir");
    for i in 0..files {
        let dir = root.join(format!("d{}", i % 8));
        fs::create_dir_all(&dir).expect("mkdir");
        let len = (i * 7919 + seed as usize * 131) % (48 << 10);
        fs::write(
            dir.join(format!("f{i}")),
            pattern(len, seed * 100_000 + i as u64),
        )
        .expect("write");
    }
    let exe = root.join("run.sh");
    fs::write(&exe, b"#!/bin/sh\necho hi\n").expect("write");
    fs::set_permissions(&exe, fs::Permissions::from_mode(0o755)).expect("chmod");
    symlink("d0/f0", root.join("link")).expect("symlink");
}

/// Changes a tree: rewrites every 10th file, removes every 25th, adds a few.
fn change_tree(root: &Path, seed: u64) {
    for i in (0..400).step_by(10) {
        let f = root.join(format!("d{}/f{i}", i % 8));
        if f.exists() {
            fs::write(&f, pattern(3000 + i, seed + i as u64)).expect("write");
        }
    }
    for i in (5..400).step_by(25) {
        let _ = fs::remove_file(root.join(format!("d{}/f{i}", i % 8)));
    }
    fs::create_dir_all(root.join("new")).expect("mkdir");
    for i in 0..5 {
        fs::write(
            root.join(format!("new/n{i}")),
            pattern(20_000, seed + 7 + i),
        )
        .expect("write");
    }
}

const FILES: usize = 400;

/// Copies a tree with `cp -a`, for a reference to compare with.
fn copy_tree(from: &Path, to: &Path) {
    tool("cp", &[o("-a"), from.as_os_str(), to.as_os_str()]);
}

fn switch_args<'a>(wt: &'a Path, to: &'a str) -> Vec<&'a OsStr> {
    vec![o("switch"), o(to), o("-C"), wt.as_os_str()]
}

fn reset_args(wt: &Path) -> Vec<&OsStr> {
    vec![o("reset"), o("--hard"), o("-C"), wt.as_os_str()]
}

/// One command under test.
struct Case {
    name: &'static str,
    /// The command uses the store (`--store` is given); `clone` uses none.
    store: bool,
    /// Builds the state every round starts from, on the freshly made filesystem.
    prepare: fn(&Env),
    /// The command.
    args: fn(&Env) -> Vec<OsString>,
    /// Runs after a crash during the command: whatever finishes the job (None: the command
    /// again). Returns its standard output.
    rerun: Option<fn(&Env) -> String>,
    /// What must hold once the command has returned (given its standard output).
    check: fn(&Env, &str),
}

fn run_args(env: &Env, args: &[OsString]) -> String {
    env.ok(&args.iter().map(OsString::as_os_str).collect::<Vec<_>>())
}

/// What a snapshot case must hold: the snapshot made is the one expected, `name` resolves to
/// it (`None`: its id does), and a checkout of it holds what `tree` holds.
fn check_snapshot(env: &Env, out: &str, name: Option<&str>, tree: &str) {
    let expected = fs::read_to_string(env.p("expected")).expect("read");
    assert_eq!(json(out)["id"].as_str(), Some(expected.as_str()));
    let name = name.unwrap_or(&expected);
    assert_eq!(
        env.resolve(name).as_deref(),
        Some(expected.as_str()),
        "the name {name}"
    );
    env.ok(&[o("checkout"), o(name), env.p("check").as_os_str()]);
    env.assert_worktree(&env.p("check"), &env.p(tree), "checkout of the snapshot");
}

/// The rerun of a snapshot case that names the snapshot `name` of `tree`: a name that
/// survived the crash is not given again (moving a name is refused).
fn rerun_named(env: &Env, name: &str, tree: &str, case: &Case) -> String {
    if env.resolve(name).is_some() {
        env.ok(&[o("snapshot"), o("--json"), env.p(tree).as_os_str()])
    } else {
        run_args(env, &(case.args)(env))
    }
}

fn run_case(env: &Env, case: &Case) -> String {
    let args = (case.args)(env);
    env.ok_with(
        case.store,
        &args.iter().map(OsString::as_os_str).collect::<Vec<_>>(),
    )
}

fn owned(v: Vec<&OsStr>) -> Vec<OsString> {
    v.into_iter().map(OsStr::to_os_string).collect()
}

const SNAPSHOT_NAMED: Case = Case {
    name: "snapshot --name",
    store: true,
    prepare: |env| {
        make_tree(&env.p("src"), FILES, 1);
        let id = env.expected_id(&env.p("src"));
        fs::write(env.p("expected"), id).expect("write");
    },
    args: |env| {
        owned(vec![
            o("snapshot"),
            o("--json"),
            o("--name"),
            o("snap"),
            env.p("src").as_os_str(),
        ])
    },
    rerun: Some(|env| rerun_named(env, "snap", "src", &SNAPSHOT_NAMED)),
    check: |env, out| check_snapshot(env, out, Some("snap"), "src"),
};

const SNAPSHOT_UNNAMED: Case = Case {
    name: "snapshot",
    store: true,
    prepare: SNAPSHOT_NAMED.prepare,
    args: |env| owned(vec![o("snapshot"), o("--json"), env.p("src").as_os_str()]),
    rerun: None,
    check: |env, out| check_snapshot(env, out, None, "src"),
};

const SNAPSHOT_WORKTREE: Case = Case {
    name: "incremental snapshot of a worktree",
    store: true,
    prepare: |env| {
        make_tree(&env.p("src"), FILES, 2);
        env.ok(&[
            o("snapshot"),
            o("--name"),
            o("base"),
            env.p("src").as_os_str(),
        ]);
        env.ok(&[o("checkout"), o("base"), env.p("wt").as_os_str()]);
        env.ok(&[o("status"), env.p("wt").as_os_str()]);
        change_tree(&env.p("wt"), 50);
        let id = env.expected_id(&env.p("wt"));
        fs::write(env.p("expected"), id).expect("write");
    },
    args: |env| {
        owned(vec![
            o("snapshot"),
            o("--json"),
            o("--name"),
            o("next"),
            env.p("wt").as_os_str(),
        ])
    },
    rerun: Some(|env| rerun_named(env, "next", "wt", &SNAPSHOT_WORKTREE)),
    check: |env, out| check_snapshot(env, out, Some("next"), "wt"),
};

const TAG: Case = Case {
    name: "tag",
    store: true,
    prepare: |env| {
        make_tree(&env.p("src"), 50, 3);
        let out = env.ok(&[o("snapshot"), o("--json"), env.p("src").as_os_str()]);
        fs::write(env.p("expected"), json(&out)["id"].as_str().expect("id")).expect("write");
    },
    args: |env| {
        let id = fs::read_to_string(env.p("expected")).expect("read");
        owned(vec![o("tag"), o("v2"), o(&id)])
    },
    rerun: Some(|env| {
        if env.resolve("v2").is_none() {
            run_args(env, &(TAG.args)(env));
        }
        String::new()
    }),
    check: |env, _| {
        let expected = fs::read_to_string(env.p("expected")).expect("read");
        assert_eq!(
            env.resolve("v2").as_deref(),
            Some(expected.as_str()),
            "the name"
        );
    },
};

const CHECKOUT: Case = Case {
    name: "checkout",
    store: true,
    prepare: |env| {
        make_tree(&env.p("src"), FILES, 4);
        env.ok(&[
            o("snapshot"),
            o("--name"),
            o("base"),
            env.p("src").as_os_str(),
        ]);
    },
    args: |env| owned(vec![o("checkout"), o("base"), env.p("wt").as_os_str()]),
    rerun: Some(|env| {
        if env.p("wt").exists() {
            // It was complete before the crash (checked below); nothing to finish.
            String::new()
        } else {
            run_args(env, &(CHECKOUT.args)(env))
        }
    }),
    check: |env, _| {
        env.assert_worktree(&env.p("wt"), &env.p("src"), "the checkout");
        assert!(
            common::leftovers(&env.mnt).is_empty(),
            "staging left: {:?}",
            common::leftovers(&env.mnt)
        );
        // The worktree stays registered (pinning its base) through status and gc.
        env.ok(&[o("gc")]);
        let (code, err) = env.code(&[o("rm"), o("base")]);
        assert_eq!(
            code,
            Some(1),
            "rm of a worktree's base must be refused: {err}"
        );
        assert!(err.contains("in use"), "{err}");
    },
};

const RM: Case = Case {
    name: "rm",
    store: true,
    prepare: |env| {
        make_tree(&env.p("src"), 50, 5);
        env.ok(&[
            o("snapshot"),
            o("--name"),
            o("old"),
            env.p("src").as_os_str(),
        ]);
    },
    args: |_| owned(vec![o("rm"), o("old")]),
    rerun: Some(|env| {
        // The name is removed last: while it is there (even pointing at nothing), `rm` of it
        // finishes the job.
        if env.p("store/refs/old").exists() {
            run_args(env, &(RM.args)(env));
        }
        String::new()
    }),
    check: |env, _| {
        assert_eq!(env.resolve("old"), None, "the removed snapshot came back");
        let ls = json(&env.ok(&[o("ls"), o("--json")]));
        let snaps = ls["snapshots"].as_array().expect("snapshots");
        assert!(snaps.is_empty(), "the removed snapshot is listed: {ls}");
    },
};

const SWITCH: Case = Case {
    name: "switch",
    store: true,
    prepare: |env| {
        make_tree(&env.p("a"), FILES, 6);
        copy_tree(&env.p("a"), &env.p("b"));
        change_tree(&env.p("b"), 60);
        env.ok(&[o("snapshot"), o("--name"), o("a"), env.p("a").as_os_str()]);
        env.ok(&[o("snapshot"), o("--name"), o("b"), env.p("b").as_os_str()]);
        env.ok(&[o("checkout"), o("a"), env.p("wt").as_os_str()]);
        fs::write(env.p("wt/untracked"), b"mine").expect("write");
        fs::write(env.p("b/untracked"), b"mine").expect("write");
    },
    args: |env| owned(switch_args(&env.p("wt"), "b")),
    rerun: None,
    check: |env, _| {
        // `status` reports the untracked file as added; compare it without.
        assert_diff_clean(&env.p("wt"), &env.p("b"));
        let st = json(&env.ok(&[o("status"), o("--json"), env.p("wt").as_os_str()]));
        assert_eq!(st["added"], serde_json::json!(["untracked"]), "{st}");
        for k in ["modified", "deleted", "type_changed", "mode_changed"] {
            assert_eq!(st[k], serde_json::json!([]), "{k}: {st}");
        }
        let out = env.ok(&[o("worktrees"), o("--json")]);
        let b = env.resolve("b").expect("b");
        assert!(out.contains(&b), "the worktree's base is b: {out}");
    },
};

const RESET: Case = Case {
    name: "reset",
    store: true,
    prepare: |env| {
        make_tree(&env.p("src"), FILES, 7);
        env.ok(&[
            o("snapshot"),
            o("--name"),
            o("base"),
            env.p("src").as_os_str(),
        ]);
        env.ok(&[o("checkout"), o("base"), env.p("wt").as_os_str()]);
        change_tree(&env.p("wt"), 70);
    },
    args: |env| owned(reset_args(&env.p("wt"))),
    rerun: None,
    check: |env, _| {
        env.assert_worktree(&env.p("wt"), &env.p("src"), "the reset worktree");
    },
};

const GC: Case = Case {
    name: "gc",
    store: true,
    prepare: |env| {
        make_tree(&env.p("a"), FILES, 8);
        copy_tree(&env.p("a"), &env.p("b"));
        change_tree(&env.p("b"), 80);
        env.ok(&[o("snapshot"), o("--name"), o("a"), env.p("a").as_os_str()]);
        env.ok(&[o("snapshot"), o("--name"), o("b"), env.p("b").as_os_str()]);
        env.ok(&[o("rm"), o("a")]);
    },
    args: |_| owned(vec![o("gc"), o("--json")]),
    rerun: None,
    check: |env, _| {
        let again = json(&env.ok(&[o("gc"), o("--json")]));
        assert_eq!(
            again["blobs_removed"], 0,
            "gc's removals came back: {again}"
        );
        env.ok(&[o("checkout"), o("b"), env.p("check").as_os_str()]);
        env.assert_worktree(&env.p("check"), &env.p("b"), "checkout after gc");
    },
};

const CLONE_SYNC: Case = Case {
    name: "clone --sync",
    store: false,
    prepare: |env| make_tree(&env.p("src"), FILES, 9),
    args: |env| {
        owned(vec![
            o("clone"),
            o("--sync"),
            env.p("src").as_os_str(),
            env.p("dst").as_os_str(),
        ])
    },
    rerun: Some(|env| {
        if env.p("dst").exists() {
            // Whole or absent: one that appeared is checked as it is.
            String::new()
        } else {
            run_case(env, &CLONE_SYNC)
        }
    }),
    check: |env, _| assert_diff_clean(&env.p("dst"), &env.p("src")),
};

/// `clone` of a btrfs subvolume: one snapshot, committed by the kernel before the command
/// returns, so no `--sync` is needed for it to survive (docs/subvolumes.md). Btrfs only.
const CLONE_SUBVOLUME: Case = Case {
    name: "clone of a subvolume",
    store: false,
    prepare: |env| {
        use cowtree_fs::subvolume::{At, create};
        let d = cowtree_fs::dir::Dir::open(&env.mnt).expect("open the mount");
        create(At::new(&d, &env.mnt), o("src")).expect("create the source subvolume");
        make_tree(&env.p("src"), FILES, 10);
    },
    args: |env| {
        owned(vec![
            o("clone"),
            o("--json"),
            env.p("src").as_os_str(),
            env.p("dst").as_os_str(),
        ])
    },
    rerun: Some(|env| {
        if env.p("dst").exists() {
            String::new()
        } else {
            run_case(env, &CLONE_SUBVOLUME)
        }
    }),
    check: |env, out| {
        use std::os::unix::fs::MetadataExt;
        if !out.is_empty() {
            assert_eq!(json(out)["method"], "subvolume", "{out}");
        }
        let root = fs::metadata(env.p("dst")).expect("dst is there");
        assert_eq!(root.ino(), 256, "dst is a subvolume's root");
        assert_diff_clean(&env.p("dst"), &env.p("src"));
    },
};

/// `git` in `dir`, for the git cases (no configuration of the machine's, a fixed identity).
#[track_caller]
fn git_in(dir: &Path, args: &[&str]) -> String {
    let out = cowtree_testutil::git_cmd(dir)
        .args(args)
        .output()
        .expect("run git");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `git worktree add --sync`: once it returns, the worktree, its index, its branch and git's
/// registration of it survive a power loss; a power loss while it runs leaves the worktree
/// whole or absent, and the next run (or gc) takes back the rest.
const GIT_ADD_SYNC: Case = Case {
    name: "git worktree add --sync",
    store: false,
    prepare: |env| {
        let src = env.p("src");
        make_tree(&src, FILES, 11);
        fs::remove_dir(src.join("empty")).expect("git keeps no empty directory");
        git_in(&src, &["init", "-q", "-b", "main"]);
        git_in(&src, &["add", "-A"]);
        git_in(&src, &["commit", "-qm", "one"]);
        // Entries older than the index: SRC's files are reflinked, none is racy.
        std::thread::sleep(Duration::from_millis(1100));
        git_in(&src, &["update-index", "-q", "--refresh"]);
    },
    args: |env| {
        owned(vec![
            o("git"),
            o("worktree"),
            o("add"),
            o("--sync"),
            o("--from"),
            env.p("src").as_os_str(),
            o("-b"),
            o("wt"),
            env.p("dst").as_os_str(),
        ])
    },
    rerun: Some(|env| {
        if env.p("dst").exists() {
            // Whole, or absent: one that appeared is checked as it is, once gc has finished
            // what the run left (its registration's lock).
            env.ok_with(false, &[o("gc")]);
            String::new()
        } else {
            run_case(env, &GIT_ADD_SYNC)
        }
    }),
    check: |env, _| {
        let (src, dst) = (env.p("src"), env.p("dst"));
        assert!(dst.join(".git").is_file(), "DST is gone");
        assert_eq!(
            git_in(&dst, &["status", "--porcelain"]),
            "",
            "status in DST"
        );
        assert_eq!(git_in(&dst, &["symbolic-ref", "HEAD"]), "refs/heads/wt\n");
        assert_eq!(
            git_in(&dst, &["rev-parse", "HEAD"]),
            git_in(&src, &["rev-parse", "main"])
        );
        assert_eq!(
            git_in(&dst, &["ls-files"]),
            git_in(&src, &["ls-files"]),
            "DST's index"
        );
        let list = git_in(&src, &["worktree", "list", "--porcelain"]);
        assert!(
            list.contains(&format!("worktree {}\n", dst.display())),
            "{list}"
        );
        assert!(!list.contains("locked"), "{list}");
        git_in(&src, &["fsck", "--no-progress"]);
        git_in(&src, &["worktree", "prune"]);
        assert_eq!(git_in(&src, &["worktree", "list", "--porcelain"]), list);
    },
};

/// `subvolume convert`: once it returned, the directory is a subvolume holding the whole tree
/// after a power loss; a crash while it runs leaves the original or the whole copy, and
/// converting again finishes. Btrfs only.
const CONVERT: Case = Case {
    name: "subvolume convert",
    store: false,
    prepare: |env| {
        make_tree(&env.p("dir"), FILES, 11);
        copy_tree(&env.p("dir"), &env.p("reference"));
    },
    args: |env| {
        owned(vec![
            o("subvolume"),
            o("convert"),
            o("--json"),
            env.p("dir").as_os_str(),
        ])
    },
    rerun: Some(|env| {
        assert_diff_clean(&env.p("dir"), &env.p("reference"));
        run_case(env, &CONVERT)
    }),
    check: |env, _| {
        use std::os::unix::fs::MetadataExt;
        let root = fs::metadata(env.p("dir")).expect("dir is there");
        assert_eq!(root.ino(), 256, "dir is a subvolume's root");
        assert_diff_clean(&env.p("dir"), &env.p("reference"));
    },
};

/// `git worktree add --sync` from a SRC that is a btrfs subvolume: the snapshot it starts from
/// is committed when the ioctl returns, but what is changed in it afterwards and git's
/// registration are not, until `--sync` makes them so. The same promise as [`GIT_ADD_SYNC`].
const GIT_ADD_SYNC_SUBVOLUME: Case = Case {
    name: "git worktree add --sync by snapshot",
    store: false,
    prepare: |env| {
        use cowtree_fs::subvolume::{At, create};
        let d = cowtree_fs::dir::Dir::open(&env.mnt).expect("open the mount");
        create(At::new(&d, &env.mnt), o("src")).expect("create the source subvolume");
        (GIT_ADD_SYNC.prepare)(env);
        // Untracked and ignored files the snapshot way must remove.
        let src = env.p("src");
        fs::write(src.join(".gitignore"), "*.log\n").expect("write");
        fs::write(src.join("untracked.txt"), "u\n").expect("write");
        fs::write(src.join("build.log"), "ignored\n").expect("write");
    },
    args: |env| {
        let mut a = (GIT_ADD_SYNC.args)(env);
        a.insert(3, OsString::from("--json"));
        a.insert(3, OsString::from("--subvolume"));
        a
    },
    rerun: Some(|env| {
        if env.p("dst").exists() {
            env.ok_with(false, &[o("gc")]);
            String::new()
        } else {
            run_case(env, &GIT_ADD_SYNC_SUBVOLUME)
        }
    }),
    check: |env, out| {
        use std::os::unix::fs::MetadataExt;
        if !out.is_empty() {
            assert_eq!(json(out)["method"], "subvolume", "{out}");
        }
        let dst = env.p("dst");
        assert_eq!(
            fs::metadata(&dst).expect("dst is there").ino(),
            256,
            "dst is a subvolume's root"
        );
        assert!(!dst.join("untracked.txt").exists() && !dst.join("build.log").exists());
        (GIT_ADD_SYNC.check)(env, out);
        let left: Vec<_> = fs::read_dir(&env.mnt)
            .expect("list the mount")
            .map(|e| e.expect("entry").file_name())
            .filter(|n| n.to_string_lossy().contains(".cowtree-staging."))
            .collect();
        assert!(left.is_empty(), "staging left: {left:?}");
    },
};

/// A checkout from a store that holds the snapshot's tree subvolume already: the checkout is
/// one writable snapshot of it, committed by the kernel. Btrfs only.
const CHECKOUT_TREE: Case = Case {
    name: "checkout of a tree subvolume",
    store: true,
    prepare: |env| {
        make_tree(&env.p("src"), FILES, 11);
        env.ok(&[
            o("snapshot"),
            o("--name"),
            o("base"),
            env.p("src").as_os_str(),
        ]);
        // The first checkout builds the store's tree; the one under test snapshots it.
        env.ok(&[o("checkout"), o("base"), env.p("first").as_os_str()]);
        assert!(env.p("store/trees").is_dir(), "the tree was built");
    },
    args: |env| {
        owned(vec![
            o("checkout"),
            o("--json"),
            o("base"),
            env.p("wt").as_os_str(),
        ])
    },
    rerun: Some(|env| {
        if env.p("wt").exists() {
            String::new()
        } else {
            run_args(env, &(CHECKOUT_TREE.args)(env))
        }
    }),
    check: |env, out| {
        if !out.is_empty() {
            assert_eq!(json(out)["method"], "subvolume", "{out}");
        }
        env.assert_worktree(&env.p("wt"), &env.p("src"), "the checkout");
        assert_tree_leftovers_collected(env);
    },
};

/// A snapshot of a subvolume: read from a read-only snapshot of it, kept as the snapshot's
/// tree. Btrfs only.
const SNAPSHOT_SUBVOLUME: Case = Case {
    name: "snapshot of a subvolume",
    store: true,
    prepare: |env| {
        use cowtree_fs::subvolume::{At, create};
        let d = cowtree_fs::dir::Dir::open(&env.mnt).expect("open the mount");
        create(At::new(&d, &env.mnt), o("src")).expect("create the source subvolume");
        make_tree(&env.p("src"), FILES, 12);
        let id = env.expected_id(&env.p("src"));
        fs::write(env.p("expected"), id).expect("write");
    },
    args: |env| {
        owned(vec![
            o("snapshot"),
            o("--json"),
            o("--name"),
            o("snap"),
            env.p("src").as_os_str(),
        ])
    },
    rerun: Some(|env| {
        if env.resolve("snap").is_some() {
            env.ok(&[o("snapshot"), o("--json"), env.p("src").as_os_str()])
        } else {
            run_args(env, &(SNAPSHOT_SUBVOLUME.args)(env))
        }
    }),
    check: |env, out| {
        let expected = fs::read_to_string(env.p("expected")).expect("read");
        let out = json(out);
        assert_eq!(out["id"].as_str(), Some(expected.as_str()));
        assert_eq!(out["frozen"], true, "{out}");
        assert!(
            env.p("store/trees").join(&expected).is_dir(),
            "the read-only snapshot is kept as the tree"
        );
        env.ok(&[o("checkout"), o("snap"), env.p("check").as_os_str()]);
        env.assert_worktree(&env.p("check"), &env.p("src"), "checkout of the snapshot");
        assert_tree_leftovers_collected(env);
    },
};

/// After gc, `trees/` holds only trees of snapshots in the store (and their stat caches):
/// nothing a killed command was making.
#[track_caller]
fn assert_tree_leftovers_collected(env: &Env) {
    env.ok(&[o("gc")]);
    let left: Vec<String> = fs::read_dir(env.p("store/trees"))
        .map(|rd| {
            rd.filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with('.'))
                .collect()
        })
        .unwrap_or_default();
    assert!(left.is_empty(), "gc left trees being made: {left:?}");
    assert!(
        common::leftovers(&env.mnt).is_empty(),
        "staging left: {:?}",
        common::leftovers(&env.mnt)
    );
}

fn rounds() -> u64 {
    // Every round makes the same checks at another crash point: one in the README's run, two
    // in the full tier (.ci/run).
    std::env::var("COWTREE_CRASH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if cowtree_testutil::in_full_tier() {
            2
        } else {
            1
        })
}

/// Runs `case` on `kind`: prepares a base image once, then for each round and method starts
/// from a copy of it, runs the command, loses power (after it returned, or at a random point
/// while it runs), mounts what the disk held, and checks.
fn crash_case(kind: Kind, case: &Case) {
    let Some(mut lab) = Lab::new(kind) else {
        return;
    };
    let mut rng = XorShift::from_clock(case.name);
    let base = lab.image("base.img");
    lab.mkfs(&base);
    lab.mount(&base);
    let env = Env {
        mnt: lab.mnt.clone(),
    };
    (case.prepare)(&env);
    // How long the command takes, to place crashes while it runs.
    let probe = lab.image("probe.img");
    lab.umount();
    let methods: &[Method] = match kind {
        Kind::Xfs => &[Method::ImageCopy, Method::Shutdown],
        Kind::Btrfs | Kind::Ext4 => &[Method::ImageCopy],
    };
    lab.crash_copy(&base, &probe);
    lab.mount(&probe);
    let t = Instant::now();
    run_case(&env, case);
    let took = t.elapsed();
    lab.umount();
    fs::remove_file(&probe).expect("remove probe image");

    for round in 0..rounds() {
        for &method in methods {
            // On ext4 the store copies every blob; a crash while a snapshot runs can leave a
            // copied blob named but without its data (docs/store.md, "Durability": a known
            // gap), so there only the crash after the command returned is checked.
            let points: &[bool] = if kind == Kind::Ext4 {
                &[false]
            } else {
                &[false, true]
            };
            for &during in points {
                let delay = Duration::from_micros(rng.below(took.as_micros() as u64 + 1));
                let what = format!(
                    "{} on {kind:?}, {method:?}, round {round}, crash {}",
                    case.name,
                    if during {
                        format!("{delay:?} into the command")
                    } else {
                        "after it returned".to_string()
                    }
                );
                println!("{what}");
                one_round(
                    &mut lab,
                    &env,
                    case,
                    &base,
                    method,
                    during.then_some(delay),
                    &what,
                );
            }
        }
    }
}

fn one_round(
    lab: &mut Lab,
    env: &Env,
    case: &Case,
    base: &Path,
    method: Method,
    during: Option<Duration>,
    what: &str,
) {
    let img = lab.image("round.img");
    let crash = lab.image("crash.img");
    lab.crash_copy(base, &img);
    lab.mount(&img);
    let args = (case.args)(env);
    // The test's own state directory (run records of `git worktree add` land there).
    let mut cmd = bin();
    if case.store {
        cmd.arg("--store").arg(env.store());
    }
    let mut child = Some(
        cmd.args(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start cowtree"),
    );
    let finish = |c: std::process::Child| {
        let out = c.wait_with_output().expect("wait for cowtree");
        assert!(
            out.status.success(),
            "{what}: the command failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let returned = match during {
        None => child.take().map(finish),
        Some(delay) => {
            std::thread::sleep(delay);
            // A command that already exited 0 must have its result kept.
            let done = child.as_mut().and_then(|c| c.try_wait().expect("wait"));
            match done {
                Some(st) if st.success() => child.take().map(finish),
                _ => None,
            }
        }
    };
    match method {
        Method::ImageCopy => lab.crash_copy(&img, &crash),
        Method::Shutdown => lab.shutdown(),
    }
    if let Some(mut c) = child {
        // Whatever the command does after the crash point is lost with the power.
        let _ = c.kill();
        let _ = c.wait();
    }
    lab.umount();
    match method {
        Method::ImageCopy => {
            lab.mount(&crash);
        }
        Method::Shutdown => lab.mount(&img),
    }
    // A store that did not exist before the command may not have survived it.
    if case.store && (returned.is_some() || env.store().join("format").exists()) {
        env.assert_verify(what);
    }
    let out = match (returned, case.rerun) {
        (Some(out), _) => out,
        (None, Some(rerun)) => rerun(env),
        (None, None) => run_case(env, case),
    };
    (case.check)(env, &out);
    if case.store {
        env.assert_verify(what);
    }
    lab.umount();
    let _ = fs::remove_file(&img);
    let _ = fs::remove_file(&crash);
}

/// Whether the cases of `crash_tests!` run on `kind` in this run: on XFS always (both ways of
/// losing power); on btrfs and ext4, the same cases with the store on another filesystem, in
/// the full tier (`COWTREE_TEST_FULL=1`, .ci/run), which the README's run notes once. The
/// subvolume cases (`btrfs_subvolume`, their own code) always run.
fn runs_on(kind: Kind) -> bool {
    static NOTED: std::sync::Once = std::sync::Once::new();
    if kind == Kind::Xfs || cowtree_testutil::in_full_tier() {
        return true;
    }
    NOTED.call_once(|| {
        cowtree_testutil::note(
            "heavy tier, not run: crash::btrfs::* and crash::ext4::*: the power-loss cases \
             run on XFS, again with the store on btrfs and ext4 (COWTREE_TEST_FULL=1 runs \
             them; .ci/run does)",
        )
    });
    false
}

macro_rules! crash_tests {
    ($($name:ident: $case:expr;)*) => {
        mod xfs {
            use super::*;
            $(#[test] fn $name() { crash_case(Kind::Xfs, &$case); })*
        }
        mod btrfs {
            use super::*;
            $(#[test] fn $name() { if runs_on(Kind::Btrfs) { crash_case(Kind::Btrfs, &$case); } })*
        }
        mod ext4 {
            use super::*;
            $(#[test] fn $name() { if runs_on(Kind::Ext4) { crash_case(Kind::Ext4, &$case); } })*
        }
    };
}

crash_tests! {
    snapshot_named_survives_power_loss: SNAPSHOT_NAMED;
    snapshot_unnamed_survives_power_loss: SNAPSHOT_UNNAMED;
    incremental_snapshot_survives_power_loss: SNAPSHOT_WORKTREE;
    tag_survives_power_loss: TAG;
    checkout_survives_power_loss: CHECKOUT;
    rm_survives_power_loss: RM;
    switch_survives_power_loss: SWITCH;
    reset_survives_power_loss: RESET;
    gc_survives_power_loss: GC;
    clone_sync_survives_power_loss: CLONE_SYNC;
    git_worktree_add_sync_survives_power_loss: GIT_ADD_SYNC;
}

mod btrfs_subvolume {
    use super::*;
    #[test]
    fn clone_of_a_subvolume_survives_power_loss() {
        crash_case(Kind::Btrfs, &CLONE_SUBVOLUME);
    }
    #[test]
    fn subvolume_convert_survives_power_loss() {
        crash_case(Kind::Btrfs, &CONVERT);
    }
    #[test]
    fn git_worktree_add_sync_by_snapshot_survives_power_loss() {
        crash_case(Kind::Btrfs, &GIT_ADD_SYNC_SUBVOLUME);
    }
    #[test]
    fn checkout_of_a_tree_subvolume_survives_power_loss() {
        crash_case(Kind::Btrfs, &CHECKOUT_TREE);
    }
    #[test]
    fn snapshot_of_a_subvolume_survives_power_loss() {
        crash_case(Kind::Btrfs, &SNAPSHOT_SUBVOLUME);
    }
}
