//! The stat cache: for each file and symlink of a worktree as last seen, its `lstat` data and
//! the BLAKE3 hash of its content (a symlink: of its target), so that status and snapshot read
//! only files whose stat changed; and for each directory whose every entry has a record, its
//! `fstat` data and a hash of its entries' names, so that a directory whose stat did not
//! change is not listed again.
//!
//! It lives in the store (`worktrees/<id>.stat`), never in the worktree, and is replaced
//! atomically. Encoding, version 2 (little-endian):
//!
//! ```text
//! header  "CTSTAT2\n", written_ns i64 (clock before the stats were taken), count u64,
//!         dirs u64
//! record  path length u32, path bytes, size u64, mtime_ns i64, ctime_ns i64, ino u64,
//!         mode u32, hash 32 bytes
//! trailer blobs_of 32 bytes
//! ```
//! `count` file and symlink records sorted by path, then `dirs` directory records sorted by
//! path (the root's path is empty). A directory record's hash is [`names_hash`] of the
//! directory's entries when its stat was taken. `blobs_of` is the id of a snapshot whose
//! blobs hold the content of every file record (all zero: none): while that snapshot is in
//! the store, a trusted file record needs no lookup in it ([`StatCache::blobs_of`]). A cache
//! of another version decodes as empty.
//!
//! In memory a cache does not repeat its paths: a [`StatCache`] holds each record's name (the
//! last part of its path) beside the index of its directory, whose path it holds whole once
//! for the file and symlink records and at most once more for the directory records, and
//! compares and searches paths in those two pieces. It is read from its file a buffer at a
//! time into that form ([`StatCache::read`]), never held whole as encoded, and written back
//! record by record.
//!
//! Racy timestamps (as in git): a file written in the same clock tick as the stat was taken
//! can change again without its mtime changing. A record is trusted only when its mtime and
//! ctime are older than `written_ns` minus the timestamp granularity: 50 ms when the
//! filesystem keeps sub-second times (the kernel's coarse clock lags by at most a tick), 2 s
//! when a time has no sub-second part (filesystems with 1 s or 2 s times). Other records are
//! rehashed.
//!
//! What `written_ns` promises: every change made to a file after the cache's stats were taken
//! stamps the file with times at or after `written_ns` minus the granularity, so a record
//! older than that shows any later change in its stat. Two readings keep the promise:
//! - the precise clock read before the stats (status, snapshot, checkout): the kernel stamps
//!   files from its coarse clock, which lags the precise one by less than 50 ms;
//! - for records of files the command wrote itself (switch, reset), the coarse clock read after
//!   those writes and their stats, plus 50 ms ([`written_ns_after_own_writes`]): file times
//!   come from that clock (or, with multigrain timestamps, from a finer clock never behind
//!   it), so a later change is stamped at or after the reading. The record of a file written
//!   in the same tick as the reading would still be racy, so the reading waits for the next
//!   tick (at most one, a few ms) when the newest write is that recent: the command's records
//!   are trusted as soon as it ends, with no wait of the granularity. Such a record says what
//!   the command wrote: like checkout's (and git's), it does not see another process that
//!   rewrites the same file while the command runs, in the very tick of the command's write.
//!   Records that were hashed rather than written keep the first rule: those racy against the
//!   clock read before their stats are smudged before they join such a cache.
//!
//! Directory records rest on one more rule, which the filesystems cowtree trusts them on keep
//! (see [`crate::scan`]): creating, removing or renaming an entry updates the directory's
//! mtime and ctime. So a directory whose stat equals its record, and is not racy, has the
//! entries it had then; they are taken from the records beneath it, and only when their names
//! hash to the directory record's hash (else the directory is listed).

use std::ops::Range;

use cowtree_store::Hash;
use cowtree_store::checkout::EntryStat;
use cowtree_store::manifest::{SortedPath, cmp_pieces, find_child_from, range_in, range_near};
use rustix::fs::Stat;

const MAGIC: &[u8; 8] = b"CTSTAT2\n";
/// Granularity assumed for filesystems with sub-second timestamps.
pub const FINE_GRANULARITY_NS: i64 = 50_000_000;
/// Granularity assumed when a timestamp has no sub-second part.
pub const COARSE_GRANULARITY_NS: i64 = 2_000_000_000;

/// The stat data a record compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatKey {
    /// Size in bytes.
    pub size: u64,
    /// Modification time, ns since the epoch.
    pub mtime_ns: i64,
    /// Change time, ns since the epoch.
    pub ctime_ns: i64,
    /// Inode number.
    pub ino: u64,
    /// `st_mode` (type and permission bits).
    pub mode: u32,
}

impl StatKey {
    /// The key of an `lstat` result.
    pub fn of(st: &Stat) -> StatKey {
        StatKey::from(EntryStat::of(st))
    }

    /// A key no real file has: a record carrying it is always rehashed.
    pub const SMUDGED: StatKey = StatKey {
        size: u64::MAX,
        mtime_ns: i64::MIN,
        ctime_ns: i64::MIN,
        ino: 0,
        mode: 0,
    };
}

impl From<EntryStat> for StatKey {
    /// The key of what a checkout recorded of an entry's stat.
    fn from(st: EntryStat) -> StatKey {
        StatKey {
            size: st.size,
            mtime_ns: st.mtime_ns,
            ctime_ns: st.ctime_ns,
            ino: st.ino,
            mode: st.mode,
        }
    }
}

/// One record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rec {
    /// Path relative to the worktree root.
    pub path: Vec<u8>,
    /// The stat data when the content was hashed.
    pub key: StatKey,
    /// BLAKE3 of the content (a symlink: of its target bytes).
    pub hash: Hash,
}

/// A decoded stat cache, held compactly: each record's name (the last part of its path) with
/// the index of its directory, whose path is held once for all the records of a kind in it, so
/// that a path is not repeated for every record beneath its directory (a record's whole path
/// is its directory's path and its name). Loading one allocates a few times, not once per
/// record.
#[derive(Debug, Clone)]
pub struct StatCache {
    /// Clock (ns since the epoch) read before the stats of this cache were taken.
    pub written_ns: i64,
    /// Per record: its directory's index (u32), its name's length (u16), the name, and the
    /// record's stat and hash as encoded ([`FIXED`] bytes).
    bytes: Vec<u8>,
    /// File and symlink records.
    offs: Vec<u32>,
    /// Directory records.
    doffs: Vec<u32>,
    /// The paths of the directories the records are in, each with its `/` (the root's is
    /// empty).
    dir_paths: Vec<u8>,
    /// Where each directory's path starts in `dir_paths`, and then where the last one ends.
    dir_at: Vec<u32>,
    /// A snapshot whose blobs hold the content of every file record: the one written with
    /// the cache by a snapshot, or the base a checkout wrote. Caches merged with records of
    /// other content (status, reset, switch) have none.
    pub blobs_of: Option<Hash>,
}

/// A record's path as the cache holds it: its directory's path (ending with `/`; empty for a
/// record in the root) and its name.
#[derive(Debug, Clone, Copy)]
struct Joined<'c> {
    dir: &'c [u8],
    name: &'c [u8],
}

impl Joined<'_> {
    /// Compares the whole path with `other`.
    fn cmp(self, other: &[u8]) -> std::cmp::Ordering {
        self.cmp_range(0, usize::MAX, other)
    }

    /// Puts the whole path in `buf`, in place of what it held.
    fn write_into(self, buf: &mut Vec<u8>) {
        buf.clear();
        buf.extend_from_slice(self.dir);
        buf.extend_from_slice(self.name);
    }

    fn to_vec(self) -> Vec<u8> {
        let mut v = Vec::with_capacity(self.dir.len() + self.name.len());
        self.write_into(&mut v);
        v
    }
}

impl SortedPath for Joined<'_> {
    fn len(self) -> usize {
        self.dir.len() + self.name.len()
    }

    fn byte(self, i: usize) -> Option<u8> {
        match i.checked_sub(self.dir.len()) {
            None => Some(self.dir[i]),
            Some(j) => self.name.get(j).copied(),
        }
    }

    fn cmp_range(self, from: usize, to: usize, other: &[u8]) -> std::cmp::Ordering {
        // Within the name alone (a directory's entry after the directory's path), or within
        // the directory's path (an ancestor's path against it): one comparison of slices.
        let d = self.dir.len();
        if let Some(f) = from.checked_sub(d) {
            let to = to.saturating_sub(d).min(self.name.len());
            return self.name[f.min(to)..to].cmp(other);
        }
        if to <= d {
            return self.dir[from.min(to)..to].cmp(other);
        }
        cmp_pieces(&[self.dir, self.name], from, to, other)
    }
}

/// A directory's entries as the stat cache holds them ([`StatCache::children`]).
#[derive(Debug)]
pub struct Children<'c> {
    /// The indices of its files' and symlinks' records, in name order.
    pub files: Vec<usize>,
    /// The names of its subdirectories, in order.
    pub dirs: Vec<&'c [u8]>,
    /// The indices of their directory records (for [`StatCache::children`]'s `hint`).
    pub dir_recs: Vec<usize>,
    /// Their [`names_hash`] (the directory record's).
    pub hash: Hash,
}

