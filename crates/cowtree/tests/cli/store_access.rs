//! Which store serves a command, and what a store that cannot be written still does: checkouts
//! from a read-only store, registered outside it; where a checkout's snapshot comes from;
//! snapshots that would copy across filesystems. Real processes on real mounts, each test with
//! a HOME and XDG directories of its own.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::common::{BIN, Ran, run_limited};
use cowtree_testutil::{Fs, scratch};

/// A HOME and XDG directories of the test's own (on the host filesystem, so the default store
/// is on no test mount).
struct Env {
    dir: tempfile::TempDir,
}

impl Env {
    fn new() -> Env {
        Env {
            dir: tempfile::Builder::new()
                .prefix("cowtree-env-")
                .tempdir()
                .expect("temp dir for HOME"),
        }
    }

    fn state(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    /// `cowtree ARGS` run in `cwd` with this environment.
    fn run(&self, cwd: &Path, args: &[&str]) -> Ran {
        let mut c = Command::new(BIN);
        c.current_dir(cwd)
            .env_remove("COWTREE_STORE")
            .env("HOME", self.dir.path().join("home"))
            .env("XDG_STATE_HOME", self.state())
            .env("XDG_DATA_HOME", self.dir.path().join("data"))
            .env("XDG_CONFIG_HOME", self.dir.path().join("config"))
            .args(args);
        run_limited(c, Duration::from_secs(120))
    }
}

/// A bind mount of a directory, unmounted when dropped. `None` (after a skip line) where bind
/// mounts cannot be made (not root).
struct BindView {
    at: PathBuf,
}

impl BindView {
    fn of(dir: &Path, at: &Path) -> Option<BindView> {
        fs::create_dir_all(at).unwrap();
        let made = Command::new("mount")
            .arg("--bind")
            .arg(dir)
            .arg(at)
            .output()
            .is_ok_and(|o| o.status.success());
        if !made {
            let why = "cannot make a bind mount (run scripts/test.sh as root)";
            if std::env::var_os("COWTREE_TEST_REQUIRE_FS").is_some_and(|v| v == "1") {
                panic!("{why}");
            }
            println!("skipped: {why}");
            return None;
        }
        Some(BindView {
            at: at.to_path_buf(),
        })
    }

    /// Remounts the view read-only (`ro`) or writable.
    fn remount(&self, how: &str) {
        let out = Command::new("mount")
            .args(["-o", &format!("remount,bind,{how}")])
            .arg(&self.at)
            .output()
            .unwrap();
        assert!(out.status.success(), "remount {how}: {out:?}");
    }
}

impl Drop for BindView {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.at).status();
    }
}

fn write_tree(root: &Path) {
    fs::create_dir_all(root.join("d")).unwrap();
    fs::write(root.join("a"), b"first\n").unwrap();
    fs::write(root.join("d/b"), b"second\n").unwrap();
}

