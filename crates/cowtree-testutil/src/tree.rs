//! Sample trees for tree-copy tests, and a comparison that walks two trees.
//!
//! [`sample_tree`] makes a small tree with everything a faithful copy must keep: nested and
//! empty directories, a read-only directory, files with different modes and sizes (one empty),
//! relative, absolute, dangling and directory symlinks (one with a non-UTF-8 target), non-UTF-8
//! names, and fixed nanosecond times on every entry. [`snapshot`] walks a tree without following
//! symlinks; [`assert_same_tree`] compares two snapshots entry by entry.

use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString};
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::pattern;

/// One entry of a walked tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// A regular file with its bytes.
    File(Vec<u8>),
    /// A directory.
    Dir,
    /// A symlink with its exact target bytes.
    Symlink(Vec<u8>),
    /// Anything else.
    Other,
}

/// What [`snapshot`] records for each entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Kind and content.
    pub kind: Kind,
    /// Permission bits (`mode & 0o7777`); 0 for symlinks.
    pub mode: u32,
    /// Modification time (seconds, nanoseconds).
    pub mtime: (i64, i64),
}

/// Every entry under `root` (and `root` itself, as the empty path), by relative path.
pub fn snapshot(root: &Path) -> BTreeMap<PathBuf, Entry> {
    let mut out = BTreeMap::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        let path = root.join(&rel);
        let meta =
            fs::symlink_metadata(&path).unwrap_or_else(|e| panic!("lstat {}: {e}", path.display()));
        let ft = meta.file_type();
        let kind = if ft.is_dir() {
            let mut names: Vec<OsString> = fs::read_dir(&path)
                .unwrap_or_else(|e| panic!("read_dir {}: {e}", path.display()))
                .map(|e| must(e, "read_dir entry in", &path).file_name())
                .collect();
            names.sort();
            for n in names {
                stack.push(rel.join(n));
            }
            Kind::Dir
        } else if ft.is_file() {
            Kind::File(fs::read(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display())))
        } else if ft.is_symlink() {
            Kind::Symlink(
                must(fs::read_link(&path), "readlink", &path)
                    .into_os_string()
                    .as_bytes()
                    .to_vec(),
            )
        } else {
            Kind::Other
        };
        let mode = if ft.is_symlink() {
            0
        } else {
            meta.mode() & 0o7777
        };
        out.insert(
            rel,
            Entry {
                kind,
                mode,
                mtime: (meta.mtime(), meta.mtime_nsec()),
            },
        );
    }
    out
}

/// Asserts that two snapshots have the same paths, kinds, contents, symlink targets and
/// modes, and (when `times`) the same modification times, naming the first difference.
pub fn assert_same_tree(
    src: &BTreeMap<PathBuf, Entry>,
    dst: &BTreeMap<PathBuf, Entry>,
    times: bool,
) {
    let src_paths: Vec<_> = src.keys().collect();
    let dst_paths: Vec<_> = dst.keys().collect();
    assert_eq!(src_paths, dst_paths, "the trees have different paths");
    for (path, s) in src {
        let d = &dst[path];
        assert!(
            s.kind == d.kind,
            "{}: kind or content differs: {:?} vs {:?}",
            path.display(),
            short(&s.kind),
            short(&d.kind)
        );
        assert_eq!(
            s.mode,
            d.mode,
            "{}: mode {:o} vs {:o}",
            path.display(),
            s.mode,
            d.mode
        );
        if times {
            assert_eq!(s.mtime, d.mtime, "{}: mtime", path.display());
        }
    }
}

fn short(k: &Kind) -> String {
    match k {
        Kind::File(b) => format!("file of {} bytes", b.len()),
        Kind::Dir => "dir".into(),
        Kind::Symlink(t) => format!("symlink to {:?}", OsStr::from_bytes(t)),
        Kind::Other => "other".into(),
    }
}

/// Sets the access and modification times of `path` (not following a symlink).
pub fn set_mtime(path: &Path, sec: i64, nsec: i64) {
    let ts = rustix::fs::Timespec {
        tv_sec: sec,
        tv_nsec: nsec as _,
    };
    rustix::fs::utimensat(
        rustix::fs::CWD,
        path,
        &rustix::fs::Timestamps {
            last_access: ts,
            last_modification: ts,
        },
        rustix::fs::AtFlags::SYMLINK_NOFOLLOW,
    )
    .unwrap_or_else(|e| panic!("utimensat {}: {e}", path.display()));
}

/// The sizes of the sample files are at least this (except the empty one), so that btrfs
/// stores none of them inline in metadata, where data cannot be shared.
pub const MIN_SAMPLE_FILE: usize = 16 << 10;

