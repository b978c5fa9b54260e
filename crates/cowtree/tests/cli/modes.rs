//! `--mode copy` and `--mode clone` mean the same in `clone` and `checkout`, on real mounts:
//! copy writes blocks of the copy's own (FIEMAP shows nothing shared, on XFS and btrfs, where
//! `copy_file_range` would have shared them), clone clones every file or fails with exit 3
//! leaving nothing at DST.

use std::ffi::OsStr;
use std::fs;
use std::path::{Path, PathBuf};

use crate::common::{Ran, cowtree, cowtree_plain, s, snapshot};
use cowtree_fs::extents::extent_summary;
use cowtree_testutil::{Fs, pattern, scratch};

/// A tree of `n` files of 256 KiB and more, written back (FIEMAP then shows real extents).
fn tree(root: &Path, n: usize) -> Vec<PathBuf> {
    let files: Vec<PathBuf> = (0..n)
        .map(|i| root.join(format!("d{}/f{i}", i % 3)))
        .collect();
    for (i, f) in files.iter().enumerate() {
        fs::create_dir_all(f.parent().unwrap()).unwrap();
        fs::write(f, pattern((256 << 10) + i * 4096, i as u64)).unwrap();
    }
    rustix::fs::syncfs(fs::File::open(root).unwrap()).unwrap();
    files
        .iter()
        .map(|f| f.strip_prefix(root).unwrap().to_path_buf())
        .collect()
}

/// Shared extents of each file (relative paths `files`) under `root`.
fn shared(root: &Path, files: &[PathBuf]) -> Vec<u64> {
    files
        .iter()
        .map(|f| extent_summary(&root.join(f)).unwrap().shared_extents)
        .collect()
}

fn json(r: &Ran) -> serde_json::Value {
    r.json()
}

#[test]
fn mode_copy_writes_blocks_of_their_own_in_clone_and_checkout() {
    for fsys in Fs::COW {
        let Some(dir) = scratch(fsys) else { continue };
        let src = dir.path().join("src");
        let files = tree(&src, 6);
        let store = dir.path().join("store");
        let id = snapshot(&store, &src);

        let copied = dir.path().join("copied");
        let r = cowtree_plain(&[
            s("clone"),
            s("--json"),
            s("--mode"),
            s("copy"),
            src.as_os_str(),
            copied.as_os_str(),
        ]);
        r.assert_ok("clone --mode copy");
        assert_eq!(json(&r)["copied"], 6, "{}", r.stdout);
        let wt = dir.path().join("wt");
        let r = cowtree(
            &store,
            &[
                s("checkout"),
                s("--json"),
                s("--mode"),
                s("copy"),
                OsStr::new(&id),
                wt.as_os_str(),
            ],
        );
        r.assert_ok("checkout --mode copy");
        assert_eq!(json(&r)["copied"], 6, "{}", r.stdout);
        for root in [&copied, &wt] {
            rustix::fs::syncfs(fs::File::open(root).unwrap()).unwrap();
            assert_eq!(
                shared(root, &files),
                vec![0; 6],
                "{fsys:?}: {} shares blocks",
                root.display()
            );
            for f in &files {
                assert_eq!(
                    fs::read(root.join(f)).unwrap(),
                    fs::read(src.join(f)).unwrap()
                );
            }
        }
        // The control: the default mode shares every file's blocks (FIEMAP sees it).
        let cloned = dir.path().join("cloned");
        cowtree_plain(&[s("clone"), src.as_os_str(), cloned.as_os_str()]).assert_ok("clone");
        assert!(
            shared(&cloned, &files).iter().all(|&n| n > 0),
            "{fsys:?}: a clone shares nothing"
        );
    }
}

#[test]
fn mode_clone_is_clone_or_fail_in_clone_and_checkout() {
    let Some(dir) = scratch(Fs::Xfs) else { return };
    let Some(other) = scratch(Fs::Tmpfs) else {
        return;
    };
    let src = dir.path().join("src");
    let files = tree(&src, 4);
    let store = dir.path().join("store");
    let id = snapshot(&store, &src);

    // Where every file can be cloned, both clone every file.
    let here = dir.path().join("here");
    let r = cowtree_plain(&[
        s("clone"),
        s("--json"),
        s("--mode"),
        s("clone"),
        src.as_os_str(),
        here.as_os_str(),
    ]);
    r.assert_ok("clone --mode clone");
    assert_eq!(
        (json(&r)["cloned"].as_u64(), json(&r)["copied"].as_u64()),
        (Some(4), Some(0))
    );
    let wt = dir.path().join("wt");
    let r = cowtree(
        &store,
        &[
            s("checkout"),
            s("--json"),
            s("--mode"),
            s("clone"),
            OsStr::new(&id),
            wt.as_os_str(),
        ],
    );
    r.assert_ok("checkout --mode clone");
    assert_eq!(
        (json(&r)["cloned"].as_u64(), json(&r)["copied"].as_u64()),
        (Some(4), Some(0))
    );
    assert!(shared(&wt, &files).iter().all(|&n| n > 0));

    // Where none can (tmpfs), both refuse with exit 3 and leave nothing at DST.
    let there = other.path().join("there");
    let r = cowtree_plain(&[
        s("clone"),
        s("--mode"),
        s("clone"),
        src.as_os_str(),
        there.as_os_str(),
    ]);
    assert_eq!(
        r.code(),
        Some(3),
        "clone --mode clone to tmpfs: {}",
        r.stderr
    );
    assert!(!there.exists());
    let wt2 = other.path().join("wt2");
    let r = cowtree(
        &store,
        &[
            s("checkout"),
            s("--mode"),
            s("clone"),
            OsStr::new(&id),
            wt2.as_os_str(),
        ],
    );
    assert_eq!(
        r.code(),
        Some(3),
        "checkout --mode clone to tmpfs: {}",
        r.stderr
    );
    assert!(!wt2.exists());
    let left: Vec<_> = fs::read_dir(other.path()).unwrap().collect();
    assert!(left.is_empty(), "left on tmpfs: {left:?}");
}
