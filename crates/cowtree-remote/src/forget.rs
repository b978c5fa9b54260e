//! Dropping snapshots from a remote: by a retention policy (`remote forget`) or one by one
//! (`remote rm REMOTE SNAPSHOT...`).
//!
//! Only manifests and names are deleted here (names first, then manifests: the reverse of
//! the order a push writes them); the blobs they alone needed stay until `remote gc`. Both run
//! under an exclusive lock ([`crate::lock`]), so that no push that is setting a name or
//! finding a manifest already there runs meanwhile.
//!
//! A snapshot's time is when it arrived on the remote: the server's Last-Modified of its
//! manifest (a later push of the same snapshot does not change it). The writer's clock is
//! never asked.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use cowtree_store::Hash;

use crate::error::{Error, Result};
use crate::lock::{self, Held, Kind, LockTiming};
use crate::remote::Remote;

/// Which snapshots `remote forget` keeps. A snapshot is kept when any rule keeps it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Policy {
    /// The `n` newest snapshots.
    pub keep_last: Option<usize>,
    /// Snapshots that arrived within this long before now (the server's clock).
    pub keep_within: Option<Duration>,
    /// Snapshots a name matching one of these globs (`*`, `?`) points at.
    pub keep_names: Vec<String>,
}

/// A snapshot on the remote, as forget sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    /// Its id.
    pub id: Hash,
    /// When its manifest arrived (server time, ms).
    pub modified_ms: i64,
    /// Its manifest's size.
    pub bytes: u64,
    /// The remote names pointing at it, sorted.
    pub names: Vec<String>,
}

/// Why a snapshot is kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Keep {
    /// Among the last N.
    Last,
    /// Within the period.
    Within,
    /// This name points at it.
    Name(String),
}

impl std::fmt::Display for Keep {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Keep::Last => f.write_str("last"),
            Keep::Within => f.write_str("within"),
            Keep::Name(n) => write!(f, "name {n}"),
        }
    }
}

/// The decision for each candidate, newest first: the reasons it is kept (none: dropped).
pub fn decide(
    candidates: &[Candidate],
    policy: &Policy,
    now_ms: i64,
) -> Vec<(Candidate, Vec<Keep>)> {
    let mut sorted: Vec<Candidate> = candidates.to_vec();
    sorted.sort_by(|a, b| b.modified_ms.cmp(&a.modified_ms).then(b.id.cmp(&a.id)));
    sorted
        .into_iter()
        .enumerate()
        .map(|(i, c)| {
            let mut why = Vec::new();
            if policy.keep_last.is_some_and(|n| i < n) {
                why.push(Keep::Last);
            }
            if let Some(d) = policy.keep_within
                && now_ms.saturating_sub(c.modified_ms)
                    <= d.as_millis().min(i64::MAX as u128) as i64
            {
                why.push(Keep::Within);
            }
            for n in &c.names {
                if policy.keep_names.iter().any(|g| glob(g, n)) {
                    why.push(Keep::Name(n.clone()));
                }
            }
            (c, why)
        })
        .collect()
}

/// `*` any run of characters, `?` one character, anything else itself.
pub fn glob(pattern: &str, s: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), s.chars().collect());
    let (mut i, mut j) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while j < t.len() {
        if i < p.len() && (p[i] == '?' || p[i] == t[j]) {
            i += 1;
            j += 1;
        } else if i < p.len() && p[i] == '*' {
            star = Some((i, j));
            i += 1;
        } else if let Some((si, sj)) = star {
            i = si + 1;
            j = sj + 1;
            star = Some((si, sj + 1));
        } else {
            return false;
        }
    }
    p[i..].iter().all(|c| *c == '*')
}

/// What a forget or rm did (or, dry, would do).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ForgetReport {
    /// Nothing was changed.
    pub dry_run: bool,
    /// The remote was layout 1 and is now layout 2.
    pub upgraded: bool,
    /// Snapshots kept, with why (forget only), newest first.
    pub kept: Vec<(Candidate, Vec<Keep>)>,
    /// Snapshots dropped, newest first.
    pub dropped: Vec<Candidate>,
    /// Names deleted (those of the dropped snapshots).
    pub names_deleted: Vec<String>,
    /// Requests made.
    pub requests: u64,
    /// Wall time.
    pub elapsed_ms: u64,
}

