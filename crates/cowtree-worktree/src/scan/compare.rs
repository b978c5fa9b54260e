//! Status and adopt: two visitors of the walk that compare the worktree with its base.
//!
//! Status reports every change and hashes the files whose stat does not prove them
//! unchanged; adopt, run on a tree just written from the base, only records what was
//! written, taking the base's hash for each file of the right kind and size without reading
//! it.

use std::borrow::Cow;
use std::io;
use std::ops::Range;
use std::sync::atomic::{AtomicBool, Ordering};

use cowtree_fs::progress::Progress;
use cowtree_store::compact::CompactEntry;
use cowtree_store::manifest::DataRef;
use cowtree_store::{Hash, Kind};

use super::walker::{DirAt, Found, Visitor};
use super::{Change, ChangeKind, Scan};
use crate::base::Base;
use crate::blob;
use crate::cache::{self, Rec, StatKey};
use crate::error::{Error, Result};

/// The base range of a directory: the indices of its entries beneath it.
type BaseRange = Range<usize>;

/// Where a directory's entries are looked up in the base.
struct InBase {
    range: BaseRange,
    /// The cursor of the in-order lookups.
    cur: usize,
    /// Where the last subdirectory's entries ended: the next one's are searched from there.
    near: usize,
}

impl InBase {
    fn new(range: BaseRange) -> InBase {
        InBase {
            cur: range.start,
            near: range.start,
            range,
        }
    }

    /// The base entry of `e`, searched forward.
    fn find(&mut self, base: &Base, at: &DirAt<'_>, e: &Found<'_, '_>) -> Option<usize> {
        base.find_child_from(&self.range, &mut self.cur, at.rel, &e.name)
    }

    /// The context to enter subdirectory `e` with, when the base has entries there or is
    /// itself a directory there: its range.
    fn descend(&mut self, base: &Base, e: &Found<'_, '_>, is_entry: bool) -> Option<BaseRange> {
        let r = base.range_near(self.range.clone(), &mut self.near, e.path);
        (is_entry || !r.is_empty()).then_some(r)
    }
}

/// The records of one directory's visit, and its directory record when every entry has one.
struct Records<'c> {
    /// Names of the files and symlinks with a record.
    leaves: Vec<Cow<'c, [u8]>>,
    /// Names of the subdirectories.
    subdirs: Vec<Cow<'c, [u8]>>,
    recs: Vec<Rec>,
}

impl<'c> Records<'c> {
    fn new(at: &DirAt<'_>) -> Records<'c> {
        Records {
            leaves: Vec::with_capacity(at.listed),
            subdirs: Vec::new(),
            recs: Vec::new(),
        }
    }

    /// Records file or symlink `e`, of stat `key` and content hash `hash`.
    fn record(&mut self, e: Found<'c, '_>, key: StatKey, hash: Hash) {
        self.recs.push(Rec {
            path: e.path.to_vec(),
            key,
            hash,
        });
        self.leaves.push(e.name);
    }

    /// The directory's record, when every entry listed has one (a file or symlink record, or
    /// is a subdirectory), and whether its names were hashed now.
    fn dir_rec(&self, at: &DirAt<'_>) -> Option<(Rec, bool)> {
        let key = at
            .key
            .filter(|_| self.leaves.len() + self.subdirs.len() == at.listed)?;
        // Every entry accounted for: when they came from the cache, these are its names,
        // whose hash its record holds.
        let hash = at.names_hash.unwrap_or_else(|| {
            cache::names_hash(
                self.leaves.iter().map(|n| &n[..]),
                self.subdirs.iter().map(|n| &n[..]),
            )
        });
        Some((
            Rec {
                path: at.rel.to_vec(),
                key,
                hash,
            },
            at.names_hash.is_none(),
        ))
    }
}

/// What the status visitors of one walk share.
pub(super) struct StatusShared<'a> {
    base: &'a Base,
    /// Which base entries were found.
    seen: Vec<AtomicBool>,
    progress: &'a Progress,
}

