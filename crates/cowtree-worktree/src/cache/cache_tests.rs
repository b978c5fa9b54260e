//! The stat cache's unit tests.

use super::decode::MAX_PATH;
use super::*;

fn key(mtime_ns: i64) -> StatKey {
    StatKey {
        size: 3,
        mtime_ns,
        ctime_ns: mtime_ns,
        ino: 7,
        mode: 0o100644,
    }
}

#[test]
fn encode_decode_round_trip_and_sorted_lookup() {
    let h = Hash::of(b"x");
    let c = StatCache::new(
        5,
        vec![
            Rec {
                path: b"b".to_vec(),
                key: key(1),
                hash: h,
            },
            Rec {
                path: b"a/c".to_vec(),
                key: key(2),
                hash: h,
            },
        ],
    );
    let d = StatCache::decode(&c.encode()).expect("decodes");
    assert_eq!(d.recs().collect::<Vec<_>>(), c.recs().collect::<Vec<_>>());
    assert_eq!(d.written_ns, 5);
    assert_eq!(d.get(b"a/c").map(|r| r.0), Some(key(2)));
    assert!(d.get(b"a").is_none());
}

#[test]
fn written_encoding_is_the_encoding_and_built_to_its_exact_size() {
    let h = Hash::of(b"x");
    let rec = |p: &[u8]| Rec {
        path: p.to_vec(),
        key: key(p.len() as i64),
        hash: h,
    };
    let files = vec![rec(b"a/b/c"), rec(b"a/long-name.rs"), rec(b"z")];
    let dirs = vec![rec(b"a"), rec(b"a/b")];
    let built = StatCache::with_dirs(9, files.clone(), dirs.clone()).encode();
    assert_eq!(built.len(), built.capacity(), "sized exactly");
    assert_eq!(built, encode(9, &files, &dirs), "the records in order");
    let mut caches = vec![
        StatCache::default(),
        StatCache::with_dirs(9, files.clone(), dirs),
        StatCache::new(3, files),
    ];
    // A time set after encoding, and a snapshot named in the trailer.
    caches[1].written_ns = 11;
    caches[2].blobs_of = Some(Hash::of(b"snapshot"));
    for c in &caches {
        let mut written = Vec::new();
        c.write_encoding(&mut written).unwrap();
        assert_eq!(written, c.encode());
        let d = StatCache::decode(&written).expect("decodes");
        assert_eq!(d.written_ns, c.written_ns);
        assert_eq!(d.blobs_of, c.blobs_of);
        assert_eq!(d.recs().collect::<Vec<_>>(), c.recs().collect::<Vec<_>>());
    }
}

#[test]
fn decode_refuses_truncated_trailing_and_unsorted() {
    let h = Hash::of(b"x");
    let rec = |p: &[u8]| Rec {
        path: p.to_vec(),
        key: key(1),
        hash: h,
    };
    let good = StatCache::new(1, vec![rec(b"a"), rec(b"b")]).encode();
    assert!(StatCache::decode(&good[..good.len() - 1]).is_none());
    let mut long = good.clone();
    long.push(0);
    assert!(StatCache::decode(&long).is_none());
    let unsorted = encode(1, &[rec(b"b"), rec(b"a")], &[]);
    assert!(StatCache::decode(&unsorted).is_none());
}

/// The encoding of `recs` and `dirs` in the order given (the decoder refuses them
/// unsorted).
fn encode(written_ns: i64, recs: &[Rec], dirs: &[Rec]) -> Vec<u8> {
    let mut out = Vec::new();
    encode_header(&mut out, written_ns, recs.len() as u64, dirs.len() as u64);
    for r in recs.iter().chain(dirs) {
        encode_rec(&mut out, &r.path, &r.key, &r.hash);
    }
    out.extend_from_slice(&encode_trailer(None));
    out
}

fn rec(path: &[u8], key: StatKey, hash: Hash) -> Rec {
    Rec {
        path: path.to_vec(),
        key,
        hash,
    }
}

