//! Making a worktree: the one public way to check a snapshot out as a worktree, doing exactly
//! what `cowtree checkout` does.
//!
//! [`cowtree_store::checkout`] is the raw materializer underneath: it builds the tree beside
//! its destination, registers it (with its root's device and inode) and renames it into place.
//! [`checkout`] adds what makes the tree a worktree the other commands work with at full
//! speed: the store marker on its root (so that commands run inside it find its store with no
//! flag) and a stat cache of what was written (so that the first status reads no file). The
//! record the checkout registers is already the worktree's whole record, naming that stat
//! cache, so that recording the cache afterwards writes the cache alone (never synced), not
//! the record again (one more sync of `worktrees/` for every checkout).
//!
//! The stat cache is made of the stats the checkout took as it wrote each entry
//! ([`cowtree_store::checkout::Written`]: the `fstat` of each file it had open, after its data
//! and mode were set), not of a second walk of the tree: those are the stats of the inodes it
//! made, which nothing of its own changes afterwards (the rename into place and the marker
//! change the root's ctime only, and the root's stat is taken after both). Each file record
//! takes its blob's hash when the file has the manifest's size, as a walk of the new tree
//! would (see [`crate::status::adopt`]). The records are of files this process wrote itself,
//! so the cache's time is read after them by the rule for such records
//! ([`cache::written_ns_after_own_writes`]): they are trusted as soon as the checkout ends,
//! with no wait for the timestamp granularity. That rule's wait for the coarse clock to pass
//! the newest recorded time runs before the tree is renamed into place (the checkout's
//! `before_placing`), not only after: a file rewritten at the same size right after the
//! rename, in the tick of its own write, would otherwise keep its recorded times and be
//! trusted; once the clock has passed them, any change made where the tree can be reached by
//! its path gets later times. Like a switch's, such records say what the checkout wrote:
//! another process writing into the hidden staging directory while the checkout runs, in the
//! very clock tick of the checkout's own last change to the same file or directory, would go
//! unseen; any later change shows in the stat.
//!
//! The root is opened by its path after the rename; it must be the directory the checkout
//! registered (same device and inode), or no cache is recorded.

use std::path::Path;
use std::sync::OnceLock;

use cowtree_fs::Progress;
use cowtree_fs::dir::Dir;
use cowtree_fs::name::split;
use cowtree_store::checkout::{
    Arriving, CheckoutOptions, CheckoutReport, EntryStat, Hooks, Written,
    checkout_arriving as checkout_arriving_in_store, checkout_recording,
};
use cowtree_store::compact::CompactEntry;
use cowtree_store::manifest::{DataRef, Kind, name_order};
use cowtree_store::{Hash, Store, discover};

use crate::cache::{self, Rec, StatKey};
use crate::error::{Error, Result};
use crate::registry::Worktree;

/// A worktree made by [`checkout`].
#[derive(Debug)]
pub struct CheckedOut {
    /// What the checkout wrote.
    pub report: CheckoutReport,
    /// The worktree, registered; `None` when only its stat cache could not be recorded (see
    /// [`CheckedOut::cache_error`]).
    pub worktree: Option<Worktree>,
    /// Why no stat cache was recorded. The worktree is complete and registered either way;
    /// without the cache its first status reads every file once.
    pub cache_error: Option<Error>,
    /// Why the store marker could not be set (the filesystem keeps no user extended
    /// attributes, for instance). The worktree is then found through the stores this user has
    /// used ([`discover::known_stores`]).
    pub marker_error: Option<std::io::Error>,
}

/// Checks out snapshot `id` of `store` as a new worktree at `dst` (absent, or an empty
/// directory), counting into `progress` as
/// [`cowtree_store::checkout::checkout_with_progress`] does. `warn` receives
/// warnings (the store on another filesystem) before work starts.
///
/// The tree is whole or absent when this returns an error; once the tree is in place, failing
/// to set the marker or to record the stat cache is reported in [`CheckedOut`], not as an
/// error.
pub fn checkout(
    store: &Store,
    id: &Hash,
    dst: &Path,
    opts: CheckoutOptions,
    warn: &dyn Fn(&str),
    progress: &Progress,
) -> Result<CheckedOut> {
    make(store, id, dst, opts, warn, progress, None)
}

