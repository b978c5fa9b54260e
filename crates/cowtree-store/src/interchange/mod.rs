//! The JSON manifest interchange format (documented in docs/manifest.md): what `show --json`
//! prints and `snapshot --from-json` reads, so other tools can describe trees.
//!
//! Reading is strict: a wrong format name or version, an unknown field or kind, a missing or
//! ill-typed field, and every path the binary decoder refuses are errors naming the entry.
//! A version 2 document (a snapshot taken with `--archive`; its fields are the `archive`
//! module's) is checked as its binary manifest would be, by building that manifest
//! ([`Manifest::with_parts`]).

mod archive;
#[cfg(test)]
mod archive_tests;

use std::collections::HashMap;
use std::io::{self, Write};

use serde_json::{Map, Value, json};

use crate::error::{Error, Result};
use crate::hash::Hash;
use crate::manifest::{
    Archive, DataRef, Entry, EntryMeta, EntryRef, Extra, Kind, Link, Manifest, ManifestError, show,
    validate,
};
use archive::{EntryArchive, EntryFields};

/// The value of the `format` field.
pub const FORMAT: &str = "cowtree-manifest";
/// The interchange version of a manifest of version 1 (a snapshot taken without `--archive`).
pub const VERSION: u64 = 1;
/// The interchange version of a manifest of version 2 (a snapshot taken with `--archive`):
/// version 1's fields, and what the snapshot records beside its entries.
pub const VERSION_ARCHIVE: u64 = 2;

/// Lowercase hex of bytes.
pub fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Bytes from hex (even length, either case).
pub fn from_hex(s: &str) -> Option<Vec<u8>> {
    // from_str_radix alone would accept a sign ("+a"): only hex digits are hex.
    if !s.len().is_multiple_of(2) || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

fn bytes_field(obj: &mut Map<String, Value>, name: &str, bytes: &[u8]) {
    match std::str::from_utf8(bytes) {
        Ok(s) => obj.insert(name.into(), Value::String(s.into())),
        Err(_) => obj.insert(format!("{name}_hex"), Value::String(to_hex(bytes))),
    };
}

/// The JSON form of a manifest: of version 1, or of version 2 (`snapshot --archive`) with
/// everything the manifest records beside its entries.
pub fn to_json(m: &Manifest, id: &Hash) -> Value {
    let entries: Vec<Value> = m
        .entries()
        .iter()
        .enumerate()
        .map(|(i, e)| entry_json(EntryRef::of(e), EntryArchive::of(m, i)))
        .collect();
    let mut v = json!({
        "format": FORMAT,
        "version": VERSION,
        "id": id.to_hex(),
        "files": m.files(),
        "bytes": m.bytes(),
        "entries": entries,
    });
    if let (Some(a), Value::Object(o)) = (m.archive(), &mut v) {
        o.insert("version".into(), VERSION_ARCHIVE.into());
        o.insert("archive".into(), archive_items(a.preserve).into());
        let records = a.extras.iter().map(archive::record_json).collect();
        o.insert("records".into(), Value::Array(records));
    }
    v
}

/// The names of the items a version 2 manifest records beside its entries (`--preserve`'s:
/// ownership, xattr, acl, links, special).
pub fn archive_items(p: cowtree_link::Preserve) -> Vec<&'static str> {
    [
        (p.ownership, "ownership"),
        (p.xattr, "xattr"),
        (p.acl, "acl"),
        (p.links, "links"),
        (p.special, "special"),
    ]
    .into_iter()
    .filter_map(|(kept, name)| kept.then_some(name))
    .collect()
}

/// The JSON form of one entry, with what version 2 records of it.
fn entry_json(e: EntryRef<'_>, archive: Option<EntryArchive<'_>>) -> Value {
    let mut o = Map::new();
    bytes_field(&mut o, "path", e.path);
    o.insert("kind".into(), e.kind.as_str().into());
    match e.data {
        DataRef::Blob { size, hash } => {
            o.insert("size".into(), size.into());
            o.insert("blob".into(), hash.to_hex().into());
        }
        DataRef::Target(t) => bytes_field(&mut o, "target", t),
        DataRef::None => {}
    }
    if let Some(a) = archive {
        a.add_to(&mut o);
    }
    Value::Object(o)
}

