//! Version 2 of the encoding (what `snapshot --archive` records): canonical, version 1
//! unchanged, every reader agreeing, hostile input refused without a panic.

use super::check::validate_encoded;
use super::owned::Manifest;
use super::stream::{read_each, read_each_meta};
use super::view::ManifestView;
use super::*;
use crate::hash::Hash;
use cowtree_link::Preserve;

type Res = Result<(), Box<dyn std::error::Error>>;

fn h(n: u8) -> Hash {
    Hash::from_bytes([n; 32])
}

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

/// A tree with every part of version 2: a hardlink pair, owners, attributes and an ACL, a
/// symlink with an attribute of its own, a set-user-ID file, a sticky directory, a FIFO and a character device, the root's record.
fn archived() -> Result<Manifest, ManifestError> {
    let acl: &[u8] = b"\x02\x00\x00\x00\x01\x00\x06\x00\xff\xff\xff\xff";
    let entries = vec![
        (
            Entry::blob(b"d/one".to_vec(), false, 3, h(1)),
            meta(0o640, 1234, 5678, &[(b"user.test", b"v")]),
            Some(7),
        ),
        (
            Entry::blob(b"two".to_vec(), false, 3, h(1)),
            meta(0o600, 1, 1, &[]),
            Some(7),
        ),
        (
            Entry::blob(b"suid".to_vec(), true, 5, h(2)),
            meta(0o4755, 0, 0, &[(b"system.posix_acl_access", acl)]),
            None,
        ),
        (
            Entry::symlink(b"l".to_vec(), b"d/one".to_vec()),
            meta(0, 1234, 5678, &[(b"trusted.test", b"1")]),
            None,
        ),
        (Entry::dir(b"empty".to_vec()), meta(0o700, 0, 0, &[]), None),
        (Entry::dir(b"zdev".to_vec()), meta(0o755, 0, 0, &[]), None),
    ];
    let extras = vec![
        Extra {
            path: b"d".to_vec(),
            kind: ExtraKind::Dir,
            meta: meta(0o1777, 0, 5678, &[(b"user.b", b"2"), (b"user.a", b"1")]),
        },
        Extra {
            path: Vec::new(),
            kind: ExtraKind::Dir,
            meta: meta(0o755, 0, 0, &[]),
        },
        Extra {
            path: b"d/fifo".to_vec(),
            kind: ExtraKind::Fifo,
            meta: meta(0o644, 0, 0, &[]),
        },
        // In a directory holding nothing else: an empty-directory entry.
        Extra {
            path: b"zdev/null".to_vec(),
            kind: ExtraKind::CharDevice(0x103),
            meta: meta(0o666, 0, 0, &[]),
        },
        // A directory holding only special files is an empty directory to version 1.
        Extra {
            path: b"empty/sock".to_vec(),
            kind: ExtraKind::Socket,
            meta: meta(0o755, 0, 0, &[]),
        },
    ];
    Manifest::with_archive(Preserve::ALL, entries, extras)
}

