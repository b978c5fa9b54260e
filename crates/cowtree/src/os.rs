//! What the command does differently per platform at the level of the process: its limits,
//! its priority, how it runs git in its place, what a child's exit status means. Everything
//! below the command (files, directories, clones) is in the libraries' own seams
//! (`cowtree_fs::sys`).

use std::process::{Command, ExitStatus};

/// The exit status a shell would report for `status`: its code, or on unix 128 + the signal
/// that ended it.
pub fn status_code(status: ExitStatus) -> i32 {
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt as _;
        status
            .code()
            .unwrap_or_else(|| 128 + status.signal().unwrap_or(0))
    }
    #[cfg(windows)]
    {
        // A Windows process always ends with a code (an NTSTATUS when it crashed).
        status.code().unwrap_or(1)
    }
}

/// Runs `cmd` in this process's place: on unix it replaces this process (signals, exit status
/// and terminal handling are the program's own); on Windows, which has no `exec`, it runs it
/// with this process's console and standard streams and exits with its code (Ctrl-C reaches
/// both: the child's own handling decides). Returns only when it could not be started.
pub fn exec(cmd: &mut Command) -> std::io::Error {
    #[cfg(unix)]
    {
        use std::os::unix::process::CommandExt as _;
        cmd.exec()
    }
    #[cfg(windows)]
    {
        match cmd.status() {
            Ok(status) => std::process::exit(status_code(status)),
            Err(e) => e,
        }
    }
}

/// A copy of this process's standard error, for a child's standard output (git's messages
/// kept off this command's stdout).
pub fn stderr_for_child() -> std::io::Result<std::process::Stdio> {
    #[cfg(unix)]
    let owned = std::os::fd::AsFd::as_fd(&std::io::stderr()).try_clone_to_owned()?;
    #[cfg(windows)]
    let owned =
        std::os::windows::io::AsHandle::as_handle(&std::io::stderr()).try_clone_to_owned()?;
    Ok(std::process::Stdio::from(owned))
}

/// The lowest CPU priority (nice 19) and the idle I/O class: a background job (the pool's
/// refill; unix only) takes what the machine does not use.
#[cfg(unix)]
pub fn lower_priority() {
    let _ = rustix::process::setpriority_process(None, 19);
    // ioprio_set(IOPRIO_WHO_PROCESS, 0, IOPRIO_CLASS_IDLE << 13); not in rustix.
    #[cfg(target_os = "linux")]
    // SAFETY: a plain system call with integer arguments; it changes this process only.
    unsafe {
        libc::syscall(libc::SYS_ioprio_set, 1, 0, 3 << 13);
    }
}

/// Parallel walks keep a directory descriptor per work item: allow what the hard limit
/// allows (unix; Windows has no such limit on handles).
pub fn raise_fd_limit() {
    #[cfg(unix)]
    {
        use rustix::process::{Resource, getrlimit, setrlimit};
        let mut lim = getrlimit(Resource::Nofile);
        if lim.current < lim.maximum {
            lim.current = lim.maximum;
            let _ = setrlimit(Resource::Nofile, lim);
        }
    }
}

/// Lets a closed output pipe end the process quietly, as it ends `ls` or `git status`
/// (`cowtree status | head`), instead of the write failing with EPIPE and the print panicking.
/// Only for the commands that change nothing: one that writes to a filesystem keeps ignoring
/// SIGPIPE, so that a reader going away cannot kill it halfway through its work. Windows has
/// no SIGPIPE: there a print to a closed pipe ends the process quietly through the panic hook
/// `quiet_broken_pipe` sets.
pub fn die_quietly_on_closed_pipe() {
    #[cfg(unix)]
    // SAFETY: resetting SIGPIPE to its default disposition installs no handler; it runs at
    // start-up, before any other thread exists.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    #[cfg(windows)]
    quiet_broken_pipe();
}

/// Windows: a print whose reader went away (`print!` panics with "failed printing to stdout:
/// The pipe is being closed") ends the process quietly with the status a unix shell reports
/// for SIGPIPE (141), as on unix; every other panic is reported as before.
#[cfg(windows)]
fn quiet_broken_pipe() {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let text = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or("");
        // std's message for a failed print, with the error's text (ERROR_NO_DATA,
        // ERROR_BROKEN_PIPE).
        if text.starts_with("failed printing to std")
            && (text.contains("pipe is being closed") || text.contains("pipe has been ended"))
        {
            std::process::exit(141);
        }
        previous(info);
    }));
}

