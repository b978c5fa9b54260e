//! `staging::stop_staging` is process-wide, so it is tested in a process of its own.
#![cfg(unix)]

use std::ffi::OsStr;
use std::io::ErrorKind;

use cowtree_fs::dir::Dir;
use cowtree_fs::staging::{Staging, TREE, stop_staging, unless_stopping};

#[test]
fn after_stop_staging_no_staging_directory_is_created_or_moves_into_place() {
    let tmp = tempfile::tempdir().unwrap();
    let parent = Dir::open(tmp.path()).unwrap();
    let dst = OsStr::new("dst");

    let mut before = Staging::create(&parent, TREE.name(dst, "a"), 0o755).unwrap();
    before.commit(dst, false).unwrap();
    assert!(tmp.path().join("dst").is_dir());
    std::fs::remove_dir(tmp.path().join("dst")).unwrap();
    assert_eq!(unless_stopping(|| Ok(7)).unwrap(), 7);

    let mut after = Staging::create(&parent, TREE.name(dst, "b"), 0o755).unwrap();
    let name = after.name().to_owned();
    stop_staging();
    let err = after.commit(dst, false).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Interrupted, "{err}");
    assert!(!tmp.path().join("dst").exists());
    assert!(
        tmp.path().join(&name).is_dir(),
        "the staging is left to its owner"
    );
    drop(after);
    assert!(
        !tmp.path().join(&name).exists(),
        "dropped without a commit: removed"
    );

    // Nothing new is created once stopping, and a gated step is not run at all.
    let late = TREE.name(dst, "c");
    let err = Staging::create(&parent, late.clone(), 0o755).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Interrupted, "{err}");
    assert!(!tmp.path().join(&late).exists());
    let mut ran = false;
    let err = unless_stopping(|| {
        ran = true;
        Ok(())
    })
    .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Interrupted, "{err}");
    assert!(!ran);
    assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 0);
}
