//! Snapshot manifests: the binary encoding, and the validation every decoded manifest passes.
//!
//! A manifest lists a tree's entries sorted by path bytes. Its bytes are canonical (one tree has
//! exactly one encoding), so the snapshot id, the BLAKE3 hash of those bytes, is the same for the
//! same tree. Manifests come from disk and from other tools, so [`Manifest::decode`] treats its
//! input as hostile: it validates every path and returns an error naming the entry, and never
//! panics.
//!
//! Encoding, version 1 (integers little-endian):
//!
//! ```text
//! header   "CTMANIF\n" (8 bytes), version u32 = 1, entry count u64
//! entry    path length u32, path bytes, kind u8, then by kind:
//!            1 file        size u64, BLAKE3 hash (32 bytes)
//!            2 executable  size u64, BLAKE3 hash (32 bytes)
//!            3 symlink     target length u32, target bytes
//!            4 empty dir   nothing
//! ```
//! Nothing may follow the last entry.

use std::fmt;
use std::ops::Range;

use cowtree_fs::name::{NameError, PATH_MAX, check_relative_path_from};

use crate::hash::Hash;

/// The first bytes of every manifest.
pub const MAGIC: &[u8; 8] = b"CTMANIF\n";
/// The manifest encoding this code writes and reads.
pub const VERSION: u32 = 1;
/// Bytes of the header: magic, version, entry count.
const HEADER_LEN: usize = MAGIC.len() + 4 + 8;

/// What an entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// A regular file, checked out with mode 0644.
    File,
    /// A regular file with an executable bit, checked out with mode 0755.
    Executable,
    /// A symbolic link, recreated with its exact target.
    Symlink,
    /// An empty directory (directories with entries are implied by their entries' paths).
    Dir,
}

impl Kind {
    fn code(self) -> u8 {
        match self {
            Kind::File => 1,
            Kind::Executable => 2,
            Kind::Symlink => 3,
            Kind::Dir => 4,
        }
    }

    fn from_code(code: u8) -> Option<Kind> {
        Some(match code {
            1 => Kind::File,
            2 => Kind::Executable,
            3 => Kind::Symlink,
            4 => Kind::Dir,
            _ => return None,
        })
    }

    /// The name used in JSON and human output.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::File => "file",
            Kind::Executable => "executable",
            Kind::Symlink => "symlink",
            Kind::Dir => "dir",
        }
    }

    /// The inverse of [`Kind::as_str`].
    pub fn parse(s: &str) -> Option<Kind> {
        Some(match s {
            "file" => Kind::File,
            "executable" => Kind::Executable,
            "symlink" => Kind::Symlink,
            "dir" => Kind::Dir,
            _ => return None,
        })
    }

    /// True for the kinds whose data is a blob.
    pub fn has_blob(self) -> bool {
        matches!(self, Kind::File | Kind::Executable)
    }
}

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

/// A validated manifest: entries sorted by path bytes, every path valid, no duplicates, nothing
/// beneath a file, symlink or empty directory.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Manifest {
    entries: Vec<Entry>,
}

/// Why a manifest was refused. Entry-level errors carry the entry's index and path.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ManifestError {
    /// The input does not start with [`MAGIC`].
    #[error("not a cowtree manifest (bad magic bytes)")]
    BadMagic,
    /// A version this code does not read.
    #[error("manifest format version {0} is not supported (this cowtree reads version {VERSION})")]
    UnsupportedVersion(u32),
    /// The input ends inside the header or entry `index`.
    #[error("manifest truncated in entry {index}")]
    Truncated {
        /// The entry being read.
        index: u64,
    },
    /// Bytes after the last entry.
    #[error("{0} unexpected bytes after the last manifest entry")]
    TrailingBytes(usize),
    /// A manifest of 4 GiB or more, beyond what a [`ManifestView`] indexes.
    #[error("manifest of {0} bytes is too large (the limit is 4 GiB)")]
    TooLarge(usize),
    /// A manifest whose names, targets and paths pass the 4 GiB a
    /// [`crate::compact::CompactManifest`] holds, or whose directories pass 2^32.
    #[error(
        "manifest too large to hold compactly: its names, targets and paths pass 4 GiB, or its \
         directories 2^32"
    )]
    TooManyNames,
    /// The kind byte (or JSON kind name) is not one this code knows.
    #[error("entry {index} {}: unknown kind {kind}", show(path))]
    UnknownKind {
        /// Entry index.
        index: u64,
        /// Entry path.
        path: Vec<u8>,
        /// The kind as found.
        kind: String,
    },
    /// The path is not a valid relative path.
    #[error("entry {index} {}: invalid path: {reason}", show(path))]
    InvalidPath {
        /// Entry index.
        index: u64,
        /// Entry path.
        path: Vec<u8>,
        /// Why.
        reason: NameError,
    },
    /// The same path twice.
    #[error("entry {index} {}: duplicate path", show(path))]
    Duplicate {
        /// Entry index.
        index: u64,
        /// Entry path.
        path: Vec<u8>,
    },
    /// Entries out of path order (an encoded manifest must be sorted).
    #[error("entry {index} {}: entries are not sorted by path", show(path))]
    Unsorted {
        /// Entry index.
        index: u64,
        /// Entry path.
        path: Vec<u8>,
    },
    /// A path beneath a file, symlink or empty-directory entry.
    #[error("entry {index} {}: lies beneath {} entry {}", show(path), parent_kind.as_str(), show(parent))]
    BeneathNonDir {
        /// Entry index.
        index: u64,
        /// Entry path.
        path: Vec<u8>,
        /// The entry it lies beneath.
        parent: Vec<u8>,
        /// That entry's kind.
        parent_kind: Kind,
    },
    /// A symlink target that is empty, too long or holds a NUL byte.
    #[error("entry {index} {}: invalid symlink target: {reason}", show(path))]
    BadTarget {
        /// Entry index.
        index: u64,
        /// Entry path.
        path: Vec<u8>,
        /// Why.
        reason: &'static str,
    },
    /// The data does not match the kind (only from hand-built entries).
    #[error("entry {index} {}: data does not match kind {}", show(path), kind.as_str())]
    KindMismatch {
        /// Entry index.
        index: u64,
        /// Entry path.
        path: Vec<u8>,
        /// The kind.
        kind: Kind,
    },
}