/// The status visitor of one worker: changes against the base, the files hashed, and the
/// records learnt.
pub(super) struct Status<'s> {
    shared: &'s StatusShared<'s>,
    out: Scan,
}

/// One directory's visit by [`Status`].
pub(super) struct StatusDir<'c> {
    base: InBase,
    records: Records<'c>,
    changes: Vec<Change>,
    hashed: u64,
}

impl<'a> StatusShared<'a> {
    pub fn new(base: &'a Base, progress: &'a Progress) -> StatusShared<'a> {
        StatusShared {
            base,
            seen: (0..base.len()).map(|_| AtomicBool::new(false)).collect(),
            progress,
        }
    }

    /// A worker's visitor.
    pub fn visitor(&self) -> Status<'_> {
        Status {
            shared: self,
            out: Scan::default(),
        }
    }

    /// The context of the root's visit.
    pub fn root(&self) -> BaseRange {
        0..self.base.len()
    }

    /// What the walk found: the changes sorted by path, base entries not found as deleted.
    pub fn finish(&self, workers: Vec<Status<'_>>) -> Scan {
        let mut out = Scan::default();
        for w in workers {
            let mut scan = w.out;
            out.changes.append(&mut scan.changes);
            out.recs.append(&mut scan.recs);
            out.dir_recs.append(&mut scan.dir_recs);
            out.hashed += scan.hashed;
            out.new_dir_recs += scan.new_dir_recs;
        }
        for (i, seen) in self.seen.iter().enumerate() {
            if !seen.load(Ordering::Relaxed) {
                out.changes.push(Change {
                    path: self.base.path(i),
                    kind: ChangeKind::Deleted,
                    is_dir: false,
                });
            }
        }
        out.changes.sort();
        out
    }
}

/// The change an entry at `path` shows.
fn change(path: &[u8], kind: ChangeKind) -> Change {
    Change {
        path: path.to_vec(),
        kind,
        is_dir: false,
    }
}

/// Compares a regular file found (`key`, `mode`: its stat) with its base entry: added, of
/// another type, of another mode, modified; its record learnt where it was hashed.
fn compare_file<'c>(
    progress: &Progress,
    at: &mut DirAt<'_>,
    d: &mut StatusDir<'c>,
    e: Found<'c, '_>,
    key: StatKey,
    mode: u32,
    base: Option<CompactEntry<'_>>,
) -> Result<()> {
    let Some(b) = base else {
        d.changes.push(change(e.path, ChangeKind::Added));
        return Ok(());
    };
    let DataRef::Blob { size, hash: want } = b.data else {
        d.changes.push(change(e.path, ChangeKind::TypeChanged));
        return Ok(());
    };
    // (No executable bit to compare on Windows: the base's kind stands.)
    if let Some(exec) = crate::os::exec_bit(mode)
        && exec != (b.kind == Kind::Executable)
    {
        d.changes.push(change(e.path, ChangeKind::ModeChanged));
    }
    // (hash, learnt now rather than taken from the cache)
    let have = match at.trusted(&e, &key) {
        Some(h) => Some((h, false)),
        None if key.size != size => None,
        None => {
            d.hashed += 1;
            crate::os::name(&e.name)
                .and_then(|n| blob::hash_at(at.dir, n))
                .map_err(|err| Error::io_at("read", at.full(e.path), err))?
                .map(|(n, h)| {
                    progress.add(0, n);
                    (h, true)
                })
        }
    };
    match have {
        Some((h, fresh)) => {
            if h != want {
                d.changes.push(change(e.path, ChangeKind::Modified));
            }
            // Learnt now; the others are carried over from the old cache by the caller.
            if fresh {
                d.records.recs.push(Rec {
                    path: e.path.to_vec(),
                    key,
                    hash: h,
                });
            }
            d.records.leaves.push(e.name);
        }
        None => d.changes.push(change(e.path, ChangeKind::Modified)),
    }
    Ok(())
}

