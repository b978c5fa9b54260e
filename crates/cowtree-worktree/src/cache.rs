//! The stat cache: for each file and symlink of a worktree as last seen, its `lstat` data and
//! the BLAKE3 hash of its content (a symlink: of its target), so that status and snapshot read
//! only files whose stat changed.
//!
//! It lives in the store (`worktrees/<id>.stat`), never in the worktree, and is replaced
//! atomically. Encoding, version 1 (little-endian):
//!
//! ```text
//! header  "CTSTAT1\n", written_ns i64 (clock before the stats were taken), count u64
//! record  path length u32, path bytes, size u64, mtime_ns i64, ctime_ns i64, ino u64,
//!         mode u32, hash 32 bytes
//! ```
//! Records are sorted by path bytes.
//!
//! Racy timestamps (as in git): a file written in the same clock tick as the stat was taken
//! can change again without its mtime changing. A record is trusted only when its mtime is
//! older than `written_ns` minus the timestamp granularity: 50 ms when the filesystem keeps
//! sub-second times (the kernel's coarse clock lags by at most a tick), 2 s when the mtime has
//! no sub-second part (filesystems with 1 s or 2 s times). Other records are rehashed.

use cowtree_store::Hash;
use rustix::fs::Stat;

const MAGIC: &[u8; 8] = b"CTSTAT1\n";
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
        StatKey {
            size: st.st_size as u64,
            mtime_ns: st.st_mtime.saturating_mul(1_000_000_000) + st.st_mtime_nsec as i64,
            ctime_ns: st.st_ctime.saturating_mul(1_000_000_000) + st.st_ctime_nsec as i64,
            ino: st.st_ino,
            mode: st.st_mode,
        }
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

/// A decoded stat cache: the encoded bytes and the offset of each record, so that loading
/// one allocates twice, not once per record.
#[derive(Debug, Clone)]
pub struct StatCache {
    /// Clock (ns since the epoch) read before the stats of this cache were taken.
    pub written_ns: i64,
    bytes: Vec<u8>,
    offs: Vec<u32>,
}

impl Default for StatCache {
    fn default() -> StatCache {
        StatCache::new(0, Vec::new())
    }
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

fn le64(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(
        b[at..at + 8]
            .try_into()
            .expect("8 bytes, bounds checked at decode"),
    )
}

impl StatCache {
    /// A cache from records in any order (sorted here; the last of duplicate paths wins).
    pub fn new(written_ns: i64, mut recs: Vec<Rec>) -> StatCache {
        recs.sort_by(|a, b| a.path.cmp(&b.path));
        recs.dedup_by(|later, earlier| {
            if later.path == earlier.path {
                std::mem::swap(later, earlier);
                true
            } else {
                false
            }
        });
        StatCache::decode_owned(encode(written_ns, &recs)).expect("an encoded cache decodes")
    }

    /// Number of records.
    pub fn len(&self) -> usize {
        self.offs.len()
    }

    /// True when there is no record.
    pub fn is_empty(&self) -> bool {
        self.offs.is_empty()
    }

    fn path_at(&self, i: usize) -> &[u8] {
        let o = self.offs[i] as usize;
        let len = u32::from_le_bytes(
            self.bytes[o..o + 4]
                .try_into()
                .expect("4 bytes, bounds checked at decode"),
        ) as usize;
        &self.bytes[o + 4..o + 4 + len]
    }

    fn rec_at(&self, i: usize) -> (StatKey, Hash) {
        let o = self.offs[i] as usize;
        let b = &self.bytes;
        let f = o + 4 + self.path_at(i).len();
        let key = StatKey {
            size: le64(b, f),
            mtime_ns: le64(b, f + 8) as i64,
            ctime_ns: le64(b, f + 16) as i64,
            ino: le64(b, f + 24),
            mode: u32::from_le_bytes(b[f + 32..f + 36].try_into().expect("bounds checked")),
        };
        let hash = Hash::from_slice(&b[f + 36..f + 68]).expect("32 bytes, bounds checked");
        (key, hash)
    }

    /// Every record, sorted by path.
    pub fn recs(&self) -> impl Iterator<Item = Rec> + '_ {
        (0..self.len()).map(|i| {
            let (key, hash) = self.rec_at(i);
            Rec {
                path: self.path_at(i).to_vec(),
                key,
                hash,
            }
        })
    }

    /// The stat data and content hash recorded for `path`.
    pub fn get(&self, path: &[u8]) -> Option<(StatKey, Hash)> {
        let i = self
            .offs
            .binary_search_by(|&o| {
                let o = o as usize;
                let len =
                    u32::from_le_bytes(self.bytes[o..o + 4].try_into().expect("bounds checked"))
                        as usize;
                self.bytes[o + 4..o + 4 + len].cmp(path)
            })
            .ok()?;
        Some(self.rec_at(i))
    }

    /// The indices of the records beneath directory `dir`.
    pub fn range(&self, dir: &[u8]) -> std::ops::Range<usize> {
        crate::base::range_of(self.offs.len(), dir, |i| self.path_at(i))
    }

    /// [`StatCache::range`] of `dir`, searching only `within` (the range of an ancestor).
    pub fn range_in(&self, within: std::ops::Range<usize>, dir: &[u8]) -> std::ops::Range<usize> {
        crate::base::range_in(within, dir, |i| self.path_at(i))
    }

