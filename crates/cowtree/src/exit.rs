//! Exit codes, the error type commands return, and how an error is printed (a `cowtree: ...`
//! line on stderr; with `--json`, also one JSON object on stdout).
//!
//! | code | meaning |
//! |---|---|
//! | 0 | success |
//! | 1 | an error (the message names the path) |
//! | 2 | bad usage |
//! | 3 | `--strict` refused a fallback |
//! | 4 | the check found problems (`verify`, `status --exit-code` uses 1 as git does) |
//! | 5, 6, 7, 8 | a remote: a name conflict, access denied, damaged data, a snapshot it lacks |
//! | 8 | the snapshot asked for does not exist (in the stores searched, or on the remote) |
//! | 129, 130, 143 | interrupted by SIGHUP, SIGINT, SIGTERM |
//!
//! The JSON error object is `{"error": {"kind": K, "message": M, "path": P}, "exit": N}` (`path`
//! only when the error is about one path); its schema is in docs/json.md and [`Kind`] lists the
//! kinds.

use std::fmt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Successful completion with a chosen exit status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Exit 0.
    Ok,
    /// Exit with this code (e.g. 1 for "dirty" under `status --exit-code`).
    Code(u8),
}

impl From<Exit> for ExitCode {
    fn from(e: Exit) -> ExitCode {
        match e {
            Exit::Ok => ExitCode::SUCCESS,
            Exit::Code(c) => ExitCode::from(c),
        }
    }
}

/// What kind of failure an error is: the `kind` of the JSON error object, for a program to act
/// on without reading the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Bad usage: an unknown option, a missing or invalid argument (exit 2).
    Usage,
    /// What was asked for (a snapshot, a worktree, a store, a branch, a revision) does not exist.
    NotFound,
    /// A destination that must be new is there already.
    Exists,
    /// `--strict` (or `--mode clone`) refused a fallback (exit 3).
    Strict,
    /// Local changes, a conflict, or an entry in the way: nothing was changed.
    Conflict,
    /// git refused the operation for a reason of its own (a branch checked out elsewhere, an
    /// existing branch, a locked worktree, an invalid name, a bad combination of options).
    Refused,
    /// The store (or remote data) is damaged.
    Corrupt,
    /// An operating-system error on a file or directory.
    Io,
    /// A remote refused access or does not exist (exit 6).
    RemoteAccess,
    /// The command was stopped by a signal (exit 128 + the signal).
    Interrupted,
    /// A hook git runs failed after the work was done (exit: the hook's); `path` is what was
    /// made, and stays.
    Hook,
    /// What was asked for has no meaning on this platform (btrfs subvolumes on Windows):
    /// nothing was changed (exit 2).
    Unsupported,
    /// Anything else.
    Error,
}

impl Kind {
    /// The kind as it appears in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Usage => "usage",
            Kind::NotFound => "not-found",
            Kind::Exists => "exists",
            Kind::Strict => "strict",
            Kind::Conflict => "conflict",
            Kind::Refused => "refused",
            Kind::Corrupt => "corrupt",
            Kind::Io => "io",
            Kind::RemoteAccess => "remote-access",
            Kind::Interrupted => "interrupted",
            Kind::Hook => "hook",
            Kind::Unsupported => "unsupported",
            Kind::Error => "error",
        }
    }

    /// The kind an exit code implies when nothing more precise is known.
    fn of_code(code: u8) -> Kind {
        match code {
            2 => Kind::Usage,
            3 => Kind::Strict,
            5 => Kind::Conflict,
            6 => Kind::RemoteAccess,
            7 => Kind::Corrupt,
            8 => Kind::NotFound,
            _ => Kind::Error,
        }
    }
}

/// A command failure: a message for stderr, an exit code, its [`Kind`] and the path it is
/// about (if one).
#[derive(Debug)]
pub struct CliError {
    msg: String,
    code: u8,
    kind: Kind,
    path: Option<PathBuf>,
}

impl CliError {
    /// A general error (exit 1).
    pub fn new(msg: impl Into<String>) -> Self {
        Self::with_code(msg, 1)
    }

    /// What was asked for has no meaning on this platform (exit 2, kind `unsupported`).
    #[cfg_attr(unix, allow(dead_code))]
    pub fn unsupported(msg: impl Into<String>) -> Self {
        Self::with_code(msg, 2).kind(Kind::Unsupported)
    }

    /// An error with a specific exit code.
    pub fn with_code(msg: impl Into<String>, code: u8) -> Self {
        Self {
            msg: msg.into(),
            code,
            kind: Kind::of_code(code),
            path: None,
        }
    }

    /// A general error saying that what was asked for does not exist.
    pub fn not_found(msg: impl Into<String>) -> Self {
        Self::new(msg).kind(Kind::NotFound)
    }

    /// The same error, of kind `kind`. Bad usage exits 2, whatever code the error had
    /// ([`Kind::Usage`] and exit 2 go together, docs/json.md).
    pub fn kind(mut self, kind: Kind) -> Self {
        self.kind = kind;
        if kind == Kind::Usage {
            self.code = 2;
        }
        self
    }

