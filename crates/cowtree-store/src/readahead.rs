//! Reading a source's pages before they are needed.
//!
//! A snapshot hashes most sources from their pages (see the module doc of `ingest`), and a
//! page that is not in the page cache makes the worker wait for the device: a few milliseconds
//! for each cold file, one file after another. Ingest therefore opens a few files ahead of the
//! one it records and asks the kernel to start reading them ([`will_need`]), so that their
//! reads are in flight while the worker clones, hashes and links the files before them.
//! The pages are only read, never trusted: what the hash covers is still decided by the stats
//! around the clone (the page cache holds one copy of a file's bytes, whoever read them in).

use std::num::NonZeroU64;

use cowtree_fs::sys::AsFd;

/// Asks the kernel to start reading `fd` from its start, up to `len` bytes, into the page
/// cache, usually returning before the reads complete (`POSIX_FADV_WILLNEED`; a page already
/// cached costs one lookup; the call can still wait, e.g. behind a writer holding the file's
/// lock, or for a full request queue).
/// One call reads at most the larger of the device's read-ahead window and its largest
/// request (`max(ra_pages, io_pages)`, often 128 KiB to a few MiB), so the rest of a bigger
/// file is read as the hash reaches it. Advice only: where it fails or does not exist, the
/// later read simply waits for the device, so its error is dropped.
#[cfg(any(target_os = "linux", target_os = "android"))]
pub(crate) fn will_need(fd: impl AsFd, len: u64) {
    if let Some(len) = NonZeroU64::new(len) {
        let _ = rustix::fs::fadvise(fd, 0, Some(len), rustix::fs::Advice::WillNeed);
    }
}

/// Without `posix_fadvise` (macOS, Windows): nothing; the read waits for the device. (Windows
/// has a read-ahead hint only for a whole open, `FILE_FLAG_SEQUENTIAL_SCAN`, not for a range
/// of an open file.)
#[cfg(not(any(target_os = "linux", target_os = "android")))]
// Windows' ingest reads its sources as they come (no caller there yet).
#[cfg_attr(windows, allow(dead_code))]
pub(crate) fn will_need(fd: impl AsFd, len: u64) {
    let _ = (fd.as_fd(), NonZeroU64::new(len));
}

#[cfg(all(test, any(target_os = "linux", target_os = "android")))]
mod tests {
    use std::fs::{File, OpenOptions};
    use std::io::Write;
    use std::time::Duration;

    use cowtree_testutil::{Fs, pattern, scratch};
    use rustix::fs::{Advice, fadvise};
    use rustix::mm::{MapFlags, ProtFlags, mmap, munmap};

    use super::*;

    fn page_size() -> usize {
        // SAFETY: sysconf reads a constant of the system.
        let n = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
        usize::try_from(n).expect("a page size")
    }

    /// Which of the pages of `f`'s first `len` bytes are in the page cache, from `mincore` on
    /// a fresh mapping that is never touched: nothing is read to find out (a read, even one
    /// with `RWF_NOWAIT`, may start read-ahead of its own). The caller owns `f`, so `mincore`
    /// reports the page cache rather than only what this process has mapped.
    fn resident(f: &File, len: usize) -> Vec<bool> {
        // SAFETY: a new read-only mapping of `len` bytes of `f`, never dereferenced, unmapped
        // below.
        let base = unsafe {
            mmap(
                std::ptr::null_mut(),
                len,
                ProtFlags::READ,
                MapFlags::SHARED,
                f,
                0,
            )
        }
        .expect("mmap");
        let mut vec = vec![0u8; len.div_ceil(page_size())];
        // SAFETY: `base..base + len` is the mapping made above, and `vec` has a byte for each
        // of its pages.
        let r = unsafe { libc::mincore(base, len, vec.as_mut_ptr()) };
        let err = std::io::Error::last_os_error();
        // SAFETY: the mapping made above, not used after this.
        unsafe { munmap(base, len) }.expect("munmap");
        assert_eq!(r, 0, "mincore: {err}");
        vec.iter().map(|b| b & 1 != 0).collect()
    }

    /// How many of the pages of `f`'s first `upto` bytes are cached (see [`resident`], which
    /// maps `len` bytes).
    fn cached(f: &File, len: usize, upto: usize) -> usize {
        let pages = upto.div_ceil(page_size());
        resident(f, len).iter().take(pages).filter(|&&r| r).count()
    }

    /// Waits, a bounded time, for `done` to hold.
    fn eventually(mut done: impl FnMut() -> bool) -> bool {
        for _ in 0..500 {
            if done() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        done()
    }

    #[test]
    fn will_need_starts_reading_a_file_whose_pages_were_dropped() {
        let page = page_size();
        for fs in Fs::COW {
            let Some(dir) = scratch(fs) else { continue };
            let path = dir.path().join("f");
            let len = 256 * page;
            let mut f = File::create(&path).unwrap();
            f.write_all(&pattern(len, 5)).unwrap();
            f.sync_all().unwrap();
            drop(f);
            // Opened for writing too: `mincore` shows the page cache of a file only to a
            // process that may write it.
            let f = OpenOptions::new()
                .read(true)
                .write(true)
                .open(&path)
                .unwrap();
            // Written back and synced, so every page is clean and DONTNEED drops it (it may
            // leave a page that another CPU still has on its LRU batch: again, a bounded time).
            let dropped = eventually(|| {
                fadvise(&f, 0, None, Advice::DontNeed).unwrap();
                resident(&f, len).iter().all(|r| !r)
            });
            assert!(
                dropped,
                "{fs:?}: {} of the {} pages of {} stay cached",
                cached(&f, len, len),
                len / page,
                path.display()
            );
            // No advice for nothing: nothing is read.
            will_need(&f, 0);
            std::thread::sleep(Duration::from_millis(50));
            assert!(resident(&f, len).iter().all(|r| !r), "{fs:?}: len 0");
            // One call reads at most the device's read-ahead window or largest request
            // (see `will_need`): only the first 64 KiB, within either on every device
            // here, must come in, and only `will_need` reads this file.
            will_need(&f, len as u64);
            let first = (64 << 10) / page;
            let read = eventually(|| resident(&f, len)[..first].iter().all(|&r| r));
            assert!(
                read,
                "{fs:?}: {} of the first {first} pages were read in",
                cached(&f, len, first * page)
            );
        }
    }
}
