//! Ingest: record a directory tree as blobs and a manifest.
//!
//! The walk is parallel (one task per directory, on rayon's pool) and directory-relative: each
//! directory is opened beneath the root with `openat2(RESOLVE_BENEATH|RESOLVE_NO_SYMLINKS)`, so
//! a symlink is recorded as a symlink and never followed, and at most one directory fd per
//! worker is open at a time. Special files (fifos, sockets, devices) are refused.
//!
//! Where the source can be cloned into the store, each file is first hashed as it is (from the
//! page cache): content already in the store needs nothing more, since that blob agrees with
//! its name whatever the source does next. New content is cloned into the staging directory,
//! the clone is hashed and renamed into `blobs/` under its own hash, so a writer changing the
//! source mid-ingest cannot make a blob disagree with its name (if another worker placed the
//! same blob first, the staging copy is dropped). Where the source and store cannot share data
//! (another filesystem, or one without reflinks), the file is read once, written to staging
//! and hashed in the same pass.
//!
//! Cost note: a fresh clone's pages are not in the page cache (the cache is per inode), so
//! hashing the clone reads its blocks from the device. That read is the price of the
//! guarantee above and dominates the first snapshot of a tree of small files.

use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::io;
use std::os::fd::AsFd;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Instant;

use cowtree_fs::dir::Dir;
use cowtree_fs::{Method, Transfer, TransferOptions, transfer_at};
use rustix::fs::{AtFlags, FileType, Mode, OFlags, RenameFlags, fstat, openat, statat};
use rustix::io::Errno;

use crate::error::{Error, Result};
use crate::hash::Hash;
use crate::manifest::{Entry, Manifest, show};
use crate::store::Store;
use crate::util::{join, path_of};

/// What a snapshot recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IngestReport {
    /// The snapshot id.
    pub id: Hash,
    /// File and executable entries.
    pub files: u64,
    /// Their total size.
    pub bytes: u64,
    /// Blobs that were not in the store before.
    pub new_blobs: u64,
    /// Their total size.
    pub new_bytes: u64,
    /// Bytes whose staging copy was a clone (shared with the source).
    pub cloned_bytes: u64,
    /// Bytes that had to be copied into the store.
    pub copied_bytes: u64,
    /// Milliseconds from start to the manifest being written.
    pub elapsed_ms: u64,
}

const BUF: usize = 1 << 20;
/// Files per work item when a directory is split among workers.
const FILE_CHUNK: usize = 128;

struct Walk<'a> {
    store: &'a Store,
    root: Dir,
    root_path: &'a Path,
    staging: &'a Dir,
    entries: Mutex<Vec<Entry>>,
    error: Mutex<Option<Error>>,
    stop: AtomicBool,
    /// Source devices from which clones into the store are known not to work.
    no_clone: Mutex<HashMap<u64, ()>>,
    counter: AtomicU64,
    /// (device, inode) of the store's root directory, which is never recorded.
    store_id: (u64, u64),
    new_blobs: AtomicU64,
    new_bytes: AtomicU64,
    cloned_bytes: AtomicU64,
    copied_bytes: AtomicU64,
}