/// Writes the JSON form of a manifest as its entries come, holding none of them: the bytes
/// `serde_json::to_writer` writes of [`to_json`]'s value, for a manifest of `files` files of
/// `bytes` bytes in all whose entries are handed to [`JsonWriter::entry`] (or, of version 2,
/// [`JsonWriter::entry_with`]) in order. (The value's fields are written in the order it
/// serializes them in, by name; a test checks the two agree.) Of a version 2 manifest it
/// holds the path of the first name of each hardlink group, which its later names name.
#[derive(Debug)]
pub struct JsonWriter<W: Write> {
    out: W,
    entries: u64,
    failed: Option<io::Error>,
    /// Of a version 2 manifest: the first names of hardlink groups, by entry index.
    firsts: Option<HashMap<u64, Vec<u8>>>,
}

impl<W: Write> JsonWriter<W> {
    /// Writes what comes before the entries.
    pub fn start(out: W, bytes: u64) -> io::Result<JsonWriter<W>> {
        JsonWriter::start_archive(out, bytes, None)
    }

    /// [`JsonWriter::start`] of a manifest that is of version 2 (`snapshot --archive`) when
    /// `archive` (its kept items) is given: its entries are then handed to
    /// [`JsonWriter::entry_with`] with their metadata, and it ends with
    /// [`JsonWriter::finish_archive`].
    pub fn start_archive(
        mut out: W,
        bytes: u64,
        archive: Option<cowtree_link::Preserve>,
    ) -> io::Result<JsonWriter<W>> {
        if let Some(p) = archive {
            write!(out, "{{\"archive\":{},", Value::from(archive_items(p)))?;
        } else {
            out.write_all(b"{")?;
        }
        write!(out, "\"bytes\":{bytes},\"entries\":[")?;
        Ok(JsonWriter {
            out,
            entries: 0,
            failed: None,
            firsts: archive.map(|_| HashMap::new()),
        })
    }

    /// Writes the next entry of a version 1 manifest. After a write fails, writes nothing
    /// more: [`JsonWriter::finish`] returns that error.
    pub fn entry(&mut self, e: EntryRef<'_>) {
        self.entry_with(e, None);
    }

    /// Writes the next entry with what version 2 records of it (`None` in version 1; given
    /// for every entry of a writer of version 2, as [`crate::SnapshotFile::each_entry_meta`]
    /// hands them on). An entry that does not fit the writer's version (metadata missing or
    /// not expected, a later name of a hardlink group whose first name was not written) is
    /// an error, as a failed write is: nothing more is written, and the finish returns it.
    pub fn entry_with(&mut self, e: EntryRef<'_>, meta: Option<&EntryMeta>) {
        if self.failed.is_some() {
            return;
        }
        let index = self.entries;
        let archive = match (&mut self.firsts, meta) {
            (None, None) => Ok(None),
            (Some(firsts), Some(m)) => match (m.link, &m.meta) {
                (Link::Of(first), _) => firsts
                    .get(&first)
                    .map(|p| Some(EntryArchive::LinkOf(p)))
                    .ok_or("a later name of a hardlink group whose first name was not written"),
                (link, Some(meta)) => {
                    if link == Link::First {
                        firsts.insert(index, e.path.to_vec());
                    }
                    Ok(Some(EntryArchive::Meta(meta)))
                }
                (_, None) => Err("an entry without its metadata"),
            },
            (None, Some(_)) => Err("metadata of an entry of a version 1 manifest"),
            (Some(_), None) => Err("an entry of a version 2 manifest without its metadata"),
        };
        let sep: &[u8] = if index == 0 { b"" } else { b"," };
        let written = match archive {
            Ok(archive) => self.out.write_all(sep).and_then(|()| {
                serde_json::to_writer(&mut self.out, &entry_json(e, archive))
                    .map_err(io::Error::from)
            }),
            Err(why) => Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("entry {index} {}: {why}", show(e.path)),
            )),
        };
        match written {
            Ok(()) => self.entries += 1,
            Err(err) => self.failed = Some(err),
        }
    }

    /// Writes what comes after the entries of a version 1 manifest (the manifest's id and its
    /// count of files), and gives back the writer, unflushed.
    pub fn finish(self, id: &Hash, files: u64) -> io::Result<W> {
        self.finish_with(id, files, None)
    }

    /// [`JsonWriter::finish`] of a version 2 manifest, whose records of directories and
    /// special files are `records` (what [`crate::SnapshotFile::each_entry_meta`] returns).
    pub fn finish_archive(self, id: &Hash, files: u64, records: &[Extra]) -> io::Result<W> {
        self.finish_with(id, files, Some(records))
    }

    fn finish_with(mut self, id: &Hash, files: u64, records: Option<&[Extra]>) -> io::Result<W> {
        if let Some(err) = self.failed {
            return Err(err);
        }
        if self.firsts.is_some() != records.is_some() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "the JSON of a manifest of version 2 ends with its records, and only it",
            ));
        }
        write!(
            self.out,
            "],\"files\":{files},\"format\":{},\"id\":\"{}\",",
            Value::from(FORMAT),
            id.to_hex()
        )?;
        let version = match records {
            None => VERSION,
            Some(records) => {
                self.out.write_all(b"\"records\":[")?;
                for (i, x) in records.iter().enumerate() {
                    if i > 0 {
                        self.out.write_all(b",")?;
                    }
                    serde_json::to_writer(&mut self.out, &archive::record_json(x))?;
                }
                self.out.write_all(b"],")?;
                VERSION_ARCHIVE
            }
        };
        write!(self.out, "\"version\":{version}}}")?;
        Ok(self.out)
    }
}

