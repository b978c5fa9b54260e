//! Lock objects: the discipline that lets `remote gc` (and `remote forget`, `remote rm`)
//! delete from a remote that other hosts push to at the same time.
//!
//! Every writer creates an object `locks/<kind>-<host>-<pid>-<random>` (`If-None-Match: *`),
//! then lists `locks/`. A push (`push` locks, shared) goes on when the listing shows no live
//! exclusive lock; else it deletes its own and waits. An exclusive operation (`gc`, `forget`,
//! `rm`) goes on when the listing shows no other live lock; when it shows only pushes, it
//! keeps its lock (so that every push that starts later sees it and waits) and lists again
//! until the pushes are gone; when it shows another exclusive lock, it deletes its own and
//! waits. Both sides write before they list, so on a server whose listings show every
//! object written before the listing began (S3 since 2020, SeaweedFS, a directory), one of any
//! two writers sees the other: a push and a gc never both go on. This is restic's scheme.
//!
//! Liveness: a holder rewrites its lock every [`LockTiming::refresh`] (conditionally on the
//! version it wrote: a lock another host deleted as stale is not brought back). A lock is
//! stale, and ignored, when the server's Last-Modified of it is older than
//! [`LockTiming::stale`] by the server's own clock (the Last-Modified of the lock just
//! written): no host's clock is compared with another's. A lock of this host (same host name
//! and boot) whose process is gone is stale at once. A holder whose last successful refresh
//! began more than half the stale time ago (by its own monotonic clock) no longer trusts its
//! lock and stops before it commits anything ([`Held::check`]).

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use object_store::{PutMode, PutOptions, PutPayload, UpdateVersion};

use crate::error::{Error, Result};
use crate::remote::{Handle, Listed, Remote};

/// The directory of lock objects under the remote's prefix.
pub const LOCKS: &str = "locks/";

/// What a lock is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A push: shared with other pushes, excluded by the others.
    Push,
    /// `remote gc`: exclusive.
    Gc,
    /// `remote forget`: exclusive.
    Forget,
    /// `remote rm` of snapshots: exclusive.
    Rm,
    /// A dry run, which only needs the server's clock: excludes nothing, waits for nothing.
    Look,
}

impl Kind {
    /// The word in the lock's key.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Push => "push",
            Kind::Gc => "gc",
            Kind::Forget => "forget",
            Kind::Rm => "rm",
            Kind::Look => "look",
        }
    }

    fn parse(s: &str) -> Option<Kind> {
        Some(match s {
            "push" => Kind::Push,
            "gc" => Kind::Gc,
            "forget" => Kind::Forget,
            "rm" => Kind::Rm,
            "look" => Kind::Look,
            _ => return None,
        })
    }

    /// Excludes every other lock (but a look).
    pub fn exclusive(self) -> bool {
        !matches!(self, Kind::Push | Kind::Look)
    }
}

/// How often a lock is refreshed, when it is stale, how long a writer waits for one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LockTiming {
    /// A held lock is rewritten this often.
    pub refresh: Duration,
    /// A lock not rewritten for this long (server time) is stale.
    pub stale: Duration,
    /// How long to wait for the locks in the way before giving up.
    pub wait: Duration,
    /// A pause between writing the lock and listing `locks/`, for servers whose listings lag
    /// behind writes a little.
    pub settle: Duration,
}

impl Default for LockTiming {
    fn default() -> LockTiming {
        LockTiming {
            refresh: Duration::from_secs(60),
            stale: Duration::from_secs(600),
            wait: Duration::from_secs(1800),
            settle: Duration::from_millis(200),
        }
    }
}

impl LockTiming {
    fn poll(&self) -> Duration {
        (self.refresh / 4).clamp(Duration::from_millis(50), Duration::from_secs(2))
    }
}

/// This host, as lock keys name it: the first 16 hex digits of BLAKE3 of its host name and
/// boot id (a pid means something only within one boot).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostId {
    /// The 16 hex digits.
    pub id: String,
    /// The host name.
    pub hostname: String,
    /// This process.
    pub pid: u32,
}

impl HostId {
    /// This host and process.
    pub fn here() -> HostId {
        let read = |p: &str| {
            std::fs::read_to_string(p)
                .map(|s| s.trim().to_string())
                .unwrap_or_default()
        };
        let hostname = read("/proc/sys/kernel/hostname");
        let boot = read("/proc/sys/kernel/random/boot_id");
        let id = blake3::hash(format!("{hostname}\0{boot}").as_bytes()).to_hex()[..16].to_string();
        HostId {
            id,
            hostname,
            pid: std::process::id(),
        }
    }
}

