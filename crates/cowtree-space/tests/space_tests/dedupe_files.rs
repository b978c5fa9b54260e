//! `dedupe` on real mounts: space comes back, nothing about any file changes.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::Write;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use cowtree_fs::extents::extent_summary;
use cowtree_space::{DedupeError, DedupeOptions, DuOptions, dedupe, du};
use cowtree_testutil::{Fs, pattern, scratch};

fn write_file(path: &Path, data: &[u8], mode: u32, mtime_secs: u64) {
    let mut f = File::create(path).unwrap();
    f.write_all(data).unwrap();
    f.sync_all().unwrap();
    f.set_modified(SystemTime::UNIX_EPOCH + Duration::new(mtime_secs, 123_456_789))
        .unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

/// Everything dedupe promises not to change, per path.
#[derive(Debug, PartialEq, Eq)]
struct Facts {
    content: Vec<u8>,
    ino: u64,
    mode: u32,
    mtime: (i64, i64),
}

fn facts(root: &Path) -> BTreeMap<PathBuf, Facts> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            let m = fs::symlink_metadata(&p).unwrap();
            if m.is_dir() {
                stack.push(p);
            } else {
                out.insert(
                    p.clone(),
                    Facts {
                        content: fs::read(&p).unwrap(),
                        ino: m.ino(),
                        mode: m.mode(),
                        mtime: (m.mtime(), m.mtime_nsec()),
                    },
                );
            }
        }
    }
    out
}

const SIZES: [usize; 3] = [64 * 1024, (1 << 20) + 123, 5 << 20];

/// Three plain copies (c0, c1, c2) of: three files of different sizes and modes, a file below
/// min_size, and a hardlink; plus one file unique to c2.
fn three_copies(root: &Path) -> Vec<PathBuf> {
    let mut roots = vec![];
    for k in 0..3 {
        let c = root.join(format!("c{k}"));
        fs::create_dir_all(c.join("sub")).unwrap();
        for (i, &len) in SIZES.iter().enumerate() {
            let mode = if i == 1 { 0o755 } else { 0o640 };
            write_file(
                &c.join(format!("sub/f{i}")),
                &pattern(len, i as u64),
                mode,
                1_000_000 + k * 10 + i as u64,
            );
        }
        write_file(&c.join("tiny"), &pattern(100, 9), 0o644, 5);
        fs::hard_link(c.join("sub/f0"), c.join("f0-link")).unwrap();
        roots.push(c);
    }
    write_file(&root.join("c2/unique"), &pattern(300_000, 77), 0o600, 7);
    roots
}

fn opts() -> DedupeOptions<'static> {
    DedupeOptions::default()
}

#[test]
fn dedupe_reclaims_space_and_leaves_every_file_identical_with_same_inode_mode_and_mtime() {
    for fsys in Fs::COW {
        let Some(dir) = scratch(fsys) else { continue };
        let roots = three_copies(dir.path());
        let before = facts(dir.path());
        let data: u64 = SIZES.iter().map(|&s| s as u64).sum();

        let report = dedupe(&roots, &opts()).unwrap();
        assert!(report.skipped.is_empty(), "{fsys:?}: {:?}", report.skipped);
        assert_eq!(report.groups, 3, "{fsys:?}: {report:?}");
        // Per group one source and two deduplicated; the hardlink is one inode, not a copy.
        assert_eq!(report.files_deduped, 6, "{fsys:?}: {report:?}");
        assert_eq!(report.bytes_deduped, 2 * data, "{fsys:?}");
        let reclaimed = report.reclaimed.unwrap() as u64;
        // Two of three copies' data, give or take the partial EOF block.
        assert!(
            reclaimed >= 2 * data - 64 * 1024 && reclaimed <= 2 * data + 64 * 1024,
            "{fsys:?}: reclaimed {reclaimed}, expected about {}",
            2 * data
        );
        assert_eq!(
            report.unique_physical_before.unwrap() - report.unique_physical_after.unwrap(),
            reclaimed
        );
        assert_eq!(facts(dir.path()), before, "{fsys:?}: a file changed");
        for r in &roots {
            for i in 0..SIZES.len() {
                let s = extent_summary(&r.join(format!("sub/f{i}"))).unwrap();
                assert!(s.fully_shared(), "{fsys:?}: {}: {s:?}", r.display());
            }
            let tiny = extent_summary(&r.join("tiny")).unwrap();
            assert_eq!(tiny.shared_extents, 0, "{fsys:?}: below min_size");
        }
        // du agrees: one copy of the data plus the unique file and the tiny ones.
        let after = du(&roots, &DuOptions::default());
        assert_eq!(after.unique_physical, report.unique_physical_after);

        // A second run finds everything already shared and redoes nothing.
        let again = dedupe(&roots, &opts()).unwrap();
        assert_eq!(again.files_deduped, 0, "{fsys:?}: {again:?}");
        assert_eq!(again.already_shared_files, 6, "{fsys:?}: {again:?}");
        assert_eq!(again.reclaimed, Some(0));
        assert_eq!(facts(dir.path()), before);

        // Writing a deduplicated file leaves its former twins alone.
        fs::write(roots[1].join("sub/f0"), b"changed").unwrap();
        assert_eq!(
            fs::read(roots[0].join("sub/f0")).unwrap(),
            pattern(SIZES[0], 0)
        );
        assert_eq!(
            fs::read(roots[2].join("sub/f0")).unwrap(),
            pattern(SIZES[0], 0)
        );
    }
}