/// Every reader of `bytes` agrees with [`Manifest::decode`]: refused by all, or read by all
/// (the same entries; the same manifest where the reader keeps the archive), and what
/// decodes encodes to the same bytes.
fn assert_readers_agree(bytes: &[u8]) -> Result<(), String> {
    let want = Manifest::decode(bytes);
    let ok = want.is_ok();
    let fail = |what: &str| format!("{what} disagrees with decode ({want:?}) on {bytes:?}");
    if validate_encoded(bytes).is_ok() != ok {
        return Err(fail("validate_encoded"));
    }
    if ManifestView::parse(bytes).is_ok() != ok {
        return Err(fail("ManifestView::parse"));
    }
    for chunk in [1, 7, 64, 1 << 20] {
        let (hash, got) =
            Manifest::read_chunked(bytes, bytes.len() as u64, chunk).map_err(|e| e.to_string())?;
        if hash != Hash::of(bytes) || got != want {
            return Err(fail(&format!("read in chunks of {chunk}")));
        }
        let (_, compact) =
            crate::compact::CompactManifest::read_chunked(bytes, bytes.len() as u64, chunk)
                .map_err(|e| e.to_string())?;
        if compact.is_ok() != ok {
            return Err(fail(&format!("the compact read in chunks of {chunk}")));
        }
    }
    let mut seen = 0usize;
    let (_, each) =
        read_each(bytes, bytes.len() as u64, &mut |_| seen += 1).map_err(|e| e.to_string())?;
    if each.is_ok() != ok {
        return Err(fail("read_each"));
    }
    // What `show --json` reads: each entry's metadata, and the records.
    let mut metas = Vec::new();
    let (_, each_meta) = read_each_meta(bytes, bytes.len() as u64, &mut |_, m| {
        metas.push(m.cloned())
    })
    .map_err(|e| e.to_string())?;
    if each_meta.is_ok() != ok {
        return Err(fail("read_each_meta"));
    }
    if let (Ok(m), Ok(got)) = (&want, &each_meta) {
        let agree = match (m.archive(), got) {
            (Some(a), Some(got)) => {
                (a.preserve, &a.extras) == (got.preserve, &got.extras)
                    && metas.iter().eq(a
                        .entries
                        .iter()
                        .map(|e| Some(e.clone()))
                        .collect::<Vec<_>>()
                        .iter())
            }
            (None, None) => metas.len() == m.entries().len() && metas.iter().all(Option::is_none),
            _ => false,
        };
        if !agree {
            return Err(fail("read_each_meta's metadata and records"));
        }
    }
    if let Ok(m) = &want {
        if m.encode() != bytes {
            return Err(format!("decoded, but encodes otherwise: {bytes:?}"));
        }
        if seen != m.entries().len() {
            return Err(fail("the entries read_each saw"));
        }
    }
    Ok(())
}

#[test]
fn without_an_archive_the_encoding_is_version_1_byte_for_byte() -> Res {
    // The version 1 encoding, written out by hand from the format (docs/manifest.md): a
    // fixture of what older stores hold. Its id must never change.
    let mut fixture = Vec::new();
    fixture.extend_from_slice(b"CTMANIF\n");
    fixture.extend_from_slice(&1u32.to_le_bytes());
    fixture.extend_from_slice(&3u64.to_le_bytes());
    fixture.extend_from_slice(&3u32.to_le_bytes());
    fixture.extend_from_slice(b"a/f");
    fixture.push(1);
    fixture.extend_from_slice(&3u64.to_le_bytes());
    fixture.extend_from_slice(&[1; 32]);
    fixture.extend_from_slice(&1u32.to_le_bytes());
    fixture.extend_from_slice(b"e");
    fixture.push(4);
    fixture.extend_from_slice(&1u32.to_le_bytes());
    fixture.extend_from_slice(b"l");
    fixture.push(3);
    fixture.extend_from_slice(&1u32.to_le_bytes());
    fixture.extend_from_slice(b"t");
    let m = Manifest::new(vec![
        Entry::symlink(b"l".to_vec(), b"t".to_vec()),
        Entry::dir(b"e".to_vec()),
        Entry::blob(b"a/f".to_vec(), false, 3, h(1)),
    ])?;
    assert_eq!(m.encode(), fixture);
    assert!(m.archive().is_none());
    let decoded = Manifest::decode(&fixture)?;
    assert_eq!(decoded, m);
    assert!(decoded.archive().is_none());
    assert_eq!(
        m.id().to_hex(),
        "564b51eba7a5f6cf32b9b71f84b3c3df4ff2f9ece1799bef65ef6291add9bf3c"
    );
    assert_readers_agree(&fixture)?;
    Ok(())
}

