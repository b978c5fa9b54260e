//! `remote gc`: delete from a remote what no snapshot on it needs.
//!
//! Under an exclusive lock ([`crate::lock`]: no push runs meanwhile, and none starts), gc
//! 1. lists the whole remote once;
//! 2. marks: reads every manifest under `snapshots/` (from the local store when it has the
//!    snapshot, else from the remote, checked against its id) and collects the blobs they name;
//! 3. reads every pack index, and plans ([`plan`], pure): a pack none of whose blobs is needed
//!    is deleted, a pack whose unneeded bytes are more than the repack threshold is repacked
//!    (its needed blobs written into new packs), a large blob no snapshot needs is deleted, a
//!    pack without an index or an index without a pack is a leftover of a killed push or gc and
//!    is deleted. Only objects older than the grace period, by the server's clock (their
//!    Last-Modified against the Last-Modified of gc's own lock), are touched: a push whose lock
//!    gc took for stale still has its fresh packs;
//! 4. sweeps in the reverse of the order a push writes: new packs (pack, then index) first,
//!    then large blobs, then the indexes of the packs to go, then those packs, then leftovers.
//!    Before each step it checks that its lock still holds.
//!
//! A gc killed at any point leaves a remote every command accepts: new packs are whole and
//! indexed before an old index goes; a pack whose index is gone is never read and is a
//! leftover for the next gc. A pull that read an index whose pack gc deleted meanwhile finds
//! the pack missing and reads the indexes again (see [`crate::pull`]).

use std::collections::{HashMap, HashSet};
use std::ffi::OsStr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use cowtree_store::{Hash, Store};
use futures::StreamExt;

use crate::error::{Error, Result};
use crate::index::{idx_key, pack_key, read_index};
use crate::lock::{self, Kind, LockTiming};
use crate::pack::{PackIndex, Slot};
use crate::push::{LARGE, PACK_TARGET};
use crate::remote::{Listed, Remote};

/// How gc decides.
#[derive(Debug, Clone, Copy)]
pub struct GcOptions {
    /// Objects younger than this (server time) are never deleted or repacked.
    pub grace: Duration,
    /// A pack is repacked when the share of its bytes no snapshot needs is above this
    /// (0.0 to 1.0).
    pub repack_threshold: f64,
    /// Plan and report only.
    pub dry_run: bool,
    /// The lock's timing.
    pub timing: LockTiming,
}

impl Default for GcOptions {
    fn default() -> GcOptions {
        GcOptions {
            grace: DEFAULT_GRACE,
            repack_threshold: 0.10,
            dry_run: false,
            timing: LockTiming::default(),
        }
    }
}

/// The default grace period: far longer than any push.
pub const DEFAULT_GRACE: Duration = Duration::from_secs(24 * 3600);

/// What a gc did (or, dry, would do).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GcReport {
    /// Nothing was changed.
    pub dry_run: bool,
    /// The remote was layout 1 and is now layout 2.
    pub upgraded: bool,
    /// Snapshots on the remote (all kept: gc drops no snapshot).
    pub snapshots: u64,
    /// Distinct blobs the snapshots name, and their bytes.
    pub blobs_needed: u64,
    /// Bytes of those blobs plus the manifests: what the snapshots need.
    pub bytes_needed: u64,
    /// Blobs a snapshot names that are nowhere on the remote (a damaged remote).
    pub blobs_missing: u64,
    /// Objects and bytes on the remote before.
    pub objects_before: u64,
    /// Bytes before.
    pub bytes_before: u64,
    /// Objects and bytes after (as planned, for a dry run).
    pub objects_after: u64,
    /// Bytes after.
    pub bytes_after: u64,
    /// Objects deleted, and their bytes.
    pub objects_deleted: u64,
    /// Bytes deleted.
    pub bytes_deleted: u64,
    /// Packs no snapshot needs anything of, deleted with their indexes.
    pub packs_deleted: u64,
    /// Large blobs deleted.
    pub blobs_deleted: u64,
    /// Partly needed packs rewritten, the packs written for them, and the bytes read and
    /// written.
    pub packs_repacked: u64,
    /// New packs written by the repack.
    pub packs_written: u64,
    /// Bytes read from the packs repacked.
    pub repack_bytes_read: u64,
    /// Bytes written into new packs.
    pub repack_bytes_written: u64,
    /// Packs without an index and indexes without a pack (left by killed pushes or gc).
    pub leftovers_deleted: u64,
    /// Stale locks deleted.
    pub locks_deleted: u64,
    /// Objects no snapshot needs (all or part of) left because they are younger than the
    /// grace period, and the bytes of them no snapshot needs.
    pub young_kept: u64,
    /// Bytes of those.
    pub young_kept_bytes: u64,
    /// Pack indexes that do not decode or do not match their pack: left alone, reported.
    pub damaged_packs: Vec<String>,
    /// Requests made.
    pub requests: u64,
    /// Requests the sweep makes (made, or for a dry run, that it would make).
    pub sweep_requests: u64,
    /// Wall time.
    pub elapsed_ms: u64,
}

