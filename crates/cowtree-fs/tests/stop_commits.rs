//! `staging::stop_commits` is process-wide, so it is tested in a process of its own.

use std::ffi::OsStr;
use std::io::ErrorKind;

use cowtree_fs::dir::Dir;
use cowtree_fs::staging::{Staging, TREE, stop_commits};

#[test]
fn after_stop_commits_no_staging_directory_moves_into_place() {
    let tmp = tempfile::tempdir().unwrap();
    let parent = Dir::open(tmp.path()).unwrap();
    let dst = OsStr::new("dst");

    let mut before = Staging::create(&parent, TREE.name(dst, "a"), 0o755).unwrap();
    before.commit(dst, false).unwrap();
    assert!(tmp.path().join("dst").is_dir());
    std::fs::remove_dir(tmp.path().join("dst")).unwrap();

    let mut after = Staging::create(&parent, TREE.name(dst, "b"), 0o755).unwrap();
    let name = after.name().to_owned();
    stop_commits();
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
}
