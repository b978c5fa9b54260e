//! Why a manifest was refused ([`ManifestError`], naming the entry), and how its paths are
//! shown in messages ([`show`]).

use cowtree_fs::name::NameError;

use super::kind::{Kind, VERSION, VERSION_ARCHIVE};

/// Why a manifest was refused. Entry-level errors carry the entry's index and path.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ManifestError {
    /// The input does not start with [`MAGIC`](super::MAGIC).
    #[error("not a cowtree manifest (bad magic bytes)")]
    BadMagic,
    /// A version this code does not read.
    #[error(
        "manifest format version {0} is not supported (this cowtree reads versions {VERSION} and {VERSION_ARCHIVE})"
    )]
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
    /// A manifest of 4 GiB or more, beyond what a [`ManifestView`](super::ManifestView) indexes.
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
    /// What version 2 records of an entry is refused (see [`super::Archive`]).
    #[error("entry {index} {}: {reason}", show(path))]
    BadArchive {
        /// Entry index.
        index: u64,
        /// Entry path.
        path: Vec<u8>,
        /// Why.
        reason: String,
    },
    /// A directory or special-file record of version 2 is refused (see [`super::Extra`]).
    #[error(
        "record {index} {} (directories and special files): {reason}",
        show(path)
    )]
    BadRecord {
        /// Record index.
        index: u64,
        /// Record path (empty for the root).
        path: Vec<u8>,
        /// Why.
        reason: String,
    },
    /// What follows a version 2 header is refused.
    #[error("manifest version 2: {0}")]
    BadArchiveHeader(String),
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
            E::BadArchive {
                index,
                path,
                reason,
            } => E::BadArchive {
                index: f(index),
                path,
                reason,
            },
            other => other,
        }
    }
}

impl ManifestError {
    /// The same error with its record index (of a [`ManifestError::BadRecord`]) passed
    /// through `f`, as [`ManifestError::map_index`] does for entries.
    pub fn map_record_index(self, f: impl Fn(u64) -> u64) -> ManifestError {
        match self {
            ManifestError::BadRecord {
                index,
                path,
                reason,
            } => ManifestError::BadRecord {
                index: f(index),
                path,
                reason,
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
