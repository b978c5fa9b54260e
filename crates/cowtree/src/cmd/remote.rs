//! `cowtree remote add|ls|rm`: the remote stores snapshots are pushed to and pulled from;
//! and what push, pull, `checkout --pull` and `ls --remote` share (opening a remote, the
//! progress bar, error codes).

use std::io::IsTerminal;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::mpsc;
use std::time::Duration;

use cowtree_remote::config::Scope;
use cowtree_remote::{Progress, Remote, RemoteConfig};
use cowtree_store::Store;
use serde_json::json;

pub use crate::cmd::remote_error::{human, remote_error};
use crate::cmd::{StoreOpt, cwd, print_json, store_for_tree, store_here};
use crate::exit::{CliError, CmdResult, Exit};

/// Manage remote stores (S3 buckets or plain directories).
///
/// A remote is a URL `s3://bucket/prefix` (any S3-compatible server: give --endpoint for one
/// that is not AWS) or `file:///path` (a directory, e.g. on NFS). Remotes are yours: they are
/// kept in $XDG_CONFIG_HOME/cowtree/remotes.json (else ~/.config/cowtree/remotes.json) and
/// every store uses them. A store may override one (or have its own) with `remote add
/// --in-store`, kept in the store's remotes.json, where earlier versions kept every remote.
/// Credentials are never stored: they come from AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY
/// (and AWS_SESSION_TOKEN), else the AWS_PROFILE (default "default") section of
/// ~/.aws/credentials. See docs/remote.md.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  cowtree remote add origin s3://my-bucket/cowtree --region eu-west-1
  cowtree remote ls --json
  cowtree remote forget origin --keep-last 7 --keep-within 30d   # retention
  cowtree remote gc origin                                       # free what nothing needs")]
pub struct Args {
    #[command(subcommand)]
    command: Sub,
}

