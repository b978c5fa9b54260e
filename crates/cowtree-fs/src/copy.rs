//! Copying file data between open files, two ways:
//!
//! - [`copy_fd_unshared`]: the destination gets data blocks of its own, never shared with the
//!   source: what a caller asking for a copy wants (a later `dedupe` or a write to one file
//!   must find two independent files). `sendfile` on Linux (an in-kernel copy through the page
//!   cache), read/write where that is refused and on macOS.
//! - [`copy_fd`] / [`copy_fd_remembering`]: in-kernel `copy_file_range` where it works,
//!   read/write otherwise. On XFS and btrfs the kernel may satisfy `copy_file_range` by
//!   sharing extents (a reflink inside the kernel: `filefrag` shows them shared), so this is
//!   for a copy made because a clone was impossible (another filesystem, one that cannot
//!   reflink), where nothing can be shared anyway.
//!
//! Both keep a sparse source's holes, as `cp --sparse=auto` (its default) does: where the
//! source has fewer blocks than its size needs ([`may_have_holes`], the test `cp` makes on the
//! `fstat` it already has, so a dense file costs no call more), its runs of data are found with
//! `lseek(SEEK_DATA/SEEK_HOLE)` and each is copied to the same offset of the destination,
//! whose size is then set with `ftruncate` (a trailing hole stays a hole). Runs of zeros that
//! are data in the source stay data. A source whose filesystem cannot tell data from holes
//! (`SEEK_DATA` refused with `EINVAL`) is copied whole, as before. A source that shrinks while
//! it is copied ends the copy at its new end, as a dense copy would end at end of file; data
//! that appears past the last run is copied too.

use std::io;
use std::os::fd::{AsFd, BorrowedFd};
use std::sync::atomic::{AtomicU8, Ordering};

use rustix::fs::{SeekFrom, Stat, fstat, ftruncate, seek};
use rustix::io::Errno;

/// Chunks stay well under 2 GiB: some glibc and kernel versions mishandled larger ranges.
const MAX_CHUNK: usize = 1 << 30;
const BUF: usize = 256 * 1024;

/// Copies everything from the current offset of `src` to end of file into `dst` (from its
/// current offset), keeping holes (see the module doc), and returns the length copied, holes
/// included. `src` is `fstat`ed once to see whether it may have holes; a caller holding its
/// `fstat` calls [`copy_fd_remembering`]. Errors (ENOSPC, EIO, ...) are returned as they are.
pub fn copy_fd(src: impl AsFd, dst: impl AsFd) -> io::Result<u64> {
    let st = fstat(src.as_fd())?;
    copy_fd_remembering(src, &st, dst, &CopyRange::new())
}

/// Whether a file whose `fstat` is `st` may have holes: it has fewer 512-byte blocks than its
/// size needs (`cp`'s test). A compressed or inline file may pass it too; the copy then finds
/// it all data.
pub fn may_have_holes(st: &Stat) -> bool {
    (st.st_blocks as u64) < (st.st_size as u64) / 512
}

/// Whether `copy_file_range` works for one (source filesystem, destination filesystem) pair.
/// A caller copying many files between the same two filesystems keeps one and passes it to
/// [`copy_fd_remembering`]: after the first file for which the kernel refuses the call for the
/// pair (EXDEV, ENOSYS, EOPNOTSUPP), later files go straight to read/write instead of failing
/// the call again for every file.
#[derive(Debug, Default)]
pub struct CopyRange(AtomicU8);

const RANGE_UNKNOWN: u8 = 0;
const RANGE_WORKS: u8 = 1;
const RANGE_REFUSED: u8 = 2;

impl CopyRange {
    /// Not tried yet.
    pub fn new() -> CopyRange {
        CopyRange(AtomicU8::new(RANGE_UNKNOWN))
    }

    /// True once the kernel refused `copy_file_range` for the pair.
    pub fn refused(&self) -> bool {
        self.0.load(Ordering::Relaxed) == RANGE_REFUSED
    }

    /// True once `copy_file_range` has copied data for the pair.
    pub fn works(&self) -> bool {
        self.0.load(Ordering::Relaxed) == RANGE_WORKS
    }
}