#[test]
fn directory_records_round_trip_and_give_a_directory_its_own_entries_only() {
    let t = 100 * 1_000_000_000;
    let old = key(t - 10_000_000_000);
    let h = Hash::of(b"x");
    // `a` holds files `f` and `f-x` and subdirectories `s` and `s0` (whose records sort
    // among and after deeper ones); `a/s` holds a file and a deeper directory; the
    // directory `a-c` sorts between `a` and `a/`.
    let files = [
        &b"a/f"[..],
        b"a/f-x",
        b"a/s/1",
        b"a/s/deep/2",
        b"a/s0/3",
        b"a-b",
        b"a-c/9",
        b"top",
    ];
    let mut recs: Vec<Rec> = files.iter().map(|p| rec(p, old, h)).collect();
    recs.sort_by(|a, b| a.path.cmp(&b.path));
    let dkey = StatKey {
        mode: 0o040755,
        ..old
    };
    let a_hash = names_hash([&b"f"[..], b"f-x"], [&b"s"[..], b"s0"]);
    let dirs = vec![
        rec(
            b"",
            dkey,
            names_hash([&b"a-b"[..], b"top"], [&b"a"[..], b"a-c"]),
        ),
        rec(b"a", dkey, a_hash),
        rec(b"a-c", dkey, names_hash([&b"9"[..]], [])),
        rec(b"a/s", dkey, names_hash([&b"1"[..]], [&b"deep"[..]])),
        rec(b"a/s/deep", dkey, names_hash([&b"2"[..]], [])),
        rec(b"a/s0", dkey, names_hash([&b"3"[..]], [])),
    ];
    let c = StatCache::with_dirs(t, recs.clone(), dirs.clone());
    let d = StatCache::decode(&c.encode()).expect("decodes");
    assert_eq!(d.recs().collect::<Vec<_>>(), recs);
    assert_eq!(d.dirs().collect::<Vec<_>>(), dirs);
    let got = d
        .children(b"a", &dkey, d.range(b"a"), None)
        .expect("trusted");
    let names: Vec<&[u8]> = got.files.iter().map(|&i| d.name_at(i, 2)).collect();
    assert_eq!(names, vec![&b"f"[..], b"f-x"]);
    assert_eq!(got.dirs, vec![&b"s"[..], b"s0"]);
    assert_eq!(got.hash, a_hash);
    let root = d.children(b"", &dkey, d.range(b""), None).expect("trusted");
    assert_eq!(root.dirs, vec![&b"a"[..], b"a-c"]);
    assert_eq!(root.files.len(), 2);
    assert!(
        d.children(b"a/s/deep", &dkey, d.range(b"a/s/deep"), None)
            .is_some()
    );
    // The indices of the subdirectories' records: as hints, they find what a search does;
    // any other hint (another directory's record, none at all) is searched past.
    assert_eq!(got.dir_recs, vec![3, 5]);
    assert_eq!(root.dir_recs, vec![1, 2]);
    for (dir, at) in [(&b"a/s"[..], 3), (b"a/s0", 5), (b"a", 1), (b"a-c", 2)] {
        let want = d.children(dir, &dkey, d.range(dir), None).expect("trusted");
        for hint in [Some(at), Some(0), Some(4), Some(6), Some(usize::MAX)] {
            let got = d.children(dir, &dkey, d.range(dir), hint).expect("trusted");
            assert_eq!(
                (&got.files, &got.dirs, &got.dir_recs, got.hash),
                (&want.files, &want.dirs, &want.dir_recs, want.hash),
                "{} from {hint:?}",
                String::from_utf8_lossy(dir)
            );
        }
    }
    assert!(
        d.children(b"nope", &dkey, d.range(b"nope"), Some(1))
            .is_none()
    );
    // Another stat, a racy record, or names that no longer hash to the record: listed.
    let other = StatKey {
        ctime_ns: dkey.ctime_ns + 1,
        ..dkey
    };
    assert!(d.children(b"a", &other, d.range(b"a"), None).is_none());
    let racy = StatCache::with_dirs(dkey.mtime_ns + 1, recs.clone(), dirs.clone());
    assert!(racy.children(b"a", &dkey, racy.range(b"a"), None).is_none());
    let fewer: Vec<Rec> = recs
        .iter()
        .filter(|r| r.path != b"a/f-x")
        .cloned()
        .collect();
    let lacking = StatCache::with_dirs(t, fewer, dirs);
    assert!(
        lacking
            .children(b"a", &dkey, lacking.range(b"a"), None)
            .is_none()
    );
    assert!(
        lacking
            .children(b"a/s", &dkey, lacking.range(b"a/s"), None)
            .is_some()
    );
    // No record: listed.
    assert!(d.children(b"nope", &dkey, d.range(b"nope"), None).is_none());
    // A record whose name is `..` (its names hashed as they are): not used as a name.
    let dotdot = vec![rec(b"x/..", old, h)];
    let xdir = vec![rec(b"x", dkey, names_hash([&b".."[..]], []))];
    let bad = StatCache::with_dirs(t, dotdot, xdir);
    assert!(bad.children(b"x", &dkey, bad.range(b"x"), None).is_none());
}

