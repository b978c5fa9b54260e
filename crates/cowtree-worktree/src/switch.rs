//! Switch: move a worktree from its base snapshot to another, touching only entries that
//! differ between the two manifests.
//!
//! Order: check (nothing changes if a path to touch is dirty or an untracked file is in the
//! way), write the journal (`pending` in the registry record: from, to) durably, remove
//! entries the target lacks (deepest first), create directories, write files and symlinks in
//! parallel (temp name + rename), remove directories left empty, sync the worktree's
//! filesystem, then write the new stat cache and, durably, the record with the new base and no
//! journal. A switch interrupted at any point is finished by the next switch, reset or
//! snapshot of the worktree: it re-applies the same difference, skipping entries that already
//! hold the target content.
//!
//! What a switch waits for is mostly the disk, not the CPU: each durable step is a log force
//! (XFS), a journal commit (ext4) or a transaction commit (btrfs). So the bytes of each record
//! are written early and synced beside other work (the journal's while the manifests are
//! compared and the paths checked; the final record's by the worktree's `syncfs` when the
//! store shares its filesystem), and only the rename of each record and its directory's sync
//! wait in line; the order in which things become durable is the same as if each step were
//! synced in turn. The manifests are held in their compact form (no path repeated for each
//! entry), and the stat cache is rewritten by copying the records it keeps, record by record.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::time::Instant;

use cowtree_fs::progress::{Progress, Total};
use cowtree_store::compact::CompactManifest;
use cowtree_store::{Entry, Hash, Kind, Store};
use rayon::prelude::*;

use crate::apply::{Applier, Obs, Placed, files_beneath};
use crate::base::Base;
use crate::cache::{self, Rec, StatCache};
use crate::error::{Error, Result};
use crate::paths::{ancestors, show};
use crate::registry::{self, Pending, Worktree};

/// One difference between two manifests (owned: a switch changes few of a tree's entries,
/// and only those are copied out of the manifests' bytes).
#[derive(Debug, Clone)]
pub enum Op {
    /// An entry of the old manifest the new one lacks.
    Remove(Entry),
    /// An entry of the new manifest, and the old manifest's entry at that path, if any.
    Place(Entry, Option<Entry>),
}

impl Op {
    /// The path.
    pub fn path(&self) -> &[u8] {
        match self {
            Op::Remove(e) | Op::Place(e, _) => &e.path,
        }
    }
}

/// The entries that differ between `a` and `b` (both sorted by path), in path order. Read in
/// place: no entry the two share is copied into an owned one, and entries in directories of
/// the same path are compared by name (each other pair by paths put together in buffers).
pub fn diff(a: &CompactManifest, b: &CompactManifest) -> Vec<Op> {
    use std::cmp::Ordering;
    let mut out = Vec::new();
    let (mut i, mut j) = (0, 0);
    // The paths put together, and of which entries (`usize::MAX`: none yet).
    let (mut pa, mut pb) = (Vec::new(), Vec::new());
    let (mut in_pa, mut in_pb) = (usize::MAX, usize::MAX);
    // The last pair of directories (of `a`, of `b`) found to have the same path.
    let mut same_dirs = None;
    loop {
        let (x, y) = (a.get(i), b.get(j));
        let order = match (x, y) {
            (Some(x), Some(y)) => {
                let same =
                    same_dirs == Some((x.dir, y.dir)) || a.dir_path(x.dir) == b.dir_path(y.dir);
                if same {
                    same_dirs = Some((x.dir, y.dir));
                    x.name.cmp(y.name)
                } else {
                    if in_pa != i {
                        a.path_into(i, &mut pa);
                        in_pa = i;
                    }
                    if in_pb != j {
                        b.path_into(j, &mut pb);
                        in_pb = j;
                    }
                    pa.cmp(&pb)
                }
            }
            (Some(_), None) => Ordering::Less,
            (None, Some(_)) => Ordering::Greater,
            (None, None) => break,
        };
        match (order, x, y) {
            (Ordering::Equal, Some(x), Some(y)) => {
                if (x.kind, x.data) != (y.kind, y.data)
                    && let (Some(new), Some(old)) = (b.to_entry(j), a.to_entry(i))
                {
                    out.push(Op::Place(new, Some(old)));
                }
                i += 1;
                j += 1;
            }
            (Ordering::Less, Some(_), _) => {
                out.extend(a.to_entry(i).map(Op::Remove));
                i += 1;
            }
            (_, _, Some(_)) => {
                out.extend(b.to_entry(j).map(|new| Op::Place(new, None)));
                j += 1;
            }
            // (An order is found only for entries there are: Equal for two, Less for one of
            // `a`, Greater for one of `b`.)
            _ => break,
        }
    }
    out
}

