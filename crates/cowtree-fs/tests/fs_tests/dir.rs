//! Directory-relative operations refuse symlinks and escapes.

use std::ffi::OsStr;
use std::fs;
use std::io;
use std::os::unix::fs::symlink;
use std::path::Path;

use cowtree_fs::dir::Dir;
use cowtree_testutil::{Fs, scratch};

#[test]
fn open_dir_refuses_a_symlink_to_a_directory() {
    let Some(t) = scratch(Fs::NoCow) else { return };
    fs::create_dir(t.path().join("real")).unwrap();
    symlink(t.path().join("real"), t.path().join("link")).unwrap();
    let root = Dir::open(t.path()).unwrap();
    assert!(root.open_dir(OsStr::new("real")).is_ok());
    let err = root.open_dir(OsStr::new("link")).unwrap_err();
    assert!(err.to_string().contains("link"), "{err}");
    assert!(root.open_dir(OsStr::new("..")).is_err());
    assert!(root.open_dir(OsStr::new("a/b")).is_err());
}

#[test]
fn open_dir_beneath_refuses_symlinks_and_parent_components() {
    let Some(t) = scratch(Fs::NoCow) else { return };
    fs::create_dir_all(t.path().join("a/b/c")).unwrap();
    symlink("/", t.path().join("a/escape")).unwrap();
    symlink("b", t.path().join("a/inner")).unwrap();
    let root = Dir::open(t.path()).unwrap();
    assert!(root.open_dir_beneath(Path::new("a/b/c")).is_ok());
    for bad in [
        "a/escape",
        "a/escape/tmp",
        "a/inner/c",
        "a/../a",
        "/a",
        "a//b",
        "",
    ] {
        assert!(
            root.open_dir_beneath(Path::new(bad)).is_err(),
            "{bad} was opened"
        );
    }
}

#[test]
fn remove_tree_removes_everything_and_never_follows_symlinks() {
    let Some(t) = scratch(Fs::NoCow) else { return };
    let outside = t.path().join("outside");
    fs::create_dir(&outside).unwrap();
    fs::write(outside.join("keep"), b"keep").unwrap();
    let victim = t.path().join("victim");
    fs::create_dir_all(victim.join("x/y")).unwrap();
    fs::write(victim.join("x/y/f"), b"f").unwrap();
    symlink(&outside, victim.join("x/to-outside")).unwrap();
    // A read-only directory inside must not stop removal.
    fs::create_dir(victim.join("ro")).unwrap();
    fs::write(victim.join("ro/f"), b"f").unwrap();
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(victim.join("ro"), fs::Permissions::from_mode(0o555)).unwrap();

    let root = Dir::open(t.path()).unwrap();
    root.remove_tree(OsStr::new("victim")).unwrap();
    assert!(!victim.exists());
    assert_eq!(fs::read(outside.join("keep")).unwrap(), b"keep");
    // Nothing there is fine.
    root.remove_tree(OsStr::new("victim")).unwrap();
}

#[test]
fn deep_tree_removal_does_not_overflow_the_stack() {
    let Some(t) = scratch(Fs::NoCow) else { return };
    let root = Dir::open(t.path()).unwrap();
    let mut d = root.create_dir_open(OsStr::new("deep"), 0o755).unwrap();
    for _ in 0..3000 {
        d = d.create_dir_open(OsStr::new("d"), 0o755).unwrap();
    }
    root.remove_tree(OsStr::new("deep")).unwrap();
    assert!(root.try_stat(OsStr::new("deep")).unwrap().is_none());
}

