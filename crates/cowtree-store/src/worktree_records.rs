//! The worktree registry as the store sees it: one record per checked-out worktree, kept in
//! the store (`worktrees/<id>`), never inside the worktree.
//!
//! The record is the worktree layer's (`cowtree_worktree::record::Record`, the one type that
//! reads and writes it whole). The store owns two parts of it:
//! - [`Registration`]: what a checkout writes before it renames the tree into place (path,
//!   base snapshot, the root's device and inode), so that a worktree that appears after a
//!   power loss is registered. The worktree layer's record embeds it.
//! - [`Pin`]: what gc and `rm` read of every record, the worktree's path and the set of
//!   snapshots it needs (its base and `also_pins`), read leniently so that a record of an older
//!   version (without `dev`/`ino`, or with an unfinished switch recorded only in `pending`)
//!   still pins what it needs.
//!
//! The format (version 1) is specified in docs/store.md, "Worktree registry". `<id>` is the
//! first 32 hex digits of BLAKE3 of the worktree's absolute path bytes, so a second checkout
//! to the same path replaces the record.

use std::ffi::OsStr;
#[cfg(unix)]
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::hash::Hash;
use crate::store::Store;
use crate::util::{read_at, write_atomic};

/// Record format version.
pub const RECORD_VERSION: u32 = 1;

/// The part of a worktree's record that a checkout writes (see the module doc). Every field
/// but `path_hex`, `created_unix` and `also_pins` is required when it is read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Registration {
    /// [`RECORD_VERSION`].
    pub version: u32,
    /// Absolute path of the worktree when UTF-8.
    pub path: Option<String>,
    /// Hex of the path bytes when the path is not UTF-8.
    #[serde(default)]
    pub path_hex: Option<String>,
    /// The base snapshot.
    #[serde(with = "hex_hash")]
    pub snapshot: Hash,
    /// When the worktree was registered (seconds since the epoch).
    #[serde(default)]
    pub created_unix: u64,
    /// Device of the worktree's root directory.
    pub dev: u64,
    /// Inode of the worktree's root directory.
    pub ino: u64,
    /// Snapshots the worktree needs besides its base (those of an unfinished switch); set by
    /// the worktree layer, read by gc and `rm`.
    #[serde(default, with = "hex_hashes", skip_serializing_if = "Vec::is_empty")]
    pub also_pins: Vec<Hash>,
}

impl Registration {
    /// A registration of the worktree at absolute `path` with base `snapshot` and root
    /// (`dev`, `ino`), created now.
    pub fn new(path: &Path, snapshot: &Hash, (dev, ino): (u64, u64)) -> Registration {
        let (p, hex) = path_fields(path);
        Registration {
            version: RECORD_VERSION,
            path: p,
            path_hex: hex,
            snapshot: *snapshot,
            created_unix: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0),
            dev,
            ino,
            also_pins: Vec::new(),
        }
    }

    /// The worktree path.
    pub fn path_buf(&self) -> Option<PathBuf> {
        path_from_fields(self.path.as_deref(), self.path_hex.as_deref())
    }

    /// Points the record at `path`.
    pub fn set_path(&mut self, path: &Path) {
        (self.path, self.path_hex) = path_fields(path);
    }
}

/// `path` and `path_hex` for `path`: the path when UTF-8, else its bytes in hex.
fn path_fields(path: &Path) -> (Option<String>, Option<String>) {
    match path.to_str() {
        Some(s) => (Some(s.to_string()), None),
        None => (
            None,
            Some(crate::interchange::to_hex(
                path.as_os_str().as_encoded_bytes(),
            )),
        ),
    }
}

/// The path a record's `path` and `path_hex` fields name.
pub fn path_from_fields(path: Option<&str>, hex: Option<&str>) -> Option<PathBuf> {
    if let Some(p) = path {
        return Some(PathBuf::from(p));
    }
    let bytes = crate::interchange::from_hex(hex?)?;
    path_from_bytes(bytes)
}

