//! cowtree-space on Windows, on the volume the tests run on (under Wine: scripts/windows.sh):
//! `du` of a tree made with `std::fs` (counts, apparent and allocated bytes, hardlinks once,
//! a file as a root, a missing root, a directory symlink not followed where one can be made), and
//! `dedupe` refused in one line before anything is touched.
#![cfg(windows)]

use std::path::{Path, PathBuf};

use cowtree_space::disk_usage::WINDOWS_NOTE;
use cowtree_space::{DedupeError, DedupeOptions, DuOptions, du};

/// Bytes that differ from one offset to the next.
fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len).map(|i| (i * 7 + i / 4096) as u8 ^ seed).collect()
}

/// A tree: nested and empty directories, an empty file, small and multi-megabyte files,
/// names in several scripts, and a file whose path is over 300 characters. Returns the
/// number of files, the number of directories below the root, the total bytes and the size
/// of the largest file.
fn make_tree(root: &Path) -> (u64, u64, u64, u64) {
    let mut dirs = vec![
        PathBuf::from("a"),
        PathBuf::from("a/b"),
        PathBuf::from("a/b/c"),
        PathBuf::from("empty dir"),
        PathBuf::from("ünïcødé"),
        PathBuf::from("日本語"),
    ];
    let mut files = vec![
        (PathBuf::from("empty.txt"), Vec::new()),
        (PathBuf::from("small.txt"), b"hello, windows\n".to_vec()),
        (PathBuf::from("a/b/c/big.bin"), pattern(3 << 20 | 12345, 1)),
        (PathBuf::from("a/one.bin"), pattern(70_000, 2)),
        (PathBuf::from("ünïcødé/crème brûlée.txt"), pattern(100, 3)),
        (PathBuf::from("日本語/ファイル.txt"), pattern(4097, 4)),
    ];
    let mut long = PathBuf::new();
    for i in 0..6 {
        long.push(format!("long-directory-name-number-{i}-{}", "x".repeat(40)));
        dirs.push(long.clone());
    }
    let long_file = long.join(format!("a-file-at-the-bottom-{}.txt", "y".repeat(60)));
    assert!(long_file.as_os_str().len() > 300);
    files.push((long_file, pattern(5000, 6)));
    for d in &dirs {
        std::fs::create_dir_all(root.join(d)).expect("mkdir");
    }
    let mut bytes = 0;
    let mut largest = 0;
    for (f, data) in &files {
        std::fs::write(root.join(f), data).expect("write");
        bytes += data.len() as u64;
        largest = largest.max(data.len() as u64);
    }
    (files.len() as u64, dirs.len() as u64, bytes, largest)
}

#[test]
fn du_counts_a_std_made_tree_and_says_sharing_is_not_measured() {
    let t = tempfile::tempdir().expect("tempdir");
    let root = t.path().join("tree");
    std::fs::create_dir(&root).expect("mkdir");
    let (files, dirs, bytes, largest) = make_tree(&root);
    let r = du(std::slice::from_ref(&root), &DuOptions::default());
    assert!(r.errors.is_empty(), "{:?}", r.errors);
    assert_eq!(r.error_count, 0);
    assert_eq!(r.files, files, "{r:?}");
    // The root is a directory of its own.
    assert_eq!(r.dirs, dirs + 1, "{r:?}");
    assert_eq!(
        (r.symlinks, r.other, r.hardlinks_skipped),
        (0, 0, 0),
        "{r:?}"
    );
    // Directories have no size of their own on Windows: apparent is the files' bytes.
    assert_eq!(r.apparent, bytes, "{r:?}");
    // Every byte written is allocated somewhere (AllocationSize, rounded up to clusters).
    assert!(r.allocated >= largest, "{r:?}");
    // What Windows cannot say, said once, never a pretended figure.
    assert_eq!((r.shared, r.unique_physical), (None, None), "{r:?}");
    assert!(!r.fiemap_available);
    assert_eq!(r.unmapped_files, files);
    assert_eq!(r.unmapped_reason.as_deref(), Some(WINDOWS_NOTE));
    println!(
        "du: {} files, {} dirs, apparent {}, allocated {}; {}",
        r.files, r.dirs, r.apparent, r.allocated, WINDOWS_NOTE
    );
}