#[test]
fn read_entries_lists_what_entries_lists_also_past_one_buffer_and_twice() {
    let Some(t) = scratch(Fs::Xfs) else { return };
    // Long names, so that the listing takes several getdents64 calls.
    let mut want = Vec::new();
    for i in 0..600 {
        let name = format!("{i:04}-{}", "n".repeat(200));
        fs::write(t.path().join(&name), b"x").unwrap();
        want.push((name, false));
    }
    fs::create_dir(t.path().join("sub")).unwrap();
    want.push(("sub".to_string(), true));
    symlink("sub", t.path().join("link")).unwrap();
    want.push(("link".to_string(), false));
    want.sort();
    let mut root = Dir::open(t.path()).unwrap();
    let listed = |v: Vec<cowtree_fs::dir::DirEntry>| {
        let mut v: Vec<(String, bool)> = v
            .into_iter()
            .map(|e| {
                let is_dir = e.file_type == rustix::fs::FileType::Directory;
                (e.name.into_string().unwrap(), is_dir)
            })
            .collect();
        v.sort();
        v
    };
    assert_eq!(listed(root.read_entries().unwrap()), want);
    // The offset is rewound: a second read lists everything again.
    assert_eq!(listed(root.read_entries().unwrap()), want);
    assert_eq!(listed(root.entries().unwrap()), want);
    let mut empty = root.open_dir(OsStr::new("sub")).unwrap();
    assert!(empty.read_entries().unwrap().is_empty());
}

#[test]
fn rename_noreplace_refuses_an_existing_target() {
    let Some(t) = scratch(Fs::NoCow) else { return };
    fs::write(t.path().join("a"), b"a").unwrap();
    fs::write(t.path().join("b"), b"b").unwrap();
    let root = Dir::open(t.path()).unwrap();
    let err = root
        .rename_noreplace(OsStr::new("a"), &root, OsStr::new("b"))
        .unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::AlreadyExists);
    assert_eq!(fs::read(t.path().join("b")).unwrap(), b"b");
}

#[test]
fn open_dir_deep_walks_past_path_max_and_still_refuses_symlinks_and_escapes() {
    let Some(t) = scratch(Fs::Xfs) else { return };
    let root = Dir::open(t.path()).unwrap();
    let depth = 3000; // "a/" * 3000: 5999 bytes, over PATH_MAX
    let mut d = root.try_clone().unwrap();
    for level in 0..depth {
        if level == 2500 {
            d.create_dir(OsStr::new("b"), 0o755).unwrap();
            d.symlink(OsStr::new("b"), OsStr::new("s")).unwrap();
        }
        d = d.create_dir_open(OsStr::new("a"), 0o755).unwrap();
    }
    d.create_dir(OsStr::new("bottom"), 0o755).unwrap();
    let mut rel = vec!["a"; depth].join("/");
    rel.push_str("/bottom");
    let deepest = root.open_dir_deep(Path::new(&rel)).unwrap();
    assert!(deepest.entries().unwrap().is_empty());
    // open_dir_beneath alone refuses the long path.
    assert!(root.open_dir_beneath(Path::new(&rel)).is_err());
    // A symlink past the first PATH_MAX-sized piece is refused, not followed.
    let mut through_link = vec!["a"; 2500].join("/");
    through_link.push_str("/s");
    through_link.push_str(&"/x".repeat(1000));
    let err = root.open_dir_deep(Path::new(&through_link)).unwrap_err();
    assert!(err.to_string().contains("symlink"), "{err}");
    let mut up = vec!["a"; 2100].join("/");
    up.push_str(&"/..".repeat(2101));
    up.push_str("/x");
    assert_eq!(
        root.open_dir_deep(Path::new(&up)).unwrap_err().kind(),
        io::ErrorKind::InvalidInput
    );
    root.remove_tree(OsStr::new("a")).unwrap();
}

#[test]
fn write_atomic_replaces_a_planted_symlink_instead_of_writing_through_it() {
    use std::os::unix::fs::PermissionsExt;
    let Some(t) = scratch(Fs::NoCow) else { return };
    let outside = t.path().join("outside");
    fs::write(&outside, b"keep").unwrap();
    let d = t.path().join("d");
    fs::create_dir(&d).unwrap();
    symlink(&outside, d.join("record")).unwrap();
    let dir = Dir::open(&d).unwrap();
    cowtree_fs::atomic_file::write_atomic(&dir, OsStr::new("record"), b"new", 0o640, true).unwrap();
    assert_eq!(fs::read(&outside).unwrap(), b"keep");
    let meta = fs::symlink_metadata(d.join("record")).unwrap();
    assert!(meta.is_file());
    assert_eq!(meta.permissions().mode() & 0o777, 0o640);
    assert_eq!(fs::read(d.join("record")).unwrap(), b"new");
    // No temporary file is left, and an invalid name is refused before any syscall.
    assert_eq!(fs::read_dir(&d).unwrap().count(), 1);
    assert!(
        cowtree_fs::atomic_file::write_atomic(&dir, OsStr::new("../x"), b"x", 0o644, false)
            .is_err()
    );
    assert!(!t.path().join("x").exists());
}

