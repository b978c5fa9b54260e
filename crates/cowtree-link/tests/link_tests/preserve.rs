//! `LinkOptions::preserve`: hardlinks inside the source kept as hardlinks by parallel workers,
//! never linked to what a merged destination had, and special files made again.

use std::collections::HashMap;
use std::error::Error;
use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::Path;

use cowtree_link::{LinkOptions, Linker, OnExisting, Preserve};
use cowtree_testutil::{Fs, scratch};

type Res = Result<(), Box<dyn Error>>;

fn ino(p: &Path) -> std::io::Result<u64> {
    fs::symlink_metadata(p).map(|m| m.ino())
}

fn links() -> Preserve {
    Preserve {
        links: true,
        ..Preserve::default()
    }
}

/// `groups` files with three names each, in three different directories of 20, next to
/// files with one name.
fn linked_tree(src: &Path, groups: usize) -> Res {
    for d in 0..20 {
        fs::create_dir_all(src.join(format!("d{d}")))?;
    }
    for g in 0..groups {
        let first = src.join(format!("d{}/g{g}-a", g % 20));
        fs::write(&first, format!("group {g}"))?;
        fs::hard_link(&first, src.join(format!("d{}/g{g}-b", (g + 7) % 20)))?;
        fs::hard_link(&first, src.join(format!("d{}/g{g}-c", (g + 13) % 20)))?;
        fs::write(
            src.join(format!("d{}/single{g}", g % 20)),
            format!("single {g}"),
        )?;
    }
    Ok(())
}

#[test]
fn hardlinked_names_made_by_parallel_workers_stay_one_file_each() -> Res {
    for fsys in [Fs::Xfs, Fs::NoCow] {
        let Some(dir) = scratch(fsys) else { continue };
        let (src, dst) = (dir.path().join("src"), dir.path().join("dst"));
        let groups = 300;
        linked_tree(&src, groups)?;
        let report = Linker::new(LinkOptions {
            preserve: links(),
            jobs: 4,
            ..LinkOptions::default()
        })
        .link_tree(&src, &dst)?;
        assert_eq!(report.hardlinks, 2 * groups as u64, "{fsys:?}: {report:?}");
        assert_eq!(
            report.files,
            2 * groups as u64,
            "{fsys:?}: one per group, and singles"
        );
        let mut seen: HashMap<u64, usize> = HashMap::new();
        for g in 0..groups {
            let name = |suffix: &str, d: usize| dst.join(format!("d{}/g{g}-{suffix}", d % 20));
            let a = ino(&name("a", g))?;
            assert_eq!(ino(&name("b", g + 7))?, a, "{fsys:?}: group {g}");
            assert_eq!(ino(&name("c", g + 13))?, a, "{fsys:?}: group {g}");
            assert_ne!(
                a,
                ino(&src.join(format!("d{}/g{g}-a", g % 20)))?,
                "{fsys:?}"
            );
            assert_eq!(
                fs::metadata(name("a", g))?.nlink(),
                3,
                "{fsys:?}: group {g}"
            );
            assert_eq!(fs::read_to_string(name("c", g + 13))?, format!("group {g}"));
            assert!(
                seen.insert(a, g).is_none(),
                "{fsys:?}: groups {g} share an inode"
            );
        }
        // Without `links`, every name is a file of its own, as before.
        let plain = dir.path().join("plain");
        let r = Linker::new(LinkOptions::default()).link_tree(&src, &plain)?;
        assert_eq!(r.hardlinks, 0);
        assert_ne!(ino(&plain.join("d0/g0-a"))?, ino(&plain.join("d7/g0-b"))?);
    }
    Ok(())
}

#[test]
fn a_merge_never_links_a_name_to_an_entry_that_was_already_there() -> Res {
    let Some(dir) = scratch(Fs::Xfs) else {
        return Ok(());
    };
    let (src, dst) = (dir.path().join("src"), dir.path().join("dst"));
    linked_tree(&src, 3)?;
    // DST has its own file where group 0's first name goes, kept by Skip.
    fs::create_dir_all(dst.join("d0"))?;
    fs::write(dst.join("d0/g0-a"), b"was there")?;
    let theirs = ino(&dst.join("d0/g0-a"))?;
    let report = Linker::new(LinkOptions {
        preserve: links(),
        on_existing: OnExisting::Skip,
        ..LinkOptions::default()
    })
    .link_tree(&src, &dst)?;
    assert_eq!(ino(&dst.join("d0/g0-a"))?, theirs);
    assert_eq!(fs::read(dst.join("d0/g0-a"))?, b"was there");
    let b = ino(&dst.join("d7/g0-b"))?;
    assert_ne!(b, theirs, "a later name is never linked to what DST had");
    assert_eq!(
        ino(&dst.join("d13/g0-c"))?,
        b,
        "the other names keep their link"
    );
    assert_eq!(fs::read_to_string(dst.join("d7/g0-b"))?, "group 0");
    assert_eq!(report.hardlinks, 5, "{report:?}");
    Ok(())
}

