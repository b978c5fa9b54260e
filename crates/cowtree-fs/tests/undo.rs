//! The undo registry (`cowtree_fs::undo`): `undo_all` closes the process-wide staging gate,
//! so it is tested in a process of its own.
#![cfg(unix)]

use std::ffi::{OsStr, OsString};
use std::io;
use std::sync::Arc;

use cowtree_fs::dir::Dir;
use cowtree_fs::undo::{Registration, undo_all};

fn names(dir: &Dir) -> Vec<OsString> {
    let mut v: Vec<OsString> = dir
        .entries()
        .expect("list")
        .into_iter()
        .map(|e| e.name)
        .collect();
    v.sort();
    v
}

/// A registration's own undo and the registry's are the same removal; forgetting removes
/// nothing; a registered name with nothing there is skipped. (One test: `undo_all` closes
/// the process's staging gate.)
#[test]
fn undo_removes_what_is_registered_and_forget_keeps_it() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = Dir::open(tmp.path()).expect("open");

    // Undo by the owner.
    let r = Registration::tree(&dir, OsStr::new("a")).expect("register");
    dir.create_dir_open(OsStr::new("a"), 0o755)
        .expect("mkdir")
        .create_dir_open(OsStr::new("inner"), 0o755)
        .expect("mkdir inner");
    r.undo().expect("undo");
    assert!(names(&dir).is_empty());

    // Forgotten: left in place.
    let r = Registration::tree(&dir, OsStr::new("kept")).expect("register");
    dir.create_dir_open(OsStr::new("kept"), 0o755)
        .expect("mkdir");
    r.forget();

    // Registered and made, then the signal handler's undo.
    let t = Registration::tree(&dir, OsStr::new("b")).expect("register");
    dir.create_dir_open(OsStr::new("b"), 0o755).expect("mkdir");
    let f = Registration::file(&dir, OsStr::new("rec"), true).expect("register");
    std::fs::write(tmp.path().join("rec"), b"x").expect("write");
    let never = Registration::tree(&dir, OsStr::new("never-made")).expect("register");
    let called = Registration::call(Arc::new(|| vec!["said".to_string()]));
    let report = undo_all();
    assert_eq!(report.calls, vec![vec!["said".to_string()]]);
    assert_eq!(report.removed.len(), 1, "{report:?}");
    assert!(report.removed[0].ends_with("b"), "{report:?}");
    assert!(report.failed.is_empty());
    assert_eq!(names(&dir), vec![OsString::from("kept")]);
    // The gate is closed: nothing new is made.
    assert_eq!(
        cowtree_fs::staging::unless_stopping(|| Ok(()))
            .expect_err("closed")
            .kind(),
        io::ErrorKind::Interrupted
    );
    drop((t, f, never, called));
    // Forgotten, all of them: a second undo finds nothing to do.
    let again = undo_all();
    assert!(again.is_empty(), "{again:?}");
    assert_eq!(names(&dir), vec![OsString::from("kept")]);
}