/// A pack as the listing and its index show it.
#[derive(Debug, Clone)]
pub struct PackIn {
    /// Its id.
    pub id: Hash,
    /// The pack object's size and Last-Modified (ms), if listed.
    pub pack: Option<(u64, i64)>,
    /// The index object's size and Last-Modified, if listed.
    pub idx: Option<(u64, i64)>,
    /// Its index, when listed and readable; `None` when unreadable or not listed.
    pub index: Option<PackIndex>,
}

/// What gc will do, decided from the listing, the indexes and the marks.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Plan {
    /// Old packs to rewrite: (id, the blobs to keep from it, in offset order).
    pub repack: Vec<(Hash, Vec<Slot>)>,
    /// The new packs the repack writes: their blobs' sizes (for counting requests and bytes).
    pub new_packs: Vec<u64>,
    /// Packs to delete (index first, then pack), repacked ones included.
    pub drop_packs: Vec<Hash>,
    /// Large blobs to delete.
    pub drop_blobs: Vec<Hash>,
    /// Leftover objects (a pack without index, an index without pack) to delete.
    pub leftovers: Vec<String>,
    /// Bytes to delete (besides the repack, which also writes).
    pub bytes_deleted: u64,
    /// Objects to delete.
    pub objects_deleted: u64,
    /// Unneeded objects left because they are young, and their bytes.
    pub young_kept: u64,
    /// Bytes of those.
    pub young_kept_bytes: u64,
    /// Needed blobs found nowhere.
    pub missing: u64,
    /// Packs whose index is unreadable or does not match the pack.
    pub damaged: Vec<Hash>,
}