impl ManifestError {
    /// The same error with its entry index passed through `f` (to report an index in some
    /// other order than the sorted one, e.g. the order of a JSON input).
    pub fn map_index(self, f: impl Fn(u64) -> u64) -> ManifestError {
        use ManifestError as E;
        match self {
            E::Truncated { index } => E::Truncated { index: f(index) },
            E::UnknownKind { index, path, kind } => E::UnknownKind {
                index: f(index),
                path,
                kind,
            },
            E::InvalidPath {
                index,
                path,
                reason,
            } => E::InvalidPath {
                index: f(index),
                path,
                reason,
            },
            E::Duplicate { index, path } => E::Duplicate {
                index: f(index),
                path,
            },
            E::Unsorted { index, path } => E::Unsorted {
                index: f(index),
                path,
            },
            E::BeneathNonDir {
                index,
                path,
                parent,
                parent_kind,
            } => E::BeneathNonDir {
                index: f(index),
                path,
                parent,
                parent_kind,
            },
            E::BadTarget {
                index,
                path,
                reason,
            } => E::BadTarget {
                index: f(index),
                path,
                reason,
            },
            E::KindMismatch { index, path, kind } => E::KindMismatch {
                index: f(index),
                path,
                kind,
            },
            other => other,
        }
    }
}

/// Shows raw path bytes for people: valid UTF-8 as is, other bytes as `\xNN`, in quotes.
pub fn show(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() + 2);
    s.push('"');
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            if c == '"' || c == '\\' || c.is_control() {
                s.extend(c.escape_default());
            } else {
                s.push(c);
            }
        }
        for b in chunk.invalid() {
            s.push_str(&format!("\\x{b:02x}"));
        }
    }
    s.push('"');
    s
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

/// Bytes [`Manifest::read`] reads at a time.
pub(crate) const READ_CHUNK: usize = 1 << 20;

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

    fn read_chunked(
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

/// Reads and hashes every byte `src` gives (to the end, even past an error), `chunk` bytes at
/// a time, decoding the entries into `sink` (framed, then nothing after the last one): what
/// [`Manifest::read`], [`crate::compact::CompactManifest::read`] and [`read_each`] share.
/// `size` is the length expected (the file's), which bounds the sink's first allocation.
pub(crate) fn read_into(
    src: impl std::io::Read,
    size: u64,
    chunk: usize,
    sink: &mut impl Sink,
) -> std::io::Result<(Hash, Result<(), ManifestError>)> {
    let mut s = Stream::new(src, chunk);
    let decoded = s.decode(size, sink)?;
    // The bytes after the last entry (all of them, after an error), read and hashed.
    let rest = s.rest()?;
    let decoded = decoded.and(match rest {
        0 => Ok(()),
        n => Err(ManifestError::TrailingBytes(n)),
    });
    Ok((s.hash(), decoded))
}

/// Reads the manifest `src` reads as [`Manifest::read`] does (a chunk at a time, every byte
/// hashed to the end), checking each entry as [`validate`] does and handing it to `f` once
/// checked, holding none: what reads a snapshot's entries once (verify's check of the blobs
/// they name). Entries before a refused one, and those of bytes that turn out not to be the
/// snapshot's (the hash returned), have been handed to `f`: discard what it made of them.
pub(crate) fn read_each(
    src: impl std::io::Read,
    size: u64,
    f: &mut dyn FnMut(EntryRef<'_>),
) -> std::io::Result<(Hash, Result<(), ManifestError>)> {
    struct Each<'f> {
        checker: Checker,
        f: &'f mut dyn FnMut(EntryRef<'_>),
    }
    impl Sink for Each<'_> {
        fn reserve(&mut self, _: usize) {}
        fn push(&mut self, index: u64, e: EntryRef<'_>) -> Result<(), ManifestError> {
            // (Decoded entries' data matches their kind.)
            self.checker
                .check(index, e.path, e.kind, e.target(), true)?;
            (self.f)(e);
            Ok(())
        }
    }
    let mut each = Each {
        checker: Checker::default(),
        f,
    };
    read_into(src, size, READ_CHUNK, &mut each)
}

