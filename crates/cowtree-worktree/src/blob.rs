//! Reading worktree files: hashing one, and whether a blob is in the store. (Putting a file
//! into the store is [`cowtree_store::ingest::Putter`]'s work.)

use std::ffi::OsStr;
use std::io;
use std::os::fd::AsFd;

use cowtree_store::{Hash, Store};
use rustix::fs::{AtFlags, FileType, Mode, OFlags, fstat, openat};
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
    let mut size = 0u64;
    // One buffer per thread: a fresh zeroed 256 KiB per file cost more than hashing a small
    // file (a memset and page faults each time).
    BUFFER.with(|b| -> io::Result<()> {
        let mut buf = b.borrow_mut();
        if buf.len() < BUF {
            buf.resize(BUF, 0);
        }
        loop {
            let n = match io::Read::read(&mut f, &mut buf[..]) {
                Ok(0) => return Ok(()),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            hasher.update(&buf[..n]);
            size += n as u64;
        }
    })?;
    Ok(Some((
        size,
        Hash::from_bytes(*hasher.finalize().as_bytes()),
    )))
}

const BUF: usize = 256 * 1024;

thread_local! {
    static BUFFER: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
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
