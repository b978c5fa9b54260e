//! [`Putter`]: puts one file into the store (staged, cloned or copied, hashed, linked into
//! `blobs/`), and the hashing it needs.

use super::*;
use cowtree_fs::CopyRange;
use cowtree_fs::copy::{copy_fd_remembering, may_have_holes};

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
            clones: crate::pools::Gate::per_core(),
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
    /// Without CoW the source is read once, written to staging and hashed in the same pass
    /// (a sparse one is copied keeping its holes, and the copy hashed: [`copy_and_hash`]).
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
        let (size, hash) = copy_and_hash(&src, &st, lane, &sname)?;
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

pub(super) fn type_name(ft: FileType) -> &'static str {
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
pub(super) const HASH_RAYON_FROM: usize = 256 * 1024;
/// The largest read of [`hash_prefix`].
pub(super) const PREFIX_READ_MAX: usize = 1 << 20;

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
pub(super) fn hash_prefix(fd: &OwnedFd, size: u64) -> io::Result<Option<Hash>> {
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

/// Reads `src` (whose `fstat` is `st`) once from its current offset, writing it to
/// `dst_name` under `dst_dir` (created 0444) and hashing it in the same pass. A source that
/// may have holes ([`may_have_holes`]) is copied keeping them ([`copy_fd_remembering`]), and
/// the copy is then hashed: its bytes are what the blob holds, whatever the source does
/// meanwhile.
fn copy_and_hash(
    src: &OwnedFd,
    st: &Stat,
    dst_dir: &Dir,
    dst_name: &OsStr,
) -> io::Result<(u64, Hash)> {
    let sparse = may_have_holes(st);
    let access = if sparse { OFlags::RDWR } else { OFlags::WRONLY };
    let dst = openat(
        dst_dir,
        dst_name,
        access | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::from_raw_mode(0o444),
    )?;
    let res = if sparse {
        copy_fd_remembering(src, st, &dst, &CopyRange::new()).and_then(|_| {
            rustix::fs::seek(&dst, rustix::fs::SeekFrom::Start(0))?;
            cowtree_fs::read::hash_fd(&dst, |_| Ok(()))
        })
    } else {
        copy_and_hash_dense(src, &dst)
    };
    match res {
        Ok((size, hash)) => Ok((size, Hash::from(hash))),
        Err(e) => {
            let _ = rustix::fs::unlinkat(dst_dir, dst_name, AtFlags::empty());
            Err(e)
        }
    }
}

/// Reads `src` once from its current offset, writing each chunk to `dst` and hashing it.
fn copy_and_hash_dense(src: &OwnedFd, dst: &OwnedFd) -> io::Result<(u64, blake3::Hash)> {
    cowtree_fs::read::hash_fd(src, |chunk| {
        let mut off = 0;
        while off < chunk.len() {
            match rustix::io::write(dst, &chunk[off..]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(w) => off += w,
                Err(Errno::INTR) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    })
}
