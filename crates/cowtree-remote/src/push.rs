//! Push: send snapshots, and the blobs the remote lacks, to a remote.
//!
//! Order of writes, each object immutable and created with `If-None-Match: *`: packs, then
//! their indexes, then large blobs, then (only when all of those succeeded) the manifests,
//! then the names. A push killed at any point leaves at worst packs without an index (never
//! read, see docs/remote.md on remote gc); running it again sends only what is still missing.
//!
//! Packing is deterministic (blobs in manifest order; a pack is closed by the bytes it holds,
//! never by the blob after it): two hosts pushing the same content to the same remote state
//! build the same packs, so the second create of each is an "already exists" and the remote
//! keeps one copy. That holds too when one of them reads the remote's indexes while only some
//! of the other's packs are listed (their uploads finish in any order): what it still needs is
//! the other's list less whole packs, which it cuts into the same packs.

use std::collections::HashSet;
use std::io::Read;
use std::time::Instant;

use bytes::Bytes;
use cowtree_store::{Hash, Store};
use futures::{StreamExt, TryStreamExt};

use crate::error::{Error, Result};
use crate::index::{self, idx_key, pack_key};
use crate::lock::{self, Kind, LockTiming};
use crate::pack::{PackIndex, Slot};
use crate::remote::{Expect, Remote};
use crate::{Progress, tracking};

/// Packs stay under this size.
pub const PACK_TARGET: u64 = 32 << 20;
/// Blobs at least this large are single objects, uploaded in parts.
pub const LARGE: u64 = 16 << 20;
/// Uploads in flight (memory: at most this many packs are held at once).
const IN_FLIGHT: usize = 4;

/// One snapshot to push, and the name to set on the remote, if any.
#[derive(Debug, Clone)]
pub struct PushItem {
    /// The snapshot.
    pub id: Hash,
    /// The name to point at it on the remote.
    pub name: Option<String>,
}

/// What a push did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PushReport {
    /// Manifests uploaded.
    pub snapshots_sent: u64,
    /// Snapshots the remote had already.
    pub snapshots_skipped: u64,
    /// Blobs uploaded, and their bytes.
    pub blobs_sent: u64,
    /// Bytes of blobs uploaded.
    pub bytes_sent: u64,
    /// Blobs the remote had already (of the snapshots not skipped), and their bytes.
    pub blobs_skipped: u64,
    /// Bytes of the blobs skipped.
    pub bytes_skipped: u64,
    /// Packs uploaded (each a pack and an index object).
    pub packs_sent: u64,
    /// Objects uploaded (packs, indexes, large blobs, manifests, names).
    pub objects_sent: u64,
    /// Names set or moved on the remote.
    pub names_updated: Vec<(String, Hash)>,
    /// Requests made.
    pub requests: u64,
    /// Wall time.
    pub elapsed_ms: u64,
}

enum Job {
    Pack(Vec<(Hash, u64)>),
    Large(Hash, u64),
}

/// Pushes `items` to `remote`. `force` moves a remote name even when another host moved it
/// since this store last saw it. [`push_with`] with the default lock timing.
pub fn push(
    store: &Store,
    remote: &Remote,
    items: &[PushItem],
    force: bool,
    progress: &Progress,
) -> Result<PushReport> {
    push_with(
        store,
        remote,
        items,
        force,
        &LockTiming::default(),
        &|_| {},
        progress,
    )
}

/// [`push`], with the lock's timing and a callback told once what the push waits for (a gc
/// holding the remote's lock).
///
/// A push that has anything to write takes a push lock on the remote ([`crate::lock`]) first,
/// so that no gc deletes a blob it counts on, and checks that the lock still holds before it
/// writes the manifests (the commit) and the names. A push of what the remote has already
/// (every snapshot there, every name pointing there) takes no lock.
pub fn push_with(
    store: &Store,
    remote: &Remote,
    items: &[PushItem],
    force: bool,
    timing: &LockTiming,
    on_wait: &(dyn Fn(&str) + Sync),
    progress: &Progress,
) -> Result<PushReport> {
    let start = Instant::now();
    let mut report = PushReport::default();
    let _lock = store.lock_shared()?;
    remote.rt.block_on(async {
        remote.check_version(true).await?;
        if already_there(store, remote, items, &mut report).await? {
            return Ok(());
        }
        let held = lock::acquire(remote, Kind::Push, timing, on_wait).await?;
        let r = send(store, remote, items, force, progress, &held, &mut report).await;
        held.release(remote).await;
        r
    })?;
    report.requests = remote.requests();
    report.elapsed_ms = start.elapsed().as_millis() as u64;
    Ok(report)
}

