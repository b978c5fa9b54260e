//! A manifest held compactly, for the commands that hold a whole tree's entries while they
//! work on it (a checkout; status, switch and reset, for a worktree's base): each entry as its
//! directory and its name, each directory's path once, no allocation of its own.
//!
//! A [`Manifest`] holds every entry's whole path in an allocation of its own beside an
//! 80-byte [`crate::Entry`]: at 2,000,000 files of paths some 50 bytes long, 134 bytes an
//! entry, most of them the paths' prefixes again and again. A [`CompactManifest`] holds the
//! names and the symlinks' targets in one buffer, and a 56-byte record an entry that points
//! into it; the manifest's order carries the rest (see docs/manifest.md, "Memory of the
//! commands that read a snapshot"). A directory's path is a prefix of the path of the first
//! entry beneath it, which the buffer then holds whole (the entry's name is the end of it):
//! so the buffer never holds more than the entries' paths once and the symlinks' targets,
//! however deep the tree.
//!
//! It is read from the encoding a chunk at a time ([`CompactManifest::read`]) and refuses
//! what [`Manifest::decode`] refuses, with the same checks made one entry at a time, and a
//! manifest too large for its 32-bit indexes ([`ManifestError::TooManyNames`]).

use std::cmp::Ordering;
use std::ops::Range;

use crate::hash::Hash;
use crate::manifest::{
    Checker, DataRef, EntryMeta, EntryRef, Kind, Manifest, ManifestError, READ_CHUNK, Sink,
    SortedPath, cmp_pieces, find_child_from, first_beneath, range_in, range_near, read_into,
};

/// Bytes of [`CompactManifest::bytes`]: where a name, a target or a directory's path is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Span {
    start: u32,
    len: u32,
}

/// A directory of the tree: the root, an ancestor of an entry, or an empty directory.
#[derive(Debug, Clone, Copy)]
struct DirRec {
    /// Its path (empty for the root).
    path: Span,
    /// Its parent's index (the root's own for the root).
    parent: u32,
}

/// An entry: its directory and name, and its data, in 56 bytes (nothing in it needs more
/// than 4-byte alignment: a file's size is kept in two halves).
#[derive(Debug, Clone, Copy)]
struct Item {
    name: Span,
    dir: u32,
    kind: Kind,
    /// A file's size (low half, high half), or where a symlink's target is (start,
    /// length); zeros for a directory.
    size: [u32; 2],
    /// A file's blob hash; zeros otherwise.
    hash: Hash,
}

/// A validated manifest: its entries in the manifest's order (by path bytes), each as the
/// index of its directory and its name, and every directory of the tree (the root at index
/// 0, then every other sorted by path bytes) with its whole path (see the module doc).
#[derive(Debug, Clone, Default)]
pub struct CompactManifest {
    /// Names, targets, and the whole paths of the entries that directories' paths are
    /// prefixes of.
    bytes: Vec<u8>,
    dirs: Vec<DirRec>,
    items: Vec<Item>,
    files: u64,
    symlinks: u64,
    file_bytes: u64,
    /// The paths of the special files a version 2 manifest records (sorted; see
    /// [`crate::manifest::Archive`]), which are no entries of the tree.
    specials: Vec<Vec<u8>>,
    /// A version 2 manifest: it records what `--archive` keeps (owners, modes' set-ID bits,
    /// attributes, hardlinks, special files), which only a checkout asking for it gives.
    archive: bool,
}

/// An entry of a [`CompactManifest`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CompactEntry<'a> {
    /// The index of its directory ([`CompactManifest::dir_path`]).
    pub dir: usize,
    /// Its name in that directory.
    pub name: &'a [u8],
    /// The kind.
    pub kind: Kind,
    /// Blob, link target or nothing, matching `kind`.
    pub data: DataRef<'a>,
}

impl<'a> CompactEntry<'a> {
    /// The size of a file entry; 0 otherwise.
    pub fn size(&self) -> u64 {
        match self.data {
            DataRef::Blob { size, .. } => size,
            _ => 0,
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
}

/// An entry's whole path as a [`CompactManifest`] holds it: its directory's path, a `/`
/// (unless the directory is the root) and its name, compared in those pieces (the searches
/// of [`crate::manifest`] take it as they take a slice).
#[derive(Debug, Clone, Copy)]
pub struct CompactPath<'a> {
    dir: &'a [u8],
    name: &'a [u8],
}

impl CompactPath<'_> {
    fn sep(&self) -> &'static [u8] {
        if self.dir.is_empty() { b"" } else { b"/" }
    }
}

