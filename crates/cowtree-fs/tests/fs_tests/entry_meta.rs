//! A source opened once and cloned through its descriptor (`transfer_at_open`), and the owner,
//! mode and attribute calls on the two kinds of entry handle (`EntryFd`), on real mounts.

use std::ffi::OsStr;
use std::fs;
use std::os::fd::AsFd;
use std::os::unix::fs::{MetadataExt, PermissionsExt};

use cowtree_fs::dir::Dir;
use cowtree_fs::extents::extent_summary;
use cowtree_fs::reflink::OpenSource;
use cowtree_fs::sys::{EntryFd, chmod_entry, open_entry, xattr_get, xattr_list, xattr_set};
use cowtree_fs::{CopyRange, Method, Transfer, TransferOptions, transfer_at_open};
use cowtree_testutil::{Fs, pattern, scratch};

fn set_user_xattr(path: &std::path::Path, name: &str, value: &[u8]) {
    rustix::fs::setxattr(path, name, value, rustix::fs::XattrFlags::empty()).unwrap();
}

#[test]
fn transfer_at_open_clones_through_the_callers_descriptor_and_hands_back_the_new_file_open() {
    for fsys in Fs::COW {
        let Some(t) = scratch(fsys) else { continue };
        let data = pattern(64 << 10, 3);
        fs::write(t.path().join("src"), &data).unwrap();
        fs::set_permissions(t.path().join("src"), fs::Permissions::from_mode(0o640)).unwrap();
        set_user_xattr(&t.path().join("src"), "user.kept", b"yes");
        let d = Dir::open(t.path()).unwrap();
        let src = OpenSource::open(&d, OsStr::new("src")).unwrap().unwrap();
        assert_eq!(src.stat.st_size as usize, data.len(), "{fsys:?}");
        let (done, dst) = clone_src_to_dst(&d, &src);
        assert_eq!(
            done,
            Transfer::Cloned {
                bytes: data.len() as u64
            },
            "{fsys:?}"
        );
        let dst = dst.expect("the new file, still open");
        // Attributes read through the source's descriptor, given through the new file's.
        let names = xattr_list(EntryFd::Open(src.fd.as_fd())).unwrap();
        assert!(
            names.iter().any(|n| n == b"user.kept"),
            "{fsys:?}: {names:?}"
        );
        let value = xattr_get(EntryFd::Open(src.fd.as_fd()), b"user.kept").unwrap();
        assert_eq!(value.as_deref(), Some(&b"yes"[..]), "{fsys:?}");
        xattr_set(EntryFd::Open(dst.as_fd()), b"user.kept", b"yes").unwrap();
        chmod_entry(EntryFd::Open(dst.as_fd()), 0o604).unwrap();
        drop(dst);
        let made = t.path().join("dst");
        assert_eq!(fs::read(&made).unwrap(), data, "{fsys:?}");
        assert_eq!(
            fs::metadata(&made).unwrap().mode() & 0o7777,
            0o604,
            "{fsys:?}"
        );
        let mut got = [0u8; 16];
        let len = rustix::fs::getxattr(&made, "user.kept", &mut got[..]).unwrap();
        assert_eq!(&got[..len], b"yes", "{fsys:?}");
        // The data is shared (FIEMAP), and a write to the clone leaves the source alone.
        let shared = extent_summary(&made).unwrap();
        assert!(shared.shared_extents > 0, "{fsys:?}: {shared:?}");
        fs::write(&made, b"changed").unwrap();
        assert_eq!(fs::read(t.path().join("src")).unwrap(), data, "{fsys:?}");
    }
}

/// `transfer_at_open` of `src` (opened at `src` in `d`) to `dst` in `d`, by clone.
fn clone_src_to_dst(d: &Dir, src: &OpenSource) -> (Transfer, Option<std::os::fd::OwnedFd>) {
    transfer_at_open(
        src,
        (d.as_fd(), OsStr::new("src")),
        (d.as_fd(), OsStr::new("dst")),
        &TransferOptions::new(Method::Clone),
        &CopyRange::new(),
        None,
    )
    .unwrap()
}

#[test]
fn transfer_at_open_hands_back_nothing_where_the_clone_is_unsupported_and_leaves_no_file() {
    let Some(t) = scratch(Fs::Tmpfs) else { return };
    fs::write(t.path().join("src"), b"data").unwrap();
    let d = Dir::open(t.path()).unwrap();
    let src = OpenSource::open(&d, OsStr::new("src")).unwrap().unwrap();
    let (done, dst) = clone_src_to_dst(&d, &src);
    assert!(matches!(done, Transfer::Unsupported(_)), "{done:?}");
    assert!(dst.is_none());
    assert!(fs::symlink_metadata(t.path().join("dst")).is_err());
}

#[test]
fn an_o_path_handle_given_as_open_is_still_reached_through_its_path() {
    let Some(t) = scratch(Fs::Xfs) else { return };
    fs::write(t.path().join("f"), b"data").unwrap();
    set_user_xattr(&t.path().join("f"), "user.a", b"1");
    let d = Dir::open(t.path()).unwrap();
    let handle = open_entry(d.as_fd(), OsStr::new("f")).unwrap();
    for fd in [EntryFd::Path(handle.as_fd()), EntryFd::Open(handle.as_fd())] {
        let names = xattr_list(fd).unwrap();
        assert!(names.iter().any(|n| n == b"user.a"), "{fd:?}: {names:?}");
        assert_eq!(
            xattr_get(fd, b"user.a").unwrap().as_deref(),
            Some(&b"1"[..])
        );
        xattr_set(fd, b"user.b", b"2").unwrap();
        chmod_entry(fd, 0o600).unwrap();
        assert_eq!(
            fs::metadata(t.path().join("f")).unwrap().mode() & 0o7777,
            0o600
        );
        chmod_entry(fd, 0o644).unwrap();
    }
}
