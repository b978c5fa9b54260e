//! The manifest's unit tests: the format, the checks, the readers and the lookups.

use super::check::*;
use super::encoding::*;
use super::owned::*;
use super::sorted::*;
use super::stream::*;
use super::view::*;
use super::*;
use crate::hash::Hash;
use cowtree_fs::name::NameError;

#[test]
fn a_path_in_pieces_compares_as_the_whole_path() {
    let whole: &[u8] = b"ab/c-d/e";
    let others: [&[u8]; 9] = [
        b"",
        b"a",
        b"ab",
        b"ab/",
        b"ab/c",
        b"ab/c-d/e",
        b"b",
        b"c-d",
        b"/",
    ];
    let mut cases = 0;
    for i in 0..=whole.len() {
        for j in i..=whole.len() {
            let pieces = [&whole[..i], &whole[i..j], &whole[j..]];
            for from in 0..=whole.len() + 1 {
                for to in 0..=whole.len() + 1 {
                    for other in others {
                        let (f, t) = (from.min(whole.len()), to.min(whole.len()));
                        let want = whole[f.min(t)..t].cmp(other);
                        assert_eq!(
                            cmp_pieces(&pieces, from, to, other),
                            want,
                            "{pieces:?} {from}..{to} {other:?}"
                        );
                        assert_eq!(whole.cmp_range(from, to, other), want);
                        cases += 1;
                    }
                }
            }
        }
    }
    assert!(cases > 10_000, "{cases}");
}

#[test]
fn a_subdirectory_sorts_as_its_name_and_a_slash() {
    use std::cmp::Ordering as Order;
    // "a-b" < "a/..." since '-' < '/', but "a" < "a-b".
    assert_eq!(name_order(b"a", true, b"a-b", false), Order::Greater);
    assert_eq!(name_order(b"a", false, b"a-b", false), Order::Less);
    assert_eq!(name_order(b"a", true, b"a0", false), Order::Less);
    assert_eq!(name_order(b"ab", true, b"a", true), Order::Greater);
}

fn h(n: u8) -> Hash {
    Hash::from_bytes([n; 32])
}
fn file(p: &[u8]) -> Entry {
    Entry::blob(p.to_vec(), false, 3, h(1))
}

/// Encodes entries as given, without sorting or validating, to feed the decoder.
fn raw(entries: &[Entry]) -> Vec<u8> {
    Manifest {
        entries: entries.to_vec(),
        archive: None,
    }
    .encode()
}

/// A small deterministic generator for the randomized tests.
fn xorshift(seed: u64) -> impl FnMut() -> u64 {
    let mut rng = cowtree_testutil::XorShift::new(seed);
    move || rng.next_u64()
}

/// The checker looks only at the components a path does not share with the previous one;
/// over many random pairs (a valid path, then anything) it must refuse exactly what a
/// check of the whole path, the order and the ancestry refuses, for the same reason.
#[test]
fn checking_only_the_unshared_components_refuses_what_a_whole_check_refuses() {
    let mut next = xorshift(0x9e37_79b9_7f4a_7c15u64);
    use cowtree_fs::name::check_relative_path;
    let path = |next: &mut dyn FnMut() -> u64| -> Vec<u8> {
        let len = next() % 14;
        let mut p: Vec<u8> = (0..len)
            .map(|_| b"aaabbb//./\0"[(next() % 11) as usize])
            .collect();
        if next().is_multiple_of(16) {
            // A component at or over NAME_MAX, somewhere.
            let at = (next() as usize) % (p.len() + 1);
            let long = vec![b'c'; 254 + (next() % 4) as usize];
            p.splice(at..at, long);
        }
        p
    };
    let mut checked = [0u32; 4];
    for _ in 0..200_000 {
        let prev = path(&mut next);
        if check_relative_path(&prev).is_err() {
            continue;
        }
        // Mostly a path that shares a part of the previous one, as sorted paths do.
        let mut now = path(&mut next);
        match next() % 8 {
            0 => {}
            1 => {
                now.insert(0, b'/');
                now.splice(0..0, prev.iter().copied());
            }
            _ => {
                let keep = (next() as usize) % (prev.len() + 1);
                now.splice(0..0, prev[..keep].iter().copied());
            }
        }
        let mut c = Checker::default();
        assert_eq!(c.check(0, &prev, Kind::File, None, true), Ok(()));
        let got = c.check(1, &now, Kind::File, None, true);
        let beneath = now.len() > prev.len() && now.starts_with(&prev) && now[prev.len()] == b'/';
        let want = match check_relative_path(&now) {
            Err(reason) => Some(ManifestError::InvalidPath {
                index: 1,
                path: now.clone(),
                reason,
            }),
            Ok(()) if now == prev => Some(ManifestError::Duplicate {
                index: 1,
                path: now.clone(),
            }),
            Ok(()) if now < prev => Some(ManifestError::Unsorted {
                index: 1,
                path: now.clone(),
            }),
            Ok(()) if beneath => Some(ManifestError::BeneathNonDir {
                index: 1,
                path: now.clone(),
                parent: prev.clone(),
                parent_kind: Kind::File,
            }),
            Ok(()) => None,
        };
        checked[match &want {
            None => 0,
            Some(ManifestError::InvalidPath { .. }) => 1,
            Some(ManifestError::BeneathNonDir { .. }) => 2,
            Some(_) => 3,
        }] += 1;
        assert_eq!(
            got.err(),
            want,
            "{:?} then {:?}",
            String::from_utf8_lossy(&prev),
            String::from_utf8_lossy(&now)
        );
    }
    // Each outcome came up often enough for the comparison to mean something.
    assert!(checked.iter().all(|&n| n > 1000), "{checked:?}");
}

