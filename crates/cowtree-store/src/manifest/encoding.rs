//! One entry, owned ([`Entry`]) or borrowed from encoded bytes ([`EntryRef`]), and the
//! encoding itself: the header and each entry written ([`encode_header`], [`encode_blob`],
//! ...) and read back ([`Reader`], which frames an entry and checks nothing else).

use crate::hash::Hash;

use super::error::ManifestError;
use super::kind::Kind;
pub use super::kind::VERSION;
use super::kind::VERSION_ARCHIVE;
use super::meta::EntryMeta;

/// The first bytes of every manifest.
pub const MAGIC: &[u8; 8] = b"CTMANIF\n";
/// Bytes of the header: magic, version, entry count.
pub(super) const HEADER_LEN: usize = MAGIC.len() + 4 + 8;

/// What an entry holds besides its path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Data {
    /// File or executable: the blob and its size.
    Blob {
        /// Size in bytes.
        size: u64,
        /// The blob's BLAKE3 hash.
        hash: Hash,
    },
    /// The exact bytes of a symlink's target.
    Target(Vec<u8>),
    /// Nothing (empty directory).
    None,
}

/// One manifest entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Path relative to the tree root, raw bytes.
    pub path: Vec<u8>,
    /// The kind.
    pub kind: Kind,
    /// Blob, link target or nothing, matching `kind`.
    pub data: Data,
}

impl Entry {
    /// A file (or executable) entry.
    pub fn blob(path: Vec<u8>, executable: bool, size: u64, hash: Hash) -> Entry {
        let kind = if executable {
            Kind::Executable
        } else {
            Kind::File
        };
        Entry {
            path,
            kind,
            data: Data::Blob { size, hash },
        }
    }

    /// A symlink entry.
    pub fn symlink(path: Vec<u8>, target: Vec<u8>) -> Entry {
        Entry {
            path,
            kind: Kind::Symlink,
            data: Data::Target(target),
        }
    }

    /// An empty-directory entry.
    pub fn dir(path: Vec<u8>) -> Entry {
        Entry {
            path,
            kind: Kind::Dir,
            data: Data::None,
        }
    }

    /// Size in bytes: a blob's size, a symlink target's length, 0 for a directory.
    pub fn size(&self) -> u64 {
        match &self.data {
            Data::Blob { size, .. } => *size,
            Data::Target(t) => t.len() as u64,
            Data::None => 0,
        }
    }

    /// The blob hash of a file entry.
    pub fn hash(&self) -> Option<&Hash> {
        match &self.data {
            Data::Blob { hash, .. } => Some(hash),
            _ => None,
        }
    }
}

/// Appends the header of a manifest of `count` entries (see the module doc). Together with
/// [`encode_blob`], [`encode_symlink`] and [`encode_dir`] this writes the same bytes as
/// [`Manifest::encode`](super::Manifest::encode), for callers that build a manifest's encoding without building its
/// entries; [`crate::Store::manifest_writer`] checks such bytes before it records them.
pub fn encode_header(out: &mut Vec<u8>, count: u64) {
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&VERSION.to_le_bytes());
    out.extend_from_slice(&count.to_le_bytes());
}

fn encode_path(out: &mut Vec<u8>, path: &[u8], kind: Kind) {
    out.extend_from_slice(&(path.len() as u32).to_le_bytes());
    out.extend_from_slice(path);
    out.push(kind.code());
}

/// Appends a file (or executable) entry.
pub fn encode_blob(out: &mut Vec<u8>, path: &[u8], executable: bool, size: u64, hash: &Hash) {
    let kind = if executable {
        Kind::Executable
    } else {
        Kind::File
    };
    encode_path(out, path, kind);
    out.extend_from_slice(&size.to_le_bytes());
    out.extend_from_slice(hash.as_bytes());
}

/// Appends a symlink entry.
pub fn encode_symlink(out: &mut Vec<u8>, path: &[u8], target: &[u8]) {
    encode_path(out, path, Kind::Symlink);
    out.extend_from_slice(&(target.len() as u32).to_le_bytes());
    out.extend_from_slice(target);
}

