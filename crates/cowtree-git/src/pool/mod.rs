//! A pool of spare worktrees: complete trees of one commit, made ahead of time, that
//! [`crate::add`] claims instead of making DST's tree when one fits.
//!
//! # Where it lives
//!
//! Everything is under `$GIT_COMMON_DIR/cowtree/pool/`, so that every tool using the
//! repository shares it and removing the repository removes it:
//! - `settings`: `size N` (spares to keep) and `max-age SECONDS` (older spares are removed,
//!   not used); no file, no pool.
//! - `wanted`: the commit the last `add` checked out; spares are made at it.
//! - `fill.lock`: the `flock` one filler at a time holds.
//! - `spares/ID/`: one spare: `tree/` (the worktree's files, no `.git`), `stat` (the stat data
//!   of `tree/`'s files, in index order), `spare` (its commit, the fingerprint of what made
//!   its bytes, when it was made, whether any file was copied) and `dirs` (the stat data of
//!   its directories).
//! - `templates/COMMIT-FINGERPRINT.index`: the index of a spare of that commit and fingerprint
//!   (the first one made), which every spare of them shares: a claim reads it and puts the
//!   spare's own `stat` in (paired by the template's checksum, which `stat` names). One index
//!   of 78,000 entries is 8 MB; the stat data alone 2.8 MB. Removed by a fill once no spare
//!   needs it. A spare being made is `spares/.making.STAMP.RANDOM/`, one being
//!   claimed `spares/.claimed.STAMP.ID/`: names of a dead process are removed by the next
//!   fill, drain or status.
//!
//! Spares are not registered: `git worktree list` does not show them, they hold no branch,
//! and `git worktree prune` has nothing of theirs to prune.
//!
//! # When a spare fits, and the proof
//!
//! A spare is claimed (`claim`) only for a plain checkout (no `--orphan`, `--no-checkout`,
//! `--with-changes`, `--sparse`, `--verify`, `--per-file`/`--subvolume`, no sparse checkout
//! in the repository), when its fingerprint (`fingerprint`: this
//! build, the user, the umask, every configuration key of the sections that decide a
//! checkout's bytes, the attribute files outside the tree) is the repository's now, when it
//! is younger than the pool's `max-age`, and when it is on DST's filesystem (a rename moves
//! it). Claiming renames the spare away first (of two claims, one gets it); then every file
//! and directory of the spare is `lstat`ed and must have the inode, size, mtime and ctime
//! recorded when the spare was made: a spare anything has touched since is removed, not
//! used. A spare of another commit than the target is moved to it as `git checkout` moves a
//! worktree (`advance`). The claimed tree is renamed to DST's staging name and the run goes on as for every
//! other way: `.git` file, index, registration, branch, the rename into place. Ignored files
//! (`.worktreeinclude`, `--ignored`) are not kept in spares: they are cloned from SRC at the
//! claim, so they are SRC's as they are then.

mod advance;
mod claim;
mod fill;

use std::ffi::{OsStr, OsString};
use std::fmt::Write as _;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use cowtree_fs::atomic_file::write_atomic;
use cowtree_fs::dir::Dir;
use cowtree_fs::process::Stamp;
use gix::ObjectId;
use sha2::Digest as _;

use crate::error::{Error, Result};

pub(crate) use claim::{Claim, claim};
pub use fill::{FillReport, fill, fill_holding};

/// How long a spare may wait to be claimed, by default: one day.
pub const DEFAULT_MAX_AGE: Duration = Duration::from_secs(86_400);

const SETTINGS: &str = "settings";
const WANTED: &str = "wanted";
const SPARES: &str = "spares";
const MAKING: &str = ".making.";
const CLAIMED: &str = ".claimed.";
const LAST_FILL: &str = "last-fill";
const TEMPLATES: &str = "templates";

/// A repository's pool.
#[derive(Debug, Clone)]
pub struct Pool {
    /// `$GIT_COMMON_DIR/cowtree/pool`.
    dir: PathBuf,
}