impl SortedPath for CompactPath<'_> {
    fn len(self) -> usize {
        self.dir.len() + self.sep().len() + self.name.len()
    }

    fn byte(self, i: usize) -> Option<u8> {
        let head = self.dir.len() + self.sep().len();
        match i.checked_sub(head) {
            Some(j) => self.name.get(j).copied(),
            None => Some(self.dir.get(i).copied().unwrap_or(b'/')),
        }
    }

    fn cmp_range(self, from: usize, to: usize, other: &[u8]) -> Ordering {
        // Within the name alone (a directory's entry after the directory's path, as its
        // entries are looked up), or within the directory's path (an ancestor's path against
        // it, as the entries beneath the ancestor are found): one comparison of slices.
        let head = self.dir.len() + self.sep().len();
        if let Some(f) = from.checked_sub(head) {
            let to = to.saturating_sub(head).min(self.name.len());
            return self.name[f.min(to)..to].cmp(other);
        }
        if to <= self.dir.len() {
            return self.dir[from.min(to)..to].cmp(other);
        }
        cmp_pieces(&[self.dir, self.sep(), self.name], from, to, other)
    }
}

/// The index of the root in [`CompactManifest`]'s directories.
pub const ROOT: usize = 0;

impl CompactManifest {
    /// Reads and decodes the manifest `src` reads, as [`Manifest::read`] does (a chunk at a
    /// time, every byte hashed to the end even past an error), into its compact form. It
    /// refuses what [`Manifest::decode`] refuses; for bytes with several faults the error
    /// may name another entry (each entry is checked as it is read, not all framed first).
    /// A manifest whose names, targets and paths held pass 4 GiB is refused
    /// ([`ManifestError::TooManyNames`]; they are fewer bytes than its encoding).
    pub fn read(
        src: impl std::io::Read,
        size: u64,
    ) -> std::io::Result<(Hash, Result<CompactManifest, ManifestError>)> {
        CompactManifest::read_chunked(src, size, READ_CHUNK)
    }

    pub(crate) fn read_chunked(
        src: impl std::io::Read,
        size: u64,
        chunk: usize,
    ) -> std::io::Result<(Hash, Result<CompactManifest, ManifestError>)> {
        let mut b = Builder::default();
        let (hash, decoded) = read_into(src, size, chunk, &mut b, false)?;
        let decoded = decoded.and_then(|archive| {
            let mut c = b.finish()?;
            c.specials = specials_of(archive.as_ref());
            c.archive = archive.is_some();
            Ok(c)
        });
        Ok((hash, decoded))
    }

    /// The compact form of `m` (refused only past 4 GiB of names, targets and paths:
    /// [`ManifestError::TooManyNames`]).
    pub fn of(m: &Manifest) -> Result<CompactManifest, ManifestError> {
        let mut b = Builder::default();
        b.reserve(m.entries().len());
        for (i, e) in m.entries().iter().enumerate() {
            b.push(i as u64, EntryRef::of(e), None)?;
        }
        let mut c = b.finish()?;
        c.specials = specials_of(m.archive());
        c.archive = m.archive().is_some();
        Ok(c)
    }

    /// True for a version 2 manifest (`snapshot --archive`): it records owners, set-ID bits,
    /// attributes, hardlinks or special files, which `checkout --archive` gives and the
    /// commands that write entries as a plain checkout does (switch, reset) do not.
    pub fn is_archive(&self) -> bool {
        self.archive
    }

    /// True when a version 2 manifest records a special file (FIFO, socket, device node) at
    /// `path`: not an entry of the tree, but part of the snapshot (`status` does not show it
    /// as added).
    pub fn records_special(&self, path: &[u8]) -> bool {
        self.specials
            .binary_search_by(|p| p.as_slice().cmp(path))
            .is_ok()
    }

    /// The [`Manifest`] of the same entries.
    pub fn to_manifest(&self) -> Manifest {
        let mut path = Vec::new();
        let entries = (0..self.len())
            .filter_map(|i| self.entry_with(i, &mut path))
            .collect();
        Manifest::from_sorted(entries)
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// No entries.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Entry `i` (in the manifest's order), if there is one.
    pub fn get(&self, i: usize) -> Option<CompactEntry<'_>> {
        self.items.get(i).map(|it| self.entry(it))
    }

