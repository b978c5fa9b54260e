//! A manifest as owned entries ([`Manifest`]): built from entries in any order, encoded,
//! decoded from bytes or read from a stream, always validated.

use crate::hash::Hash;

use super::check::validate;
use super::encoding::{
    Data, Entry, HEADER_LEN, Reader, encode_blob, encode_dir, encode_header, encode_symlink,
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
}

impl Manifest {
    /// Builds a manifest from entries in any order: sorts them by path bytes, then validates
    /// (duplicates, paths, nesting, targets).
    pub fn new(mut entries: Vec<Entry>) -> Result<Manifest, ManifestError> {
        entries.sort_by(|a, b| a.path.cmp(&b.path));
        validate(&entries)?;
        Ok(Manifest { entries })
    }

    /// A manifest of entries already sorted and validated (a [`crate::compact::CompactManifest`]'s).
    pub(crate) fn from_sorted(entries: Vec<Entry>) -> Manifest {
        Manifest { entries }
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

    /// The canonical encoding.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(HEADER_LEN + self.entries.len() * 64);
        encode_header(&mut out, self.entries.len() as u64);
        for e in &self.entries {
            match &e.data {
                Data::Blob { size, hash } => {
                    encode_blob(&mut out, &e.path, e.kind == Kind::Executable, *size, hash)
                }
                Data::Target(t) => encode_symlink(&mut out, &e.path, t),
                Data::None => encode_dir(&mut out, &e.path),
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
        let mut r = Reader { bytes, pos: 0 };
        let count = r.header()?;
        // Each entry takes at least 6 bytes; never trust the count for an allocation.
        let cap = usize::try_from(count)
            .unwrap_or(usize::MAX)
            .min(r.remaining() / 6);
        let mut entries = Vec::with_capacity(cap);
        for index in 0..count {
            entries.push(r.entry(index)?.to_entry());
        }
        if r.remaining() != 0 {
            return Err(ManifestError::TrailingBytes(r.remaining()));
        }
        validate(&entries)?;
        Ok(Manifest { entries })
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
        let (hash, decoded) = read_into(src, size, chunk, &mut entries)?;
        let decoded = decoded.and_then(|()| {
            validate(&entries)?;
            Ok(Manifest { entries })
        });
        Ok((hash, decoded))
    }
}