#[test]
fn dedupe_dry_run_reports_what_it_would_do_and_changes_nothing() {
    for fsys in Fs::COW {
        let Some(dir) = scratch(fsys) else { continue };
        let roots = three_copies(dir.path());
        let before = facts(dir.path());
        let du_before = du(&roots, &DuOptions::default()).unique_physical;
        let report = dedupe(
            &roots,
            &DedupeOptions {
                dry_run: true,
                ..opts()
            },
        )
        .unwrap();
        assert!(report.dry_run);
        assert_eq!(report.files_deduped, 6, "{fsys:?}: {report:?}");
        assert_eq!(report.reclaimed, Some(0));
        assert_eq!(du(&roots, &DuOptions::default()).unique_physical, du_before);
        assert_eq!(facts(dir.path()), before);
        let s = extent_summary(&roots[1].join("sub/f2")).unwrap();
        assert_eq!(s.shared_extents, 0, "{fsys:?}: dry run shared data");
    }
}

#[test]
fn a_file_modified_between_hashing_and_dedupe_is_skipped_and_left_as_written() {
    for fsys in Fs::COW {
        let Some(dir) = scratch(fsys) else { continue };
        let len = 3 << 20;
        let names = ["a", "b", "c"];
        for n in names {
            write_file(&dir.path().join(n), &pattern(len, 5), 0o644, 42);
        }
        let victim = dir.path().join("c");
        let mut changed = pattern(len, 5);
        changed[len - 10] ^= 0x55;
        let hook = || {
            // Same size, one byte different near the end: the hash said "equal", the kernel's
            // comparison must say otherwise.
            use std::os::unix::fs::FileExt;
            let f = fs::OpenOptions::new().write(true).open(&victim).unwrap();
            f.write_all_at(&changed[len - 10..len - 9], (len - 10) as u64)
                .unwrap();
            f.sync_all().unwrap();
        };
        let report = dedupe(
            &[dir.path().to_path_buf()],
            &DedupeOptions {
                after_hash: Some(&hook),
                ..opts()
            },
        )
        .unwrap();
        assert_eq!(report.groups, 1, "{fsys:?}: {report:?}");
        assert_eq!(report.files_deduped, 1, "{fsys:?}: {report:?}");
        assert_eq!(report.skipped.len(), 1, "{fsys:?}: {report:?}");
        assert_eq!(report.skipped[0].path, victim);
        assert!(
            report.skipped[0].reason.contains("differ"),
            "{}",
            report.skipped[0].reason
        );
        assert_eq!(fs::read(&victim).unwrap(), changed, "{fsys:?}");
        assert_eq!(
            fs::read(dir.path().join("a")).unwrap(),
            pattern(len, 5),
            "{fsys:?}"
        );
        assert!(
            extent_summary(&dir.path().join("b"))
                .unwrap()
                .fully_shared()
        );
        let c = extent_summary(&victim).unwrap();
        assert!(!c.fully_shared(), "{fsys:?}: {c:?}");
    }
}

#[test]
fn dedupe_on_filesystems_without_sharing_says_it_cannot_and_changes_nothing() {
    for fsys in Fs::NO_COW {
        let Some(dir) = scratch(fsys) else { continue };
        let roots = three_copies(dir.path());
        let before = facts(dir.path());
        let err = dedupe(&roots, &opts()).unwrap_err();
        assert!(
            matches!(err, DedupeError::Unsupported { .. }),
            "{fsys:?}: {err}"
        );
        let msg = err.to_string();
        assert!(
            msg.contains("cannot share data") && msg.contains("nothing was changed"),
            "{msg}"
        );
        assert_eq!(facts(dir.path()), before);
    }
}

#[test]
fn dedupe_refuses_paths_on_different_filesystems() {
    let (Some(a), Some(b)) = (scratch(Fs::Xfs), scratch(Fs::Xfs2)) else {
        return;
    };
    write_file(&a.path().join("f"), &pattern(100_000, 1), 0o644, 1);
    write_file(&a.path().join("g"), &pattern(100_000, 1), 0o644, 1);
    write_file(&b.path().join("f"), &pattern(100_000, 1), 0o644, 1);
    let (fa, fb) = (facts(a.path()), facts(b.path()));
    let err = dedupe(&[a.path().to_path_buf(), b.path().to_path_buf()], &opts()).unwrap_err();
    assert!(matches!(err, DedupeError::CrossDevice { .. }), "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains(&*a.path().to_string_lossy()) && msg.contains(&*b.path().to_string_lossy()),
        "{msg}"
    );
    assert_eq!(facts(a.path()), fa);
    assert_eq!(facts(b.path()), fb);
    assert_eq!(
        extent_summary(&a.path().join("g")).unwrap().shared_extents,
        0
    );
}

#[test]
fn dedupe_prefers_the_file_already_shared_with_a_clone_outside_the_paths() {
    let Some(dir) = scratch(Fs::Xfs) else { return };
    let len = 1 << 20;
    // "a" is a plain copy; "z" is the original, cloned to "outside/zc". Deduplicating a and z
    // frees space only if a is pointed at z's blocks (zc keeps them alive anyway).
    fs::create_dir(dir.path().join("in")).unwrap();
    fs::create_dir(dir.path().join("outside")).unwrap();
    write_file(&dir.path().join("in/a"), &pattern(len, 8), 0o644, 1);
    write_file(&dir.path().join("in/z"), &pattern(len, 8), 0o644, 1);
    cowtree_fs::try_reflink(&dir.path().join("in/z"), &dir.path().join("outside/zc")).unwrap();
    let all = [dir.path().to_path_buf()];
    let before = du(&all, &DuOptions::default()).unique_physical.unwrap();
    let report = dedupe(&[dir.path().join("in")], &opts()).unwrap();
    assert_eq!(report.files_deduped, 1, "{report:?}");
    let after = du(&all, &DuOptions::default()).unique_physical.unwrap();
    assert_eq!(before - after, len as u64);
}
