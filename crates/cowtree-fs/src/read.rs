//! Reading files: a whole file at once, in parallel when it is large; and the one BLAKE3
//! file hasher every layer uses (store blobs, worktree status, space dedupe).
//!
//! The same functions on Windows, over handles: the reads are `ReadFile` (at an offset given
//! in an `OVERLAPPED`, where unix uses `pread`), the size is `FileStandardInfo`'s, and
//! [`hash_at`] opens relative to a directory handle without following a reparse point.

use std::ffi::OsStr;
use std::io;
use std::mem::MaybeUninit;
/// What the readers here take: a descriptor on unix (`AsFd`), a handle on Windows
/// (`AsHandle`).
#[cfg(unix)]
pub use std::os::fd::AsFd as AsFile;
#[cfg(windows)]
pub use std::os::windows::io::AsHandle as AsFile;

#[cfg(unix)]
use rustix::fs::{FileType, Mode, OFlags, fstat, openat};
#[cfg(unix)]
use rustix::io::Errno;

/// Files from this size on are read by two threads.
const PARALLEL_FROM: usize = 4 << 20;

/// Reads all of `fd` from offset 0. A file of 4 MiB or more is read by two threads at once,
/// each into its half of the buffer: for a file in the page cache, the cost is the copy and
/// the first touch of the buffer's pages, and both split. The size is the one `fstat` gives; if
/// the file turns out shorter or longer (someone is writing it), or no second thread can be
/// started, it is read from the start in one pass.
pub fn read_whole(fd: impl AsFile) -> io::Result<Vec<u8>> {
    let fd = os::borrow(&fd);
    let size = os::file_size(fd)?;
    let size = usize::try_from(size).map_err(|_| io::Error::other("file too large"))?;
    // Left uninitialised: zeroing it would be one more pass over every page before the reads
    // overwrite them all.
    let mut buf: Vec<u8> = Vec::new();
    buf.try_reserve_exact(size).map_err(|_| {
        io::Error::other(format!("file too large to read into memory ({size} bytes)"))
    })?;
    huge_pages(&mut buf);
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
        match os::pread(fd, &mut chunk[..], at)? {
            0 => return Ok(out),
            n => {
                out.extend_from_slice(&chunk[..n]);
                at += n as u64;
            }
        }
    }
}

/// Buffers from this capacity on are backed by huge pages where the kernel can (see
/// [`huge_pages`]): at 4 MiB, at least one whole aligned 2 MiB page lies inside.
pub const HUGE_PAGES_FROM: usize = 4 << 20;

/// Advises the kernel to back the 2 MiB-aligned pages inside `buf`'s allocation with
/// transparent huge pages (`MADV_HUGEPAGE`), when its capacity is at least
/// [`HUGE_PAGES_FROM`]; for a large buffer about to be filled. A fresh allocation is otherwise
/// faulted in 4 KiB at a time as it is first written, and the faults cost more than the
/// writes: reading a 7 MiB manifest and a 10 MiB stat cache (of an 80,000-file worktree) into
/// a new process took 4.1 and 4.4 ms without the advice and 2.4 and 1.7 ms with it (medians
/// of 15 runs each, XFS, pages cached). Only advice: where huge pages are disabled (or used
/// without asking, the `always` setting) or unsupported, nothing changes; where none is free,
/// the kernel's `defrag` setting decides whether it first tries to make one (the `madvise`
/// default of many distributions does, for advised memory) or takes ordinary pages.
pub fn huge_pages(buf: &mut Vec<u8>) {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    if buf.capacity() >= HUGE_PAGES_FROM {
        const HUGE: usize = 2 << 20;
        let start = buf.as_mut_ptr() as usize;
        let from = start.next_multiple_of(HUGE);
        let to = start.saturating_add(buf.capacity()) & !(HUGE - 1);
        if to > from {
            // SAFETY: [from, to) lies inside `buf`'s allocation, which this function borrows
            // mutably; the advice changes how those pages are backed, never what they hold.
            let _ = unsafe {
                rustix::mm::madvise(
                    from as *mut std::ffi::c_void,
                    to - from,
                    rustix::mm::Advice::LinuxHugepage,
                )
            };
        }
    }
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    let _ = buf;
}