/// Records the tree at `src` in `store` and names the snapshot `name` when given.
pub fn snapshot_dir(store: &Store, src: &Path, name: Option<&str>) -> Result<IngestReport> {
    let started = Instant::now();
    if let Some(n) = name {
        crate::refs::validate_name(n)?;
    }
    let root = Dir::open(src).map_err(|e| Error::msg(format!("snapshot: {e}")))?;
    let store_st = Dir::open(store.root())?.stat_self()?;
    let store_id = (store_st.st_dev, store_st.st_ino);
    if root.stat_self()?.st_ino == store_id.1 && root.stat_self()?.st_dev == store_id.0 {
        return Err(Error::msg(format!(
            "snapshot: {} is the store itself",
            src.display()
        )));
    }
    let _lock = store.lock_shared()?;
    let staging = store.staging("ingest")?;
    let walk = Walk {
        store,
        root,
        root_path: src,
        staging: staging.dir(),
        entries: Mutex::new(Vec::new()),
        error: Mutex::new(None),
        stop: AtomicBool::new(false),
        no_clone: Mutex::new(HashMap::new()),
        counter: AtomicU64::new(0),
        store_id,
        new_blobs: AtomicU64::new(0),
        new_bytes: AtomicU64::new(0),
        cloned_bytes: AtomicU64::new(0),
        copied_bytes: AtomicU64::new(0),
    };
    rayon::scope(|s| walk.dir_task(s, Vec::new()));
    if let Some(e) = walk.error.lock().map(|mut g| g.take()).unwrap_or(None) {
        return Err(e);
    }
    let entries = std::mem::take(&mut *walk.entries.lock().map_err(poisoned)?);
    let manifest = Manifest::new(entries).map_err(|source| Error::Manifest {
        context: format!("snapshot of {}", src.display()),
        source,
    })?;
    let id = store.save(&manifest)?;
    if let Some(n) = name {
        crate::refs::set(store, n, &id)?;
    }
    let report = IngestReport {
        id,
        files: manifest.files(),
        bytes: manifest.bytes(),
        new_blobs: walk.new_blobs.load(Ordering::Relaxed),
        new_bytes: walk.new_bytes.load(Ordering::Relaxed),
        cloned_bytes: walk.cloned_bytes.load(Ordering::Relaxed),
        copied_bytes: walk.copied_bytes.load(Ordering::Relaxed),
        elapsed_ms: started.elapsed().as_millis() as u64,
    };
    drop(walk);
    drop(staging);
    Ok(report)
}

fn poisoned<T>(_: T) -> Error {
    Error::msg("internal error: a worker panicked")
}

impl<'a> Walk<'a> {
    fn fail(&self, e: Error) {
        self.stop.store(true, Ordering::Relaxed);
        if let Ok(mut g) = self.error.lock() {
            g.get_or_insert(e);
        }
    }

    fn full(&self, rel: &[u8]) -> String {
        self.root_path.join(path_of(rel)).display().to_string()
    }

