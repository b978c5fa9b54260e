//! The JSON form of version 2 (`snapshot --archive`): everything the binary manifest holds,
//! written (whole and streamed, the same bytes) and read back into the same manifest; every
//! refusal the decoder makes, made of JSON too, naming the entry or record as the input
//! orders them.

use super::archive::{dev_major, dev_minor, makedev};
use super::*;
use crate::manifest::{ExtraKind, Meta};
use cowtree_link::Preserve;

type Res = std::result::Result<(), Box<dyn std::error::Error>>;

fn meta(mode: u32, uid: u32, gid: u32, xattrs: &[(&[u8], &[u8])]) -> Meta {
    Meta {
        mode,
        uid,
        gid,
        xattrs: xattrs
            .iter()
            .map(|(n, v)| (n.to_vec(), v.to_vec()))
            .collect(),
    }
}

fn record(path: &[u8], kind: ExtraKind, meta: Meta) -> Extra {
    Extra {
        path: path.to_vec(),
        kind,
        meta,
    }
}

/// A tree with every part of version 2: owners, a user attribute (one with bytes that are
/// not UTF-8), ACLs (a default one on a directory), a hardlinked pair and a triple, a set-ID
/// directory and file, a symlink, an empty directory with a FIFO in it, a name that is not
/// UTF-8, and a FIFO, a socket and two devices.
fn archived() -> std::result::Result<Manifest, ManifestError> {
    let acl: &[u8] = b"\x02\x00\x00\x00\x01\x00\x06\x00\xff\xff\xff\xff";
    let (x, y) = (Hash::of(b"x"), Hash::of(b"y"));
    let entries = vec![
        (
            Entry::blob(b"a".to_vec(), false, 1, x),
            meta(
                0o644,
                1234,
                5678,
                &[(b"user.test", b"v1"), (b"system.posix_acl_access", acl)],
            ),
            Some(1),
        ),
        (
            Entry::blob(b"d/a-link".to_vec(), false, 1, x),
            Meta::default(),
            Some(1),
        ),
        (
            Entry::blob(b"d/suid".to_vec(), true, 1, y),
            meta(0o4755, 1234, 5678, &[]),
            None,
        ),
        (
            Entry::blob(b"t1".to_vec(), false, 1, y),
            meta(0o600, 0, 0, &[]),
            Some(2),
        ),
        (
            Entry::blob(b"t2".to_vec(), false, 1, y),
            Meta::default(),
            Some(2),
        ),
        (
            Entry::blob(b"t3".to_vec(), false, 1, y),
            Meta::default(),
            Some(2),
        ),
        (
            Entry::blob(b"n\xff".to_vec(), false, 1, x),
            meta(0o600, 0, 0, &[(b"user.bin", b"\xfe\x00")]),
            None,
        ),
        (
            Entry::symlink(b"l".to_vec(), b"a".to_vec()),
            meta(0, 1234, 5678, &[]),
            None,
        ),
        (Entry::dir(b"empty".to_vec()), meta(0o1777, 0, 0, &[]), None),
        (
            Entry::blob(b"e/f".to_vec(), false, 1, x),
            meta(0o644, 0, 0, &[]),
            None,
        ),
    ];
    let records = vec![
        record(b"", ExtraKind::Dir, meta(0o755, 0, 0, &[])),
        record(b"d", ExtraKind::Dir, meta(0o2755, 1234, 5678, &[])),
        record(
            b"e",
            ExtraKind::Dir,
            meta(0o755, 0, 0, &[(b"system.posix_acl_default", acl)]),
        ),
        record(b"empty/p", ExtraKind::Fifo, meta(0o600, 0, 0, &[])),
        record(b"fifo", ExtraKind::Fifo, meta(0o640, 1234, 5678, &[])),
        record(b"sock", ExtraKind::Socket, meta(0o755, 0, 0, &[])),
        record(
            b"tty",
            ExtraKind::CharDevice(makedev(4, 64)),
            meta(0o620, 0, 5, &[]),
        ),
        record(
            b"disk",
            ExtraKind::BlockDevice(makedev(259, 1 << 20)),
            meta(0o660, 0, 6, &[]),
        ),
    ];
    Manifest::with_archive(Preserve::ALL, entries, records)
}

