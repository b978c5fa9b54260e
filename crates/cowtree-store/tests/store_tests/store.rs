//! The store on real mounts: round trips, sharing, isolation, fallbacks, damage.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};

use cowtree_fs::extents::extent_summary;
use cowtree_store::checkout::{CheckoutMode, CheckoutOptions, checkout};
use cowtree_store::ingest::snapshot_dir;
use cowtree_store::{Hash, Store};
use cowtree_testutil::{Fs, pattern, scratch};

/// Everything a round trip must keep: kind, executable bit, content or link target.
#[derive(Debug, PartialEq, Eq)]
enum Node {
    File { exec: bool, data: Vec<u8> },
    Link(Vec<u8>),
    Dir,
}

fn fingerprint(root: &Path) -> BTreeMap<Vec<u8>, Node> {
    let mut out = BTreeMap::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        for e in fs::read_dir(root.join(&rel)).unwrap() {
            let e = e.unwrap();
            let r = rel.join(e.file_name());
            let meta = fs::symlink_metadata(e.path()).unwrap();
            let key = r.as_os_str().as_bytes().to_vec();
            if meta.file_type().is_symlink() {
                let t = fs::read_link(e.path()).unwrap();
                out.insert(key, Node::Link(t.as_os_str().as_bytes().to_vec()));
            } else if meta.is_dir() {
                out.insert(key, Node::Dir);
                stack.push(r);
            } else {
                let exec = meta.permissions().mode() & 0o111 != 0;
                out.insert(
                    key,
                    Node::File {
                        exec,
                        data: fs::read(e.path()).unwrap(),
                    },
                );
            }
        }
    }
    out
}

/// A tree with every kind the manifest records, including a non-UTF-8 name and a big file.
fn make_tree(root: &Path) {
    fs::create_dir_all(root.join("src/deep/er")).unwrap();
    fs::create_dir_all(root.join("empty/nested-empty")).unwrap();
    fs::write(root.join("README"), b"hello\n").unwrap();
    fs::write(root.join("src/deep/er/data.bin"), pattern(256 * 1024, 7)).unwrap();
    fs::write(root.join("src/zero"), b"").unwrap();
    fs::write(root.join("src/dup1"), b"same").unwrap();
    fs::write(root.join("src/dup2"), b"same").unwrap();
    let run = root.join("src/run.sh");
    fs::write(&run, b"#!/bin/sh\necho hi\n").unwrap();
    fs::set_permissions(&run, fs::Permissions::from_mode(0o755)).unwrap();
    symlink("../README", root.join("src/link")).unwrap();
    symlink("/nonexistent/absolute", root.join("dangling")).unwrap();
    let odd = OsStr::from_bytes(b"name-\xff\xfe");
    fs::write(root.join(odd), b"non-utf8").unwrap();
    fs::create_dir(root.join(OsStr::from_bytes(b"dir-\xc3"))).unwrap();
}

fn opts(mode: CheckoutMode, strict: bool) -> CheckoutOptions {
    CheckoutOptions {
        mode,
        strict,
        preserve: cowtree_store::Preserve::NONE,
    }
}

fn no_warn(w: &str) {
    panic!("unexpected warning: {w}");
}

#[test]
fn round_trip_on_cow_filesystems_equals_the_source_and_clones_every_file() {
    for fsys in Fs::COW {
        let Some(dir) = scratch(fsys) else { continue };
        let src = dir.path().join("src");
        make_tree(&src);
        let store = Store::open(&dir.path().join("store")).unwrap();
        let r = snapshot_dir(&store, &src, Some("v1")).unwrap();
        assert_eq!(r.files, 7, "{fsys:?}");
        assert_eq!(r.new_blobs, 6, "{fsys:?}: dup1 and dup2 share a blob");
        assert_eq!(r.copied_bytes, 0, "{fsys:?}: ingest must clone on CoW");
        let dst = dir.path().join("wt");
        let c = checkout(
            &store,
            &r.id,
            &dst,
            opts(CheckoutMode::Auto, true),
            &no_warn,
        )
        .unwrap();
        assert_eq!(fingerprint(&dst), fingerprint(&src), "{fsys:?}");
        assert_eq!((c.files, c.cloned, c.copied), (7, 7, 0), "{fsys:?}");
        assert_eq!(c.symlinks, 2);
        assert!(c.fallbacks.is_empty());
        let mode = |p: &str| fs::metadata(dst.join(p)).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode("README"), 0o644);
        assert_eq!(mode("src/run.sh"), 0o755);
        // Nothing is left beside the destination but the destination.
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 3, "{fsys:?}: {names:?}");
    }
}

#[test]
fn checked_out_files_share_extents_with_their_blobs() {
    for fsys in Fs::COW {
        let Some(dir) = scratch(fsys) else { continue };
        let src = dir.path().join("src");
        fs::create_dir(&src).unwrap();
        let data = pattern(1024 * 1024, 3);
        fs::write(src.join("big"), &data).unwrap();
        let store = Store::open(&dir.path().join("store")).unwrap();
        let r = snapshot_dir(&store, &src, None).unwrap();
        let dst = dir.path().join("wt");
        checkout(
            &store,
            &r.id,
            &dst,
            opts(CheckoutMode::Clone, true),
            &no_warn,
        )
        .unwrap();
        let blob = store.blob_path(&Hash::from_bytes(*blake3::hash(&data).as_bytes()));
        assert!(extent_summary(&blob).unwrap().fully_shared(), "{fsys:?}");
        assert!(
            extent_summary(&dst.join("big")).unwrap().fully_shared(),
            "{fsys:?}"
        );
        let mode = fs::metadata(&blob).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o444, "{fsys:?}: blobs are read-only");
    }
}

