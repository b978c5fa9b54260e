//! Making one planned entry in a destination directory of a link pass: a file linked by the
//! pair's method (or, for a later name of a hardlinked source file, linked to its first
//! name), a symlink recreated, or a directory created and its entries queued; each noted in
//! the record when one is kept, and given what [`crate::Preserve`] asks
//! ([`crate::keep`]).

use std::ffi::{OsStr, OsString};
use std::io;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use cowtree_fs::dir::{Dir, FileType, Stat, Timespec};
use cowtree_fs::reflink::OpenSource;
use cowtree_fs::sys::{AsFd, BorrowedFd, EntryFd, open_entry, stat_dev, stat_ino};
#[cfg(unix)]
use rustix::fs::{AtFlags, CWD, futimens, linkat, readlinkat, statat, symlinkat, utimensat};
#[cfg(unix)]
use rustix::io::Errno;

use crate::dir_finish::fill_mode;
use crate::error::LinkError;
use crate::file_link::{FileLinker, FileSrc, LinkedFile, hash_file, record_kind};
use crate::keep::{ModeStep, Src, check_made, keep};
use crate::link_map::{Claim, FirstName};
use crate::options::{EntryKind, Preserve};
use crate::pass::{Here, Local, Made, Run};
use crate::plan::SrcRef;
use crate::report::{RecordEntry, Tally};
use crate::scan::{DirMeta, open_rel};
use crate::state::{Attempt, Failure, LinkMode};
use crate::work_items::{CHUNK, Held, Item, push_items, src_dir};

fn timespec_pair(st: &Stat) -> (Timespec, Timespec) {
    let m = DirMeta::from_stat(st);
    (m.atime, m.mtime)
}

