//! Tree subvolumes: a snapshot's tree kept whole in the store, as a read-only btrfs
//! subvolume, so that a checkout on the same btrfs is one writable snapshot of it (O(1),
//! whatever the tree's size) instead of one clone per file.
//!
//! ```text
//! trees/<id>           read-only subvolume holding exactly the tree of snapshot <id>
//! trees/<id>.stat      a stat cache of that tree (the worktree layer's format; opaque here)
//! trees/<id>.counts    what the tree holds ([`Counts`], JSON), for a checkout's report
//! trees/.tmp-<pid>-... a tree being made: built from the blobs, or a read-only snapshot of
//!                      a subvolume being recorded; renamed to <id> once complete
//! ```
//!
//! Blobs and manifests stay the store's truth: a tree is derived data, made only from a
//! snapshot's blobs (a checkout builds it the first time one asks for it on btrfs) or as the
//! read-only snapshot a `snapshot` of a subvolume read its files from (so it holds exactly
//! what the manifest records). `verify` checks each tree against its manifest, `rm` and gc
//! remove it with its snapshot, and nothing ever writes into one: it is published read-only,
//! and a checkout is a writable snapshot *of* it, whose writes stay in the snapshot.
//!
//! A tree is published by a rename: `trees/.tmp-*` is built, made durable (`syncfs`, one
//! transaction commit), set read-only and only then renamed to `trees/<id>`. So `trees/<id>`
//! is complete and read-only whenever it exists; a process killed before the rename leaves a
//! `.tmp-*` subvolume, which gc removes (every maker holds the store lock shared, gc holds it
//! exclusively). [`open`] trusts only a read-only subvolume root at `trees/<id>`.
//!
//! A tree belongs to the user who made it; a snapshot of it keeps every owner, so only its
//! owner's checkouts use it (see `checkout`).
//!
//! Windows has no subvolumes: there [`open`] finds no tree, [`create`] makes none and says
//! why (the volume's filesystem, [`NotUsed::Filesystem`]), and `freeze` is not built; what
//! [`collect`] and [`remove`] find in `trees/` (nothing a Windows store makes) is removed as
//! plain files and directories. Counts and stat caches build on both.

use std::ffi::{OsStr, OsString};
use std::io;
use std::path::{Path, PathBuf};

use cowtree_fs::dir::Dir;
#[cfg(unix)]
use cowtree_fs::subvolume::{self, At, SubvolumeError};
use cowtree_fs::subvolume::{Cause, Deleted};
use cowtree_fs::whole_tree::NotUsed;
#[cfg(unix)]
use cowtree_fs::whole_tree::{Request, WholeTree};
#[cfg(unix)]
use rustix::fs::FileType;
#[cfg(unix)]
use rustix::io::Errno;

use crate::error::{Error, Result};
use crate::hash::Hash;
use crate::store::Store;
#[cfg(unix)]
use crate::util::unique_suffix;

/// The store's directory of tree subvolumes.
pub const DIR: &str = "trees";

/// How the name of a tree being made starts.
pub const TMP_PREFIX: &str = ".tmp-";

/// The suffix of a tree's stat cache beside it.
const CACHE_SUFFIX: &str = ".stat";
/// The suffix of a tree's counts beside it ([`Counts`]).
const COUNTS_SUFFIX: &str = ".counts";
/// Every suffix of what is kept beside a tree, removed with it.
const SIDECARS: [&str; 2] = [CACHE_SUFFIX, COUNTS_SUFFIX];

/// Why no tree is made in a store this process cannot write.
pub const STORE_NOT_WRITABLE: NotUsed = NotUsed::Requested {
    code: "store-not-writable",
    why: "a store this user cannot write (its tree subvolume cannot be made there)",
};

/// Why a subvolume holding the store is read in place: a read-only snapshot of it would hold
/// the store's own files.
pub const STORE_INSIDE: NotUsed = NotUsed::Requested {
    code: "store-inside",
    why: "a tree holding the store",
};

/// Why a checkout does not use the tree at `trees/<id>`: something that is not a read-only
/// subvolume root is there (changed behind the store's back; `verify` reports it, gc removes
/// it, and the next checkout builds the tree anew).
pub const NOT_TRUSTED: NotUsed = NotUsed::Requested {
    code: "tree-not-trusted",
    why: "the store's tree of this snapshot is not a read-only subvolume (verify reports it, \
          gc removes it)",
};