/// The hash a directory record keeps of the directory's entries: `files` (the names of its
/// files and symlinks) and `dirs` (of its subdirectories), each in byte order.
pub fn names_hash<'n>(
    files: impl IntoIterator<Item = &'n [u8]>,
    dirs: impl IntoIterator<Item = &'n [u8]>,
) -> Hash {
    // Names hold neither `/` nor NUL: each ends with a NUL, and a `/` parts the two lists.
    // Hashed at once (one small buffer), not name by name.
    let mut buf = Vec::with_capacity(512);
    for n in files {
        buf.extend_from_slice(n);
        buf.push(0);
    }
    buf.push(b'/');
    for n in dirs {
        buf.extend_from_slice(n);
        buf.push(0);
    }
    Hash::of(&buf)
}

impl Default for StatCache {
    /// A cache of no records.
    fn default() -> StatCache {
        StatCache {
            written_ns: 0,
            bytes: Vec::new(),
            offs: Vec::new(),
            doffs: Vec::new(),
            dir_paths: Vec::new(),
            dir_at: vec![0],
            blobs_of: None,
        }
    }
}

fn sort_dedup(recs: &mut Vec<Rec>) {
    recs.sort_by(|a, b| a.path.cmp(&b.path));
    recs.dedup_by(|later, earlier| {
        if later.path == earlier.path {
            std::mem::swap(later, earlier);
            true
        } else {
            false
        }
    });
}

#[cfg(target_os = "linux")]
const COARSE_REALTIME: rustix::time::ClockId = rustix::time::ClockId::RealtimeCoarse;
// macOS stamps file times from the precise clock and has no coarse one.
#[cfg(not(target_os = "linux"))]
const COARSE_REALTIME: rustix::time::ClockId = rustix::time::ClockId::Realtime;

/// The coarse realtime clock (what the kernel stamps file times from), ns since the epoch.
pub fn coarse_now_ns() -> i64 {
    let t = rustix::time::clock_gettime(COARSE_REALTIME);
    t.tv_sec
        .saturating_mul(1_000_000_000)
        .saturating_add(t.tv_nsec as i64)
}

/// Longest wait for the coarse clock to pass the newest write: a tick is 1 to 10 ms; a file
/// time further ahead (another clock) is left racy rather than waited for.
const MAX_TICK_WAIT_NS: i64 = 20_000_000;

/// The `written_ns` of a cache whose newest records are of files this process wrote itself
/// and then stat'ed, `latest_ns` being the newest of their sub-second mtimes and ctimes (see
/// the module doc): the coarse clock once it has passed `latest_ns` (waiting for the next tick
/// when it has not yet), plus the fine granularity. Call it after every stat whose record the
/// cache keeps.
pub fn written_ns_after_own_writes(latest_ns: i64) -> i64 {
    let mut now = coarse_now_ns();
    while now <= latest_ns && latest_ns - now < MAX_TICK_WAIT_NS {
        std::thread::sleep(std::time::Duration::from_micros(250));
        now = coarse_now_ns();
    }
    now.saturating_add(FINE_GRANULARITY_NS)
}

/// True when `t` has no sub-second part (a filesystem with 1 s or 2 s times).
fn coarse_time(t: i64) -> bool {
    t.rem_euclid(1_000_000_000) == 0
}

/// [`StatCache::is_racy`] for a cache taken at `written_ns`.
pub fn racy_at(written_ns: i64, key: &StatKey) -> bool {
    let g = if coarse_time(key.mtime_ns) || coarse_time(key.ctime_ns) {
        COARSE_GRANULARITY_NS
    } else {
        FINE_GRANULARITY_NS
    };
    key.mtime_ns.max(key.ctime_ns) >= written_ns.saturating_sub(g)
}

/// The newest sub-second mtime or ctime of `recs` (for [`written_ns_after_own_writes`]);
/// `i64::MIN` when none has one.
pub fn latest_fine_time<'r>(recs: impl IntoIterator<Item = &'r Rec>) -> i64 {
    latest_fine_time_of(recs.into_iter().map(|r| r.key))
}

/// [`latest_fine_time`] of stat keys.
pub fn latest_fine_time_of(keys: impl IntoIterator<Item = StatKey>) -> i64 {
    keys.into_iter()
        .filter(|k| !coarse_time(k.mtime_ns) && !coarse_time(k.ctime_ns))
        .map(|k| k.mtime_ns.max(k.ctime_ns))
        .max()
        .unwrap_or(i64::MIN)
}

/// `recs`, those racy against `written_ns` smudged: records hashed after the clock read
/// `written_ns`, ready to join a cache with a later `written_ns`.
pub fn smudge_racy(written_ns: i64, recs: Vec<Rec>) -> Vec<Rec> {
    recs.into_iter()
        .map(|mut r| {
            if racy_at(written_ns, &r.key) {
                r.key = StatKey::SMUDGED;
            }
            r
        })
        .collect()
}

/// Nanoseconds since the epoch now.
pub fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}

/// Bytes of a record after its path.
const FIXED: usize = 8 + 8 + 8 + 8 + 4 + 32;

/// The `N` bytes of `b` at `at` (within `b`: records are built, or checked when decoded).
fn bytes_at<const N: usize>(b: &[u8], at: usize) -> [u8; N] {
    let s = &b[at..at + N];
    std::array::from_fn(|k| s[k])
}

fn le64(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(bytes_at(b, at))
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(bytes_at(b, at))
}

fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes(bytes_at(b, at))
}

impl StatCache {
    /// A cache from file and symlink records in any order (sorted here; the last of duplicate
    /// paths wins), without directory records.
    pub fn new(written_ns: i64, recs: Vec<Rec>) -> StatCache {
        StatCache::with_dirs(written_ns, recs, Vec::new())
    }

    /// [`StatCache::new`] with directory records `dirs` (in any order; the last of duplicate
    /// paths wins).
    pub fn with_dirs(written_ns: i64, mut recs: Vec<Rec>, mut dirs: Vec<Rec>) -> StatCache {
        sort_dedup(&mut recs);
        sort_dedup(&mut dirs);
        let mut b = Building::new(
            recs.iter()
                .chain(&dirs)
                .map(|r| r.path.len() + 6 + FIXED)
                .sum(),
            recs.len(),
            dirs.len(),
        );
        let mut push = |r: &Rec, dirs: bool| b.push(&r.path, &fixed(&r.key, &r.hash), dirs);
        // (Only a cache past 4 GiB, beyond its u32 offsets, or with a name past 64 KiB,
        // would not build: it is then empty, which means that everything is read again,
        // never a wrong answer.)
        let built = recs.iter().try_for_each(|r| push(r, false));
        let built = built.and_then(|()| dirs.iter().try_for_each(|r| push(r, true)));
        match built {
            Some(()) => b.finish(written_ns, None),
            None => StatCache::default(),
        }
    }

    /// Number of records.
    pub fn len(&self) -> usize {
        self.offs.len()
    }

    /// True when there is no record.
    pub fn is_empty(&self) -> bool {
        self.offs.is_empty()
    }