    /// [`StatCache::trusted`] for `dir/name`, searching only `range` (from
    /// [`StatCache::range`] of `dir`).
    pub fn trusted_child(
        &self,
        range: &std::ops::Range<usize>,
        dir: &[u8],
        name: &[u8],
        now: &StatKey,
    ) -> Option<Hash> {
        let i = crate::base::find_child(range, dir, name, |i| self.path_at(i))?;
        let (key, hash) = self.rec_at(i);
        if key != *now || self.is_racy(&key) {
            return None;
        }
        Some(hash)
    }

    /// The content hash of `path` when its record can be trusted for the stat `now`: same
    /// size, times, inode and mode, and not racy.
    pub fn trusted(&self, path: &[u8], now: &StatKey) -> Option<Hash> {
        let (key, hash) = self.get(path)?;
        if key != *now || self.is_racy(&key) {
            return None;
        }
        Some(hash)
    }

    /// True when `key`'s mtime is too close to (or after) the time this cache was taken for
    /// its stat data to prove the content unchanged.
    pub fn is_racy(&self, key: &StatKey) -> bool {
        let g = if key.mtime_ns.rem_euclid(1_000_000_000) == 0 {
            COARSE_GRANULARITY_NS
        } else {
            FINE_GRANULARITY_NS
        };
        key.mtime_ns >= self.written_ns.saturating_sub(g)
    }

    /// The records to carry into a cache taken at a later time: racy ones are smudged so
    /// that the later time does not make them look trustworthy.
    pub fn carried(&self) -> impl Iterator<Item = Rec> + '_ {
        self.recs().map(|mut r| {
            if self.is_racy(&r.key) {
                r.key = StatKey::SMUDGED;
            }
            r
        })
    }

    /// These records carried to time `written_ns` and then `fresh` ones (which win).
    pub fn merged(&self, written_ns: i64, fresh: Vec<Rec>) -> StatCache {
        let mut all: Vec<Rec> = self.carried().collect();
        all.extend(fresh);
        StatCache::new(written_ns, all)
    }

    /// The encoding.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = self.bytes.clone();
        out[8..16].copy_from_slice(&self.written_ns.to_le_bytes());
        out
    }

    /// Decodes a cache; `None` when the bytes are not a valid cache (callers then treat it as
    /// empty, so everything is rehashed, which is always safe).
    pub fn decode(bytes: &[u8]) -> Option<StatCache> {
        StatCache::decode_owned(bytes.to_vec())
    }

    /// [`StatCache::decode`] keeping the buffer.
    pub fn decode_owned(bytes: Vec<u8>) -> Option<StatCache> {
        let (written_ns, offs) = StatCache::index(&bytes)?;
        Some(StatCache {
            written_ns,
            bytes,
            offs,
        })
    }

    fn index(bytes: &[u8]) -> Option<(i64, Vec<u32>)> {
        let mut r = Reader { b: bytes, pos: 0 };
        if r.take(8)? != MAGIC {
            return None;
        }
        let written_ns = r.u64()? as i64;
        let count = r.u64()?;
        let mut offs = Vec::with_capacity((count as usize).min(bytes.len() / (FIXED + 4)));
        let mut prev: Option<&[u8]> = None;
        for _ in 0..count {
            let at = u32::try_from(r.pos).ok()?;
            let len = r.u32()? as usize;
            let path = r.take(len)?;
            r.take(FIXED)?;
            if prev.is_some_and(|p| p >= path) {
                return None;
            }
            prev = Some(path);
            offs.push(at);
        }
        if r.pos != bytes.len() {
            return None;
        }
        Some((written_ns, offs))
    }
}

fn encode(written_ns: i64, recs: &[Rec]) -> Vec<u8> {
    let mut out = Vec::with_capacity(24 + recs.len() * 110);
    encode_header(&mut out, written_ns, recs.len() as u64);
    for r in recs {
        encode_rec(&mut out, &r.path, &r.key, &r.hash);
    }
    out
}

/// Appends the header of an encoded cache of `count` records taken at `written_ns`. With
/// [`encode_rec`], for callers that build a cache's encoding directly (records strictly
/// sorted by path, or the cache decodes as empty).
pub fn encode_header(out: &mut Vec<u8>, written_ns: i64, count: u64) {
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&written_ns.to_le_bytes());
    out.extend_from_slice(&count.to_le_bytes());
}

/// Appends one encoded record.
pub fn encode_rec(out: &mut Vec<u8>, path: &[u8], key: &StatKey, hash: &Hash) {
    out.extend_from_slice(&(path.len() as u32).to_le_bytes());
    out.extend_from_slice(path);
    out.extend_from_slice(&key.size.to_le_bytes());
    out.extend_from_slice(&key.mtime_ns.to_le_bytes());
    out.extend_from_slice(&key.ctime_ns.to_le_bytes());
    out.extend_from_slice(&key.ino.to_le_bytes());
    out.extend_from_slice(&key.mode.to_le_bytes());
    out.extend_from_slice(hash.as_bytes());
}

struct Reader<'a> {
    b: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.pos.checked_add(n)?;
        let s = self.b.get(self.pos..end)?;
        self.pos = end;
        Some(s)
    }
    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?))
    }
    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }
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
        let unsorted = encode(1, &[rec(b"b"), rec(b"a")]);
        assert!(StatCache::decode(&unsorted).is_none());
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
