//! A read-only view of a base manifest for comparisons: the encoded bytes and the offset of
//! each entry, so that status loads a snapshot of 80,000 entries without 80,000 allocations.
//!
//! The bytes are checked against the snapshot id and parsed with bounds checks, kind checks
//! and strict path order, but paths are not validated component by component: this view is
//! only used to look paths up and compare, never to name anything to create. Commands that
//! write entries (switch, reset) take them from [`cowtree_store::Store::load`], which
//! validates every path.

use cowtree_store::manifest::{MAGIC, VERSION};
use cowtree_store::{Hash, Kind, Manifest, Store};

use crate::error::{Error, Result};

/// A parsed manifest.
#[derive(Debug)]
pub struct Base {
    bytes: Vec<u8>,
    offs: Vec<u32>,
}

/// One entry of a [`Base`].
#[derive(Debug, Clone, Copy)]
pub struct BaseEntry<'a> {
    /// Path relative to the tree root.
    pub path: &'a [u8],
    /// Kind.
    pub kind: Kind,
    /// Blob size (files), target length (symlinks), 0 (directories).
    pub size: u64,
    /// The blob hash (files); `None` otherwise.
    pub hash: Option<Hash>,
    /// The symlink target (empty otherwise).
    pub target: &'a [u8],
}

fn kind_of(code: u8) -> Option<Kind> {
    Some(match code {
        1 => Kind::File,
        2 => Kind::Executable,
        3 => Kind::Symlink,
        4 => Kind::Dir,
        _ => return None,
    })
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

fn u64_at(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(at..at + 8)?.try_into().ok()?))
}

/// Parses the entry at `at`: (entry, offset of the next entry).
fn entry_at(b: &[u8], at: usize) -> Option<(BaseEntry<'_>, usize)> {
    let len = u32_at(b, at)? as usize;
    let p0 = at + 4;
    let path = b.get(p0..p0.checked_add(len)?)?;
    let k = p0 + len;
    let kind = kind_of(*b.get(k)?)?;
    let d = k + 1;
    Some(match kind {
        Kind::File | Kind::Executable => {
            let size = u64_at(b, d)?;
            let hash = Hash::from_slice(b.get(d + 8..d + 40)?)?;
            let e = BaseEntry {
                path,
                kind,
                size,
                hash: Some(hash),
                target: &[],
            };
            (e, d + 40)
        }
        Kind::Symlink => {
            let tl = u32_at(b, d)? as usize;
            let target = b.get(d + 4..(d + 4).checked_add(tl)?)?;
            let e = BaseEntry {
                path,
                kind,
                size: tl as u64,
                hash: None,
                target,
            };
            (e, d + 4 + tl)
        }
        Kind::Dir => (
            BaseEntry {
                path,
                kind,
                size: 0,
                hash: None,
                target: &[],
            },
            d,
        ),
    })
}

impl Base {
    /// Parses manifest bytes; `None` when they are not a well-formed, sorted manifest.
    pub fn parse(bytes: Vec<u8>) -> Option<Base> {
        if bytes.get(..8)? != MAGIC || u32_at(&bytes, 8)? != VERSION {
            return None;
        }
        let count = u64_at(&bytes, 12)?;
        let mut offs = Vec::with_capacity((count as usize).min(bytes.len() / 6));
        let mut at = 20;
        let mut prev: Option<&[u8]> = None;
        for _ in 0..count {
            let (e, next) = entry_at(&bytes, at)?;
            if prev.is_some_and(|p| p >= e.path) {
                return None;
            }
            prev = Some(e.path);
            offs.push(u32::try_from(at).ok()?);
            at = next;
        }
        if at != bytes.len() {
            return None;
        }
        Some(Base { bytes, offs })
    }

    /// A view of no entries.
    pub fn empty() -> Base {
        Base {
            bytes: Vec::new(),
            offs: Vec::new(),
        }
    }

    /// Reads snapshot `id` from the store, checking that its bytes hash to `id`.
    pub fn load(store: &Store, id: &Hash) -> Result<Base> {
        Base::parse(store.read_snapshot(id)?).ok_or_else(|| {
            Error::msg(format!(
                "snapshot {}: the manifest does not decode",
                id.to_hex()
            ))
        })
    }

    /// The view of a decoded manifest.
    pub fn from_manifest(m: &Manifest) -> Base {
        Base::parse(m.encode()).expect("a validated manifest's encoding parses")
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.offs.len()
    }

    /// True when there are no entries.
    pub fn is_empty(&self) -> bool {
        self.offs.is_empty()
    }