/// Compares a symlink found (`key`: its stat) with its base entry: added, of another type,
/// modified; its record learnt where its target was read. One gone meanwhile is left out.
fn compare_symlink<'c>(
    at: &mut DirAt<'_>,
    d: &mut StatusDir<'c>,
    e: Found<'c, '_>,
    key: StatKey,
    base: Option<CompactEntry<'_>>,
) -> Result<()> {
    let (hash, fresh) = match at.trusted(&e, &key) {
        Some(h) => (h, false),
        None => match crate::os::name(&e.name).and_then(|n| at.dir.read_link(n)) {
            Ok(t) => {
                d.hashed += 1;
                (Hash::of(t.as_encoded_bytes()), true)
            }
            Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(err) => {
                return Err(Error::io_at("", at.full(e.path), err));
            }
        },
    };
    match base {
        None => d.changes.push(change(e.path, ChangeKind::Added)),
        Some(CompactEntry {
            data: DataRef::Target(target),
            ..
        }) => {
            if Hash::of(target) != hash {
                d.changes.push(change(e.path, ChangeKind::Modified));
            }
            if fresh {
                d.records.recs.push(Rec {
                    path: e.path.to_vec(),
                    key,
                    hash,
                });
            }
            d.records.leaves.push(e.name);
        }
        Some(_) => d.changes.push(change(e.path, ChangeKind::TypeChanged)),
    }
    Ok(())
}

impl<'c> Visitor<'c> for Status<'_> {
    type Ctx = BaseRange;
    type Dir = StatusDir<'c>;

    fn enter(&mut self, at: &DirAt<'_>, range: BaseRange) -> StatusDir<'c> {
        StatusDir {
            base: InBase::new(range),
            records: Records::new(at),
            changes: Vec::new(),
            hashed: 0,
        }
    }

    fn entry(
        &mut self,
        at: &mut DirAt<'_>,
        d: &mut StatusDir<'c>,
        e: Found<'c, '_>,
    ) -> Result<Option<BaseRange>> {
        let shared = self.shared;
        let idx = d.base.find(shared.base, at, &e);
        let base = idx.and_then(|i| shared.base.get(i));
        if let Some(i) = idx {
            shared.seen[i].store(true, Ordering::Relaxed);
        }
        let change = |kind| Change {
            path: e.path.to_vec(),
            kind,
            is_dir: false,
        };
        match (e.ft, e.st) {
            (ft, _) if ft.is_dir() => {
                let descend = match base {
                    Some(b) if b.kind != Kind::Dir => {
                        d.changes.push(change(ChangeKind::TypeChanged));
                        None
                    }
                    b => {
                        let descend = d.base.descend(shared.base, &e, b.is_some());
                        if descend.is_none() {
                            d.changes.push(Change {
                                path: e.path.to_vec(),
                                kind: ChangeKind::Added,
                                is_dir: true,
                            });
                        }
                        descend
                    }
                };
                d.records.subdirs.push(e.name);
                return Ok(descend);
            }
            (ft, Some(st)) if ft.is_file() => {
                compare_file(
                    shared.progress,
                    at,
                    d,
                    e,
                    StatKey::of(&st),
                    cowtree_fs::sys::stat_mode(&st),
                    base,
                )?;
            }
            (ft, Some(st)) if ft.is_symlink() => {
                compare_symlink(at, d, e, StatKey::of(&st), base)?;
            }
            // A special file the base records (`snapshot --archive`): part of the snapshot,
            // not a change (its type, device number and metadata are not compared).
            (ft, _)
                if crate::os::is_special(ft)
                    && base.is_none()
                    && shared.base.records_special(e.path) => {}
            (_, _) => {
                let kind = if base.is_some() {
                    ChangeKind::TypeChanged
                } else {
                    ChangeKind::Added
                };
                d.changes.push(change(kind));
            }
        }
        Ok(None)
    }

    fn leave(&mut self, at: &DirAt<'_>, mut d: StatusDir<'c>) -> Result<()> {
        let out = &mut self.out;
        if let Some((rec, new)) = d.records.dir_rec(at) {
            out.new_dir_recs += u64::from(new);
            out.dir_recs.push(rec);
        }
        out.changes.append(&mut d.changes);
        out.recs.append(&mut d.records.recs);
        out.hashed += d.hashed;
        Ok(())
    }
}

