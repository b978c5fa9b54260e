//! The JSON manifest interchange format (documented in docs/manifest.md): what `show --json`
//! prints and `snapshot --from-json` reads, so other tools can describe trees.
//!
//! Reading is strict: a wrong format name or version, an unknown field or kind, a missing or
//! ill-typed field, and every path the binary decoder refuses are errors naming the entry.

use std::io::{self, Write};

use serde_json::{Map, Value, json};

use crate::error::{Error, Result};
use crate::hash::Hash;
use crate::manifest::{DataRef, Entry, EntryRef, Kind, Manifest, ManifestError, show};

/// The value of the `format` field.
pub const FORMAT: &str = "cowtree-manifest";
/// The interchange version this code writes and reads.
pub const VERSION: u64 = 1;

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

/// The JSON form of a manifest. Of a version 2 manifest (`snapshot --archive`), the entries
/// only, and `"archive"`: the items it records beside them, which this form does not hold
/// (see [`archive_items`]); [`from_json`] refuses such a document.
pub fn to_json(m: &Manifest, id: &Hash) -> Value {
    let entries: Vec<Value> = m
        .entries()
        .iter()
        .map(|e| entry_json(EntryRef::of(e)))
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
        o.insert("archive".into(), archive_items(a.preserve).into());
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

/// The JSON form of one entry.
fn entry_json(e: EntryRef<'_>) -> Value {
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
    Value::Object(o)
}

/// Writes the JSON form of a manifest as its entries come, holding none of them: the bytes
/// `serde_json::to_writer` writes of [`to_json`]'s value, for a manifest of `files` files of
/// `bytes` bytes in all whose entries are handed to [`JsonWriter::entry`] in order. (The
/// value's fields are written in the order it serializes them in, by name; a test checks the
/// two agree.)
#[derive(Debug)]
pub struct JsonWriter<W: Write> {
    out: W,
    entries: u64,
    failed: Option<io::Error>,
}

impl<W: Write> JsonWriter<W> {
    /// Writes what comes before the entries.
    pub fn start(out: W, bytes: u64) -> io::Result<JsonWriter<W>> {
        JsonWriter::start_archive(out, bytes, None)
    }

    /// [`JsonWriter::start`] of a version 2 manifest (`snapshot --archive`) that records
    /// `archive` beside its entries (written as [`to_json`] writes it).
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
        })
    }

    /// Writes the next entry. After a write fails, writes nothing more: [`JsonWriter::finish`]
    /// returns that error.
    pub fn entry(&mut self, e: EntryRef<'_>) {
        if self.failed.is_some() {
            return;
        }
        let sep: &[u8] = if self.entries == 0 { b"" } else { b"," };
        let written = self.out.write_all(sep).and_then(|()| {
            serde_json::to_writer(&mut self.out, &entry_json(e)).map_err(io::Error::from)
        });
        match written {
            Ok(()) => self.entries += 1,
            Err(err) => self.failed = Some(err),
        }
    }

    /// Writes what comes after the entries (the manifest's id and its count of files), and
    /// gives back the writer, unflushed.
    pub fn finish(mut self, id: &Hash, files: u64) -> io::Result<W> {
        if let Some(err) = self.failed {
            return Err(err);
        }
        write!(
            self.out,
            "],\"files\":{files},\"format\":{},\"id\":\"{}\",\"version\":{VERSION}}}",
            Value::from(FORMAT),
            id.to_hex()
        )?;
        Ok(self.out)
    }
}

/// Parses the JSON form into a validated manifest. `id`, `files` and `bytes` are informational
/// and ignored on input (the id is recomputed).
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
    match top.version.as_ref().and_then(Value::as_u64) {
        Some(VERSION) => {}
        other => {
            return Err(Error::invalid_input(format!(
                "\"version\" {} is not supported (this cowtree reads version {VERSION})",
                other.map_or("missing".into(), |v| v.to_string())
            )));
        }
    }
    if top.archive {
        return Err(Error::invalid_input(
            "this is the JSON form of a snapshot taken with --archive (\"archive\"): it holds \
             its entries only, not what the snapshot records beside them, so it cannot be \
             recorded from JSON; push and pull carry the snapshot itself",
        ));
    }
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
    let mut entries: Vec<(u64, Entry)> = entries
        .into_iter()
        .enumerate()
        .map(|(i, e)| (i as u64, e))
        .collect();
    // Errors name the entry by its index in the input, not in sorted order.
    entries.sort_by(|a, b| a.1.path.cmp(&b.1.path));
    let order: Vec<u64> = entries.iter().map(|(i, _)| *i).collect();
    let entries: Vec<Entry> = entries.into_iter().map(|(_, e)| e).collect();
    Manifest::new(entries).map_err(|source| Error::Manifest {
        context: "manifest".into(),
        source: source.map_index(|sorted| order.get(sorted as usize).copied().unwrap_or(sorted)),
    })
}