/// The streamed JSON of `m`, as `show --json` writes it.
fn streamed(m: &Manifest) -> std::result::Result<Vec<u8>, Box<dyn std::error::Error>> {
    let a = m.archive().ok_or("not version 2")?;
    let mut w = JsonWriter::start_archive(Vec::new(), m.bytes(), Some(a.preserve))?;
    for (e, em) in m.entries().iter().zip(&a.entries) {
        w.entry_with(EntryRef::of(e), Some(em));
    }
    Ok(w.finish_archive(&m.id(), m.files(), &a.extras)?)
}

#[test]
fn the_json_of_an_archive_holds_all_of_it_and_records_the_same_manifest() -> Res {
    let m = archived()?;
    let v = to_json(&m, &m.id());
    assert_eq!(v["version"], 2);
    assert_eq!(
        v["archive"],
        json!(["ownership", "xattr", "acl", "links", "special"])
    );
    let entry = |path: &str| {
        v["entries"]
            .as_array()
            .and_then(|l| l.iter().find(|e| e["path"] == path))
            .cloned()
            .unwrap_or_default()
    };
    assert_eq!(entry("a")["mode"], 0o644);
    assert_eq!(entry("a")["uid"], 1234);
    assert_eq!(
        entry("a")["xattrs"],
        json!([
            {"name": "system.posix_acl_access", "value_hex": "0200000001000600ffffffff"},
            {"name": "user.test", "value": "v1"},
        ])
    );
    assert_eq!(entry("d/a-link")["link_of"], "a");
    assert_eq!(
        entry("d/a-link").get("mode"),
        None,
        "a later name has no meta"
    );
    assert_eq!(
        entry("t3")["link_of"],
        "t1",
        "every later name names the first"
    );
    assert_eq!(entry("l")["mode"], 0);
    assert_eq!(entry("e/f").get("xattrs"), None, "no attributes: no field");
    let records = v["records"].as_array().ok_or("no records")?;
    assert_eq!(
        records[0],
        json!({"path": "", "kind": "dir", "mode": 0o755, "uid": 0, "gid": 0})
    );
    let tty = records
        .iter()
        .find(|r| r["path"] == "tty")
        .ok_or("no tty")?;
    assert_eq!(
        (&tty["kind"], &tty["major"], &tty["minor"]),
        (&json!("char"), &json!(4), &json!(64))
    );
    let disk = records
        .iter()
        .find(|r| r["path"] == "disk")
        .ok_or("no disk")?;
    assert_eq!(
        (&disk["kind"], &disk["major"], &disk["minor"]),
        (&json!("block"), &json!(259), &json!(1 << 20))
    );

    // Streamed, the same bytes; read back, the same manifest and id.
    let text = streamed(&m)?;
    assert_eq!(String::from_utf8(text.clone())?, serde_json::to_string(&v)?);
    let back = from_json(&text)?;
    assert_eq!(back, m);
    assert_eq!(back.id(), m.id());

    // In any order (entries, records, attributes), the same manifest.
    let mut shuffled = v.clone();
    for list in ["entries", "records"] {
        if let Some(l) = shuffled[list].as_array_mut() {
            l.reverse();
        }
    }
    for e in shuffled["entries"].as_array_mut().ok_or("entries")? {
        if let Some(l) = e.get_mut("xattrs").and_then(Value::as_array_mut) {
            l.reverse();
        }
    }
    assert_ne!(shuffled, v);
    assert_eq!(from_json(shuffled.to_string().as_bytes())?, m);
    Ok(())
}

#[test]
fn device_numbers_split_as_linux_splits_them_one_to_one() {
    for rdev in [
        0,
        1,
        makedev(4, 64),
        u64::MAX,
        0x1234_5678_9abc_def0,
        1 << 63,
    ] {
        assert_eq!(makedev(dev_major(rdev), dev_minor(rdev)), rdev, "{rdev:#x}");
    }
    for (major, minor) in [
        (0, 0),
        (4, 64),
        (259, 1 << 20),
        (u32::MAX, u32::MAX),
        (1 << 12, 1 << 8),
    ] {
        let rdev = makedev(major, minor);
        assert_eq!((dev_major(rdev), dev_minor(rdev)), (major, minor));
        #[cfg(target_os = "linux")]
        {
            assert_eq!(rdev, rustix::fs::makedev(major, minor));
            assert_eq!(major, rustix::fs::major(rdev));
            assert_eq!(minor, rustix::fs::minor(rdev));
        }
    }
}

