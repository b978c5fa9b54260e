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
        matches!(self, LinkError::StrictFallback { .. })
    }

    /// The OS error number behind the error, if there is one.
    pub fn raw_os_error(&self) -> Option<i32> {
        match self {
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
