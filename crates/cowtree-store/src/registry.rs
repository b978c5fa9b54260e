//! The worktree registry: one record per checked-out worktree, kept in the store
//! (`worktrees/<id>`), never inside the worktree.
//!
//! A record is a small JSON object (format version 1):
//!
//! ```json
//! {"version":1,"path":"/abs/path","path_hex":null,"snapshot":"<64 hex>",
//!  "created_unix":1700000000,"stat_cache":null,"dev":2049,"ino":131}
//! ```
//! - `<id>` is the first 32 hex digits of BLAKE3 of the worktree's absolute path bytes, so a
//!   second checkout to the same path replaces the record.
//! - `path` is the absolute path when it is UTF-8; otherwise `path` is null and `path_hex` holds
//!   its bytes in hex.
//! - `snapshot` is the base snapshot the worktree was checked out from.
//! - `dev` and `ino` are the device and inode of the worktree's root directory; every record
//!   this crate writes has them.
//! - `stat_cache` is reserved for the worktree layer: null, or the name of a sidecar file under
//!   `worktrees/` (by convention `<id>.stat`) holding a stat cache for fast status. Readers
//!   must ignore fields they do not know; writers keep them.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::hash::Hash;
use crate::store::Store;
use crate::util::{read_at, write_atomic};

/// Record format version.
pub const RECORD_VERSION: u32 = 1;

/// One registry record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// [`RECORD_VERSION`].
    pub version: u32,
    /// Absolute path of the worktree when UTF-8.
    pub path: Option<String>,
    /// Hex of the path bytes when the path is not UTF-8.
    #[serde(default)]
    pub path_hex: Option<String>,
    /// The base snapshot id.
    pub snapshot: String,
    /// When the record was written (seconds since the epoch).
    #[serde(default)]
    pub created_unix: u64,
    /// Reserved for the worktree layer's stat cache (see the module doc).
    #[serde(default)]
    pub stat_cache: Option<String>,
    /// Fields written by newer code, kept when a record is rewritten.
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

impl Record {
    /// The worktree path.
    pub fn path_buf(&self) -> Option<PathBuf> {
        if let Some(p) = &self.path {
            return Some(PathBuf::from(p));
        }
        let hex = self.path_hex.as_ref()?;
        let bytes = crate::interchange::from_hex(hex)?;
        Some(PathBuf::from(OsStr::from_bytes(&bytes)))
    }

    /// The base snapshot.
    pub fn snapshot_id(&self) -> Option<Hash> {
        Hash::from_hex(&self.snapshot)
    }

    /// Every snapshot this worktree needs: its base, and while the worktree layer records an
    /// unfinished operation (`"pending": {"from": <hex>, "to": <hex>, ...}`, left by a switch
    /// that was interrupted and is completed by running it again), that operation's snapshots.
    pub fn pinned(&self) -> Vec<Hash> {
        let mut ids: Vec<Hash> = self.snapshot_id().into_iter().collect();
        if let Some(p) = self.extra.get("pending").and_then(|p| p.as_object()) {
            for key in ["from", "to"] {
                if let Some(h) = p.get(key).and_then(|v| v.as_str()).and_then(Hash::from_hex)
                    && !ids.contains(&h)
                {
                    ids.push(h);
                }
            }
        }
        ids
    }
}

/// The registry id of the worktree at absolute `path`.
pub fn worktree_id(path: &Path) -> String {
    Hash::of(path.as_os_str().as_bytes()).to_hex()[..32].to_string()
}

/// Records, durably, that the worktree at absolute `path` (an existing directory) was checked
/// out from `snapshot`, with the device and inode of its root (`dev`, `ino` in the record's
/// extra fields). Returns the registry id.
pub fn register(store: &Store, path: &Path, snapshot: &Hash) -> Result<String> {
    let st = rustix::fs::lstat(path).map_err(|e| {
        Error::msg(format!(
            "register worktree {}: {}",
            path.display(),
            std::io::Error::from(e)
        ))
    })?;
    if rustix::fs::FileType::from_raw_mode(st.st_mode) != rustix::fs::FileType::Directory {
        return Err(Error::msg(format!(
            "register worktree {}: not a directory",
            path.display()
        )));
    }
    register_root(
        store,
        path,
        snapshot,
        (cowtree_fs::sys::stat_dev(&st), st.st_ino),
    )
}