/// The checker as it was before it skipped shared components: every path checked whole,
/// compared whole with the previous one, and each chain prefix compared with the path.
fn whole_path_check(entries: &[(Vec<u8>, Kind)]) -> Result<(), ManifestError> {
    use cowtree_fs::name::check_relative_path;
    let (mut last, mut chain): (Vec<u8>, Vec<(usize, Kind)>) = (Vec::new(), Vec::new());
    for (i, (path, kind)) in entries.iter().enumerate() {
        let (index, path) = (i as u64, path.clone());
        if let Err(reason) = check_relative_path(&path) {
            return Err(ManifestError::InvalidPath {
                index,
                path,
                reason,
            });
        }
        if i > 0 {
            match last.cmp(&path) {
                std::cmp::Ordering::Less => {}
                std::cmp::Ordering::Equal => {
                    return Err(ManifestError::Duplicate { index, path });
                }
                std::cmp::Ordering::Greater => {
                    return Err(ManifestError::Unsorted { index, path });
                }
            }
        }
        while chain
            .last()
            .is_some_and(|&(n, _)| !path.starts_with(&last[..n]))
        {
            chain.pop();
        }
        if let Some(&(n, parent_kind)) = chain.iter().find(|&&(n, _)| path.get(n) == Some(&b'/')) {
            return Err(ManifestError::BeneathNonDir {
                index,
                parent: path[..n].to_vec(),
                path,
                parent_kind,
            });
        }
        chain.push((path.len(), *kind));
        last = path;
    }
    Ok(())
}

/// Runs of 2 to 7 entries, each path mostly built on an earlier one (so that chains of
/// possible ancestors grow several deep), usually sorted: the checker refuses exactly
/// what the whole-path checker refuses, with the same error.
#[test]
fn checking_runs_of_entries_agrees_with_the_whole_path_checker() {
    let mut next = xorshift(0x2545_f491_4f6c_dd1du64);
    let kinds = [Kind::File, Kind::Executable, Kind::Symlink, Kind::Dir];
    let mut outcomes = [0u32; 5];
    for _ in 0..100_000 {
        let n = 2 + (next() % 6) as usize;
        let mut paths: Vec<Vec<u8>> = Vec::with_capacity(n);
        for _ in 0..n {
            // A cut of an earlier path (possibly inside a name), then a name or two,
            // now and then an invalid one.
            let mut p: Vec<u8> = match paths.get((next() as usize) % (paths.len() + 1)) {
                Some(base) if !next().is_multiple_of(4) => {
                    let keep = (next() as usize) % (base.len() + 1);
                    base[..keep].to_vec()
                }
                _ => Vec::new(),
            };
            let names: [&[u8]; 10] = [
                b"a", b"b", b"a-b", b"ab", b"b.", b"c", b".", b"", b"x\0", b"..",
            ];
            for _ in 0..(next() % 3) {
                if !p.is_empty() {
                    p.push(b'/');
                }
                let pick = (next() % 64) as usize;
                p.extend_from_slice(names[if pick < 60 { pick % 6 } else { 6 + pick % 4 }]);
            }
            paths.push(p);
        }
        if !next().is_multiple_of(8) {
            paths.sort();
        }
        let entries: Vec<(Vec<u8>, Kind)> = paths
            .into_iter()
            .map(|p| (p, kinds[(next() % 4) as usize]))
            .collect();
        let want = whole_path_check(&entries);
        let mut c = Checker::default();
        let got = entries.iter().enumerate().try_for_each(|(i, (p, k))| {
            let target: Option<&[u8]> = (*k == Kind::Symlink).then_some(b"t");
            c.check(i as u64, p, *k, target, true)
        });
        outcomes[match &want {
            Ok(()) => 0,
            Err(ManifestError::InvalidPath { .. }) => 1,
            Err(ManifestError::BeneathNonDir { .. }) => 2,
            Err(ManifestError::Unsorted { .. }) => 3,
            Err(_) => 4,
        }] += 1;
        assert_eq!(got, want, "{entries:?}");
    }
    assert!(outcomes.iter().all(|&n| n > 500), "{outcomes:?}");
}

