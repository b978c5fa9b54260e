//! The remote's error type. Messages name the remote and, where there is one, the key.

use std::io;
use std::path::PathBuf;

/// An error from a remote operation.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A bad or missing remote configuration.
    #[error("{0}")]
    Config(String),
    /// From the local store.
    #[error(transparent)]
    Store(#[from] cowtree_store::Error),
    /// A local file.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// What happened.
        source: io::Error,
    },
    /// The remote refused the credentials, or there were none.
    #[error(
        "remote {remote}: access denied ({detail}); credentials come from AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or the AWS_PROFILE section of ~/.aws/credentials"
    )]
    Auth {
        /// The remote.
        remote: String,
        /// The server's words.
        detail: String,
    },
    /// The bucket (or the directory of a file:// remote) does not exist.
    #[error("remote {remote}: {what} does not exist")]
    NoBucket {
        /// The remote.
        remote: String,
        /// The bucket or directory.
        what: String,
    },
    /// The snapshot asked for is not on the remote (no such name, id or id prefix there).
    #[error("remote {remote}: {what}{}", listing(names, *more))]
    NotFound {
        /// The remote.
        remote: String,
        /// What is not there.
        what: String,
        /// Names the remote does have (the first ones, sorted).
        names: Vec<String>,
        /// How many more names it has.
        more: usize,
    },
    /// The remote's server cannot be reached: a refused or timed out connection, a host name
    /// that does not resolve. Nothing was sent.
    #[error("remote {remote}: cannot connect to {endpoint}: {cause}")]
    Unreachable {
        /// The remote.
        remote: String,
        /// The endpoint (the URL of the server).
        endpoint: String,
        /// Why, in one line.
        cause: String,
    },
    /// An object the operation needs (a pack, a manifest a name points at) is not on the
    /// remote: its data is incomplete.
    #[error("remote {remote}: {what}")]
    Missing {
        /// The remote.
        remote: String,
        /// What is missing, with its key.
        what: String,
    },
    /// Remote data that fails a check (hash, size, decoding). Nothing was recorded.
    #[error("remote {remote}: {key}: {detail}; nothing was recorded")]
    Corrupt {
        /// The remote.
        remote: String,
        /// The object's key.
        key: String,
        /// What is wrong, naming the snapshot.
        detail: String,
    },
    /// A blob of the local store whose bytes do not match its name (or size): the store is
    /// damaged. Nothing with it was completed on the remote.
    #[error(
        "the local blob {} does not match its name or size: the store is damaged; `{}` lists \
         what else is",
        blob.display(),
        cowtree_store::error::command(store, &["verify"], std::path::Path::new(""))
    )]
    BadLocalBlob {
        /// The store.
        store: PathBuf,
        /// The blob's file.
        blob: PathBuf,
    },
    /// Someone else changed a name on the remote since this store last saw it.
    #[error("remote {remote}: name {name:?} conflict: {detail}")]
    Conflict {
        /// The remote.
        remote: String,
        /// The snapshot name.
        name: String,
        /// What this store expected and what is there.
        detail: String,
    },
    /// A pull would move a local name off a snapshot it points at, and this store did not set
    /// it from the remote's name (see [`crate::pull::pull_with`]). Nothing was pulled.
    #[error(
        "local name {name:?} points at snapshot {}, not at {} as {name:?} on the remote \
         {remote} does, and this store did not set it from there; nothing was pulled",
        &local.to_hex()[..12],
        &incoming.to_hex()[..12]
    )]
    LocalName {
        /// The remote.
        remote: String,
        /// The name.
        name: String,
        /// Where the local name points.
        local: cowtree_store::Hash,
        /// Where the remote's name points.
        incoming: cowtree_store::Hash,
    },
    /// A pull stopped by a full disk (or quota), and what became of the blobs it had placed.
    #[error("{source}; {cleanup}")]
    DiskFull {
        /// What stopped it.
        source: Box<Error>,
        /// The blobs it had placed.
        cleanup: Cleanup,
    },
    /// A lock this operation needs is held by others (a gc, or pushes) past the time it waits.
    #[error(
        "remote {remote}: could not take a {kind} lock within {waited} s: {holder}; a lock is \
         taken for stale once the server has not seen it rewritten for {stale} s (or at once, \
         on the host that wrote it, when its process is gone)"
    )]
    Locked {
        /// The remote.
        remote: String,
        /// The lock wanted.
        kind: &'static str,
        /// The lock in the way.
        holder: String,
        /// Seconds waited.
        waited: u64,
        /// Seconds after which a lock not rewritten is stale.
        stale: u64,
    },
    /// The lock this operation held can no longer be trusted (deleted by another host as
    /// stale, or not rewritten for too long): it stopped before committing or deleting more.
    #[error(
        "remote {remote}: the {kind} lock {key} can no longer be trusted ({why}); stopped \
         before committing or deleting anything more; run it again"
    )]
    LockLost {
        /// The remote.
        remote: String,
        /// The lock's key.
        key: String,
        /// Its kind.
        kind: &'static str,
        /// Why.
        why: String,
    },
    /// The server does not behave as the lock discipline needs.
    #[error("remote {remote}: {detail}")]
    Inconsistent {
        /// The remote.
        remote: String,
        /// What it did.
        detail: String,
    },
    /// Any other failure of a request, after retries.
    #[error("remote {remote}: {key}: {source}")]
    Request {
        /// The remote.
        remote: String,
        /// The key concerned.
        key: String,
        /// The object store's error.
        source: Box<object_store::Error>,
    },
}

