//! `--ignored`: SRC's ignored files and directories (all, or those matching patterns), cloned
//! into the new worktree with their modes, times and symlinks. Untracked files that are not
//! ignored are never copied, and neither is any directory holding a `.git` (a nested
//! repository or worktree).

use std::ffi::OsStr;
use std::path::{Path, PathBuf};

use cowtree_fs::dir::Dir;
use cowtree_fs::dir::FileType;
use cowtree_fs::{Method, Transfer, TransferOptions, UnsupportedCause};
use gix::bstr::{BStr, BString, ByteSlice};
use rayon::prelude::*;

use crate::error::{Error, Result};
pub use crate::keep::Selection;
use crate::keep::{DirDecision, FileDecision, Rules, has_dot_git};

/// What `--ignored` copied.
#[derive(Debug, Default, Clone)]
pub struct IgnoredReport {
    /// Files cloned.
    pub cloned: u64,
    /// Files copied because a reflink was impossible.
    pub copied: u64,
    /// Bytes of file data.
    pub bytes: u64,
    /// Symlinks made.
    pub symlinks: u64,
    /// Directories made.
    pub dirs: u64,
    /// Nested repositories and worktrees left out (repository-relative paths).
    pub nested_repos: Vec<String>,
    /// FIFOs, sockets and devices left out.
    pub special: u64,
    /// The first reason a file was copied instead of cloned.
    pub fallback: Option<(UnsupportedCause, PathBuf)>,
}

/// The file at SRC's root naming the ignored files a new worktree gets (the convention of
/// Claude Code, Conductor and other tools that make worktrees).
pub const WORKTREEINCLUDE: &str = ".worktreeinclude";

/// SRC's `.worktreeinclude` as patterns, or `None` when there is no such file.
pub fn worktreeinclude(src_root: &Path) -> Result<Option<gix::ignore::Search>> {
    let path = src_root.join(WORKTREEINCLUDE);
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io("read", &path)(e)),
    };
    let mut search = gix::ignore::Search::default();
    search.add_patterns_buffer(&bytes, path, None, gix::ignore::search::Ignore::default());
    Ok(Some(search))
}

struct Walk<'a, 'r> {
    src_root: &'a Path,
    staging: &'a Dir,
    staging_path: &'a Path,
    rules: Rules<'a, 'r>,
    plan: Plan,
}

/// What the walk decided: directories are made as it goes (cheap, and in an order where a
/// parent exists first); files and symlinks are listed here and made in parallel after it.
#[derive(Default)]
struct Plan {
    /// Non-directory entries to copy, grouped by their repository-relative parent directory.
    groups: Vec<(BString, Vec<(std::ffi::OsString, FileType)>)>,
    /// Copied directories (repository-relative, each after its subdirectories) and SRC's
    /// `stat` of each: their mode and times are set once everything inside them exists.
    finish: Vec<(BString, cowtree_fs::dir::Stat)>,
    report: IgnoredReport,
}

impl Plan {
    fn add(&mut self, rel: &BStr, name: &OsStr, ft: FileType) {
        match self.groups.last_mut() {
            Some((dir, files)) if dir.as_bstr() == rel => files.push((name.to_owned(), ft)),
            _ => self
                .groups
                .push((rel.to_owned(), vec![(name.to_owned(), ft)])),
        }
    }
}

fn join(prefix: &BStr, name: &[u8]) -> BString {
    let mut p = BString::from(prefix.to_vec());
    if !p.is_empty() {
        p.push(b'/');
    }
    p.extend_from_slice(name);
    p
}

#[cfg(unix)]
fn file_type(dir: &Dir, name: &OsStr, ft: FileType) -> std::io::Result<FileType> {
    if ft != FileType::Unknown {
        return Ok(ft);
    }
    Ok(FileType::from_raw_mode(dir.stat(name)?.st_mode))
}

/// A Windows listing always gives the type (attributes and reparse tag).
#[cfg(windows)]
fn file_type(_dir: &Dir, _name: &OsStr, ft: FileType) -> std::io::Result<FileType> {
    Ok(ft)
}

