//! The mode and times of the directories a link pass creates: each is created writable by
//! the run ([`fill_mode`]) and given the source's bits and times once nothing more is made in
//! it, as soon as its last work item is done, or at the end, deepest first, where its final
//! bits would stop the run filling it.

use std::ffi::OsStr;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::PoisonError;

use cowtree_fs::dir::Dir;
use cowtree_fs::sys::{AsFd, EntryFd};

use crate::error::LinkError;
use crate::keep::{ModeStep, Src, keep};
use crate::pass::Run;
use crate::report::NotKept;
use crate::scan::{DirMeta, open_rel};

/// The mode a directory is created with: its final permission bits, plus owner
/// read/write/search so that this run can fill it (the final bits are set afterwards).
pub(crate) fn fill_mode(mode: u32) -> u32 {
    (mode | 0o700) & 0o777
}

/// Gives the directory `dir` the permission bits `mode`.
#[cfg(unix)]
fn set_dir_mode(dir: &Dir, mode: u32) -> io::Result<()> {
    dir.set_mode(mode)
}

/// Nothing on Windows: a directory has no permission bits there, and its read-only attribute
/// (the one bit [`cowtree_fs::sys::stat_mode`] shows) does not stop entries being made in it,
/// so it is not carried over.
#[cfg(windows)]
fn set_dir_mode(_dir: &Dir, _mode: u32) -> io::Result<()> {
    Ok(())
}

impl Run<'_> {
    /// True when a directory this run created with [`fill_mode`] is sure to have the final
    /// bits `mode` already.
    fn dir_exact(&self, mode: u32) -> bool {
        fill_mode(mode) == mode && self.mask.is_some_and(|m| m.dir_exact(mode))
    }

    /// Gives the directory `dir`, created by this run and complete, the source directory's
    /// owner, group and attributes as [`crate::Preserve`] asks. Called before its mode is
    /// set (a `chown` may clear set-ID bits) and once its entries are made (a default ACL
    /// given earlier would be inherited by them). `open`: a source directory the caller has
    /// open, as (tree, node) and handle, used when it is this one's (else it is opened).
    fn keep_dir(
        &self,
        dir: &Dir,
        meta: DirMeta,
        open: Option<((u32, u32), &Dir)>,
    ) -> io::Result<()> {
        let preserve = self.engine.opts.preserve;
        if !preserve.metadata() {
            return Ok(());
        }
        let opened;
        let src_dir = match (meta.src, open) {
            (Some(key), Some((held, d))) if key == held && (preserve.xattr || preserve.acl) => {
                Some(d)
            }
            (Some((tree, node)), _) if preserve.xattr || preserve.acl => {
                let t = &self.trees[tree as usize];
                opened = open_rel(&t.root, &t.tree.nodes[node as usize].rel)?;
                Some(&opened)
            }
            _ => None,
        };
        // Both directories are open (not `O_PATH`): the calls take their descriptors.
        let src = Src {
            fd: src_dir.map(|d| EntryFd::Open(d.as_fd())),
            owner: meta.owner,
            mode: meta.mode,
        };
        let mut not_kept = NotKept::default();
        keep(
            preserve,
            src,
            (EntryFd::Open(dir.as_fd()), None),
            ModeStep::Leave,
            &mut not_kept,
        )?;
        if !not_kept.is_empty() {
            self.dirs_not_kept
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .add(&not_kept);
        }
        Ok(())
    }

    /// Gives the directory `dir`, created by this run and complete, what
    /// [`Run::keep_dir`] keeps (`src`: as it takes it), the source's mode `meta.mode` (which
    /// keeps owner read, write and search) and, unless asked not to, times.
    pub(crate) fn finish_dir(
        &self,
        dir: &Dir,
        meta: DirMeta,
        src: Option<((u32, u32), &Dir)>,
    ) -> io::Result<()> {
        self.keep_dir(dir, meta, src)?;
        if !self.dir_exact(meta.mode) {
            // An fstat costs no metadata transaction, a chmod does.
            let now = dir.stat_self()?;
            if cowtree_fs::sys::stat_mode(&now) & 0o7777 != meta.mode {
                set_dir_mode(dir, meta.mode)?;
            }
        }
        if self.engine.opts.preserve_times {
            dir.set_own_times(meta.atime, meta.mtime)?;
        }
        Ok(())
    }

    /// [`Run::finish_dir`] for the empty directory `name` in `parent`, just created: by name
    /// when only its times are due (never following a symlink put there), else opened.
    pub(crate) fn finish_empty_dir(
        &self,
        parent: &Dir,
        name: &OsStr,
        meta: DirMeta,
    ) -> io::Result<()> {
        if self.dir_exact(meta.mode) && !self.engine.opts.preserve.metadata() {
            if self.engine.opts.preserve_times {
                parent.set_times(name, meta.atime, meta.mtime)?;
            }
            return Ok(());
        }
        self.finish_dir(&parent.open_dir(name)?, meta, None)
    }

    /// Gives the directories of `created` (the root when this run created it, and those whose
    /// final bits lack some of the owner's) the source's permission bits and (unless asked
    /// not to) times. Runs after all entries exist, deepest directories first so that a
    /// directory made unwritable or unsearchable is not needed afterwards.
    pub(crate) fn finish_dirs(&self, mut created: Vec<(PathBuf, usize)>) -> Result<(), LinkError> {
        let nodes = &self.plan.nodes;
        let preserve = self.engine.opts.preserve_times;
        // Only the root (the staging directory, created 0700) and directories whose final
        // bits lack some of the owner's are here: their mode is always set.
        created.retain(|(_, id)| nodes[*id].meta.is_some());
        let depth = |p: &Path| p.components().count();
        created.sort_by_key(|(p, _)| std::cmp::Reverse(depth(p)));
        let mut rest = created.as_slice();
        while let Some((first, _)) = rest.first() {
            let d = depth(first);
            let level_len = rest.iter().take_while(|(p, _)| depth(p) == d).count();
            let (level, tail) = rest.split_at(level_len);
            rest = tail;
            let items: Vec<&[(PathBuf, usize)]> = level.chunks(64).collect();
            self.engine.workers.run(
                self.engine.jobs.min(items.len()),
                items,
                || (),
                |_, dirs, _| {
                    for (open, id) in dirs {
                        self.engine.check_cancel(self.dst_path)?;
                        let node = &nodes[*id];
                        let meta = node.meta.expect("kept only directories with metadata");
                        let full = || self.dst_path.join(&node.rel);
                        let dir = open_rel(self.dst_root, open)
                            .map_err(|e| LinkError::io("open directory", &full(), e))?;
                        self.keep_dir(&dir, meta, None).map_err(|e| {
                            LinkError::io("keep owner and attributes of", &full(), e)
                        })?;
                        // The root may have its final bits already; an fstat costs no
                        // metadata transaction, a chmod does.
                        let now = dir
                            .stat_self()
                            .map_err(|e| LinkError::io("stat", &full(), e))?;
                        if cowtree_fs::sys::stat_mode(&now) & 0o7777 != meta.mode {
                            set_dir_mode(&dir, meta.mode)
                                .map_err(|e| LinkError::io("set mode of", &full(), e))?;
                        }
                        if preserve {
                            dir.set_own_times(meta.atime, meta.mtime)
                                .map_err(|e| LinkError::io("set times of", &full(), e))?;
                        }
                    }
                    Ok(())
                },
            )?;
        }
        Ok(())
    }
}