/// A published tree: `trees/<id>`, open.
#[derive(Debug)]
pub struct Tree {
    /// Its root directory.
    pub dir: Dir,
    /// Its path.
    pub path: PathBuf,
    /// The uid that owns its root (who made it).
    pub owner: u32,
}

#[cfg(unix)]
impl Tree {
    /// The tree as the source of a whole-tree copy.
    pub fn at(&self) -> At<'_> {
        At::new(&self.dir, &self.path)
    }
}

/// `trees/<id>`'s path.
pub fn path(store: &Store, id: &Hash) -> PathBuf {
    store.root().join(DIR).join(id.to_hex())
}

fn io_at(path: &Path, e: io::Error) -> Error {
    Error::io_at("", path, e)
}

/// `trees/`, open; `None` when the store has none yet.
fn trees_dir(store: &Store) -> Result<Option<Dir>> {
    let path = store.root().join(DIR);
    match store.root_dir().open_dir(OsStr::new(DIR)) {
        Ok(d) => Ok(Some(d)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io_at(&path, e)),
    }
}

/// The tree of snapshot `id` when the store holds one: a read-only subvolume root at
/// `trees/<id>` (anything else there is not used, and gc or `verify` report it).
#[cfg(unix)]
pub fn open(store: &Store, id: &Hash) -> Result<Option<Tree>> {
    let Some(trees) = trees_dir(store)? else {
        return Ok(None);
    };
    let path = path(store, id);
    let dir = match trees.open_dir(OsStr::new(&id.to_hex())) {
        Ok(d) => d,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_at(&path, e)),
    };
    let at = At::new(&dir, &path);
    if !subvolume::is_root(at)? || !subvolume::read_only(at)? {
        return Ok(None);
    }
    let owner = dir.stat_self().map_err(|e| io_at(&path, e))?.st_uid;
    Ok(Some(Tree { dir, path, owner }))
}

/// The tree of snapshot `id`: none on Windows, which has no read-only subvolumes (anything
/// at `trees/<id>` is not trusted; gc removes it).
#[cfg(windows)]
pub fn open(_store: &Store, _id: &Hash) -> Result<Option<Tree>> {
    Ok(None)
}

/// Whether anything is at `trees/<id>` (trusted by [`open`] or not).
pub fn exists(store: &Store, id: &Hash) -> Result<bool> {
    let Some(trees) = trees_dir(store)? else {
        return Ok(false);
    };
    trees
        .try_stat(OsStr::new(&id.to_hex()))
        .map(|st| st.is_some())
        .map_err(|e| io_at(&path(store, id), e))
}

/// A tree being made at `trees/.tmp-*`: removed when dropped unless published.
#[derive(Debug)]
pub struct Pending<'s> {
    store: &'s Store,
    trees: Dir,
    name: OsString,
    path: PathBuf,
    dir: Dir,
    /// Already read-only (a read-only snapshot) and committed.
    #[cfg_attr(windows, allow(dead_code))]
    frozen: bool,
    done: bool,
    /// Its entry in the process's undo registry (`cowtree_fs::undo`), registered before it
    /// was made.
    undo: Option<cowtree_fs::undo::Registration>,
}

/// A name for a tree being made by this process.
#[cfg(unix)]
fn tmp_name() -> OsString {
    OsString::from(format!("{TMP_PREFIX}{}", unique_suffix()))
}

#[cfg(unix)]
fn open_or_create_trees(store: &Store) -> Result<std::result::Result<Dir, NotUsed>> {
    if store.is_read_only() {
        return Ok(Err(STORE_NOT_WRITABLE));
    }
    let path = store.root().join(DIR);
    match store.root_dir().create_dir(OsStr::new(DIR), 0o755) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e)
            if e.raw_os_error().is_some_and(|n| {
                [Errno::ACCESS, Errno::ROFS, Errno::PERM]
                    .iter()
                    .any(|x| x.raw_os_error() == n)
            }) =>
        {
            return Ok(Err(STORE_NOT_WRITABLE));
        }
        Err(e) => return Err(io_at(&path, e)),
    }
    trees_dir(store)?
        .map(Ok)
        .ok_or_else(|| io_at(&path, io::ErrorKind::NotFound.into()))
}

