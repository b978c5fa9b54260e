//! Ingest: record a directory tree as blobs and a manifest.
//!
//! The walk is [`cowtree_fs::walk`] on the ingest pool (see `pools.rs`): parallel, each
//! directory opened beneath its parent or the root without following a symlink (a symlink is
//! recorded as a symlink), a bounded number of directory handles held per worker, a big
//! directory's files split among workers. Special files (fifos, sockets, devices) are refused.
//!
//! Where the source can be cloned into the store, new content is cloned into an unnamed file in the
//! worker's staging directory (`O_TMPFILE`, mode 0444 from the start; a named staging file where
//! the filesystem lacks `O_TMPFILE`; see `Putter::lane`), hashed, and only then given its name
//! in `blobs/` (`linkat`; a rename for named staging), so a writer changing the source
//! mid-ingest cannot make a blob disagree with its name. If another writer placed the same blob
//! first, the staged clone is dropped. Where the source and store cannot share data (another
//! filesystem, or one without reflinks), the file is read once, written to staging and hashed in
//! the same pass.
//!
//! What is hashed is the clone, or, for a source whose ctime is older than the snapshot's start
//! by [`CTIME_MARGIN_NS`], the source itself, from its usually warm pages, and only AFTER the
//! clone: `fstat` (at open), `FICLONE` from that descriptor, hash the source's first `size`
//! bytes (that `fstat`'s size, with `pread`), `fstat` again; the hash is taken only if inode,
//! size, mtime and ctime are unchanged and the file held `size` bytes, else the clone is hashed.
//! The clone wrote back the source's dirty pages, which write-protects every page mapped for
//! writing, so any change after it (`write`, truncate, `fallocate`, or a store through a shared
//! mapping, which must fault into `page_mkwrite`) sets a new ctime before the content changes;
//! and a ctime that old cannot be set again by a change in the same clock tick. Hashing before
//! the clone is not safe: a page dirtied through a shared mapping earlier stays writable until
//! writeback and can change during the hash with no ctime update (docs/store.md has the whole
//! argument; `tests/store_tests/ingest_writers.rs` runs writers of every kind against it).
//!
//! Hashing the source first (from the page cache) lets content already in the store skip the
//! clone entirely; for new content that read is wasted, so it is adaptive: always for the
//! first files of a snapshot, then only while it keeps finding blobs (plus a sample, to notice
//! when it would start to). Re-recording an unchanged tree is therefore about a hash of it.
//!
//! Cost note: a fresh clone's pages are not in the page cache (the cache is per inode), so
//! hashing a clone reads its blocks from the device; hashing the source after the clone (above)
//! avoids that read for every file not changed in the last two seconds. Ingest runs on its own
//! worker pool (2 workers per core, see `pools.rs`): a worker waits for reads, so two per core
//! keep the cores busy, while only one per core at a time clones (`pools::Gate`). Each worker
//! opens two files (`LOOKAHEAD`) ahead of the one it records and starts reading their pages
//! (`readahead.rs`), so that a cold source is read while the worker clones and hashes the files
//! before it.
//!
//! On Windows (`putter_windows.rs`) the walk is the same over `cowtree_fs::dir`'s handles (a
//! symlink recorded with its target; a junction or other reparse point refused as special; a
//! name that is no valid Unicode refused), and each new file is block-cloned (ReFS, Dev
//! Drive) or copied into a named staging file, the clone or the copy hashed, made read-only
//! (the read-only attribute, for 0444), flushed, and renamed into `blobs/` without replacing:
//! no `O_TMPFILE`, no hashing of the source after its clone, no read-ahead. Windows has no
//! executable bit: every file is recorded as a plain file. `snapshot --archive` is refused
//! in one line (`ARCHIVE_UNAVAILABLE`), and a btrfs subvolume is never frozen.

use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::io;
use std::ops::ControlFlow;
#[cfg(unix)]
use std::os::fd::AsFd;
#[cfg(unix)]
use std::os::fd::{AsRawFd, OwnedFd};
#[cfg(unix)]
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::Mutex;
#[cfg(unix)]
use std::sync::OnceLock;
#[cfg(unix)]
use std::sync::atomic::AtomicBool;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Instant;