/// What a switch did.
#[derive(Debug, Clone, Default)]
pub struct SwitchReport {
    /// The base before.
    pub from: Option<Hash>,
    /// The new base.
    pub to: Option<Hash>,
    /// Entries that differed.
    pub changed: u64,
    /// Files and symlinks written.
    pub written: u64,
    /// Entries removed.
    pub removed: u64,
    /// Directories created.
    pub dirs_created: u64,
    /// An interrupted switch was finished first.
    pub finished_interrupted: bool,
    /// Entries written or created as a plain checkout makes them although the target is a
    /// version 2 snapshot (`snapshot --archive`), whose owners, set-ID bits, attributes and
    /// hardlinks only `checkout --archive` gives.
    pub archive_not_given: u64,
    /// Milliseconds.
    pub elapsed_ms: u64,
}

/// A path the switch refused to touch, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conflict {
    /// The path.
    pub path: Vec<u8>,
    /// `dirty` (local changes) or `untracked` (an untracked file is in the way).
    pub why: &'static str,
}

/// Loads (and validates) two manifests at once, each in its compact form.
fn load_both(store: &Store, a: &Hash, b: &Hash) -> Result<(Base, Base)> {
    let (a, b) = rayon::join(|| Base::load(store, a), || Base::load(store, b));
    Ok((a?, b?))
}

/// Finishes an interrupted switch, if the record has one.
pub fn finish_pending(store: &Store, wt: &mut Worktree) -> Result<bool> {
    let Some(p) = wt.pending else {
        return Ok(false);
    };
    let _lock = store.lock_shared()?;
    let w: &Worktree = wt;
    let (both, cache) = rayon::join(
        || load_both(store, &p.from, &p.to),
        || registry::load_cache(store, w),
    );
    let (a, b) = both?;
    let ops = diff(&a, &b);
    apply(
        store,
        wt,
        &p.to,
        &b,
        &ops,
        &cache,
        true,
        &Progress::default(),
    )?;
    Ok(true)
}

/// Moves the worktree to snapshot `to`. Refuses, changing nothing, when a path it must touch
/// has local changes or an untracked file is where the target needs an entry, unless
/// `force` (which overwrites those changes and removes those files).
pub fn switch(store: &Store, wt: &mut Worktree, to: &Hash, force: bool) -> Result<SwitchReport> {
    switch_with_progress(store, wt, to, force, &Progress::default())
}