/// Copies SRC's ignored entries selected by `sel` into `staging`, whose directories for the
/// target's tracked entries must already exist. SRC's tree is walked on the calling thread;
/// files and symlinks are then made on the rayon pool, one directory per task.
#[allow(clippy::too_many_arguments)]
pub fn copy_ignored(
    repo: &gix::Repository,
    src_root: &Path,
    src_index: &gix::index::State,
    target: &gix::index::State,
    staging: &Dir,
    staging_path: &Path,
    sel: &Selection<'_>,
    strict: bool,
) -> Result<IgnoredReport> {
    let rules = Rules::new(repo, src_root, src_index, target, sel)?;
    let root = Dir::open(src_root).map_err(Error::io("open", src_root))?;
    let mut w = Walk {
        src_root,
        staging,
        staging_path,
        rules,
        plan: Plan::default(),
    };
    w.dir(&root, BStr::new(b""), false)?;
    let Plan {
        groups,
        finish,
        mut report,
    } = w.plan;
    let copier = Copier {
        src_root,
        root: &root,
        staging,
        staging_path,
        strict,
    };
    let parts: Vec<Result<IgnoredReport>> = groups
        .par_iter()
        .map(|(rel, files)| copier.group(rel.as_ref(), files))
        .collect();
    for part in parts {
        let part = part?;
        report.cloned += part.cloned;
        report.copied += part.copied;
        report.bytes += part.bytes;
        report.symlinks += part.symlinks;
        report.special += part.special;
        if report.fallback.is_none() {
            report.fallback = part.fallback;
        }
    }
    // Listed after their subdirectories: children first, as in a walk that sets each
    // directory's mode last (a parent without write or search permission stays usable).
    for (rel, st) in &finish {
        let dst_path = staging_path.join(rel.to_path_lossy());
        let dst = staging
            .open_dir_deep(&rel.to_path_lossy())
            .map_err(Error::io("open", &dst_path))?;
        // Windows keeps no permission bits on a directory: only its times are kept there.
        #[cfg(unix)]
        rustix::fs::fchmod(&dst, rustix::fs::Mode::from_raw_mode(st.st_mode & 0o7777))
            .map_err(|e| Error::io("set mode of", &dst_path)(e.into()))?;
        let (atime, mtime) = cowtree_fs::sys::stat_times(st);
        dst.set_own_times(atime, mtime)
            .map_err(Error::io("set times of", &dst_path))?;
    }
    Ok(report)
}

