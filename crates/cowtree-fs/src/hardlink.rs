//! Hardlinks with the failures a caller falls back on kept apart from real errors.
//!
//! A hardlink is a second name for the same inode: a write through either name is a write to
//! both. cowtree makes hardlinks only when asked to (`--mode hardlink`).

use std::ffi::OsStr;
use std::io;
use std::os::fd::AsFd;
use std::path::Path;

use crate::classify::{HardlinkRefusal, classify_link_errno};
use crate::error::at_paths;

/// What a hardlink attempt did, when it did not fail outright.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HardlinkOutcome {
    /// `dst` is now another name for `src`'s inode.
    Linked,
    /// No link was made, for the reason given (see [`HardlinkRefusal::is_per_file`]).
    Refused(HardlinkRefusal),
    /// The source was not there.
    SourceVanished,
}

/// Links `src_name` under `src_dir` as `dst_name` under `dst_dir`, never following a symlink
/// at either end. An existing destination is an [`io::ErrorKind::AlreadyExists`] error.
#[cfg(unix)]
pub fn hardlink_at(
    src_dir: impl AsFd,
    src_name: &OsStr,
    dst_dir: impl AsFd,
    dst_name: &OsStr,
) -> io::Result<HardlinkOutcome> {
    use rustix::fs::{AtFlags, linkat};
    use rustix::io::Errno;
    match linkat(src_dir, src_name, dst_dir, dst_name, AtFlags::empty()) {
        Ok(()) => Ok(HardlinkOutcome::Linked),
        Err(Errno::NOENT) => Ok(HardlinkOutcome::SourceVanished),
        Err(e) => match classify_link_errno(e.raw_os_error()) {
            Some(refusal) => Ok(HardlinkOutcome::Refused(refusal)),
            None => Err(at_paths(
                "hardlink",
                Path::new(src_name),
                Path::new(dst_name),
                e.into(),
            )),
        },
    }
}

/// [`hardlink_at`] for paths relative to the current directory; errors name both paths.
/// A missing destination parent directory is an error, not [`HardlinkOutcome::SourceVanished`].
#[cfg(unix)]
pub fn hardlink(src: &Path, dst: &Path) -> io::Result<HardlinkOutcome> {
    use rustix::fs::CWD;
    match hardlink_at(CWD, src.as_os_str(), CWD, dst.as_os_str()) {
        Ok(HardlinkOutcome::SourceVanished) if src.symlink_metadata().is_ok() => Err(at_paths(
            "hardlink",
            src,
            dst,
            io::Error::from(io::ErrorKind::NotFound),
        )),
        Ok(outcome) => Ok(outcome),
        Err(e) => Err(at_paths(
            "hardlink",
            src,
            dst,
            crate::error::raw_errno(&e)
                .map(io::Error::from_raw_os_error)
                .unwrap_or(e),
        )),
    }
}