#[test]
fn a_sparse_file_keeps_its_holes_in_its_blob_and_its_checkout_where_nothing_can_clone() {
    use std::os::unix::fs::{FileExt, MetadataExt};
    let Some(dir) = scratch(Fs::NoCow) else {
        return;
    };
    let src = dir.path().join("src");
    fs::create_dir(&src).unwrap();
    // 8 KiB of data, a 1 MiB hole, 8 KiB of data, a 10 MiB hole.
    let (a, b) = (pattern(8192, 1), pattern(8192, 2));
    let len = 8192 + (1 << 20) + 8192 + (10 << 20);
    let f = fs::File::create(src.join("sparse")).unwrap();
    f.write_all_at(&a, 0).unwrap();
    f.write_all_at(&b, 8192 + (1 << 20)).unwrap();
    f.set_len(len).unwrap();
    f.sync_all().unwrap();
    let mut data = vec![0u8; len as usize];
    data[..8192].copy_from_slice(&a);
    data[8192 + (1 << 20)..][..8192].copy_from_slice(&b);
    let src_blocks = fs::metadata(src.join("sparse")).unwrap().blocks();
    assert!(src_blocks < len / 512, "the source is not sparse");

    let store = Store::open(&dir.path().join("store")).unwrap();
    let r = snapshot_dir(&store, &src, None).unwrap();
    assert_eq!(r.copied_bytes, len, "ingest copies where nothing clones");
    let blob = store.blob_path(&Hash::from_bytes(*blake3::hash(&data).as_bytes()));
    assert!(fs::read(&blob).unwrap() == data, "the blob's bytes");
    let blob_blocks = fs::metadata(&blob).unwrap().blocks();
    assert!(
        blob_blocks <= src_blocks,
        "blob: {blob_blocks} blocks, source {src_blocks}"
    );

    for mode in [CheckoutMode::Auto, CheckoutMode::Copy] {
        let dst = dir.path().join(format!("wt-{mode:?}"));
        let c = checkout(&store, &r.id, &dst, opts(mode, false), &no_warn).unwrap();
        assert_eq!((c.files, c.copied), (1, 1), "{mode:?}");
        let got = dst.join("sparse");
        assert!(fs::read(&got).unwrap() == data, "{mode:?}: the bytes");
        let blocks = fs::metadata(&got).unwrap().blocks();
        assert!(
            blocks <= src_blocks,
            "{mode:?}: {blocks} blocks, source {src_blocks}"
        );
    }
}

#[test]
fn writing_or_chmod_in_one_worktree_changes_neither_blobs_nor_another_worktree() {
    for fsys in Fs::COW {
        let Some(dir) = scratch(fsys) else { continue };
        let src = dir.path().join("src");
        make_tree(&src);
        let store = Store::open(&dir.path().join("store")).unwrap();
        let r = snapshot_dir(&store, &src, None).unwrap();
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        checkout(&store, &r.id, &a, opts(CheckoutMode::Auto, true), &no_warn).unwrap();
        checkout(&store, &r.id, &b, opts(CheckoutMode::Auto, true), &no_warn).unwrap();
        let before_b = fingerprint(&b);
        let big = a.join("src/deep/er/data.bin");
        let mut f = fs::OpenOptions::new().write(true).open(&big).unwrap();
        std::io::Write::write_all(&mut f, b"CHANGED").unwrap();
        drop(f);
        fs::set_permissions(a.join("README"), fs::Permissions::from_mode(0o777)).unwrap();
        fs::write(a.join("src/dup1"), b"different").unwrap();
        assert_eq!(fingerprint(&b), before_b, "{fsys:?}");
        assert_eq!(fingerprint(&src), before_b, "{fsys:?}");
        let v = cowtree_store::verify::verify(&store).unwrap();
        assert!(v.problems.is_empty(), "{fsys:?}: {:?}", v.problems);
        let readme = store.blob_path(&Hash::from_bytes(*blake3::hash(b"hello\n").as_bytes()));
        assert_eq!(
            fs::metadata(readme).unwrap().permissions().mode() & 0o777,
            0o444
        );
    }
}

#[test]
fn same_tree_gives_same_id_and_a_changed_bit_does_not() {
    let Some(dir) = scratch(Fs::Xfs) else { return };
    let store = Store::open(&dir.path().join("store")).unwrap();
    let (one, two) = (dir.path().join("one"), dir.path().join("two"));
    make_tree(&one);
    std::thread::sleep(std::time::Duration::from_millis(20));
    make_tree(&two);
    let a = snapshot_dir(&store, &one, None).unwrap();
    let b = snapshot_dir(&store, &two, None).unwrap();
    assert_eq!(a.id, b.id);
    assert_eq!(b.new_blobs, 0);
    fs::set_permissions(two.join("README"), fs::Permissions::from_mode(0o744)).unwrap();
    let c = snapshot_dir(&store, &two, None).unwrap();
    assert_ne!(a.id, c.id, "an executable bit is part of the tree");
}

