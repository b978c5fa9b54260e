//! Processes on Windows, for [`crate::process::Stamp`]: whether a pid names a running process,
//! and when that process was created (`GetProcessTimes`), the start time a reused pid cannot
//! pass for.
//!
//! A process object outlives its process while anyone holds a handle on it, so "`OpenProcess`
//! succeeds" does not mean "running": the handle is asked whether it is signalled (a process
//! is, once it has ended).

use std::os::windows::io::{AsRawHandle, FromRawHandle, OwnedHandle};

use windows_sys::Win32::Foundation::{
    ERROR_ACCESS_DENIED, FILETIME, GetLastError, HANDLE, WAIT_OBJECT_0, WAIT_TIMEOUT,
};
use windows_sys::Win32::System::Threading::{
    GetExitCodeProcess, GetProcessTimes, OpenProcess, PROCESS_QUERY_LIMITED_INFORMATION,
    PROCESS_SYNCHRONIZE, WaitForSingleObject,
};

/// `STILL_ACTIVE`, what `GetExitCodeProcess` says of a running process.
const STILL_ACTIVE: u32 = 259;

/// A handle on process `pid` with `access`, or the Win32 error `OpenProcess` gave.
fn open_process(pid: u32, access: u32) -> Result<OwnedHandle, u32> {
    // SAFETY: no pointers; a null return is the failure, read at once from GetLastError.
    let h = unsafe { OpenProcess(access, 0, pid) };
    if h.is_null() {
        // SAFETY: no arguments; reads this thread's last error, set by the call above.
        return Err(unsafe { GetLastError() });
    }
    // SAFETY: OpenProcess succeeded: `h` is a new handle that nothing else owns.
    Ok(unsafe { OwnedHandle::from_raw_handle(h as _) })
}

/// When process `pid` was created, in 100 ns units since 1601-01-01 UTC (`FILETIME`);
/// `None` when there is no such process or it cannot be looked at.
pub fn process_start(pid: u32) -> Option<u64> {
    if pid == 0 {
        return None;
    }
    let h = open_process(pid, PROCESS_QUERY_LIMITED_INFORMATION).ok()?;
    let (mut created, mut exited, mut kernel, mut user) = (
        FILETIME::default(),
        FILETIME::default(),
        FILETIME::default(),
        FILETIME::default(),
    );
    // SAFETY: `h` is an open process handle for the call; the four pointers are to live
    // locals of the type the call writes.
    let ok = unsafe {
        GetProcessTimes(
            h.as_raw_handle() as HANDLE,
            &mut created,
            &mut exited,
            &mut kernel,
            &mut user,
        )
    };
    (ok != 0).then(|| (u64::from(created.dwHighDateTime) << 32) | u64::from(created.dwLowDateTime))
}

/// Whether process `pid` exists and has not ended. A process this user may not open
/// (another user's, a protected one) exists; pid 0 (the idle process) names none, as on unix.
pub fn process_running(pid: u32) -> bool {
    if pid == 0 {
        return false;
    }
    let h = match open_process(pid, PROCESS_QUERY_LIMITED_INFORMATION | PROCESS_SYNCHRONIZE) {
        Ok(h) => h,
        Err(ERROR_ACCESS_DENIED) => return true,
        Err(_) => return false,
    };
    // SAFETY: `h` is an open process handle with SYNCHRONIZE; a zero timeout only polls.
    match unsafe { WaitForSingleObject(h.as_raw_handle() as HANDLE, 0) } {
        WAIT_TIMEOUT => true,
        WAIT_OBJECT_0 => false,
        _ => {
            let mut code = 0u32;
            // SAFETY: `h` is an open process handle; `code` is a live local.
            let ok = unsafe { GetExitCodeProcess(h.as_raw_handle() as HANDLE, &mut code) };
            ok == 0 || code == STILL_ACTIVE
        }
    }
}
