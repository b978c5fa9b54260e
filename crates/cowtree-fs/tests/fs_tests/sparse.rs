//! A copy keeps a sparse source's holes, as `cp --sparse=auto` (its default) does: every way a
//! file is copied (`copy_fd`, `copy_fd_remembering` on its `copy_file_range` and its
//! read/write path, `copy_fd_unshared`, and `transfer_at` and `place_at`, which fall back to
//! them) gives the destination the source's runs of data and holes (`SEEK_DATA`/`SEEK_HOLE`),
//! its bytes, and no more blocks than `cp` gives it. On the host's filesystem (ext4) and
//! tmpfs, where nothing can clone, and with `Method::Copy` on XFS and btrfs.

use std::ffi::OsStr;
use std::fs::{self, File};
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::Path;
use std::process::Command;

use cowtree_fs::copy::{copy_fd, copy_fd_remembering, copy_fd_unshared};
use cowtree_fs::dir::Dir;
use cowtree_fs::place::{Placed, place_at};
use cowtree_fs::{CopyRange, Method, Transfer, TransferOptions, transfer_at};
use cowtree_testutil::{Fs, pattern, scratch};
use rustix::fs::{SeekFrom, fstat, seek};
use rustix::io::Errno;

const MIB: u64 = 1 << 20;
/// Where the second run of data starts: after 8 KiB of data and a 1 MiB hole.
const SECOND: u64 = 8192 + MIB;
/// The source's size: the second run is 12 KiB, then a 10 MiB hole.
const LEN: u64 = SECOND + 12288 + 10 * MIB;

/// Writes the sparse source at `path` (data at 0, a 1 MiB hole, data, a 10 MiB trailing
/// hole), written back so that its blocks are settled; returns its bytes.
fn sparse_source(path: &Path) -> Vec<u8> {
    let f = File::create(path).unwrap();
    let (a, b) = (pattern(8192, 1), pattern(12288, 2));
    f.write_all_at(&a, 0).unwrap();
    f.write_all_at(&b, SECOND).unwrap();
    f.set_len(LEN).unwrap();
    f.sync_all().unwrap();
    let mut data = vec![0u8; LEN as usize];
    data[..a.len()].copy_from_slice(&a);
    data[SECOND as usize..SECOND as usize + b.len()].copy_from_slice(&b);
    data
}

/// The runs of data of the file at `path` as `SEEK_DATA`/`SEEK_HOLE` give them, and its size.
fn layout(path: &Path) -> (Vec<(u64, u64)>, u64) {
    let f = File::open(path).unwrap();
    let mut runs = Vec::new();
    let mut pos = 0;
    loop {
        let data = match seek(&f, SeekFrom::Data(pos)) {
            Ok(d) => d,
            Err(Errno::NXIO) => break,
            Err(e) => panic!("SEEK_DATA of {}: {e}", path.display()),
        };
        let hole = seek(&f, SeekFrom::Hole(data)).unwrap();
        runs.push((data, hole));
        pos = hole;
    }
    (runs, f.metadata().unwrap().len())
}

fn blocks(path: &Path) -> u64 {
    fs::symlink_metadata(path).unwrap().blocks()
}

/// The blocks `cp --sparse=auto` gives a copy of `src` made in `dir`.
fn cp_blocks(src: &Path, dir: &Path) -> u64 {
    let by_cp = dir.join("by-cp");
    let st = Command::new("cp")
        .arg("--sparse=auto")
        .arg(src)
        .arg(&by_cp)
        .status()
        .unwrap();
    assert!(st.success(), "cp failed");
    let n = blocks(&by_cp);
    fs::remove_file(&by_cp).unwrap();
    n
}

/// `dst` holds `data` with `src`'s runs of data and holes, in no more blocks than `cp`'s copy.
#[track_caller]
fn assert_same_sparse(src: &Path, dst: &Path, data: &[u8], cp: u64, what: &str) {
    assert!(fs::read(dst).unwrap() == data, "{what}: the bytes differ");
    assert_eq!(layout(dst), layout(src), "{what}: runs of data and size");
    let b = blocks(dst);
    assert!(b <= cp, "{what}: {b} blocks where cp gives {cp}");
    assert!(b < LEN / 512, "{what}: {b} blocks, the holes are filled in");
}

#[test]
fn every_copy_keeps_the_holes_of_a_sparse_source_where_nothing_can_clone() {
    for fsys in [Fs::NoCow, Fs::Tmpfs] {
        let Some(t) = scratch(fsys) else { continue };
        let src = t.path().join("src");
        let data = sparse_source(&src);
        assert_eq!(
            layout(&src).0.len(),
            2,
            "{fsys:?}: the source is not sparse"
        );
        let cp = cp_blocks(&src, t.path());
        let at = |name: &str| t.path().join(name);

        let inf = File::open(&src).unwrap();
        let out = File::create(at("copy_fd")).unwrap();
        assert_eq!(copy_fd(&inf, &out).unwrap(), LEN);
        assert_same_sparse(
            &src,
            &at("copy_fd"),
            &data,
            cp,
            &format!("{fsys:?} copy_fd"),
        );

        let inf = File::open(&src).unwrap();
        let out = File::create(at("unshared")).unwrap();
        let st = fstat(&inf).unwrap();
        assert_eq!(copy_fd_unshared(&inf, &st, &out).unwrap(), LEN);
        assert_same_sparse(
            &src,
            &at("unshared"),
            &data,
            cp,
            &format!("{fsys:?} unshared"),
        );

        let d = Dir::open(t.path()).unwrap();
        for method in [Method::CloneOrCopy, Method::Copy] {
            let name = format!("transfer-{method:?}");
            let done = transfer_at(
                &d,
                OsStr::new("src"),
                &d,
                OsStr::new(&name),
                &TransferOptions::new(method),
            )
            .unwrap();
            assert!(
                matches!(done, Transfer::Copied { bytes: LEN, .. }),
                "{fsys:?} {method:?}: {done:?}"
            );
            assert_same_sparse(&src, &at(&name), &data, cp, &format!("{fsys:?} {name}"));

            let name = format!("place-{method:?}");
            let placed = place_at(
                &d,
                OsStr::new("src"),
                &d,
                OsStr::new(&name),
                0o644,
                method,
                &CopyRange::new(),
            )
            .unwrap();
            assert!(
                matches!(placed, Placed::Copied(..)),
                "{fsys:?} {method:?}: {placed:?}"
            );
            assert_same_sparse(&src, &at(&name), &data, cp, &format!("{fsys:?} {name}"));
        }
    }
}

