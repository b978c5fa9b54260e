//! A new destination made whole in one call ([`crate::LinkOptions::whole_tree`]): the
//! linker's side of the seam [`cowtree_fs::whole_tree`]. The linker says which of its options
//! need per-file work ([`requested`], pure); the seam decides the rest and makes the tree.

#[cfg(unix)]
use std::ffi::OsStr;
use std::path::Path;
use std::time::Instant;

#[cfg(unix)]
use cowtree_fs::dir::Dir;
#[cfg(unix)]
use cowtree_fs::subvolume::{At, Cause};
use cowtree_fs::whole_tree::NotUsed;
#[cfg(unix)]
use cowtree_fs::whole_tree::{Request, WholeTree, try_whole_tree};

use crate::error::LinkError;
use crate::options::LinkOptions;
use crate::report::LinkReport;
use crate::state::LinkMode;

/// The reason for a file source (only a directory is copied whole).
pub(crate) const FILE_SOURCE: NotUsed = NotUsed::Requested {
    code: "file",
    why: "a file (not a directory)",
};

/// What the call is, as far as the choice goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Call {
    /// Sources given.
    pub sources: usize,
    /// A source has a path mapping.
    pub mapped: bool,
    /// The destination exists (a merge).
    pub dst_exists: bool,
}

/// The linker's own reason for per-file work, if it has one: a merge, several sources, a
/// mapping, another mode than clone, a record, times not kept, special files to skip.
/// `None` when nothing in the call or the options needs per-file work. What
/// [`LinkOptions::preserve`] asks for is never a reason: a snapshot keeps all of it.
pub(crate) fn requested(opts: &LinkOptions, call: Call) -> Option<NotUsed> {
    let r = |code, why| Some(NotUsed::Requested { code, why });
    if call.dst_exists {
        return r("merge", "a merge into an existing destination");
    }
    if call.sources != 1 {
        return r(
            "several-sources",
            "linking several sources into one destination",
        );
    }
    if call.mapped {
        return r("path-mapping", "a path mapping");
    }
    match opts.mode {
        LinkMode::Auto | LinkMode::Clone => {}
        LinkMode::Copy => return r("mode", "--mode copy"),
        LinkMode::Hardlink => return r("mode", "--mode hardlink"),
        LinkMode::Symlink => return r("mode", "--mode symlink"),
    }
    if opts.record || opts.hash.is_some() {
        return r("record", "a record of every entry");
    }
    if !opts.preserve_times {
        return r("no-preserve-times", "not keeping the source's times");
    }
    if opts.skip_special {
        return r("skip-special", "skipping special files");
    }
    None
}

/// Tries the whole-tree method for `src` (a directory, checked by the caller, as the other
/// refusals are) to the new `dst`: `Ok(Ok(report))` when the tree was made in one call,
/// `Ok(Err(reason))` when nothing was written and the caller links per file.
#[cfg(unix)]
pub(crate) fn try_new_destination(
    opts: &LinkOptions,
    call: Call,
    src: &Path,
    dst: &Path,
    started: Instant,
) -> Result<Result<LinkReport, NotUsed>, LinkError> {
    if let Some(reason) = requested(opts, call) {
        return Ok(Err(reason));
    }
    let Some(name) = dst.file_name() else {
        return Err(LinkError::InvalidDestination(dst.to_path_buf()));
    };
    let parent_path = match dst.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let parent = Dir::open(parent_path).map_err(|e| LinkError::io("open", parent_path, e))?;
    let src_dir = Dir::open(src).map_err(|e| LinkError::io("open", src, e))?;
    let req = Request {
        src: At::new(&src_dir, src),
        parent: At::new(&parent, parent_path),
        name: OsStr::new(name),
        read_only: false,
    };
    match try_whole_tree(&req, None) {
        Ok(WholeTree::Done(method)) => Ok(Ok(LinkReport {
            destination: dst.to_path_buf(),
            method,
            elapsed: started.elapsed(),
            ..LinkReport::default()
        })),
        Ok(WholeTree::NotUsed(reason)) => Ok(Err(reason)),
        // Made between the caller's check and the snapshot.
        Err(e) if e.cause == Cause::Exists => Err(LinkError::DestinationExists(dst.to_path_buf())),
        Err(e) => Err(LinkError::io(e.op.as_str(), &e.path, e.source)),
    }
}

/// The whole-tree method on Windows: none (no subvolumes, no directory clones), and asking
/// for it is refused before this is reached ([`crate::options::unsupported_here`]).
#[cfg(windows)]
pub(crate) fn try_new_destination(
    _opts: &LinkOptions,
    _call: Call,
    _src: &Path,
    _dst: &Path,
    _started: Instant,
) -> Result<Result<LinkReport, NotUsed>, LinkError> {
    Err(LinkError::Unsupported("a whole-tree copy (whole_tree)"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::options::{HashAlgo, OnExisting};

    fn code(opts: &LinkOptions, call: Call) -> Option<&'static str> {
        requested(opts, call).map(|r| r.code())
    }

    #[test]
    fn the_options_that_need_per_file_work() {
        let one = Call {
            sources: 1,
            mapped: false,
            dst_exists: false,
        };
        let base = LinkOptions::default();
        assert_eq!(code(&base, one), None);
        // A snapshot keeps owners, attributes, hardlinks and special files already.
        let archive = LinkOptions {
            preserve: crate::options::Preserve::ALL,
            ..LinkOptions::default()
        };
        assert_eq!(code(&archive, one), None);
        assert_eq!(
            code(
                &LinkOptions {
                    mode: LinkMode::Clone,
                    strict: true,
                    sync: true,
                    on_existing: OnExisting::Overwrite,
                    ..LinkOptions::default()
                },
                one
            ),
            None,
            "clone, strict, sync and a policy for an existing destination that is not there"
        );
        let rows: &[(LinkOptions, Call, &str)] = &[
            (
                base.clone(),
                Call {
                    dst_exists: true,
                    ..one
                },
                "merge",
            ),
            (base.clone(), Call { sources: 2, ..one }, "several-sources"),
            (
                base.clone(),
                Call {
                    mapped: true,
                    ..one
                },
                "path-mapping",
            ),
            (
                LinkOptions {
                    mode: LinkMode::Copy,
                    ..LinkOptions::default()
                },
                one,
                "mode",
            ),
            (
                LinkOptions {
                    mode: LinkMode::Hardlink,
                    ..LinkOptions::default()
                },
                one,
                "mode",
            ),
            (
                LinkOptions {
                    mode: LinkMode::Symlink,
                    ..LinkOptions::default()
                },
                one,
                "mode",
            ),
            (
                LinkOptions {
                    record: true,
                    ..LinkOptions::default()
                },
                one,
                "record",
            ),
            (
                LinkOptions {
                    hash: Some(HashAlgo::Blake3),
                    ..LinkOptions::default()
                },
                one,
                "record",
            ),
            (
                LinkOptions {
                    preserve_times: false,
                    ..LinkOptions::default()
                },
                one,
                "no-preserve-times",
            ),
            (
                LinkOptions {
                    skip_special: true,
                    ..LinkOptions::default()
                },
                one,
                "skip-special",
            ),
        ];
        for (opts, call, want) in rows {
            assert_eq!(code(opts, *call), Some(*want), "{opts:?} {call:?}");
        }
    }
}