/// Starts a tree to be built: a new, empty, writable subvolume `trees/.tmp-*`. Where the
/// kernel refuses the subvolume (EPERM) or the store cannot be written, says why and makes
/// nothing; other failures (no space, a qgroup limit) are errors.
#[cfg(unix)]
pub fn create(store: &Store) -> Result<std::result::Result<Pending<'_>, NotUsed>> {
    let trees = match open_or_create_trees(store)? {
        Ok(t) => t,
        Err(why) => return Ok(Err(why)),
    };
    let trees_path = store.root().join(DIR);
    let name = tmp_name();
    let undo = register(&trees, &trees_path, &name)?;
    let made = cowtree_fs::staging::unless_stopping(|| {
        subvolume::create(At::new(&trees, &trees_path), &name).map_err(io::Error::from)
    });
    if let Err(e) = made {
        return match classify(&e) {
            Some(Cause::NotPermitted) => Ok(Err(NotUsed::NotPermitted {
                cause: Cause::NotPermitted,
            })),
            Some(Cause::AccessDenied | Cause::ReadOnly) => Ok(Err(STORE_NOT_WRITABLE)),
            Some(Cause::NotBtrfs) => Ok(Err(NotUsed::Filesystem { fs: "btrfs" })),
            _ => Err(Error::Io(e)),
        };
    }
    let path = trees_path.join(&name);
    let dir = trees.open_dir(&name).map_err(|e| io_at(&path, e))?;
    Ok(Ok(Pending {
        store,
        trees,
        name,
        path,
        dir,
        frozen: false,
        done: false,
        undo: Some(undo),
    }))
}

/// Starts a tree to be built: on Windows, never (no subvolumes); says why, naming the
/// store's filesystem, and makes nothing.
#[cfg(windows)]
pub fn create(store: &Store) -> Result<std::result::Result<Pending<'_>, NotUsed>> {
    if store.is_read_only() {
        return Ok(Err(STORE_NOT_WRITABLE));
    }
    Ok(Err(NotUsed::Filesystem {
        fs: filesystem_name(store.root_dir()),
    }))
}

/// The name of the filesystem of the volume `dir` is on, as [`NotUsed::Filesystem`] names
/// it (lower case); `windows` when it cannot be told or is none of the usual ones.
#[cfg(windows)]
fn filesystem_name(dir: &Dir) -> &'static str {
    let volume = dir
        .try_clone()
        .map(|d| std::fs::File::from(d.into_handle()))
        .and_then(|f| cowtree_fs::sys::volume_of(&f));
    match volume.map(|v| v.filesystem.to_ascii_lowercase()).as_deref() {
        Ok("ntfs") => "ntfs",
        Ok("refs") => "refs",
        Ok("fat32") | Ok("fat") => "fat",
        Ok("exfat") => "exfat",
        _ => "windows",
    }
}

/// Registers the tree `name` about to be made in `trees` for undo.
#[cfg(unix)]
fn register(
    trees: &Dir,
    trees_path: &Path,
    name: &OsStr,
) -> Result<cowtree_fs::undo::Registration> {
    cowtree_fs::undo::Registration::tree(trees, name).map_err(|e| io_at(trees_path, e))
}

/// The cause of a subvolume error carried in `e` (see [`SubvolumeError`]'s conversion).
#[cfg(unix)]
fn classify(e: &io::Error) -> Option<Cause> {
    e.get_ref()
        .and_then(|inner| inner.downcast_ref::<SubvolumeError>())
        .map(|s| s.cause)
}