#[cfg(unix)]
use cowtree_fs::classify::{CloneErrno, classify_clone_errno};
use cowtree_fs::dir::{Dir, DirEntry};
use cowtree_fs::name::{NameError, PATH_MAX};
use cowtree_fs::progress::Progress;
use cowtree_fs::walk::{DirVisit, Failed, JobVisit, Visitor, Walk};
use cowtree_fs::{Method, Transfer, TransferOptions};
#[cfg(unix)]
use cowtree_fs::{UnsupportedCause, transfer_at};
#[cfg(unix)]
use rustix::fs::{AtFlags, FileType, Mode, OFlags, RenameFlags, Stat, fstat, openat, statat};
#[cfg(unix)]
use rustix::io::Errno;

use crate::error::{Error, Result};
use crate::found::{Found, Node, Piece, TooLong};
use crate::hash::Hash;
use crate::manifest::{Manifest, show};
#[cfg(unix)]
use crate::pools::LOOKAHEAD;
use crate::store::Store;
use crate::util::{file_id, join, path_of};

#[cfg(unix)]
mod archive;
#[cfg(windows)]
mod blob_at;
#[cfg(unix)]
mod putter;
/// [`Putter`] on Windows: named staging, block clone or copy, no executable bit.
#[cfg(windows)]
#[path = "putter_windows.rs"]
mod putter;

#[cfg(windows)]
pub(crate) use blob_at::BlobDirs;
#[cfg(windows)]
pub use putter::Putter;
pub(crate) use putter::hash_file;
#[cfg(unix)]
use putter::type_name;

/// What a snapshot recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IngestReport {
    /// The snapshot id.
    pub id: Hash,
    /// File and executable entries.
    pub files: u64,
    /// Their total size.
    pub bytes: u64,
    /// Blobs that were not in the store before.
    pub new_blobs: u64,
    /// Their total size.
    pub new_bytes: u64,
    /// Bytes whose staging copy was a clone (shared with the source).
    pub cloned_bytes: u64,
    /// Bytes that had to be copied into the store.
    pub copied_bytes: u64,
    /// Milliseconds from start to the manifest being written.
    pub elapsed_ms: u64,
    /// The files were read from a read-only snapshot of the tree (a btrfs subvolume's root,
    /// snapshotted first: a point in time no writer can change), kept since as the store's
    /// tree subvolume of the snapshot ([`crate::trees`]).
    pub frozen: bool,
    /// Why the tree was read in place, not from a read-only snapshot of it (`None` when it
    /// was, and where the question does not arise: not on btrfs).
    pub reason: Option<cowtree_fs::whole_tree::NotUsed>,
}

/// Files per work item when a directory is split among workers.
const FILE_CHUNK: usize = 128;
/// Files whose source is always hashed first, before the hit rate decides (see
/// [`Putter::prehash_wanted`]).
const PREHASH_WARMUP: u64 = 64;
/// While pre-hashing is off, one file in this many is still pre-hashed, so that a tree whose
/// content turns out to be in the store switches it back on.
const PREHASH_SAMPLE: u64 = 32;

/// How much older than the snapshot's start a source's ctime must be for the source, not its
/// clone, to be hashed (see the module doc): git's racy margin, which covers filesystems with
/// 1 s or 2 s times as well as the coarse clock's tick.
pub const CTIME_MARGIN_NS: i64 = 2_000_000_000;

/// Upper bound on staging subdirectories (see [`Putter::lane`]).
#[cfg(unix)]
const MAX_LANES: usize = 16;

/// A clone in staging whose hash is still to be computed.
#[cfg(unix)]
struct Staged<'l> {
    /// The staging directory it is in (see [`Putter::lane`]).
    lane: &'l Dir,
    fd: OwnedFd,
    /// The staging name; `None` for an unnamed (`O_TMPFILE`) clone, which is linked into
    /// `blobs/` from its descriptor.
    sname: Option<OsString>,
    exec: bool,
    /// Size and hash of the source taken after the clone and proven unchanged by its stat
    /// (see the module doc); `None`: hash the clone.
    known: Option<(u64, Hash)>,
}

/// A source file opened by [`Putter::open_source`]: its descriptor and the `fstat` taken
/// right after the open, the first of the two around its clone (see the module doc).
#[cfg(unix)]
struct Source {
    fd: OwnedFd,
    st: Stat,
}

/// How [`Putter::clone_unnamed`] ended.
#[cfg(unix)]
enum Unnamed {
    Cloned(OwnedFd),
    /// The staging filesystem has no `O_TMPFILE`: use named staging.
    NoTmpfile,
    Unsupported(UnsupportedCause),
}

