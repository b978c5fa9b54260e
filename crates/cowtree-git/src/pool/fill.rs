//! Making the missing spares of a pool ([`fill`]), one filler per repository at a time.

use std::ffi::{OsStr, OsString};
use std::path::Path;

use cowtree_fs::dir::Dir;
use cowtree_fs::process::Stamp;
use gix::ObjectId;

use super::{MAKING, Pool, claim::dir_records, record};
use crate::add::SpareMaker;
use crate::error::{Error, Result};

/// What [`fill`] did.
#[derive(Debug, Default)]
pub struct FillReport {
    /// The pool.
    pub pool: Option<Pool>,
    /// The commit spares are made at.
    pub commit: Option<ObjectId>,
    /// Spares kept (they fit).
    pub kept: u64,
    /// Spares made.
    pub made: Vec<String>,
    /// Spares removed, and why.
    pub removed: Vec<(String, String)>,
    /// What killed fills and claims had left, removed.
    pub cleaned: u64,
    /// Another fill was running (only without `wait`): nothing was done.
    pub busy: bool,
    /// Why the fill stopped before the pool was full (a full disk).
    pub stopped: Option<String>,
}

/// Makes the spares the pool of the repository `src` is in lacks, at the commit the last
/// `add` asked for (else `src`'s HEAD), after removing those that no longer fit (another
/// commit, another configuration, too old) and what killed fills and claims left. One filler
/// at a time: without `wait`, a fill that finds another running returns at once
/// ([`FillReport::busy`]). A full disk stops it ([`FillReport::stopped`]): the pool stays
/// smaller. `progress` is told (spares there, spares wanted) after each spare.
pub fn fill(src: &Path, wait: bool, progress: &mut dyn FnMut(u32, u32)) -> Result<FillReport> {
    fill_with(src, Lock::Take { wait }, progress)
}

/// [`fill`] by a process that holds the pool's fill lock already: `lock` is the open file
/// whose `flock` it holds ([`Pool::lock_fill`]), handed down by the process that took it.
pub fn fill_holding(
    src: &Path,
    lock: std::fs::File,
    progress: &mut dyn FnMut(u32, u32),
) -> Result<FillReport> {
    fill_with(src, Lock::Held(lock), progress)
}

enum Lock {
    Take { wait: bool },
    Held(std::fs::File),
}

fn fill_with(src: &Path, lock: Lock, progress: &mut dyn FnMut(u32, u32)) -> Result<FillReport> {
    let maker = match SpareMaker::open(src)? {
        Ok(m) => m,
        Err(why) => {
            return Err(Error::Pool {
                path: src.to_owned(),
                message: format!("a pool cannot serve this repository: {why}"),
            });
        }
    };
    let pool = Pool::of(maker.common());
    let Some(settings) = pool.settings()? else {
        return Err(Error::Pool {
            path: pool.dir.clone(),
            message: "no pool is set for this repository; `cowtree git worktree pool set 4` \
                      keeps 4 spares"
                .into(),
        });
    };
    let spares_path = pool.spares_dir();
    std::fs::create_dir_all(&spares_path).map_err(Error::io("create directory", &spares_path))?;
    let mut report = FillReport {
        pool: Some(pool.clone()),
        ..FillReport::default()
    };
    let _lock = match lock {
        Lock::Held(f) => f,
        Lock::Take { wait } => match pool.lock_fill(wait)? {
            Some(f) => f,
            None => {
                report.busy = true;
                return Ok(report);
            }
        },
    };
    report.cleaned = pool.clean()?;
    pool.remove_unused_templates()?;
    let commit = match pool.wanted().filter(|c| maker.has_commit(*c)) {
        Some(c) => c,
        None => maker.head().ok_or_else(|| Error::Unborn {
            path: src.to_owned(),
        })?,
    };
    report.commit = Some(commit);
    let fp = match maker.fingerprint()? {
        Ok(fp) => fp,
        Err(why) => {
            return Err(Error::Pool {
                path: src.to_owned(),
                message: format!("a pool cannot serve this repository: {why}"),
            });
        }
    };
    let mut there = 0u32;
    for s in pool.spares()? {
        let why = if s.commit != commit {
            Some(format!("at {}, not at {commit}", s.commit))
        } else if s.fingerprint != fp {
            Some("made under another configuration".to_owned())
        } else if s.age() > settings.max_age {
            Some(format!("older than {} s", settings.max_age.as_secs()))
        } else if there >= settings.size {
            Some("beyond the pool's size".to_owned())
        } else {
            None
        };
        match why {
            Some(why) => {
                if pool.remove_spare(&s.id)? {
                    report.removed.push((s.id, why));
                }
            }
            None => {
                there += 1;
                report.kept += 1;
            }
        }
    }
    progress(there, settings.size);
    let spares_dir = Dir::open(&spares_path).map_err(Error::io("open", &spares_path))?;
    while there < settings.size {
        if cowtree_fs::undo::unless_stopping(|| Ok(())).is_err() {
            return Err(Error::Interrupted);
        }
        match make_one(&maker, &pool, &spares_dir, commit, &fp) {
            Ok(id) => {
                report.made.push(id);
                there += 1;
                progress(there, settings.size);
            }
            Err(e) if no_space(&e) => {
                report.stopped = Some(e.to_string());
                break;
            }
            Err(e) => {
                pool.set_last_fill(&format!("failed: {e}"));
                return Err(e);
            }
        }
    }
    pool.set_last_fill(&match &report.stopped {
        Some(why) => format!("stopped at {there} of {} spares: {why}", settings.size),
        None => format!("{there} of {} spares at {commit}", settings.size),
    });
    Ok(report)
}

