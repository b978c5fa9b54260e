//! Lookups in lists of paths sorted by bytes, as a manifest's entries and a stat cache's
//! records are: a path's index, the range of a directory's entries, a child found by a
//! forward (galloping) search, each over any [`SortedPath`] (a slice, or a path held in
//! pieces).

use std::ops::Range;

/// The index of `path` in a list of `n` paths sorted by bytes (`path(i)`).
pub(super) fn find_sorted<'a>(
    n: usize,
    want: &[u8],
    path: impl Fn(usize) -> &'a [u8],
) -> Option<usize> {
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