/// Decides what gc deletes and repacks. `needed` are the blobs the snapshots name (with their
/// sizes), `large` the `blobs/` objects (hash, size, Last-Modified), `now_ms` the server's
/// clock, `grace_ms` the grace period, `threshold` the repack threshold.
pub fn plan(
    packs: &[PackIn],
    large: &[(Hash, u64, i64)],
    needed: &HashMap<Hash, u64>,
    now_ms: i64,
    grace_ms: i64,
    threshold: f64,
) -> Plan {
    let old = |modified: i64| now_ms.saturating_sub(modified) >= grace_ms;
    let mut p = Plan::default();
    let mut claimed: HashSet<Hash> = HashSet::new();
    let mut valid: Vec<(&PackIn, &PackIndex, u64, i64)> = Vec::new();
    for pk in packs {
        match (pk.pack, pk.idx, &pk.index) {
            (Some((size, pm)), Some((_, im)), Some(index)) if index.pack_len == size => {
                valid.push((pk, index, size, pm.max(im)));
            }
            (Some((size, modified)), None, _) => {
                // Never read by anyone: a killed push's (or a gc's, between its deletes).
                if old(modified) {
                    p.leftovers.push(pack_key(&pk.id));
                    p.bytes_deleted += size;
                } else {
                    p.young_kept += 1;
                    p.young_kept_bytes += size;
                }
            }
            (None, Some((size, modified)), _) => {
                if old(modified) {
                    p.leftovers.push(idx_key(&pk.id));
                    p.bytes_deleted += size;
                } else {
                    p.young_kept += 1;
                    p.young_kept_bytes += size;
                }
            }
            _ => p.damaged.push(pk.id),
        }
    }
    // Young packs keep what they hold: their blobs are claimed first, so that an old copy of
    // the same blob counts as unneeded.
    for (_, index, size, modified) in &valid {
        if !old(*modified) {
            let mut useful = 0;
            for s in &index.slots {
                if needed.contains_key(&s.hash) {
                    claimed.insert(s.hash);
                    useful += s.len;
                }
            }
            // Left, with what of it no snapshot needs, for a later gc.
            if useful < *size {
                p.young_kept += 1;
                p.young_kept_bytes += size - useful;
            }
        }
    }
    let needed_bytes = |index: &PackIndex| -> u64 {
        index
            .slots
            .iter()
            .filter(|s| needed.contains_key(&s.hash))
            .map(|s| s.len)
            .sum()
    };
    // The most used packs claim their blobs first: a blob in two packs stays in the one kept
    // whole.
    let mut olds: Vec<&(&PackIn, &PackIndex, u64, i64)> =
        valid.iter().filter(|(_, _, _, m)| old(*m)).collect();
    olds.sort_by(|a, b| {
        let ua = needed_bytes(a.1) as f64 / a.2.max(1) as f64;
        let ub = needed_bytes(b.1) as f64 / b.2.max(1) as f64;
        ub.total_cmp(&ua).then(a.0.id.cmp(&b.0.id))
    });
    let mut to_move: Vec<u64> = Vec::new();
    for (pk, index, size, _) in olds {
        let mut keep: Vec<Slot> = index
            .slots
            .iter()
            .filter(|s| needed.contains_key(&s.hash) && claimed.insert(s.hash))
            .copied()
            .collect();
        let idx_size = pk.idx.map_or(0, |(s, _)| s);
        let useful: u64 = keep.iter().map(|s| s.len).sum();
        if keep.is_empty() {
            p.drop_packs.push(pk.id);
            p.bytes_deleted += size + idx_size;
            continue;
        }
        let waste = size.saturating_sub(useful) as f64 / (*size).max(1) as f64;
        if waste > threshold {
            keep.sort_by_key(|s| s.offset);
            to_move.extend(keep.iter().map(|s| s.len));
            p.repack.push((pk.id, keep));
            p.drop_packs.push(pk.id);
            p.bytes_deleted += size + idx_size;
        }
    }
    p.new_packs = cut(&to_move);
    for (h, size, modified) in large {
        if needed.contains_key(h) {
            claimed.insert(*h);
        } else if old(*modified) {
            p.drop_blobs.push(*h);
            p.bytes_deleted += size;
        } else {
            p.young_kept += 1;
            p.young_kept_bytes += size;
        }
    }
    p.missing = needed.keys().filter(|h| !claimed.contains(h)).count() as u64;
    p.objects_deleted = (p.drop_packs.len() * 2 + p.drop_blobs.len() + p.leftovers.len()) as u64;
    p
}

/// A pack is closed once it holds this many bytes (as a push closes one).
const PACK_CLOSE: u64 = PACK_TARGET - LARGE;

/// The sizes of the packs that blobs of sizes `sizes`, in order, make.
fn cut(sizes: &[u64]) -> Vec<u64> {
    let mut out = Vec::new();
    let mut cur = 0;
    for &s in sizes {
        cur += s;
        if cur >= PACK_CLOSE {
            out.push(cur);
            cur = 0;
        }
    }
    if cur > 0 {
        out.push(cur);
    }
    out
}