    fn path_of(&self, o: u32) -> Joined<'_> {
        let (o, b) = (o as usize, &self.bytes);
        let (d, n) = (u32_at(b, o) as usize, u16_at(b, o + 4) as usize);
        Joined {
            dir: &self.dir_paths[self.dir_at[d] as usize..self.dir_at[d + 1] as usize],
            name: &b[o + 6..o + 6 + n],
        }
    }

    fn path_at(&self, i: usize) -> Joined<'_> {
        self.path_of(self.offs[i])
    }

    fn dir_path_at(&self, i: usize) -> Joined<'_> {
        self.path_of(self.doffs[i])
    }

    /// The stat and hash of the record at `o`, as encoded.
    fn fixed_of(&self, o: u32) -> &[u8] {
        let o = o as usize;
        let n = u16_at(&self.bytes, o + 4) as usize;
        &self.bytes[o + 6 + n..o + 6 + n + FIXED]
    }

    fn rec_at(&self, i: usize) -> (StatKey, Hash) {
        self.rec_of(self.offs[i])
    }

    fn rec_of(&self, o: u32) -> (StatKey, Hash) {
        let b = self.fixed_of(o);
        let key = StatKey {
            size: le64(b, 0),
            mtime_ns: le64(b, 8) as i64,
            ctime_ns: le64(b, 16) as i64,
            ino: le64(b, 24),
            mode: u32_at(b, 32),
        };
        let hash = Hash::from_bytes(bytes_at(b, 36));
        (key, hash)
    }

    /// This cache, naming `id` as a snapshot whose blobs hold the content of every file
    /// record (see [`StatCache::blobs_of`]).
    pub fn with_blobs_of(mut self, id: Hash) -> StatCache {
        self.blobs_of = Some(id);
        self
    }

    /// Every file and symlink record, sorted by path.
    pub fn recs(&self) -> impl Iterator<Item = Rec> + '_ {
        self.offs.iter().map(|&o| self.owned(o))
    }

    /// Every directory record, sorted by path.
    pub fn dirs(&self) -> impl Iterator<Item = Rec> + '_ {
        self.doffs.iter().map(|&o| self.owned(o))
    }

    fn owned(&self, o: u32) -> Rec {
        let (key, hash) = self.rec_of(o);
        Rec {
            path: self.path_of(o).to_vec(),
            key,
            hash,
        }
    }

    /// The name of file or symlink record `i` after its directory's `prefix` bytes, for a
    /// record of one of the directory's own entries (see [`StatCache::children`]); of a
    /// record deeper down, its last name.
    pub fn name_at(&self, i: usize, prefix: usize) -> &[u8] {
        let p = self.path_at(i);
        p.name
            .get(prefix.saturating_sub(p.dir.len())..)
            .unwrap_or_default()
    }

    /// The content hash of file or symlink record `i` when it can be trusted for the stat
    /// `now` (see [`StatCache::trusted`]).
    pub fn trusted_at(&self, i: usize, now: &StatKey) -> Option<Hash> {
        let (key, hash) = self.rec_at(i);
        self.proves(&key, now).then_some(hash)
    }

    /// True when a record of stat `key` proves its content for the stat `now`: the same
    /// size, times, inode and mode, and not racy.
    fn proves(&self, key: &StatKey, now: &StatKey) -> bool {
        key == now && !self.is_racy(key)
    }

    /// The entries of directory `dir` (whose stat is `now`) as the records beneath it hold
    /// them, when its directory record can be trusted for `now` (same stat, not racy) and
    /// those entries' names hash to the record's hash. `range` is [`StatCache::range`] of
    /// `dir`; `hint`, where `dir`'s directory record may be (from the parent's
    /// [`Children::dir_recs`]), spares the search for it when it is there.
    pub fn children(
        &self,
        dir: &[u8],
        now: &StatKey,
        range: Range<usize>,
        hint: Option<usize>,
    ) -> Option<Children<'_>> {
        let at_hint =
            hint.filter(|&h| h < self.doffs.len() && self.dir_path_at(h).cmp(dir).is_eq());
        let i = match at_hint {
            Some(h) => h,
            None => self
                .doffs
                .binary_search_by(|&o| self.path_of(o).cmp(dir))
                .ok()?,
        };
        let (key, want) = self.rec_of(self.doffs[i]);
        if !self.proves(&key, now) {
            return None;
        }
        let prefix = if dir.is_empty() { 0 } else { dir.len() + 1 };
        let drange = if dir.is_empty() {
            i + 1..self.doffs.len()
        } else {
            // (Directory records beneath `dir` follow its own, after those of the names that
            // extend its last name with a byte below `/`.)
            let mut near = i + 1;
            range_near(near..self.doffs.len(), &mut near, dir, |j| {
                self.dir_path_at(j)
            })
        };
        // The names are used as names in the directory (never `/`, which `immediate` splits
        // at): a record of a name no directory entry can have (empty, `.`, `..`, a NUL, longer
        // than NAME_MAX) is a bad cache, and the directory is listed.
        let mut plain = true;
        let mut check = |n: &[u8]| plain &= cowtree_fs::name::validate_component(n).is_ok();
        let mut files = Vec::new();
        immediate(
            range,
            prefix,
            |j| self.path_at(j),
            |j, n| {
                check(n);
                files.push(j)
            },
        );
        let (mut dirs, mut dir_recs) = (Vec::new(), Vec::new());
        immediate(
            drange,
            prefix,
            |j| self.dir_path_at(j),
            |j, n| {
                check(n);
                dirs.push(n);
                dir_recs.push(j);
            },
        );
        if !plain {
            return None;
        }
        let got = names_hash(
            files.iter().map(|&j| self.name_at(j, prefix)),
            dirs.iter().copied(),
        );
        (got == want).then_some(Children {
            files,
            dirs,
            dir_recs,
            hash: want,
        })
    }

    /// The stat data and content hash recorded for `path`.
    pub fn get(&self, path: &[u8]) -> Option<(StatKey, Hash)> {
        self.index_of(path).map(|i| self.rec_at(i))
    }

    /// The index of the record of `path`.
    fn index_of(&self, path: &[u8]) -> Option<usize> {
        self.offs
            .binary_search_by(|&o| self.path_of(o).cmp(path))
            .ok()
    }

    /// The indices of the records beneath directory `dir`.
    pub fn range(&self, dir: &[u8]) -> std::ops::Range<usize> {
        range_in(0..self.offs.len(), dir, |i| self.path_at(i))
    }

    /// [`StatCache::range`] of `dir`, searching only `within` (the range of an ancestor),
    /// outward from `*near`, and leaving `*near` at the range's end (see [`range_near`]): for
    /// the subdirectories of one directory, asked one after another.
    pub fn range_near(
        &self,
        within: std::ops::Range<usize>,
        near: &mut usize,
        dir: &[u8],
    ) -> std::ops::Range<usize> {
        range_near(within, near, dir, |i| self.path_at(i))
    }

    /// [`StatCache::trusted`] for `dir/name`, searching only `range` (from
    /// [`StatCache::range`] of `dir`), for names asked in increasing byte order, from `*from`
    /// (see [`find_child_from`]).
    pub fn trusted_child_from(
        &self,
        range: &std::ops::Range<usize>,
        from: &mut usize,
        dir: &[u8],
        name: &[u8],
        now: &StatKey,
    ) -> Option<Hash> {
        let i = find_child_from(range, from, dir, name, |i| self.path_at(i))?;
        self.trusted_at(i, now)
    }

    /// The content hash of `path` when its record can be trusted for the stat `now`: same
    /// size, times, inode and mode, and not racy.
    pub fn trusted(&self, path: &[u8], now: &StatKey) -> Option<Hash> {
        self.trusted_at(self.index_of(path)?, now)
    }

    /// True when `key`'s mtime or ctime is too close to (or after) the time this cache was
    /// taken for its stat data to prove the content unchanged. The ctime counts too: a tool
    /// that sets times back (tar, rsync, `cp -a` do, on directories as well as files) leaves
    /// an old mtime on a fresh change, but not an old ctime.
    pub fn is_racy(&self, key: &StatKey) -> bool {
        racy_at(self.written_ns, key)
    }

    /// The file and symlink records to carry into a cache taken at a later time: racy ones
    /// are smudged so that the later time does not make them look trustworthy.
    pub fn carried(&self) -> impl Iterator<Item = Rec> + '_ {
        self.recs().map(|r| self.smudged(r))
    }

    /// [`StatCache::carried`] for the directory records.
    pub fn carried_dirs(&self) -> impl Iterator<Item = Rec> + '_ {
        self.dirs().map(|r| self.smudged(r))
    }

    fn smudged(&self, mut r: Rec) -> Rec {
        if self.is_racy(&r.key) {
            r.key = StatKey::SMUDGED;
        }
        r
    }

    /// The merge of these records, carried (see [`StatCache::carried`]), with `fresh` and
    /// `fresh_dirs` ones (which win), keeping only the file and symlink records whose path
    /// `keep` accepts and the directory records whose path `keep_dir` accepts (`fresh` and
    /// `fresh_dirs` are all kept), ready for [`Merge::write`]. Sorts the fresh records and
    /// counts the merged ones (a walk of the cache's offsets that copies nothing), so that a
    /// command can do that while it waits on something else.
    pub fn merge<K, D>(
        &self,
        keep: K,
        mut fresh: Vec<Rec>,
        keep_dir: D,
        mut fresh_dirs: Vec<Rec>,
    ) -> Merge<'_, K, D>
    where
        K: Fn(&[u8]) -> bool,
        D: Fn(&[u8]) -> bool,
    {
        sort_dedup(&mut fresh);
        sort_dedup(&mut fresh_dirs);
        let counts = self
            .merge_into(&mut Count, &self.offs, &keep, &fresh)
            .and_then(|n| {
                Ok((
                    n,
                    self.merge_into(&mut Count, &self.doffs, &keep_dir, &fresh_dirs)?,
                ))
            });
        Merge {
            cache: self,
            keep,
            fresh,
            keep_dir,
            fresh_dirs,
            counts,
        }
    }

    /// [`StatCache::merge`] written at once: `self.merge(..).write(w, written_ns)`.
    pub fn write_merged(
        &self,
        w: &mut dyn std::io::Write,
        written_ns: i64,
        keep: impl Fn(&[u8]) -> bool,
        fresh: Vec<Rec>,
        keep_dir: impl Fn(&[u8]) -> bool,
        fresh_dirs: Vec<Rec>,
    ) -> std::io::Result<()> {
        self.merge(keep, fresh, keep_dir, fresh_dirs)
            .write(w, written_ns)
    }

    /// Writes the records at `offs` (sorted by path) that `keep` accepts, carried (see
    /// [`StatCache::carried`]), merged in path order with `fresh` (sorted, no duplicate
    /// path), which replace a carried record of the same path. Returns how many it wrote.
    fn merge_into<S: Sink + ?Sized>(
        &self,
        out: &mut S,
        offs: &[u32],
        keep: &impl Fn(&[u8]) -> bool,
        fresh: &[Rec],
    ) -> std::io::Result<u64> {
        let mut n = 0u64;
        let mut fresh = fresh.iter().peekable();
        let mut path = Vec::new();
        for &o in offs {
            let p = self.path_of(o);
            while let Some(f) = fresh.next_if(|f| p.cmp(&f.path).is_gt()) {
                out.rec(&f.path, &fixed(&f.key, &f.hash))?;
                n += 1;
            }
            if fresh.peek().is_some_and(|f| p.cmp(&f.path).is_eq()) {
                continue;
            }
            p.write_into(&mut path);
            if !keep(&path) {
                continue;
            }
            if S::COUNTS_ONLY {
                n += 1;
                continue;
            }
            let (key, hash) = self.rec_of(o);
            if self.is_racy(&key) {
                out.rec(&path, &fixed(&StatKey::SMUDGED, &hash))?;
            } else {
                out.rec(&path, self.fixed_of(o))?;
            }
            n += 1;
        }
        for f in fresh {
            out.rec(&f.path, &fixed(&f.key, &f.hash))?;
            n += 1;
        }
        Ok(n)
    }

    /// Number of directory records.
    pub fn dir_count(&self) -> usize {
        self.doffs.len()
    }

    /// Writes [`StatCache::encode`]'s bytes to `w` record by record, without them in memory.
    pub fn write_encoding(&self, w: &mut dyn std::io::Write) -> std::io::Result<()> {
        let mut header = Vec::with_capacity(32);
        encode_header(
            &mut header,
            self.written_ns,
            self.offs.len() as u64,
            self.doffs.len() as u64,
        );
        w.write_all(&header)?;
        for &o in self.offs.iter().chain(&self.doffs) {
            let p = self.path_of(o);
            w.write_all(&(SortedPath::len(p) as u32).to_le_bytes())?;
            w.write_all(p.dir)?;
            w.write_all(p.name)?;
            w.write_all(self.fixed_of(o))?;
        }
        w.write_all(&encode_trailer(self.blobs_of.as_ref()))
    }

    /// The encoding (see the module's documentation).
    pub fn encode(&self) -> Vec<u8> {
        let len = self
            .offs
            .iter()
            .chain(&self.doffs)
            .fold(32 + TRAILER, |n, &o| {
                n + encoded_rec_len(SortedPath::len(self.path_of(o)))
            });
        let mut out = Vec::with_capacity(len);
        self.write_encoding(&mut out)
            .expect("writing to a Vec does not fail");
        out
    }

    /// Decodes a cache; `None` when the bytes are not a valid cache (callers then treat it as
    /// empty, so everything is rehashed, which is always safe).
    pub fn decode(bytes: &[u8]) -> Option<StatCache> {
        StatCache::read(bytes, bytes.len() as u64).ok().flatten()
    }

    /// Reads a cache's encoding of `size` bytes from `r`, a buffer at a time, into its
    /// compact form: the encoding is never held whole. `Ok(None)` when the bytes are not a
    /// valid cache (see [`StatCache::decode`]); an error when `r` fails.
    pub fn read(r: impl std::io::Read, size: u64) -> std::io::Result<Option<StatCache>> {
        let buf = usize::try_from(size).map_or(READ_BUF, |s| s.saturating_add(1).min(READ_BUF));
        let mut r = std::io::BufReader::with_capacity(buf, r);
        let mut d = Decoder { r: &mut r, size };
        d.cache()
    }
}

