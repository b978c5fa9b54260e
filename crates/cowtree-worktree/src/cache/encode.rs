//! Writing a stat cache: the merge of carried and fresh records, and the encoding.

use super::*;

/// A merge of a stat cache's records with fresh ones, counted and not yet written
/// ([`StatCache::merge`]).
#[must_use = "the cache is rewritten only by Merge::write"]
pub struct Merge<'c, K, D> {
    pub(super) cache: &'c StatCache,
    pub(super) keep: K,
    pub(super) fresh: Vec<Rec>,
    pub(super) keep_dir: D,
    pub(super) fresh_dirs: Vec<Rec>,
    /// The file and symlink records, and the directory records, it writes (counting fails
    /// nowhere; were it to, the write reports it).
    pub(super) counts: std::io::Result<(u64, u64)>,
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
pub(super) trait Sink {
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
pub(super) struct Count;

impl Sink for Count {
    const COUNTS_ONLY: bool = true;

    fn rec(&mut self, _: &[u8], _: &[u8]) -> std::io::Result<()> {
        Ok(())
    }
}

/// Walks the indices of `range` (paths beneath a directory, `prefix` bytes of which name the
/// directory) and calls `f` with those of the directory's own entries and their names,
/// skipping over what lies deeper.
pub(super) fn immediate<'a>(
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
pub(super) const REC_FIXED: usize = 4 + 8 + 8 + 8 + 8 + 4 + 32;

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
pub(super) fn encoded_rec_len(path_len: usize) -> usize {
    REC_FIXED + path_len
}

/// Appends one encoded record.
pub fn encode_rec(out: &mut Vec<u8>, path: &[u8], key: &StatKey, hash: &Hash) {
    out.extend_from_slice(&(path.len() as u32).to_le_bytes());
    out.extend_from_slice(path);
    out.extend_from_slice(&fixed(key, hash));
}

/// A record's bytes after its path.
pub(super) fn fixed(key: &StatKey, hash: &Hash) -> [u8; FIXED] {
    let mut b = [0u8; FIXED];
    b[..8].copy_from_slice(&key.size.to_le_bytes());
    b[8..16].copy_from_slice(&key.mtime_ns.to_le_bytes());
    b[16..24].copy_from_slice(&key.ctime_ns.to_le_bytes());
    b[24..32].copy_from_slice(&key.ino.to_le_bytes());
    b[32..36].copy_from_slice(&key.mode.to_le_bytes());
    b[36..].copy_from_slice(hash.as_bytes());
    b
}