/// What [`Putter::stage`] did with one file.
#[cfg(unix)]
enum Step<'l> {
    /// Recorded.
    Done(Put),
    /// Cloned into staging; to be hashed and placed.
    Staged(Staged<'l>),
    /// Vanished before it could be read.
    Vanished,
}

/// One file put into the store by [`Putter::put`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Put {
    /// Size in bytes.
    pub size: u64,
    /// The blob.
    pub hash: Hash,
    /// The file had an executable bit when it was opened.
    pub executable: bool,
}

/// One worker's part of a snapshot's walk (see [`cowtree_fs::walk`]): records what it finds
/// into its own list of entries.
struct Recorder<'w, 'a> {
    root_path: &'a Path,
    /// (device, inode) of the store's root directory, which is never recorded.
    store_id: (u64, u64),
    put: &'w Putter<'a>,
    /// The next directory slot (see [`crate::found`]); the root is 0.
    slots: &'w AtomicU32,
    /// The directories this worker visited, by slot.
    nodes: Vec<(u32, Node)>,
    /// The files and symlinks it found.
    pieces: Vec<Piece>,
    /// Special files are left out (`snapshot --archive` records them after the walk),
    /// not refused.
    skip_special: bool,
}

/// Puts files into the store one at a time, the way a snapshot records each file (see the
/// module doc): pre-hash when it pays, else clone into staging (unnamed where the filesystem
/// allows), hash the clone and link it into `blobs/`; copy and hash in one pass where
/// clones do not work. It remembers what it learnt about the filesystems (no clones from a
/// device, no `O_TMPFILE`, no `linkat(AT_EMPTY_PATH)`) and counts what it did. Shared by the
/// workers of one snapshot. (Windows has its own, in `putter_windows.rs`.)
#[cfg(unix)]
pub struct Putter<'a> {
    store: &'a Store,
    staging: &'a Dir,
    /// Source devices from which clones into the store are known not to work.
    no_clone: Mutex<HashMap<u64, ()>>,
    counter: AtomicU64,
    new_blobs: AtomicU64,
    new_bytes: AtomicU64,
    cloned_bytes: AtomicU64,
    copied_bytes: AtomicU64,
    /// The store held no snapshot when this putter was made. Usually a first snapshot into a
    /// new store, whose blobs are only those this snapshot places (a pre-hash would find
    /// nothing the link into `blobs/` does not find anyway: it fails with `EEXIST` and the
    /// clone is dropped), so pre-hashing is left off. Not always: after `rm` of every snapshot
    /// and before `gc`, or while another first snapshot runs, the store may hold many blobs;
    /// then content already there costs a clone, a hash and an `EEXIST` that a pre-hash would
    /// have saved, never a wrong blob. Pre-hashing only saves work; it never decides what a
    /// blob holds. See [`Putter::prehash_wanted`].
    store_was_empty: bool,
    /// Files whose source was hashed before cloning, and how many of those were in the store.
    prehashed: AtomicU64,
    prehash_hits: AtomicU64,
    /// Unnamed staging files (`O_TMPFILE`) work in the staging directory.
    tmpfile: AtomicBool,
    /// A new unnamed staging file was seen to have mode 0444 despite the umask.
    tmpfile_mode_ok: AtomicBool,
    /// `linkat(AT_EMPTY_PATH)` is allowed (else the `/proc/self/fd` link is used).
    link_empty_path: AtomicBool,
    /// Subdirectories of `staging`, one per worker; see [`Putter::lane`].
    lanes: OnceLock<Vec<Dir>>,
    /// A source whose ctime is older than this (ns since the epoch) is hashed itself after its
    /// clone; see the module doc.
    old_ctime_before: i64,
    /// Clones whose source was hashed after the clone, and sources that changed meanwhile (so
    /// that their clone was hashed).
    source_hashed: AtomicU64,
    source_changed: AtomicU64,
    /// Lets one clone per core run at a time (see [`crate::pools::Gate`]).
    clones: crate::pools::Gate,
}

/// Records the tree at `src` in `store` and names the snapshot `name` when given.
///
/// Where `src` is the root of a btrfs subvolume on the store's filesystem that this user may
/// snapshot, a read-only snapshot of it is taken first (`trees/.tmp-*`), the files are read
/// from that immutable copy (so that the manifest is exactly the tree at one point in time,
/// whatever writers do meanwhile), and the copy is kept as the snapshot's tree subvolume
/// ([`crate::trees`]). Otherwise the tree is read in place, as on every other filesystem.
pub fn snapshot_dir(store: &Store, src: &Path, name: Option<&str>) -> Result<IngestReport> {
    snapshot_dir_with_progress(store, src, name, &Progress::default())
}

