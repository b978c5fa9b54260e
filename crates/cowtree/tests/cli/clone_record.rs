//! `cowtree clone --record FILE` on real mounts: a record that cannot be written fails the
//! clone before anything is written (or, when it fails at the end, a new DST is removed), and
//! each line says which SRC wrote the entry, with paths that are not UTF-8 kept byte for byte.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::common::{Ran, bin, run_limited};
use base64::Engine as _;
use cowtree_testutil::tree::snapshot;
use cowtree_testutil::{Fs, pattern, scratch};
use serde_json::Value;

fn clone(args: &[&OsStr]) -> Ran {
    let mut c = bin();
    c.arg("clone").args(args);
    run_limited(c, Duration::from_secs(120))
}

fn write(path: &Path, bytes: &[u8]) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, bytes).unwrap();
}

fn package(root: &Path, name: &str, files: usize) -> PathBuf {
    let p = root.join(name);
    for f in 0..files {
        write(
            &p.join(format!("site/{name}/m{f}.py")),
            &pattern(100 + f, f as u64),
        );
    }
    p
}

/// Names in `dir` (not below) that cowtree's staging and temporary entries have.
fn marked_in(dir: &Path) -> Vec<String> {
    fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("cowtree-"))
        .collect()
}

#[test]
fn a_record_that_cannot_be_made_fails_the_clone_before_anything_is_written() {
    let Some(dir) = scratch(Fs::Xfs) else { return };
    let src = package(dir.path(), "pkgA", 20);
    let m3 = dir.path().join("m3");
    let occupied = dir.path().join("a-directory");
    fs::create_dir(&occupied).unwrap();
    for record in [Path::new("/nonexistent/dir/rec.jsonl"), occupied.as_path()] {
        let r = clone(&[
            src.as_os_str(),
            m3.as_os_str(),
            OsStr::new("--record"),
            record.as_os_str(),
        ]);
        r.assert_error("an unwritable record");
        assert!(
            r.stderr.contains(&format!("--record {}", record.display()))
                && r.stderr.contains("nothing was written"),
            "{}",
            r.stderr
        );
        assert!(!m3.exists(), "{}: m3 was left", record.display());
        assert_eq!(marked_in(dir.path()), Vec::<String>::new());
    }
    // A merge is refused as early: DST is as it was.
    write(&m3.join("keep"), b"keep");
    let before = snapshot(&m3);
    let r = clone(&[
        OsStr::new("--on-existing"),
        OsStr::new("overwrite"),
        src.as_os_str(),
        m3.as_os_str(),
        OsStr::new("--record"),
        OsStr::new("/nonexistent/dir/rec.jsonl"),
    ]);
    r.assert_error("an unwritable record, merging");
    assert_eq!(snapshot(&m3), before);
    assert_eq!(marked_in(&m3), Vec::<String>::new());
}

/// Fills the filesystem of `dir` until about `leave` bytes are free.
fn fill(dir: &Path, leave: u64) {
    let st = rustix::fs::statvfs(dir).unwrap();
    let free = st.f_bavail * st.f_frsize;
    let f = fs::File::create(dir.join("filler")).unwrap();
    rustix::fs::fallocate(
        &f,
        rustix::fs::FallocateFlags::empty(),
        0,
        free.saturating_sub(leave),
    )
    .unwrap();
}

#[test]
fn a_record_that_cannot_be_written_at_the_end_removes_the_new_destination() {
    let _small = cowtree_testutil::small_alone();
    let Some(small) = scratch(Fs::Small) else {
        return;
    };
    let Some(dir) = scratch(Fs::Xfs) else { return };
    // 3,000 entries make a record of some 500 KiB with their hashes; 256 KiB are left where
    // it goes (enough to make the file, not to fill it).
    let src = package(dir.path(), "pkgA", 3000);
    fill(small.path(), 256 << 10);
    let record = small.path().join("rec.jsonl");
    let dst = dir.path().join("m3");
    let r = clone(&[
        src.as_os_str(),
        dst.as_os_str(),
        OsStr::new("--record"),
        record.as_os_str(),
        OsStr::new("--record-hash"),
        OsStr::new("sha256"),
    ]);
    r.assert_error("a record on a full filesystem");
    assert!(
        r.stderr.contains("No space left on device")
            && r.stderr.contains("nothing is left of the copy"),
        "{}",
        r.stderr
    );
    assert!(!dst.exists(), "a new DST was left on exit 1");
    assert!(!record.exists());
    assert_eq!(marked_in(dir.path()), Vec::<String>::new());
    assert_eq!(marked_in(small.path()), Vec::<String>::new());

    // Merged into an existing DST: the merge stays, and the message says only the record is
    // missing.
    write(&dst.join("keep"), b"keep");
    let r = clone(&[
        OsStr::new("--on-existing"),
        OsStr::new("overwrite"),
        src.as_os_str(),
        dst.as_os_str(),
        OsStr::new("--record"),
        record.as_os_str(),
        OsStr::new("--record-hash"),
        OsStr::new("sha256"),
    ]);
    r.assert_error("a record on a full filesystem, merging");
    assert!(
        r.stderr.contains("is complete; only the record is missing"),
        "{}",
        r.stderr
    );
    assert!(dst.join("keep").is_file() && dst.join("site/pkgA/m0.py").is_file());
    assert_eq!(marked_in(small.path()), Vec::<String>::new());
}

