//! Incremental snapshot: the visitor of the walk that records the tree as a manifest and a
//! stat cache, putting into the store the files whose content the stat cache does not prove
//! stored.
//!
//! Each directory's visit encodes its own part of the manifest and of the cache ([`DirOut`],
//! by slot); [`Tree`] joins the parts in manifest order once the walk is done.

use std::borrow::Cow;
use std::convert::Infallible;
use std::io;
use std::ops::Range;
use std::sync::atomic::{AtomicU32, Ordering};

use cowtree_fs::progress::Progress;
use cowtree_store::ingest::Putter;
use cowtree_store::manifest::{
    DataRef, EntryRef, encode_blob, encode_dir, encode_symlink, encoded_len, name_order,
};
use cowtree_store::{Hash, Kind, Store};

use super::Scan;
use super::walker::{DirAt, Found, Visitor};
use crate::base::Base;
use crate::blob;
use crate::cache::{self, Rec, StatKey};
use crate::error::{Error, Result};

/// What the snapshot visitors of one walk share.
pub(super) struct SnapshotShared<'a> {
    store: &'a Store,
    /// The content of every file record of the stat cache is in the store: a trusted file
    /// needs no lookup.
    stored: bool,
    base: &'a Base,
    /// Puts changed files into the store.
    putter: Putter<'a>,
    /// The next directory's slot.
    next_slot: AtomicU32,
    progress: &'a Progress,
}

/// The snapshot visitor of one worker: the parts of the directories it visited.
pub(super) struct Snapshot<'s> {
    shared: &'s SnapshotShared<'s>,
    /// Each directory's part of the manifest and cache, by slot.
    dirs: Vec<(u32, DirOut)>,
}

/// What the visit of a directory hands the visit of a subdirectory: its slot, and the range
/// of its entries in the base.
pub(super) type Ctx = (u32, Range<usize>);

/// One directory's visit by [`Snapshot`].
pub(super) struct SnapshotDir<'c> {
    slot: u32,
    base: Range<usize>,
    /// The cursor of the in-order lookups in the base.
    bcur: usize,
    /// Where the last subdirectory's entries in the base ended (the next one's are searched
    /// from there).
    bnear: usize,
    found: Vec<(Cow<'c, [u8]>, Part)>,
    hashed: u64,
}

impl<'a> SnapshotShared<'a> {
    /// Visitors putting files into `store` through `staging`; `stored` as in
    /// [`super::Mode::Snapshot`].
    pub fn new(
        store: &'a Store,
        staging: &'a cowtree_fs::dir::Dir,
        stored: bool,
        base: &'a Base,
        progress: &'a Progress,
    ) -> SnapshotShared<'a> {
        SnapshotShared {
            store,
            stored,
            base,
            putter: Putter::new(store, staging),
            next_slot: AtomicU32::new(1),
            progress,
        }
    }

    /// A worker's visitor.
    pub fn visitor(&self) -> Snapshot<'_> {
        Snapshot {
            shared: self,
            dirs: Vec::new(),
        }
    }

    /// The context of the root's visit.
    pub fn root(&self) -> Ctx {
        (0, 0..self.base.len())
    }

    /// What the walk recorded (the tree, its counts and the blobs put).
    pub fn finish(&self, workers: Vec<Snapshot<'_>>) -> Scan {
        let mut out = Scan {
            new_blobs: self.putter.new_blobs(),
            new_bytes: self.putter.new_bytes(),
            ..Scan::default()
        };
        let mut dirs = Vec::with_capacity(workers.iter().map(|w| w.dirs.len()).sum());
        for w in workers {
            dirs.extend(w.dirs);
        }
        for (_, d) in &dirs {
            out.files += d.files;
            out.bytes += d.bytes;
            out.hashed += d.hashed;
        }
        out.tree = Tree::new(dirs, self.next_slot.load(Ordering::Relaxed));
        out
    }
}

impl Snapshot<'_> {
    fn deposit(&mut self, slot: u32, out: DirOut) -> Result<()> {
        self.dirs.push((slot, out));
        Ok(())
    }
}

