//! Incremental snapshot of a registered worktree.

use std::time::Instant;

use rayon::slice::ParallelSliceMut;

use cowtree_store::{Hash, Manifest, Store};

use crate::base::Base;
use crate::cache::StatCache;
use crate::error::{Error, Result};
use crate::registry::{self, Worktree};
use crate::scan::{self, Mode};

/// What an incremental snapshot did.
#[derive(Debug, Clone)]
pub struct SnapshotReport {
    /// The snapshot id (equal to a fresh snapshot's of the same tree).
    pub id: Hash,
    /// File entries.
    pub files: u64,
    /// Their bytes.
    pub bytes: u64,
    /// Files read because the stat cache did not prove them known.
    pub read: u64,
    /// Blobs new to the store.
    pub new_blobs: u64,
    /// Their bytes.
    pub new_bytes: u64,
    /// The worktree's base moved to this snapshot.
    pub base_updated: bool,
    /// Milliseconds.
    pub elapsed_ms: u64,
}

/// Records the worktree as a snapshot, reading only files whose stat changed since their
/// content hash was last learnt. The stat cache is refreshed; the base moves to the new
/// snapshot only when `update_base`.
pub fn snapshot(
    store: &Store,
    wt: &mut Worktree,
    name: Option<&str>,
    update_base: bool,
) -> Result<SnapshotReport> {
    let started = Instant::now();
    if let Some(n) = name {
        cowtree_store::refs::validate_name(n)?;
    }
    let _held = registry::lock(wt)?;
    registry::reload(store, wt)?;
    crate::switch::finish_pending(store, wt)?;
    let _lock = store.lock_shared()?;
    let base = Base::load(store, &wt.base)?;
    let cache = registry::load_cache(store, wt);
    let staging = store.staging("ingest")?;
    let scan = scan::scan(
        &wt.path,
        &base,
        &cache,
        Mode::Snapshot {
            store,
            staging: staging.dir(),
        },
    )?;
    let t_walk = started.elapsed();
    // The manifest (sorted, validated, written) and the stat cache (sorted, written) are
    // independent: build and write them at once. The record, which may name the new base,
    // is written after both.
    let started_ns = scan.started_ns;
    let (mut entries, mut recs) = (scan.entries, scan.recs);
    let wt_ref: &Worktree = wt;
    let (saved, cached) = rayon::join(
        || -> Result<(Manifest, Hash)> {
            // The stable sort inside Manifest::new then finds sorted input and only checks it.
            entries.par_sort_unstable_by(|a, b| a.path.cmp(&b.path));
            let manifest = Manifest::new(entries).map_err(|source| Error::Manifest {
                context: format!("snapshot of {}", wt_ref.path.display()),
                source,
            })?;
            let id = store.save(&manifest)?;
            Ok((manifest, id))
        },
        || -> Result<StatCache> {
            recs.par_sort_unstable_by(|a, b| a.path.cmp(&b.path));
            let fresh = StatCache::new(started_ns, recs);
            registry::write_cache(store, wt_ref, &fresh)?;
            Ok(fresh)
        },
    );
    let (manifest, id) = saved?;
    cached?;
    let t_saved = started.elapsed();
    if let Some(n) = name {
        cowtree_store::refs::set(store, n, &id)?;
    }
    if update_base {
        wt.base = id;
    }
    registry::save(store, wt, None)?;
    if std::env::var_os("COWTREE_TIMING").is_some() {
        eprintln!(
            "timing: walk {t_walk:?}, manifest and cache saved {t_saved:?}, record {:?}",
            started.elapsed()
        );
    }
    Ok(SnapshotReport {
        id,
        files: manifest.files(),
        bytes: manifest.bytes(),
        read: scan.hashed,
        new_blobs: scan.new_blobs,
        new_bytes: scan.new_bytes,
        base_updated: update_base,
        elapsed_ms: started.elapsed().as_millis() as u64,
    })
}