#[test]
fn an_archive_is_version_2_and_round_trips_through_every_reader() -> Res {
    let m = archived()?;
    let bytes = m.encode();
    assert_eq!(&bytes[8..12], &2u32.to_le_bytes());
    let back = Manifest::decode(&bytes)?;
    assert_eq!(back, m);
    let a = back.archive().ok_or("no archive decoded")?;
    assert_eq!(a.preserve, Preserve::ALL);
    // Sorted: the root's record first; attributes by name.
    let paths: Vec<&[u8]> = a.extras.iter().map(|x| x.path.as_slice()).collect();
    assert_eq!(
        paths,
        [&b""[..], b"d", b"d/fifo", b"empty/sock", b"zdev/null"].to_vec()
    );
    assert_eq!(a.extras[1].meta.xattrs[0].0, b"user.a");
    // The hardlink pair: the first name in path order carries the metadata.
    let names: Vec<&[u8]> = m.entries().iter().map(|e| e.path.as_slice()).collect();
    assert_eq!(
        names,
        [&b"d/one"[..], b"empty", b"l", b"suid", b"two", b"zdev"].to_vec()
    );
    assert_eq!(a.entries[0].link, Link::First);
    assert_eq!(a.entries[0].meta.as_ref().map(|m| m.uid), Some(1234));
    assert_eq!(
        a.entries[4],
        EntryMeta {
            link: Link::Of(0),
            meta: None
        }
    );
    assert_eq!(a.entries[3].meta.as_ref().map(|m| m.mode), Some(0o4755));
    // The same tree without its archive is another snapshot, of version 1.
    let plain = Manifest::new(m.entries().to_vec())?;
    assert_eq!(&plain.encode()[8..12], &1u32.to_le_bytes());
    assert_ne!(plain.id(), m.id());
    // The view reads the same entries.
    let v = ManifestView::of(&m)?;
    assert_eq!(v.len(), m.entries().len());
    for (i, e) in m.entries().iter().enumerate() {
        assert_eq!(v.get(i).to_entry(), *e);
        assert_eq!(v.find(&e.path), Some(i));
    }
    let via_iter: Vec<Entry> = v.iter().map(|e| e.to_entry()).collect();
    assert_eq!(via_iter, m.entries());
    assert_readers_agree(&bytes)?;
    Ok(())
}

#[test]
fn a_corrupted_archive_is_refused_without_a_panic_by_every_reader() -> Res {
    let bytes = archived()?.encode();
    let mut refused = 0;
    for n in 0..bytes.len() {
        assert_readers_agree(&bytes[..n])?;
        refused += usize::from(Manifest::decode(&bytes[..n]).is_err());
        for v in [0u8, 1, 2, 0x2f, 0x7f, 0xff] {
            let mut b = bytes.clone();
            if b[n] == v {
                continue;
            }
            b[n] = v;
            assert_readers_agree(&b)?;
        }
        let mut b = bytes.clone();
        b[n] ^= 0x80;
        assert_readers_agree(&b)?;
    }
    // Every proper prefix is refused.
    assert_eq!(refused, bytes.len());
    Ok(())
}