/// [`checkout`] of a snapshot still arriving in the store (a pull running beside it: see
/// [`cowtree_store::checkout::Arriving`]): each file is written as soon as its blob is in
/// the store, and the worktree placed once the snapshot is recorded.
pub fn checkout_arriving(
    store: &Store,
    id: &Hash,
    dst: &Path,
    opts: CheckoutOptions,
    warn: &dyn Fn(&str),
    progress: &Progress,
    arriving: &Arriving<'_>,
) -> Result<CheckedOut> {
    make(store, id, dst, opts, warn, progress, Some(arriving))
}

/// [`checkout`], of a snapshot in the store or still `arriving`.
fn make(
    store: &Store,
    id: &Hash,
    dst: &Path,
    opts: CheckoutOptions,
    warn: &dyn Fn(&str),
    progress: &Progress,
    arriving: Option<&Arriving<'_>>,
) -> Result<CheckedOut> {
    let records = OnceLock::new();
    // The records first: built on the core the sync leaves idle, and by the time they are
    // done the clock has mostly passed the times they hold, so the wait is short.
    let before_placing = |w: &Written| {
        // A snapshot of the store's tree whose stat cache is kept: that cache is this tree's
        // (the snapshot keeps every inode and time), its records made long ago.
        if tree_cache_applies(w) {
            return;
        }
        let _ = records.set(Records::of(w));
        wait_for_clock(w);
    };
    let hooks = Hooks {
        before_placing: &before_placing,
        ..hooks()
    };
    let started = std::time::Instant::now();
    let (report, written) = match arriving {
        Some(a) => {
            checkout_arriving_in_store(store, id, dst, opts, warn, progress, Some(&hooks), a)
        }
        None => checkout_recording(store, id, dst, opts, warn, progress, &hooks),
    }?;
    let timing = std::env::var_os("COWTREE_TIMING").is_some();
    if timing {
        eprintln!("timing: tree placed {:?}", started.elapsed());
    }
    // Before the root's stat: setting the marker changes the root directory's ctime.
    let marker_error = discover::mark_worktree(&report.path, store.root()).err();
    let registered = if tree_cache_applies(&written) {
        tree_stat_cache(store, &report.path, id, &written)
    } else {
        match records.into_inner() {
            Some(records) => stat_cache(&report.path, &written, id, records),
            // The hook also waits for the clock before the tree is placed; without that wait
            // the records could not be trusted at once (see the module doc).
            None => Err(Error::Msg(format!(
                "the checkout of {} placed the tree without building its stat cache; no stat \
                 cache recorded",
                report.path.display()
            ))),
        }
        .and_then(|cache| {
            crate::registry::register_encoding(store, &report.path, id, |w| cache.write(w))
        })
        .inspect(|wt| {
            // Made of the store's tree's own stats: kept with that tree, for the next
            // checkouts of it (best effort: without it, the next one stats the tree).
            if written.from_tree {
                crate::registry::share_cache_with_tree(store, wt, id);
            }
        })
    };
    if timing {
        eprintln!("timing: stat cache recorded {:?}", started.elapsed());
    }
    let (worktree, cache_error) = match registered {
        Ok(wt) => (Some(wt), None),
        Err(e) => (None, Some(e)),
    };
    Ok(CheckedOut {
        report,
        worktree,
        cache_error,
        marker_error,
    })
}

/// The checkout is a snapshot of the store's tree, which has a stat cache of its own (the
/// store's checkout then gives no stats: it wrote nothing).
fn tree_cache_applies(w: &Written) -> bool {
    w.from_tree && w.stats.is_empty() && w.dirs.is_empty()
}

/// Registers the worktree at `root`, a snapshot of the store's tree of snapshot `id`, with a
/// copy of that tree's stat cache ([`cowtree_store::trees::cache`]): its records are the
/// tree's, which the snapshot keeps (inode numbers, sizes, times and modes; only the device
/// differs, and the cache keeps none). The root's own record, if any, is of another root and
/// does not match: status lists the root once.
fn tree_stat_cache(
    store: &Store,
    root: &Path,
    id: &Hash,
    written: &Written,
) -> Result<crate::registry::Worktree> {
    let st = crate::os::stat(root).map_err(|e| Error::io_at("stat", root, e))?;
    if (cowtree_fs::sys::stat_dev(&st), crate::os::ino(&st)) != written.root {
        return Err(Error::Replaced {
            path: root.to_path_buf(),
        });
    }
    let cache = cowtree_store::trees::cache(store, id).ok_or_else(|| {
        Error::Msg(format!(
            "the stat cache of the store's tree of {} is gone (removed meanwhile); no stat \
             cache recorded for {}",
            id,
            root.display()
        ))
    })?;
    crate::registry::register_with_cache_file(store, root, id, &cache)
}