    /// Every entry, in the manifest's order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = CompactEntry<'_>> + '_ {
        self.items.iter().map(|it| self.entry(it))
    }

    fn entry(&self, it: &Item) -> CompactEntry<'_> {
        CompactEntry {
            dir: it.dir as usize,
            name: self.span(it.name),
            kind: it.kind,
            data: match it.kind {
                Kind::File | Kind::Executable => DataRef::Blob {
                    size: u64::from(it.size[0]) | u64::from(it.size[1]) << 32,
                    hash: it.hash,
                },
                Kind::Symlink => DataRef::Target(self.span(Span {
                    start: it.size[0],
                    len: it.size[1],
                })),
                Kind::Dir => DataRef::None,
            },
        }
    }

    /// Puts entry `i`'s whole path in `buf` (emptied first; left empty when there is no
    /// entry `i`).
    pub fn path_into(&self, i: usize, buf: &mut Vec<u8>) {
        buf.clear();
        let Some(it) = self.items.get(i) else { return };
        let dir = self.dir_path(it.dir as usize);
        buf.extend_from_slice(dir);
        if !dir.is_empty() {
            buf.push(b'/');
        }
        buf.extend_from_slice(self.span(it.name));
    }

    /// Entry `i`'s whole path (empty when there is no entry `i`).
    pub fn path(&self, i: usize) -> Vec<u8> {
        let mut buf = Vec::new();
        self.path_into(i, &mut buf);
        buf
    }

    /// Entry `i` as a [`crate::Entry`] of its own (its whole path put together), if there
    /// is one.
    pub fn to_entry(&self, i: usize) -> Option<crate::Entry> {
        self.entry_with(i, &mut Vec::new())
    }

    /// [`CompactManifest::to_entry`], its path put together in `path`.
    fn entry_with(&self, i: usize, path: &mut Vec<u8>) -> Option<crate::Entry> {
        let e = self.get(i)?;
        self.path_into(i, path);
        Some(
            EntryRef {
                path,
                kind: e.kind,
                data: e.data,
            }
            .to_entry(),
        )
    }

    /// Entry `i`'s whole path, in pieces (empty when there is no entry `i`).
    pub fn path_ref(&self, i: usize) -> CompactPath<'_> {
        match self.items.get(i) {
            Some(it) => CompactPath {
                dir: self.dir_path(it.dir as usize),
                name: self.span(it.name),
            },
            None => CompactPath {
                dir: b"",
                name: b"",
            },
        }
    }

    /// The index of the entry whose whole path is `path`, found by bisection in the
    /// manifest's order without building a path.
    pub fn find(&self, path: &[u8]) -> Option<usize> {
        let (mut lo, mut hi) = (0, self.items.len());
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            match self.path_ref(mid).cmp_range(0, usize::MAX, path) {
                Ordering::Less => lo = mid + 1,
                Ordering::Greater => hi = mid,
                Ordering::Equal => return Some(mid),
            }
        }
        None
    }

    /// True when some entry lies strictly beneath directory `dir` (for the root, `dir`
    /// empty: when there is any entry).
    pub fn has_beneath(&self, dir: &[u8]) -> bool {
        first_beneath(0..self.len(), dir, |i| self.path_ref(i)).is_some()
    }

    /// The indices of the entries beneath directory `dir` (all of them for the root),
    /// searching only `within` (all of them, or the range of an ancestor of `dir`).
    pub fn range_in(&self, within: Range<usize>, dir: &[u8]) -> Range<usize> {
        range_in(within, dir, |i| self.path_ref(i))
    }

    /// [`CompactManifest::range_in`], searched outward from `*near` and leaving it at the
    /// range's end (see [`crate::manifest::range_near`]): for the subdirectories of one
    /// directory, asked one after another.
    pub fn range_near(&self, within: Range<usize>, near: &mut usize, dir: &[u8]) -> Range<usize> {
        range_near(within, near, dir, |i| self.path_ref(i))
    }

    /// The index of the entry `dir/name`, searching only `range` (from
    /// [`CompactManifest::range_in`] of `dir`), for names asked in increasing byte order
    /// (see [`crate::manifest::find_child_from`]).
    pub fn find_child_from(
        &self,
        range: &Range<usize>,
        from: &mut usize,
        dir: &[u8],
        name: &[u8],
    ) -> Option<usize> {
        find_child_from(range, from, dir, name, |i| self.path_ref(i))
    }

    /// The index of the directory whose path is `path` (the root's is empty).
    pub fn find_dir(&self, path: &[u8]) -> Option<usize> {
        if path.is_empty() {
            return (!self.dirs.is_empty()).then_some(ROOT);
        }
        self.dirs
            .get(1..)?
            .binary_search_by(|r| self.span(r.path).cmp(path))
            .ok()
            .map(|i| i + 1)
    }

    /// Number of directories, the root included: ancestors of the entries and empty
    /// directories.
    pub fn dirs(&self) -> usize {
        self.dirs.len()
    }

    /// Directory `d`'s path: empty for the root ([`ROOT`]) and for no directory `d`.
    /// Directories after the root are sorted by path bytes.
    pub fn dir_path(&self, d: usize) -> &[u8] {
        self.dirs.get(d).map_or(&[][..], |r| self.span(r.path))
    }

    /// The index of directory `d`'s parent; `None` for the root and for no directory `d`.
    pub fn dir_parent(&self, d: usize) -> Option<usize> {
        match d {
            ROOT => None,
            _ => self.dirs.get(d).map(|r| r.parent as usize),
        }
    }

    /// Number of file and executable entries.
    pub fn files(&self) -> u64 {
        self.files
    }

    /// Number of symlink entries.
    pub fn symlinks(&self) -> u64 {
        self.symlinks
    }

    /// Total size of the file and executable entries.
    pub fn bytes(&self) -> u64 {
        self.file_bytes
    }

    /// Bytes this holds on the heap (its allocations' capacities).
    #[cfg(test)]
    fn heap_bytes(&self) -> usize {
        self.bytes.capacity()
            + self.dirs.capacity() * std::mem::size_of::<DirRec>()
            + self.items.capacity() * std::mem::size_of::<Item>()
    }

    fn span(&self, s: Span) -> &[u8] {
        let start = s.start as usize;
        self.bytes
            .get(start..start + s.len as usize)
            .unwrap_or_default()
    }
}