impl Walk<'_, '_> {
    /// The destination directory for `rel` in staging, created (with its parents) if needed.
    fn dst_dir(&mut self, rel: &BStr) -> Result<Dir> {
        let mut dir = self
            .staging
            .try_clone()
            .map_err(Error::io("open", self.staging_path))?;
        if rel.is_empty() {
            return Ok(dir);
        }
        for part in rel.split(|b| *b == b'/') {
            let name = crate::portable::os_str(part);
            dir = match dir.open_dir(name) {
                Ok(d) => d,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    self.plan.report.dirs += 1;
                    dir.create_dir_open(name, 0o777).map_err(Error::io(
                        "create directory",
                        self.staging_path.join(rel.to_path_lossy()),
                    ))?
                }
                Err(e) => {
                    return Err(Error::io(
                        "open",
                        self.staging_path.join(rel.to_path_lossy()),
                    )(e));
                }
            };
        }
        Ok(dir)
    }

    /// Visits SRC's directory `rel` (open as `dir`), which is tracked or untracked, looking
    /// for ignored entries. `inside_ignored`: an ignored ancestor makes everything ignored.
    fn dir(&mut self, dir: &Dir, rel: &BStr, inside_ignored: bool) -> Result<()> {
        let src_path = self.src_root.join(rel.to_path_lossy());
        let mut entries = dir.entries().map_err(Error::io("list", &src_path))?;
        entries.sort_by(|a, b| a.name.cmp(&b.name));
        let mut made_parent = false;
        for e in entries {
            let name = crate::portable::bytes(&e.name);
            if rel.is_empty() && name == b".git" {
                continue;
            }
            let sub = join(rel, name);
            let ft = match file_type(dir, &e.name, e.file_type) {
                Ok(ft) => ft,
                Err(_) => continue,
            };
            if ft.is_dir() {
                let Ok(child) = dir.open_dir(&e.name) else {
                    continue;
                };
                let has_git = has_dot_git(&child);
                match self
                    .rules
                    .dir(sub.as_ref(), name, inside_ignored, has_git)?
                {
                    DirDecision::NestedRepo { report } => {
                        if report {
                            self.plan.report.nested_repos.push(sub.to_string());
                        }
                    }
                    DirDecision::Whole => {
                        let parent = self.dst_dir(rel)?;
                        self.copy_tree(&child, sub.as_ref(), &parent, &e.name)?;
                    }
                    DirDecision::Enter { ignored } => self.dir(&child, sub.as_ref(), ignored)?,
                }
                continue;
            }
            if self.rules.file(sub.as_ref(), name, inside_ignored)? != FileDecision::Take {
                continue;
            }
            if !made_parent {
                self.dst_dir(rel)?;
                made_parent = true;
            }
            self.plan.add(rel, &e.name, ft);
        }
        Ok(())
    }

    /// Plans the copy of the ignored directory `src` (SRC's `rel`) as `name` under
    /// `dst_parent`, whole, except nested repositories; makes its directories now.
    fn copy_tree(&mut self, src: &Dir, rel: &BStr, dst_parent: &Dir, name: &OsStr) -> Result<()> {
        let dst_path = self.staging_path.join(rel.to_path_lossy());
        let st = src
            .stat_self()
            .map_err(Error::io("stat", self.src_root.join(rel.to_path_lossy())))?;
        let dst = dst_parent
            .create_dir_open(name, 0o700)
            .map_err(Error::io("create directory", &dst_path))?;
        self.plan.report.dirs += 1;
        let mut entries = src
            .entries()
            .map_err(Error::io("list", self.src_root.join(rel.to_path_lossy())))?;
        entries.sort_by(|a, b| a.name.cmp(&b.name));
        for e in entries {
            let sub = join(rel, crate::portable::bytes(&e.name));
            let Ok(ft) = file_type(src, &e.name, e.file_type) else {
                continue;
            };
            if ft.is_dir() {
                let Ok(child) = src.open_dir(&e.name) else {
                    continue;
                };
                if has_dot_git(&child) {
                    self.plan.report.nested_repos.push(sub.to_string());
                    continue;
                }
                self.copy_tree(&child, sub.as_ref(), &dst, &e.name)?;
            } else {
                self.plan.add(rel, &e.name, ft);
            }
        }
        self.plan.finish.push((rel.to_owned(), st));
        Ok(())
    }
}

/// Makes the planned files and symlinks of one directory.
struct Copier<'a> {
    src_root: &'a Path,
    root: &'a Dir,
    staging: &'a Dir,
    staging_path: &'a Path,
    strict: bool,
}