/// Bytes read at a time by [`StatCache::read`].
const READ_BUF: usize = 1 << 20;

/// The longest path a record may have.
const MAX_PATH: u64 = 1 << 20;

/// [`StatCache::read`]'s reading: `Ok(None)` for what is not a valid cache.
struct Decoder<'r, R> {
    r: &'r mut R,
    /// The encoding's size: no record can be longer.
    size: u64,
}

impl<R: std::io::Read> Decoder<'_, R> {
    /// Fills `buf`; `false` when the encoding ends first.
    fn take(&mut self, buf: &mut [u8]) -> std::io::Result<bool> {
        match self.r.read_exact(buf) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Ok(false),
            Err(e) => Err(e),
        }
    }

    fn u64(&mut self) -> std::io::Result<Option<u64>> {
        let mut b = [0u8; 8];
        Ok(self.take(&mut b)?.then(|| u64::from_le_bytes(b)))
    }

    fn cache(&mut self) -> std::io::Result<Option<StatCache>> {
        let mut magic = [0u8; 8];
        if !self.take(&mut magic)? || &magic != MAGIC {
            return Ok(None);
        }
        let (Some(written_ns), Some(count), Some(dirs)) = (self.u64()?, self.u64()?, self.u64()?)
        else {
            return Ok(None);
        };
        // Each record takes at least REC_FIXED bytes of the encoding.
        let most = self.size / REC_FIXED as u64;
        if count > most || dirs > most - count {
            return Ok(None);
        }
        // A record takes 2 bytes more held than encoded at most (a name is at most its path;
        // a directory's index and a name's length take 6 bytes, a path's length 4).
        let most_held = self.size.saturating_add(2 * (count + dirs));
        let mut b = Building::new(
            usize::try_from(most_held).unwrap_or(usize::MAX),
            count as usize,
            dirs as usize,
        );
        if !self.records(&mut b, count, false)? || !self.records(&mut b, dirs, true)? {
            return Ok(None);
        }
        let mut trailer = [0u8; TRAILER];
        if !self.take(&mut trailer)? || self.r.read(&mut [0u8; 1])? != 0 {
            return Ok(None);
        }
        Ok(Some(b.finish(written_ns as i64, decode_trailer(&trailer))))
    }

    /// Reads `count` records, strictly sorted by path, into `b`; `false` when they are not
    /// valid.
    fn records(&mut self, b: &mut Building, count: u64, dirs: bool) -> std::io::Result<bool> {
        let (mut path, mut prev) = (Vec::new(), Vec::new());
        let mut fixed = [0u8; FIXED];
        for i in 0..count {
            let mut len = [0u8; 4];
            if !self.take(&mut len)? {
                return Ok(false);
            }
            // (No worktree path is near this long: a longer one is a bad cache, refused
            // before a buffer of its length is made.)
            let len = u32::from_le_bytes(len) as u64;
            if len > self.size || len > MAX_PATH {
                return Ok(false);
            }
            path.resize(len as usize, 0);
            if !self.take(&mut path)? || !self.take(&mut fixed)? {
                return Ok(false);
            }
            if i > 0 && prev >= path {
                return Ok(false);
            }
            if b.push(&path, &fixed, dirs).is_none() {
                return Ok(false);
            }
            std::mem::swap(&mut prev, &mut path);
        }
        Ok(true)
    }
}

/// A [`StatCache`] being built from records in path order (file and symlink records, then
/// directory records).
struct Building {
    c: StatCache,
    /// The directories of the records on the way to the last one (their indices), each
    /// beneath the one before: a directory's records are all together in path order (they
    /// start with its path), so one no longer on the way is never needed again, and each
    /// directory's path is held once (once for the file records, once for the directory
    /// records).
    open: Vec<u32>,
}

impl Building {
    /// A cache for `count` file and symlink records and `dirs` directory records, `bytes`
    /// bytes at most.
    fn new(bytes: usize, count: usize, dirs: usize) -> Building {
        // (Reserved, not written: what the records leave unused is never touched, and is
        // given back when they are all in.)
        // (Sizes from a file that may be damaged: a reservation that cannot be made is not
        // an abort, the buffers then grow as the records come.)
        let mut c = StatCache::default();
        let _ = c.bytes.try_reserve_exact(bytes.min(u32::MAX as usize));
        let _ = c.offs.try_reserve_exact(count);
        let _ = c.doffs.try_reserve_exact(dirs);
        Building {
            c,
            open: Vec::new(),
        }
    }

    fn dir_path(&self, d: u32) -> &[u8] {
        let d = d as usize;
        &self.c.dir_paths[self.c.dir_at[d] as usize..self.c.dir_at[d + 1] as usize]
    }

    /// Adds the record of `path` (after every record before it in path order, of its kind;
    /// directory records after the others); `None` past 4 GiB of records or directory paths,
    /// or with a name past 64 KiB.
    fn push(&mut self, path: &[u8], fixed: &[u8; FIXED], dirs: bool) -> Option<()> {
        if dirs && self.c.doffs.is_empty() {
            self.open.clear();
        }
        let cut = path.iter().rposition(|&c| c == b'/').map_or(0, |k| k + 1);
        let (dir, name) = path.split_at(cut);
        while let Some(&d) = self.open.last() {
            if dir.starts_with(self.dir_path(d)) {
                break;
            }
            self.open.pop();
        }
        let d = match self.open.last() {
            Some(&d) if self.dir_path(d) == dir => d,
            _ => {
                let c = &mut self.c;
                c.dir_paths.extend_from_slice(dir);
                c.dir_at.push(u32::try_from(c.dir_paths.len()).ok()?);
                let d = u32::try_from(c.dir_at.len() - 2).ok()?;
                self.open.push(d);
                d
            }
        };
        let c = &mut self.c;
        let at = u32::try_from(c.bytes.len()).ok()?;
        let n = u16::try_from(name.len()).ok()?;
        if c.bytes.len() + 6 + name.len() + FIXED > u32::MAX as usize {
            return None;
        }
        c.bytes.extend_from_slice(&d.to_le_bytes());
        c.bytes.extend_from_slice(&n.to_le_bytes());
        c.bytes.extend_from_slice(name);
        c.bytes.extend_from_slice(fixed);
        if dirs { &mut c.doffs } else { &mut c.offs }.push(at);
        Some(())
    }

