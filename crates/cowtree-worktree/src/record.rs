//! A worktree's record (`worktrees/<id>` in the store): the one type that reads and writes it
//! whole. The store writes its first part at checkout ([`Registration`]); this layer adds the
//! stat cache's name and the journal of an unfinished switch, and keeps the store's pin set
//! (`also_pins`) in step with that journal.
//!
//! ```json
//! {"version":1,"path":"/abs/wt","path_hex":null,"snapshot":"<64 hex>","created_unix":1795334740,
//!  "dev":2049,"ino":131,"stat_cache":"<id>.stat",
//!  "pending":{"op":"switch","from":"<64 hex>","to":"<64 hex>"},"also_pins":["<64 hex>", ...]}
//! ```
//!
//! `version`, `snapshot`, `dev`, `ino` and one of `path`/`path_hex` are required. A record
//! written by an older version without `dev` and `ino` (or with 0 and 0, which no directory
//! has) is migrated when it is read: they are taken from the directory at its path, and the
//! next save writes them; when that path is no directory, the record is refused with an error
//! naming its file. The format is specified in docs/store.md, "Worktree registry".

use std::path::Path;

use cowtree_store::worktree_records::{RECORD_VERSION, Registration, hex_hash};
use cowtree_store::{Hash, Store};
use serde::{Deserialize, Serialize};

use crate::error::{Corrupt, Error, Result};

/// A worktree's record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// What the checkout registered: path, base, root device and inode, pinned snapshots.
    #[serde(flatten)]
    pub registration: Registration,
    /// The stat cache sidecar's name in `worktrees/` (`<id>.stat`). A checkout registers it
    /// in the record before the sidecar is written, so it may name a sidecar that does not
    /// exist (yet, or ever if the checkout died): that reads as an empty cache.
    #[serde(default)]
    pub stat_cache: Option<String>,
    /// The journal of a switch that has started and not finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending: Option<PendingSwitch>,
}

/// The journal of an unfinished switch, as recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingSwitch {
    /// Always `"switch"`.
    pub op: SwitchOp,
    /// The base before the switch.
    #[serde(with = "hex_hash")]
    pub from: Hash,
    /// The snapshot being switched to.
    #[serde(with = "hex_hash")]
    pub to: Hash,
}

/// The only operation a record journals.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SwitchOp {
    /// A switch.
    Switch,
}

impl Record {
    /// A fresh record for the worktree at absolute `path` with base `base` and root (`dev`,
    /// `ino`).
    pub fn new(path: &Path, base: &Hash, root: (u64, u64)) -> Record {
        Record {
            registration: Registration::new(path, base, root),
            stat_cache: None,
            pending: None,
        }
    }

    /// The worktree's path.
    pub fn path_buf(&self) -> Option<std::path::PathBuf> {
        self.registration.path_buf()
    }

    /// Sets (or clears) the journal of a switch, and the pins that keep its snapshots.
    pub fn set_pending(&mut self, pending: Option<(Hash, Hash)>) {
        self.pending = pending.map(|(from, to)| PendingSwitch {
            op: SwitchOp::Switch,
            from,
            to,
        });
        self.registration.also_pins = match pending {
            Some((from, to)) => [from, to]
                .into_iter()
                .filter(|h| *h != self.registration.snapshot)
                .collect(),
            None => Vec::new(),
        };
    }

    /// Decodes record `bytes` read from `file`. A record without its root's device and inode
    /// is migrated: `root_of` gives them from the directory at the record's path (see the
    /// module doc); the returned flag says so, and the caller saves the record to write them.
    pub fn decode(
        bytes: &[u8],
        file: &Path,
        root_of: impl FnOnce(&Path) -> Option<(u64, u64)>,
    ) -> Result<(Record, bool)> {
        let bad = |why: String| -> Error {
            Corrupt::Record {
                path: file.to_path_buf(),
                why,
            }
            .into()
        };
        let mut v: serde_json::Value =
            serde_json::from_slice(bytes).map_err(|e| bad(e.to_string()))?;
        let obj = v
            .as_object_mut()
            .ok_or_else(|| bad("not a JSON object".into()))?;
        match obj.get("version").and_then(serde_json::Value::as_u64) {
            Some(v) if v == u64::from(RECORD_VERSION) => {}
            other => {
                return Err(bad(format!(
                    "format version {} (this cowtree reads version {RECORD_VERSION})",
                    other.map_or("missing".into(), |v| v.to_string())
                )));
            }
        }
        let field = |k: &str| obj.get(k).and_then(serde_json::Value::as_u64);
        let migrate = !matches!((field("dev"), field("ino")), (Some(_), Some(ino)) if ino != 0);
        if migrate {
            // Older versions wrote records without them (or with 0 and 0); the root's at its
            // path is the worktree's only if it is a directory there now.
            let partial: Partial = serde_json::from_value(serde_json::Value::Object(obj.clone()))
                .map_err(|e| bad(e.to_string()))?;
            let path = partial
                .path_buf()
                .ok_or_else(|| bad("names no path".into()))?;
            let (dev, ino) = root_of(&path).ok_or_else(|| {
                bad(format!(
                    "lacks its root's device and inode, and {} is not a directory to take them \
                     from",
                    path.display()
                ))
            })?;
            obj.insert("dev".into(), dev.into());
            obj.insert("ino".into(), ino.into());
        }
        let record: Record = serde_json::from_value(v).map_err(|e| bad(e.to_string()))?;
        if record.registration.path_buf().is_none() {
            return Err(bad("names no path".into()));
        }
        Ok((record, migrate))
    }