/// A lock as a listing shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    /// Its key relative to the prefix.
    pub rel: String,
    /// Its kind; `None` for a key this version does not know (treated as exclusive).
    pub kind: Option<Kind>,
    /// The host id in its key.
    pub host: String,
    /// The pid in its key.
    pub pid: u32,
    /// Last-Modified, server time, ms.
    pub modified_ms: i64,
}

impl Seen {
    /// Reads a listed lock's key.
    pub fn of(l: &Listed) -> Seen {
        let name = l.rel.strip_prefix(LOCKS).unwrap_or(&l.rel);
        let mut parts = name.splitn(4, '-');
        let kind = parts.next().and_then(Kind::parse);
        let host = parts.next().unwrap_or("").to_string();
        let pid = parts.next().and_then(|p| p.parse().ok()).unwrap_or(0);
        Seen {
            rel: l.rel.clone(),
            kind,
            host,
            pid,
            modified_ms: l.modified_ms,
        }
    }

    fn exclusive(&self) -> bool {
        self.kind.is_none_or(Kind::exclusive)
    }

    /// Said in messages: "gc lock of host H pid P, 12 s old".
    pub fn describe(&self, now_ms: i64) -> String {
        format!(
            "{} lock {} ({} s old by the server's clock)",
            self.kind.map_or("unknown", Kind::as_str),
            self.rel,
            (now_ms - self.modified_ms).max(0) / 1000
        )
    }
}

/// Whether `lock` is stale at server time `now_ms`: not rewritten within `stale`, or held by a
/// process of this host that is gone (`alive` tells).
pub fn is_stale(
    lock: &Seen,
    now_ms: i64,
    stale: Duration,
    me: &HostId,
    alive: impl Fn(u32) -> bool,
) -> bool {
    if now_ms.saturating_sub(lock.modified_ms) > stale.as_millis() as i64 {
        return true;
    }
    lock.host == me.id && lock.pid != me.pid && lock.pid != 0 && !alive(lock.pid)
}

/// Whether a live lock `other` keeps a writer of `kind` from going on.
pub fn conflicts(kind: Kind, other: &Seen) -> bool {
    kind != Kind::Look && other.kind != Some(Kind::Look) && (kind.exclusive() || other.exclusive())
}

/// True when process `pid` exists (a process of another user counts).
pub fn pid_alive(pid: u32) -> bool {
    cowtree_fs::process::pid_exists(pid)
}

/// A lock this process holds; refreshed on the remote's runtime until released.
pub struct Held {
    rel: String,
    kind: Kind,
    state: Arc<Mutex<State>>,
    task: tokio::task::JoinHandle<()>,
    stale: Duration,
    /// The server's clock when the lock was taken (the Last-Modified of the lock as the
    /// listing that granted it showed it), ms.
    pub server_now_ms: i64,
    /// The locks that were stale when it was taken (gc removes them).
    pub stale_seen: Vec<Seen>,
}

struct State {
    /// When the last successful write of the lock began.
    last_ok: Instant,
    version: UpdateVersion,
    /// Why the lock is lost, once it is.
    lost: Option<String>,
}

impl Held {
    /// The lock's key.
    pub fn rel(&self) -> &str {
        &self.rel
    }

    /// Ok while the lock can be trusted: not found lost by a refresh, and refreshed (by this
    /// process's monotonic clock) within half the stale time. Called before each step that
    /// commits or deletes anything.
    pub fn check(&self, remote: &Remote) -> Result<()> {
        let s = self
            .state
            .lock()
            .map_err(|_| Error::Config("internal error: lock state poisoned".into()))?;
        let why = match &s.lost {
            Some(why) => why.clone(),
            None if s.last_ok.elapsed() > self.stale / 2 => format!(
                "it was last rewritten {} s ago, and another host may take a lock older than \
                 {} s for stale",
                s.last_ok.elapsed().as_secs(),
                self.stale.as_secs()
            ),
            None => return Ok(()),
        };
        Err(Error::LockLost {
            remote: remote.name().to_string(),
            key: remote.key(&self.rel).to_string(),
            kind: self.kind.as_str(),
            why,
        })
    }

