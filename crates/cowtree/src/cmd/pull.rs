//! `cowtree pull`: fetch snapshots from a remote.

use std::path::Path;

use cowtree_remote::pull::{PullOptions, PullReport};
use cowtree_remote::{Progress, Remote};
use cowtree_store::Store;
use cowtree_store::error::shell_word;
use serde_json::{Value, json};

use crate::cmd::remote::{human, open_remote, remote_error, with_progress};
use crate::cmd::{StoreOpt, cwd, print_json, store_for_tree};
use crate::exit::{CliError, CmdResult, Exit};

/// Fetch snapshots, and the file contents this store lacks, from a remote.
///
/// SNAPSHOT is a full id, a unique id prefix of at least 8 hex digits, or a name on the
/// remote; a name is then set in this store too, when it is new here or still points where
/// this store last saw the remote's name: a local name pointing at another snapshot is moved
/// only with --force (else exit 5, nothing pulled), and a move is reported. Only missing content is fetched, with ranged
/// reads into the remote's packs. Every file is hashed before it enters the store and every
/// manifest checked against its id and validated; a mismatch is an error naming the remote
/// object (exit 7) and nothing is recorded. Interrupted, it resumes when run again; what it
/// had fetched is kept (`cowtree gc` removes it if never used). Stopped by a full disk, it
/// removes what it had fetched (or, when another cowtree holds the store, says what gc frees). Exit codes: 1 error (a
/// server that cannot be reached is said in one line, without retries), 6 access denied or
/// missing bucket, 7 corrupt or missing remote data, 8 no such snapshot on the remote (the
/// message lists the names it has).
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  cowtree pull v1                         # fetch v1 (and its name) from origin
  cowtree pull --remote ci 3f2a9c1d       # by id prefix
  cowtree pull v1 --path 'services/api/**' --path 'libs/**'   # part of v1
  cowtree checkout --pull v1 ../wt        # pull what is missing, then check out")]
pub struct Args {
    /// Snapshot ids, id prefixes (8+ hex digits) or names on the remote.
    #[arg(required = true)]
    snapshots: Vec<String>,
    /// The remote (default: origin, else the only one configured).
    #[arg(long)]
    remote: Option<String>,
    /// Print one JSON object: ids, snapshots_received, snapshots_skipped, blobs_received,
    /// bytes_received, bytes_fetched (read from the remote: the blobs and the gaps between
    /// those one read joins), blobs_skipped, bytes_skipped, names [{name, id, moved_from}],
    /// parts [{of, id, files, bytes}], requests, elapsed_ms.
    #[arg(long)]
    json: bool,
    /// Move a local name that points at another snapshot than the remote's name does, also
    /// when this store did not set it from there (without --force that is refused, exit 5,
    /// and nothing is pulled).
    #[arg(long)]
    force: bool,
    /// Print nothing on success.
    #[arg(long, short)]
    quiet: bool,
    /// Pull only the files under paths matching GLOB (repeatable; `*` and `?` within a
    /// path component, `**` across them: `src/**`, `pkg/api`, `**/*.proto`), recorded as a
    /// snapshot of its own whose id is printed (`part SNAPSHOT -> ID`); check it out as any
    /// other. No name is set.
    #[arg(long, value_name = "GLOB")]
    path: Vec<String>,
    #[command(flatten)]
    store: StoreOpt,
}

pub fn run(args: Args, top: Option<&Path>) -> CmdResult {
    // What is pulled lands in the store of this directory's filesystem (or the one named).
    let opt = args.store.clone().or(top);
    let store = store_for_tree(&opt, &cwd()?, args.quiet || args.json)?;
    let remote = open_remote(&store, args.remote.as_deref())?;
    let opts = PullOptions {
        force: args.force,
        paths: args.path.clone(),
    };
    let r = pull_with(
        &store,
        &remote,
        &args.snapshots,
        &opts,
        args.quiet,
        args.json,
    )
    .map_err(|e| with_suggestion(e, &opt, args.remote.as_deref()))?;
    if args.json {
        print_json(&report_json(&remote, &r))?;
    } else if !args.quiet {
        print_summary(&remote, &r);
    }
    Ok(Exit::Ok)
}