/// [`switch`], counting into `progress`: the total (entries to remove or place, bytes of the
/// files to place) once the change is known and checked, then one entry per entry removed or
/// placed, with the bytes of each file placed. Finishing an interrupted switch first is not
/// counted.
pub fn switch_with_progress(
    store: &Store,
    wt: &mut Worktree,
    to: &Hash,
    force: bool,
    progress: &Progress,
) -> Result<SwitchReport> {
    let _held = registry::lock(store, wt)?;
    registry::reload(store, wt)?;
    let started = Instant::now();
    let finished = finish_pending(store, wt)?;
    let _lock = store.lock_shared()?;
    let from = wt.base;
    let mut report = SwitchReport {
        from: Some(from),
        to: Some(*to),
        finished_interrupted: finished,
        ..Default::default()
    };
    if from == *to {
        report.elapsed_ms = started.elapsed().as_millis() as u64;
        return Ok(report);
    }
    // The journal (docs/store.md, "Durability") must be durable before the first change to
    // the worktree, and written only once the check passed. Its bytes are written now and
    // synced while the manifests are loaded and compared and the paths checked; only its
    // rename and the directory's sync are left for after the check. Refused, it is dropped
    // unpublished: the record on disk never named it.
    wt.pending = Some(Pending { from, to: *to });
    let journal = registry::stage(store, wt);
    wt.pending = None;
    let mut journal = journal?;
    let w: &Worktree = wt;
    let (synced, checked) = rayon::join(
        || journal.sync_data(),
        || -> Result<_> {
            let (both, cache) = rayon::join(
                || load_both(store, &from, to),
                || registry::load_cache(store, w),
            );
            let (a, b) = both?;
            let ops = diff(&a, &b);
            let found = if force {
                Vec::new()
            } else {
                conflicts(store, w, &a, &ops, &cache)?
            };
            Ok((b, ops, cache, found))
        },
    );
    let (b, ops, cache, found) = checked?;
    if !found.is_empty() {
        return Err(Error::Conflict {
            worktree: wt.path.clone(),
            store: store.root().to_path_buf(),
            to: *to,
            paths: found
                .iter()
                .take(50)
                .map(|c| format!("{} ({})", show(&c.path), c.why))
                .collect(),
            total: found.len(),
        });
    }
    synced?;
    wt.pending = Some(Pending { from, to: *to });
    // Gated as staging is: once a signal handler has stopped the gate, the journal either is
    // in the record (the switch has begun: the handler says how to finish it) or never will
    // be (nothing changes), so what the handler reads from the record stays true.
    cowtree_fs::staging::unless_stopping(|| Ok(journal.publish(wt)))
        .map_err(|e| Error::io_at("journal the switch of", &wt.path, e))??;
    let (written, removed, dirs) = apply(store, wt, to, &b, &ops, &cache, false, progress)?;
    report.changed = ops.len() as u64;
    report.written = written;
    report.removed = removed;
    report.dirs_created = dirs;
    if b.is_archive() {
        report.archive_not_given = written + dirs;
    }
    report.elapsed_ms = started.elapsed().as_millis() as u64;
    Ok(report)
}

/// The paths a switch along `ops` would lose local work at. The entries are checked in
/// parallel.
pub fn conflicts(
    store: &Store,
    wt: &Worktree,
    a: &CompactManifest,
    ops: &[Op],
    cache: &StatCache,
) -> Result<Vec<Conflict>> {
    let ap = Applier::new(store, &wt.path, false)?;
    let found: Vec<(Vec<Conflict>, Option<&[u8]>)> = ops
        .par_iter()
        .map(|op| conflicts_of(&ap, a, op, cache))
        .collect::<Result<_>>()?;
    // The parents that did not open as directories beneath the root: their ancestors are
    // looked at once each, whatever the number of entries beneath them.
    let parents: BTreeSet<&[u8]> = found.iter().filter_map(|(_, p)| *p).collect();
    let mut out: Vec<Conflict> = found.into_iter().flat_map(|(c, _)| c).collect();
    untracked_ancestors(&ap, a, &parents, &mut out)?;
    out.sort_by(|x, y| x.path.cmp(&y.path));
    out.dedup();
    Ok(out)
}

