//! Ingest: record a directory tree as blobs and a manifest.
//!
//! The walk is [`cowtree_fs::walk`] on the ingest pool (see `workers.rs`): parallel, each
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
//! argument; `tests/ingest_writers.rs` runs writers of every kind against it).
//!
//! Hashing the source first (from the page cache) lets content already in the store skip the
//! clone entirely; for new content that read is wasted, so it is adaptive: always for the
//! first files of a snapshot, then only while it keeps finding blobs (plus a sample, to notice
//! when it would start to). Re-recording an unchanged tree is therefore about a hash of it.
//!
//! Cost note: a fresh clone's pages are not in the page cache (the cache is per inode), so
//! hashing a clone reads its blocks from the device; hashing the source after the clone (above)
//! avoids that read for every file not changed in the last two seconds. Ingest runs on its own
//! worker pool (2 workers per core, see `workers.rs`): a worker waits for reads, so two per core
//! keep the cores busy, while only one per core at a time clones (`workers::Gate`). Each worker
//! opens two files (`LOOKAHEAD`) ahead of the one it records and starts reading their pages
//! (`readahead.rs`), so that a cold source is read while the worker clones and hashes the files
//! before it.

use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::io;
use std::ops::ControlFlow;
use std::os::fd::AsFd;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::Instant;

use cowtree_fs::classify::{CloneErrno, classify_clone_errno};
use cowtree_fs::dir::Dir;
use cowtree_fs::name::{NameError, PATH_MAX};
use cowtree_fs::progress::Progress;
use cowtree_fs::walk::{DirVisit, Failed, JobVisit, Visitor, Walk};
use cowtree_fs::{Method, Transfer, TransferOptions, UnsupportedCause, transfer_at};
use rustix::fs::{AtFlags, FileType, Mode, OFlags, RenameFlags, Stat, fstat, openat, statat};
use rustix::io::Errno;

use crate::error::{Error, Result};
use crate::found::{Found, Node, Piece, TooLong};
use crate::hash::Hash;
use crate::manifest::{Manifest, show};
use crate::store::Store;
use crate::util::{join, path_of};
use crate::workers::LOOKAHEAD;

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
const MAX_LANES: usize = 16;

/// A clone in staging whose hash is still to be computed.
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
struct Source {
    fd: OwnedFd,
    st: Stat,
}

/// How [`Putter::clone_unnamed`] ended.
enum Unnamed {
    Cloned(OwnedFd),
    /// The staging filesystem has no `O_TMPFILE`: use named staging.
    NoTmpfile,
    Unsupported(UnsupportedCause),
}

/// What [`Putter::stage`] did with one file.
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
}

/// Puts files into the store one at a time, the way a snapshot records each file (see the
/// module doc): pre-hash when it pays, else clone into staging (unnamed where the filesystem
/// allows), hash the clone and link it into `blobs/`; copy and hash in one pass where
/// clones do not work. It remembers what it learnt about the filesystems (no clones from a
/// device, no `O_TMPFILE`, no `linkat(AT_EMPTY_PATH)`) and counts what it did. Shared by the
/// workers of one snapshot.
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
    /// Lets one clone per core run at a time (see [`crate::workers::Gate`]).
    clones: crate::workers::Gate,
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
    let started = Instant::now();
    if let Some(n) = name {
        crate::refs::validate_name(n)?;
    }
    let (root, store_id) = open_source(store, src)?;
    let _lock = store.lock_shared()?;
    // A btrfs subvolume's root: read from a read-only snapshot of it, a point in time that
    // no writer can change, which then stays as the snapshot's tree.
    let (frozen, reason) =
        match crate::trees::freeze(store, cowtree_fs::subvolume::At::new(&root, src))? {
            Ok(p) => (Some(p), None),
            Err(why) => (None, Some(why)),
        };
    let reason =
        reason.filter(|r| !matches!(r, cowtree_fs::whole_tree::NotUsed::Filesystem { .. }));
    let staging = store.staging("ingest")?;
    let mut put = Putter::new(store, staging.dir());
    if frozen.is_some() {
        // Nothing writes a read-only snapshot: every file's own hash, taken after its clone,
        // is the clone's.
        put = put.with_ctime_margin(0);
    }
    let walk_root = frozen.as_ref().map_or(&root, |p| p.dir());
    let slots = AtomicU32::new(1);
    let recorders = Walk::on(crate::workers::pool(crate::workers::Pool::Ingest))
        .progress(progress)
        .run(vec![(walk_root, 0)], || Recorder {
            root_path: src,
            store_id,
            put: &put,
            slots: &slots,
            nodes: Vec::new(),
            pieces: Vec::new(),
        })?;
    let walked = started.elapsed();
    let found = found(recorders, slots.load(Ordering::Relaxed));
    let context = format!("snapshot of {}", src.display());
    let (synced, written) = write_while_syncing(store, &found, &context);
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
    let frozen = frozen.is_some_and(|p| keep_frozen(store, p, &id, &counts));
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
    let store_id = (cowtree_fs::sys::stat_dev(&store_st), store_st.st_ino);
    let src_st = root.stat_self().map_err(|e| at(src, e))?;
    if (cowtree_fs::sys::stat_dev(&src_st), src_st.st_ino) == store_id {
        // A refusal: recording the store into itself can only be reported.
        return Err(Error::msg(format!(
            "snapshot: {} is the store itself",
            src.display()
        )));
    }
    Ok((root, store_id))
}

/// The manifest's writer, with what it holds.
type Written<'s> = Result<(crate::store::ManifestWriter<'s>, crate::trees::Counts)>;