/// Pulls `what` with the progress bar rules of `quiet` and `json`.
pub fn pull_with(
    store: &Store,
    remote: &Remote,
    what: &[String],
    opts: &PullOptions,
    quiet: bool,
    json: bool,
) -> Result<PullReport, cowtree_remote::Error> {
    // Its staging in the store's tmp/ is removed on interrupt; what was placed stays, and the
    // next pull fetches only what is still missing.
    with_progress(quiet, json, |p: &Progress| {
        cowtree_remote::pull::pull_with(store, remote, what, opts, p)
    })
}

/// The error of a pull, with the commands that get past a refused name move: the pull again
/// with --force, or by id (the store and remote given the same way as to this one).
fn with_suggestion(e: cowtree_remote::Error, opt: &StoreOpt, remote: Option<&str>) -> CliError {
    let cowtree_remote::Error::LocalName { name, incoming, .. } = &e else {
        return remote_error(e);
    };
    let mut head = String::from("cowtree");
    if let Some(p) = &opt.store {
        head.push_str(&format!(" --store {}", shell_word(p)));
    }
    head.push_str(" pull");
    if let Some(r) = remote {
        head.push_str(&format!(" --remote {}", shell_word(r)));
    }
    let text = format!(
        "{e} (`{head} --force {}` moves the name; `{head} {}` fetches the snapshot and leaves \
         the name)",
        shell_word(name),
        shell_word(incoming.to_hex()),
    );
    CliError::with_code(text, e.exit_code())
}

/// The JSON object of a pull.
pub fn report_json(remote: &Remote, r: &PullReport) -> Value {
    let names: Vec<_> = r
        .names_set
        .iter()
        .map(|(n, id)| {
            let from = r
                .names_moved
                .iter()
                .find(|(m, _)| m == n)
                .map(|(_, old)| old.to_hex());
            json!({"name": n, "id": id.to_hex(), "moved_from": from})
        })
        .collect();
    json!({
        "remote": remote.name(),
        "ids": r.ids.iter().map(|i| i.to_hex()).collect::<Vec<_>>(),
        "snapshots_received": r.snapshots_received,
        "snapshots_skipped": r.snapshots_skipped,
        "blobs_received": r.blobs_received,
        "bytes_received": r.bytes_received,
        "bytes_fetched": r.bytes_fetched,
        "blobs_skipped": r.blobs_skipped,
        "bytes_skipped": r.bytes_skipped,
        "names": names,
        "parts": r.parts.iter().map(|(of, id, files, bytes)| json!({
            "of": of.to_hex(), "id": id.to_hex(), "files": files, "bytes": bytes,
        })).collect::<Vec<_>>(),
        "requests": r.requests,
        "elapsed_ms": r.elapsed_ms,
    })
}

/// The one-line summary of a pull (and the names set).
pub fn print_summary(remote: &Remote, r: &PullReport) {
    println!(
        "pulled from {}: {} snapshot(s) received, {} already here; {} ({} blobs) received, \
         {} blobs ({}) already here; {} requests in {} ms",
        remote.name(),
        r.snapshots_received,
        r.snapshots_skipped,
        human(r.bytes_received),
        r.blobs_received,
        r.blobs_skipped,
        human(r.bytes_skipped),
        r.requests,
        r.elapsed_ms
    );
    for (of, id, files, bytes) in &r.parts {
        println!("part {of} -> {id} ({files} files, {})", human(*bytes));
    }
    for (n, id) in &r.names_set {
        match r.names_moved.iter().find(|(m, _)| m == n) {
            Some((_, old)) => println!(
                "name {n} -> {} (moved from {})",
                &id.to_hex()[..12],
                &old.to_hex()[..12]
            ),
            None => println!("name {n} -> {}", &id.to_hex()[..12]),
        }
    }
}

/// Tells the pull beside a checkout that the checkout let go of the store, when dropped.
struct Release<'a>(&'a cowtree_remote::arrivals::Arrivals);

impl Drop for Release<'_> {
    fn drop(&mut self) {
        self.0.released();
    }
}

/// What `checkout --pull` checks out: the snapshot while it arrives, or, when the pull
/// fetched no manifest (the store had the snapshot by the time the pull ran), the snapshot
/// in the store.
pub enum Beside<'a> {
    /// Snapshot `.0` is still arriving: check it out per file as its blobs arrive.
    Arriving(
        cowtree_store::Hash,
        &'a cowtree_store::checkout::Arriving<'a>,
    ),
    /// Snapshot `.0` is in the store.
    InStore(cowtree_store::Hash),
}

