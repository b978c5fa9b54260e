//! What a checkout reports: what it did ([`CheckoutReport`]) and, for a caller that records
//! the new tree, the stat of everything it wrote ([`Written`], [`EntryStat`]).

use std::path::PathBuf;

use cowtree_fs::dir::Stat;
use cowtree_fs::whole_tree::{Method as WholeMethod, NotUsed};

use crate::compact::CompactManifest;

/// What a checkout did.
#[derive(Debug, Clone, Default)]
pub struct CheckoutReport {
    /// Regular files written.
    pub files: u64,
    /// Directories created (not counting the root).
    pub dirs: u64,
    /// Symlinks created.
    pub symlinks: u64,
    /// Files cloned from their blobs.
    pub cloned: u64,
    /// Files copied.
    pub copied: u64,
    /// Bytes of file data (cloned or copied).
    pub bytes: u64,
    /// Each fallback reason and how many files it affected.
    pub fallbacks: Vec<(String, u64)>,
    /// The store is on another filesystem than the destination.
    pub cross_device: bool,
    /// The destination's absolute path.
    pub path: PathBuf,
    /// The worktree's registry id.
    pub worktree_id: String,
    /// Milliseconds from start to the tree being in place and registered.
    pub elapsed_ms: u64,
    /// How the tree was made: one writable snapshot of the store's tree subvolume
    /// ([`WholeMethod::Subvolume`]), or per file.
    pub method: WholeMethod,
    /// Why the tree was made per file (see [`cowtree_fs::whole_tree::NotUsed`]).
    pub reason: Option<NotUsed>,
    /// The store's tree subvolume of the snapshot was built by this checkout (its first on
    /// this btrfs): `cloned` and `copied` count the files written into it.
    pub tree_built: bool,
    /// The checkout gave the tree some of what the snapshot recorded beside its entries
    /// (`snapshot --archive`: [`crate::manifest::Archive`]), as
    /// [`super::CheckoutOptions::preserve`] asked: `restored` is not empty.
    pub archive: bool,
    /// What the snapshot records beside its entries; `None` for a version 1 snapshot.
    pub recorded: Option<cowtree_link::Preserve>,
    /// What the tree was given of that: what was asked and recorded.
    pub restored: cowtree_link::Preserve,
    /// What was asked and not recorded by the snapshot (all of it for a version 1 snapshot).
    pub not_recorded: cowtree_link::Preserve,
    /// Special files (FIFOs, sockets, device nodes) the snapshot records and the checkout
    /// did not make, because `special` was not asked for.
    pub special_not_made: u64,
    /// What was asked, recorded, and could not be kept (not root, or not supported by the
    /// destination): one warning line per kind, as `clone --archive` prints.
    pub not_kept: cowtree_link::NotKept,
}

/// The stat of everything a checkout wrote, each taken once the entry was complete: what a
/// stat cache of the new tree is made of, without walking the tree again
/// ([`super::checkout_recording`]).
#[derive(Debug, Default)]
pub struct Written {
    /// The snapshot's manifest, in its compact form.
    pub manifest: CompactManifest,
    /// `stats[i]` is the stat of `manifest.get(i)` as written: of each file after its
    /// data and mode were set, of each symlink after it was made; `None` for a directory.
    pub stats: Vec<Option<EntryStat>>,
    /// Every directory but the root, by path (sorted), with its stat taken after its last
    /// entry was made. The root's is not final here: the rename into place changes its
    /// ctime, and so does a caller's marker on it.
    pub dirs: Vec<(Vec<u8>, EntryStat)>,
    /// The root's (device, inode), as registered: what a caller opening the root by its path
    /// afterwards checks that it found.
    pub root: (u64, u64),
    /// The tree is a writable snapshot of the store's tree subvolume of the snapshot
    /// ([`crate::trees`]), which keeps every inode number and time of that tree: its stat
    /// cache ([`crate::trees::cache`]) describes this tree too. `stats` and `dirs` are then
    /// filled only when this checkout built that tree (they are its entries' stats).
    pub from_tree: bool,
}

/// What a stat cache compares of an entry's stat: all that [`Written`] keeps of each entry
/// (40 bytes, where a whole `Stat` is 144 on x86-64 Linux, for every entry of the tree).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EntryStat {
    /// Size in bytes.
    pub size: u64,
    /// Modification time, ns since the epoch.
    pub mtime_ns: i64,
    /// Change time, ns since the epoch.
    pub ctime_ns: i64,
    /// Inode number.
    pub ino: u64,
    /// `st_mode` (type and permission bits).
    pub mode: u32,
}

impl EntryStat {
    /// The parts of `st` a stat cache compares.
    #[cfg(unix)]
    pub fn of(st: &Stat) -> EntryStat {
        EntryStat {
            size: st.st_size as u64,
            mtime_ns: st.st_mtime.saturating_mul(1_000_000_000) + st.st_mtime_nsec as i64,
            ctime_ns: st.st_ctime.saturating_mul(1_000_000_000) + st.st_ctime_nsec as i64,
            ino: st.st_ino,
            mode: cowtree_fs::sys::stat_mode(st),
        }
    }

    /// The parts of `st` a stat cache compares, on Windows: the size, the last write and
    /// change times (100 ns units since 1601, as ns since 1970), the file id as the store
    /// records it ([`crate::util::file_id`]) and the mode Windows' attributes amount to
    /// ([`cowtree_fs::sys::stat_mode`]: only the write bits say anything).
    #[cfg(windows)]
    pub fn of(st: &Stat) -> EntryStat {
        EntryStat {
            size: cowtree_fs::sys::stat_size(st),
            mtime_ns: filetime_ns(st.modified),
            ctime_ns: filetime_ns(st.changed),
            ino: crate::util::file_id(st).1,
            mode: cowtree_fs::sys::stat_mode(st),
        }
    }
}

/// A `FILETIME` (100 ns units since 1601-01-01 UTC) as ns since 1970-01-01 UTC.
#[cfg(windows)]
fn filetime_ns(ft: i64) -> i64 {
    /// 1601 to 1970 in 100 ns units.
    const EPOCH_DIFF: i64 = 116_444_736_000_000_000;
    ft.saturating_sub(EPOCH_DIFF).saturating_mul(100)
}
