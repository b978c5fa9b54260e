//! Finding, creating and opening a store; its lock; its directories.

use std::ffi::{OsStr, OsString};
use std::io;
#[cfg(unix)]
use std::os::fd::OwnedFd;
#[cfg(unix)]
use std::os::unix::ffi::OsStringExt;
use std::path::{Path, PathBuf};

use cowtree_fs::atomic_file::AtomicFile;
use cowtree_fs::dir::Dir;
use cowtree_fs::sys::AsFd;
#[cfg(unix)]
use rustix::fs::{Access, AtFlags, FlockOperation, Mode, OFlags, accessat, flock, openat};
#[cfg(unix)]
use rustix::io::Errno;

use crate::compact::CompactManifest;
use crate::error::{Corrupt, Error, NotFound, Result};
use crate::hash::Hash;
use crate::manifest::{
    Archive, EntryChecker, EntryMeta, EntryRef, Manifest, ManifestError, read_each, read_each_meta,
    validate_encoded,
};
pub use crate::tmp_staging::Staging;
use crate::util::{open_at, read_at, unique_suffix, write_atomic};

/// The store layout version this code reads and writes.
pub const FORMAT_VERSION: u32 = 1;
const FORMAT_FILE: &str = "format";
const LAYOUT: [&str; 5] = ["blobs", "snapshots", "refs", "worktrees", "tmp"];

/// A snapshot's manifest file, open ([`Store::open_snapshot`]). Each read of it starts at its
/// first byte, checks that the bytes hash to the snapshot's id and decodes them as
/// [`Store::load`] does: two reads give the same entries, even when the snapshot is removed
/// between them.
#[derive(Debug)]
pub struct SnapshotFile {
    id: Hash,
    path: PathBuf,
    file: std::fs::File,
    size: u64,
}

impl SnapshotFile {
    /// Reads the manifest, handing each entry to `f` as it is decoded and checked, holding
    /// none of them. When this returns an error, `f` may have been handed entries before it:
    /// discard what it made of them (see [`Store::each_entry`]).
    pub fn each_entry(&self, mut f: impl FnMut(EntryRef<'_>)) -> Result<()> {
        self.read_with(|file, size| read_each(file, size, &mut f))
    }

    /// [`SnapshotFile::each_entry`], handing `f` also what a version 2 manifest records of
    /// each entry beside it (`None` in version 1: [`crate::manifest::EntryMeta`]), and
    /// returning a version 2 manifest's archive: its kept items and its records of
    /// directories and special files, without its entries' metadata (handed to `f`). The
    /// archive's checks of an entry come after `f` has it: as with `each_entry`, discard what
    /// `f` made when this returns an error.
    pub fn each_entry_meta(
        &self,
        mut f: impl FnMut(EntryRef<'_>, Option<&EntryMeta>),
    ) -> Result<Option<Archive>> {
        self.read_with(|file, size| read_each_meta(file, size, &mut f))
    }

    /// The number of file entries (files and executables) and their total size, as
    /// [`Manifest::files`] and [`Manifest::bytes`] count them, in one read holding no entry:
    /// what `ls` and `show` print of a snapshot.
    pub fn file_totals(&self) -> Result<(u64, u64)> {
        let (mut files, mut bytes) = (0u64, 0u64);
        self.each_entry(|e| {
            if e.kind.has_blob() {
                files += 1;
                bytes = bytes.saturating_add(e.size());
            }
        })?;
        Ok((files, bytes))
    }

    /// Decodes the file from its first byte with `read`, which hashes every byte: bytes
    /// that are not the snapshot's are refused as such, before any decoding error. The file
    /// is read at offsets of this read's own (the descriptor's offset is not used), so reads
    /// from several threads at once do not mix.
    fn read_with<T>(
        &self,
        read: impl FnOnce(ReadAt<'_>, u64) -> io::Result<(Hash, std::result::Result<T, ManifestError>)>,
    ) -> Result<T> {
        let io = |e| Error::io_at("read", &self.path, e);
        let src = ReadAt {
            file: &self.file,
            pos: 0,
        };
        let (hash, decoded) = read(src, self.size).map_err(io)?;
        if hash != self.id {
            return Err(Corrupt::SnapshotBytes {
                id: self.id,
                path: self.path.clone(),
            }
            .into());
        }
        decoded.map_err(|source| Error::Manifest {
            context: format!("snapshot {}", self.id.to_hex()),
            source,
        })
    }
}

/// A [`SnapshotFile`]'s bytes read from its start at offsets of the reader's own.
struct ReadAt<'a> {
    file: &'a std::fs::File,
    pos: u64,
}

impl io::Read for ReadAt<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        #[cfg(unix)]
        let n = std::os::unix::fs::FileExt::read_at(self.file, buf, self.pos)?;
        // Moves the handle's position too, which no reader of a `SnapshotFile` uses: each
        // read gives its offset.
        #[cfg(windows)]
        let n = std::os::windows::fs::FileExt::seek_read(self.file, buf, self.pos)?;
        self.pos += n as u64;
        Ok(n)
    }
}

/// An open store.
#[derive(Debug)]
pub struct Store {
    root: PathBuf,
    dir: Dir,
    blobs: Dir,
    snapshots: Dir,
    refs: Dir,
    worktrees: Dir,
    tmp: Dir,
    /// Where `worktrees` is (see [`Store::worktrees_path`]).
    worktrees_path: PathBuf,
    /// This process cannot write the store (see [`Store::is_read_only`]).
    read_only: bool,
}

/// Where the store is: `explicit` (the `--store` option), else `COWTREE_STORE`, else
/// `$XDG_DATA_HOME/cowtree`, else `~/.local/share/cowtree`. The CLI picks a store per
/// filesystem instead of the last two (see [`crate::discover`]).
pub fn locate(explicit: Option<&Path>) -> Result<PathBuf> {
    if let Some(p) = explicit {
        return Ok(p.to_path_buf());
    }
    if let Some(p) = crate::discover::from_env() {
        return Ok(p);
    }
    crate::discover::default_location()
}