/// [`snapshot_dir`], counting into `progress` one entry per file recorded, with its size.
/// The total is not known in advance (the tree is walked and recorded in one pass).
pub fn snapshot_dir_with_progress(
    store: &Store,
    src: &Path,
    name: Option<&str>,
    progress: &Progress,
) -> Result<IngestReport> {
    snapshot_dir_preserving(store, src, name, progress, None)
}

/// [`snapshot_dir_with_progress`], recording also what `archive` keeps (`cowtree snapshot
/// --archive`, `--preserve=LIST`): a version 2 manifest ([`crate::manifest::Archive`]; see
/// `ingest/archive.rs`). With `None`, or nothing asked for, the snapshot is the one
/// [`snapshot_dir_with_progress`] takes. The tree is always read in place: the read-only
/// snapshot a btrfs subvolume would be read from is not taken (its tree, kept as the
/// snapshot's, would hold special files that a tree of the manifest's entries does not).
pub fn snapshot_dir_preserving(
    store: &Store,
    src: &Path,
    name: Option<&str>,
    progress: &Progress,
    archive: Option<cowtree_link::Preserve>,
) -> Result<IngestReport> {
    let started = Instant::now();
    let archive = archive.filter(|p| *p != cowtree_link::Preserve::default());
    if let Some(n) = name {
        crate::refs::validate_name(n)?;
    }
    #[cfg(windows)]
    if archive.is_some() {
        // Refused before anything is read or written (see `putter_windows.rs`).
        return Err(Error::msg(ARCHIVE_UNAVAILABLE));
    }
    let (root, store_id) = open_source(store, src)?;
    let _lock = store.lock_shared()?;
    // A btrfs subvolume's root: read from a read-only snapshot of it, a point in time that
    // no writer can change, which then stays as the snapshot's tree.
    #[cfg(unix)]
    let (frozen, reason) = match archive {
        Some(_) => (None, None),
        None => match crate::trees::freeze(store, cowtree_fs::subvolume::At::new(&root, src))? {
            Ok(p) => (Some(p), None),
            Err(why) => (None, Some(why)),
        },
    };
    // Windows has no btrfs subvolumes: the tree is always read in place, as on every
    // filesystem but btrfs (whose reason, `Filesystem`, is never reported either).
    #[cfg(windows)]
    let reason = None;
    let reason =
        reason.filter(|r| !matches!(r, cowtree_fs::whole_tree::NotUsed::Filesystem { .. }));
    let staging = store.staging("ingest")?;
    #[cfg_attr(windows, allow(unused_mut))]
    let mut put = Putter::new(store, staging.dir());
    #[cfg(unix)]
    if frozen.is_some() {
        // Nothing writes a read-only snapshot: every file's own hash, taken after its clone,
        // is the clone's.
        put = put.with_ctime_margin(0);
    }
    #[cfg(unix)]
    let walk_root = frozen.as_ref().map_or(&root, |p| p.dir());
    #[cfg(windows)]
    let walk_root = &root;
    let slots = AtomicU32::new(1);
    let recorders = Walk::on(crate::pools::pool(crate::pools::Pool::Ingest))
        .progress(progress)
        .run(vec![(walk_root, 0)], || Recorder {
            root_path: src,
            store_id,
            put: &put,
            slots: &slots,
            nodes: Vec::new(),
            pieces: Vec::new(),
            skip_special: archive.is_some_and(|p| p.special),
        })?;
    let walked = started.elapsed();
    let found = found(recorders, slots.load(Ordering::Relaxed));
    #[cfg(unix)]
    if let Some(preserve) = archive {
        // (Saving the manifest makes the blobs durable first: `Store::save`.)
        let (id, manifest) = archive::record(store, &root, src, store_id, &found, preserve)?;
        drop(found);
        if let Some(n) = name {
            crate::refs::set(store, n, &id)?;
        }
        let report = IngestReport {
            id,
            files: manifest.files(),
            bytes: manifest.bytes(),
            new_blobs: put.new_blobs(),
            new_bytes: put.new_bytes(),
            cloned_bytes: put.cloned_bytes(),
            copied_bytes: put.copied_bytes(),
            elapsed_ms: started.elapsed().as_millis() as u64,
            frozen: false,
            reason,
        };
        drop(put);
        drop(staging);
        return Ok(report);
    }
    let context = format!("snapshot of {}", src.display());
    #[cfg(unix)]
    let sync = || store.sync_filesystem();
    // Windows lets only administrators flush a volume: each new blob was flushed as it was
    // written, and their fan-out directories are now (`putter_windows.rs`).
    #[cfg(windows)]
    let sync = || put.sync_placed();
    let (synced, written) = write_while_syncing(store, &found, &context, sync);
    drop(found);
    let (writer, counts) = written?;
    synced?;
    let built = started.elapsed();
    let id = writer.finish_synced()?;
    if std::env::var_os("COWTREE_TIMING").is_some() {
        eprintln!(
            "timing: walk {walked:?}, manifest built and store synced {built:?}, saved {:?}",
            started.elapsed()
        );
    }
    if let Some(n) = name {
        crate::refs::set(store, n, &id)?;
    }
    #[cfg(unix)]
    let frozen = frozen.is_some_and(|p| keep_frozen(store, p, &id, &counts));
    #[cfg(windows)]
    let frozen = {
        let _ = &counts;
        false
    };
    let report = IngestReport {
        id,
        files: counts.files,
        bytes: counts.bytes,
        new_blobs: put.new_blobs(),
        new_bytes: put.new_bytes(),
        cloned_bytes: put.cloned_bytes(),
        copied_bytes: put.copied_bytes(),
        elapsed_ms: started.elapsed().as_millis() as u64,
        frozen,
        reason,
    };
    drop(put);
    drop(staging);
    Ok(report)
}

