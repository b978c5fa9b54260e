//! [`Putter`] on Windows: puts one file into the store (block-cloned or copied into a named
//! staging file, hashed, renamed into `blobs/`), and the hashing it needs.
//!
//! Each file, in order:
//! 1. It is opened relative to its directory's handle, never following a reparse point
//!    ([`OpenSource::open`]); gone: not recorded; no longer a file: an error.
//! 2. Pre-hash, by the unix side's rule ([`Putter::prehash_wanted`]): the source is hashed and,
//!    when the store holds that blob already, the file is done (the blob agrees with its name
//!    whatever the source does next).
//! 3. Where the volume pair block-clones (ReFS, a Dev Drive), the source is cloned into a new
//!    staging file in the store's `tmp/` (`transfer_at_open`, read-only), and the CLONE is
//!    hashed: a writer changing the source meanwhile cannot make a blob disagree with its
//!    name. Windows has no clone between two open files, so there is no unnamed (`O_TMPFILE`)
//!    staging file and no hashing of the source after its clone (the unix side's ctime
//!    argument rests on `FICLONE` write-protecting the source's pages): the clone is always
//!    hashed.
//! 4. Where it cannot (NTFS, every volume under Wine), the source is read once, written to a
//!    new staging file and hashed in the same pass, and the copy made read-only.
//! 5. The staging file is renamed into `blobs/ab/` without replacing anything
//!    ([`Dir::rename_noreplace`]); when the blob is there already, the staging file is
//!    removed. A crash leaves staging files in `tmp/`, which the store's staging removes.
//!
//! A blob is made read-only with the read-only attribute (`FILE_ATTRIBUTE_READONLY`), where
//! unix gives it mode 0444: Windows keeps no other permission.
//!
//! The executable bit: Windows has none to read, so every file is recorded as a plain file
//! (`executable: false`), as git for Windows records a new file with `core.fileMode=false`.
//! A checkout on Windows of a snapshot taken elsewhere writes its executables as plain files
//! too (`checkout/entry.rs`); the manifest keeps what it says.

use std::io::{Seek, SeekFrom, Write};
use std::os::windows::io::AsHandle;

use cowtree_fs::reflink::OpenSource;
use cowtree_fs::transfer_at_open;

use super::*;

/// Puts files into the store one at a time (see the module doc), remembering which source
/// volumes cannot clone into the store, and counting what it did. Shared by the workers of
/// one snapshot.
pub struct Putter<'a> {
    store: &'a Store,
    staging: &'a Dir,
    /// Source volumes (serial numbers) from which clones into the store are known not to work.
    no_clone: Mutex<HashMap<u64, ()>>,
    counter: AtomicU64,
    new_blobs: AtomicU64,
    new_bytes: AtomicU64,
    cloned_bytes: AtomicU64,
    copied_bytes: AtomicU64,
    /// The store held no snapshot when this putter was made: pre-hashing is left off (see the
    /// unix `Putter`).
    store_was_empty: bool,
    prehashed: AtomicU64,
    prehash_hits: AtomicU64,
    /// `blobs/`'s fan-out directories, opened once.
    blobs: BlobDirs<'a>,
    /// Lets one block clone per core run at a time (see [`crate::pools::Gate`]).
    clones: crate::pools::Gate,
}

