//! What an entry is: a file, an executable, a symlink or an empty directory ([`Kind`]), and
//! its code in the encoding.

use std::fmt;

/// The manifest encoding this code writes and reads.
pub const VERSION: u32 = 1;

/// The encoding version of a manifest with an archive ([`super::Archive`]): version 2.
pub const VERSION_ARCHIVE: u32 = 2;

/// What an entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// A regular file, checked out with mode 0644.
    File,
    /// A regular file with an executable bit, checked out with mode 0755.
    Executable,
    /// A symbolic link, recreated with its exact target.
    Symlink,
    /// An empty directory (directories with entries are implied by their entries' paths).
    Dir,
}

impl Kind {
    pub(super) fn code(self) -> u8 {
        match self {
            Kind::File => 1,
            Kind::Executable => 2,
            Kind::Symlink => 3,
            Kind::Dir => 4,
        }
    }

    pub(super) fn from_code(code: u8) -> Option<Kind> {
        Some(match code {
            1 => Kind::File,
            2 => Kind::Executable,
            3 => Kind::Symlink,
            4 => Kind::Dir,
            _ => return None,
        })
    }

    /// The name used in JSON and human output.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::File => "file",
            Kind::Executable => "executable",
            Kind::Symlink => "symlink",
            Kind::Dir => "dir",
        }
    }

    /// The inverse of [`Kind::as_str`].
    pub fn parse(s: &str) -> Option<Kind> {
        Some(match s {
            "file" => Kind::File,
            "executable" => Kind::Executable,
            "symlink" => Kind::Symlink,
            "dir" => Kind::Dir,
            _ => return None,
        })
    }

    /// True for the kinds whose data is a blob.
    pub fn has_blob(self) -> bool {
        matches!(self, Kind::File | Kind::Executable)
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
