//! Pull: fetch snapshots, and the blobs the local store lacks, from a remote.
//!
//! A manifest is checked against its id when fetched, and as the store's decoder checks one
//! ([`each_encoded`], reading the blobs it names) before any blob is fetched, and held as it
//! came (its bytes, read in place); blobs are fetched with ranged reads into packs (neighbouring blobs in one request),
//! each hashed before it is written to the store's staging directory and renamed into
//! `blobs/`. Only when every blob a snapshot names is in the store, and synced, is the
//! manifest recorded. A pull killed at any point leaves blobs no manifest names (gc removes
//! them, a new pull uses them) and a staging directory gc removes.

use std::collections::{HashMap, HashSet};
use std::ffi::OsStr;
use std::io::Write;
use std::time::Instant;

use cowtree_fs::dir::Dir;
use cowtree_store::manifest::each_encoded;
use cowtree_store::{Hash, Store};
use futures::{StreamExt, TryStreamExt};

use crate::error::{Cleanup, Error, Result};
use crate::index::{self, Loc, RemoteIndex, pack_key};
use crate::remote::Remote;
use crate::{Progress, tracking};

/// Neighbouring blobs closer than this are fetched in one ranged read.
const GAP: u64 = 1 << 20;
/// Largest ranged read that joins several blobs.
const RANGE_MAX: u64 = 8 << 20;
/// Reads in flight (memory: at most this many ranges are held at once).
const IN_FLIGHT: usize = 8;

/// What a pull did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PullReport {
    /// The snapshots, in the order asked.
    pub ids: Vec<Hash>,
    /// Manifests fetched and recorded.
    pub snapshots_received: u64,
    /// Snapshots the store had already.
    pub snapshots_skipped: u64,
    /// Blobs fetched, and their bytes.
    pub blobs_received: u64,
    /// Bytes of the blobs fetched.
    pub bytes_received: u64,
    /// Blobs the store had already, and their bytes.
    pub blobs_skipped: u64,
    /// Bytes of the blobs skipped.
    pub bytes_skipped: u64,
    /// Local names set.
    pub names_set: Vec<(String, Hash)>,
    /// Local names that pointed at another snapshot and were moved, with where they pointed
    /// (also in `names_set`).
    pub names_moved: Vec<(String, Hash)>,
    /// For a partial pull: each snapshot asked for, the snapshot recorded for its part, and
    /// the part's files and bytes.
    pub parts: Vec<(Hash, Hash, u64, u64)>,
    /// Bytes read from the remote for the blobs fetched: the ranged reads' lengths (which
    /// take in the gaps between the blobs they join) and the single blobs' sizes.
    pub bytes_fetched: u64,
    /// Requests made.
    pub requests: u64,
    /// Wall time.
    pub elapsed_ms: u64,
}

/// A snapshot asked for, resolved on the remote.
struct Wanted {
    id: Hash,
    name: Option<(String, object_store::UpdateVersion)>,
}

/// One blob to fetch (48 bytes: 2,000,000 of them are 96 MB).
#[derive(Clone)]
struct Need {
    hash: Hash,
    size: u64,
    /// The index of the first snapshot fetched that names it (for messages).
    snapshot: u32,
}

enum Job {
    Range {
        pack: Hash,
        start: u64,
        end: u64,
        blobs: Vec<(Need, u64)>,
    },
    Single(Need),
}

/// How a pull treats the local names it sets.
#[derive(Debug, Clone, Default)]
pub struct PullOptions {
    /// Move a local name that points at another snapshot than the remote's name, even when
    /// this store did not set it from that remote name (see [`pull_with`]).
    pub force: bool,
    /// Pull only the part of each snapshot these globs select ([`crate::partial`]), recorded
    /// as a snapshot of its own (see [`PullReport::parts`]); no name is set. Empty: whole
    /// snapshots.
    pub paths: Vec<String>,
}