impl<'c> Visitor<'c> for Snapshot<'_> {
    type Ctx = Ctx;
    type Dir = SnapshotDir<'c>;

    fn enter(&mut self, at: &DirAt<'_>, (slot, base): Ctx) -> SnapshotDir<'c> {
        SnapshotDir {
            slot,
            bcur: base.start,
            bnear: base.start,
            base,
            found: Vec::with_capacity(at.listed),
            hashed: 0,
        }
    }

    /// Records a file's blob, from the stat cache when it proves the content known and the
    /// blob is in the store, else by putting the file into the store; a symlink's target;
    /// a subdirectory as a directory of its own.
    fn entry(
        &mut self,
        at: &mut DirAt<'_>,
        d: &mut SnapshotDir<'c>,
        e: Found<'c, '_>,
    ) -> Result<Option<Ctx>> {
        let shared = self.shared;
        let name =
            crate::os::name(&e.name).map_err(|err| Error::io_at("", at.full(e.path), err))?;
        let (part, descend) = match (e.ft, e.st) {
            (ft, _) if ft.is_dir() => {
                let slot = shared.next_slot.fetch_add(1, Ordering::Relaxed);
                let range = shared.base.range_near(d.base.clone(), &mut d.bnear, e.path);
                (Part::Sub(slot), Some((slot, range)))
            }
            (ft, Some(st)) if ft.is_file() => {
                let key = StatKey::of(&st);
                let exec = crate::os::exec_bit(key.mode).unwrap_or_else(|| {
                    // No executable bit here (Windows): the base's kind stays.
                    let i = shared
                        .base
                        .find_child_from(&d.base, &mut d.bcur, at.rel, &e.name);
                    i.and_then(|i| shared.base.get(i))
                        .is_some_and(|b| b.kind == Kind::Executable)
                });
                let known = at.trusted(&e, &key).filter(|h| {
                    // A blob of the snapshot the cache names, or of the base, is kept by that
                    // snapshot (gc waits for our shared lock); any other one is looked up.
                    shared.stored || {
                        let base =
                            shared
                                .base
                                .find_child_from(&d.base, &mut d.bcur, at.rel, &e.name);
                        base.and_then(|i| shared.base.get(i)?.hash()) == Some(*h)
                            || blob::has_blob(shared.store, h, key.size)
                    }
                });
                let (size, hash) = match known {
                    Some(h) => (key.size, h),
                    None => {
                        d.hashed += 1;
                        match shared
                            .putter
                            .put(at.dir, cowtree_fs::sys::stat_dev(&st), name)
                            .map_err(|err| Error::io_at("", at.full(e.path), err))?
                        {
                            Some(p) => {
                                shared.progress.add(0, p.size);
                                (p.size, p.hash)
                            }
                            None => return Ok(None),
                        }
                    }
                };
                let part = Part::File {
                    exec,
                    size,
                    hash,
                    key,
                };
                (part, None)
            }
            (ft, Some(st)) if ft.is_symlink() => {
                let key = StatKey::of(&st);
                // The manifest needs the target itself: the base's, when the stat cache
                // proves it unchanged and it is the base's; else read. (When the cache's
                // snapshot is stored, the base is not loaded at all: every symlink's target
                // is read, one readlink each, rather than the whole base for them.)
                let known = at.trusted(&e, &key);
                let from_base = known.and_then(|h| {
                    let i = shared
                        .base
                        .find_child_from(&d.base, &mut d.bcur, at.rel, &e.name)?;
                    let t = shared.base.get(i)?.target()?;
                    (Hash::of(t) == h).then(|| t.to_vec())
                });
                let target = match from_base {
                    Some(t) => t,
                    None => match at.dir.read_link(name) {
                        Ok(t) => t.into_encoded_bytes(),
                        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(None),
                        Err(err) => {
                            return Err(Error::io_at("", at.full(e.path), err));
                        }
                    },
                };
                (Part::Symlink { target, key }, None)
            }
            (other, _) => {
                return Err(Error::SpecialFile {
                    path: at.full(e.path),
                    how: format!("is a special file ({other:?})"),
                });
            }
        };
        d.found.push((e.name, part));
        Ok(descend)
    }

    /// Encodes the directory's entries in manifest order into its part.
    fn leave(&mut self, at: &DirAt<'_>, d: SnapshotDir<'c>) -> Result<()> {
        let rel = at.rel;
        let prefix = at.prefix();
        let mut out = DirOut {
            prefix,
            hashed: d.hashed,
            ..DirOut::default()
        };
        let mut found = d.found;
        out.rec = at.key.filter(|_| found.len() == at.listed).map(|key| {
            let is_sub = |p: &Part| matches!(p, Part::Sub(_));
            // Every entry listed (or taken from the cache) was found, so the names are the
            // ones listed; from the cache, their hash is known.
            let hash = at.names_hash.unwrap_or_else(|| {
                cache::names_hash(
                    found
                        .iter()
                        .filter(|(_, p)| !is_sub(p))
                        .map(|(n, _)| &n[..]),
                    found.iter().filter(|(_, p)| is_sub(p)).map(|(n, _)| &n[..]),
                )
            });
            Rec {
                path: rel.to_vec(),
                key,
                hash,
            }
        });
        if at.listed == 0 {
            if !rel.is_empty() {
                out.empty = true;
                encode_dir(&mut out.man, rel);
            }
            return self.deposit(d.slot, out);
        }
        // Names are unique: no need for a stable sort (which allocates).
        found.sort_unstable_by(|(a, pa), (b, pb)| {
            name_order(a, matches!(pa, Part::Sub(_)), b, matches!(pb, Part::Sub(_)))
        });
        // Reserve the exact sizes: no regrowth.
        let mut man_len = 0;
        let mut leaves = 0;
        for (name, part) in &found {
            let path_len = prefix + name.len();
            man_len += match part {
                Part::File { .. } => encoded_len(Kind::File, path_len, 0),
                Part::Symlink { target, .. } => encoded_len(Kind::Symlink, path_len, target.len()),
                Part::Sub(_) => continue,
            };
            leaves += 1;
        }
        // Items address this directory's encoding and lists with u32 offsets.
        if man_len > u32::MAX as usize || found.len() > u32::MAX as usize {
            return Err(Error::TooLargeForIncremental {
                path: at.full(rel),
                entries: found.len(),
                bytes: man_len,
            });
        }
        out.man.reserve_exact(man_len);
        out.keys.reserve_exact(leaves);
        out.items.reserve_exact(found.len());
        // The path of the entry at hand: `rel/name`.
        let mut path = Vec::with_capacity(prefix + 64);
        path.extend_from_slice(rel);
        if !rel.is_empty() {
            path.push(b'/');
        }
        for (name, part) in found {
            path.truncate(prefix);
            path.extend_from_slice(&name);
            let m0 = out.man.len() as u32;
            let key = match part {
                Part::File {
                    exec,
                    size,
                    hash,
                    key,
                } => {
                    encode_blob(&mut out.man, &path, exec, size, &hash);
                    out.files += 1;
                    out.bytes += size;
                    key
                }
                Part::Symlink { target, key } => {
                    encode_symlink(&mut out.man, &path, &target);
                    key
                }
                Part::Sub(slot) => {
                    out.sub_names.push(name.into_owned());
                    out.items.push(Item::Sub {
                        slot,
                        name: (out.sub_names.len() - 1) as u32,
                    });
                    continue;
                }
            };
            out.keys.push(key);
            out.items.push(Item::Leaf {
                man: m0..out.man.len() as u32,
                key: (out.keys.len() - 1) as u32,
            });
        }
        self.deposit(d.slot, out)
    }
}