#[test]
fn a_cache_read_in_pieces_across_buffers_is_the_cache_written() {
    let h = Hash::of(b"x");
    // 20,000 records of paths 50 bytes long: an encoding of about 2.4 MB, read a buffer
    // of 1 MiB at a time (records straddle the buffers' ends), and 7 bytes at a time.
    let recs: Vec<Rec> = (0..20_000u32)
        .map(|i| {
            let p = format!(
                "dir-{:03}/sub-{:02}/file-number-{i:08}-of-the-tree.rs",
                i % 97,
                i % 13
            );
            rec(p.as_bytes(), key(i64::from(i)), h)
        })
        .collect();
    let dirs = vec![rec(b"", key(1), h), rec(b"dir-000", key(2), h)];
    let c = StatCache::with_dirs(5, recs, dirs);
    let bytes = c.encode();
    assert!(bytes.len() > 2 * READ_BUF, "{}", bytes.len());
    struct Trickle<'b>(&'b [u8]);
    impl std::io::Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let n = buf.len().min(7).min(self.0.len());
            buf[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }
    for d in [
        StatCache::decode(&bytes).expect("decodes"),
        StatCache::read(Trickle(&bytes), bytes.len() as u64)
            .expect("reading a slice does not fail")
            .expect("decodes"),
    ] {
        assert_eq!(d.recs().collect::<Vec<_>>(), c.recs().collect::<Vec<_>>());
        assert_eq!(d.dirs().collect::<Vec<_>>(), c.dirs().collect::<Vec<_>>());
        assert_eq!(d.encode(), bytes);
    }
    // Told a size too small for its counts, or given more bytes than its size: refused,
    // not a panic; a reader that fails: its error.
    let read = |b: &[u8], size| StatCache::read(b, size).expect("reading a slice does not fail");
    assert!(read(&bytes, 1000).is_none());
    let mut more = bytes.clone();
    more.extend_from_slice(&[0; 100]);
    assert!(read(&more, bytes.len() as u64).is_none());
    struct Failing;
    impl std::io::Read for Failing {
        fn read(&mut self, _: &mut [u8]) -> std::io::Result<usize> {
            Err(std::io::Error::other("gone"))
        }
    }
    assert!(StatCache::read(Failing, 100).is_err());
    // A record's path of MAX_PATH bytes (deep, its name short) is read; one byte longer,
    // the cache is refused (before a buffer of the length its record gives is made).
    let one = |len: usize| {
        let mut path = b"d/".repeat(len / 2 - 1);
        path.extend_from_slice(&b"xyz"[..len % 2 + 2]);
        assert_eq!(path.len(), len);
        let mut bytes = Vec::new();
        encode_header(&mut bytes, 5, 1, 0);
        encode_rec(&mut bytes, &path, &key(1), &h);
        bytes.extend_from_slice(&encode_trailer(None));
        (path, StatCache::decode(&bytes))
    };
    let (path, d) = one(MAX_PATH as usize);
    assert_eq!(d.and_then(|d| d.recs().next()).map(|r| r.path), Some(path));
    assert!(one(MAX_PATH as usize + 1).1.is_none());
}