/// The top-level object, with `entries` already converted (or the first entry's error).
#[derive(Default)]
struct Top {
    format: Option<Value>,
    version: Option<Value>,
    /// An `"archive"` field: the JSON form of a version 2 manifest (refused).
    archive: bool,
    unknown: Option<String>,
    entries: Option<Result<Vec<Entry>>>,
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
                "archive" => {
                    top.archive = true;
                    map.next_value::<IgnoredAny>()?;
                }
                "entries" => top.entries = Some(map.next_value_seed(EntriesSeed)?),
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

struct EntriesSeed;

impl<'de> serde::de::DeserializeSeed<'de> for EntriesSeed {
    type Value = Result<Vec<Entry>>;

    fn deserialize<D: serde::Deserializer<'de>>(
        self,
        d: D,
    ) -> std::result::Result<Self::Value, D::Error> {
        d.deserialize_any(EntriesVisitor)
    }
}

struct EntriesVisitor;

impl<'de> serde::de::Visitor<'de> for EntriesVisitor {
    type Value = Result<Vec<Entry>>;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("\"entries\" must be an array")
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(
        self,
        mut seq: A,
    ) -> std::result::Result<Self::Value, A::Error> {
        let mut entries = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1 << 20));
        let mut i = 0;
        while let Some(item) = seq.next_element::<Value>()? {
            match entry_from_json(i, &item) {
                Ok(e) => entries.push(e),
                Err(e) => {
                    // Read the rest so that the document is still checked to be JSON.
                    while seq.next_element::<serde::de::IgnoredAny>()?.is_some() {}
                    return Ok(Err(e));
                }
            }
            i += 1;
        }
        Ok(Ok(entries))
    }
}

fn entry_from_json(i: usize, item: &Value) -> Result<Entry> {
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
    if let Some(k) = o.keys().find(|k| !allowed.contains(&k.as_str())) {
        return Err(err(format!(
            "field {k:?} is not allowed for kind {}",
            kind.as_str()
        )));
    }
    Ok(match kind {
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
    })
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
    fn the_json_of_an_archive_names_its_items_and_is_not_recorded_back()
    -> std::result::Result<(), Box<dyn std::error::Error>> {
        use crate::manifest::{Extra, ExtraKind, Meta};
        let preserve = cowtree_link::Preserve {
            ownership: true,
            special: true,
            ..Default::default()
        };
        let m = Manifest::with_archive(
            preserve,
            vec![(
                Entry::blob(b"f".to_vec(), false, 1, Hash::of(b"x")),
                Meta {
                    mode: 0o600,
                    uid: 7,
                    ..Meta::default()
                },
                None,
            )],
            vec![
                Extra {
                    path: Vec::new(),
                    kind: ExtraKind::Dir,
                    meta: Meta::default(),
                },
                Extra {
                    path: b"p".to_vec(),
                    kind: ExtraKind::Fifo,
                    meta: Meta::default(),
                },
            ],
        )?;
        let v = to_json(&m, &m.id());
        assert_eq!(v["archive"], json!(["ownership", "special"]));
        // Streamed, the same bytes.
        let mut w = JsonWriter::start_archive(Vec::new(), m.bytes(), Some(preserve))?;
        for e in m.entries() {
            w.entry(EntryRef::of(e));
        }
        assert_eq!(w.finish(&m.id(), m.files())?, serde_json::to_vec(&v)?);
        // Recorded from it, the metadata would be lost: refused, saying why.
        let refused = from_json(v.to_string().as_bytes())
            .err()
            .ok_or("the JSON of an archive was recorded")?;
        assert!(refused.to_string().contains("--archive"), "{refused}");
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