/// The paths of the special files `archive` records, sorted.
fn specials_of(archive: Option<&crate::manifest::Archive>) -> Vec<Vec<u8>> {
    archive.map_or_else(Vec::new, |a| {
        (a.extras.iter())
            .filter(|x| x.kind != crate::manifest::ExtraKind::Dir)
            .map(|x| x.path.clone())
            .collect()
    })
}

/// Builds a [`CompactManifest`] from entries in the manifest's order, checking each as
/// [`crate::manifest::validate`] does.
#[derive(Default)]
struct Builder {
    m: CompactManifest,
    checker: Checker,
    /// The directories open on the way from the root to the last entry: indexes into
    /// `m.dirs`, the root first. Entries come sorted by path bytes, in which everything
    /// beneath a directory is contiguous, so each directory is opened once.
    open: Vec<u32>,
    /// Set when the names and paths passed 4 GiB.
    too_large: bool,
}

impl Builder {
    /// Appends `b` to the buffer.
    fn add(&mut self, b: &[u8]) -> Span {
        let start = self.m.bytes.len();
        let (Ok(s), Ok(len)) = (u32::try_from(start), u32::try_from(b.len())) else {
            self.too_large = true;
            return Span::default();
        };
        if u32::try_from(start + b.len()).is_err() {
            self.too_large = true;
            return Span::default();
        }
        self.m.bytes.extend_from_slice(b);
        Span { start: s, len }
    }

    /// A new directory whose path is `path` (in the buffer already) beneath `parent`.
    fn dir(&mut self, path: Span, parent: u32) -> Result<u32, ManifestError> {
        // (Fewer than 2^32 directories, so that their count is a u32 too.)
        let d = u32::try_from(self.m.dirs.len())
            .ok()
            .filter(|&d| d < u32::MAX)
            .ok_or(ManifestError::TooManyNames)?;
        self.m.dirs.push(DirRec { path, parent });
        Ok(d)
    }