/// What the pool is set to keep.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settings {
    /// Spares to keep.
    pub size: u32,
    /// Spares older than this are removed, not used.
    pub max_age: Duration,
}

/// One spare, as its record says.
#[derive(Debug, Clone)]
pub struct Spare {
    /// Its name in the pool.
    pub id: String,
    /// Its tree.
    pub tree: PathBuf,
    /// The commit it holds.
    pub commit: ObjectId,
    /// The fingerprint of what made its bytes (this build, the user, the umask, the
    /// configuration and attribute files that decide a checkout's bytes).
    pub fingerprint: String,
    /// When it was made.
    pub made: SystemTime,
    /// Tracked entries in it.
    pub entries: u64,
    /// Some of its files were copied, not reflinked (a filesystem that cannot).
    pub copied: bool,
}

impl Spare {
    /// How long ago it was made.
    pub fn age(&self) -> Duration {
        SystemTime::now()
            .duration_since(self.made)
            .unwrap_or_default()
    }
}

impl Pool {
    /// The pool of the repository whose common directory is `common`.
    pub fn of(common: &Path) -> Pool {
        Pool {
            dir: common.join("cowtree").join("pool"),
        }
    }

    /// The pool of the repository `path` is in (a worktree, or a git directory).
    pub fn discover(path: &Path) -> Result<Pool> {
        let repo = gix::discover(path).map_err(|e| Error::NotAWorktree {
            path: path.to_owned(),
            source: e.into(),
        })?;
        let common = repo
            .common_dir()
            .canonicalize()
            .map_err(Error::io("resolve", repo.common_dir()))?;
        Ok(Pool::of(&common))
    }

    /// `$GIT_COMMON_DIR/cowtree/pool`.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Where the spares are.
    pub fn spares_dir(&self) -> PathBuf {
        self.dir.join(SPARES)
    }

