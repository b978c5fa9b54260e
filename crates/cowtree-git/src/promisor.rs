//! Partial clones: the target's blobs that are not in the local object store, fetched from the
//! promisor remotes before any is needed, in one batch as git's checkout prefetches them
//! (`promisor-remote.c`, `promisor_remote_get_direct` and `fetch_objects`): `git -c
//! fetch.negotiationAlgorithm=noop fetch REMOTE --no-tags --no-write-fetch-head
//! --recurse-submodules=no --filter=blob:none --stdin`, the ids on its standard input, each
//! promisor remote in git's order until one has them all. What none can give fails as git
//! fails: `could not fetch ID from promisor remote`.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use gix::ObjectId;

use crate::error::{Error, Result};

/// The promisor remotes in the order git asks them: each `remote.NAME.promisor = true` in
/// configuration order, then (or moved to the end) `extensions.partialClone`'s remote.
pub fn remotes(repo: &gix::Repository, partial_clone: Option<&str>) -> Vec<String> {
    let config = repo.config_snapshot();
    let mut out: Vec<String> = repo
        .remote_names()
        .into_iter()
        .map(|n| n.to_string())
        .filter(|n| config.boolean(format!("remote.{n}.promisor").as_str()) == Some(true))
        .collect();
    if let Some(pc) = partial_clone {
        out.retain(|n| n != pc);
        out.push(pc.to_owned());
    }
    out
}

/// Why a partial clone is git's to check out: a promisor remote's filter leaves out more than
/// blobs (trees), which cowtree reads from the local store before anything else.
pub fn unsupported_filter(repo: &gix::Repository, remotes: &[String]) -> Option<String> {
    let config = repo.config_snapshot();
    remotes.iter().find_map(|r| {
        let f = config
            .string(format!("remote.{r}.partialclonefilter").as_str())?
            .to_string();
        let blobs_only = f == "blob:none" || f.starts_with("blob:limit=");
        (!blobs_only).then(|| format!("a partial clone with filter {f} (remote {r})"))
    })
}

/// The target's blobs (of the entries the worktree gets: files and symlinks, not skipped by a
/// sparse checkout) that are not in the local store, in the index's order, each once.
pub fn missing(repo: &gix::Repository, target: &gix::index::State) -> Vec<ObjectId> {
    use gix::index::entry::{Flags, Mode};
    let mut out: Vec<ObjectId> = target
        .entries()
        .iter()
        .filter(|e| {
            !e.flags.contains(Flags::SKIP_WORKTREE)
                && matches!(e.mode, Mode::FILE | Mode::FILE_EXECUTABLE | Mode::SYMLINK)
        })
        .map(|e| e.id)
        .filter(|id| !repo.has_object(id))
        .collect();
    // In the index's order, each once: git names the first it could not fetch.
    let mut seen = std::collections::HashSet::new();
    out.retain(|id| seen.insert(*id));
    out
}

/// Fetches `ids` (blobs not in the local store) from `remotes`, git running in `dir`. Its
/// progress goes to this process's standard error, as during git's own checkout.
pub fn fetch(dir: &Path, remotes: &[String], ids: &[ObjectId]) -> Result<()> {
    let mut remaining: Vec<ObjectId> = ids.to_vec();
    for remote in remotes {
        if remaining.is_empty() {
            break;
        }
        if fetch_from(dir, remote, &remaining)? {
            remaining.clear();
            break;
        }
        // A remote that failed may still have given some: ask the next for the rest.
        remaining.retain(|id| !have(dir, id));
    }
    match remaining.first() {
        None => Ok(()),
        Some(id) => Err(Error::PromisorFetch { id: *id }),
    }
}

/// One `git fetch` of `ids` from `remote`; whether it succeeded.
fn fetch_from(dir: &Path, remote: &str, ids: &[ObjectId]) -> Result<bool> {
    let mut child = crate::branch::git(dir)
        .args(["-c", "fetch.negotiationAlgorithm=noop", "fetch", remote])
        .args([
            "--no-tags",
            "--no-write-fetch-head",
            "--recurse-submodules=no",
            "--filter=blob:none",
            "--stdin",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .map_err(Error::io("run git fetch in", dir))?;
    if let Some(mut w) = child.stdin.take() {
        let mut text = String::with_capacity(ids.len() * 65);
        for id in ids {
            text.push_str(&id.to_string());
            text.push('\n');
        }
        // A fetch that ends early (an unreachable remote) closes its end: its status says why.
        let _ = w.write_all(text.as_bytes());
    }
    let status = child
        .wait()
        .map_err(Error::io("wait for git fetch in", dir))?;
    Ok(status.success())
}

/// Whether the object `id` is in the local store now (`git cat-file -e`, which does not fetch
/// it: lazy fetching is turned off for the question).
fn have(dir: &Path, id: &ObjectId) -> bool {
    Command::new("git")
        .current_dir(dir)
        .env("GIT_NO_LAZY_FETCH", "1")
        .args(["cat-file", "-e", &id.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}