/// Runs gc on `remote`. `store`, when given, serves the manifests it holds (no GET) and caches
/// pack indexes. `on_wait` is told what the lock waits for.
pub fn gc(
    remote: &Remote,
    store: Option<&Store>,
    opts: &GcOptions,
    on_wait: &(dyn Fn(&str) + Sync),
) -> Result<GcReport> {
    let start = Instant::now();
    let mut report = GcReport {
        dry_run: opts.dry_run,
        ..GcReport::default()
    };
    remote.block_on(async {
        match remote.version(false).await? {
            None => return Ok(()),
            Some(1) if !opts.dry_run => {
                remote.upgrade_version().await?;
                report.upgraded = true;
            }
            _ => {}
        }
        let kind = if opts.dry_run { Kind::Look } else { Kind::Gc };
        let held = lock::acquire(remote, kind, &opts.timing, on_wait).await?;
        let r = run(remote, store, opts, &held, &mut report).await;
        held.release(remote).await;
        r
    })?;
    report.requests = remote.requests();
    report.elapsed_ms = start.elapsed().as_millis() as u64;
    Ok(report)
}

async fn run(
    remote: &Remote,
    store: Option<&Store>,
    opts: &GcOptions,
    held: &lock::Held,
    report: &mut GcReport,
) -> Result<()> {
    let now_ms = held.server_now_ms;
    let listing = remote.list_meta("").await?;
    report.objects_before = listing.len() as u64;
    report.bytes_before = listing.iter().map(|l| l.size).sum();
    let mut packs: HashMap<Hash, PackIn> = HashMap::new();
    let mut large = Vec::new();
    let mut snapshots: Vec<(Hash, u64)> = Vec::new();
    for l in &listing {
        classify(l, &mut packs, &mut large, &mut snapshots);
    }
    // Mark.
    let needed = mark(remote, store, &snapshots).await?;
    report.snapshots = snapshots.len() as u64;
    report.blobs_needed = needed.len() as u64;
    report.bytes_needed =
        needed.values().sum::<u64>() + snapshots.iter().map(|(_, s)| s).sum::<u64>();
    // The indexes.
    let cache = read_indexes(remote, store, &mut packs).await?;
    let cache = cache.as_ref();
    let mut packs: Vec<PackIn> = packs.into_values().collect();
    packs.sort_by_key(|p| p.id);
    let grace_ms = opts.grace.as_millis().min(i64::MAX as u128) as i64;
    let plan = plan(
        &packs,
        &large,
        &needed,
        now_ms,
        grace_ms,
        opts.repack_threshold,
    );
    let stale_locks = account(report, &plan, &packs, held, remote);
    if opts.dry_run {
        return Ok(());
    }
    sweep(remote, &plan, held, &stale_locks, cache).await
}

/// Reads the index of every pack that has one (through the store's cache of indexes, when a
/// store is given) into `packs`; returns that cache's directory.
async fn read_indexes(
    remote: &Remote,
    store: Option<&Store>,
    packs: &mut HashMap<Hash, PackIn>,
) -> Result<Option<cowtree_fs::dir::Dir>> {
    let cache = match store {
        Some(s) => {
            let (dir, path) = crate::config::cache_dir(s, remote.config())?;
            Some(dir.open_dir(OsStr::new("idx")).map_err(|e| Error::Io {
                path: path.join("idx"),
                source: e,
            })?)
        }
        None => None,
    };
    let cache_ref = cache.as_ref();
    let ids: Vec<Hash> = packs
        .values()
        .filter(|p| p.idx.is_some())
        .map(|p| p.id)
        .collect();
    let read: Vec<(Hash, Option<PackIndex>)> = futures::stream::iter(ids)
        .map(|id| async move {
            // An index that does not hash to its name or decode is damage, left alone.
            (id, read_index(remote, cache_ref, &id).await.ok())
        })
        .buffer_unordered(16)
        .collect()
        .await;
    for (id, index) in read {
        if let Some(p) = packs.get_mut(&id) {
            p.index = index;
        }
    }
    Ok(cache)
}