/// `doc` with `change` applied to it.
fn changed(doc: &Value, change: impl FnOnce(&mut Value)) -> Value {
    let mut d = doc.clone();
    change(&mut d);
    d
}

/// The entry at `path` in a document.
fn at<'v>(doc: &'v mut Value, path: &str) -> &'v mut Value {
    let list = doc["entries"]
        .as_array_mut()
        .expect("a test document has entries");
    let i = list
        .iter()
        .position(|e| e["path"] == path)
        .expect("a test document's entry");
    &mut list[i]
}

/// The record at `path` in a document.
fn rec<'v>(doc: &'v mut Value, path: &str) -> &'v mut Value {
    let list = doc["records"]
        .as_array_mut()
        .expect("a test document has records");
    let i = list
        .iter()
        .position(|e| e["path"] == path)
        .expect("a test document's record");
    &mut list[i]
}

#[test]
fn from_json_refuses_what_the_manifest_refuses_naming_the_entry_or_record() -> Res {
    let m = archived()?;
    let doc = to_json(&m, &m.id());
    let blob_y = Hash::of(b"y").to_hex();
    let cases: Vec<(Value, &str)> = vec![
        // Hardlink groups.
        (
            changed(&doc, |d| at(d, "t2")["link_of"] = json!("nowhere")),
            "entry 8 \"t2\": \"link_of\" \"nowhere\": no entry has that path",
        ),
        (
            changed(&doc, |d| {
                at(d, "a")["link_of"] = json!("d/a-link");
                for f in ["mode", "uid", "gid", "xattrs"] {
                    at(d, "a").as_object_mut().map(|o| o.remove(f));
                }
            }),
            "entry 0 \"a\": \"link_of\" \"d/a-link\": comes after it in path order",
        ),
        (
            changed(&doc, |d| at(d, "t3")["link_of"] = json!("t3")),
            "\"link_of\" \"t3\": the entry itself",
        ),
        (
            changed(&doc, |d| at(d, "t3")["link_of"] = json!("t2")),
            "\"link_of\" \"t2\": is itself a later name (of \"t1\")",
        ),
        (
            changed(&doc, |d| at(d, "t2")["mode"] = json!(0o600)),
            "entry 8 \"t2\": a later name of a hardlink group (\"link_of\") has no metadata",
        ),
        (
            changed(&doc, |d| {
                at(d, "t2")["blob"] = json!(Hash::of(b"x").to_hex())
            }),
            "entry 8 \"t2\": a later name of \"t1\", whose kind, size or blob differ",
        ),
        (
            changed(&doc, |d| {
                for f in ["mode", "uid", "gid"] {
                    at(d, "l").as_object_mut().map(|o| o.remove(f));
                }
                at(d, "l")["link_of"] = json!("a");
            }),
            "entry 5 \"l\": a hardlink of kind symlink",
        ),
        (
            changed(&doc, |d| {
                d["archive"] = json!(["ownership", "xattr", "acl", "special"]);
            }),
            "a hardlink where hardlinks were not kept",
        ),
        // Metadata.
        (
            changed(&doc, |d| {
                at(d, "a")["xattrs"] = json!([{"name": "user.cowtree.store", "value": "/s"}]);
            }),
            "entry 0 \"a\": attribute \"user.cowtree.store\", a worktree's store marker",
        ),
        (
            changed(&doc, |d| {
                at(d, "a")["xattrs"] =
                    json!([{"name": "user.x", "value": "1"}, {"name": "user.x", "value": "2"}]);
            }),
            "attribute \"user.x\" out of order or twice",
        ),
        (
            changed(&doc, |d| {
                at(d, "a")["xattrs"] =
                    json!([{"name": "user.".to_string() + &"x".repeat(251), "value": ""}]);
            }),
            "entry 0 \"a\": an attribute name longer than 255 bytes",
        ),
        (
            changed(&doc, |d| at(d, "a")["xattrs"] = json!([{"name": "user.x"}])),
            "\"xattrs\" 0: needs \"value\" or \"value_hex\"",
        ),
        (
            changed(&doc, |d| {
                at(d, "a")["xattrs"] = json!([{"name": "user.x", "value": "", "flags": 1}])
            }),
            "\"xattrs\" 0: unknown field \"flags\"",
        ),
        (
            changed(&doc, |d| at(d, "a")["mode"] = json!(0o10644)),
            "entry 0 \"a\": mode 10644 has bits beyond 07777",
        ),
        (
            changed(&doc, |d| at(d, "a")["mode"] = json!(-1)),
            "\"mode\" must be an integer from 0 to 4294967295, found -1",
        ),
        (
            changed(&doc, |d| at(d, "a")["uid"] = json!(1u64 << 32)),
            "\"uid\" must be an integer from 0 to 4294967295",
        ),
        (
            changed(&doc, |d| at(d, "a")["mode"] = json!(0o755)),
            "entry 0 \"a\": a file of kind file with mode 755",
        ),
        (
            changed(&doc, |d| {
                at(d, "e/f").as_object_mut().map(|o| o.remove("gid"));
            }),
            "entry 3 \"e/f\": missing \"gid\"",
        ),
        (
            changed(&doc, |d| {
                for f in ["mode", "uid", "gid"] {
                    at(d, "e/f").as_object_mut().map(|o| o.remove(f));
                }
            }),
            "entry 3 \"e/f\": version 2 needs \"mode\", \"uid\" and \"gid\"",
        ),
        (
            changed(&doc, |d| {
                d["archive"] = json!(["xattr", "acl", "links", "special"])
            }),
            "owner, group or set-ID bits recorded where ownership was not kept",
        ),
        // Records.
        (
            changed(&doc, |d| rec(d, "fifo")["path"] = json!("a/p")),
            "entry 0 \"a\": the fifo \"a/p\" lies beneath it",
        ),
        (
            changed(&doc, |d| rec(d, "d")["path"] = json!("a")),
            "entry 0 \"a\": also recorded as a directory",
        ),
        (
            changed(&doc, |d| rec(d, "sock")["path"] = json!("nodir/sock")),
            "(directories and special files): its directory is not in the tree",
        ),
        (
            changed(&doc, |d| rec(d, "")["path"] = json!("root")),
            "no record of the root directory",
        ),
        (
            changed(&doc, |d| rec(d, "fifo")["kind"] = json!("door")),
            "record 5 \"fifo\": unknown kind \"door\"",
        ),
        (
            changed(&doc, |d| {
                rec(d, "tty").as_object_mut().map(|o| o.remove("minor"));
            }),
            "record 7 \"tty\": missing \"minor\"",
        ),
        (
            changed(&doc, |d| rec(d, "fifo")["major"] = json!(1)),
            "record 5 \"fifo\": field \"major\" is not allowed for a record of kind fifo",
        ),
        (
            changed(&doc, |d| rec(d, "fifo")["mode"] = json!(0o20000)),
            "record 5 \"fifo\" (directories and special files): mode 20000 has bits beyond 07777",
        ),
        (
            changed(&doc, |d| {
                rec(d, "e")["xattrs"] = json!([]);
                rec(d, "fifo")["xattrs"] =
                    json!([{"name": "system.posix_acl_default", "value_hex": "02000000"}]);
            }),
            "record 5 \"fifo\" (directories and special files): attribute \"system.posix_acl_default\" (a default ACL) on what is not a directory",
        ),
        (
            changed(&doc, |d| {
                if let Some(l) = d["records"].as_array_mut() {
                    l.push(json!({"path": "sock", "kind": "fifo", "mode": 0, "uid": 0, "gid": 0}));
                }
            }),
            "records out of order or twice",
        ),
        // The document.
        (
            changed(&doc, |d| {
                d.as_object_mut().map(|o| o.remove("archive"));
            }),
            "version 2 needs \"archive\"",
        ),
        (
            changed(&doc, |d| {
                d.as_object_mut().map(|o| o.remove("records"));
            }),
            "version 2 needs \"records\"",
        ),
        (
            changed(&doc, |d| d["archive"] = json!(["ownership", "times"])),
            "\"archive\": unknown item \"times\"",
        ),
        (
            changed(&doc, |d| d["archive"] = json!(["links", "links"])),
            "\"archive\": \"links\" named twice",
        ),
        (
            changed(&doc, |d| d["archive"] = json!([])),
            "\"archive\" names no item",
        ),
        (
            changed(&doc, |d| d["archive"] = json!("all")),
            "\"archive\" must be an array",
        ),
        (
            changed(&doc, |d| d["records"] = json!({})),
            "\"records\" must be an array",
        ),
        (
            changed(&doc, |d| d["version"] = json!(1)),
            "\"archive\" and \"records\" are fields of version 2",
        ),
        (
            changed(&doc, |d| d["version"] = json!(3)),
            "\"version\" 3 is not supported",
        ),
        (
            changed(&doc, |d| d["extra"] = json!(1)),
            "unknown top-level field \"extra\"",
        ),
    ];
    for (bad, want) in cases {
        let err = from_json(bad.to_string().as_bytes())
            .err()
            .ok_or_else(|| format!("accepted: {want}"))?
            .to_string();
        assert!(err.contains(want), "want {want:?}, got: {err}");
    }
    // A version 1 document refuses version 2's fields, naming the entry.
    let v1 = json!({"format": FORMAT, "version": 1, "entries": [
        {"path": "f", "kind": "file", "size": 1, "blob": blob_y, "mode": 0o644, "uid": 0, "gid": 0}
    ]});
    let err = from_json(v1.to_string().as_bytes())
        .err()
        .ok_or("accepted")?
        .to_string();
    assert!(
        err.contains("entry 0 \"f\": field \"mode\" is only in version 2"),
        "{err}"
    );
    Ok(())
}

