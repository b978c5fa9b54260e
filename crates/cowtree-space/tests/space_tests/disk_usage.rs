//! `du` against a known layout on real mounts.

use std::fs::{self, File};
use std::io::{Seek, SeekFrom, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use cowtree_fs::{ReflinkOutcome, try_reflink};
use cowtree_space::{DuOptions, du};
use cowtree_testutil::{Fs, pattern, scratch};

const MIB: u64 = 1 << 20;

fn write_synced(path: &Path, data: &[u8]) {
    let mut f = File::create(path).unwrap();
    f.write_all(data).unwrap();
    f.sync_all().unwrap();
}

/// t/a (1 MiB), t/b (clone of a), t/c (plain copy of a), t/s (sparse: 64 KiB of data after a
/// 1 MiB hole), t/h (hardlink of a), t/l (symlink to a), t/sub/ (empty directory).
fn known_layout(root: &Path) -> PathBuf {
    let t = root.join("t");
    fs::create_dir(&t).unwrap();
    fs::create_dir(t.join("sub")).unwrap();
    let data = pattern(MIB as usize, 1);
    write_synced(&t.join("a"), &data);
    assert!(matches!(
        try_reflink(&t.join("a"), &t.join("b")).unwrap(),
        ReflinkOutcome::Cloned
    ));
    write_synced(&t.join("c"), &data);
    let mut s = File::create(t.join("s")).unwrap();
    s.seek(SeekFrom::Start(MIB)).unwrap();
    s.write_all(&pattern(64 * 1024, 2)).unwrap();
    s.sync_all().unwrap();
    fs::hard_link(t.join("a"), t.join("h")).unwrap();
    std::os::unix::fs::symlink("a", t.join("l")).unwrap();
    t
}

/// Apparent and allocated bytes as `du` counts them: every inode once.
fn expected_sizes(t: &Path) -> (u64, u64) {
    let mut apparent = 0;
    let mut allocated = 0;
    for p in [".", "sub", "a", "b", "c", "s", "l"] {
        let m = fs::symlink_metadata(t.join(p)).unwrap();
        apparent += m.size();
        allocated += m.blocks() * 512;
    }
    (apparent, allocated)
}

#[test]
fn du_counts_clones_once_copies_twice_sparse_holes_not_at_all_and_hardlinks_once() {
    for fsys in Fs::COW {
        let Some(dir) = scratch(fsys) else { continue };
        let t = known_layout(dir.path());
        let r = du(std::slice::from_ref(&t), &DuOptions::default());
        assert_eq!(r.error_count, 0, "{fsys:?}: {:?}", r.errors);
        assert_eq!(r.files, 4, "{fsys:?}: {r:?}");
        assert_eq!(r.dirs, 2, "{fsys:?}");
        assert_eq!(r.symlinks, 1, "{fsys:?}");
        assert_eq!(r.hardlinks_skipped, 1, "{fsys:?}");
        let (apparent, allocated) = expected_sizes(&t);
        assert_eq!(r.apparent, apparent, "{fsys:?}");
        assert_eq!(r.allocated, allocated, "{fsys:?}");
        assert!(r.fiemap_available, "{fsys:?}");
        // a and b share all of their 1 MiB each; c and s share nothing.
        assert_eq!(r.shared, Some(2 * MIB), "{fsys:?}: {r:?}");
        // a/b once, c once, the 64 KiB of s; the hole costs nothing.
        assert_eq!(
            r.unique_physical,
            Some(2 * MIB + 64 * 1024),
            "{fsys:?}: {r:?}"
        );
        assert_eq!(r.devices.len(), 1);
        assert_eq!(
            r.devices[0].fs_type,
            if fsys == Fs::Xfs { "xfs" } else { "btrfs" }
        );
    }
}

#[test]
fn du_over_ten_clones_is_one_tree_and_over_ten_copies_is_ten() {
    for fsys in Fs::COW {
        let Some(dir) = scratch(fsys) else { continue };
        let src = dir.path().join("src");
        fs::create_dir(&src).unwrap();
        for i in 0..5u64 {
            write_synced(
                &src.join(format!("f{i}")),
                &pattern((64 * 1024 * (i + 1)) as usize, i),
            );
        }
        let one = du(std::slice::from_ref(&src), &DuOptions::default())
            .unique_physical
            .unwrap();
        let mut clones = vec![];
        let mut copies = vec![];
        for k in 0..10 {
            let c = dir.path().join(format!("clone{k}"));
            let p = dir.path().join(format!("copy{k}"));
            fs::create_dir(&c).unwrap();
            fs::create_dir(&p).unwrap();
            for i in 0..5u64 {
                let name = format!("f{i}");
                try_reflink(&src.join(&name), &c.join(&name)).unwrap();
                write_synced(&p.join(&name), &fs::read(src.join(&name)).unwrap());
            }
            clones.push(c);
            copies.push(p);
        }
        let rc = du(&clones, &DuOptions::default());
        let rp = du(&copies, &DuOptions::default());
        assert_eq!(rc.unique_physical, Some(one), "{fsys:?}: {rc:?}");
        assert_eq!(rp.unique_physical, Some(10 * one), "{fsys:?}: {rp:?}");
        // Plain du counts every clone's blocks again: allocated is ten trees either way.
        assert!(rc.allocated >= 10 * one, "{fsys:?}: {rc:?}");
        assert_eq!(rc.shared, Some(10 * one), "{fsys:?}");
        assert_eq!(rp.shared, Some(0), "{fsys:?}");
        // Naming the same tree twice does not count its blocks twice.
        let twice = du(&[src.clone(), src.clone()], &DuOptions::default());
        assert_eq!(twice.unique_physical, Some(one));
    }
}

#[test]
fn du_on_tmpfs_says_fiemap_is_unavailable_instead_of_reporting_zero() {
    let Some(dir) = scratch(Fs::Tmpfs) else {
        return;
    };
    let t = dir.path().join("t");
    fs::create_dir(&t).unwrap();
    fs::write(t.join("a"), pattern(100_000, 3)).unwrap();
    fs::write(t.join("empty"), b"").unwrap();
    let r = du(std::slice::from_ref(&t), &DuOptions::default());
    assert_eq!(r.files, 2);
    assert!(r.apparent >= 100_000);
    assert!(r.allocated >= 100_000);
    assert!(!r.fiemap_available);
    assert_eq!(r.shared, None);
    assert_eq!(r.unique_physical, None);
    assert_eq!(r.unmapped_files, 1, "the empty file needs no mapping");
    let why = r.unmapped_reason.unwrap();
    assert!(why.contains("tmpfs"), "{why}");
    assert_eq!(r.devices[0].unique_physical, None);
}

#[test]
fn du_reports_a_missing_path_as_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope");
    let r = du(&[missing], &DuOptions::default());
    assert_eq!(r.error_count, 1);
    assert!(r.errors[0].contains("nope"), "{:?}", r.errors);
}