/// Pulls `what` (a snapshot on `remote`, or the default remote) into `store` while
/// `checkout` writes it: `checkout` starts as soon as the snapshot's manifest is fetched and
/// checked, and writes each file whose blob the pull fetches as the pull places that blob.
/// A pull that fails stops the checkout (which takes back what it made) and its error is the
/// one returned; interrupted, the pull's staging and the checkout's are both taken back.
/// `json`: no message about the pull.
pub fn pull_beside<T>(
    store: &Store,
    remote: Option<&str>,
    what: &str,
    json: bool,
    checkout: impl FnOnce(Beside<'_>) -> Result<T, CliError>,
) -> Result<(cowtree_store::Hash, T), CliError> {
    use cowtree_remote::arrivals::Arrivals;
    let remote = open_remote(store, remote)?;
    let arrivals = Arrivals::settled();
    // Called once: beside the pull, or after it.
    let mut checkout = Some(checkout);
    let mut check = |beside: Beside<'_>| match checkout.take() {
        Some(f) => f(beside),
        None => Err(CliError::new("internal error: the checkout ran twice")),
    };
    let wanted = [what.to_string()];
    let (pulled, checked) = std::thread::scope(|s| {
        // Once the checkout is over (or never started, or panicked, or a thread could not be
        // started), a failed pull may take the store to itself to clean up
        // (`Watch::stopped`).
        let release = Release(&arrivals);
        let puller = s.spawn(|| {
            // No bar of its own: the checkout's counts what arrives, as it writes it.
            let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                cowtree_remote::pull::pull_watched(
                    store,
                    &remote,
                    &wanted,
                    &PullOptions::default(),
                    &Progress::default(),
                    &arrivals,
                )
            }))
            .unwrap_or_else(|_| {
                Err(cowtree_remote::Error::Config(
                    "internal error: the pull panicked".into(),
                ))
            });
            // Every wait of the checkout ends, whatever the pull did.
            arrivals.end(r.as_ref().map(|_| ()).map_err(|e| e.to_string()));
            r
        });
        // Blobs are handed to the checkout once written back, many at a time
        // (`Arrivals::settle`). On a descriptor of its own: Linux reports a writeback error
        // once per open file, and the pull's own `syncfs` on the store's must see it too.
        #[cfg(unix)]
        s.spawn(|| {
            let own = std::fs::File::open(store.root().join("blobs"));
            arrivals.settle(cowtree_remote::arrivals::SETTLE_PACE, || match &own {
                Ok(dir) => cowtree_fs::sys::sync_filesystem(dir).map_err(std::io::Error::from),
                // The first round fails, and the blobs go out as they come.
                Err(e) => Err(std::io::Error::new(e.kind(), e.to_string())),
            })
        });
        // Windows: the store's own rule (a volume flush where this user may; each blob was
        // flushed by its writer).
        #[cfg(windows)]
        s.spawn(|| {
            arrivals.settle(cowtree_remote::arrivals::SETTLE_PACE, || {
                store.sync_filesystem().map_err(std::io::Error::other)
            })
        });
        let checked = arrivals.manifest().map(|(id, manifest)| {
            let stopped = |e| cowtree_store::Error::SnapshotArriving {
                id,
                why: format!("{e}"),
            };
            let coming = |hashes: &[cowtree_store::Hash]| arrivals.coming(hashes);
            let next = |out: &mut Vec<cowtree_store::Hash>| arrivals.next(out).map_err(stopped);
            let recorded = || arrivals.recorded().map_err(stopped);
            let arriving = cowtree_store::checkout::Arriving {
                manifest: &manifest,
                coming: &coming,
                next: &next,
                recorded: &recorded,
            };
            (id, check(Beside::Arriving(id, &arriving)))
        });
        drop(release);
        let pulled = puller.join().unwrap_or_else(|_| {
            Err(cowtree_remote::Error::Config(
                "internal error: the pull panicked".into(),
            ))
        });
        (pulled, checked)
    });
    // The pull's error first: a checkout it stopped failed because of it.
    let r = pulled.map_err(remote_error)?;
    if !json {
        eprintln!(
            "cowtree: pulled {} from {}: {} ({} blobs) received, {} blobs already here",
            what,
            remote.name(),
            human(r.bytes_received),
            r.blobs_received,
            r.blobs_skipped
        );
    }
    match checked {
        Some((id, made)) => Ok((id, made?)),
        None => {
            let id = r
                .ids
                .first()
                .copied()
                .ok_or_else(|| CliError::new(format!("pull of {what} returned no snapshot")))?;
            Ok((id, check(Beside::InStore(id))?))
        }
    }
}