/// Applies `policy` to `remote`'s snapshots: drops (manifest and names) every snapshot no
/// rule keeps.
pub fn forget(
    remote: &Remote,
    policy: &Policy,
    dry_run: bool,
    timing: &LockTiming,
    on_wait: &(dyn Fn(&str) + Sync),
) -> Result<ForgetReport> {
    if policy.keep_last.is_none() && policy.keep_within.is_none() && policy.keep_names.is_empty() {
        return Err(Error::Config(format!(
            "remote {}: a policy that keeps nothing would drop every snapshot; give \
             --keep-last, --keep-within or --keep-name (remote rm drops snapshots by name)",
            remote.name()
        )));
    }
    locked(
        remote,
        Kind::Forget,
        dry_run,
        timing,
        on_wait,
        |held, all| {
            let decided = decide(all, policy, held.server_now_ms);
            let (kept, dropped): (Vec<_>, Vec<_>) =
                decided.into_iter().partition(|(_, w)| !w.is_empty());
            Ok((kept, dropped.into_iter().map(|(c, _)| c).collect()))
        },
    )
}

/// Drops the snapshots `what` names (full ids, unique id prefixes of 8+ hex digits, names on
/// the remote) with every name pointing at them. A name pointing at no snapshot there is
/// deleted alone. Something `what` names that is not there is [`Error::NotFound`] and nothing
/// is dropped.
pub fn remove(
    remote: &Remote,
    what: &[String],
    dry_run: bool,
    timing: &LockTiming,
    on_wait: &(dyn Fn(&str) + Sync),
) -> Result<ForgetReport> {
    locked(remote, Kind::Rm, dry_run, timing, on_wait, |_, all| {
        let mut dropped: Vec<Candidate> = Vec::new();
        for w in what {
            let found = resolve(remote, all, w)?;
            if !dropped
                .iter()
                .any(|d| d.id == found.id && d.names == found.names)
            {
                dropped.push(found);
            }
        }
        Ok((Vec::new(), dropped))
    })
}

/// What a forget or rm keeps (with why) and drops.
type Chosen = (Vec<(Candidate, Vec<Keep>)>, Vec<Candidate>);

/// Takes the lock, lists the snapshots and names, lets `choose` pick what goes, deletes it.
fn locked(
    remote: &Remote,
    kind: Kind,
    dry_run: bool,
    timing: &LockTiming,
    on_wait: &(dyn Fn(&str) + Sync),
    choose: impl FnOnce(&Held, &[Candidate]) -> Result<Chosen>,
) -> Result<ForgetReport> {
    let start = Instant::now();
    let mut report = ForgetReport {
        dry_run,
        ..ForgetReport::default()
    };
    remote.block_on(async {
        match remote.version(false).await? {
            None => {
                return Err(Error::NotFound {
                    remote: remote.name().to_string(),
                    what: "it holds no snapshots".into(),
                    names: Vec::new(),
                    more: 0,
                });
            }
            Some(1) if !dry_run => {
                remote.upgrade_version().await?;
                report.upgraded = true;
            }
            _ => {}
        }
        let held = lock::acquire(
            remote,
            if dry_run { Kind::Look } else { kind },
            timing,
            on_wait,
        )
        .await?;
        let r = async {
            let all = candidates(remote).await?;
            let (kept, dropped) = choose(&held, &all)?;
            let names: Vec<String> = dropped.iter().flat_map(|c| c.names.clone()).collect();
            if !dry_run {
                // Names first, then manifests: a name never points at a manifest gone
                // while the manifest is still there, and a gc never sees a manifest dropped
                // with its name still set.
                held.check(remote)?;
                let rels: Vec<String> = names.iter().map(|n| format!("names/{n}")).collect();
                remote.delete_all(&rels).await?;
                held.check(remote)?;
                let rels: Vec<String> = dropped
                    .iter()
                    .filter(|c| c.bytes > 0)
                    .map(|c| format!("snapshots/{}", c.id))
                    .collect();
                remote.delete_all(&rels).await?;
            }
            report.kept = kept;
            report.dropped = dropped;
            report.names_deleted = names;
            Ok::<(), Error>(())
        }
        .await;
        held.release(remote).await;
        r
    })?;
    report.requests = remote.requests();
    report.elapsed_ms = start.elapsed().as_millis() as u64;
    Ok(report)
}

