//! One publication of a merge ([`Op`]): what the link pass hands the journal
//! ([`crate::txn`]) to rename into place.

use std::ffi::OsString;
use std::path::PathBuf;

use cowtree_fs::dir::FileType;
use cowtree_fs::sys::Ino;

/// One publication: the entry built as `tmp` in the destination directory `dir` (relative to
/// the root) goes to `name`, replacing what is there when `replace`.
#[derive(Debug, Clone)]
pub(crate) struct Op {
    pub dir: PathBuf,
    pub tmp: OsString,
    pub name: OsString,
    pub replace: bool,
    /// The new entry's inode, by which a recovery tells whether it was published.
    pub ino: Ino,
    /// The new entry's device and type, as this run made it (a recovery reads only the
    /// inode from the journal). Publishing renames nothing else from `tmp`.
    pub made: Option<(u64, FileType)>,
}
