//! Reading worktree files: hashing one, and whether a blob is in the store. (Putting a file
//! into the store is [`cowtree_store::ingest::Putter`]'s work.)

use std::ffi::OsStr;
use std::io;

use cowtree_fs::read::AsFile;
use cowtree_store::{Hash, Store};

/// Hashes the regular file `name` under `dir` without following a symlink. `None` when it
/// vanished or is no longer a regular file.
pub fn hash_at(dir: impl AsFile, name: &OsStr) -> io::Result<Option<(u64, Hash)>> {
    Ok(cowtree_fs::read::hash_at(dir, name)?.map(|(size, hash)| (size, Hash::from(hash))))
}

/// True when blob `hash` is in the store with `size` bytes.
#[cfg(unix)]
pub fn has_blob(store: &Store, hash: &Hash, size: u64) -> bool {
    rustix::fs::statat(
        store.blobs(),
        Store::blob_rel(hash),
        rustix::fs::AtFlags::SYMLINK_NOFOLLOW,
    )
    .is_ok_and(|st| st.st_size as u64 == size)
}

/// True when blob `hash` is in the store with `size` bytes (its fan-out directory opened, then
/// the blob's `stat` relative to it: Windows opens one component at a time).
#[cfg(windows)]
pub fn has_blob(store: &Store, hash: &Hash, size: u64) -> bool {
    let hex = hash.to_hex();
    let (fan, rest) = hex.split_at(2);
    store
        .blobs()
        .open_dir(OsStr::new(fan))
        .and_then(|d| d.try_stat(OsStr::new(rest)))
        .is_ok_and(|st| st.is_some_and(|st| cowtree_fs::sys::stat_size(&st) == size))
}

/// Calls `f` with a directory and a name there that reach blob `hash`: `blobs/` and the
/// blob's `ab/cdef...` (one relative open resolves both components, never following a
/// symlink). `None` when the blob is surely absent without asking `f` (never on unix).
#[cfg(unix)]
pub fn with_blob<R>(
    store: &Store,
    hash: &Hash,
    f: impl FnOnce(&cowtree_fs::dir::Dir, &OsStr) -> io::Result<R>,
) -> io::Result<Option<R>> {
    f(store.blobs(), &Store::blob_rel(hash)).map(Some)
}

/// Calls `f` with a directory and a name there that reach blob `hash`: its fan-out directory
/// `blobs/ab/`, opened here (Windows opens one component at a time), and `cdef...`. `None`
/// when there is no such fan-out directory (so no such blob).
#[cfg(windows)]
pub fn with_blob<R>(
    store: &Store,
    hash: &Hash,
    f: impl FnOnce(&cowtree_fs::dir::Dir, &OsStr) -> io::Result<R>,
) -> io::Result<Option<R>> {
    let hex = hash.to_hex();
    let (fan, rest) = hex.split_at(2);
    let d = match store.blobs().open_dir(OsStr::new(fan)) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        r => r?,
    };
    f(&d, OsStr::new(rest)).map(Some)
}
