//! A copy is a copy: `Method::Copy` (of `transfer_at` and `place_at`) and `copy_fd_unshared`
//! give the destination data blocks of its own on XFS and btrfs, where `copy_file_range`
//! shares extents inside the kernel. Checked with FIEMAP's shared flag on real mounts (run
//! through scripts/test.sh, which mounts them).

use std::ffi::OsStr;
use std::fs;
use std::path::Path;

use cowtree_fs::dir::Dir;
use cowtree_fs::extents::extent_summary;
use cowtree_fs::place::{Placed, place_at};
use cowtree_fs::{CopyRange, Method, Transfer, TransferOptions, transfer_at};
use cowtree_testutil::{Fs, pattern, scratch};
use rustix::fs::fstat;

const SIZE: usize = 4 << 20;

/// A 4 MiB file at `path`, written back so that FIEMAP shows its real extents.
fn source(path: &Path) -> Vec<u8> {
    let data = pattern(SIZE, 9);
    fs::write(path, &data).unwrap();
    fs::File::open(path).unwrap().sync_all().unwrap();
    data
}

/// `dst` holds `data` in extents shared with nothing, and `src` is still unshared.
#[track_caller]
fn assert_own_blocks(src: &Path, dst: &Path, data: &[u8], what: &str) {
    assert_eq!(fs::read(dst).unwrap(), data, "{what}: content");
    let d = extent_summary(dst).unwrap();
    assert!(d.extents > 0, "{what}: no extents");
    assert_eq!(d.shared_extents, 0, "{what}: the copy shares {d:?}");
    assert_eq!(
        extent_summary(src).unwrap().shared_extents,
        0,
        "{what}: the source shares"
    );
}

#[test]
fn method_copy_gives_the_destination_blocks_of_its_own_where_copy_file_range_shares() {
    for fsys in Fs::COW {
        let Some(t) = scratch(fsys) else { continue };
        let src = t.path().join("src");
        let data = source(&src);
        let d = Dir::open(t.path()).unwrap();

        // The control: copy_file_range, which Method::Copy no longer uses, shares here (were it
        // not to, this test could not tell a copy from a clone). From a file of its own: XFS
        // frees the shared extents of a removed file in the background, so `src` could still
        // show them shared for a while.
        {
            let control = t.path().join("control");
            source(&control);
            let inf = fs::File::open(&control).unwrap();
            let out = fs::File::create(t.path().join("by-range")).unwrap();
            cowtree_fs::copy::copy_fd(&inf, &out).unwrap();
            out.sync_all().unwrap();
            let s = extent_summary(&t.path().join("by-range")).unwrap();
            assert!(
                s.shared_extents > 0,
                "{fsys:?}: copy_file_range did not share: {s:?}"
            );
            fs::remove_file(t.path().join("by-range")).unwrap();
            fs::remove_file(&control).unwrap();
        }

        let t1 = transfer_at(
            &d,
            OsStr::new("src"),
            &d,
            OsStr::new("transferred"),
            &TransferOptions::new(Method::Copy),
        )
        .unwrap();
        assert!(
            matches!(t1, Transfer::Copied { bytes, because: None } if bytes == SIZE as u64),
            "{t1:?}"
        );
        let dst = t.path().join("transferred");
        assert_own_blocks(&src, &dst, &data, &format!("{fsys:?} transfer_at"));

        let placed = place_at(
            &d,
            OsStr::new("src"),
            &d,
            OsStr::new("placed"),
            0o644,
            Method::Copy,
            &CopyRange::new(),
        )
        .unwrap();
        assert!(matches!(placed, Placed::Copied(_, None)), "{placed:?}");
        assert_own_blocks(
            &src,
            &t.path().join("placed"),
            &data,
            &format!("{fsys:?} place_at"),
        );

        let inf = fs::File::open(&src).unwrap();
        let out = fs::File::create(t.path().join("unshared")).unwrap();
        assert_eq!(
            cowtree_fs::copy::copy_fd_unshared(&inf, &fstat(&inf).unwrap(), &out).unwrap(),
            SIZE as u64
        );
        assert_own_blocks(
            &src,
            &t.path().join("unshared"),
            &data,
            &format!("{fsys:?} fd"),
        );

        // A write to the copy leaves the source as it was.
        fs::write(&dst, b"changed").unwrap();
        assert_eq!(fs::read(&src).unwrap(), data);
    }
}

#[test]
fn copy_fd_unshared_copies_from_the_current_offset_on_a_filesystem_without_fiemap() {
    let Some(t) = scratch(Fs::Tmpfs) else { return };
    let src = t.path().join("src");
    let data = pattern(300_000, 4);
    fs::write(&src, &data).unwrap();
    let mut inf = fs::File::open(&src).unwrap();
    std::io::Seek::seek(&mut inf, std::io::SeekFrom::Start(1000)).unwrap();
    let out = fs::File::create(t.path().join("dst")).unwrap();
    assert_eq!(
        cowtree_fs::copy::copy_fd_unshared(&inf, &fstat(&inf).unwrap(), &out).unwrap(),
        (data.len() - 1000) as u64
    );
    assert_eq!(fs::read(t.path().join("dst")).unwrap(), &data[1000..]);
}
