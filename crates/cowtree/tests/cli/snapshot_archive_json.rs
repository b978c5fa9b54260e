//! The JSON form of a snapshot taken with `snapshot --archive` (version 2): `show --json`
//! prints all that the manifest records beside its entries, and `snapshot --from-json`
//! records it back as the same snapshot (the same id, the same bytes). What the manifest's
//! decoder refuses is refused from JSON too, naming the entry or record, and nothing is
//! written. A version 1 snapshot's JSON is what it always was, byte for byte.

use crate::clone_archive::{OTHER, make_tree, os, tool};
use crate::common;
use crate::snapshot_archive::{in_store, json, root_with_acl_tools, run, tty, version};

use std::error::Error;
use std::fs;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::process::{Output, Stdio};

use cowtree_testutil::{Fs, scratch};
use serde_json::{Value, json};

type Res<T = ()> = Result<T, Box<dyn Error>>;

/// `cowtree snapshot --store STORE --from-json - ARGS...` with `doc` on its stdin.
fn from_json_output(store: &Path, doc: &[u8], args: &[&str]) -> Res<Output> {
    let mut child = common::bin()
        .args([os("snapshot"), os("--store"), store.as_os_str()])
        .args(args)
        .args(["--from-json", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    child.stdin.take().ok_or("no stdin")?.write_all(doc)?;
    Ok(child.wait_with_output()?)
}

/// Records `doc` in `store` with `snapshot --from-json -`: the id printed.
pub(crate) fn from_json(store: &Path, doc: &[u8]) -> Res<String> {
    let out = from_json_output(store, doc, &[])?;
    if !out.status.success() {
        return Err(format!(
            "snapshot --from-json: {}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        )
        .into());
    }
    Ok(String::from_utf8(out.stdout)?.trim().to_string())
}

/// The item of array `list` of `doc` whose path is `path`.
fn item<'v>(doc: &'v Value, list: &str, path: &str) -> Res<&'v Value> {
    doc[list]
        .as_array()
        .and_then(|l| l.iter().find(|e| e["path"] == path))
        .ok_or_else(|| format!("no {list} item {path:?} in {doc}").into())
}

/// Mutable [`item`].
fn item_mut<'v>(doc: &'v mut Value, list: &str, path: &str) -> &'v mut Value {
    let l = doc[list].as_array_mut().expect("the document has the list");
    let i = l
        .iter()
        .position(|e| e["path"] == path)
        .expect("the document has the item");
    &mut l[i]
}