/// The path whose bytes `path_hex` holds.
#[cfg(unix)]
pub(crate) fn path_from_bytes(bytes: Vec<u8>) -> Option<PathBuf> {
    Some(PathBuf::from(OsStr::from_bytes(&bytes)))
}

/// The path whose bytes `path_hex` holds: on Windows an `OsStr`'s own encoding (WTF-8, the
/// UTF-8 form of UTF-16 that allows an unpaired surrogate, which NTFS names may hold),
/// decoded back to UTF-16; `None` for bytes that are not WTF-8.
#[cfg(windows)]
pub(crate) fn path_from_bytes(bytes: Vec<u8>) -> Option<PathBuf> {
    use std::os::windows::ffi::OsStringExt;
    let mut units: Vec<u16> = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        let (len, lead) = match b {
            0x00..=0x7f => (1, u32::from(b)),
            0xc2..=0xdf => (2, u32::from(b & 0x1f)),
            0xe0..=0xef => (3, u32::from(b & 0x0f)),
            0xf0..=0xf4 => (4, u32::from(b & 0x07)),
            _ => return None,
        };
        let mut c = lead;
        for &x in bytes.get(i + 1..i + len)? {
            if x & 0xc0 != 0x80 {
                return None;
            }
            c = (c << 6) | u32::from(x & 0x3f);
        }
        let least = [0, 0, 0x80, 0x800, 0x1_0000][len];
        if c < least || c > 0x10_ffff {
            return None;
        }
        match u16::try_from(c) {
            Ok(unit) => units.push(unit),
            Err(_) => {
                let c = c - 0x1_0000;
                units.push(0xd800 | (c >> 10) as u16);
                units.push(0xdc00 | (c & 0x3ff) as u16);
            }
        }
        i += len;
    }
    Some(PathBuf::from(std::ffi::OsString::from_wide(&units)))
}

/// What gc and `rm` know of one record: where the worktree is and which snapshots it needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pin {
    /// The record's id.
    pub id: String,
    /// The worktree's path (`None` when the record names none it can read).
    pub path: Option<PathBuf>,
    /// Its base, then any other snapshot it needs.
    pub snapshots: Vec<Hash>,
}

/// The fields of a record that [`Pin`] is read from. Lenient on purpose: a record of an older
/// version must keep pinning its snapshots.
#[derive(Deserialize)]
struct PinFields {
    path: Option<String>,
    #[serde(default)]
    path_hex: Option<String>,
    snapshot: String,
    #[serde(default)]
    also_pins: Vec<String>,
    /// Records written before `also_pins` named an unfinished switch's snapshots only here.
    #[serde(default)]
    pending: Option<LegacyPending>,
}

#[derive(Deserialize)]
struct LegacyPending {
    from: Option<String>,
    to: Option<String>,
}

impl PinFields {
    fn pin(self, id: String) -> Pin {
        let mut snapshots: Vec<Hash> = Vec::new();
        let legacy = self
            .pending
            .into_iter()
            .flat_map(|p| [p.from, p.to])
            .flatten();
        let hexes = std::iter::once(self.snapshot)
            .chain(self.also_pins)
            .chain(legacy);
        for h in hexes.filter_map(|h| Hash::from_hex(&h)) {
            if !snapshots.contains(&h) {
                snapshots.push(h);
            }
        }
        Pin {
            id,
            path: path_from_fields(self.path.as_deref(), self.path_hex.as_deref()),
            snapshots,
        }
    }
}

/// The registry id of the worktree at absolute `path`.
pub fn worktree_id(path: &Path) -> String {
    Hash::of(path.as_os_str().as_encoded_bytes()).to_hex()[..32].to_string()
}

/// The path of record `id`, for messages.
pub fn record_path(store: &Store, id: &str) -> PathBuf {
    store.worktrees_path().join(id)
}