/// The marker file of a store being removed, in its root (see [`crate::remove`]).
pub const MARKER: &str = "removing";

/// A held flock on the store (on Windows, a `LockFileEx` lock: see `lock_windows.rs`);
/// released on drop.
#[derive(Debug)]
pub struct LockGuard {
    /// `None` for a store this process cannot write that has no lock file (see
    /// [`Store::lock_shared`]).
    #[cfg(unix)]
    _fd: Option<OwnedFd>,
    #[cfg(windows)]
    _held: Option<crate::lock::Held>,
}

impl Store {
    /// Opens the store at `root`, creating it (and missing parents) when it does not exist or
    /// is an empty directory. A directory that holds other things, or a store of another format
    /// version, is refused with a message naming it.
    ///
    /// Reading a store needs no write to it: a store this process cannot write (a read-only
    /// mount, another user's directory) opens all the same, and the registry of the worktrees
    /// checked out from it is kept outside it, in this user's state directory
    /// ([`crate::discover::outside_registry`], created on demand), where every command of this
    /// user that opens the store (status, `worktree list`, gc) finds it. Once the store can be
    /// written again, opening it moves those records into its own `worktrees/`.
    pub fn open(root: &Path) -> Result<Store> {
        let ctx = |e: io::Error| Error::io_at("store", root, e);
        std::fs::create_dir_all(root).map_err(ctx)?;
        let dir = Dir::open(root).map_err(ctx)?;
        if dir.try_stat(OsStr::new(MARKER)).map_err(ctx)?.is_some() {
            return Err(Error::BeingRemoved {
                path: root.to_path_buf(),
            });
        }
        match read_at(&dir, OsStr::new(FORMAT_FILE)).map_err(ctx)? {
            Some(bytes) => check_format(root, &bytes)?,
            None => create_layout(root, &dir)?,
        }
        let sub = |n: &str| dir.open_dir(OsStr::new(n)).map_err(ctx);
        let (worktrees, worktrees_path, read_only) = registry_place(root, &dir, sub("worktrees")?)?;
        Ok(Store {
            root: root.to_path_buf(),
            blobs: sub("blobs")?,
            snapshots: sub("snapshots")?,
            refs: sub("refs")?,
            worktrees,
            tmp: sub("tmp")?,
            dir,
            worktrees_path,
            read_only,
        })
    }

    /// The store's root directory, open.
    pub(crate) fn root_dir(&self) -> &Dir {
        &self.dir
    }

    /// True when this process cannot write the store: it reads snapshots and blobs, and keeps
    /// its worktrees' registry outside the store (see [`Store::open`]).
    pub fn is_read_only(&self) -> bool {
        self.read_only
    }

    /// The directory of the worktree registry ([`Store::worktrees_dir`]): `<root>/worktrees`,
    /// or the registry outside a read-only store (see [`Store::open`]).
    pub fn worktrees_path(&self) -> &Path {
        &self.worktrees_path
    }

    /// The store's root path.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The `blobs/` directory.
    pub fn blobs(&self) -> &Dir {
        &self.blobs
    }

    /// Calls `each` for every file under `blobs/<fan>/` (a fan is a directory named by two
    /// characters; other entries of `blobs/` are skipped) with its fan's directory, the fan's
    /// path and name (the hash's first two hex digits), and the file's name.
    pub(crate) fn each_blob_file(
        &self,
        mut each: impl FnMut(&Dir, &Path, &str, OsString) -> Result<()>,
    ) -> Result<()> {
        let blobs_path = self.root.join("blobs");
        let at = |p: &Path, e: io::Error| Error::io_at("", p, e);
        for fan in self.blobs.entries().map_err(|e| at(&blobs_path, e))? {
            let Some(prefix) = fan.name.to_str().filter(|n| n.len() == 2) else {
                continue;
            };
            let fan_path = blobs_path.join(&fan.name);
            let fan_dir = self
                .blobs
                .open_dir(&fan.name)
                .map_err(|e| at(&fan_path, e))?;
            for b in fan_dir.entries().map_err(|e| at(&fan_path, e))? {
                each(&fan_dir, &fan_path, prefix, b.name)?;
            }
        }
        Ok(())
    }

    /// The `refs/` directory.
    pub fn refs_dir(&self) -> &Dir {
        &self.refs
    }

    /// The worktree registry's directory: `worktrees/`, or for a read-only store its registry
    /// outside (see [`Store::worktrees_path`]).
    pub fn worktrees_dir(&self) -> &Dir {
        &self.worktrees
    }

    /// The `tmp/` directory.
    pub fn tmp_dir(&self) -> &Dir {
        &self.tmp
    }

    /// The `snapshots/` directory.
    pub fn snapshots_dir(&self) -> &Dir {
        &self.snapshots
    }

    /// Takes the lock shared (snapshot, checkout, verify): blocks while gc runs. A store this
    /// process cannot write and that has no lock file (made before stores got one when
    /// created) is not locked: nothing this process does can change it.
    #[cfg(unix)]
    pub fn lock_shared(&self) -> Result<LockGuard> {
        self.lock(
            FlockOperation::LockShared,
            FlockOperation::NonBlockingLockShared,
        )
    }

    /// Takes the lock exclusive if no other process holds it (nor this one, through another
    /// guard), without waiting: `None` when it is held.
    #[cfg(unix)]
    pub fn try_lock_exclusive(&self) -> Result<Option<LockGuard>> {
        let path = self.root.join("lock");
        let fd = openat(
            &self.dir,
            "lock",
            OFlags::RDONLY | OFlags::CREATE | OFlags::CLOEXEC | OFlags::NOFOLLOW,
            Mode::from_raw_mode(0o644),
        )
        .map_err(|e| Error::io_at("open", &path, e.into()))?;
        match flock(&fd, FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => Ok(Some(LockGuard { _fd: Some(fd) })),
            Err(Errno::WOULDBLOCK) => Ok(None),
            Err(e) => Err(Error::io_at("lock", &path, e.into())),
        }
    }