#[test]
fn round_trip_keeps_every_kind_and_raw_bytes() {
    let m = Manifest::new(vec![
        Entry::symlink(b"z-link".to_vec(), b"../outside/\xff".to_vec()),
        Entry::blob(b"bin/run".to_vec(), true, 10, h(2)),
        file(b"a\xffb/c"),
        Entry::dir(b"empty".to_vec()),
    ])
    .unwrap();
    let bytes = m.encode();
    let back = Manifest::decode(&bytes).unwrap();
    assert_eq!(back, m);
    assert_eq!(back.entries()[0].path, b"a\xffb/c");
    assert_eq!(back.files(), 2);
    assert_eq!(back.bytes(), 13);
    assert_eq!(back.id(), m.id());
}

#[test]
fn entry_order_does_not_change_the_id() {
    let a = Manifest::new(vec![file(b"x"), file(b"a/b"), Entry::dir(b"d".to_vec())]).unwrap();
    let b = Manifest::new(vec![Entry::dir(b"d".to_vec()), file(b"x"), file(b"a/b")]).unwrap();
    assert_eq!(a.id(), b.id());
    let c = Manifest::new(vec![file(b"x"), file(b"a/c"), Entry::dir(b"d".to_vec())]).unwrap();
    assert_ne!(a.id(), c.id());
}

#[test]
fn decode_refuses_bad_entries_naming_them() {
    // (entries as encoded, expected error)
    let cases: Vec<(Vec<Entry>, ManifestError)> = vec![
        (
            vec![file(b"a/../b")],
            ManifestError::InvalidPath {
                index: 0,
                path: b"a/../b".to_vec(),
                reason: NameError::DotDot,
            },
        ),
        (
            vec![file(b"/etc/passwd")],
            ManifestError::InvalidPath {
                index: 0,
                path: b"/etc/passwd".to_vec(),
                reason: NameError::Absolute,
            },
        ),
        (
            vec![file(b"a\0b")],
            ManifestError::InvalidPath {
                index: 0,
                path: b"a\0b".to_vec(),
                reason: NameError::Nul,
            },
        ),
        (
            vec![file(b"a//b")],
            ManifestError::InvalidPath {
                index: 0,
                path: b"a//b".to_vec(),
                reason: NameError::Empty,
            },
        ),
        (
            vec![file(b"")],
            ManifestError::InvalidPath {
                index: 0,
                path: vec![],
                reason: NameError::Empty,
            },
        ),
        (
            vec![file(b"a/"), file(b"b")],
            ManifestError::InvalidPath {
                index: 0,
                path: b"a/".to_vec(),
                reason: NameError::Empty,
            },
        ),
        (
            vec![file(b"a"), file(b"a")],
            ManifestError::Duplicate {
                index: 1,
                path: b"a".to_vec(),
            },
        ),
        (
            vec![file(b"b"), file(b"a")],
            ManifestError::Unsorted {
                index: 1,
                path: b"a".to_vec(),
            },
        ),
        (
            vec![file(b"a"), file(b"a/b")],
            ManifestError::BeneathNonDir {
                index: 1,
                path: b"a/b".to_vec(),
                parent: b"a".to_vec(),
                parent_kind: Kind::File,
            },
        ),
        (
            vec![
                Entry::symlink(b"l".to_vec(), b"/tmp".to_vec()),
                file(b"l-x"),
                file(b"l/x/y"),
            ],
            ManifestError::BeneathNonDir {
                index: 2,
                path: b"l/x/y".to_vec(),
                parent: b"l".to_vec(),
                parent_kind: Kind::Symlink,
            },
        ),
        (
            vec![Entry::dir(b"d".to_vec()), file(b"d/f")],
            ManifestError::BeneathNonDir {
                index: 1,
                path: b"d/f".to_vec(),
                parent: b"d".to_vec(),
                parent_kind: Kind::Dir,
            },
        ),
        (
            vec![Entry::symlink(b"l".to_vec(), vec![])],
            ManifestError::BadTarget {
                index: 0,
                path: b"l".to_vec(),
                reason: "empty",
            },
        ),
        (
            vec![Entry::symlink(b"l".to_vec(), b"a\0".to_vec())],
            ManifestError::BadTarget {
                index: 0,
                path: b"l".to_vec(),
                reason: "NUL byte",
            },
        ),
    ];
    for (entries, want) in cases {
        assert_read_agrees(&raw(&entries));
        let got = Manifest::decode(&raw(&entries));
        assert_eq!(got, Err(want.clone()), "{entries:?}");
        assert_eq!(validate_encoded(&raw(&entries)), Err(want.clone()));
        assert_eq!(ManifestView::parse(raw(&entries)).err(), Some(want.clone()));
        let bytes = raw(&entries);
        let compact = crate::compact::CompactManifest::read(&bytes[..], bytes.len() as u64);
        assert_eq!(compact.unwrap().1.err(), Some(want.clone()));
        assert!(!want.to_string().is_empty());
    }
}

/// A reader that gives at most `.1` bytes a call.
struct Dribble<'a>(&'a [u8], usize);