/// Starts `cmd`'s child in a process group of its own, so that [`kill_group`] reaches what it
/// starts (git's ssh) and a terminal's Ctrl-C does not.
pub fn own_group(cmd: &mut Command) -> &mut Command {
    #[cfg(unix)]
    {
        use std::os::unix::process::CommandExt as _;
        cmd.process_group(0)
    }
    #[cfg(windows)]
    {
        use std::os::windows::process::CommandExt as _;
        use windows_sys::Win32::System::Threading::CREATE_NEW_PROCESS_GROUP;
        cmd.creation_flags(CREATE_NEW_PROCESS_GROUP)
    }
}

/// Kills `child`, started by [`own_group`], and on unix the rest of its process group (what
/// it started). On Windows the child itself (`TerminateProcess`): what it started is not in
/// a job, and runs on; the caller does not wait for it.
pub fn kill_group(child: &mut std::process::Child) {
    #[cfg(unix)]
    // The child is not reaped yet, so its pid, which is also its group's id, is still its own.
    if let Some(pid) = rustix::process::Pid::from_raw(child.id() as i32) {
        let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
    }
    #[cfg(windows)]
    let _ = child.kill();
}

/// `rel`, a relative path, as a snapshot's manifest names it: its bytes with `/` between
/// components. On unix the path's own bytes; on Windows its components, each of them
/// Unicode (`None` when one is not: a manifest's names are UTF-8 there), joined with `/`.
pub fn manifest_path(rel: &std::path::Path) -> Option<Vec<u8>> {
    #[cfg(unix)]
    {
        use std::os::unix::ffi::OsStrExt as _;
        Some(rel.as_os_str().as_bytes().to_vec())
    }
    #[cfg(windows)]
    {
        let mut out = Vec::new();
        for c in rel.components() {
            let std::path::Component::Normal(name) = c else {
                return None;
            };
            if !out.is_empty() {
                out.push(b'/');
            }
            out.extend_from_slice(name.to_str()?.as_bytes());
        }
        Some(out)
    }
}

/// A path from bytes a manifest or git wrote: on unix the bytes themselves; on Windows,
/// where both write UTF-8, their text (a byte that is not UTF-8 becomes U+FFFD, and the path
/// then names nothing).
pub fn path_from_bytes(b: &[u8]) -> std::path::PathBuf {
    #[cfg(unix)]
    {
        use std::os::unix::ffi::OsStrExt as _;
        std::path::PathBuf::from(std::ffi::OsStr::from_bytes(b))
    }
    #[cfg(windows)]
    {
        std::path::PathBuf::from(String::from_utf8_lossy(b).into_owned())
    }
}

/// The name of the filesystem the directory `dir` is on (`xfs`, `btrfs`, `ext4`, ...; on
/// Windows the volume's own: `NTFS`, `ReFS`), `None` when it cannot be opened or asked.
pub fn fs_name(dir: &std::path::Path) -> Option<std::borrow::Cow<'static, str>> {
    #[cfg(unix)]
    {
        cowtree_fs::dir::Dir::open(dir)
            .and_then(cowtree_fs::fstype::fs_type)
            .map(|t| t.name().into())
            .ok()
    }
    #[cfg(windows)]
    {
        cowtree_fs::probe::volume(dir)
            .map(|v| v.filesystem.into())
            .ok()
    }
}

/// A path git printed (`rev-parse --show-toplevel`, `worktree list`): as it is on unix; on
/// Windows, where Git for Windows prints `C:/Users/me/repo`, with the platform's separator, so
/// that what cowtree joins to it and prints reads as one Windows path.
pub fn path_from_git(s: &str) -> std::path::PathBuf {
    #[cfg(unix)]
    {
        std::path::PathBuf::from(s)
    }
    #[cfg(windows)]
    {
        std::path::PathBuf::from(s.replace('/', "\\"))
    }
}