#[test]
fn method_copy_keeps_the_holes_of_a_sparse_source_on_filesystems_that_clone() {
    for fsys in Fs::COW {
        let Some(t) = scratch(fsys) else { continue };
        let src = t.path().join("src");
        let data = sparse_source(&src);
        let cp = cp_blocks(&src, t.path());
        let d = Dir::open(t.path()).unwrap();
        let done = transfer_at(
            &d,
            OsStr::new("src"),
            &d,
            OsStr::new("copy"),
            &TransferOptions::new(Method::Copy),
        )
        .unwrap();
        assert!(
            matches!(done, Transfer::Copied { bytes: LEN, .. }),
            "{fsys:?}: {done:?}"
        );
        File::open(t.path().join("copy"))
            .unwrap()
            .sync_all()
            .unwrap();
        assert_same_sparse(
            &src,
            &t.path().join("copy"),
            &data,
            cp,
            &format!("{fsys:?} Method::Copy"),
        );
    }
}

#[test]
fn the_read_write_path_keeps_holes_too() {
    // From tmpfs to the host's filesystem: copy_file_range refuses a pair of filesystems of
    // two types (EXDEV), and the memo shows that the copy read and wrote.
    let (Some(from), Some(to)) = (scratch(Fs::Tmpfs), scratch(Fs::NoCow)) else {
        return;
    };
    let src = from.path().join("src");
    let data = sparse_source(&src);
    let cp = cp_blocks(&src, to.path());
    let memo = CopyRange::new();
    for name in ["first", "second"] {
        let inf = File::open(&src).unwrap();
        let out = File::create(to.path().join(name)).unwrap();
        let st = fstat(&inf).unwrap();
        assert_eq!(copy_fd_remembering(&inf, &st, &out, &memo).unwrap(), LEN);
        assert!(memo.refused(), "{name}: copy_file_range was not refused");
        assert_same_sparse(&src, &to.path().join(name), &data, cp, name);
    }
}

#[test]
fn a_dense_file_is_copied_whole_as_before() {
    for fsys in [Fs::NoCow, Fs::Tmpfs] {
        let Some(t) = scratch(fsys) else { continue };
        let src = t.path().join("src");
        let data = pattern(300_000, 7);
        fs::write(&src, &data).unwrap();
        File::open(&src).unwrap().sync_all().unwrap();
        let inf = File::open(&src).unwrap();
        assert!(!cowtree_fs::copy::may_have_holes(&fstat(&inf).unwrap()));
        let out = File::create(t.path().join("dst")).unwrap();
        assert_eq!(copy_fd(&inf, &out).unwrap(), data.len() as u64);
        let dst = t.path().join("dst");
        assert!(
            fs::read(&dst).unwrap() == data,
            "{fsys:?}: the bytes differ"
        );
        assert_eq!(
            layout(&dst),
            (vec![(0, data.len() as u64)], data.len() as u64)
        );
    }
}

#[test]
fn a_file_that_is_all_hole_is_copied_as_a_hole_of_its_size() {
    for fsys in [Fs::NoCow, Fs::Tmpfs] {
        let Some(t) = scratch(fsys) else { continue };
        let src = t.path().join("src");
        File::create(&src).unwrap().set_len(5 * MIB).unwrap();
        let inf = File::open(&src).unwrap();
        let out = File::create(t.path().join("dst")).unwrap();
        assert_eq!(copy_fd(&inf, &out).unwrap(), 5 * MIB);
        let dst = t.path().join("dst");
        assert_eq!(layout(&dst), (Vec::new(), 5 * MIB), "{fsys:?}");
        assert_eq!(blocks(&dst), 0, "{fsys:?}");
    }
}

#[test]
fn a_sparse_copy_starts_at_the_current_offset_of_the_source() {
    let Some(t) = scratch(Fs::NoCow) else { return };
    let src = t.path().join("src");
    let data = sparse_source(&src);
    let mut inf = File::open(&src).unwrap();
    std::io::Seek::seek(&mut inf, std::io::SeekFrom::Start(4096)).unwrap();
    let out = File::create(t.path().join("dst")).unwrap();
    assert_eq!(copy_fd(&inf, &out).unwrap(), LEN - 4096);
    let dst = t.path().join("dst");
    assert!(fs::read(&dst).unwrap() == data[4096..], "the bytes differ");
    assert_eq!(
        layout(&dst),
        (
            vec![(0, 4096), (SECOND - 4096, SECOND - 4096 + 12288)],
            LEN - 4096
        )
    );
}