/// Makes the sample tree at `root` (which must not exist). Returns the number of regular
/// files, directories below the root, and symlinks.
pub fn sample_tree(root: &Path) -> (u64, u64, u64) {
    must(fs::create_dir(root), "mkdir", root);
    fill_sample_tree(root)
}

/// Makes the sample tree in the existing empty directory `root` (e.g. a new btrfs
/// subvolume), as [`sample_tree`] does.
pub fn fill_sample_tree(root: &Path) -> (u64, u64, u64) {
    let p = |rel: &[u8]| root.join(OsStr::from_bytes(rel));
    let dirs: [(&[u8], u32); 7] = [
        (b"a", 0o755),
        (b"a/b", 0o750),
        (b"a/b/c", 0o700),
        (b"empty", 0o755),
        (b"d\xff\xfe", 0o755),
        (b"ro", 0o555),
        (b"deep/er/est", 0o755),
    ];
    for (rel, _) in dirs {
        must(fs::create_dir_all(p(rel)), "mkdir -p", &p(rel));
    }
    let files: [(&[u8], usize, u32); 8] = [
        (b"top.txt", MIN_SAMPLE_FILE, 0o644),
        (b"a/small.txt", MIN_SAMPLE_FILE + 1, 0o644),
        (b"a/big.bin", 2 << 20, 0o644),
        (b"a/b/exec.sh", MIN_SAMPLE_FILE + 3000, 0o755),
        (b"a/b/c/private", MIN_SAMPLE_FILE * 2, 0o600),
        (b"ro/readonly", MIN_SAMPLE_FILE + 17, 0o444),
        (b"d\xff\xfe/caf\xe9", MIN_SAMPLE_FILE + 5, 0o640),
        (b"empty_file", 0, 0o644),
    ];
    for (i, (rel, len, mode)) in files.iter().enumerate() {
        must(
            fs::write(p(rel), pattern(*len, i as u64 + 1)),
            "write",
            &p(rel),
        );
        must(
            fs::set_permissions(p(rel), fs::Permissions::from_mode(*mode)),
            "chmod",
            &p(rel),
        );
    }
    let links: [(&[u8], &[u8]); 5] = [
        (b"a/rel_link", b"small.txt"),
        (b"abs_link", b"/etc/hostname"),
        (b"dangling", b"nowhere/\xff"),
        (b"dir_link", b"a"),
        (b"deep/er/up", b"../../a/b"),
    ];
    for (rel, target) in links {
        must(
            std::os::unix::fs::symlink(OsStr::from_bytes(target), p(rel)),
            "symlink",
            &p(rel),
        );
    }
    // Times last, deepest first, so creating entries does not change them again.
    let mut all: Vec<PathBuf> = Vec::new();
    all.extend(files.iter().map(|(r, _, _)| p(r)));
    all.extend(links.iter().map(|(r, _)| p(r)));
    let mut ds: Vec<PathBuf> = [
        &b"a/b/c"[..],
        b"a/b",
        b"a",
        b"empty",
        b"d\xff\xfe",
        b"ro",
        b"deep/er/est",
        b"deep/er",
        b"deep",
    ]
    .iter()
    .map(|r| p(r))
    .collect();
    ds.push(root.to_path_buf());
    all.extend(ds);
    for (i, path) in all.iter().enumerate() {
        set_mtime(
            path,
            1_000_000_000 + 86_400 * i as i64,
            123_456_789 + i as i64,
        );
    }
    for (rel, mode) in dirs {
        must(
            fs::set_permissions(p(rel), fs::Permissions::from_mode(mode)),
            "chmod",
            &p(rel),
        );
    }
    (files.len() as u64, 9, links.len() as u64)
}

/// The value of a test-setup step, or a panic naming the step and the path: this crate only
/// serves tests, where a failed setup must stop the test with a clear message.
fn must<T>(r: std::io::Result<T>, what: &str, path: &Path) -> T {
    r.unwrap_or_else(|e| panic!("{what} {}: {e}", path.display()))
}

/// The checkout staging directories beside `dst` (`.<name>.cowtree-checkout-*`; none when
/// `dst` has no parent or name, or the parent cannot be read).
pub fn checkout_staging(dst: &Path) -> Vec<PathBuf> {
    let (Some(parent), Some(name)) = (dst.parent(), dst.file_name()) else {
        return Vec::new();
    };
    let prefix = format!(".{}.cowtree-checkout-", name.to_string_lossy());
    std::fs::read_dir(parent)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
                .map(|e| e.path())
                .collect()
        })
        .unwrap_or_default()
}

/// The regular files under `dir`, at any depth (0 when it is gone).
pub fn files_under(dir: &Path) -> usize {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return 0;
    };
    rd.flatten()
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => files_under(&e.path()),
            Ok(t) if t.is_file() => 1,
            _ => 0,
        })
        .sum()
}