impl std::io::Read for Dribble<'_> {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        let n = out.len().min(self.1).min(self.0.len());
        out[..n].copy_from_slice(&self.0[..n]);
        self.0 = &self.0[n..];
        Ok(n)
    }
}

/// [`Manifest::read`] of `bytes`, in chunks of several sizes from a reader that gives a
/// few bytes a call, gives what [`Manifest::decode`] gives and the hash of every byte.
fn assert_read_agrees(bytes: &[u8]) {
    let want = Manifest::decode(bytes);
    for chunk in [1, 2, 3, 7, 20, 64, READ_CHUNK] {
        for dribble in [1, 5, usize::MAX] {
            let (hash, got) =
                Manifest::read_chunked(Dribble(bytes, dribble), bytes.len() as u64, chunk).unwrap();
            assert_eq!(hash, Hash::of(bytes), "chunk {chunk}, {dribble} a read");
            assert_eq!(got, want, "chunk {chunk}, {dribble} a read: {bytes:?}");
            // Entry by entry: the same entries, or an error.
            let mut seen = Vec::new();
            let (hash, each) = read_each(Dribble(bytes, dribble), bytes.len() as u64, &mut |e| {
                seen.push(e.to_entry())
            })
            .unwrap();
            assert_eq!(hash, Hash::of(bytes), "chunk {chunk}, {dribble} a read");
            match &want {
                Ok(m) => assert_eq!((each, &seen[..]), (Ok(()), m.entries())),
                Err(_) => assert!(each.is_err(), "{bytes:?}"),
            }
            // The compact form: the same manifest, or an error (not always the same one
            // for bytes with several faults: it checks each entry as it reads it).
            let (hash, compact) = crate::compact::CompactManifest::read_chunked(
                Dribble(bytes, dribble),
                bytes.len() as u64,
                chunk,
            )
            .unwrap();
            assert_eq!(hash, Hash::of(bytes), "chunk {chunk}, {dribble} a read");
            match (&want, compact) {
                (Ok(m), Ok(c)) => assert_eq!(&c.to_manifest(), m, "{bytes:?}"),
                (Err(_), Err(_)) => {}
                (w, c) => panic!("{w:?} but compact {c:?}: {bytes:?}"),
            }
        }
    }
}

#[test]
fn a_read_error_part_way_is_an_error() {
    struct Failing<'a>(&'a [u8]);
    impl std::io::Read for Failing<'_> {
        fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
            if self.0.is_empty() {
                return Err(std::io::Error::other("the disk went away"));
            }
            let n = out.len().min(self.0.len()).min(7);
            out[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }
    let m = Manifest::new(vec![file(b"a/b"), file(b"c")]).unwrap();
    let bytes = m.encode();
    // Before the header, inside an entry, after the last entry.
    for cut in [3, HEADER_LEN + 2, bytes.len()] {
        for chunk in [4, READ_CHUNK] {
            let err = Manifest::read_chunked(Failing(&bytes[..cut]), bytes.len() as u64, chunk)
                .unwrap_err();
            assert_eq!(
                err.to_string(),
                "the disk went away",
                "cut {cut}, chunk {chunk}"
            );
        }
    }
}

#[test]
fn read_decodes_what_decode_does_whatever_the_chunks() {
    // Entries longer than a chunk and shorter (paths to about 300 bytes, symlink targets
    // of random lengths to the 4096-byte limit), at several depths.
    let mut next = xorshift(0x5DEE_CE66_D1CE_4E5B);
    let mut entries = Vec::new();
    for i in 0..60u64 {
        let depth = (next() % 4) as usize;
        let mut path: Vec<u8> = (0..depth)
            .flat_map(|d| format!("dir{}-{}/", d, next() % 3).into_bytes())
            .collect();
        path.extend(
            format!("n{i}")
                .repeat(1 + (next() % 40) as usize)
                .as_bytes(),
        );
        entries.push(match next() % 4 {
            0 => Entry::symlink(path, vec![b't'; 1 + (next() % 4096) as usize]),
            1 => Entry::dir(path),
            _ => Entry::blob(
                path,
                next().is_multiple_of(2),
                next() % 1000,
                h(next() as u8),
            ),
        });
    }
    entries.sort_by(|a, b| a.path.cmp(&b.path));
    entries.dedup_by(|a, b| a.path == b.path);
    // A valid tree: leaves' names start with `n`, directories' with `dir`, so nothing is
    // beneath a file, symlink or empty directory.
    let m = Manifest::new(entries).expect("a valid tree");
    assert!(m.entries().len() > 20, "{}", m.entries().len());
    let bytes = m.encode();
    assert_read_agrees(&bytes);
    let (hash, got) = Manifest::read(&bytes[..], bytes.len() as u64).unwrap();
    assert_eq!((hash, got), (m.id(), Ok(m.clone())));
    // A size that is not the input's changes nothing but the first allocation.
    for size in [0, 1, u64::MAX] {
        assert_eq!(Manifest::read(&bytes[..], size).unwrap().1, Ok(m.clone()));
    }
}