#[derive(Debug, clap::Subcommand)]
enum Sub {
    /// Add a remote, for every store (or, with --in-store, for one store only).
    #[command(after_help = "Examples:
  cowtree remote add origin s3://my-bucket/cowtree --region eu-west-1
  cowtree remote add ci s3://cache/x --endpoint http://127.0.0.1:8333
  cowtree remote add --in-store nfs file:///mnt/shared/cowtree")]
    Add {
        /// Its name (used by --remote).
        name: String,
        /// s3://bucket/prefix or file:///path.
        url: String,
        /// An S3 endpoint other than AWS's, e.g. http://127.0.0.1:8333.
        #[arg(long)]
        endpoint: Option<String>,
        /// The S3 region (default: AWS_REGION, else us-east-1).
        #[arg(long)]
        region: Option<String>,
        /// Keep it in the store of this directory's filesystem (or the one --store names),
        /// for that store only, overriding your remote of the same name there.
        #[arg(long)]
        in_store: bool,
    },
    /// List the remotes, as the store of this directory (if there is one) sees them.
    #[command(after_help = "Examples:
  cowtree remote ls
  cowtree remote ls --json")]
    Ls {
        /// Print one JSON object: {"remotes": [{name, url, endpoint, region, scope, store}]};
        /// scope is "user", or "store" for one that store keeps (store names it).
        #[arg(long)]
        json: bool,
    },
    /// Remove a remote from the configuration (its data is left alone); or, with snapshots
    /// named, remove those snapshots from the remote.
    ///
    /// `remote rm NAME` removes the remote NAME from your configuration (and the current
    /// store's own), leaving its data alone. `remote rm NAME SNAPSHOT...` removes the
    /// snapshots from the remote NAME instead: their manifests, and every remote name pointing
    /// at them (a name pointing at no snapshot there is removed alone). The content they alone
    /// needed stays until `cowtree remote gc NAME`. SNAPSHOT is a full id, a unique id prefix
    /// of at least 8 hex digits, or a name on the remote; one that is not there exits 8 and
    /// nothing is removed. Runs under the remote's exclusive lock (waiting for pushes in
    /// flight to finish).
    #[command(after_help = "Examples:
  cowtree remote rm ci                          # forget the remote ci (its data stays)
  cowtree remote rm --in-store nfs              # only the store's own (or its override)
  cowtree remote rm origin nightly-0412 3f2a9c1d   # drop two snapshots from origin
  cowtree remote rm origin old --dry-run        # say what would go")]
    Rm {
        /// The remote.
        name: String,
        /// Snapshots to remove from the remote (ids, id prefixes, names there). Without any,
        /// the remote itself is removed from the configuration.
        snapshots: Vec<String>,
        /// Remove only the one the store of this directory (or the one --store names) keeps
        /// (configuration removal only).
        #[arg(long, conflicts_with = "snapshots")]
        in_store: bool,
        /// Say what would be removed; change nothing.
        #[arg(long, requires = "snapshots")]
        dry_run: bool,
        /// Print one JSON object (with snapshots named): dropped [{id, names, bytes,
        /// arrived_unix}], names_deleted, dry_run, requests, elapsed_ms. (Given before the
        /// command too, as every command's `--json`: so it does not require SNAPSHOT.)
        #[arg(long)]
        json: bool,
    },
    /// Drop the snapshots a retention policy does not keep from a remote.
    ///
    /// A snapshot is kept when any rule keeps it: --keep-last N (the N newest), --keep-within
    /// DURATION (arrived within that long), or --keep-name GLOB (a remote name matching GLOB
    /// points at it; by default every name does: named snapshots are kept unless
    /// --forget-named). A snapshot's time is when it arrived on the remote, by the server's
    /// clock (the Last-Modified of its manifest), never a host's. Dropped snapshots lose their
    /// manifests and names; their content stays until `cowtree remote gc`. Runs under the
    /// remote's exclusive lock (waiting for pushes in flight). --dry-run lists what it would
    /// drop and changes nothing.
    #[command(after_help = "Examples:
  cowtree remote forget origin --keep-last 7 --dry-run
  cowtree remote forget origin --keep-last 7 --keep-within 30d
  cowtree remote forget origin --keep-within 2w --forget-named --keep-name 'release-*'
  cowtree remote forget origin --keep-last 7 && cowtree remote gc origin")]
    Forget {
        /// The remote.
        name: String,
        /// Keep the N newest snapshots.
        #[arg(long, value_name = "N")]
        keep_last: Option<usize>,
        /// Keep the snapshots that arrived within DURATION (e.g. 36h, 7d, 2w, 1d12h).
        #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
        keep_within: Option<std::time::Duration>,
        /// Keep the snapshots a remote name matching GLOB (`*`, `?`) points at. Repeatable.
        /// Default: `*` (every named snapshot), unless --forget-named.
        #[arg(long, value_name = "GLOB")]
        keep_name: Vec<String>,
        /// Named snapshots are not kept for their names alone (only those --keep-name
        /// matches); a dropped snapshot's names are removed with it.
        #[arg(long)]
        forget_named: bool,
        /// Say what would be dropped; change nothing.
        #[arg(long)]
        dry_run: bool,
        /// Print one JSON object: kept [{id, names, bytes, arrived_unix, why}], dropped [...],
        /// names_deleted, dry_run, requests, elapsed_ms.
        #[arg(long)]
        json: bool,
    },
    /// Delete from a remote what no snapshot on it needs.
    ///
    /// Reads every manifest on the remote (those this store has are read here) and deletes
    /// the packs and large blobs none of them names, rewrites packs whose unneeded share is
    /// above --repack-threshold (their needed content into new packs), and removes what killed
    /// pushes and gcs left (packs without an index, stale locks). Nothing younger than
    /// --grace (by the server's clock: the Last-Modified of each object against that of gc's
    /// own lock) is touched. Runs under the remote's exclusive lock: it waits for pushes in
    /// flight to finish, and pushes that start meanwhile wait for it. Pulls take no lock; one
    /// that read an index gc removes reads the indexes again. Killed at any point, gc leaves a
    /// remote push, pull and the next gc accept. --dry-run reports what it would delete and
    /// the requests it would make. A remote written by an older cowtree (layout 1) is first
    /// upgraded to layout 2, which older versions refuse: they take no locks. Exit 7: a
    /// manifest that does not check (nothing is deleted).
    #[command(after_help = "Examples:
  cowtree remote gc origin --dry-run
  cowtree remote gc origin
  cowtree remote gc origin --grace 1h --repack-threshold 5 --json")]
    Gc {
        /// The remote.
        name: String,
        /// Leave objects younger than this (server time) alone (e.g. 1h, 24h, 0s).
        #[arg(long, value_name = "DURATION", default_value = "24h", value_parser = parse_duration)]
        grace: std::time::Duration,
        /// Rewrite a pack when more than PERCENT of its bytes are not needed (0-100).
        #[arg(long, value_name = "PERCENT", default_value_t = 10.0)]
        repack_threshold: f64,
        /// Report what it would delete and the requests it would make; change nothing.
        #[arg(long)]
        dry_run: bool,
        /// Print one JSON object: snapshots, blobs_needed, bytes_needed, blobs_missing,
        /// objects_before, bytes_before, objects_after, bytes_after, objects_deleted,
        /// bytes_deleted, packs_deleted, blobs_deleted, packs_repacked, packs_written,
        /// repack_bytes_read, repack_bytes_written, leftovers_deleted, locks_deleted,
        /// young_kept, young_kept_bytes, damaged_packs, upgraded, dry_run, requests,
        /// sweep_requests, elapsed_ms.
        #[arg(long)]
        json: bool,
    },
}