#[test]
fn du_of_two_roots_and_of_a_file_and_a_missing_root() {
    let t = tempfile::tempdir().expect("tempdir");
    let a = t.path().join("a");
    let b = t.path().join("b");
    std::fs::create_dir_all(a.join("sub")).expect("mkdir");
    std::fs::create_dir(&b).expect("mkdir");
    std::fs::write(a.join("sub/one"), pattern(1000, 1)).expect("write");
    std::fs::write(b.join("two"), pattern(2000, 2)).expect("write");
    let r = du(&[a.clone(), b.clone()], &DuOptions::default());
    assert_eq!((r.files, r.dirs, r.apparent), (2, 3, 3000), "{r:?}");

    // A file given as a root: counted as itself.
    let r = du(&[b.join("two")], &DuOptions::default());
    assert_eq!((r.files, r.dirs, r.apparent), (1, 0, 2000), "{r:?}");
    assert!(r.allocated >= 2000, "{r:?}");
    assert!(r.errors.is_empty(), "{:?}", r.errors);

    // A root that is not there: one error naming it; the other root still counted.
    let missing = t.path().join("no such dir");
    let r = du(&[missing.clone(), a.clone()], &DuOptions::default());
    assert_eq!(r.error_count, 1, "{r:?}");
    assert!(r.errors[0].contains("no such dir"), "{:?}", r.errors);
    assert_eq!((r.files, r.apparent), (1, 1000), "{r:?}");
}

#[test]
fn du_counts_a_hardlinked_file_once() {
    let t = tempfile::tempdir().expect("tempdir");
    let root = t.path().join("tree");
    std::fs::create_dir(&root).expect("mkdir");
    std::fs::write(root.join("first"), pattern(50_000, 7)).expect("write");
    std::fs::hard_link(root.join("first"), root.join("second")).expect("hard link");
    std::fs::write(root.join("other"), pattern(10, 8)).expect("write");
    let r = du(std::slice::from_ref(&root), &DuOptions::default());
    assert!(r.errors.is_empty(), "{:?}", r.errors);
    assert_eq!(r.files, 2, "{r:?}");
    assert_eq!(r.hardlinks_skipped, 1, "{r:?}");
    assert_eq!(r.apparent, 50_010, "{r:?}");
}

#[test]
fn a_directory_symlink_is_counted_as_a_link_and_not_followed() {
    let t = tempfile::tempdir().expect("tempdir");
    let root = t.path().join("tree");
    let outside = t.path().join("outside");
    std::fs::create_dir(&root).expect("mkdir");
    std::fs::create_dir(&outside).expect("mkdir");
    std::fs::write(outside.join("big"), pattern(100_000, 9)).expect("write");
    std::fs::write(root.join("inside"), pattern(10, 1)).expect("write");
    let dir = cowtree_fs::dir::Dir::open(&root).expect("open");
    if let Err(e) = dir.symlink_dir(outside.as_os_str(), "link".as_ref()) {
        // Wine 8 refuses FSCTL_SET_REPARSE_POINT; Windows without the privilege refuses too.
        println!("NOT RUN: no directory link could be made here ({e})");
        return;
    }
    let r = du(std::slice::from_ref(&root), &DuOptions::default());
    assert!(r.errors.is_empty(), "{:?}", r.errors);
    assert_eq!((r.files, r.symlinks), (1, 1), "{r:?}");
    assert!(r.apparent < 100_000, "the link was followed: {r:?}");
}

#[test]
fn dedupe_is_refused_in_one_line_before_anything_is_touched() {
    let t = tempfile::tempdir().expect("tempdir");
    let root = t.path().join("tree");
    std::fs::create_dir(&root).expect("mkdir");
    let data = pattern(100_000, 3);
    std::fs::write(root.join("x"), &data).expect("write");
    std::fs::write(root.join("y"), &data).expect("write");
    let before = std::fs::metadata(root.join("y"))
        .expect("stat")
        .modified()
        .expect("mtime");
    for dry_run in [false, true] {
        let opts = DedupeOptions {
            dry_run,
            ..DedupeOptions::default()
        };
        let e = cowtree_space::dedupe(std::slice::from_ref(&root), &opts).unwrap_err();
        assert!(matches!(e, DedupeError::Windows), "{e:?}");
        let msg = e.to_string();
        assert_eq!(
            msg,
            "dedupe needs FIDEDUPERANGE (Linux); not available on Windows (nothing was changed)"
        );
        assert!(!msg.contains('\n'));
    }
    // Refused before any path is looked at: a path that is not there gets the same answer.
    let e = cowtree_space::dedupe(&[t.path().join("nothing here")], &DedupeOptions::default())
        .unwrap_err();
    assert!(matches!(e, DedupeError::Windows), "{e:?}");
    assert_eq!(std::fs::read(root.join("x")).expect("read"), data);
    assert_eq!(std::fs::read(root.join("y")).expect("read"), data);
    let after = std::fs::metadata(root.join("y"))
        .expect("stat")
        .modified()
        .expect("mtime");
    assert_eq!(after, before);
}