/// Takes a read-only snapshot of the subvolume whose root is `src` as a tree being made
/// (`trees/.tmp-*`), through the whole-tree seam: a point-in-time, immutable copy of `src`
/// to read a snapshot's files from. Where the seam does not apply (not the root of a
/// subvolume, another filesystem, another owner, nested subvolumes, mount points below,
/// EPERM) or the store cannot be written, says why and makes nothing. Not on Windows
/// (no subvolumes).
#[cfg(unix)]
pub fn freeze<'s>(
    store: &'s Store,
    src: At<'_>,
) -> Result<std::result::Result<Pending<'s>, NotUsed>> {
    // Cheap refusals first, before `trees/` is made.
    if !subvolume::is_btrfs(src)? {
        let fs = cowtree_fs::fstype::fs_type(src.dir).map_or("unknown", |t| t.name());
        return Ok(Err(NotUsed::Filesystem { fs }));
    }
    if !subvolume::is_root(src)? {
        return Ok(Err(NotUsed::NotSubvolumeRoot));
    }
    let store_at = At::new(store.root_dir(), store.root());
    if !subvolume::is_btrfs(store_at)?
        || subvolume::filesystem_id(store_at)? != subvolume::filesystem_id(src)?
    {
        return Ok(Err(NotUsed::CrossFilesystem));
    }
    // The store in the subvolume itself (the same device as its root): a snapshot would hold
    // a copy of the store, and the tree being made inside the tree being copied.
    let dev = |at: At<'_>| {
        at.dir
            .stat_self()
            .map(|st| cowtree_fs::sys::stat_dev(&st))
            .map_err(|e| io_at(at.path, e))
    };
    if dev(store_at)? == dev(src)? {
        return Ok(Err(STORE_INSIDE));
    }
    let trees = match open_or_create_trees(store)? {
        Ok(t) => t,
        Err(why) => return Ok(Err(why)),
    };
    let trees_path = store.root().join(DIR);
    let name = tmp_name();
    let undo = register(&trees, &trees_path, &name)?;
    let req = Request {
        src,
        parent: At::new(&trees, &trees_path),
        name: &name,
        read_only: true,
    };
    let mut outcome = None;
    cowtree_fs::staging::unless_stopping(|| {
        outcome = Some(cowtree_fs::whole_tree::try_whole_tree(&req, None));
        Ok(())
    })
    .map_err(Error::Io)?;
    let outcome = outcome.ok_or_else(|| Error::internal("the snapshot did not run"))?;
    match outcome? {
        WholeTree::NotUsed(why) => Ok(Err(why)),
        WholeTree::Done(_) => {
            let path = trees_path.join(&name);
            let dir = trees.open_dir(&name).map_err(|e| io_at(&path, e))?;
            Ok(Ok(Pending {
                store,
                trees,
                name,
                path,
                dir,
                frozen: true,
                done: false,
                undo: Some(undo),
            }))
        }
    }
}

impl Pending<'_> {
    /// Its root directory.
    pub fn dir(&self) -> &Dir {
        &self.dir
    }

    /// Its path (`trees/.tmp-*`).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Publishes it as the tree of snapshot `id`: durable (a built tree is committed with
    /// `syncfs`; a read-only snapshot is committed already), read-only, then renamed to
    /// `trees/<id>`. When another process published that tree first, this one is removed
    /// and theirs returned.
    #[cfg(unix)]
    pub fn publish(mut self, id: &Hash) -> Result<Tree> {
        let at = At::new(&self.dir, &self.path);
        if !self.frozen {
            self.dir
                .sync_filesystem()
                .map_err(|e| Error::io_at("sync the tree", &self.path, e))?;
            subvolume::set_read_only(at, true)?;
        }
        let final_name = OsString::from(id.to_hex());
        let final_path = path(self.store, id);
        // A stat cache left by an earlier tree of this snapshot (removed by a crash's
        // leftovers) describes other inodes: gone before this tree is.
        let _ = self.trees.remove_file(&sidecar(id, CACHE_SUFFIX));
        let renamed = cowtree_fs::staging::unless_stopping(|| {
            self.trees
                .rename_noreplace(&self.name, &self.trees, &final_name)
        });
        match renamed {
            Ok(()) => {
                self.done = true;
                // A read-only snapshot kept as a snapshot's tree: the rename durable before
                // `snapshot` returns. (A built tree is made durable by the checkout's
                // snapshot of it, which commits the transaction the rename is in.)
                if self.frozen {
                    self.trees
                        .sync()
                        .map_err(|e| Error::io_at("sync", self.store.root().join(DIR), e))?;
                }
                let owner = self
                    .dir
                    .stat_self()
                    .map_err(|e| io_at(&final_path, e))?
                    .st_uid;
                Ok(Tree {
                    dir: self.dir.try_clone().map_err(|e| io_at(&final_path, e))?,
                    path: final_path,
                    owner,
                })
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                let store = self.store;
                self.discard()?;
                open(store, id)?.ok_or_else(|| {
                    Error::msg(format!(
                        "{} exists but is not a read-only subvolume",
                        final_path.display()
                    ))
                })
            }
            Err(e) => Err(Error::io_at("publish the tree", &final_path, e)),
        }
    }

    /// Publishes it: on Windows no [`Pending`] is ever made ([`create`] makes none), so this
    /// only says so.
    #[cfg(windows)]
    pub fn publish(self, _id: &Hash) -> Result<Tree> {
        Err(Error::Io(cowtree_fs::sys::Unavailable::error(
            "tree subvolumes (btrfs)",
        )))
    }

    /// Removes it now (O(1) where the kernel permits, else by removing the tree).
    pub fn discard(mut self) -> Result<()> {
        self.done = true;
        delete_entry(&self.trees, &self.store.root().join(DIR), &self.name).map(|_| ())
    }
}

