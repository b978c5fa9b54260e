//! Which store serves a tree: one store per filesystem, found without being named.
//!
//! A store can only share data blocks with trees on its own filesystem, so the store a tree
//! uses is chosen by the tree's filesystem ([`store_for_tree`]):
//! 1. the default location ([`default_location`]) when it is on that filesystem;
//! 2. else a writable `.cowtree-store` store that already exists on the tree's path within
//!    that filesystem (from its mount point down);
//! 3. else `<mount point>/.cowtree-store`, or, where the mount point is not writable, the
//!    highest writable directory on the tree's path within the filesystem;
//! 4. else (a filesystem that cannot share data, or nowhere writable) the default location.
//!
//! A worktree remembers which store holds it: [`mark_worktree`] puts the store's path in the
//! extended attribute `user.cowtree.store` of the worktree's root directory (nothing is
//! written inside the tree), and [`marked_store`] reads it back from any directory inside.
//! Every store a command has used is also listed in a small file ([`known_stores`]), so a
//! worktree on a filesystem without user extended attributes is still found by searching
//! the stores' registries.
//!
//! On Windows a filesystem is a volume (its serial number is the device), so the rule picks
//! the default location when it is on the tree's volume, else a `.cowtree-store` on the
//! tree's path within its volume, from the volume's root down (`D:\.cowtree-store`, or below
//! a folder a volume is mounted on), where the volume can share data (block cloning: ReFS,
//! a Dev Drive), else the default. The default location is `%LOCALAPPDATA%\cowtree` (the
//! state directory `%LOCALAPPDATA%\cowtree\state`), unless `XDG_DATA_HOME`
//! (`XDG_STATE_HOME`) names one, as on unix. Whether a directory is writable is asked by
//! opening it for the right to add entries (Windows has no `access`). Windows has no
//! extended attributes: [`mark_worktree`] says so and marks nothing, [`marked_store`] finds
//! none, and a worktree's store is found through [`known_stores`] (the fallback every
//! filesystem without user extended attributes takes). The list of known stores is locked
//! with `LockFileEx` where unix takes an `flock`.

use std::collections::HashSet;
#[cfg(unix)]
use std::ffi::OsStr;
use std::io::{self, Write};
#[cfg(unix)]
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use crate::error::{Error, Result};

/// Name of a store directory made for a filesystem.
pub const STORE_DIR_NAME: &str = ".cowtree-store";
/// The extended attribute on a worktree's root that names its store.
pub const MARKER_XATTR: &str = "user.cowtree.store";

/// How [`store_for_tree`] chose a store: the reason a user is told when it is created.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reason {
    /// The default location is on the tree's filesystem.
    Default,
    /// A store already existed on the tree's filesystem.
    Existing,
    /// A new store on the tree's filesystem, because the default location is on another.
    PerFilesystem,
    /// The default location although it is on another filesystem: the tree's filesystem
    /// cannot share data (so a store there would gain nothing), or nothing on the tree's path
    /// within it is writable. The text says which.
    DefaultElsewhere(String),
}

/// A store location chosen for a tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Choice {
    /// The store's root directory.
    pub root: PathBuf,
    /// Why this one.
    pub reason: Reason,
}

impl Choice {
    /// One sentence saying why this store serves the tree at `tree`.
    pub fn explain(&self, tree: &Path) -> String {
        match &self.reason {
            Reason::Default | Reason::Existing => format!(
                "{} is on the same filesystem as {}",
                self.root.display(),
                tree.display()
            ),
            Reason::PerFilesystem => format!(
                "the default store is on another filesystem than {}, and a store can share \
                 data only with trees on its own filesystem",
                tree.display()
            ),
            Reason::DefaultElsewhere(why) => why.clone(),
        }
    }
}

fn nonempty_env(v: &str) -> Option<PathBuf> {
    std::env::var_os(v)
        .filter(|s| !s.is_empty())
        .map(PathBuf::from)
}

/// The default store location: `$XDG_DATA_HOME/cowtree`, else `~/.local/share/cowtree`.
#[cfg(unix)]
pub fn default_location() -> Result<PathBuf> {
    if let Some(p) = nonempty_env("XDG_DATA_HOME") {
        return Ok(p.join("cowtree"));
    }
    if let Some(home) = nonempty_env("HOME") {
        return Ok(home.join(".local/share/cowtree"));
    }
    Err(Error::NoStoreLocation)
}