/// Where [`Stream::decode`] puts the entries it decodes, one at a time in their order.
pub(crate) trait Sink {
    /// Room for `n` entries (bounded by what the input's size can hold).
    fn reserve(&mut self, n: usize);
    /// Entry `index`, framed and decoded (its data matches its kind); an error ends the
    /// decoding with it.
    fn push(&mut self, index: u64, e: EntryRef<'_>) -> Result<(), ManifestError>;
}

impl Sink for Vec<Entry> {
    fn reserve(&mut self, n: usize) {
        // (A wrong size that no allocation can hold is not a panic: the entries then grow.)
        let _ = self.try_reserve_exact(n);
    }

    fn push(&mut self, _: u64, e: EntryRef<'_>) -> Result<(), ManifestError> {
        Vec::push(self, e.to_entry());
        Ok(())
    }
}

/// A manifest being read and hashed a chunk at a time ([`Manifest::read`]).
struct Stream<R> {
    src: R,
    chunk: usize,
    hasher: blake3::Hasher,
    /// Bytes read and not yet decoded, from `start` on.
    buf: Vec<u8>,
    start: usize,
    /// Every byte has been read.
    eof: bool,
}

impl<R: std::io::Read> Stream<R> {
    /// Reads `src` `chunk` bytes at a time.
    fn new(src: R, chunk: usize) -> Stream<R> {
        Stream {
            src,
            chunk: chunk.max(1),
            hasher: blake3::Hasher::new(),
            buf: Vec::new(),
            start: 0,
            eof: false,
        }
    }

    /// The hash of the bytes read so far (all of them after [`Stream::rest`]).
    fn hash(&self) -> Hash {
        Hash::from(self.hasher.finalize())
    }

    /// Reads one more chunk after the bytes not yet decoded (dropping those decoded), hashing
    /// it; sets `eof` when the source ends within it.
    fn more(&mut self) -> std::io::Result<()> {
        use std::io::Read;
        self.buf.drain(..self.start);
        self.start = 0;
        let had = self.buf.len();
        // (Amortised: an entry whose framing claims gigabytes keeps what follows it, as
        // `Manifest::decode` would see it, without a copy of the buffer per chunk.)
        self.buf.reserve(self.chunk);
        let n = (&mut self.src)
            .take(self.chunk as u64)
            .read_to_end(&mut self.buf)?;
        self.hasher.update(&self.buf[had..]);
        self.eof = n < self.chunk;
        Ok(())
    }