/// Opens `src` and returns it with the store's (device, inode); refuses the store itself.
fn open_source(store: &Store, src: &Path) -> Result<(Dir, (u64, u64))> {
    // The error names `src` ("open directory SRC: ..."), with the OS error.
    let root = Dir::open(src).map_err(|e| Error::Context {
        context: "snapshot",
        source: Box::new(Error::Io(e)),
    })?;
    let at = |p: &Path, e: io::Error| Error::io_at("snapshot:", p, e);
    let store_st = Dir::open(store.root())
        .and_then(|d| d.stat_self())
        .map_err(|e| at(store.root(), e))?;
    let store_id = file_id(&store_st);
    let src_st = root.stat_self().map_err(|e| at(src, e))?;
    if file_id(&src_st) == store_id {
        // A refusal: recording the store into itself can only be reported.
        return Err(Error::StoreItself {
            path: src.to_path_buf(),
        });
    }
    Ok((root, store_id))
}

/// The manifest's writer, with what it holds.
type Written<'s> = Result<(crate::store::ManifestWriter<'s>, crate::trees::Counts)>;

/// Every blob the manifest names is placed: they are made durable (`sync`: `syncfs` on unix,
/// which mostly waits for the disk) while the manifest is put in order, checked, encoded,
/// hashed and written, and the manifest is named only after both (docs/store.md,
/// "Durability"). Returns (synced, written).
fn write_while_syncing<'s>(
    store: &'s Store,
    found: &Found,
    context: &str,
    sync_blobs: impl Fn() -> Result<()> + Sync,
) -> (Result<()>, Written<'s>) {
    std::thread::scope(|s| {
        let sync = std::thread::Builder::new()
            .name("cowtree-sync".into())
            .spawn_scoped(s, &sync_blobs);
        let written = (|| {
            let mut writer = store.manifest_writer(found.entries(), context)?;
            let counts = found.write(|entry| writer.push(entry))?;
            Ok::<_, Error>((writer, counts))
        })();
        let synced = match sync {
            Ok(t) => t
                .join()
                .unwrap_or_else(|_| Err(Error::internal("the sync thread panicked"))),
            // No thread to be had: in turn.
            Err(_) => sync_blobs(),
        };
        (synced, written)
    })
}

/// Keeps the read-only snapshot `p` as snapshot `id`'s tree (derived data: a failure here
/// loses nothing, and the read-only snapshot is removed, or left to gc); whether it was kept.
#[cfg(unix)]
fn keep_frozen(
    store: &Store,
    p: crate::trees::Pending<'_>,
    id: &Hash,
    counts: &crate::trees::Counts,
) -> bool {
    let kept = p.publish(id).is_ok();
    if kept {
        // Best effort: a checkout counts from the manifest when these are missing.
        let _ = crate::trees::set_counts(store, id, counts);
    }
    kept
}