/// The names of an entry's or record's attributes.
fn xattr_names(v: &Value) -> Vec<String> {
    v["xattrs"]
        .as_array()
        .map(|l| {
            l.iter()
                .filter_map(|a| a["name"].as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

/// Snapshot `id` removed from `store` and recorded again from `doc`: the same id, the same
/// bytes.
fn recorded_again(store: &Path, id: &str, doc: &[u8]) -> Res {
    let file = store.join("snapshots").join(id);
    let bytes = fs::read(&file)?;
    fs::remove_file(&file)?;
    assert_eq!(from_json(store, doc)?, id);
    assert_eq!(fs::read(&file)?, bytes, "the same manifest, byte for byte");
    Ok(())
}

#[test]
fn show_json_of_a_snapshot_archive_holds_all_of_it_and_records_the_same_snapshot() -> Res {
    if !root_with_acl_tools("not root: cannot make a tree of other owners") {
        return Ok(());
    }
    let Some(dir) = scratch(Fs::Xfs) else {
        return Ok(());
    };
    // Owners, a set-ID directory and file, user.test and ACLs, a hardlinked pair, a FIFO,
    // a symlink, a sparse file (clone_archive's tree), and a character device.
    let src = dir.path().join("src");
    let store = dir.path().join("store");
    make_tree(&src)?;
    tty(&src.join("tty"), "0620")?;
    let (uid, gid) = OTHER;
    std::os::unix::fs::chown(src.join("tty"), Some(uid), Some(gid))?;
    let snap = run(&in_store(
        "snapshot",
        &store,
        &[os("--archive"), os("--json"), src.as_os_str()],
    ))?;
    let id = json(&snap)?["id"].as_str().ok_or("no id")?.to_string();
    assert_eq!(version(&store, &id)?, 2);

    let shown = run(&in_store("show", &store, &[os("--json"), os(&id)]))?;
    let doc = json(&shown)?;
    assert_eq!(doc["version"], 2, "{doc}");
    assert_eq!(doc["id"], id.as_str());
    assert_eq!(
        doc["archive"],
        json!(["ownership", "xattr", "acl", "links", "special"])
    );
    let a = item(&doc, "entries", "a")?;
    assert_eq!((&a["uid"], &a["gid"]), (&json!(uid), &json!(gid)), "{a}");
    let link = item(&doc, "entries", "d/a-link")?;
    assert_eq!(link["link_of"], "a", "{link}");
    assert_eq!(
        link.get("mode"),
        None,
        "a later name carries no metadata: {link}"
    );
    let suid = item(&doc, "entries", "d/suid")?;
    assert_eq!(
        (&suid["kind"], &suid["mode"]),
        (&json!("executable"), &json!(0o4755))
    );
    let x = item(&doc, "entries", "x")?;
    assert_eq!(
        xattr_names(x),
        ["system.posix_acl_access", "user.test"],
        "sorted by name: {x}"
    );
    let user = x["xattrs"]
        .as_array()
        .and_then(|l| l.last())
        .ok_or("no xattr")?;
    assert_eq!(user["value"], "v1", "{x}");
    let l = item(&doc, "entries", "l")?;
    assert_eq!((&l["mode"], &l["uid"]), (&json!(0), &json!(uid)), "{l}");
    let root = doc["records"].get(0).ok_or("no records")?;
    assert_eq!(
        (&root["path"], &root["kind"]),
        (&json!(""), &json!("dir")),
        "{root}"
    );
    let d = item(&doc, "records", "d")?;
    assert_eq!(
        (&d["kind"], &d["mode"], &d["uid"]),
        (&json!("dir"), &json!(0o4755), &json!(uid))
    );
    let e = item(&doc, "records", "e")?;
    assert!(
        xattr_names(e).contains(&"system.posix_acl_default".into()),
        "{e}"
    );
    let fifo = item(&doc, "records", "fifo")?;
    assert_eq!(
        (&fifo["kind"], &fifo["mode"]),
        (&json!("fifo"), &json!(0o640))
    );
    let dev = item(&doc, "records", "tty")?;
    assert_eq!(
        (&dev["kind"], &dev["major"], &dev["minor"], &dev["mode"]),
        (&json!("char"), &json!(4), &json!(64), &json!(0o620)),
        "{dev}"
    );

    // Recorded from it, the same snapshot: removed first, so that it is this that writes it.
    recorded_again(&store, &id, &shown.stdout)?;
    // And it checks out with what it records.
    let dst = dir.path().join("dst");
    run(&in_store(
        "checkout",
        &store,
        &[os("--archive"), os(&id), dst.as_os_str()],
    ))?;
    let st = fs::symlink_metadata(dst.join("d"))?;
    use std::os::unix::fs::MetadataExt;
    assert_eq!((st.uid(), st.mode() & 0o7777), (uid, 0o4755));
    assert_eq!(
        fs::metadata(dst.join("a"))?.ino(),
        fs::metadata(dst.join("d/a-link"))?.ino()
    );
    Ok(())
}

/// A tree any user can make: a hardlinked pair, a FIFO, a user attribute.
fn small_tree(src: &Path) -> Res {
    fs::create_dir_all(src.join("d"))?;
    fs::write(src.join("a"), b"hardlinked")?;
    fs::hard_link(src.join("a"), src.join("d/b"))?;
    fs::write(src.join("x"), b"attributes")?;
    tool(
        "setfattr",
        &[
            os("-n"),
            os("user.k"),
            os("-v"),
            os("v"),
            src.join("x").as_os_str(),
        ],
    )?;
    tool("mkfifo", &[src.join("d/p").as_os_str()])?;
    Ok(())
}

#[test]
fn from_json_of_version_2_refuses_what_the_manifest_refuses_naming_it_and_writes_nothing() -> Res {
    let Some(dir) = scratch(Fs::Xfs) else {
        return Ok(());
    };
    let src = dir.path().join("src");
    let store = dir.path().join("store");
    small_tree(&src)?;
    let snap = run(&in_store(
        "snapshot",
        &store,
        &[os("--archive"), os("--json"), src.as_os_str()],
    ))?;
    let id = json(&snap)?["id"].as_str().ok_or("no id")?.to_string();
    let shown = run(&in_store("show", &store, &[os("--json"), os(&id)]))?;
    let doc = json(&shown)?;
    assert_eq!(item(&doc, "entries", "d/b")?["link_of"], "a", "{doc}");
    assert_eq!(
        xattr_names(item(&doc, "entries", "x")?),
        ["user.k"],
        "{doc}"
    );
    assert_eq!(item(&doc, "records", "d/p")?["kind"], "fifo", "{doc}");

    let change = |f: &dyn Fn(&mut Value)| {
        let mut d = doc.clone();
        f(&mut d);
        d
    };
    let strip = |e: &mut Value| {
        if let Some(o) = e.as_object_mut() {
            for f in ["mode", "uid", "gid", "xattrs"] {
                o.remove(f);
            }
        }
    };
    let cases: Vec<(&str, Value, &str)> = vec![
        (
            "link-to-missing",
            change(&|d| item_mut(d, "entries", "d/b")["link_of"] = json!("gone")),
            "entry 1 \"d/b\": \"link_of\" \"gone\": no entry has that path",
        ),
        (
            "link-to-later",
            change(&|d| {
                let a = item_mut(d, "entries", "a");
                strip(a);
                a["link_of"] = json!("d/b");
            }),
            "entry 0 \"a\": \"link_of\" \"d/b\": comes after it in path order",
        ),
        (
            "store-marker",
            change(&|d| {
                item_mut(d, "entries", "x")["xattrs"] =
                    json!([{"name": "user.cowtree.store", "value": "/elsewhere"}])
            }),
            "entry 2 \"x\": attribute \"user.cowtree.store\", a worktree's store marker",
        ),
        (
            "bad-mode",
            change(&|d| item_mut(d, "entries", "x")["mode"] = json!(0o70644)),
            "entry 2 \"x\": mode 70644 has bits beyond 07777",
        ),
        (
            "record-beneath-a-file",
            change(&|d| {
                if let Some(l) = d["records"].as_array_mut() {
                    l.push(
                        json!({"path": "x/p", "kind": "fifo", "mode": 0o644, "uid": 0, "gid": 0}),
                    );
                }
            }),
            "entry 2 \"x\": the fifo \"x/p\" lies beneath it",
        ),
        (
            "no-archive",
            change(&|d| {
                d.as_object_mut().map(|o| o.remove("archive"));
            }),
            "version 2 needs \"archive\"",
        ),
        (
            "v1-with-metadata",
            change(&|d| {
                d["version"] = json!(1);
                d.as_object_mut()
                    .map(|o| (o.remove("archive"), o.remove("records")));
            }),
            "entry 0 \"a\": field \"mode\" is only in version 2",
        ),
        (
            "unknown-field",
            change(&|d| item_mut(d, "records", "d/p")["rdev"] = json!(0)),
            "record 2 \"d/p\": field \"rdev\" is not allowed",
        ),
        (
            "missing-blob",
            change(&|d| item_mut(d, "entries", "x")["blob"] = json!("ab".repeat(32))),
            "not in the store",
        ),
    ];
    let count = |d: &str| -> Res<usize> { Ok(fs::read_dir(store.join(d))?.count()) };
    let before = (count("snapshots")?, count("refs")?);
    for (name, bad, want) in cases {
        let out = from_json_output(&store, bad.to_string().as_bytes(), &["--name", name])?;
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{name}: {stderr}");
        assert!(stderr.contains(want), "{name}: wanted {want:?}: {stderr}");
        assert_eq!(
            (count("snapshots")?, count("refs")?),
            before,
            "{name} wrote"
        );
    }
    // The document as shown is recorded, as the same snapshot.
    recorded_again(&store, &id, &shown.stdout)?;
    Ok(())
}

#[test]
fn show_json_of_a_version_1_snapshot_is_what_it_was_and_records_the_same_snapshot() -> Res {
    let Some(dir) = scratch(Fs::Xfs) else {
        return Ok(());
    };
    let src = dir.path().join("src");
    let store = dir.path().join("store");
    fs::create_dir_all(src.join("d"))?;
    fs::create_dir_all(src.join("e"))?;
    fs::write(src.join("b"), "b\n")?;
    fs::hard_link(src.join("b"), src.join("c"))?;
    fs::write(src.join("d/f"), "hi\n")?;
    fs::set_permissions(
        src.join("d/f"),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )?;
    std::os::unix::fs::symlink("../f", src.join("d/l"))?;
    fs::write(src.join(std::ffi::OsStr::from_bytes(b"n\xfe")), b"x\xff")?;
    let snap = run(&in_store(
        "snapshot",
        &store,
        &[os("--json"), src.as_os_str()],
    ))?;
    let id = json(&snap)?["id"].as_str().ok_or("no id")?.to_string();
    let shown = run(&in_store("show", &store, &[os("--json"), os(&id)]))?;
    // What `show --json` printed before version 2 had a JSON form, byte for byte.
    let before = concat!(
        r#"{"bytes":9,"entries":["#,
        r#"{"blob":"9d902f9864f3043dca97e40698eee07a2fe6771591c687ed129cde8f6fcc4a79","kind":"file","path":"b","size":2},"#,
        r#"{"blob":"9d902f9864f3043dca97e40698eee07a2fe6771591c687ed129cde8f6fcc4a79","kind":"file","path":"c","size":2},"#,
        r#"{"blob":"0b8b60248fad7ac6dfac221b7e01a8b91c772421a15b387dd1fb2d6a94aee438","kind":"executable","path":"d/f","size":3},"#,
        r#"{"kind":"symlink","path":"d/l","target":"../f"},{"kind":"dir","path":"e"},"#,
        r#"{"blob":"41c43e6bf4f01b2ae750499a571abcf2f737e04c86efc6f604b93b13aa604853","kind":"file","path_hex":"6efe","size":2}],"#,
        r#""files":4,"format":"cowtree-manifest","#,
        r#""id":"ecfd27366bea632433cd5bbd71fc8568b55f8d38e996ef3f8d875d3bc98f2d1b","version":1}"#,
        "\n"
    );
    assert_eq!(String::from_utf8(shown.stdout.clone())?, before);
    recorded_again(&store, &id, &shown.stdout)?;
    Ok(())
}
