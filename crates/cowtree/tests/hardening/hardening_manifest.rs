//! Hostile manifests through `cowtree snapshot --from-json`, on real XFS.
//!
//! Each refused manifest must leave the whole sandbox (store included) exactly as it was; each
//! accepted edge case is checked out and must create nothing outside its destination.

use std::fs;
use std::io::Write;
use std::path::Path;
use std::time::Duration;

use crate::common::*;
use cowtree_testutil::{Fs, scratch};
use serde_json::{Value, json};

/// A store holding one blob ("hello", 5 bytes) and one empty blob; returns the file entries'
/// blob fields for each.
fn store_with_blobs(root: &Path) -> (std::path::PathBuf, Value, Value) {
    let store = root.join("store");
    let src = root.join("blobsrc");
    fs::create_dir(&src).unwrap();
    fs::write(src.join("hello"), b"hello").unwrap();
    fs::write(src.join("empty"), b"").unwrap();
    let id = snapshot(&store, &src);
    fs::remove_dir_all(&src).unwrap();
    let shown = cowtree(&store, &[s("show"), s("--json"), s(&id)]);
    shown.assert_ok("show");
    let v = shown.json();
    let pick = |p: &str| {
        v["entries"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["path"] == p)
            .unwrap()
            .clone()
    };
    (store, pick("hello"), pick("empty"))
}

fn file_at(blob: &Value, path: &str) -> Value {
    let mut e = blob.clone();
    e["path"] = json!(path);
    e
}

fn file_hex(blob: &Value, path: &[u8]) -> Value {
    let mut e = blob.clone();
    e.as_object_mut().unwrap().remove("path");
    e["path_hex"] = json!(path.iter().map(|b| format!("{b:02x}")).collect::<String>());
    e
}

/// Reads the file at `rel` beneath `root` one component at a time (for paths over PATH_MAX).
fn read_rel(root: &Path, rel: &str) -> Vec<u8> {
    use std::ffi::OsStr;
    let parts: Vec<&str> = rel.split('/').collect();
    let (name, dirs) = parts.split_last().unwrap();
    let mut d = cowtree_fs::dir::Dir::open(root).unwrap();
    for p in dirs {
        d = d.open_dir(OsStr::new(p)).unwrap();
    }
    let fd = rustix::fs::openat(
        &d,
        *name,
        rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::NOFOLLOW,
        rustix::fs::Mode::empty(),
    )
    .unwrap();
    let mut out = Vec::new();
    std::io::Read::read_to_end(&mut fs::File::from(fd), &mut out).unwrap();
    out
}

fn doc(entries: Vec<Value>) -> Vec<u8> {
    json!({"format": "cowtree-manifest", "version": 1, "entries": entries})
        .to_string()
        .into_bytes()
}

#[test]
fn hostile_manifest_paths_are_refused_by_name_and_nothing_anywhere_changes() {
    let Some(dir) = scratch(Fs::Xfs) else { return };
    let root = dir.path();
    let (store, hello, _) = store_with_blobs(root);
    let f = |p: &str| file_at(&hello, p);
    let long_component = "c".repeat(256);
    // 41 components of 99 bytes + 40 slashes = 4099 bytes.
    let long_path = vec!["p".repeat(99); 41].join("/");
    let cases: Vec<(&str, Vec<Value>, &str)> = vec![
        ("dotdot", vec![f("a/../../outside")], "'..'"),
        ("dotdot-only", vec![f("..")], "'..'"),
        ("dotdot-hex", vec![file_hex(&hello, b"../x")], "'..'"),
        ("absolute", vec![f("/tmp/outside")], "absolute"),
        ("absolute-hex", vec![file_hex(&hello, b"/x")], "absolute"),
        ("nul", vec![f("a\u{0}b")], "NUL"),
        ("nul-hex", vec![file_hex(&hello, b"a\0/b")], "NUL"),
        ("empty-path", vec![f("")], "empty"),
        ("empty-component", vec![f("a//b")], "empty"),
        ("trailing-slash", vec![f("a/")], "empty"),
        ("dot", vec![f(".")], "'.'"),
        ("dot-component", vec![f("a/./b")], "'.'"),
        ("leading-dot", vec![f("./a")], "'.'"),
        ("component-256", vec![f(&long_component)], "256 bytes"),
        ("path-4099", vec![f(&long_path)], "4099 bytes"),
        ("duplicate", vec![f("a"), f("b"), f("a")], "duplicate"),
        ("beneath-file", vec![f("a"), f("a/b")], "beneath"),
        (
            "beneath-symlink",
            vec![
                json!({"path": "l", "kind": "symlink", "target": "/"}),
                f("l/etc/x"),
            ],
            "beneath",
        ),
        (
            "beneath-empty-dir",
            vec![json!({"path": "d", "kind": "dir"}), f("d/x")],
            "beneath",
        ),
        (
            "symlink-target-nul",
            vec![json!({"path": "l", "kind": "symlink", "target": "a\u{0}"})],
            "NUL",
        ),
    ];
    let before = capture_except(root, &[]);
    for (name, entries, want) in cases {
        let file = root.join(format!("{name}.json"));
        fs::write(&file, doc(entries)).unwrap();
        let mid = capture_except(root, &[]);
        let r = cowtree(
            &store,
            &[
                s("snapshot"),
                s("--name"),
                s(name),
                s("--from-json"),
                file.as_os_str(),
            ],
        );
        r.assert_error(name);
        assert!(
            r.stderr.contains(want) && r.stderr.contains("entry"),
            "{name}: the error must say which entry and why ({want}): {}",
            r.stderr
        );
        mid.assert_same(&capture_except(root, &[]), name);
        fs::remove_file(&file).unwrap();
    }
    before.assert_same(&capture_except(root, &[]), "after all refusals");
}