/// What a pull tells a caller that uses its snapshots as they arrive (a checkout that runs
/// beside it: [`pull_watched`]).
pub trait Watch: Sync {
    /// The manifests to record are fetched and checked, with each snapshot's id; `coming`
    /// are the blobs they name that the store lacks, to be fetched now (every other blob they
    /// name is in the store's `blobs/`). Called once, before any blob is fetched; not called
    /// when the store has every snapshot asked for.
    fn fetching(&self, manifests: &[(Hash, bytes::Bytes)], coming: &[Hash]);
    /// Blob `hash` is in the store's `blobs/` (placed by this pull, or by another writer
    /// first). Its data is not yet durable: the pull syncs it before it records a manifest.
    fn arrived(&self, hash: &Hash);
    /// The pull failed with `error` (for people). Called before it removes what it placed
    /// (after a full disk), which needs the store to itself: returns once the caller's own
    /// use of the store beside the pull has let go of it.
    fn stopped(&self, error: &str);
}

/// [`pull_with`] without `force`.
pub fn pull(
    store: &Store,
    remote: &Remote,
    what: &[String],
    progress: &Progress,
) -> Result<PullReport> {
    pull_with(store, remote, what, &PullOptions::default(), progress)
}

/// Pulls each of `what` (a full id, a unique id prefix of 8+ hex digits, or a name on the
/// remote; a name also sets the local name) from `remote` into `store`.
///
/// A local name is moved only as a fast-forward is in git: when it is new, or still points
/// where this store last saw the remote's name (set by an earlier pull or push of it). A
/// local name pointing at another snapshot (this host's own `snapshot --name`, a `tag`) is
/// [`Error::LocalName`] before anything is fetched, unless `opts.force`; a name moved is
/// reported in [`PullReport::names_moved`].
pub fn pull_with(
    store: &Store,
    remote: &Remote,
    what: &[String],
    opts: &PullOptions,
    progress: &Progress,
) -> Result<PullReport> {
    pull_inner(store, remote, what, opts, progress, None)
}

/// [`pull_with`], telling `watch` which blobs are coming and as each arrives in the store, so
/// that a checkout can write each file as soon as its blob is there. Blobs are fetched in the
/// order the manifests name them (by the first blob of each ranged read).
pub fn pull_watched(
    store: &Store,
    remote: &Remote,
    what: &[String],
    opts: &PullOptions,
    progress: &Progress,
    watch: &dyn Watch,
) -> Result<PullReport> {
    pull_inner(store, remote, what, opts, progress, Some(watch))
}

fn pull_inner(
    store: &Store,
    remote: &Remote,
    what: &[String],
    opts: &PullOptions,
    progress: &Progress,
    watch: Option<&dyn Watch>,
) -> Result<PullReport> {
    let start = Instant::now();
    let started = std::time::SystemTime::now();
    // With COWTREE_TIMING set, when each step ended, on stderr.
    let timing = std::env::var_os("COWTREE_TIMING").is_some();
    let lap = |what: &str| {
        if timing {
            eprintln!("timing: pull: {what} {:?}", start.elapsed());
        }
    };
    let mut report = PullReport::default();
    let placed = std::sync::Mutex::new(Vec::new());
    let lock = store.lock_shared()?;
    let pulled = remote.rt.block_on(async {
        if !remote.check_version(false).await? {
            return Err(Error::NotFound {
                remote: remote.name().to_string(),
                what: format!(
                    "it holds no snapshots (no {} version file)",
                    remote.key(crate::remote::VERSION_KEY)
                ),
                names: Vec::new(),
                more: 0,
            });
        }
        let mut wanted = Vec::new();
        for w in what {
            wanted.push(resolve(remote, w).await?);
        }
        // Local names the pull would move off another snapshot: refused before anything is
        // fetched, unless forced.
        let partial = !opts.paths.is_empty();
        if !partial {
            check_local_names(store, remote, &wanted, opts.force)?;
        }
        lap("resolved");
        let manifests = manifests_to_fetch(store, remote, &wanted, opts, &mut report).await?;
        lap("manifests fetched");
        let snapshots: Vec<Hash> = manifests.iter().map(|(id, _)| *id).collect();
        let needs = needs_of(store, remote, &manifests, &mut report)?;
        lap("needs listed");
        if let Some(w) = watch
            && !manifests.is_empty()
        {
            let coming: Vec<Hash> = needs.iter().map(|n| n.hash).collect();
            w.fetching(&manifests, &coming);
        }
        let fetching = Fetching {
            store,
            remote,
            snapshots: &snapshots,
            placed: &placed,
            watch,
            progress,
        };
        fetching.all(needs, &mut report).await?;
        lap("blobs fetched");
        // Blobs are durable before a manifest names them: those fetched now, and those an
        // earlier pull that failed left unsynced.
        if !manifests.is_empty() {
            crate::os::sync_blobs(store, &manifests).map_err(|e| Error::Io {
                path: store.root().join("blobs"),
                source: e,
            })?;
        }
        lap("blobs synced");
        record(store, remote, &manifests, &wanted, partial, &mut report)?;
        lap("recorded");
        Ok(())
    });
    drop(lock);
    if let Err(e) = pulled {
        if let Some(w) = watch {
            w.stopped(&e.to_string());
        }
        let placed = placed.into_inner().unwrap_or_default();
        return Err(after_disk_full(store, e, &placed, started));
    }
    report.requests = remote.requests();
    report.elapsed_ms = start.elapsed().as_millis() as u64;
    Ok(report)
}