/// What the plan frees and costs, into `report` (a dry run reports this much); returns the
/// stale locks to delete.
fn account(
    report: &mut GcReport,
    plan: &Plan,
    packs: &[PackIn],
    held: &lock::Held,
    remote: &Remote,
) -> Vec<String> {
    report.blobs_missing = plan.missing;
    report.damaged_packs = plan.damaged.iter().map(pack_key).collect();
    report.packs_deleted = (plan.drop_packs.len() - plan.repack.len()) as u64;
    report.packs_repacked = plan.repack.len() as u64;
    report.packs_written = plan.new_packs.len() as u64;
    report.blobs_deleted = plan.drop_blobs.len() as u64;
    report.leftovers_deleted = plan.leftovers.len() as u64;
    report.locks_deleted = held.stale_seen.len() as u64;
    report.young_kept = plan.young_kept;
    report.young_kept_bytes = plan.young_kept_bytes;
    let moved: u64 = plan.new_packs.iter().sum();
    let new_idx_bytes: u64 = plan
        .repack
        .iter()
        .map(|(_, keep)| keep.len() as u64 * 48)
        .sum::<u64>()
        + plan.new_packs.len() as u64 * 28;
    report.repack_bytes_read = plan
        .repack
        .iter()
        .filter_map(|(id, _)| packs.iter().find(|p| p.id == *id))
        .filter_map(|p| p.pack.map(|(s, _)| s))
        .sum();
    report.repack_bytes_written = moved;
    report.objects_deleted = plan.objects_deleted + held.stale_seen.len() as u64;
    report.bytes_deleted = plan.bytes_deleted;
    report.objects_after =
        report.objects_before + plan.new_packs.len() as u64 * 2 - report.objects_deleted;
    report.bytes_after =
        (report.bytes_before + moved + new_idx_bytes).saturating_sub(report.bytes_deleted);
    let stale_locks: Vec<String> = held.stale_seen.iter().map(|l| l.rel.clone()).collect();
    let deletes = |n: usize| remote.delete_requests(n as u64);
    report.sweep_requests = plan.repack.len() as u64
        + plan.new_packs.len() as u64 * 2
        + deletes(plan.drop_blobs.len())
        + deletes(plan.drop_packs.len()) * 2
        + deletes(plan.leftovers.len())
        + deletes(stale_locks.len());
    stale_locks
}

/// Deletes what the plan drops, in the reverse of a push's order of writes, checking the lock
/// between steps; then the local cache of the dropped packs' indexes.
async fn sweep(
    remote: &Remote,
    plan: &Plan,
    held: &lock::Held,
    stale_locks: &[String],
    cache: Option<&cowtree_fs::dir::Dir>,
) -> Result<()> {
    // Sweep, in the reverse of a push's order of writes.
    held.check(remote)?;
    // A pack's id is its index's hash, so a repack can write again a pack the plan listed as
    // a leftover (a killed gc wrote it without its index) or as one to drop: those keys are
    // now the repack's output, and are not deleted.
    let written: HashSet<String> = repack(remote, &plan.repack, held)
        .await?
        .iter()
        .flat_map(|id| [pack_key(id), idx_key(id)])
        .collect();
    let not_written = |keys: Vec<String>| -> Vec<String> {
        keys.into_iter().filter(|k| !written.contains(k)).collect()
    };
    held.check(remote)?;
    let blobs: Vec<String> = plan
        .drop_blobs
        .iter()
        .map(|h| format!("blobs/{h}"))
        .collect();
    remote.delete_all(&blobs).await?;
    held.check(remote)?;
    let idx = not_written(plan.drop_packs.iter().map(idx_key).collect());
    remote.delete_all(&idx).await?;
    held.check(remote)?;
    let pk = not_written(plan.drop_packs.iter().map(pack_key).collect());
    remote.delete_all(&pk).await?;
    held.check(remote)?;
    remote
        .delete_all(&not_written(plan.leftovers.clone()))
        .await?;
    remote.delete_all(stale_locks).await?;
    // The local cache of the indexes gone (it only saves requests).
    if let Some(dir) = cache {
        for id in &plan.drop_packs {
            let _ = dir.remove_file(OsStr::new(&id.to_hex()));
        }
    }
    Ok(())
}