/// The default store location on Windows: `%XDG_DATA_HOME%\cowtree` when set, else
/// `%LOCALAPPDATA%\cowtree` (this user's, not roamed: a store is large and tied to its
/// volume).
#[cfg(windows)]
pub fn default_location() -> Result<PathBuf> {
    if let Some(p) = nonempty_env("XDG_DATA_HOME") {
        return Ok(p.join("cowtree"));
    }
    nonempty_env("LOCALAPPDATA")
        .map(|p| p.join("cowtree"))
        .ok_or(Error::NoStoreLocation)
}

/// The store named by the environment (`COWTREE_STORE`), if any.
pub fn from_env() -> Option<PathBuf> {
    nonempty_env("COWTREE_STORE")
}

/// True when `root` holds a store (its `format` file exists).
pub fn exists(root: &Path) -> bool {
    root.join("format").is_file()
}

/// `path` made absolute and without `.`/`..` (resolved lexically below the nearest existing
/// ancestor, which is canonicalized): works for a path that does not exist yet.
pub fn absolute(path: &Path) -> io::Result<PathBuf> {
    let abs = std::path::absolute(path)?;
    let mut clean = PathBuf::new();
    for c in abs.components() {
        match c {
            Component::ParentDir => {
                clean.pop();
            }
            Component::CurDir => {}
            other => clean.push(other),
        }
    }
    let mut existing = clean.as_path();
    let mut rest = Vec::new();
    loop {
        if let Ok(canon) = canonical(existing) {
            let mut out = canon;
            for r in rest.iter().rev() {
                out.push(r);
            }
            return Ok(out);
        }
        match (existing.parent(), existing.file_name()) {
            (Some(p), Some(n)) => {
                rest.push(n.to_os_string());
                existing = p;
            }
            _ => return Ok(clean),
        }
    }
}

/// `path` canonicalized (it exists).
#[cfg(unix)]
fn canonical(path: &Path) -> io::Result<PathBuf> {
    std::fs::canonicalize(path)
}

/// `path` canonicalized (it exists), without the `\\?\` prefix Windows' canonical form has
/// where the path means the same without it (see [`plain_path`]): a store's path is shown to
/// people and compared with paths they typed.
#[cfg(windows)]
fn canonical(path: &Path) -> io::Result<PathBuf> {
    std::fs::canonicalize(path).map(plain_path)
}

/// `p` without its verbatim prefix (`\\?\C:\x` is `C:\x`, `\\?\UNC\s\h\x` is
/// `\\s\h\x`) when the path is one Windows takes the same without it: shorter than
/// `MAX_PATH` (260), every component one Windows' path parsing keeps as it is (no device
/// name, no trailing dot or space, no character it refuses). Otherwise `p` as it is.
#[cfg(windows)]
fn plain_path(p: PathBuf) -> PathBuf {
    let Some(s) = p.to_str() else {
        return p;
    };
    let (plain, names) = if let Some(rest) = s.strip_prefix("\\\\?\\UNC\\") {
        (format!("\\\\{rest}"), rest)
    } else if let Some(rest) = s.strip_prefix("\\\\?\\") {
        let b = rest.as_bytes();
        if b.len() < 3 || !b[0].is_ascii_alphabetic() || &b[1..3] != b":\\" {
            return p;
        }
        (rest.to_string(), &rest[3..])
    } else {
        return p;
    };
    let kept = names
        .split('\\')
        .filter(|c| !c.is_empty())
        .all(|c| cowtree_fs::name::windows::validate_native_component(c.as_bytes()).is_ok());
    if plain.encode_utf16().count() >= 260 || !kept {
        return p;
    }
    PathBuf::from(plain)
}

