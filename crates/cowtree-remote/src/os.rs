//! The platform arms of this crate's local file work: reading a small file relative to a
//! directory, opening a lock file, and the store's blobs by hash (whether one is there, open
//! one, rename a staged one in). Unix keeps the calls it always made (one `openat`, `statat` or
//! `renameat2` through `blobs/ab/cdef...`); Windows opens one component at a time through
//! [`Dir`], never following a reparse point.

use std::ffi::OsStr;
use std::fs::File;
use std::io;

use cowtree_fs::dir::Dir;
use cowtree_store::{Hash, Store};

/// The bytes of the file `name` in `d` (never following a symlink); `None` when there is none.
#[cfg(unix)]
pub(crate) fn read_if_exists(d: &Dir, name: &OsStr) -> io::Result<Option<Vec<u8>>> {
    use rustix::fs::{Mode, OFlags, openat};
    match openat(
        d,
        name,
        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    ) {
        Ok(fd) => cowtree_fs::read::read_whole(&fd).map(Some),
        Err(rustix::io::Errno::NOENT) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// The bytes of the file `name` in `d` (never following a reparse point); `None` when there
/// is none.
#[cfg(windows)]
pub(crate) fn read_if_exists(d: &Dir, name: &OsStr) -> io::Result<Option<Vec<u8>>> {
    match d.open_file(name) {
        Ok(f) => cowtree_fs::read::read_whole(&f).map(Some),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Opens the file `name` in `d` to lock it, making it (empty) when it is missing.
#[cfg(unix)]
pub(crate) fn open_lock_file(d: &Dir, name: &OsStr) -> io::Result<File> {
    use rustix::fs::{Mode, OFlags, openat};
    let fd = openat(
        d,
        name,
        OFlags::RDONLY | OFlags::CREATE | OFlags::CLOEXEC | OFlags::NOFOLLOW,
        Mode::from_raw_mode(0o644),
    )?;
    Ok(File::from(fd))
}

/// Opens the file `name` in `d` to lock it, making it (empty) when it is missing.
#[cfg(windows)]
pub(crate) fn open_lock_file(d: &Dir, name: &OsStr) -> io::Result<File> {
    match d.open_file(name) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => match d.create_file(name) {
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => d.open_file(name),
            r => r,
        },
        r => r,
    }
}

/// True when blob `hash` is in the store (anything at its name counts; a failed `stat`
/// does not).
#[cfg(unix)]
pub(crate) fn has_blob(store: &Store, hash: &Hash) -> bool {
    rustix::fs::statat(
        store.blobs(),
        Store::blob_rel(hash),
        rustix::fs::AtFlags::SYMLINK_NOFOLLOW,
    )
    .is_ok()
}

/// The blob's fan-out directory name (`ab`) and its name there (`cdef...`).
#[cfg(windows)]
fn split_blob(hash: &Hash) -> (String, String) {
    let hex = hash.to_hex();
    let (fan, rest) = hex.split_at(2);
    (fan.to_string(), rest.to_string())
}

/// True when blob `hash` is in the store (anything at its name counts; a failed `stat`
/// does not).
#[cfg(windows)]
pub(crate) fn has_blob(store: &Store, hash: &Hash) -> bool {
    let (fan, rest) = split_blob(hash);
    store
        .blobs()
        .open_dir(OsStr::new(&fan))
        .and_then(|d| d.try_stat(OsStr::new(&rest)))
        .is_ok_and(|st| st.is_some())
}

/// Opens blob `hash` for reading, never following a symlink.
#[cfg(unix)]
pub(crate) fn open_blob(store: &Store, hash: &Hash) -> io::Result<File> {
    use rustix::fs::{Mode, OFlags, openat};
    let fd = openat(
        store.blobs(),
        Store::blob_rel(hash).as_os_str(),
        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    Ok(File::from(fd))
}

/// Opens blob `hash` for reading, never following a reparse point.
#[cfg(windows)]
pub(crate) fn open_blob(store: &Store, hash: &Hash) -> io::Result<File> {
    let (fan, rest) = split_blob(hash);
    store
        .blobs()
        .open_dir(OsStr::new(&fan))?
        .open_file(OsStr::new(&rest))
}

/// Renames the staged file `tmp` in `staging` to blob `hash` in the store, never replacing
/// one there: [`io::ErrorKind::AlreadyExists`] when the blob is there already,
/// [`io::ErrorKind::NotFound`] when its fan-out directory is missing (or `tmp` is).
#[cfg(unix)]
pub(crate) fn rename_blob_in(
    staging: &Dir,
    tmp: &str,
    store: &Store,
    hash: &Hash,
) -> io::Result<()> {
    Ok(rustix::fs::renameat_with(
        staging,
        tmp,
        store.blobs(),
        Store::blob_rel(hash),
        rustix::fs::RenameFlags::NOREPLACE,
    )?)
}

/// Renames the staged file `tmp` in `staging` to blob `hash` in the store, never replacing
/// one there (see the unix one).
#[cfg(windows)]
pub(crate) fn rename_blob_in(
    staging: &Dir,
    tmp: &str,
    store: &Store,
    hash: &Hash,
) -> io::Result<()> {
    let (fan, rest) = split_blob(hash);
    let fan = store.blobs().open_dir(OsStr::new(&fan))?;
    staging.rename_noreplace(OsStr::new(tmp), &fan, OsStr::new(&rest))
}

/// Creates the staging file `name` in `staging` for a blob's bytes, read-only for everyone
/// (`0444`) from the start, open for writing.
#[cfg(unix)]
pub(crate) fn create_staged(staging: &Dir, name: &str) -> io::Result<File> {
    let fd = rustix::fs::openat(
        staging,
        name,
        rustix::fs::OFlags::WRONLY
            | rustix::fs::OFlags::CREATE
            | rustix::fs::OFlags::EXCL
            | rustix::fs::OFlags::NOFOLLOW
            | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::from_raw_mode(0o444),
    )?;
    rustix::fs::fchmod(&fd, rustix::fs::Mode::from_raw_mode(0o444))?;
    Ok(File::from(fd))
}

/// Creates the staging file `name` in `staging` for a blob's bytes, open for writing; it is
/// made read-only by [`seal_staged`] once written.
#[cfg(windows)]
pub(crate) fn create_staged(staging: &Dir, name: &str) -> io::Result<File> {
    staging.create_file(OsStr::new(name))
}

/// Done with a staged blob's bytes: nothing more to do on unix (made read-only when created).
#[cfg(unix)]
pub(crate) fn seal_staged(_f: &File) -> io::Result<()> {
    Ok(())
}

/// Done with a staged blob's bytes: flushed (`FlushFileBuffers`: before its rename into
/// `blobs/`, see [`sync_blobs`]) and made read-only through its own handle, as the store's
/// blobs are (a file is made writable on Windows, then written, then sealed).
#[cfg(windows)]
pub(crate) fn seal_staged(f: &File) -> io::Result<()> {
    f.sync_all()?;
    let mut p = f.metadata()?.permissions();
    p.set_readonly(true);
    f.set_permissions(p)
}

/// Makes the blobs that `manifests` name durable in the store before a manifest names them:
/// a sync of the blobs' filesystem (every blob there, those an earlier pull left unsynced
/// too).
#[cfg(unix)]
pub(crate) fn sync_blobs(store: &Store, _manifests: &[(Hash, bytes::Bytes)]) -> io::Result<()> {
    Ok(cowtree_fs::sys::sync_filesystem(store.blobs())?)
}

/// Makes the blobs that `manifests` name durable in the store before a manifest names them:
/// each blob's data was flushed before its rename ([`seal_staged`]); here each fan-out
/// directory that holds one of them is flushed (their names there; Windows lets only
/// administrators flush a whole volume). A blob an earlier pull placed is named by the
/// manifests too, so its name is made durable as well.
#[cfg(windows)]
pub(crate) fn sync_blobs(store: &Store, manifests: &[(Hash, bytes::Bytes)]) -> io::Result<()> {
    let mut fans = std::collections::BTreeSet::new();
    for (_, m) in manifests {
        // (Checked when the needs were listed; one refused now names no blob to sync.)
        let _ = cowtree_store::manifest::each_encoded(m, |e| {
            if let Some(h) = e.hash() {
                fans.insert(split_blob(&h).0);
            }
        });
    }
    for fan in fans {
        match store.blobs().open_dir(OsStr::new(&fan)) {
            Ok(d) => d.sync()?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// True when `e` says the disk is full or a quota is exhausted.
#[cfg(unix)]
pub(crate) fn is_disk_full(e: &io::Error) -> bool {
    e.raw_os_error().is_some_and(|n| {
        n == rustix::io::Errno::NOSPC.raw_os_error() || n == rustix::io::Errno::DQUOT.raw_os_error()
    })
}

/// True when `e` says the disk is full or a quota is exhausted (`ERROR_DISK_FULL`,
/// `ERROR_HANDLE_DISK_FULL`, `ERROR_DISK_QUOTA_EXCEEDED`, as std classifies them).
#[cfg(windows)]
pub(crate) fn is_disk_full(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded
    )
}
