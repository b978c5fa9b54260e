//! cowtree-link on Windows, end to end on the volume the tests run on: a tree made with
//! `std::fs` linked into a new destination by the engine, and what it refuses. Under Wine
//! (scripts/windows.sh) the volume cannot block-clone, so the tree is copied (the `auto`
//! mode's fallback); a real block clone is only compiled. A name Windows cannot hold is
//! made with a `\\?\` path where this Windows allows it, else that test prints "NOT RUN".
#![cfg(windows)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use cowtree_link::{HashAlgo, LinkError, LinkMode, LinkOptions, Linker, OnExisting, Preserve};

/// Bytes that differ from one offset to the next.
fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len).map(|i| (i * 7 + i / 4096) as u8 ^ seed).collect()
}

/// What a tree holds: relative path (with `/`) to `None` for a directory or the file's bytes.
fn contents(root: &Path) -> BTreeMap<String, Option<Vec<u8>>> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, Option<Vec<u8>>>) {
        for e in std::fs::read_dir(dir).expect("read_dir") {
            let e = e.expect("entry");
            let path = e.path();
            let rel = path
                .strip_prefix(root)
                .expect("below the root")
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect::<Vec<_>>()
                .join("/");
            let ft = e.file_type().expect("file type");
            assert!(!ft.is_symlink(), "no symlink expected at {rel}");
            if ft.is_dir() {
                out.insert(rel, None);
                walk(root, &path, out);
            } else {
                out.insert(rel, Some(std::fs::read(&path).expect("read")));
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

/// The names in `dir`, sorted.
fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .expect("read_dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

fn is_read_only(path: &Path) -> bool {
    std::fs::metadata(path)
        .expect("stat")
        .permissions()
        .readonly()
}

/// Sets or clears the read-only attribute (cleared before the temporary tree is removed).
fn set_read_only(path: &Path, on: bool) {
    let mut perm = std::fs::metadata(path).expect("stat").permissions();
    #[allow(clippy::permissions_set_readonly_false)]
    perm.set_readonly(on);
    std::fs::set_permissions(path, perm).expect("set read-only");
}

fn clones_here(dir: &Path) -> bool {
    cowtree_fs::probe::volume(dir)
        .expect("volume")
        .reports_block_cloning
}

/// A source tree: nested directories, an empty file, small and multi-megabyte files,
/// names in several scripts, and one file whose full path is over 300 characters. Returns
/// the number of files and of directories below the root, and the total bytes.
fn make_source(src: &Path) -> (u64, u64, u64) {
    let mut files = Vec::new();
    let mut dirs = vec![
        PathBuf::from("a"),
        PathBuf::from("a/b"),
        PathBuf::from("a/b/c"),
        PathBuf::from("empty dir"),
        PathBuf::from("ünïcødé"),
        PathBuf::from("日本語のディレクトリ"),
    ];
    files.push((PathBuf::from("empty.txt"), Vec::new()));
    files.push((PathBuf::from("small.txt"), b"hello, windows\n".to_vec()));
    files.push((PathBuf::from("a/b/c/big.bin"), pattern(3 << 20 | 12345, 1)));
    files.push((PathBuf::from("a/one.bin"), pattern(70_000, 2)));
    files.push((PathBuf::from("ünïcødé/crème brûlée.txt"), pattern(100, 3)));
    files.push((
        PathBuf::from("日本語のディレクトリ/ファイル.txt"),
        pattern(4097, 4),
    ));
    files.push((PathBuf::from("emoji 🐄 cow.txt"), pattern(10, 5)));
    files.push((
        PathBuf::from("a/read-only.txt"),
        b"keep me read-only".to_vec(),
    ));
    // Over MAX_PATH (260) from the source root alone.
    let mut long = PathBuf::new();
    for i in 0..6 {
        long.push(format!("long-directory-name-number-{i}-{}", "x".repeat(40)));
        dirs.push(long.clone());
    }
    let long_file = long.join(format!("a-file-at-the-bottom-{}.txt", "y".repeat(60)));
    assert!(long_file.as_os_str().len() > 300);
    files.push((long_file, pattern(5000, 6)));
    for d in &dirs {
        std::fs::create_dir_all(src.join(d)).expect("mkdir");
    }
    let mut bytes = 0;
    for (f, data) in &files {
        std::fs::write(src.join(f), data).expect("write");
        bytes += data.len() as u64;
    }
    set_read_only(&src.join("a/read-only.txt"), true);
    (files.len() as u64, dirs.len() as u64, bytes)
}

#[test]
fn a_new_tree_is_linked_with_the_same_bytes_and_counts() {
    let t = tempfile::tempdir().expect("tempdir");
    let src = t.path().join("src");
    std::fs::create_dir(&src).expect("mkdir");
    let (files, dirs, bytes) = make_source(&src);
    // A known modification time on one file, to see the copy keep it.
    let when = SystemTime::UNIX_EPOCH + Duration::from_secs(1_600_000_000);
    std::fs::File::options()
        .write(true)
        .open(src.join("small.txt"))
        .expect("open")
        .set_modified(when)
        .expect("set mtime");
    for jobs in [1, 3] {
        let dst = t.path().join(format!("dst-{jobs}"));
        let linker = Linker::new(LinkOptions {
            jobs,
            ..LinkOptions::default()
        });
        let report = linker.link_tree(&src, &dst).expect("link");
        assert_eq!(contents(&dst), contents(&src), "jobs {jobs}");
        assert_eq!(report.files, files);
        assert_eq!(report.dirs, dirs);
        assert_eq!(report.bytes, bytes);
        assert_eq!(report.cloned + report.copied, files);
        assert_eq!(report.symlinks + report.special + report.vanished, 0);
        if clones_here(t.path()) {
            println!(
                "block cloning: {} cloned, {} copied",
                report.cloned, report.copied
            );
        } else {
            // No block cloning: every file copied, and the one pair-wide fallback says so.
            assert_eq!((report.cloned, report.copied), (0, files), "{report:?}");
            assert_eq!(report.bytes_copied, bytes);
            assert_eq!(report.fallbacks.len(), 1, "{:?}", report.fallbacks);
            assert!(!report.fallbacks[0].per_file, "{:?}", report.fallbacks);
            println!(
                "copy fallback under jobs {jobs}: {} ({})",
                report.fallbacks[0].reason, report.fallbacks[0].description
            );
        }
        let got = std::fs::metadata(dst.join("small.txt"))
            .expect("stat")
            .modified()
            .expect("mtime");
        assert_eq!(got, when, "the file's modification time is kept");
        // The one permission Windows keeps in an attribute: read-only stays read-only.
        assert!(is_read_only(&dst.join("a/read-only.txt")));
        assert!(!is_read_only(&dst.join("a/one.bin")));
        set_read_only(&dst.join("a/read-only.txt"), false);
    }
    set_read_only(&src.join("a/read-only.txt"), false);
    // Nothing but the two destinations appeared beside the source (no staging left).
    assert_eq!(names(t.path()), ["dst-1", "dst-3", "src"]);
}

#[test]
fn the_record_hashes_what_was_written() {
    let t = tempfile::tempdir().expect("tempdir");
    let src = t.path().join("src");
    std::fs::create_dir_all(src.join("d")).expect("mkdir");
    let data = pattern(200_000, 9);
    std::fs::write(src.join("d/f.bin"), &data).expect("write");
    let dst = t.path().join("dst");
    let linker = Linker::new(LinkOptions {
        hash: Some(HashAlgo::Blake3),
        ..LinkOptions::default()
    });
    let report = linker.link_tree(&src, &dst).expect("link");
    let entry = report
        .record
        .iter()
        .find(|e| e.path.ends_with("f.bin"))
        .expect("the file is recorded");
    assert_eq!(entry.size, Some(data.len() as u64));
    let hash = entry.hash.as_ref().expect("hashed");
    assert_eq!(hash.bytes, blake3::hash(&data).as_bytes().to_vec());
}

#[test]
fn a_file_as_the_source_is_linked_like_cp() {
    let t = tempfile::tempdir().expect("tempdir");
    let src = t.path().join("one file.bin");
    let data = pattern(1 << 20, 7);
    std::fs::write(&src, &data).expect("write");
    let dst = t.path().join("copy of it.bin");
    let report = Linker::new(LinkOptions::default())
        .link_tree(&src, &dst)
        .expect("link");
    assert_eq!(report.files, 1);
    assert_eq!(std::fs::read(&dst).expect("read"), data);
    assert_eq!(names(t.path()), ["copy of it.bin", "one file.bin"]);
}

#[test]
fn an_existing_destination_is_refused_and_left_as_it_was() {
    let t = tempfile::tempdir().expect("tempdir");
    let src = t.path().join("src");
    std::fs::create_dir(&src).expect("mkdir");
    std::fs::write(src.join("f"), b"new").expect("write");
    let dst = t.path().join("dst");
    std::fs::create_dir(&dst).expect("mkdir");
    std::fs::write(dst.join("f"), b"old").expect("write");
    let e = Linker::new(LinkOptions::default())
        .link_tree(&src, &dst)
        .expect_err("DST exists");
    assert!(matches!(e, LinkError::DestinationExists(_)), "{e}");
    assert!(e.destination_unchanged());
    assert_eq!(std::fs::read(dst.join("f")).expect("read"), b"old");
    assert_eq!(names(&dst), ["f"]);
    assert_eq!(names(t.path()), ["dst", "src"]);
}

/// A source and an existing destination for a merge: `f` in both (the source's replaces
/// the destination's under overwrite), `g` and `sub/x` only in the source, `h` and `keep/y`
/// only in the destination, and `kind` a file in the destination, a directory in the source.
fn merge_pair(t: &Path) -> (PathBuf, PathBuf) {
    let (src, dst) = (t.join("src"), t.join("dst"));
    for d in [src.join("sub"), src.join("kind"), dst.join("keep")] {
        std::fs::create_dir_all(d).expect("mkdir");
    }
    for (p, data) in [
        (src.join("f"), &b"new"[..]),
        (src.join("g"), b"added"),
        (src.join("sub").join("x"), b"x"),
        (src.join("kind").join("in"), b"in"),
        (dst.join("f"), b"old"),
        (dst.join("h"), b"theirs"),
        (dst.join("keep").join("y"), b"y"),
        (dst.join("kind"), b"a file"),
    ] {
        std::fs::write(p, data).expect("write");
    }
    (src, dst)
}

fn text(p: &Path) -> String {
    String::from_utf8(std::fs::read(p).expect("read")).expect("utf-8")
}

/// What `dst` holds after `merge_pair`'s source is merged into it with `on_existing`, with
/// nothing else there: no `.cowtree-tmp.`, `.swap` or journal left.
fn check_merged(dst: &Path, on_existing: OnExisting) {
    assert_eq!(text(&dst.join("g")), "added");
    assert_eq!(text(&dst.join("sub").join("x")), "x");
    assert_eq!(text(&dst.join("h")), "theirs", "only in DST: kept");
    assert_eq!(text(&dst.join("keep").join("y")), "y");
    if on_existing == OnExisting::Overwrite {
        assert_eq!(text(&dst.join("f")), "new");
        assert_eq!(
            text(&dst.join("kind").join("in")),
            "in",
            "a file replaced by a directory"
        );
    } else {
        assert_eq!(text(&dst.join("f")), "old");
        assert_eq!(text(&dst.join("kind")), "a file");
    }
    assert_eq!(
        names(dst),
        ["f", "g", "h", "keep", "kind", "sub"],
        "{on_existing:?}"
    );
}

#[test]
fn a_merge_overwrites_and_skips_and_leaves_no_temporary_entry_or_journal() {
    for on_existing in [OnExisting::Overwrite, OnExisting::Skip] {
        let t = tempfile::tempdir().expect("tempdir");
        let (src, dst) = merge_pair(t.path());
        let before = contents(&dst);
        // A durable merge needs a volume flush, which Windows allows administrators only (and
        // Wine no one): without it the merge fails once everything is built, and is undone.
        let durable = Linker::new(LinkOptions {
            on_existing,
            sync: true,
            ..LinkOptions::default()
        })
        .link_tree(&src, &dst);
        match durable {
            Ok(ref report) => {
                println!("{on_existing:?} sync: {report:?}");
                check_merged(&dst, on_existing);
            }
            Err(ref e) => {
                println!("{on_existing:?} sync: {e}");
                assert!(matches!(e, LinkError::Io { op: "sync", .. }), "{e:?}");
                assert!(e.destination_unchanged(), "{e:?}");
                assert_eq!(contents(&dst), before, "undone");
            }
        }
        let report = Linker::new(LinkOptions {
            on_existing,
            ..LinkOptions::default()
        })
        .link_tree(&src, &dst)
        .expect("merge");
        println!("{on_existing:?}: {report:?}");
        check_merged(&dst, on_existing);
        if on_existing == OnExisting::Skip {
            assert_eq!(report.replaced, 0, "{report:?}");
        } else if durable.is_err() {
            assert_eq!(report.replaced, 2, "{report:?}");
        }
    }
}

#[test]
fn a_merge_waits_for_another_merge_into_the_same_directory_or_says_it_is_busy() {
    let t = tempfile::tempdir().expect("tempdir");
    let (src, dst) = merge_pair(t.path());
    // The lock a merge takes: the named mutex of the directory's volume and file id, held
    // here by this thread as another merge would hold it.
    let st = cowtree_fs::dir::Dir::open(&dst)
        .expect("open")
        .stat_self()
        .expect("stat");
    let name = format!(
        "Global\\cowtree-merge-{:016x}-{:016x}",
        cowtree_fs::sys::stat_dev(&st),
        cowtree_fs::sys::stat_ino(&st)
    );
    let held = cowtree_fs::file_lock::try_lock_named(&name)
        .expect("lock")
        .expect("free");
    let merge = |wait: bool| {
        let (src, dst) = (src.clone(), dst.clone());
        std::thread::spawn(move || {
            Linker::new(LinkOptions {
                on_existing: OnExisting::Overwrite,
                wait,
                ..LinkOptions::default()
            })
            .link_tree(&src, &dst)
        })
    };
    let e = merge(false)
        .join()
        .expect("thread")
        .expect_err("the lock is held");
    assert!(matches!(e, LinkError::DestinationBusy(_)), "{e}");
    assert_eq!(text(&dst.join("f")), "old", "nothing written");
    let waiting = merge(true);
    std::thread::sleep(Duration::from_millis(300));
    assert!(!waiting.is_finished(), "waits while the lock is held");
    assert_eq!(text(&dst.join("f")), "old");
    drop(held);
    waiting.join().expect("thread").expect("merge once free");
    assert_eq!(text(&dst.join("f")), "new");
}

/// Writes a merge journal as a killed merge leaves one: a replacement of `dst\f` by the
/// entry at `tmp`, then `lines` (`go`, `undo`). Names are hex of their UTF-16 units.
fn journal(dst: &Path, tmp: &str, lines: &[&str]) {
    let hex = |s: &str| -> String {
        if s.is_empty() {
            return "-".into();
        }
        s.encode_utf16()
            .flat_map(u16::to_le_bytes)
            .map(|b| format!("{b:02x}"))
            .collect()
    };
    let d = cowtree_fs::dir::Dir::open(dst).expect("open");
    let ino = cowtree_fs::sys::stat_ino(&d.stat(tmp.as_ref()).expect("stat tmp"));
    let mut text = format!(
        "t {} {}\nc r {} {} {} {ino}\n",
        hex(""),
        hex(tmp),
        hex(""),
        hex(tmp),
        hex("f")
    );
    for l in lines {
        text.push_str(l);
        text.push('\n');
    }
    std::fs::write(dst.join(".cowtree-txn-w16.1.00000000000000aa"), text).expect("journal");
}

#[test]
fn an_exchange_a_killed_merge_cut_short_is_finished_or_undone_by_the_next_run() {
    let tmp = ".f.cowtree-tmp.1.aaaaaaaa";
    let swap = format!("{tmp}.swap");
    // (state made by hand, the journal's lines, what `f` holds after recovery)
    let cases: [(&str, &[&str], &str); 7] = [
        // Killed after the publishing exchange's first rename (`f` aside): finished.
        ("aside", &["go"], "new"),
        // Killed after its second (the new entry at `f`): finished.
        ("placed", &["go"], "new"),
        // The same two with `undo` written (the undo had not reached them): undone.
        ("aside", &["go", "undo"], "old"),
        ("placed", &["go", "undo"], "old"),
        // Killed in the undo's own exchange, after its first rename (the new entry aside, the
        // old one still at the temporary name), and after its second (the old one back).
        ("undo-aside", &["go", "undo"], "old"),
        ("undo-placed", &["go", "undo"], "old"),
        // Killed before publishing: the temporary entry is removed.
        ("before", &[], "old"),
    ];
    for (state, lines, want) in cases {
        let t = tempfile::tempdir().expect("tempdir");
        let dst = t.path().join("dst");
        std::fs::create_dir(&dst).expect("mkdir");
        std::fs::write(dst.join("f"), b"old").expect("write");
        std::fs::write(dst.join(tmp), b"new").expect("write");
        journal(&dst, tmp, lines);
        let mv = |from: &str, to: &str| std::fs::rename(dst.join(from), dst.join(to)).expect(to);
        match state {
            "aside" => mv("f", &swap),
            "placed" => {
                mv("f", &swap);
                mv(tmp, "f");
            }
            "undo-aside" | "undo-placed" => {
                // Published (the new entry at `f`, the old at the temporary name) ...
                mv("f", "x");
                mv(tmp, "f");
                mv("x", tmp);
                // ... then the undo's exchange begun.
                mv("f", &swap);
                if state == "undo-placed" {
                    mv(tmp, "f");
                }
            }
            _ => {}
        }
        let n = Linker::new(LinkOptions::default())
            .recover(&dst)
            .expect("recover");
        assert_eq!(n, 1, "{state} {lines:?}");
        assert_eq!(text(&dst.join("f")), want, "{state} {lines:?}");
        assert_eq!(names(&dst), ["f"], "{state} {lines:?}: nothing else left");
    }
}

#[test]
fn an_exchange_that_cannot_be_settled_or_a_unix_journal_keeps_the_journal_and_every_entry() {
    let tmp = ".f.cowtree-tmp.1.aaaaaaaa";
    let t = tempfile::tempdir().expect("tempdir");
    let dst = t.path().join("dst");
    std::fs::create_dir(&dst).expect("mkdir");
    std::fs::write(dst.join("f"), b"old").expect("write");
    std::fs::write(dst.join(tmp), b"new").expect("write");
    journal(&dst, tmp, &["go"]);
    // All three names taken: which entry belongs where is not known.
    std::fs::write(dst.join(format!("{tmp}.swap")), b"third").expect("write");
    let before = names(&dst);
    let e = Linker::new(LinkOptions::default())
        .recover(&dst)
        .expect_err("cannot settle");
    println!("{e}");
    assert_eq!(names(&dst), before, "nothing removed, the journal kept");
    assert_eq!(text(&dst.join("f")), "old");

    // A journal a merge on Linux or macOS left (another encoding of names): refused, kept,
    // and no merge runs over it.
    let t = tempfile::tempdir().expect("tempdir");
    let (src, dst) = merge_pair(t.path());
    std::fs::write(dst.join(".cowtree-txn.7.00000000000000bb"), b"go\n").expect("write");
    let before = contents(&dst);
    let e = Linker::new(LinkOptions {
        on_existing: OnExisting::Overwrite,
        ..LinkOptions::default()
    })
    .link_tree(&src, &dst)
    .expect_err("a unix journal");
    println!("{e}");
    assert!(e.to_string().contains(".cowtree-txn.7."), "{e}");
    assert_eq!(contents(&dst), before);
}

#[test]
fn what_windows_cannot_do_is_refused_before_anything_is_written() {
    let t = tempfile::tempdir().expect("tempdir");
    let src = t.path().join("src");
    std::fs::create_dir(&src).expect("mkdir");
    std::fs::write(src.join("f"), b"data").expect("write");
    let dst = t.path().join("dst");
    let asks = [
        LinkOptions {
            whole_tree: true,
            ..LinkOptions::default()
        },
        LinkOptions {
            mode: LinkMode::Symlink,
            ..LinkOptions::default()
        },
        LinkOptions {
            preserve: Preserve {
                ownership: true,
                ..Preserve::default()
            },
            ..LinkOptions::default()
        },
        LinkOptions {
            preserve: Preserve::ALL,
            ..LinkOptions::default()
        },
    ];
    for opts in asks {
        let e = Linker::new(opts.clone())
            .link_tree(&src, &dst)
            .expect_err("refused");
        assert!(matches!(e, LinkError::Unsupported(_)), "{opts:?}: {e}");
        assert!(e.to_string().contains("not available on windows"), "{e}");
        assert!(!dst.exists());
    }
    assert_eq!(names(t.path()), ["src"]);
}

#[test]
fn a_source_name_windows_cannot_hold_is_refused_and_no_destination_appears() {
    let t = tempfile::tempdir().expect("tempdir");
    let src = t.path().join("src");
    std::fs::create_dir_all(src.join("ok")).expect("mkdir");
    std::fs::write(src.join("ok/fine.txt"), b"fine").expect("write");
    // A device name and a trailing dot: only a `\\?\` path makes these on Windows.
    let mut made = Vec::new();
    for bad in ["aux", "trailing."] {
        let mut verbatim = std::ffi::OsString::from(r"\\?\");
        verbatim.push(src.join("ok").join(bad).as_os_str());
        let listed = std::fs::write(PathBuf::from(&verbatim), b"x").is_ok()
            && names(&src.join("ok")).iter().any(|n| n == bad);
        if listed {
            made.push(bad);
        } else {
            let _ = std::fs::remove_file(PathBuf::from(&verbatim));
        }
    }
    if made.is_empty() {
        println!("NOT RUN: this Windows made no entry named \"aux\" or \"trailing.\"");
        return;
    }
    let dst = t.path().join("dst");
    let e = Linker::new(LinkOptions::default())
        .link_tree(&src, &dst)
        .expect_err("a name Windows cannot hold");
    println!("{made:?}: {e}");
    let text = e.to_string();
    assert!(
        made.iter().any(|n| text.contains(n)),
        "the name is in {text}"
    );
    assert!(e.destination_unchanged());
    assert!(!dst.exists());
    assert_eq!(names(t.path()), ["src"], "no staging left");
}