/// Records, durably, that the worktree at absolute `path` (an existing directory) was checked
/// out from `snapshot`, with the device and inode of its root. Returns the registry id.
#[cfg(unix)]
pub fn register(store: &Store, path: &Path, snapshot: &Hash) -> Result<String> {
    let st =
        rustix::fs::lstat(path).map_err(|e| Error::io_at("register worktree", path, e.into()))?;
    if rustix::fs::FileType::from_raw_mode(st.st_mode) != rustix::fs::FileType::Directory {
        return Err(Error::io_at(
            "register worktree",
            path,
            std::io::Error::from(rustix::io::Errno::NOTDIR),
        ));
    }
    register_root(store, path, snapshot, crate::util::file_id(&st))
}

/// Records, durably, that the worktree at absolute `path` (an existing directory, not a
/// reparse point) was checked out from `snapshot`, with the volume serial and file id of its
/// root ([`crate::util::file_id`]). Returns the registry id.
#[cfg(windows)]
pub fn register(store: &Store, path: &Path, snapshot: &Hash) -> Result<String> {
    let ctx = |e| Error::io_at("register worktree", path, e);
    let meta = path.symlink_metadata().map_err(ctx)?;
    if !meta.is_dir() {
        return Err(ctx(std::io::ErrorKind::NotADirectory.into()));
    }
    let root = cowtree_fs::dir::Dir::open(path).map_err(ctx)?;
    let st = root.stat_self().map_err(ctx)?;
    register_root(store, path, snapshot, crate::util::file_id(&st))
}

/// [`register`] for a root directory whose device and inode are given: a checkout registers
/// its staging directory (which keeps its inode when renamed to `path`) before the rename,
/// so that a worktree that appears at `path` is registered even if power is lost right after.
pub fn register_root(
    store: &Store,
    path: &Path,
    snapshot: &Hash,
    root: (u64, u64),
) -> Result<String> {
    register_root_with(store, path, snapshot, root, &|reg| {
        serde_json::to_vec(reg).expect("a registration of strings and integers serializes")
    })
}

/// [`register_root`] writing the record `encode` makes of the registration (the worktree
/// layer's whole record, which embeds it), so that the record is written and synced once.
pub fn register_root_with(
    store: &Store,
    path: &Path,
    snapshot: &Hash,
    root: (u64, u64),
    encode: &dyn Fn(&Registration) -> Vec<u8>,
) -> Result<String> {
    let id = worktree_id(path);
    write(
        store,
        &id,
        &encode(&Registration::new(path, snapshot, root)),
    )?;
    Ok(id)
}

/// Writes record `id` (the bytes of a whole record) atomically and durably.
pub fn write(store: &Store, id: &str, bytes: &[u8]) -> Result<()> {
    write_atomic(store.worktrees_dir(), OsStr::new(id), bytes, 0o644)
        .map_err(|e| Error::io_at("write", record_path(store, id), e))
}

/// Held while a checkout registers a path and renames its tree there; see [`claim`].
#[derive(Debug)]
pub struct Claim {
    #[cfg(unix)]
    _fd: std::os::fd::OwnedFd,
    #[cfg(windows)]
    _held: crate::lock::Held,
}

/// Takes the registration lock (an exclusive flock on a descriptor of its own for
/// `worktrees/`, waiting while another process holds it): one checkout at a time registers a
/// worktree and renames it into place, a matter of milliseconds. Nothing is created for it.
#[cfg(unix)]
pub fn claim(store: &Store) -> Result<Claim> {
    use rustix::fs::{FlockOperation, Mode, OFlags, flock, openat};
    let at = || store.worktrees_path().to_path_buf();
    let fd = openat(
        store.worktrees_dir(),
        ".",
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| Error::io_at("", at(), e.into()))?;
    loop {
        match flock(&fd, FlockOperation::LockExclusive) {
            Ok(()) => return Ok(Claim { _fd: fd }),
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(Error::io_at("lock", at(), e.into())),
        }
    }
}