    /// What the pool is set to keep; `None`: no pool.
    pub fn settings(&self) -> Result<Option<Settings>> {
        let path = self.dir.join(SETTINGS);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::io("read", &path)(e)),
        };
        let bad = |what: &str| Error::Pool {
            path: path.clone(),
            message: format!("{what}; `cowtree git worktree pool set 4` writes it anew"),
        };
        let mut size = None;
        let mut max_age = DEFAULT_MAX_AGE;
        for line in text.lines() {
            match line.split_once(' ') {
                Some(("size", n)) => size = Some(n.parse().map_err(|_| bad("a bad size"))?),
                Some(("max-age", s)) => {
                    max_age = Duration::from_secs(s.parse().map_err(|_| bad("a bad max-age"))?)
                }
                _ => {}
            }
        }
        let size = size.ok_or_else(|| bad("no size"))?;
        Ok((size > 0).then_some(Settings { size, max_age }))
    }

    /// Keeps `size` spares from now on (`0`: no pool, every spare removed); spares beyond
    /// `size` are removed. The spares removed.
    pub fn set(&self, size: u32, max_age: Duration) -> Result<u64> {
        if size == 0 {
            let removed = self.drain()?;
            match std::fs::remove_file(self.dir.join(SETTINGS)) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(Error::io("remove", self.dir.join(SETTINGS))(e)),
            }
            return Ok(removed);
        }
        std::fs::create_dir_all(self.spares_dir())
            .map_err(Error::io("create directory", self.spares_dir()))?;
        let dir = Dir::open(&self.dir).map_err(Error::io("open", &self.dir))?;
        let text = format!("size {size}\nmax-age {}\n", max_age.as_secs());
        write_atomic(&dir, OsStr::new(SETTINGS), text.as_bytes(), 0o666, false)
            .map_err(Error::io("write", self.dir.join(SETTINGS)))?;
        let mut spares = self.spares()?;
        spares.sort_by_key(|s| std::cmp::Reverse(s.made));
        let mut removed = 0;
        for s in spares.iter().skip(size as usize) {
            if self.remove_spare(&s.id)? {
                removed += 1;
            }
        }
        Ok(removed)
    }

    /// The names in the spares directory (none when there is none).
    fn spares_dir_names(&self) -> Result<Vec<OsString>> {
        let dir = self.spares_dir();
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(Error::io("list", &dir)(e)),
        };
        entries
            .map(|e| e.map(|e| e.file_name()).map_err(Error::io("list", &dir)))
            .collect()
    }

    /// The spares, as their records say (a spare without a readable record is not listed, and
    /// removed by the next fill).
    pub fn spares(&self) -> Result<Vec<Spare>> {
        let dir = self.spares_dir();
        let mut out = Vec::new();
        for name in self.spares_dir_names()? {
            let Some(id) = name.to_str().map(str::to_owned) else {
                continue;
            };
            if id.starts_with('.') {
                continue;
            }
            if let Some(spare) = read_record(&dir.join(&id), &id) {
                out.push(spare);
            }
        }
        out.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(out)
    }

    /// Entries of the spares directory that are neither a spare nor the work of a live
    /// process: spares whose record is unreadable, and what killed fills and claims left.
    fn debris(&self) -> Result<Vec<OsString>> {
        let dir = self.spares_dir();
        let mut out = Vec::new();
        for name in self.spares_dir_names()? {
            let bytes = name.as_bytes();
            let rest = bytes
                .strip_prefix(MAKING.as_bytes())
                .or_else(|| bytes.strip_prefix(CLAIMED.as_bytes()));
            let dead = match rest {
                Some(rest) => Stamp::parse_prefix(rest).is_none_or(|(s, _)| !s.is_alive()),
                None => match name.to_str() {
                    Some(id) => read_record(&dir.join(id), id).is_none(),
                    None => true,
                },
            };
            if dead {
                out.push(name);
            }
        }
        Ok(out)
    }

    /// The shared index of the spares of `commit` made under `fingerprint`.
    pub(crate) fn template_path(&self, commit: ObjectId, fingerprint: &str) -> PathBuf {
        let fp = fingerprint.get(..16).unwrap_or(fingerprint);
        self.dir
            .join(TEMPLATES)
            .join(format!("{commit}-{fp}.index"))
    }

    /// Removes the templates no spare needs. Only by a holder of the fill lock: a fill in
    /// progress may be about to publish a spare that needs one.
    fn remove_unused_templates(&self) -> Result<()> {
        let dir = self.dir.join(TEMPLATES);
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(Error::io("list", &dir)(e)),
        };
        let needed: Vec<PathBuf> = self
            .spares()?
            .iter()
            .map(|s| self.template_path(s.commit, &s.fingerprint))
            .collect();
        for e in entries {
            let e = e.map_err(Error::io("list", &dir))?;
            if !needed.contains(&e.path()) {
                match std::fs::remove_file(e.path()) {
                    Ok(()) => {}
                    Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
                    Err(err) => return Err(Error::io("remove", e.path())(err)),
                }
            }
        }
        Ok(())
    }

    /// Removes what killed fills and claims left (names of dead processes) and spares whose
    /// record cannot be read. How many entries.
    pub fn clean(&self) -> Result<u64> {
        let debris = self.debris()?;
        if debris.is_empty() {
            return Ok(0);
        }
        let path = self.spares_dir();
        let dir = Dir::open(&path).map_err(Error::io("open", &path))?;
        for name in &debris {
            dir.remove_tree(name)
                .map_err(Error::io("remove", path.join(name)))?;
        }
        Ok(debris.len() as u64)
    }

    /// Removes the spare `id` (renamed away first, so that a claim cannot take it halfway).
    /// Whether it was there.
    pub fn remove_spare(&self, id: &str) -> Result<bool> {
        let path = self.spares_dir();
        let dir = Dir::open(&path).map_err(Error::io("open", &path))?;
        let gone = OsString::from(format!("{CLAIMED}{}.{id}", Stamp::current().token()));
        match dir.rename_noreplace(OsStr::new(id), &dir, &gone) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(Error::io("rename", path.join(id))(e)),
        }
        dir.remove_tree(&gone)
            .map_err(Error::io("remove", path.join(&gone)))?;
        Ok(true)
    }

    /// Removes every spare, and what killed fills and claims left (and, unless a fill is
    /// running, the templates). How many spares.
    pub fn drain(&self) -> Result<u64> {
        let mut removed = 0;
        for s in self.spares()? {
            if self.remove_spare(&s.id)? {
                removed += 1;
            }
        }
        self.clean()?;
        if self.dir.is_dir()
            && let Some(_lock) = self.lock_fill(false)?
        {
            self.remove_unused_templates()?;
        }
        Ok(removed)
    }

    /// The commit spares are made at: the one the last `add` asked for.
    pub fn wanted(&self) -> Option<ObjectId> {
        let text = std::fs::read_to_string(self.dir.join(WANTED)).ok()?;
        ObjectId::from_hex(text.trim().as_bytes()).ok()
    }

    /// Records `commit` as the one spares are made at (best effort: the pool is an
    /// optimisation, and an `add` does not fail for it).
    pub(crate) fn set_wanted(&self, commit: ObjectId) {
        if self.wanted() == Some(commit) {
            return;
        }
        if let Ok(dir) = Dir::open(&self.dir) {
            let _ = write_atomic(
                &dir,
                OsStr::new(WANTED),
                format!("{commit}\n").as_bytes(),
                0o666,
                false,
            );
        }
    }

    /// Takes the lock one filler at a time holds (`$POOL/fill.lock`), waiting for it with
    /// `wait`; `None`: another fill holds it (only without `wait`). The lock is the returned
    /// file's `flock`: it lasts until every copy of the descriptor is closed, so a process
    /// may take it and hand it to the filler it starts ([`fill_holding`]).
    pub fn lock_fill(&self, wait: bool) -> Result<Option<std::fs::File>> {
        std::fs::create_dir_all(&self.dir).map_err(Error::io("create directory", &self.dir))?;
        let path = self.dir.join("fill.lock");
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(Error::io("open", &path))?;
        let op = if wait {
            rustix::fs::FlockOperation::LockExclusive
        } else {
            rustix::fs::FlockOperation::NonBlockingLockExclusive
        };
        match rustix::fs::flock(&file, op) {
            Ok(()) => Ok(Some(file)),
            Err(rustix::io::Errno::WOULDBLOCK) => Ok(None),
            Err(e) => Err(Error::io("lock", &path)(e.into())),
        }
    }

    /// What the last fill said when it ended (`None`: no fill yet).
    pub fn last_fill(&self) -> Option<String> {
        std::fs::read_to_string(self.dir.join(LAST_FILL))
            .ok()
            .map(|s| s.trim_end().to_owned())
    }

    fn set_last_fill(&self, what: &str) {
        if let Ok(dir) = Dir::open(&self.dir) {
            let secs = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0);
            let _ = write_atomic(
                &dir,
                OsStr::new(LAST_FILL),
                format!("{secs} {what}\n").as_bytes(),
                0o666,
                false,
            );
        }
    }
}