    /// Runs `f` on the bytes not yet decoded, reading more while what it reads runs past them
    /// (`Truncated`) and there are more: so it sees what it would see of the whole encoding.
    /// What it decoded is consumed when it succeeds.
    fn parse<T>(
        &mut self,
        mut f: impl FnMut(&mut Reader<'_>) -> Result<T, ManifestError>,
    ) -> std::io::Result<Result<T, ManifestError>> {
        loop {
            let mut r = Reader {
                bytes: &self.buf[self.start..],
                pos: 0,
            };
            match f(&mut r) {
                Err(ManifestError::Truncated { .. }) if !self.eof => self.more()?,
                got => {
                    if got.is_ok() {
                        self.start += r.pos;
                    }
                    return Ok(got);
                }
            }
        }
    }

    /// The header and every entry, framed and decoded into `sink` ([`Manifest::decode`]
    /// before its check of what follows and its validation).
    fn decode(
        &mut self,
        size: u64,
        sink: &mut impl Sink,
    ) -> std::io::Result<Result<(), ManifestError>> {
        // The whole header, or the whole input if shorter.
        self.more()?;
        while self.buf.len() - self.start < HEADER_LEN && !self.eof {
            self.more()?;
        }
        let count = match self.parse(|r| r.header())? {
            Ok(count) => count,
            Err(e) => return Ok(Err(e)),
        };
        // Each entry takes at least 6 bytes; never trust the count for an allocation.
        let cap = usize::try_from(count)
            .unwrap_or(usize::MAX)
            .min(usize::try_from(size.saturating_sub(HEADER_LEN as u64) / 6).unwrap_or(0));
        sink.reserve(cap);
        for index in 0..count {
            match self.parse(|r| r.entry(index).and_then(|e| sink.push(index, e)))? {
                Ok(()) => {}
                Err(e) => return Ok(Err(e)),
            }
        }
        Ok(Ok(()))
    }

    /// Reads to the end: how many bytes were left after those decoded.
    fn rest(&mut self) -> std::io::Result<usize> {
        let mut n = self.buf.len() - self.start;
        while !self.eof {
            self.start = self.buf.len();
            self.more()?;
            n += self.buf.len();
        }
        Ok(n)
    }
}

/// Appends the header of a manifest of `count` entries (see the module doc). Together with
/// [`encode_blob`], [`encode_symlink`] and [`encode_dir`] this writes the same bytes as
/// [`Manifest::encode`], for callers that build a manifest's encoding without building its
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

/// The checks every manifest passes, made one entry at a time on entries in their encoded
/// order: valid path, strictly after the previous one, a valid symlink target, nothing
/// beneath an earlier entry.
///
/// Every entry is a leaf (a file, a symlink or an empty directory), so "beneath a
/// non-directory" means "beneath an earlier entry". In sorted order, everything between an
/// entry `a` and a later `a/x` starts with `a`, so the earlier entries that could still be an
/// ancestor of what follows form a chain of prefixes of the last path (`chain`, as lengths);
/// it is popped down to the prefixes of each new path, and only those are compared. The
/// checker keeps a copy of the last path only, so entries can come from a stream.
#[derive(Default)]
pub(crate) struct Checker {
    /// The previous entry's path (the checks of entry 0 do not look at it).
    last: Vec<u8>,
    chain: Vec<(usize, Kind)>,
}

impl Checker {
    pub(crate) fn check(
        &mut self,
        index: u64,
        path: &[u8],
        kind: Kind,
        target: Option<&[u8]>,
        data_ok: bool,
    ) -> Result<(), ManifestError> {
        // The bytes this path shares with the previous one; at index 0, none.
        let last = &mut self.last;
        let shared = if index > 0 {
            common_prefix(last, path)
        } else {
            0
        };
        // The components wholly inside the shared bytes are the previous path's, checked with
        // it (a refused entry ends the check): only the rest are checked here, from the start
        // of the component where the two paths part, so the first bad component is the one a
        // check of the whole path would name.
        let from = path[..shared]
            .iter()
            .rposition(|&b| b == b'/')
            .map_or(0, |i| i + 1);
        if let Err(reason) = check_relative_path_from(path, from) {
            return Err(ManifestError::InvalidPath {
                index,
                path: path.to_vec(),
                reason,
            });
        }
        if index > 0 {
            let order = match (last.get(shared), path.get(shared)) {
                (Some(a), Some(b)) => a.cmp(b),
                (a, b) => a.is_some().cmp(&b.is_some()),
            };
            match order {
                std::cmp::Ordering::Less => {}
                std::cmp::Ordering::Equal => {
                    return Err(ManifestError::Duplicate {
                        index,
                        path: path.to_vec(),
                    });
                }
                std::cmp::Ordering::Greater => {
                    return Err(ManifestError::Unsorted {
                        index,
                        path: path.to_vec(),
                    });
                }
            }
        }
        if !data_ok {
            return Err(ManifestError::KindMismatch {
                index,
                path: path.to_vec(),
                kind,
            });
        }
        if let Some(t) = target {
            let reason = if t.is_empty() {
                Some("empty")
            } else if t.contains(&0) {
                Some("NUL byte")
            } else if t.len() > PATH_MAX {
                Some("longer than PATH_MAX")
            } else {
                None
            };
            if let Some(reason) = reason {
                return Err(ManifestError::BadTarget {
                    index,
                    path: path.to_vec(),
                    reason,
                });
            }
        }
        // A prefix of the last path is one of this path when it is within the shared bytes.
        while self.chain.last().is_some_and(|&(n, _)| n > shared) {
            self.chain.pop();
        }
        // The shortest ancestor first, as a parent-by-parent search would find it.
        if let Some(&(n, parent_kind)) = self
            .chain
            .iter()
            .find(|&&(n, _)| path.get(n) == Some(&b'/'))
        {
            return Err(ManifestError::BeneathNonDir {
                index,
                path: path.to_vec(),
                parent: path[..n].to_vec(),
                parent_kind,
            });
        }
        self.chain.push((path.len(), kind));
        last.truncate(shared);
        last.extend_from_slice(&path[shared..]);
        Ok(())
    }
}

/// The length of the longest common prefix of `a` and `b`.
fn common_prefix(a: &[u8], b: &[u8]) -> usize {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    // Eight bytes at a time, then byte by byte within the first word that differs.
    let mut i = 0;
    while i + 8 <= n && a[i..i + 8] == b[i..i + 8] {
        i += 8;
    }
    i + a[i..]
        .iter()
        .zip(&b[i..])
        .take_while(|(x, y)| x == y)
        .count()
}

/// Checks sorted entries: valid paths, strictly increasing (so no duplicates), targets valid,
/// data matching kind, nothing beneath a file, symlink or empty directory.
pub fn validate(entries: &[Entry]) -> Result<(), ManifestError> {
    let mut checker = Checker::default();
    for (i, e) in entries.iter().enumerate() {
        let (target, data_ok) = match (e.kind, &e.data) {
            (Kind::File | Kind::Executable, Data::Blob { .. }) | (Kind::Dir, Data::None) => {
                (None, true)
            }
            (Kind::Symlink, Data::Target(t)) => (Some(t.as_slice()), true),
            _ => (None, false),
        };
        checker.check(i as u64, &e.path, e.kind, target, data_ok)?;
    }
    Ok(())
}

/// What [`validate_encoded`] counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct EncodedCounts {
    /// Entries.
    pub entries: u64,
    /// File and executable entries.
    pub files: u64,
    /// Their total size.
    pub bytes: u64,
}

/// Checks an encoded manifest exactly as [`Manifest::decode`] does (framing, then every
/// entry as [`validate`] checks it), without building its entries. The error may name a
/// different entry than `decode` would for bytes with several faults.
pub fn validate_encoded(bytes: &[u8]) -> Result<EncodedCounts, ManifestError> {
    check_encoded(bytes, None, &mut |_| {})
}

/// Checks an encoded manifest as [`validate_encoded`] does, handing each entry to `f` once
/// it is checked, in order: what reads a manifest's entries once (the blobs it names) without
/// holding them. Entries before a refused one have been handed to `f` when the error
/// returns: discard what it made of them.
pub fn each_encoded<'a>(
    bytes: &'a [u8],
    mut f: impl FnMut(EntryRef<'a>),
) -> Result<EncodedCounts, ManifestError> {
    check_encoded(bytes, None, &mut f)
}

/// [`validate_encoded`], also pushing each entry's offset into `offs` when given, and
/// handing each entry checked to `visit`.
fn check_encoded<'a>(
    bytes: &'a [u8],
    mut offs: Option<&mut Vec<u32>>,
    visit: &mut dyn FnMut(EntryRef<'a>),
) -> Result<EncodedCounts, ManifestError> {
    if offs.is_some() && u32::try_from(bytes.len()).is_err() {
        return Err(ManifestError::TooLarge(bytes.len()));
    }
    let mut r = Reader { bytes, pos: 0 };
    let count = r.header()?;
    if let Some(offs) = offs.as_deref_mut() {
        // Each entry takes at least 6 bytes; never trust the count for an allocation.
        let cap = usize::try_from(count)
            .unwrap_or(usize::MAX)
            .min(r.remaining() / 6);
        offs.reserve_exact(cap);
    }
    let mut stream = EntryChecker::default();
    for index in 0..count {
        if let Some(offs) = offs.as_deref_mut() {
            // (Below 4 GiB: checked above.)
            offs.push(r.pos as u32);
        }
        visit(stream.check_next(&mut r, index)?);
    }
    if r.remaining() != 0 {
        return Err(ManifestError::TrailingBytes(r.remaining()));
    }
    Ok(stream.counts)
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
    /// checked against its neighbours' in a [`ManifestView`] or by [`Manifest::decode`]).
    /// For taking apart an entry this process encoded; anything read from elsewhere goes
    /// through a view.
    pub fn decode_one(bytes: &'a [u8]) -> Result<EntryRef<'a>, ManifestError> {
        let mut r = Reader { bytes, pos: 0 };
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

/// A validated manifest read in place: its encoded bytes (owned or borrowed, as `B`) and the
/// offset of each entry, so that loading a manifest of many entries allocates twice rather
/// than once per entry. [`ManifestView::parse`] refuses exactly what [`Manifest::decode`]
/// refuses; entries are then read on demand as [`EntryRef`]s borrowing from the bytes, and
/// looked up by path (entries are sorted by path bytes).
#[derive(Debug, Clone)]
pub struct ManifestView<B = Vec<u8>> {
    bytes: B,
    /// The offset of each entry in `bytes`.
    offs: Vec<u32>,
    counts: EncodedCounts,
}

impl Default for ManifestView<Vec<u8>> {
    /// A view of no entries.
    fn default() -> Self {
        let mut bytes = Vec::with_capacity(HEADER_LEN);
        encode_header(&mut bytes, 0);
        ManifestView {
            bytes,
            offs: Vec::new(),
            counts: EncodedCounts::default(),
        }
    }
}

impl ManifestView<Vec<u8>> {
    /// The view of a manifest's encoding (refused only when it is 4 GiB or more).
    pub fn of(m: &Manifest) -> Result<ManifestView<Vec<u8>>, ManifestError> {
        let bytes = m.encode();
        if u32::try_from(bytes.len()).is_err() {
            return Err(ManifestError::TooLarge(bytes.len()));
        }
        let mut offs = Vec::with_capacity(m.entries.len());
        let mut at = HEADER_LEN;
        for e in &m.entries {
            // (Below 4 GiB: checked above.)
            offs.push(at as u32);
            at += encoded_len(
                e.kind,
                e.path.len(),
                match &e.data {
                    Data::Target(t) => t.len(),
                    _ => 0,
                },
            );
        }
        Ok(ManifestView {
            bytes,
            offs,
            counts: EncodedCounts {
                entries: m.entries.len() as u64,
                files: m.files(),
                bytes: m.bytes(),
            },
        })
    }
}

impl<B: AsRef<[u8]>> ManifestView<B> {
    /// Checks `bytes` as [`Manifest::decode`] does and indexes its entries. Never panics;
    /// every refusal names the entry. Manifests of 4 GiB or more are refused
    /// ([`ManifestError::TooLarge`]).
    pub fn parse(bytes: B) -> Result<ManifestView<B>, ManifestError> {
        let mut offs = Vec::new();
        let counts = check_encoded(bytes.as_ref(), Some(&mut offs), &mut |_| {})?;
        Ok(ManifestView {
            bytes,
            offs,
            counts,
        })
    }

    /// The encoded bytes.
    pub fn bytes(&self) -> &[u8] {
        self.bytes.as_ref()
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.offs.len()
    }

    /// True when there are no entries.
    pub fn is_empty(&self) -> bool {
        self.offs.is_empty()
    }

    /// Number of file and executable entries.
    pub fn files(&self) -> u64 {
        self.counts.files
    }

    /// Total size of file and executable entries.
    pub fn total_bytes(&self) -> u64 {
        self.counts.bytes
    }

    /// Entry `i` (in path order). Panics when `i` is not below [`ManifestView::len`], as
    /// indexing a slice does.
    pub fn get(&self, i: usize) -> EntryRef<'_> {
        let mut r = Reader {
            bytes: self.bytes.as_ref(),
            pos: self.offs[i] as usize,
        };
        r.entry(i as u64)
            .expect("every entry was read when the view was parsed")
    }

    /// The path of entry `i`. Panics when `i` is not below [`ManifestView::len`].
    pub fn path(&self, i: usize) -> &[u8] {
        let b = self.bytes.as_ref();
        let at = self.offs[i] as usize;
        let len = u32::from_le_bytes(
            b[at..at + 4]
                .try_into()
                .expect("4 bytes: the entry was read when the view was parsed"),
        ) as usize;
        &b[at + 4..at + 4 + len]
    }

    /// The entries in path order.
    pub fn iter(&self) -> Entries<'_> {
        Entries {
            r: Reader {
                bytes: self.bytes.as_ref(),
                pos: self.offs.first().map_or(0, |&o| o as usize),
            },
            index: 0,
            left: self.offs.len(),
        }
    }

    /// The index of the entry at `path`.
    pub fn find(&self, path: &[u8]) -> Option<usize> {
        find_sorted(self.len(), path, |i| self.path(i))
    }

    /// True when some entry lies strictly beneath directory `dir` (for the root, `dir`
    /// empty: when there is any entry).
    pub fn has_beneath(&self, dir: &[u8]) -> bool {
        first_beneath(0..self.len(), dir, |i| self.path(i)).is_some()
    }

    /// The indices of the entries beneath directory `dir` (all of them for the root).
    pub fn range(&self, dir: &[u8]) -> Range<usize> {
        range_in(0..self.len(), dir, |i| self.path(i))
    }

    /// [`ManifestView::range`] of `dir`, searching only `within` (the range of an ancestor
    /// of `dir`).
    pub fn range_in(&self, within: Range<usize>, dir: &[u8]) -> Range<usize> {
        range_in(within, dir, |i| self.path(i))
    }

    /// The index of the entry `dir/name`, searching only `range` (from
    /// [`ManifestView::range`] of `dir`), for names asked in increasing byte order (see
    /// [`find_child_from`]).
    pub fn find_child_from(
        &self,
        range: &Range<usize>,
        from: &mut usize,
        dir: &[u8],
        name: &[u8],
    ) -> Option<usize> {
        find_child_from(range, from, dir, name, |i| self.path(i))
    }
}

/// The entries of a [`ManifestView`], in path order.
pub struct Entries<'a> {
    r: Reader<'a>,
    index: u64,
    left: usize,
}

impl<'a> Iterator for Entries<'a> {
    type Item = EntryRef<'a>;