/// One directory's part of the manifest and the stat cache.
#[derive(Debug, Default)]
struct DirOut {
    /// The directory's entries in manifest order: files and symlinks, and subdirectories
    /// (whose own entries go where they are).
    items: Vec<Item>,
    /// Encoded manifest entries of the files and symlinks (or of this directory, when
    /// `empty`), at the items' ranges.
    man: Vec<u8>,
    /// The stat of each file and symlink, for its cache record (made from the entry, which
    /// has the path and the hash, and this).
    keys: Vec<StatKey>,
    /// The names of the subdirectories.
    sub_names: Vec<Vec<u8>>,
    /// Where this directory's path ends and its entries' names start in their paths.
    prefix: usize,
    /// The directory was empty: it is itself an entry (in `man`) and has no items.
    empty: bool,
    /// The directory's record for the stat cache, when every entry has a record.
    rec: Option<Rec>,
    files: u64,
    bytes: u64,
    hashed: u64,
}

#[derive(Debug, Clone)]
enum Item {
    /// A file or symlink: its manifest entry and its stat in `DirOut::keys`.
    Leaf { man: Range<u32>, key: u32 },
    /// A subdirectory: its slot, and its name in `DirOut::sub_names`.
    Sub { slot: u32, name: u32 },
}

impl DirOut {
    /// The name an item is sorted by, and whether it sorts as a directory (`name/`).
    fn key(&self, item: &Item, empty: &[bool]) -> (&[u8], bool) {
        match item {
            Item::Leaf { man, .. } => {
                // (Were the entry not one, the order would be wrong and the manifest refused:
                // no panic here.)
                let name = self
                    .man
                    .get(man.start as usize..man.end as usize)
                    .and_then(|e| EntryRef::decode_one(e).ok())
                    .and_then(|e| e.path.get(self.prefix..));
                (name.unwrap_or_default(), false)
            }
            Item::Sub { slot, name } => (&self.sub_names[*name as usize], !empty[*slot as usize]),
        }
    }
}

