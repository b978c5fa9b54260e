//! `cowtree stores rm`: a store is deleted, its btrfs tree subvolumes included (which `rm -rf`
//! cannot delete), and forgotten; registered worktrees stop it unless --force; a removal left
//! partway (and what `rm -rf` leaves) is finished by running the command the error prints.
//! On XFS and on both btrfs mounts (`COWTREE_TEST_BTRFS` without `user_subvol_rm_allowed`,
//! `COWTREE_TEST_BTRFS_USER_RM` with it), as root and as an unprivileged user.

use std::ffi::OsStr;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::common::{BIN, Ran, run_limited, suggested};
use cowtree_testutil::user::{As, TestUser, identities};
use cowtree_testutil::{Fs, mount, pattern};
use serde_json::Value;

fn o(s: &str) -> &OsStr {
    OsStr::new(s)
}

/// One identity's work area on a mount: a directory it owns, with its HOME and XDG
/// directories inside.
struct Area<'a> {
    who: As<'a>,
    dir: tempfile::TempDir,
}

impl<'a> Area<'a> {
    fn new(who: As<'a>, mnt: &Path) -> Area<'a> {
        let dir = who.dir_in(mnt);
        let a = Area { who, dir };
        for d in ["home", "home/data", "home/state", "home/config", "src"] {
            a.sh(&format!("mkdir '{}'", a.p(d).display()));
        }
        a
    }

    fn p(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    fn store(&self) -> PathBuf {
        self.p("store")
    }

    /// `sh -c SCRIPT` as this identity; returns whether it succeeded.
    fn sh(&self, script: &str) -> bool {
        self.who
            .command("sh")
            .args(["-c", script])
            .status()
            .expect("run sh")
            .success()
    }

    fn command(&self) -> Command {
        let mut c = self.who.command(BIN);
        c.env_remove("COWTREE_STORE")
            .current_dir(self.dir.path())
            .env("HOME", self.p("home"))
            .env("XDG_DATA_HOME", self.p("home/data"))
            .env("XDG_STATE_HOME", self.p("home/state"))
            .env("XDG_CONFIG_HOME", self.p("home/config"));
        c
    }

    /// `cowtree ARGS` as this identity.
    fn run(&self, args: &[&OsStr]) -> Ran {
        let mut c = self.command();
        c.args(args);
        run_limited(c, Duration::from_secs(120))
    }

    /// `cowtree --store STORE ARGS`, which must succeed.
    #[track_caller]
    fn ok(&self, args: &[&OsStr]) -> Ran {
        let store = self.store();
        let mut a = vec![o("--store"), store.as_os_str()];
        a.extend_from_slice(args);
        let r = self.run(&a);
        r.assert_ok(&format!("{} {args:?}", self.who.label()));
        r
    }

    /// The one command `message` prints, run as printed (as this identity, in its area).
    #[track_caller]
    fn run_printed(&self, message: &str) -> Ran {
        let cmds = suggested::commands(message);
        assert_eq!(cmds.len(), 1, "one command printed: {message}");
        assert_eq!(cmds[0][0], "cowtree", "{message}");
        let mut c = self.command();
        c.args(&cmds[0][1..]);
        run_limited(c, Duration::from_secs(120))
    }

    /// A store with snapshot `v` of a small tree and one checkout of it at `wt` (on btrfs:
    /// a snapshot of the store's read-only tree subvolume).
    fn store_with_worktree(&self) {
        for i in 0..40u64 {
            let dir = self.p(&format!("src/d{}", i % 4));
            let f = dir.join(format!("f{i}"));
            fs::create_dir_all(&dir).unwrap();
            fs::write(&f, pattern(500 + i as usize * 37, i)).unwrap();
        }
        let st = Command::new("chown")
            .arg("-R")
            .arg(format!("{}:{}", self.who.uid(), self.gid()))
            .arg(self.p("src"))
            .status()
            .unwrap();
        assert!(st.success());
        self.ok(&[
            o("snapshot"),
            self.p("src").as_os_str(),
            o("--name"),
            o("v"),
        ]);
        self.ok(&[o("checkout"), o("v"), self.p("wt").as_os_str()]);
    }

    fn gid(&self) -> u32 {
        match self.who {
            As::Root => 0,
            As::User(u) => u.gid(),
        }
    }

    /// The paths `cowtree stores --json` lists.
    fn listed(&self) -> Vec<String> {
        let r = self.run(&[o("stores"), o("--json")]);
        r.assert_ok("stores --json");
        r.json()["stores"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["path"].as_str().unwrap().to_string())
            .collect()
    }
}

fn has_tree_subvolume(fs_kind: Fs) -> bool {
    matches!(fs_kind, Fs::Btrfs | Fs::BtrfsUserRm)
}

/// Refused while the worktree is registered, then removed with --force: the tree subvolumes
/// deleted in one ioctl where the kernel permits (root; an unprivileged user only with
/// `user_subvol_rm_allowed`), else file by file, saying why.
fn refused_then_forced(fs_kind: Fs, who: As<'_>, mnt: &Path) {
    let label = format!("{fs_kind:?} as {}", who.label());
    let a = Area::new(who, mnt);
    a.store_with_worktree();
    let store = a.store();
    let store_s = store.to_string_lossy().into_owned();
    assert!(a.listed().contains(&store_s), "{label}");
    if has_tree_subvolume(fs_kind) {
        // What the issue found: rm -rf cannot delete a store on btrfs.
        let rm = a
            .who
            .command("rm")
            .arg("-rf")
            .arg(store.join("trees"))
            .output()
            .unwrap();
        assert!(!rm.status.success(), "{label}: rm -rf of the trees");
    }

    let r = a.run(&[o("stores"), o("rm"), store.as_os_str()]);
    r.assert_error(&format!("{label}: stores rm with a worktree registered"));
    assert!(
        r.stderr.contains(&*a.p("wt").to_string_lossy()),
        "{label}: {}",
        r.stderr
    );
    assert!(r.stderr.contains("--force"), "{label}: {}", r.stderr);
    assert!(
        r.stderr.contains("nothing removed"),
        "{label}: {}",
        r.stderr
    );
    assert!(
        store.join("format").exists(),
        "{label}: refused, yet changed"
    );

    let r = a.run(&[
        o("stores"),
        o("rm"),
        o("--force"),
        o("--json"),
        store.as_os_str(),
    ]);
    r.assert_ok(&format!("{label}: stores rm --force"));
    let j = &r.json()["removed"][0];
    assert_eq!(j["was"], "store", "{label}: {j}");
    assert_eq!(j["forgotten"], true, "{label}: {j}");
    assert_eq!(
        j["worktrees_left"],
        serde_json::json!([a.p("wt")]),
        "{label}: {j}"
    );
    let subs = j["subvolumes"].as_array().unwrap();
    if has_tree_subvolume(fs_kind) {
        assert!(!subs.is_empty(), "{label}: {j}");
        let fast = matches!(a.who, As::Root) || fs_kind == Fs::BtrfsUserRm;
        for s in subs {
            if fast {
                assert_eq!(s["method"], "ioctl", "{label}: {j}");
            } else {
                assert_eq!(s["method"], "removed-tree", "{label}: {j}");
                assert_eq!(s["reason"], "not-permitted", "{label}: {j}");
            }
        }
    } else {
        assert_eq!(subs.len(), 0, "{label}: {j}");
    }
    assert!(!store.exists(), "{label}: the store is gone");
    assert!(!a.listed().contains(&store_s), "{label}: forgotten");
    // The worktree stays, as a plain directory.
    assert!(a.p("wt/d1/f1").exists(), "{label}");
}

#[test]
fn stores_rm_refuses_while_worktrees_are_registered_and_with_force_deletes_the_trees_and_forgets_the_store()
 {
    let user = TestUser::create();
    for fs_kind in [Fs::Xfs, Fs::Btrfs, Fs::BtrfsUserRm] {
        let Some(mnt) = mount(fs_kind) else {
            continue;
        };
        for who in identities(user.as_ref()) {
            refused_then_forced(fs_kind, who, &mnt);
        }
    }
}

/// A removal that stopped after marking the store (as a kill at that point leaves it, with
/// some of its files already gone): every command refuses the store and prints the `stores
/// rm` that finishes it, which does.
fn interrupted_then_rerun(fs_kind: Fs, who: As<'_>, mnt: &Path) {
    let label = format!("{fs_kind:?} as {}", who.label());
    let a = Area::new(who, mnt);
    a.store_with_worktree();
    a.ok(&[o("worktree"), o("rm"), o("--force"), a.p("wt").as_os_str()]);
    // A checkout again, so that the tree subvolume is there (worktree rm may leave it or not).
    a.ok(&[o("checkout"), o("v"), a.p("wt2").as_os_str()]);
    a.ok(&[o("worktree"), o("rm"), o("--force"), a.p("wt2").as_os_str()]);
    let store = a.store();
    // What `Removal::mark` does, then part of what `finish` does.
    assert!(a.sh(&format!(
        "cd '{}' && echo removing > removing && rm format && rm -rf blobs",
        store.display()
    )));
    let r = a.run(&[o("--store"), store.as_os_str(), o("ls")]);
    r.assert_error(&format!("{label}: ls in a store being removed"));
    assert!(
        r.stderr.contains("is being removed"),
        "{label}: {}",
        r.stderr
    );
    let done = a.run_printed(&r.stderr);
    done.assert_ok(&format!("{label}: the printed stores rm"));
    assert!(
        done.stdout.contains("finished removing store"),
        "{label}: {}",
        done.stdout
    );
    assert!(!store.exists(), "{label}");
    // Again: nothing there and no longer listed.
    let again = a.run(&[o("stores"), o("rm"), store.as_os_str()]);
    assert!(!again.ok(), "{label}: {}", again.stdout);
    assert!(
        again.stderr.contains("no store at"),
        "{label}: {}",
        again.stderr
    );
}

#[test]
fn an_interrupted_stores_rm_is_refused_by_every_command_and_finished_by_the_printed_stores_rm() {
    let user = TestUser::create();
    for fs_kind in [Fs::Xfs, Fs::Btrfs, Fs::BtrfsUserRm] {
        let Some(mnt) = mount(fs_kind) else {
            continue;
        };
        for who in identities(user.as_ref()) {
            interrupted_then_rerun(fs_kind, who, &mnt);
        }
    }
}

/// What `rm -rf STORE` leaves (on btrfs: the read-only tree subvolumes' files, the directories
/// above them; on XFS, where `rm -rf` succeeds, a store without its format file): the error
/// every command gives says to run `cowtree stores rm`, and that removes it.
fn rm_rf_remains(fs_kind: Fs, who: As<'_>, mnt: &Path) {
    let label = format!("{fs_kind:?} as {}", who.label());
    let a = Area::new(who, mnt);
    a.store_with_worktree();
    a.ok(&[o("worktree"), o("rm"), o("--force"), a.p("wt").as_os_str()]);
    a.ok(&[o("checkout"), o("v"), a.p("wt2").as_os_str()]);
    let store = a.store();
    let rm_rf = if has_tree_subvolume(fs_kind) {
        format!("rm -rf '{}' 2>/dev/null", store.display())
    } else {
        format!("rm -f '{}/format'", store.display())
    };
    let ok = a.sh(&rm_rf);
    assert_eq!(ok, !has_tree_subvolume(fs_kind), "{label}: {rm_rf}");
    assert!(store.exists(), "{label}");
    let r = a.run(&[o("--store"), store.as_os_str(), o("ls")]);
    r.assert_error(&format!("{label}: ls in what rm -rf left"));
    assert!(
        r.stderr.contains("is not a cowtree store"),
        "{label}: {}",
        r.stderr
    );
    let done = a.run_printed(&r.stderr);
    done.assert_ok(&format!("{label}: the printed stores rm"));
    assert!(!store.exists(), "{label}");
    // The worktree made from it is left alone.
    assert!(a.p("wt2/d1/f1").exists(), "{label}");
}

#[test]
fn what_rm_rf_leaves_of_a_store_is_refused_with_the_stores_rm_that_removes_it() {
    let user = TestUser::create();
    for fs_kind in [Fs::Xfs, Fs::Btrfs, Fs::BtrfsUserRm] {
        let Some(mnt) = mount(fs_kind) else {
            continue;
        };
        for who in identities(user.as_ref()) {
            rm_rf_remains(fs_kind, who, &mnt);
        }
    }
}

#[test]
fn stores_rm_refuses_a_directory_holding_what_no_store_holds_and_a_missing_path_prints_stores() {
    let Some(mnt) = mount(Fs::Xfs) else { return };
    let a = Area::new(As::Root, &mnt);
    let mine = a.p("mine");
    fs::create_dir_all(mine.join("blobs")).unwrap();
    fs::write(mine.join("notes.txt"), b"keep me").unwrap();
    let r = a.run(&[o("stores"), o("rm"), o("--force"), mine.as_os_str()]);
    r.assert_error("stores rm of a user's directory");
    assert!(r.stderr.contains("notes.txt"), "{}", r.stderr);
    assert_eq!(fs::read(mine.join("notes.txt")).unwrap(), b"keep me");

    let r = a.run(&[o("stores"), o("rm"), a.p("nothing").as_os_str()]);
    assert!(!r.ok() && r.stderr.contains("no store at"), "{}", r.stderr);
    let listed = a.run_printed(&r.stderr);
    listed.assert_ok("the printed stores");
    let v: Value = a.run(&[o("stores"), o("--json")]).json();
    assert!(v["stores"].is_array(), "{v}");
}