#[test]
fn store_on_a_filesystem_without_reflink_works_by_copying() {
    for fsys in Fs::NO_COW {
        let Some(dir) = scratch(fsys) else { continue };
        let src = dir.path().join("src");
        make_tree(&src);
        let store = Store::open(&dir.path().join("store")).unwrap();
        let r = snapshot_dir(&store, &src, None).unwrap();
        assert_eq!(r.cloned_bytes, 0, "{fsys:?}");
        assert_eq!(r.copied_bytes, r.bytes, "{fsys:?}");
        let dst = dir.path().join("wt");
        let c = checkout(
            &store,
            &r.id,
            &dst,
            opts(CheckoutMode::Auto, false),
            &no_warn,
        )
        .unwrap();
        assert_eq!(fingerprint(&dst), fingerprint(&src), "{fsys:?}");
        assert_eq!((c.cloned, c.copied), (0, 7), "{fsys:?}");
        assert_eq!(
            c.fallbacks,
            vec![("filesystem-cannot-reflink".to_string(), 7)],
            "{fsys:?}"
        );
        // --strict refuses the fallback and leaves nothing behind.
        let dst2 = dir.path().join("wt2");
        let err = checkout(
            &store,
            &r.id,
            &dst2,
            opts(CheckoutMode::Auto, true),
            &no_warn,
        )
        .unwrap_err();
        assert!(
            matches!(err, cowtree_store::Error::Strict(_)),
            "{fsys:?}: {err}"
        );
        assert!(!dst2.exists());
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 3, "{fsys:?}");
    }
}

#[test]
fn missing_blob_at_checkout_names_blob_and_path_and_removes_staging() {
    let Some(dir) = scratch(Fs::Xfs) else { return };
    let src = dir.path().join("src");
    make_tree(&src);
    let store = Store::open(&dir.path().join("store")).unwrap();
    let r = snapshot_dir(&store, &src, None).unwrap();
    let hash = Hash::from_bytes(*blake3::hash(b"hello\n").as_bytes());
    fs::remove_file(store.blob_path(&hash)).unwrap();
    let out = dir.path().join("out");
    fs::create_dir(&out).unwrap();
    let dst = out.join("wt");
    let err = checkout(
        &store,
        &r.id,
        &dst,
        opts(CheckoutMode::Auto, false),
        &no_warn,
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains(&hash.to_hex()), "{err}");
    assert!(err.contains("\"README\""), "{err}");
    assert_eq!(
        fs::read_dir(&out).unwrap().count(),
        0,
        "staging left behind"
    );
    let v = cowtree_store::verify::verify(&store).unwrap();
    assert!(
        v.problems.iter().any(|p| p.kind == "missing-blob"),
        "{:?}",
        v.problems
    );
}

#[test]
fn verify_names_the_entry_of_each_missing_or_mis_sized_blob_and_nothing_of_a_bad_snapshot() {
    let Some(dir) = scratch(Fs::Xfs) else { return };
    let src = dir.path().join("src");
    make_tree(&src);
    let store = Store::open(&dir.path().join("store")).unwrap();
    let id = snapshot_dir(&store, &src, None).unwrap().id;
    assert!(
        cowtree_store::verify::verify(&store)
            .unwrap()
            .problems
            .is_empty()
    );
    // README's blob gone; dup1's and dup2's ("same") one byte longer.
    let hello = Hash::of(b"hello\n");
    fs::remove_file(store.blob_path(&hello)).unwrap();
    let same = store.blob_path(&Hash::of(b"same"));
    fs::set_permissions(&same, fs::Permissions::from_mode(0o644)).unwrap();
    fs::write(&same, b"same!").unwrap();
    fs::set_permissions(&same, fs::Permissions::from_mode(0o444)).unwrap();
    // A valid manifest under a name that is not its hash, naming a blob no store has: refused
    // as a bad snapshot alone (its entries' blobs are not reported).
    let stray = cowtree_store::Manifest::new(vec![cowtree_store::Entry::blob(
        b"stray-entry".to_vec(),
        false,
        3,
        Hash::of(b"not in the store"),
    )])
    .unwrap();
    let fake = Hash::of(b"a name");
    fs::write(
        store.root().join("snapshots").join(fake.to_hex()),
        stray.encode(),
    )
    .unwrap();

    let v = cowtree_store::verify::verify(&store).unwrap();
    let of = |kind: &str| -> Vec<&cowtree_store::verify::Problem> {
        v.problems.iter().filter(|p| p.kind == kind).collect()
    };
    let missing = of("missing-blob");
    assert_eq!(missing.len(), 1, "{:?}", v.problems);
    assert!(
        missing[0].subject.contains(&hello.to_hex()[2..]),
        "{missing:?}"
    );
    assert!(missing[0].message.contains("\"README\""), "{missing:?}");
    assert!(missing[0].message.contains(&id.to_hex()), "{missing:?}");
    // The blob is shared: each entry that names it.
    let sized = of("blob-size");
    assert_eq!(sized.len(), 2, "{:?}", v.problems);
    for (p, entry) in sized.iter().zip(["\"src/dup1\"", "\"src/dup2\""]) {
        assert!(p.message.contains(entry), "{sized:?}");
        assert!(
            p.message.contains("expects 4 bytes, the blob has 5"),
            "{sized:?}"
        );
    }
    let bad = of("bad-snapshot");
    assert_eq!(bad.len(), 1, "{:?}", v.problems);
    assert_eq!(bad[0].subject, fake.to_hex());
    assert!(
        !format!("{:?}", v.problems).contains("stray-entry"),
        "{:?}",
        v.problems
    );
}