/// What the blob fetches of one pull share.
struct Fetching<'a> {
    store: &'a Store,
    remote: &'a Remote,
    /// The snapshots fetched, which [`Need::snapshot`] indexes.
    snapshots: &'a [Hash],
    /// The blobs this pull renamed into `blobs/` (see [`Placing`]).
    placed: &'a std::sync::Mutex<Vec<(Hash, u64)>>,
    watch: Option<&'a dyn Watch>,
    progress: &'a Progress,
}

impl Fetching<'_> {
    /// Fetches `needs` into the store. A pack deleted (or repacked) by a `remote gc` between
    /// the read of its index and the read of its bytes is reported missing: the indexes are
    /// read again (they name the new packs) and what is still missing is fetched, a few times
    /// at most.
    async fn all(&self, mut needs: Vec<Need>, report: &mut PullReport) -> Result<()> {
        let mut attempt = 0;
        while !needs.is_empty() {
            attempt += 1;
            match self.round(needs.clone(), report).await {
                Ok(()) => needs.clear(),
                Err(Error::Missing { .. }) if attempt < 3 => needs.retain(|n| self.missing(n)),
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// One round: the fetches planned from the remote's indexes (held only while planning),
    /// [`IN_FLIGHT`] at once, into a staging directory of their own; stops at the first error.
    async fn round(&self, needs: Vec<Need>, report: &mut PullReport) -> Result<()> {
        let jobs = {
            let t = Instant::now();
            let have = index::load(self.store, self.remote).await?;
            if std::env::var_os("COWTREE_TIMING").is_some() {
                let n = have.pack_ids.len();
                eprintln!("timing: pull: {n} pack indexes read in {:?}", t.elapsed());
            }
            plan(self.remote, &have, needs, self.snapshots)?
        };
        let staging = self.store.staging("pull")?;
        let placing = &Placing {
            store: self.store,
            staging: staging.dir(),
            staging_path: staging.path(),
            placed: self.placed,
            snapshots: self.snapshots,
            watch: self.watch,
        };
        let (objects, bytes) = jobs.iter().fold((0, 0), |(o, b), j| match j {
            Job::Range { blobs, .. } => (o + blobs.len() as u64, b + blob_bytes(blobs)),
            Job::Single(n) => (o + 1, b + n.size),
        });
        report.bytes_fetched += jobs
            .iter()
            .map(|j| match j {
                Job::Range { start, end, .. } => end - start,
                Job::Single(n) => n.size,
            })
            .sum::<u64>();
        self.progress.plan(objects, bytes);
        let mut done = futures::stream::iter(jobs)
            .map(|job| placing.run_job(self.remote, job, self.progress))
            .buffer_unordered(IN_FLIGHT);
        while let Some(r) = done.next().await {
            let (n, b) = r?;
            report.blobs_received += n;
            report.bytes_received += b;
        }
        Ok(())
    }

    /// Whether `n` is still not in the store; one that another writer put there meanwhile has
    /// arrived, and is told so.
    fn missing(&self, n: &Need) -> bool {
        let missing = !crate::os::has_blob(self.store, &n.hash);
        if let (false, Some(w)) = (missing, self.watch) {
            w.arrived(&n.hash);
        }
        missing
    }
}

/// Refuses a pull that would move a local name off a snapshot this remote did not set it to
/// (unless forced), before anything is fetched.
fn check_local_names(store: &Store, remote: &Remote, wanted: &[Wanted], force: bool) -> Result<()> {
    for w in wanted {
        let Some((name, _)) = &w.name else { continue };
        let Some(local) = cowtree_store::refs::get(store, name)? else {
            continue;
        };
        if local == w.id || force {
            continue;
        }
        let seen = tracking::get(store, remote.config(), name)?.map(|(id, _)| id);
        if seen != Some(local) {
            return Err(Error::LocalName {
                remote: remote.name().to_string(),
                name: name.clone(),
                local,
                incoming: w.id,
            });
        }
    }
    Ok(())
}

/// The manifests to fetch and record, each with its id: the wanted snapshots this store lacks,
/// or, for a partial pull (`--path`), the part of each that the paths select.
async fn manifests_to_fetch(
    store: &Store,
    remote: &Remote,
    wanted: &[Wanted],
    opts: &PullOptions,
    report: &mut PullReport,
) -> Result<Vec<(Hash, bytes::Bytes)>> {
    let partial = !opts.paths.is_empty();
    let mut manifests: Vec<(Hash, bytes::Bytes)> = Vec::new();
    for w in wanted {
        report.ids.push(w.id);
        if partial {
            let full = if store.has_snapshot(&w.id)? {
                bytes::Bytes::from(store.read_snapshot(&w.id)?)
            } else {
                fetch_manifest(remote, w).await?
            };
            let key = || remote.key(&format!("snapshots/{}", w.id)).to_string();
            let part = crate::partial::select(&full, &opts.paths)
                .map_err(|e| Error::Corrupt {
                    remote: remote.name().to_string(),
                    key: key(),
                    detail: format!("manifest of snapshot {} refused: {e}", w.id),
                })?
                .ok_or_else(|| {
                    Error::Config(format!(
                        "remote {}: no path of snapshot {} matches {}",
                        remote.name(),
                        w.id,
                        opts.paths.join(" ")
                    ))
                })?;
            let id = part.id();
            report.parts.push((w.id, id, part.files(), part.bytes()));
            if store.has_snapshot(&id)? || manifests.iter().any(|(m, _)| *m == id) {
                report.snapshots_skipped += 1;
            } else {
                manifests.push((id, bytes::Bytes::from(part.encode())));
            }
            continue;
        }
        if store.has_snapshot(&w.id)? || manifests.iter().any(|(id, _)| *id == w.id) {
            report.snapshots_skipped += 1;
            continue;
        }
        manifests.push((w.id, fetch_manifest(remote, w).await?));
    }
    Ok(manifests)
}

/// The blobs the manifests name that the store lacks (each manifest checked before any blob
/// is fetched).
fn needs_of(
    store: &Store,
    remote: &Remote,
    manifests: &[(Hash, bytes::Bytes)],
    report: &mut PullReport,
) -> Result<Vec<Need>> {
    let mut needs: Vec<Need> = Vec::new();
    // The blobs seen in the manifests, only while they are read.
    let mut seen: HashSet<Hash> = HashSet::new();
    for (index, (id, m)) in (0u32..).zip(manifests) {
        // Checked here, before any blob is fetched (and again as it is recorded).
        let checked = each_encoded(m, |e| {
            let Some(h) = e.hash() else { return };
            if !seen.insert(h) {
                return;
            }
            if crate::os::has_blob(store, &h) {
                report.blobs_skipped += 1;
                report.bytes_skipped += e.size();
                return;
            }
            needs.push(Need {
                hash: h,
                size: e.size(),
                snapshot: index,
            });
        });
        checked.map_err(|e| Error::Corrupt {
            remote: remote.name().to_string(),
            key: remote.key(&format!("snapshots/{id}")).to_string(),
            detail: format!("manifest of snapshot {id} refused: {e}"),
        })?;
    }
    drop(seen);
    Ok(needs)
}

/// Records the fetched manifests, then sets the names pulled (and their tracking).
fn record(
    store: &Store,
    remote: &Remote,
    manifests: &[(Hash, bytes::Bytes)],
    wanted: &[Wanted],
    partial: bool,
    report: &mut PullReport,
) -> Result<()> {
    for (id, m) in manifests {
        // The bytes fetched, which hash to `id` (checked when fetched).
        let saved = store.save_encoded(m, &format!("snapshot {id}"))?;
        if saved != *id {
            return Err(Error::Corrupt {
                remote: remote.name().to_string(),
                key: remote.key(&format!("snapshots/{id}")).to_string(),
                detail: format!("the manifest recorded is {saved}, not the one fetched"),
            });
        }
        report.snapshots_received += 1;
    }
    for w in wanted.iter().filter(|_| !partial) {
        if let Some((name, version)) = &w.name {
            if let Some(old) = cowtree_store::refs::get(store, name)?
                && old != w.id
            {
                report.names_moved.push((name.clone(), old));
            }
            cowtree_store::refs::set(store, name, &w.id)?;
            tracking::set(store, remote.config(), name, &w.id, version)?;
            report.names_set.push((name.clone(), w.id));
        }
    }
    Ok(())
}

fn blob_bytes(blobs: &[(Need, u64)]) -> u64 {
    blobs.iter().map(|(n, _)| n.size).sum()
}

/// The names on `remote`, sorted: the first [`NAMES_SHOWN`], and how many more there are.
async fn names_on(remote: &Remote) -> Result<(Vec<String>, usize)> {
    let mut names: Vec<String> = remote
        .list("names/")
        .await?
        .into_iter()
        .filter_map(|(k, _)| k.strip_prefix("names/").map(str::to_string))
        .filter(|n| cowtree_store::refs::validate_name(n).is_ok())
        .collect();
    names.sort();
    let more = names.len().saturating_sub(NAMES_SHOWN);
    names.truncate(NAMES_SHOWN);
    Ok((names, more))
}

/// How many of the remote's names a "not found" lists.
const NAMES_SHOWN: usize = 20;

/// "Not found on the remote", with the names it does have.
async fn not_found(remote: &Remote, what: String) -> Error {
    match names_on(remote).await {
        Ok((names, more)) => Error::NotFound {
            remote: remote.name().to_string(),
            what,
            names,
            more,
        },
        Err(e) => e,
    }
}

/// A full id, a name on the remote, or a unique id prefix.
async fn resolve(remote: &Remote, what: &str) -> Result<Wanted> {
    if let Some(id) = Hash::from_hex(what) {
        return Ok(Wanted { id, name: None });
    }
    if cowtree_store::refs::validate_name(what).is_ok()
        && let Some(state) = remote.get_name(&format!("names/{what}")).await?
    {
        let id = Hash::from_hex(state.body.trim()).ok_or_else(|| Error::Corrupt {
            remote: remote.name().to_string(),
            key: remote.key(&format!("names/{what}")).to_string(),
            detail: format!("not a snapshot id: {:?}", state.body.trim()),
        })?;
        return Ok(Wanted {
            id,
            name: Some((what.to_string(), state.version)),
        });
    }
    if !cowtree_store::hash::is_id_prefix(what) {
        return Err(not_found(remote, format!("no snapshot named {what:?}")).await);
    }
    let lower = what.to_ascii_lowercase();
    let found: Vec<Hash> = remote
        .list("snapshots/")
        .await?
        .into_iter()
        .filter_map(|(k, _)| k.strip_prefix("snapshots/").and_then(Hash::from_hex))
        .filter(|id| id.to_hex().starts_with(&lower))
        .collect();
    match found.as_slice() {
        [one] => Ok(Wanted {
            id: *one,
            name: None,
        }),
        [] => Err(not_found(
            remote,
            format!("no snapshot named {what:?} and no snapshot id starts with it"),
        )
        .await),
        _ => Err(Error::Config(format!(
            "remote {}: snapshot prefix {what} is ambiguous",
            remote.name()
        ))),
    }
}

/// The bytes of `w`'s manifest, checked to hash to its id (not decoded: see [`each_encoded`]
/// in `pull`): not there is "not found" for an id asked for, and missing data (the remote is
/// damaged) for one a remote name points at.
async fn fetch_manifest(remote: &Remote, w: &Wanted) -> Result<bytes::Bytes> {
    let id = &w.id;
    let rel = format!("snapshots/{id}");
    let Some(bytes) = remote.get(&rel).await? else {
        return Err(match &w.name {
            None => {
                not_found(
                    remote,
                    format!("no snapshot {id} (no {})", remote.key(&rel)),
                )
                .await
            }
            Some((name, _)) => Error::Missing {
                remote: remote.name().to_string(),
                what: format!(
                    "name {name:?} points at snapshot {id}, which is not there (no {})",
                    remote.key(&rel)
                ),
            },
        });
    };
    let corrupt = |detail: String| Error::Corrupt {
        remote: remote.name().to_string(),
        key: remote.key(&rel).to_string(),
        detail,
    };
    if Hash::of(&bytes) != *id {
        return Err(corrupt(format!(
            "the manifest of snapshot {id} does not hash to its id"
        )));
    }
    Ok(bytes)
}

/// The snapshot a [`Need`] came from.
fn snapshot_of(snapshots: &[Hash], n: &Need) -> String {
    snapshots
        .get(n.snapshot as usize)
        .map_or_else(|| "?".to_string(), Hash::to_string)
}

/// Groups the blobs to fetch: by pack, in offset order, neighbours joined into one range;
/// the jobs in the order of the first blob each fetches in `needs` (the manifests' order).
/// `snapshots` are the snapshots the needs' indexes name.
fn plan(
    remote: &Remote,
    have: &RemoteIndex,
    needs: Vec<Need>,
    snapshots: &[Hash],
) -> Result<Vec<Job>> {
    // Each need with its place in the manifests' order, so that the jobs run in that order
    // (a checkout reading the snapshot as it arrives writes files in that order).
    let mut by_pack: HashMap<Hash, Vec<(Need, u64, usize)>> = HashMap::new();
    let mut jobs: Vec<(usize, Job)> = Vec::new();
    for (at, n) in needs.into_iter().enumerate() {
        let corrupt = |key: String, len: u64| Error::Corrupt {
            remote: remote.name().to_string(),
            key,
            detail: format!(
                "blob {} of snapshot {} is {} bytes there, {} in the manifest",
                n.hash,
                snapshot_of(snapshots, &n),
                len,
                n.size
            ),
        };
        match have.blobs.get(&n.hash) {
            Some(Loc::Packed { pack, offset, len }) => {
                let Some(pack) = have.pack_id(*pack) else {
                    return Err(Error::Corrupt {
                        remote: remote.name().to_string(),
                        key: remote.key("packs/").to_string(),
                        detail: format!("blob {}: no pack of its index's number", n.hash),
                    });
                };
                if *len != n.size {
                    return Err(corrupt(remote.key(&pack_key(&pack)).to_string(), *len));
                }
                by_pack.entry(pack).or_default().push((n, *offset, at));
            }
            Some(Loc::Single { len }) => {
                if *len != n.size {
                    return Err(corrupt(
                        remote.key(&format!("blobs/{}", n.hash)).to_string(),
                        *len,
                    ));
                }
                jobs.push((at, Job::Single(n)));
            }
            None => {
                return Err(Error::Missing {
                    remote: remote.name().to_string(),
                    what: format!(
                        "blob {} of snapshot {} is in no pack index and not at {} \
                         (a pack or its index is missing)",
                        n.hash,
                        snapshot_of(snapshots, &n),
                        remote.key(&format!("blobs/{}", n.hash))
                    ),
                });
            }
        }
    }
    for (pack, mut blobs) in by_pack {
        blobs.sort_by_key(|(_, off, _)| *off);
        for r in join(blobs) {
            let job = Job::Range {
                pack,
                start: r.start,
                end: r.end,
                blobs: r.blobs,
            };
            jobs.push((r.first, job));
        }
    }
    jobs.sort_by_key(|(first, _)| *first);
    Ok(jobs.into_iter().map(|(_, job)| job).collect())
}

/// One ranged read of a pack: `start..end`, the blobs in it (with their offsets), and the
/// first of their places in the manifests' order.
struct Joined {
    start: u64,
    end: u64,
    first: usize,
    blobs: Vec<(Need, u64)>,
}

/// Joins the blobs of one pack (sorted by offset; each with its place in the manifests'
/// order) into ranged reads: a neighbour closer than [`GAP`] joins the read, with what lies
/// between, unless the read would pass [`RANGE_MAX`].
fn join(blobs: Vec<(Need, u64, usize)>) -> Vec<Joined> {
    let mut out: Vec<Joined> = Vec::new();
    for (n, off, at) in blobs {
        let b_end = off + n.size;
        match out.last_mut() {
            Some(r) if off <= r.end + GAP && b_end - r.start <= RANGE_MAX => {
                r.end = r.end.max(b_end);
                r.first = r.first.min(at);
                r.blobs.push((n, off));
            }
            _ => out.push(Joined {
                start: off,
                end: b_end,
                first: at,
                blobs: vec![(n, off)],
            }),
        }
    }
    out
}

/// Where fetched blobs are written (the pull's staging directory) and what this pull placed in
/// `blobs/`: each is hashed before it is written, staged, and renamed into `blobs/` under its
/// name.
struct Placing<'a> {
    store: &'a Store,
    staging: &'a Dir,
    staging_path: &'a std::path::Path,
    /// The blobs this pull renamed into `blobs/` (not those another writer put there first),
    /// with their sizes: what a failed pull removes (see [`Placed`]).
    placed: &'a std::sync::Mutex<Vec<(Hash, u64)>>,
    /// The snapshots fetched, which [`Need::snapshot`] indexes.
    snapshots: &'a [Hash],
    /// Told as each blob is in `blobs/`.
    watch: Option<&'a dyn Watch>,
}

impl Placing<'_> {
    fn staged_io(&self, tmp: &str, e: std::io::Error) -> Error {
        Error::Io {
            path: self.staging_path.join(tmp),
            source: e,
        }
    }

    fn create_staged(&self, tmp: &str) -> Result<std::fs::File> {
        crate::os::create_staged(self.staging, tmp).map_err(|e| self.staged_io(tmp, e))
    }

    /// Writes a verified blob to staging and renames it into `blobs/`.
    fn place(
        &self,
        hash: &Hash,
        size: u64,
        write: impl FnOnce(&mut std::fs::File) -> std::io::Result<()>,
    ) -> Result<()> {
        let tmp = staging_name(hash);
        let mut f = self.create_staged(&tmp)?;
        write(&mut f).map_err(|e| self.staged_io(&tmp, e))?;
        crate::os::seal_staged(&f).map_err(|e| self.staged_io(&tmp, e))?;
        drop(f);
        self.link_in(&tmp, hash, size)
    }

    fn arrived(&self, hash: &Hash) {
        if let Some(w) = self.watch {
            w.arrived(hash);
        }
    }

    /// Renames a staged blob into `blobs/`; when the blob is there already, drops the staged
    /// one.
    fn link_in(&self, tmp: &str, hash: &Hash, size: u64) -> Result<()> {
        let (store, staging) = (self.store, self.staging);
        let io = |e: std::io::Error| Error::Io {
            path: store.blob_path(hash),
            source: e,
        };
        let mut made_fanout = false;
        loop {
            match crate::os::rename_blob_in(staging, tmp, store, hash) {
                Ok(()) => {
                    if let Ok(mut p) = self.placed.lock() {
                        p.push((*hash, size));
                    }
                    self.arrived(hash);
                    return Ok(());
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    staging.remove_file(OsStr::new(tmp)).map_err(io)?;
                    self.arrived(hash);
                    return Ok(());
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound && !made_fanout => {
                    made_fanout = true;
                    let fan = &hash.to_hex()[..2];
                    match store.blobs().create_dir(OsStr::new(fan), 0o755) {
                        Ok(()) => {}
                        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                        Err(e) => return Err(io(e)),
                    }
                }
                Err(e) => return Err(io(e)),
            }
        }
    }

    /// Fetches one range or single blob; returns (blobs, bytes) placed.
    async fn run_job(&self, remote: &Remote, job: Job, progress: &Progress) -> Result<(u64, u64)> {
        match job {
            Job::Range {
                pack,
                start,
                end,
                blobs,
            } => {
                let key = pack_key(&pack);
                let data = if end > start {
                    remote.get_range(&key, start..end).await?
                } else {
                    bytes::Bytes::new()
                };
                let mut bytes = 0;
                for (n, off) in &blobs {
                    let at = (off - start) as usize;
                    let blob = &data[at..at + n.size as usize];
                    if Hash::of(blob) != n.hash {
                        return Err(Error::Corrupt {
                            remote: remote.name().to_string(),
                            key: remote.key(&key).to_string(),
                            detail: format!(
                                "blob {} of snapshot {} at offset {off} does not match its hash",
                                n.hash,
                                snapshot_of(self.snapshots, n)
                            ),
                        });
                    }
                    self.place(&n.hash, n.size, |f| f.write_all(blob))?;
                    bytes += n.size;
                    progress.add(1, n.size);
                }
                Ok((blobs.len() as u64, bytes))
            }
            Job::Single(n) => {
                let rel = format!("blobs/{}", n.hash);
                let mut stream = remote.get_stream(&rel).await?;
                let tmp = staging_name(&n.hash);
                let mut f = self.create_staged(&tmp)?;
                let mut hasher = blake3::Hasher::new();
                let mut got = 0u64;
                while let Some(chunk) = stream.try_next().await.map_err(|e| remote.fail(&rel, e))? {
                    hasher.update(&chunk);
                    got += chunk.len() as u64;
                    f.write_all(&chunk).map_err(|e| self.staged_io(&tmp, e))?;
                    progress.add(0, chunk.len() as u64);
                }
                drop(f);
                if got != n.size || Hash::from_bytes(*hasher.finalize().as_bytes()) != n.hash {
                    let _ = self.staging.remove_file(OsStr::new(&tmp));
                    return Err(Error::Corrupt {
                        remote: remote.name().to_string(),
                        key: remote.key(&rel).to_string(),
                        detail: format!(
                            "blob {} of snapshot {} does not match its hash",
                            n.hash,
                            snapshot_of(self.snapshots, &n)
                        ),
                    });
                }
                self.link_in(&tmp, &n.hash, n.size)?;
                progress.add(1, 0);
                Ok((1, n.size))
            }
        }
    }
}

/// `e`, the error that stopped a pull that had placed `placed` in `blobs/` (since `started`);
/// when it is a full disk (ENOSPC, EDQUOT), those of them no snapshot names are removed (the
/// disk would stay full for nothing), or, when another process holds the store, the error says
/// how much `cowtree gc` frees. Another error leaves them for the next pull to use.
fn after_disk_full(
    store: &Store,
    e: Error,
    placed: &[(Hash, u64)],
    started: std::time::SystemTime,
) -> Error {
    if placed.is_empty() || !is_disk_full(&e) {
        return e;
    }
    let bytes = placed.iter().map(|(_, n)| n).sum();
    let hashes: Vec<Hash> = placed.iter().map(|(h, _)| *h).collect();
    let cleanup = match cowtree_store::gc::remove_unused(store, &hashes, started) {
        Ok(Some(r)) => Cleanup::Removed {
            blobs: r.blobs,
            bytes: r.bytes,
        },
        Ok(None) => Cleanup::Left {
            blobs: placed.len() as u64,
            bytes,
            why: "another cowtree is using the store".into(),
            store: store.root().to_path_buf(),
        },
        Err(err) => Cleanup::Left {
            blobs: placed.len() as u64,
            bytes,
            why: err.to_string(),
            store: store.root().to_path_buf(),
        },
    };
    Error::DiskFull {
        source: Box::new(e),
        cleanup,
    }
}

/// True when `e` is a full disk or an exhausted quota.
fn is_disk_full(e: &Error) -> bool {
    let io = match e {
        Error::Io { source, .. } => Some(source),
        Error::Store(s) => s.io_error(),
        _ => None,
    };
    io.is_some_and(crate::os::is_disk_full)
}

fn staging_name(h: &Hash) -> String {
    format!("{h}.blob")
}

#[cfg(test)]
#[path = "pull_tests.rs"]
mod tests;
