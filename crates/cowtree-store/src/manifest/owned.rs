//! A manifest as owned entries ([`Manifest`]): built from entries in any order, encoded,
//! decoded from bytes or read from a stream, always validated.

use crate::hash::Hash;

use super::archive::{
    Archive, ArchiveCheck, EntryMeta, Extra, Link, Meta, VERSION_ARCHIVE, encode_entry_meta,
    encode_head,
};
use super::check::validate;
use super::encoding::{
    Data, Entry, HEADER_LEN, MAGIC, Reader, encode_blob, encode_dir, encode_header, encode_symlink,
};
use super::error::ManifestError;
use super::kind::Kind;
use super::sorted::{find_sorted, first_beneath};
use super::stream::{READ_CHUNK, read_into};

/// A validated manifest: entries sorted by path bytes, every path valid, no duplicates, nothing
/// beneath a file, symlink or empty directory.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Manifest {
    pub(super) entries: Vec<Entry>,
    /// What `snapshot --archive` recorded beside the entries (version 2), if anything.
    pub(super) archive: Option<Archive>,
}

impl Manifest {
    /// Builds a manifest from entries in any order: sorts them by path bytes, then validates
    /// (duplicates, paths, nesting, targets).
    pub fn new(mut entries: Vec<Entry>) -> Result<Manifest, ManifestError> {
        entries.sort_by(|a, b| a.path.cmp(&b.path));
        validate(&entries)?;
        Ok(Manifest {
            entries,
            archive: None,
        })
    }

    /// Builds a version 2 manifest (see [`Archive`]) from entries in any order, each with its
    /// metadata and, for a file that is one of several names of one inode, a number naming
    /// its hardlink group (any number, the same for the names of one inode), and the records
    /// of directories and special files (in any order). The first name of each group in path
    /// order carries the group's metadata; the others' is dropped. Then the whole is checked
    /// as [`Manifest::decode`] checks it.
    pub fn with_archive(
        preserve: cowtree_link::Preserve,
        mut entries: Vec<(Entry, Meta, Option<u64>)>,
        mut extras: Vec<Extra>,
    ) -> Result<Manifest, ManifestError> {
        entries.sort_by(|a, b| a.0.path.cmp(&b.0.path));
        extras.sort_by(|a, b| a.path.cmp(&b.path));
        let mut first = std::collections::HashMap::new();
        let mut metas = Vec::with_capacity(entries.len());
        let mut sizes = std::collections::HashMap::<u64, usize>::new();
        for (_, _, group) in &entries {
            if let Some(g) = group {
                *sizes.entry(*g).or_default() += 1;
            }
        }
        let mut list = Vec::with_capacity(entries.len());
        for (i, (mut e, mut meta, group)) in entries.into_iter().enumerate() {
            meta.xattrs.sort();
            let grouped = group.filter(|g| sizes.get(g).is_some_and(|&n| n > 1));
            let m = match grouped {
                None => EntryMeta {
                    link: Link::None,
                    meta: Some(meta),
                },
                Some(g) => match first.get(&g) {
                    None => {
                        first.insert(g, i as u64);
                        EntryMeta {
                            link: Link::First,
                            meta: Some(meta),
                        }
                    }
                    Some(&f) => EntryMeta {
                        link: Link::Of(f),
                        meta: None,
                    },
                },
            };
            e.path.shrink_to_fit();
            list.push(e);
            metas.push(m);
        }
        for x in &mut extras {
            x.meta.xattrs.sort();
        }
        let m = Manifest {
            entries: list,
            archive: Some(Archive {
                preserve,
                entries: metas,
                extras,
            }),
        };
        // Checked as it would be read.
        Manifest::decode(&m.encode())?;
        Ok(m)
    }

    /// A manifest of exactly these parts: `entries` in the order given (which must be by
    /// path, as an encoding's), and `archive` beside them (a version 2 manifest, its entries'
    /// metadata one per entry, in their order; `None`: version 1). What is returned is what
    /// the encoding of those parts decodes to, checked as [`Manifest::decode`] checks it,
    /// so it is refused where a snapshot with those bytes would be, naming the entry or
    /// record by its index here. Unlike [`Manifest::with_archive`], nothing is reordered or
    /// derived: hardlink groups are as [`EntryMeta::link`] gives them.
    pub fn with_parts(
        entries: Vec<Entry>,
        archive: Option<Archive>,
    ) -> Result<Manifest, ManifestError> {
        // What the encoding cannot frame (a length past its field) is refused before it is
        // encoded, naming what holds it; the rest is the decoder's to judge. (The entries
        // first as the decoder checks them: their paths and targets are then short.)
        validate(&entries)?;
        let long_name = |m: &Meta| m.xattrs.iter().any(|(n, _)| n.len() > u8::MAX as usize);
        if let Some(a) = &archive {
            if a.entries.len() != entries.len() {
                return Err(ManifestError::BadArchiveHeader(format!(
                    "{} entries, and metadata of {}",
                    entries.len(),
                    a.entries.len()
                )));
            }
            for (i, (e, m)) in entries.iter().zip(&a.entries).enumerate() {
                if m.meta.as_ref().is_some_and(long_name) {
                    return Err(ManifestError::BadArchive {
                        index: i as u64,
                        path: e.path.clone(),
                        reason: "an attribute name longer than 255 bytes".into(),
                    });
                }
                if matches!(m.link, Link::Of(_)) != m.meta.is_none() {
                    return Err(ManifestError::BadArchive {
                        index: i as u64,
                        path: e.path.clone(),
                        reason: "metadata on a later name of a hardlink group, or none on \
                                 another entry"
                            .into(),
                    });
                }
            }
            for (i, x) in a.extras.iter().enumerate() {
                // (A path past 4 GiB is not copied into the message.)
                if x.path.len() > u32::MAX as usize {
                    return Err(ManifestError::BadRecord {
                        index: i as u64,
                        path: Vec::new(),
                        reason: "a path longer than 4 GiB".into(),
                    });
                }
                if long_name(&x.meta) {
                    return Err(ManifestError::BadRecord {
                        index: i as u64,
                        path: x.path.clone(),
                        reason: "an attribute name longer than 255 bytes".into(),
                    });
                }
            }
        }
        let m = Manifest { entries, archive };
        // Checked as it would be read, and what was read is what is kept: never a manifest
        // whose encoding says something else.
        Manifest::decode(&m.encode())
    }