#[test]
fn an_open_snapshot_reads_the_same_entries_twice_though_removed_and_refuses_foreign_bytes() {
    let Some(dir) = scratch(Fs::NoCow) else {
        return;
    };
    let src = dir.path().join("src");
    make_tree(&src);
    let store = Store::open(&dir.path().join("store")).unwrap();
    let id = snapshot_dir(&store, &src, None).unwrap().id;
    let m = store.load(&id).unwrap();
    let snap = store.open_snapshot(&id).unwrap();
    store.remove_snapshot(&id).unwrap();
    assert!(!store.has_snapshot(&id).unwrap());
    for _ in 0..2 {
        let mut seen = Vec::new();
        snap.each_entry(|e| seen.push(e.to_entry())).unwrap();
        assert_eq!(seen, m.entries());
        assert_eq!(snap.file_totals().unwrap(), (m.files(), m.bytes()));
    }
    assert!(m.files() > 1 && m.bytes() > 0 && m.entries().len() as u64 > m.files());
    // Reads from several threads at once do not mix (each reads at offsets of its own).
    std::thread::scope(|sc| {
        for _ in 0..4 {
            sc.spawn(|| {
                for _ in 0..50 {
                    assert_eq!(snap.file_totals().unwrap(), (m.files(), m.bytes()));
                }
            });
        }
    });
    // The file of another snapshot under this id's name: each read refuses it as bytes that
    // are not the snapshot's, naming the file.
    let other = cowtree_store::Manifest::new(vec![cowtree_store::Entry::dir(b"d".to_vec())])
        .unwrap()
        .encode();
    let path = store.root().join("snapshots").join(id.to_hex());
    fs::write(&path, &other).unwrap();
    let snap = store.open_snapshot(&id).unwrap();
    for _ in 0..2 {
        let err = snap.file_totals().unwrap_err().to_string();
        assert!(err.contains(&path.display().to_string()), "{err}");
        let err = snap.each_entry(|_| {}).unwrap_err().to_string();
        assert!(err.contains(&path.display().to_string()), "{err}");
    }
    // Not a regular file: refused when opened.
    fs::remove_file(&path).unwrap();
    fs::create_dir(&path).unwrap();
    let err = store.open_snapshot(&id).unwrap_err().to_string();
    assert!(err.contains("not a regular file"), "{err}");
}

#[test]
fn corrupted_blob_is_reported_by_verify() {
    let Some(dir) = scratch(Fs::Btrfs) else {
        return;
    };
    let src = dir.path().join("src");
    make_tree(&src);
    let store = Store::open(&dir.path().join("store")).unwrap();
    snapshot_dir(&store, &src, None).unwrap();
    assert!(
        cowtree_store::verify::verify(&store)
            .unwrap()
            .problems
            .is_empty()
    );
    let hash = Hash::from_bytes(*blake3::hash(b"same").as_bytes());
    let blob = store.blob_path(&hash);
    fs::set_permissions(&blob, fs::Permissions::from_mode(0o644)).unwrap();
    fs::write(&blob, b"evil").unwrap();
    fs::set_permissions(&blob, fs::Permissions::from_mode(0o444)).unwrap();
    let v = cowtree_store::verify::verify(&store).unwrap();
    assert_eq!(v.problems.len(), 1, "{:?}", v.problems);
    assert_eq!(v.problems[0].kind, "corrupt-blob");
    assert!(v.problems[0].subject.contains(&hash.to_hex()[2..]));
}

#[test]
fn special_files_are_refused_naming_the_path() {
    let Some(dir) = scratch(Fs::Xfs) else { return };
    let src = dir.path().join("src");
    fs::create_dir(&src).unwrap();
    fs::write(src.join("ok"), b"x").unwrap();
    rustix::fs::mknodat(
        rustix::fs::CWD,
        src.join("pipe"),
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o644),
        0,
    )
    .unwrap();
    let store = Store::open(&dir.path().join("store")).unwrap();
    let err = snapshot_dir(&store, &src, None).unwrap_err().to_string();
    assert!(err.contains("pipe") && err.contains("fifo"), "{err}");
    assert!(store.snapshot_ids().unwrap().is_empty());
}