/// Reads the record of the spare `dir` (named `id`).
fn read_record(dir: &Path, id: &str) -> Option<Spare> {
    let text = std::fs::read_to_string(dir.join("spare")).ok()?;
    let mut commit = None;
    let mut fingerprint = None;
    let mut made = None;
    let mut entries = 0;
    let mut copied = false;
    for line in text.lines() {
        match line.split_once(' ') {
            Some(("commit", c)) => commit = ObjectId::from_hex(c.as_bytes()).ok(),
            Some(("fingerprint", f)) => fingerprint = Some(f.to_owned()),
            Some(("made", s)) => made = s.parse::<u64>().ok(),
            Some(("entries", n)) => entries = n.parse().ok()?,
            Some(("copied", c)) => copied = c == "1",
            _ => {}
        }
    }
    Some(Spare {
        id: id.to_owned(),
        tree: dir.join("tree"),
        commit: commit?,
        fingerprint: fingerprint?,
        made: UNIX_EPOCH + Duration::from_secs(made?),
        entries,
        copied,
    })
}

/// The record of a spare, as [`read_record`] reads it.
fn record(commit: ObjectId, fingerprint: &str, entries: u64, copied: bool) -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    format!(
        "commit {commit}\nfingerprint {fingerprint}\nmade {secs}\nentries {entries}\ncopied {}\n",
        u8::from(copied)
    )
}