#[test]
fn from_json_names_entries_and_records_by_their_place_in_the_input() -> Res {
    let m = archived()?;
    let mut doc = to_json(&m, &m.id());
    for list in ["entries", "records"] {
        if let Some(l) = doc[list].as_array_mut() {
            l.reverse();
        }
    }
    // "a" is entry 0 in path order, the last of the input's 10; "fifo" record 5 of 8.
    let bad = changed(&doc, |d| at(d, "a")["mode"] = json!(0o755));
    let err = from_json(bad.to_string().as_bytes())
        .err()
        .ok_or("accepted")?
        .to_string();
    assert!(err.contains("entry 9 \"a\": a file of kind file"), "{err}");
    let bad = changed(&doc, |d| rec(d, "fifo")["mode"] = json!(0o20000));
    let err = from_json(bad.to_string().as_bytes())
        .err()
        .ok_or("accepted")?
        .to_string();
    assert!(err.contains("record 2 \"fifo\""), "{err}");
    let bad = changed(&doc, |d| at(d, "t2")["link_of"] = json!("nowhere"));
    let err = from_json(bad.to_string().as_bytes())
        .err()
        .ok_or("accepted")?
        .to_string();
    assert!(err.contains("entry 1 \"t2\": \"link_of\""), "{err}");
    Ok(())
}