/// What the walk's `recorders` found, put together (`slots`: the directory slots given out).
fn found(recorders: Vec<Recorder<'_, '_>>, slots: u32) -> Found {
    let (mut nodes, mut pieces) = (Vec::new(), Vec::new());
    for r in recorders {
        nodes.extend(r.nodes);
        pieces.extend(r.pieces);
    }
    Found::new(nodes, pieces, slots)
}

/// `names` cut into runs of `size` (the last may be shorter), in order, each allocated for
/// its own length: the chunks of a directory of N files hold N names' worth of memory, not
/// the N²/`size` that splitting the head off again and again would keep (each `split_off`
/// leaves the head with the whole vector's capacity).
fn chunks<T>(mut names: Vec<T>, size: usize) -> Vec<Vec<T>> {
    let size = size.max(1);
    let mut out = Vec::with_capacity(names.len().div_ceil(size));
    while names.len() > size {
        let at = (names.len() - 1) / size * size;
        out.push(names.split_off(at));
    }
    if !names.is_empty() {
        names.shrink_to_fit();
        out.push(names);
    }
    out.reverse();
    out
}

/// What the walk found a directory entry to be.
enum EntryKind {
    File,
    Dir,
    Symlink,
    /// Anything else, named for the refusal: a fifo, a socket, a device; on Windows a
    /// junction or another reparse point that is no symlink.
    Special(&'static str),
}

/// What `ent` of `dir` is (its type from the listing, or an `lstat` where the filesystem
/// gives none); `None` when it vanished. An error comes with the operation that failed.
#[cfg(unix)]
fn entry_kind(
    dir: &Dir,
    ent: &DirEntry,
) -> std::result::Result<Option<EntryKind>, (&'static str, io::Error)> {
    let mut ft = ent.file_type;
    if ft == FileType::Unknown {
        match statat(dir, &ent.name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => ft = FileType::from_raw_mode(st.st_mode),
            Err(Errno::NOENT) => return Ok(None),
            Err(e) => return Err(("stat", e.into())),
        }
    }
    Ok(Some(match ft {
        FileType::RegularFile => EntryKind::File,
        FileType::Directory => EntryKind::Dir,
        FileType::Symlink => EntryKind::Symlink,
        other => EntryKind::Special(type_name(other)),
    }))
}

/// What `ent` is on Windows, from the listing's attributes and reparse tag: a file, a
/// directory, a symlink (recorded as one, its target as `read_link` gives it), or another
/// reparse point (a junction, a cloud placeholder...), refused as special. A name that is no
/// valid Unicode (an unpaired surrogate, which NTFS allows) is refused: a manifest's names are
/// UTF-8 bytes on Windows, so that another platform reads the same name.
#[cfg(windows)]
fn entry_kind(
    _dir: &Dir,
    ent: &DirEntry,
) -> std::result::Result<Option<EntryKind>, (&'static str, io::Error)> {
    if ent.name.to_str().is_none() {
        return Err((
            "record",
            io::Error::new(
                io::ErrorKind::InvalidInput,
                "the name is not valid Unicode (an unpaired surrogate): a snapshot records \
                 names as UTF-8",
            ),
        ));
    }
    let ft = ent.file_type;
    Ok(Some(if ft.is_file() {
        EntryKind::File
    } else if ft.is_dir() {
        EntryKind::Dir
    } else if ft.is_symlink() {
        EntryKind::Symlink
    } else if ft.is_junction() {
        EntryKind::Special("junction (a reparse point)")
    } else {
        EntryKind::Special("reparse point other than a symlink")
    }))
}

/// A symlink's target as the manifest records it: its bytes on unix; on Windows its UTF-8
/// (what `read_link` gives back of what `symlink` was given), and an error for a target that
/// is no valid Unicode.
#[cfg(unix)]
fn target_bytes(target: &OsStr) -> io::Result<&[u8]> {
    Ok(target.as_bytes())
}

/// A symlink's target as the manifest records it (see the unix one).
#[cfg(windows)]
fn target_bytes(target: &OsStr) -> io::Result<&[u8]> {
    target.to_str().map(str::as_bytes).ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            "the symlink's target is not valid Unicode",
        )
    })
}

/// Why `snapshot --archive` is refused on Windows, in one line, before anything is read.
#[cfg(windows)]
pub const ARCHIVE_UNAVAILABLE: &str = "snapshot --archive (owners, groups, modes, extended \
     attributes and ACLs, hardlinks, special files) is not available on Windows";

fn poisoned_io<T>(_: T) -> io::Error {
    io::Error::other("internal error: a worker panicked")
}