impl<'a> Putter<'a> {
    /// A putter into `store` staging in `staging` (a directory of the store's `tmp/`, see
    /// [`Store::staging`]).
    pub fn new(store: &'a Store, staging: &'a Dir) -> Putter<'a> {
        Putter {
            store,
            staging,
            no_clone: Mutex::new(HashMap::new()),
            counter: AtomicU64::new(0),
            new_blobs: AtomicU64::new(0),
            new_bytes: AtomicU64::new(0),
            cloned_bytes: AtomicU64::new(0),
            copied_bytes: AtomicU64::new(0),
            // Unreadable: as if not empty.
            store_was_empty: store.holds_any_snapshot().is_ok_and(|any| !any),
            prehashed: AtomicU64::new(0),
            prehash_hits: AtomicU64::new(0),
            blobs: BlobDirs::new(store),
            clones: crate::pools::Gate::per_core(),
        }
    }

    /// Blobs that were not in the store before.
    pub fn new_blobs(&self) -> u64 {
        self.new_blobs.load(Ordering::Relaxed)
    }

    /// Their total size.
    pub fn new_bytes(&self) -> u64 {
        self.new_bytes.load(Ordering::Relaxed)
    }

    /// Bytes whose staging copy was a block clone.
    pub fn cloned_bytes(&self) -> u64 {
        self.cloned_bytes.load(Ordering::Relaxed)
    }

    /// Bytes that had to be copied into the store.
    pub fn copied_bytes(&self) -> u64 {
        self.copied_bytes.load(Ordering::Relaxed)
    }

    /// Puts the file `name` under `dir` (a directory on the volume `dev`) into the store and
    /// returns its size and blob; `None` when it vanished before it could be opened. A file
    /// that is no longer a regular file when opened is an error (`InvalidInput`), and so is a
    /// name Windows cannot hold. Errors do not name the file: the caller knows its path.
    pub fn put(&self, dir: &Dir, dev: u64, name: &OsStr) -> io::Result<Option<Put>> {
        let Some(src) = OpenSource::open(dir, name)? else {
            return Ok(None);
        };
        if !src.stat.file_type().is_file() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "changed into something other than a regular file while being recorded",
            ));
        }
        self.put_opened(dir, dev, name, &src)
    }

    /// [`Putter::put`] of each of the files `names` under `dir` in turn; `each` gets each
    /// file's name and result in order, and ends the run early by returning
    /// [`ControlFlow::Break`]. A file's error is its own: the others are still recorded
    /// (until `each` breaks).
    pub fn put_files(
        &self,
        dir: &Dir,
        dev: u64,
        names: &[OsString],
        mut each: impl FnMut(&OsStr, io::Result<Option<Put>>) -> ControlFlow<()>,
    ) {
        for name in names {
            if each(name, self.put(dir, dev, name)).is_break() {
                return;
            }
        }
    }

    fn put_opened(
        &self,
        dir: &Dir,
        dev: u64,
        name: &OsStr,
        src: &OpenSource,
    ) -> io::Result<Option<Put>> {
        let put = |size, hash| Put {
            size,
            hash,
            executable: false,
        };
        let prehash = self.prehash_wanted();
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        let sname = OsString::from(format!("f{n}"));
        let try_clone = !self
            .no_clone
            .lock()
            .map_err(poisoned_io)?
            .contains_key(&dev);
        if try_clone && prehash {
            let (size, hash) = hash_fd(&src.fd)?;
            self.prehashed.fetch_add(1, Ordering::Relaxed);
            if self.blobs.size(&hash)? == Some(size) {
                self.prehash_hits.fetch_add(1, Ordering::Relaxed);
                return Ok(Some(put(size, hash)));
            }
        }
        if try_clone {
            let opts = TransferOptions {
                method: Method::Clone,
                mode: Some(0o444),
                preserve_times: false,
            };
            let (done, clone) = {
                let _clone = self.clones.enter();
                transfer_at_open(
                    src,
                    (dir.as_handle(), name),
                    (self.staging.as_handle(), &sname),
                    &opts,
                )?
            };
            match (done, clone) {
                (Transfer::Cloned { .. }, Some(clone)) => {
                    // The clone, never the source: nobody else writes it. Flushed before it
                    // gets its name in `blobs/` (see `sync_placed`).
                    let hashed = (&clone)
                        .seek(SeekFrom::Start(0))
                        .and_then(|_| hash_fd(&clone))
                        .and_then(|h| clone.sync_all().map(|()| h));
                    drop(clone);
                    let (size, hash) = match hashed {
                        Ok(h) => h,
                        Err(e) => {
                            let _ = self.staging.remove_tree(&sname);
                            return Err(e);
                        }
                    };
                    self.cloned_bytes.fetch_add(size, Ordering::Relaxed);
                    self.place_blob(&sname, &hash, size)?;
                    return Ok(Some(put(size, hash)));
                }
                (Transfer::SourceVanished, _) => return Ok(None),
                (Transfer::Unsupported(cause), _) => {
                    if !cause.is_per_file() {
                        self.no_clone.lock().map_err(poisoned_io)?.insert(dev, ());
                    }
                }
                (Transfer::Cloned { .. } | Transfer::Copied { .. }, _) => {
                    return Err(io::Error::other(
                        "internal error: a clone-only transfer copied, or left no file",
                    ));
                }
            }
        }
        // The source may have been read by the pre-hash.
        (&src.fd).seek(SeekFrom::Start(0))?;
        let (size, hash) = copy_and_hash(&src.fd, self.staging, &sname)?;
        self.copied_bytes.fetch_add(size, Ordering::Relaxed);
        self.place_blob(&sname, &hash, size)?;
        Ok(Some(put(size, hash)))
    }

    /// Flushes the fan-out directories of `blobs/` that this putter renamed new blobs into
    /// (each blob's data was flushed before its rename): what makes them durable on Windows,
    /// where only administrators may flush a whole volume.
    pub(crate) fn sync_placed(&self) -> crate::error::Result<()> {
        self.blobs
            .sync_touched()
            .map_err(|e| Error::io_at("sync", self.store.root().join("blobs"), e))
    }

    /// Whether to hash the source before cloning it: the unix side's rule (see its
    /// `prehash_wanted`), with the same constants.
    fn prehash_wanted(&self) -> bool {
        if self.store_was_empty {
            return false;
        }
        let n = self.prehashed.load(Ordering::Relaxed);
        let hits = self.prehash_hits.load(Ordering::Relaxed);
        n < PREHASH_WARMUP
            || hits * 16 >= n
            || self
                .counter
                .load(Ordering::Relaxed)
                .is_multiple_of(PREHASH_SAMPLE)
    }

    /// Renames the hashed staging file `sname` into `blobs/` without replacing anything, or
    /// removes it when the blob exists.
    fn place_blob(&self, sname: &OsStr, hash: &Hash, size: u64) -> io::Result<()> {
        let in_blobs = |e: io::Error| {
            io::Error::new(
                e.kind(),
                format!("move into {}: {e}", self.store.blob_path(hash).display()),
            )
        };
        let (fanout, name) = self.blobs.get(hash, true).map_err(in_blobs)?;
        match self.staging.rename_noreplace(sname, fanout, &name) {
            Ok(()) => {
                self.blobs.touched(hash);
                self.new_blobs.fetch_add(1, Ordering::Relaxed);
                self.new_bytes.fetch_add(size, Ordering::Relaxed);
                Ok(())
            }
            // (Read-only: `remove_tree` clears the attribute that stops a plain removal.)
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => self.staging.remove_tree(sname),
            Err(e) => {
                let _ = self.staging.remove_tree(sname);
                Err(in_blobs(e))
            }
        }
    }
}