/// [`register`] for a root directory whose device and inode are given: a checkout registers
/// its staging directory (which keeps its inode when renamed to `path`) before the rename,
/// so that a worktree that appears at `path` is registered even if power is lost right after.
pub fn register_root(
    store: &Store,
    path: &Path,
    snapshot: &Hash,
    (dev, ino): (u64, u64),
) -> Result<String> {
    let id = worktree_id(path);
    let (p, hex) = match path.to_str() {
        Some(s) => (Some(s.to_string()), None),
        None => (
            None,
            Some(crate::interchange::to_hex(path.as_os_str().as_bytes())),
        ),
    };
    // The root's device and inode tell the worktree apart from whatever may later take its
    // path; a record is never written without them.
    let mut extra = serde_json::Map::new();
    extra.insert("dev".into(), serde_json::json!(dev));
    extra.insert("ino".into(), serde_json::json!(ino));
    let rec = Record {
        version: RECORD_VERSION,
        path: p,
        path_hex: hex,
        snapshot: snapshot.to_hex(),
        created_unix: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0),
        stat_cache: None,
        extra,
    };
    let json = serde_json::to_vec(&rec).map_err(|e| Error::msg(e.to_string()))?;
    write_atomic(store.worktrees_dir(), OsStr::new(&id), &json, 0o644).map_err(|e| {
        Error::msg(format!(
            "register worktree in {}: {e}",
            store.root().join("worktrees").display()
        ))
    })?;
    Ok(id)
}

/// Held while a checkout registers a path and renames its tree there; see [`claim`].
#[derive(Debug)]
pub struct Claim {
    _fd: std::os::fd::OwnedFd,
}

/// Takes the registration lock (an exclusive flock on a descriptor of its own for
/// `worktrees/`, waiting while another process holds it): one checkout at a time registers a
/// worktree and renames it into place, a matter of milliseconds. Nothing is created for it.
pub fn claim(store: &Store) -> Result<Claim> {
    use rustix::fs::{FlockOperation, Mode, OFlags, flock, openat};
    let at = || store.root().join("worktrees");
    let fd = openat(
        store.worktrees_dir(),
        ".",
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| Error::msg(format!("{}: {}", at().display(), std::io::Error::from(e))))?;
    loop {
        match flock(&fd, FlockOperation::LockExclusive) {
            Ok(()) => return Ok(Claim { _fd: fd }),
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => {
                return Err(Error::msg(format!(
                    "lock {}: {}",
                    at().display(),
                    std::io::Error::from(e)
                )));
            }
        }
    }
}

/// Reads one record.
pub fn get(store: &Store, id: &str) -> Result<Option<Record>> {
    let Some(bytes) = read_at(store.worktrees_dir(), OsStr::new(id))? else {
        return Ok(None);
    };
    serde_json::from_slice(&bytes).map(Some).map_err(|e| {
        Error::msg(format!(
            "worktree record {}: {e}",
            store.root().join("worktrees").join(id).display()
        ))
    })
}

/// Every (id, record). Records that do not parse, and sidecar files, are skipped.
pub fn list(store: &Store) -> Result<Vec<(String, Record)>> {
    let mut out = Vec::new();
    for e in store.worktrees_dir().entries()? {
        let Some(name) = e.name.to_str() else {
            continue;
        };
        if name.len() != 32 || !crate::hash::is_hex(name) {
            continue;
        }
        if let Ok(Some(r)) = get(store, name) {
            out.push((name.to_string(), r));
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}

/// Removes a record (and its stat cache sidecar, if any), durably.
pub fn remove(store: &Store, id: &str) -> Result<()> {
    let _ = store
        .worktrees_dir()
        .remove_file(OsStr::new(&format!("{id}.stat")));
    let dir = || store.root().join("worktrees");
    match store.worktrees_dir().remove_file(OsStr::new(id)) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            return Err(Error::msg(format!("{}: {e}", dir().display())));
        }
        _ => {}
    }
    store
        .worktrees_dir()
        .sync()
        .map_err(|e| Error::msg(format!("sync {}: {e}", dir().display())))
}

/// Paths of registered worktrees that still exist and need `snapshot`: as their base, or
/// as a snapshot of an unfinished switch (see [`Record::pinned`]).
pub fn live_users(store: &Store, snapshot: &Hash) -> Result<Vec<PathBuf>> {
    Ok(list(store)?
        .into_iter()
        .filter(|(_, r)| r.pinned().contains(snapshot))
        .filter_map(|(_, r)| r.path_buf())
        .filter(|p| p.symlink_metadata().is_ok_and(|m| m.is_dir()))
        .collect())
}