#[test]
fn decode_refuses_unknown_kind_naming_the_path() {
    let mut bytes = raw(&[Entry::dir(b"dd".to_vec())]);
    *bytes.last_mut().unwrap() = 9;
    let err = Manifest::decode(&bytes).unwrap_err();
    assert_eq!(
        err,
        ManifestError::UnknownKind {
            index: 0,
            path: b"dd".to_vec(),
            kind: "9".into()
        }
    );
    assert!(err.to_string().contains("\"dd\""), "{err}");
}

#[test]
fn decode_refuses_bad_headers_and_framing() {
    let good = raw(&[file(b"a")]);
    let cases: Vec<(Vec<u8>, ManifestError)> = vec![
        (vec![], ManifestError::BadMagic),
        (b"CTMANIX\n".to_vec(), ManifestError::BadMagic),
        (
            [&MAGIC[..], &3u32.to_le_bytes(), &0u64.to_le_bytes()].concat(),
            ManifestError::UnsupportedVersion(3),
        ),
        (MAGIC.to_vec(), ManifestError::Truncated { index: 0 }),
        (
            good[..good.len() - 1].to_vec(),
            ManifestError::Truncated { index: 0 },
        ),
        ([&good[..], b"x"].concat(), ManifestError::TrailingBytes(1)),
        (
            // A huge count with no entries must not allocate or panic.
            [&MAGIC[..], &1u32.to_le_bytes(), &u64::MAX.to_le_bytes()].concat(),
            ManifestError::Truncated { index: 0 },
        ),
        (
            // A path length past the end.
            [
                &MAGIC[..],
                &1u32.to_le_bytes(),
                &1u64.to_le_bytes(),
                &u32::MAX.to_le_bytes(),
            ]
            .concat(),
            ManifestError::Truncated { index: 0 },
        ),
    ];
    for (bytes, want) in cases {
        assert_eq!(ManifestView::parse(&bytes[..]).err(), Some(want.clone()));
        assert_eq!(Manifest::decode(&bytes), Err(want), "{bytes:?}");
        assert_read_agrees(&bytes);
    }
}

#[test]
fn decode_never_panics_on_any_prefix_or_byte_flip() {
    let m = Manifest::new(vec![
        file(b"a/b"),
        Entry::symlink(b"l".to_vec(), b"t".to_vec()),
        Entry::dir(b"e".to_vec()),
        Entry::blob(b"x".to_vec(), true, 1, h(3)),
    ])
    .unwrap();
    let bytes = m.encode();
    for n in 0..bytes.len() {
        let _ = Manifest::decode(&bytes[..n]);
        assert_read_agrees(&bytes[..n]);
        for v in [0u8, 1, 0x2f, 0x2e, 0xff] {
            let mut b = bytes.clone();
            b[n] = v;
            let _ = Manifest::decode(&b);
            assert_read_agrees(&b);
        }
    }
}

#[test]
fn decode_never_panics_on_random_input_behind_a_valid_header() {
    let mut next = xorshift(0x9E37_79B9_7F4A_7C15u64);
    for round in 0..2000u32 {
        let len = (next() % 200) as usize;
        let body: Vec<u8> = (0..len).map(|_| next() as u8).collect();
        let count = next() % 4;
        let input = [
            &MAGIC[..],
            &VERSION.to_le_bytes(),
            &count.to_le_bytes(),
            &body,
        ]
        .concat();
        let got = Manifest::decode(&input);
        if round.is_multiple_of(10) {
            assert_read_agrees(&input);
        }
        assert_eq!(
            validate_encoded(&input).is_ok(),
            got.is_ok(),
            "round {round}"
        );
        let view = ManifestView::parse(&input[..]);
        assert_eq!(view.is_ok(), got.is_ok(), "round {round}");
        if let (Ok(v), Ok(m)) = (&view, &got) {
            assert_view_is(v, m);
        }
        // Whatever decodes must re-encode to the same bytes (one tree, one encoding).
        if let Ok(m) = got {
            assert_eq!(m.encode(), input, "round {round}");
        }
    }
}

