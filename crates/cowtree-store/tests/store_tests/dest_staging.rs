//! Registrations of staging beside destinations: gc's pass removes only the registered
//! directory, only when its owner is gone, and never through a symlink.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use cowtree_fs::dir::Dir;
use cowtree_store::Store;
use cowtree_store::dest_staging::{Outcome, collect, register};
use cowtree_testutil::{Fs, scratch};

const GRACE: Duration = Duration::from_secs(3600);

/// Registers `path`, creates it with a file inside and records it, the way a checkout does,
/// then leaves the registration behind as a killed process would. Returns the open directory.
fn left_behind(store: &Store, path: &Path) -> Dir {
    let mut reg = register(store, path).unwrap();
    fs::create_dir(path).unwrap();
    fs::write(path.join("half-written"), b"x").unwrap();
    let m = fs::symlink_metadata(path).unwrap();
    reg.created(m.dev(), m.ino()).unwrap();
    reg.keep();
    Dir::open(path).unwrap()
}

fn registrations(store: &Store) -> usize {
    fs::read_dir(store.root().join("worktrees"))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .starts_with("staging-")
        })
        .count()
}

/// A staging name as a checkout by this process makes it:
/// `.<name>.cowtree-checkout-<stamp>-<n>`, then `tail`.
fn sname(name: &str, n: u32, tail: &str) -> String {
    format!(
        ".{name}.cowtree-checkout-{}-{n}{tail}",
        cowtree_fs::process::Stamp::current()
    )
}

fn canon(dir: &Path) -> PathBuf {
    fs::canonicalize(dir).unwrap()
}

#[test]
fn staging_whose_lock_is_free_is_removed_and_its_registration_dropped() {
    let Some(x) = scratch(Fs::Xfs) else { return };
    let store = Store::open(&x.path().join("store")).unwrap();
    let path = canon(x.path()).join(sname("wt", 1, ""));
    drop(left_behind(&store, &path));
    let dry = collect(&store, true, GRACE).unwrap();
    assert_eq!(dry, vec![Outcome::Removed(path.clone())]);
    assert!(
        path.join("half-written").exists(),
        "a dry run removes nothing"
    );
    assert_eq!(registrations(&store), 1);
    let done = collect(&store, false, GRACE).unwrap();
    assert_eq!(done, vec![Outcome::Removed(path.clone())]);
    assert!(!path.exists());
    assert_eq!(registrations(&store), 0);
}

#[test]
fn staging_locked_by_a_live_process_is_left_alone() {
    let Some(x) = scratch(Fs::Xfs) else { return };
    let store = Store::open(&x.path().join("store")).unwrap();
    let path = canon(x.path()).join(sname("wt", 2, ""));
    let held = left_behind(&store, &path);
    assert!(held.try_lock_exclusive().unwrap());
    let out = collect(&store, false, GRACE).unwrap();
    assert_eq!(out, vec![Outcome::Live(path.clone())]);
    assert!(path.join("half-written").exists());
    assert_eq!(registrations(&store), 1);
    drop(held);
    assert_eq!(
        collect(&store, false, GRACE).unwrap(),
        vec![Outcome::Removed(path.clone())]
    );
}

#[test]
fn another_directory_or_a_symlink_at_the_registered_path_is_never_touched() {
    let Some(x) = scratch(Fs::Xfs) else { return };
    let store = Store::open(&x.path().join("store")).unwrap();
    let base = canon(x.path());

    // The registered directory was removed and another one made at its path.
    let replaced = base.join(sname("a", 3, ""));
    drop(left_behind(&store, &replaced));
    let old = base.join("old");
    fs::rename(&replaced, &old).unwrap();
    fs::create_dir(&replaced).unwrap();
    fs::remove_dir_all(&old).unwrap();
    fs::write(replaced.join("someone-elses"), b"keep").unwrap();

    // The registered directory was moved away and a symlink to it put at its path.
    let swapped = base.join(sname("b", 4, ""));
    drop(left_behind(&store, &swapped));
    let moved = base.join("moved");
    fs::rename(&swapped, &moved).unwrap();
    std::os::unix::fs::symlink(&moved, &swapped).unwrap();

    // The registered directory's parent became a symlink to a directory holding it.
    let real_parent = base.join("real");
    fs::create_dir(&real_parent).unwrap();
    let via = base.join("via");
    let inside = via.join(sname("c", 5, ""));
    fs::create_dir(&via).unwrap();
    drop(left_behind(&store, &inside));
    fs::rename(&inside, real_parent.join(sname("c", 5, ""))).unwrap();
    fs::remove_dir(&via).unwrap();
    std::os::unix::fs::symlink(&real_parent, &via).unwrap();

    let out = collect(&store, false, GRACE).unwrap();
    // The first two are not the registered directory; the third cannot be reached without
    // following a symlink, and its owner (this process) is alive, so it is kept for later.
    assert_eq!(
        out.iter().filter(|o| **o == Outcome::Dropped).count(),
        2,
        "{out:?}"
    );
    assert!(out.contains(&Outcome::Live(inside.clone())), "{out:?}");
    assert_eq!(fs::read(replaced.join("someone-elses")).unwrap(), b"keep");
    assert!(moved.join("half-written").exists());
    assert!(real_parent.join(sname("c", 5, "/half-written")).exists());
    assert_eq!(registrations(&store), 1);
    // Once its owner counts as gone, only the registration goes.
    std::thread::sleep(Duration::from_millis(1100));
    assert_eq!(
        collect(&store, false, Duration::ZERO).unwrap(),
        vec![Outcome::Dropped]
    );
    assert!(real_parent.join(sname("c", 5, "/half-written")).exists());
    assert_eq!(registrations(&store), 0);
}