/// Takes the registration lock (see the unix one). Windows cannot lock a directory: the lock
/// is `LockFileEx` on the file `.claim` in `worktrees/` (made on first use, kept; not a
/// record), waiting while another process holds it.
#[cfg(windows)]
pub fn claim(store: &Store) -> Result<Claim> {
    let at = || store.worktrees_path().join(CLAIM_FILE);
    let file = crate::lock::open_file(store.worktrees_dir(), OsStr::new(CLAIM_FILE), true)
        .map_err(|e| Error::io_at("", at(), e))?
        .ok_or_else(|| Error::io_at("", at(), std::io::ErrorKind::NotFound.into()))?;
    let held = crate::lock::lock(file, true).map_err(|e| Error::io_at("lock", at(), e))?;
    Ok(Claim { _held: held })
}

/// The file whose lock is the registration lock on Windows (see [`claim`]).
#[cfg(windows)]
const CLAIM_FILE: &str = ".claim";

/// The bytes of record `id`, if it exists.
pub fn read(store: &Store, id: &str) -> Result<Option<Vec<u8>>> {
    read_at(store.worktrees_dir(), OsStr::new(id))
        .map_err(|e| Error::io_at("read", record_path(store, id), e))
}

/// True when record `id` exists.
pub fn exists(store: &Store, id: &str) -> Result<bool> {
    (store.worktrees_dir().try_stat(OsStr::new(id)))
        .map(|st| st.is_some())
        .map_err(|e| Error::io_at("", record_path(store, id), e))
}

/// The id of every record, sorted (sidecar files and temporary files are not records).
pub fn ids(store: &Store) -> Result<Vec<String>> {
    let entries = (store.worktrees_dir().entries())
        .map_err(|e| Error::io_at("", store.worktrees_path(), e))?;
    let mut out: Vec<String> = entries
        .into_iter()
        .filter_map(|e| e.name.to_str().map(str::to_string))
        .filter(|n| n.len() == 32 && crate::hash::is_hex(n))
        .collect();
    out.sort();
    Ok(out)
}

/// What every record pins, sorted by id. Records that cannot be read or do not parse are
/// skipped.
pub fn pins(store: &Store) -> Result<Vec<Pin>> {
    let mut out = Vec::new();
    for id in ids(store)? {
        let Ok(Some(bytes)) = read(store, &id) else {
            continue;
        };
        if let Ok(fields) = serde_json::from_slice::<PinFields>(&bytes) {
            out.push(fields.pin(id));
        }
    }
    Ok(out)
}

/// Removes a record (and its stat cache sidecar, if any), durably.
pub fn remove(store: &Store, id: &str) -> Result<()> {
    let _ = store
        .worktrees_dir()
        .remove_file(OsStr::new(&format!("{id}.stat")));
    let dir = || store.worktrees_path().to_path_buf();
    match store.worktrees_dir().remove_file(OsStr::new(id)) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            return Err(Error::io_at("remove", record_path(store, id), e));
        }
        _ => {}
    }
    store
        .worktrees_dir()
        .sync()
        .map_err(|e| Error::io_at("sync", dir(), e))
}

/// Paths of registered worktrees that still exist and need `snapshot`: as their base, or
/// as a snapshot of an unfinished switch (see [`Pin`]).
pub fn live_users(store: &Store, snapshot: &Hash) -> Result<Vec<PathBuf>> {
    Ok(pins(store)?
        .into_iter()
        .filter(|p| p.snapshots.contains(snapshot))
        .filter_map(|p| p.path)
        .filter(|p| p.symlink_metadata().is_ok_and(|m| m.is_dir()))
        .collect())
}

/// Serde of a [`struct@Hash`] as its 64 hex digits.
pub mod hex_hash {
    use serde::{Deserialize, Deserializer, Serializer, de::Error as _};

    use crate::hash::Hash;

