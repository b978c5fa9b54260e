//! Making one planned entry in a destination directory of a link pass: a file linked by the
//! pair's method, a symlink recreated, or a directory created and its entries queued; each
//! noted in the record when one is kept.

use std::ffi::{OsStr, OsString};
use std::io;
use std::os::fd::AsFd;
use std::os::unix::ffi::OsStringExt;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use cowtree_fs::dir::Dir;
use rustix::fs::{AtFlags, CWD, Stat, Timespec, readlinkat, statat, symlinkat, utimensat};
use rustix::io::Errno;

use crate::dir_finish::fill_mode;
use crate::error::LinkError;
use crate::file_link::{FileLinker, FileSrc, hash_file, record_kind};
use crate::options::EntryKind;
use crate::pass::{Here, Local, Made, Run};
use crate::plan::SrcRef;
use crate::report::RecordEntry;
use crate::scan::DirMeta;
use crate::state::Failure;
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
                    },
                )
            }
            SrcRef::Path { path, dev, mode } => (
                *dev,
                FileSrc {
                    dir: CWD,
                    name: path.as_os_str(),
                    mode: *mode,
                },
            ),
        };
        let key = (src_dev, here.dev);
        let idx = match files.iter().position(|f| f.key == key) {
            Some(i) => i,
            None => {
                files.push(FileLinker::new(self.engine, key, here.mask));
                files.len() - 1
            }
        };
        let Some((method, bytes)) =
            files[idx].link_file(&fsrc, here.dir, at, &src_full, &dst_full, &mut local.tally)?
        else {
            return Ok(Made::Vanished);
        };
        if self.recording() {
            let (kind, size) = record_kind(method, bytes, || src_full().as_os_str().len());
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
                method: Some(method),
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
        let target = match readlinkat(src_dir, sname, Vec::new()) {
            Ok(t) => OsString::from_vec(t.into_bytes()),
            Err(Errno::NOENT) => {
                local.tally.vanished += 1;
                local.tally.fallback(Failure::SourceVanished, 0, src_full);
                return Ok(Made::Vanished);
            }
            Err(e) => return Err(LinkError::io("read symlink", &src_full(), e.into())),
        };
        let times = if self.engine.opts.preserve_times {
            let st = statat(src_dir, sname, AtFlags::SYMLINK_NOFOLLOW)
                .map_err(|e| LinkError::io("stat", &src_full(), e.into()))?;
            Some(timespec_pair(&st))
        } else {
            None
        };
        symlinkat(target.as_os_str(), here.dir, at)
            .map_err(|e| LinkError::link("create symlink", &src_full(), &dst_full(), e.into()))?;
        if let Some((atime, mtime)) = times {
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
    if (st.st_ino, st.st_dev) != (made.st_ino, made.st_dev) {
        return Err(LinkError::io(
            "create directory",
            &dst_full(),
            io::Error::other("not the directory this merge made: it was moved or replaced"),
        ));
    }
    Ok(())
}