/// Sorts one listed object into packs, large blobs and snapshots.
fn classify(
    l: &Listed,
    packs: &mut HashMap<Hash, PackIn>,
    large: &mut Vec<(Hash, u64, i64)>,
    snapshots: &mut Vec<(Hash, u64)>,
) {
    if let Some(file) = l.rel.strip_prefix("packs/") {
        if let Some(id) = file.strip_suffix(".pack").and_then(Hash::from_hex) {
            let p = packs.entry(id).or_insert_with(|| PackIn {
                id,
                pack: None,
                idx: None,
                index: None,
            });
            p.pack = Some((l.size, l.modified_ms));
        } else if let Some(id) = file.strip_suffix(".idx").and_then(Hash::from_hex) {
            let p = packs.entry(id).or_insert_with(|| PackIn {
                id,
                pack: None,
                idx: None,
                index: None,
            });
            p.idx = Some((l.size, l.modified_ms));
        }
    } else if let Some(h) = l.rel.strip_prefix("blobs/").and_then(Hash::from_hex) {
        large.push((h, l.size, l.modified_ms));
    } else if let Some(id) = l.rel.strip_prefix("snapshots/").and_then(Hash::from_hex) {
        snapshots.push((id, l.size));
    }
}

/// The blobs every snapshot names, with their sizes. A manifest that does not hash to its id
/// or does not decode stops gc (exit 7): what it names cannot be known, so nothing may go.
async fn mark(
    remote: &Remote,
    store: Option<&Store>,
    snapshots: &[(Hash, u64)],
) -> Result<HashMap<Hash, u64>> {
    let mut needed: HashMap<Hash, u64> = HashMap::new();
    let mut fetched = futures::stream::iter(snapshots.iter().map(|(id, _)| *id))
        .map(|id| async move {
            if let Some(s) = store
                && s.has_snapshot(&id).unwrap_or(false)
                && let Ok(b) = s.read_snapshot(&id)
                && Hash::of(&b) == id
            {
                return Ok((id, Bytes::from(b)));
            }
            let rel = format!("snapshots/{id}");
            match remote.get(&rel).await? {
                Some(b) if Hash::of(&b) == id => Ok((id, b)),
                Some(_) => Err(Error::Corrupt {
                    remote: remote.name().to_string(),
                    key: remote.key(&rel).to_string(),
                    detail: format!(
                        "the manifest of snapshot {id} does not hash to its id; gc cannot tell \
                         what it needs and deleted nothing"
                    ),
                }),
                // Removed since the listing (by an older cowtree, which takes no lock):
                // it needs nothing any more.
                None => Ok((id, Bytes::new())),
            }
        })
        .buffer_unordered(8);
    while let Some(r) = fetched.next().await {
        let (id, bytes) = r?;
        if bytes.is_empty() {
            continue;
        }
        let checked = cowtree_store::manifest::each_encoded(&bytes, |e| {
            if let Some(h) = e.hash() {
                needed.insert(h, e.size());
            }
        });
        checked.map_err(|e| Error::Corrupt {
            remote: remote.name().to_string(),
            key: remote.key(&format!("snapshots/{id}")).to_string(),
            detail: format!(
                "manifest of snapshot {id} refused: {e}; gc cannot tell what it needs and \
                 deleted nothing"
            ),
        })?;
    }
    Ok(needed)
}

