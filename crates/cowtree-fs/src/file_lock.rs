//! Advisory locks on an open file (on unix also a directory), shared or exclusive, waiting or
//! not, released when it is closed (or by [`unlock`]): `flock` on unix, `LockFileEx` of one
//! byte on Windows.
//!
//! Both are per open file (a second open of the same file in the same process does not share
//! the first one's lock) and are released by the system when the process dies, which is what
//! makes them usable as "a live process holds this". Windows' byte-range locks are mandatory
//! (a shared lock on a range stops every writer to it, its holder included, an exclusive one
//! every other reader), so the byte locked is one no one reads or writes, far past the end of
//! any file ([`WINDOWS_LOCK_OFFSET`]): the lock then says only what `flock` says, and the
//! file's contents stay readable and writable under it. A directory cannot be locked on
//! Windows (`LockFileEx` takes a file's data); lock a file beside it.
//!
//! (std has `File::lock` and `File::try_lock` from Rust 1.89; the workspace builds with 1.88.)

use std::io;

use crate::sys::AsFd;

/// Which lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockKind {
    /// Many holders at once, none while an exclusive one is held.
    Shared,
    /// One holder, no shared ones.
    Exclusive,
}

/// The byte a lock takes on Windows: far past the end of any file locked, below the largest
/// offset (2^63 - 1) Windows accepts.
pub const WINDOWS_LOCK_OFFSET: u64 = 1 << 62;

/// Takes the `kind` lock on the open file `file`, waiting while another open file holds a
/// conflicting one.
pub fn lock(file: impl AsFd, kind: LockKind) -> io::Result<()> {
    imp::lock(file, kind, true).map(|_| ())
}

/// Takes the `kind` lock on the open file `file` if no other open file holds a conflicting
/// one: `Ok(false)` when one does (nothing taken).
pub fn try_lock(file: impl AsFd, kind: LockKind) -> io::Result<bool> {
    imp::lock(file, kind, false)
}

/// Releases the lock this open file holds, before it is closed (on Windows the close releases
/// it too, but the system may take a while to).
pub fn unlock(file: impl AsFd) -> io::Result<()> {
    imp::unlock(file)
}

#[cfg(unix)]
mod imp {
    use super::LockKind;
    use rustix::fs::{FlockOperation, flock};
    use rustix::io::Errno;
    use std::io;
    use std::os::fd::AsFd;

    pub(super) fn lock(file: impl AsFd, kind: LockKind, wait: bool) -> io::Result<bool> {
        let op = match (kind, wait) {
            (LockKind::Shared, true) => FlockOperation::LockShared,
            (LockKind::Shared, false) => FlockOperation::NonBlockingLockShared,
            (LockKind::Exclusive, true) => FlockOperation::LockExclusive,
            (LockKind::Exclusive, false) => FlockOperation::NonBlockingLockExclusive,
        };
        loop {
            match flock(&file, op) {
                Ok(()) => return Ok(true),
                Err(Errno::WOULDBLOCK) if !wait => return Ok(false),
                Err(Errno::INTR) => continue,
                Err(e) => return Err(e.into()),
            }
        }
    }

    pub(super) fn unlock(file: impl AsFd) -> io::Result<()> {
        Ok(flock(&file, FlockOperation::Unlock)?)
    }
}

#[cfg(windows)]
mod imp {
    use super::LockKind;
    use crate::sys::AsFd;
    use std::io;
    use std::os::windows::io::AsRawHandle;
    use windows_sys::Win32::Foundation::{ERROR_IO_PENDING, ERROR_LOCK_VIOLATION};
    use windows_sys::Win32::Storage::FileSystem::{
        LOCKFILE_EXCLUSIVE_LOCK, LOCKFILE_FAIL_IMMEDIATELY, LockFileEx, UnlockFileEx,
    };
    use windows_sys::Win32::System::IO::OVERLAPPED;