/// Every blob the manifest names is placed: they are made durable (`syncfs`, which mostly
/// waits for the disk) while the manifest is put in order, checked, encoded, hashed and
/// written, and the manifest is named only after both (docs/store.md, "Durability").
/// Returns (synced, written).
fn write_while_syncing<'s>(
    store: &'s Store,
    found: &Found,
    context: &str,
) -> (Result<()>, Written<'s>) {
    std::thread::scope(|s| {
        let sync = std::thread::Builder::new()
            .name("cowtree-sync".into())
            .spawn_scoped(s, || store.sync_filesystem());
        let written = (|| {
            let mut writer = store.manifest_writer(found.entries(), context)?;
            let counts = found.write(|entry| writer.push(entry))?;
            Ok::<_, Error>((writer, counts))
        })();
        let synced = match sync {
            Ok(t) => t
                .join()
                .unwrap_or_else(|_| Err(Error::msg("internal error: the sync thread panicked"))),
            // No thread to be had: in turn.
            Err(_) => store.sync_filesystem(),
        };
        (synced, written)
    })
}

/// Keeps the read-only snapshot `p` as snapshot `id`'s tree (derived data: a failure here
/// loses nothing, and the read-only snapshot is removed, or left to gc); whether it was kept.
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
            let path = || join(rel, name.as_bytes());
            match put {
                Ok(Some(p)) => {
                    progress.add(1, p.size);
                    if let Err(e) = piece.file(name.as_bytes(), p.executable, p.size, &p.hash) {
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
        Error::msg(format!(
            "{}: its name or target is too long to record",
            self.full(path).display()
        ))
    }

    /// A new directory slot.
    fn slot(&self) -> Result<u32> {
        let next = |s: u32| s.checked_add(1).filter(|&n| n < u32::MAX);
        let Ok(slot) = self
            .slots
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, next)
        else {
            return Err(Error::msg(format!(
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
        let dev = cowtree_fs::sys::stat_dev(&st);
        if (dev, st.st_ino) == self.store_id {
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
            let mut ft = ent.file_type;
            if ft == FileType::Unknown {
                match statat(d.dir(), &ent.name, AtFlags::SYMLINK_NOFOLLOW) {
                    Ok(st) => ft = FileType::from_raw_mode(st.st_mode),
                    Err(Errno::NOENT) => continue,
                    Err(e) => {
                        let path = join(rel, ent.name.as_bytes());
                        return Err(Error::io_at("stat", self.full(&path), e.into()));
                    }
                }
            }
            match ft {
                FileType::RegularFile => files.push(ent.name),
                FileType::Directory => subdirs.push(ent.name),
                FileType::Symlink => {
                    let path = join(rel, ent.name.as_bytes());
                    let target = match d.dir().read_link(&ent.name) {
                        Ok(t) => t,
                        Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                        Err(e) => return Err(Error::io_at("", self.full(&path), e)),
                    };
                    if links
                        .symlink(ent.name.as_bytes(), target.as_bytes())
                        .is_err()
                    {
                        // A piece holds 4 GiB of names and targets: start another.
                        let mut full = std::mem::replace(&mut links, Piece::new(slot, 0, 0));
                        full.shrink();
                        self.pieces.push(full);
                        if let Err(e) = links.symlink(ent.name.as_bytes(), target.as_bytes()) {
                            return Err(self.too_long(&path, e));
                        }
                    }
                }
                other => {
                    let path = join(rel, ent.name.as_bytes());
                    return Err(Error::msg(format!(
                        "{}: is a {} (special file); only files, directories and symlinks can be \
                         recorded",
                        self.full(&path).display(),
                        type_name(other)
                    )));
                }
            }
        }
        if !links.is_empty() {
            links.shrink();
            self.pieces.push(links);
        }
        let mut node = Node::default();
        for name in subdirs {
            let sub = self.slot()?;
            if let Err(e) = node.sub(name.as_bytes(), sub) {
                return Err(self.too_long(&join(d.rel(), name.as_bytes()), e));
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

impl<'a> Putter<'a> {
    /// A putter into `store` staging in `staging` (a directory of the store's `tmp/`, see
    /// [`Store::staging`]).
    pub fn new(store: &'a Store, staging: &'a Dir) -> Putter<'a> {
        Putter {
            store,
            staging,
            no_clone: Mutex::new(HashMap::new()),
            counter: AtomicU64::new(0),
            new_blobs: AtomicU64::new(0),
            new_bytes: AtomicU64::new(0),
            cloned_bytes: AtomicU64::new(0),
            copied_bytes: AtomicU64::new(0),
            // Unreadable: as if not empty.
            store_was_empty: store.holds_any_snapshot().is_ok_and(|any| !any),
            prehashed: AtomicU64::new(0),
            prehash_hits: AtomicU64::new(0),
            tmpfile: AtomicBool::new(true),
            tmpfile_mode_ok: AtomicBool::new(false),
            link_empty_path: AtomicBool::new(true),
            lanes: OnceLock::new(),
            old_ctime_before: now_ns().saturating_sub(CTIME_MARGIN_NS),
            source_hashed: AtomicU64::new(0),
            source_changed: AtomicU64::new(0),
            clones: crate::workers::Gate::per_core(),
        }
    }

    /// This putter, taking a source's own hash after its clone when its ctime is older than
    /// its start by `margin_ns` instead of [`CTIME_MARGIN_NS`]. Sound only where file times have
    /// a granularity below `margin_ns` and the kernel's clock tick is shorter than it (the tests
    /// use it on XFS and btrfs, which keep nanoseconds, so that a writer makes many rounds).
    pub fn with_ctime_margin(mut self, margin_ns: i64) -> Putter<'a> {
        self.old_ctime_before = now_ns().saturating_sub(margin_ns.max(0));
        self
    }

    /// Clones whose source was hashed after the clone (its stat proving it unchanged).
    pub fn source_hashed(&self) -> u64 {
        self.source_hashed.load(Ordering::Relaxed)
    }

    /// Clones whose source was hashed after the clone but changed meanwhile, so that the clone
    /// was hashed instead.
    pub fn source_changed(&self) -> u64 {
        self.source_changed.load(Ordering::Relaxed)
    }

    /// Blobs that were not in the store before.
    pub fn new_blobs(&self) -> u64 {
        self.new_blobs.load(Ordering::Relaxed)
    }

    /// Their total size.
    pub fn new_bytes(&self) -> u64 {
        self.new_bytes.load(Ordering::Relaxed)
    }

    /// Bytes whose staging copy was a clone.
    pub fn cloned_bytes(&self) -> u64 {
        self.cloned_bytes.load(Ordering::Relaxed)
    }

    /// Bytes that had to be copied into the store.
    pub fn copied_bytes(&self) -> u64 {
        self.copied_bytes.load(Ordering::Relaxed)
    }

    /// Puts the regular file `name` under `dir` (a directory on device `dev`) into the store
    /// and returns its size and blob; `None` when it vanished before it could be read. A file
    /// that is no longer a regular file when opened is an error (`InvalidInput`). Errors do
    /// not name the file: the caller knows its path.
    pub fn put(&self, dir: &Dir, dev: u64, name: &OsStr) -> io::Result<Option<Put>> {
        match self.open_source(dir, name)? {
            Some(src) => self.put_opened(dir, dev, name, src),
            None => Ok(None),
        }
    }

    /// [`Putter::put`] of each of the files `names` under `dir` in turn, the way a snapshot
    /// records the files of one job: two files (`LOOKAHEAD`) are opened, and their first
    /// `fstat` taken, before their turn, with their reads started (see `readahead.rs`).
    /// `each` gets each file's name and result in the order of `names`, after the file before
    /// it, and ends the run early by returning [`ControlFlow::Break`]; the files opened ahead
    /// are then closed unrecorded. A file's error is its own: the others are still recorded
    /// (until `each` breaks).
    pub fn put_files(
        &self,
        dir: &Dir,
        dev: u64,
        names: &[OsString],
        mut each: impl FnMut(&OsStr, io::Result<Option<Put>>) -> ControlFlow<()>,
    ) {
        // Each file opened ahead keeps its own result (an error of its open is given to `each`
        // in its turn, under its name).
        let mut ahead = std::collections::VecDeque::with_capacity(LOOKAHEAD + 1);
        let mut opened = 0;
        for name in names {
            while opened < names.len() && ahead.len() <= LOOKAHEAD {
                ahead.push_back(self.open_source(dir, &names[opened]));
                opened += 1;
            }
            let source = ahead
                .pop_front()
                .unwrap_or_else(|| self.open_source(dir, name));
            let put =
                source.and_then(|s| s.map_or(Ok(None), |s| self.put_opened(dir, dev, name, s)));
            if each(name, put).is_break() {
                return;
            }
        }
    }

    /// [`Putter::put`] of a file already opened by [`Putter::open_source`].
    fn put_opened(
        &self,
        dir: &Dir,
        dev: u64,
        name: &OsStr,
        src: Source,
    ) -> io::Result<Option<Put>> {
        match self.stage(dir, dev, name, src)? {
            Step::Done(p) => Ok(Some(p)),
            Step::Staged(s) => self.finish_staged(s).map(Some),
            Step::Vanished => Ok(None),
        }
    }

    /// Opens the file `name` under `dir` for [`Putter::stage`] and takes its first stat;
    /// `None` when it vanished. When its pages will likely be read (its ctime is old enough for
    /// the source to be hashed after its clone, or the pre-hash sampling, asked now, says it
    /// would pre-hash: a guess, since the sampling may answer otherwise when the file is
    /// staged), their reads are started now ([`crate::readahead::will_need`]): the caller
    /// opens a few files ahead of the one it records. This changes nothing in the order that
    /// makes a source's hash trustworthy (docs/store.md): this `fstat` is still the one before
    /// the clone, and any change between it and the clone, like one after the clone, sets a
    /// new ctime that the second `fstat` shows; the pages read in early are the file's one
    /// page cache, read again by the hash.
    fn open_source(&self, dir: &Dir, name: &OsStr) -> io::Result<Option<Source>> {
        // O_NONBLOCK: a FIFO swapped in after the directory was read cannot block the open.
        let fd = match openat(
            dir,
            name,
            OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::NONBLOCK | OFlags::NOCTTY,
            Mode::empty(),
        ) {
            Ok(fd) => fd,
            Err(Errno::NOENT) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let st = fstat(&fd)?;
        if FileType::from_raw_mode(st.st_mode) != FileType::RegularFile {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "changed into something other than a regular file while being recorded",
            ));
        }
        if ctime_ns(&st) < self.old_ctime_before || self.prehash_wanted() {
            crate::readahead::will_need(&fd, st.st_size as u64);
        }
        Ok(Some(Source { fd, st }))
    }

    /// Hashes a staged clone (what is actually in the store's staging, never the source) and
    /// gives it its name in `blobs/`.
    fn finish_staged(&self, s: Staged<'_>) -> io::Result<Put> {
        let (size, hash) = match s.known {
            Some(k) => k,
            None => hash_fd(&s.fd)?,
        };
        self.cloned_bytes.fetch_add(size, Ordering::Relaxed);
        match &s.sname {
            Some(sname) => {
                drop(s.fd);
                self.place_blob(s.lane, sname, &hash, size)?;
            }
            None => self.link_blob(&s.fd, &hash, size)?,
        }
        Ok(Put {
            size,
            hash,
            executable: s.exec,
        })
    }

    /// Whether to hash the source before cloning it. That read comes from the page cache and
    /// pays when the content is already in the store (no clone, no read of the clone, no
    /// rename); for new content it is wasted. So: always for the first [`PREHASH_WARMUP`]
    /// files, then while at least one pre-hash in 16 found its blob, and otherwise for one
    /// file in [`PREHASH_SAMPLE`]; never when the store held no snapshot at the start (mostly a
    /// first snapshot into a new store, where none of them could find a blob; see
    /// `store_was_empty` for when that costs work).
    fn prehash_wanted(&self) -> bool {
        if self.store_was_empty {
            return false;
        }
        let n = self.prehashed.load(Ordering::Relaxed);
        let hits = self.prehash_hits.load(Ordering::Relaxed);
        n < PREHASH_WARMUP
            || hits * 16 >= n
            || self
                .counter
                .load(Ordering::Relaxed)
                .is_multiple_of(PREHASH_SAMPLE)
    }

    /// Puts one file into the store, or clones it into staging for [`Putter::finish_staged`].
    ///
    /// Where cloning works, the source may be hashed first ([`Putter::prehash_wanted`]): content
    /// already in the store needs no clone at all (the blob there agrees with its name
    /// whatever the source does next). Otherwise the source is cloned into staging (an
    /// unnamed `O_TMPFILE` where the filesystem has it, else a named file) and the clone is
    /// hashed later, so a concurrent writer cannot make the blob disagree with its name.
    /// Without CoW the source is read once, written to staging and hashed in the same pass.
    fn stage(&self, dir: &Dir, dev: u64, name: &OsStr, source: Source) -> io::Result<Step<'_>> {
        let Source { fd: src, st } = source;
        let exec = st.st_mode & 0o111 != 0;
        let prehash = self.prehash_wanted();
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        // The name of a named staging file (no `O_TMPFILE`, or a copy), made only for those.
        let staging_name = || OsString::from(format!("f{n}"));
        let try_clone = !self
            .no_clone
            .lock()
            .map_err(poisoned_io)?
            .contains_key(&dev);
        if try_clone
            && prehash
            && let Some(done) = self.prehash(&src, exec)?
        {
            return Ok(done);
        }
        // Only content new to the store is staged (and makes the lanes).
        let lane = self.lane();
        if try_clone {
            let cloned = if self.tmpfile.load(Ordering::Relaxed) {
                match self.clone_unnamed(lane, &src)? {
                    Unnamed::Cloned(fd) => {
                        // Cloned from `src` itself: its stat `st` is the version cloned unless
                        // the second stat says otherwise.
                        let known = self.hash_source_after_clone(&src, &st)?;
                        return Ok(Step::Staged(Staged {
                            lane,
                            fd,
                            sname: None,
                            exec,
                            known,
                        }));
                    }
                    Unnamed::Unsupported(cause) => Err(cause),
                    Unnamed::NoTmpfile => Ok(()),
                }
            } else {
                Ok(())
            };
            let cloned: std::result::Result<(), UnsupportedCause> = match cloned {
                Err(cause) => Err(cause),
                Ok(()) => {
                    let opts = TransferOptions {
                        method: Method::Clone,
                        mode: Some(0o444),
                        preserve_times: false,
                    };
                    let sname = staging_name();
                    let transfer = {
                        let _clone = self.clones.enter();
                        transfer_at(dir, name, lane, &sname, &opts)?
                    };
                    match transfer {
                        Transfer::Cloned { .. } => {
                            let fd = openat(
                                lane,
                                &sname,
                                OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                                Mode::empty(),
                            )?;
                            // Cloned from the name, which may be another inode than `src` by
                            // now: only the clone can be hashed.
                            return Ok(Step::Staged(Staged {
                                lane,
                                fd,
                                sname: Some(sname),
                                exec,
                                known: None,
                            }));
                        }
                        Transfer::SourceVanished => return Ok(Step::Vanished),
                        Transfer::Unsupported(cause) => Err(cause),
                        Transfer::Copied { .. } => unreachable!("Method::Clone never copies"),
                    }
                }
            };
            if let Err(cause) = cloned
                && !cause.is_per_file()
            {
                self.no_clone.lock().map_err(poisoned_io)?.insert(dev, ());
            }
        }
        // The source may have been read by the pre-hash.
        rustix::fs::seek(&src, rustix::fs::SeekFrom::Start(0))?;
        let sname = staging_name();
        let (size, hash) = copy_and_hash(&src, lane, &sname)?;
        self.copied_bytes.fetch_add(size, Ordering::Relaxed);
        self.place_blob(lane, &sname, &hash, size)?;
        Ok(Step::Done(Put {
            size,
            hash,
            executable: exec,
        }))
    }

    /// The size and hash of `src` just cloned, taken from the source (see the module doc) when
    /// its ctime at `before` (its `fstat` before the clone) is old enough and a second `fstat`
    /// after hashing shows the same inode, size, mtime and ctime; `None`: hash the clone.
    fn hash_source_after_clone(
        &self,
        src: &OwnedFd,
        before: &Stat,
    ) -> io::Result<Option<(u64, Hash)>> {
        if ctime_ns(before) >= self.old_ctime_before {
            return Ok(None);
        }
        // Exactly the size the first stat gave: a file that grew or shrank since has a new
        // ctime, which the second stat shows; no read to find the end is needed.
        let size = before.st_size as u64;
        let hash = hash_prefix(src, size)?;
        let after = fstat(src)?;
        let same = after.st_ino == before.st_ino
            && after.st_dev == before.st_dev
            && after.st_size == before.st_size
            && mtime_ns(&after) == mtime_ns(before)
            && ctime_ns(&after) == ctime_ns(before);
        if let (true, Some(hash)) = (same, hash) {
            self.source_hashed.fetch_add(1, Ordering::Relaxed);
            Ok(Some((size, hash)))
        } else {
            self.source_changed.fetch_add(1, Ordering::Relaxed);
            Ok(None)
        }
    }

    /// Hashes the source as it is (from the page cache); when the store holds that content
    /// already, the file is done.
    fn prehash(&self, src: &OwnedFd, exec: bool) -> io::Result<Option<Step<'_>>> {
        let (size, hash) = hash_fd(src)?;
        self.prehashed.fetch_add(1, Ordering::Relaxed);
        let known = statat(
            self.store.blobs(),
            Store::blob_rel(&hash),
            AtFlags::SYMLINK_NOFOLLOW,
        );
        if known.is_ok_and(|b| b.st_size as u64 == size) {
            self.prehash_hits.fetch_add(1, Ordering::Relaxed);
            return Ok(Some(Step::Done(Put {
                size,
                hash,
                executable: exec,
            })));
        }
        Ok(None)
    }

    /// The staging directory for the calling worker: a subdirectory of the staging directory
    /// of its own (one per worker of the pool, up to [`MAX_LANES`], shared beyond that), made
    /// on first use; the staging directory itself when none can be made.
    ///
    /// On XFS a new file's inode is allocated in the allocation group of its directory, and an
    /// `O_TMPFILE` inode sits on that group's unlinked list until it is linked: both take the
    /// group's AGI buffer lock for the whole transaction. With one staging directory every
    /// worker queues on one AGI for each file; new directories are spread over the groups, so
    /// a directory per worker spreads those locks. Measured on the bench tree (80,000 files)
    /// on a 4-group XFS, 5 alternating runs each: a snapshot into an empty store 5.20 s with
    /// one directory, 4.69 s with one per worker, and no wait left on an AGI lock.
    fn lane(&self) -> &Dir {
        let lanes = self.lanes.get_or_init(|| {
            let n = cowtree_fs::workers::current_workers().clamp(1, MAX_LANES);
            (0..n)
                .map_while(|i| {
                    let name = OsString::from(format!("lane{i}"));
                    // A lane that cannot be made is only a lost spread: its error is dropped,
                    // and the files go to the lanes made before it (or to staging itself).
                    self.staging.create_dir_open(&name, 0o700).ok()
                })
                .collect()
        });
        match cowtree_fs::workers::worker_index() {
            Some(i) if !lanes.is_empty() => &lanes[i % lanes.len()],
            _ => lanes.first().unwrap_or(self.staging),
        }
    }

    /// Clones `src` into a new unnamed file in staging (`O_TMPFILE`, mode 0444 from the
    /// start): no directory entry to create and rename, and nothing left behind by a crash.
    fn clone_unnamed(&self, lane: &Dir, src: &OwnedFd) -> io::Result<Unnamed> {
        let tmp = match cowtree_fs::sys::open_unnamed(
            lane,
            OFlags::RDWR | OFlags::CLOEXEC,
            Mode::from_raw_mode(0o444),
        ) {
            Ok(fd) => fd,
            Err(Errno::OPNOTSUPP | Errno::ISDIR | Errno::INVAL | Errno::NOENT) => {
                self.tmpfile.store(false, Ordering::Relaxed);
                return Ok(Unnamed::NoTmpfile);
            }
            Err(e) => return Err(with_context("create an unnamed staging file", e)),
        };
        // The umask applies to O_TMPFILE too; a blob must be 0444 before it has a name.
        if !self.tmpfile_mode_ok.load(Ordering::Relaxed) {
            if fstat(&tmp)?.st_mode & 0o7777 != 0o444 {
                rustix::fs::fchmod(&tmp, Mode::from_raw_mode(0o444))?;
            } else {
                self.tmpfile_mode_ok.store(true, Ordering::Relaxed);
            }
        }
        let mut retried = false;
        loop {
            let cloned = {
                let _clone = self.clones.enter();
                cowtree_fs::sys::ficlone(&tmp, src)
            };
            match cloned {
                Ok(()) => return Ok(Unnamed::Cloned(tmp)),
                Err(e) => match classify_clone_errno(e.raw_os_error()) {
                    CloneErrno::Retry if !retried => retried = true,
                    CloneErrno::Retry => return Ok(Unnamed::Unsupported(UnsupportedCause::Busy)),
                    CloneErrno::Unsupported(cause) => return Ok(Unnamed::Unsupported(cause)),
                    CloneErrno::MaybeVanished | CloneErrno::Exists | CloneErrno::Fatal => {
                        return Err(with_context("clone into the store's staging", e));
                    }
                },
            }
        }
    }

    /// Gives the hashed unnamed staging file `fd` its name in `blobs/`; when another writer
    /// stored the same blob first, the unnamed file is simply dropped.
    fn link_blob(&self, fd: &OwnedFd, hash: &Hash, size: u64) -> io::Result<()> {
        let rel = Store::blob_rel(hash);
        let blobs = self.store.blobs();
        let mut by_path = !self.link_empty_path.load(Ordering::Relaxed);
        let mut fanout_made = false;
        loop {
            let r = if by_path {
                // Without CAP_DAC_READ_SEARCH: link the descriptor's magic link instead.
                let proc = format!("/proc/self/fd/{}", fd.as_raw_fd());
                rustix::fs::linkat(
                    rustix::fs::CWD,
                    proc.as_str(),
                    blobs,
                    &rel,
                    AtFlags::SYMLINK_FOLLOW,
                )
            } else {
                cowtree_fs::sys::link_unnamed(fd, blobs, &rel)
            };
            match r {
                Ok(()) => {
                    self.new_blobs.fetch_add(1, Ordering::Relaxed);
                    self.new_bytes.fetch_add(size, Ordering::Relaxed);
                    return Ok(());
                }
                Err(Errno::EXIST) => return Ok(()),
                // ENOENT: the fan-out directory is missing, or (for AT_EMPTY_PATH) the
                // capability is; EPERM/EACCES: no capability.
                Err(Errno::NOENT) if !fanout_made => {
                    fanout_made = true;
                    self.store.ensure_fanout(hash)?;
                }
                Err(Errno::NOENT | Errno::PERM | Errno::ACCESS) if !by_path => {
                    by_path = true;
                    self.link_empty_path.store(false, Ordering::Relaxed);
                }
                Err(e) => {
                    return Err(with_context(
                        &format!("link into {}", self.store.blob_path(hash).display()),
                        e,
                    ));
                }
            }
        }
    }

    /// Renames a hashed staging file into `blobs/`, or drops it when the blob exists.
    fn place_blob(&self, lane: &Dir, sname: &OsStr, hash: &Hash, size: u64) -> io::Result<()> {
        let rel = Store::blob_rel(hash);
        let blobs = self.store.blobs();
        let mut retried = false;
        loop {
            match rustix::fs::renameat_with(lane, sname, blobs, &rel, RenameFlags::NOREPLACE) {
                Ok(()) => {
                    self.new_blobs.fetch_add(1, Ordering::Relaxed);
                    self.new_bytes.fetch_add(size, Ordering::Relaxed);
                    return Ok(());
                }
                Err(Errno::EXIST) => {
                    rustix::fs::unlinkat(lane, sname, AtFlags::empty())?;
                    return Ok(());
                }
                Err(Errno::NOENT) if !retried => {
                    retried = true;
                    self.store.ensure_fanout(hash)?;
                }
                Err(e) => {
                    return Err(io::Error::new(
                        io::Error::from(e).kind(),
                        format!(
                            "move into {}: {}",
                            self.store.blob_path(hash).display(),
                            io::Error::from(e)
                        ),
                    ));
                }
            }
        }
    }
}

fn ctime_ns(st: &Stat) -> i64 {
    st.st_ctime
        .saturating_mul(1_000_000_000)
        .saturating_add(st.st_ctime_nsec as i64)
}

fn mtime_ns(st: &Stat) -> i64 {
    st.st_mtime
        .saturating_mul(1_000_000_000)
        .saturating_add(st.st_mtime_nsec as i64)
}

fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i64)
}

fn with_context(what: &str, e: Errno) -> io::Error {
    let e = io::Error::from(e);
    io::Error::new(e.kind(), format!("{what}: {e}"))
}

fn type_name(ft: FileType) -> &'static str {
    match ft {
        FileType::Fifo => "fifo",
        FileType::Socket => "socket",
        FileType::CharacterDevice => "character device",
        FileType::BlockDevice => "block device",
        _ => "file of unknown type",
    }
}

