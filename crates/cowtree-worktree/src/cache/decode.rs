//! Reading a stat cache from its encoding, a buffer at a time.

use super::*;

/// Bytes read at a time by [`StatCache::read`].
pub(super) const READ_BUF: usize = 1 << 20;

/// The longest path a record may have.
pub(super) const MAX_PATH: u64 = 1 << 20;

/// [`StatCache::read`]'s reading: `Ok(None)` for what is not a valid cache.
pub(super) struct Decoder<'r, R> {
    pub(super) r: &'r mut R,
    /// The encoding's size: no record can be longer.
    pub(super) size: u64,
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

    pub(super) fn cache(&mut self) -> std::io::Result<Option<StatCache>> {
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
pub(super) struct Building {
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
    pub(super) fn new(bytes: usize, count: usize, dirs: usize) -> Building {
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
    pub(super) fn push(&mut self, path: &[u8], fixed: &[u8; FIXED], dirs: bool) -> Option<()> {
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

    pub(super) fn finish(mut self, written_ns: i64, blobs_of: Option<Hash>) -> StatCache {
        self.c.bytes.shrink_to_fit();
        self.c.dir_paths.shrink_to_fit();
        self.c.dir_at.shrink_to_fit();
        self.c.written_ns = written_ns;
        self.c.blobs_of = blobs_of;
        self.c
    }
}
