//! When each snapshot was recorded and from where: the append-only file `history` in the
//! store's root, one JSON object per line, `{"id":"<64 hex>","unix":<seconds>,"source":"<abs
//! path>"}` (`source` is null for a manifest recorded from JSON). Only listings read it: a
//! snapshot missing from it (recorded by older code) is shown with its manifest's time and no
//! source, and lines naming removed snapshots are ignored.

use std::collections::HashMap;
use std::io::Write;
#[cfg(unix)]
use std::os::unix::fs::OpenOptionsExt;
#[cfg(windows)]
use std::os::windows::fs::OpenOptionsExt;
use std::path::Path;

#[cfg(unix)]
use rustix::fs::OFlags;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::hash::Hash;
use crate::store::Store;

const FILE: &str = "history";

/// One line of the history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Recorded {
    /// The snapshot id (hex).
    pub id: String,
    /// When it was recorded, in seconds since the epoch.
    pub unix: u64,
    /// The absolute path of the tree recorded, when it was a tree.
    pub source: Option<String>,
}

/// Appends that snapshot `id` was recorded now from `source`.
pub fn record(store: &Store, id: &Hash, source: Option<&Path>) -> Result<()> {
    let line = Recorded {
        id: id.to_hex(),
        unix: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
        source: source.map(|p| p.to_string_lossy().into_owned()),
    };
    let mut bytes = serde_json::to_vec(&line).expect("a line of strings and integers serializes");
    bytes.push(b'\n');
    let ctx = |e: std::io::Error| Error::io_at("", store.root().join(FILE), e);
    // One write with O_APPEND: lines of concurrent writers do not interleave.
    let mut options = std::fs::OpenOptions::new();
    options.append(true).create(true);
    #[cfg(unix)]
    options.mode(0o644).custom_flags(libc_nofollow());
    // A reparse point at the name is opened itself (its own data), never followed.
    #[cfg(windows)]
    options.custom_flags(windows_sys::Win32::Storage::FileSystem::FILE_FLAG_OPEN_REPARSE_POINT);
    options
        .open(store.root().join(FILE))
        .and_then(|mut f| f.write_all(&bytes))
        .map_err(ctx)
}

#[cfg(unix)]
fn libc_nofollow() -> i32 {
    OFlags::NOFOLLOW.bits() as i32
}

/// The latest line for each snapshot id, with its position in the file (a later line is a
/// later record, also within one second).
pub fn latest(store: &Store) -> Result<HashMap<String, (usize, Recorded)>> {
    let mut out = HashMap::new();
    let bytes = match std::fs::read(store.root().join(FILE)) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(Error::io_at("", store.root().join(FILE), e)),
    };
    for (i, line) in bytes.split(|&b| b == b'\n').enumerate() {
        if let Ok(r) = serde_json::from_slice::<Recorded>(line) {
            out.insert(r.id.clone(), (i, r));
        }
    }
    Ok(out)
}
