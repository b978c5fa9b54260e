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
//! On Windows a record's stat is what a handle says of the entry: the size, the last write
//! time (`mtime`), the change time (`ctime`: NTFS's `ChangeTime`, which any write of data or
//! metadata moves), the file id folded to 64 bits (`ino`) and the mode the attributes amount
//! to (only the read-only bit). That is more than git for Windows compares (its `lstat` gives
//! no inode and takes the creation time as `ctime`), and the racy rule is the same, against a
//! lower bound of the clock file times are stamped from ([`coarse_now_ns`]).
//!
//! Directory records rest on one more rule, which the filesystems cowtree trusts them on keep
//! (see [`crate::scan`]): creating, removing or renaming an entry updates the directory's
//! mtime and ctime. So a directory whose stat equals its record, and is not racy, has the
//! entries it had then; they are taken from the records beneath it, and only when their names
//! hash to the directory record's hash (else the directory is listed).

use std::ops::Range;

use cowtree_fs::dir::Stat;
use cowtree_store::Hash;
use cowtree_store::checkout::EntryStat;
use cowtree_store::manifest::{SortedPath, cmp_pieces, find_child_from, range_in, range_near};

mod decode;
mod encode;

use decode::{Building, Decoder, READ_BUF};
use encode::{Count, REC_FIXED, Sink, encoded_rec_len, fixed, immediate};
pub use encode::{Merge, TRAILER, decode_trailer, encode_header, encode_rec, encode_trailer};

#[cfg(test)]
#[path = "cache_tests.rs"]
mod tests;

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
#[cfg(all(unix, not(target_os = "linux")))]
const COARSE_REALTIME: rustix::time::ClockId = rustix::time::ClockId::Realtime;

/// The coarse realtime clock (what the kernel stamps file times from), ns since the epoch.
#[cfg(unix)]
pub fn coarse_now_ns() -> i64 {
    let t = rustix::time::clock_gettime(COARSE_REALTIME);
    t.tv_sec
        .saturating_mul(1_000_000_000)
        .saturating_add(t.tv_nsec as i64)
}

/// A lower bound of the clock file times are stamped from, ns since the epoch: on Windows the
/// precise clock ([`now_ns`]) less [`MAX_STAMP_LAG_NS`]. NTFS stamps times from the system
/// time as of the last clock tick (a tick is at most 15.625 ms), and where the filesystem is
/// another system's (Wine: the Linux kernel's coarse clock, 4 or 10 ms ticks) the stamping
/// clock may be neither that one nor `GetSystemTimeAsFileTime`'s: a reading ahead of it would
/// trust the record of a file written in the current tick, which a later write in the same
/// tick leaves with the same times (seen under Wine, with `GetSystemTimeAsFileTime`). A
/// reading a tick behind costs [`written_ns_after_own_writes`] a wait of up to a tick.
#[cfg(windows)]
pub fn coarse_now_ns() -> i64 {
    now_ns().saturating_sub(MAX_STAMP_LAG_NS)
}

/// How far behind the precise clock the clock file times are stamped from may be on Windows:
/// one tick of the system timer at its coarsest (15.625 ms), rounded up.
#[cfg(windows)]
pub const MAX_STAMP_LAG_NS: i64 = 16_000_000;

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