#[test]
fn the_streamed_json_refuses_entries_that_do_not_fit_its_version() -> Res {
    let m = archived()?;
    let a = m.archive().ok_or("not version 2")?;
    let e = EntryRef::of(&m.entries()[0]);
    // Version 2 without an entry's metadata; a later name before its first name.
    let mut w = JsonWriter::start_archive(Vec::new(), 0, Some(a.preserve))?;
    w.entry(e);
    assert!(w.finish_archive(&m.id(), 0, &a.extras).is_err());
    let later = a
        .entries
        .iter()
        .find(|em| matches!(em.link, Link::Of(_)))
        .ok_or("no link")?;
    let mut w = JsonWriter::start_archive(Vec::new(), 0, Some(a.preserve))?;
    w.entry_with(e, Some(later));
    assert!(w.finish_archive(&m.id(), 0, &a.extras).is_err());
    // Version 1 with metadata, or ended with records; version 2 ended without them.
    let mut w = JsonWriter::start(Vec::new(), 0)?;
    w.entry_with(e, a.entries.first());
    assert!(w.finish(&m.id(), 0).is_err());
    assert!(
        JsonWriter::start(Vec::new(), 0)?
            .finish_archive(&m.id(), 0, &[])
            .is_err()
    );
    let w = JsonWriter::start_archive(Vec::new(), 0, Some(a.preserve))?;
    assert!(w.finish(&m.id(), 0).is_err());
    Ok(())
}
