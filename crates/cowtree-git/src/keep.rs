//! What a new worktree holds at a path of SRC that COMMIT-ISH does not track: the one rule
//! both ways of making DST's tree follow. The per-file path ([`crate::ignored`]) asks it to
//! decide what to clone; the snapshot path ([`crate::by_snapshot`]) asks it to decide what to
//! remove from a snapshot of SRC, so that the two give the same tree.
//!
//! | entry | decision |
//! |---|---|
//! | `.git` at SRC's root | not taken (SRC's own repository) |
//! | a directory holding a `.git` (a nested repository or worktree) | not taken, nothing in it; named in the report when git ignores it |
//! | a file tracked in SRC's index or in COMMIT-ISH | not an ignored entry (the tracked path decides it) |
//! | a directory git ignores, tracked by neither index, that the selection takes | taken whole (but nested repositories and special files in it) |
//! | another directory | entered: each entry in it decided by this table; ignored below an ignored one |
//! | a file or symlink git ignores that the selection takes | taken |
//! | anything else (untracked, ignored but not selected, FIFOs, sockets, devices) | not taken |
//!
//! Nothing is ever taken when the selection takes nothing ([`Selection::takes_any`]).

use std::ffi::OsStr;

use cowtree_fs::dir::Dir;
use gix::bstr::{BStr, ByteSlice};
use gix::index::entry::Mode;

use crate::error::{Error, Result};

/// Which ignored entries to take: those `.worktreeinclude` matches, those a `--ignored=PATTERN`
/// matches, or all (`--ignored`). Only ignored, untracked entries are ever taken.
pub struct Selection<'a> {
    /// Every ignored entry (`--ignored` without a pattern).
    pub all: bool,
    /// Glob patterns (`--ignored=PATTERN`). A pattern matches an entry's name or its
    /// repository-relative path.
    pub patterns: &'a [String],
    /// The patterns of SRC's `.worktreeinclude` (gitignore syntax, relative to SRC's root):
    /// an entry is taken when the last pattern that matches it is not a negation; a directory
    /// taken is taken whole, as a directory a `.gitignore` matches is ignored whole.
    pub include: Option<&'a gix::ignore::Search>,
}

impl Selection<'_> {
    /// Whether anything can be taken at all.
    pub fn takes_any(&self) -> bool {
        self.all || !self.patterns.is_empty() || self.include.is_some()
    }

    pub(crate) fn takes(&self, rel: &BStr, name: &[u8], is_dir: bool) -> bool {
        use gix::glob::wildmatch::Mode as W;
        self.all
            || self.patterns.iter().any(|p| {
                let p = p.trim_end_matches('/');
                gix::glob::wildmatch(p.into(), name.as_bstr(), W::empty())
                    || gix::glob::wildmatch(p.into(), rel, W::NO_MATCH_SLASH_LITERAL)
            })
            || self.include.is_some_and(|s| {
                s.pattern_matching_relative_path(
                    rel,
                    Some(is_dir),
                    gix::glob::pattern::Case::Sensitive,
                )
                .is_some_and(|m| !m.pattern.is_negative())
            })
    }
}

/// Whether `dir` holds a `.git` (file or directory): a repository or worktree of its own.
pub(crate) fn has_dot_git(dir: &Dir) -> bool {
    dir.try_stat(OsStr::new(".git")).ok().flatten().is_some()
}

/// What the new worktree gets at an untracked directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DirDecision {
    /// A nested repository or worktree: nothing of it. `report`: git ignores it, so the report
    /// names it.
    NestedRepo {
        /// Name it in the report.
        report: bool,
    },
    /// Taken whole (less nested repositories and special files inside).
    Whole,
    /// Entered; `ignored` says whether git ignores the directory (then everything in it).
    Enter {
        /// The directory is ignored.
        ignored: bool,
    },
}

/// What the new worktree gets at an untracked file, symlink or special file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileDecision {
    /// Tracked by SRC's index or COMMIT-ISH: the tracked path decides, not this one.
    Tracked,
    /// An ignored file or symlink the selection takes.
    Take,
    /// Nothing.
    Leave,
}

