//! The progress counters of snapshot, checkout, verify and gc on real mounts: after the
//! operation they hold exactly the work the report describes.

use std::fs;
use std::path::Path;

use cowtree_fs::Progress;
use cowtree_fs::progress::Total;
use cowtree_store::Store;
use cowtree_store::checkout::{CheckoutMode, CheckoutOptions, checkout_with_progress};
use cowtree_store::ingest::snapshot_dir_with_progress;
use cowtree_testutil::{Fs, pattern, scratch};

/// `files` files of sizes 1..=files*97 bytes under a few directories, and two symlinks;
/// returns the total bytes.
fn tree(root: &Path, files: u64) -> u64 {
    let mut total = 0;
    for i in 0..files {
        let p = root.join(format!("d{}/f{i}", i % 5));
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        let size = 1 + (i as usize * 97) % 20_000;
        fs::write(p, pattern(size, i + 1)).unwrap();
        total += size as u64;
    }
    std::os::unix::fs::symlink("d0/f0", root.join("link0")).unwrap();
    std::os::unix::fs::symlink("../d0", root.join("d1/link1")).unwrap();
    fs::create_dir_all(root.join("empty")).unwrap();
    total
}

#[test]
fn snapshot_checkout_verify_and_gc_count_every_file_and_byte() {
    for fsys in Fs::COW {
        let Some(dir) = scratch(fsys) else { continue };
        let src = dir.path().join("src");
        let bytes = tree(&src, 600);
        let store = Store::open(&dir.path().join("store")).unwrap();

        let p = Progress::default();
        let r = snapshot_dir_with_progress(&store, &src, Some("v1"), &p).unwrap();
        assert_eq!((p.entries(), p.bytes()), (600, bytes), "{fsys:?} snapshot");
        assert_eq!((r.files, r.bytes), (600, bytes), "{fsys:?}");
        assert_eq!(
            p.total(),
            None,
            "{fsys:?}: a snapshot cannot know its total"
        );

        let p = Progress::default();
        let opts = CheckoutOptions {
            mode: CheckoutMode::Auto,
            strict: true,
            preserve: cowtree_store::Preserve::NONE,
        };
        let dst = dir.path().join("wt");
        let c = checkout_with_progress(&store, &r.id, &dst, opts, &|w| panic!("{w}"), &p).unwrap();
        // Files and symlinks are entries; directories are not.
        let total = Total {
            entries: 602,
            bytes: Some(bytes),
        };
        assert_eq!(p.total(), Some(total), "{fsys:?} checkout");
        assert_eq!((p.entries(), p.bytes()), (602, bytes), "{fsys:?} checkout");
        assert_eq!((c.files + c.symlinks, c.bytes), (602, bytes), "{fsys:?}");

        let p = Progress::default();
        let v = cowtree_store::verify::verify_with_progress(&store, &p).unwrap();
        assert!(v.problems.is_empty(), "{fsys:?}: {:?}", v.problems);
        assert_eq!(p.total().map(|t| t.entries), Some(v.blobs_checked));
        assert_eq!((p.entries(), p.bytes()), (v.blobs_checked, v.bytes_checked));
        assert!(v.blobs_checked > 500, "{fsys:?}: {}", v.blobs_checked);

        // gc after the snapshot is removed: every blob looked at, the freed bytes counted.
        fs::remove_dir_all(&dst).unwrap();
        cowtree_store::refs::remove(&store, "v1").unwrap();
        store.remove_snapshot(&r.id).unwrap();
        let p = Progress::default();
        let g = cowtree_store::gc::gc_with(&store, false, &mut |_| Ok(0), &p).unwrap();
        assert_eq!(g.blobs_removed, v.blobs_checked, "{fsys:?}");
        assert_eq!((p.entries(), p.bytes()), (g.blobs_removed, g.bytes_freed));
        assert!(g.bytes_freed > 0, "{fsys:?}");
    }
}