/// The nearest existing directory at or above `path` (which is absolute), and its device.
#[cfg(unix)]
fn existing_dir(path: &Path) -> io::Result<(PathBuf, u64)> {
    for a in path.ancestors() {
        if let Ok(st) = rustix::fs::stat(a)
            && rustix::fs::FileType::from_raw_mode(st.st_mode) == rustix::fs::FileType::Directory
        {
            return Ok((a.to_path_buf(), cowtree_fs::sys::stat_dev(&st)));
        }
    }
    Err(io::Error::new(
        io::ErrorKind::NotFound,
        format!("no existing directory above {}", path.display()),
    ))
}

/// The nearest existing directory at or above `path` (which is absolute), and its device:
/// its volume's serial number.
#[cfg(windows)]
fn existing_dir(path: &Path) -> io::Result<(PathBuf, u64)> {
    for a in path.ancestors() {
        if let Ok(dev) = dir_device(a) {
            return Ok((a.to_path_buf(), dev));
        }
    }
    Err(io::Error::new(
        io::ErrorKind::NotFound,
        format!("no existing directory above {}", path.display()),
    ))
}

/// The device (volume serial) of the directory `dir`, following a link, as `stat` does;
/// an error when it is not a directory.
#[cfg(windows)]
fn dir_device(dir: &Path) -> io::Result<u64> {
    if !std::fs::metadata(dir)?.is_dir() {
        return Err(io::Error::from(io::ErrorKind::NotADirectory));
    }
    Ok(cowtree_fs::sys::path_id(dir, true)?.0)
}

/// The device of the filesystem `path` is on, or would be on once made: that of its nearest
/// existing ancestor. (Every btrfs subvolume has its own: compare filesystems with
/// [`same_filesystem`].)
pub fn device_of(path: &Path) -> io::Result<u64> {
    Ok(existing_dir(&absolute(path)?)?.1)
}

/// The UUID of the btrfs filesystem holding the directory `dir`; `None` when it is not on
/// btrfs (or cannot be opened or asked).
#[cfg(unix)]
fn btrfs_id(dir: &Path) -> Option<[u8; 16]> {
    use cowtree_fs::subvolume::{At, filesystem_id, is_btrfs};
    let d = cowtree_fs::dir::Dir::open(dir).ok()?;
    let at = At::new(&d, dir);
    if !is_btrfs(at).ok()? {
        return None;
    }
    filesystem_id(at).ok()
}

/// The UUID of the btrfs filesystem holding `dir`: none on Windows.
#[cfg(windows)]
fn btrfs_id(_dir: &Path) -> Option<[u8; 16]> {
    None
}

/// Whether the directories `a` and `b`, of devices `dev_a` and `dev_b`, are on one
/// filesystem: the same device, or one btrfs filesystem (each of whose subvolumes has its
/// own device number, and which shares data between them).
fn same_filesystem_dirs(a: &Path, dev_a: u64, b: &Path, dev_b: u64) -> bool {
    dev_a == dev_b || btrfs_id(a).is_some_and(|id| btrfs_id(b) == Some(id))
}

/// Whether `a` and `b` (which need not exist: each is judged by its nearest existing
/// ancestor, as in [`device_of`]) are on one filesystem, where data can be shared between
/// them: one device, or one btrfs filesystem whatever subvolumes they are in.
pub fn same_filesystem(a: &Path, b: &Path) -> io::Result<bool> {
    let (da, deva) = existing_dir(&absolute(a)?)?;
    let (db, devb) = existing_dir(&absolute(b)?)?;
    Ok(same_filesystem_dirs(&da, deva, &db, devb))
}

#[cfg(unix)]
fn writable(dir: &Path) -> bool {
    rustix::fs::access(
        dir,
        rustix::fs::Access::WRITE_OK | rustix::fs::Access::EXEC_OK,
    )
    .is_ok()
}

/// Whether this process may add entries to `dir` (see [`crate::util::writable`]).
#[cfg(windows)]
fn writable(dir: &Path) -> bool {
    crate::util::writable(dir).unwrap_or(false)
}

/// Whether the filesystem of the directory `dir` can share data between files, and its name.
#[cfg(unix)]
fn sharing(dir: &Path) -> io::Result<(bool, &'static str)> {
    let fs = cowtree_fs::dir::Dir::open(dir).and_then(cowtree_fs::fstype::fs_type)?;
    Ok((fs.may_reflink(), fs.name()))
}