impl Drop for Pending<'_> {
    fn drop(&mut self) {
        if let Some(undo) = self.undo.take() {
            if self.done {
                undo.forget();
            } else {
                // Best effort, the same removal as a signal handler's: gc removes what is
                // left.
                let _ = undo.undo();
            }
        }
    }
}

/// Deletes the subvolume (or, should it be one, the plain directory or file) `name` in
/// `parent`; `None` when it was not there.
#[cfg(unix)]
fn delete_entry(parent: &Dir, parent_path: &Path, name: &OsStr) -> Result<Option<Deleted>> {
    let path = parent_path.join(name);
    let Some(st) = parent.try_stat(name).map_err(|e| io_at(&path, e))? else {
        return Ok(None);
    };
    if FileType::from_raw_mode(st.st_mode) != FileType::Directory
        || st.st_ino != cowtree_fs::sys::SUBVOLUME_ROOT_INO
    {
        parent.remove_tree(name).map_err(|e| io_at(&path, e))?;
        return Ok(Some(Deleted::RemovedTree {
            because: Cause::NotSubvolumeRoot,
        }));
    }
    match subvolume::delete(At::new(parent, parent_path), name) {
        Ok(how) => Ok(Some(how)),
        Err(e) if e.cause == Cause::NotFound => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Deletes the plain directory or file `name` in `parent` (Windows has no subvolumes);
/// `None` when it was not there.
#[cfg(windows)]
fn delete_entry(parent: &Dir, parent_path: &Path, name: &OsStr) -> Result<Option<Deleted>> {
    let path = parent_path.join(name);
    if parent
        .try_stat(name)
        .map_err(|e| io_at(&path, e))?
        .is_none()
    {
        return Ok(None);
    }
    parent.remove_tree(name).map_err(|e| io_at(&path, e))?;
    Ok(Some(Deleted::RemovedTree {
        because: Cause::NotSubvolumeRoot,
    }))
}

/// Removes the tree of snapshot `id` (its stat cache first), if the store holds one; says
/// how it was deleted. Called by `rm` once the snapshot is gone.
pub fn remove(store: &Store, id: &Hash) -> Result<Option<Deleted>> {
    let Some(trees) = trees_dir(store)? else {
        return Ok(None);
    };
    let trees_path = store.root().join(DIR);
    for suffix in SIDECARS {
        let name = sidecar(id, suffix);
        match trees.remove_file(&name) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_at(&trees_path.join(name), e)),
        }
    }
    delete_entry(&trees, &trees_path, OsStr::new(&id.to_hex()))
}

fn sidecar(id: &Hash, suffix: &str) -> OsString {
    OsString::from(format!("{}{suffix}", id.to_hex()))
}

fn cache_name(id: &Hash) -> OsString {
    sidecar(id, CACHE_SUFFIX)
}

/// What a tree holds, as a checkout reports it: kept beside the tree (`trees/<id>.counts`,
/// JSON) so that a checkout that only snapshots the tree need not read the manifest.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Counts {
    /// File and executable entries.
    pub files: u64,
    /// Symlinks.
    pub symlinks: u64,
    /// Directories but the root: every ancestor of an entry, and every empty directory.
    pub dirs: u64,
    /// Bytes of file data.
    pub bytes: u64,
}