fn record_lines(path: &Path) -> Vec<Value> {
    fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// The raw bytes of a line's path field `key` (`key` or `key_base64`).
fn path_of(line: &Value, key: &str) -> Option<Vec<u8>> {
    if let Some(s) = line.get(key) {
        assert!(
            line.get(format!("{key}_base64")).is_none(),
            "both {key} and {key}_base64: {line}"
        );
        return Some(s.as_str().unwrap().as_bytes().to_vec());
    }
    line.get(format!("{key}_base64")).map(|b| {
        base64::engine::general_purpose::STANDARD
            .decode(b.as_str().unwrap())
            .unwrap()
    })
}

#[test]
fn each_record_line_names_its_source_and_keeps_non_utf8_paths_byte_for_byte() {
    let Some(dir) = scratch(Fs::Xfs) else { return };
    let a = package(dir.path(), "pkgA", 5);
    let b = package(dir.path(), "pkgB", 5);
    // A name that is not UTF-8, in a source whose own name is not UTF-8 either; and a file
    // both sources have (a collision: the later one is linked).
    let raw = dir.path().join(OsStr::from_bytes(b"pkg\xe9"));
    write(
        &raw.join(OsStr::from_bytes(b"site/caf\xe9/\xff.py")),
        b"raw",
    );
    write(&a.join("site/shared.txt"), b"a");
    write(&b.join("site/shared.txt"), b"b");
    let dst = dir.path().join("env");
    let record = dir.path().join("rec.jsonl");
    let r = clone(&[
        OsStr::new("--json"),
        OsStr::new("--on-existing"),
        OsStr::new("overwrite"),
        OsStr::new("--record"),
        record.as_os_str(),
        a.as_os_str(),
        raw.as_os_str(),
        b.as_os_str(),
        dst.as_os_str(),
    ]);
    r.assert_ok("clone of three sources");
    let report = r.json();
    assert_eq!(
        report["sources"],
        serde_json::json!([
            a.to_string_lossy(),
            raw.to_string_lossy(),
            b.to_string_lossy()
        ])
    );
    let lines = record_lines(&record);
    let by_path: BTreeMap<Vec<u8>, &Value> = lines
        .iter()
        .map(|l| (path_of(l, "path").unwrap(), l))
        .collect();
    // Every entry on disk is listed once, under its exact bytes.
    let on_disk: Vec<Vec<u8>> = snapshot(&dst)
        .into_keys()
        .filter(|p| !p.as_os_str().is_empty())
        .map(|p| p.as_os_str().as_bytes().to_vec())
        .collect();
    assert_eq!(by_path.keys().cloned().collect::<Vec<_>>(), {
        let mut v = on_disk.clone();
        v.sort();
        v
    });
    assert_eq!(lines.len(), on_disk.len());
    let raw_line = by_path[&b"site/caf\xe9/\xff.py"[..]];
    assert_eq!(
        path_of(raw_line, "source").unwrap(),
        raw.as_os_str().as_bytes()
    );
    assert_eq!(path_of(raw_line, "from").unwrap(), b"site/caf\xe9/\xff.py");
    assert!(raw_line.get("path").is_none() && raw_line.get("source").is_none());
    let a_line = by_path[&b"site/pkgA/m0.py"[..]];
    assert_eq!(a_line["source"], a.to_str().unwrap());
    assert_eq!(a_line["from"], "site/pkgA/m0.py");
    assert_eq!(
        by_path[&b"site/shared.txt"[..]]["source"],
        b.to_str().unwrap()
    );
    // UTF-8 paths stay plain strings.
    assert!(lines.iter().filter(|l| l.get("path").is_some()).count() >= 12);

    // Each SRC inside DST (no merge): the source is still the SRC that wrote the entry.
    let into = dir.path().join("into");
    fs::create_dir(&into).unwrap();
    let record2 = dir.path().join("rec2.jsonl");
    clone(&[
        OsStr::new("--record"),
        record2.as_os_str(),
        a.as_os_str(),
        b.as_os_str(),
        into.as_os_str(),
    ])
    .assert_ok("clone of two sources into a directory");
    for l in record_lines(&record2) {
        let path = l["path"].as_str().unwrap();
        let want = if path.starts_with("pkgA") { &a } else { &b };
        assert_eq!(l["source"], want.to_str().unwrap(), "{l}");
    }
}
