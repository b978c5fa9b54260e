//! The unit tests of snapshotting a directory.

use std::ffi::OsStr;

use super::putter::{HASH_RAYON_FROM, PREFIX_READ_MAX, hash_prefix};
use super::*;

#[test]
fn a_big_directorys_chunks_keep_its_order_and_hold_no_more_than_its_names() {
    for n in [0, 1, 127, 128, 129, 256, 1000, 165_393] {
        let names: Vec<u32> = (0..n).collect();
        let got = chunks(names, FILE_CHUNK);
        assert_eq!(got.len(), (n as usize).div_ceil(FILE_CHUNK), "{n} names");
        assert!(got.iter().all(|c| !c.is_empty() && c.len() <= FILE_CHUNK));
        let flat: Vec<u32> = got.iter().flatten().copied().collect();
        assert_eq!(flat, (0..n).collect::<Vec<_>>(), "{n} names: order");
        // What the queued jobs keep allocated: about the names themselves (the old
        // split kept N²/256 of them for a directory of N names).
        let held: usize = got.iter().map(|c| c.capacity()).sum();
        assert!(held <= n as usize + FILE_CHUNK, "{n} names: {held} held");
    }
}

#[test]
fn a_directory_deeper_than_path_max_is_refused_before_the_files_beneath_it_are_stored() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(&tmp.path().join("store")).unwrap();
    let src = tmp.path().join("src");
    std::fs::create_dir(&src).unwrap();
    // 2100 levels of "a": the deepest directory's path is 4199 bytes (over PATH_MAX);
    // a file only in the deepest one.
    let mut d = Dir::open(&src).unwrap();
    for _ in 0..2100 {
        d = d.create_dir_open(OsStr::new("a"), 0o755).unwrap();
    }
    let fd = openat(
        &d,
        "bottom",
        OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL,
        Mode::from_raw_mode(0o644),
    )
    .unwrap();
    rustix::io::write(&fd, b"deep").unwrap();
    drop((fd, d));
    let err = snapshot_dir(&store, &src, None)
        .expect_err("refused")
        .to_string();
    assert!(err.contains("(limit 4096)"), "{err}");
    assert!(err.contains("invalid path"), "{err}");
    assert!(store.snapshot_ids().unwrap().is_empty());
    let mut stored = 0;
    let objects = tmp.path().join("store/blobs");
    for e in walkdir(&objects) {
        stored += usize::from(e.is_file());
    }
    assert_eq!(
        stored, 0,
        "nothing beneath the refused directory was stored"
    );
    let _ = std::process::Command::new("rm")
        .arg("-rf")
        .arg(&src)
        .status();
}

#[test]
fn hash_prefix_hashes_exactly_the_given_size_without_moving_the_offset() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = Dir::open(tmp.path()).unwrap();
    // Sizes around the single read's limit and the rayon threshold, and an empty file.
    for len in [
        0usize,
        1,
        4096,
        HASH_RAYON_FROM,
        PREFIX_READ_MAX + 3,
        3 * PREFIX_READ_MAX,
    ] {
        let bytes: Vec<u8> = (0..len).map(|i| (i * 7 + len) as u8).collect();
        let name = format!("f{len}");
        std::fs::write(tmp.path().join(&name), &bytes).unwrap();
        let fd = openat(&dir, name.as_str(), OFlags::RDONLY, Mode::empty()).unwrap();
        let size = bytes.len() as u64;
        assert_eq!(
            hash_prefix(&fd, size).unwrap(),
            Some(Hash::of(&bytes)),
            "{len} bytes"
        );
        // A prefix is hashed as such; a size past the end is refused.
        assert_eq!(
            hash_prefix(&fd, size / 2).unwrap(),
            Some(Hash::of(&bytes[..len / 2])),
            "half of {len} bytes"
        );
        assert_eq!(hash_prefix(&fd, size + 1).unwrap(), None, "{len} bytes + 1");
        let offset = rustix::fs::seek(&fd, rustix::fs::SeekFrom::Current(0)).unwrap();
        assert_eq!(offset, 0, "the descriptor's offset is not moved");
    }
}