/// The configuration sections whose keys can change the bytes, modes or index of a checkout
/// (`core.autocrlf`, `core.eol`, `core.symlinks`, `core.fileMode`, `core.ignoreStat`,
/// `core.checkRoundtripEncoding`, `filter.*`, `index.*`, `extensions.*`, `feature.*`, ...):
/// any change to any of their keys makes every spare stale.
const CHECKOUT_SECTIONS: [&str; 8] = [
    "core",
    "filter",
    "checkout",
    "index",
    "extensions",
    "feature",
    "sparse",
    "submodule",
];

/// What decides the bytes of a checkout of one commit in `repo` besides the commit, hashed:
/// this build, the user and group, the umask, the keys of [`CHECKOUT_SECTIONS`] (every file
/// of the configuration, in order), and the attribute files outside the tree (the system's,
/// the user's, `$GIT_COMMON_DIR/info/attributes`). `Err`: why a spare cannot stand in for a
/// checkout of this repository at all.
pub(crate) fn fingerprint(
    repo: &gix::Repository,
    umask: u32,
) -> Result<std::result::Result<String, String>> {
    let mut h = sha2::Sha256::new();
    let mut line = |parts: &[&[u8]]| {
        for p in parts {
            h.update((p.len() as u64).to_le_bytes());
            h.update(p);
        }
    };
    line(&[
        b"cowtree-git",
        env!("CARGO_PKG_VERSION").as_bytes(),
        &rustix::process::geteuid().as_raw().to_le_bytes(),
        &rustix::process::getegid().as_raw().to_le_bytes(),
        &umask.to_le_bytes(),
    ]);
    let config = repo.config_snapshot();
    for section in config.plumbing().sections() {
        let name = section.header().name().to_ascii_lowercase();
        if !CHECKOUT_SECTIONS.iter().any(|s| s.as_bytes() == name) {
            continue;
        }
        let sub = section
            .header()
            .subsection_name()
            .map(|s| s.to_vec())
            .unwrap_or_default();
        for key in section.value_names() {
            let lower = key.to_ascii_lowercase();
            if name == b"filter" && matches!(lower.as_str(), "smudge" | "process") {
                return Ok(Err(format!(
                    "the filter driver filter.{}.{lower} (a spare's files are not smudged \
                     where the worktree will be)",
                    String::from_utf8_lossy(&sub)
                )));
            }
            for v in section.values(&key) {
                line(&[&name, &sub, lower.as_bytes(), &v]);
            }
        }
    }
    let home = std::env::var_os("HOME").map(PathBuf::from);
    let global = match config.string("core.attributesFile") {
        Some(p) => {
            let p = p.to_string();
            match (p.strip_prefix("~/"), &home) {
                (Some(rest), Some(home)) => Some(home.join(rest)),
                _ => Some(PathBuf::from(p)),
            }
        }
        None => std::env::var_os("XDG_CONFIG_HOME")
            .map(|x| PathBuf::from(x).join("git/attributes"))
            .or_else(|| home.map(|h| h.join(".config/git/attributes"))),
    };
    let files = [
        Some(PathBuf::from("/etc/gitattributes")),
        global,
        Some(repo.common_dir().join("info/attributes")),
    ];
    for f in files.into_iter().flatten() {
        match std::fs::read(&f) {
            Ok(bytes) => line(&[f.as_os_str().as_bytes(), &bytes]),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => line(&[f.as_os_str().as_bytes()]),
            Err(e) => return Err(Error::io("read", &f)(e)),
        }
    }
    let mut hex = String::with_capacity(64);
    for b in h.finalize() {
        let _ = write!(hex, "{b:02x}");
    }
    Ok(Ok(hex))
}