/// What [`checkout`] has the store's checkout do on the way: wait for the clock beside the
/// sync of the tree, and register the worktree's whole record ([`crate::registry::checkout_record`]),
/// which [`crate::registry::register_encoding`] then finds already written. [`checkout`] also builds
/// the stat cache's records beside the sync, before that wait.
pub fn hooks() -> Hooks<'static> {
    Hooks {
        before_placing: &wait_for_clock,
        record: &crate::registry::checkout_record,
    }
}

/// Waits for the coarse clock to pass the newest time of what `written` records (see the module
/// doc), before the tree is renamed into place (beside the sync of the tree).
fn wait_for_clock(written: &Written) {
    let files = written.stats.iter().flatten();
    let dirs = written.dirs.iter().map(|(_, st)| st);
    cache::written_ns_after_own_writes(cache::latest_fine_time_of(
        files.chain(dirs).map(|st| StatKey::from(*st)),
    ));
}

/// What the stat cache needs beyond the manifest and the stats that [`Written`] holds, and
/// does not depend on the root's final stat (the rename into place and the marker change its
/// ctime): the records of every directory but the root, the hash of the root's names, and the
/// count and newest time of the file and symlink records. [`checkout`] builds them beside the
/// sync of the tree, where they cost no wall time.
///
/// The file and symlink records themselves are encoded straight from the manifest and the
/// stats into the cache file as it is written ([`Cache::write`]): never a [`Rec`] each (96
/// bytes and the path in an allocation of its own), nor the cache's whole encoding, each of
/// which held every path of the tree once more beside the manifest (docs/manifest.md,
/// "Memory of the commands that read a snapshot").
#[derive(Debug)]
struct Records {
    /// How many file and symlink records [`leaf_records`] gives.
    count: u64,
    /// Their newest sub-second time ([`cache::latest_fine_time_of`]).
    latest: i64,
    /// Directory records beneath the root, sorted by path, to be kept only where the
    /// filesystem updates a directory's times on every new entry (see [`stat_cache`]).
    dirs: Vec<Rec>,
    /// The names hash of the root's entries; `None` when one of its files or symlinks has no
    /// record, so that the root gets none either.
    root_names: Option<Hash>,
}

