//! Reading worktree files: hashing one, and putting one into the store as a blob.

use std::ffi::{OsStr, OsString};
use std::io;
use std::os::fd::AsFd;
use std::sync::atomic::{AtomicU64, Ordering};

use cowtree_fs::dir::Dir;
use cowtree_fs::{Method, Transfer, TransferOptions, transfer_at};
use cowtree_store::{Hash, Store};
use rustix::fs::{AtFlags, FileType, Mode, OFlags, RenameFlags, fstat, openat};
use rustix::io::Errno;

/// Hashes the regular file `name` under `dir` without following a symlink. `None` when it
/// vanished or is no longer a regular file.
pub fn hash_at(dir: impl AsFd, name: &OsStr) -> io::Result<Option<(u64, Hash)>> {
    let fd = match openat(
        dir,
        name,
        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::NONBLOCK | OFlags::NOCTTY,
        Mode::empty(),
    ) {
        Ok(fd) => fd,
        Err(Errno::NOENT | Errno::LOOP) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    if FileType::from_raw_mode(fstat(&fd)?.st_mode) != FileType::RegularFile {
        return Ok(None);
    }
    let mut f = std::fs::File::from(fd);
    let mut hasher = blake3::Hasher::new();
    let mut buf = vec![0u8; 256 * 1024];
    let mut size = 0u64;
    loop {
        let n = match io::Read::read(&mut f, &mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        hasher.update(&buf[..n]);
        size += n as u64;
    }
    Ok(Some((
        size,
        Hash::from_bytes(*hasher.finalize().as_bytes()),
    )))
}

/// Puts one worktree file into the store the way ingest does: clone (else copy) it into the
/// staging directory, hash the staged copy (nobody else writes it), rename it into `blobs/`
/// under its hash, or drop it when that blob exists. Returns size, hash and whether the blob
/// is new; `None` when the file vanished.
pub fn ingest_at(
    store: &Store,
    staging: &Dir,
    counter: &AtomicU64,
    dir: &Dir,
    name: &OsStr,
) -> io::Result<Option<(u64, Hash, bool)>> {
    let sname = OsString::from(format!("w{}", counter.fetch_add(1, Ordering::Relaxed)));
    let opts = TransferOptions {
        method: Method::CloneOrCopy,
        mode: Some(0o444),
        preserve_times: false,
    };
    match transfer_at(dir, name, staging, &sname, &opts)? {
        Transfer::Cloned { .. } | Transfer::Copied { .. } => {}
        Transfer::SourceVanished => return Ok(None),
        Transfer::Unsupported(_) => {
            return Err(io::Error::other("neither clone nor copy was possible"));
        }
    }
    let Some((size, hash)) = hash_at(staging, &sname)? else {
        return Err(io::Error::other("the staged copy vanished"));
    };
    let rel = Store::blob_rel(&hash);
    let mut retried = false;
    loop {
        match rustix::fs::renameat_with(
            staging,
            &sname,
            store.blobs(),
            &rel,
            RenameFlags::NOREPLACE,
        ) {
            Ok(()) => return Ok(Some((size, hash, true))),
            Err(Errno::EXIST) => {
                rustix::fs::unlinkat(staging, &sname, AtFlags::empty())?;
                return Ok(Some((size, hash, false)));
            }
            Err(Errno::NOENT) if !retried => {
                retried = true;
                match store
                    .blobs()
                    .create_dir(OsStr::new(&hash.to_hex()[..2]), 0o755)
                {
                    Err(e) if e.kind() != io::ErrorKind::AlreadyExists => return Err(e),
                    _ => {}
                }
            }
            Err(e) => {
                let _ = rustix::fs::unlinkat(staging, &sname, AtFlags::empty());
                return Err(io::Error::new(
                    io::Error::from(e).kind(),
                    format!(
                        "move into {}: {}",
                        store.blob_path(&hash).display(),
                        io::Error::from(e)
                    ),
                ));
            }
        }
    }
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