#[test]
fn longest_valid_names_and_paths_check_out_inside_the_destination_only() {
    let Some(dir) = scratch(Fs::Xfs) else { return };
    let root = dir.path();
    let (store, hello, empty) = store_with_blobs(root);
    let max_component = "m".repeat(255);
    // 2048 components "a" = 4095 bytes: the deepest path within PATH_MAX.
    let deep = vec!["a"; 2048].join("/");
    assert_eq!(deep.len(), 4095);
    // Exactly 4096 bytes, with 255-byte components.
    let mut parts = vec!["x".repeat(255); 15];
    parts.push("y".repeat(128));
    parts.push("z".repeat(127));
    let exact = parts.join("/");
    assert_eq!(exact.len(), 4096);
    let entries = vec![
        file_at(&hello, &max_component),
        file_at(&hello, &deep),
        file_at(&empty, &exact),
        json!({"path": "back\\slash\nnew\u{1}line", "kind": "symlink", "target": "../../../../etc/passwd"}),
        json!({"path": "abs-link", "kind": "symlink", "target": "/etc"}),
    ];
    let file = root.join("edge.json");
    fs::write(&file, doc(entries)).unwrap();
    let r = cowtree(
        &store,
        &[
            s("snapshot"),
            s("--json"),
            s("--from-json"),
            file.as_os_str(),
        ],
    );
    r.assert_ok("edge manifest");
    let id = r.json()["id"].as_str().unwrap().to_string();
    let dst = root.join("wt");
    let before = capture_except(root, &[&dst, &store.join("worktrees")]);
    let r = cowtree(&store, &[s("checkout"), s(&id), dst.as_os_str()]);
    r.assert_ok("checkout of the edge manifest");
    before.assert_same(
        &capture_except(root, &[&dst, &store.join("worktrees")]),
        "checkout wrote outside its destination",
    );
    assert_eq!(fs::read(dst.join(&max_component)).unwrap(), b"hello");
    // The deep files are read relative to the destination (their full paths are over
    // PATH_MAX).
    assert_eq!(read_rel(&dst, &deep), b"hello");
    assert_eq!(read_rel(&dst, &exact), b"");
    assert_eq!(
        fs::read_link(dst.join("back\\slash\nnew\u{1}line")).unwrap(),
        Path::new("../../../../etc/passwd")
    );
    assert_verify_ok(&store, "after the edge checkout");
}

#[test]
fn deeply_nested_json_is_refused_without_overflowing_the_stack() {
    let Some(dir) = scratch(Fs::Xfs) else { return };
    let root = dir.path();
    let (store, _, _) = store_with_blobs(root);
    let depth = 200_000;
    let mut text = String::with_capacity(depth * 2 + 100);
    text.push_str(r#"{"format":"cowtree-manifest","version":1,"entries":"#);
    text.push_str(&"[".repeat(depth));
    text.push_str(&"]".repeat(depth));
    text.push('}');
    let file = root.join("nested.json");
    fs::write(&file, text).unwrap();
    let before = capture_except(root, &[]);
    let r = cowtree(&store, &[s("snapshot"), s("--from-json"), file.as_os_str()]);
    r.assert_error("deeply nested JSON");
    assert!(
        r.stderr.contains("JSON") || r.stderr.contains("recursion"),
        "{}",
        r.stderr
    );
    before.assert_same(&capture_except(root, &[]), "nested JSON");
}

/// A manifest of a million entries is recorded, and the process stays under 1 GiB resident.
/// Heavy by nature (30 s): the full tier (`COWTREE_TEST_FULL=1`, .ci/run) runs it.
#[test]
fn a_manifest_of_a_million_entries_is_recorded_in_bounded_memory() {
    if !cowtree_testutil::full_tier("a manifest of 1,000,000 entries recorded in bounded memory") {
        return;
    }
    let Some(dir) = scratch(Fs::Xfs) else { return };
    let root = dir.path();
    let (store, _, empty) = store_with_blobs(root);
    let blob = empty["blob"].as_str().unwrap();
    let file = root.join("million.json");
    let mut w = std::io::BufWriter::new(fs::File::create(&file).unwrap());
    write!(
        w,
        r#"{{"format":"cowtree-manifest","version":1,"entries":["#
    )
    .unwrap();
    const N: usize = 1_000_000;
    for i in 0..N {
        let sep = if i == 0 { "" } else { "," };
        write!(
            w,
            r#"{sep}{{"path":"d{:03}/f{i}","kind":"file","size":0,"blob":"{blob}"}}"#,
            i % 1000
        )
        .unwrap();
    }
    write!(w, "]}}").unwrap();
    w.flush().unwrap();
    drop(w);
    let json_mb = fs::metadata(&file).unwrap().len() / (1 << 20);
    let mut c = bin();
    c.arg("--store").arg(&store).args([
        s("snapshot"),
        s("--json"),
        s("--from-json"),
        file.as_os_str(),
    ]);
    let r = run_limited(c, Duration::from_secs(600));
    r.assert_ok("million-entry manifest");
    let v = r.json();
    assert_eq!(v["files"], N as u64, "{v}");
    println!(
        "million-entry manifest ({json_mb} MiB of JSON): peak RSS {} MiB",
        r.maxrss_kib / 1024
    );
    assert!(
        r.maxrss_kib < 1024 * 1024,
        "peak RSS {} MiB is over 1 GiB",
        r.maxrss_kib / 1024
    );
    assert_verify_ok(&store, "after the million-entry manifest");
}