/// Appends an empty-directory entry.
pub fn encode_dir(out: &mut Vec<u8>, path: &[u8]) {
    encode_path(out, path, Kind::Dir);
}

/// The number of bytes the encoding of an entry takes: of kind `kind` with a path of
/// `path_len` bytes and (for a symlink) a target of `target_len` bytes.
pub const fn encoded_len(kind: Kind, path_len: usize, target_len: usize) -> usize {
    // Path length, path, kind, then the kind's data (see the module doc).
    4 + path_len
        + 1
        + match kind {
            Kind::File | Kind::Executable => 8 + 32,
            Kind::Symlink => 4 + target_len,
            Kind::Dir => 0,
        }
}

/// An entry read in place from encoded bytes, borrowing its path and target from them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EntryRef<'a> {
    /// Path relative to the tree root, raw bytes.
    pub path: &'a [u8],
    /// The kind.
    pub kind: Kind,
    /// Blob, link target or nothing, matching `kind`.
    pub data: DataRef<'a>,
}

/// What an [`EntryRef`] holds besides its path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataRef<'a> {
    /// File or executable: the blob and its size.
    Blob {
        /// Size in bytes.
        size: u64,
        /// The blob's BLAKE3 hash.
        hash: Hash,
    },
    /// The exact bytes of a symlink's target.
    Target(&'a [u8]),
    /// Nothing (empty directory).
    None,
}

impl<'a> EntryRef<'a> {
    /// Reads `bytes`, exactly one encoded entry. Only the framing and the kind are checked:
    /// the path and the target are what the bytes hold, unvalidated (an entry's path is
    /// checked against its neighbours' in a [`ManifestView`](super::ManifestView) or by [`Manifest::decode`](super::Manifest::decode)).
    /// For taking apart an entry this process encoded; anything read from elsewhere goes
    /// through a view.
    pub fn decode_one(bytes: &'a [u8]) -> Result<EntryRef<'a>, ManifestError> {
        let mut r = Reader {
            bytes,
            pos: 0,
            v2: false,
        };
        let e = r.entry(0)?;
        if r.remaining() != 0 {
            return Err(ManifestError::TrailingBytes(r.remaining()));
        }
        Ok(e)
    }

    /// Size in bytes: a blob's size, a symlink target's length, 0 for a directory.
    pub fn size(&self) -> u64 {
        match self.data {
            DataRef::Blob { size, .. } => size,
            DataRef::Target(t) => t.len() as u64,
            DataRef::None => 0,
        }
    }

    /// The blob hash of a file entry.
    pub fn hash(&self) -> Option<Hash> {
        match self.data {
            DataRef::Blob { hash, .. } => Some(hash),
            _ => None,
        }
    }

    /// The target of a symlink entry.
    pub fn target(&self) -> Option<&'a [u8]> {
        match self.data {
            DataRef::Target(t) => Some(t),
            _ => None,
        }
    }

    /// The bytes this entry's encoding takes.
    pub fn encoded_len(&self) -> usize {
        encoded_len(
            self.kind,
            self.path.len(),
            self.target().map_or(0, <[u8]>::len),
        )
    }

    /// `e`, borrowed.
    pub fn of(e: &'a Entry) -> EntryRef<'a> {
        EntryRef {
            path: &e.path,
            kind: e.kind,
            data: match &e.data {
                Data::Blob { size, hash } => DataRef::Blob {
                    size: *size,
                    hash: *hash,
                },
                Data::Target(t) => DataRef::Target(t),
                Data::None => DataRef::None,
            },
        }
    }

    /// An owned copy.
    pub fn to_entry(&self) -> Entry {
        Entry {
            path: self.path.to_vec(),
            kind: self.kind,
            data: match self.data {
                DataRef::Blob { size, hash } => Data::Blob { size, hash },
                DataRef::Target(t) => Data::Target(t.to_vec()),
                DataRef::None => Data::None,
            },
        }
    }
}

pub(super) struct Reader<'a> {
    pub(super) bytes: &'a [u8],
    pub(super) pos: usize,
    /// The entries are version 2's (each followed by its [`EntryMeta`]).
    pub(super) v2: bool,
}