#[test]
fn a_registration_without_its_directory_is_dropped_once_its_owner_is_gone() {
    let Some(x) = scratch(Fs::Xfs) else { return };
    let store = Store::open(&x.path().join("store")).unwrap();
    let path = canon(x.path()).join(sname("wt", 6, ""));
    // Registered by this (live) process, directory never created: kept while the owner lives.
    register(&store, &path).unwrap().keep();
    let out = collect(&store, false, GRACE).unwrap();
    assert_eq!(out, vec![Outcome::Live(path.clone())]);
    // A grace period of zero takes any registration for abandoned (a reused pid).
    std::thread::sleep(Duration::from_millis(1100));
    let out = collect(&store, false, Duration::ZERO).unwrap();
    assert_eq!(out, vec![Outcome::Dropped]);
    assert_eq!(registrations(&store), 0);
}

#[test]
fn a_registration_naming_a_directory_that_is_not_a_checkout_staging_never_removes_it() {
    let Some(x) = scratch(Fs::Xfs) else { return };
    let store = Store::open(&x.path().join("store")).unwrap();
    // Right inode, a registration as a checkout writes it, but an ordinary name (or another
    // process's staging name): nothing a checkout of this registration could have made.
    for name in [
        "precious".to_string(),
        format!(
            ".wt.cowtree-checkout-{}-7",
            std::process::id().wrapping_add(1)
        ),
    ] {
        let path = canon(x.path()).join(&name);
        drop(left_behind(&store, &path));
        assert_eq!(
            collect(&store, false, GRACE).unwrap(),
            vec![Outcome::Dropped]
        );
        assert!(path.join("half-written").exists(), "{name} was touched");
        assert_eq!(registrations(&store), 0);
    }
}

/// A registration whose pid a later process holds (this one: its pid, another start time)
/// names a process that is gone, however recent: the directory it names, never created, keeps
/// nothing alive. The same registration with the real start time is a live checkout's.
#[test]
fn a_registration_whose_pid_was_reused_is_dropped_at_once() {
    let Some(x) = scratch(Fs::Xfs) else { return };
    let store = Store::open(&x.path().join("store")).unwrap();
    let me = cowtree_fs::process::Stamp::current();
    let Some(start) = me.start else {
        // No start time here (not Linux): the pid alone decides, as before.
        return;
    };
    let path = canon(x.path()).join(sname("wt", 8, ""));
    register(&store, &path).unwrap().keep();
    assert_eq!(
        collect(&store, false, GRACE).unwrap(),
        vec![Outcome::Live(path.clone())]
    );
    let wt = store.root().join("worktrees");
    for e in fs::read_dir(&wt).unwrap() {
        let p = e.unwrap().path();
        if !p
            .file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("staging-")
        {
            continue;
        }
        let mut rec: serde_json::Value = serde_json::from_slice(&fs::read(&p).unwrap()).unwrap();
        assert_eq!(rec["start"], start, "the start time is recorded");
        rec["start"] = (start + 1).into();
        let reused =
            canon(x.path()).join(format!(".wt.cowtree-checkout-{}t{}-8", me.pid, start + 1));
        rec["path"] = reused.to_str().unwrap().into();
        fs::write(&p, serde_json::to_vec(&rec).unwrap()).unwrap();
    }
    assert_eq!(
        collect(&store, false, GRACE).unwrap(),
        vec![Outcome::Dropped]
    );
    assert_eq!(registrations(&store), 0);
}
