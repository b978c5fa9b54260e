//! Reading worktree files: hashing one, and whether a blob is in the store. (Putting a file
//! into the store is [`cowtree_store::ingest::Putter`]'s work.)

use std::ffi::OsStr;
use std::io;
use std::os::fd::AsFd;

use cowtree_store::{Hash, Store};
use rustix::fs::AtFlags;

/// Hashes the regular file `name` under `dir` without following a symlink. `None` when it
/// vanished or is no longer a regular file.
pub fn hash_at(dir: impl AsFd, name: &OsStr) -> io::Result<Option<(u64, Hash)>> {
    Ok(cowtree_fs::read::hash_at(dir, name)?.map(|(size, hash)| (size, Hash::from(hash))))
}

/// True when blob `hash` is in the store with `size` bytes.
pub fn has_blob(store: &Store, hash: &Hash, size: u64) -> bool {
    rustix::fs::statat(
        store.blobs(),
        Store::blob_rel(hash),
        AtFlags::SYMLINK_NOFOLLOW,
    )
    .is_ok_and(|st| st.st_size as u64 == size)
}
