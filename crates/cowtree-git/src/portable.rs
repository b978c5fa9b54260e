//! The few conversions between git's paths (bytes) and the platform's names that differ
//! between unix and Windows, each one call on unix (the same as before: no cost there).
//!
//! git keeps paths as bytes. On unix a name is any bytes, so a path's bytes are its name. On
//! Windows a name is UTF-16: git's paths are taken as UTF-8 (as Git for Windows takes them),
//! and bytes that are not UTF-8 give the empty name, which every directory-relative call of
//! `cowtree_fs::dir::Dir` refuses (`check_name`), so they fail with an error rather than
//! naming another file.

use std::ffi::OsStr;
use std::path::Path;

/// The name whose bytes are `b`.
#[cfg(unix)]
pub(crate) fn os_str(b: &[u8]) -> &OsStr {
    std::os::unix::ffi::OsStrExt::from_bytes(b)
}

/// The name whose bytes are `b` (UTF-8; anything else is the empty name, refused by every
/// call that takes it).
#[cfg(windows)]
pub(crate) fn os_str(b: &[u8]) -> &OsStr {
    OsStr::new(std::str::from_utf8(b).unwrap_or(""))
}

/// The bytes of `s`, as git keeps a path (on Windows its UTF-8, for a name that is Unicode).
pub(crate) fn bytes(s: &OsStr) -> &[u8] {
    s.as_encoded_bytes()
}

/// The path whose bytes are `b` (see [`os_str`]).
pub(crate) fn path(b: &[u8]) -> &Path {
    Path::new(os_str(b))
}

/// A path as git writes it into a file (`.git`'s `gitdir:`, a registration's `gitdir`): its
/// bytes on unix; on Windows as Git for Windows writes them (`strbuf_realpath`'s
/// `convert_slashes` and mingw's `normalize_ntpath`): the `\\?\` or `\??\` prefix dropped,
/// `\\?\UNC\server\share` as `//server/share`, and every backslash a forward slash, e.g.
/// `C:/Users/me/repo/.git/worktrees/x`.
#[cfg(unix)]
pub(crate) fn git_path_text(p: &Path) -> Vec<u8> {
    bytes(p.as_os_str()).to_vec()
}

/// See the unix one.
#[cfg(windows)]
// Used by the registration, not yet built on Windows (see `add_windows.rs`).
#[allow(dead_code)]
pub(crate) fn git_path_text(p: &Path) -> Vec<u8> {
    git_path_text_of(bytes(p.as_os_str()))
}