/// Fills `buf` from offset `at`; false when the file ends first (what was read is then
/// initialised, the rest not).
fn fill_at(fd: os::Borrowed<'_>, buf: &mut [MaybeUninit<u8>], mut at: u64) -> io::Result<bool> {
    let mut done = 0;
    while done < buf.len() {
        match os::pread_uninit(fd, &mut buf[done..], at)? {
            0 => return Ok(false),
            n => {
                done += n;
                at += n as u64;
            }
        }
    }
    Ok(true)
}

/// The reads the functions above are made of, per platform.
#[cfg(unix)]
mod os {
    use std::io;
    use std::mem::MaybeUninit;
    use std::os::fd::{AsFd, BorrowedFd};

    use rustix::io::Errno;

    pub(super) type Borrowed<'a> = BorrowedFd<'a>;

    pub(super) fn borrow(fd: &impl AsFd) -> BorrowedFd<'_> {
        fd.as_fd()
    }

    /// `fstat`'s size.
    pub(super) fn file_size(fd: BorrowedFd<'_>) -> io::Result<u64> {
        Ok(u64::try_from(rustix::fs::fstat(fd)?.st_size).unwrap_or(u64::MAX))
    }

    /// One `pread` into `buf` (`EINTR` retried); 0 at the end of the file.
    pub(super) fn pread_uninit(
        fd: BorrowedFd<'_>,
        buf: &mut [MaybeUninit<u8>],
        at: u64,
    ) -> io::Result<usize> {
        loop {
            match rustix::io::pread(fd, &mut *buf, at) {
                Ok((read, _)) => return Ok(read.len()),
                Err(Errno::INTR) => continue,
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// [`pread_uninit`] into initialised bytes.
    pub(super) fn pread(fd: BorrowedFd<'_>, buf: &mut [u8], at: u64) -> io::Result<usize> {
        loop {
            match rustix::io::pread(fd, &mut *buf, at) {
                Ok(n) => return Ok(n),
                Err(Errno::INTR) => continue,
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// One `read` from the current offset (`EINTR` retried); 0 at the end of the file.
    pub(super) fn read(fd: BorrowedFd<'_>, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            match rustix::io::read(fd, &mut *buf) {
                Ok(n) => return Ok(n),
                Err(Errno::INTR) => continue,
                Err(e) => return Err(e.into()),
            }
        }
    }
}

/// The reads the functions above are made of, per platform: `ReadFile` on a synchronous
/// handle (at an offset given in an `OVERLAPPED`, which also moves the handle's position
/// there, unlike `pread`).
#[cfg(windows)]
mod os {
    use std::io;
    use std::mem::MaybeUninit;
    use std::os::windows::io::{AsHandle, AsRawHandle, BorrowedHandle};

    use windows_sys::Win32::Foundation::{ERROR_BROKEN_PIPE, ERROR_HANDLE_EOF, HANDLE};
    use windows_sys::Win32::Storage::FileSystem::ReadFile;
    use windows_sys::Win32::System::IO::OVERLAPPED;

    pub(super) type Borrowed<'a> = BorrowedHandle<'a>;

    pub(super) fn borrow(fd: &impl AsHandle) -> BorrowedHandle<'_> {
        fd.as_handle()
    }

    /// `FileStandardInfo`'s end of file.
    pub(super) fn file_size(fd: BorrowedHandle<'_>) -> io::Result<u64> {
        Ok(crate::dir::Stat::of(fd)?.size)
    }

    /// One `ReadFile` of at most `len` bytes into `ptr`, at `at` or (`None`) at the handle's
    /// position; 0 at the end of the file.
    ///
    /// # Safety
    /// `ptr` must be valid for writes of `len` bytes for the duration of the call.
    unsafe fn read_file(
        fd: BorrowedHandle<'_>,
        ptr: *mut u8,
        len: usize,
        at: Option<u64>,
    ) -> io::Result<usize> {
        let len = u32::try_from(len).unwrap_or(u32::MAX);
        let mut overlapped = OVERLAPPED::default();
        if let Some(at) = at {
            overlapped.Anonymous.Anonymous.Offset = at as u32;
            overlapped.Anonymous.Anonymous.OffsetHigh = (at >> 32) as u32;
        }
        let mut read = 0u32;
        // SAFETY: the caller vouches for `ptr` and `len`; `read` and `overlapped` are live
        // locals; the handle is open (borrowed) and synchronous (every handle cowtree opens
        // is), so the call completes before it returns and nothing is written afterwards.
        let ok = unsafe {
            ReadFile(
                fd.as_raw_handle() as HANDLE,
                ptr,
                len,
                &mut read,
                if at.is_some() {
                    &mut overlapped
                } else {
                    std::ptr::null_mut()
                },
            )
        };
        if ok == 0 {
            let e = io::Error::last_os_error();
            return match e.raw_os_error().map(|c| c as u32) {
                Some(ERROR_HANDLE_EOF | ERROR_BROKEN_PIPE) => Ok(0),
                _ => Err(e),
            };
        }
        Ok(read as usize)
    }

    pub(super) fn pread_uninit(
        fd: BorrowedHandle<'_>,
        buf: &mut [MaybeUninit<u8>],
        at: u64,
    ) -> io::Result<usize> {
        // SAFETY: `buf` is borrowed mutably for the call and is `buf.len()` bytes long;
        // ReadFile only writes into it (uninitialised bytes are never read).
        unsafe { read_file(fd, buf.as_mut_ptr().cast(), buf.len(), Some(at)) }
    }

    pub(super) fn pread(fd: BorrowedHandle<'_>, buf: &mut [u8], at: u64) -> io::Result<usize> {
        // SAFETY: as in `pread_uninit`.
        unsafe { read_file(fd, buf.as_mut_ptr(), buf.len(), Some(at)) }
    }

    pub(super) fn read(fd: BorrowedHandle<'_>, buf: &mut [u8]) -> io::Result<usize> {
        // SAFETY: as in `pread_uninit`.
        unsafe { read_file(fd, buf.as_mut_ptr(), buf.len(), None) }
    }
}

/// The hash read buffer's largest size.
const HASH_BUF: usize = 1 << 20;
/// Its first size: most files are small, and a thread's buffer is zeroed once at its size.
const HASH_FIRST_BUF: usize = 64 << 10;
/// Chunks from this size on are hashed on several threads; smaller ones are not worth the
/// handoff.
const HASH_RAYON_FROM: usize = 256 * 1024;

thread_local! {
    static HASH_BUFFER: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Hashes with BLAKE3 what `fd` holds from its current offset to its end, and gives its
/// length. `each` sees every chunk as it is read, before it is hashed (to count progress, or to
/// write a copy in the same pass); an error from it ends the hashing with that error. Read
/// errors are returned as they are (`EINTR` is retried).
///
/// Chunks of 256 KiB or more are hashed on rayon's pool: the one the caller runs in, else
/// rayon's global pool (a queue worker of [`crate::workers`] is no rayon thread, so idle
/// threads of the global pool take halves of a large read while the queue's other workers go
/// on with their items). Reads as [`read_chunks`] does.
pub fn hash_fd(
    fd: impl AsFile,
    mut each: impl FnMut(&[u8]) -> io::Result<()>,
) -> io::Result<(u64, blake3::Hash)> {
    let mut hasher = blake3::Hasher::new();
    let size = read_chunks(fd, |chunk| {
        each(chunk)?;
        if chunk.len() >= HASH_RAYON_FROM {
            hasher.update_rayon(chunk);
        } else {
            hasher.update(chunk);
        }
        Ok(())
    })?;
    Ok((size, hasher.finalize()))
}

/// Reads what `fd` holds from its current offset to its end, handing each chunk to `each`
/// (for another digest than BLAKE3, e.g. SHA-256), and gives its length. An error from `each`
/// ends the reading with that error; `EINTR` is retried.
///
/// One read buffer per thread, growing from 64 KiB to 1 MiB while reads fill it (a fresh
/// zeroed buffer per file costs more than hashing a small file).
pub fn read_chunks(
    fd: impl AsFile,
    mut each: impl FnMut(&[u8]) -> io::Result<()>,
) -> io::Result<u64> {
    let fd = os::borrow(&fd);
    let mut size = 0u64;
    with_hash_buffer(|buf| -> io::Result<()> {
        loop {
            let n = match os::read(fd, &mut buf[..])? {
                0 => return Ok(()),
                n => n,
            };
            each(&buf[..n])?;
            size += n as u64;
            if n == buf.len() && buf.len() < HASH_BUF {
                let len = (buf.len() * 4).min(HASH_BUF);
                buf.resize(len, 0);
            }
        }
    })?;
    Ok(size)
}

/// Runs `f` with this thread's hash buffer. A thread hashing a large chunk hands parts of it
/// to other rayon workers and, while it waits, may run another job on the same thread that
/// hashes a file too: that nested use gets a buffer of its own (a plain `borrow_mut` would
/// panic).
fn with_hash_buffer<T>(f: impl FnOnce(&mut Vec<u8>) -> T) -> T {
    HASH_BUFFER.with(|b| match b.try_borrow_mut() {
        Ok(mut b) => {
            if b.is_empty() {
                b.resize(HASH_FIRST_BUF, 0);
            }
            f(&mut b)
        }
        Err(_) => f(&mut vec![0u8; HASH_FIRST_BUF]),
    })
}

/// Hashes the regular file `name` under `dir` ([`hash_fd`]) without following a symlink.
/// `None` when it is gone or is not a regular file (a symlink, a directory, a FIFO: opened
/// non-blocking, so a FIFO put in its place cannot hang the caller).
#[cfg(unix)]
pub fn hash_at(dir: impl AsFile, name: &OsStr) -> io::Result<Option<(u64, blake3::Hash)>> {
    let fd = match openat(
        dir,
        name,
        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::NONBLOCK | OFlags::NOCTTY,
        Mode::empty(),
    ) {
        Ok(fd) => fd,
        Err(Errno::NOENT | Errno::LOOP) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    if FileType::from_raw_mode(fstat(&fd)?.st_mode) != FileType::RegularFile {
        return Ok(None);
    }
    hash_fd(&fd, |_| Ok(())).map(Some)
}

/// Hashes the file `name` under the directory `dir` ([`hash_fd`]), opened relative to the
/// directory's handle without following a reparse point. `None` when it is gone or is not a
/// file (a symlink, a junction or any other reparse point, a directory). A name Windows cannot
/// hold is an error.
#[cfg(windows)]
pub fn hash_at(
    dir: impl std::os::windows::io::AsHandle,
    name: &OsStr,
) -> io::Result<Option<(u64, blake3::Hash)>> {
    use crate::sys::at;
    let Some(handle) = crate::dir::open_existing(dir.as_handle(), name)? else {
        return Ok(None);
    };
    let (attributes, _) = at::attribute_tag(std::os::windows::io::AsHandle::as_handle(&handle))?;
    if crate::dir::FileType::from_attributes(attributes, 0) != crate::dir::FileType::RegularFile {
        return Ok(None);
    }
    hash_fd(&handle, |_| Ok(())).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_fd_equals_blake3_of_the_bytes_across_buffer_sizes_and_sees_every_chunk() {
        let dir = tempfile::tempdir().expect("tempdir");
        for size in [
            0usize,
            1,
            HASH_FIRST_BUF - 1,
            HASH_FIRST_BUF,
            HASH_FIRST_BUF * 5 + 3,
            HASH_BUF * 3 + 11,
        ] {
            let data: Vec<u8> = (0..size).map(|i| (i * 31 % 251) as u8).collect();
            let p = dir.path().join(format!("f{size}"));
            std::fs::write(&p, &data).expect("write");
            let f = std::fs::File::open(&p).expect("open");
            let mut seen = Vec::new();
            let (n, h) = hash_fd(&f, |c| {
                seen.extend_from_slice(c);
                Ok(())
            })
            .expect("hash");
            assert_eq!((n, h), (size as u64, blake3::hash(&data)), "size {size}");
            assert_eq!(seen, data, "size {size}");
        }
    }

    #[test]
    fn hash_fd_starts_at_the_current_offset_and_stops_on_the_callers_error() {
        use std::io::{Seek, SeekFrom};
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("f");
        std::fs::write(&p, b"0123456789").expect("write");
        let mut f = std::fs::File::open(&p).expect("open");
        f.seek(SeekFrom::Start(4)).expect("seek");
        assert_eq!(
            hash_fd(&f, |_| Ok(())).expect("hash"),
            (6, blake3::hash(b"456789"))
        );
        f.seek(SeekFrom::Start(0)).expect("seek");
        let err = hash_fd(&f, |_| Err(io::Error::other("stop"))).expect_err("stopped");
        assert_eq!(err.to_string(), "stop");
    }

    #[cfg(unix)]
    #[test]
    fn hash_at_gives_none_for_a_missing_file_a_symlink_and_a_directory() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("f"), b"data").expect("write");
        std::os::unix::fs::symlink("f", dir.path().join("link")).expect("symlink");
        std::fs::create_dir(dir.path().join("d")).expect("mkdir");
        let d = std::fs::File::open(dir.path()).expect("open dir");
        assert_eq!(
            hash_at(&d, OsStr::new("f")).expect("hash"),
            Some((4, blake3::hash(b"data")))
        );
        for name in ["missing", "link", "d"] {
            assert_eq!(hash_at(&d, OsStr::new(name)).expect(name), None, "{name}");
        }
    }

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

    /// The `VmFlags` of the mapping holding address `at`, from `/proc/self/smaps`.
    #[cfg(any(target_os = "linux", target_os = "android"))]
    fn vm_flags_at(at: usize) -> String {
        let smaps = std::fs::read_to_string("/proc/self/smaps").expect("smaps");
        let mut inside = false;
        for line in smaps.lines() {
            let head = line.split_whitespace().next().unwrap_or("");
            if let Some((a, b)) = head.split_once('-')
                && let (Ok(a), Ok(b)) = (usize::from_str_radix(a, 16), usize::from_str_radix(b, 16))
            {
                inside = (a..b).contains(&at);
            } else if inside && let Some(flags) = line.strip_prefix("VmFlags:") {
                return flags.to_string();
            }
        }
        panic!("no mapping holds {at:#x}");
    }

    /// A buffer of 4 MiB or more has its whole 2 MiB pages advised for huge pages (`hg` in
    /// the mapping's flags, which the kernel sets for `MADV_HUGEPAGE` whatever the system's
    /// setting), and a large file read whole lands in such a buffer intact (see
    /// `reads_small_and_large_files_whole`).
    #[cfg(any(target_os = "linux", target_os = "android"))]
    #[test]
    fn a_large_buffer_is_advised_huge_pages() {
        if !std::path::Path::new("/sys/kernel/mm/transparent_hugepage").exists() {
            eprintln!("skipped: this kernel has no transparent huge pages");
            return;
        }
        let mut buf: Vec<u8> = Vec::with_capacity(HUGE_PAGES_FROM * 2);
        huge_pages(&mut buf);
        let first = (buf.as_ptr() as usize).next_multiple_of(2 << 20);
        let last = (buf.as_ptr() as usize + buf.capacity()) / (2 << 20) * (2 << 20) - 1;
        for at in [first, last] {
            let flags = vm_flags_at(at);
            assert!(
                flags.split_whitespace().any(|f| f == "hg"),
                "no huge-page advice at {at:#x}: {flags}"
            );
        }
        buf.resize(buf.capacity(), 7);
        assert!(buf.iter().all(|&b| b == 7));
    }

    #[cfg(target_os = "linux")]
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