    /// What `snapshot --archive` recorded beside the entries (a version 2 manifest).
    pub fn archive(&self) -> Option<&Archive> {
        self.archive.as_ref()
    }

    /// A manifest of entries already sorted and validated (a [`crate::compact::CompactManifest`]'s).
    pub(crate) fn from_sorted(entries: Vec<Entry>) -> Manifest {
        Manifest {
            entries,
            archive: None,
        }
    }

    /// The entries, sorted by path bytes.
    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// The index of the entry at `path`.
    pub fn find(&self, path: &[u8]) -> Option<usize> {
        find_sorted(self.entries.len(), path, |i| &self.entries[i].path)
    }

    /// True when some entry lies strictly beneath directory `dir` (for the root, `dir`
    /// empty: when there is any entry).
    pub fn has_beneath(&self, dir: &[u8]) -> bool {
        first_beneath(0..self.entries.len(), dir, |i| {
            self.entries[i].path.as_slice()
        })
        .is_some()
    }

    /// Number of file and executable entries.
    pub fn files(&self) -> u64 {
        self.entries.iter().filter(|e| e.kind.has_blob()).count() as u64
    }

    /// Total size of file and executable entries (at most `u64::MAX`: sizes given in a
    /// manifest's JSON form need not be real ones).
    pub fn bytes(&self) -> u64 {
        self.entries
            .iter()
            .filter(|e| e.kind.has_blob())
            .map(Entry::size)
            .fold(0, u64::saturating_add)
    }

    /// The canonical encoding: version 1, or version 2 with an archive.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(HEADER_LEN + self.entries.len() * 64);
        encode_header(&mut out, self.entries.len() as u64);
        if let Some(a) = &self.archive {
            out[MAGIC.len()..MAGIC.len() + 4].copy_from_slice(&VERSION_ARCHIVE.to_le_bytes());
            encode_head(&mut out, a);
        }
        for (i, e) in self.entries.iter().enumerate() {
            match &e.data {
                Data::Blob { size, hash } => {
                    encode_blob(&mut out, &e.path, e.kind == Kind::Executable, *size, hash)
                }
                Data::Target(t) => encode_symlink(&mut out, &e.path, t),
                Data::None => encode_dir(&mut out, &e.path),
            }
            if let Some(m) = self.archive.as_ref().and_then(|a| a.entries.get(i)) {
                encode_entry_meta(&mut out, m);
            }
        }
        out
    }

    /// The snapshot id: BLAKE3 of the encoding.
    pub fn id(&self) -> Hash {
        Hash::of(&self.encode())
    }

    /// Decodes and validates a manifest. Never panics; every refusal names the entry.
    pub fn decode(bytes: &[u8]) -> Result<Manifest, ManifestError> {
        let mut r = Reader::at(bytes, 0);
        let count = r.header()?;
        let mut archive = if r.v2 {
            let (bits, extras) = r.archive_head()?;
            Some(ArchiveCheck::new(bits, extras, true)?)
        } else {
            None
        };
        // Each entry takes at least 6 bytes; never trust the count for an allocation.
        let cap = usize::try_from(count)
            .unwrap_or(usize::MAX)
            .min(r.remaining() / 6);
        let mut entries = Vec::with_capacity(cap);
        for index in 0..count {
            let (e, meta) = r.entry_full(index)?;
            // (In the order a stream checks them: see `stream::read_into`.)
            if let (Some(a), Some(m)) = (&mut archive, meta) {
                a.entry(index, &e, m)?;
            }
            entries.push(e.to_entry());
        }
        let archive = archive.map_or(Ok(None), ArchiveCheck::finish)?;
        if r.remaining() != 0 {
            return Err(ManifestError::TrailingBytes(r.remaining()));
        }
        validate(&entries)?;
        Ok(Manifest { entries, archive })
    }
}

impl Manifest {
    /// Decodes the manifest `src` reads, as [`Manifest::decode`] decodes its bytes (the same
    /// manifest, or the same error), and hashes every byte read, to the end even past an
    /// error (so that the caller can tell bytes that are not the snapshot's from a manifest
    /// that does not decode). The encoding is never held whole: it is read a chunk at a time
    /// (more only when one entry's framing runs past the chunk), so that a reader holds the
    /// decoded entries alone, not their paths twice. `size` is the length expected (the
    /// file's), which bounds the first allocation of the entries.
    pub fn read(
        src: impl std::io::Read,
        size: u64,
    ) -> std::io::Result<(Hash, Result<Manifest, ManifestError>)> {
        Manifest::read_chunked(src, size, READ_CHUNK)
    }

    pub(super) fn read_chunked(
        src: impl std::io::Read,
        size: u64,
        chunk: usize,
    ) -> std::io::Result<(Hash, Result<Manifest, ManifestError>)> {
        let mut entries = Vec::new();
        let (hash, decoded) = read_into(src, size, chunk, &mut entries, true)?;
        let decoded = decoded.and_then(|archive| {
            validate(&entries)?;
            Ok(Manifest { entries, archive })
        });
        Ok((hash, decoded))
    }
}