impl Records {
    /// What a walk of the new tree would record ([`crate::status::adopt`]) of what `written`
    /// holds.
    fn of(written: &Written) -> Records {
        let (mut count, mut latest) = (0, i64::MIN);
        // The directories (every one but the root) in name order, each as its path and a `/`:
        // then each directory comes just before what lies beneath it, all of which comes
        // before the next path not beneath it, the manifest's files and symlinks too (they
        // are in byte order, which is name order for them). Walked together, only the
        // directories open on the way from the root to the current entry are held.
        let mut order: Vec<usize> = (0..written.dirs.len()).collect();
        order.sort_by(|&a, &b| name_order(&written.dirs[a].0, true, &written.dirs[b].0, true));
        let mut dirs = order.into_iter().peekable();
        let mut hashes: Vec<Option<Hash>> = vec![None; written.dirs.len()];
        let mut open = vec![Open::new(b"", None)];
        let manifest = &written.manifest;
        let mut leaves = leaf_records(written);
        // The next file or symlink, and its whole path (the manifest holds its directory and
        // its name).
        let mut leaf = leaves.next();
        let mut leaf_path = Vec::new();
        if let Some((i, ..)) = leaf {
            manifest.path_into(i, &mut leaf_path);
        }
        let mut missing = false;
        loop {
            let next_dir = dirs.peek().map(|&d| &written.dirs[d].0[..]);
            let dir_first = match (next_dir, &leaf) {
                (None, None) => break,
                (Some(_), None) => true,
                (None, Some(_)) => false,
                (Some(d), Some(_)) => name_order(d, true, &leaf_path, false).is_lt(),
            };
            let (parent, name) = match (dir_first, &leaf) {
                (false, Some((_, e, _))) => (manifest.dir_path(e.dir), e.name),
                _ => split(next_dir.unwrap_or_default()),
            };
            Open::close_to(&mut open, parent, &mut hashes);
            if open.last().is_some_and(|o| o.path != parent) {
                // A directory with no stat (none was taken): see `missing` below.
                missing = true;
                Open::open_to(&mut open, parent);
            }
            let at = open.last_mut().filter(|o| o.path == parent);
            if dir_first {
                let d = dirs.next().unwrap_or_default();
                if let Some(at) = at {
                    at.dirs.push(name);
                }
                open.push(Open::new(next_dir.unwrap_or_default(), Some(d)));
            } else {
                let rec = leaf.and_then(|(.., rec)| rec);
                leaf = leaves.next();
                if let Some((i, ..)) = leaf {
                    manifest.path_into(i, &mut leaf_path);
                }
                match rec {
                    Some((key, _)) => {
                        if let Some(at) = at {
                            at.files.push(name);
                        }
                        count += 1;
                        latest = latest.max(cache::latest_fine_time_of([key]));
                    }
                    None => {
                        if let Some(at) = at {
                            at.complete = false;
                        }
                    }
                }
            }
        }
        // An empty directory of the manifest with no stat is not met by the walk (it has no
        // entries): looked for here.
        missing |= (manifest.iter().enumerate())
            .filter(|(_, e)| e.kind == Kind::Dir)
            .any(|(i, _)| {
                let path = manifest.path(i);
                (written.dirs)
                    .binary_search_by(|(p, _)| p[..].cmp(&path[..]))
                    .is_err()
            });
        Open::close_to(&mut open, b"", &mut hashes);
        let root_names = open.pop().and_then(Open::hash);
        // A directory with no stat would have no record, and its parent a record that does
        // not list it: status, trusting the parent, would never look inside it. Every
        // directory gets a stat or the checkout fails; should one not, no directory record
        // is made (status then lists every directory, which is always safe).
        if missing {
            hashes.clear();
        }
        let root_names = root_names.filter(|_| !missing);
        // Room for the root's record, put first once its stat is taken ([`stat_cache`]).
        let mut dirs = Vec::with_capacity(written.dirs.len() + 1);
        dirs.extend(
            (written.dirs.iter().zip(hashes)).filter_map(|((path, st), hash)| {
                Some(Rec {
                    path: path.clone(),
                    key: StatKey::from(*st),
                    hash: hash?,
                })
            }),
        );
        Records {
            count,
            latest,
            dirs,
            root_names,
        }
    }
}

/// A directory [`Records::of`] is in, with what it has found in it so far.
struct Open<'w> {
    path: &'w [u8],
    /// Its index in [`Written::dirs`]; `None` for the root and for a directory not there.
    rec: Option<usize>,
    /// The names of its files and symlinks that have a record, in byte order.
    files: Vec<&'w [u8]>,
    /// The names of its subdirectories, in name order (sorted by bytes when it is closed).
    dirs: Vec<&'w [u8]>,
    /// Every file and symlink in it has a record.
    complete: bool,
}

impl<'w> Open<'w> {
    fn new(path: &'w [u8], rec: Option<usize>) -> Open<'w> {
        Open {
            path,
            rec,
            files: Vec::new(),
            dirs: Vec::new(),
            complete: true,
        }
    }

    /// The names hash of its entries (the directory record's), when every file and symlink
    /// has a record.
    fn hash(mut self) -> Option<Hash> {
        self.dirs.sort_unstable();
        let (files, dirs) = (self.files.iter().copied(), self.dirs.iter().copied());
        self.complete.then(|| cache::names_hash(files, dirs))
    }

    /// Closes the directories of `open` that `path` is not in (itself or beneath), the root
    /// excepted, keeping the hashes of those with a record.
    fn close_to(open: &mut Vec<Open<'w>>, path: &[u8], hashes: &mut [Option<Hash>]) {
        while let Some(top) = open.last() {
            let inside = top.path.is_empty()
                || (path.starts_with(top.path)
                    && matches!(path.get(top.path.len()), None | Some(b'/')));
            if inside {
                return;
            }
            let Some(top) = open.pop() else { return };
            if let Some(h) = top.rec.and_then(|d| hashes.get_mut(d)) {
                *h = top.hash();
            }
        }
    }

    /// Opens, with no record, the directories from the innermost one open down to `path`
    /// (which is beneath it).
    fn open_to(open: &mut Vec<Open<'w>>, path: &'w [u8]) {
        let from = open.last().map_or(0, |o| o.path.len());
        let mut at = from;
        while at < path.len() {
            let start = if at == 0 && from == 0 { 0 } else { at + 1 };
            let end = path[start..]
                .iter()
                .position(|&c| c == b'/')
                .map_or(path.len(), |i| start + i);
            if end <= at {
                // An empty first component (never in a valid manifest): nothing to open.
                break;
            }
            open.push(Open::new(&path[..end], None));
            at = end;
        }
    }
}

/// Every file and symlink of `written`'s manifest, in its order: its index in the manifest,
/// the entry, and its record when it gets one ([`record_of`]).
fn leaf_records(
    written: &Written,
) -> impl Iterator<Item = (usize, CompactEntry<'_>, Option<(StatKey, Hash)>)> {
    (written.manifest.iter().enumerate().zip(&written.stats))
        .filter(|((_, e), _)| e.kind != Kind::Dir)
        .map(|((i, e), st)| (i, e, st.as_ref().and_then(|st| record_of(&e, st))))
}

/// The stat cache of a tree just checked out, ready to be written: what the checkout wrote
/// ([`Written`]) and the [`Records`] made of it, the directory records (with the root's) where
/// they are kept, and a time that trusts them at once.
#[derive(Debug)]
struct Cache<'w> {
    written_ns: i64,
    written: &'w Written,
    /// [`Records::count`].
    count: u64,
    /// The directory records kept, sorted by path: the root's (empty path) first.
    dirs: Vec<Rec>,
    /// The snapshot checked out, whose blobs hold every file record's content.
    blobs_of: Hash,
}