impl Run<'_> {
    /// Links one planned file to `at` (for `name`) in the item's directory.
    pub(crate) fn file_entry<'s>(
        &'s self,
        local: &mut Local<'s>,
        files: &mut Vec<FileLinker<'s>>,
        here: &Here<'_>,
        (name, at): (&OsStr, &OsStr),
        src: &SrcRef,
        origin: u32,
    ) -> Result<Made, LinkError> {
        let src_full = || crate::plan::src_path(self.trees, src);
        let dst_full = || here.full(self, name);
        #[cfg(windows)]
        let path_parent;
        let (src_dev, fsrc) = match src {
            SrcRef::Tree { tree, node, entry } => {
                let t = &self.trees[*tree as usize];
                let name = t.name(*node, *entry);
                let key = (*tree, *node);
                let dir = src_dir(&mut local.src, t, key)?;
                (
                    t.tree.nodes[*node as usize].meta.dev,
                    FileSrc {
                        dir: dir.as_fd(),
                        name,
                        mode: None,
                        opened: None,
                    },
                )
            }
            #[cfg(unix)]
            SrcRef::Path { path, dev, mode } => (
                *dev,
                FileSrc {
                    dir: CWD,
                    name: path.as_os_str(),
                    mode: *mode,
                    opened: None,
                },
            ),
            // No handle of the current directory to open a path relative to: the file's own
            // directory, opened for it.
            #[cfg(windows)]
            SrcRef::Path { path, dev, mode } => {
                let parent = match path.parent() {
                    Some(p) if !p.as_os_str().is_empty() => p,
                    _ => Path::new("."),
                };
                let name = path
                    .file_name()
                    .ok_or_else(|| LinkError::SourceNotLinkable(path.clone(), "root directory"))?;
                path_parent = Dir::open(parent).map_err(|e| LinkError::io("open", parent, e))?;
                (
                    *dev,
                    FileSrc {
                        dir: path_parent.as_fd(),
                        name,
                        mode: *mode,
                        opened: None,
                    },
                )
            }
        };
        let preserve = self.file_preserve();
        // When more than its data is kept: the source opened here, once, for its lstat and
        // attributes, and then cloned or copied through the same descriptor.
        let kept_src = if preserve.metadata() || preserve.links {
            match OpenSource::open(fsrc.dir, fsrc.name) {
                Ok(Some(open)) => Some(open),
                Ok(None) => {
                    local.tally.vanished += 1;
                    local.tally.fallback(Failure::SourceVanished, 0, src_full);
                    return Ok(Made::Nothing);
                }
                Err(e) => return Err(LinkError::io("open", &src_full(), e)),
            }
        } else {
            None
        };
        let fsrc = FileSrc {
            opened: kept_src.as_ref(),
            ..fsrc
        };
        // A later name of a source file with several: a link to its first name.
        let mut making = None;
        if let Some(OpenSource { stat: st, .. }) = &kept_src
            && preserve.links
            && cowtree_fs::sys::stat_nlink(st) > 1
        {
            match self.links.claim((stat_dev(st), stat_ino(st))) {
                Claim::First(m) => making = Some(m),
                Claim::Link(first) => {
                    match self.link_to_first(here, (name, at), &first, &mut local.tally)? {
                        Some(size) => {
                            return self.record_file(
                                local,
                                here,
                                (name, at),
                                (src, origin),
                                None,
                                Some(size),
                            );
                        }
                        // Refused (too many links): this name gets a file of its own.
                        None => local.tally.not_kept.links += 1,
                    }
                }
            }
        }
        let key = (src_dev, here.dev);
        let idx = match files.iter().position(|f| f.key == key) {
            Some(i) => i,
            None => {
                files.push(FileLinker::new(self.engine, key, here.mask));
                files.len() - 1
            }
        };
        let Some(LinkedFile { method, bytes, dst }) =
            files[idx].link_file(&fsrc, here.dir, at, &src_full, &dst_full, &mut local.tally)?
        else {
            return Ok(Made::Nothing);
        };
        // A file of its own, made from the source this opened: given the rest here, through
        // the two descriptors, the times last.
        if let (Some(src), Some(dst)) = (&kept_src, &dst) {
            self.keep_file(local, src, dst.as_fd(), &dst_full)?;
        }
        if let Some(making) = making {
            let st = match &dst {
                Some(dst) => cowtree_fs::sys::fstat(dst.as_fd()),
                None => here.dir.stat(at),
            }
            .map_err(|e| LinkError::io("stat", &dst_full(), e))?;
            making.made(FirstName {
                open: here.open.to_path_buf(),
                name: at.to_owned(),
                id: (stat_dev(&st), stat_ino(&st)),
            });
        }
        self.record_file(local, here, (name, at), (src, origin), Some(method), bytes)
    }

    /// Gives the file `dst` (open for writing since its creation, which made it this run's)
    /// what [`crate::Preserve`] asks of its source `src` (see [`crate::keep`]), then the
    /// source's times unless asked not to: through the two descriptors, with no path looked
    /// up again.
    fn keep_file(
        &self,
        local: &mut Local<'_>,
        src: &OpenSource,
        dst: BorrowedFd<'_>,
        dst_full: &dyn Fn() -> std::path::PathBuf,
    ) -> Result<(), LinkError> {
        let preserve = self.file_preserve();
        if preserve.metadata() {
            let keeping = |e| LinkError::io("keep owner and attributes of", &dst_full(), e);
            let made = check_made(dst, FileType::is_file).map_err(keeping)?;
            keep(
                preserve,
                Src::of(EntryFd::Open(src.fd.as_fd()), &src.stat),
                (EntryFd::Open(dst), Some(made)),
                ModeStep::SetId,
                &mut local.tally.not_kept,
            )
            .map_err(keeping)?;
        }
        if self.engine.opts.preserve_times {
            let (atime, mtime) = timespec_pair(&src.stat);
            #[cfg(unix)]
            futimens(
                dst,
                &rustix::fs::Timestamps {
                    last_access: atime,
                    last_modification: mtime,
                },
            )
            .map_err(|e| LinkError::io("set times of", &dst_full(), e.into()))?;
            #[cfg(windows)]
            cowtree_fs::sys::set_entry_times(EntryFd::Open(dst), atime, mtime)
                .map_err(|e| LinkError::io("set times of", &dst_full(), e))?;
        }
        Ok(())
    }

    /// What is kept of a file beyond its data: nothing in hardlink and symlink modes (the
    /// entry is the source's inode, or points at it).
    fn file_preserve(&self) -> Preserve {
        match self.engine.opts.mode {
            LinkMode::Auto | LinkMode::Clone | LinkMode::Copy => self.engine.opts.preserve,
            LinkMode::Hardlink | LinkMode::Symlink => Preserve::default(),
        }
    }

    /// Makes `at` (for `name`) in the item's directory a hardlink of `first`, the first name
    /// of its source file, made by this run: opened beneath the destination root, the link
    /// made without following a symlink, and the new name checked to be that inode. Returns
    /// the file's size, or `None` when the filesystem refuses the link (too many links,
    /// another filesystem mounted in a merged destination).
    fn link_to_first(
        &self,
        here: &Here<'_>,
        (name, at): (&OsStr, &OsStr),
        first: &FirstName,
        tally: &mut Tally,
    ) -> Result<Option<u64>, LinkError> {
        let dst_full = || here.full(self, name);
        let opened;
        let dir: &Dir = if first.open.as_path() == here.open {
            here.dir
        } else {
            opened = open_rel(self.dst_root, &first.open).map_err(|e| {
                LinkError::io("open directory", &self.dst_path.join(&first.open), e)
            })?;
            &opened
        };
        #[cfg(unix)]
        match linkat(dir, first.name.as_os_str(), here.dir, at, AtFlags::empty()) {
            Ok(()) => {}
            Err(Errno::MLINK | Errno::XDEV | Errno::PERM) => return Ok(None),
            Err(e) => return Err(LinkError::io("hardlink", &dst_full(), e.into())),
        }
        // As `linkat`: the link refused (too many links, another volume) gives `None`.
        // (Kept hardlinks are refused before any work on Windows for now, see
        // [`crate::options::unsupported_here`].)
        #[cfg(windows)]
        match cowtree_fs::hardlink_at(dir, first.name.as_os_str(), here.dir, at) {
            Ok(cowtree_fs::HardlinkOutcome::Linked) => {}
            Ok(cowtree_fs::HardlinkOutcome::Refused(_)) => return Ok(None),
            Ok(cowtree_fs::HardlinkOutcome::SourceVanished) => {
                let gone = io::Error::new(io::ErrorKind::NotFound, "its first name is gone");
                return Err(LinkError::io("hardlink", &dst_full(), gone));
            }
            Err(e) => return Err(LinkError::io("hardlink", &dst_full(), e)),
        }
        let st = here
            .dir
            .stat(at)
            .map_err(|e| LinkError::io("stat", &dst_full(), e))?;
        if (stat_dev(&st), stat_ino(&st)) != first.id {
            return Err(LinkError::io(
                "hardlink",
                &dst_full(),
                io::Error::other(
                    "the name it was to be linked to is no longer the file this run made",
                ),
            ));
        }
        tally.hardlinks += 1;
        Ok(Some(cowtree_fs::sys::stat_size(&st)))
    }

    /// Notes a file made at `at` (for `name`) in the record, when one is kept: linked by
    /// `method` with `bytes` of data, or (`method` `None`) a hardlink of an earlier name.
    fn record_file(
        &self,
        local: &mut Local<'_>,
        here: &Here<'_>,
        (name, at): (&OsStr, &OsStr),
        (src, origin): (&SrcRef, u32),
        method: Option<Attempt>,
        bytes: Option<u64>,
    ) -> Result<Made, LinkError> {
        let src_full = || crate::plan::src_path(self.trees, src);
        let dst_full = || here.full(self, name);
        if self.recording() {
            let (kind, size) = match method {
                Some(method) => record_kind(method, bytes, || src_full().as_os_str().len()),
                None => (EntryKind::File, bytes),
            };
            let hash = match self.engine.opts.hash {
                Some(algo) if kind == EntryKind::File => Some(
                    hash_file(here.dir, at, algo)
                        .map_err(|e| LinkError::io("hash", &dst_full(), e))?,
                ),
                _ => None,
            };
            local.push_record(RecordEntry {
                path: here.rel.join(name),
                kind,
                size,
                method,
                hash,
                source: origin as usize,
                from: Some(self.src_rel(src)),
            });
        }
        Ok(Made::Made(None))
    }

    /// Recreates one planned symlink at `at` (for `name`) in the item's directory.
    pub(crate) fn symlink_entry(
        &self,
        local: &mut Local<'_>,
        here: &Here<'_>,
        (name, at): (&OsStr, &OsStr),
        src: &SrcRef,
        origin: u32,
    ) -> Result<Made, LinkError> {
        let src_full = || crate::plan::src_path(self.trees, src);
        let dst_full = || here.full(self, name);
        let SrcRef::Tree { tree, node, entry } = src else {
            return Err(LinkError::SourceNotLinkable(src_full(), "symlink"));
        };
        let t = &self.trees[*tree as usize];
        let sname = t.name(*node, *entry);
        let key = (*tree, *node);
        let src_dir = src_dir(&mut local.src, t, key)?;
        let target = match read_link(src_dir, sname) {
            Ok(t) => t,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                local.tally.vanished += 1;
                local.tally.fallback(Failure::SourceVanished, 0, src_full);
                return Ok(Made::Nothing);
            }
            Err(e) => return Err(LinkError::io("read symlink", &src_full(), e)),
        };
        let ownership = self.engine.opts.preserve.ownership;
        // On Windows always: a directory's symlink is another kind of entry than a file's.
        let st = if self.engine.opts.preserve_times || ownership || cfg!(windows) {
            Some(lstat(src_dir, sname).map_err(|e| LinkError::io("stat", &src_full(), e))?)
        } else {
            None
        };
        let times = st
            .as_ref()
            .filter(|_| self.engine.opts.preserve_times)
            .map(timespec_pair);
        #[cfg(unix)]
        symlinkat(target.as_os_str(), here.dir, at)
            .map_err(|e| LinkError::link("create symlink", &src_full(), &dst_full(), e.into()))?;
        #[cfg(windows)]
        {
            let made = if st.as_ref().is_some_and(Stat::is_directory_entry) {
                here.dir.symlink_dir(&target, at)
            } else {
                here.dir.symlink(&target, at)
            };
            made.map_err(|e| LinkError::link("create symlink", &src_full(), &dst_full(), e))?;
        }
        let preserve = self.engine.opts.preserve;
        let attrs = preserve.xattr || preserve.acl;
        if ownership || attrs {
            // A symlink's owner and its own attributes (as `cp -a` keeps them with `lsetxattr`:
            // `trusted.*` and `security.*`; Linux allows no `user.*` on one), both through
            // handles of the two links themselves, never what they point to. It has no mode.
            let src_fd = if attrs {
                Some(
                    open_entry(src_dir.as_fd(), sname)
                        .map_err(|e| LinkError::io("open", &src_full(), io_error(e)))?,
                )
            } else {
                None
            };
            let dst = open_entry(here.dir.as_fd(), at)
                .map_err(|e| LinkError::io("open", &dst_full(), io_error(e)))?;
            let made = check_made(dst.as_fd(), FileType::is_symlink)
                .map_err(|e| LinkError::io("keep owner and attributes of", &dst_full(), e))?;
            let src = Src {
                fd: src_fd.as_ref().map(|fd| EntryFd::Path(fd.as_fd())),
                owner: st.as_ref().and_then(cowtree_fs::sys::stat_owner),
                mode: 0,
            };
            let kept = Preserve {
                ownership,
                xattr: preserve.xattr,
                acl: preserve.acl,
                ..Preserve::default()
            };
            keep(
                kept,
                src,
                (EntryFd::Path(dst.as_fd()), Some(made)),
                ModeStep::Leave,
                &mut local.tally.not_kept,
            )
            .map_err(|e| LinkError::io("keep owner and attributes of", &dst_full(), e))?;
        }
        if let Some((atime, mtime)) = times {
            #[cfg(unix)]
            utimensat(
                here.dir,
                at,
                &rustix::fs::Timestamps {
                    last_access: atime,
                    last_modification: mtime,
                },
                AtFlags::SYMLINK_NOFOLLOW,
            )
            .map_err(|e| LinkError::io("set times of", &dst_full(), e.into()))?;
            // The link's own times: `set_times` opens the entry without following it.
            #[cfg(windows)]
            here.dir
                .set_times(at, atime, mtime)
                .map_err(|e| LinkError::io("set times of", &dst_full(), e))?;
        }
        local.tally.symlinks += 1;
        if self.recording() {
            local.push_record(RecordEntry {
                path: here.rel.join(name),
                kind: EntryKind::Symlink,
                size: Some(target.len() as u64),
                method: None,
                hash: None,
                source: origin as usize,
                from: Some(self.src_rel(src)),
            });
        }
        Ok(Made::Made(None))
    }

    /// Creates the directory `at` (for `name`) of plan directory `child` in the item's
    /// directory, settles how it gets its mode and times, and queues the work items of its
    /// entries.
    pub(crate) fn dir_entry<'s>(
        &'s self,
        local: &mut Local<'s>,
        push: &mut Vec<Item<'s>>,
        here: &Here<'_>,
        (name, at): (&OsStr, &OsStr),
        child: usize,
        origin: u32,
    ) -> Result<Made, LinkError> {
        let dst_full = || here.full(self, name);
        let meta = self.plan.nodes[child].meta;
        here.dir
            .create_dir(at, fill_mode(meta.map_or(0o755, |m| m.mode)))
            .map_err(|e| LinkError::io("create directory", &dst_full(), e))?;
        // In a merge, publication renames only the directory this run made:
        // its identity is taken right after `mkdirat` (which gives no handle).
        let made_dir = if here.fresh {
            None
        } else {
            Some(
                here.dir
                    .stat(at)
                    .map_err(|e| LinkError::io("stat", &dst_full(), e))?,
            )
        };
        let open = here.open.join(at);
        let items = self.plan.nodes[child].entries.len().div_ceil(CHUNK);
        self.settle_dir_finish(local, (here.dir, at), child, &open, items)
            .map_err(|e| LinkError::io("set mode and times of", &dst_full(), e))?;
        let (held, src) = if items > 0 {
            (self.hold(here.dir, at), self.hold_src(local, child))
        } else {
            (None, None)
        };
        if let (Some(h), Some(made)) = (&held, &made_dir) {
            check_made_dir(h, made, &dst_full)?;
        }
        push_items(
            self.plan,
            child,
            (open, held, src),
            true,
            Some(here.dev),
            push,
            &mut local.tails,
        );
        local.tally.dirs += 1;
        if self.recording() {
            local.push_record(RecordEntry {
                path: here.rel.join(name),
                kind: EntryKind::Dir,
                size: Some(0),
                method: None,
                hash: None,
                source: origin as usize,
                from: None,
            });
        }
        Ok(Made::Made(made_dir))
    }

    /// Settles when the directory `at` in `parent`, just created for plan directory `child`
    /// (at `open`, with `items` work items), gets its mode and times.
    fn settle_dir_finish(
        &self,
        local: &mut Local<'_>,
        (parent, at): (&Dir, &OsStr),
        child: usize,
        open: &Path,
        items: usize,
    ) -> io::Result<()> {
        match self.plan.nodes[child].meta {
            // Made 0755 less the umask, as documented; nothing to give it.
            None => {}
            // Its final bits would stop this run filling it or its subdirectories:
            // set them at the end, deepest first.
            Some(m) if m.mode & 0o700 != 0o700 => {
                local.created.push((open.to_path_buf(), child));
            }
            // Nothing will be made in it: finish it now.
            Some(m) if items == 0 => self.finish_empty_dir(parent, at, m)?,
            // Its last work item finishes it.
            Some(_) => self.pending[child].store(items, Ordering::Relaxed),
        }
        Ok(())
    }
}