impl Copier<'_> {
    fn group(&self, rel: &BStr, files: &[(std::ffi::OsString, FileType)]) -> Result<IgnoredReport> {
        let open = |base: &Dir, base_path: &Path| {
            if rel.is_empty() {
                base.try_clone()
            } else {
                base.open_dir_deep(&rel.to_path_lossy())
            }
            .map_err(Error::io("open", base_path.join(rel.to_path_lossy())))
        };
        let src = open(self.root, self.src_root)?;
        let dst = open(self.staging, self.staging_path)?;
        let mut report = IgnoredReport::default();
        for (name, ft) in files {
            let sub = join(rel, crate::portable::bytes(name));
            self.entry(&mut report, &src, &dst, name, *ft, sub.as_ref())?;
        }
        Ok(report)
    }

    /// Copies one non-directory entry.
    fn entry(
        &self,
        report: &mut IgnoredReport,
        src: &Dir,
        dst: &Dir,
        name: &OsStr,
        ft: FileType,
        rel: &BStr,
    ) -> Result<()> {
        let src_path = || self.src_root.join(rel.to_path_lossy());
        if ft.is_file() {
            {
                let method = if self.strict {
                    Method::Clone
                } else {
                    Method::CloneOrCopy
                };
                let opts = TransferOptions {
                    method,
                    mode: None,
                    preserve_times: true,
                };
                match cowtree_fs::transfer_at(src, name, dst, name, &opts)
                    .map_err(|e| Error::io("clone", src_path())(e))?
                {
                    Transfer::Cloned { bytes } => {
                        report.cloned += 1;
                        report.bytes += bytes;
                    }
                    Transfer::Copied { bytes, because } => {
                        report.copied += 1;
                        report.bytes += bytes;
                        if report.fallback.is_none() {
                            report.fallback =
                                Some((because.unwrap_or(UnsupportedCause::Filesystem), src_path()));
                        }
                    }
                    Transfer::Unsupported(cause) => return Err(Error::strict(src_path(), cause)),
                    Transfer::SourceVanished => {}
                }
            }
        } else if ft.is_symlink() {
            {
                let target = src
                    .read_link(name)
                    .map_err(Error::io("read symlink", src_path()))?;
                let st = src.stat(name).map_err(Error::io("stat", src_path()))?;
                dst.symlink(&target, name).map_err(Error::io(
                    "create symlink",
                    self.staging_path.join(rel.to_path_lossy()),
                ))?;
                let (atime, mtime) = cowtree_fs::sys::stat_times(&st);
                dst.set_times(name, atime, mtime).map_err(Error::io(
                    "set times of",
                    self.staging_path.join(rel.to_path_lossy()),
                ))?;
                report.symlinks += 1;
            }
        } else {
            report.special += 1;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn takes(patterns: &[&str], rel: &str) -> bool {
        let patterns: Vec<String> = patterns.iter().map(|p| p.to_string()).collect();
        let name = rel.rsplit('/').next().unwrap();
        Selection {
            all: patterns.is_empty(),
            patterns: &patterns,
            include: None,
        }
        .takes(rel.into(), name.as_bytes(), false)
    }

    fn included(file: &str, rel: &str, is_dir: bool) -> bool {
        let mut search = gix::ignore::Search::default();
        search.add_patterns_buffer(
            file.as_bytes(),
            ".worktreeinclude",
            None,
            gix::ignore::search::Ignore::default(),
        );
        let name = rel.rsplit('/').next().unwrap();
        Selection {
            all: false,
            patterns: &[],
            include: Some(&search),
        }
        .takes(rel.into(), name.as_bytes(), is_dir)
    }

    #[test]
    fn worktreeinclude_follows_gitignore_syntax() {
        let f = ".env*\n!.env.example\n/config/*.local.json\n**/secrets/\n# comment\n";
        assert!(included(f, ".env", false));
        assert!(included(f, "web/.env.local", false), "no slash: any depth");
        assert!(!included(f, ".env.example", false), "negated");
        assert!(included(f, "config/db.local.json", false));
        assert!(!included(f, "web/config/db.local.json", false), "anchored");
        assert!(included(f, "a/b/secrets", true));
        assert!(
            !included(f, "a/b/secrets", false),
            "a trailing slash matches directories"
        );
        assert!(!included(f, "comment", false));
    }

    #[test]
    fn no_pattern_takes_every_ignored_entry() {
        assert!(takes(&[], "a/b/c.log"));
    }

    #[test]
    fn pattern_matches_the_name_at_any_depth() {
        assert!(takes(&["node_modules"], "node_modules"));
        assert!(takes(&["node_modules"], "web/app/node_modules"));
        assert!(!takes(&["node_modules"], "web/node_modules_old"));
    }

    #[test]
    fn pattern_with_a_slash_matches_the_path() {
        assert!(takes(&["web/*/dist"], "web/app/dist"));
        assert!(!takes(&["web/*/dist"], "web/a/b/dist"));
        assert!(takes(&["target/"], "target"));
    }

    #[test]
    fn glob_characters_work_on_names() {
        assert!(takes(&["*.env", "target"], "config/prod.env"));
        assert!(!takes(&["*.env", "target"], "config/prod.envx"));
    }
}