#[test]
fn read_entries_lists_what_entries_lists_in_one_pass_of_the_handle() {
    use rustix::fs::FileType;
    for fsys in [Fs::Xfs, Fs::Btrfs, Fs::Tmpfs] {
        let Some(t) = scratch(fsys) else { continue };
        // 600 names of 200 bytes: more than one getdents64 buffer.
        let name = |i: usize| format!("{i:0>200}");
        for i in 0..300 {
            fs::write(t.path().join(name(i)), b"x").unwrap();
        }
        for i in 300..600 {
            fs::create_dir(t.path().join(name(i))).unwrap();
        }
        symlink("nowhere", t.path().join("link")).unwrap();
        let expected = |name: &str| match name.parse::<usize>() {
            Ok(i) if i < 300 => FileType::RegularFile,
            Ok(_) => FileType::Directory,
            Err(_) => FileType::Symlink,
        };
        let listing = |entries: Vec<cowtree_fs::dir::DirEntry>| {
            let mut v: Vec<(String, FileType)> = entries
                .into_iter()
                .map(|e| (e.name.into_string().unwrap(), e.file_type))
                .collect();
            v.sort_by(|a, b| a.0.cmp(&b.0));
            v
        };
        let mut d = Dir::open(t.path()).unwrap();
        let by_entries = listing(d.entries().unwrap());
        let by_read = listing(d.read_entries().unwrap());
        assert_eq!(by_read.len(), 601, "{fsys:?}");
        assert_eq!(by_read, by_entries, "{fsys:?}");
        for (n, ft) in &by_read {
            assert_eq!(*ft, expected(n), "{fsys:?}: {n}");
        }
        // Each call starts from the beginning: a second pass lists the same.
        assert_eq!(listing(d.read_entries().unwrap()), by_read, "{fsys:?}");
    }
}

#[test]
fn an_o_path_handle_refuses_symlinks_stats_and_looks_up_and_reopens_to_list() {
    for fsys in [Fs::Xfs, Fs::Tmpfs, Fs::NoCow] {
        let Some(t) = scratch(fsys) else { continue };
        fs::create_dir_all(t.path().join("real/sub")).unwrap();
        fs::write(t.path().join("real/f"), b"data").unwrap();
        symlink(t.path().join("real"), t.path().join("link")).unwrap();
        fs::write(t.path().join("file"), b"x").unwrap();
        let root = Dir::open(t.path()).unwrap();
        for bad in ["link", "file", "..", "a/b", "missing"] {
            assert!(
                root.open_dir_path(OsStr::new(bad)).is_err(),
                "{fsys:?}: {bad}"
            );
        }
        let mut p = root.open_dir_path(OsStr::new("real")).unwrap();
        let real = fs::metadata(t.path().join("real")).unwrap();
        let st = p.stat_self().unwrap();
        assert_eq!(
            (st.st_ino, st.st_dev),
            (
                std::os::unix::fs::MetadataExt::ino(&real),
                std::os::unix::fs::MetadataExt::dev(&real)
            )
        );
        // Lookups and opens relative to it work; listing it does not, its reopening does.
        assert!(p.try_stat(OsStr::new("f")).unwrap().is_some());
        assert!(p.open_dir(OsStr::new("sub")).is_ok());
        assert!(
            p.read_entries().is_err(),
            "{fsys:?}: an O_PATH handle listed"
        );
        let mut names: Vec<String> = p
            .reopen()
            .unwrap()
            .read_entries()
            .unwrap()
            .into_iter()
            .map(|e| e.name.into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(names, ["f", "sub"], "{fsys:?}");
    }
}