    /// The same error, about `path`.
    pub fn path(mut self, path: impl Into<PathBuf>) -> Self {
        self.path = Some(path.into());
        self
    }

    /// The exit code.
    pub fn exit_code(&self) -> u8 {
        self.code
    }

    /// The JSON error object printed on stdout under `--json`.
    pub fn to_json(&self) -> serde_json::Value {
        error_json(self.kind, &self.msg, self.path.as_deref(), self.code)
    }
}

/// `{"error": {"kind", "message", "path"?}, "exit": code}`.
pub fn error_json(kind: Kind, message: &str, path: Option<&Path>, code: u8) -> serde_json::Value {
    let mut error = serde_json::Map::new();
    error.insert("kind".into(), kind.as_str().into());
    error.insert("message".into(), message.into());
    if let Some(p) = path {
        error.insert("path".into(), p.to_string_lossy().into_owned().into());
    }
    serde_json::json!({ "error": error, "exit": code })
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.msg)
    }
}

impl From<std::io::Error> for CliError {
    fn from(e: std::io::Error) -> Self {
        Self::new(e.to_string()).kind(Kind::Io)
    }
}

/// What commands return.
pub type CmdResult = Result<Exit, CliError>;

impl From<cowtree_store::Error> for CliError {
    fn from(e: cowtree_store::Error) -> Self {
        let code = if e.is_strict_refusal() {
            3
        } else if e.is_snapshot_not_found() {
            8
        } else {
            1
        };
        let (kind, path) = store_kind(e.cause());
        let err = Self::with_code(e.to_string(), code).kind(kind);
        match path {
            Some(p) => err.path(p),
            None => err,
        }
    }
}

/// The kind of a store (or worktree) error and the path it is about.
fn store_kind(e: &cowtree_store::Error) -> (Kind, Option<PathBuf>) {
    use cowtree_store::Error as E;
    use cowtree_store::error::{Corrupt, NotFound};
    match e {
        E::NotFound(nf) => (
            Kind::NotFound,
            match nf {
                NotFound::Worktree { path, .. } | NotFound::Directory(path) => Some(path.clone()),
                _ => None,
            },
        ),
        E::AlreadyExists { path, .. } => (Kind::Exists, Some(path.clone())),
        E::Strict(_) => (Kind::Strict, None),
        E::CrossDevice { destination, .. } => (Kind::Strict, Some(destination.clone())),
        E::Corrupt(c) => (
            Kind::Corrupt,
            match c {
                Corrupt::SnapshotBytes { path, .. }
                | Corrupt::FormatFile { path, .. }
                | Corrupt::Record { path, .. } => Some(path.clone()),
                Corrupt::MissingBlob { needed_for, .. } => Some(needed_for.clone()),
                _ => None,
            },
        ),
        E::Manifest { .. } => (Kind::Corrupt, None),
        E::Dirty { worktree, .. }
        | E::Conflict { worktree, .. }
        | E::Interrupted { worktree, .. } => (Kind::Conflict, Some(worktree.clone())),
        E::InTheWay { path, .. } => (Kind::Conflict, Some(path.clone())),
        E::IoAt { path, .. } | E::FromBlob { path, .. } => (Kind::Io, Some(path.clone())),
        E::Io(_) => (Kind::Io, None),
        E::NotAStore { path } | E::BadDestination { path } | E::NotDurable { path, .. } => {
            (Kind::Error, Some(path.clone()))
        }
        E::UnsupportedFormat { store, .. } => (Kind::Error, Some(store.clone())),
        E::BeingRemoved { path } => (Kind::Conflict, Some(path.clone())),
        E::RemoveRefused(r) => (
            match r {
                cowtree_store::remove::Refused::NotAStore { .. } => Kind::Error,
                _ => Kind::Conflict,
            },
            Some(r.path().to_path_buf()),
        ),
        _ => (Kind::Error, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_error_has_kind_message_exit_and_path_only_when_known() {
        let e = CliError::new("boom").kind(Kind::Io).path("/x/y");
        assert_eq!(
            e.to_json(),
            serde_json::json!({"error": {"kind": "io", "message": "boom", "path": "/x/y"}, "exit": 1})
        );
        let e = CliError::with_code("no", 3);
        assert_eq!(
            e.to_json(),
            serde_json::json!({"error": {"kind": "strict", "message": "no"}, "exit": 3})
        );
    }

    #[test]
    fn store_not_found_keeps_its_kind_and_path() {
        let e: CliError = cowtree_store::Error::NotFound(
            cowtree_store::error::NotFound::Directory("/nope".into()),
        )
        .into();
        assert_eq!(e.exit_code(), 1, "a directory is no snapshot");
        assert_eq!(e.to_json()["error"]["path"], "/nope");
        assert_eq!(e.to_json()["error"]["kind"], "not-found");
    }
}
