//! Where ingest and checkout find a blob by handle on Windows: its fan-out directory and name
//! ([`BlobDirs`]).
//!
//! On unix a blob is reached by its relative name `ab/cdef...` under `blobs/` (`openat` takes
//! a path). Windows opens one component at a time relative to a handle (`cowtree_fs::dir`),
//! so the fan-out directory `ab` is opened first: once per snapshot or checkout, and kept.

use std::ffi::OsString;
use std::io;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};

use cowtree_fs::dir::Dir;

use crate::hash::Hash;
use crate::store::Store;

/// The fan-out directories of a store's `blobs/` (`00` to `ff`), each opened on first use
/// and kept open while this lives.
pub(crate) struct BlobDirs<'a> {
    store: &'a Store,
    dirs: Vec<OnceLock<Dir>>,
    /// By fan-out directory: a new blob was placed in it ([`BlobDirs::touched`]).
    touched: Vec<AtomicBool>,
}

impl<'a> BlobDirs<'a> {
    /// None opened yet.
    pub(crate) fn new(store: &'a Store) -> BlobDirs<'a> {
        BlobDirs {
            store,
            dirs: (0..256).map(|_| OnceLock::new()).collect(),
            touched: (0..256).map(|_| AtomicBool::new(false)).collect(),
        }
    }

    /// Notes that a new blob `hash` was placed in its fan-out directory, to be flushed by
    /// [`BlobDirs::sync_touched`].
    pub(crate) fn touched(&self, hash: &Hash) {
        if let Some(t) = fanout_index(hash).and_then(|i| self.touched.get(i)) {
            t.store(true, Ordering::Relaxed);
        }
    }

    /// Flushes each fan-out directory a new blob was placed in, and `blobs/` itself when any
    /// was (a fan-out directory may be new).
    pub(crate) fn sync_touched(&self) -> io::Result<()> {
        let mut any = false;
        for (t, dir) in self.touched.iter().zip(&self.dirs) {
            if t.load(Ordering::Relaxed)
                && let Some(dir) = dir.get()
            {
                dir.sync()?;
                any = true;
            }
        }
        if any {
            self.store.blobs().sync()?;
        }
        Ok(())
    }

    /// The fan-out directory of `hash` and the blob's name in it; `create`: the directory
    /// is made when missing (else a missing one is a [`io::ErrorKind::NotFound`] error).
    pub(crate) fn get(&self, hash: &Hash, create: bool) -> io::Result<(&Dir, OsString)> {
        let hex = hash.to_hex();
        let (fanout, name) = hex.split_at(2);
        let slot = fanout_index(hash)
            .and_then(|i| self.dirs.get(i))
            .ok_or_else(|| io::Error::other("internal error: a hash whose hex is not hex"))?;
        if let Some(dir) = slot.get() {
            return Ok((dir, OsString::from(name)));
        }
        let blobs = self.store.blobs();
        let dir = match blobs.open_dir(fanout.as_ref()) {
            Err(e) if create && e.kind() == io::ErrorKind::NotFound => {
                self.store.ensure_fanout(hash)?;
                blobs.open_dir(fanout.as_ref())?
            }
            r => r?,
        };
        // Another thread may have opened it meanwhile: either handle will do.
        let _ = slot.set(dir);
        let dir = slot
            .get()
            .ok_or_else(|| io::Error::other("internal error: a fan-out directory not kept"))?;
        Ok((dir, OsString::from(name)))
    }

    /// The size of blob `hash`; `None` when the store does not hold it.
    pub(crate) fn size(&self, hash: &Hash) -> io::Result<Option<u64>> {
        let (dir, name) = match self.get(hash, false) {
            Ok(found) => found,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        Ok(dir
            .try_stat(&name)?
            .filter(|st| cowtree_fs::sys::stat_file_type(st).is_file())
            .map(|st| cowtree_fs::sys::stat_size(&st)))
    }
}

/// The index (0 to 255) of `hash`'s fan-out directory.
fn fanout_index(hash: &Hash) -> Option<usize> {
    u8::from_str_radix(&hash.to_hex()[..2], 16)
        .ok()
        .map(usize::from)
}