/// True (with the report filled) when every snapshot of `items` is on the remote and every
/// name points at it already: nothing to write, no lock to take.
async fn already_there(
    store: &Store,
    remote: &Remote,
    items: &[PushItem],
    report: &mut PushReport,
) -> Result<bool> {
    let mut seen: Vec<Hash> = Vec::new();
    let mut versions = Vec::new();
    for item in items {
        if !seen.contains(&item.id) {
            if !remote.exists(&format!("snapshots/{}", item.id)).await? {
                return Ok(false);
            }
            seen.push(item.id);
        }
        if let Some(name) = &item.name {
            cowtree_store::refs::validate_name(name)?;
            match remote.get_name(&format!("names/{name}")).await? {
                Some(c) if c.body.trim() == item.id.to_hex() => versions.push((name, c.version)),
                _ => return Ok(false),
            }
        }
    }
    for (item, (name, v)) in items.iter().filter(|i| i.name.is_some()).zip(versions) {
        tracking::set(store, remote.config(), name, &item.id, &v)?;
    }
    report.snapshots_skipped = seen.len() as u64;
    Ok(true)
}

/// The push proper, under the push lock `held`.
async fn send(
    store: &Store,
    remote: &Remote,
    items: &[PushItem],
    force: bool,
    progress: &Progress,
    held: &lock::Held,
    report: &mut PushReport,
) -> Result<()> {
    {
        let mut to_send = Vec::new();
        let mut needed: Vec<(Hash, u64)> = Vec::new();
        let mut seen: HashSet<Hash> = HashSet::new();
        for item in items {
            if to_send.iter().any(|(id, _)| *id == item.id) {
                continue;
            }
            let bytes = store.read_snapshot(&item.id)?;
            if remote.exists(&format!("snapshots/{}", item.id)).await? {
                report.snapshots_skipped += 1;
                continue;
            }
            // Read in place, not decoded into entries beside the bytes.
            let checked = cowtree_store::manifest::each_encoded(&bytes, |e| {
                if let Some(h) = e.hash()
                    && seen.insert(h)
                {
                    needed.push((h, e.size()));
                }
            });
            checked.map_err(|source| cowtree_store::Error::Manifest {
                context: format!("snapshot {}", item.id),
                source,
            })?;
            to_send.push((item.id, bytes));
        }
        if !needed.is_empty() {
            let have = index::load(store, remote).await?;
            needed.retain(|(h, size)| {
                let there = have.blobs.contains_key(h);
                if there {
                    report.blobs_skipped += 1;
                    report.bytes_skipped += size;
                }
                !there
            });
        }
        let jobs = plan(&needed);
        progress.plan(
            jobs.iter()
                .map(|j| match j {
                    Job::Pack(_) => 2,
                    Job::Large(..) => 1,
                })
                .sum(),
            needed.iter().map(|(_, s)| s).sum(),
        );
        let sent: Vec<(u64, u64, u64, bool)> = futures::stream::iter(jobs)
            .map(|job| run_job(store, remote, job, progress))
            .buffer_unordered(IN_FLIGHT)
            .try_collect()
            .await?;
        for (objects, blobs, bytes, is_pack) in sent {
            report.objects_sent += objects;
            report.blobs_sent += blobs;
            report.bytes_sent += bytes;
            report.packs_sent += u64::from(is_pack);
        }
        // Every blob is there: the manifests may now name them, if no gc can have run
        // meanwhile (the lock still holds).
        held.check(remote)?;
        for (id, bytes) in to_send {
            if remote
                .put_immutable(&format!("snapshots/{id}"), Bytes::from(bytes))
                .await?
            {
                report.objects_sent += 1;
            }
            report.snapshots_sent += 1;
        }
        held.check(remote)?;
        for item in items {
            if let Some(name) = &item.name
                && set_name(store, remote, name, &item.id, force).await?
            {
                report.objects_sent += 1;
                report.names_updated.push((name.clone(), item.id));
            }
        }
        Ok(())
    }
}