#[test]
fn files_opened_ahead_are_recorded_in_turn_and_their_errors_named_in_turn() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(&tmp.path().join("store")).unwrap();
    let src = tmp.path().join("src");
    std::fs::create_dir(&src).unwrap();
    let content = |i: usize| format!("file {i} ").repeat(i * 100 + 1).into_bytes();
    for i in 0..8 {
        std::fs::write(src.join(format!("a{i}")), content(i)).unwrap();
    }
    let fifo = src.join("fifo");
    assert!(
        std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success()
    );
    let dir = Dir::open(&src).unwrap();
    let dev = cowtree_fs::sys::stat_dev(&dir.stat_self().unwrap());
    let staging = store.staging("ingest").unwrap();
    let put = Putter::new(&store, staging.dir());
    let slots = AtomicU32::new(1);
    let recorder = || Recorder {
        root_path: &src,
        store_id: (0, 0),
        put: &put,
        slots: &slots,
        nodes: Vec::new(),
        pieces: Vec::new(),
        skip_special: false,
    };
    let names = |list: &[&str]| -> Vec<OsString> { list.iter().map(OsString::from).collect() };
    let progress = Progress::default();
    // A name that vanished is skipped; the fifo (opened ahead of its turn, without
    // blocking) is refused under its own path, after every file before it was recorded
    // and before any after it.
    let mut r = recorder();
    let err = r
        .ingest_files(
            &dir,
            dev,
            0,
            b"sub",
            &names(&["a0", "gone", "a1", "a2", "fifo", "a3", "a4"]),
            &progress,
            || false,
        )
        .expect_err("the fifo is refused")
        .to_string();
    assert!(err.contains("sub/fifo"), "{err}");
    assert!(err.contains("other than a regular file"), "{err}");
    assert_eq!(r.pieces.len(), 1);
    assert_eq!(r.pieces[0].names(), [&b"a0"[..], b"a1", b"a2"]);
    // Every file, in order, each under its own name and content; fewer files than the
    // lookahead too.
    for list in [
        &["a0", "a1", "a2", "a3", "a4", "a5", "a6", "a7"][..],
        &["a5"],
        &["a6", "a7"],
    ] {
        let mut r = recorder();
        r.ingest_files(&dir, dev, 0, b"", &names(list), &progress, || false)
            .unwrap();
        let piece = &r.pieces[0];
        assert_eq!(piece.len(), list.len());
        for ((got, hash), name) in piece.names().into_iter().zip(piece.hashes()).zip(list) {
            assert_eq!(got, name.as_bytes());
            let i: usize = name[1..].parse().unwrap();
            assert_eq!(hash, Hash::of(&content(i)), "{name}");
            assert_eq!(
                std::fs::read(store.blob_path(&hash)).unwrap(),
                content(i),
                "{name}'s blob"
            );
        }
    }
}

#[test]
fn an_empty_store_is_not_searched_by_pre_hashing_and_a_filled_one_is() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(&tmp.path().join("store")).unwrap();
    let src = tmp.path().join("src");
    std::fs::create_dir(&src).unwrap();
    // Two files with the same content: the second finds the first's blob by its link.
    std::fs::write(src.join("a"), b"same").unwrap();
    std::fs::write(src.join("b"), b"same").unwrap();
    std::fs::write(src.join("c"), b"other").unwrap();
    let dir = Dir::open(&src).unwrap();
    let dev = cowtree_fs::sys::stat_dev(&dir.stat_self().unwrap());
    let staging = store.staging("ingest").unwrap();
    let put_all = |put: &Putter<'_>| -> Vec<Hash> {
        ["a", "b", "c"]
            .iter()
            .map(|n| put.put(&dir, dev, OsStr::new(n)).unwrap().unwrap().hash)
            .collect()
    };
    let put = Putter::new(&store, staging.dir());
    assert!(put.store_was_empty);
    let first = put_all(&put);
    assert_eq!(
        first,
        [Hash::of(b"same"), Hash::of(b"same"), Hash::of(b"other")]
    );
    assert_eq!(
        put.prehashed.load(Ordering::Relaxed),
        0,
        "nothing pre-hashed"
    );
    assert_eq!(put.new_blobs(), 2, "the duplicate was found by its link");
    // Once the store holds a snapshot, the next putter pre-hashes and finds every blob.
    let manifest = Manifest::new(vec![crate::manifest::Entry::blob(
        b"a".to_vec(),
        false,
        4,
        first[0],
    )])
    .unwrap();
    store.save(&manifest).unwrap();
    let put = Putter::new(&store, staging.dir());
    assert!(!put.store_was_empty);
    assert_eq!(put_all(&put), first);
    assert_eq!(put.prehashed.load(Ordering::Relaxed), 3);
    assert_eq!(put.prehash_hits.load(Ordering::Relaxed), 3);
    assert_eq!(put.new_blobs(), 0);
}

fn walkdir(p: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![p.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let path = e.path();
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                todo.push(path.clone());
            }
            out.push(path);
        }
    }
    out
}