#[test]
fn inconsistent_archives_are_refused_naming_the_entry_or_record() -> Res {
    let good = archived()?;
    let a = good.archive().ok_or("no archive")?.clone();
    let with = |f: &dyn Fn(&mut Archive)| {
        let mut a = a.clone();
        f(&mut a);
        Manifest {
            entries: good.entries().to_vec(),
            archive: Some(a),
        }
        .encode()
    };
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (
            with(&|a| a.entries[4].link = Link::Of(2)),
            "entry 4 \"two\": a later name of entry 2",
        ),
        (
            with(&|a| {
                a.entries[3] = EntryMeta {
                    link: Link::Of(0),
                    meta: None,
                }
            }),
            "entry 3 \"suid\": a later name of \"d/one\", whose kind, size or blob differ",
        ),
        (
            with(&|a| {
                a.entries[4] = EntryMeta {
                    link: Link::None,
                    meta: Some(Meta::default()),
                }
            }),
            "entry 0 \"d/one\": the first name of a hardlink group without a later name",
        ),
        (
            with(&|a| {
                if let Some(m) = a.entries[1].meta.as_mut() {
                    m.mode = 0o10000;
                }
            }),
            "entry 1 \"empty\": mode 10000 has bits beyond 07777",
        ),
        (
            with(&|a| {
                if let Some(m) = a.entries[0].meta.as_mut() {
                    m.mode = 0o755;
                }
            }),
            "entry 0 \"d/one\": a file of kind file with mode 755",
        ),
        (
            with(&|a| {
                if let Some(m) = a.entries[0].meta.as_mut() {
                    m.xattrs = vec![(b"trusted.SGI_ACL_FILE".to_vec(), b"x".to_vec())];
                }
            }),
            "entry 0 \"d/one\": attribute \"trusted.SGI_ACL_FILE\" is not one the snapshot keeps",
        ),
        (
            with(&|a| {
                if let Some(m) = a.entries[2].meta.as_mut() {
                    m.mode = 0o777;
                }
            }),
            "entry 2 \"l\": a symlink with a mode",
        ),
        (
            with(&|a| {
                if let Some(m) = a.entries[2].meta.as_mut() {
                    m.xattrs = vec![(b"system.posix_acl_access".to_vec(), b"x".to_vec())];
                }
            }),
            "entry 2 \"l\": a symlink with an ACL",
        ),
        (
            with(&|a| a.extras[1].meta.xattrs.reverse()),
            "record 1 \"d\" (directories and special files): attribute \"user.a\" out of order",
        ),
        (
            with(&|a| a.extras[2].path = b"d/one/x".to_vec()),
            "entry 0 \"d/one\": the fifo \"d/one/x\" lies beneath it",
        ),
        (
            with(&|a| a.extras[2].path = b"d/one".to_vec()),
            "entry 0 \"d/one\": also recorded as a fifo",
        ),
        (
            with(&|a| a.extras[3].path = b"zz".to_vec()),
            "record 4 \"zdev/null\" (directories and special files): records out of order",
        ),
        (
            with(&|a| {
                a.extras.push(Extra {
                    path: b"zdev/null/x".to_vec(),
                    kind: ExtraKind::Fifo,
                    meta: Meta::default(),
                })
            }),
            "record 5 \"zdev/null/x\" (directories and special files): lies beneath the character device \"zdev/null\"",
        ),
        (
            with(&|a| a.extras[3].path = b"empty/x/sock".to_vec()),
            "entry 1 \"empty\": the socket \"empty/x/sock\" lies beneath it",
        ),
        (
            with(&|a| {
                a.extras[3].path = b"empty/x".to_vec();
                a.extras[3].kind = ExtraKind::Dir;
            }),
            "entry 1 \"empty\": the directory \"empty/x\" lies beneath it",
        ),
        (
            with(&|a| {
                // A directory holding only a special file, as a record: it is an entry.
                let dir = Extra {
                    path: b"q".to_vec(),
                    kind: ExtraKind::Dir,
                    meta: Meta::default(),
                };
                let fifo = Extra {
                    path: b"q/p".to_vec(),
                    kind: ExtraKind::Fifo,
                    meta: Meta::default(),
                };
                a.extras.splice(4..4, [dir, fifo]);
            }),
            "record 4 \"q\" (directories and special files): a directory record with no entry beneath it",
        ),
        (
            with(&|a| {
                let fifo = Extra {
                    path: b"r/p".to_vec(),
                    kind: ExtraKind::Fifo,
                    meta: Meta::default(),
                };
                a.extras.insert(4, fifo);
            }),
            "record 4 \"r/p\" (directories and special files): its directory is not in the tree",
        ),
        (
            with(&|a| {
                a.extras.remove(1);
            }),
            "entry 0 \"d/one\": its directory \"d\" has no record",
        ),
        (
            with(&|a| {
                a.extras.remove(0);
            }),
            "manifest version 2: no record of the root directory",
        ),
        (
            with(&|a| a.preserve.special = false),
            "record 2 \"d/fifo\" (directories and special files): a special file where special files were not kept",
        ),
        (
            with(&|a| a.preserve.ownership = false),
            "owner, group or set-ID bits recorded where ownership was not kept",
        ),
        (
            with(&|a| a.preserve = Preserve::default()),
            "manifest version 2: kept items 0x00 are not valid",
        ),
        (
            // A worktree's store marker would send commands run in the checkout to the
            // store it names.
            with(&|a| {
                a.extras[1].meta.xattrs = vec![(b"user.cowtree.store".to_vec(), b"/x".to_vec())]
            }),
            "record 1 \"d\" (directories and special files): attribute \"user.cowtree.store\", a worktree's store marker",
        ),
        (
            with(&|a| {
                if let Some(m) = a.entries[0].meta.as_mut() {
                    m.xattrs = vec![(b"system.posix_acl_default".to_vec(), b"x".to_vec())];
                }
            }),
            "entry 0 \"d/one\": attribute \"system.posix_acl_default\" (a default ACL) on what is not a directory",
        ),
        (
            with(&|a| {
                a.extras[1].meta.xattrs = (0..300)
                    .map(|i| (format!("user.{i:0>250}").into_bytes(), Vec::new()))
                    .collect()
            }),
            "record 1 \"d\" (directories and special files): attribute names of 76800 bytes in all",
        ),
        (
            // An entry beneath a FIFO's record ("d" a FIFO, "d/fifo" gone).
            with(&|a| {
                a.extras[1].kind = ExtraKind::Fifo;
                a.extras[1].meta = Meta::default();
                a.extras.remove(2);
            }),
            "entry 0 \"d/one\": it lies beneath the fifo \"d\"",
        ),
    ];
    for (bytes, want) in cases {
        let got = Manifest::decode(&bytes).err().ok_or(want)?;
        assert!(got.to_string().contains(want), "{got} (wanted {want})");
        assert_readers_agree(&bytes)?;
    }
    Ok(())
}