    /// Stops refreshing and deletes the lock (a failure to delete leaves a lock that turns
    /// stale).
    pub async fn release(self, remote: &Remote) {
        self.task.abort();
        let _ = remote.delete_all(std::slice::from_ref(&self.rel)).await;
    }
}

/// A new lock key of `kind` for this host.
fn new_key(kind: Kind, me: &HostId) -> String {
    use std::sync::atomic::AtomicU64;
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let seed = format!(
        "{}-{}-{nanos}-{}-{:p}",
        me.id,
        me.pid,
        N.fetch_add(1, Ordering::Relaxed),
        &nanos
    );
    let rand = &blake3::hash(seed.as_bytes()).to_hex()[..16];
    format!("{LOCKS}{}-{}-{}-{rand}", kind.as_str(), me.id, me.pid)
}

fn body(kind: Kind, me: &HostId) -> Bytes {
    let started = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    // The writer's clock is for people reading the lock; nothing decides by it.
    Bytes::from(
        serde_json::json!({"kind": kind.as_str(), "hostname": me.hostname, "pid": me.pid,
                           "started_unix_by_writer": started})
        .to_string(),
    )
}

/// Takes a lock of `kind` on `remote`, waiting up to `timing.wait` for the locks in its way;
/// `on_wait` is told once what it waits for.
pub async fn acquire(
    remote: &Remote,
    kind: Kind,
    timing: &LockTiming,
    on_wait: &(dyn Fn(&str) + Sync),
) -> Result<Held> {
    let me = HostId::here();
    let start = Instant::now();
    let mut told = false;
    let mut tell = |what: String| {
        if !told {
            on_wait(&what);
            told = true;
        }
    };
    loop {
        let rel = new_key(kind, &me);
        let written_at = Instant::now();
        let version = create(remote, &rel, body(kind, &me)).await?;
        if !timing.settle.is_zero() {
            tokio::time::sleep(timing.settle).await;
        }
        let (locks, now_ms) = list_after_write(remote, &rel).await?;
        let live: Vec<&Seen> = locks
            .iter()
            .filter(|l| l.rel != rel && !is_stale(l, now_ms, timing.stale, &me, pid_alive))
            .collect();
        let stale_seen: Vec<Seen> = locks
            .iter()
            .filter(|l| l.rel != rel && is_stale(l, now_ms, timing.stale, &me, pid_alive))
            .cloned()
            .collect();
        let excl: Vec<&&Seen> = live.iter().filter(|l| l.exclusive()).collect();
        let blocking = live.iter().any(|l| conflicts(kind, l));
        if !blocking {
            return Ok(start_held(
                remote, rel, kind, version, written_at, now_ms, stale_seen, timing,
            ));
        }
        if kind.exclusive() && excl.is_empty() {
            // Only pushes: keep the lock (every push that starts now sees it and waits) and
            // wait for those that started before to finish.
            let mut held = start_held(
                remote, rel, kind, version, written_at, now_ms, stale_seen, timing,
            );
            tell(format!(
                "waiting for {} push(es) to finish: {}",
                live.len(),
                live.first().map(|l| l.describe(now_ms)).unwrap_or_default()
            ));
            loop {
                tokio::time::sleep(jitter(timing.poll())).await;
                held.check(remote)?;
                let (locks, now_ms) = list_after_write(remote, &held.rel).await?;
                let pushes: Vec<&Seen> = locks
                    .iter()
                    .filter(|l| {
                        l.kind == Some(Kind::Push)
                            && !is_stale(l, now_ms, timing.stale, &me, pid_alive)
                    })
                    .collect();
                if pushes.is_empty() {
                    held.server_now_ms = now_ms;
                    return Ok(held);
                }
                if start.elapsed() > timing.wait {
                    let what = pushes[0].describe(now_ms);
                    held.release(remote).await;
                    return Err(locked(remote, kind, what, timing));
                }
            }
        }
        remote.delete_all(std::slice::from_ref(&rel)).await?;
        let what = excl
            .first()
            .map(|l| l.describe(now_ms))
            .or_else(|| live.first().map(|l| l.describe(now_ms)))
            .unwrap_or_default();
        if start.elapsed() > timing.wait {
            return Err(locked(remote, kind, what, timing));
        }
        tell(format!("waiting for {what}"));
        tokio::time::sleep(jitter(timing.poll())).await;
    }
}

fn locked(remote: &Remote, kind: Kind, what: String, timing: &LockTiming) -> Error {
    Error::Locked {
        remote: remote.name().to_string(),
        kind: kind.as_str(),
        holder: what,
        waited: timing.wait.as_secs(),
        stale: timing.stale.as_secs(),
    }
}