impl Counts {
    /// The counts of `manifest`'s tree, which it keeps.
    pub fn of_compact(manifest: &crate::compact::CompactManifest) -> Counts {
        Counts {
            files: manifest.files(),
            symlinks: manifest.symlinks(),
            dirs: manifest.dirs().saturating_sub(1) as u64,
            bytes: manifest.bytes(),
        }
    }

    /// The counts of `manifest`'s tree.
    pub fn of(manifest: &crate::manifest::Manifest) -> Counts {
        use crate::manifest::Kind;
        let mut dirs: std::collections::HashSet<&[u8]> = std::collections::HashSet::new();
        let mut symlinks = 0;
        for e in manifest.entries() {
            match e.kind {
                Kind::Dir => {
                    dirs.insert(&e.path);
                }
                Kind::Symlink => symlinks += 1,
                _ => {}
            }
            let mut p: &[u8] = &e.path;
            loop {
                let (parent, _) = crate::util::split(p);
                if parent.is_empty() || !dirs.insert(parent) {
                    break;
                }
                p = parent;
            }
        }
        Counts {
            files: manifest.files(),
            symlinks,
            dirs: dirs.len() as u64,
            bytes: manifest.bytes(),
        }
    }
}

/// The counts kept beside the tree of snapshot `id`; `None` when there are none (or they do
/// not read).
pub fn counts(store: &Store, id: &Hash) -> Option<Counts> {
    let trees = trees_dir(store).ok()??;
    let bytes = crate::util::read_at(&trees, &sidecar(id, COUNTS_SUFFIX)).ok()??;
    serde_json::from_slice(&bytes).ok()
}

/// Keeps `counts` beside the tree of snapshot `id` (atomically, not synced: counts lost in a
/// crash are counted again from the manifest).
pub fn set_counts(store: &Store, id: &Hash, counts: &Counts) -> Result<()> {
    let Some(trees) = trees_dir(store)? else {
        return Ok(());
    };
    let name = sidecar(id, COUNTS_SUFFIX);
    let json = serde_json::to_vec(counts).expect("integers serialize");
    cowtree_fs::atomic_file::write_atomic(&trees, &name, &json, 0o644, false)
        .map_err(|e| io_at(&store.root().join(DIR).join(name), e))
}

/// The stat cache kept beside the tree of snapshot `id` (`trees/<id>.stat`), open for
/// reading; `None` when there is none.
pub fn cache(store: &Store, id: &Hash) -> Option<std::fs::File> {
    let trees = trees_dir(store).ok()??;
    #[cfg(windows)]
    return trees.open_file(&cache_name(id)).ok();
    #[cfg(unix)]
    let fd = rustix::fs::openat(
        &trees,
        cache_name(id),
        rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::NOFOLLOW | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    )
    .ok()?;
    #[cfg(unix)]
    Some(std::fs::File::from(fd))
}

/// Keeps a copy of the file `src` (a worktree's stat cache) as the stat cache of the tree of
/// snapshot `id` (atomically, not synced: a cache lost in a crash is made again; the copy
/// shares data where the filesystem can). Nothing is written when the store holds no such
/// tree.
pub fn set_cache(store: &Store, id: &Hash, src: &std::fs::File) -> Result<()> {
    let Some(trees) = trees_dir(store)? else {
        return Ok(());
    };
    if trees
        .try_stat(OsStr::new(&id.to_hex()))
        .map_err(|e| io_at(&path(store, id), e))?
        .is_none()
    {
        return Ok(());
    }
    copy_atomic(&trees, &cache_name(id), src)
        .map_err(|e| io_at(&store.root().join(DIR).join(cache_name(id)), e))
}

/// Writes a copy of `src` to `name` in `dir`, atomically and not synced: a clone sharing
/// its data where the filesystem can (a stat cache of a large tree is megabytes, one per
/// checkout), else a copy of its bytes.
#[cfg(unix)]
pub fn copy_atomic(dir: &Dir, name: &OsStr, src: &std::fs::File) -> io::Result<()> {
    use std::os::fd::AsFd;
    let mut f = cowtree_fs::atomic_file::AtomicFile::create(dir.as_fd(), 0o644)?;
    if cowtree_fs::sys::ficlone(f.file().as_fd(), src.as_fd()).is_err() {
        let mut from = src.try_clone()?;
        std::io::Seek::seek(&mut from, std::io::SeekFrom::Start(0))?;
        cowtree_fs::copy::copy_fd(&from, f.file().as_fd())?;
    }
    f.commit(name, false)
}