/// The rules for one SRC and one target tree.
pub struct Rules<'a, 'r> {
    src_index: &'a gix::index::State,
    target: &'a gix::index::State,
    excludes: Option<gix::AttributeStack<'r>>,
    sel: &'a Selection<'a>,
    src_root: &'a std::path::Path,
}

impl<'a, 'r> Rules<'a, 'r> {
    /// The rules for SRC (`repo`, whose worktree is `src_root`, with its index `src_index`)
    /// and the target tree `target`, with the selection `sel`. SRC's ignore rules are read
    /// only when the selection takes anything.
    pub fn new(
        repo: &'r gix::Repository,
        src_root: &'a std::path::Path,
        src_index: &'a gix::index::State,
        target: &'a gix::index::State,
        sel: &'a Selection<'a>,
    ) -> Result<Rules<'a, 'r>> {
        let excludes = if sel.takes_any() {
            Some(
                repo.excludes(src_index, None, Default::default())
                    .map_err(Error::git("read ignore rules", src_root))?,
            )
        } else {
            None
        };
        Ok(Rules {
            src_index,
            target,
            excludes,
            sel,
            src_root,
        })
    }

    /// The target tree the rules are for.
    pub fn target(&self) -> &'a gix::index::State {
        self.target
    }

    /// Whether anything untracked can be taken at all.
    pub fn takes_any(&self) -> bool {
        self.excludes.is_some()
    }

    /// Whether `rel` is a file tracked by SRC's index or the target.
    pub fn tracked(&self, rel: &BStr) -> bool {
        self.src_index.entry_by_path(rel).is_some() || self.target.entry_by_path(rel).is_some()
    }

    /// Whether `rel` is a directory of SRC's index or the target.
    pub fn tracked_dir(&self, rel: &BStr) -> bool {
        self.src_index.path_is_directory(rel) || self.target.path_is_directory(rel)
    }

    /// Whether git ignores `rel` (a directory when `is_dir`). False when nothing is taken.
    pub fn excluded(&mut self, rel: &BStr, is_dir: bool) -> Result<bool> {
        let Some(excludes) = self.excludes.as_mut() else {
            return Ok(false);
        };
        let mode = if is_dir {
            Some(Mode::DIR)
        } else {
            Some(Mode::FILE)
        };
        let platform = excludes.at_entry(rel, mode).map_err(Error::io(
            "read ignore rules for",
            self.src_root.join(gix::path::from_bstr(rel)),
        ))?;
        Ok(platform.is_excluded())
    }

    /// The decision for the directory `rel` (named `name`), inside an ignored directory or
    /// not, holding a `.git` or not.
    pub fn dir(
        &mut self,
        rel: &BStr,
        name: &[u8],
        inside_ignored: bool,
        has_dot_git: bool,
    ) -> Result<DirDecision> {
        if has_dot_git {
            let report = inside_ignored || self.excluded(rel, true)?;
            return Ok(DirDecision::NestedRepo { report });
        }
        let tracked = self.tracked_dir(rel);
        let ignored = inside_ignored || self.excluded(rel, true)?;
        if ignored && !tracked && self.sel.takes(rel, name, true) {
            Ok(DirDecision::Whole)
        } else {
            Ok(DirDecision::Enter { ignored })
        }
    }

    /// The decision for the non-directory `rel` (named `name`) inside an ignored directory or
    /// not. Whether it is a file or symlink (taken) or a special file (never) is the caller's.
    pub fn file(&mut self, rel: &BStr, name: &[u8], inside_ignored: bool) -> Result<FileDecision> {
        if self.tracked(rel) {
            return Ok(FileDecision::Tracked);
        }
        let ignored = inside_ignored || self.excluded(rel, false)?;
        if ignored && self.sel.takes(rel, name, false) {
            Ok(FileDecision::Take)
        } else {
            Ok(FileDecision::Leave)
        }
    }
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use gix::bstr::ByteSlice;

    /// A repository whose `.gitignore` ignores `*.log` and `build/`, tracking `src/a.rs` (and
    /// `.gitignore`), with `old.txt` in SRC's index only.
    fn with_rules(sel: &Selection<'_>, f: impl FnOnce(&mut Rules<'_, '_>)) {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        let git = |args: &[&str]| {
            let out = cowtree_testutil::git_cmd(root).args(args).output().unwrap();
            assert!(out.status.success(), "git {args:?}: {out:?}");
        };
        git(&["init", "-q"]);
        std::fs::create_dir(root.join("src")).unwrap();
        std::fs::write(root.join("src/a.rs"), "a").unwrap();
        std::fs::write(root.join("old.txt"), "old").unwrap();
        std::fs::write(root.join(".gitignore"), "*.log\nbuild/\n").unwrap();
        git(&["add", "-A"]);
        git(&["commit", "-qm", "c"]);
        let repo = gix::open(root).unwrap();
        let src_index = repo.open_index().unwrap();
        let mut target = src_index.clone();
        target.remove_entries(|_, p, _| p == "old.txt");
        f(&mut Rules::new(&repo, root, &src_index, &target, sel).unwrap());
    }

    fn sel(all: bool, patterns: &[String]) -> Selection<'_> {
        Selection {
            all,
            patterns,
            include: None,
        }
    }

    #[test]
    fn nothing_selected_takes_nothing_and_reads_no_ignore_rules() {
        with_rules(&sel(false, &[]), |r| {
            assert!(!r.takes_any());
            assert_eq!(
                r.file(b"x.log".as_bstr(), b"x.log", false).unwrap(),
                FileDecision::Leave
            );
            assert_eq!(
                r.dir(b"build".as_bstr(), b"build", false, false).unwrap(),
                DirDecision::Enter { ignored: false }
            );
            assert_eq!(
                r.dir(b"b".as_bstr(), b"b", false, true).unwrap(),
                DirDecision::NestedRepo { report: false }
            );
        });
    }

    #[test]
    fn all_ignored_takes_ignored_files_and_whole_ignored_directories() {
        with_rules(&sel(true, &[]), |r| {
            assert_eq!(
                r.file(b"x.log".as_bstr(), b"x.log", false).unwrap(),
                FileDecision::Take
            );
            assert_eq!(
                r.file(b"x.txt".as_bstr(), b"x.txt", false).unwrap(),
                FileDecision::Leave,
                "untracked, not ignored"
            );
            assert_eq!(
                r.file(b"src/a.rs".as_bstr(), b"a.rs", false).unwrap(),
                FileDecision::Tracked
            );
            assert_eq!(
                r.file(b"old.txt".as_bstr(), b"old.txt", false).unwrap(),
                FileDecision::Tracked,
                "in SRC's index only"
            );
            assert_eq!(
                r.dir(b"build".as_bstr(), b"build", false, false).unwrap(),
                DirDecision::Whole
            );
            assert_eq!(
                r.dir(b"src".as_bstr(), b"src", false, false).unwrap(),
                DirDecision::Enter { ignored: false }
            );
            assert_eq!(
                r.dir(b"tmp".as_bstr(), b"tmp", true, false).unwrap(),
                DirDecision::Whole,
                "inside an ignored directory"
            );
            assert_eq!(
                r.dir(b"build".as_bstr(), b"build", false, true).unwrap(),
                DirDecision::NestedRepo { report: true }
            );
            assert_eq!(
                r.dir(b"other".as_bstr(), b"other", false, true).unwrap(),
                DirDecision::NestedRepo { report: false }
            );
        });
    }

    #[test]
    fn a_pattern_takes_only_what_it_matches() {
        let p = vec!["*.log".to_owned()];
        with_rules(&sel(false, &p), |r| {
            assert_eq!(
                r.file(b"a/x.log".as_bstr(), b"x.log", false).unwrap(),
                FileDecision::Take
            );
            assert_eq!(
                r.dir(b"build".as_bstr(), b"build", false, false).unwrap(),
                DirDecision::Enter { ignored: true },
                "ignored but not selected: entered, for matches inside"
            );
            assert_eq!(
                r.file(b"build/out.bin".as_bstr(), b"out.bin", true)
                    .unwrap(),
                FileDecision::Leave
            );
        });
    }
}