fn show(p: &[u8]) -> String {
    String::from_utf8_lossy(p).into_owned()
}

#[test]
fn lookups_in_the_compact_form_are_those_of_whole_paths() {
    // Names made of bytes that sort around `/` (`-`, `.` and `0`), so that a directory's
    // records are interleaved with its siblings' in path order.
    let parts: [&[u8]; 6] = [b"a", b"a-", b"a.b", b"a0", b"ab", b"b"];
    let mut rng = cowtree_testutil::XorShift::new(0x2545_F491_4F6C_DD1D);
    let mut next = move || rng.next_u64();
    let mut paths = std::collections::BTreeSet::new();
    for _ in 0..1500 {
        let depth = 1 + next() % 4;
        let p: Vec<&[u8]> = (0..depth).map(|_| parts[(next() % 6) as usize]).collect();
        paths.insert(p.join(&b'/'));
    }
    // A file's path is never a directory's: drop those that other paths are beneath.
    let files: Vec<Vec<u8>> = paths
        .iter()
        .filter(|q| {
            !paths
                .iter()
                .any(|p| p.starts_with(q) && p.get(q.len()) == Some(&b'/'))
        })
        .cloned()
        .collect();
    let mut dirs = std::collections::BTreeSet::new();
    for f in &files {
        for (k, _) in f.iter().enumerate().filter(|(_, c)| **c == b'/') {
            dirs.insert(f[..k].to_vec());
        }
    }
    dirs.insert(Vec::new());
    let t = 100 * 1_000_000_000;
    let old = key(t - 10_000_000_000);
    let h = Hash::of(b"x");
    let recs: Vec<Rec> = files.iter().map(|p| rec(p, old, h)).collect();
    let drecs: Vec<Rec> = dirs.iter().map(|p| rec(p, old, h)).collect();
    let built = StatCache::with_dirs(t, recs.clone(), drecs.clone());
    let c = StatCache::decode(&built.encode()).expect("decodes");
    assert!(
        files.len() > 300 && dirs.len() > 150,
        "{} {}",
        files.len(),
        dirs.len()
    );
    assert_eq!(c.recs().collect::<Vec<_>>(), recs);
    assert_eq!(c.dirs().collect::<Vec<_>>(), drecs);
    // Each directory's path is held once for the file records, once for the directory
    // records (and only the directories that hold records).
    let held: Vec<&[u8]> = (0..c.dir_at.len() - 1)
        .map(|d| &c.dir_paths[c.dir_at[d] as usize..c.dir_at[d + 1] as usize])
        .collect();
    let mut used = 0;
    for offs in [&c.offs, &c.doffs] {
        let of = |&o: &u32| {
            let o = o as usize;
            u32_at(&c.bytes, o) as usize
        };
        let ds: std::collections::BTreeSet<usize> = offs.iter().map(of).collect();
        let ps: std::collections::BTreeSet<&[u8]> = ds.iter().map(|&d| held[d]).collect();
        assert_eq!(ds.len(), ps.len(), "a directory's path held twice");
        used += ds.len();
    }
    assert_eq!(used, held.len(), "a directory's path held for no record");
    assert!(
        held.len() < dirs.len() * 2,
        "{} of {}",
        held.len(),
        dirs.len()
    );
    for (i, whole) in files.iter().enumerate() {
        let p = c.path_at(i);
        for from in 0..=whole.len() + 1 {
            let rest = &whole[from.min(whole.len())..];
            for to in (0..=whole.len() + 1).chain([usize::MAX]) {
                for other in [rest, b"a", b"a-/", b""] {
                    assert_eq!(
                        p.cmp_range(from, to, other),
                        whole.as_slice().cmp_range(from, to, other),
                        "{} {from}..{to} {}",
                        show(whole),
                        show(other)
                    );
                }
            }
        }
    }
    let mut probes: Vec<Vec<u8>> = files.iter().chain(&dirs).cloned().collect();
    probes.extend([
        b"a/".to_vec(),
        b"a-/zz".to_vec(),
        b"a.b/a0/".to_vec(),
        b"c".to_vec(),
    ]);
    for q in &probes {
        assert_eq!(c.get(q).is_some(), files.contains(q), "{}", show(q));
        let beneath: Vec<usize> = (0..files.len())
            .filter(|&i| {
                q.is_empty() || files[i].starts_with(q) && files[i].get(q.len()) == Some(&b'/')
            })
            .collect();
        let r = c.range(q);
        assert_eq!(r.clone().collect::<Vec<_>>(), beneath, "{}", show(q));
        if dirs.contains(q) {
            // Every file of the directory itself, asked in order, found where it is.
            let skip = if q.is_empty() { 0 } else { q.len() + 1 };
            let mut from = r.start;
            for &i in &beneath {
                let name = &files[i][skip..];
                if !name.contains(&b'/') {
                    assert_eq!(c.name_at(i, skip), name);
                    let got = c.trusted_child_from(&r, &mut from, q, name, &old);
                    assert_eq!(got, Some(h), "{}", show(&files[i]));
                }
            }
        }
    }
}