    /// Closes the directories open that `parent` (an entry's parent path) is not in, itself
    /// or beneath; never the root. Returns the innermost one left open (the entry's parent,
    /// or an ancestor of it) and its path's length.
    fn close_to(&mut self, parent: &[u8]) -> Result<(u32, usize), ManifestError> {
        if self.m.dirs.is_empty() {
            self.dir(Span::default(), 0)?;
            self.open.push(ROOT as u32);
        }
        while let Some(&top) = self.open.last() {
            let path = self.m.dir_path(top as usize);
            let inside = path.is_empty()
                || (parent.starts_with(path)
                    && matches!(parent.get(path.len()), None | Some(b'/')));
            if inside {
                return Ok((top, path.len()));
            }
            self.open.pop();
        }
        Err(ManifestError::TooManyNames)
    }

    /// Opens the directories from the innermost one open (`top`, whose path is `at` bytes
    /// long) down to the parent of `path` (an entry's path, which `whole` holds in the
    /// buffer): each one's path is a prefix of `whole`, so a directory costs no bytes of its
    /// own and the buffer holds at most the entries' paths once. Returns the parent's index.
    fn open_to(
        &mut self,
        path: &[u8],
        whole: Span,
        mut top: u32,
        mut at: usize,
    ) -> Result<u32, ManifestError> {
        let parent = crate::util::split(path).0;
        while at < parent.len() {
            let start = if at == 0 { 0 } else { at + 1 };
            let end = parent[start..]
                .iter()
                .position(|&c| c == b'/')
                .map_or(parent.len(), |i| start + i);
            // (`end` is within `whole`, which fits in u32.)
            let prefix = Span {
                start: whole.start,
                len: end as u32,
            };
            top = self.dir(prefix, top)?;
            self.open.push(top);
            at = end;
        }
        Ok(top)
    }

    /// Sorts the directories by path (the root stays first: its path is empty) and points
    /// the entries and the directories at their new indexes.
    fn finish(mut self) -> Result<CompactManifest, ManifestError> {
        if self.too_large {
            return Err(ManifestError::TooManyNames);
        }
        if self.m.dirs.is_empty() {
            self.dir(Span::default(), 0)?;
        }
        let m = &mut self.m;
        let mut order: Vec<u32> = (0..m.dirs.len() as u32).collect();
        {
            let (bytes, dirs) = (&m.bytes, &m.dirs);
            // (Every span is within the buffer, and every index below the count: by
            // construction. Read with `get` all the same.)
            let path = |d: u32| {
                let s = dirs.get(d as usize).map_or_else(Span::default, |r| r.path);
                let start = s.start as usize;
                bytes.get(start..start + s.len as usize).unwrap_or_default()
            };
            order.sort_unstable_by(|&a, &b| path(a).cmp(path(b)));
        }
        // `at[old]` is the new index of directory `old`.
        let mut at = vec![0u32; order.len()];
        for (new, &old) in order.iter().enumerate() {
            at[old as usize] = new as u32;
        }
        let mut dirs: Vec<DirRec> = order
            .iter()
            .map(|&old| {
                let r = m.dirs[old as usize];
                DirRec {
                    path: r.path,
                    parent: at[r.parent as usize],
                }
            })
            .collect();
        dirs.shrink_to_fit();
        m.dirs = dirs;
        for it in &mut m.items {
            it.dir = at[it.dir as usize];
        }
        m.bytes.shrink_to_fit();
        m.items.shrink_to_fit();
        Ok(self.m)
    }
}

impl Sink for Builder {
    fn reserve(&mut self, n: usize) {
        // (A wrong size that no allocation can hold is not a panic: the entries then grow.)
        let _ = self.m.items.try_reserve_exact(n);
    }