/// Whether `e` is a full disk (or quota).
fn no_space(e: &Error) -> bool {
    let io = match e {
        Error::Io { source, .. } => Some(source),
        _ => None,
    };
    io.and_then(std::io::Error::raw_os_error)
        .is_some_and(|c| c == libc::ENOSPC || c == libc::EDQUOT)
        || e.to_string().contains("No space left on device")
}

/// Makes one spare at `commit`: its tree, index, directory records and record in
/// `.making.STAMP.RANDOM`, made durable, then renamed to its id. Nothing is left on an error.
fn make_one(
    maker: &SpareMaker,
    pool: &Pool,
    spares_dir: &Dir,
    commit: ObjectId,
    fp: &str,
) -> Result<String> {
    let spares_path = pool.spares_dir();
    let unique = format!("{:08x}", cowtree_fs::staging::random_u64() as u32);
    let making = OsString::from(format!("{MAKING}{}.{unique}", Stamp::current().token()));
    let making_path = spares_path.join(&making);
    let made = (|| {
        let dir = spares_dir
            .create_dir_open(&making, 0o700)
            .map_err(Error::io("create directory", &making_path))?;
        let staging_path = making_path.join(SpareMaker::STAGING);
        let (mut staging, made) = maker.make(commit, &dir, &making_path, &staging_path)?;
        staging
            .commit(OsStr::new("tree"), false)
            .map_err(Error::io("rename", making_path.join("tree")))?;
        drop(staging);
        let index = made.index.as_ref().ok_or_else(|| Error::Pool {
            path: making_path.clone(),
            message: "the tree was made without an index".into(),
        })?;
        // The cache-tree: the one the way gave beside the index, else the index's own.
        let tree = made.index_tree.as_ref().or_else(|| index.tree());
        let bytes = crate::index_file::encode_with(index, tree, false)
            .map_err(Error::io("encode the index of", &making_path))?;
        let tree = dir
            .open_dir(OsStr::new("tree"))
            .map_err(Error::io("open", making_path.join("tree")))?;
        let dirs = dir_records(&tree, index)
            .map_err(Error::io("stat the directories of", &making_path))?;
        let copied = made.counts.copied > 0 || made.fallback.is_some();
        // The index is the template's (the first spare's of this commit and fingerprint): this
        // spare keeps only its stat data, paired by the template's checksum.
        let template = pool.template_path(commit, fp);
        let kind = maker.object_hash();
        // An existing template is checked whole (its trailer) before a spare is paired with
        // it; a damaged one is written anew (the spares paired with it are then not used).
        let checksum = match crate::index_file::read_checked(&template, kind) {
            Ok((_, hex)) => hex,
            Err(_) => {
                let tdir = template.parent().unwrap_or(&spares_path).to_owned();
                std::fs::create_dir_all(&tdir).map_err(Error::io("create directory", &tdir))?;
                let d = Dir::open(&tdir).map_err(Error::io("open", &tdir))?;
                let name = template.file_name().unwrap_or_default();
                cowtree_fs::atomic_file::write_atomic(&d, name, &bytes, 0o600, false)
                    .map_err(Error::io("write", &template))?;
                let trailer = &bytes[bytes.len().saturating_sub(kind.len_in_bytes())..];
                trailer.iter().fold(String::new(), |mut hex, b| {
                    use std::fmt::Write as _;
                    let _ = write!(hex, "{b:02x}");
                    hex
                })
            }
        };
        // The template's stat data, so that a claim that finds it unchanged need not check
        // its 8 MB again.
        let tstat =
            rustix::fs::stat(&template).map_err(|e| Error::io("stat", &template)(e.into()))?;
        let stats = super::encode_stats(index, &checksum, &super::FileStamp::of(&tstat));
        for (name, bytes) in [
            ("stat", stats),
            ("dirs", dirs),
            (
                "spare",
                record(commit, fp, made.counts.entries, copied).into_bytes(),
            ),
        ] {
            cowtree_fs::atomic_file::write_atomic(&dir, OsStr::new(name), &bytes, 0o600, false)
                .map_err(Error::io("write", making_path.join(name)))?;
        }
        // Durable before it can be claimed: a claim trusts its stat data, which a power loss
        // could leave pointing at data never written.
        dir.sync_filesystem()
            .map_err(Error::io("sync", &making_path))?;
        let secs = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let id = format!("{secs}-{unique}");
        spares_dir
            .rename_noreplace(&making, spares_dir, OsStr::new(&id))
            .map_err(Error::io("rename", &making_path))?;
        spares_dir.sync().map_err(Error::io("sync", &spares_path))?;
        Ok(id)
    })();
    if made.is_err() {
        let _ = spares_dir.remove_tree(&making);
    }
    made
}
