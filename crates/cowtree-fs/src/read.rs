//! Reading a whole file at once, in parallel when it is large.

use std::io;
use std::mem::MaybeUninit;
use std::os::fd::AsFd;

use rustix::io::Errno;

/// Files from this size on are read by two threads.
const PARALLEL_FROM: usize = 4 << 20;

/// Reads all of `fd` from offset 0. A file of 4 MiB or more is read by two threads at once,
/// each into its half of the buffer: for a file in the page cache, the cost is the copy and
/// the first touch of the buffer's pages, and both split. The size is the one `fstat` gives; if
/// the file turns out shorter or longer (someone is writing it), or no second thread can be
/// started, it is read from the start in one pass.
pub fn read_whole(fd: impl AsFd) -> io::Result<Vec<u8>> {
    let fd = fd.as_fd();
    let size = rustix::fs::fstat(fd)?.st_size;
    let size = usize::try_from(size).map_err(|_| io::Error::other("file too large"))?;
    // Left uninitialised: zeroing it would be one more pass over every page before the reads
    // overwrite them all.
    let mut buf: Vec<u8> = Vec::new();
    buf.try_reserve_exact(size).map_err(|_| {
        io::Error::other(format!("file too large to read into memory ({size} bytes)"))
    })?;
    let spare = &mut buf.spare_capacity_mut()[..size];
    let mut filled = None;
    if size >= PARALLEL_FROM {
        let (a, b) = spare.split_at_mut(size / 2);
        let half = a.len() as u64;
        filled = std::thread::scope(|s| -> io::Result<Option<bool>> {
            // No thread to be had: read in one pass below.
            let Ok(other) =
                std::thread::Builder::new().spawn_scoped(s, move || fill_at(fd, b, half))
            else {
                return Ok(None);
            };
            let ra = fill_at(fd, a, 0);
            let rb = other
                .join()
                .map_err(|_| io::Error::other("internal error: a reader thread panicked"))?;
            Ok(Some(ra? && rb?))
        })?;
    }
    let filled = match filled {
        Some(f) => f,
        None => fill_at(fd, spare, 0)?,
    };
    if filled && !fill_at(fd, &mut [MaybeUninit::uninit()], size as u64)? {
        // SAFETY: `fill_at` returned true for both halves (or the whole): every byte of the
        // first `size` of the capacity was written by `pread`.
        unsafe { buf.set_len(size) };
        return Ok(buf);
    }
    // The size changed while the file was read: once more, to its end.
    let mut out = Vec::new();
    let mut chunk = vec![0u8; 1 << 16];
    let mut at = 0u64;
    loop {
        match rustix::io::pread(fd, &mut chunk[..], at) {
            Ok(0) => return Ok(out),
            Ok(n) => {
                out.extend_from_slice(&chunk[..n]);
                at += n as u64;
            }
            Err(Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

/// Fills `buf` from offset `at`; false when the file ends first (what was read is then
/// initialised, the rest not).
fn fill_at(fd: impl AsFd, buf: &mut [MaybeUninit<u8>], mut at: u64) -> io::Result<bool> {
    let mut done = 0;
    while done < buf.len() {
        match rustix::io::pread(fd.as_fd(), &mut buf[done..], at) {
            Ok(([], _)) => return Ok(false),
            Ok((read, _)) => {
                done += read.len();
                at += read.len() as u64;
            }
            Err(Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_small_and_large_files_whole() {
        let dir = tempfile::tempdir().expect("tempdir");
        for size in [
            0usize,
            1,
            4095,
            PARALLEL_FROM - 1,
            PARALLEL_FROM,
            PARALLEL_FROM * 2 + 7,
        ] {
            let data: Vec<u8> = (0..size).map(|i| (i * 7 % 251) as u8).collect();
            let p = dir.path().join(format!("f{size}"));
            std::fs::write(&p, &data).expect("write");
            let f = std::fs::File::open(&p).expect("open");
            assert_eq!(read_whole(&f).expect("read"), data, "size {size}");
        }
    }

    #[test]
    fn a_file_longer_than_its_stat_size_is_read_to_its_end() {
        // /proc files report a size of 0 but have content: the probe past the size finds
        // more, and the file is read again to its end.
        let f = std::fs::File::open("/proc/self/status").expect("open");
        let text = String::from_utf8(read_whole(&f).expect("read")).expect("utf-8");
        assert!(text.starts_with("Name:"), "{text}");
        assert!(text.contains("\nPid:"), "{text}");
    }
}