/// [`copy_fd`] of the source whose `fstat` (taken since it was opened) is `st`, skipping
/// `copy_file_range` when `memo` says the pair refuses it, and telling `memo` what the kernel
/// said. Only pair-wide refusals are remembered: EINVAL and EPERM may be about one file (e.g.
/// a file opened for append, an immutable file) and are retried for the next.
pub fn copy_fd_remembering(
    src: impl AsFd,
    st: &Stat,
    dst: impl AsFd,
    memo: &CopyRange,
) -> io::Result<u64> {
    let (src, dst) = (src.as_fd(), dst.as_fd());
    let way = if memo.refused() {
        Way::ReadWrite
    } else {
        Way::Range
    };
    if may_have_holes(st)
        && let Some(n) = copy_keeping_holes(src, dst, way, Some(memo))?
    {
        return Ok(n);
    }
    if memo.refused() {
        return copy_rw(src, dst);
    }
    let mut total = 0u64;
    loop {
        match crate::sys::copy_file_range(src, dst, MAX_CHUNK) {
            Ok(0) => return Ok(total),
            Ok(n) => {
                if total == 0 && !memo.works() {
                    memo.0.store(RANGE_WORKS, Ordering::Relaxed);
                }
                total += n as u64;
            }
            // Not available for this pair (old kernel, another filesystem type, some
            // filesystems): carry on with read/write from where the kernel stopped.
            Err(
                e @ (Errno::XDEV | Errno::NOSYS | Errno::OPNOTSUPP | Errno::INVAL | Errno::PERM),
            ) if total == 0 => {
                if matches!(e, Errno::XDEV | Errno::NOSYS | Errno::OPNOTSUPP) {
                    memo.0.store(RANGE_REFUSED, Ordering::Relaxed);
                }
                return copy_rw(src, dst).map(|n| total + n);
            }
            Err(Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

/// Copies everything from the current offset of `src` (whose `fstat`, taken since it was
/// opened, is `st`) to end of file into `dst` as new data (see the module doc), keeping holes:
/// `sendfile` in chunks, or read/write when the kernel refuses it for this pair (EINVAL,
/// ENOSYS, EOPNOTSUPP before anything was copied) and on macOS. Returns the length copied,
/// holes included; other errors (ENOSPC, EIO, ...) are returned as they are.
pub fn copy_fd_unshared(src: impl AsFd, st: &Stat, dst: impl AsFd) -> io::Result<u64> {
    let (src, dst) = (src.as_fd(), dst.as_fd());
    if may_have_holes(st)
        && let Some(n) = copy_keeping_holes(src, dst, Way::Send, None)?
    {
        return Ok(n);
    }
    let mut total = 0u64;
    loop {
        match crate::sys::sendfile(src, dst, MAX_CHUNK) {
            Ok(0) => return Ok(total),
            Ok(n) => total += n as u64,
            Err(Errno::INVAL | Errno::NOSYS | Errno::OPNOTSUPP) if total == 0 => {
                return copy_rw(src, dst);
            }
            Err(Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

fn copy_rw(src: BorrowedFd<'_>, dst: BorrowedFd<'_>) -> io::Result<u64> {
    use rustix::io::{read, write};
    let mut buf = vec![0u8; BUF];
    let mut total = 0u64;
    loop {
        let n = match read(src, &mut buf) {
            Ok(0) => return Ok(total),
            Ok(n) => n,
            Err(Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        };
        let mut off = 0;
        while off < n {
            match write(dst, &buf[off..n]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(w) => off += w,
                Err(Errno::INTR) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        total += n as u64;
    }
}

/// Copies from the current offset of `src` to its end into `dst` from its current offset,
/// keeping holes (see the module doc): each run of data that `SEEK_DATA`/`SEEK_HOLE` find is
/// copied `way` to the same place in `dst`, whose size is then set. Returns the length copied
/// (holes included), or `None`, having copied nothing, when the source's filesystem cannot
/// tell data from holes: the caller copies it whole. The descriptors' offsets are left
/// anywhere.
fn copy_keeping_holes(
    src: BorrowedFd<'_>,
    dst: BorrowedFd<'_>,
    way: Way,
    memo: Option<&CopyRange>,
) -> io::Result<Option<u64>> {
    let start = seek(src, SeekFrom::Current(0))?;
    let dst_start = seek(dst, SeekFrom::Current(0))?;
    let mut runs = Runs {
        src,
        dst,
        start,
        dst_start,
        way,
        memo,
        moved: false,
        buf: Vec::new(),
    };
    // Where to look for data next, and the end of the data copied so far.
    let (mut pos, mut copied) = (start, start);
    let end = loop {
        let data = match seek(src, SeekFrom::Data(pos)) {
            Ok(data) => data,
            // No data at or past `pos`: the rest is a hole to the end of file, unless data
            // came meanwhile (a writer appending), which is then copied too.
            Err(Errno::NXIO) => {
                let end = seek(src, SeekFrom::End(0))?;
                match seek(src, SeekFrom::Data(pos)) {
                    Ok(data) => data,
                    // (A source that shrank below what was copied ends there.)
                    Err(Errno::NXIO) => break end.max(copied),
                    Err(e) => return Err(e.into()),
                }
            }
            Err(e) if no_seek_data(e) && pos == start && copied == start => return Ok(None),
            // Refused after it worked (cannot happen on one file, but never guess): the rest
            // is copied as data.
            Err(e) if no_seek_data(e) => break runs.copy(pos, None)?.max(copied),
            Err(e) => return Err(e.into()),
        };
        let hole = match seek(src, SeekFrom::Hole(data)) {
            Ok(hole) => hole,
            // The source shrank below `data` meanwhile: looked at again from there.
            Err(Errno::NXIO) => {
                pos = data;
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        // Where the run ends early (the source shrank), the next look finds no more data.
        copied = runs.copy(data, Some(hole))?;
        pos = hole;
    };
    let len = end - start;
    let dst_end = dst_start + len;
    // A trailing hole: the size says where the file ends. Only ever grown: what was in
    // `dst` past its offset (nothing, for a file the caller just made) is not cut.
    if (fstat(dst)?.st_size as u64) < dst_end {
        ftruncate(dst, dst_end)?;
    }
    Ok(Some(len))
}

/// What `SEEK_DATA` says on a filesystem that cannot find data (most now answer as if the
/// whole file were data; some refuse).
fn no_seek_data(e: Errno) -> bool {
    matches!(e, Errno::INVAL | Errno::OPNOTSUPP | Errno::NOSYS)
}

/// How [`Runs`] moves a run of data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Way {
    /// `copy_file_range` at offsets (which may share extents, see the module doc).
    Range,
    /// `sendfile` from an offset to the destination's offset, set first: new data.
    Send,
    /// `pread`/`pwrite`.
    ReadWrite,
}

/// The runs of data of one copy that keeps holes: byte `start + n` of `src` goes to byte
/// `dst_start + n` of `dst`.
struct Runs<'a> {
    src: BorrowedFd<'a>,
    dst: BorrowedFd<'a>,
    start: u64,
    dst_start: u64,
    way: Way,
    /// Told what `copy_file_range` did, when it is the way.
    memo: Option<&'a CopyRange>,
    /// Whether data has been moved: a refusal of the way after that is an error, as in a
    /// dense copy.
    moved: bool,
    /// For [`Way::ReadWrite`], made when first needed.
    buf: Vec<u8>,
}

impl Runs<'_> {
    /// Copies the source's bytes from `from` to `to` (`None`: to end of file) to their place
    /// in the destination. Returns the offset reached: `to`, or less where the source ended
    /// first.
    fn copy(&mut self, mut from: u64, to: Option<u64>) -> io::Result<u64> {
        let mut at = self.dst_start + (from - self.start);
        if self.way == Way::Send {
            seek(self.dst, SeekFrom::Start(at))?;
        }
        loop {
            let want = match to {
                Some(to) if from >= to => return Ok(from),
                Some(to) => usize::try_from(to - from).map_or(MAX_CHUNK, |n| n.min(MAX_CHUNK)),
                None => MAX_CHUNK,
            };
            let done = match self.way {
                Way::ReadWrite => self.read_write(from, at, want)?,
                Way::Range => {
                    let (mut f, mut a) = (from, at);
                    match crate::sys::copy_file_range_at(self.src, &mut f, self.dst, &mut a, want) {
                        Ok(n) => n,
                        Err(Errno::INTR) => continue,
                        // As in the dense copy: not for this pair, or not for this file.
                        Err(
                            e @ (Errno::XDEV
                            | Errno::NOSYS
                            | Errno::OPNOTSUPP
                            | Errno::INVAL
                            | Errno::PERM),
                        ) if !self.moved => {
                            if let Some(memo) = self.memo
                                && matches!(e, Errno::XDEV | Errno::NOSYS | Errno::OPNOTSUPP)
                            {
                                memo.0.store(RANGE_REFUSED, Ordering::Relaxed);
                            }
                            self.way = Way::ReadWrite;
                            continue;
                        }
                        Err(e) => return Err(e.into()),
                    }
                }
                Way::Send => {
                    let mut f = from;
                    match crate::sys::sendfile_from(self.src, &mut f, self.dst, want) {
                        Ok(n) => n,
                        Err(Errno::INTR) => continue,
                        Err(Errno::INVAL | Errno::NOSYS | Errno::OPNOTSUPP) if !self.moved => {
                            self.way = Way::ReadWrite;
                            continue;
                        }
                        Err(e) => return Err(e.into()),
                    }
                }
            };
            if done == 0 {
                return Ok(from);
            }
            if !self.moved {
                self.moved = true;
                if let (Way::Range, Some(memo)) = (self.way, self.memo)
                    && !memo.works()
                {
                    memo.0.store(RANGE_WORKS, Ordering::Relaxed);
                }
            }
            from += done as u64;
            at += done as u64;
        }
    }

    /// Reads up to `want` bytes at `from` and writes them all at `at`; returns how many (0 at
    /// end of file).
    fn read_write(&mut self, from: u64, at: u64, want: usize) -> io::Result<usize> {
        use rustix::io::{pread, pwrite};
        if self.buf.is_empty() {
            self.buf = vec![0u8; BUF];
        }
        let want = want.min(self.buf.len());
        let n = loop {
            match pread(self.src, &mut self.buf[..want], from) {
                Ok(n) => break n,
                Err(Errno::INTR) => continue,
                Err(e) => return Err(e.into()),
            }
        };
        let mut off = 0;
        while off < n {
            match pwrite(self.dst, &self.buf[off..n], at + off as u64) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(w) => off += w,
                Err(Errno::INTR) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        self.moved = true;
        Ok(n)
    }
}