/// Every snapshot on the remote with its names; a name pointing at a snapshot that is not
/// there gives a candidate of 0 bytes.
async fn candidates(remote: &Remote) -> Result<Vec<Candidate>> {
    let mut out: BTreeMap<Hash, Candidate> = BTreeMap::new();
    for l in remote.list_meta("snapshots/").await? {
        if let Some(id) = l.rel.strip_prefix("snapshots/").and_then(Hash::from_hex) {
            out.insert(
                id,
                Candidate {
                    id,
                    modified_ms: l.modified_ms,
                    bytes: l.size,
                    names: Vec::new(),
                },
            );
        }
    }
    for (name, id) in crate::list::names(remote).await? {
        out.entry(id)
            .or_insert(Candidate {
                id,
                modified_ms: 0,
                bytes: 0,
                names: Vec::new(),
            })
            .names
            .push(name);
    }
    let mut v: Vec<Candidate> = out.into_values().collect();
    for c in &mut v {
        c.names.sort();
    }
    Ok(v)
}

/// The snapshot `what` names among `all`: a full id, a name, a unique id prefix. A name that
/// points at no snapshot there is returned as a candidate of 0 bytes holding that name.
fn resolve(remote: &Remote, all: &[Candidate], what: &str) -> Result<Candidate> {
    if let Some(c) = all.iter().find(|c| c.names.iter().any(|n| n == what)) {
        return Ok(c.clone());
    }
    let lower = what.to_ascii_lowercase();
    let matching: Vec<&Candidate> = if Hash::from_hex(what).is_some() {
        all.iter()
            .filter(|c| c.id.to_hex() == lower && c.bytes > 0)
            .collect()
    } else if cowtree_store::hash::is_id_prefix(what) {
        all.iter()
            .filter(|c| c.bytes > 0 && c.id.to_hex().starts_with(&lower))
            .collect()
    } else {
        Vec::new()
    };
    match matching.as_slice() {
        [one] => Ok((*one).clone()),
        [] => {
            let mut names: Vec<String> = all.iter().flat_map(|c| c.names.clone()).collect();
            names.sort();
            let more = names.len().saturating_sub(20);
            names.truncate(20);
            Err(Error::NotFound {
                remote: remote.name().to_string(),
                what: format!("no snapshot named {what:?} and no snapshot id starts with it"),
                names,
                more,
            })
        }
        _ => Err(Error::Config(format!(
            "remote {}: snapshot prefix {what} is ambiguous",
            remote.name()
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(i: u8, modified_ms: i64, names: &[&str]) -> Candidate {
        Candidate {
            id: Hash::of(&[i]),
            modified_ms,
            bytes: 100,
            names: names.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn glob_table() {
        for (p, s, want) in [
            ("*", "anything", true),
            ("*", "", true),
            ("v*", "v1.2", true),
            ("v*", "w1", false),
            ("rel-?", "rel-1", true),
            ("rel-?", "rel-10", false),
            ("*-nightly", "x-nightly", true),
            ("a*b*c", "axxbyyc", true),
            ("a*b*c", "axxbyy", false),
            ("exact", "exact", true),
            ("", "", true),
            ("", "x", false),
        ] {
            assert_eq!(glob(p, s), want, "{p:?} {s:?}");
        }
    }

    #[test]
    fn keep_last_within_and_names_each_keep_and_the_rest_goes() {
        let day = 86_400_000;
        let now = 100 * day;
        let all: Vec<Candidate> = (0..10u8)
            .map(|i| {
                c(
                    i,
                    now - i64::from(i) * day,
                    if i == 8 { &["release"] } else { &[] },
                )
            })
            .collect();
        let policy = Policy {
            keep_last: Some(2),
            keep_within: Some(Duration::from_millis(4 * day as u64)),
            keep_names: vec!["rel*".into()],
        };
        let d = decide(&all, &policy, now);
        let kept: Vec<(i64, Vec<Keep>)> = d
            .iter()
            .filter(|(_, w)| !w.is_empty())
            .map(|(c, w)| ((now - c.modified_ms) / day, w.clone()))
            .collect();
        assert_eq!(
            kept,
            vec![
                (0, vec![Keep::Last, Keep::Within]),
                (1, vec![Keep::Last, Keep::Within]),
                (2, vec![Keep::Within]),
                (3, vec![Keep::Within]),
                (4, vec![Keep::Within]),
                (8, vec![Keep::Name("release".into())]),
            ]
        );
        assert_eq!(d.iter().filter(|(_, w)| w.is_empty()).count(), 4);
    }

    #[test]
    fn snapshots_of_one_time_are_ordered_by_id_so_keep_last_is_deterministic() {
        let all = vec![c(1, 5, &[]), c(2, 5, &[]), c(3, 5, &[])];
        let policy = Policy {
            keep_last: Some(1),
            ..Policy::default()
        };
        let a = decide(&all, &policy, 10);
        let mut rev = all.clone();
        rev.reverse();
        let b = decide(&rev, &policy, 10);
        assert_eq!(a, b);
    }
}