/// A pack is closed once it holds this many bytes; every packed blob is smaller than
/// [`LARGE`], so a closed pack stays under [`PACK_TARGET`].
const PACK_CLOSE: u64 = PACK_TARGET - LARGE;

/// Packs small blobs in the order given, each pack closed once it holds [`PACK_CLOSE`] bytes;
/// large ones alone. Where a pack ends depends only on the blobs in it, so a list that lacks
/// some whole packs of another (in order) is cut into packs of that other list.
fn plan(needed: &[(Hash, u64)]) -> Vec<Job> {
    let mut jobs = Vec::new();
    let mut cur: Vec<(Hash, u64)> = Vec::new();
    let mut cur_len = 0u64;
    for &(h, size) in needed {
        if size >= LARGE {
            jobs.push(Job::Large(h, size));
            continue;
        }
        cur.push((h, size));
        cur_len += size;
        if cur_len >= PACK_CLOSE {
            jobs.push(Job::Pack(std::mem::take(&mut cur)));
            cur_len = 0;
        }
    }
    if !cur.is_empty() {
        jobs.push(Job::Pack(cur));
    }
    jobs
}

fn open_blob(store: &Store, h: &Hash) -> Result<std::fs::File> {
    crate::os::open_blob(store, h).map_err(|e| Error::Io {
        path: store.blob_path(h),
        source: e,
    })
}

/// Runs one upload; returns (objects created, blobs sent, bytes sent, was a pack).
async fn run_job(
    store: &Store,
    remote: &Remote,
    job: Job,
    progress: &Progress,
) -> Result<(u64, u64, u64, bool)> {
    match job {
        Job::Pack(blobs) => {
            let total: u64 = blobs.iter().map(|(_, s)| s).sum();
            let mut buf = Vec::with_capacity(total as usize);
            let mut slots = Vec::with_capacity(blobs.len());
            for (h, size) in &blobs {
                let offset = buf.len() as u64;
                let mut f = open_blob(store, h)?;
                f.read_to_end(&mut buf).map_err(|e| Error::Io {
                    path: store.blob_path(h),
                    source: e,
                })?;
                let data = &buf[offset as usize..];
                if data.len() as u64 != *size || Hash::of(data) != *h {
                    return Err(Error::BadLocalBlob {
                        store: store.root().to_path_buf(),
                        blob: store.blob_path(h),
                    });
                }
                slots.push(Slot {
                    hash: *h,
                    offset,
                    len: *size,
                });
            }
            let idx = PackIndex::new(buf.len() as u64, slots).encode();
            let id = Hash::of(&idx);
            let mut created = u64::from(remote.put_immutable(&pack_key(&id), buf.into()).await?);
            // The index is written after its pack: an index always names a complete pack.
            created += u64::from(remote.put_immutable(&idx_key(&id), idx.into()).await?);
            progress.add(2, total);
            Ok((created, blobs.len() as u64, total, true))
        }
        Job::Large(h, size) => {
            let mut f = open_blob(store, &h)?;
            remote
                .put_large(&format!("blobs/{h}"), &mut f, &h, &|n| progress.add(0, n))
                .await
                .map_err(|e| match e {
                    // put_large knows the blob by its hash only.
                    Error::BadLocalBlob { .. } => Error::BadLocalBlob {
                        store: store.root().to_path_buf(),
                        blob: store.blob_path(&h),
                    },
                    e => e,
                })?;
            progress.add(1, 0);
            Ok((1, 1, size, false))
        }
    }
}

/// Points `name` on the remote at `id`, conditionally on the version this store last saw
/// `cowtree --store STORE pull --remote REMOTE --force NAME`: the pull that moves this store's
/// name to where the remote's points.
fn pull_forced(store: &Store, remote: &Remote, name: &str) -> String {
    cowtree_store::error::command(
        store.root(),
        &["pull", "--remote", remote.name(), "--force", name],
        std::path::Path::new(""),
    )
}

