//! What creating a file or directory does to the permission bits it is created with, known
//! in advance where that is certain, so that a caller creating many entries with their final
//! bits can skip reading each one back (an `fstat` per file) to see whether a `chmod` is due.
//!
//! On Linux the kernel removes the process's umask from the bits given to `open(O_CREAT)` and
//! `mkdir`, unless the directory has a default POSIX ACL, which then decides instead; a new
//! directory also inherits the set-group-ID bit of its parent. A [`CreationMask`] is made only
//! where those rules are all that applies: a known local filesystem ([`FOLLOWS_UMASK`]), no
//! default ACL on the directory, and a umask that could be read. Everywhere else (a network or
//! FUSE filesystem, macOS, a directory with a default ACL) there is none, and callers read the
//! new entry's mode back as before.
//!
//! Windows has no permission bits: a new entry takes its directory's ACL, so there is never
//! a mask there ([`CreationMask::of_dir`] is `None`, [`process_umask`] too); the rule itself
//! (the pure functions) builds and is tested on every platform.

use std::io;
#[cfg(unix)]
use std::os::fd::AsFd;

/// Filesystems whose new entries get exactly the bits asked for, less the umask, where the
/// directory has no default ACL (see [`crate::fstype::FsType::name`]).
pub const FOLLOWS_UMASK: &[&str] = &["xfs", "btrfs", "ext4", "tmpfs", "bcachefs", "f2fs"];

/// What creation removes from the permission bits of entries made in one directory, and in
/// the directories a caller creates beneath it (which inherit its lack of a default ACL and
/// of the set-group-ID bit). Made by [`CreationMask::of_dir`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CreationMask {
    umask: u32,
    setgid: bool,
}

impl CreationMask {
    /// The mask for entries created in `dir`, given the process's umask (`umask`, e.g. from
    /// [`process_umask`]): `None` when it cannot be known for sure (umask unknown, a
    /// filesystem not in [`FOLLOWS_UMASK`], a default ACL on `dir`, or not Linux). It stays
    /// true for directories the caller creates beneath `dir` as long as nobody puts a default
    /// ACL or the set-group-ID bit on them, and for the process's umask of the moment it is
    /// given: a caller that may change its umask must make a new mask.
    #[cfg(unix)]
    pub fn of_dir(dir: impl AsFd, umask: Option<u32>) -> io::Result<Option<CreationMask>> {
        let Some(umask) = umask else { return Ok(None) };
        let dir = dir.as_fd();
        if !FOLLOWS_UMASK.contains(&crate::fstype::fs_type(dir)?.name()) {
            return Ok(None);
        }
        if crate::sys::has_default_acl(dir)? != Some(false) {
            return Ok(None);
        }
        let st = rustix::fs::fstat(dir)?;
        Ok(Some(CreationMask {
            umask: umask & 0o777,
            setgid: crate::sys::stat_mode(&st) & 0o2000 != 0,
        }))
    }

    /// On Windows there is none: no permission bits are applied at creation (see the module
    /// doc). Never an error.
    #[cfg(windows)]
    pub fn of_dir(
        _dir: impl std::os::windows::io::AsHandle,
        _umask: Option<u32>,
    ) -> io::Result<Option<CreationMask>> {
        Ok(None)
    }

    /// The mask for a known umask and parent set-group-ID bit, for tests of the rule itself.
    pub fn new(umask: u32, parent_setgid: bool) -> CreationMask {
        CreationMask {
            umask: umask & 0o777,
            setgid: parent_setgid,
        }
    }

    /// True when a regular file created with the permission bits `mode & 0o777` is sure to
    /// have exactly the bits `mode` (no set-user-ID, set-group-ID or sticky bit asked for,
    /// none that the umask removes).
    pub fn file_exact(self, mode: u32) -> bool {
        mode & 0o7000 == 0 && mode & self.umask == 0
    }

    /// True when a directory created with the permission bits `mode & 0o777` is sure to have
    /// exactly the bits `mode`: as [`CreationMask::file_exact`], and its parent does not hand
    /// down the set-group-ID bit.
    pub fn dir_exact(self, mode: u32) -> bool {
        !self.setgid && self.file_exact(mode)
    }
}

/// The process's umask: `None` on Windows, which has none.
#[cfg(windows)]
pub fn process_umask() -> Option<u32> {
    None
}

/// The process's umask, read without changing it (the `Umask:` line of `/proc/self/status`,
/// Linux 4.7 and later); `None` where it cannot be read. Setting the umask to read it back
/// would race with other threads creating files.
#[cfg(unix)]
pub fn process_umask() -> Option<u32> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    parse_umask(&status)
}

#[cfg_attr(windows, allow(dead_code))]
fn parse_umask(status: &str) -> Option<u32> {
    let line = status.lines().find(|l| l.starts_with("Umask:"))?;
    u32::from_str_radix(line["Umask:".len()..].trim(), 8).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_is_exact_only_when_the_umask_removes_none_of_its_bits_and_no_special_bit_is_asked() {
        let m = CreationMask::new(0o022, false);
        assert!(m.file_exact(0o644));
        assert!(m.file_exact(0o755));
        assert!(m.file_exact(0o400));
        assert!(!m.file_exact(0o664), "group write is removed by 022");
        assert!(!m.file_exact(0o666));
        assert!(!m.file_exact(0o1755), "the sticky bit is not set by open");
        assert!(!m.file_exact(0o4755));
        assert!(!m.file_exact(0o2755));
        let strict = CreationMask::new(0o077, false);
        assert!(strict.file_exact(0o700));
        assert!(strict.file_exact(0o600));
        assert!(!strict.file_exact(0o644));
        let none = CreationMask::new(0, false);
        assert!(none.file_exact(0o777));
    }

    #[test]
    fn a_directory_under_a_setgid_parent_is_never_exact() {
        let m = CreationMask::new(0o022, true);
        assert!(
            m.file_exact(0o755),
            "files do not inherit the set-group-ID bit"
        );
        assert!(!m.dir_exact(0o755));
        let plain = CreationMask::new(0o022, false);
        assert!(plain.dir_exact(0o755));
        assert!(!plain.dir_exact(0o775));
        assert!(!plain.dir_exact(0o3755));
    }

    #[test]
    fn the_umask_line_of_proc_status_is_parsed_as_octal() {
        assert_eq!(
            parse_umask("Name:\tx\nUmask:\t0022\nState:\tR\n"),
            Some(0o022)
        );
        assert_eq!(parse_umask("Umask:\t0077\n"), Some(0o077));
        assert_eq!(parse_umask("Name:\tx\n"), None);
        assert_eq!(parse_umask("Umask:\tzz\n"), None);
    }
}