#[test]
fn a_manifest_file_that_is_not_its_snapshots_bytes_is_refused_as_such_naming_it() {
    let Some(dir) = scratch(Fs::NoCow) else {
        return;
    };
    let store = Store::open(&dir.path().join("store")).unwrap();
    let snap = |name: &str| {
        let src = dir.path().join(name);
        fs::create_dir_all(src.join("d")).unwrap();
        fs::write(src.join("d/f"), name).unwrap();
        snapshot_dir(&store, &src, None).unwrap().id
    };
    let (id, other) = (snap("one"), snap("two"));
    let file = dir.path().join("store/snapshots").join(id.to_hex());
    let own_bytes = fs::read(&file).unwrap();
    let other_bytes = fs::read(dir.path().join("store/snapshots").join(other.to_hex())).unwrap();
    let replace = |make: &dyn Fn(&Path)| {
        match fs::symlink_metadata(&file) {
            Ok(m) if m.is_dir() => fs::remove_dir(&file).unwrap(),
            Ok(_) => fs::remove_file(&file).unwrap(),
            Err(_) => {}
        }
        make(&file);
    };
    let corrupt = |what: &str| {
        let err = store.load(&id).unwrap_err();
        assert!(
            matches!(
                &err,
                cowtree_store::Error::Corrupt(cowtree_store::error::Corrupt::SnapshotBytes { .. })
            ),
            "{what}: {err:?}"
        );
        assert!(
            err.to_string().contains(&file.display().to_string()),
            "{what}: {err}"
        );
    };
    let io = |what: &str| {
        let err = store.load(&id).unwrap_err();
        assert!(
            matches!(&err, cowtree_store::Error::IoAt { .. }),
            "{what}: {err:?}"
        );
        assert!(
            err.to_string().contains(&file.display().to_string()),
            "{what}: {err}"
        );
    };
    // Another snapshot's manifest: it decodes, but it is not this snapshot.
    replace(&|p| fs::write(p, &other_bytes).unwrap());
    corrupt("another manifest");
    // Bytes that do not decode either: still the bytes that are wrong, not a decode error.
    replace(&|p| fs::write(p, &other_bytes[..other_bytes.len() - 3]).unwrap());
    corrupt("a truncated manifest");
    replace(&|p| fs::write(p, b"not a manifest").unwrap());
    corrupt("not a manifest");
    replace(&|p| fs::write(p, b"").unwrap());
    corrupt("an empty file");
    // Not a file: a FIFO (read at once, never waited on), a directory, a symlink to the
    // right bytes (never followed).
    replace(&|p| {
        rustix::fs::mknodat(
            rustix::fs::CWD,
            p,
            rustix::fs::FileType::Fifo,
            rustix::fs::Mode::from_raw_mode(0o644),
            0,
        )
        .unwrap()
    });
    io("a FIFO");
    replace(&|p| fs::create_dir(p).unwrap());
    io("a directory");
    let right = dir.path().join("right-bytes");
    fs::write(&right, &own_bytes).unwrap();
    replace(&|p| symlink(&right, p).unwrap());
    io("a symlink");
    // Gone: the snapshot does not exist.
    replace(&|_| {});
    assert!(
        matches!(store.load(&id), Err(cowtree_store::Error::NotFound(_))),
        "{:?}",
        store.load(&id)
    );
    // Its own bytes back: it loads; and the other snapshot loads.
    replace(&|p| fs::write(p, &own_bytes).unwrap());
    assert_eq!(store.load(&id).unwrap().entries().len(), 1);
    assert_eq!(store.load(&other).unwrap().entries().len(), 1);
}

#[test]
fn store_of_unknown_version_or_foreign_directory_is_refused() {
    let Some(dir) = scratch(Fs::NoCow) else {
        return;
    };
    let root = dir.path().join("store");
    Store::open(&root).unwrap();
    fs::write(root.join("format"), "cowtree-store 9\n").unwrap();
    let err = Store::open(&root).unwrap_err().to_string();
    assert!(err.contains("version 9") && err.contains("store"), "{err}");
    let foreign = dir.path().join("foreign");
    fs::create_dir(&foreign).unwrap();
    fs::write(foreign.join("precious"), b"x").unwrap();
    let err = Store::open(&foreign).unwrap_err().to_string();
    assert!(err.contains("not a cowtree store"), "{err}");
    assert_eq!(fs::read_dir(&foreign).unwrap().count(), 1);
}

#[test]
fn ambiguous_prefix_is_an_error_listing_the_candidates() {
    let Some(dir) = scratch(Fs::NoCow) else {
        return;
    };
    let store = Store::open(&dir.path().join("store")).unwrap();
    let a = format!("abcdef01{}", "1".repeat(56));
    let b = format!("abcdef01{}", "2".repeat(56));
    for id in [&a, &b] {
        fs::write(dir.path().join("store/snapshots").join(id), b"").unwrap();
    }
    let err = cowtree_store::refs::resolve(&store, "abcdef01")
        .unwrap_err()
        .to_string();
    assert!(err.contains(&a) && err.contains(&b), "{err}");
    assert_eq!(
        cowtree_store::refs::resolve(&store, "abcdef011").unwrap(),
        Hash::from_hex(&a).unwrap()
    );
    let short = cowtree_store::refs::resolve(&store, "abcdef0")
        .unwrap_err()
        .to_string();
    assert!(short.contains("at least 8"), "{short}");
}

#[test]
fn a_large_flat_directory_split_among_workers_round_trips() {
    let Some(dir) = scratch(Fs::Xfs) else { return };
    let src = dir.path().join("src");
    fs::create_dir(&src).unwrap();
    for i in 0..700 {
        fs::write(src.join(format!("f{i:04}")), pattern(300 + i, i as u64)).unwrap();
    }
    let store = Store::open(&dir.path().join("store")).unwrap();
    let r = snapshot_dir(&store, &src, None).unwrap();
    assert_eq!((r.files, r.new_blobs), (700, 700));
    let again = snapshot_dir(&store, &src, None).unwrap();
    assert_eq!(again.id, r.id);
    assert_eq!(
        (again.new_blobs, again.cloned_bytes, again.copied_bytes),
        (0, 0, 0),
        "content already in the store is neither cloned nor copied again"
    );
    let dst = dir.path().join("wt");
    checkout(
        &store,
        &r.id,
        &dst,
        opts(CheckoutMode::Auto, true),
        &no_warn,
    )
    .unwrap();
    assert_eq!(fingerprint(&dst), fingerprint(&src));
}

#[test]
fn a_store_inside_the_recorded_tree_is_left_out() {
    let Some(dir) = scratch(Fs::Xfs) else { return };
    let src = dir.path().join("home");
    fs::create_dir_all(src.join("docs")).unwrap();
    fs::write(src.join("docs/a"), b"a").unwrap();
    let store = Store::open(&src.join(".local/share/cowtree")).unwrap();
    let r = snapshot_dir(&store, &src, None).unwrap();
    let m = store.load(&r.id).unwrap();
    let paths: Vec<&[u8]> = m.entries().iter().map(|e| e.path.as_slice()).collect();
    assert_eq!(
        paths,
        vec![&b"docs/a"[..]],
        "the store must not record itself"
    );
    let err = snapshot_dir(&store, store.root(), None)
        .unwrap_err()
        .to_string();
    assert!(err.contains("store itself"), "{err}");
}