    fn dir_task<'s>(&'s self, s: &rayon::Scope<'s>, rel: Vec<u8>) {
        if self.stop.load(Ordering::Relaxed) {
            return;
        }
        if let Err(e) = self.walk_dir(s, &rel) {
            self.fail(e);
        }
    }

    fn walk_dir<'s>(&'s self, s: &rayon::Scope<'s>, rel: &[u8]) -> Result<()> {
        let dir = if rel.is_empty() {
            self.root.try_clone()?
        } else {
            self.root
                .open_dir_beneath(path_of(rel))
                .map_err(|e| Error::msg(format!("{}: {e}", self.full(rel))))?
        };
        let list = dir
            .entries()
            .map_err(|e| Error::msg(format!("read directory {}: {e}", self.full(rel))))?;
        let st = dir
            .stat_self()
            .map_err(|e| Error::msg(format!("stat {}: {e}", self.full(rel))))?;
        let dev = st.st_dev;
        if (st.st_dev, st.st_ino) == self.store_id {
            // The store itself lives inside the tree being recorded: leave it out.
            return Ok(());
        }
        let mut out = Vec::new();
        if list.is_empty() && !rel.is_empty() {
            out.push(Entry::dir(rel.to_vec()));
        }
        let mut files: Vec<OsString> = Vec::new();
        for ent in list {
            if self.stop.load(Ordering::Relaxed) {
                return Ok(());
            }
            let mut ft = ent.file_type;
            if ft == FileType::Unknown {
                match statat(&dir, &ent.name, AtFlags::SYMLINK_NOFOLLOW) {
                    Ok(st) => ft = FileType::from_raw_mode(st.st_mode),
                    Err(Errno::NOENT) => continue,
                    Err(e) => {
                        let path = join(rel, ent.name.as_bytes());
                        return Err(Error::msg(format!(
                            "stat {}: {}",
                            self.full(&path),
                            io::Error::from(e)
                        )));
                    }
                }
            }
            match ft {
                FileType::RegularFile => files.push(ent.name),
                FileType::Directory => {
                    let path = join(rel, ent.name.as_bytes());
                    s.spawn(move |s| self.dir_task(s, path));
                }
                FileType::Symlink => {
                    let path = join(rel, ent.name.as_bytes());
                    let target = match dir.read_link(&ent.name) {
                        Ok(t) => t,
                        Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                        Err(e) => {
                            return Err(Error::msg(format!("{}: {e}", self.full(&path))));
                        }
                    };
                    out.push(Entry::symlink(path, target.as_bytes().to_vec()));
                }
                other => {
                    let path = join(rel, ent.name.as_bytes());
                    return Err(Error::msg(format!(
                        "{}: is a {} (special file); only files, directories and symlinks can be \
                         recorded",
                        self.full(&path),
                        type_name(other)
                    )));
                }
            }
        }
        self.entries.lock().map_err(poisoned)?.extend(out);
        // A big directory is split so that several workers share it.
        let dir = Arc::new(dir);
        let rel: Arc<[u8]> = Arc::from(rel);
        let mut chunks: Vec<Vec<OsString>> = Vec::new();
        while files.len() > FILE_CHUNK {
            let rest = files.split_off(FILE_CHUNK);
            chunks.push(std::mem::replace(&mut files, rest));
        }
        for chunk in chunks {
            let (dir, rel) = (Arc::clone(&dir), Arc::clone(&rel));
            s.spawn(move |_| {
                if let Err(e) = self.ingest_files(&dir, dev, &rel, &chunk) {
                    self.fail(e);
                }
            });
        }
        self.ingest_files(&dir, dev, &rel, &files)
    }

    fn ingest_files(&self, dir: &Dir, dev: u64, rel: &[u8], names: &[OsString]) -> Result<()> {
        let mut out = Vec::with_capacity(names.len());
        for name in names {
            if self.stop.load(Ordering::Relaxed) {
                return Ok(());
            }
            let path = join(rel, name.as_bytes());
            if let Some((size, hash, exec)) = self.ingest_file(dir, dev, name, &path)? {
                out.push(Entry::blob(path, exec, size, hash));
            }
        }
        self.entries.lock().map_err(poisoned)?.extend(out);
        Ok(())
    }

    /// Puts one file into the store and returns (size, hash, executable); `None` when it
    /// vanished before it could be read.
    ///
    /// Where cloning works, the source is hashed first: content already in the store needs no
    /// clone at all (the blob there agrees with its name whatever the source does next).
    /// Otherwise the source is cloned into staging and the clone is hashed, so a concurrent
    /// writer cannot make the blob disagree with its name. Without CoW the source is read
    /// once, written to staging and hashed in the same pass.
    fn ingest_file(
        &self,
        dir: &Dir,
        dev: u64,
        name: &OsStr,
        rel: &[u8],
    ) -> Result<Option<(u64, Hash, bool)>> {
        let ctx = |e: io::Error| Error::msg(format!("{}: {e}", self.full(rel)));
        // O_NONBLOCK: a FIFO swapped in after the directory was read cannot block the open.
        let src = match openat(
            dir,
            name,
            OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::NONBLOCK | OFlags::NOCTTY,
            Mode::empty(),
        ) {
            Ok(fd) => fd,
            Err(Errno::NOENT) => return Ok(None),
            Err(e) => return Err(ctx(e.into())),
        };
        let st = fstat(&src).map_err(|e| ctx(e.into()))?;
        if FileType::from_raw_mode(st.st_mode) != FileType::RegularFile {
            return Err(ctx(io::Error::new(
                io::ErrorKind::InvalidInput,
                "changed into something other than a regular file while being recorded",
            )));
        }
        let exec = st.st_mode & 0o111 != 0;
        let sname = format!("f{}", self.counter.fetch_add(1, Ordering::Relaxed));
        let sname = OsStr::new(&sname);
        let try_clone = !self.no_clone.lock().map_err(poisoned)?.contains_key(&dev);
        if try_clone {
            let (size0, h0) = hash_fd(&src).map_err(ctx)?;
            let known = statat(
                self.store.blobs(),
                Store::blob_rel(&h0),
                AtFlags::SYMLINK_NOFOLLOW,
            );
            if known.is_ok_and(|b| b.st_size as u64 == size0) {
                return Ok(Some((size0, h0, exec)));
            }
            let opts = TransferOptions {
                method: Method::Clone,
                mode: Some(0o444),
                preserve_times: false,
            };
            match transfer_at(dir, name, self.staging, sname, &opts).map_err(ctx)? {
                Transfer::Cloned { .. } => {
                    let (size, hash) = hash_file(self.staging, sname).map_err(ctx)?;
                    self.cloned_bytes.fetch_add(size, Ordering::Relaxed);
                    self.place_blob(sname, &hash, size).map_err(ctx)?;
                    return Ok(Some((size, hash, exec)));
                }
                Transfer::SourceVanished => return Ok(None),
                Transfer::Unsupported(cause) => {
                    if !cause.is_per_file() {
                        self.no_clone.lock().map_err(poisoned)?.insert(dev, ());
                    }
                }
                Transfer::Copied { .. } => unreachable!("Method::Clone never copies"),
            }
            rustix::fs::seek(&src, rustix::fs::SeekFrom::Start(0)).map_err(|e| ctx(e.into()))?;
        }
        let (size, hash) = copy_and_hash(&src, self.staging, sname).map_err(ctx)?;
        self.copied_bytes.fetch_add(size, Ordering::Relaxed);
        self.place_blob(sname, &hash, size).map_err(ctx)?;
        Ok(Some((size, hash, exec)))
    }

    /// Renames a hashed staging file into `blobs/`, or drops it when the blob exists.
    fn place_blob(&self, sname: &OsStr, hash: &Hash, size: u64) -> io::Result<()> {
        let rel = Store::blob_rel(hash);
        let blobs = self.store.blobs();
        let mut retried = false;
        loop {
            match rustix::fs::renameat_with(
                self.staging,
                sname,
                blobs,
                &rel,
                RenameFlags::NOREPLACE,
            ) {
                Ok(()) => {
                    self.new_blobs.fetch_add(1, Ordering::Relaxed);
                    self.new_bytes.fetch_add(size, Ordering::Relaxed);
                    return Ok(());
                }
                Err(Errno::EXIST) => {
                    rustix::fs::unlinkat(self.staging, sname, AtFlags::empty())?;
                    return Ok(());
                }
                Err(Errno::NOENT) if !retried => {
                    retried = true;
                    self.store.ensure_fanout(hash)?;
                }
                Err(e) => {
                    return Err(io::Error::new(
                        io::Error::from(e).kind(),
                        format!(
                            "move into {}: {}",
                            self.store.blob_path(hash).display(),
                            io::Error::from(e)
                        ),
                    ));
                }
            }
        }
    }
}