/// The first line of a spare's `stat` file (`MAGIC CHECKSUM COUNT STAMP`: the template's
/// checksum, its entry count, its [`FileStamp`]); then, for each entry of its template in
/// order, nine little-endian `u32`: mtime (seconds, nanoseconds), ctime (seconds,
/// nanoseconds), dev, ino, uid, gid, size (as the index keeps them).
const STAT_MAGIC: &str = "cowtree-spare-stat 2";

/// A file's identity and last change, as `stat` gives them: its inode, size, mtime and ctime
/// to the nanosecond. Unchanged, the file was not written since.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct FileStamp {
    ino: u64,
    size: i64,
    mtime: (i64, i64),
    ctime: (i64, i64),
}

impl FileStamp {
    #[allow(clippy::unnecessary_cast)] // the nanosecond fields are i64 on macOS
    pub(super) fn of(st: &rustix::fs::Stat) -> FileStamp {
        FileStamp {
            ino: st.st_ino,
            size: st.st_size,
            mtime: (st.st_mtime, st.st_mtime_nsec as i64),
            ctime: (st.st_ctime, st.st_ctime_nsec as i64),
        }
    }

    fn encode(&self) -> String {
        format!(
            "{}:{}:{}.{}:{}.{}",
            self.ino, self.size, self.mtime.0, self.mtime.1, self.ctime.0, self.ctime.1
        )
    }

    fn parse(s: &str) -> Option<FileStamp> {
        let mut p = s.split(':');
        let ino = p.next()?.parse().ok()?;
        let size = p.next()?.parse().ok()?;
        let pair = |t: &str| -> Option<(i64, i64)> {
            let (a, b) = t.split_once('.')?;
            Some((a.parse().ok()?, b.parse().ok()?))
        };
        let mtime = pair(p.next()?)?;
        let ctime = pair(p.next()?)?;
        Some(FileStamp {
            ino,
            size,
            mtime,
            ctime,
        })
    }
}

/// The `stat` file of a spare whose index is `index`, paired with the template whose checksum
/// is `checksum` (hex) and whose stamp is `template`.
pub(super) fn encode_stats(
    index: &gix::index::State,
    checksum: &str,
    template: &FileStamp,
) -> Vec<u8> {
    let entries = index.entries();
    let mut out = format!(
        "{STAT_MAGIC} {checksum} {} {}\n",
        entries.len(),
        template.encode()
    )
    .into_bytes();
    out.reserve(entries.len() * 36);
    for e in entries {
        let s = &e.stat;
        for v in [
            s.mtime.secs,
            s.mtime.nsecs,
            s.ctime.secs,
            s.ctime.nsecs,
            s.dev,
            s.ino,
            s.uid,
            s.gid,
            s.size,
        ] {
            out.extend_from_slice(&v.to_le_bytes());
        }
    }
    out
}

/// A spare's `stat` file, read: what its header names, and its records.
pub(super) struct StatFile<'a> {
    checksum: &'a str,
    count: usize,
    template: FileStamp,
    data: &'a [u8],
}