/// [`git_path_text`]'s Windows rule on a path's bytes (a function of its own, tested on every
/// platform).
#[allow(dead_code)]
pub(crate) fn git_path_text_of(b: &[u8]) -> Vec<u8> {
    let mut rest = b;
    let mut out = Vec::with_capacity(b.len());
    if rest.first() == Some(&b'\\') {
        if let Some(r) = rest
            .strip_prefix(br"\??\")
            .or_else(|| rest.strip_prefix(br"\\?\"))
        {
            rest = r;
        }
        if rest.len() >= 4 && rest[..4].eq_ignore_ascii_case(br"UNC\") {
            out.extend_from_slice(b"//");
            rest = &rest[4..];
        }
    }
    out.extend(rest.iter().map(|&c| if c == b'\\' { b'/' } else { c }));
    out
}

/// A child's exit status as a shell gives it: its code, or on unix 128 + the signal that
/// ended it.
#[cfg(unix)]
pub(crate) fn exit_status(status: &std::process::ExitStatus) -> i32 {
    status
        .code()
        .unwrap_or_else(|| 128 + std::os::unix::process::ExitStatusExt::signal(status).unwrap_or(0))
}

/// A child's exit status (Windows has no signals: always its code).
#[cfg(windows)]
pub(crate) fn exit_status(status: &std::process::ExitStatus) -> i32 {
    status.code().unwrap_or(128)
}

/// `p` resolved as git resolves a path (`realpath`, see [`plain`]); `p` as it was when it
/// cannot be resolved.
pub(crate) fn canonical(p: &Path) -> std::path::PathBuf {
    p.canonicalize()
        .map(plain)
        .unwrap_or_else(|_| p.to_path_buf())
}

/// A path `canonicalize` gave, as git names it: itself on unix; on Windows without the
/// `\\?\` prefix `canonicalize` adds, where the path can be named without it (a drive
/// path shorter than the old limit), as Git for Windows names it, and as the paths read
/// from git's files (`C:/...`) compare equal to it.
#[cfg(unix)]
#[inline]
pub(crate) fn plain(c: std::path::PathBuf) -> std::path::PathBuf {
    c
}

/// See the unix one.
#[cfg(windows)]
pub(crate) fn plain(c: std::path::PathBuf) -> std::path::PathBuf {
    let b = bytes(c.as_os_str());
    if let Some(rest) = b.strip_prefix(br"\\?\")
        && rest.len() >= 3
        && rest[0].is_ascii_alphabetic()
        && rest[1] == b':'
        && rest[2] == b'\\'
        && rest.len() < 248
    {
        return path(rest).to_path_buf();
    }
    c
}

/// The process's umask (read by setting it and setting it back, as git reads it).
#[cfg(unix)]
pub(crate) fn umask() -> u32 {
    let old = rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o022));
    rustix::process::umask(old);
    cowtree_fs::sys::mode_bits(old)
}

/// The umask on Windows: none applies to new files (they get their directory's ACL; Git for
/// Windows sets no mode either). 0o022, so that modes computed from it read as on unix.
#[cfg(windows)]
pub(crate) fn umask() -> u32 {
    0o022
}

/// Takes the run lock of a registration directory `dir` whose `locked` text names `owner`
/// (`None`: this run's own, being made): `flock` on unix, also held by the processes the run
/// starts (see `register.rs`).
#[cfg(unix)]
pub(crate) fn try_lock_dir(
    dir: &cowtree_fs::dir::Dir,
    _owner: Option<cowtree_fs::process::Stamp>,
) -> std::io::Result<bool> {
    dir.try_lock_exclusive()
}

/// Windows cannot `flock` a directory, and a handle held open on the registration would stop
/// its rename and its removal: the run that `locked` names (its pid and start time, not
/// fooled by a reused pid) is the lock. Free when no run is named (this run's own, being
/// made) or the run named is dead. Not covered there: the processes a killed run had started
/// (a `git branch` still running) do not hold it, and two cleanups of one dead run are not
/// kept apart (the second finds less to remove).
#[cfg(windows)]
pub(crate) fn try_lock_dir(
    _dir: &cowtree_fs::dir::Dir,
    owner: Option<cowtree_fs::process::Stamp>,
) -> std::io::Result<bool> {
    Ok(owner.is_none_or(|s| !s.is_alive()))
}

/// Takes the lock of a run's record file `f` (named after `owner`; `None`: this run's own).
#[cfg(unix)]
pub(crate) fn try_lock_file(
    f: &std::fs::File,
    _owner: Option<&cowtree_fs::process::Stamp>,
) -> std::io::Result<bool> {
    match rustix::fs::flock(f, rustix::fs::FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => Ok(true),
        Err(rustix::io::Errno::WOULDBLOCK) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// See [`try_lock_dir`]: on Windows the run the record names is its lock.
#[cfg(windows)]
pub(crate) fn try_lock_file(
    _f: &std::fs::File,
    owner: Option<&cowtree_fs::process::Stamp>,
) -> std::io::Result<bool> {
    Ok(owner.is_none_or(|s| !s.is_alive()))
}

/// Whether two `stat`s are of one entry (device and file number).
pub(crate) fn same_entry(a: &cowtree_fs::dir::Stat, b: &cowtree_fs::dir::Stat) -> bool {
    cowtree_fs::sys::stat_ino(a) == cowtree_fs::sys::stat_ino(b)
        && cowtree_fs::sys::stat_dev(a) == cowtree_fs::sys::stat_dev(b)
}

/// The device `path` is on (following a final symlink), as `stat`'s `st_dev`: on Windows the
/// volume serial number.
#[cfg(unix)]
pub(crate) fn path_dev(path: &Path) -> Option<u64> {
    rustix::fs::stat(path)
        .ok()
        .map(|st| cowtree_fs::sys::stat_dev(&st))
}

/// See the unix one.
#[cfg(windows)]
pub(crate) fn path_dev(path: &Path) -> Option<u64> {
    cowtree_fs::sys::path_id(path, true)
        .ok()
        .map(|(dev, _)| dev)
}

/// An open file's modification time (seconds, nanoseconds).
#[cfg(unix)]
pub(crate) fn file_mtime(m: &std::fs::Metadata) -> (i64, u32) {
    use std::os::unix::fs::MetadataExt;
    (m.mtime(), m.mtime_nsec() as u32)
}

/// See the unix one (Windows keeps it in 100 ns units).
#[cfg(windows)]
pub(crate) fn file_mtime(m: &std::fs::Metadata) -> (i64, u32) {
    let t = m
        .modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .unwrap_or_default();
    (t.as_secs() as i64, t.subsec_nanos())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn git_path_text_is_what_git_for_windows_writes() {
        for (given, want) in [
            (
                &br"C:\Users\me\repo\.git\worktrees\x"[..],
                &b"C:/Users/me/repo/.git/worktrees/x"[..],
            ),
            (br"\\?\C:\Users\me\wt", b"C:/Users/me/wt"),
            (br"\??\D:\a\b", b"D:/a/b"),
            (br"\\?\UNC\server\share\repo", b"//server/share/repo"),
            (br"\\server\share\repo", b"//server/share/repo"),
            (b"C:/already/forward", b"C:/already/forward"),
            (b"Z:\\tmp\\caf\xc3\xa9", b"Z:/tmp/caf\xc3\xa9"),
        ] {
            assert_eq!(
                git_path_text_of(given),
                want,
                "{}",
                String::from_utf8_lossy(given)
            );
        }
    }

    #[test]
    fn names_round_trip_through_bytes() {
        let n = os_str("dir/caf\u{e9}.txt".as_bytes());
        assert_eq!(bytes(n), "dir/caf\u{e9}.txt".as_bytes());
        assert_eq!(path(b"a/b"), Path::new("a/b"));
    }

    #[cfg(windows)]
    #[test]
    fn bytes_that_are_not_utf8_are_the_empty_name_on_windows() {
        assert_eq!(os_str(b"bad\xff"), OsStr::new(""));
    }
}