/// Writes a copy of `src`'s bytes to `name` in `dir`, atomically and not synced (see the unix
/// one; Windows clones no open file into another here, so its bytes are copied).
#[cfg(windows)]
pub fn copy_atomic(dir: &Dir, name: &OsStr, src: &std::fs::File) -> io::Result<()> {
    use cowtree_fs::sys::AsFd;
    let mut f = cowtree_fs::atomic_file::AtomicFile::create(dir.as_fd(), 0o644)?;
    let mut from = src.try_clone()?;
    std::io::Seek::seek(&mut from, std::io::SeekFrom::Start(0))?;
    std::io::copy(&mut from, f.file())?;
    f.commit(name, false)
}

/// What [`collect`] did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Collected {
    /// Trees removed (or, with `dry_run`, to remove): of snapshots that are gone, and trees
    /// a killed process left half made; with how each was deleted.
    pub removed: Vec<(PathBuf, &'static str)>,
    /// Stat caches and counts removed whose tree is gone.
    pub caches_removed: u64,
}

/// gc's pass over `trees/` (call with the store lock held exclusively, so that no tree is
/// being made): removes every `.tmp-*` (left by a process that was killed), every tree whose
/// snapshot is not in `live`, every `trees/<id>` that [`open`] does not trust (not a
/// read-only subvolume root: changed behind the store's back; the next checkout builds it
/// anew), and every stat cache or counts file whose tree is gone.
pub fn collect(
    store: &Store,
    live: &std::collections::HashSet<Hash>,
    dry_run: bool,
) -> Result<Collected> {
    let mut out = Collected::default();
    let Some(trees) = trees_dir(store)? else {
        return Ok(out);
    };
    let trees_path = store.root().join(DIR);
    let entries = trees.entries().map_err(|e| io_at(&trees_path, e))?;
    let mut kept_trees = std::collections::HashSet::new();
    for e in &entries {
        let name = e.name.as_encoded_bytes();
        let keep = match std::str::from_utf8(name).ok().and_then(Hash::from_hex) {
            Some(id) => live.contains(&id) && open(store, &id)?.is_some(),
            None if name.starts_with(TMP_PREFIX.as_bytes()) => false,
            // Stat caches, below; nothing else of ours is here.
            None => continue,
        };
        if keep {
            kept_trees.insert(name.to_vec());
            continue;
        }
        let path = trees_path.join(&e.name);
        let how = if dry_run {
            "dry-run"
        } else {
            match delete_entry(&trees, &trees_path, &e.name)? {
                Some(how) => how.as_str(),
                None => continue,
            }
        };
        out.removed.push((path, how));
    }
    for e in &entries {
        let name = e.name.as_encoded_bytes();
        let Some(tree) = SIDECARS
            .iter()
            .find_map(|suffix| name.strip_suffix(suffix.as_bytes()))
        else {
            continue;
        };
        if kept_trees.contains(tree) {
            continue;
        }
        if !dry_run {
            match trees.remove_file(&e.name) {
                Ok(()) => {}
                Err(err) if err.kind() == io::ErrorKind::NotFound => continue,
                Err(err) => return Err(io_at(&trees_path.join(&e.name), err)),
            }
        }
        out.caches_removed += 1;
    }
    Ok(out)
}

/// The trees in the store: every `trees/<id>` entry by snapshot id (whatever it is; see
/// [`open`] for what is trusted).
pub fn ids(store: &Store) -> Result<Vec<Hash>> {
    let Some(trees) = trees_dir(store)? else {
        return Ok(Vec::new());
    };
    let trees_path = store.root().join(DIR);
    let mut ids: Vec<Hash> = trees
        .entries()
        .map_err(|e| io_at(&trees_path, e))?
        .iter()
        .filter_map(|e| e.name.to_str().and_then(Hash::from_hex))
        .collect();
    ids.sort();
    Ok(ids)
}