    fn next(&mut self) -> Option<EntryRef<'a>> {
        self.left = self.left.checked_sub(1)?;
        let e = self.r.entry(self.index).ok();
        self.index += 1;
        e
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.left, Some(self.left))
    }
}

impl ExactSizeIterator for Entries<'_> {}

/// The index of `path` in a list of `n` paths sorted by bytes (`path(i)`).
fn find_sorted<'a>(n: usize, want: &[u8], path: impl Fn(usize) -> &'a [u8]) -> Option<usize> {
    let (mut lo, mut hi) = (0, n);
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        match path(mid).cmp(want) {
            std::cmp::Ordering::Less => lo = mid + 1,
            std::cmp::Ordering::Greater => hi = mid,
            std::cmp::Ordering::Equal => return Some(mid),
        }
    }
    None
}

/// A path of a list sorted by bytes, as [`range_in`], [`first_beneath`] and
/// [`find_child_from`] read it: a slice, or a path held in pieces (the stat cache keeps a
/// directory's path once for all the records in it), compared without putting it together.
pub trait SortedPath: Copy {
    /// Its length in bytes.
    fn len(self) -> usize;
    /// True when it has no byte.
    fn is_empty(self) -> bool {
        self.len() == 0
    }
    /// Its byte at `i`, if it is that long.
    fn byte(self, i: usize) -> Option<u8>;
    /// Compares its bytes `from..to` (both cut to its length) with `other`, as slices
    /// compare.
    fn cmp_range(self, from: usize, to: usize, other: &[u8]) -> std::cmp::Ordering;
}