/// Writes the kept blobs of each pack in `repack` into new packs (each blob checked against
/// its hash), pack then index, as a push writes them; returns the new packs' ids.
async fn repack(
    remote: &Remote,
    repack: &[(Hash, Vec<Slot>)],
    held: &lock::Held,
) -> Result<Vec<Hash>> {
    let mut written = Vec::new();
    let mut buf: Vec<u8> = Vec::new();
    let mut slots: Vec<Slot> = Vec::new();
    for (id, keep) in repack {
        held.check(remote)?;
        let key = pack_key(id);
        let data = remote.get(&key).await?.ok_or_else(|| Error::Missing {
            remote: remote.name().to_string(),
            what: format!(
                "pack {} vanished while gc read it (another gc, or a cowtree that takes no \
                 locks?)",
                remote.key(&key)
            ),
        })?;
        for s in keep {
            let range = usize::try_from(s.offset)
                .ok()
                .zip(usize::try_from(s.offset + s.len).ok())
                .filter(|(_, end)| *end <= data.len());
            let Some((a, b)) = range else {
                return Err(Error::Corrupt {
                    remote: remote.name().to_string(),
                    key: remote.key(&key).to_string(),
                    detail: format!("shorter than its index says (blob {})", s.hash),
                });
            };
            let blob = &data[a..b];
            if Hash::of(blob) != s.hash {
                return Err(Error::Corrupt {
                    remote: remote.name().to_string(),
                    key: remote.key(&key).to_string(),
                    detail: format!(
                        "blob {} at offset {} does not match its hash; gc deleted nothing of it",
                        s.hash, s.offset
                    ),
                });
            }
            slots.push(Slot {
                hash: s.hash,
                offset: buf.len() as u64,
                len: s.len,
            });
            buf.extend_from_slice(blob);
            if buf.len() as u64 >= PACK_CLOSE {
                let id = write_pack(remote, std::mem::take(&mut buf), std::mem::take(&mut slots))
                    .await?;
                written.push(id);
            }
        }
    }
    if !slots.is_empty() {
        written.push(write_pack(remote, buf, slots).await?);
    }
    Ok(written)
}