#[test]
fn the_builder_groups_hardlinks_by_path_order_and_drops_lone_groups() -> Res {
    let m = Manifest::with_archive(
        Preserve {
            links: true,
            ..Preserve::default()
        },
        vec![
            (
                Entry::blob(b"b".to_vec(), false, 1, h(1)),
                Meta::default(),
                Some(1),
            ),
            (
                Entry::blob(b"a".to_vec(), false, 1, h(1)),
                meta(0o644, 0, 0, &[]),
                Some(1),
            ),
            (
                Entry::blob(b"c".to_vec(), false, 1, h(2)),
                Meta::default(),
                Some(2),
            ),
        ],
        vec![Extra {
            path: Vec::new(),
            kind: ExtraKind::Dir,
            meta: Meta::default(),
        }],
    )?;
    let a = m.archive().ok_or("no archive")?;
    assert_eq!(a.entries[0].link, Link::First);
    assert_eq!(a.entries[0].meta, Some(meta(0o644, 0, 0, &[])));
    assert_eq!(a.entries[1].link, Link::Of(0));
    assert_eq!(a.entries[2].link, Link::None);
    Ok(())
}

#[test]
fn with_parts_is_what_its_encoding_decodes_to_and_refuses_what_it_cannot_frame() -> Res {
    let m = archived()?;
    let a = m.archive().ok_or("not version 2")?.clone();
    let again = Manifest::with_parts(m.entries().to_vec(), Some(a.clone()))?;
    assert_eq!(again, m);
    let v1 = Manifest::new(m.entries().to_vec())?;
    assert_eq!(Manifest::with_parts(v1.entries().to_vec(), None)?, v1);
    let refused = |a: Archive, want: &str| -> Res {
        let err = Manifest::with_parts(m.entries().to_vec(), Some(a))
            .err()
            .ok_or_else(|| format!("accepted: {want}"))?
            .to_string();
        assert!(err.contains(want), "{err} (wanted {want})");
        Ok(())
    };
    // Metadata on a later name (the encoding would drop it), or none on another.
    let later = a
        .entries
        .iter()
        .position(|e| matches!(e.link, Link::Of(_)))
        .ok_or("no link")?;
    let mut b = a.clone();
    b.entries[later].meta = Some(Meta::default());
    refused(b, "metadata on a later name of a hardlink group")?;
    let mut b = a.clone();
    b.entries[0].meta = None;
    refused(b, "entry 0 ")?;
    // A name the encoding's length byte cannot hold.
    let mut b = a.clone();
    if let Some(meta) = &mut b.entries[0].meta {
        meta.xattrs = vec![([b'u'; 300].to_vec(), Vec::new())];
    }
    refused(b, "an attribute name longer than 255 bytes")?;
    let mut b = a.clone();
    b.extras[0].meta.xattrs = vec![([b'u'; 256].to_vec(), Vec::new())];
    refused(
        b,
        "record 0 \"\" (directories and special files): an attribute name longer",
    )?;
    let mut b = a.clone();
    b.entries.pop();
    refused(b, "metadata of")?;
    // The rest as the decoder refuses it.
    let mut b = a;
    b.entries[0].link = Link::Of(5);
    b.entries[0].meta = None;
    refused(b, "entry 0 ")?;
    Ok(())
}