    /// Writes the hex.
    pub fn serialize<S: Serializer>(h: &Hash, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&h.to_hex())
    }

    /// Reads 64 hex digits.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Hash, D::Error> {
        let s = String::deserialize(d)?;
        Hash::from_hex(&s).ok_or_else(|| D::Error::custom(format!("not a snapshot id: {s:?}")))
    }
}

/// Serde of a list of [`struct@Hash`] values, each as its 64 hex digits.
pub mod hex_hashes {
    use serde::{Deserialize, Deserializer, Serializer, de::Error as _};

    use crate::hash::Hash;

    /// Writes the hex of each.
    pub fn serialize<S: Serializer>(hs: &[Hash], s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(hs.iter().map(Hash::to_hex))
    }

    /// Reads a list of 64-hex-digit ids.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Hash>, D::Error> {
        Vec::<String>::deserialize(d)?
            .iter()
            .map(|s| {
                Hash::from_hex(s)
                    .ok_or_else(|| D::Error::custom(format!("not a snapshot id: {s:?}")))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hash(b: u8) -> Hash {
        Hash::from_bytes([b; 32])
    }

    #[test]
    fn a_registration_reads_back_as_written_and_requires_its_root() {
        let r = Registration::new(Path::new("/w"), &hash(1), (7, 42));
        let json = serde_json::to_vec(&r).unwrap();
        assert_eq!(serde_json::from_slice::<Registration>(&json).unwrap(), r);
        let mut v: serde_json::Value = serde_json::from_slice(&json).unwrap();
        v.as_object_mut().unwrap().remove("ino");
        let e = serde_json::from_value::<Registration>(v).unwrap_err();
        assert!(e.to_string().contains("ino"), "{e}");
    }

    #[test]
    fn pins_are_the_base_then_also_pins_then_a_legacy_pending_switch() {
        let text = format!(
            r#"{{"version":1,"path":"/w","snapshot":"{a}","also_pins":["{b}"],
                "pending":{{"op":"switch","from":"{a}","to":"{c}"}}}}"#,
            a = hash(1),
            b = hash(2),
            c = hash(3)
        );
        let pin = serde_json::from_str::<PinFields>(&text)
            .unwrap()
            .pin("x".into());
        assert_eq!(pin.snapshots, vec![hash(1), hash(2), hash(3)]);
        assert_eq!(pin.path, Some(PathBuf::from("/w")));
    }

    #[test]
    fn a_record_without_dev_and_ino_still_pins_its_base() {
        let text = format!(r#"{{"version":1,"path":"/w","snapshot":"{}"}}"#, hash(9));
        let pin = serde_json::from_str::<PinFields>(&text)
            .unwrap()
            .pin("x".into());
        assert_eq!(pin.snapshots, vec![hash(9)]);
    }

    #[cfg(unix)]
    #[test]
    fn a_non_utf8_path_is_kept_in_hex() {
        let p = Path::new(OsStr::from_bytes(b"/w\xff"));
        let r = Registration::new(p, &hash(1), (1, 2));
        assert_eq!(r.path, None);
        assert_eq!(r.path_buf().as_deref(), Some(p));
    }

    #[cfg(windows)]
    #[test]
    fn a_path_with_an_unpaired_surrogate_is_kept_in_hex_and_read_back() {
        use std::os::windows::ffi::OsStringExt;
        // C:\w<U+D800>\é<U+1F600>: an unpaired surrogate (not Unicode), then a pair.
        let units: Vec<u16> = "C:\\w"
            .encode_utf16()
            .chain([0xd800])
            .chain("\\é\u{1f600}".encode_utf16())
            .collect();
        let p = PathBuf::from(std::ffi::OsString::from_wide(&units));
        let r = Registration::new(&p, &hash(1), (1, 2));
        assert_eq!(r.path, None);
        assert_eq!(r.path_buf(), Some(p));
        assert_eq!(path_from_bytes(vec![0x80]), None);
        assert_eq!(path_from_bytes(vec![0xe0, 0x80, 0x80]), None, "overlong");
    }
}