    /// An OVERLAPPED that names the lock byte.
    fn at_lock_byte() -> OVERLAPPED {
        // SAFETY: OVERLAPPED is plain data; all zeroes is a valid value.
        let mut ov: OVERLAPPED = unsafe { std::mem::zeroed() };
        ov.Anonymous.Anonymous.Offset = super::WINDOWS_LOCK_OFFSET as u32;
        ov.Anonymous.Anonymous.OffsetHigh = (super::WINDOWS_LOCK_OFFSET >> 32) as u32;
        ov
    }

    pub(super) fn unlock(file: impl AsFd) -> io::Result<()> {
        let mut ov = at_lock_byte();
        // SAFETY: the handle is open for the whole call; `ov` outlives it (synchronous I/O).
        if unsafe { UnlockFileEx(file.as_fd().as_raw_handle(), 0, 1, 0, &mut ov) } == 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    pub(super) fn try_lock_named(name: &str) -> io::Result<Option<super::NamedLock>> {
        use std::os::windows::io::{FromRawHandle, OwnedHandle};
        use windows_sys::Win32::Foundation::{ERROR_ACCESS_DENIED, WAIT_ABANDONED, WAIT_OBJECT_0};
        use windows_sys::Win32::System::Threading::{CreateMutexW, WaitForSingleObject};
        let wide: Vec<u16> = name.encode_utf16().chain(std::iter::once(0)).collect();
        // SAFETY: `wide` is NUL-terminated and outlives the call; no security attributes.
        let raw = unsafe { CreateMutexW(std::ptr::null(), 0, wide.as_ptr()) };
        if raw.is_null() {
            let e = io::Error::last_os_error();
            // Another user's mutex (its default ACL keeps others out): held by them.
            if e.raw_os_error() == Some(ERROR_ACCESS_DENIED as i32) {
                return Ok(None);
            }
            return Err(e);
        }
        // SAFETY: CreateMutexW returned a new handle this process owns.
        let handle = unsafe { OwnedHandle::from_raw_handle(raw) };
        // SAFETY: the handle is open for the whole call.
        match unsafe { WaitForSingleObject(raw, 0) } {
            // Abandoned: its holder ended without releasing it (killed); now this thread's.
            WAIT_OBJECT_0 | WAIT_ABANDONED => {
                Ok(Some(super::NamedLock(handle, std::marker::PhantomData)))
            }
            windows_sys::Win32::Foundation::WAIT_TIMEOUT => Ok(None),
            _ => Err(io::Error::last_os_error()),
        }
    }

    pub(super) fn lock(file: impl AsFd, kind: LockKind, wait: bool) -> io::Result<bool> {
        let mut flags = 0;
        if kind == LockKind::Exclusive {
            flags |= LOCKFILE_EXCLUSIVE_LOCK;
        }
        if !wait {
            flags |= LOCKFILE_FAIL_IMMEDIATELY;
        }
        let mut ov = at_lock_byte();
        // SAFETY: the handle is open for the whole call (`file` lends it); `ov` outlives the
        // call, which is synchronous on a handle opened for synchronous I/O (std opens so).
        let ok = unsafe { LockFileEx(file.as_fd().as_raw_handle(), flags, 0, 1, 0, &mut ov) };
        if ok != 0 {
            return Ok(true);
        }
        let e = io::Error::last_os_error();
        match e.raw_os_error() {
            Some(c)
                if !wait && (c == ERROR_LOCK_VIOLATION as i32 || c == ERROR_IO_PENDING as i32) =>
            {
                Ok(false)
            }
            _ => Err(e),
        }
    }
}

/// A lock on a name, not on a file: Windows' named mutex `name` (machine-wide with a
/// `Global\\` prefix), for what has no file to lock (a directory: `LockFileEx` takes a file's
/// data). Held by the thread that took it until [`NamedLock`] is dropped, which must happen
/// on that thread (the system releases it when that thread ends, as it releases a file lock
/// when its process dies). `Ok(None)`: another holder has it, or one the caller may not
/// open (another user's), which is the same thing to a caller that will try again. (A process
/// whose token may open no `Global\\` object at all, an AppContainer's, is then always told
/// it is held.) Unlike a file lock, the thread that holds it takes it again at once (a
/// mutex is re-entrant): lock one name once per thread. It keeps out this machine's
/// processes only, not another machine's on a shared drive.
#[cfg(windows)]
pub fn try_lock_named(name: &str) -> io::Result<Option<NamedLock>> {
    imp::try_lock_named(name)
}

/// A held [`try_lock_named`] lock: released when dropped.
/// Not `Send`: only the thread that took it can release it.
#[cfg(windows)]
#[derive(Debug)]
pub struct NamedLock(
    std::os::windows::io::OwnedHandle,
    std::marker::PhantomData<*const ()>,
);

#[cfg(windows)]
impl Drop for NamedLock {
    fn drop(&mut self) {
        use std::os::windows::io::AsRawHandle;
        // SAFETY: the handle is a mutex this thread holds (taken by try_lock_named, dropped on
        // the same thread as documented); a release that fails leaves the system to release
        // it when the thread ends.
        unsafe { windows_sys::Win32::System::Threading::ReleaseMutex(self.0.as_raw_handle()) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(windows)]
    #[test]
    fn a_named_lock_keeps_out_another_thread_until_it_is_dropped() {
        let name = format!("Local\\cowtree-test-{}", std::process::id());
        let held = try_lock_named(&name).expect("lock").expect("free at first");
        let other = || {
            let name = name.clone();
            std::thread::spawn(move || try_lock_named(&name).expect("try").is_some())
                .join()
                .expect("thread")
        };
        assert!(!other(), "held by this thread");
        drop(held);
        assert!(other(), "free once dropped");
        // A holder whose thread ends without dropping it (as a killed process would) leaves
        // it abandoned, which the next taker gets.
        let name2 = name.clone();
        std::thread::spawn(move || std::mem::forget(try_lock_named(&name2).expect("try")))
            .join()
            .expect("thread");
        assert!(
            try_lock_named(&name).expect("try").is_some(),
            "abandoned is free"
        );
    }

    #[test]
    fn an_exclusive_lock_keeps_out_a_second_open_until_it_is_closed() {
        let t = tempfile::tempdir().expect("tempdir");
        let p = t.path().join("lock");
        let open = || {
            std::fs::OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(&p)
                .expect("open")
        };
        let (a, b) = (open(), open());
        lock(&a, LockKind::Exclusive).expect("lock a");
        assert!(!try_lock(&b, LockKind::Exclusive).expect("try b"));
        assert!(!try_lock(&b, LockKind::Shared).expect("try b shared"));
        drop(a);
        assert!(try_lock(&b, LockKind::Exclusive).expect("try b again"));
    }

    #[test]
    fn shared_locks_coexist_and_keep_out_an_exclusive_one() {
        let t = tempfile::tempdir().expect("tempdir");
        let p = t.path().join("lock");
        let open = || {
            std::fs::OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(&p)
                .expect("open")
        };
        let (a, b, c) = (open(), open(), open());
        assert!(try_lock(&a, LockKind::Shared).expect("a"));
        assert!(try_lock(&b, LockKind::Shared).expect("b"));
        assert!(!try_lock(&c, LockKind::Exclusive).expect("c"));
        drop((a, b));
        assert!(try_lock(&c, LockKind::Exclusive).expect("c again"));
    }

    #[test]
    fn a_locked_file_stays_readable_and_writable_and_unlock_frees_it() {
        use std::io::Write as _;
        let t = tempfile::tempdir().expect("tempdir");
        let p = t.path().join("lock");
        let open = || {
            std::fs::OpenOptions::new()
                .create(true)
                .truncate(false)
                .read(true)
                .write(true)
                .open(&p)
                .expect("open")
        };
        let (a, mut b) = (open(), open());
        lock(&a, LockKind::Exclusive).expect("lock a");
        // Another handle writes and reads the file's bytes under the lock (on Windows: the
        // lock byte is none of them).
        b.write_all(b"list").expect("write under the lock");
        assert_eq!(std::fs::read(&p).expect("read under the lock"), b"list");
        assert!(!try_lock(&b, LockKind::Shared).expect("try b"));
        unlock(&a).expect("unlock a");
        assert!(try_lock(&b, LockKind::Exclusive).expect("b after unlock"));
    }
}