    /// Entry `i`.
    pub fn get(&self, i: usize) -> BaseEntry<'_> {
        entry_at(&self.bytes, self.offs[i] as usize)
            .expect("offsets were checked when parsed")
            .0
    }

    fn path(&self, i: usize) -> &[u8] {
        let o = self.offs[i] as usize;
        let len = u32_at(&self.bytes, o).expect("checked when parsed") as usize;
        &self.bytes[o + 4..o + 4 + len]
    }

    /// Index of the entry at `path`.
    pub fn find(&self, path: &[u8]) -> Option<usize> {
        let mut lo = 0;
        let mut hi = self.offs.len();
        while lo < hi {
            let mid = (lo + hi) / 2;
            match self.path(mid).cmp(path) {
                std::cmp::Ordering::Less => lo = mid + 1,
                std::cmp::Ordering::Greater => hi = mid,
                std::cmp::Ordering::Equal => return Some(mid),
            }
        }
        None
    }

    /// The indices of the entries beneath directory `dir` (all of them for the root).
    pub fn range(&self, dir: &[u8]) -> std::ops::Range<usize> {
        range_of(self.offs.len(), dir, |i| self.path(i))
    }

    /// [`Base::range`] of `dir`, searching only `within` (the range of an ancestor of `dir`).
    pub fn range_in(&self, within: std::ops::Range<usize>, dir: &[u8]) -> std::ops::Range<usize> {
        range_in(within, dir, |i| self.path(i))
    }

    /// Index of the entry `dir/name`, searching only `range` (from [`Base::range`] of `dir`):
    /// the tests' reference for [`Base::find_child_from`].
    #[cfg(test)]
    pub fn find_child(
        &self,
        range: &std::ops::Range<usize>,
        dir: &[u8],
        name: &[u8],
    ) -> Option<usize> {
        find_child(range, dir, name, |i| self.path(i))
    }

    /// Index of the entry `dir/name`, searching only `range` (from [`Base::range`] of `dir`),
    /// for names asked in increasing byte order (see `find_child_from`).
    pub fn find_child_from(
        &self,
        range: &std::ops::Range<usize>,
        from: &mut usize,
        dir: &[u8],
        name: &[u8],
    ) -> Option<usize> {
        find_child_from(range, from, dir, name, |i| self.path(i))
    }

    /// True when some entry lies strictly beneath directory `path`.
    pub fn has_beneath(&self, path: &[u8]) -> bool {
        let mut prefix = path.to_vec();
        prefix.push(b'/');
        let (mut lo, mut hi) = (0, self.offs.len());
        while lo < hi {
            let mid = (lo + hi) / 2;
            if self.path(mid) < prefix.as_slice() {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        lo < self.offs.len() && self.path(lo).starts_with(&prefix)
    }
}

/// The range of indices, in a list of `n` paths sorted by bytes (`path(i)`), of the paths
/// beneath directory `dir`: those starting with `dir/` (all of them when `dir` is empty).
pub(crate) fn range_of<'a>(
    n: usize,
    dir: &[u8],
    path: impl Fn(usize) -> &'a [u8],
) -> std::ops::Range<usize> {
    range_in(0..n, dir, path)
}

/// [`range_of`], searching only `within` (which must hold every path beneath `dir`).
pub(crate) fn range_in<'a>(
    within: std::ops::Range<usize>,
    dir: &[u8],
    path: impl Fn(usize) -> &'a [u8],
) -> std::ops::Range<usize> {
    if dir.is_empty() {
        return within;
    }
    // The paths beneath `dir` are those from `dir/` (inclusive) to `dir0` (exclusive, `0`
    // being the byte after `/`); compared without building either key.
    let below = |p: &[u8], last: u8| match p.get(..dir.len()).map(|h| h.cmp(dir)) {
        Some(std::cmp::Ordering::Equal) => p.get(dir.len()).is_none_or(|&c| c < last),
        Some(o) => o == std::cmp::Ordering::Less,
        None => p < dir,
    };
    let bound = |last: u8| {
        let (mut lo, mut hi) = (within.start, within.end);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if below(path(mid), last) {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        lo
    };
    bound(b'/')..bound(b'/' + 1)
}

/// Search for `dir/name` within `range` (all paths there start with `dir/`, so only what
/// follows is compared), for names asked in increasing byte order: the search starts at `*from` (at
/// first `range.start`), galloping forward, and leaves `*from` past what it passed. So a
/// directory's entries, looked up in order, cost a few comparisons each rather than a whole
/// binary search. Names asked out of order may not be found.
pub(crate) fn find_child_from<'a>(
    range: &std::ops::Range<usize>,
    from: &mut usize,
    dir: &[u8],
    name: &[u8],
    path: impl Fn(usize) -> &'a [u8],
) -> Option<usize> {
    let skip = if dir.is_empty() { 0 } else { dir.len() + 1 };
    let before = |i: usize| path(i)[skip..].cmp(name) == std::cmp::Ordering::Less;
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
    if lo < end && path(lo)[skip..] == *name {
        *from = lo + 1;
        return Some(lo);
    }
    None
}

