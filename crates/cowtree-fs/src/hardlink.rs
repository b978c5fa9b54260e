//! Hardlinks with the failures a caller falls back on kept apart from real errors.
//!
//! A hardlink is a second name for the same inode: a write through either name is a write to
//! both. cowtree makes hardlinks only when asked to (`--mode hardlink`).

use std::ffi::OsStr;
use std::io;
#[cfg(unix)]
use std::os::fd::AsFd;
#[cfg(windows)]
use std::os::windows::io::AsHandle;
use std::path::Path;

use crate::classify::HardlinkRefusal;
#[cfg(unix)]
use crate::classify::classify_link_errno;
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

/// Links `src_name` under `src_dir` as `dst_name` under `dst_dir` on Windows: the source entry
/// is opened relative to its directory's handle and never followed (a symlink or junction is
/// linked itself), then given the second name relative to `dst_dir`'s handle
/// (`FileLinkInformation` with `RootDirectory`, never replacing). Both names are checked as
/// [`crate::dir::check_name`] checks them first. An existing destination is an
/// [`io::ErrorKind::AlreadyExists`] error; a directory as the source is
/// [`HardlinkRefusal::NotPermitted`], as `EPERM` is on unix; the refusals are
/// [`crate::classify::classify_win32_link_error`]'s.
#[cfg(windows)]
pub fn hardlink_at(
    src_dir: impl AsHandle,
    src_name: &OsStr,
    dst_dir: impl AsHandle,
    dst_name: &OsStr,
) -> io::Result<HardlinkOutcome> {
    use crate::classify::classify_win32_link_error;
    use crate::dir::check_name;
    use crate::sys::at::{self, Disposition, Expect, NewName};
    check_name(src_name)?;
    check_name(dst_name)?;
    let err = |e: io::Error| at_paths("hardlink", Path::new(src_name), Path::new(dst_name), e);
    let src = match at::open_at(
        src_dir.as_handle(),
        &at::wide(src_name),
        0,
        Disposition::Open,
        Expect::Any,
    ) {
        Ok(h) => h,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Ok(HardlinkOutcome::SourceVanished);
        }
        Err(e) => return Err(err(e)),
    };
    let (attributes, _) = at::attribute_tag(src.as_handle()).map_err(err)?;
    if at::is_plain_directory(attributes) {
        return Ok(HardlinkOutcome::Refused(HardlinkRefusal::NotPermitted));
    }
    match at::set_name(
        src.as_handle(),
        dst_dir.as_handle(),
        &at::wide(dst_name),
        false,
        NewName::Link,
    ) {
        Ok(()) => Ok(HardlinkOutcome::Linked),
        Err(e) => match e
            .raw_os_error()
            .and_then(|c| u32::try_from(c).ok())
            .and_then(classify_win32_link_error)
        {
            Some(refusal) => Ok(HardlinkOutcome::Refused(refusal)),
            None => Err(err(e)),
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