#[test]
fn validate_encoded_counts_and_agrees_with_decode_on_nesting() {
    let m = Manifest::new(vec![
        file(b"a/b"),
        Entry::blob(b"a-b".to_vec(), true, 7, h(2)),
        Entry::symlink(b"l".to_vec(), b"t".to_vec()),
        Entry::dir(b"e".to_vec()),
        file(b"e-f/g"),
    ])
    .expect("a valid tree");
    let counts = validate_encoded(&m.encode()).expect("its encoding validates");
    assert_eq!(
        counts,
        EncodedCounts {
            entries: 5,
            files: 3,
            bytes: 13
        }
    );
    // Nested below an entry through siblings that sort between them, at several depths.
    let nested: &[&[&[u8]]] = &[
        &[b"a", b"a-b", b"a.c", b"a/x"],
        &[b"a/b", b"a/b-c", b"a/b/c/d"],
        &[b"a/b", b"a/c", b"a/c!", b"a/c/d"],
        &[b"x", b"x-", b"x-/y", b"x/y"],
    ];
    for paths in nested {
        let entries: Vec<Entry> = paths.iter().map(|p| file(p)).collect();
        let bytes = raw(&entries);
        let want = Manifest::decode(&bytes).unwrap_err();
        assert!(
            matches!(want, ManifestError::BeneathNonDir { .. }),
            "{want}"
        );
        assert_eq!(validate_encoded(&bytes), Err(want));
    }
    let fine: Vec<Entry> = [&b"a-b"[..], b"a.c", b"a/x", b"a/y/z", b"ab"]
        .iter()
        .map(|p| file(p))
        .collect();
    assert!(validate_encoded(&raw(&fine)).is_ok());
    assert!(Manifest::decode(&raw(&fine)).is_ok());
}

/// The nesting rule the simple way: no entry's ancestor directory is an entry.
fn nested_reference(entries: &[Entry]) -> Option<(u64, Vec<u8>)> {
    let all: std::collections::HashSet<&[u8]> = entries.iter().map(|e| e.path.as_slice()).collect();
    entries.iter().enumerate().find_map(|(i, e)| {
        e.path
            .iter()
            .enumerate()
            .filter(|(_, b)| **b == b'/')
            .map(|(pos, _)| &e.path[..pos])
            .find(|p| all.contains(p))
            .map(|p| (i as u64, p.to_vec()))
    })
}

#[test]
fn nesting_check_agrees_with_a_simple_search_on_random_trees() {
    let mut next = xorshift(0x2545_F491_4F6C_DD1Du64);
    let alphabet = [b'a', b'b', b'-', b'.', b'!'];
    for round in 0..3000 {
        let n = 1 + next() % 12;
        let mut paths: Vec<Vec<u8>> = (0..n)
            .map(|_| {
                let depth = 1 + next() % 3;
                let comps: Vec<Vec<u8>> = (0..depth)
                    .map(|_| {
                        let len = 1 + next() % 2;
                        (0..len)
                            .map(|_| alphabet[(next() % alphabet.len() as u64) as usize])
                            .collect()
                    })
                    .collect();
                comps.join(&b'/')
            })
            .filter(|p| p.split(|b| *b == b'/').all(|c| c != b"." && c != b".."))
            .collect();
        paths.sort();
        paths.dedup();
        let entries: Vec<Entry> = paths.iter().map(|p| file(p)).collect();
        let want = nested_reference(&entries);
        let got = match validate(&entries) {
            Ok(()) => None,
            Err(ManifestError::BeneathNonDir { index, parent, .. }) => Some((index, parent)),
            Err(e) => panic!("round {round}: unexpected {e}"),
        };
        assert_eq!(got, want, "round {round}: {paths:?}");
        assert_eq!(validate_encoded(&raw(&entries)).is_ok(), want.is_none());
    }
}

/// `v` holds exactly `m`'s entries, read every way a view reads them.
fn assert_view_is<B: AsRef<[u8]>>(v: &ManifestView<B>, m: &Manifest) {
    assert_eq!(v.len(), m.entries().len());
    assert_eq!(v.is_empty(), m.entries().is_empty());
    assert_eq!(v.iter().len(), m.entries().len());
    let by_iter: Vec<Entry> = v.iter().map(|e| e.to_entry()).collect();
    assert_eq!(by_iter, m.entries());
    for (i, e) in m.entries().iter().enumerate() {
        assert_eq!(v.get(i).to_entry(), *e);
        assert_eq!(v.path(i), e.path.as_slice());
        assert_eq!(v.find(&e.path), Some(i));
        assert_eq!(v.get(i).size(), e.size());
        assert_eq!(v.get(i).hash().as_ref(), e.hash());
    }
    assert_eq!(v.files(), m.files());
    assert_eq!(v.total_bytes(), m.bytes());
    assert_eq!(v.bytes(), m.encode());
}

#[test]
fn a_view_reads_every_entry_a_decode_reads() {
    let m = Manifest::new(vec![
        Entry::symlink(b"z-link".to_vec(), b"../outside/\xff".to_vec()),
        Entry::blob(b"bin/run".to_vec(), true, 10, h(2)),
        file(b"a\xffb/c"),
        Entry::dir(b"empty".to_vec()),
    ])
    .expect("a valid tree");
    let bytes = m.encode();
    let borrowed = ManifestView::parse(&bytes[..]).expect("its encoding parses");
    assert_view_is(&borrowed, &m);
    assert_eq!(borrowed.get(3).target(), Some(&b"../outside/\xff"[..]));
    assert_eq!(borrowed.get(0).target(), None);
    let owned = ManifestView::of(&m).expect("small");
    assert_view_is(&owned, &m);
    assert_view_is(&ManifestView::parse(bytes.clone()).expect("parses"), &m);
    let empty = ManifestView::default();
    assert_view_is(&empty, &Manifest::default());
    assert_view_is(
        &ManifestView::parse(empty.bytes()).expect("parses"),
        &Manifest::default(),
    );
}