    /// Takes the lock exclusive (gc): blocks while any snapshot or checkout runs.
    #[cfg(unix)]
    pub fn lock_exclusive(&self) -> Result<LockGuard> {
        self.lock(
            FlockOperation::LockExclusive,
            FlockOperation::NonBlockingLockExclusive,
        )
    }

    #[cfg(unix)]
    fn lock(&self, blocking: FlockOperation, nonblocking: FlockOperation) -> Result<LockGuard> {
        let path = self.root.join("lock");
        let flags = OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NOFOLLOW;
        let fd = match openat(
            &self.dir,
            "lock",
            flags | OFlags::CREATE,
            Mode::from_raw_mode(0o644),
        ) {
            Ok(fd) => fd,
            Err(Errno::ROFS | Errno::ACCESS | Errno::PERM) if self.read_only => {
                match openat(&self.dir, "lock", flags, Mode::empty()) {
                    Ok(fd) => fd,
                    Err(Errno::NOENT) => return Ok(LockGuard { _fd: None }),
                    Err(e) => return Err(Error::io_at("open", &path, e.into())),
                }
            }
            Err(e) => return Err(Error::io_at("open", &path, e.into())),
        };
        match flock(&fd, nonblocking) {
            Ok(()) => return Ok(LockGuard { _fd: Some(fd) }),
            Err(Errno::WOULDBLOCK) => {
                eprintln!(
                    "cowtree: waiting for the store lock {} (another cowtree is using the store)",
                    path.display()
                );
            }
            Err(e) => return Err(Error::io_at("lock", &path, e.into())),
        }
        loop {
            match flock(&fd, blocking) {
                Ok(()) => return Ok(LockGuard { _fd: Some(fd) }),
                Err(Errno::INTR) => continue,
                Err(e) => return Err(Error::io_at("lock", &path, e.into())),
            }
        }
    }

    /// Takes the lock shared (snapshot, checkout, verify): blocks while gc runs. A store this
    /// process cannot write and that has no lock file is not locked: nothing this process
    /// does can change it.
    #[cfg(windows)]
    pub fn lock_shared(&self) -> Result<LockGuard> {
        self.lock(false)
    }

    /// Takes the lock exclusive if no other process holds it (nor this one, through another
    /// guard), without waiting: `None` when it is held.
    #[cfg(windows)]
    pub fn try_lock_exclusive(&self) -> Result<Option<LockGuard>> {
        let path = self.root.join("lock");
        let file = open_lock_file(&self.dir, true)
            .map_err(|e| Error::io_at("open", &path, e))?
            .ok_or_else(|| Error::io_at("open", &path, io::ErrorKind::NotFound.into()))?;
        match crate::lock::try_lock(file, true) {
            Ok(Ok(held)) => Ok(Some(LockGuard { _held: Some(held) })),
            Ok(Err(_)) => Ok(None),
            Err(e) => Err(Error::io_at("lock", &path, e)),
        }
    }

    /// Takes the lock exclusive (gc): blocks while any snapshot or checkout runs.
    #[cfg(windows)]
    pub fn lock_exclusive(&self) -> Result<LockGuard> {
        self.lock(true)
    }

    /// The lock on Windows: `LockFileEx` on the `lock` file (see `lock_windows.rs`), as
    /// `flock` on unix, saying when it waits.
    #[cfg(windows)]
    fn lock(&self, exclusive: bool) -> Result<LockGuard> {
        let path = self.root.join("lock");
        let file = match open_lock_file(&self.dir, true) {
            Ok(f) => f,
            Err(e) if self.read_only && e.kind() == io::ErrorKind::PermissionDenied => {
                open_lock_file(&self.dir, false).map_err(|e| Error::io_at("open", &path, e))?
            }
            Err(e) => return Err(Error::io_at("open", &path, e)),
        };
        let Some(file) = file else {
            return Ok(LockGuard { _held: None });
        };
        let file = match crate::lock::try_lock(file, exclusive) {
            Ok(Ok(held)) => return Ok(LockGuard { _held: Some(held) }),
            Ok(Err(file)) => {
                eprintln!(
                    "cowtree: waiting for the store lock {} (another cowtree is using the store)",
                    path.display()
                );
                file
            }
            Err(e) => return Err(Error::io_at("lock", &path, e)),
        };
        crate::lock::lock(file, exclusive)
            .map(|held| LockGuard { _held: Some(held) })
            .map_err(|e| Error::io_at("lock", &path, e))
    }

    /// Creates a fresh staging directory `tmp/<purpose>-<pid>-<n>-<t>/`, flocked until dropped.
    /// Once the process is stopping ([`cowtree_fs::staging::stop_staging`]) it creates nothing
    /// and fails with an `Interrupted` error.
    pub fn staging(&self, purpose: &str) -> Result<Staging> {
        Staging::make(&self.tmp, &self.root.join("tmp"), purpose)
    }

    /// The name of a blob relative to `blobs/`: `ab/cdef...`.
    #[cfg(unix)]
    pub fn blob_rel(hash: &Hash) -> OsString {
        let hex = hash.hex_bytes();
        let mut rel = Vec::with_capacity(hex.len() + 1);
        rel.extend_from_slice(&hex[..2]);
        rel.push(b'/');
        rel.extend_from_slice(&hex[2..]);
        OsString::from_vec(rel)
    }

    /// The name of a blob relative to `blobs/`: `ab/cdef...` (a relative path: Windows opens
    /// it one component at a time, see [`Store::blob_fanout`]).
    #[cfg(windows)]
    pub fn blob_rel(hash: &Hash) -> OsString {
        let hex = hash.to_hex();
        OsString::from(format!("{}/{}", &hex[..2], &hex[2..]))
    }

    /// The fan-out directory of a blob under `blobs/`, open, and the blob's name in it:
    /// where Windows reaches a blob (it opens one component at a time).
    #[cfg(windows)]
    pub(crate) fn blob_fanout(&self, hash: &Hash) -> io::Result<(Dir, OsString)> {
        let hex = hash.to_hex();
        let dir = self.blobs.open_dir(OsStr::new(&hex[..2]))?;
        Ok((dir, OsString::from(&hex[2..])))
    }

