//! Version 2 of the JSON form (docs/manifest.md): what a manifest of `snapshot --archive`
//! records beside its entries, as JSON and back. Each entry's metadata (mode, owner, group,
//! attributes), or for a later name of a hardlink group the path of the group's first name;
//! the kept items; the records of directories and special files.
//!
//! Reading here only turns JSON into those values, refusing what is ill-formed as JSON (a
//! missing field, a number out of range, an unknown field or kind). Whether the values make
//! a valid manifest is the binary decoder's to judge: [`Manifest::with_parts`] checks the
//! whole as a snapshot's bytes are checked.

use cowtree_link::Preserve;
use serde_json::{Map, Value};

use super::{bytes_field, bytes_of};
use crate::error::{Error, Result};
use crate::manifest::{Extra, ExtraKind, Link, Manifest, Meta, show};

/// What version 2 gives of an entry beside version 1's fields, to write it: its metadata, or
/// (a later name of a hardlink group) the path of the group's first name.
#[derive(Debug, Clone, Copy)]
pub(super) enum EntryArchive<'a> {
    /// Not a later name of a group: its metadata.
    Meta(&'a Meta),
    /// A later name of the group whose first name has this path.
    LinkOf(&'a [u8]),
}

/// The metadata no entry is recorded with (what the encoding writes of an entry whose
/// metadata is missing, as it writes it).
static NO_META: Meta = Meta {
    mode: 0,
    uid: 0,
    gid: 0,
    xattrs: Vec::new(),
};

impl<'a> EntryArchive<'a> {
    /// What version 2 gives of entry `index` of `m`, when `m` is a version 2 manifest.
    pub(super) fn of(m: &'a Manifest, index: usize) -> Option<EntryArchive<'a>> {
        let em = m.archive()?.entries.get(index)?;
        Some(match em.link {
            Link::Of(first) => EntryArchive::LinkOf(
                // (A decoded manifest's later name follows its group's first name.)
                m.entries()
                    .get(first as usize)
                    .map_or(&[][..], |e| e.path.as_slice()),
            ),
            Link::None | Link::First => EntryArchive::Meta(em.meta.as_ref().unwrap_or(&NO_META)),
        })
    }

    /// Adds its fields to an entry's object.
    pub(super) fn add_to(self, o: &mut Map<String, Value>) {
        match self {
            EntryArchive::Meta(m) => meta_json(o, m),
            EntryArchive::LinkOf(first) => bytes_field(o, "link_of", first),
        }
    }
}

/// Adds `m`'s fields: `mode`, `uid`, `gid`, and `xattrs` unless there are none.
fn meta_json(o: &mut Map<String, Value>, m: &Meta) {
    o.insert("mode".into(), m.mode.into());
    o.insert("uid".into(), m.uid.into());
    o.insert("gid".into(), m.gid.into());
    if !m.xattrs.is_empty() {
        let list = m
            .xattrs
            .iter()
            .map(|(name, value)| {
                let mut a = Map::new();
                bytes_field(&mut a, "name", name);
                bytes_field(&mut a, "value", value);
                Value::Object(a)
            })
            .collect();
        o.insert("xattrs".into(), Value::Array(list));
    }
}

/// The name of a record's kind in JSON.
fn record_kind(k: ExtraKind) -> &'static str {
    match k {
        ExtraKind::Dir => "dir",
        ExtraKind::Fifo => "fifo",
        ExtraKind::Socket => "socket",
        ExtraKind::CharDevice(_) => "char",
        ExtraKind::BlockDevice(_) => "block",
    }
}

/// The JSON form of a record of a directory or special file.
pub(super) fn record_json(x: &Extra) -> Value {
    let mut o = Map::new();
    bytes_field(&mut o, "path", &x.path);
    o.insert("kind".into(), record_kind(x.kind).into());
    if let ExtraKind::CharDevice(rdev) | ExtraKind::BlockDevice(rdev) = x.kind {
        o.insert("major".into(), dev_major(rdev).into());
        o.insert("minor".into(), dev_minor(rdev).into());
    }
    meta_json(&mut o, &x.meta);
    Value::Object(o)
}

// A device number as Linux splits it (glibc's `gnu_dev_major`, `gnu_dev_minor`,
// `gnu_dev_makedev`): 32 bits each of major and minor in the 64 of the number the binary
// manifest holds, so that the two are one to one.

/// The major number of device number `rdev`.
pub(super) fn dev_major(rdev: u64) -> u32 {
    (((rdev >> 32) & 0xffff_f000) | ((rdev >> 8) & 0x0fff)) as u32
}

/// The minor number of device number `rdev`.
pub(super) fn dev_minor(rdev: u64) -> u32 {
    (((rdev >> 12) & 0xffff_ff00) | (rdev & 0xff)) as u32
}

/// The device number of `major` and `minor`.
pub(super) fn makedev(major: u32, minor: u32) -> u64 {
    let (major, minor) = (u64::from(major), u64::from(minor));
    ((major & 0xffff_f000) << 32)
        | ((major & 0x0fff) << 8)
        | ((minor & 0xffff_ff00) << 12)
        | (minor & 0xff)
}

/// The kept items an `"archive"` value names (each of `archive_items`' names at most once).
pub(super) fn preserve_from_json(v: &Value) -> std::result::Result<Preserve, String> {
    let Value::Array(items) = v else {
        return Err(format!("\"archive\" must be an array of names, found {v}"));
    };
    let mut p = Preserve::default();
    for item in items {
        let slot = match item.as_str() {
            Some("ownership") => &mut p.ownership,
            Some("xattr") => &mut p.xattr,
            Some("acl") => &mut p.acl,
            Some("links") => &mut p.links,
            Some("special") => &mut p.special,
            _ => {
                return Err(format!(
                    "\"archive\": unknown item {item} (the items are ownership, xattr, acl, \
                     links and special)"
                ));
            }
        };
        if *slot {
            return Err(format!("\"archive\": {item} named twice"));
        }
        *slot = true;
    }
    if p == Preserve::default() {
        return Err("\"archive\" names no item: a snapshot of version 2 keeps at least one".into());
    }
    Ok(p)
}

/// The fields an entry may have in version 2 only.
pub(super) const ENTRY_FIELDS: [&str; 6] =
    ["mode", "uid", "gid", "xattrs", "link_of", "link_of_hex"];

/// What version 2 gives of an entry beside version 1's fields, as read: its metadata, or the
/// path of its group's first name (not both), and the first version 2 field found (so that a
/// document of version 1 holding one is refused, naming it).
#[derive(Debug)]
pub(super) struct EntryFields {
    pub(super) meta: Option<Meta>,
    pub(super) link_of: Option<Vec<u8>>,
    pub(super) field: &'static str,
}

/// The version 2 fields of an entry's object (`None` when it has none). The caller has
/// refused fields that are not of the entry's kind or of [`ENTRY_FIELDS`].
pub(super) fn entry_fields(
    o: &Map<String, Value>,
) -> std::result::Result<Option<Box<EntryFields>>, String> {
    let Some(field) = ENTRY_FIELDS.into_iter().find(|f| o.contains_key(*f)) else {
        return Ok(None);
    };
    let link_of = bytes_of(o, "link_of")?;
    let has_meta = ["mode", "uid", "gid", "xattrs"]
        .iter()
        .any(|f| o.contains_key(*f));
    if link_of.is_some() && has_meta {
        return Err(
            "a later name of a hardlink group (\"link_of\") has no metadata of its own (its \
             first name's is the inode's)"
                .into(),
        );
    }
    let meta = if has_meta { Some(meta_of(o)?) } else { None };
    Ok(Some(Box::new(EntryFields {
        meta,
        link_of,
        field,
    })))
}

/// The metadata fields of an object: `mode`, `uid` and `gid` (required) and `xattrs`
/// (absent: none), the attributes sorted by name as a manifest holds them.
fn meta_of(o: &Map<String, Value>) -> std::result::Result<Meta, String> {
    let mut xattrs = match o.get("xattrs") {
        None => Vec::new(),
        Some(Value::Array(list)) => list
            .iter()
            .enumerate()
            .map(|(i, a)| xattr_of(a).map_err(|why| format!("\"xattrs\" {i}: {why}")))
            .collect::<std::result::Result<Vec<_>, String>>()?,
        Some(other) => return Err(format!("\"xattrs\" must be an array, found {other}")),
    };
    xattrs.sort();
    Ok(Meta {
        mode: u32_of(o, "mode")?,
        uid: u32_of(o, "uid")?,
        gid: u32_of(o, "gid")?,
        xattrs,
    })
}

/// One attribute: `name` or `name_hex`, `value` or `value_hex`.
fn xattr_of(a: &Value) -> std::result::Result<(Vec<u8>, Vec<u8>), String> {
    let Value::Object(a) = a else {
        return Err(format!("must be an object, found {a}"));
    };
    let allowed = ["name", "name_hex", "value", "value_hex"];
    if let Some(k) = a.keys().find(|k| !allowed.contains(&k.as_str())) {
        return Err(format!("unknown field {k:?}"));
    }
    let name = bytes_of(a, "name")?.ok_or("needs \"name\" or \"name_hex\"")?;
    let value = bytes_of(a, "value")?.ok_or("needs \"value\" or \"value_hex\"")?;
    Ok((name, value))
}

/// The 32-bit unsigned integer field `name` (required).
fn u32_of(o: &Map<String, Value>, name: &str) -> std::result::Result<u32, String> {
    match o.get(name) {
        None => Err(format!("missing {name:?}")),
        Some(v) => v
            .as_u64()
            .and_then(|n| u32::try_from(n).ok())
            .ok_or_else(|| format!("{name:?} must be an integer from 0 to 4294967295, found {v}")),
    }
}

/// A record of a directory or special file (number `i` in the input) from its JSON form.
pub(super) fn record_from_json(i: usize, item: &Value) -> Result<Extra> {
    let Value::Object(o) = item else {
        return Err(Error::invalid_input(format!(
            "record {i}: must be a JSON object"
        )));
    };
    let path =
        bytes_of(o, "path").map_err(|why| Error::invalid_input(format!("record {i}: {why}")))?;
    let Some(path) = path else {
        return Err(Error::invalid_input(format!(
            "record {i}: needs \"path\" or \"path_hex\" (\"\" for the root)"
        )));
    };
    let err = |why: String| Error::invalid_input(format!("record {i} {}: {why}", show(&path)));
    let device = |o: &Map<String, Value>| -> std::result::Result<u64, String> {
        Ok(makedev(u32_of(o, "major")?, u32_of(o, "minor")?))
    };
    let (kind, device_fields) = match o.get("kind").and_then(Value::as_str) {
        Some("dir") => (ExtraKind::Dir, false),
        Some("fifo") => (ExtraKind::Fifo, false),
        Some("socket") => (ExtraKind::Socket, false),
        Some("char") => (ExtraKind::CharDevice(device(o).map_err(err)?), true),
        Some("block") => (ExtraKind::BlockDevice(device(o).map_err(err)?), true),
        Some(other) => {
            return Err(err(format!(
                "unknown kind {other:?} (a record is a dir, fifo, socket, char or block)"
            )));
        }
        None => return Err(err("\"kind\" must be a string".into())),
    };
    let allowed = |k: &str| {
        matches!(
            k,
            "path" | "path_hex" | "kind" | "mode" | "uid" | "gid" | "xattrs"
        ) || (device_fields && matches!(k, "major" | "minor"))
    };
    if let Some(k) = o.keys().find(|k| !allowed(k)) {
        return Err(err(format!(
            "field {k:?} is not allowed for a record of kind {}",
            record_kind(kind)
        )));
    }
    let meta = meta_of(o).map_err(err)?;
    Ok(Extra { path, kind, meta })
}