impl Cache<'_> {
    /// Writes the cache's encoding (the file [`cache::StatCache::read`] reads) to `w`: the
    /// file and symlink records in the manifest's order, which is the cache's (both sort by
    /// path bytes).
    fn write(&self, w: &mut dyn std::io::Write) -> std::io::Result<()> {
        let mut buf = Vec::with_capacity(512);
        let dirs = self.dirs.len() as u64;
        cache::encode_header(&mut buf, self.written_ns, self.count, dirs);
        w.write_all(&buf)?;
        let mut count = 0;
        let mut path = Vec::new();
        for (i, _, rec) in leaf_records(self.written) {
            let Some((key, hash)) = rec else { continue };
            self.written.manifest.path_into(i, &mut path);
            buf.clear();
            cache::encode_rec(&mut buf, &path, &key, &hash);
            w.write_all(&buf)?;
            count += 1;
        }
        // The header's count was taken by the same rule; a cache that disagreed with it
        // would decode as empty: say so rather than write it.
        if count != self.count {
            return Err(std::io::Error::other(format!(
                "internal error: {count} file records, {} counted",
                self.count
            )));
        }
        for d in &self.dirs {
            buf.clear();
            cache::encode_rec(&mut buf, &d.path, &d.key, &d.hash);
            w.write_all(&buf)?;
        }
        w.write_all(&cache::encode_trailer(Some(&self.blobs_of)))
    }
}

/// The stat cache of the tree `written` that was just checked out at `root` from snapshot
/// `id`: the `records` made of it and the root's record from its stat taken now, with a time
/// that trusts them at once.
fn stat_cache<'w>(
    root: &Path,
    written: &'w Written,
    id: &Hash,
    records: Records,
) -> Result<Cache<'w>> {
    let root_dir = Dir::open(root).map_err(Error::Io)?;
    let root_st = root_dir
        .stat_self()
        .map_err(|e| Error::io_at("stat", root, e))?;
    // The path is followed to open it: it must still lead to the directory registered.
    if (
        cowtree_fs::sys::stat_dev(&root_st),
        crate::os::ino(&root_st),
    ) != written.root
    {
        return Err(Error::Replaced {
            path: root.to_path_buf(),
        });
    }
    // Directory records only where creating an entry always updates the directory's times
    // (the rule the walk follows, see `crate::scan`).
    let dir_records = crate::scan::dir_records_on(&root_dir);
    let Records {
        count,
        latest,
        dirs: below,
        root_names,
    } = records;
    let mut dirs = Vec::new();
    if dir_records {
        // The root's first (its path is empty), in the list already made, which has room
        // for it (not a copy of the list).
        dirs = below;
        if let Some(hash) = root_names {
            let root = Rec {
                path: Vec::new(),
                key: StatKey::from(EntryStat::of(&root_st)),
                hash,
            };
            dirs.insert(0, root);
        }
    }
    // After the last stat the cache keeps (the root's, above).
    let latest = latest.max(cache::latest_fine_time(&dirs));
    Ok(Cache {
        written_ns: cache::written_ns_after_own_writes(latest),
        written,
        count,
        dirs,
        blobs_of: *id,
    })
}