/// The store of this directory (or the one named), if there is one: whose remotes override
/// the user's.
pub fn store_if_any(opt: &StoreOpt) -> Result<Option<Store>, CliError> {
    if opt.explicit().is_some() {
        return store_here(opt).map(Some);
    }
    let root = cowtree_store::discover::store_here(&cwd()?)?;
    if !cowtree_store::discover::exists(&root) {
        return Ok(None);
    }
    crate::cmd::open_existing(&root).map(Some)
}

pub fn run(args: Args, top: Option<&Path>) -> CmdResult {
    let opt = StoreOpt::default().or(top);
    match args.command {
        Sub::Add {
            name,
            url,
            endpoint,
            region,
            in_store,
        } => {
            let scope = if in_store {
                // In the store of this directory's filesystem (where `pull` puts what it
                // fetches), made if missing.
                let store = store_for_tree(&opt, &cwd()?, false)?;
                Scope::Store(store.root().to_path_buf())
            } else {
                Scope::User
            };
            let config = RemoteConfig {
                name,
                url,
                endpoint,
                region,
            };
            cowtree_remote::config::add(&scope, config).map_err(remote_error)?;
        }
        Sub::Ls { json } => ls(&opt, json)?,
        Sub::Rm {
            name,
            snapshots,
            dry_run,
            json,
            ..
        } if !snapshots.is_empty() => {
            let store = store_if_any(&opt)?;
            return crate::cmd::retention::rm(store.as_ref(), &name, &snapshots, dry_run, json);
        }
        Sub::Forget {
            name,
            keep_last,
            keep_within,
            keep_name,
            forget_named,
            dry_run,
            json,
        } => {
            let store = store_if_any(&opt)?;
            let mut keep_names = keep_name;
            if !forget_named && keep_names.is_empty() {
                keep_names.push("*".into());
            }
            let policy = cowtree_remote::forget::Policy {
                keep_last,
                keep_within,
                keep_names,
            };
            return crate::cmd::retention::forget(store.as_ref(), &name, &policy, dry_run, json);
        }
        Sub::Gc {
            name,
            grace,
            repack_threshold,
            dry_run,
            json,
        } => {
            if !(0.0..=100.0).contains(&repack_threshold) {
                return Err(CliError::with_code(
                    format!("--repack-threshold {repack_threshold}: give a percentage, 0 to 100"),
                    2,
                ));
            }
            let store = store_if_any(&opt)?;
            let opts = cowtree_remote::gc::GcOptions {
                grace,
                repack_threshold: repack_threshold / 100.0,
                dry_run,
                timing: crate::cmd::retention::lock_timing(),
            };
            return crate::cmd::retention::gc(store.as_ref(), &name, &opts, json);
        }
        Sub::Rm { name, in_store, .. } => {
            let store = store_if_any(&opt)?;
            if in_store && store.is_none() {
                return Err(CliError::new(format!(
                    "no store here keeps a remote named {name:?} (none exists for {})",
                    cwd()?.display()
                )));
            }
            cowtree_remote::config::remove(store.as_ref(), &name, in_store)
                .map_err(remote_error)?;
        }
    }
    Ok(Exit::Ok)
}

/// `remote ls`: the remotes of the user and of this directory's store.
fn ls(opt: &StoreOpt, json: bool) -> Result<(), CliError> {
    let store = store_if_any(opt)?;
    let all = cowtree_remote::config::list(store.as_ref()).map_err(remote_error)?;
    if json {
        let list: Vec<_> = all
            .iter()
            .map(|c| {
                let r = &c.config;
                let store = match &c.scope {
                    Scope::Store(p) => Some(p),
                    Scope::User => None,
                };
                json!({"name": r.name, "url": r.url, "endpoint": r.endpoint,
                       "region": r.region, "scope": c.scope.as_str(), "store": store})
            })
            .collect();
        print_json(&json!({ "remotes": list }))?;
    } else {
        for c in all {
            let r = &c.config;
            let mut line = format!("{}\t{}", r.name, r.url);
            if let Some(e) = &r.endpoint {
                line.push_str(&format!("\tendpoint={e}"));
            }
            if let Some(g) = &r.region {
                line.push_str(&format!("\tregion={g}"));
            }
            if let Scope::Store(p) = &c.scope {
                line.push_str(&format!("\tstore={}", p.display()));
            }
            println!("{line}");
        }
    }
    Ok(())
}