#[test]
fn du_never_follows_a_symlink_to_a_directory() {
    let Some(dir) = scratch(Fs::Xfs) else { return };
    let t = dir.path().join("t");
    let outside = dir.path().join("outside");
    fs::create_dir(&t).unwrap();
    fs::create_dir(&outside).unwrap();
    write_synced(&outside.join("big"), &pattern(MIB as usize, 4));
    std::os::unix::fs::symlink(&outside, t.join("link")).unwrap();
    let r = du(std::slice::from_ref(&t), &DuOptions::default());
    assert_eq!(r.files, 0);
    assert_eq!(r.symlinks, 1);
    assert_eq!(r.unique_physical, Some(0));
}

/// `du` asks FIEMAP for the extents up to the end of file first and looks further only when
/// those cover fewer bytes than the file has allocated: blocks preallocated past the end of
/// file, and a file of more extents than one FIEMAP call returns, still count.
#[test]
fn du_counts_blocks_preallocated_past_the_end_of_file_and_files_of_many_extents() {
    use rustix::fs::{FallocateFlags, fallocate};
    const KIB: u64 = 1024;
    for fsys in Fs::COW {
        let Some(dir) = scratch(fsys) else { continue };
        let t = dir.path().join("t");
        fs::create_dir(&t).unwrap();
        // p: 64 KiB of data, then 256 KiB preallocated 1 MiB further on; its size stays 64 KiB.
        write_synced(&t.join("p"), &pattern(64 * KIB as usize, 5));
        let f = fs::OpenOptions::new()
            .write(true)
            .open(t.join("p"))
            .unwrap();
        fallocate(&f, FallocateFlags::KEEP_SIZE, MIB + 64 * KIB, 256 * KIB).unwrap();
        f.sync_all().unwrap();
        assert_eq!(f.metadata().unwrap().len(), 64 * KIB);
        drop(f);
        // m: 40 separate extents of 4 KiB, 64 KiB apart (written from the last one down, so
        // that XFS has no reason to preallocate past the end of file into the holes).
        let mut m = File::create(t.join("m")).unwrap();
        for i in (0..40u64).rev() {
            m.seek(SeekFrom::Start(i * 64 * KIB)).unwrap();
            m.write_all(&pattern(4096, 100 + i)).unwrap();
        }
        m.sync_all().unwrap();
        drop(m);
        let m_extents = cowtree_fs::extents::extent_summary(&t.join("m")).unwrap();
        assert_eq!(m_extents.extents, 40, "{fsys:?}");
        // e: empty, with 128 KiB preallocated (a log or database file before its first write).
        let e = File::create(t.join("e")).unwrap();
        fallocate(&e, FallocateFlags::KEEP_SIZE, 0, 128 * KIB).unwrap();
        e.sync_all().unwrap();
        assert_eq!(e.metadata().unwrap().len(), 0);
        drop(e);

        let r = du(std::slice::from_ref(&t), &DuOptions::default());
        assert_eq!(r.error_count, 0, "{fsys:?}: {:?}", r.errors);
        assert!(r.fiemap_available, "{fsys:?}");
        assert_eq!(r.unaddressed, 0, "{fsys:?}");
        assert_eq!(
            r.unique_physical,
            Some(64 * KIB + 256 * KIB + 40 * 4 * KIB + 128 * KIB),
            "{fsys:?}: {r:?}"
        );
        // The same through the dedupe path, which collects the files with their extents.
        let c = du(
            std::slice::from_ref(&t),
            &DuOptions {
                collect_min_size: Some(1),
            },
        );
        let p = c.collected.iter().find(|f| f.path.ends_with("p")).unwrap();
        assert_eq!(
            p.extents.iter().map(|e| e.length).sum::<u64>(),
            64 * KIB + 256 * KIB,
            "{fsys:?}: {:?}",
            p.extents
        );
        let m = c.collected.iter().find(|f| f.path.ends_with("m")).unwrap();
        assert_eq!(m.extents.len(), 40, "{fsys:?}");
    }
}

#[test]
fn du_counts_every_entry_it_visits_and_the_bytes_of_its_files() {
    let Some(dir) = scratch(Fs::Xfs) else { return };
    let t = known_layout(dir.path());
    let p = cowtree_fs::Progress::default();
    let r = cowtree_space::du_with_progress(std::slice::from_ref(&t), &DuOptions::default(), &p);
    assert_eq!(r.error_count, 0, "{:?}", r.errors);
    assert_eq!(
        p.entries(),
        r.files + r.dirs + r.symlinks + r.other + r.hardlinks_skipped
    );
    // t, sub, a, b, c, s, h, l.
    assert_eq!(p.entries(), 8);
    // a, b, c and h (1 MiB each), s (1 MiB hole and 64 KiB).
    assert_eq!(p.bytes(), 5 * MIB + 64 * 1024);
    assert_eq!(p.total(), None, "du cannot know its total");
}