/// (or, with `force`, on the version there now). False when it already pointed there.
async fn set_name(
    store: &Store,
    remote: &Remote,
    name: &str,
    id: &Hash,
    force: bool,
) -> Result<bool> {
    cowtree_store::refs::validate_name(name)?;
    let rel = format!("names/{name}");
    let current = remote.get_name(&rel).await?;
    let tracked = tracking::get(store, remote.config(), name)?;
    let conflict = |detail: String| Error::Conflict {
        remote: remote.name().to_string(),
        name: name.to_string(),
        detail,
    };
    let expect = match (&current, &tracked) {
        (Some(c), _) if c.body.trim() == id.to_hex() => {
            tracking::set(store, remote.config(), name, id, &c.version)?;
            return Ok(false);
        }
        (None, _) => Expect::Absent,
        (Some(c), _) if force => Expect::Version(c.version.clone()),
        (Some(c), Some((_, seen))) if seen.e_tag == c.version.e_tag => {
            Expect::Version(c.version.clone())
        }
        (Some(c), Some((seen_id, _))) => {
            return Err(conflict(format!(
                "it points at {} on the remote, moved there by another host since this store \
                 saw it at {}; `{}` moves this store's name there (then push again), or push \
                 with --force to overwrite it",
                c.body.trim(),
                seen_id,
                pull_forced(store, remote, name)
            )));
        }
        (Some(c), None) => {
            return Err(conflict(format!(
                "it points at {} on the remote, which this store has not seen; `{}` moves \
                 this store's name there (then push again), or push with --force to overwrite it",
                c.body.trim(),
                pull_forced(store, remote, name)
            )));
        }
    };
    let v = remote
        .put_name(&rel, name, &format!("{id}\n"), &expect)
        .await?;
    tracking::set(store, remote.config(), name, id, &v)?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plan_cuts_packs_at_the_target_and_sends_large_blobs_alone() {
        let h = |i: u8| Hash::of(&[i]);
        let needed = vec![
            (h(1), LARGE - 1),
            (h(2), LARGE - 1),
            (h(3), 3),
            (h(4), LARGE),
            (h(5), 10),
        ];
        let jobs = plan(&needed);
        let shape: Vec<String> = jobs
            .iter()
            .map(|j| match j {
                Job::Pack(b) => format!("pack{}", b.len()),
                Job::Large(..) => "large".into(),
            })
            .collect();
        assert_eq!(shape, ["pack2", "large", "pack2"]);
    }

    /// The packs of a plan, as lists of blob hashes.
    fn packs_of(jobs: &[Job]) -> Vec<Vec<Hash>> {
        jobs.iter()
            .filter_map(|j| match j {
                Job::Pack(b) => Some(b.iter().map(|(h, _)| *h).collect()),
                Job::Large(..) => None,
            })
            .collect()
    }

    #[test]
    fn a_list_lacking_whole_packs_of_another_is_cut_into_packs_of_that_other() {
        // What a push sees when it reads the remote's indexes while another push of the same
        // content has listed some of its packs: the same list less those packs' blobs. Its
        // packs must be the other's, or the remote keeps two copies of their blobs.
        let mut rng = cowtree_testutil::XorShift::new(0x9e37_79b9_7f4a_7c15);
        let mut next = move || rng.next_u64();
        for round in 0..200u64 {
            let n = 20 + next() % 200;
            let needed: Vec<(Hash, u64)> = (0..n)
                .map(|i| {
                    let size = match next() % 10 {
                        0 => LARGE + next() % LARGE,
                        1..=3 => LARGE / 2 + next() % (LARGE / 2),
                        _ => 1 + next() % (LARGE / 8),
                    };
                    (
                        Hash::of(&[round.to_le_bytes(), i.to_le_bytes()].concat()),
                        size,
                    )
                })
                .collect();
            let full = packs_of(&plan(&needed));
            for p in &full {
                let len: u64 = p
                    .iter()
                    .map(|h| needed.iter().find(|(x, _)| x == h).map_or(0, |(_, s)| *s))
                    .sum();
                assert!(len < PACK_TARGET, "round {round}: a pack of {len} bytes");
            }
            let listed: HashSet<Hash> = full
                .iter()
                .filter(|_| next() % 2 == 0)
                .flatten()
                .copied()
                .collect();
            let rest: Vec<(Hash, u64)> = needed
                .iter()
                .filter(|(h, _)| !listed.contains(h))
                .copied()
                .collect();
            for p in packs_of(&plan(&rest)) {
                assert!(
                    full.contains(&p),
                    "round {round}: a pack the full plan lacks"
                );
            }
        }
    }
}