/// Hashes the file `name` under `dir` (a staging clone, so nobody else writes it).
pub(crate) fn hash_file(dir: impl AsFd, name: &OsStr) -> io::Result<(u64, Hash)> {
    let fd = openat(
        dir,
        name,
        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    hash_fd(&fd)
}

/// Reads from this size on are hashed on rayon's threads as well (as in
/// [`cowtree_fs::read::hash_fd`]).
const HASH_RAYON_FROM: usize = 256 * 1024;
/// The largest read of [`hash_prefix`].
const PREFIX_READ_MAX: usize = 1 << 20;

thread_local! {
    /// [`hash_prefix`]'s read buffer: grown to the largest read the thread has needed (up to
    /// [`PREFIX_READ_MAX`]), so that a small file costs one `pread` into memory already touched.
    static PREFIX_BUF: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// The BLAKE3 hash of the first `size` bytes of `fd`, read with `pread` from offset 0 (the
/// descriptor's offset is neither used nor moved), in one read for a file of up to 1 MiB and
/// without a read past `size` to find the end; `None` when the file ends before `size` bytes.
/// Not [`cowtree_fs::read::hash_fd`], which reads from the descriptor's offset to the end in
/// buffers growing from 64 KiB (two or more reads for every file).
fn hash_prefix(fd: &OwnedFd, size: u64) -> io::Result<Option<Hash>> {
    let mut hasher = blake3::Hasher::new();
    let mut run = |buf: &mut Vec<u8>| -> io::Result<bool> {
        let want = usize::try_from(size).map_or(PREFIX_READ_MAX, |s| s.min(PREFIX_READ_MAX));
        if buf.len() < want {
            buf.resize(want, 0);
        }
        let mut at = 0u64;
        while at < size {
            let n = usize::try_from(size - at).map_or(buf.len(), |left| left.min(buf.len()));
            let got = match rustix::io::pread(fd, &mut buf[..n], at) {
                Ok(0) => return Ok(false),
                Ok(got) => got,
                Err(Errno::INTR) => continue,
                Err(e) => return Err(e.into()),
            };
            if got >= HASH_RAYON_FROM {
                hasher.update_rayon(&buf[..got]);
            } else {
                hasher.update(&buf[..got]);
            }
            at += got as u64;
        }
        Ok(true)
    };
    // A rayon thread waiting in `update_rayon` may run another job that hashes too: that
    // nested call gets a buffer of its own.
    let whole = PREFIX_BUF.with(|b| match b.try_borrow_mut() {
        Ok(mut b) => run(&mut b),
        Err(_) => run(&mut Vec::new()),
    })?;
    Ok(whole.then(|| Hash::from(hasher.finalize())))
}

/// Hashes what `fd` holds from its current offset to the end.
fn hash_fd(fd: &OwnedFd) -> io::Result<(u64, Hash)> {
    let (size, hash) = cowtree_fs::read::hash_fd(fd, |_| Ok(()))?;
    Ok((size, Hash::from(hash)))
}

/// Reads `src` once from its current offset, writing it to `dst_name` under `dst_dir`
/// (created 0444) and hashing it in the same pass.
fn copy_and_hash(src: &OwnedFd, dst_dir: &Dir, dst_name: &OsStr) -> io::Result<(u64, Hash)> {
    let dst = openat(
        dst_dir,
        dst_name,
        OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::from_raw_mode(0o444),
    )?;
    let res = cowtree_fs::read::hash_fd(src, |chunk| {
        let mut off = 0;
        while off < chunk.len() {
            match rustix::io::write(&dst, &chunk[off..]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(w) => off += w,
                Err(Errno::INTR) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    });
    match res {
        Ok((size, hash)) => Ok((size, Hash::from(hash))),
        Err(e) => {
            let _ = rustix::fs::unlinkat(dst_dir, dst_name, AtFlags::empty());
            Err(e)
        }
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
    for e in manifest.entries() {
        let Some(hash) = e.hash() else { continue };
        let rel = Store::blob_rel(hash);
        match statat(store.blobs(), &rel, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) if st.st_size as u64 == e.size() => {}
            Ok(st) => {
                return Err(Error::invalid_input(format!(
                    "entry {}: size {} does not match blob {hash} ({} bytes)",
                    show(&e.path),
                    e.size(),
                    st.st_size
                )));
            }
            Err(Errno::NOENT) => {
                return Err(Error::invalid_input(format!(
                    "entry {}: blob {hash} is not in the store {}",
                    show(&e.path),
                    store.root().display()
                )));
            }
            Err(err) => return Err(Error::io_at("stat", store.blob_path(hash), err.into())),
        }
    }
    let id = store.save(manifest)?;
    if let Some(n) = name {
        crate::refs::set(store, n, &id)?;
    }
    Ok(id)
}

#[cfg(test)]
mod tests {
    use std::ffi::OsStr;

    use super::*;

    #[test]
    fn a_big_directorys_chunks_keep_its_order_and_hold_no_more_than_its_names() {
        for n in [0, 1, 127, 128, 129, 256, 1000, 165_393] {
            let names: Vec<u32> = (0..n).collect();
            let got = chunks(names, FILE_CHUNK);
            assert_eq!(got.len(), (n as usize).div_ceil(FILE_CHUNK), "{n} names");
            assert!(got.iter().all(|c| !c.is_empty() && c.len() <= FILE_CHUNK));
            let flat: Vec<u32> = got.iter().flatten().copied().collect();
            assert_eq!(flat, (0..n).collect::<Vec<_>>(), "{n} names: order");
            // What the queued jobs keep allocated: about the names themselves (the old
            // split kept N²/256 of them for a directory of N names).
            let held: usize = got.iter().map(|c| c.capacity()).sum();
            assert!(held <= n as usize + FILE_CHUNK, "{n} names: {held} held");
        }
    }

    #[test]
    fn a_directory_deeper_than_path_max_is_refused_before_the_files_beneath_it_are_stored() {
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::open(&tmp.path().join("store")).unwrap();
        let src = tmp.path().join("src");
        std::fs::create_dir(&src).unwrap();
        // 2100 levels of "a": the deepest directory's path is 4199 bytes (over PATH_MAX);
        // a file only in the deepest one.
        let mut d = Dir::open(&src).unwrap();
        for _ in 0..2100 {
            d = d.create_dir_open(OsStr::new("a"), 0o755).unwrap();
        }
        let fd = openat(
            &d,
            "bottom",
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL,
            Mode::from_raw_mode(0o644),
        )
        .unwrap();
        rustix::io::write(&fd, b"deep").unwrap();
        drop((fd, d));
        let err = snapshot_dir(&store, &src, None)
            .expect_err("refused")
            .to_string();
        assert!(err.contains("(limit 4096)"), "{err}");
        assert!(err.contains("invalid path"), "{err}");
        assert!(store.snapshot_ids().unwrap().is_empty());
        let mut stored = 0;
        let objects = tmp.path().join("store/blobs");
        for e in walkdir(&objects) {
            stored += usize::from(e.is_file());
        }
        assert_eq!(
            stored, 0,
            "nothing beneath the refused directory was stored"
        );
        let _ = std::process::Command::new("rm")
            .arg("-rf")
            .arg(&src)
            .status();
    }

    #[test]
    fn hash_prefix_hashes_exactly_the_given_size_without_moving_the_offset() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = Dir::open(tmp.path()).unwrap();
        // Sizes around the single read's limit and the rayon threshold, and an empty file.
        for len in [
            0usize,
            1,
            4096,
            HASH_RAYON_FROM,
            PREFIX_READ_MAX + 3,
            3 * PREFIX_READ_MAX,
        ] {
            let bytes: Vec<u8> = (0..len).map(|i| (i * 7 + len) as u8).collect();
            let name = format!("f{len}");
            std::fs::write(tmp.path().join(&name), &bytes).unwrap();
            let fd = openat(&dir, name.as_str(), OFlags::RDONLY, Mode::empty()).unwrap();
            let size = bytes.len() as u64;
            assert_eq!(
                hash_prefix(&fd, size).unwrap(),
                Some(Hash::of(&bytes)),
                "{len} bytes"
            );
            // A prefix is hashed as such; a size past the end is refused.
            assert_eq!(
                hash_prefix(&fd, size / 2).unwrap(),
                Some(Hash::of(&bytes[..len / 2])),
                "half of {len} bytes"
            );
            assert_eq!(hash_prefix(&fd, size + 1).unwrap(), None, "{len} bytes + 1");
            let offset = rustix::fs::seek(&fd, rustix::fs::SeekFrom::Current(0)).unwrap();
            assert_eq!(offset, 0, "the descriptor's offset is not moved");
        }
    }

    #[test]
    fn files_opened_ahead_are_recorded_in_turn_and_their_errors_named_in_turn() {
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::open(&tmp.path().join("store")).unwrap();
        let src = tmp.path().join("src");
        std::fs::create_dir(&src).unwrap();
        let content = |i: usize| format!("file {i} ").repeat(i * 100 + 1).into_bytes();
        for i in 0..8 {
            std::fs::write(src.join(format!("a{i}")), content(i)).unwrap();
        }
        let fifo = src.join("fifo");
        assert!(
            std::process::Command::new("mkfifo")
                .arg(&fifo)
                .status()
                .unwrap()
                .success()
        );
        let dir = Dir::open(&src).unwrap();
        let dev = cowtree_fs::sys::stat_dev(&dir.stat_self().unwrap());
        let staging = store.staging("ingest").unwrap();
        let put = Putter::new(&store, staging.dir());
        let slots = AtomicU32::new(1);
        let recorder = || Recorder {
            root_path: &src,
            store_id: (0, 0),
            put: &put,
            slots: &slots,
            nodes: Vec::new(),
            pieces: Vec::new(),
        };
        let names = |list: &[&str]| -> Vec<OsString> { list.iter().map(OsString::from).collect() };
        let progress = Progress::default();
        // A name that vanished is skipped; the fifo (opened ahead of its turn, without
        // blocking) is refused under its own path, after every file before it was recorded
        // and before any after it.
        let mut r = recorder();
        let err = r
            .ingest_files(
                &dir,
                dev,
                0,
                b"sub",
                &names(&["a0", "gone", "a1", "a2", "fifo", "a3", "a4"]),
                &progress,
                || false,
            )
            .expect_err("the fifo is refused")
            .to_string();
        assert!(err.contains("sub/fifo"), "{err}");
        assert!(err.contains("other than a regular file"), "{err}");
        assert_eq!(r.pieces.len(), 1);
        assert_eq!(r.pieces[0].names(), [&b"a0"[..], b"a1", b"a2"]);
        // Every file, in order, each under its own name and content; fewer files than the
        // lookahead too.
        for list in [
            &["a0", "a1", "a2", "a3", "a4", "a5", "a6", "a7"][..],
            &["a5"],
            &["a6", "a7"],
        ] {
            let mut r = recorder();
            r.ingest_files(&dir, dev, 0, b"", &names(list), &progress, || false)
                .unwrap();
            let piece = &r.pieces[0];
            assert_eq!(piece.len(), list.len());
            for ((got, hash), name) in piece.names().into_iter().zip(piece.hashes()).zip(list) {
                assert_eq!(got, name.as_bytes());
                let i: usize = name[1..].parse().unwrap();
                assert_eq!(hash, Hash::of(&content(i)), "{name}");
                assert_eq!(
                    std::fs::read(store.blob_path(&hash)).unwrap(),
                    content(i),
                    "{name}'s blob"
                );
            }
        }
    }

    #[test]
    fn an_empty_store_is_not_searched_by_pre_hashing_and_a_filled_one_is() {
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::open(&tmp.path().join("store")).unwrap();
        let src = tmp.path().join("src");
        std::fs::create_dir(&src).unwrap();
        // Two files with the same content: the second finds the first's blob by its link.
        std::fs::write(src.join("a"), b"same").unwrap();
        std::fs::write(src.join("b"), b"same").unwrap();
        std::fs::write(src.join("c"), b"other").unwrap();
        let dir = Dir::open(&src).unwrap();
        let dev = cowtree_fs::sys::stat_dev(&dir.stat_self().unwrap());
        let staging = store.staging("ingest").unwrap();
        let put_all = |put: &Putter<'_>| -> Vec<Hash> {
            ["a", "b", "c"]
                .iter()
                .map(|n| put.put(&dir, dev, OsStr::new(n)).unwrap().unwrap().hash)
                .collect()
        };
        let put = Putter::new(&store, staging.dir());
        assert!(put.store_was_empty);
        let first = put_all(&put);
        assert_eq!(
            first,
            [Hash::of(b"same"), Hash::of(b"same"), Hash::of(b"other")]
        );
        assert_eq!(
            put.prehashed.load(Ordering::Relaxed),
            0,
            "nothing pre-hashed"
        );
        assert_eq!(put.new_blobs(), 2, "the duplicate was found by its link");
        // Once the store holds a snapshot, the next putter pre-hashes and finds every blob.
        let manifest = Manifest::new(vec![crate::manifest::Entry::blob(
            b"a".to_vec(),
            false,
            4,
            first[0],
        )])
        .unwrap();
        store.save(&manifest).unwrap();
        let put = Putter::new(&store, staging.dir());
        assert!(!put.store_was_empty);
        assert_eq!(put_all(&put), first);
        assert_eq!(put.prehashed.load(Ordering::Relaxed), 3);
        assert_eq!(put.prehash_hits.load(Ordering::Relaxed), 3);
        assert_eq!(put.new_blobs(), 0);
    }

    fn walkdir(p: &Path) -> Vec<std::path::PathBuf> {
        let mut out = Vec::new();
        let mut todo = vec![p.to_path_buf()];
        while let Some(d) = todo.pop() {
            for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
                let path = e.path();
                if e.file_type().is_ok_and(|t| t.is_dir()) {
                    todo.push(path.clone());
                }
                out.push(path);
            }
        }
        out
    }
}