/// The error of a `sys` call as an [`io::Error`]: an `Errno` on unix, one already on Windows.
fn io_error(e: impl Into<io::Error>) -> io::Error {
    e.into()
}

/// The target of the symlink `name` in `dir` (`readlinkat`), its exact bytes.
#[cfg(unix)]
fn read_link(dir: &Dir, name: &OsStr) -> io::Result<OsString> {
    use std::os::unix::ffi::OsStringExt;
    match readlinkat(dir, name, Vec::new()) {
        Ok(t) => Ok(OsString::from_vec(t.into_bytes())),
        Err(e) => Err(e.into()),
    }
}

/// The target of the symlink `name` in `dir`, read by handle without following it.
#[cfg(windows)]
fn read_link(dir: &Dir, name: &OsStr) -> io::Result<OsString> {
    dir.read_link(name)
}

/// `lstat` of `name` in `dir` (`statat(AT_SYMLINK_NOFOLLOW)`).
#[cfg(unix)]
fn lstat(dir: &Dir, name: &OsStr) -> io::Result<Stat> {
    Ok(statat(dir, name, AtFlags::SYMLINK_NOFOLLOW)?)
}

/// What `name` in `dir` is, a reparse point not followed.
#[cfg(windows)]
fn lstat(dir: &Dir, name: &OsStr) -> io::Result<Stat> {
    dir.stat(name)
}

/// Checks that the handle a new directory's entries are made through is that directory
/// (`made`, its identity right after it was made): one swapped in between would be filled
/// while the one checked at publication stays empty.
fn check_made_dir(
    held: &Arc<Held<'_>>,
    made: &Stat,
    dst_full: &dyn Fn() -> std::path::PathBuf,
) -> Result<(), LinkError> {
    let st = held
        .dir
        .stat_self()
        .map_err(|e| LinkError::io("stat", &dst_full(), e))?;
    if (stat_ino(&st), stat_dev(&st)) != (stat_ino(made), stat_dev(made)) {
        return Err(LinkError::io(
            "create directory",
            &dst_full(),
            io::Error::other("not the directory this merge made: it was moved or replaced"),
        ));
    }
    Ok(())
}