/// Parses the JSON form into a validated manifest, of version 1 or 2 as the document says.
/// `id`, `files` and `bytes` are informational and ignored on input (the id is recomputed).
/// Entries, records and attributes may come in any order: they are sorted as a manifest
/// holds them, and an error names an entry or record by its index in the input.
pub fn from_json(text: &[u8]) -> Result<Manifest> {
    // The document is read in one streaming pass: each entry is turned into an [`Entry`] as
    // soon as it is parsed, so memory holds the text and the entries, never a JSON tree of
    // the whole manifest (about 1 KiB per entry: a million entries took over 1 GiB).
    let mut de = serde_json::Deserializer::from_slice(text);
    let top = match serde::de::Deserializer::deserialize_any(&mut de, TopVisitor) {
        Ok(top) => top,
        Err(e) if e.is_data() => return Err(Error::invalid_input(e.to_string())),
        Err(e) => return Err(Error::invalid_input(format!("not valid JSON: {e}"))),
    };
    de.end()
        .map_err(|e| Error::invalid_input(format!("not valid JSON: {e}")))?;
    match &top.format {
        Some(Value::String(s)) if s == FORMAT => {}
        other => {
            return Err(Error::invalid_input(format!(
                "\"format\" must be {FORMAT:?}, found {}",
                other.as_ref().map_or("nothing".into(), Value::to_string)
            )));
        }
    }
    let v2 = match top.version.as_ref().and_then(Value::as_u64) {
        Some(VERSION) => false,
        Some(VERSION_ARCHIVE) => true,
        other => {
            return Err(Error::invalid_input(format!(
                "\"version\" {} is not supported (this cowtree reads versions {VERSION} and \
                 {VERSION_ARCHIVE})",
                other.map_or("missing".into(), |v| v.to_string())
            )));
        }
    };
    if let Some(k) = top.unknown {
        return Err(Error::invalid_input(format!(
            "unknown top-level field {k:?}"
        )));
    }
    let entries = match top.entries {
        Some(Ok(entries)) => entries,
        Some(Err(e)) => return Err(e),
        None => return Err(Error::invalid_input("\"entries\" must be an array")),
    };
    if !v2 {
        return version_1(top.archive.is_some() || top.records.is_some(), entries);
    }
    let preserve = match top.archive {
        Some(v) => archive::preserve_from_json(&v).map_err(Error::invalid_input)?,
        None => {
            return Err(Error::invalid_input(
                "version 2 needs \"archive\": the items the snapshot records beside its entries",
            ));
        }
    };
    let records = match top.records {
        Some(Ok(records)) => records,
        Some(Err(e)) => return Err(e),
        None => {
            return Err(Error::invalid_input(
                "version 2 needs \"records\": its directories (the root's first, path \"\") \
                 and special files",
            ));
        }
    };
    version_2(preserve, entries, records)
}

/// An entry as read: version 1's fields, and version 2's if it has any.
type JsonEntry = (Entry, Option<Box<EntryFields>>);