/// [`SortedPath::cmp_range`] of the path made of `pieces` one after another: compares its
/// bytes `from..to` (both cut to its length) with `other`, as slices compare.
pub fn cmp_pieces(pieces: &[&[u8]], from: usize, to: usize, other: &[u8]) -> std::cmp::Ordering {
    use std::cmp::Ordering;
    let from = from.min(to);
    let mut rest = other;
    let mut at = 0;
    for p in pieces {
        let (start, end) = (at, at + p.len());
        at = end;
        let part = &p[from.clamp(start, end) - start..to.clamp(start, end) - start];
        let n = part.len().min(rest.len());
        match part[..n].cmp(&rest[..n]) {
            Ordering::Equal if n < part.len() => return Ordering::Greater,
            Ordering::Equal => rest = &rest[n..],
            o => return o,
        }
    }
    if rest.is_empty() {
        Ordering::Equal
    } else {
        Ordering::Less
    }
}

impl SortedPath for &[u8] {
    fn len(self) -> usize {
        <[u8]>::len(self)
    }

    fn byte(self, i: usize) -> Option<u8> {
        self.get(i).copied()
    }

    fn cmp_range(self, from: usize, to: usize, other: &[u8]) -> std::cmp::Ordering {
        let to = to.min(<[u8]>::len(self));
        self[from.min(to)..to].cmp(other)
    }
}