/// Whether the volume of the directory `dir` can share data between files (it reports
/// block cloning: ReFS, a Dev Drive), and its filesystem's name.
#[cfg(windows)]
fn sharing(dir: &Path) -> io::Result<(bool, String)> {
    let v = cowtree_fs::probe::volume(dir)?;
    Ok((v.reports_block_cloning, v.filesystem))
}

/// The device of the directory `a` (following a link), for the walk up a tree's filesystem.
#[cfg(unix)]
fn device_of_dir(a: &Path) -> io::Result<u64> {
    Ok(cowtree_fs::sys::stat_dev(&rustix::fs::stat(a)?))
}

/// The device of the directory `a` (following a link), for the walk up a tree's filesystem.
#[cfg(windows)]
fn device_of_dir(a: &Path) -> io::Result<u64> {
    dir_device(a)
}

/// The store that serves the tree at `tree` (which need not exist yet: a checkout
/// destination is judged by its nearest existing ancestor), by the rule in the module doc.
/// Nothing is created.
pub fn store_for_tree(tree: &Path) -> Result<Choice> {
    let ctx = |e: io::Error| Error::io_at("", tree, e);
    let default = default_location()?;
    let abs = absolute(tree).map_err(ctx)?;
    let (dir, dev) = existing_dir(&abs).map_err(ctx)?;
    let (default_dir, default_dev) =
        existing_dir(&absolute(&default).map_err(ctx)?).map_err(ctx)?;
    if same_filesystem_dirs(&default_dir, default_dev, &dir, dev) {
        return Ok(Choice {
            root: default,
            reason: Reason::Default,
        });
    }
    let (may_share, fs_name) = sharing(&dir).map_err(ctx)?;
    if !may_share {
        return Ok(Choice {
            root: default,
            reason: Reason::DefaultElsewhere(format!(
                "the filesystem of {} ({}) cannot share data, so a store of its own would \
                 gain nothing",
                tree.display(),
                fs_name
            )),
        });
    }
    // The directories on the tree's path within its filesystem, from the mount point down
    // (on btrfs, across the subvolumes of one filesystem, each of which has its own device).
    let fs_id = btrfs_id(&dir);
    let mut chain: Vec<&Path> = Vec::new();
    for a in dir.ancestors() {
        match device_of_dir(a) {
            Ok(d) if d == dev => chain.push(a),
            Ok(_) if fs_id.is_some() && btrfs_id(a) == fs_id => chain.push(a),
            _ => break,
        }
    }
    chain.reverse();
    // A store made by another user that this one cannot write to is passed over.
    if let Some(d) = chain.iter().find(|d| {
        let s = d.join(STORE_DIR_NAME);
        exists(&s) && writable(&s)
    }) {
        return Ok(Choice {
            root: d.join(STORE_DIR_NAME),
            reason: Reason::Existing,
        });
    }
    if let Some(d) = chain.iter().find(|d| writable(d)) {
        return Ok(Choice {
            root: d.join(STORE_DIR_NAME),
            reason: Reason::PerFilesystem,
        });
    }
    Ok(Choice {
        root: default,
        reason: Reason::DefaultElsewhere(format!(
            "no directory on the path of {} within its filesystem is writable",
            tree.display()
        )),
    })
}

/// Records in the worktree at `worktree` that `store_root` holds it (the extended attribute
/// [`MARKER_XATTR`] of its root directory). Fails where the filesystem keeps no user
/// extended attributes; the worktree is then found through [`known_stores`].
#[cfg(unix)]
pub fn mark_worktree(worktree: &Path, store_root: &Path) -> io::Result<()> {
    let root = absolute(store_root)?;
    rustix::fs::lsetxattr(
        worktree,
        MARKER_XATTR,
        root.as_os_str().as_bytes(),
        rustix::fs::XattrFlags::empty(),
    )?;
    Ok(())
}

/// Records that `store_root` holds the worktree at `worktree`: not on Windows, which has no
/// extended attributes (an `Unsupported` error saying so; nothing is written). The worktree
/// is found through [`known_stores`].
#[cfg(windows)]
pub fn mark_worktree(_worktree: &Path, _store_root: &Path) -> io::Result<()> {
    Err(cowtree_fs::sys::Unavailable::error(
        "extended attributes (the worktree's store marker)",
    ))
}