#[test]
fn names_hash_tells_files_from_directories_and_is_the_hash_of_the_names() {
    let f = names_hash([&b"x"[..]], []);
    let d = names_hash([], [&b"x"[..]]);
    assert_ne!(f, d);
    assert_ne!(
        names_hash([&b"ab"[..]], []),
        names_hash([&b"a"[..], b"b"], [])
    );
    assert_eq!(names_hash([&b"a"[..]], [&b"b"[..]]), Hash::of(b"a\0/b\0"));
}

#[test]
fn the_trailer_round_trips_a_merge_drops_it_and_a_version_1_cache_decodes_as_nothing() {
    let empty = StatCache::decode(&StatCache::default().encode()).expect("decodes");
    assert_eq!(
        (empty.len(), empty.dir_count(), empty.blobs_of),
        (0, 0, None)
    );
    let c = StatCache::new(5, Vec::new()).with_blobs_of(Hash::of(b"s"));
    let d = StatCache::decode(&c.encode()).expect("decodes");
    assert_eq!(d.blobs_of, Some(Hash::of(b"s")));
    assert_eq!(
        StatCache::decode(&d.merged_encoding(6, |_| true, Vec::new(), |_| true, Vec::new()))
            .map(|c| c.blobs_of),
        Some(None)
    );
    let mut v1 = b"CTSTAT1\n".to_vec();
    v1.extend_from_slice(&5i64.to_le_bytes());
    v1.extend_from_slice(&0u64.to_le_bytes());
    assert!(StatCache::decode(&v1).is_none());
}

impl StatCache {
    /// [`StatCache::write_merged`]'s bytes.
    pub(crate) fn merged_encoding(
        &self,
        written_ns: i64,
        keep: impl Fn(&[u8]) -> bool,
        fresh: Vec<Rec>,
        keep_dir: impl Fn(&[u8]) -> bool,
        fresh_dirs: Vec<Rec>,
    ) -> Vec<u8> {
        let mut out =
            Vec::with_capacity(self.encode().len() + (fresh.len() + fresh_dirs.len()) * 110);
        match self.write_merged(&mut out, written_ns, keep, fresh, keep_dir, fresh_dirs) {
            Ok(()) => out,
            Err(e) => panic!("a Vec takes every write: {e}"),
        }
    }
}

/// What [`StatCache::merged_encoding`] must equal: the records decoded, filtered,
/// carried and merged one by one.
fn merged_the_slow_way(
    c: &StatCache,
    written_ns: i64,
    keep: impl Fn(&[u8]) -> bool,
    fresh: Vec<Rec>,
    keep_dir: impl Fn(&[u8]) -> bool,
    fresh_dirs: Vec<Rec>,
) -> Vec<u8> {
    let mut all: Vec<Rec> = c.carried().filter(|r| keep(&r.path)).collect();
    all.extend(fresh);
    let mut dirs: Vec<Rec> = c.carried_dirs().filter(|r| keep_dir(&r.path)).collect();
    dirs.extend(fresh_dirs);
    StatCache::with_dirs(written_ns, all, dirs).encode()
}