/// The file names in `dir`, sorted (none when it does not exist).
fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .map(|rd| {
            rd.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

#[test]
fn a_read_only_store_serves_a_checkout_into_another_filesystem_and_keeps_its_registry_outside() {
    let (Some(a), Some(b)) = (scratch(Fs::Xfs), scratch(Fs::Xfs2)) else {
        return;
    };
    let env = Env::new();
    let store = a.path().join("store");
    let src = a.path().join("src");
    write_tree(&src);
    let s = store.to_str().unwrap();
    env.run(a.path(), &["--store", s, "snapshot", "src", "--name", "v1"])
        .assert_ok("snapshot");
    let Some(view) = BindView::of(&store, &a.path().join("view")) else {
        return;
    };
    let ro = view.at.to_str().unwrap();
    // A worktree checked out while the store could be written.
    env.run(a.path(), &["--store", ro, "checkout", "v1", "early"])
        .assert_ok("checkout");
    view.remount("ro");
    let before = cowtree_testutil::TreeState::capture(&store, &|_| false);

    // Reading the store needs no write to it: the checkout succeeds.
    let wt = b.path().join("wt");
    let co = env.run(b.path(), &["--store", ro, "checkout", "v1", "wt"]);
    co.assert_ok("checkout from a read-only store");
    cowtree_testutil::assert_diff_clean(&src, &wt);
    // The worktree works as any other: status finds it (through its marker), and so do
    // `worktree list` and gc on the read-only store.
    fs::write(wt.join("a"), b"changed\n").unwrap();
    let st = env.run(&wt, &["status"]);
    assert_eq!(st.assert_ok("status").stdout, "M a\n");
    // The one checked out before keeps working, and both are listed.
    let early = a.path().join("early");
    fs::write(early.join("d/b"), b"edited\n").unwrap();
    let st = env.run(&early, &["status"]);
    assert_eq!(
        st.assert_ok("status of the earlier worktree").stdout,
        "M d/b\n"
    );
    let list = env.run(b.path(), &["--store", ro, "worktree", "list", "--json"]);
    let v = list.assert_ok("worktree list").json();
    let mut listed: Vec<&str> = v["worktrees"]
        .as_array()
        .expect("a list of worktrees")
        .iter()
        .map(|w| w["path"].as_str().unwrap())
        .collect();
    listed.sort();
    assert_eq!(
        listed,
        [early.to_str().unwrap(), wt.to_str().unwrap()],
        "{v}"
    );
    env.run(b.path(), &["--store", ro, "gc"]).assert_ok("gc");
    // Its registry is in the user's state directory, named for the store.
    let outside: Vec<PathBuf> = fs::read_dir(env.state().join("cowtree/registries"))
        .expect("a registry outside the store")
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(outside.len(), 1, "{outside:?}");
    assert_eq!(
        fs::read_to_string(outside[0].join("store")).unwrap(),
        format!("{ro}\n")
    );
    assert_eq!(
        names(&outside[0]).len(),
        5,
        "two records, two stat caches, store"
    );
    before.assert_same(
        &cowtree_testutil::TreeState::capture(&store, &|_| false),
        "the read-only store",
    );

    // Writable again: the next command that opens the store takes the records in.
    view.remount("rw");
    let list = env.run(b.path(), &["--store", ro, "worktree", "list", "--json"]);
    let v = list.assert_ok("worktree list").json();
    assert_eq!(v["worktrees"].as_array().unwrap().len(), 2, "{v}");
    assert!(!outside[0].exists(), "the registry outside was taken in");
    assert_eq!(
        names(&store.join("worktrees")).len(),
        4,
        "records and stat caches"
    );
    for (dir, changed) in [(&wt, "M a\n"), (&early, "M d/b\n")] {
        let st = env.run(dir, &["status"]);
        assert_eq!(st.assert_ok("status").stdout, changed);
    }
    // gc prunes the record once the worktree is gone, from inside the store now.
    fs::remove_dir_all(&wt).unwrap();
    let gc = env.run(b.path(), &["--store", ro, "gc", "--json"]);
    assert_eq!(gc.assert_ok("gc").json()["worktrees_pruned"], 1);
}

#[test]
fn checkout_pull_pulls_into_the_destinations_filesystem_when_only_another_filesystems_store_has_it()
{
    let (Some(a), Some(b), Some(b_mount)) = (
        scratch(Fs::Xfs),
        scratch(Fs::Xfs2),
        cowtree_testutil::mount(Fs::Xfs2),
    ) else {
        return;
    };
    let env = Env::new();
    // B's store is its mount's, which other tests use too: names of this test's own.
    let run_name = b.path().file_name().unwrap().to_str().unwrap().to_string();
    let (v1, v2) = (format!("{run_name}-v1"), format!("{run_name}-v2"));
    let sa = a.path().join("store");
    let s = sa.to_str().unwrap();
    write_tree(&a.path().join("src"));
    env.run(a.path(), &["--store", s, "snapshot", "src", "--name", &v1])
        .assert_ok("snapshot v1");
    fs::write(a.path().join("src/c"), b"third\n").unwrap();
    env.run(a.path(), &["--store", s, "snapshot", "src", "--name", &v2])
        .assert_ok("snapshot v2");
    let remote = a.path().join("remote");
    fs::create_dir(&remote).unwrap();
    let url = format!("file://{}", remote.display());
    // The remote is the user's: every store uses it.
    env.run(a.path(), &["remote", "add", "origin", &url])
        .assert_ok("remote add");
    env.run(a.path(), &["--store", s, "push", &v1])
        .assert_ok("push");
    let sb = fs::canonicalize(&b_mount).unwrap().join(".cowtree-store");

    // v1 is in A's store (on another filesystem): --pull fetches it into B's store, and the
    // checkout clones from there.
    let co = env.run(b.path(), &["checkout", "--json", "--pull", &v1, "wt"]);
    let v = co.assert_ok("checkout --pull").json();
    assert_eq!(v["store"], sb.to_str().unwrap(), "{v}");
    let names = env.run(b.path(), &["--store", sb.to_str().unwrap(), "ls", "--json"]);
    assert!(
        names.assert_ok("ls").stdout.contains(&v1),
        "pulled: {}",
        names.stdout
    );
    assert_eq!(
        (v["cloned"].as_u64(), v["copied"].as_u64()),
        (Some(2), Some(0))
    );
    assert_eq!(v["cross_device"], false);
    // Without --pull, a snapshot only A's store has is checked out from there, copied, as
    // the warning says.
    let co = env.run(b.path(), &["checkout", "--json", &v2, "wt2"]);
    let v = co
        .assert_ok("checkout from another filesystem's store")
        .json();
    assert_eq!(v["store"], sa.to_str().unwrap(), "{v}");
    assert_eq!(
        (v["cross_device"].as_bool(), v["copied"].as_u64()),
        (Some(true), Some(3))
    );
    assert!(co.stderr.contains("different filesystem"), "{}", co.stderr);
    // A snapshot no store has: not found (exit 8), naming the stores searched.
    let nosuch = format!("{run_name}-nosuch");
    let none = env.run(b.path(), &["checkout", &nosuch, "wt3"]);
    assert_eq!(none.code(), Some(8), "{}", none.stderr);
    assert!(
        none.stderr
            .contains(&format!("no snapshot {nosuch:?} in any known store"))
            && none.stderr.contains(sb.to_str().unwrap())
            && none.stderr.contains(sa.to_str().unwrap()),
        "{}",
        none.stderr
    );
    assert!(!b.path().join("wt3").exists());
}

#[test]
fn a_snapshot_that_would_copy_across_filesystems_is_refused_naming_the_store_and_why_unless_asked()
{
    let (Some(t), Some(a), Some(b)) = (scratch(Fs::Tmpfs), scratch(Fs::Xfs), scratch(Fs::Xfs2))
    else {
        return;
    };
    let env = Env::new();
    let default = env.dir.path().join("data/cowtree");
    // A tree on tmpfs: its filesystem cannot share data, so the store is the default one, on
    // another filesystem.
    write_tree(&t.path().join("src"));
    let r = env.run(t.path(), &["snapshot", "src"]);
    assert_eq!(r.code(), Some(3), "{}", r.stderr);
    assert!(
        r.stderr.contains(&format!(
            "store {} is on another filesystem than src",
            default.display()
        )) && r
            .stderr
            .contains("because the filesystem of src (tmpfs) cannot share data")
            && r.stderr.contains("--mode copy")
            && !r.stderr.contains("COWTREE_STORE"),
        "{}",
        r.stderr
    );
    assert!(!default.exists(), "nothing was created");
    let j = env.run(t.path(), &["snapshot", "--json", "src"]);
    let v: serde_json::Value = serde_json::from_str(j.stdout.trim()).expect("a JSON error");
    assert_eq!(
        (v["exit"].as_u64(), v["error"]["kind"].as_str()),
        (Some(3), Some("strict"))
    );
    let r = env.run(t.path(), &["snapshot", "--mode", "copy", "src"]);
    r.assert_ok("--mode copy");
    assert!(
        r.stderr.contains("copied into the store") && r.stderr.contains("(--mode copy)"),
        "{}",
        r.stderr
    );
    assert!(
        !r.stderr.contains("drop --store"),
        "no hint about options not given: {}",
        r.stderr
    );

    // A tree on a read-only filesystem (a read-only mount of it, on a directory of another
    // filesystem): nowhere on it for a store of its own.
    write_tree(&a.path().join("tree/src"));
    let Some(view) = BindView::of(&a.path().join("tree"), &env.dir.path().join("ro")) else {
        return;
    };
    view.remount("ro");
    let r = env.run(&view.at, &["snapshot", "src"]);
    assert_eq!(r.code(), Some(3), "{}", r.stderr);
    assert!(
        r.stderr.contains(&format!(
            "store {} is on another filesystem",
            default.display()
        )) && r
            .stderr
            .contains("no directory on the path of src within its filesystem is writable"),
        "{}",
        r.stderr
    );
    env.run(&view.at, &["snapshot", "--mode", "copy", "src"])
        .assert_ok("--mode copy");

    // A store named on another filesystem.
    let named = b.path().join("store");
    let r = env.run(
        a.path(),
        &["--store", named.to_str().unwrap(), "snapshot", "tree/src"],
    );
    assert_eq!(r.code(), Some(3), "{}", r.stderr);
    assert!(
        r.stderr.contains("because it was named by --store"),
        "{}",
        r.stderr
    );
    assert!(!named.exists(), "the named store was not created");
}