impl<'a> Reader<'a> {
    /// A reader of the encoded manifest `bytes` (its header included) from `pos`, reading
    /// entries of the version the header gives.
    pub(super) fn at(bytes: &'a [u8], pos: usize) -> Reader<'a> {
        let v2 =
            bytes.get(MAGIC.len()..MAGIC.len() + 4) == Some(&VERSION_ARCHIVE.to_le_bytes()[..]);
        Reader { bytes, pos, v2 }
    }

    /// Reads the header (magic, version) and returns the entry count; sets [`Reader::v2`]
    /// by the version. What follows a version 2 header is read by
    /// [`Reader::archive_head`].
    pub(super) fn header(&mut self) -> Result<u64, ManifestError> {
        let trunc0 = || ManifestError::Truncated { index: 0 };
        if self.take(MAGIC.len()).ok_or(ManifestError::BadMagic)? != MAGIC {
            return Err(ManifestError::BadMagic);
        }
        let version = self.u32().ok_or_else(trunc0)?;
        if version != VERSION && version != VERSION_ARCHIVE {
            return Err(ManifestError::UnsupportedVersion(version));
        }
        self.v2 = version == VERSION_ARCHIVE;
        self.u64().ok_or_else(trunc0)
    }

    /// Reads entry `index`'s framing as [`Reader::entry_full`] does, dropping what version 2
    /// records of it.
    pub(super) fn entry(&mut self, index: u64) -> Result<EntryRef<'a>, ManifestError> {
        self.entry_full(index).map(|(e, _)| e)
    }

    /// Reads entry `index`'s framing: path, kind, its size and hash or its target, and in
    /// version 2 what follows (framed only). Nothing is validated.
    pub(super) fn entry_full(
        &mut self,
        index: u64,
    ) -> Result<(EntryRef<'a>, Option<EntryMeta>), ManifestError> {
        let e = self.entry_v1(index)?;
        let meta = if self.v2 {
            Some(self.entry_meta(index, e.path)?)
        } else {
            None
        };
        Ok((e, meta))
    }

    fn entry_v1(&mut self, index: u64) -> Result<EntryRef<'a>, ManifestError> {
        let trunc = || ManifestError::Truncated { index };
        let len = self.u32().ok_or_else(trunc)? as usize;
        let path = self.take(len).ok_or_else(trunc)?;
        let code = self.u8().ok_or_else(trunc)?;
        let Some(kind) = Kind::from_code(code) else {
            return Err(ManifestError::UnknownKind {
                index,
                path: path.to_vec(),
                kind: code.to_string(),
            });
        };
        let data = match kind {
            Kind::File | Kind::Executable => {
                let size = self.u64().ok_or_else(trunc)?;
                let hash = self.take(32).and_then(Hash::from_slice).ok_or_else(trunc)?;
                DataRef::Blob { size, hash }
            }
            Kind::Symlink => {
                let len = self.u32().ok_or_else(trunc)? as usize;
                DataRef::Target(self.take(len).ok_or_else(trunc)?)
            }
            Kind::Dir => DataRef::None,
        };
        Ok(EntryRef { path, kind, data })
    }

    pub(super) fn remaining(&self) -> usize {
        self.bytes.len() - self.pos
    }
    pub(super) fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.pos.checked_add(n)?;
        let s = self.bytes.get(self.pos..end)?;
        self.pos = end;
        Some(s)
    }
    pub(super) fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }
    pub(super) fn u32(&mut self) -> Option<u32> {
        self.take(4)
            .and_then(|b| b.try_into().ok())
            .map(u32::from_le_bytes)
    }
    pub(super) fn u64(&mut self) -> Option<u64> {
        self.take(8)
            .and_then(|b| b.try_into().ok())
            .map(u64::from_le_bytes)
    }
}