/// Writes a pack and then its index; returns its id (its index's hash).
async fn write_pack(remote: &Remote, buf: Vec<u8>, slots: Vec<Slot>) -> Result<Hash> {
    let idx = PackIndex::new(buf.len() as u64, slots).encode();
    let id = Hash::of(&idx);
    remote.put_immutable(&pack_key(&id), buf.into()).await?;
    remote.put_immutable(&idx_key(&id), idx.into()).await?;
    Ok(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(i: u32) -> Hash {
        Hash::of(&i.to_le_bytes())
    }

    /// A pack of blobs `ids` of `size` bytes each, listed at `modified`.
    fn pack(n: u32, ids: &[u32], size: u64, modified: i64) -> PackIn {
        let slots: Vec<Slot> = ids
            .iter()
            .enumerate()
            .map(|(i, &b)| Slot {
                hash: h(b),
                offset: i as u64 * size,
                len: size,
            })
            .collect();
        let len = size * ids.len() as u64;
        PackIn {
            id: h(1_000_000 + n),
            pack: Some((len, modified)),
            idx: Some((28 + 48 * ids.len() as u64, modified)),
            index: Some(PackIndex::new(len, slots)),
        }
    }

    fn needed(ids: &[u32], size: u64) -> HashMap<Hash, u64> {
        ids.iter().map(|&i| (h(i), size)).collect()
    }

    const NOW: i64 = 10_000_000;
    const GRACE: i64 = 1_000;

    #[test]
    fn unneeded_packs_go_partly_needed_ones_are_repacked_above_the_threshold() {
        let packs = vec![
            pack(1, &[1, 2, 3, 4], 100, 0),                     // all needed: kept
            pack(2, &[5, 6, 7, 8], 100, 0),                     // none needed: dropped
            pack(3, &[9, 10, 11, 12], 100, 0),                  // 1 of 4 unneeded (25%): repacked
            pack(4, &[13, 14, 15, 16, 17, 18, 19, 20], 100, 0), // 1 of 8 (12.5%): kept
        ];
        let need = needed(&[1, 2, 3, 4, 9, 10, 11, 13, 14, 15, 16, 17, 18, 19], 100);
        let p = plan(&packs, &[], &need, NOW, GRACE, 0.2);
        assert_eq!(p.drop_packs.len(), 2);
        assert!(p.drop_packs.contains(&packs[1].id) && p.drop_packs.contains(&packs[2].id));
        assert_eq!(p.repack.len(), 1);
        assert_eq!(p.repack[0].0, packs[2].id);
        let kept: Vec<Hash> = p.repack[0].1.iter().map(|s| s.hash).collect();
        assert_eq!(kept, vec![h(9), h(10), h(11)], "in offset order");
        assert_eq!(p.new_packs, vec![300]);
        assert_eq!(p.missing, 0);
        let p = plan(&packs, &[], &need, NOW, GRACE, 0.3);
        assert!(p.repack.is_empty(), "25% waste under a 30% threshold stays");
    }

    #[test]
    fn nothing_younger_than_the_grace_period_is_touched() {
        let young = NOW - GRACE + 1;
        let mut lone = pack(9, &[90], 50, young);
        lone.idx = None;
        let packs = vec![pack(2, &[5, 6], 100, young), lone];
        let large = vec![(h(70), 20 << 20, young), (h(71), 20 << 20, 0)];
        let p = plan(&packs, &large, &HashMap::new(), NOW, GRACE, 0.1);
        assert!(p.drop_packs.is_empty() && p.leftovers.is_empty());
        assert_eq!(p.drop_blobs, vec![h(71)], "only the old large blob");
        assert_eq!(
            p.young_kept, 3,
            "the young large blob, the young lone pack, the young pack no snapshot needs"
        );
        let p = plan(
            &packs,
            &large,
            &HashMap::new(),
            NOW + GRACE * 10,
            GRACE,
            0.1,
        );
        assert_eq!(p.drop_packs.len(), 1);
        assert_eq!(p.leftovers, vec![pack_key(&packs[1].id)]);
    }

    #[test]
    fn a_clock_far_ahead_on_the_gc_host_changes_nothing_the_server_clock_decides() {
        // `now` is the server's Last-Modified of gc's own lock: a fresh leftover has about
        // the same time, whatever the gc host's clock says.
        let mut lone = pack(9, &[90], 50, NOW - 10);
        lone.idx = None;
        let p = plan(&[lone], &[], &HashMap::new(), NOW, GRACE, 0.1);
        assert!(p.leftovers.is_empty());
    }

    #[test]
    fn a_blob_in_two_packs_is_kept_once_in_the_fuller_pack() {
        let packs = vec![pack(1, &[1, 2], 100, 0), pack(2, &[2, 3, 4, 5], 100, 0)];
        let need = needed(&[1, 2], 100);
        let p = plan(&packs, &[], &need, NOW, GRACE, 0.1);
        assert_eq!(p.drop_packs, vec![packs[1].id]);
        assert!(p.repack.is_empty());
    }

    #[test]
    fn a_young_pack_claims_first_so_an_old_duplicate_goes() {
        let packs = vec![pack(1, &[1, 2], 100, 0), pack(2, &[1, 2], 100, NOW)];
        let need = needed(&[1, 2], 100);
        let p = plan(&packs, &[], &need, NOW, GRACE, 0.1);
        assert_eq!(p.drop_packs, vec![packs[0].id]);
    }

    #[test]
    fn needed_blobs_found_nowhere_are_counted_missing_and_damaged_packs_left_alone() {
        let mut bad = pack(1, &[1], 100, 0);
        bad.pack = Some((99, 0)); // another length than its index says
        let mut unreadable = pack(2, &[2], 100, 0);
        unreadable.index = None;
        let need = needed(&[1, 2, 3], 100);
        let p = plan(
            &[bad.clone(), unreadable.clone()],
            &[],
            &need,
            NOW,
            GRACE,
            0.1,
        );
        assert_eq!(p.missing, 3);
        assert_eq!(p.damaged.len(), 2);
        assert!(p.drop_packs.is_empty() && p.leftovers.is_empty());
    }

    #[test]
    fn new_packs_close_as_a_push_closes_them() {
        assert_eq!(cut(&[]), Vec::<u64>::new());
        assert_eq!(cut(&[PACK_CLOSE - 1, 1, 5]), vec![PACK_CLOSE, 5]);
    }
}