/// `d` and up to half of it again, so that two writers that back off from each other do not
/// meet again.
fn jitter(d: Duration) -> Duration {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|t| t.subsec_nanos())
        .unwrap_or(0);
    let frac = u64::from(blake3::hash(&nanos.to_le_bytes()).as_bytes()[0]) as f64 / 512.0;
    d + d.mul_f64(frac)
}

#[allow(clippy::too_many_arguments)]
fn start_held(
    remote: &Remote,
    rel: String,
    kind: Kind,
    version: UpdateVersion,
    written_at: Instant,
    now_ms: i64,
    stale_seen: Vec<Seen>,
    timing: &LockTiming,
) -> Held {
    let state = Arc::new(Mutex::new(State {
        last_ok: written_at,
        version,
        lost: None,
    }));
    let task = tokio::spawn(refresher(
        remote.handle(),
        remote.key(&rel),
        Arc::clone(&state),
        timing.refresh,
    ));
    Held {
        rel,
        kind,
        state,
        task,
        stale: timing.stale,
        server_now_ms: now_ms,
        stale_seen,
    }
}

/// Creates the lock object; returns its version.
async fn create(remote: &Remote, rel: &str, body: Bytes) -> Result<UpdateVersion> {
    let h = remote.handle();
    let key = remote.key(rel);
    h.requests.fetch_add(1, Ordering::Relaxed);
    let opts = PutOptions {
        mode: PutMode::Create,
        ..Default::default()
    };
    match h
        .store
        .put_opts(&key, PutPayload::from_bytes(body), opts)
        .await
    {
        Ok(r) => Ok(UpdateVersion {
            e_tag: r.e_tag,
            version: r.version,
        }),
        Err(e) => Err(remote.fail(rel, e)),
    }
}

/// Lists `locks/`, which must show `mine` (just written); returns the locks and the server's
/// clock (the Last-Modified of `mine`). A server whose listing does not show an object
/// written before the listing began cannot keep the lock discipline: after a few tries that
/// is an error.
async fn list_after_write(remote: &Remote, mine: &str) -> Result<(Vec<Seen>, i64)> {
    for attempt in 0..5u32 {
        let listed = remote.list_meta(LOCKS).await?;
        if let Some(m) = listed.iter().find(|l| l.rel == mine) {
            let now = m.modified_ms;
            return Ok((listed.iter().map(Seen::of).collect(), now));
        }
        tokio::time::sleep(Duration::from_millis(200 << attempt)).await;
    }
    Err(Error::Inconsistent {
        remote: remote.name().to_string(),
        detail: format!(
            "a listing of {} does not show the lock {} written before it, after 5 tries: \
             this server's listings lag behind its writes, and locks cannot keep a gc from \
             deleting what a push is writing",
            remote.key(LOCKS),
            remote.key(mine)
        ),
    })
}

/// Rewrites the lock every `every` until aborted or lost.
async fn refresher(
    h: Handle,
    key: object_store::path::Path,
    state: Arc<Mutex<State>>,
    every: Duration,
) {
    loop {
        tokio::time::sleep(every).await;
        let began = Instant::now();
        let Ok(version) = state.lock().map(|s| s.version.clone()) else {
            return;
        };
        let outcome = rewrite(&h, &key, version).await;
        let Ok(mut s) = state.lock() else { return };
        match outcome {
            Ok(v) => {
                s.version = v;
                s.last_ok = began;
            }
            Err(Some(why)) => {
                s.lost = Some(why);
                return;
            }
            // A failed request: tried again at the next turn; `Held::check` stops the holder
            // if that goes on too long.
            Err(None) => {}
        }
    }
}