    /// The full path of a blob, for messages and tests.
    pub fn blob_path(&self, hash: &Hash) -> PathBuf {
        self.root.join("blobs").join(Self::blob_rel(hash))
    }

    /// The fan-out directory name of a blob, created on demand.
    pub(crate) fn ensure_fanout(&self, hash: &Hash) -> io::Result<()> {
        let name = OsString::from(&hash.to_hex()[..2]);
        match self.blobs.create_dir(&name, 0o755) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// True when the snapshot `id` exists.
    pub fn has_snapshot(&self, id: &Hash) -> Result<bool> {
        let name = id.to_hex();
        Ok(self
            .snapshots
            .try_stat(OsStr::new(&name))
            .map_err(|e| Error::io_at("", self.root.join("snapshots").join(&name), e))?
            .is_some())
    }

    /// Reads and validates the manifest of snapshot `id`, checking that its bytes hash to `id`.
    /// Its bytes are decoded as they are read ([`Manifest::read`]), never held whole beside
    /// the entries; bytes that do not hash to `id` are refused as such, whether or not they
    /// decode.
    pub fn load(&self, id: &Hash) -> Result<Manifest> {
        self.load_with(id, |f, size| Manifest::read(f, size))
    }

    /// True when snapshot `id`'s manifest is of version 2 (it records what `snapshot
    /// --archive` keeps: [`crate::manifest::Archive`]), told by its header alone.
    pub fn has_archive(&self, id: &Hash) -> Result<bool> {
        Ok(self.archive_items(id)?.is_some())
    }

    /// What snapshot `id` records beside its tree (`snapshot --archive`'s items), when its
    /// manifest is of version 2, told by its header alone (not checked: a manifest read
    /// whole is).
    pub fn archive_items(&self, id: &Hash) -> Result<Option<cowtree_link::Preserve>> {
        use std::io::Read;
        let f = self.open_snapshot(id)?;
        // Magic, version, entry count, kept items.
        let mut head = Vec::with_capacity(21);
        (&f.file)
            .take(21)
            .read_to_end(&mut head)
            .map_err(|e| Error::io_at("read", &f.path, e))?;
        let v2 = head.len() == 21
            && head[..8] == crate::manifest::MAGIC[..]
            && head[8..12] == crate::manifest::VERSION_ARCHIVE.to_le_bytes()[..];
        Ok(v2.then(|| crate::manifest::preserve_of(head[20])).flatten())
    }

    /// Snapshot `id`'s manifest in its compact form (each directory's path once, each entry
    /// by its directory and name: [`CompactManifest`]), read and checked as [`Store::load`]
    /// reads and checks it: what a checkout holds of the tree it makes.
    pub fn load_compact(&self, id: &Hash) -> Result<CompactManifest> {
        self.load_with(id, |f, size| CompactManifest::read(f, size))
    }

    /// Reads snapshot `id`'s manifest as [`Store::load`] does, handing each entry to `f` as it
    /// is decoded and checked, holding none of them. When this returns an error (bytes that
    /// are not the snapshot's, a manifest that does not decode), `f` may have been handed
    /// entries before it: discard what it made of them.
    pub fn each_entry(&self, id: &Hash, f: impl FnMut(EntryRef<'_>)) -> Result<()> {
        self.open_snapshot(id)?.each_entry(f)
    }

    /// Opens snapshot `id`'s manifest file, to read it once or more ([`SnapshotFile`]).
    pub fn open_snapshot(&self, id: &Hash) -> Result<SnapshotFile> {
        let hex = id.to_hex();
        let path = self.root.join("snapshots").join(&hex);
        let fd = open_at(&self.snapshots, OsStr::new(&hex))
            .map_err(|e| Error::io_at("read", &path, e))?
            .ok_or(NotFound::Snapshot(*id))?;
        let st = cowtree_fs::sys::fstat(fd.as_fd()).map_err(|e| Error::io_at("read", &path, e))?;
        // A FIFO or a device would read as an empty or endless manifest.
        if !cowtree_fs::sys::stat_file_type(&st).is_file() {
            return Err(Error::io_at(
                "read",
                &path,
                io::Error::new(io::ErrorKind::InvalidData, "not a regular file"),
            ));
        }
        Ok(SnapshotFile {
            id: *id,
            path,
            file: std::fs::File::from(fd),
            size: cowtree_fs::sys::stat_size(&st),
        })
    }

    /// Opens snapshot `id`'s file and decodes it with `read` ([`SnapshotFile`]).
    fn load_with<T>(
        &self,
        id: &Hash,
        read: impl FnOnce(ReadAt<'_>, u64) -> io::Result<(Hash, std::result::Result<T, ManifestError>)>,
    ) -> Result<T> {
        self.open_snapshot(id)?.read_with(read)
    }

    /// The bytes of snapshot `id`'s manifest, checked to hash to `id` but not decoded.
    pub fn read_snapshot(&self, id: &Hash) -> Result<Vec<u8>> {
        let hex = id.to_hex();
        let path = || self.root.join("snapshots").join(&hex);
        let bytes = read_at(&self.snapshots, OsStr::new(&hex))
            .map_err(|e| Error::io_at("read", path(), e))?
            .ok_or(NotFound::Snapshot(*id))?;
        if Hash::of(&bytes) != *id {
            return Err(Corrupt::SnapshotBytes {
                id: *id,
                path: path(),
            }
            .into());
        }
        Ok(bytes)
    }

    /// Writes `m` as a snapshot (a no-op if it exists: the same bytes have the same name) and
    /// returns its id.
    pub fn save(&self, m: &Manifest) -> Result<Hash> {
        self.write_manifest(&m.encode())
    }

    /// Records a manifest given as its encoding as [`Store::save`] records a manifest: under
    /// the hash of its bytes, which it returns. The bytes are checked first as
    /// [`Manifest::decode`] checks them ([`validate_encoded`]); `context` names them in the
    /// error.
    pub fn save_encoded(&self, bytes: &[u8], context: &str) -> Result<Hash> {
        validate_encoded(bytes).map_err(|source| Error::Manifest {
            context: context.to_string(),
            source,
        })?;
        self.write_manifest(bytes)
    }

    /// Writes a manifest's `bytes` under their hash, once the blobs it names are durable.
    fn write_manifest(&self, bytes: &[u8]) -> Result<Hash> {
        let id = Hash::of(bytes);
        let name = OsString::from(id.to_hex());
        let path = self.root.join("snapshots").join(&name);
        if (self.snapshots.try_stat(&name))
            .map_err(|e| Error::io_at("", &path, e))?
            .is_some()
        {
            // See `ManifestWriter::finish`.
            self.sync_snapshots()?;
        } else {
            self.sync_filesystem()?;
            // Gated as [`ManifestWriter`]'s file is.
            cowtree_fs::staging::unless_stopping(|| {
                write_atomic(&self.snapshots, &name, bytes, 0o444)
            })
            .map_err(|e| Error::io_at("write", &path, e))?;
        }
        Ok(id)
    }

    /// Starts recording a snapshot manifest of `count` entries given one encoded entry at a
    /// time (see [`ManifestWriter`]). `context` names the manifest in errors (e.g. "snapshot
    /// of /some/dir").
    pub fn manifest_writer(&self, count: u64, context: &str) -> Result<ManifestWriter<'_>> {
        // Gated as staging is: a signal handler that removes this process's temporary files
        // in snapshots/ finds every one made (see `cowtree_fs::staging::stop_staging`).
        let file = cowtree_fs::staging::unless_stopping(|| {
            AtomicFile::create(self.snapshots.as_fd(), 0o444)
        })
        .map_err(|e| Error::io_at("", self.root.join("snapshots"), e))?;
        let mut buf = Vec::with_capacity(WRITE_CHUNK + 64 * 1024);
        crate::manifest::encode_header(&mut buf, count);
        Ok(ManifestWriter {
            store: self,
            file,
            buf,
            hasher: blake3::Hasher::new(),
            check: EntryChecker::default(),
            count,
            context: context.to_string(),
            syncer: None,
            sync_tried: false,
            failed: false,
        })
    }

    /// Makes everything written to the store's filesystem so far durable (`syncfs`): the
    /// blobs a manifest is about to name, with their fan-out directory entries. Called before
    /// a manifest is given its name, so that a snapshot that survives a power loss never
    /// names a blob that did not (docs/store.md, "Durability").
    #[cfg(unix)]
    pub fn sync_filesystem(&self) -> Result<()> {
        self.dir
            .sync_filesystem()
            .map_err(|e| Error::io_at("sync the store", &self.root, e))
    }

    /// Makes everything written to the store's volume so far durable: a flush of the volume,
    /// which Windows allows administrators only. Where it is refused (access denied; Wine
    /// cannot flush a volume at all), nothing more is done here: on Windows every writer of
    /// the store flushes what it writes itself (ingest each blob and the fan-out directory
    /// it was renamed into; a manifest is flushed with its directory when it is named; gc
    /// the fan-out directories it removed blobs from), so nothing is owed to this call.
    #[cfg(windows)]
    pub fn sync_filesystem(&self) -> Result<()> {
        use windows_sys::Win32::Foundation::{
            ERROR_ACCESS_DENIED, ERROR_INVALID_FUNCTION, ERROR_PRIVILEGE_NOT_HELD,
        };
        match self.dir.sync_filesystem() {
            Ok(()) => Ok(()),
            Err(e)
                if cowtree_fs::raw_errno(&e).is_some_and(|n| {
                    [
                        ERROR_ACCESS_DENIED,
                        ERROR_INVALID_FUNCTION,
                        ERROR_PRIVILEGE_NOT_HELD,
                    ]
                    .iter()
                    .any(|&c| c as i32 == n)
                }) =>
            {
                Ok(())
            }
            Err(e) => Err(Error::io_at("sync the store", &self.root, e)),
        }
    }

    /// `fsync` of `snapshots/`: a manifest named there survives a power loss.
    fn sync_snapshots(&self) -> Result<()> {
        self.snapshots
            .sync()
            .map_err(|e| Error::io_at("sync", self.root.join("snapshots"), e))
    }

    /// Removes snapshot `id`'s manifest, durably. Its blobs stay until [`crate::gc`]; a
    /// snapshot that does not exist is not an error.
    pub fn remove_snapshot(&self, id: &Hash) -> Result<()> {
        let dir = || self.root.join("snapshots");
        match self.snapshots.remove_file(OsStr::new(&id.to_hex())) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => {
                return Err(Error::io_at("", dir(), e));
            }
            _ => {}
        }
        self.snapshots
            .sync()
            .map_err(|e| Error::io_at("sync", dir(), e))
    }

    /// Every snapshot id in the store, sorted. Names that are not ids (temp files) are skipped.
    pub fn snapshot_ids(&self) -> Result<Vec<Hash>> {
        let mut ids: Vec<Hash> = self
            .snapshots
            .entries()
            .map_err(|e| Error::io_at("", self.root.join("snapshots"), e))?
            .into_iter()
            .filter_map(|e| e.name.to_str().and_then(Hash::from_hex))
            .collect();
        ids.sort();
        Ok(ids)
    }

    /// Whether the store holds a snapshot: `snapshots/` is read only up to its first id (names
    /// that are not ids, temp files, are skipped), not listed and sorted like
    /// [`Store::snapshot_ids`].
    #[cfg(unix)]
    pub fn holds_any_snapshot(&self) -> Result<bool> {
        let err = |e: Errno| Error::io_at("", self.root.join("snapshots"), e.into());
        let mut dir = rustix::fs::Dir::read_from(&self.snapshots).map_err(err)?;
        dir.rewind();
        for entry in dir {
            let entry = entry.map_err(err)?;
            let name = entry.file_name().to_bytes();
            if std::str::from_utf8(name)
                .ok()
                .and_then(Hash::from_hex)
                .is_some()
            {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Whether the store holds a snapshot (see the unix one): `snapshots/` listed, its names
    /// looked at until the first id.
    #[cfg(windows)]
    pub fn holds_any_snapshot(&self) -> Result<bool> {
        let entries = (self.snapshots.entries())
            .map_err(|e| Error::io_at("", self.root.join("snapshots"), e))?;
        Ok(entries
            .iter()
            .any(|e| e.name.to_str().and_then(Hash::from_hex).is_some()))
    }

    /// The device the blobs live on.
    pub fn blobs_dev(&self) -> Result<u64> {
        let st = self
            .blobs
            .stat_self()
            .map_err(|e| Error::io_at("", self.root.join("blobs"), e))?;
        Ok(cowtree_fs::sys::stat_dev(&st))
    }
}

/// Bytes a [`ManifestWriter`] gathers before it hashes and writes them.
const WRITE_CHUNK: usize = 1 << 20;

/// A snapshot manifest recorded from its encoding in pieces, for callers that build it entry
/// by entry ([`crate::manifest::encode_blob`] and the others): each entry is checked as
/// [`Manifest::decode`] checks it, and the bytes are hashed and written to a temporary file in
/// `snapshots/` as they come, in chunks, so the whole encoding is never held in memory.
/// [`ManifestWriter::finish`] makes the file durable and names it by its hash, as
/// [`Store::save`] would; dropped unfinished (or after an error), nothing is recorded.
pub struct ManifestWriter<'a> {
    store: &'a Store,
    file: AtomicFile<'a>,
    buf: Vec<u8>,
    hasher: blake3::Hasher,
    check: EntryChecker,
    count: u64,
    context: String,
    /// Started at the first chunk written (`sync_tried`, so that a thread that could not be
    /// started is not tried again); see [`Syncer`].
    syncer: Option<Syncer>,
    sync_tried: bool,
    /// A push failed: the writer takes nothing more, and `finish` names nothing.
    failed: bool,
}

/// A thread that `fdatasync`s a file being written while the writing goes on, so that the
/// data is mostly on disk by the time the writer's own `fdatasync` comes: that last one then
/// has only the tail to wait for. A request made while one is pending is dropped (the pending
/// one syncs all that is written by the time it runs).
struct Syncer {
    requests: Option<std::sync::mpsc::SyncSender<()>>,
    thread: Option<std::thread::JoinHandle<io::Result<()>>>,
}

impl Syncer {
    /// `sync` is run on the thread once per request taken; the writer's is the `fdatasync` of
    /// a duplicate of its descriptor (the same open file, so an error the thread sees is not
    /// seen again by the writer's own `fdatasync`: it is returned by [`Syncer::finish`]). The
    /// thread stops at the first error. None when no thread can be started.
    fn start(mut sync: impl FnMut() -> io::Result<()> + Send + 'static) -> Option<Syncer> {
        let (tx, rx) = std::sync::mpsc::sync_channel::<()>(1);
        let thread = std::thread::Builder::new()
            .name("cowtree-sync".into())
            .spawn(move || {
                for () in rx {
                    sync()?;
                }
                Ok(())
            })
            .ok()?;
        Some(Syncer {
            requests: Some(tx),
            thread: Some(thread),
        })
    }

    fn request(&self) {
        if let Some(tx) = &self.requests {
            // Full: a sync is pending. Gone: the thread stopped at an error, kept for finish.
            let _ = tx.try_send(());
        }
    }

    /// Waits for the sync under way, if any, and returns the first error a sync met.
    fn finish(&mut self) -> io::Result<()> {
        self.requests = None;
        match self.thread.take().map(|t| t.join()) {
            None | Some(Ok(Ok(()))) => Ok(()),
            Some(Ok(Err(e))) => Err(e),
            Some(Err(_)) => Err(io::Error::other("the sync thread panicked")),
        }
    }
}

impl Drop for Syncer {
    fn drop(&mut self) {
        let _ = self.finish();
    }
}

impl ManifestWriter<'_> {
    fn refused(&self, source: ManifestError) -> Error {
        Error::Manifest {
            context: self.context.clone(),
            source,
        }
    }

    /// Appends `entry`, exactly one encoded entry, after checking it. After an error, every
    /// push and the finish fail.
    pub fn push(&mut self, entry: &[u8]) -> Result<()> {
        if self.failed {
            return Err(self.stopped());
        }
        let pushed = self.push_checked(entry);
        self.failed = pushed.is_err();
        pushed
    }

    fn stopped(&self) -> Error {
        Error::msg(format!(
            "{}: not recorded: an earlier entry was refused or could not be written",
            self.context
        ))
    }

    fn push_checked(&mut self, entry: &[u8]) -> Result<()> {
        let index = self.check.counts.entries;
        if index >= self.count {
            return Err(self.refused(ManifestError::TrailingBytes(entry.len())));
        }
        if let Err(e) = self.check.check_one(entry, index) {
            return Err(self.refused(e));
        }
        self.buf.extend_from_slice(entry);
        if self.buf.len() >= WRITE_CHUNK {
            self.flush()?;
            // A manifest of more than one chunk starts going to disk while the rest comes.
            if !self.sync_tried {
                self.sync_tried = true;
                self.syncer = (self.file.file().try_clone().ok())
                    .and_then(|f| Syncer::start(move || f.sync_data()));
            }
            if let Some(s) = &self.syncer {
                s.request();
            }
        }
        Ok(())
    }

    fn io_error(&self, what: &'static str, e: io::Error) -> Error {
        Error::io_at(what, self.store.root.join("snapshots"), e)
    }

    fn flush(&mut self) -> Result<()> {
        self.hasher.update(&self.buf);
        io::Write::write_all(self.file.file(), &self.buf).map_err(|e| self.io_error("write", e))?;
        self.buf.clear();
        Ok(())
    }

    /// Checks that all `count` entries came, writes the rest, makes the store's filesystem
    /// durable ([`Store::sync_filesystem`]: the blobs the manifest names) and names the file
    /// `snapshots/<id>` durably (dropping it when that snapshot exists: same bytes). Returns
    /// the id.
    pub fn finish(self) -> Result<Hash> {
        self.finish_with(true)
    }

    /// [`ManifestWriter::finish`] for a caller that has made every blob the manifest names
    /// durable itself ([`Store::sync_filesystem`] after the last one was placed, e.g. while
    /// the manifest was written): no `syncfs` of its own.
    pub fn finish_synced(self) -> Result<Hash> {
        self.finish_with(false)
    }

    fn finish_with(mut self, sync_blobs: bool) -> Result<Hash> {
        if self.failed {
            return Err(self.stopped());
        }
        let entries = self.check.counts.entries;
        if entries != self.count {
            return Err(self.refused(ManifestError::Truncated { index: entries }));
        }
        self.flush()?;
        if let Some(mut s) = self.syncer.take() {
            s.finish().map_err(|e| self.io_error("sync", e))?;
        }
        let id = Hash::from_bytes(*self.hasher.finalize().as_bytes());
        let name = OsString::from(id.to_hex());
        let path = self.store.root.join("snapshots").join(&name);
        if (self.store.snapshots.try_stat(&name))
            .map_err(|e| Error::io_at("", &path, e))?
            .is_some()
        {
            // Named by another writer, perhaps not durably yet: a name set on the strength
            // of this return must not outlive the manifest.
            self.store.sync_snapshots()?;
            return Ok(id);
        }
        // The blobs this manifest names first, then the manifest under its name: unless the
        // process is stopping (its handler removes the file and says no snapshot was made).
        if sync_blobs {
            self.store.sync_filesystem()?;
        }
        let file = self.file;
        cowtree_fs::staging::unless_stopping(move || file.commit(&name, true))
            .map_err(|e| Error::io_at("write", &path, e))?;
        Ok(id)
    }
}

fn check_format(root: &Path, bytes: &[u8]) -> Result<()> {
    let text = String::from_utf8_lossy(bytes);
    let version = text
        .trim_end()
        .strip_prefix("cowtree-store ")
        .and_then(|v| v.parse::<u32>().ok());
    match version {
        Some(FORMAT_VERSION) => Ok(()),
        Some(found) => Err(Error::UnsupportedFormat {
            store: root.to_path_buf(),
            found,
            supported: FORMAT_VERSION,
        }),
        None => Err(Corrupt::FormatFile {
            path: root.join(FORMAT_FILE),
            text: text.trim_end().to_string(),
        }
        .into()),
    }
}

fn create_layout(root: &Path, dir: &Dir) -> Result<()> {
    let ctx = |e: io::Error| Error::io_at("create store", root, e);
    // Another process may be creating the same store right now: our own layout names are
    // expected; anything else means this directory is not ours to take.
    for e in dir.entries().map_err(ctx)? {
        let n = e.name.as_encoded_bytes();
        let ours =
            LAYOUT.iter().any(|l| l.as_bytes() == n) || n == b"lock" || n.starts_with(b".tmp-");
        if !ours {
            return Err(Error::NotAStore {
                path: root.to_path_buf(),
            });
        }
    }
    for name in LAYOUT {
        mkdir_ok(dir, OsStr::new(name)).map_err(ctx)?;
    }
    // The lock file exists from the start, so that a process that cannot write the store
    // (a read-only mount of it) still takes the lock every writer takes.
    #[cfg(unix)]
    openat(
        dir,
        "lock",
        OFlags::RDONLY | OFlags::CREATE | OFlags::CLOEXEC | OFlags::NOFOLLOW,
        Mode::from_raw_mode(0o644),
    )
    .map_err(|e| ctx(e.into()))?;
    #[cfg(windows)]
    open_lock_file(dir, true).map_err(ctx)?;
    let blobs = dir.open_dir(OsStr::new("blobs")).map_err(ctx)?;
    for b in 0..=255u8 {
        mkdir_ok(&blobs, OsStr::new(&format!("{b:02x}"))).map_err(ctx)?;
    }
    // The format file is written last: a store with one is complete.
    write_atomic(
        dir.as_fd(),
        OsStr::new(FORMAT_FILE),
        format!("cowtree-store {FORMAT_VERSION}\n").as_bytes(),
        0o644,
    )
    .map_err(ctx)
}

/// The registry directory of the store at `root` (whose `worktrees/` is `own`), its path, and
/// whether the store is read-only to this process (see [`Store::open`]).
#[cfg(unix)]
fn registry_place(root: &Path, dir: &Dir, own: Dir) -> Result<(Dir, PathBuf, bool)> {
    let own_path = root.join("worktrees");
    let access = Access::WRITE_OK | Access::EXEC_OK;
    match accessat(dir, "worktrees", access, AtFlags::EACCESS) {
        Ok(()) => {
            if let Some(outside) = crate::discover::outside_registry(root) {
                adopt_outside(&own, &own_path, &outside)?;
            }
            Ok((own, own_path, false))
        }
        Err(Errno::ROFS | Errno::ACCESS | Errno::PERM) => {
            let Some(outside) = crate::discover::outside_registry(root) else {
                // Nowhere else to keep it: writing a record fails, naming `worktrees/`.
                return Ok((own, own_path, true));
            };
            let made = open_outside(root, &own, &outside)
                .map_err(|e| Error::io_at("the registry of the read-only store in", &outside, e))?;
            Ok((made, outside, true))
        }
        Err(e) => Err(Error::io_at("", own_path, e.into())),
    }
}

/// The registry directory of the store at `root` (see the unix one). Windows has no
/// `access`: `worktrees/` is writable when it opens with the right to add files to it
/// ([`crate::util::writable`]).
#[cfg(windows)]
fn registry_place(root: &Path, _dir: &Dir, own: Dir) -> Result<(Dir, PathBuf, bool)> {
    let own_path = root.join("worktrees");
    if crate::util::writable(&own_path).map_err(|e| Error::io_at("", &own_path, e))? {
        if let Some(outside) = crate::discover::outside_registry(root) {
            adopt_outside(&own, &own_path, &outside)?;
        }
        return Ok((own, own_path, false));
    }
    let Some(outside) = crate::discover::outside_registry(root) else {
        return Ok((own, own_path, true));
    };
    let made = open_outside(root, &own, &outside)
        .map_err(|e| Error::io_at("the registry of the read-only store in", &outside, e))?;
    Ok((made, outside, true))
}

/// Opens (with `create`, creating when missing) the store's `lock` file under `dir`.
#[cfg(windows)]
fn open_lock_file(dir: &Dir, create: bool) -> io::Result<Option<std::fs::File>> {
    crate::lock::open_file(dir, OsStr::new("lock"), create)
}

/// Opens the registry outside the read-only store at `root` whose own registry is `own`,
/// creating it on first use as a copy of `own`'s records (each with its modification time,
/// so that the copies count as no newer when they are taken back in; see [`adopt_outside`]):
/// the worktrees registered while the store was writable keep working. It holds a file
/// `store` naming the store, for a person who finds the directory.
fn open_outside(root: &Path, own: &Dir, outside: &Path) -> io::Result<Dir> {
    match Dir::open(outside) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        found => return found,
    }
    let (Some(parent), Some(name)) = (outside.parent(), outside.file_name()) else {
        return Err(io::Error::from(io::ErrorKind::InvalidInput));
    };
    std::fs::create_dir_all(parent)?;
    let parent = Dir::open(parent)?;
    // Made whole under another name, then renamed into place: a registry outside is never
    // seen half copied.
    let mut tmp = name.to_os_string();
    tmp.push(format!(".tmp-{}", unique_suffix()));
    let made = parent.create_dir_open(&tmp, 0o700)?;
    let filled = (|| -> io::Result<()> {
        for e in own.entries()? {
            let n = e.name.as_encoded_bytes();
            if !e.file_type.is_file() || n.starts_with(b".tmp-") {
                continue;
            }
            let (Some(bytes), Some(st)) = (read_at(own, &e.name)?, own.try_stat(&e.name)?) else {
                continue;
            };
            cowtree_fs::atomic_file::write_atomic(&made, &e.name, &bytes, 0o644, false)?;
            let (atime, mtime) = cowtree_fs::sys::stat_times(&st);
            made.set_times(&e.name, atime, mtime)?;
        }
        let mut line = (crate::discover::absolute(root)?.into_os_string()).into_encoded_bytes();
        line.push(b'\n');
        write_atomic(&made, OsStr::new("store"), &line, 0o644)?;
        #[cfg(windows)]
        parent
            .rename_noreplace(&tmp, &parent, name)
            .or_else(|e| match e.kind() {
                // Another process made it first: use that one.
                io::ErrorKind::AlreadyExists | io::ErrorKind::DirectoryNotEmpty => Ok(()),
                _ => Err(e),
            })?;
        #[cfg(unix)]
        rustix::fs::renameat_with(
            &parent,
            &tmp,
            &parent,
            name,
            rustix::fs::RenameFlags::NOREPLACE,
        )
        .or_else(|e| match e {
            // Another process made it first: use that one.
            Errno::EXIST | Errno::NOTEMPTY => Ok(()),
            e => Err(e),
        })?;
        Ok(())
    })();
    let _ = parent.remove_tree(&tmp);
    filled?;
    Dir::open(outside)
}

/// Moves the records kept outside the store while it was read-only (see [`Store::open`])
/// into its own registry `own`, then removes the directory outside. A record of the same name
/// in `own` is kept when it is the newer of the two.
fn adopt_outside(own: &Dir, own_path: &Path, outside: &Path) -> Result<()> {
    let from = match Dir::open(outside) {
        Ok(d) => d,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(Error::io_at("", outside, e)),
    };
    let at = |p: PathBuf| move |e: io::Error| Error::io_at("", &p, e);
    let mut moved = false;
    for e in from.entries().map_err(at(outside.to_path_buf()))? {
        let n = e.name.as_encoded_bytes();
        if n == b"store" || n.starts_with(b".tmp-") || !e.file_type.is_file() {
            continue;
        }
        let src = outside.join(&e.name);
        let mtime = |st: Option<cowtree_fs::dir::Stat>| {
            st.map(|s| {
                let t = cowtree_fs::sys::stat_times(&s).1;
                (t.tv_sec, t.tv_nsec)
            })
        };
        let theirs = mtime(from.try_stat(&e.name).map_err(at(src.clone()))?);
        let ours = mtime(own.try_stat(&e.name).map_err(at(own_path.join(&e.name)))?);
        if theirs.is_some() && ours < theirs {
            let Some(bytes) = read_at(&from, &e.name).map_err(at(src.clone()))? else {
                continue;
            };
            cowtree_fs::atomic_file::write_atomic(own, &e.name, &bytes, 0o644, false)
                .map_err(at(own_path.join(&e.name)))?;
            moved = true;
        }
        match from.remove_file(&e.name) {
            Err(err) if err.kind() != io::ErrorKind::NotFound => return Err(at(src)(err)),
            _ => {}
        }
    }
    if moved {
        own.sync().map_err(at(own_path.to_path_buf()))?;
    }
    let _ = from.remove_file(OsStr::new("store"));
    match std::fs::remove_dir(outside) {
        // Another process is adding to it or adopting it at the same time: the next open
        // finishes.
        Err(e)
            if !matches!(
                e.kind(),
                io::ErrorKind::NotFound | io::ErrorKind::DirectoryNotEmpty
            ) =>
        {
            Err(Error::io_at("remove", outside, e))
        }
        _ => Ok(()),
    }
}

fn mkdir_ok(dir: &Dir, name: &OsStr) -> io::Result<()> {
    match dir.create_dir(name, 0o755) {
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
        r => r,
    }
}

#[cfg(test)]
#[path = "store_tests.rs"]
mod tests;