/// The manifest of a document of version 1.
fn version_1(archive: bool, read: Vec<JsonEntry>) -> Result<Manifest> {
    if archive {
        return Err(Error::invalid_input(
            "\"archive\" and \"records\" are fields of version 2 (a snapshot taken with \
             --archive); a document of version 1 that has them (from a cowtree before version \
             2 could be written) holds the entries only, not what the snapshot records beside \
             them, so it cannot be recorded from JSON",
        ));
    }
    let mut entries: Vec<(u64, Entry)> = Vec::with_capacity(read.len());
    for (i, (e, v2)) in (0u64..).zip(read) {
        if let Some(f) = v2 {
            return Err(Error::invalid_input(format!(
                "entry {i} {}: field {:?} is only in version 2 (a snapshot taken with --archive)",
                show(&e.path),
                f.field
            )));
        }
        entries.push((i, e));
    }
    // Errors name the entry by its index in the input, not in sorted order.
    entries.sort_by(|a, b| a.1.path.cmp(&b.1.path));
    let order: Vec<u64> = entries.iter().map(|(i, _)| *i).collect();
    let entries: Vec<Entry> = entries.into_iter().map(|(_, e)| e).collect();
    Manifest::new(entries).map_err(|source| Error::Manifest {
        context: "manifest".into(),
        source: source.map_index(|sorted| order.get(sorted as usize).copied().unwrap_or(sorted)),
    })
}

/// The manifest of a document of version 2: its entries with their metadata and hardlink
/// groups (each later name naming its group's first name, by path), and its records, built
/// and checked as the binary manifest of the same would be ([`Manifest::with_parts`]).
fn version_2(
    preserve: cowtree_link::Preserve,
    entries: Vec<JsonEntry>,
    records: Vec<Extra>,
) -> Result<Manifest> {
    let mut entries: Vec<(u64, JsonEntry)> = (0u64..).zip(entries).collect();
    entries.sort_by(|a, b| a.1.0.path.cmp(&b.1.0.path));
    let order: Vec<u64> = entries.iter().map(|(i, _)| *i).collect();
    let (entries, fields): (Vec<Entry>, Vec<Option<Box<EntryFields>>>) =
        entries.into_iter().map(|(_, e)| e).unzip();
    let at = |sorted: u64| order.get(sorted as usize).copied().unwrap_or(sorted);
    let refused = |source: ManifestError| Error::Manifest {
        context: "manifest".into(),
        source: source.map_index(at),
    };
    // The paths first (a duplicate would make a hardlink's name ambiguous).
    validate(&entries).map_err(refused)?;
    let bad = |i: usize, why: String| {
        let path = entries.get(i).map_or(&[][..], |e| e.path.as_slice());
        Error::invalid_input(format!("entry {} {}: {why}", at(i as u64), show(path)))
    };
    let mut links = Vec::with_capacity(entries.len());
    for (i, f) in fields.iter().enumerate() {
        let Some(f) = f else {
            return Err(bad(
                i,
                "version 2 needs \"mode\", \"uid\" and \"gid\" (or, for a later name of a \
                 hardlink group, \"link_of\")"
                    .into(),
            ));
        };
        links.push(match &f.link_of {
            None => Link::None,
            Some(first) => Link::Of(
                link_target(&entries, &fields, i, first)
                    .map_err(|why| bad(i, format!("\"link_of\" {}: {why}", show(first))))?,
            ),
        });
    }
    // The first names, now that every later name has named one.
    for i in 0..links.len() {
        if let Link::Of(first) = links[i]
            && let Some(l) = links.get_mut(first as usize)
        {
            *l = Link::First;
        }
    }
    let metas = (fields.into_iter().zip(links))
        .map(|(f, link)| EntryMeta {
            link,
            meta: f.and_then(|f| f.meta),
        })
        .collect();
    let mut records: Vec<(u64, Extra)> = (0u64..).zip(records).collect();
    records.sort_by(|a, b| a.1.path.cmp(&b.1.path));
    let record_order: Vec<u64> = records.iter().map(|(i, _)| *i).collect();
    let extras = records.into_iter().map(|(_, x)| x).collect();
    let archive = Archive {
        preserve,
        entries: metas,
        extras,
    };
    Manifest::with_parts(entries, Some(archive)).map_err(|source| {
        refused(source.map_record_index(|sorted| {
            record_order.get(sorted as usize).copied().unwrap_or(sorted)
        }))
    })
}