/// What the snapshot visitor found for one directory entry before it is encoded.
enum Part {
    File {
        exec: bool,
        size: u64,
        hash: Hash,
        key: StatKey,
    },
    Symlink {
        target: Vec<u8>,
        key: StatKey,
    },
    Sub(u32),
}

/// The tree's manifest entries and stat cache records, encoded, in pieces (one
/// per directory walked), and the order that joins them.
#[derive(Debug, Default)]
pub struct Tree {
    /// By slot; the root is slot 0.
    dirs: Vec<Option<DirOut>>,
    entries: u64,
    records: u64,
    /// Directory records, in no particular order.
    dir_recs: Vec<Rec>,
}

impl Tree {
    fn new(dirs: Vec<(u32, DirOut)>, slots: u32) -> Tree {
        let mut table: Vec<Option<DirOut>> = (0..slots).map(|_| None).collect();
        let mut dir_recs = Vec::new();
        for (slot, mut d) in dirs {
            dir_recs.extend(d.rec.take());
            if let Some(t) = table.get_mut(slot as usize) {
                *t = Some(d);
            }
        }
        // A subdirectory was placed as `name/`; one that turned out empty is an entry of its
        // own and sorts as `name` (before siblings like `name-x`): reorder where that matters.
        let empty: Vec<bool> = table
            .iter()
            .map(|d| d.as_ref().is_some_and(|d| d.empty))
            .collect();
        for d in table.iter_mut().flatten() {
            let has_empty_sub = d
                .items
                .iter()
                .any(|i| matches!(i, Item::Sub { slot, .. } if empty[*slot as usize]));
            if has_empty_sub {
                let mut items = d.items.clone();
                items.sort_by(|a, b| {
                    let (a, a_sub) = d.key(a, &empty);
                    let (b, b_sub) = d.key(b, &empty);
                    name_order(a, a_sub, b, b_sub)
                });
                d.items = items;
            }
        }
        // Counted from the pieces rather than by a walk of the tree: each file or symlink is
        // one item with its stat, each empty directory one entry of its own (the root never
        // is one). Every piece is reachable from the root: a directory is walked only when
        // its parent has placed it, and a parent that stops early fails the whole walk.
        let records: usize = table.iter().flatten().map(|d| d.keys.len()).sum();
        let empties = table.iter().flatten().filter(|d| d.empty).count();
        let tree = Tree {
            dirs: table,
            entries: (records + empties) as u64,
            records: records as u64,
            dir_recs,
        };
        debug_assert_eq!(
            {
                let (mut entries, mut records) = (0, 0);
                let _ = tree.for_each(|_, key| -> std::result::Result<(), Infallible> {
                    entries += 1;
                    records += u64::from(key.is_some());
                    Ok(())
                });
                (entries, records)
            },
            (tree.entries, tree.records)
        );
        tree
    }

