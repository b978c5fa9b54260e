//! Where a checkout's snapshot comes from (`cowtree_store::source::checkout_source`) when the
//! caller names the store: the answer an embedding tool gets is the command line's. On real
//! mounts (a store on XFS, destinations on the same XFS and on another one).

use std::fs;

use cowtree_store::Store;
use cowtree_store::error::Error;
use cowtree_store::ingest::snapshot_dir;
use cowtree_store::source::{Source, checkout_source};
use cowtree_testutil::{Fs, scratch};

#[test]
fn a_named_store_serves_the_checkout_or_is_pulled_into_and_says_which_filesystem() {
    let (Some(x), Some(other)) = (scratch(Fs::Xfs), scratch(Fs::Xfs2)) else {
        return;
    };
    let root = x.path().join("store");
    let store = Store::open(&root).unwrap();
    let src = x.path().join("src");
    fs::create_dir(&src).unwrap();
    fs::write(src.join("a"), b"a\n").unwrap();
    let id = snapshot_dir(&store, &src, Some("v")).unwrap().id;
    let here = x.path().join("wt");
    let there = other.path().join("wt");

    // It has the snapshot: from there, on DST's filesystem or not.
    for (dst, same) in [(&here, true), (&there, false)] {
        for pull in [false, true] {
            assert_eq!(
                checkout_source(Some(&root), dst, "v", pull).unwrap(),
                Source::Store {
                    root: root.clone(),
                    id,
                    same_filesystem: same
                },
                "{} pull={pull}",
                dst.display()
            );
        }
    }
    // It lacks it: pulled into it when a pull is allowed, else not found (what it has).
    assert_eq!(
        checkout_source(Some(&root), &there, "nosuch", true).unwrap(),
        Source::Pull {
            into: root.clone(),
            choice: None
        }
    );
    let e = checkout_source(Some(&root), &there, "nosuch", false).unwrap_err();
    assert!(e.is_not_found(), "{e}");
    // A named store that does not exist is never created here: a pull goes into it (the
    // caller creates it), else not found, naming it.
    let missing = other.path().join("no-store");
    assert_eq!(
        checkout_source(Some(&missing), &there, "v", true).unwrap(),
        Source::Pull {
            into: missing.clone(),
            choice: None
        }
    );
    let e = checkout_source(Some(&missing), &there, "v", false).unwrap_err();
    assert!(
        matches!(e, Error::NotFound(_)) && e.to_string().contains("no-store"),
        "{e}"
    );
    assert!(!missing.exists(), "nothing created");
}