#[test]
fn btrfs_subvolumes_of_one_filesystem_are_not_treated_as_cross_device() {
    let Some(dir) = scratch(Fs::Btrfs) else {
        return;
    };
    let (a, b) = (dir.path().join("sub-a"), dir.path().join("sub-b"));
    for sub in [&a, &b] {
        let st = std::process::Command::new("btrfs")
            .args(["subvolume", "create"])
            .arg(sub)
            .output()
            .expect("btrfs-progs is installed with the btrfs mount");
        assert!(st.status.success(), "{st:?}");
    }
    let src = a.join("src");
    make_tree(&src);
    let store = Store::open(&a.join("store")).unwrap();
    let r = snapshot_dir(&store, &src, None).unwrap();
    let dst = b.join("wt");
    let c = checkout(
        &store,
        &r.id,
        &dst,
        opts(CheckoutMode::Auto, true),
        &no_warn,
    )
    .unwrap();
    assert!(!c.cross_device);
    assert_eq!((c.cloned, c.copied), (7, 0));
    assert_eq!(fingerprint(&dst), fingerprint(&src));
    for sub in [&a, &b] {
        let _ = std::process::Command::new("btrfs")
            .args(["subvolume", "delete"])
            .arg(sub)
            .output();
    }
}

#[test]
fn checkout_mode_copy_copies_without_reporting_fallbacks() {
    let Some(dir) = scratch(Fs::Xfs) else { return };
    let src = dir.path().join("src");
    fs::create_dir(&src).unwrap();
    fs::write(src.join("big"), pattern(256 * 1024, 9)).unwrap();
    let store = Store::open(&dir.path().join("store")).unwrap();
    let r = snapshot_dir(&store, &src, None).unwrap();
    let dst = dir.path().join("wt");
    let c = checkout(
        &store,
        &r.id,
        &dst,
        opts(CheckoutMode::Copy, true),
        &no_warn,
    )
    .unwrap();
    assert_eq!((c.cloned, c.copied), (0, 1));
    assert!(c.fallbacks.is_empty());
    // No extent assertion: on XFS the kernel may satisfy copy_file_range by sharing extents
    // (see cowtree_fs::copy); what --mode copy promises is the method and the data.
    assert_eq!(fs::read(dst.join("big")).unwrap(), pattern(256 * 1024, 9));
}

#[test]
fn ingest_from_another_filesystem_copies_and_hashes_in_one_pass() {
    let (Some(a), Some(b)) = (scratch(Fs::Xfs), scratch(Fs::Xfs2)) else {
        return;
    };
    let src = a.path().join("src");
    make_tree(&src);
    let store = Store::open(&b.path().join("store")).unwrap();
    let r = snapshot_dir(&store, &src, None).unwrap();
    assert_eq!(r.cloned_bytes, 0);
    assert_eq!(r.copied_bytes, r.bytes);
    let dst = b.path().join("wt");
    let c = checkout(
        &store,
        &r.id,
        &dst,
        opts(CheckoutMode::Auto, true),
        &no_warn,
    )
    .unwrap();
    assert_eq!(
        (c.cloned, c.copied),
        (7, 0),
        "store and worktree share XFS2"
    );
    assert_eq!(fingerprint(&dst), fingerprint(&src));
    assert!(
        cowtree_store::verify::verify(&store)
            .unwrap()
            .problems
            .is_empty()
    );
}

#[test]
fn new_content_is_stored_once_read_only_sharing_extents_and_leaves_no_staging() {
    let Some(dir) = scratch(Fs::Xfs) else { return };
    let src = dir.path().join("src");
    fs::create_dir(&src).unwrap();
    // More files than the pre-hash warm-up, all new: ingest stops hashing sources first.
    let n = 300;
    for i in 0..n {
        fs::write(src.join(format!("f{i}")), pattern(16 * 1024, i)).unwrap();
    }
    let store = Store::open(&dir.path().join("store")).unwrap();
    // Two snapshots of the same new tree at once: for each blob one of them gives it its
    // name, the other finds the name taken and drops its staged clone.
    let (a, b) = std::thread::scope(|s| {
        let a = s.spawn(|| snapshot_dir(&store, &src, None).unwrap());
        let b = s.spawn(|| snapshot_dir(&store, &src, None).unwrap());
        (a.join().unwrap(), b.join().unwrap())
    });
    assert_eq!(a.id, b.id);
    assert_eq!(a.new_blobs + b.new_blobs, n);
    for i in 0..n {
        let data = pattern(16 * 1024, i);
        let blob = store.blob_path(&Hash::from_bytes(*blake3::hash(&data).as_bytes()));
        assert_eq!(fs::read(&blob).unwrap(), data);
        let mode = fs::metadata(&blob).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode, 0o444, "{}", blob.display());
        assert!(
            extent_summary(&blob).unwrap().fully_shared(),
            "{}",
            blob.display()
        );
    }
    assert_eq!(
        fs::read_dir(store.root().join("tmp")).unwrap().count(),
        0,
        "staging left in tmp/"
    );
}