/// Adds to `out` the untracked files and symlinks (or other non-directories) that sit at an
/// ancestor of one of `parents` (or at one of them), where a directory would have to be
/// created. Each ancestor is looked at once, shortest first, and a walk ends at the first
/// one that is absent or not a directory: nothing beneath it can be in the way.
fn untracked_ancestors(
    ap: &Applier<'_>,
    a: &CompactManifest,
    parents: &BTreeSet<&[u8]>,
    out: &mut Vec<Conflict>,
) -> Result<()> {
    // Ancestor looked at -> whether it is a directory (a walk goes on beneath it).
    let mut seen: HashMap<&[u8], bool> = HashMap::new();
    for parent in parents {
        for q in ancestors(parent).chain(std::iter::once(*parent)) {
            let is_dir = match seen.get(q) {
                Some(&d) => d,
                None => {
                    let obs = ap.observe(q)?;
                    if !matches!(obs, Obs::Absent | Obs::Dir) {
                        let tracked = a
                            .find(q)
                            .and_then(|i| a.get(i))
                            .is_some_and(|e| e.kind != Kind::Dir);
                        if !tracked {
                            out.push(Conflict {
                                path: q.to_vec(),
                                why: "untracked",
                            });
                        }
                    }
                    let d = matches!(obs, Obs::Dir);
                    seen.insert(q, d);
                    d
                }
            };
            if !is_dir {
                break;
            }
        }
    }
    Ok(())
}

/// The paths `op` would lose local work at, and the parent of its path when that must have
/// its ancestors looked at (see [`untracked_ancestors`]).
fn conflicts_of<'o>(
    ap: &Applier<'_>,
    a: &CompactManifest,
    op: &'o Op,
    cache: &StatCache,
) -> Result<(Vec<Conflict>, Option<&'o [u8]>)> {
    let mut out = Vec::new();
    let dirty = |p: &[u8]| Conflict {
        path: p.to_vec(),
        why: "dirty",
    };
    let untracked = |p: &[u8]| Conflict {
        path: p.to_vec(),
        why: "untracked",
    };
    let path = op.path();
    let (obs, in_dir) = ap.observe_in(path)?;
    // An empty-directory entry "matches" any directory, whatever it now holds: what a
    // user put inside is untracked work that removing or replacing the directory would lose.
    let untracked_inside = |old: &Entry, out: &mut Vec<Conflict>| -> Result<()> {
        if old.kind == Kind::Dir && matches!(obs, Obs::Dir) {
            for f in files_beneath(ap, path)? {
                if a.find(&f).is_none() {
                    out.push(untracked(&f));
                }
            }
        }
        Ok(())
    };
    match op {
        Op::Remove(old) => {
            if !matches!(obs, Obs::Absent) && !ap.matches(old, &obs, cache)? {
                out.push(dirty(path));
            }
            untracked_inside(old, &mut out)?;
        }
        Op::Place(new, Some(old)) => {
            if !ap.matches(old, &obs, cache)? {
                out.push(dirty(path));
            }
            if new.kind != Kind::Dir {
                untracked_inside(old, &mut out)?;
            }
        }
        Op::Place(new, None) => match obs {
            Obs::Absent => {}
            Obs::Dir if new.kind == Kind::Dir => {}
            Obs::Dir if a.has_beneath(path) => {
                // The directory must go: everything in it must be the old snapshot's
                // (those entries are checked by their own removals).
                for f in files_beneath(ap, path)? {
                    if a.find(&f).is_none() {
                        out.push(untracked(&f));
                    }
                }
            }
            _ => out.push(untracked(path)),
        },
    }
    // A parent that opened as a directory beneath the root has only directories above it;
    // otherwise its ancestors are looked at by the caller (a file or symlink in the way must
    // be tracked).
    let (parent, _) = cowtree_fs::name::split(path);
    let walk = (matches!(op, Op::Place(..)) && !in_dir && !parent.is_empty()).then_some(parent);
    Ok((out, walk))
}