/// The store named by the marker of the nearest directory at or above `dir`: none on
/// Windows (see [`mark_worktree`]).
#[cfg(windows)]
pub fn marked_store(_dir: &Path) -> Option<(PathBuf, PathBuf)> {
    None
}

/// The store named by the marker of the nearest directory at or above `dir` that has one
/// (see [`mark_worktree`]), with that directory.
#[cfg(unix)]
pub fn marked_store(dir: &Path) -> Option<(PathBuf, PathBuf)> {
    let abs = absolute(dir).ok()?;
    for a in abs.ancestors() {
        let mut buf = vec![0u8; 4096];
        if let Ok(n) = rustix::fs::lgetxattr(a, MARKER_XATTR, &mut buf) {
            buf.truncate(n);
            let store = PathBuf::from(OsStr::from_bytes(&buf));
            if store.is_absolute() {
                return Some((store, a.to_path_buf()));
            }
        }
    }
    None
}

/// This user's state directory for cowtree: `$XDG_STATE_HOME/cowtree`, else
/// `~/.local/state/cowtree` (`None` when neither variable is set).
#[cfg(unix)]
pub fn state_dir() -> Option<PathBuf> {
    if let Some(p) = nonempty_env("XDG_STATE_HOME") {
        return Some(p.join("cowtree"));
    }
    nonempty_env("HOME").map(|h| h.join(".local/state/cowtree"))
}

/// This user's state directory for cowtree on Windows: `%XDG_STATE_HOME%\cowtree` when set,
/// else `%LOCALAPPDATA%\cowtree\state` (`None` when neither variable is set).
#[cfg(windows)]
pub fn state_dir() -> Option<PathBuf> {
    if let Some(p) = nonempty_env("XDG_STATE_HOME") {
        return Some(p.join("cowtree"));
    }
    nonempty_env("LOCALAPPDATA").map(|p| p.join("cowtree").join("state"))
}

/// The file listing the stores this user's commands have used: `stores` in [`state_dir`].
pub fn known_stores_file() -> Option<PathBuf> {
    state_dir().map(|d| d.join("stores"))
}

/// Where this user keeps the registry of a store it cannot write (see
/// [`Store::open`](crate::Store::open)): `registries/<id>` in [`state_dir`], `<id>` the first
/// 32 hex digits of BLAKE3 of the store's absolute path. `None` without a state directory.
pub fn outside_registry(store_root: &Path) -> Option<PathBuf> {
    let root = absolute(store_root).ok()?;
    let id = crate::hash::Hash::of(root.as_os_str().as_encoded_bytes()).to_hex();
    state_dir().map(|d| d.join("registries").join(&id[..32]))
}

/// The stores listed in [`known_stores_file`], in the order they were first used (the list
/// may name stores that were deleted since).
pub fn known_stores() -> Vec<PathBuf> {
    let Some(file) = known_stores_file() else {
        return Vec::new();
    };
    let Ok(bytes) = std::fs::read(file) else {
        return Vec::new();
    };
    parse_known(&bytes)
}

/// The absolute paths listed one a line in `bytes`, each once, in the order of their first line.
fn parse_known(bytes: &[u8]) -> Vec<PathBuf> {
    // A set beside the list: the file grows by a line per store ever used (tests make
    // thousands), and every `snapshot` reads it; a search of the list for each line was
    // quadratic in its length.
    let mut seen: HashSet<PathBuf> = HashSet::new();
    let mut out: Vec<PathBuf> = Vec::new();
    for line in bytes.split(|&b| b == b'\n') {
        let Some(p) = path_from_line(line) else {
            continue;
        };
        if p.is_absolute() && seen.insert(p.clone()) {
            out.push(p);
        }
    }
    out
}

/// A line of the list of known stores as a path: its bytes.
#[cfg(unix)]
fn path_from_line(line: &[u8]) -> Option<PathBuf> {
    Some(PathBuf::from(OsStr::from_bytes(line)))
}