impl<'a> StatFile<'a> {
    pub(super) fn parse(bytes: &'a [u8]) -> std::result::Result<StatFile<'a>, String> {
        let nl = bytes.iter().position(|b| *b == b'\n').ok_or("no header")?;
        let header = std::str::from_utf8(&bytes[..nl]).map_err(|_| "a bad header")?;
        let rest = header
            .strip_prefix(STAT_MAGIC)
            .and_then(|r| r.strip_prefix(' '))
            .ok_or("not a spare's stat file of this version")?;
        let mut parts = rest.split(' ');
        let checksum = parts.next().ok_or("no checksum")?;
        let count = parts
            .next()
            .and_then(|c| c.parse().ok())
            .ok_or("a bad entry count")?;
        let template = parts
            .next()
            .and_then(FileStamp::parse)
            .ok_or("a bad template stamp")?;
        Ok(StatFile {
            checksum,
            count,
            template,
            data: &bytes[nl + 1..],
        })
    }

    /// Reads the template `path` this stat file pairs with: without checking its trailer
    /// again when its stamp is the one recorded (it was checked when the spare was made, and
    /// was not written since), else checked whole.
    pub(super) fn read_template(
        &self,
        path: &Path,
        kind: gix::hash::Kind,
    ) -> std::io::Result<gix::index::File> {
        let unchanged = rustix::fs::stat(path).is_ok_and(|st| FileStamp::of(&st) == self.template);
        let (file, checksum) = if unchanged {
            let file = gix::index::File::at(path, kind, true, Default::default())
                .map_err(std::io::Error::other)?;
            let hex = file.checksum().map(|c| c.to_string()).unwrap_or_default();
            (file, hex)
        } else {
            crate::index_file::read_checked(path, kind)?
        };
        if checksum != self.checksum {
            return Err(std::io::Error::other(format!(
                "{}: not the index template this spare was made with",
                path.display()
            )));
        }
        Ok(file)
    }
}

impl StatFile<'_> {
    /// Reads the template `path` this stat file pairs with, its entries located but not
    /// decoded ([`crate::index_file::Located`]); its trailer checked as
    /// [`StatFile::read_template`] checks it, and its entries as many as the records.
    pub(super) fn read_located(
        &self,
        path: &Path,
        kind: gix::hash::Kind,
    ) -> std::io::Result<crate::index_file::Located> {
        let unchanged = rustix::fs::stat(path).is_ok_and(|st| FileStamp::of(&st) == self.template);
        let bytes = std::fs::read(path)?;
        let n = kind.len_in_bytes();
        let bad = |what: String| std::io::Error::other(format!("{}: {what}", path.display()));
        if bytes.len() < n {
            return Err(bad("too short for an index".into()));
        }
        let trailer = &bytes[bytes.len() - n..];
        let hex = trailer
            .iter()
            .fold(String::with_capacity(2 * n), |mut hex, b| {
                use std::fmt::Write as _;
                let _ = write!(hex, "{b:02x}");
                hex
            });
        if hex != self.checksum {
            return Err(bad("not the index template this spare was made with".into()));
        }
        if !unchanged && !crate::index_file::trailer_matches(&bytes, kind) {
            return Err(bad("its checksum does not match its contents".into()));
        }
        let located = crate::index_file::Located::new(bytes, kind).map_err(bad)?;
        if located.len() != self.count || self.data.len() != self.count * 36 {
            return Err(bad("its stat data does not match its index template".into()));
        }
        Ok(located)
    }

    /// The stat data recorded for entry `i` (`i` below the count [`StatFile::read_located`]
    /// checked).
    pub(super) fn stat(&self, i: usize) -> gix::index::entry::Stat {
        let chunk = &self.data[36 * i..36 * i + 36];
        let v = |k: usize| {
            u32::from_le_bytes([
                chunk[4 * k],
                chunk[4 * k + 1],
                chunk[4 * k + 2],
                chunk[4 * k + 3],
            ])
        };
        gix::index::entry::Stat {
            mtime: gix::index::entry::stat::Time {
                secs: v(0),
                nsecs: v(1),
            },
            ctime: gix::index::entry::stat::Time {
                secs: v(2),
                nsecs: v(3),
            },
            dev: v(4),
            ino: v(5),
            uid: v(6),
            gid: v(7),
            size: v(8),
        }
    }
}

/// Puts the stat data of the spare's stat file `stat` into `index`, the template it names
/// ([`StatFile::read_template`]). `Err`: why they do not pair.
pub(super) fn apply_stats(
    index: &mut gix::index::File,
    stat: &StatFile<'_>,
) -> std::result::Result<(), String> {
    let (count, data) = (stat.count, stat.data);
    if count != index.entries().len() || data.len() != count * 36 {
        return Err("its stat data does not match its index template".into());
    }
    for (i, e) in index.entries_mut().iter_mut().enumerate() {
        e.stat = stat.stat(i);
    }
    Ok(())
}