    /// Manifest entries.
    pub fn entries(&self) -> u64 {
        self.entries
    }

    /// Stat cache records of files and symlinks.
    pub fn records(&self) -> u64 {
        self.records
    }

    /// Stat cache records of directories, sorted by path (sorted here, on the thread that
    /// writes the cache, rather than when the tree is put together).
    pub fn dir_records(&self) -> Vec<&Rec> {
        let mut recs: Vec<&Rec> = self.dir_recs.iter().collect();
        recs.sort_unstable_by(|a, b| a.path.cmp(&b.path));
        recs
    }

    /// Calls `f` with each encoded manifest entry in order (a depth-first walk from the root,
    /// each directory in its items' order) and, for a file or symlink, its stat for the cache
    /// record ([`cache_record`]). Stops at `f`'s first error.
    pub fn for_each<E>(
        &self,
        mut f: impl FnMut(&[u8], Option<&StatKey>) -> std::result::Result<(), E>,
    ) -> std::result::Result<(), E> {
        // (slot, next item)
        let mut stack: Vec<(u32, usize)> = vec![(0, 0)];
        while let Some(top) = stack.last_mut() {
            let Some(d) = self.dirs.get(top.0 as usize).and_then(Option::as_ref) else {
                stack.pop();
                continue;
            };
            if d.empty {
                f(&d.man, None)?;
                stack.pop();
                continue;
            }
            let Some(item) = d.items.get(top.1) else {
                stack.pop();
                continue;
            };
            top.1 += 1;
            match item {
                Item::Sub { slot, .. } => stack.push((*slot, 0)),
                Item::Leaf { man, key } => f(
                    &d.man[man.start as usize..man.end as usize],
                    d.keys.get(*key as usize),
                )?,
            }
        }
        Ok(())
    }
}

/// Appends to `out` the stat cache record of the file or symlink whose manifest entry is
/// `entry` (its path, and its blob hash or the hash of its target) and whose stat is `key`.
/// False, appending nothing, when `entry` is not one encoded file or symlink entry.
pub fn cache_record(entry: &[u8], key: &StatKey, out: &mut Vec<u8>) -> bool {
    let Ok(e) = EntryRef::decode_one(entry) else {
        return false;
    };
    let hash = match e.data {
        DataRef::Blob { hash, .. } => hash,
        DataRef::Target(t) => Hash::of(t),
        DataRef::None => return false,
    };
    cache::encode_rec(out, e.path, key, &hash);
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_record_from_an_entry_is_the_record_encoded_directly() {
        let key = StatKey {
            size: 5,
            mtime_ns: 1,
            ctime_ns: 2,
            ino: 3,
            mode: 0o100644,
        };
        let h = Hash::of(b"x");
        for (entry, path, hash) in [
            {
                let mut e = Vec::new();
                encode_blob(&mut e, b"d/f", true, 5, &h);
                (e, &b"d/f"[..], h)
            },
            {
                let mut e = Vec::new();
                encode_symlink(&mut e, b"l", b"../t");
                (e, &b"l"[..], Hash::of(b"../t"))
            },
        ] {
            let mut got = Vec::new();
            assert!(cache_record(&entry, &key, &mut got));
            let mut want = Vec::new();
            cache::encode_rec(&mut want, path, &key, &hash);
            assert_eq!(got, want);
            // Anything but exactly one file or symlink entry is refused.
            let mut out = Vec::new();
            assert!(!cache_record(&entry[..entry.len() - 1], &key, &mut out));
            assert!(!cache_record(&[&entry[..], b"x"].concat(), &key, &mut out));
            assert!(out.is_empty());
        }
        let mut dir = Vec::new();
        encode_dir(&mut dir, b"e");
        assert!(!cache_record(&dir, &key, &mut Vec::new()));
        assert!(!cache_record(&[], &key, &mut Vec::new()));
    }
}