/// Binary search for `dir/name` within `range` (all paths there start with `dir/`, so only
/// what follows is compared): the tests' reference for [`find_child_from`].
#[cfg(test)]
pub(crate) fn find_child<'a>(
    range: &std::ops::Range<usize>,
    dir: &[u8],
    name: &[u8],
    path: impl Fn(usize) -> &'a [u8],
) -> Option<usize> {
    let skip = if dir.is_empty() { 0 } else { dir.len() + 1 };
    let (mut lo, mut hi) = (range.start, range.end);
    while lo < hi {
        let mid = (lo + hi) / 2;
        match path(mid)[skip..].cmp(name) {
            std::cmp::Ordering::Less => lo = mid + 1,
            std::cmp::Ordering::Greater => hi = mid,
            std::cmp::Ordering::Equal => return Some(mid),
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use cowtree_store::Entry;

    #[test]
    fn child_lookup_searches_only_the_directory_range() {
        let h = Hash::of(b"x");
        let m = Manifest::new(vec![
            Entry::blob(b"a".to_vec(), false, 1, h),
            Entry::blob(b"a-b".to_vec(), false, 1, h),
            Entry::blob(b"d/x".to_vec(), false, 1, h),
            Entry::blob(b"d/y/z".to_vec(), true, 1, h),
            Entry::symlink(b"d/z".to_vec(), b"x".to_vec()),
            Entry::dir(b"d0".to_vec()),
        ])
        .expect("valid");
        let b = Base::from_manifest(&m);
        let r = b.range(b"d");
        assert_eq!(r, 2..5);
        assert_eq!(b.find_child(&r, b"d", b"x"), Some(2));
        assert_eq!(b.find_child(&r, b"d", b"z"), Some(4));
        assert_eq!(b.find_child(&r, b"d", b"y"), None);
        assert_eq!(b.get(4).target, b"x");
        let root = b.range(b"");
        assert_eq!(b.find_child(&root, b"", b"d0"), Some(5));
        assert_eq!(b.find(b"d/y/z"), Some(3));
        assert!(b.has_beneath(b"d/y"));
        assert!(!b.has_beneath(b"a"));
        assert!(Base::parse(m.encode()[..30].to_vec()).is_none());
    }

    #[test]
    fn galloping_lookup_finds_what_binary_search_finds_for_names_in_order() {
        let h = Hash::of(b"x");
        let mut entries = vec![Entry::blob(b"d".to_vec(), false, 1, h)];
        for i in 0..300u32 {
            entries.push(Entry::blob(format!("e/f{i:04}").into_bytes(), false, 1, h));
            if i % 7 == 0 {
                entries.push(Entry::blob(
                    format!("e/f{i:04}-d/deep").into_bytes(),
                    false,
                    1,
                    h,
                ));
            }
        }
        entries.push(Entry::blob(b"z".to_vec(), false, 1, h));
        let m = Manifest::new(entries).expect("valid");
        let b = Base::from_manifest(&m);
        let r = b.range(b"e");
        // Every third name, some absent, some sorting between present ones.
        let mut from = r.start;
        for i in (0..330u32).step_by(3) {
            let name = format!("f{i:04}");
            let want = b.find_child(&r, b"e", name.as_bytes());
            assert_eq!(
                b.find_child_from(&r, &mut from, b"e", name.as_bytes()),
                want,
                "{name}"
            );
            let between = format!("f{i:04}-");
            assert_eq!(
                b.find_child_from(&r, &mut from, b"e", between.as_bytes()),
                None
            );
        }
        let root = b.range(b"");
        let mut from = root.start;
        assert_eq!(b.find_child_from(&root, &mut from, b"", b"d"), Some(0));
        assert_eq!(b.find_child_from(&root, &mut from, b"", b"e"), None);
        assert_eq!(b.find_child_from(&root, &mut from, b"", b"z"), b.find(b"z"));
    }
}