/// One rewrite of a lock: its new version, or `Err(Some(why))` when it is gone (deleted by
/// another host that took it for stale), `Err(None)` when the request failed.
async fn rewrite(
    h: &Handle,
    key: &object_store::path::Path,
    version: UpdateVersion,
) -> std::result::Result<UpdateVersion, Option<String>> {
    let gone = || Some("another host deleted it as stale".to_string());
    let payload = PutPayload::from_static(b"{\"refreshed\":true}");
    h.requests.fetch_add(1, Ordering::Relaxed);
    if let Some(root) = &h.file_root {
        // No conditional write on a directory: the check and the write under a lock file.
        let _lock = crate::remote::lock_file(&root.join("locks.lock")).map_err(|_| None)?;
        h.requests.fetch_add(2, Ordering::Relaxed);
        match h.store.head(key).await {
            Ok(_) => {}
            Err(object_store::Error::NotFound { .. }) => return Err(gone()),
            Err(_) => return Err(None),
        }
        return match h.store.put(key, payload).await {
            Ok(r) => Ok(UpdateVersion {
                e_tag: r.e_tag,
                version: r.version,
            }),
            Err(_) => Err(None),
        };
    }
    let opts = PutOptions {
        mode: PutMode::Update(version),
        ..Default::default()
    };
    match h.store.put_opts(key, payload, opts).await {
        Ok(r) => Ok(UpdateVersion {
            e_tag: r.e_tag,
            version: r.version,
        }),
        Err(object_store::Error::Precondition { .. } | object_store::Error::NotFound { .. }) => {
            Err(gone())
        }
        Err(_) => Err(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn me() -> HostId {
        HostId {
            id: "aaaaaaaaaaaaaaaa".into(),
            hostname: "h".into(),
            pid: 100,
        }
    }

    fn seen(kind: &str, host: &str, pid: u32, modified_ms: i64) -> Seen {
        Seen::of(&Listed {
            rel: format!("locks/{kind}-{host}-{pid}-0123456789abcdef"),
            size: 10,
            modified_ms,
        })
    }

    #[test]
    fn a_lock_key_reads_back_as_its_kind_host_and_pid() {
        let me = me();
        let key = new_key(Kind::Gc, &me);
        let s = Seen::of(&Listed {
            rel: key.clone(),
            size: 1,
            modified_ms: 5,
        });
        assert_eq!(
            (s.kind, s.host.as_str(), s.pid),
            (Some(Kind::Gc), "aaaaaaaaaaaaaaaa", 100)
        );
        assert_ne!(key, new_key(Kind::Gc, &me), "every key is new");
        let odd = seen("future", "x", 1, 0);
        assert_eq!(odd.kind, None);
        assert!(odd.exclusive(), "a lock of an unknown kind excludes");
    }

    #[test]
    fn staleness_is_by_the_servers_clock_or_a_dead_process_of_this_host() {
        let me = me();
        let stale = Duration::from_secs(600);
        let (alive, dead) = (true, false);
        let now = 1_000_000_000;
        // Rows: (lock, alive?, stale?)
        let rows = [
            (
                seen("push", "bbbbbbbbbbbbbbbb", 7, now - 599_000),
                dead,
                false,
            ),
            (
                seen("push", "bbbbbbbbbbbbbbbb", 7, now - 601_000),
                alive,
                true,
            ),
            // Another host's process is never looked up.
            (seen("gc", "bbbbbbbbbbbbbbbb", 7, now), dead, false),
            (seen("gc", "aaaaaaaaaaaaaaaa", 7, now), dead, true),
            (seen("gc", "aaaaaaaaaaaaaaaa", 7, now), alive, false),
            // This very process: another of its locks (a thread's) is live.
            (seen("push", "aaaaaaaaaaaaaaaa", 100, now), dead, false),
            // A lock newer than the clock reading (written after it): live.
            (
                seen("push", "bbbbbbbbbbbbbbbb", 7, now + 5_000),
                alive,
                false,
            ),
        ];
        for (i, (lock, liveness, want)) in rows.into_iter().enumerate() {
            assert_eq!(
                is_stale(&lock, now, stale, &me, |_| liveness),
                want,
                "row {i}"
            );
        }
    }

    #[test]
    fn pushes_share_and_everything_else_excludes() {
        let push = seen("push", "b", 1, 0);
        let gc = seen("gc", "b", 1, 0);
        assert!(!conflicts(Kind::Push, &push));
        assert!(conflicts(Kind::Push, &gc));
        assert!(conflicts(Kind::Gc, &push));
        assert!(conflicts(Kind::Gc, &gc));
        assert!(conflicts(Kind::Forget, &seen("rm", "b", 1, 0)));
        assert!(!conflicts(Kind::Look, &gc));
        assert!(!conflicts(Kind::Gc, &seen("look", "b", 1, 0)));
    }

    #[test]
    fn this_process_is_alive_and_a_pid_past_the_maximum_is_not() {
        assert!(pid_alive(std::process::id()));
        assert!(!pid_alive(0x3fff_fff0));
    }
}
