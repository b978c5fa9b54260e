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

use crate::cmd::{StoreOpt, cwd, print_json, store_for_tree, store_here};
use crate::exit::{CliError, CmdResult, Exit};
use crate::units;

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
  cowtree remote add ci s3://cache/x --endpoint http://127.0.0.1:8333   # S3-compatible
  cowtree remote add --in-store nfs file:///mnt/shared/cowtree          # this store only
  cowtree remote ls --json")]
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
    /// Remove a remote (the remote's data is left alone).
    #[command(after_help = "Examples:
  cowtree remote rm ci
  cowtree remote rm --in-store nfs    # only the store's own (or its override)")]
    Rm {
        /// Its name.
        name: String,
        /// Remove only the one the store of this directory (or the one --store names) keeps.
        #[arg(long)]
        in_store: bool,
    },
}

/// The store of this directory (or the one named), if there is one: whose remotes override
/// the user's.
fn store_if_any(opt: &StoreOpt) -> Result<Option<Store>, CliError> {
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
        Sub::Ls { json } => {
            let store = store_if_any(&opt)?;
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
        }
        Sub::Rm { name, in_store } => {
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

/// A remote error with its exit code (docs/remote.md): 5 name conflict, 6 access denied or
/// missing bucket, 7 corrupt or missing remote data, 8 no such snapshot there, 1 anything else.
pub fn remote_error(e: cowtree_remote::Error) -> CliError {
    CliError::with_code(e.to_string(), e.exit_code())
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

/// "1.2 MiB" and the like.
pub fn human(n: u64) -> String {
    units::bytes(n)
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