/// `n` records of random keys at few distinct paths (so that old and fresh records
/// collide), with old, racy and whole-second times (so that some are smudged) against
/// a cache taken at `t`.
fn records(next: &mut impl FnMut() -> u64, n: u64, t: i64) -> Vec<Rec> {
    (0..n)
        .map(|_| {
            let v = next();
            let path = format!("d{}/f{}", v % 5, (v >> 8) % 13).into_bytes();
            let mtime = match (v >> 20) % 3 {
                0 => t - 10_000_000_000,
                1 => t - 1_000,
                _ => t - 1_000_000_000,
            };
            rec(&path, key(mtime), Hash::of(&v.to_le_bytes()))
        })
        .collect()
}

/// A writer taking at most 7 bytes a call, refusing one call once `room` bytes are
/// written and taking every call after it.
struct Pieces {
    got: Vec<u8>,
    room: usize,
    refused: bool,
}

impl std::io::Write for Pieces {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let mut n = buf.len().min(7);
        if !self.refused {
            n = n.min(self.room - self.got.len());
            if n == 0 && !buf.is_empty() {
                self.refused = true;
                return Err(std::io::Error::other("refused once"));
            }
        }
        self.got.extend_from_slice(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn merged_encoding_is_the_record_by_record_merge_byte_for_byte() {
    let t = 100 * 1_000_000_000;
    let mut rng = cowtree_testutil::XorShift::new(0x9E37_79B9_7F4A_7C15);
    let mut next = move || rng.next_u64();
    let (mut smudged, mut replaced) = (0, 0);
    for round in 0..200 {
        let n = next() % 40;
        let old = StatCache::with_dirs(t, records(&mut next, n, t), records(&mut next, n / 4, t));
        let k = next() % 10;
        let fresh = records(&mut next, k, t);
        let fresh_paths: Vec<Vec<u8>> = fresh.iter().map(|r| r.path.clone()).collect();
        let k = next() % 3;
        let fresh_dirs = records(&mut next, k, t);
        let cut = (round % 5) as u8;
        let keep = |p: &[u8]| p.get(1) != Some(&(b'0' + cut));
        let keep_dir = |p: &[u8]| p.last() != Some(&(b'0' + cut));
        let later = t + 5_000_000_000;
        let got = old.merged_encoding(later, keep, fresh.clone(), keep_dir, fresh_dirs.clone());
        let want = merged_the_slow_way(&old, later, keep, fresh, keep_dir, fresh_dirs);
        assert_eq!(got, want, "round {round}");
        let d = StatCache::decode(&got).expect("decodes");
        assert_eq!(d.written_ns, later);
        smudged += usize::from(d.recs().any(|r| r.key == StatKey::SMUDGED));
        replaced += usize::from(fresh_paths.iter().any(|p| old.get(p).is_some()));
    }
    // The cases that matter were met: carried records smudged, old ones replaced.
    assert!(smudged > 20 && replaced > 20, "{smudged} {replaced}");
    // Written through a writer in small pieces, the same bytes; a write refused part way
    // (even one the writer would take again) makes the whole write fail.
    let old = StatCache::with_dirs(t, records(&mut next, 30, t), records(&mut next, 8, t));
    let fresh = records(&mut next, 6, t);
    let want = old.merged_encoding(t, |_| true, fresh.clone(), |_| true, Vec::new());
    let mut pieces = Pieces {
        got: Vec::new(),
        room: usize::MAX,
        refused: false,
    };
    old.write_merged(
        &mut pieces,
        t,
        |_| true,
        fresh.clone(),
        |_| true,
        Vec::new(),
    )
    .expect("written");
    assert_eq!(pieces.got, want);
    for room in 0..want.len() {
        let mut pieces = Pieces {
            got: Vec::new(),
            room,
            refused: false,
        };
        let r = old.write_merged(
            &mut pieces,
            t,
            |_| true,
            fresh.clone(),
            |_| true,
            Vec::new(),
        );
        assert!(r.is_err(), "room {room} of {}", want.len());
    }
}

#[test]
fn racy_rule_uses_fine_or_coarse_granularity() {
    let t = 100 * 1_000_000_000;
    let c = StatCache::new(t, Vec::new());
    // Sub-second mtimes: racy within 50 ms of the cache time.
    assert!(!c.is_racy(&key(t - FINE_GRANULARITY_NS - 1)));
    assert!(c.is_racy(&key(t - FINE_GRANULARITY_NS + 1)));
    assert!(c.is_racy(&key(t + 5)));
    // Whole-second mtimes: racy within 2 s.
    assert!(c.is_racy(&key(t - 1_000_000_000)));
    assert!(!c.is_racy(&key(t - 3_000_000_000)));
    // An old mtime with a recent ctime (times set back after a change): racy.
    let set_back = StatKey {
        ctime_ns: t - 1,
        ..key(t - 10_000_000_001)
    };
    assert!(c.is_racy(&set_back));
}

#[test]
fn the_time_after_own_writes_is_past_the_newest_write_and_later_file_times() {
    // A write stamped in the current tick: the reference waits for the next one, so that
    // the record is trusted, and any later change is stamped at or after it.
    let latest = coarse_now_ns();
    let w = written_ns_after_own_writes(latest);
    let reference = w - FINE_GRANULARITY_NS;
    assert!(reference > latest, "{reference} <= {latest}");
    assert!(!racy_at(w, &key(latest)));
    assert!(racy_at(w, &key(reference)));
    let f = tempfile::NamedTempFile::new().expect("temp file");
    std::fs::write(f.path(), b"changed after").expect("write");
    let st = crate::os::stat(f.path()).expect("stat");
    let k = StatKey::of(&st);
    assert!(k.mtime_ns >= reference && k.ctime_ns >= reference, "{k:?}");
    assert!(racy_at(w, &k) || coarse_time(k.mtime_ns));
    // A time far ahead (another clock) is not waited for: it stays racy.
    let ahead = coarse_now_ns() + 60_000_000_000;
    let t = std::time::Instant::now();
    assert!(racy_at(written_ns_after_own_writes(ahead), &key(ahead)));
    assert!(t.elapsed() < std::time::Duration::from_millis(50));
}

#[test]
fn smudge_racy_and_latest_fine_time_look_at_mtime_ctime_and_whole_seconds() {
    let t = 100 * 1_000_000_000 + 500_000_000;
    let h = Hash::of(b"x");
    let old = key(t - 60_000_000);
    let fresh = StatKey {
        ctime_ns: t - 1,
        ..old
    };
    let whole = key(102 * 1_000_000_000);
    let recs = vec![rec(b"old", old, h), rec(b"fresh", fresh, h)];
    let got = smudge_racy(t, recs);
    assert_eq!(got[0].key, old);
    assert_eq!(got[1].key, StatKey::SMUDGED);
    assert_eq!(latest_fine_time(&got[..1]), old.mtime_ns);
    let both = [rec(b"a", old, h), rec(b"b", fresh, h), rec(b"c", whole, h)];
    assert_eq!(latest_fine_time(&both), fresh.ctime_ns);
    assert_eq!(latest_fine_time(&both[2..]), i64::MIN);
}

#[test]
fn trusted_needs_same_stat_and_not_racy_and_carried_smudges_racy() {
    let t = 100 * 1_000_000_000;
    let h = Hash::of(b"x");
    let old = key(t - 10_000_000_001);
    let fresh = key(t - 1);
    let c = StatCache::new(
        t,
        vec![
            Rec {
                path: b"old".to_vec(),
                key: old,
                hash: h,
            },
            Rec {
                path: b"fresh".to_vec(),
                key: fresh,
                hash: h,
            },
        ],
    );
    assert_eq!(c.trusted(b"old", &old), Some(h));
    let mut other = old;
    other.ctime_ns += 1;
    assert_eq!(c.trusted(b"old", &other), None);
    assert_eq!(c.trusted(b"fresh", &fresh), None);
    let carried: Vec<Rec> = c.carried().collect();
    let f = carried.iter().find(|r| r.path == b"fresh").expect("kept");
    assert_eq!(f.key, StatKey::SMUDGED);
    let o = carried.iter().find(|r| r.path == b"old").expect("kept");
    assert_eq!(o.key, old);
}