/// Applies `ops` (from `a` to `b`) and records `b` as the base with a fresh stat cache.
/// Returns (written, removed, directories created).
#[allow(clippy::too_many_arguments)]
fn apply(
    store: &Store,
    wt: &mut Worktree,
    b_id: &Hash,
    b: &CompactManifest,
    ops: &[Op],
    cache: &StatCache,
    careful: bool,
    progress: &Progress,
) -> Result<(u64, u64, u64)> {
    let started_ns = cache::now_ns();
    progress.set_total(total_of(ops));
    // (Its own copy of the path: the record of `wt` is staged below while this is open.)
    let root = wt.path.clone();
    let ap = Applier::new(store, &root, careful)?;
    // A directory of the target: its root, an ancestor of an entry, or an empty directory
    // (the one kind of directory entry), found among its directories' paths alone (the root
    // named too: a manifest made by `Default` has no directories).
    let b_is_dir = |p: &[u8]| p.is_empty() || b.find_dir(p).is_some();
    let removed = remove_entries(&ap, b, ops, progress)?;
    let created = ap.ensure_dirs(&dirs_needed(ops), true)?;
    let placed = place_entries(&ap, ops, cache, progress)?;
    remove_emptied_dirs(&ap, ops, b_is_dir)?;
    let written = placed.len() as u64;
    record_base(
        store, wt, b_id, &ap, ops, cache, placed, started_ns, b_is_dir,
    )?;
    Ok((written, removed, created))
}

/// What applying `ops` counts: every entry but a directory to make, and the bytes of the
/// files placed.
fn total_of(ops: &[Op]) -> Total {
    Total {
        entries: ops
            .iter()
            .filter(|op| !matches!(op, Op::Place(new, _) if new.kind == Kind::Dir))
            .count() as u64,
        bytes: Some(
            ops.iter()
                .map(|op| match op {
                    Op::Place(new, _) => file_bytes(new),
                    Op::Remove(_) => 0,
                })
                .sum(),
        ),
    }
}

/// Step 1: removes the entries the target `b` lacks, deepest first; returns how many.
fn remove_entries(
    ap: &Applier<'_>,
    b: &CompactManifest,
    ops: &[Op],
    progress: &Progress,
) -> Result<u64> {
    let mut removed = 0;
    for op in ops.iter().rev() {
        let Op::Remove(old) = op else { continue };
        if old.kind == Kind::Dir {
            if !b.has_beneath(&old.path) {
                ap.remove_dir_if_empty(&old.path)?;
            }
        } else {
            ap.remove_tree(&old.path)?;
        }
        progress.add(1, 0);
        removed += 1;
    }
    Ok(removed)
}

/// Step 2: the directories the target needs: every ancestor of a placed entry, and every
/// empty directory placed.
fn dirs_needed(ops: &[Op]) -> BTreeSet<Vec<u8>> {
    let mut dirs: BTreeSet<Vec<u8>> = BTreeSet::new();
    for op in ops {
        if let Op::Place(new, _) = op {
            for q in ancestors(&new.path) {
                dirs.insert(q.to_vec());
            }
            if new.kind == Kind::Dir {
                dirs.insert(new.path.clone());
            }
        }
    }
    dirs
}

/// Step 3: places the files and symlinks, in parallel.
fn place_entries(
    ap: &Applier<'_>,
    ops: &[Op],
    cache: &StatCache,
    progress: &Progress,
) -> Result<Vec<Placed>> {
    let places: Vec<&Entry> = ops
        .iter()
        .filter_map(|op| match op {
            Op::Place(new, _) if new.kind != Kind::Dir => Some(new),
            _ => None,
        })
        .collect();
    places
        .par_iter()
        .map(|e| {
            let placed = ap.place(e, true, cache);
            progress.add(1, file_bytes(e));
            placed
        })
        .collect::<Result<_>>()
}

/// Step 4: removes the directories of the old snapshot left empty, deepest first.
fn remove_emptied_dirs(
    ap: &Applier<'_>,
    ops: &[Op],
    b_is_dir: impl Fn(&[u8]) -> bool,
) -> Result<()> {
    let mut gone: BTreeSet<Vec<u8>> = BTreeSet::new();
    for op in ops {
        if let Op::Remove(old) = op {
            for q in ancestors(&old.path) {
                if !b_is_dir(q) {
                    gone.insert(q.to_vec());
                }
            }
        }
    }
    for q in gone.iter().rev() {
        ap.remove_dir_if_empty(q)?;
    }
    Ok(())
}