/// What a pull stopped by a full disk did with the blobs it had placed in the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cleanup {
    /// Removed them (those no snapshot names).
    Removed {
        /// How many.
        blobs: u64,
        /// Their bytes.
        bytes: u64,
    },
    /// Left them in the store, for `cowtree gc` (or the next pull) to deal with.
    Left {
        /// How many.
        blobs: u64,
        /// Their bytes.
        bytes: u64,
        /// Why they were not removed.
        why: String,
        /// The store they are in.
        store: PathBuf,
    },
}

impl std::fmt::Display for Cleanup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Cleanup::Removed { blobs, bytes } => write!(
                f,
                "removed the {blobs} blob(s) ({}) this pull had fetched; nothing was recorded",
                human_bytes(*bytes)
            ),
            Cleanup::Left {
                blobs,
                bytes,
                why,
                store,
            } => write!(
                f,
                "the {blobs} blob(s) ({}) this pull had fetched are still in the store ({why}): \
                 `cowtree --store {} gc` frees them; nothing was recorded",
                human_bytes(*bytes),
                cowtree_store::error::shell_word(store)
            ),
        }
    }
}

/// "1.2 MiB" and the like.
fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// Result with [`Error`].
pub type Result<T> = std::result::Result<T, Error>;

/// " (it has the names a, b, ... and N more)", or " (it has no names)".
fn listing(names: &[String], more: usize) -> String {
    if names.is_empty() {
        return " (it has no names)".into();
    }
    let tail = if more > 0 {
        format!(" and {more} more")
    } else {
        String::new()
    };
    format!(" (it has the names {}{tail})", names.join(", "))
}

impl Error {
    /// The exit code the command line gives this error (documented in docs/remote.md):
    /// 1 other errors, 5 a name conflict, 6 access denied or missing bucket, 7 corrupt or
    /// missing remote data, 8 the snapshot asked for is not there.
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Conflict { .. } | Error::LocalName { .. } => 5,
            Error::Auth { .. } | Error::NoBucket { .. } => 6,
            Error::Corrupt { .. } | Error::Missing { .. } => 7,
            Error::NotFound { .. } => 8,
            Error::Store(e) if e.is_snapshot_not_found() => 8,
            Error::DiskFull { source, .. } => source.exit_code(),
            Error::Store(cowtree_store::Error::Strict(_)) => 3,
            _ => 1,
        }
    }
}
