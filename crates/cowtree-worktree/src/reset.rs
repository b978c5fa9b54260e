//! Reset: restore entries of a worktree to its base snapshot.

use std::collections::{BTreeSet, HashSet};
use std::time::Instant;

use cowtree_fs::progress::{Progress, Total};
use cowtree_store::{Entry, Kind, Store};
use rayon::prelude::*;

use crate::apply::Applier;
use crate::base::Base;
use crate::cache::{self, Rec};
use crate::error::{Error, Result};
use crate::paths::{ancestors, within};
use crate::registry::{self, Worktree};
use crate::scan::{self, ChangeKind, Mode};

/// What a reset did.
#[derive(Debug, Clone, Default)]
pub struct ResetReport {
    /// Entries restored (modified, deleted, type- or mode-changed).
    pub restored: u64,
    /// Untracked paths removed (`--hard`).
    pub removed: u64,
    /// An interrupted switch was finished first.
    pub finished_interrupted: bool,
    /// Entries restored as a plain checkout makes them although the base is a version 2
    /// snapshot (`snapshot --archive`), whose owners, set-ID bits, attributes and hardlinks
    /// only `checkout --archive` gives.
    pub archive_not_given: u64,
    /// Milliseconds.
    pub elapsed_ms: u64,
}

/// Restores modified, deleted, type-changed and mode-changed entries (only those within
/// `paths` when any are given) to the base snapshot; with `hard`, also removes untracked
/// files and directories there. Content lands under a temp name and is renamed into place,
/// so an interrupted reset leaves whole files only, and running it again finishes it.
pub fn reset(
    store: &Store,
    wt: &mut Worktree,
    paths: &[Vec<u8>],
    hard: bool,
) -> Result<ResetReport> {
    reset_with_progress(store, wt, paths, hard, &Progress::default())
}

/// [`reset`], counting into `progress`: the total (files and symlinks to restore, their
/// bytes of file data) once the worktree has been compared with its base, then one entry per file or
/// symlink restored, with its bytes. The comparison itself is not counted.
pub fn reset_with_progress(
    store: &Store,
    wt: &mut Worktree,
    paths: &[Vec<u8>],
    hard: bool,
    progress: &Progress,
) -> Result<ResetReport> {
    let _held = registry::lock(store, wt)?;
    registry::reload(store, wt)?;
    let started = Instant::now();
    let finished = crate::switch::finish_pending(store, wt)?;
    let _lock = store.lock_shared()?;
    let started_ns = cache::now_ns();
    let w: &Worktree = wt;
    let (base, cache) = rayon::join(
        || Base::load(store, &w.base),
        || registry::load_cache(store, w),
    );
    let base = base?;
    let scan = scan::scan(&wt.path, &base, &cache, Mode::Status)?;
    let selected = |p: &[u8]| paths.is_empty() || paths.iter().any(|q| within(p, q));
    let ap = Applier::new(store, &wt.path, false)?;
    let mut report = ResetReport {
        finished_interrupted: finished,
        ..Default::default()
    };

    let mut restore: Vec<Entry> = Vec::new();
    let mut seen: HashSet<usize> = HashSet::new();
    for c in &scan.changes {
        if !selected(&c.path) {
            continue;
        }
        if c.kind == ChangeKind::Added {
            if hard {
                ap.remove_tree(&c.path)?;
                report.removed += 1;
            }
            continue;
        }
        let Some(i) = base.find(&c.path) else {
            return Err(Error::internal(format!(
                "{} changed but is not in the base",
                scan::show_change(c)
            )));
        };
        if seen.insert(i) {
            restore.extend(base.to_entry(i));
        }
    }

    let mut dirs: BTreeSet<Vec<u8>> = BTreeSet::new();
    for e in &restore {
        for q in ancestors(&e.path) {
            dirs.insert(q.to_vec());
        }
        if e.kind == Kind::Dir {
            dirs.insert(e.path.clone());
        }
    }
    ap.ensure_dirs(&dirs, hard).map_err(|e| match e {
        Error::InTheWay { path, what, .. } => Error::InTheWay {
            path,
            what,
            hint: " (an untracked file is in the way: remove it, or use --hard)",
        },
        e => e,
    })?;
    let files = || restore.iter().filter(|e| e.kind != Kind::Dir);
    progress.set_total(Total {
        entries: files().count() as u64,
        bytes: Some(files().map(crate::switch::file_bytes).sum()),
    });
    let recs: Vec<Rec> = restore
        .par_iter()
        .filter(|e| e.kind != Kind::Dir)
        .map(|e| {
            let placed = ap.place(e, hard, &cache).map(|p| p.rec);
            progress.add(1, crate::switch::file_bytes(e));
            placed
        })
        .collect::<Result<_>>()?;
    report.restored = restore.len() as u64;
    if base.is_archive() {
        report.archive_not_given = report.restored;
    }

    let touched: HashSet<&[u8]> = restore.iter().map(|e| e.path.as_slice()).collect();
    let learnt: Vec<Rec> = scan
        .recs
        .into_iter()
        .filter(|r| !touched.contains(r.path.as_slice()))
        .collect();
    // What the scan learnt was stat'ed after `started_ns`: smudged where racy against it, it
    // and what this reset wrote win over the old records (which carry over, smudged where
    // racy). The cache's time is taken after the writes, so that they are trusted at once
    // (see `crate::cache`).
    let mut fresh_recs = cache::smudge_racy(started_ns, learnt);
    let latest = cache::latest_fine_time(&recs);
    fresh_recs.extend(recs);
    // Durable first (docs/store.md, "Durability"); the clock tick of the newest write has
    // usually passed by the time the sync returns, so the cache time below rarely waits.
    if report.restored + report.removed > 0 {
        ap.sync()?;
    }
    let written_ns = cache::written_ns_after_own_writes(latest);
    // Written as it is merged: the old cache and the new one are never both in memory.
    registry::write_cache_with(store, wt, |w| {
        cache.write_merged(
            w,
            written_ns,
            |_| true,
            fresh_recs,
            |_| true,
            cache::smudge_racy(started_ns, scan.dir_recs),
        )
    })?;
    registry::save(store, wt, None)?;
    report.elapsed_ms = started.elapsed().as_millis() as u64;
    Ok(report)
}