#[test]
fn encoded_len_is_the_length_of_the_encoding_of_each_kind() {
    let entries = [
        file(b"a/b"),
        Entry::blob(b"x".to_vec(), true, 1, h(3)),
        Entry::symlink(b"dir/l".to_vec(), b"../../target".to_vec()),
        Entry::dir(b"empty/dir".to_vec()),
    ];
    let m = Manifest::new(entries.to_vec()).expect("a valid tree");
    let v = ManifestView::parse(m.encode()).expect("parses");
    for (i, e) in v.iter().enumerate() {
        let mut one = Vec::new();
        match e.data {
            DataRef::Blob { size, hash } => {
                encode_blob(&mut one, e.path, e.kind == Kind::Executable, size, &hash)
            }
            DataRef::Target(t) => encode_symlink(&mut one, e.path, t),
            DataRef::None => encode_dir(&mut one, e.path),
        }
        assert_eq!(e.encoded_len(), one.len(), "{e:?}");
        assert_eq!(
            encoded_len(e.kind, e.path.len(), e.target().map_or(0, <[u8]>::len)),
            one.len()
        );
        // The entry's bytes in the view are the same ones, and read back alone.
        let at = v.offs[i] as usize;
        assert_eq!(&v.bytes()[at..at + one.len()], one.as_slice());
        assert_eq!(EntryRef::decode_one(&one), Ok(e));
    }
}

#[test]
fn decode_one_refuses_anything_but_exactly_one_entry() {
    let mut one = Vec::new();
    encode_symlink(&mut one, b"l", b"t");
    assert!(EntryRef::decode_one(&one).is_ok());
    assert_eq!(
        EntryRef::decode_one(&one[..one.len() - 1]),
        Err(ManifestError::Truncated { index: 0 })
    );
    assert_eq!(
        EntryRef::decode_one(&[&one[..], b"x"].concat()),
        Err(ManifestError::TrailingBytes(1))
    );
    assert_eq!(
        EntryRef::decode_one(&[]),
        Err(ManifestError::Truncated { index: 0 })
    );
    let mut bad = Vec::new();
    encode_dir(&mut bad, b"d");
    *bad.last_mut().expect("a kind byte") = 0;
    assert!(matches!(
        EntryRef::decode_one(&bad),
        Err(ManifestError::UnknownKind { .. })
    ));
}

/// Fewer than `most` random paths of 1 to `longest` bytes of `-`, `.`, `/`, `0`, `a`,
/// `b` (bytes that sort around `/`), sorted and distinct; and directories to look up: each
/// path, each path's first half, `a`, `a/`, `-` and the root.
fn random_sorted_paths(
    next: &mut impl FnMut() -> u64,
    most: u64,
    longest: u64,
) -> (Vec<Vec<u8>>, Vec<Vec<u8>>) {
    let alphabet = [b'-', b'.', b'/', b'0', b'a', b'b'];
    let mut paths: Vec<Vec<u8>> = (0..next() % most)
        .map(|_| {
            (0..1 + next() % longest)
                .map(|_| alphabet[(next() % alphabet.len() as u64) as usize])
                .collect()
        })
        .collect();
    paths.sort();
    paths.dedup();
    let mut dirs: Vec<Vec<u8>> = paths.clone();
    dirs.extend(paths.iter().map(|p| p[..p.len() / 2].to_vec()));
    dirs.extend([b"a".to_vec(), b"a/".to_vec(), b"-".to_vec(), Vec::new()]);
    (paths, dirs)
}

/// The one-search lookup of the first path beneath a directory finds what the two-search
/// range starts with, for random sorted lists of short paths over an alphabet of bytes
/// that sort around `/` (`-`, `.`, `0`), and every directory, present or not.
#[test]
fn first_beneath_is_where_the_range_beneath_starts() {
    let mut next = xorshift(0x5151_2b2b_7777_0101);
    for round in 0..300 {
        let (paths, dirs) = random_sorted_paths(&mut next, 40, 6);
        let path = |i: usize| paths[i].as_slice();
        for dir in &dirs {
            for within in [0..paths.len(), paths.len() / 3..paths.len()] {
                let range = range_in(within.clone(), dir, path);
                let first = first_beneath(within.clone(), dir, path);
                let want = (!range.is_empty()).then_some(range.start);
                assert_eq!(first, want, "round {round}, {} in {paths:?}", show(dir));
            }
        }
    }
}