/// A line of the list of known stores as a path: its text, when it is UTF-8 ([`remember`]
/// lists no other path on Windows).
#[cfg(windows)]
fn path_from_line(line: &[u8]) -> Option<PathBuf> {
    std::str::from_utf8(line).ok().map(PathBuf::from)
}

/// Adds `store_root` to [`known_stores_file`] unless it is listed already. Best effort: the
/// list only helps find stores, so a failure to write it is returned for the caller to ignore
/// or report.
pub fn remember(store_root: &Path) -> io::Result<()> {
    let root = absolute(store_root)?;
    if root.as_os_str().as_encoded_bytes().contains(&b'\n')
        || (cfg!(windows) && root.to_str().is_none())
        || known_stores().contains(&root)
    {
        return Ok(());
    }
    let Some(file) = known_stores_file() else {
        return Ok(());
    };
    if let Some(parent) = file.parent() {
        std::fs::create_dir_all(parent)?;
    }
    // One short append (O_APPEND): concurrent writers cannot interleave within a line. A
    // shared lock: appends go on side by side, and none lands while `forget_missing` rewrites
    // the file under its exclusive one.
    let mut line = root.into_os_string().into_encoded_bytes();
    line.push(b'\n');
    let f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&file)?;
    #[cfg(unix)]
    let mut f = f;
    #[cfg(unix)]
    rustix::fs::flock(&f, rustix::fs::FlockOperation::LockShared)?;
    #[cfg(windows)]
    let held = crate::lock::lock(f, false)?;
    #[cfg(windows)]
    let mut f = held.file();
    f.write_all(&line)
}

/// Removes from [`known_stores_file`] the stores that no longer exist (a store directory
/// deleted by hand, a test's temporary store, an unmounted filesystem's), keeping the others in
/// their order. Returns those removed. The file is rewritten in place under an exclusive
/// `flock`, which [`remember`]'s appends wait for.
pub fn forget_missing() -> io::Result<Vec<PathBuf>> {
    forget_where(|p| !exists(p))
}

/// Removes `store_root` from [`known_stores_file`] (a store that was removed), as
/// [`forget_missing`] rewrites it. Returns whether it was listed.
pub fn forget(store_root: &Path) -> io::Result<bool> {
    let root = absolute(store_root)?;
    Ok(!forget_where(|p| *p == root)?.is_empty())
}

/// Removes from [`known_stores_file`] the stores `gone` picks, under an exclusive `flock`;
/// returns those removed.
fn forget_where(gone: impl Fn(&PathBuf) -> bool) -> io::Result<Vec<PathBuf>> {
    use std::io::{Read, Seek};
    let Some(file) = known_stores_file() else {
        return Ok(Vec::new());
    };
    let f = match std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&file)
    {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    #[cfg(unix)]
    let mut f = f;
    #[cfg(unix)]
    rustix::fs::flock(&f, rustix::fs::FlockOperation::LockExclusive)?;
    #[cfg(windows)]
    let held = crate::lock::lock(f, true)?;
    #[cfg(windows)]
    let mut f = held.file();
    let mut bytes = Vec::new();
    f.read_to_end(&mut bytes)?;
    let (gone, keep): (Vec<PathBuf>, Vec<PathBuf>) =
        parse_known(&bytes).into_iter().partition(|p| gone(p));
    if gone.is_empty() {
        return Ok(gone);
    }
    let mut text = Vec::new();
    for p in &keep {
        text.extend_from_slice(p.as_os_str().as_encoded_bytes());
        text.push(b'\n');
    }
    f.rewind()?;
    f.write_all(&text)?;
    f.set_len(text.len() as u64)?;
    Ok(gone)
}

/// The existing stores worth searching for a worktree or a snapshot at `dir` when nothing
/// names a store, each once, in this order: the store `dir`'s marker names, the store of
/// `dir`'s filesystem ([`store_for_tree`]), the known stores ([`known_stores`]) and the
/// default location.
pub fn candidates(dir: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = Vec::new();
    let mut add = |p: PathBuf| {
        let p = absolute(&p).unwrap_or(p);
        if exists(&p) && !out.contains(&p) {
            out.push(p);
        }
    };
    if let Some((root, _)) = marked_store(dir) {
        add(root);
    }
    if let Ok(c) = store_for_tree(dir) {
        add(c.root);
    }
    for k in known_stores() {
        add(k);
    }
    if let Ok(d) = default_location() {
        add(d);
    }
    out
}