    fn finish(mut self, written_ns: i64, blobs_of: Option<Hash>) -> StatCache {
        self.c.bytes.shrink_to_fit();
        self.c.dir_paths.shrink_to_fit();
        self.c.dir_at.shrink_to_fit();
        self.c.written_ns = written_ns;
        self.c.blobs_of = blobs_of;
        self.c
    }
}

/// A merge of a stat cache's records with fresh ones, counted and not yet written
/// ([`StatCache::merge`]).
#[must_use = "the cache is rewritten only by Merge::write"]
pub struct Merge<'c, K, D> {
    cache: &'c StatCache,
    keep: K,
    fresh: Vec<Rec>,
    keep_dir: D,
    fresh_dirs: Vec<Rec>,
    /// The file and symlink records, and the directory records, it writes (counting fails
    /// nowhere; were it to, the write reports it).
    counts: std::io::Result<(u64, u64)>,
}

impl<K: Fn(&[u8]) -> bool, D: Fn(&[u8]) -> bool> Merge<'_, K, D> {
    /// Writes the merged cache's encoding to `w`, dated `written_ns`, as its records are
    /// merged: the carried ones copied as they are held (a path put together from its
    /// directory's and its name, the stat and hash as encoded; the key smudged where racy),
    /// never decoded one by one, so that a command that changed a few paths of a large
    /// worktree rewrites its cache at the cost of a copy; never held, so that it holds the old
    /// cache only, not the new one beside it.
    pub fn write(self, w: &mut dyn std::io::Write, written_ns: i64) -> std::io::Result<()> {
        let c = self.cache;
        let (count, dirs) = self.counts?;
        let mut header = Vec::with_capacity(32);
        encode_header(&mut header, written_ns, count, dirs);
        w.write_all(&header)?;
        let wrote = (
            c.merge_into(w, &c.offs, &self.keep, &self.fresh)?,
            c.merge_into(w, &c.doffs, &self.keep_dir, &self.fresh_dirs)?,
        );
        if wrote != (count, dirs) {
            // (The same merge of the same records as counted: cannot differ.)
            return Err(std::io::Error::other(
                "stat cache: records changed while merged",
            ));
        }
        w.write_all(&encode_trailer(None))
    }
}

/// Bytes of the trailer.
pub const TRAILER: usize = 32;

/// The trailer naming `blobs_of` (see [`StatCache::blobs_of`]); with [`encode_header`] and
/// [`encode_rec`], it ends an encoded cache.
pub fn encode_trailer(blobs_of: Option<&Hash>) -> [u8; TRAILER] {
    blobs_of.map_or([0; TRAILER], |h| *h.as_bytes())
}

/// The `blobs_of` a trailer names (none when it is all zeros).
pub fn decode_trailer(b: &[u8; TRAILER]) -> Option<Hash> {
    (*b != [0; TRAILER]).then(|| Hash::from_bytes(*b))
}

/// Where [`StatCache::merge_into`] puts records: a writer, or [`Count`] (nothing but their
/// number, which the merge returns).
trait Sink {
    /// True when the records are only counted: a carried record is then not looked at.
    const COUNTS_ONLY: bool = false;
    /// A record of `path` whose stat and hash are encoded as `fixed` ([`FIXED`] bytes).
    fn rec(&mut self, path: &[u8], fixed: &[u8]) -> std::io::Result<()>;
}

impl<W: std::io::Write + ?Sized> Sink for W {
    fn rec(&mut self, path: &[u8], fixed: &[u8]) -> std::io::Result<()> {
        self.write_all(&(path.len() as u32).to_le_bytes())?;
        self.write_all(path)?;
        self.write_all(fixed)
    }
}

/// A [`Sink`] that keeps nothing.
struct Count;

impl Sink for Count {
    const COUNTS_ONLY: bool = true;

    fn rec(&mut self, _: &[u8], _: &[u8]) -> std::io::Result<()> {
        Ok(())
    }
}

/// Walks the indices of `range` (paths beneath a directory, `prefix` bytes of which name the
/// directory) and calls `f` with those of the directory's own entries and their names,
/// skipping over what lies deeper.
fn immediate<'a>(
    range: Range<usize>,
    prefix: usize,
    path: impl Fn(usize) -> Joined<'a>,
    mut f: impl FnMut(usize, &'a [u8]),
) {
    let mut i = range.start;
    while i < range.end {
        let p = path(i);
        match p.dir.get(prefix..).filter(|rest| !rest.is_empty()) {
            // In the directory itself: its name, less what of it `prefix` covers.
            None => {
                f(
                    i,
                    p.name
                        .get(prefix - p.dir.len().min(prefix)..)
                        .unwrap_or_default(),
                );
                i += 1;
            }
            // Deeper, in the subdirectory whose name ends at the next `/` (the directory's
            // path ends with one).
            Some(rest) => {
                let k = rest.iter().position(|&c| c == b'/').unwrap_or(rest.len());
                let sub = &p.dir[..prefix + k];
                // (Galloping from `i`, which is beneath `sub`: a subtree costs about
                // `log2` of its size, not of what is left of the range.)
                let mut near = i;
                i = range_near(i..range.end, &mut near, sub, &path)
                    .end
                    .max(i + 1);
            }
        }
    }
}

/// Bytes of an encoded record, less its path's.
const REC_FIXED: usize = 4 + 8 + 8 + 8 + 8 + 4 + 32;

/// Appends the header of an encoded cache of `count` file and symlink records and `dirs`
/// directory records taken at `written_ns`. With [`encode_rec`] and [`encode_trailer`], for
/// callers that build a cache's encoding directly (the records of each kind strictly sorted
/// by path, or the cache decodes as empty).
pub fn encode_header(out: &mut Vec<u8>, written_ns: i64, count: u64, dirs: u64) {
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&written_ns.to_le_bytes());
    out.extend_from_slice(&count.to_le_bytes());
    out.extend_from_slice(&dirs.to_le_bytes());
}

/// Bytes [`encode_rec`] appends for a record of a `path_len`-byte path.
fn encoded_rec_len(path_len: usize) -> usize {
    REC_FIXED + path_len
}

/// Appends one encoded record.
pub fn encode_rec(out: &mut Vec<u8>, path: &[u8], key: &StatKey, hash: &Hash) {
    out.extend_from_slice(&(path.len() as u32).to_le_bytes());
    out.extend_from_slice(path);
    out.extend_from_slice(&fixed(key, hash));
}