/// The index of the entry that entry `i`'s `"link_of"` names (`first`), when it can be its
/// group's first name: an entry before it in path order (the first name of a group is its
/// least path) that is not itself a later name. What else a group must be (files of the same
/// data, hardlinks kept) is the manifest's check.
fn link_target(
    entries: &[Entry],
    fields: &[Option<Box<EntryFields>>],
    i: usize,
    first: &[u8],
) -> std::result::Result<u64, String> {
    let j = entries
        .binary_search_by(|e| e.path.as_slice().cmp(first))
        .map_err(|_| "no entry has that path".to_string())?;
    if j == i {
        return Err("the entry itself".into());
    }
    if j > i {
        return Err(
            "comes after it in path order (a group's first name is its least path, which the \
             others name)"
                .into(),
        );
    }
    if let Some(Some(f)) = fields.get(j)
        && let Some(its) = &f.link_of
    {
        return Err(format!(
            "is itself a later name (of {}): every later name names the group's first name",
            show(its)
        ));
    }
    Ok(j as u64)
}

/// The top-level object, with `entries` and `records` already converted (or the first
/// error of each).
#[derive(Default)]
struct Top {
    format: Option<Value>,
    version: Option<Value>,
    archive: Option<Value>,
    unknown: Option<String>,
    entries: Option<Result<Vec<JsonEntry>>>,
    records: Option<Result<Vec<Extra>>>,
}

struct TopVisitor;

impl<'de> serde::de::Visitor<'de> for TopVisitor {
    type Value = Top;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("the manifest must be a JSON object")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(
        self,
        mut map: A,
    ) -> std::result::Result<Top, A::Error> {
        use serde::de::IgnoredAny;
        let mut top = Top::default();
        while let Some(key) = map.next_key::<String>()? {
            match key.as_str() {
                "format" => top.format = Some(map.next_value()?),
                "version" => top.version = Some(map.next_value()?),
                "archive" => top.archive = Some(map.next_value()?),
                "entries" => {
                    top.entries = Some(map.next_value_seed(ListSeed {
                        what: "entries",
                        convert: entry_from_json,
                    })?)
                }
                "records" => {
                    top.records = Some(map.next_value_seed(ListSeed {
                        what: "records",
                        convert: archive::record_from_json,
                    })?)
                }
                "id" | "files" | "bytes" => {
                    map.next_value::<IgnoredAny>()?;
                }
                _ => {
                    top.unknown.get_or_insert(key);
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(top)
    }
}

/// An array whose items are each converted by `convert` (given its index) as soon as it is
/// parsed: the converted items, or the first item's error.
struct ListSeed<T> {
    what: &'static str,
    convert: fn(usize, &Value) -> Result<T>,
}

impl<'de, T> serde::de::DeserializeSeed<'de> for ListSeed<T> {
    type Value = Result<Vec<T>>;

    fn deserialize<D: serde::Deserializer<'de>>(
        self,
        d: D,
    ) -> std::result::Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de, T> serde::de::Visitor<'de> for ListSeed<T> {
    type Value = Result<Vec<T>>;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        write!(f, "{:?} must be an array", self.what)
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(
        self,
        mut seq: A,
    ) -> std::result::Result<Self::Value, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1 << 20));
        let mut i = 0;
        while let Some(item) = seq.next_element::<Value>()? {
            match (self.convert)(i, &item) {
                Ok(e) => items.push(e),
                Err(e) => {
                    // Read the rest so that the document is still checked to be JSON.
                    while seq.next_element::<serde::de::IgnoredAny>()?.is_some() {}
                    return Ok(Err(e));
                }
            }
            i += 1;
        }
        Ok(Ok(items))
    }
}

