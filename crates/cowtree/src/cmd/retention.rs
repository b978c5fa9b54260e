//! `cowtree remote rm REMOTE SNAPSHOT...`, `remote forget` and `remote gc`: dropping
//! snapshots from a remote and deleting what none needs (the clap side is in
//! `cmd::remote`).

use std::time::Duration;

use cowtree_remote::forget::{Candidate, ForgetReport, Keep, Policy};
use cowtree_remote::gc::{GcOptions, GcReport};
use cowtree_remote::lock::LockTiming;
use cowtree_remote::{Remote, RemoteConfig};
use cowtree_store::Store;
use serde_json::{Value, json};

use crate::cmd::print_json;
use crate::cmd::remote_error::{human, remote_error};
use crate::exit::{CliError, CmdResult, Exit};
use crate::units::secs;

/// The lock timing: the defaults, or (for tests that kill and race writers within seconds)
/// `COWTREE_REMOTE_LOCK_REFRESH`, `_STALE`, `_WAIT` and `_SETTLE` in seconds (fractions
/// allowed).
pub fn lock_timing() -> LockTiming {
    let mut t = LockTiming::default();
    let var = |name: &str, into: &mut Duration| {
        if let Some(v) = std::env::var(format!("COWTREE_REMOTE_LOCK_{name}"))
            .ok()
            .and_then(|v| v.parse::<f64>().ok())
            .filter(|v| v.is_finite() && *v >= 0.0)
        {
            *into = Duration::from_secs_f64(v);
        }
    };
    var("REFRESH", &mut t.refresh);
    var("STALE", &mut t.stale);
    var("WAIT", &mut t.wait);
    var("SETTLE", &mut t.settle);
    t
}

/// Tells once, on stderr, what a command waits for.
pub fn on_wait(quiet: bool) -> impl Fn(&str) + Sync {
    move |what: &str| {
        if !quiet {
            eprintln!("cowtree: {what}");
        }
    }
}

fn open(store: Option<&Store>, name: &str) -> Result<Remote, CliError> {
    let cfg: RemoteConfig = cowtree_remote::config::get(store, name).map_err(remote_error)?;
    Remote::open(&cfg).map_err(remote_error)
}

/// `remote rm REMOTE SNAPSHOT...`.
pub fn rm(
    store: Option<&Store>,
    name: &str,
    snapshots: &[String],
    dry_run: bool,
    json: bool,
) -> CmdResult {
    let remote = open(store, name)?;
    let r =
        cowtree_remote::forget::remove(&remote, snapshots, dry_run, &lock_timing(), &on_wait(json))
            .map_err(remote_error)?;
    print_forget(&remote, &r, json, false)
}

/// `remote forget REMOTE --keep-...`.
pub fn forget(
    store: Option<&Store>,
    name: &str,
    policy: &Policy,
    dry_run: bool,
    json: bool,
) -> CmdResult {
    let remote = open(store, name)?;
    let r =
        cowtree_remote::forget::forget(&remote, policy, dry_run, &lock_timing(), &on_wait(json))
            .map_err(remote_error)?;
    print_forget(&remote, &r, json, true)
}

fn candidate_json(c: &Candidate, why: Option<&[Keep]>) -> Value {
    let mut v = json!({
        "id": c.id.to_hex(),
        "names": c.names,
        "bytes": c.bytes,
        "arrived_unix": c.modified_ms / 1000,
    });
    if let Some(why) = why {
        v["why"] = json!(why.iter().map(|k| k.to_string()).collect::<Vec<_>>());
    }
    v
}

fn print_forget(remote: &Remote, r: &ForgetReport, json: bool, list_kept: bool) -> CmdResult {
    if json {
        let kept: Vec<Value> = r
            .kept
            .iter()
            .map(|(c, w)| candidate_json(c, Some(w)))
            .collect();
        let dropped: Vec<Value> = r.dropped.iter().map(|c| candidate_json(c, None)).collect();
        return print_json(&json!({
            "remote": remote.name(),
            "dry_run": r.dry_run,
            "upgraded": r.upgraded,
            "kept": kept,
            "dropped": dropped,
            "names_deleted": r.names_deleted,
            "requests": r.requests,
            "elapsed_ms": r.elapsed_ms,
        }))
        .map(|()| Exit::Ok);
    }
    let names = |c: &Candidate| {
        if c.names.is_empty() {
            String::new()
        } else {
            format!("  {}", c.names.join(" "))
        }
    };
    if list_kept {
        for (c, why) in &r.kept {
            let why: Vec<String> = why.iter().map(|k| k.to_string()).collect();
            println!("keep {}{}  ({})", c.id, names(c), why.join(", "));
        }
    }
    let verb = if r.dry_run { "would drop" } else { "drop" };
    for c in &r.dropped {
        let what = if c.bytes == 0 {
            "  (name only: no manifest there)"
        } else {
            ""
        };
        println!("{verb} {}{}{what}", c.id, names(c));
    }
    let done = if r.dry_run { "would drop" } else { "dropped" };
    println!(
        "{}: {done} {} snapshot(s) and {} name(s), kept {}; {} requests in {}{}",
        remote.name(),
        r.dropped.iter().filter(|c| c.bytes > 0).count(),
        r.names_deleted.len(),
        r.kept.len(),
        r.requests,
        secs(r.elapsed_ms),
        if r.dry_run || r.dropped.is_empty() {
            String::new()
        } else {
            format!(
                "; `cowtree remote gc {}` frees their content",
                cowtree_store::error::shell_word(remote.name())
            )
        }
    );
    if r.upgraded {
        eprintln!(
            "cowtree: the remote was upgraded to layout 2 (locks); cowtree versions without \
             remote gc now refuse it"
        );
    }
    Ok(Exit::Ok)
}