/// The number of allocation groups of the XFS mounted at `mnt`, and the shift that gives an
/// inode's group from its number (an inode number is its group, then its block in the group,
/// then its slot in the block), from `xfs_info`'s geometry.
fn xfs_groups(mnt: &Path) -> (u64, u32) {
    // xfs_info lives in /usr/sbin, which a PATH may lack.
    let out = ["xfs_info", "/usr/sbin/xfs_info"]
        .iter()
        .find_map(|cmd| std::process::Command::new(cmd).arg(mnt).output().ok())
        .expect("xfs_info (xfsprogs, which made the XFS test mount) cannot be run");
    assert!(out.status.success(), "xfs_info {}: {out:?}", mnt.display());
    let text = String::from_utf8(out.stdout).unwrap();
    let field = |key: &str| -> u64 {
        let at = text
            .find(key)
            .unwrap_or_else(|| panic!("no {key} in {text}"))
            + key.len();
        let digits: String = text[at..]
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        digits.parse().unwrap()
    };
    // The first " bsize=" is the data section's (the naming and log sections come after).
    let (agcount, agblocks) = (field(" agcount="), field(" agsize="));
    let (bsize, isize) = (field(" bsize="), field(" isize="));
    let agblklog = u64::BITS - (agblocks - 1).leading_zeros();
    let inopblog = (bsize / isize).trailing_zeros();
    (agcount, agblklog + inopblog)
}

#[test]
fn a_snapshots_new_blobs_are_spread_over_xfs_allocation_groups() {
    // Each worker stages in a directory of its own, and XFS spreads new directories over its
    // allocation groups: the workers do not all queue on the lock of one group's inode table.
    let Some(dir) = scratch(Fs::Xfs) else { return };
    let (agcount, shift) = xfs_groups(&cowtree_testutil::mount(Fs::Xfs).unwrap());
    if agcount < 2 {
        println!("skipped: this XFS has {agcount} allocation group: nothing to spread over");
        return;
    }
    let src = dir.path().join("src");
    for d in 0..32 {
        fs::create_dir_all(src.join(format!("d{d}"))).unwrap();
        for f in 0..32 {
            let data = pattern(4096, d * 1000 + f + 1);
            fs::write(src.join(format!("d{d}/f{f}")), data).unwrap();
        }
    }
    let store = Store::open(&dir.path().join("store")).unwrap();
    let report = snapshot_dir(&store, &src, None).unwrap();
    assert_eq!(report.new_blobs, 32 * 32);
    let mut groups = std::collections::BTreeMap::<u64, usize>::new();
    for fan in fs::read_dir(store.root().join("blobs")).unwrap() {
        for blob in fs::read_dir(fan.unwrap().path()).unwrap() {
            let ino = std::os::unix::fs::MetadataExt::ino(&blob.unwrap().metadata().unwrap());
            *groups.entry(ino >> shift).or_default() += 1;
        }
    }
    assert_eq!(groups.values().sum::<usize>(), 32 * 32);
    assert!(
        groups.len() >= 2,
        "all new blobs in one allocation group: {groups:?}"
    );
}

#[test]
fn manifest_writer_records_what_save_records_and_nothing_when_refused() {
    use cowtree_store::manifest::{encode_blob, encode_dir, encode_symlink};
    use cowtree_store::{Entry, Kind, Manifest};
    let Some(t) = scratch(Fs::NoCow) else { return };
    let store = Store::open(&t.path().join("store")).unwrap();
    let h = Hash::of(b"x");
    let m = Manifest::new(vec![
        Entry::blob(b"a/b".to_vec(), false, 1, h),
        Entry::blob(b"a-b".to_vec(), true, 1, h),
        Entry::symlink(b"l".to_vec(), b"a/b".to_vec()),
        Entry::dir(b"z".to_vec()),
    ])
    .unwrap();
    let pieces: Vec<Vec<u8>> = m
        .entries()
        .iter()
        .map(|e| {
            let mut v = Vec::new();
            match (e.kind, e.hash(), &e.data) {
                (_, Some(h), _) => encode_blob(&mut v, &e.path, e.kind == Kind::Executable, 1, h),
                (Kind::Symlink, _, cowtree_store::manifest::Data::Target(t)) => {
                    encode_symlink(&mut v, &e.path, t)
                }
                _ => encode_dir(&mut v, &e.path),
            }
            v
        })
        .collect();
    let snapshots = || {
        fs::read_dir(t.path().join("store/snapshots"))
            .unwrap()
            .count()
    };
    let mut w = store.manifest_writer(4, "test").unwrap();
    for p in &pieces {
        w.push(p).unwrap();
    }
    let id = w.finish().unwrap();
    assert_eq!(id, m.id());
    assert_eq!(store.load(&id).unwrap(), m);
    assert_eq!(snapshots(), 1);
    // Again: the same snapshot, nothing more in snapshots/.
    let mut w = store.manifest_writer(4, "test").unwrap();
    for p in &pieces {
        w.push(p).unwrap();
    }
    assert_eq!(w.finish().unwrap(), id);
    assert_eq!(snapshots(), 1);
    // Out of order, too few, too many: refused, and no file is left behind.
    let mut w = store.manifest_writer(4, "test").unwrap();
    w.push(&pieces[1]).unwrap();
    let err = w.push(&pieces[0]).unwrap_err();
    assert!(err.to_string().contains("not sorted"), "{err}");
    drop(w);
    let mut w = store.manifest_writer(4, "test").unwrap();
    w.push(&pieces[0]).unwrap();
    assert!(w.finish().is_err());
    let mut w = store.manifest_writer(1, "test").unwrap();
    w.push(&pieces[0]).unwrap();
    assert!(w.push(&pieces[1]).is_err());
    drop(w);
    // Two entries in one piece are refused too.
    let mut w = store.manifest_writer(2, "test").unwrap();
    assert!(
        w.push(&[pieces[0].clone(), pieces[1].clone()].concat())
            .is_err()
    );
    drop(w);
    assert_eq!(snapshots(), 1);
}