fn type_name(ft: FileType) -> &'static str {
    match ft {
        FileType::Fifo => "fifo",
        FileType::Socket => "socket",
        FileType::CharacterDevice => "character device",
        FileType::BlockDevice => "block device",
        _ => "file of unknown type",
    }
}

thread_local! {
    static BUFFER: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

fn with_buf<T>(f: impl FnOnce(&mut [u8]) -> T) -> T {
    BUFFER.with(|b| {
        let mut b = b.borrow_mut();
        if b.len() < BUF {
            b.resize(BUF, 0);
        }
        f(&mut b[..])
    })
}

fn read_some(fd: impl AsFd, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        match rustix::io::read(fd.as_fd(), &mut *buf) {
            Ok(n) => return Ok(n),
            Err(Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

fn update(hasher: &mut blake3::Hasher, data: &[u8]) {
    // Large chunks are hashed on several threads; small ones are not worth the handoff.
    if data.len() >= 256 * 1024 {
        hasher.update_rayon(data);
    } else {
        hasher.update(data);
    }
}

/// Hashes the file `name` under `dir` (a staging clone, so nobody else writes it).
pub(crate) fn hash_file(dir: impl AsFd, name: &OsStr) -> io::Result<(u64, Hash)> {
    let fd = openat(
        dir,
        name,
        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    hash_fd(&fd)
}

/// Hashes what `fd` holds from its current offset to the end.
fn hash_fd(fd: &OwnedFd) -> io::Result<(u64, Hash)> {
    let mut hasher = blake3::Hasher::new();
    let mut size = 0u64;
    with_buf(|buf| -> io::Result<()> {
        loop {
            let n = read_some(fd, buf)?;
            if n == 0 {
                return Ok(());
            }
            update(&mut hasher, &buf[..n]);
            size += n as u64;
        }
    })?;
    Ok((size, Hash::from_bytes(*hasher.finalize().as_bytes())))
}

/// Reads `src` once from its current offset, writing it to `dst_name` under `dst_dir`
/// (created 0444) and hashing it in the same pass.
fn copy_and_hash(src: &OwnedFd, dst_dir: &Dir, dst_name: &OsStr) -> io::Result<(u64, Hash)> {
    let dst = openat(
        dst_dir,
        dst_name,
        OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::from_raw_mode(0o444),
    )?;
    let mut hasher = blake3::Hasher::new();
    let mut size = 0u64;
    let res = with_buf(|buf| -> io::Result<()> {
        loop {
            let n = read_some(src, buf)?;
            if n == 0 {
                return Ok(());
            }
            let mut off = 0;
            while off < n {
                match rustix::io::write(&dst, &buf[off..n]) {
                    Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                    Ok(w) => off += w,
                    Err(Errno::INTR) => continue,
                    Err(e) => return Err(e.into()),
                }
            }
            update(&mut hasher, &buf[..n]);
            size += n as u64;
        }
    });
    if let Err(e) = res {
        let _ = rustix::fs::unlinkat(dst_dir, dst_name, AtFlags::empty());
        return Err(e);
    }
    Ok((size, Hash::from_bytes(*hasher.finalize().as_bytes())))
}

/// Shows a manifest path for messages.
pub fn show_path(p: &[u8]) -> String {
    show(p)
}

/// Records a manifest built elsewhere (the JSON interchange format) as a snapshot, after
/// checking that every blob it names is in the store with the size it states. Nothing is
/// written unless every check passes.
pub fn record_manifest(store: &Store, manifest: &Manifest, name: Option<&str>) -> Result<Hash> {
    if let Some(n) = name {
        crate::refs::validate_name(n)?;
    }
    let _lock = store.lock_shared()?;
    for e in manifest.entries() {
        let Some(hash) = e.hash() else { continue };
        let rel = Store::blob_rel(hash);
        match statat(store.blobs(), &rel, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) if st.st_size as u64 == e.size() => {}
            Ok(st) => {
                return Err(Error::msg(format!(
                    "entry {}: size {} does not match blob {hash} ({} bytes)",
                    show(&e.path),
                    e.size(),
                    st.st_size
                )));
            }
            Err(Errno::NOENT) => {
                return Err(Error::msg(format!(
                    "entry {}: blob {hash} is not in the store {}",
                    show(&e.path),
                    store.root().display()
                )));
            }
            Err(err) => {
                return Err(Error::msg(format!(
                    "entry {}: {}: {}",
                    show(&e.path),
                    store.blob_path(hash).display(),
                    io::Error::from(err)
                )));
            }
        }
    }
    let id = store.save(manifest)?;
    if let Some(n) = name {
        crate::refs::set(store, n, &id)?;
    }
    Ok(id)
}