#[test]
fn special_files_are_made_again_with_their_mode() -> Res {
    let Some(dir) = scratch(Fs::Xfs) else {
        return Ok(());
    };
    let (src, dst) = (dir.path().join("src"), dir.path().join("dst"));
    fs::create_dir(&src)?;
    let fifo = src.join("fifo");
    rustix::fs::mknodat(
        rustix::fs::CWD,
        &fifo,
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o600),
        0,
    )
    .map_err(std::io::Error::from)?;
    fs::set_permissions(&fifo, fs::Permissions::from_mode(0o604))?;
    let _socket = std::os::unix::net::UnixListener::bind(src.join("sock"))?;
    fs::write(src.join("f"), b"a file")?;
    // A device node (as root: only root may make one), /dev/null's numbers.
    let root = rustix::process::geteuid().is_root();
    let null = rustix::fs::makedev(1, 3);
    if root {
        rustix::fs::mknodat(
            rustix::fs::CWD,
            src.join("null"),
            rustix::fs::FileType::CharacterDevice,
            rustix::fs::Mode::from_raw_mode(0o620),
            null,
        )
        .map_err(std::io::Error::from)?;
        fs::set_permissions(src.join("null"), fs::Permissions::from_mode(0o620))?;
    }
    let report = Linker::new(LinkOptions {
        preserve: Preserve {
            special: true,
            ..Preserve::default()
        },
        ..LinkOptions::default()
    })
    .link_tree(&src, &dst)?;
    let made = if root { 3 } else { 2 };
    assert_eq!(
        (report.special_made, report.special),
        (made, 0),
        "{report:?}"
    );
    if root {
        let dev = fs::symlink_metadata(dst.join("null"))?;
        assert!(dev.file_type().is_char_device());
        assert_eq!((dev.rdev(), dev.mode() & 0o7777), (null, 0o620));
    }
    let f = fs::symlink_metadata(dst.join("fifo"))?;
    assert!(f.file_type().is_fifo());
    assert_eq!(f.mode() & 0o7777, 0o604);
    assert!(
        fs::symlink_metadata(dst.join("sock"))?
            .file_type()
            .is_socket()
    );
    // Without it they are refused, as before.
    let refused = Linker::new(LinkOptions::default()).link_tree(&src, &dir.path().join("no"));
    assert!(refused.is_err());
    Ok(())
}

/// The extended attributes of `path` itself (never followed), sorted, with their values.
fn own_xattrs(path: &Path) -> std::io::Result<Vec<(String, Vec<u8>)>> {
    let mut list = vec![0u8; 64 << 10];
    let n = rustix::fs::llistxattr(path, &mut list[..])?;
    let mut out = Vec::new();
    for name in list[..n].split(|&b| b == 0).filter(|n| !n.is_empty()) {
        let mut value = vec![0u8; 64 << 10];
        let len = rustix::fs::lgetxattr(path, name, &mut value[..])?;
        value.truncate(len);
        out.push((String::from_utf8_lossy(name).into_owned(), value));
    }
    out.sort();
    Ok(out)
}

#[test]
fn a_symlink_keeps_its_own_attributes_and_its_target_keeps_its_own() -> Res {
    if !rustix::process::geteuid().is_root() {
        cowtree_testutil::skip("not root: trusted.* attributes need root");
        return Ok(());
    }
    for fsys in [Fs::Xfs, Fs::Btrfs, Fs::NoCow] {
        let Some(dir) = scratch(fsys) else { continue };
        let (src, dst) = (dir.path().join("src"), dir.path().join("dst"));
        fs::create_dir(&src)?;
        // The target has attributes of its own; the link's are others.
        fs::write(src.join("f"), b"the target")?;
        let flags = rustix::fs::XattrFlags::empty();
        rustix::fs::setxattr(src.join("f"), "user.file", b"u", flags)?;
        rustix::fs::setxattr(src.join("f"), "trusted.file", b"t", flags)?;
        std::os::unix::fs::symlink("f", src.join("l"))?;
        rustix::fs::lsetxattr(src.join("l"), "trusted.test", b"1", flags)?;
        // A symlink to a file with attributes, with none of its own.
        std::os::unix::fs::symlink("f", src.join("bare"))?;
        fs::create_dir(&dst)?;
        let xattr = Preserve {
            xattr: true,
            ..Preserve::default()
        };
        for (preserve, name) in [(xattr, "xattr"), (Preserve::ALL, "all")] {
            let out = dst.join(name);
            let report = Linker::new(LinkOptions {
                preserve,
                ..LinkOptions::default()
            })
            .link_tree(&src, &out)?;
            let what = format!("{fsys:?} {name}");
            assert_eq!(report.not_kept.xattr, 0, "{what}: {report:?}");
            assert_eq!(report.symlinks, 2, "{what}");
            assert_eq!(
                own_xattrs(&out.join("l"))?,
                own_xattrs(&src.join("l"))?,
                "{what}: the link's own"
            );
            assert_eq!(
                own_xattrs(&out.join("l"))?,
                vec![("trusted.test".to_string(), b"1".to_vec())],
                "{what}"
            );
            assert!(
                own_xattrs(&out.join("bare"))?.is_empty(),
                "{what}: followed"
            );
            assert_eq!(
                own_xattrs(&out.join("f"))?,
                own_xattrs(&src.join("f"))?,
                "{what}: the target's"
            );
            assert!(
                own_xattrs(&out.join("f"))?
                    .iter()
                    .all(|(n, _)| n != "trusted.test"),
                "{what}"
            );
        }
        // Without xattr: none on the link.
        let out = dst.join("none");
        Linker::new(LinkOptions {
            preserve: Preserve {
                ownership: true,
                ..Preserve::default()
            },
            ..LinkOptions::default()
        })
        .link_tree(&src, &out)?;
        assert!(own_xattrs(&out.join("l"))?.is_empty(), "{fsys:?} none");
    }
    Ok(())
}