fn entry_from_json(i: usize, item: &Value) -> Result<JsonEntry> {
    let Value::Object(o) = item else {
        return Err(Error::invalid_input(format!(
            "entry {i}: must be a JSON object"
        )));
    };
    let path =
        bytes_of(o, "path").map_err(|why| Error::invalid_input(format!("entry {i}: {why}")))?;
    let Some(path) = path else {
        return Err(Error::invalid_input(format!(
            "entry {i}: needs \"path\" or \"path_hex\""
        )));
    };
    let err = |why: String| Error::invalid_input(format!("entry {i} {}: {why}", show(&path)));
    let kind_name = match o.get("kind") {
        Some(Value::String(s)) => s.clone(),
        Some(other) => return Err(err(format!("\"kind\" must be a string, found {other}"))),
        None => return Err(err("missing \"kind\"".into())),
    };
    let Some(kind) = Kind::parse(&kind_name) else {
        return Err(Error::Manifest {
            context: "manifest".into(),
            source: ManifestError::UnknownKind {
                index: i as u64,
                path,
                kind: format!("{kind_name:?}"),
            },
        });
    };
    let allowed: &[&str] = match kind {
        Kind::File | Kind::Executable => &["path", "path_hex", "kind", "size", "blob"],
        Kind::Symlink => &["path", "path_hex", "kind", "target", "target_hex"],
        Kind::Dir => &["path", "path_hex", "kind"],
    };
    let allowed = |k: &str| allowed.contains(&k) || archive::ENTRY_FIELDS.contains(&k);
    if let Some(k) = o.keys().find(|k| !allowed(k)) {
        return Err(err(format!(
            "field {k:?} is not allowed for kind {}",
            kind.as_str()
        )));
    }
    let fields = archive::entry_fields(o).map_err(err)?;
    let entry = match kind {
        Kind::File | Kind::Executable => {
            let size = o
                .get("size")
                .and_then(Value::as_u64)
                .ok_or_else(|| err("\"size\" must be a non-negative integer".into()))?;
            let hash = o
                .get("blob")
                .and_then(Value::as_str)
                .and_then(Hash::from_hex)
                .ok_or_else(|| err("\"blob\" must be 64 hex digits".into()))?;
            Entry::blob(path, kind == Kind::Executable, size, hash)
        }
        Kind::Symlink => {
            let target = bytes_of(o, "target")
                .map_err(err)?
                .ok_or_else(|| err("needs \"target\" or \"target_hex\"".into()))?;
            Entry::symlink(path, target)
        }
        Kind::Dir => Entry::dir(path),
    };
    Ok((entry, fields))
}