impl Recorder<'_, '_> {
    fn full(&self, rel: &[u8]) -> std::path::PathBuf {
        self.root_path.join(path_of(rel))
    }

    /// Puts the regular files `names` of `dir` (at `rel`, on device `dev`) into the store
    /// ([`Putter::put_files`]), recording each in turn; the first error, naming its file, ends
    /// the job.
    #[allow(clippy::too_many_arguments)]
    fn ingest_files(
        &mut self,
        dir: &Dir,
        dev: u64,
        slot: u32,
        rel: &[u8],
        names: &[OsString],
        progress: &Progress,
        stopped: impl Fn() -> bool,
    ) -> Result<()> {
        if stopped() {
            return Ok(());
        }
        let bytes = names.iter().map(|n| n.len()).sum();
        let mut piece = Piece::new(slot, names.len(), bytes);
        let mut failed = None;
        let putter = self.put;
        putter.put_files(dir, dev, names, |name, put| {
            let path = || join(rel, name.as_encoded_bytes());
            match put {
                Ok(Some(p)) => {
                    progress.add(1, p.size);
                    if let Err(e) =
                        piece.file(name.as_encoded_bytes(), p.executable, p.size, &p.hash)
                    {
                        failed = Some(self.too_long(&path(), e));
                        return ControlFlow::Break(());
                    }
                }
                Ok(None) => {}
                Err(e) => {
                    failed = Some(Error::io_at("", self.full(&path()), e));
                    return ControlFlow::Break(());
                }
            }
            if stopped() {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        });
        piece.shrink();
        self.pieces.push(piece);
        failed.map_or(Ok(()), Err)
    }

    fn too_long(&self, path: &[u8], _: TooLong) -> Error {
        Error::NameTooLong {
            path: self.full(path),
        }
    }

    /// A new directory slot.
    fn slot(&self) -> Result<u32> {
        let next = |s: u32| s.checked_add(1).filter(|&n| n < u32::MAX);
        let Ok(slot) = self
            .slots
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, next)
        else {
            return Err(Error::TooLarge(format!(
                "snapshot of {}: more than 4,294,967,294 directories",
                self.root_path.display()
            )));
        };
        Ok(slot)
    }
}

impl Visitor for Recorder<'_, '_> {
    /// The directory's slot (see [`crate::found`]).
    type Ctx = u32;
    /// Regular files of one directory (its device, its slot, their names), when a big
    /// directory is split so that several workers share it.
    type Job = (u64, u32, Vec<OsString>);
    type Error = Error;