/// Hashes the file `name` under `dir` (a blob, or a file of a tree nobody writes); `name`
/// may be a relative path (`ab/cdef...`), opened one component at a time without following
/// a reparse point.
pub(crate) fn hash_file(dir: &Dir, name: &OsStr) -> io::Result<(u64, Hash)> {
    let path = name.to_str().ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("not a name Windows can hold: {}", name.display()),
        )
    })?;
    let file = match path.rsplit_once('/') {
        Some((parent, leaf)) => dir
            .open_dir_beneath(Path::new(parent))?
            .open_file(leaf.as_ref())?,
        None => dir.open_file(name)?,
    };
    hash_fd(&file)
}

/// Hashes what `file` holds from its current offset to the end.
fn hash_fd(file: &std::fs::File) -> io::Result<(u64, Hash)> {
    let (size, hash) = cowtree_fs::read::hash_fd(file, |_| Ok(()))?;
    Ok((size, Hash::from(hash)))
}

/// Reads `src` once from its current offset, writing it to the new file `dst_name` under
/// `dst_dir` and hashing it in the same pass, then flushes it (see [`Putter::sync_placed`])
/// and makes it read-only. On failure the new file is removed.
fn copy_and_hash(src: &std::fs::File, dst_dir: &Dir, dst_name: &OsStr) -> io::Result<(u64, Hash)> {
    let mut dst = dst_dir.create_file(dst_name)?;
    let done = cowtree_fs::read::hash_fd(src, |chunk| dst.write_all(chunk)).and_then(|done| {
        dst.sync_all()?;
        let mut perms = dst.metadata()?.permissions();
        perms.set_readonly(true);
        dst.set_permissions(perms)?;
        Ok(done)
    });
    drop(dst);
    match done {
        Ok((size, hash)) => Ok((size, Hash::from(hash))),
        Err(e) => {
            let _ = dst_dir.remove_tree(dst_name);
            Err(e)
        }
    }
}