/// The galloping search finds the range bisection finds, from every hint (before,
/// inside, past the range, outside `within`), over random sorted lists of paths whose
/// bytes sort around `/`, and leaves the hint at the range's end.
#[test]
fn range_near_is_range_in_from_any_hint() {
    let mut next = xorshift(0x0dd5_eed5_1234_9876);
    let mut nonempty = 0;
    for round in 0..300 {
        let (paths, dirs) = random_sorted_paths(&mut next, 60, 7);
        let path = |i: usize| paths[i].as_slice();
        let n = paths.len();
        for dir in &dirs {
            // (`within` the whole list, its end, its middle, and nothing.)
            for within in [0..n, n / 3..n, n / 4..3 * n / 4, n / 2..n / 2] {
                let want = range_in(within.clone(), dir, path);
                nonempty += usize::from(!want.is_empty());
                for hint in (0..n + 2).chain([usize::MAX]) {
                    let mut near = hint;
                    let got = range_near(within.clone(), &mut near, dir, path);
                    assert_eq!(got, want, "round {round}, {} from {hint}", show(dir));
                    assert_eq!(near, want.end, "round {round}, {}", show(dir));
                }
            }
        }
    }
    assert!(nonempty > 1000, "{nonempty} non-empty ranges");
}

#[test]
fn lookups_by_path_search_only_what_they_are_given() {
    let m = Manifest::new(vec![
        Entry::blob(b"a".to_vec(), false, 1, h(1)),
        Entry::blob(b"a-b".to_vec(), false, 1, h(1)),
        Entry::blob(b"d/x".to_vec(), false, 1, h(1)),
        Entry::blob(b"d/y/z".to_vec(), true, 1, h(1)),
        Entry::symlink(b"d/z".to_vec(), b"x".to_vec()),
        Entry::dir(b"d0".to_vec()),
    ])
    .expect("valid");
    let v = ManifestView::of(&m).expect("small");
    let r = v.range(b"d");
    assert_eq!(r, 2..5);
    assert_eq!(v.range_in(0..6, b"d/y"), 3..4);
    assert_eq!(v.range_in(r.clone(), b"d/y"), 3..4);
    assert!(v.range(b"a").is_empty());
    assert_eq!(v.range(b""), 0..6);
    for (want, path) in [
        (Some(3), &b"d/y/z"[..]),
        (Some(5), b"d0"),
        (None, b"d"),
        (None, b"d/y"),
        (None, b"zz"),
    ] {
        assert_eq!(v.find(path), want, "{}", show(path));
        assert_eq!(m.find(path), want, "{}", show(path));
    }
    for (want, dir) in [
        (true, &b"d"[..]),
        (true, b"d/y"),
        (false, b"a"),
        (false, b"d0"),
        (false, b"e"),
        (true, b""),
    ] {
        assert_eq!(v.has_beneath(dir), want, "{}", show(dir));
        assert_eq!(m.has_beneath(dir), want, "{}", show(dir));
    }
    assert!(!Manifest::default().has_beneath(b""));
    let mut from = r.start;
    assert_eq!(v.find_child_from(&r, &mut from, b"d", b"x"), Some(2));
    assert_eq!(v.find_child_from(&r, &mut from, b"d", b"y"), None);
    assert_eq!(v.find_child_from(&r, &mut from, b"d", b"z"), Some(4));
    let root = v.range(b"");
    let mut from = root.start;
    assert_eq!(v.find_child_from(&root, &mut from, b"", b"d0"), Some(5));
}

#[test]
fn galloping_lookup_finds_what_binary_search_finds_for_names_in_order() {
    let mut entries = vec![Entry::blob(b"d".to_vec(), false, 1, h(1))];
    for i in 0..300u32 {
        entries.push(Entry::blob(
            format!("e/f{i:04}").into_bytes(),
            false,
            1,
            h(1),
        ));
        if i % 7 == 0 {
            entries.push(Entry::blob(
                format!("e/f{i:04}-d/deep").into_bytes(),
                false,
                1,
                h(1),
            ));
        }
    }
    entries.push(Entry::blob(b"z".to_vec(), false, 1, h(1)));
    let m = Manifest::new(entries).expect("valid");
    let v = ManifestView::of(&m).expect("small");
    let r = v.range(b"e");
    // Every third name, some absent, some sorting between present ones.
    let mut from = r.start;
    for i in (0..330u32).step_by(3) {
        let name = format!("f{i:04}");
        let want = v.find(format!("e/{name}").as_bytes());
        assert_eq!(
            v.find_child_from(&r, &mut from, b"e", name.as_bytes()),
            want,
            "{name}"
        );
        let between = format!("f{i:04}-");
        assert_eq!(
            v.find_child_from(&r, &mut from, b"e", between.as_bytes()),
            None
        );
    }
    let root = v.range(b"");
    let mut from = root.start;
    assert_eq!(v.find_child_from(&root, &mut from, b"", b"d"), Some(0));
    assert_eq!(v.find_child_from(&root, &mut from, b"", b"e"), None);
    assert_eq!(v.find_child_from(&root, &mut from, b"", b"z"), v.find(b"z"));
}

#[test]
fn show_escapes_non_utf8_and_controls() {
    assert_eq!(show(b"a\xffb"), "\"a\\xffb\"");
    assert_eq!(show("é\n".as_bytes()), "\"é\\n\"");
}