/// The range of indices, in `within` of a list of paths sorted by bytes (`path(i)`), of the
/// paths beneath directory `dir`: those starting with `dir/` (all of `within` when `dir` is
/// empty). `within` must hold every path beneath `dir` (all of the list, or the range of an
/// ancestor of `dir`). For any list in manifest order, such as the worktree's stat cache.
pub fn range_in<P: SortedPath>(
    within: Range<usize>,
    dir: &[u8],
    path: impl Fn(usize) -> P,
) -> Range<usize> {
    if dir.is_empty() {
        return within;
    }
    bound_beneath(&within, dir, b'/', &path)..bound_beneath(&within, dir, b'/' + 1, &path)
}

/// [`range_in`] of `dir`, searched outward from `*near` (an index of `within`: where the
/// previous subdirectory of the same directory was found, say) by galloping rather than by
/// bisecting all of `within`: a range `k` entries from `*near` costs about `2 log2 k`
/// comparisons, close together in memory, where [`range_in`] costs `2 log2 within.len()`
/// spread over it. Correct wherever `*near` is (a walk asks for subdirectories in name
/// order, which is not quite their paths' order: `a/` sorts after `a-b/`); `*near` is left
/// at the range's end.
pub fn range_near<P: SortedPath>(
    within: Range<usize>,
    near: &mut usize,
    dir: &[u8],
    path: impl Fn(usize) -> P,
) -> Range<usize> {
    if dir.is_empty() {
        *near = within.end;
        return within;
    }
    let start = bound_near(&within, *near, dir, b'/', &path);
    let end = bound_near(&within, start, dir, b'/' + 1, &path);
    *near = end;
    start..end
}

/// [`bound_beneath`], found by galloping from `hint` (forward when the path at `hint` sorts
/// before the bound, else backward), then bisecting the last step.
fn bound_near<P: SortedPath>(
    within: &Range<usize>,
    hint: usize,
    dir: &[u8],
    last: u8,
    path: &impl Fn(usize) -> P,
) -> usize {
    let (start, end) = (within.start, within.end.max(within.start));
    let below = |i: usize| below_bound(path(i), dir, last);
    let h = hint.clamp(start, end);
    // Everything before `lo` is below the bound; `hi` is not, or is `end`.
    let (mut lo, mut hi);
    if h < end && below(h) {
        lo = h + 1;
        hi = lo;
        let mut step = 1usize;
        while hi < end && below(hi) {
            lo = hi + 1;
            hi = lo.saturating_add(step).min(end);
            step = step.saturating_mul(2);
        }
    } else {
        lo = start;
        hi = h;
        let mut step = 1usize;
        while hi > start {
            let probe = hi.saturating_sub(step).max(start);
            if below(probe) {
                lo = probe + 1;
                break;
            }
            hi = probe;
            step = step.saturating_mul(2);
        }
    }
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if below(mid) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    lo
}

/// Manifest order among the entries of one directory, compared by name: paths are compared as
/// bytes, and every path beneath subdirectory `d` starts with `d/`, so a name with `a_dir` (or
/// `b_dir`), a directory holding entries, sorts as the name followed by `/` (an empty
/// directory, itself an entry, sorts as its name).
pub fn name_order(a: &[u8], a_dir: bool, b: &[u8], b_dir: bool) -> std::cmp::Ordering {
    let a = a.iter().chain(if a_dir { &b"/"[..] } else { &[] });
    let b = b.iter().chain(if b_dir { &b"/"[..] } else { &[] });
    a.cmp(b)
}

/// The first index in `within` (see [`range_in`]) of a path beneath directory `dir`, if any:
/// one binary search where [`range_in`] does two. Any index of `within` when `dir` is empty.
pub fn first_beneath<P: SortedPath>(
    within: Range<usize>,
    dir: &[u8],
    path: impl Fn(usize) -> P,
) -> Option<usize> {
    if dir.is_empty() {
        return (!within.is_empty()).then_some(within.start);
    }
    let i = bound_beneath(&within, dir, b'/', &path);
    let p = (i < within.end).then(|| path(i))?;
    (p.cmp_range(0, dir.len(), dir).is_eq() && p.byte(dir.len()) == Some(b'/')).then_some(i)
}

/// The first index in `within` whose path does not sort before `dir` followed by `last`
/// (`/` for the start of the paths beneath `dir`, the byte after it for their end), compared
/// without building that key.
fn bound_beneath<P: SortedPath>(
    within: &Range<usize>,
    dir: &[u8],
    last: u8,
    path: &impl Fn(usize) -> P,
) -> usize {
    let (mut lo, mut hi) = (within.start, within.end);
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if below_bound(path(mid), dir, last) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    lo
}

/// True when `p` sorts before `dir` followed by `last` (see [`bound_beneath`]).
fn below_bound<P: SortedPath>(p: P, dir: &[u8], last: u8) -> bool {
    // (A path shorter than `dir` never compares equal to it here: it is below when it sorts
    // before `dir`, as a prefix of it does.)
    match p.cmp_range(0, dir.len(), dir) {
        std::cmp::Ordering::Equal => p.byte(dir.len()).is_none_or(|c| c < last),
        o => o == std::cmp::Ordering::Less,
    }
}