/// Step 5: the new stat cache and base. Its time is taken after the writes, so that what this
/// switch wrote is trusted at once (see `crate::cache`); records it did not write are
/// smudged where racy against the time read before their stats (`started_ns`).
#[allow(clippy::too_many_arguments)]
fn record_base(
    store: &Store,
    wt: &mut Worktree,
    b_id: &Hash,
    ap: &Applier<'_>,
    ops: &[Op],
    cache: &StatCache,
    placed: Vec<Placed>,
    started_ns: i64,
    b_is_dir: impl Fn(&[u8]) -> bool + Sync + Send,
) -> Result<()> {
    // The carried file and symlink records to drop: those of the paths the switch removed or
    // made directories. A file or symlink it placed has a fresh record, which replaces the
    // carried one anyway; leaving those paths out keeps this set empty for a switch that only
    // changes content, so that the merge below looks nothing up for the 80,000 records it
    // carries.
    let touched: HashSet<&[u8]> = ops
        .iter()
        .filter(|op| !matches!(op, Op::Place(new, _) if new.kind != Kind::Dir))
        .map(|op| op.path())
        .collect();
    let (own, seen): (Vec<Placed>, Vec<Placed>) = placed.into_iter().partition(|p| p.written);
    let mut fresh: Vec<Rec> = own.into_iter().map(|p| p.rec).collect();
    let latest = cache::latest_fine_time(&fresh);
    fresh.extend(cache::smudge_racy(
        started_ns,
        seen.into_iter().map(|p| p.rec).collect(),
    ));
    // Durable first (docs/store.md, "Durability"). The record that says the switch is done is
    // staged now and renamed into place only once the sync of the worktree's filesystem returned,
    // so that the rename never reaches the disk before the worktree's changes. The staged bytes are
    // synced on their own beside that sync, even when the store shares the worktree's filesystem:
    // the filesystem sync is not enough on its own everywhere (on macOS it is sync(), which only
    // schedules the writes, plus F_FULLFSYNC on the root; on FUSE a syncfs may not reach the
    // server; before Linux 5.8 syncfs reports no writeback error), and the record's own sync
    // overlaps the other, so it costs little. The cache's merge is made ready (its fresh records
    // sorted, its records counted) after that, while the filesystem sync still waits on the disk,
    // and written only after it (it trusts what was written), as it is merged: the old cache and
    // the new one are never both in memory (on a worktree of 2,000,000 files, a quarter of a
    // gigabyte each).
    wt.base = *b_id;
    wt.pending = None;
    let mut done = registry::stage(store, wt)?;
    let (synced, (merge, staged)) = rayon::join(
        || ap.sync(),
        || {
            // A directory record of a path that is no directory of the target (an
            // empty-directory entry removed, a directory that became a file) would make its
            // parent's names disagree with the records forever, so that the parent is listed
            // by every status: dropped.
            let staged = done.sync_data();
            let merge = cache.merge(
                |p| touched.is_empty() || !touched.contains(p),
                fresh,
                b_is_dir,
                Vec::new(),
            );
            (merge, staged)
        },
    );
    synced?;
    staged?;
    // The clock tick of the newest write has usually passed by the time the sync returns,
    // so this rarely waits.
    let written_ns = cache::written_ns_after_own_writes(latest);
    // The cache (never synced: one lost in a crash decodes as nothing) and the record at
    // once; each is complete on its own, and the cache holds only what is now durable.
    let w = wt.clone();
    let (cached, published) = rayon::join(
        || registry::write_cache_with(store, &w, |out| merge.write(out, written_ns)),
        || done.publish(wt),
    );
    published?;
    cached?;
    Ok(())
}