/// `remote gc REMOTE`.
pub fn gc(store: Option<&Store>, name: &str, opts: &GcOptions, json: bool) -> CmdResult {
    let remote = open(store, name)?;
    let r = cowtree_remote::gc::gc(&remote, store, opts, &on_wait(json)).map_err(remote_error)?;
    if json {
        print_json(&gc_json(&remote, &r))?;
        return Ok(Exit::Ok);
    }
    let verb = if r.dry_run { "would delete" } else { "deleted" };
    println!(
        "gc of {}: {} snapshot(s) need {} ({} blobs); {} -> {} on the remote; {verb} {} \
         objects ({}): {} packs, {} large blobs, {} leftovers, {} stale locks; {} {} packs \
         into {} (read {}, wrote {}); {} requests{} in {}",
        remote.name(),
        r.snapshots,
        human(r.bytes_needed),
        r.blobs_needed,
        human(r.bytes_before),
        human(r.bytes_after),
        r.objects_deleted,
        human(r.bytes_deleted),
        r.packs_deleted,
        r.blobs_deleted,
        r.leftovers_deleted,
        r.locks_deleted,
        if r.dry_run {
            "would repack"
        } else {
            "repacked"
        },
        r.packs_repacked,
        r.packs_written,
        human(r.repack_bytes_read),
        human(r.repack_bytes_written),
        r.requests,
        if r.dry_run {
            format!(" (the sweep would make {} more)", r.sweep_requests)
        } else {
            format!(" ({} for the sweep)", r.sweep_requests)
        },
        secs(r.elapsed_ms)
    );
    if r.young_kept > 0 {
        eprintln!(
            "cowtree: {} object(s) holding {} no snapshot needs are younger than the grace \
             period ({} s) and were left; a later gc deletes them",
            r.young_kept,
            human(r.young_kept_bytes),
            opts.grace.as_secs()
        );
    }
    if r.blobs_missing > 0 {
        eprintln!(
            "cowtree: warning: {} blob(s) the snapshots name are nowhere on the remote: some \
             snapshots there are damaged (a pull of them exits 7)",
            r.blobs_missing
        );
    }
    for p in &r.damaged_packs {
        eprintln!(
            "cowtree: warning: {p}: its index does not decode or does not match the pack; left \
             alone"
        );
    }
    if r.upgraded {
        eprintln!(
            "cowtree: the remote was upgraded to layout 2 (locks); cowtree versions without \
             remote gc now refuse it"
        );
    }
    Ok(Exit::Ok)
}

fn gc_json(remote: &Remote, r: &GcReport) -> Value {
    json!({
        "remote": remote.name(),
        "dry_run": r.dry_run,
        "upgraded": r.upgraded,
        "snapshots": r.snapshots,
        "blobs_needed": r.blobs_needed,
        "bytes_needed": r.bytes_needed,
        "blobs_missing": r.blobs_missing,
        "objects_before": r.objects_before,
        "bytes_before": r.bytes_before,
        "objects_after": r.objects_after,
        "bytes_after": r.bytes_after,
        "objects_deleted": r.objects_deleted,
        "bytes_deleted": r.bytes_deleted,
        "packs_deleted": r.packs_deleted,
        "blobs_deleted": r.blobs_deleted,
        "packs_repacked": r.packs_repacked,
        "packs_written": r.packs_written,
        "repack_bytes_read": r.repack_bytes_read,
        "repack_bytes_written": r.repack_bytes_written,
        "leftovers_deleted": r.leftovers_deleted,
        "locks_deleted": r.locks_deleted,
        "young_kept": r.young_kept,
        "young_kept_bytes": r.young_kept_bytes,
        "damaged_packs": r.damaged_packs,
        "requests": r.requests,
        "sweep_requests": r.sweep_requests,
        "elapsed_ms": r.elapsed_ms,
    })
}
