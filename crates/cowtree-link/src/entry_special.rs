//! A special file (FIFO, socket, device node) made again by a link pass
//! ([`crate::Preserve::special`]): `mknodat` with the source's type and device number, then
//! what [`crate::keep`] keeps (owner and group, the mode, attributes), then its times. A
//! device node needs root (`CAP_MKNOD`): for anyone else nothing is made and the device is
//! counted in [`crate::NotKept::special`].

use std::ffi::OsStr;
use std::io;
use std::os::fd::AsFd;

use cowtree_fs::sys::{EntryFd, make_node, open_entry};
use rustix::fs::{AtFlags, FileType, Timestamps, fstat, utimensat};
use rustix::io::Errno;

use crate::error::LinkError;
use crate::keep::{ModeStep, Src, check_made, keep};
use crate::pass::{Here, Local, Made, Run};
use crate::plan::SrcRef;
use crate::scan::DirMeta;
use crate::state::Failure;
use crate::work_items::src_dir;

impl Run<'_> {
    /// Makes the planned special file `src` again at `at` (for `name`) in the item's
    /// directory.
    pub(crate) fn special_entry(
        &self,
        local: &mut Local<'_>,
        here: &Here<'_>,
        (name, at): (&OsStr, &OsStr),
        src: &SrcRef,
    ) -> Result<Made, LinkError> {
        let src_full = || crate::plan::src_path(self.trees, src);
        let dst_full = || here.full(self, name);
        let SrcRef::Tree { tree, node, entry } = src else {
            return Err(LinkError::SourceNotLinkable(src_full(), "special file"));
        };
        let t = &self.trees[*tree as usize];
        let sname = t.name(*node, *entry);
        let sdir = src_dir(&mut local.src, t, (*tree, *node))?;
        let sfd = match open_entry(sdir.as_fd(), sname) {
            Ok(fd) => fd,
            Err(Errno::NOENT) => {
                local.tally.vanished += 1;
                local.tally.fallback(Failure::SourceVanished, 0, src_full);
                return Ok(Made::Nothing);
            }
            Err(e) => return Err(LinkError::io("open", &src_full(), e.into())),
        };
        let st = fstat(&sfd).map_err(|e| LinkError::io("stat", &src_full(), e.into()))?;
        let ft = FileType::from_raw_mode(st.st_mode);
        let device = matches!(ft, FileType::CharacterDevice | FileType::BlockDevice);
        if !device && !matches!(ft, FileType::Fifo | FileType::Socket) {
            return Err(LinkError::io(
                "make special file from",
                &src_full(),
                io::Error::other("it is no longer a FIFO, socket or device node"),
            ));
        }
        let rdev = if device { st.st_rdev } else { 0 };
        // The umask applies here: `keep` gives the exact bits next.
        match make_node(
            here.dir.as_fd(),
            at,
            ft,
            cowtree_fs::sys::stat_mode(&st) & 0o777,
            rdev as u64,
        ) {
            Ok(()) => {}
            Err(Errno::PERM) if device => {
                local.tally.not_kept.special += 1;
                return Ok(Made::Nothing);
            }
            Err(e) => {
                return Err(LinkError::link(
                    "make special file",
                    &src_full(),
                    &dst_full(),
                    e.into(),
                ));
            }
        }
        let dst = open_entry(here.dir.as_fd(), at)
            .map_err(|e| LinkError::io("open", &dst_full(), e.into()))?;
        let made = check_made(dst.as_fd(), |t| t == ft)
            .map_err(|e| LinkError::io("keep owner, mode and attributes of", &dst_full(), e))?;
        keep(
            self.engine.opts.preserve,
            Src::of(EntryFd::Path(sfd.as_fd()), &st),
            (EntryFd::Path(dst.as_fd()), Some(made)),
            ModeStep::Always,
            &mut local.tally.not_kept,
        )
        .map_err(|e| LinkError::io("keep owner, mode and attributes of", &dst_full(), e))?;
        if self.engine.opts.preserve_times {
            let m = DirMeta::from_stat(&st);
            utimensat(
                here.dir,
                at,
                &Timestamps {
                    last_access: m.atime,
                    last_modification: m.mtime,
                },
                AtFlags::SYMLINK_NOFOLLOW,
            )
            .map_err(|e| LinkError::io("set times of", &dst_full(), e.into()))?;
        }
        local.tally.special_made += 1;
        Ok(Made::Made(None))
    }
}