/// The adopt visitor: the stat cache records of a tree just written from the base. A file
/// of the base's kind and size takes the base's hash unread; a symlink's target is read.
/// Nothing is reported as changed: what differs from the base simply has no record.
pub(super) struct Adopt<'a> {
    base: &'a Base,
    out: Scan,
}

/// One directory's visit by [`Adopt`].
pub(super) struct AdoptDir<'c> {
    base: InBase,
    records: Records<'c>,
}

impl<'a> Adopt<'a> {
    /// A worker's visitor.
    pub fn new(base: &'a Base) -> Adopt<'a> {
        Adopt {
            base,
            out: Scan::default(),
        }
    }

    /// The records the workers found.
    pub fn finish(workers: Vec<Adopt<'_>>) -> Scan {
        let mut out = Scan::default();
        for w in workers {
            let mut scan = w.out;
            out.recs.append(&mut scan.recs);
            out.dir_recs.append(&mut scan.dir_recs);
            out.new_dir_recs += scan.new_dir_recs;
        }
        out
    }
}

impl<'c> Visitor<'c> for Adopt<'_> {
    type Ctx = BaseRange;
    type Dir = AdoptDir<'c>;

    fn enter(&mut self, at: &DirAt<'_>, range: BaseRange) -> AdoptDir<'c> {
        AdoptDir {
            base: InBase::new(range),
            records: Records::new(at),
        }
    }

    fn entry(
        &mut self,
        at: &mut DirAt<'_>,
        d: &mut AdoptDir<'c>,
        e: Found<'c, '_>,
    ) -> Result<Option<BaseRange>> {
        let base = d
            .base
            .find(self.base, at, &e)
            .and_then(|i| self.base.get(i));
        match (e.ft, e.st) {
            (ft, _) if ft.is_dir() => {
                let descend = match base {
                    Some(b) if b.kind != Kind::Dir => None,
                    b => d.base.descend(self.base, &e, b.is_some()),
                };
                d.records.subdirs.push(e.name);
                return Ok(descend);
            }
            (ft, Some(st)) if ft.is_file() => {
                let key = StatKey::of(&st);
                let Some(DataRef::Blob { size, hash: want }) = base.map(|b| b.data) else {
                    return Ok(None);
                };
                let hash = match at.trusted(&e, &key) {
                    Some(h) => h,
                    None if key.size == size => want,
                    None => return Ok(None),
                };
                d.records.record(e, key, hash);
            }
            (ft, Some(st)) if ft.is_symlink() => {
                let key = StatKey::of(&st);
                let hash = match at.trusted(&e, &key) {
                    Some(h) => h,
                    None => match crate::os::name(&e.name).and_then(|n| at.dir.read_link(n)) {
                        Ok(t) => Hash::of(t.as_encoded_bytes()),
                        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(None),
                        Err(err) => {
                            return Err(Error::io_at("", at.full(e.path), err));
                        }
                    },
                };
                if base.is_some_and(|b| b.kind == Kind::Symlink) {
                    d.records.record(e, key, hash);
                }
            }
            (_, _) => {}
        }
        Ok(None)
    }

    fn leave(&mut self, at: &DirAt<'_>, mut d: AdoptDir<'c>) -> Result<()> {
        let out = &mut self.out;
        if let Some((rec, new)) = d.records.dir_rec(at) {
            out.new_dir_recs += u64::from(new);
            out.dir_recs.push(rec);
        }
        out.recs.append(&mut d.records.recs);
        Ok(())
    }
}