/// A record's bytes after its path.
fn fixed(key: &StatKey, hash: &Hash) -> [u8; FIXED] {
    let mut b = [0u8; FIXED];
    b[..8].copy_from_slice(&key.size.to_le_bytes());
    b[8..16].copy_from_slice(&key.mtime_ns.to_le_bytes());
    b[16..24].copy_from_slice(&key.ctime_ns.to_le_bytes());
    b[24..32].copy_from_slice(&key.ino.to_le_bytes());
    b[32..36].copy_from_slice(&key.mode.to_le_bytes());
    b[36..].copy_from_slice(hash.as_bytes());
    b
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(mtime_ns: i64) -> StatKey {
        StatKey {
            size: 3,
            mtime_ns,
            ctime_ns: mtime_ns,
            ino: 7,
            mode: 0o100644,
        }
    }

    #[test]
    fn encode_decode_round_trip_and_sorted_lookup() {
        let h = Hash::of(b"x");
        let c = StatCache::new(
            5,
            vec![
                Rec {
                    path: b"b".to_vec(),
                    key: key(1),
                    hash: h,
                },
                Rec {
                    path: b"a/c".to_vec(),
                    key: key(2),
                    hash: h,
                },
            ],
        );
        let d = StatCache::decode(&c.encode()).expect("decodes");
        assert_eq!(d.recs().collect::<Vec<_>>(), c.recs().collect::<Vec<_>>());
        assert_eq!(d.written_ns, 5);
        assert_eq!(d.get(b"a/c").map(|r| r.0), Some(key(2)));
        assert!(d.get(b"a").is_none());
    }

    #[test]
    fn written_encoding_is_the_encoding_and_built_to_its_exact_size() {
        let h = Hash::of(b"x");
        let rec = |p: &[u8]| Rec {
            path: p.to_vec(),
            key: key(p.len() as i64),
            hash: h,
        };
        let files = vec![rec(b"a/b/c"), rec(b"a/long-name.rs"), rec(b"z")];
        let dirs = vec![rec(b"a"), rec(b"a/b")];
        let built = StatCache::with_dirs(9, files.clone(), dirs.clone()).encode();
        assert_eq!(built.len(), built.capacity(), "sized exactly");
        assert_eq!(built, encode(9, &files, &dirs), "the records in order");
        let mut caches = vec![
            StatCache::default(),
            StatCache::with_dirs(9, files.clone(), dirs),
            StatCache::new(3, files),
        ];
        // A time set after encoding, and a snapshot named in the trailer.
        caches[1].written_ns = 11;
        caches[2].blobs_of = Some(Hash::of(b"snapshot"));
        for c in &caches {
            let mut written = Vec::new();
            c.write_encoding(&mut written).unwrap();
            assert_eq!(written, c.encode());
            let d = StatCache::decode(&written).expect("decodes");
            assert_eq!(d.written_ns, c.written_ns);
            assert_eq!(d.blobs_of, c.blobs_of);
            assert_eq!(d.recs().collect::<Vec<_>>(), c.recs().collect::<Vec<_>>());
        }
    }

    #[test]
    fn decode_refuses_truncated_trailing_and_unsorted() {
        let h = Hash::of(b"x");
        let rec = |p: &[u8]| Rec {
            path: p.to_vec(),
            key: key(1),
            hash: h,
        };
        let good = StatCache::new(1, vec![rec(b"a"), rec(b"b")]).encode();
        assert!(StatCache::decode(&good[..good.len() - 1]).is_none());
        let mut long = good.clone();
        long.push(0);
        assert!(StatCache::decode(&long).is_none());
        let unsorted = encode(1, &[rec(b"b"), rec(b"a")], &[]);
        assert!(StatCache::decode(&unsorted).is_none());
    }

    /// The encoding of `recs` and `dirs` in the order given (the decoder refuses them
    /// unsorted).
    fn encode(written_ns: i64, recs: &[Rec], dirs: &[Rec]) -> Vec<u8> {
        let mut out = Vec::new();
        encode_header(&mut out, written_ns, recs.len() as u64, dirs.len() as u64);
        for r in recs.iter().chain(dirs) {
            encode_rec(&mut out, &r.path, &r.key, &r.hash);
        }
        out.extend_from_slice(&encode_trailer(None));
        out
    }

    fn rec(path: &[u8], key: StatKey, hash: Hash) -> Rec {
        Rec {
            path: path.to_vec(),
            key,
            hash,
        }
    }

    #[test]
    fn directory_records_round_trip_and_give_a_directory_its_own_entries_only() {
        let t = 100 * 1_000_000_000;
        let old = key(t - 10_000_000_000);
        let h = Hash::of(b"x");
        // `a` holds files `f` and `f-x` and subdirectories `s` and `s0` (whose records sort
        // among and after deeper ones); `a/s` holds a file and a deeper directory; the
        // directory `a-c` sorts between `a` and `a/`.
        let files = [
            &b"a/f"[..],
            b"a/f-x",
            b"a/s/1",
            b"a/s/deep/2",
            b"a/s0/3",
            b"a-b",
            b"a-c/9",
            b"top",
        ];
        let mut recs: Vec<Rec> = files.iter().map(|p| rec(p, old, h)).collect();
        recs.sort_by(|a, b| a.path.cmp(&b.path));
        let dkey = StatKey {
            mode: 0o040755,
            ..old
        };
        let a_hash = names_hash([&b"f"[..], b"f-x"], [&b"s"[..], b"s0"]);
        let dirs = vec![
            rec(
                b"",
                dkey,
                names_hash([&b"a-b"[..], b"top"], [&b"a"[..], b"a-c"]),
            ),
            rec(b"a", dkey, a_hash),
            rec(b"a-c", dkey, names_hash([&b"9"[..]], [])),
            rec(b"a/s", dkey, names_hash([&b"1"[..]], [&b"deep"[..]])),
            rec(b"a/s/deep", dkey, names_hash([&b"2"[..]], [])),
            rec(b"a/s0", dkey, names_hash([&b"3"[..]], [])),
        ];
        let c = StatCache::with_dirs(t, recs.clone(), dirs.clone());
        let d = StatCache::decode(&c.encode()).expect("decodes");
        assert_eq!(d.recs().collect::<Vec<_>>(), recs);
        assert_eq!(d.dirs().collect::<Vec<_>>(), dirs);
        let got = d
            .children(b"a", &dkey, d.range(b"a"), None)
            .expect("trusted");
        let names: Vec<&[u8]> = got.files.iter().map(|&i| d.name_at(i, 2)).collect();
        assert_eq!(names, vec![&b"f"[..], b"f-x"]);
        assert_eq!(got.dirs, vec![&b"s"[..], b"s0"]);
        assert_eq!(got.hash, a_hash);
        let root = d.children(b"", &dkey, d.range(b""), None).expect("trusted");
        assert_eq!(root.dirs, vec![&b"a"[..], b"a-c"]);
        assert_eq!(root.files.len(), 2);
        assert!(
            d.children(b"a/s/deep", &dkey, d.range(b"a/s/deep"), None)
                .is_some()
        );
        // The indices of the subdirectories' records: as hints, they find what a search does;
        // any other hint (another directory's record, none at all) is searched past.
        assert_eq!(got.dir_recs, vec![3, 5]);
        assert_eq!(root.dir_recs, vec![1, 2]);
        for (dir, at) in [(&b"a/s"[..], 3), (b"a/s0", 5), (b"a", 1), (b"a-c", 2)] {
            let want = d.children(dir, &dkey, d.range(dir), None).expect("trusted");
            for hint in [Some(at), Some(0), Some(4), Some(6), Some(usize::MAX)] {
                let got = d.children(dir, &dkey, d.range(dir), hint).expect("trusted");
                assert_eq!(
                    (&got.files, &got.dirs, &got.dir_recs, got.hash),
                    (&want.files, &want.dirs, &want.dir_recs, want.hash),
                    "{} from {hint:?}",
                    String::from_utf8_lossy(dir)
                );
            }
        }
        assert!(
            d.children(b"nope", &dkey, d.range(b"nope"), Some(1))
                .is_none()
        );
        // Another stat, a racy record, or names that no longer hash to the record: listed.
        let other = StatKey {
            ctime_ns: dkey.ctime_ns + 1,
            ..dkey
        };
        assert!(d.children(b"a", &other, d.range(b"a"), None).is_none());
        let racy = StatCache::with_dirs(dkey.mtime_ns + 1, recs.clone(), dirs.clone());
        assert!(racy.children(b"a", &dkey, racy.range(b"a"), None).is_none());
        let fewer: Vec<Rec> = recs
            .iter()
            .filter(|r| r.path != b"a/f-x")
            .cloned()
            .collect();
        let lacking = StatCache::with_dirs(t, fewer, dirs);
        assert!(
            lacking
                .children(b"a", &dkey, lacking.range(b"a"), None)
                .is_none()
        );
        assert!(
            lacking
                .children(b"a/s", &dkey, lacking.range(b"a/s"), None)
                .is_some()
        );
        // No record: listed.
        assert!(d.children(b"nope", &dkey, d.range(b"nope"), None).is_none());
        // A record whose name is `..` (its names hashed as they are): not used as a name.
        let dotdot = vec![rec(b"x/..", old, h)];
        let xdir = vec![rec(b"x", dkey, names_hash([&b".."[..]], []))];
        let bad = StatCache::with_dirs(t, dotdot, xdir);
        assert!(bad.children(b"x", &dkey, bad.range(b"x"), None).is_none());
    }

    #[test]
    fn a_cache_read_in_pieces_across_buffers_is_the_cache_written() {
        let h = Hash::of(b"x");
        // 20,000 records of paths 50 bytes long: an encoding of about 2.4 MB, read a buffer
        // of 1 MiB at a time (records straddle the buffers' ends), and 7 bytes at a time.
        let recs: Vec<Rec> = (0..20_000u32)
            .map(|i| {
                let p = format!(
                    "dir-{:03}/sub-{:02}/file-number-{i:08}-of-the-tree.rs",
                    i % 97,
                    i % 13
                );
                rec(p.as_bytes(), key(i64::from(i)), h)
            })
            .collect();
        let dirs = vec![rec(b"", key(1), h), rec(b"dir-000", key(2), h)];
        let c = StatCache::with_dirs(5, recs, dirs);
        let bytes = c.encode();
        assert!(bytes.len() > 2 * READ_BUF, "{}", bytes.len());
        struct Trickle<'b>(&'b [u8]);
        impl std::io::Read for Trickle<'_> {
            fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
                let n = buf.len().min(7).min(self.0.len());
                buf[..n].copy_from_slice(&self.0[..n]);
                self.0 = &self.0[n..];
                Ok(n)
            }
        }
        for d in [
            StatCache::decode(&bytes).expect("decodes"),
            StatCache::read(Trickle(&bytes), bytes.len() as u64)
                .expect("reading a slice does not fail")
                .expect("decodes"),
        ] {
            assert_eq!(d.recs().collect::<Vec<_>>(), c.recs().collect::<Vec<_>>());
            assert_eq!(d.dirs().collect::<Vec<_>>(), c.dirs().collect::<Vec<_>>());
            assert_eq!(d.encode(), bytes);
        }
        // Told a size too small for its counts, or given more bytes than its size: refused,
        // not a panic; a reader that fails: its error.
        let read =
            |b: &[u8], size| StatCache::read(b, size).expect("reading a slice does not fail");
        assert!(read(&bytes, 1000).is_none());
        let mut more = bytes.clone();
        more.extend_from_slice(&[0; 100]);
        assert!(read(&more, bytes.len() as u64).is_none());
        struct Failing;
        impl std::io::Read for Failing {
            fn read(&mut self, _: &mut [u8]) -> std::io::Result<usize> {
                Err(std::io::Error::other("gone"))
            }
        }
        assert!(StatCache::read(Failing, 100).is_err());
        // A record's path of MAX_PATH bytes (deep, its name short) is read; one byte longer,
        // the cache is refused (before a buffer of the length its record gives is made).
        let one = |len: usize| {
            let mut path = b"d/".repeat(len / 2 - 1);
            path.extend_from_slice(&b"xyz"[..len % 2 + 2]);
            assert_eq!(path.len(), len);
            let mut bytes = Vec::new();
            encode_header(&mut bytes, 5, 1, 0);
            encode_rec(&mut bytes, &path, &key(1), &h);
            bytes.extend_from_slice(&encode_trailer(None));
            (path, StatCache::decode(&bytes))
        };
        let (path, d) = one(MAX_PATH as usize);
        assert_eq!(d.and_then(|d| d.recs().next()).map(|r| r.path), Some(path));
        assert!(one(MAX_PATH as usize + 1).1.is_none());
    }

    fn show(p: &[u8]) -> String {
        String::from_utf8_lossy(p).into_owned()
    }

    #[test]
    fn lookups_in_the_compact_form_are_those_of_whole_paths() {
        // Names made of bytes that sort around `/` (`-`, `.` and `0`), so that a directory's
        // records are interleaved with its siblings' in path order.
        let parts: [&[u8]; 6] = [b"a", b"a-", b"a.b", b"a0", b"ab", b"b"];
        let mut rng = cowtree_testutil::XorShift::new(0x2545_F491_4F6C_DD1D);
        let mut next = move || rng.next_u64();
        let mut paths = std::collections::BTreeSet::new();
        for _ in 0..1500 {
            let depth = 1 + next() % 4;
            let p: Vec<&[u8]> = (0..depth).map(|_| parts[(next() % 6) as usize]).collect();
            paths.insert(p.join(&b'/'));
        }
        // A file's path is never a directory's: drop those that other paths are beneath.
        let files: Vec<Vec<u8>> = paths
            .iter()
            .filter(|q| {
                !paths
                    .iter()
                    .any(|p| p.starts_with(q) && p.get(q.len()) == Some(&b'/'))
            })
            .cloned()
            .collect();
        let mut dirs = std::collections::BTreeSet::new();
        for f in &files {
            for (k, _) in f.iter().enumerate().filter(|(_, c)| **c == b'/') {
                dirs.insert(f[..k].to_vec());
            }
        }
        dirs.insert(Vec::new());
        let t = 100 * 1_000_000_000;
        let old = key(t - 10_000_000_000);
        let h = Hash::of(b"x");
        let recs: Vec<Rec> = files.iter().map(|p| rec(p, old, h)).collect();
        let drecs: Vec<Rec> = dirs.iter().map(|p| rec(p, old, h)).collect();
        let built = StatCache::with_dirs(t, recs.clone(), drecs.clone());
        let c = StatCache::decode(&built.encode()).expect("decodes");
        assert!(
            files.len() > 300 && dirs.len() > 150,
            "{} {}",
            files.len(),
            dirs.len()
        );
        assert_eq!(c.recs().collect::<Vec<_>>(), recs);
        assert_eq!(c.dirs().collect::<Vec<_>>(), drecs);
        // Each directory's path is held once for the file records, once for the directory
        // records (and only the directories that hold records).
        let held: Vec<&[u8]> = (0..c.dir_at.len() - 1)
            .map(|d| &c.dir_paths[c.dir_at[d] as usize..c.dir_at[d + 1] as usize])
            .collect();
        let mut used = 0;
        for offs in [&c.offs, &c.doffs] {
            let of = |&o: &u32| {
                let o = o as usize;
                u32_at(&c.bytes, o) as usize
            };
            let ds: std::collections::BTreeSet<usize> = offs.iter().map(of).collect();
            let ps: std::collections::BTreeSet<&[u8]> = ds.iter().map(|&d| held[d]).collect();
            assert_eq!(ds.len(), ps.len(), "a directory's path held twice");
            used += ds.len();
        }
        assert_eq!(used, held.len(), "a directory's path held for no record");
        assert!(
            held.len() < dirs.len() * 2,
            "{} of {}",
            held.len(),
            dirs.len()
        );
        for (i, whole) in files.iter().enumerate() {
            let p = c.path_at(i);
            for from in 0..=whole.len() + 1 {
                let rest = &whole[from.min(whole.len())..];
                for to in (0..=whole.len() + 1).chain([usize::MAX]) {
                    for other in [rest, b"a", b"a-/", b""] {
                        assert_eq!(
                            p.cmp_range(from, to, other),
                            whole.as_slice().cmp_range(from, to, other),
                            "{} {from}..{to} {}",
                            show(whole),
                            show(other)
                        );
                    }
                }
            }
        }
        let mut probes: Vec<Vec<u8>> = files.iter().chain(&dirs).cloned().collect();
        probes.extend([
            b"a/".to_vec(),
            b"a-/zz".to_vec(),
            b"a.b/a0/".to_vec(),
            b"c".to_vec(),
        ]);
        for q in &probes {
            assert_eq!(c.get(q).is_some(), files.contains(q), "{}", show(q));
            let beneath: Vec<usize> = (0..files.len())
                .filter(|&i| {
                    q.is_empty() || files[i].starts_with(q) && files[i].get(q.len()) == Some(&b'/')
                })
                .collect();
            let r = c.range(q);
            assert_eq!(r.clone().collect::<Vec<_>>(), beneath, "{}", show(q));
            if dirs.contains(q) {
                // Every file of the directory itself, asked in order, found where it is.
                let skip = if q.is_empty() { 0 } else { q.len() + 1 };
                let mut from = r.start;
                for &i in &beneath {
                    let name = &files[i][skip..];
                    if !name.contains(&b'/') {
                        assert_eq!(c.name_at(i, skip), name);
                        let got = c.trusted_child_from(&r, &mut from, q, name, &old);
                        assert_eq!(got, Some(h), "{}", show(&files[i]));
                    }
                }
            }
        }
    }

    #[test]
    fn names_hash_tells_files_from_directories_and_is_the_hash_of_the_names() {
        let f = names_hash([&b"x"[..]], []);
        let d = names_hash([], [&b"x"[..]]);
        assert_ne!(f, d);
        assert_ne!(
            names_hash([&b"ab"[..]], []),
            names_hash([&b"a"[..], b"b"], [])
        );
        assert_eq!(names_hash([&b"a"[..]], [&b"b"[..]]), Hash::of(b"a\0/b\0"));
    }

    #[test]
    fn the_trailer_round_trips_a_merge_drops_it_and_a_version_1_cache_decodes_as_nothing() {
        let empty = StatCache::decode(&StatCache::default().encode()).expect("decodes");
        assert_eq!(
            (empty.len(), empty.dir_count(), empty.blobs_of),
            (0, 0, None)
        );
        let c = StatCache::new(5, Vec::new()).with_blobs_of(Hash::of(b"s"));
        let d = StatCache::decode(&c.encode()).expect("decodes");
        assert_eq!(d.blobs_of, Some(Hash::of(b"s")));
        assert_eq!(
            StatCache::decode(&d.merged_encoding(6, |_| true, Vec::new(), |_| true, Vec::new()))
                .map(|c| c.blobs_of),
            Some(None)
        );
        let mut v1 = b"CTSTAT1\n".to_vec();
        v1.extend_from_slice(&5i64.to_le_bytes());
        v1.extend_from_slice(&0u64.to_le_bytes());
        assert!(StatCache::decode(&v1).is_none());
    }

    impl StatCache {
        /// [`StatCache::write_merged`]'s bytes.
        pub(crate) fn merged_encoding(
            &self,
            written_ns: i64,
            keep: impl Fn(&[u8]) -> bool,
            fresh: Vec<Rec>,
            keep_dir: impl Fn(&[u8]) -> bool,
            fresh_dirs: Vec<Rec>,
        ) -> Vec<u8> {
            let mut out =
                Vec::with_capacity(self.encode().len() + (fresh.len() + fresh_dirs.len()) * 110);
            match self.write_merged(&mut out, written_ns, keep, fresh, keep_dir, fresh_dirs) {
                Ok(()) => out,
                Err(e) => panic!("a Vec takes every write: {e}"),
            }
        }
    }

    /// What [`StatCache::merged_encoding`] must equal: the records decoded, filtered,
    /// carried and merged one by one.
    fn merged_the_slow_way(
        c: &StatCache,
        written_ns: i64,
        keep: impl Fn(&[u8]) -> bool,
        fresh: Vec<Rec>,
        keep_dir: impl Fn(&[u8]) -> bool,
        fresh_dirs: Vec<Rec>,
    ) -> Vec<u8> {
        let mut all: Vec<Rec> = c.carried().filter(|r| keep(&r.path)).collect();
        all.extend(fresh);
        let mut dirs: Vec<Rec> = c.carried_dirs().filter(|r| keep_dir(&r.path)).collect();
        dirs.extend(fresh_dirs);
        StatCache::with_dirs(written_ns, all, dirs).encode()
    }

    /// `n` records of random keys at few distinct paths (so that old and fresh records
    /// collide), with old, racy and whole-second times (so that some are smudged) against
    /// a cache taken at `t`.
    fn records(next: &mut impl FnMut() -> u64, n: u64, t: i64) -> Vec<Rec> {
        (0..n)
            .map(|_| {
                let v = next();
                let path = format!("d{}/f{}", v % 5, (v >> 8) % 13).into_bytes();
                let mtime = match (v >> 20) % 3 {
                    0 => t - 10_000_000_000,
                    1 => t - 1_000,
                    _ => t - 1_000_000_000,
                };
                rec(&path, key(mtime), Hash::of(&v.to_le_bytes()))
            })
            .collect()
    }

    /// A writer taking at most 7 bytes a call, refusing one call once `room` bytes are
    /// written and taking every call after it.
    struct Pieces {
        got: Vec<u8>,
        room: usize,
        refused: bool,
    }

    impl std::io::Write for Pieces {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            let mut n = buf.len().min(7);
            if !self.refused {
                n = n.min(self.room - self.got.len());
                if n == 0 && !buf.is_empty() {
                    self.refused = true;
                    return Err(std::io::Error::other("refused once"));
                }
            }
            self.got.extend_from_slice(&buf[..n]);
            Ok(n)
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn merged_encoding_is_the_record_by_record_merge_byte_for_byte() {
        let t = 100 * 1_000_000_000;
        let mut rng = cowtree_testutil::XorShift::new(0x9E37_79B9_7F4A_7C15);
        let mut next = move || rng.next_u64();
        let (mut smudged, mut replaced) = (0, 0);
        for round in 0..200 {
            let n = next() % 40;
            let old =
                StatCache::with_dirs(t, records(&mut next, n, t), records(&mut next, n / 4, t));
            let k = next() % 10;
            let fresh = records(&mut next, k, t);
            let fresh_paths: Vec<Vec<u8>> = fresh.iter().map(|r| r.path.clone()).collect();
            let k = next() % 3;
            let fresh_dirs = records(&mut next, k, t);
            let cut = (round % 5) as u8;
            let keep = |p: &[u8]| p.get(1) != Some(&(b'0' + cut));
            let keep_dir = |p: &[u8]| p.last() != Some(&(b'0' + cut));
            let later = t + 5_000_000_000;
            let got = old.merged_encoding(later, keep, fresh.clone(), keep_dir, fresh_dirs.clone());
            let want = merged_the_slow_way(&old, later, keep, fresh, keep_dir, fresh_dirs);
            assert_eq!(got, want, "round {round}");
            let d = StatCache::decode(&got).expect("decodes");
            assert_eq!(d.written_ns, later);
            smudged += usize::from(d.recs().any(|r| r.key == StatKey::SMUDGED));
            replaced += usize::from(fresh_paths.iter().any(|p| old.get(p).is_some()));
        }
        // The cases that matter were met: carried records smudged, old ones replaced.
        assert!(smudged > 20 && replaced > 20, "{smudged} {replaced}");
        // Written through a writer in small pieces, the same bytes; a write refused part way
        // (even one the writer would take again) makes the whole write fail.
        let old = StatCache::with_dirs(t, records(&mut next, 30, t), records(&mut next, 8, t));
        let fresh = records(&mut next, 6, t);
        let want = old.merged_encoding(t, |_| true, fresh.clone(), |_| true, Vec::new());
        let mut pieces = Pieces {
            got: Vec::new(),
            room: usize::MAX,
            refused: false,
        };
        old.write_merged(
            &mut pieces,
            t,
            |_| true,
            fresh.clone(),
            |_| true,
            Vec::new(),
        )
        .expect("written");
        assert_eq!(pieces.got, want);
        for room in 0..want.len() {
            let mut pieces = Pieces {
                got: Vec::new(),
                room,
                refused: false,
            };
            let r = old.write_merged(
                &mut pieces,
                t,
                |_| true,
                fresh.clone(),
                |_| true,
                Vec::new(),
            );
            assert!(r.is_err(), "room {room} of {}", want.len());
        }
    }

    #[test]
    fn racy_rule_uses_fine_or_coarse_granularity() {
        let t = 100 * 1_000_000_000;
        let c = StatCache::new(t, Vec::new());
        // Sub-second mtimes: racy within 50 ms of the cache time.
        assert!(!c.is_racy(&key(t - FINE_GRANULARITY_NS - 1)));
        assert!(c.is_racy(&key(t - FINE_GRANULARITY_NS + 1)));
        assert!(c.is_racy(&key(t + 5)));
        // Whole-second mtimes: racy within 2 s.
        assert!(c.is_racy(&key(t - 1_000_000_000)));
        assert!(!c.is_racy(&key(t - 3_000_000_000)));
        // An old mtime with a recent ctime (times set back after a change): racy.
        let set_back = StatKey {
            ctime_ns: t - 1,
            ..key(t - 10_000_000_001)
        };
        assert!(c.is_racy(&set_back));
    }

    #[test]
    fn the_time_after_own_writes_is_past_the_newest_write_and_later_file_times() {
        // A write stamped in the current tick: the reference waits for the next one, so that
        // the record is trusted, and any later change is stamped at or after it.
        let latest = coarse_now_ns();
        let w = written_ns_after_own_writes(latest);
        let reference = w - FINE_GRANULARITY_NS;
        assert!(reference > latest, "{reference} <= {latest}");
        assert!(!racy_at(w, &key(latest)));
        assert!(racy_at(w, &key(reference)));
        let f = tempfile::NamedTempFile::new().expect("temp file");
        std::fs::write(f.path(), b"changed after").expect("write");
        let st = rustix::fs::stat(f.path()).expect("stat");
        let k = StatKey::of(&st);
        assert!(k.mtime_ns >= reference && k.ctime_ns >= reference, "{k:?}");
        assert!(racy_at(w, &k) || coarse_time(k.mtime_ns));
        // A time far ahead (another clock) is not waited for: it stays racy.
        let ahead = coarse_now_ns() + 60_000_000_000;
        let t = std::time::Instant::now();
        assert!(racy_at(written_ns_after_own_writes(ahead), &key(ahead)));
        assert!(t.elapsed() < std::time::Duration::from_millis(50));
    }

    #[test]
    fn smudge_racy_and_latest_fine_time_look_at_mtime_ctime_and_whole_seconds() {
        let t = 100 * 1_000_000_000 + 500_000_000;
        let h = Hash::of(b"x");
        let old = key(t - 60_000_000);
        let fresh = StatKey {
            ctime_ns: t - 1,
            ..old
        };
        let whole = key(102 * 1_000_000_000);
        let recs = vec![rec(b"old", old, h), rec(b"fresh", fresh, h)];
        let got = smudge_racy(t, recs);
        assert_eq!(got[0].key, old);
        assert_eq!(got[1].key, StatKey::SMUDGED);
        assert_eq!(latest_fine_time(&got[..1]), old.mtime_ns);
        let both = [rec(b"a", old, h), rec(b"b", fresh, h), rec(b"c", whole, h)];
        assert_eq!(latest_fine_time(&both), fresh.ctime_ns);
        assert_eq!(latest_fine_time(&both[2..]), i64::MIN);
    }

    #[test]
    fn trusted_needs_same_stat_and_not_racy_and_carried_smudges_racy() {
        let t = 100 * 1_000_000_000;
        let h = Hash::of(b"x");
        let old = key(t - 10_000_000_001);
        let fresh = key(t - 1);
        let c = StatCache::new(
            t,
            vec![
                Rec {
                    path: b"old".to_vec(),
                    key: old,
                    hash: h,
                },
                Rec {
                    path: b"fresh".to_vec(),
                    key: fresh,
                    hash: h,
                },
            ],
        );
        assert_eq!(c.trusted(b"old", &old), Some(h));
        let mut other = old;
        other.ctime_ns += 1;
        assert_eq!(c.trusted(b"old", &other), None);
        assert_eq!(c.trusted(b"fresh", &fresh), None);
        let carried: Vec<Rec> = c.carried().collect();
        let f = carried.iter().find(|r| r.path == b"fresh").expect("kept");
        assert_eq!(f.key, StatKey::SMUDGED);
        let o = carried.iter().find(|r| r.path == b"old").expect("kept");
        assert_eq!(o.key, old);
    }
}