/// The store for a command that acts on a store as a whole from `dir` when nothing names one:
/// the existing store `dir`'s marker names, else the store of `dir`'s filesystem when it
/// exists, else the default store when it exists, else the store of `dir`'s filesystem (which
/// may not exist: the caller says so; nothing is created).
pub fn store_here(dir: &Path) -> Result<PathBuf> {
    if let Some((root, _)) = marked_store(dir)
        && exists(&root)
    {
        return Ok(root);
    }
    let choice = store_for_tree(dir)?;
    if !exists(&choice.root)
        && let Ok(d) = default_location()
        && exists(&d)
    {
        return Ok(d);
    }
    Ok(choice.root)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_stores_are_listed_once_each_in_first_use_order_and_only_absolute() {
        // An absolute path starts with a drive on Windows.
        let r = if cfg!(windows) { "C:" } else { "" };
        let text =
            format!("{r}/s/b\n{r}/s/a\nrelative/c\n{r}/s/b\n{r}/s//a\n{r}/s/a/\n\n{r}/s/c\n");
        assert_eq!(
            parse_known(text.as_bytes()),
            [
                PathBuf::from(format!("{r}/s/b")),
                PathBuf::from(format!("{r}/s/a")),
                PathBuf::from(format!("{r}/s/c"))
            ]
        );
        // Thousands of lines, each store listed twice: each once, in order.
        let mut long = Vec::new();
        for round in 0..2 {
            for i in 0..5000 {
                long.extend_from_slice(format!("{r}/stores/{i}{}\n", ["", "/"][round]).as_bytes());
            }
        }
        let parsed = parse_known(&long);
        assert_eq!(parsed.len(), 5000);
        assert!(
            parsed
                .iter()
                .enumerate()
                .all(|(i, p)| *p == Path::new(&format!("{r}/stores/{i}")))
        );
    }

    #[test]
    fn absolute_resolves_dots_below_a_missing_tail() {
        let tmp = tempfile::tempdir().unwrap();
        let canon = canonical(tmp.path()).expect("canonical path");
        let p = tmp.path().join("a/../b/./c");
        assert_eq!(absolute(&p).unwrap(), canon.join("b/c"));
    }

    #[test]
    fn explain_names_the_reason() {
        let c = Choice {
            root: PathBuf::from("/m/.cowtree-store"),
            reason: Reason::PerFilesystem,
        };
        assert!(
            c.explain(Path::new("/m/t"))
                .contains("default store is on another filesystem")
        );
    }

    #[cfg(windows)]
    #[test]
    fn a_canonical_path_loses_its_verbatim_prefix_only_where_it_means_the_same() {
        let plain = |s: &str| plain_path(PathBuf::from(s));
        assert_eq!(
            plain(r"\\?\C:\Users\a\.cowtree-store"),
            Path::new(r"C:\Users\a\.cowtree-store")
        );
        assert_eq!(plain(r"\\?\UNC\srv\share\x"), Path::new(r"\\srv\share\x"));
        // A trailing dot or a device name means something else without the prefix.
        assert_eq!(plain(r"\\?\C:\a.\b"), Path::new(r"\\?\C:\a.\b"));
        assert_eq!(plain(r"\\?\C:\x\NUL"), Path::new(r"\\?\C:\x\NUL"));
        assert_eq!(plain(r"\\?\Volume{1}\x"), Path::new(r"\\?\Volume{1}\x"));
        let long = format!(r"\\?\C:\{}", "a".repeat(300));
        assert_eq!(plain(&long), Path::new(&long));
        assert_eq!(plain(r"C:\x"), Path::new(r"C:\x"));
        // What `absolute` gives for an existing directory has no prefix.
        let tmp = tempfile::tempdir().expect("tempdir");
        let abs = absolute(tmp.path()).expect("absolute path");
        assert!(
            !abs.as_os_str().to_string_lossy().starts_with(r"\\?\"),
            "{}",
            abs.display()
        );
    }
}
