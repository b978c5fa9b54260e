//! Why [`crate::link_tree`] stopped. Every message names the full paths involved.

use std::fmt::Write as _;
use std::io;
use std::path::{Path, PathBuf};

use crate::state::{Attempt, Failure};

/// How many special files a [`LinkError::SpecialFiles`] message lists by name.
const LIST_MAX: usize = 10;

/// Why a link run failed. The variants before [`LinkError::StrictFallback`] are found before
/// any work is done, so nothing was written.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    /// The source does not exist.
    #[error("source {0} does not exist")]
    SourceMissing(PathBuf),
    /// The source is neither a directory nor a regular file.
    #[error("source {0} is a {1}; only directories and regular files can be linked")]
    SourceNotLinkable(PathBuf, &'static str),
    /// Source and destination are the same file or directory.
    #[error("source and destination are the same: {0}")]
    SameSourceAndDestination(PathBuf),
    /// The destination is the source or lies inside it: the tree would grow while it is
    /// being read.
    #[error("destination {dst} is inside the source {src}; a tree cannot be linked into itself")]
    DestinationInsideSource {
        /// The source.
        src: PathBuf,
        /// The destination.
        dst: PathBuf,
    },
    /// The source lies inside the existing destination that would be merged into.
    #[error(
        "source {src} is inside the destination {dst}; merging a tree into its own parent would change it while it is read"
    )]
    SourceInsideDestination {
        /// The source.
        src: PathBuf,
        /// The destination.
        dst: PathBuf,
    },
    /// The destination exists and [`crate::OnExisting::Fail`] was asked for.
    #[error("destination {0} already exists (nothing was changed)")]
    DestinationExists(PathBuf),
    /// The destination exists and is not a directory, where a directory tree would go.
    #[error("destination {0} exists and is not a directory")]
    DestinationNotDirectory(PathBuf),
    /// The destination is a symlink; cowtree never follows symlinks in a destination.
    #[error(
        "destination {0} is a symlink; cowtree never follows symlinks in a destination (name the directory it points to instead)"
    )]
    DestinationIsSymlink(PathBuf),
    /// The destination path has no final name (e.g. `/` or `..`).
    #[error("destination {0} must end in a name")]
    InvalidDestination(PathBuf),
    /// The source contains FIFOs, sockets or device nodes and `skip_special` was not set.
    #[error("{}", special_message(src, paths))]
    SpecialFiles {
        /// The source root.
        src: PathBuf,
        /// Every special file found.
        paths: Vec<PathBuf>,
    },
    /// `strict` was set and a file could not be linked by the requested method.
    #[error(
        "strict: refused to fall back from {attempt} for {src} -> {dst}: {reason} ({why})",
        attempt = attempt_name(*.attempt),
        reason = .failure.as_str(),
        why = crate::report::describe(*.failure)
    )]
    StrictFallback {
        /// The source file.
        src: PathBuf,
        /// Where it was going.
        dst: PathBuf,
        /// The method that did not work.
        attempt: Attempt,
        /// Why.
        failure: Failure,
    },
    /// A method that had already worked for other files on the same pair of filesystems
    /// failed for the whole pair: something changed under the run, and copying now would
    /// hide it.
    #[error(
        "{attempt} of {src} -> {dst} failed with {reason} ({why}) after it had worked for other files on the same filesystems; not falling back",
        attempt = attempt_name(*.attempt),
        reason = .failure.as_str(),
        why = crate::report::describe(*.failure)
    )]
    FailedAfterSuccess {
        /// The source file.
        src: PathBuf,
        /// Where it was going.
        dst: PathBuf,
        /// The method that failed.
        attempt: Attempt,
        /// Why.
        failure: Failure,
    },
    /// A path mapping (or a list entry) gave a destination path that is not a valid relative
    /// path (absolute, empty, with `.`, `..`, NUL, or too long).
    #[error("destination path {path:?} for {src} is not a valid relative path: {why}")]
    InvalidDestinationPath {
        /// The source entry.
        src: PathBuf,
        /// The path that was given.
        path: PathBuf,
        /// What is wrong with it.
        why: cowtree_fs::name::NameError,
    },
    /// Two sources give an entry at one destination path and [`crate::OnExisting::Fail`] was
    /// asked for. Found before anything is written.
    #[error(
        "{} and {} both go to {} (nothing was written; pass overwrite or skip to decide)",
        sources[0].display(),
        sources[1].display(),
        path.display()
    )]
    Collision {
        /// The destination path.
        path: PathBuf,
        /// The two source entries.
        sources: [PathBuf; 2],
    },
    /// A merge into an existing destination failed, and putting the destination back as it
    /// was failed too: part of the merge may be visible there. Everything that could be put
    /// back was; the next run into the same destination (or [`crate::Linker::recover`]) puts
    /// back what it finds still published and removes the marked temporary entries left
    /// behind, those it can still reach by their paths (not those in a directory moved away
    /// meanwhile). It never completes the failed merge.
    #[error(
        "{error}; undoing the merge into {dst} failed too ({undo}), so part of it may be there"
    )]
    UndoFailed {
        /// Why the merge stopped.
        error: Box<LinkError>,
        /// The destination.
        dst: PathBuf,
        /// Why it could not be undone.
        undo: io::Error,
    },
    /// The session's [`crate::CancelHandle`] was cancelled: the call stopped and left the
    /// destination (this path) as it was. Nothing appeared at a new destination; a merge was
    /// rolled back (unless wrapped in [`LinkError::UndoFailed`]).
    #[error("linking into {0} was cancelled; nothing was changed there")]
    Cancelled(PathBuf),
    /// Another merge (in this process or another) holds the lock on the existing destination
    /// and [`crate::LinkOptions::wait`] is false.
    #[error(
        "another cowtree run is merging into {0} (it holds the lock on that directory); nothing was changed there"
    )]
    DestinationBusy(PathBuf),
    /// The call asks for something this platform does not have (on Windows: a whole-tree
    /// copy, a merge into an existing destination, owners, attributes, ACLs, hardlinks or
    /// special files kept; see [`crate::options::unsupported_here`]). Refused before
    /// anything is written.
    #[error("{0} is not available on {os}; nothing was changed", os = std::env::consts::OS)]
    Unsupported(&'static str),
    /// An I/O error about one path.
    #[error("{op} {path}: {source}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// The path.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// An I/O error while linking one entry.
    #[error("{op} {src} -> {dst}: {source}")]
    Link {
        /// What was being done.
        op: &'static str,
        /// The source entry.
        src: PathBuf,
        /// The destination entry.
        dst: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
}

impl LinkError {
    /// True when this is a `strict` refusal of a fallback (the CLI exits 3 for it).
    pub fn is_strict_refusal(&self) -> bool {
        matches!(self.cause(), LinkError::StrictFallback { .. })
    }

    /// True unless the call may have left part of its work in the destination
    /// ([`LinkError::UndoFailed`]): a new destination was not created, an existing one is as
    /// it was before the call (but for marked temporary names the next run removes).
    pub fn destination_unchanged(&self) -> bool {
        !matches!(self, LinkError::UndoFailed { .. })
    }

    /// The error that stopped the run (inside [`LinkError::UndoFailed`]).
    pub fn cause(&self) -> &LinkError {
        match self {
            LinkError::UndoFailed { error, .. } => error.cause(),
            e => e,
        }
    }

    /// The OS error number behind the error, if there is one.
    pub fn raw_os_error(&self) -> Option<i32> {
        match self {
            LinkError::UndoFailed { error, .. } => error.raw_os_error(),
            LinkError::Io { source, .. } | LinkError::Link { source, .. } => {
                cowtree_fs::raw_errno(source)
            }
            _ => None,
        }
    }

    pub(crate) fn io(op: &'static str, path: &Path, err: io::Error) -> LinkError {
        LinkError::Io {
            op,
            path: path.to_path_buf(),
            source: bare(err),
        }
    }

    /// The refusal to replace an existing directory by a file or symlink: the directory may
    /// hold entries the source does not have, and overwriting must never delete them.
    pub(crate) fn directory_in_the_way(path: &Path) -> LinkError {
        LinkError::io(
            "replace",
            path,
            io::Error::new(
                io::ErrorKind::IsADirectory,
                "a directory is there; cowtree does not replace a directory with a file or \
                 symlink (remove it first)",
            ),
        )
    }

    pub(crate) fn link(op: &'static str, src: &Path, dst: &Path, err: io::Error) -> LinkError {
        LinkError::Link {
            op,
            src: src.to_path_buf(),
            dst: dst.to_path_buf(),
            source: bare(err),
        }
    }
}

/// The cowtree-fs `*_at` functions name only the entry's own name; the link layer names full
/// paths itself, so keep just the OS error when there is one (and the message otherwise).
fn bare(err: io::Error) -> io::Error {
    match cowtree_fs::raw_errno(&err) {
        Some(code) if err.kind() != io::ErrorKind::InvalidInput => {
            io::Error::from_raw_os_error(code)
        }
        _ => err,
    }
}

/// The name of a method, for messages.
pub fn attempt_name(a: Attempt) -> &'static str {
    match a {
        Attempt::Clone => "clone",
        Attempt::Copy => "copy",
        Attempt::Hardlink => "hardlink",
        Attempt::Symlink => "symlink",
    }
}

fn special_message(src: &Path, paths: &[PathBuf]) -> String {
    let mut msg = format!(
        "{} contains {} special file{} (FIFO, socket or device node) that cannot be linked; nothing was written:",
        src.display(),
        paths.len(),
        if paths.len() == 1 { "" } else { "s" }
    );
    for p in paths.iter().take(LIST_MAX) {
        let _ = write!(msg, "\n  {}", p.display());
    }
    if paths.len() > LIST_MAX {
        let _ = write!(msg, "\n  ... and {} more", paths.len() - LIST_MAX);
    }
    msg.push_str("\n(skip them with skip_special / --skip-special)");
    msg
}