/// `DURATION`: a number of seconds, or runs of a number and a unit (`w`, `d`, `h`, `m`, `s`):
/// `90s`, `36h`, `7d`, `1d12h`.
pub fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    let bad = || format!("{text:?}: give a duration such as 90s, 30m, 36h, 7d, 2w or 1d12h");
    if let Ok(secs) = text.parse::<u64>() {
        return Ok(std::time::Duration::from_secs(secs));
    }
    let mut total: u64 = 0;
    let mut num = String::new();
    for c in text.chars() {
        if c.is_ascii_digit() {
            num.push(c);
            continue;
        }
        let unit = match c {
            'w' => 7 * 86_400,
            'd' => 86_400,
            'h' => 3_600,
            'm' => 60,
            's' => 1,
            _ => return Err(bad()),
        };
        let n: u64 = num.parse().map_err(|_| bad())?;
        total = n
            .checked_mul(unit)
            .and_then(|v| total.checked_add(v))
            .ok_or_else(bad)?;
        num.clear();
    }
    if !num.is_empty() || text.is_empty() {
        return Err(bad());
    }
    Ok(std::time::Duration::from_secs(total))
}

/// Opens the remote named `name`, or the default one (`origin`, else the only one).
pub fn open_remote(store: &Store, name: Option<&str>) -> Result<Remote, CliError> {
    let cfg = match name {
        Some(n) => cowtree_remote::config::get(Some(store), n),
        None => cowtree_remote::config::default_remote(Some(store)),
    }
    .map_err(remote_error)?;
    Remote::open(&cfg).map_err(remote_error)
}

/// Runs `f` with a progress bar on stderr (objects, bytes, rate) when stderr is a terminal
/// and neither `quiet` nor `json` is set.
pub fn with_progress<T>(quiet: bool, json: bool, f: impl FnOnce(&Progress) -> T) -> T {
    let progress = Progress::default();
    if quiet || json || !std::io::stderr().is_terminal() {
        return f(&progress);
    }
    let (tx, rx) = mpsc::channel::<()>();
    std::thread::scope(|s| {
        let progress = &progress;
        s.spawn(move || bar(progress, &rx));
        let out = f(progress);
        drop(tx);
        out
    })
}

fn bar(p: &Progress, done: &mpsc::Receiver<()>) {
    use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
    if done.recv_timeout(Duration::from_millis(500)) != Err(mpsc::RecvTimeoutError::Timeout) {
        return;
    }
    let bar = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr());
    if let Ok(style) = ProgressStyle::with_template(
        "{spinner} {wide_bar} {bytes}/{total_bytes} {binary_bytes_per_sec} {msg} ({elapsed})",
    ) {
        bar.set_style(style);
    }
    loop {
        bar.set_length(p.total_bytes.load(Ordering::Relaxed));
        bar.set_position(p.done_bytes.load(Ordering::Relaxed));
        bar.set_message(format!(
            "{}/{} objects",
            p.done_objects.load(Ordering::Relaxed),
            p.total_objects.load(Ordering::Relaxed)
        ));
        if done.recv_timeout(Duration::from_millis(100)) != Err(mpsc::RecvTimeoutError::Timeout) {
            break;
        }
    }
    bar.finish_and_clear();
}

/// `cowtree ls --remote NAME`.
pub fn list_remote(store: &Store, name: &str, json: bool) -> CmdResult {
    let remote = open_remote(store, Some(name))?;
    let list = cowtree_remote::list::list(&remote).map_err(remote_error)?;
    if json {
        let rows: Vec<_> = list
            .iter()
            .map(|s| {
                json!({"id": s.id.to_hex(), "names": s.names, "manifest_bytes": s.manifest_bytes})
            })
            .collect();
        print_json(&json!({"remote": remote.name(), "snapshots": rows}))?;
    } else {
        for s in list {
            let missing = if s.manifest_bytes == 0 {
                "  (name only: no manifest on the remote)"
            } else {
                ""
            };
            println!("{}  {}{missing}", s.id, s.names.join(" "));
        }
    }
    Ok(Exit::Ok)
}