    fn visit_dir(&mut self, d: &mut DirVisit<'_, u32, Self::Job>, slot: u32) -> Result<()> {
        let rel = d.rel();
        if rel.len() > PATH_MAX {
            // The manifest would refuse the path anyway: refuse it now, before the files
            // beneath it are put in the store.
            return Err(Error::msg(format!(
                "snapshot of {}: {}: invalid path: {}",
                self.root_path.display(),
                show(rel),
                NameError::PathTooLong(rel.len())
            )));
        }
        let st = d
            .dir()
            .stat_self()
            .map_err(|e| Error::io_at("stat", self.full(rel), e))?;
        let (dev, ino) = file_id(&st);
        if (dev, ino) == self.store_id {
            // The store itself lives inside the tree being recorded: leave it out.
            return Ok(());
        }
        let list = d
            .entries()
            .map_err(|e| Error::io_at("read directory", self.full(d.rel()), e))?;
        let rel = d.rel();
        if list.is_empty() && !rel.is_empty() {
            self.nodes.push((slot, Node::empty()));
            return Ok(());
        }
        let mut links = Piece::new(slot, 0, 0);
        let mut files: Vec<OsString> = Vec::new();
        let mut subdirs: Vec<OsString> = Vec::new();
        for ent in list {
            if d.stopped() {
                return Ok(());
            }
            let kind = match entry_kind(d.dir(), &ent) {
                Ok(Some(kind)) => kind,
                Ok(None) => continue,
                Err((op, e)) => {
                    let path = join(rel, ent.name.as_encoded_bytes());
                    return Err(Error::io_at(op, self.full(&path), e));
                }
            };
            match kind {
                EntryKind::File => files.push(ent.name),
                EntryKind::Dir => subdirs.push(ent.name),
                EntryKind::Symlink => {
                    let path = join(rel, ent.name.as_encoded_bytes());
                    let target = match d.dir().read_link(&ent.name) {
                        Ok(t) => t,
                        Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                        Err(e) => return Err(Error::io_at("", self.full(&path), e)),
                    };
                    let target =
                        target_bytes(&target).map_err(|e| Error::io_at("", self.full(&path), e))?;
                    if links.symlink(ent.name.as_encoded_bytes(), target).is_err() {
                        // A piece holds 4 GiB of names and targets: start another.
                        let mut full = std::mem::replace(&mut links, Piece::new(slot, 0, 0));
                        full.shrink();
                        self.pieces.push(full);
                        if let Err(e) = links.symlink(ent.name.as_encoded_bytes(), target) {
                            return Err(self.too_long(&path, e));
                        }
                    }
                }
                EntryKind::Special(_) if self.skip_special => continue,
                EntryKind::Special(what) => {
                    let path = join(rel, ent.name.as_encoded_bytes());
                    return Err(Error::SpecialFile {
                        path: self.full(&path),
                        how: format!("is a {what} (special file)"),
                    });
                }
            }
        }
        if self.skip_special && links.is_empty() && files.is_empty() && subdirs.is_empty() {
            // Nothing but special files (recorded after the walk, beneath it): an empty
            // directory to the tree.
            if !rel.is_empty() {
                self.nodes.push((slot, Node::empty()));
            }
            return Ok(());
        }
        if !links.is_empty() {
            links.shrink();
            self.pieces.push(links);
        }
        let mut node = Node::default();
        for name in subdirs {
            let sub = self.slot()?;
            if let Err(e) = node.sub(name.as_encoded_bytes(), sub) {
                return Err(self.too_long(&join(d.rel(), name.as_encoded_bytes()), e));
            }
            d.descend(&name, sub);
        }
        node.shrink();
        self.nodes.push((slot, node));
        // The files go into jobs (a big directory's split so that several workers share it),
        // so that the subdirectories reach the other workers now, not after this directory's
        // files; the last job queued is the next this worker takes.
        for chunk in chunks(files, FILE_CHUNK) {
            d.spawn((dev, slot, chunk));
        }
        Ok(())
    }

    fn visit_job(&mut self, j: &JobVisit<'_>, (dev, slot, names): Self::Job) -> Result<()> {
        self.ingest_files(j.dir(), dev, slot, j.rel(), &names, j.progress(), || {
            j.stopped()
        })
    }

    fn open_failed(&mut self, at: &Failed<'_>, _: u32, e: io::Error) -> Result<()> {
        Err(Error::io_at("", self.full(at.rel), e))
    }
}

/// Shows a manifest path for messages.
pub fn show_path(p: &[u8]) -> String {
    show(p)
}

/// Records a manifest built elsewhere (the JSON interchange format) as a snapshot, after
/// checking that every blob it names is in the store with the size it states. Nothing is
/// written unless every check passes.
pub fn record_manifest(store: &Store, manifest: &Manifest, name: Option<&str>) -> Result<Hash> {
    if let Some(n) = name {
        crate::refs::validate_name(n)?;
    }
    let _lock = store.lock_shared()?;
    #[cfg(windows)]
    let blobs = BlobDirs::new(store);
    for e in manifest.entries() {
        let Some(hash) = e.hash() else { continue };
        #[cfg(unix)]
        let rel = Store::blob_rel(hash);
        #[cfg(unix)]
        let size = match statat(store.blobs(), &rel, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => Some(st.st_size as u64),
            Err(Errno::NOENT) => None,
            Err(err) => return Err(Error::io_at("stat", store.blob_path(hash), err.into())),
        };
        #[cfg(windows)]
        let size = blobs
            .size(hash)
            .map_err(|err| Error::io_at("stat", store.blob_path(hash), err))?;
        match size {
            Some(size) if size == e.size() => {}
            Some(size) => {
                return Err(Error::invalid_input(format!(
                    "entry {}: size {} does not match blob {hash} ({} bytes)",
                    show(&e.path),
                    e.size(),
                    size
                )));
            }
            None => {
                return Err(Error::invalid_input(format!(
                    "entry {}: blob {hash} is not in the store {}",
                    show(&e.path),
                    store.root().display()
                )));
            }
        }
    }
    let id = store.save(manifest)?;
    if let Some(n) = name {
        crate::refs::set(store, n, &id)?;
    }
    Ok(id)
}

// (The unix putter's own tests: Windows' are tests/windows_data.rs.)
#[cfg(all(test, unix))]
#[path = "ingest_tests.rs"]
mod tests;
