//! The checks every manifest passes, entry by entry in encoded order ([`Checker`]): valid
//! paths, strictly increasing, valid symlink targets, data matching the kind, nothing beneath
//! a file, symlink or empty directory; over whole encodings ([`validate_encoded`],
//! [`each_encoded`]) and lists of entries ([`validate`]).

use cowtree_fs::name::{PATH_MAX, check_relative_path_from};

use super::archive::ArchiveCheck;
use super::encoding::{Data, DataRef, Entry, EntryRef, Reader};
use super::error::ManifestError;
use super::kind::Kind;

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

/// Checks an encoded manifest exactly as [`Manifest::decode`](super::Manifest::decode) does (framing, then every
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
pub(super) fn check_encoded<'a>(
    bytes: &'a [u8],
    mut offs: Option<&mut Vec<u32>>,
    visit: &mut dyn FnMut(EntryRef<'a>),
) -> Result<EncodedCounts, ManifestError> {
    if offs.is_some() && u32::try_from(bytes.len()).is_err() {
        return Err(ManifestError::TooLarge(bytes.len()));
    }
    let mut r = Reader::at(bytes, 0);
    let count = r.header()?;
    let mut stream = EntryChecker::default();
    if r.v2 {
        let (bits, extras) = r.archive_head()?;
        stream.archive = Some(ArchiveCheck::new(bits, extras, false)?);
    }
    if let Some(offs) = offs.as_deref_mut() {
        // Each entry takes at least 6 bytes; never trust the count for an allocation.
        let cap = usize::try_from(count)
            .unwrap_or(usize::MAX)
            .min(r.remaining() / 6);
        offs.reserve_exact(cap);
    }
    for index in 0..count {
        if let Some(offs) = offs.as_deref_mut() {
            // (Below 4 GiB: checked above.)
            offs.push(r.pos as u32);
        }
        visit(stream.check_next(&mut r, index)?);
    }
    if let Some(a) = stream.archive.take() {
        a.finish()?;
    }
    if r.remaining() != 0 {
        return Err(ManifestError::TrailingBytes(r.remaining()));
    }
    Ok(stream.counts)
}

/// Reads and checks encoded entries one after another, counting them.
#[derive(Default)]
pub(crate) struct EntryChecker {
    checker: Checker,
    pub(crate) counts: EncodedCounts,
    /// The checks of version 2, for the entries of a version 2 manifest.
    archive: Option<ArchiveCheck>,
}

impl EntryChecker {
    /// Reads entry `index` at the reader's position and checks it.
    fn check_next<'a>(
        &mut self,
        r: &mut Reader<'a>,
        index: u64,
    ) -> Result<EntryRef<'a>, ManifestError> {
        let (raw, meta) = r.entry_full(index)?;
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
        if let (Some(a), Some(m)) = (&mut self.archive, meta) {
            a.entry(index, &raw, m)?;
        }
        self.counts.entries += 1;
        Ok(raw)
    }

    /// Checks `bytes`, exactly one encoded entry, as entry `index`.
    pub(crate) fn check_one(&mut self, bytes: &[u8], index: u64) -> Result<(), ManifestError> {
        let mut r = Reader {
            bytes,
            pos: 0,
            v2: false,
        };
        self.check_next(&mut r, index)?;
        if r.remaining() != 0 {
            return Err(ManifestError::TrailingBytes(r.remaining()));
        }
        Ok(())
    }
}