/// The record of entry `e` written with stat `st`: a file of the manifest's size takes its
/// blob's hash, a symlink the hash of its target (the stat cache's content hash of a symlink).
fn record_of(e: &CompactEntry<'_>, st: &EntryStat) -> Option<(StatKey, Hash)> {
    let ft = crate::os::type_of_mode(st.mode);
    let hash = match (e.data, ft) {
        (DataRef::Blob { hash, size }, ft) if ft.is_file() && st.size == size => hash,
        (DataRef::Target(t), ft) if ft.is_symlink() => Hash::of(t),
        _ => return None,
    };
    Some((StatKey::from(*st), hash))
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeSet, HashMap};

    use super::*;
    use crate::cache::StatCache;
    use cowtree_store::compact::CompactManifest;
    use cowtree_store::{Entry, Manifest};

    /// The directory records, the root's names hash, the count and newest time of the file
    /// records, the simple way: maps of every directory's names (as [`Records::of`] made them
    /// before it walked the tree in order).
    fn reference(written: &Written) -> (Vec<Rec>, Option<Hash>, u64, i64) {
        let (mut count, mut latest) = (0, i64::MIN);
        let mut leaves: HashMap<&[u8], (Vec<&[u8]>, bool)> = HashMap::new();
        for (_, e, rec) in leaf_records(written) {
            let (parent, name) = (written.manifest.dir_path(e.dir), e.name);
            let at = leaves.entry(parent).or_insert_with(|| (Vec::new(), true));
            match rec {
                Some((key, _)) => {
                    at.0.push(name);
                    count += 1;
                    latest = latest.max(cache::latest_fine_time_of([key]));
                }
                None => at.1 = false,
            }
        }
        let mut subdirs: HashMap<&[u8], Vec<&[u8]>> = HashMap::new();
        for (path, _) in &written.dirs {
            let (parent, name) = split(path);
            subdirs.entry(parent).or_default().push(name);
        }
        let names = |path: &[u8]| {
            let (files, complete) = leaves
                .get(path)
                .map_or((&[][..], true), |(f, c)| (&f[..], *c));
            let dirs = subdirs.get(path).map_or(&[][..], |d| &d[..]);
            complete.then(|| cache::names_hash(files.iter().copied(), dirs.iter().copied()))
        };
        let dirs = (written.dirs.iter())
            .filter_map(|(path, st)| {
                Some(Rec {
                    path: path.clone(),
                    key: StatKey::from(*st),
                    hash: names(path)?,
                })
            })
            .collect();
        (dirs, names(b""), count, latest)
    }

    #[test]
    fn records_walked_in_order_are_those_of_maps_of_every_directory() {
        let mut rng = cowtree_testutil::XorShift::new(0x2545_F491_4F6C_DD1D);
        let mut next = move || rng.next_u64();
        // Directory names, and leaf names that sort on both sides of `name/` (`-` and `.`
        // before `/`, `0` after), and names of empty directories.
        let dir_names: [&[u8]; 4] = [b"a", b"a-b", b"b", b"b0"];
        let leaf_names: [&[u8]; 6] = [b"a-", b"a.c", b"a0", b"b-", b"c", b"b.x"];
        let empty_names: [&[u8]; 2] = [b"e", b"a-e"];
        let (mut dropped_rounds, mut compared) = (0, 0);
        for round in 0..400 {
            let mut entries = Vec::new();
            for _ in 0..(1 + next() % 40) {
                let depth = (next() % 4) as usize;
                let mut path: Vec<u8> = Vec::new();
                for _ in 0..depth {
                    path.extend(dir_names[(next() % 4) as usize]);
                    path.push(b'/');
                }
                let r = next() % 10;
                if r == 0 {
                    path.extend(empty_names[(next() % 2) as usize]);
                    entries.push(Entry::dir(path));
                    continue;
                }
                path.extend(leaf_names[(next() % 6) as usize]);
                entries.push(if r == 1 {
                    Entry::symlink(path, b"target".to_vec())
                } else {
                    Entry::blob(path, r == 2, next() % 3, Hash::of(&[r as u8]))
                });
            }
            entries.sort_by(|a, b| a.path.cmp(&b.path));
            entries.dedup_by(|a, b| a.path == b.path);
            let manifest = Manifest::new(entries).expect("a valid tree");
            // Times with and without a sub-second part, from one random number.
            let stat = |size: u64, mode: u32, r: u64| EntryStat {
                size,
                mtime_ns: (r % 1000) as i64 * 1_000_000_001,
                ctime_ns: (r % 997) as i64 * 1_000_000_000,
                ino: r >> 20,
                mode,
            };
            // Files of the right size and type have a record; some of other sizes or types,
            // or not written (no stat), do not.
            let stats = (manifest.entries().iter())
                .map(|e| {
                    let mode = match e.kind {
                        Kind::Symlink => 0o120777,
                        Kind::Dir => return None,
                        _ => 0o100644,
                    };
                    let r = next();
                    match r % 12 {
                        0 => None,
                        1 => Some(stat(e.size() + 1, mode, r)),
                        2 => Some(stat(e.size(), 0o040755, r)),
                        _ => Some(stat(e.size(), mode, r)),
                    }
                })
                .collect();
            // Every directory; in one round in four, a few left without a stat (as if one was
            // not taken).
            let drop_some = round % 4 == 3;
            let mut dirs: BTreeSet<Vec<u8>> = BTreeSet::new();
            for e in manifest.entries() {
                if e.kind == Kind::Dir {
                    dirs.insert(e.path.clone());
                }
                let mut p = &e.path[..];
                while let Some(i) = p.iter().rposition(|&c| c == b'/') {
                    p = &p[..i];
                    dirs.insert(p.to_vec());
                }
            }
            let all = dirs.len();
            let dirs: Vec<_> = (dirs.into_iter())
                .filter_map(|d| {
                    let r = next();
                    (!drop_some || !r.is_multiple_of(8)).then(|| (d, stat(0, 0o040755, r)))
                })
                .collect();
            let dropped = dirs.len() < all;
            let written = Written {
                manifest: CompactManifest::of(&manifest).unwrap(),
                stats,
                dirs,
                ..Written::default()
            };
            let got = Records::of(&written);
            let (dirs, root, count, latest) = reference(&written);
            let dir_recs = |recs: &[Rec]| -> Vec<(Vec<u8>, StatKey, Hash)> {
                recs.iter()
                    .map(|r| (r.path.clone(), r.key, r.hash))
                    .collect()
            };
            assert_eq!((got.count, got.latest), (count, latest), "round {round}");
            if dropped {
                // A directory without a stat: no directory record at all, not a parent's
                // record that leaves it out.
                assert!(got.dirs.is_empty(), "round {round}");
                assert_eq!(got.root_names, None, "round {round}");
                dropped_rounds += 1;
                continue;
            }
            assert_eq!(dir_recs(&got.dirs), dir_recs(&dirs), "round {round}");
            assert_eq!(got.root_names, root, "round {round}");
            compared += usize::from(!dirs.is_empty());
        }
        // Both kinds of round happened, enough times to mean something.
        assert!(
            dropped_rounds > 50 && compared > 200,
            "{dropped_rounds} {compared}"
        );
    }

    #[test]
    fn the_stat_cache_is_refused_when_the_root_is_not_the_directory_registered() {
        let dir = tempfile::tempdir().unwrap();
        let st = crate::os::stat(dir.path()).expect("stat of the tempdir");
        let id = Hash::of(b"snapshot");
        let mut written = Written {
            root: (cowtree_fs::sys::stat_dev(&st), crate::os::ino(&st)),
            ..Written::default()
        };
        let cache = stat_cache(dir.path(), &written, &id, Records::of(&written)).unwrap();
        let mut encoded = Vec::new();
        cache.write(&mut encoded).unwrap();
        let decoded = StatCache::decode(&encoded).expect("the encoding decodes");
        assert_eq!(decoded.blobs_of, Some(id));
        assert_eq!(decoded.written_ns, cache.written_ns);

        // Another directory at the path (the one made was moved away, or the path followed a
        // symlink put there): no cache.
        written.root.1 = crate::os::ino(&st).wrapping_add(1);
        let err = stat_cache(dir.path(), &written, &id, Records::of(&written))
            .unwrap_err()
            .to_string();
        assert!(err.contains("no longer the directory"), "{err}");
        assert!(err.contains(&dir.path().display().to_string()), "{err}");
    }
}