    /// The record's bytes.
    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("a record of strings and integers serializes")
    }

    /// Reads record `id` of `store`, migrating an old one as [`Record::decode`] does; `None`
    /// when there is none.
    pub fn read(
        store: &Store,
        id: &str,
        root_of: impl FnOnce(&Path) -> Option<(u64, u64)>,
    ) -> Result<Option<(Record, bool)>> {
        let Some(bytes) = cowtree_store::worktree_records::read(store, id)? else {
            return Ok(None);
        };
        let file = cowtree_store::worktree_records::record_path(store, id);
        Record::decode(&bytes, &file, root_of).map(Some)
    }
}

/// The path fields of a record that lacks its root's device and inode.
#[derive(Deserialize)]
struct Partial {
    path: Option<String>,
    #[serde(default)]
    path_hex: Option<String>,
}

impl Partial {
    fn path_buf(&self) -> Option<std::path::PathBuf> {
        cowtree_store::worktree_records::path_from_fields(
            self.path.as_deref(),
            self.path_hex.as_deref(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hash(b: u8) -> Hash {
        Hash::from_bytes([b; 32])
    }

    fn no_dir(_: &Path) -> Option<(u64, u64)> {
        None
    }

    #[test]
    fn a_store_registration_decodes_as_a_complete_record() {
        let reg = Registration::new(Path::new("/w"), &hash(1), (5, 77));
        let bytes = serde_json::to_vec(&reg).unwrap();
        let (r, migrated) = Record::decode(&bytes, Path::new("/s/worktrees/x"), no_dir).unwrap();
        assert!(!migrated);
        assert_eq!(r.registration, reg);
        assert_eq!((r.stat_cache, r.pending), (None, None));
    }

    #[test]
    fn a_record_reads_back_as_written_with_its_switch_journal_and_pins() {
        let mut r = Record::new(Path::new("/w"), &hash(1), (5, 77));
        r.stat_cache = Some("x.stat".into());
        r.set_pending(Some((hash(1), hash(2))));
        assert_eq!(r.registration.also_pins, vec![hash(2)]);
        let (back, _) = Record::decode(&r.encode(), Path::new("/f"), no_dir).unwrap();
        assert_eq!(back, r);
        let v: serde_json::Value = serde_json::from_slice(&r.encode()).unwrap();
        assert_eq!(v["pending"]["op"], "switch");
        assert_eq!(v["dev"], 5);
        r.set_pending(None);
        assert!(r.registration.also_pins.is_empty());
        assert!(r.pending.is_none());
    }

    #[test]
    fn a_record_without_dev_and_ino_is_migrated_from_its_directory_never_zeroed() {
        for damage in [r#""#, r#","dev":0,"ino":0"#] {
            let text = format!(
                r#"{{"version":1,"path":"/w","snapshot":"{}"{damage}}}"#,
                hash(3)
            );
            let (r, migrated) = Record::decode(text.as_bytes(), Path::new("/f"), |p| {
                assert_eq!(p, Path::new("/w"));
                Some((8, 99))
            })
            .unwrap();
            assert!(migrated, "{text}");
            assert_eq!((r.registration.dev, r.registration.ino), (8, 99));
            let e =
                Record::decode(text.as_bytes(), Path::new("/s/worktrees/f"), no_dir).unwrap_err();
            assert!(e.is_corrupt(), "{e}");
            let msg = e.to_string();
            assert!(
                msg.contains("/s/worktrees/f") && msg.contains("/w is not a directory"),
                "{msg}"
            );
        }
    }

    #[test]
    fn a_record_without_a_snapshot_or_of_another_version_is_refused_naming_its_file() {
        for text in [
            r#"{"version":1,"path":"/w","dev":1,"ino":2}"#.to_string(),
            format!(
                r#"{{"version":2,"path":"/w","snapshot":"{}","dev":1,"ino":2}}"#,
                hash(1)
            ),
            "[]".to_string(),
            format!(
                r#"{{"version":1,"snapshot":"{}","dev":1,"ino":2}}"#,
                hash(1)
            ),
        ] {
            let e =
                Record::decode(text.as_bytes(), Path::new("/s/worktrees/f"), no_dir).unwrap_err();
            assert!(
                e.to_string()
                    .starts_with("worktree record /s/worktrees/f: "),
                "{e}"
            );
        }
    }
}