    fn push(
        &mut self,
        index: u64,
        e: EntryRef<'_>,
        _: Option<&EntryMeta>,
    ) -> Result<(), ManifestError> {
        let data_ok = matches!(
            (e.kind, e.data),
            (Kind::File | Kind::Executable, DataRef::Blob { .. })
                | (Kind::Symlink, DataRef::Target(_))
                | (Kind::Dir, DataRef::None)
        );
        self.checker
            .check(index, e.path, e.kind, e.target(), data_ok)?;
        let (parent, name) = crate::util::split(e.path);
        let (mut dir, at) = self.close_to(parent)?;
        // The whole path, when directories are opened on its way or it is an empty
        // directory's (whose path is then its own): the directories' paths and its name are
        // spans of it. Otherwise its name alone.
        let mut whole = None;
        let name = if at < parent.len() || e.kind == Kind::Dir {
            let w = self.add(e.path);
            whole = Some(w);
            dir = self.open_to(e.path, w, dir, at)?;
            Span {
                start: w.start + (e.path.len() - name.len()) as u32,
                len: name.len() as u32,
            }
        } else {
            self.add(name)
        };
        // (The kind matches the data: checked above.)
        let (size, hash) = match e.data {
            DataRef::Blob { size, hash } => {
                self.m.files += 1;
                self.m.file_bytes = self.m.file_bytes.saturating_add(size);
                ([size as u32, (size >> 32) as u32], hash)
            }
            DataRef::Target(t) => {
                self.m.symlinks += 1;
                let t = self.add(t);
                ([t.start, t.len], Hash::from_bytes([0; 32]))
            }
            DataRef::None => {
                // An empty directory is a directory of the tree too (nothing is beneath it,
                // so it is never open).
                self.dir(whole.unwrap_or_default(), dir)?;
                ([0; 2], Hash::from_bytes([0; 32]))
            }
        };
        self.m.items.push(Item {
            name,
            dir,
            kind: e.kind,
            size,
            hash,
        });
        if self.too_large {
            return Err(ManifestError::TooManyNames);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;
    use crate::manifest::{Entry, show};

    /// A random valid tree: directory names that sort on both sides of `name/` (`-` and `.`
    /// before `/`, `0` after), files, symlinks and empty directories at several depths.
    fn random_manifest(next: &mut impl FnMut() -> u64) -> Manifest {
        let dir_names: [&[u8]; 5] = [b"a", b"a-b", b"a.c", b"b", b"b0"];
        let leaf_names: [&[u8]; 5] = [b"f-", b"f.c", b"f0", b"g", b"\xff\x01"];
        let mut entries = Vec::new();
        for _ in 0..(next() % 60) {
            let mut path = Vec::new();
            for _ in 0..next() % 5 {
                path.extend(dir_names[(next() % 5) as usize]);
                path.push(b'/');
            }
            let r = next() % 10;
            if r == 0 {
                path.extend(b"e");
                entries.push(Entry::dir(path));
                continue;
            }
            path.extend(leaf_names[(next() % 5) as usize]);
            entries.push(match r {
                1 => Entry::symlink(path, b"../t".to_vec()),
                _ => Entry::blob(path, r == 2, next() % 100, Hash::of(&[r as u8])),
            });
        }
        entries.sort_by(|a, b| a.path.cmp(&b.path));
        entries.dedup_by(|a, b| a.path == b.path);
        Manifest::new(entries).expect("a valid tree")
    }

    #[test]
    fn the_compact_form_holds_every_entry_and_every_directory_once() {
        let mut rng = cowtree_testutil::XorShift::new(0x2545_F491_4F6C_DD1D);
        let mut next = move || rng.next_u64();
        let mut deep = 0;
        for round in 0..500 {
            let m = random_manifest(&mut next);
            let bytes = m.encode();
            let (hash, c) = CompactManifest::read(&bytes[..], bytes.len() as u64).unwrap();
            assert_eq!(hash, m.id());
            let c = c.unwrap();
            assert_eq!(c.to_manifest(), m, "round {round}");
            assert_eq!(CompactManifest::of(&m).unwrap().to_manifest(), m);
            assert_eq!(c.len(), m.entries().len());

            // The directories: the root, then every ancestor of an entry and every empty
            // directory, sorted by path, each with its parent.
            let mut want: BTreeSet<Vec<u8>> = BTreeSet::new();
            for e in m.entries() {
                if e.kind == Kind::Dir {
                    want.insert(e.path.clone());
                }
                let mut p = &e.path[..];
                while let Some(i) = p.iter().rposition(|&b| b == b'/') {
                    p = &p[..i];
                    want.insert(p.to_vec());
                }
            }
            let got: Vec<Vec<u8>> = (1..c.dirs()).map(|d| c.dir_path(d).to_vec()).collect();
            assert_eq!(
                got,
                want.iter().cloned().collect::<Vec<_>>(),
                "round {round}"
            );
            // Found by path: every entry and directory; paths of the same names that are in
            // the tree or not, as the manifest finds them.
            for (i, e) in m.entries().iter().enumerate() {
                assert_eq!(c.find(&e.path), Some(i));
            }
            for d in 0..c.dirs() {
                assert_eq!(c.find_dir(c.dir_path(d)), Some(d));
            }
            let names: [&[u8]; 11] = [
                b"a",
                b"a-b",
                b"a.c",
                b"b",
                b"b0",
                b"e",
                b"f-",
                b"f.c",
                b"f0",
                b"g",
                b"\xff\x01",
            ];
            for _ in 0..40 {
                let mut probe = names[(next() % 11) as usize].to_vec();
                for _ in 0..next() % 4 {
                    probe.push(b'/');
                    probe.extend(names[(next() % 11) as usize]);
                }
                assert_eq!(c.find(&probe), m.find(&probe), "{}", show(&probe));
                assert_eq!(c.find_dir(&probe).is_some(), want.contains(&probe));
            }
            assert_eq!(c.dir_path(ROOT), b"");
            assert_eq!(c.dir_parent(ROOT), None);
            for d in 1..c.dirs() {
                let p = c.dir_parent(d).unwrap();
                assert_eq!(c.dir_path(p), crate::util::split(c.dir_path(d)).0);
                deep += usize::from(p != ROOT);
            }
            // Each entry: its directory's path and its name make its path.
            for (i, (e, ce)) in m.entries().iter().zip(c.iter()).enumerate() {
                let (parent, name) = crate::util::split(&e.path);
                assert_eq!((c.dir_path(ce.dir), ce.name), (parent, name));
                assert_eq!(c.path(i), e.path);
                assert_eq!(Some(ce), c.get(i));
                assert_eq!((ce.kind, ce.data), (e.kind, EntryRef::of(e).data));
            }
            assert_eq!(c.get(c.len()), None);
            assert_eq!(c.path(c.len()), b"");
            let counts = crate::trees::Counts::of(&m);
            assert_eq!(
                (c.files(), c.symlinks(), c.dirs() as u64 - 1, c.bytes()),
                (counts.files, counts.symlinks, counts.dirs, counts.bytes)
            );
        }
        assert!(deep > 1000, "{deep}");
    }

    #[test]
    fn lookups_by_path_are_those_of_the_manifest_view() {
        let mut rng = cowtree_testutil::XorShift::new(0x853C_49E6_748F_EA9B);
        let mut next = move || rng.next_u64();
        let mut probed = 0;
        for _ in 0..300 {
            let m = random_manifest(&mut next);
            let c = CompactManifest::of(&m).expect("a small manifest has a compact form");
            let v = crate::manifest::ManifestView::of(&m).expect("a small manifest has a view");
            // Every path, every directory of the tree (and the root), and some that are not.
            let mut probes: BTreeSet<Vec<u8>> = BTreeSet::new();
            for e in m.entries() {
                probes.insert(e.path.clone());
                for (k, _) in e.path.iter().enumerate().filter(|(_, b)| **b == b'/') {
                    probes.insert(e.path[..k].to_vec());
                }
            }
            probes.extend([vec![], b"a/".to_vec(), b"a-".to_vec(), b"a/zz".to_vec()]);
            for q in &probes {
                probed += 1;
                assert_eq!(c.find(q), v.find(q), "{}", show(q));
                assert_eq!(c.has_beneath(q), v.has_beneath(q), "{}", show(q));
                let r = c.range_in(0..c.len(), q);
                assert_eq!(r, v.range(q), "{}", show(q));
                let inner = r.start.min(r.end)..r.end;
                // Each entry of the directory itself, asked in order, found where it is.
                let skip = if q.is_empty() { 0 } else { q.len() + 1 };
                let (mut fc, mut fv) = (inner.start, inner.start);
                for i in inner.clone() {
                    let p = v.path(i);
                    let name = &p[skip..];
                    if name.contains(&b'/') {
                        continue;
                    }
                    let got = c.find_child_from(&inner, &mut fc, q, name);
                    assert_eq!(got, Some(i), "{}", show(p));
                    assert_eq!(v.find_child_from(&inner, &mut fv, q, name), got);
                    assert_eq!(fc, fv);
                }
            }
            for (i, e) in m.entries().iter().enumerate() {
                assert_eq!(c.to_entry(i).as_ref(), Some(e));
                assert_eq!(c.path_ref(i).len(), e.path.len());
                for (k, b) in e.path.iter().enumerate() {
                    assert_eq!(c.path_ref(i).byte(k), Some(*b));
                }
                assert_eq!(c.path_ref(i).byte(e.path.len()), None);
                let whole = e.path.as_slice();
                for from in 0..=whole.len() + 1 {
                    let rest = &whole[from.min(whole.len())..];
                    for to in (0..=whole.len() + 1).chain([usize::MAX]) {
                        for other in [rest, b"f0", b"a/", b""] {
                            assert_eq!(
                                c.path_ref(i).cmp_range(from, to, other),
                                whole.cmp_range(from, to, other),
                                "{} {from}..{to} {}",
                                show(whole),
                                show(other)
                            );
                        }
                    }
                }
            }
            assert_eq!(c.to_entry(m.entries().len()), None);
        }
        assert!(probed > 3000, "{probed}");
    }

    #[test]
    fn an_empty_manifest_has_the_root_alone() {
        let m = Manifest::new(Vec::new()).unwrap();
        let bytes = m.encode();
        let c = CompactManifest::read(&bytes[..], 0).unwrap().1.unwrap();
        assert_eq!((c.len(), c.dirs(), c.files(), c.bytes()), (0, 1, 0, 0));
        assert!(c.is_empty());
        assert_eq!(c.to_manifest(), m);
        assert_eq!(CompactManifest::default().dirs(), 0);
    }

    #[test]
    fn the_compact_form_holds_less_than_the_entries_do() {
        // 20,000 files in 1,000 directories three deep, names as a generated tree's.
        let entries: Vec<Entry> = (0..20_000u32)
            .map(|i| {
                let path = format!(
                    "src/module{:02}/part{:03}/file{:06}.rs",
                    i % 10,
                    i % 1000,
                    i
                );
                Entry::blob(
                    path.into_bytes(),
                    false,
                    u64::from(i),
                    Hash::of(&i.to_le_bytes()),
                )
            })
            .collect();
        let m = Manifest::new(entries).unwrap();
        let held: usize = (m.entries().iter())
            .map(|e| std::mem::size_of::<Entry>() + e.path.capacity())
            .sum();
        let c = CompactManifest::of(&m).unwrap();
        // Paths of 35 bytes: 80 + 35 bytes an entry (and the allocator's overhead, not
        // counted), against 56 and a name of 13.
        assert_eq!(std::mem::size_of::<Item>(), 56);
        // And 12 bytes a directory (docs/manifest.md says so).
        assert_eq!(std::mem::size_of::<DirRec>(), 12);
        assert!(c.heap_bytes() * 10 < held * 7, "{} {held}", c.heap_bytes());
    }

    #[test]
    fn deep_trees_cost_no_more_than_their_paths() {
        // Chains of 1,000 nested directories, each chain ending in a file, and files and
        // empty directories along the way: a directory's path held whole for each would be
        // quadratic in the depth (a chain's 1,000 paths of up to 2,000 bytes).
        let mut entries = Vec::new();
        for top in ["a", "b", "c", "d"] {
            let mut path = top.as_bytes().to_vec();
            for depth in 0..1000 {
                path.extend(b"/x");
                if depth % 100 == 99 {
                    let mut f = path.clone();
                    f.extend(b"-f");
                    entries.push(Entry::blob(f, false, 1, Hash::of(b"f")));
                    let mut e = path.clone();
                    e.extend(b"-e");
                    entries.push(Entry::dir(e));
                }
            }
            let mut f = path.clone();
            f.extend(b"/end");
            entries.push(Entry::blob(f, false, 1, Hash::of(b"end")));
        }
        let m = Manifest::new(entries).unwrap();
        let bytes = m.encode();
        let c = CompactManifest::read(&bytes[..], bytes.len() as u64)
            .unwrap()
            .1
            .unwrap();
        assert_eq!(c.to_manifest(), m);
        // The root; each chain's top and its 1,000 directories; 10 empty ones a chain.
        assert_eq!(c.dirs(), 1 + 4 * 1001 + 4 * 10);
        let paths: usize = m.entries().iter().map(|e| e.path.len()).sum();
        assert!(c.bytes.len() <= paths, "{} {paths}", c.bytes.len());
        // Every directory's path, each a prefix of a path held.
        for d in 1..c.dirs() {
            let p = c.dir_path(d);
            assert!(
                p.starts_with(b"a/") || p.len() == 1 || p[1] == b'/',
                "{p:?}"
            );
            assert_eq!(
                c.dir_path(c.dir_parent(d).unwrap()),
                crate::util::split(p).0
            );
        }
    }
}