/// `name` (a string) or `name_hex` (hex of raw bytes); exactly one may be present.
fn bytes_of(o: &Map<String, Value>, name: &str) -> std::result::Result<Option<Vec<u8>>, String> {
    let hex_name = format!("{name}_hex");
    match (o.get(name), o.get(&hex_name)) {
        (Some(_), Some(_)) => Err(format!("both {name:?} and {hex_name:?} given")),
        (Some(Value::String(s)), None) => Ok(Some(s.as_bytes().to_vec())),
        (None, Some(Value::String(h))) => from_hex(h)
            .map(Some)
            .ok_or_else(|| format!("{hex_name:?} is not valid hex")),
        (Some(_), None) | (None, Some(_)) => Err(format!("{name:?} must be a string")),
        (None, None) => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_accepts_only_pairs_of_hex_digits() {
        assert_eq!(from_hex("00ff7a"), Some(vec![0, 0xff, 0x7a]));
        assert_eq!(from_hex(""), Some(vec![]));
        for bad in ["+a", "-1", "0", "zz", "0x", " a"] {
            assert_eq!(from_hex(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn json_round_trip_keeps_non_utf8_bytes() {
        let m = Manifest::new(vec![
            Entry::blob(b"a\xff".to_vec(), false, 1, Hash::of(b"x")),
            Entry::symlink(b"l".to_vec(), b"t\xfe".to_vec()),
            Entry::dir(b"d".to_vec()),
            Entry::blob(b"x".to_vec(), true, 2, Hash::of(b"y")),
        ])
        .unwrap();
        let v = to_json(&m, &m.id());
        assert_eq!(v["entries"][0]["path_hex"], "61ff");
        let back = from_json(v.to_string().as_bytes()).unwrap();
        assert_eq!(back, m);
    }

    #[test]
    fn the_json_of_an_archive_by_an_older_cowtree_is_refused_saying_why()
    -> std::result::Result<(), Box<dyn std::error::Error>> {
        // Version 1 with "archive": the entries only, as `show --json` printed a snapshot
        // taken with --archive before version 2 had a JSON form. Recorded, the metadata
        // would be lost.
        let blob = Hash::of(b"x").to_hex();
        let old = json!({
            "archive": ["ownership", "special"],
            "bytes": 1,
            "entries": [{"blob": blob, "kind": "file", "path": "f", "size": 1}],
            "files": 1,
            "format": FORMAT,
            "id": Hash::of(b"").to_hex(),
            "version": 1,
        });
        let refused = from_json(old.to_string().as_bytes())
            .err()
            .ok_or("the JSON of an archive was recorded")?;
        assert!(
            refused
                .to_string()
                .contains("\"archive\" and \"records\" are fields of version 2"),
            "{refused}"
        );
        Ok(())
    }

    #[test]
    fn the_streamed_json_is_the_bytes_of_to_json() {
        let empty = Manifest::new(vec![]).unwrap();
        let m = Manifest::new(vec![
            Entry::blob(b"a\xff".to_vec(), false, 1, Hash::of(b"x")),
            Entry::blob(b"b \"q\"\\".to_vec(), true, u64::MAX / 2, Hash::of(b"y")),
            Entry::dir(b"d".to_vec()),
            Entry::symlink(b"l".to_vec(), b"t\xfe".to_vec()),
            Entry::symlink(b"m\x01".to_vec(), b"../x".to_vec()),
            Entry::symlink(b"\xc3\xa9".to_vec(), "\u{2028}".as_bytes().to_vec()),
        ])
        .unwrap();
        for m in [empty, m] {
            let mut w = JsonWriter::start(Vec::new(), m.bytes()).unwrap();
            for e in m.entries() {
                w.entry(EntryRef::of(e));
            }
            let streamed = w.finish(&m.id(), m.files()).unwrap();
            let whole = serde_json::to_vec(&to_json(&m, &m.id())).unwrap();
            assert_eq!(
                String::from_utf8_lossy(&streamed),
                String::from_utf8_lossy(&whole)
            );
            assert_eq!(from_json(&streamed).unwrap(), m);
        }
    }

    #[test]
    fn the_streamed_json_stops_at_the_first_failed_write() {
        /// Accepts `room` bytes, then fails every write.
        #[derive(Debug)]
        struct Full {
            room: usize,
            writes_after: usize,
        }
        impl Write for Full {
            fn write(&mut self, b: &[u8]) -> io::Result<usize> {
                if self.room == 0 {
                    self.writes_after += 1;
                    return Err(io::Error::new(io::ErrorKind::StorageFull, "full"));
                }
                let n = b.len().min(self.room);
                self.room -= n;
                Ok(n)
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let e = Entry::dir(b"d".to_vec());
        let mut w = JsonWriter::start(
            Full {
                room: 30,
                writes_after: 0,
            },
            0,
        )
        .unwrap();
        for _ in 0..10 {
            w.entry(EntryRef::of(&e));
        }
        assert_eq!(w.out.writes_after, 1, "nothing written after the failure");
        let err = w.finish(&Hash::of(b""), 0).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::StorageFull);
    }

    #[test]
    fn from_json_refuses_bad_entries_naming_them() {
        let blob = Hash::of(b"x").to_hex();
        let f = |p: &str| json!({"path": p, "kind": "file", "size": 1, "blob": blob});
        let cases: Vec<(Vec<Value>, &str)> = vec![
            (vec![f("a/../b")], "'..' component"),
            (vec![f("/abs")], "absolute path"),
            (vec![f("a\u{0}b")], "NUL"),
            (vec![f("a//b")], "empty"),
            (vec![f("a"), f("a")], "duplicate"),
            (vec![f("a"), f("a/b")], "beneath file"),
            (
                vec![json!({"path":"l","kind":"symlink","target":"x"}), f("l/x")],
                "beneath symlink",
            ),
            (vec![json!({"path":"d","kind":"fifo"})], "unknown kind"),
            (
                vec![json!({"path":"d","kind":"dir","size":1})],
                "not allowed",
            ),
            (
                vec![json!({"path":"f","kind":"file","size":1,"blob":"ab"})],
                "64 hex",
            ),
            (vec![json!({"kind":"dir"})], "needs \"path\""),
        ];
        for (entries, want) in cases {
            let doc = json!({"format": FORMAT, "version": 1, "entries": entries});
            let err = from_json(doc.to_string().as_bytes())
                .unwrap_err()
                .to_string();
            assert!(err.contains(want), "{doc}: {err}");
        }
        // The index named is the entry's position in the input.
        let doc = json!({"format": FORMAT, "version": 1, "entries": [f("z"), f("b/../x")]});
        let err = from_json(doc.to_string().as_bytes())
            .unwrap_err()
            .to_string();
        assert!(err.contains("entry 1 \"b/../x\""), "{err}");
        let wrong_version = json!({"format": FORMAT, "version": 2, "entries": []});
        assert!(from_json(wrong_version.to_string().as_bytes()).is_err());
        let no_format = json!({"version": 1, "entries": []});
        assert!(from_json(no_format.to_string().as_bytes()).is_err());
    }
}