/// The bytes of file data an entry brings (a symlink's target is not file data).
pub(crate) fn file_bytes(e: &Entry) -> u64 {
    e.hash().map_or(0, |_| e.size())
}

#[cfg(test)]
mod tests {
    use cowtree_store::{Entry, Manifest};

    use super::*;

    /// Two random trees over names that sort on both sides of `/`, sharing some entries.
    fn random_pair(next: &mut impl FnMut() -> u64) -> (Manifest, Manifest) {
        let dirs: [&[u8]; 4] = [b"a", b"a-b", b"a.c", b"b0"];
        // (`a` is also a directory's name: a file in one tree where the other has a
        // directory.)
        let leaves: [&[u8]; 5] = [b"a", b"f", b"f-", b"f0", b"g"];
        let pick = |next: &mut dyn FnMut() -> u64| {
            let mut path = Vec::new();
            for _ in 0..next() % 4 {
                path.extend(dirs[(next() % 4) as usize]);
                path.push(b'/');
            }
            path.extend(leaves[(next() % 5) as usize]);
            match next() % 6 {
                0 => Entry::symlink(path, b"t".to_vec()),
                1 => Entry::dir(path),
                k => Entry::blob(path, k == 2, next() % 3, Hash::of(&[(next() % 3) as u8])),
            }
        };
        let mut trees = [Vec::new(), Vec::new()];
        for _ in 0..next() % 40 {
            let e = pick(&mut *next);
            match next() % 3 {
                0 => trees[0].push(e),
                1 => trees[1].push(e),
                _ => {
                    trees[0].push(e.clone());
                    trees[1].push(e);
                }
            }
        }
        let [a, b] = trees.map(|mut t| {
            t.sort_by(|x, y| x.path.cmp(&y.path));
            t.dedup_by(|x, y| x.path == y.path);
            // A file's path is never another entry's directory.
            let paths: Vec<Vec<u8>> = t.iter().map(|e| e.path.clone()).collect();
            t.retain(|e| {
                !paths.iter().any(|p| {
                    p.len() > e.path.len() && p.starts_with(&e.path) && p[e.path.len()] == b'/'
                })
            });
            Manifest::new(t).expect("a valid tree")
        });
        (a, b)
    }

    #[test]
    fn diff_of_the_compact_forms_is_the_diff_of_the_entries() {
        let mut rng = cowtree_testutil::XorShift::new(0x9E37_79B9_7F4A_7C15);
        let mut next = move || rng.next_u64();
        let mut ops = 0;
        for _ in 0..500 {
            let (a, b) = random_pair(&mut next);
            let compact =
                |m: &Manifest| CompactManifest::of(m).expect("a small tree's compact form");
            let got = diff(&compact(&a), &compact(&b));
            // The same, entry by entry over the whole entries.
            let mut want = Vec::new();
            let (mut x, mut y) = (a.entries().iter().peekable(), b.entries().iter().peekable());
            loop {
                match (x.peek(), y.peek()) {
                    (Some(p), Some(q)) if p.path == q.path => {
                        if p != q {
                            want.push(format!("place {:?} over {:?}", q, p));
                        }
                        x.next();
                        y.next();
                    }
                    (Some(p), Some(q)) if p.path < q.path => {
                        want.push(format!("remove {p:?}"));
                        x.next();
                    }
                    (Some(p), None) => {
                        want.push(format!("remove {p:?}"));
                        x.next();
                    }
                    (_, Some(q)) => {
                        want.push(format!("place {q:?}"));
                        y.next();
                    }
                    (None, None) => break,
                }
            }
            let got: Vec<String> = got
                .iter()
                .map(|op| match op {
                    Op::Place(q, Some(p)) => format!("place {q:?} over {p:?}"),
                    Op::Place(q, None) => format!("place {q:?}"),
                    Op::Remove(p) => format!("remove {p:?}"),
                })
                .collect();
            ops += got.len();
            assert_eq!(got, want);
        }
        assert!(ops > 2000, "{ops}");
    }
}