#[test]
fn manifest_writer_of_many_chunks_synced_as_it_goes_records_what_save_records() {
    // A manifest of several write chunks is synced by a second thread while it is written;
    // the result is the same file, and a refusal after that thread started leaves nothing.
    use cowtree_store::manifest::encode_blob;
    use cowtree_store::{Entry, Manifest};
    for fs_kind in [Fs::Xfs, Fs::NoCow] {
        let Some(t) = scratch(fs_kind) else { continue };
        let store = Store::open(&t.path().join("store")).unwrap();
        let entries: Vec<Entry> = (0..40_000u32)
            .map(|i| {
                let path = format!("dir-{:03}/some/deeper/path/file-{i:06}.txt", i / 1000);
                Entry::blob(
                    path.into_bytes(),
                    i % 7 == 0,
                    u64::from(i),
                    Hash::of(&i.to_le_bytes()),
                )
            })
            .collect();
        let m = Manifest::new(entries).unwrap();
        let pieces: Vec<Vec<u8>> = m
            .entries()
            .iter()
            .map(|e| {
                let mut v = Vec::new();
                let h = e.hash().unwrap();
                encode_blob(
                    &mut v,
                    &e.path,
                    e.kind == cowtree_store::Kind::Executable,
                    e.size(),
                    h,
                );
                v
            })
            .collect();
        let total: usize = pieces.iter().map(Vec::len).sum();
        assert!(total > 3 << 20, "only {total} bytes: fewer than 3 chunks");
        let names = |d: &str| -> Vec<String> {
            fs::read_dir(t.path().join("store").join(d))
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        };
        let n = pieces.len() as u64;
        let mut w = store.manifest_writer(n, "test").unwrap();
        for p in &pieces[..pieces.len() - 1] {
            w.push(p).unwrap();
        }
        // The first entry pushed again: out of order, refused. The writer then takes
        // nothing more, not even the entry that was missing, and names nothing.
        assert!(w.push(&pieces[0]).is_err());
        let err = w.push(&pieces[pieces.len() - 1]).unwrap_err();
        assert!(err.to_string().contains("not recorded"), "{err}");
        assert!(w.finish().is_err());
        assert_eq!(names("snapshots"), Vec::<String>::new(), "{fs_kind:?}");
        let mut w = store.manifest_writer(n, "test").unwrap();
        for p in &pieces {
            w.push(p).unwrap();
        }
        let id = w.finish().unwrap();
        assert_eq!(id, m.id(), "{fs_kind:?}");
        assert_eq!(store.load(&id).unwrap(), m, "{fs_kind:?}");
        assert_eq!(names("snapshots"), vec![id.to_hex()], "{fs_kind:?}");
        let on_disk = fs::read(t.path().join("store/snapshots").join(id.to_hex())).unwrap();
        assert_eq!(on_disk, m.encode(), "{fs_kind:?}");
    }
}

#[test]
fn snapshot_of_many_large_files_in_many_directories_does_not_panic() {
    // Hashing a large read hands halves of it to other workers; the waiting worker may run
    // another file's job on the same thread, which once re-borrowed the thread's read buffer
    // and panicked (in about half the rounds here, before the fix).
    let Some(t) = scratch(Fs::Xfs) else { return };
    let src = t.path().join("src");
    for d in 0..16 {
        fs::create_dir_all(src.join(format!("d{d}"))).unwrap();
        for i in 0..3 {
            let len = (2 << 20) + i * 4096 + d;
            fs::write(
                src.join(format!("d{d}/f{i}")),
                pattern(len, (d * 3 + i) as u64),
            )
            .unwrap();
        }
    }
    for round in 0..8 {
        let store = Store::open(&t.path().join(format!("store{round}"))).unwrap();
        let r = snapshot_dir(&store, &src, None).unwrap();
        assert_eq!(r.files, 48);
    }
}

#[test]
fn a_missing_or_non_directory_source_or_worktree_is_an_os_error_naming_the_path() {
    let Some(tmp) = scratch(Fs::Xfs) else { return };
    let store = Store::open(&tmp.path().join("store")).unwrap();
    let missing = tmp.path().join("missing");
    let file = tmp.path().join("file");
    fs::write(&file, b"x").unwrap();
    for (src, kind, words) in [
        (
            &missing,
            std::io::ErrorKind::NotFound,
            "No such file or directory",
        ),
        (&file, std::io::ErrorKind::NotADirectory, "Not a directory"),
    ] {
        let e = snapshot_dir(&store, src, None).unwrap_err();
        assert!(!e.is_not_found(), "{e}");
        assert_eq!(e.io_error().map(|e| e.kind()), Some(kind), "{e}");
        let msg = e.to_string();
        let want = format!("snapshot: open directory {}: {words}", src.display());
        assert!(msg.starts_with(&want), "{msg}");
    }
    let e = cowtree_store::worktree_records::register(&store, &file, &Hash::of(b"x")).unwrap_err();
    assert!(!e.is_not_found(), "{e}");
    assert_eq!(
        e.io_error().map(|e| e.kind()),
        Some(std::io::ErrorKind::NotADirectory),
        "{e}"
    );
    assert!(
        e.to_string()
            .starts_with(&format!("register worktree {}:", file.display())),
        "{e}"
    );
}
