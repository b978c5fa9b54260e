//! A validated manifest read in place ([`ManifestView`]): its encoded bytes and each entry's
//! offset, entries read on demand and looked up by path.

use std::ops::Range;

use super::check::{EncodedCounts, check_encoded};
use super::encoding::{Data, EntryRef, HEADER_LEN, Reader, encode_header, encoded_len};
use super::error::ManifestError;
use super::owned::Manifest;
use super::sorted::{find_child_from, find_sorted, first_beneath, range_in};

/// A validated manifest read in place: its encoded bytes (owned or borrowed, as `B`) and the
/// offset of each entry, so that loading a manifest of many entries allocates twice rather
/// than once per entry. [`ManifestView::parse`] refuses exactly what [`Manifest::decode`]
/// refuses; entries are then read on demand as [`EntryRef`]s borrowing from the bytes, and
/// looked up by path (entries are sorted by path bytes).
#[derive(Debug, Clone)]
pub struct ManifestView<B = Vec<u8>> {
    pub(super) bytes: B,
    /// The offset of each entry in `bytes`.
    pub(super) offs: Vec<u32>,
    pub(super) counts: EncodedCounts,
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
        if m.archive().is_some() {
            // (Its offsets are found by reading it: each entry's metadata has its own length.)
            return ManifestView::parse(m.encode());
        }
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
        let mut r = Reader::at(self.bytes.as_ref(), self.offs[i] as usize);
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
            r: Reader::at(
                self.bytes.as_ref(),
                self.offs.first().map_or(0, |&o| o as usize),
            ),
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