/// Search for `dir/name` within `range` of a list of paths sorted by bytes (`path(i)`; all
/// paths in `range` start with `dir/`, so only what follows is compared), for names asked
/// in increasing byte order: the search starts at `*from` (at first `range.start`),
/// galloping forward, and leaves `*from` past what it passed. So a directory's entries,
/// looked up in order, cost a few comparisons each rather than a whole binary search. Names
/// asked out of order may not be found.
pub fn find_child_from<P: SortedPath>(
    range: &Range<usize>,
    from: &mut usize,
    dir: &[u8],
    name: &[u8],
    path: impl Fn(usize) -> P,
) -> Option<usize> {
    let skip = if dir.is_empty() { 0 } else { dir.len() + 1 };
    let rest = |i: usize| path(i).cmp_range(skip, usize::MAX, name);
    let before = |i: usize| rest(i).is_lt();
    let end = range.end;
    // Everything below `lo` sorts before `name`; the first that does not is below `hi`.
    let mut lo = (*from).clamp(range.start, end);
    let mut hi = lo;
    let mut step = 1;
    while hi < end && before(hi) {
        lo = hi + 1;
        hi = lo.saturating_add(step).min(end);
        step *= 2;
    }
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if before(mid) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    *from = lo;
    if lo < end && rest(lo).is_eq() {
        *from = lo + 1;
        return Some(lo);
    }
    None
}

/// Reads and checks encoded entries one after another, counting them.
#[derive(Default)]
pub(crate) struct EntryChecker {
    checker: Checker,
    pub(crate) counts: EncodedCounts,
}

impl EntryChecker {
    /// Reads entry `index` at the reader's position and checks it.
    fn check_next<'a>(
        &mut self,
        r: &mut Reader<'a>,
        index: u64,
    ) -> Result<EntryRef<'a>, ManifestError> {
        let raw = r.entry(index)?;
        let target = match raw.data {
            DataRef::Blob { size, .. } => {
                self.counts.files += 1;
                self.counts.bytes = self.counts.bytes.saturating_add(size);
                None
            }
            DataRef::Target(t) => Some(t),
            DataRef::None => None,
        };
        self.checker
            .check(index, raw.path, raw.kind, target, true)?;
        self.counts.entries += 1;
        Ok(raw)
    }

    /// Checks `bytes`, exactly one encoded entry, as entry `index`.
    pub(crate) fn check_one(&mut self, bytes: &[u8], index: u64) -> Result<(), ManifestError> {
        let mut r = Reader { bytes, pos: 0 };
        self.check_next(&mut r, index)?;
        if r.remaining() != 0 {
            return Err(ManifestError::TrailingBytes(r.remaining()));
        }
        Ok(())
    }
}

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    /// Reads the header (magic, version) and returns the entry count.
    fn header(&mut self) -> Result<u64, ManifestError> {
        let trunc0 = || ManifestError::Truncated { index: 0 };
        if self.take(MAGIC.len()).ok_or(ManifestError::BadMagic)? != MAGIC {
            return Err(ManifestError::BadMagic);
        }
        let version = self.u32().ok_or_else(trunc0)?;
        if version != VERSION {
            return Err(ManifestError::UnsupportedVersion(version));
        }
        self.u64().ok_or_else(trunc0)
    }

    /// Reads entry `index`'s framing: path, kind, and its size and hash or its target.
    /// The entry is not validated.
    fn entry(&mut self, index: u64) -> Result<EntryRef<'a>, ManifestError> {
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

    fn remaining(&self) -> usize {
        self.bytes.len() - self.pos
    }
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.pos.checked_add(n)?;
        let s = self.bytes.get(self.pos..end)?;
        self.pos = end;
        Some(s)
    }
    fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }
    fn u32(&mut self) -> Option<u32> {
        self.take(4)
            .and_then(|b| b.try_into().ok())
            .map(u32::from_le_bytes)
    }
    fn u64(&mut self) -> Option<u64> {
        self.take(8)
            .and_then(|b| b.try_into().ok())
            .map(u64::from_le_bytes)
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
            let beneath =
                now.len() > prev.len() && now.starts_with(&prev) && now[prev.len()] == b'/';
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
            if let Some(&(n, parent_kind)) =
                chain.iter().find(|&&(n, _)| path.get(n) == Some(&b'/'))
            {
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
                    Manifest::read_chunked(Dribble(bytes, dribble), bytes.len() as u64, chunk)
                        .unwrap();
                assert_eq!(hash, Hash::of(bytes), "chunk {chunk}, {dribble} a read");
                assert_eq!(got, want, "chunk {chunk}, {dribble} a read: {bytes:?}");
                // Entry by entry: the same entries, or an error.
                let mut seen = Vec::new();
                let (hash, each) =
                    read_each(Dribble(bytes, dribble), bytes.len() as u64, &mut |e| {
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
                [&MAGIC[..], &2u32.to_le_bytes(), &0u64.to_le_bytes()].concat(),
                ManifestError::UnsupportedVersion(2),
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
        let all: std::collections::HashSet<&[u8]> =
            entries.iter().map(|e| e.path.as_slice()).collect();
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
}
