//! The error type of the store and of the worktree layer (which re-exports it).
//!
//! The variants are the conditions a caller acts on: something not found, something already
//! there, a worktree with changes, an entry in the way, a corrupt store, a refused fallback, an
//! interrupted operation. I/O errors keep the OS error as their `source` and name the path.
//! [`Error::Msg`] is left for failures a caller can only report. Every message names the path,
//! blob, snapshot or worktree concerned.

use std::fmt::Write as _;
use std::io;
use std::path::{Path, PathBuf};

use crate::hash::Hash;
use crate::manifest::ManifestError;

/// An error from a store or worktree operation.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An I/O error whose own message names the path (as the path-taking calls of cowtree-fs
    /// do), or where no path applies. Prefer [`Error::IoAt`].
    #[error("{0}")]
    Io(#[from] io::Error),
    /// An I/O error on one path.
    #[error("{}{}: {source}", op_prefix(op), path.display())]
    IoAt {
        /// What was being done ("write", "sync", ...), or empty.
        op: &'static str,
        /// The path.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// A failure a caller can only report, described in words.
    #[error("{0}")]
    Msg(String),
    /// A snapshot checked out while it arrives ([`crate::checkout::Arriving`]) stopped
    /// arriving, or its manifest is not the snapshot's: the checkout took back what it made.
    #[error("snapshot {id} did not arrive: {why}")]
    SnapshotArriving {
        /// The snapshot.
        id: Hash,
        /// What stopped it (the pull's error, or the manifest's fault).
        why: String,
    },
    /// `--strict` refused a fallback (copy instead of clone, or a cross-device checkout).
    #[error("{0}")]
    Strict(String),
    /// A manifest that does not decode or validate; `context` says which one.
    #[error("{context}: {source}")]
    Manifest {
        /// Which manifest (a snapshot id or a file name).
        context: String,
        /// What is wrong with it.
        source: ManifestError,
    },
    /// A snapshot, name, worktree or directory that does not exist.
    #[error("{0}")]
    NotFound(NotFound),
    /// A snapshot id prefix that matches more than one snapshot.
    #[error(
        "snapshot prefix {prefix} is ambiguous; it matches:\n  {}",
        matches.iter().map(Hash::to_hex).collect::<Vec<_>>().join("\n  ")
    )]
    AmbiguousPrefix {
        /// The prefix given.
        prefix: String,
        /// Every snapshot it matches.
        matches: Vec<Hash>,
    },
    /// A snapshot name that is not valid.
    #[error("invalid snapshot name {name:?}: {why}")]
    InvalidName {
        /// The name given.
        name: String,
        /// What is wrong with it.
        why: String,
    },
    /// A destination that must be new (or empty) is there already; nothing was written to it.
    #[error("{what} {} {how}", path.display())]
    AlreadyExists {
        /// What the path is for ("checkout destination").
        what: &'static str,
        /// The path.
        path: PathBuf,
        /// What is there ("exists and is not empty", ...).
        how: &'static str,
    },
    /// An I/O error placing the file `path` from the store's blob `blob`.
    #[error("{} (from blob {}): {source}", path.display(), blob.display())]
    FromBlob {
        /// The file being placed.
        path: PathBuf,
        /// The blob's path in the store.
        blob: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// A clone failed for a reason that applies to the whole filesystem pair after clones
    /// had worked in the same run: something changed under it, and copying now would hide it.
    #[error("clone of {} failed ({reason}) after clones had worked in this checkout", path.display())]
    CloneFailedAfterSuccess {
        /// The file.
        path: PathBuf,
        /// Why the clone failed (a short name, e.g. `filesystem-cannot-reflink`).
        reason: &'static str,
    },
    /// A destination path that cannot name a new directory (`/`, `.`, `..`).
    #[error("checkout destination {} must name a new directory", path.display())]
    BadDestination {
        /// The path given.
        path: PathBuf,
    },
    /// The work is in place at `path` and registered, but syncing its directory failed, so it
    /// may not survive a power loss.
    #[error(
        "the checkout is in place at {} and registered, but its directory could not be \
         synced, so it may not survive a power loss: {source}",
        path.display()
    )]
    NotDurable {
        /// Where the work is.
        path: PathBuf,
        /// Why the sync failed.
        #[source]
        source: io::Error,
    },
    /// A worktree has changes against its base, and the operation would lose them; nothing
    /// was changed.
    #[error(
        "worktree {} has {} change(s) against its base, refusing to delete it (use --force):{}",
        worktree.display(),
        total,
        listing(changes, *total)
    )]
    Dirty {
        /// The worktree.
        worktree: PathBuf,
        /// The first changes, as shown to a user.
        changes: Vec<String>,
        /// How many changes there are in all.
        total: usize,
    },
    /// A switch would overwrite local changes or untracked files; nothing was changed.
    #[error(
        "switch of {} to {to} refused, nothing was changed: {total} path(s) it must touch have \
         local changes or untracked files in the way (commit them with `{}`, discard them with \
         `{}`, or use --force):{}",
        worktree.display(),
        command(store, &["snapshot", "-C"], worktree),
        command(store, &["reset", "--hard", "-C"], worktree),
        listing(paths, *total)
    )]
    Conflict {
        /// The worktree.
        worktree: PathBuf,
        /// Its store.
        store: PathBuf,
        /// The snapshot it was to be switched to.
        to: Hash,
        /// The first paths in the way, each with the reason.
        paths: Vec<String>,
        /// How many paths are in the way in all.
        total: usize,
    },
    /// An entry in a worktree is in the way of what a snapshot puts there and was not
    /// replaced.
    #[error("{} {what}{hint}", path.display())]
    InTheWay {
        /// The entry in the way.
        path: PathBuf,
        /// Why it is in the way.
        what: String,
        /// What the user can do, or empty.
        hint: &'static str,
    },
    /// The store holds something it should not: a damaged file, or a missing blob.
    #[error("{0}")]
    Corrupt(Corrupt),
    /// The store's layout version is not the one this cowtree reads.
    #[error(
        "store {} has format version {found}; this cowtree reads version {supported} \
         (use a cowtree that matches, or another --store)",
        store.display()
    )]
    UnsupportedFormat {
        /// The store.
        store: PathBuf,
        /// The version it has.
        found: u32,
        /// The version this cowtree reads.
        supported: u32,
    },
    /// A directory that is neither empty nor a store was given as the store.
    #[error(
        "{} is not empty and is not a cowtree store (no format file); refusing to use it as one \
         (if it is what is left of a store, e.g. after `rm -rf` stopped at its read-only tree \
         subvolumes, `cowtree stores rm {}` removes it)",
        path.display(),
        shell_word(path)
    )]
    NotAStore {
        /// The directory.
        path: PathBuf,
    },
    /// A store whose removal (`cowtree stores rm`) began and did not finish.
    #[error(
        "the store {} is being removed (its removal stopped partway); \
         `cowtree stores rm {}` finishes removing it",
        path.display(),
        shell_word(path)
    )]
    BeingRemoved {
        /// The store.
        path: PathBuf,
    },
    /// `cowtree stores rm` refused: nothing was removed.
    #[error("{0}")]
    RemoveRefused(Refused),
    /// A worktree has an unfinished switch; it must be finished (or reset) first.
    #[error(
        "worktree {} has an interrupted switch to {to}; `{} {to}` finishes it (as do a reset \
         and a snapshot of the worktree)",
        worktree.display(),
        command(store, &["switch", "-C"], worktree)
    )]
    Interrupted {
        /// The worktree.
        worktree: PathBuf,
        /// Its store.
        store: PathBuf,
        /// The snapshot the switch was going to.
        to: Hash,
    },
    /// `--strict`: the store and the destination are on different filesystems, so files
    /// would be copied, not cloned. Nothing was written.
    #[error(
        "a clone was required (--mode clone, --strict): {}",
        cross_device_message(store, destination)
    )]
    CrossDevice {
        /// The store.
        store: PathBuf,
        /// The destination.
        destination: PathBuf,
    },
    /// A snapshot that reads every file of a tree on another filesystem than the store would
    /// copy its data into the store instead of sharing it, and copying was not asked for.
    /// Nothing was recorded.
    #[error(
        "store {} is on another filesystem than {}: recording it would copy its data into the \
         store instead of sharing it; nothing was recorded",
        store.display(),
        tree.display()
    )]
    WouldCopy {
        /// The store.
        store: PathBuf,
        /// The tree to record.
        tree: PathBuf,
    },
    /// An operation stopped because of `source`; `context` says what that means for it.
    #[error("{context}: {source}")]
    Context {
        /// What the stop means ("gc stopped before deleting anything").
        context: &'static str,
        /// Why it stopped.
        #[source]
        source: Box<Error>,
    },
    /// No store was named and the default location is unknown.
    #[error(
        "cannot locate the default store: neither XDG_DATA_HOME nor HOME is set (name one with \
         --store or COWTREE_STORE)"
    )]
    NoStoreLocation,
    /// A JSON manifest (the interchange format) that is not valid.
    #[error("{0}")]
    InvalidInput(String),
    /// A bug: something this code holds to be impossible happened (a worker thread panicked,
    /// a step found what an earlier one should have made missing). Nothing to act on but
    /// report it.
    #[error("internal error: {0}")]
    Internal(String),
    /// A snapshot, directory or tree past what the encodings can index (2^32 entries,
    /// directories or bytes); the message says which limit.
    #[error("{0}")]
    TooLarge(String),
    /// A directory whose incremental record would pass the 4 GiB its offsets can address:
    /// `--full` records it all the same.
    #[error(
        "{}: directory too large to record incrementally ({entries} entries, {bytes} bytes of \
         manifest); use --full",
        path.display()
    )]
    TooLargeForIncremental {
        /// The directory.
        path: PathBuf,
        /// Its entries.
        entries: usize,
        /// Its manifest bytes.
        bytes: usize,
    },
    /// `snapshot` was asked to record the store into itself.
    #[error("snapshot: {} is the store itself", path.display())]
    StoreItself {
        /// The directory named, the store's root.
        path: PathBuf,
    },
    /// A FIFO, socket or device found in a tree to record: only files, directories and
    /// symlinks can be. `file_type` is shown as the message's `how` says.
    #[error("{}: {how}; only files, directories and symlinks can be recorded", path.display())]
    SpecialFile {
        /// The entry.
        path: PathBuf,
        /// What it is, in words ("is a fifo (special file)").
        how: String,
    },
    /// A name or symlink target longer than a manifest can hold.
    #[error("{}: its name or target is too long to record", path.display())]
    NameTooLong {
        /// The entry.
        path: PathBuf,
    },
    /// The directory a checkout made was replaced or moved before its stat cache was
    /// recorded: the checkout stands, its worktree is not registered.
    #[error(
        "{} is no longer the directory the checkout made (it was replaced or moved); no stat \
         cache recorded",
        path.display()
    )]
    Replaced {
        /// The checkout's destination.
        path: PathBuf,
    },
}

/// What was not found.
#[derive(Debug, thiserror::Error)]
pub enum NotFound {
    /// No snapshot with this id.
    #[error("snapshot {0} does not exist")]
    Snapshot(Hash),
    /// A name points at a snapshot that is not in the store.
    #[error("name {name:?} points at snapshot {id}, which does not exist")]
    NameTarget {
        /// The name.
        name: String,
        /// The snapshot it names.
        id: Hash,
    },
    /// No snapshot id starts with this prefix.
    #[error("no snapshot id starts with {0}")]
    Prefix(String),
    /// What was given is neither a name nor an id (nor a long enough prefix) of a snapshot.
    #[error(
        "no snapshot named {given:?} and no snapshot with that id{}",
        prefix_hint(given)
    )]
    Snapshotish {
        /// What was given.
        given: String,
    },
    /// A directory is not a registered worktree (or, with `inside`, not inside one).
    #[error(
        "{} is not {}a worktree registered in the store {}{}",
        path.display(),
        if *inside { "inside " } else { "" },
        store.display(),
        if *inside {
            " (name one; `cowtree checkout --help` says how to make one)"
        } else {
            " (`cowtree checkout --help` says how to make one)"
        }
    )]
    Worktree {
        /// The directory.
        path: PathBuf,
        /// The store asked.
        store: PathBuf,
        /// Whether the question was "inside a worktree" rather than "a worktree root".
        inside: bool,
    },
    /// A path that is not an existing directory where one is needed.
    #[error("{} is not a directory", .0.display())]
    Directory(PathBuf),
    /// No store has the snapshot: several were searched.
    #[error(
        "no snapshot {given:?} in any known store ({})",
        stores.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
    )]
    InStores {
        /// What was given.
        given: String,
        /// The stores searched, in the order searched.
        stores: Vec<PathBuf>,
    },
    /// No store exists to look in for a checkout to `dst` (or the one named does not exist).
    #[error(
        "{}",
        match named {
            Some(named) => format!("no store at {}", named.display()),
            None => format!(
                "no store found for {}: none exists yet (`cowtree snapshot --help` says how to \
                 record a tree, which creates one)",
                dst.display()
            ),
        }
    )]
    NoStore {
        /// The checkout's destination.
        dst: PathBuf,
        /// The store named, if one was.
        named: Option<PathBuf>,
    },
}

/// What in the store is damaged.
#[derive(Debug, thiserror::Error)]
pub enum Corrupt {
    /// A ref file that does not hold an id.
    #[error("ref {name:?} is corrupt: {text:?}")]
    Ref {
        /// The name.
        name: String,
        /// What the file holds (trimmed).
        text: String,
    },
    /// A manifest file whose bytes do not hash to its id.
    #[error("snapshot {id}: manifest bytes do not match the id (the file {} is corrupt)", path.display())]
    SnapshotBytes {
        /// The snapshot.
        id: Hash,
        /// Its manifest file.
        path: PathBuf,
    },
    /// A blob a snapshot names is not in the store.
    #[error(
        "blob {hash} is missing from the store (needed for {}); the store is damaged: `{}` \
         lists what else is",
        needed_for.display(),
        command(store, &["verify"], Path::new(""))
    )]
    MissingBlob {
        /// The store.
        store: PathBuf,
        /// The blob.
        hash: Hash,
        /// The path that needs it.
        needed_for: PathBuf,
    },
    /// The store's format file holds something unrecognised.
    #[error("store {}: unrecognised format file {text:?}; refusing to use it", path.display())]
    FormatFile {
        /// The format file.
        path: PathBuf,
        /// What it holds (trimmed).
        text: String,
    },
    /// A worktree record that cannot be used.
    #[error("worktree record {}: {why}", path.display())]
    Record {
        /// The record's file.
        path: PathBuf,
        /// What is wrong with it.
        why: String,
    },
}

impl Error {
    /// An error described by `msg`.
    pub fn msg(msg: impl Into<String>) -> Error {
        Error::Msg(msg.into())
    }

    /// An I/O error on `path` while doing `op` (empty when the path says enough).
    pub fn io_at(op: &'static str, path: impl AsRef<Path>, source: io::Error) -> Error {
        Error::IoAt {
            op,
            path: path.as_ref().to_path_buf(),
            source,
        }
    }

    /// An invalid JSON manifest, described by `why`.
    pub fn invalid_input(why: impl Into<String>) -> Error {
        Error::InvalidInput(why.into())
    }

    /// An [`Error::Internal`]: `what` is what went wrong, after "internal error: ".
    pub fn internal(what: impl Into<String>) -> Error {
        Error::Internal(what.into())
    }

    /// The error that stopped the operation (the one inside [`Error::Context`]).
    pub fn cause(&self) -> &Error {
        match self {
            Error::Context { source, .. } => source.cause(),
            e => e,
        }
    }

    /// True when this is a refusal to copy where a clone was required (`--strict`, or a
    /// snapshot across filesystems that did not ask to copy): the CLI exits 3 for it.
    pub fn is_strict_refusal(&self) -> bool {
        matches!(
            self.cause(),
            Error::Strict(_) | Error::CrossDevice { .. } | Error::WouldCopy { .. }
        )
    }

    /// True when something asked for does not exist.
    pub fn is_not_found(&self) -> bool {
        matches!(self.cause(), Error::NotFound(_))
    }

    /// True when what does not exist is a snapshot (or a name of one) that was asked for: the
    /// CLI gives this its own exit code.
    pub fn is_snapshot_not_found(&self) -> bool {
        matches!(
            self.cause(),
            Error::NotFound(
                NotFound::Snapshot(_)
                    | NotFound::NameTarget { .. }
                    | NotFound::Prefix(_)
                    | NotFound::Snapshotish { .. }
                    | NotFound::InStores { .. }
            )
        )
    }

    /// True when the store is damaged (`cowtree verify` tells more).
    pub fn is_corrupt(&self) -> bool {
        matches!(self.cause(), Error::Corrupt(_))
    }

    /// The OS error behind the error, if there is one.
    pub fn io_error(&self) -> Option<&io::Error> {
        match self.cause() {
            Error::Io(e) | Error::IoAt { source: e, .. } => Some(e),
            _ => None,
        }
    }
}

impl From<NotFound> for Error {
    fn from(e: NotFound) -> Error {
        Error::NotFound(e)
    }
}

impl From<Corrupt> for Error {
    fn from(e: Corrupt) -> Error {
        Error::Corrupt(e)
    }
}

/// A subvolume call's error, which names its path, as an I/O error (its cause stays reachable
/// through [`std::io::Error::get_ref`]).
#[cfg(unix)]
impl From<cowtree_fs::subvolume::SubvolumeError> for Error {
    fn from(e: cowtree_fs::subvolume::SubvolumeError) -> Error {
        Error::Io(e.into())
    }
}

/// Result with [`Error`].
pub type Result<T> = std::result::Result<T, Error>;

fn op_prefix(op: &str) -> String {
    if op.is_empty() {
        String::new()
    } else {
        format!("{op} ")
    }
}

/// The lines of a listing: each shown item on its own line, then "..." when some were left
/// out.
fn listing(shown: &[String], total: usize) -> String {
    let mut out = String::new();
    for s in shown {
        let _ = write!(out, "\n  {s}");
    }
    if total > shown.len() {
        out.push_str("\n  ...");
    }
    out
}

fn prefix_hint(what: &str) -> String {
    if crate::hash::is_hex(what) && !crate::hash::is_id_prefix(what) {
        format!(
            " (an id prefix needs at least {} hex digits)",
            crate::hash::MIN_PREFIX
        )
    } else {
        String::new()
    }
}

/// The command `cowtree --store STORE WORDS... PATH` as a message prints it (`path` left out
/// when empty), each argument quoted as a shell needs ([`shell_word`]): naming the store makes
/// it run as printed from any directory.
pub fn command(store: &Path, words: &[&str], path: &Path) -> String {
    let mut c = format!("cowtree --store {}", shell_word(store));
    for w in words {
        c.push(' ');
        c.push_str(&shell_word(w));
    }
    if !path.as_os_str().is_empty() {
        c.push(' ');
        c.push_str(&shell_word(path));
    }
    c
}

/// `arg` as one word of a shell command, for the commands messages suggest: as it is when it
/// holds only characters no shell treats specially, else in single quotes (a quote inside
/// written `'\''`). Bytes that are not UTF-8 are shown lossily.
pub fn shell_word(arg: impl AsRef<std::ffi::OsStr>) -> String {
    let s = arg.as_ref().to_string_lossy();
    let plain = |c: char| c.is_ascii_alphanumeric() || "/._-+:=@,%".contains(c);
    if !s.is_empty() && s.chars().all(plain) {
        return s.into_owned();
    }
    format!("'{}'", s.replace('\'', "'\\''"))
}

/// Why a checkout across filesystems copies, and the fix.
pub fn cross_device_message(store: &Path, destination: &Path) -> String {
    format!(
        "store {} is on a different filesystem than {}: files will be copied, not cloned \
         (no shared data blocks). Fix: put the store on the destination's filesystem with \
         --store PATH or COWTREE_STORE=PATH",
        store.display(),
        destination.display()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn io_at_names_the_operation_and_path_and_keeps_the_source() {
        #[cfg(unix)]
        let nospc = rustix::io::Errno::NOSPC.raw_os_error();
        #[cfg(windows)]
        let nospc = windows_sys::Win32::Foundation::ERROR_DISK_FULL as i32;
        let e = Error::io_at("write", "/s/refs/x", io::Error::from_raw_os_error(nospc));
        let text = e.to_string();
        assert!(text.starts_with("write /s/refs/x: "), "{text}");
        assert_eq!(e.io_error().and_then(io::Error::raw_os_error), Some(nospc));
        assert!(std::error::Error::source(&e).is_some());
        let bare = Error::io_at("", "/s", io::Error::from(io::ErrorKind::NotFound));
        assert!(bare.to_string().starts_with("/s: "), "{bare}");
    }

    #[test]
    fn shell_words_are_quoted_only_when_a_shell_would_split_or_expand_them() {
        assert_eq!(shell_word("/m/wt-1/a.b"), "/m/wt-1/a.b");
        assert_eq!(shell_word("/m/my dir"), "'/m/my dir'");
        assert_eq!(shell_word("it's"), "'it'\\''s'");
        assert_eq!(shell_word("$HOME"), "'$HOME'");
        assert_eq!(shell_word(""), "''");
    }

    #[test]
    fn listings_show_an_ellipsis_only_when_items_were_left_out() {
        let shown = vec!["a (changed)".to_string(), "b (added)".to_string()];
        assert_eq!(listing(&shown, 2), "\n  a (changed)\n  b (added)");
        assert_eq!(listing(&shown, 3), "\n  a (changed)\n  b (added)\n  ...");
    }

    #[test]
    fn worktree_not_found_says_inside_only_when_asked_inside() {
        let root = Error::from(NotFound::Worktree {
            path: "/w".into(),
            store: "/s".into(),
            inside: false,
        })
        .to_string();
        assert_eq!(
            root,
            "/w is not a worktree registered in the store /s (`cowtree checkout --help` says how \
             to make one)"
        );
        let inside = Error::from(NotFound::Worktree {
            path: "/w/d".into(),
            store: "/s".into(),
            inside: true,
        })
        .to_string();
        assert_eq!(
            inside,
            "/w/d is not inside a worktree registered in the store /s (name one; `cowtree \
             checkout --help` says how to make one)"
        );
    }

    #[test]
    fn short_hex_gets_the_prefix_length_hint() {
        let e = NotFound::Snapshotish {
            given: "abc".into(),
        }
        .to_string();
        assert!(
            e.ends_with("(an id prefix needs at least 8 hex digits)"),
            "{e}"
        );
        let name = NotFound::Snapshotish {
            given: "topic".into(),
        }
        .to_string();
        assert_eq!(
            name,
            "no snapshot named \"topic\" and no snapshot with that id"
        );
    }

    #[test]
    fn typed_errors_say_what_the_strings_they_replaced_said() {
        let cases = [
            (
                Error::internal("a worker panicked"),
                "internal error: a worker panicked",
            ),
            (
                Error::StoreItself { path: "/s".into() },
                "snapshot: /s is the store itself",
            ),
            (
                Error::NameTooLong {
                    path: "/t/x".into(),
                },
                "/t/x: its name or target is too long to record",
            ),
            (
                Error::SpecialFile {
                    path: "/t/f".into(),
                    how: "is a fifo (special file)".into(),
                },
                "/t/f: is a fifo (special file); only files, directories and symlinks can be \
                 recorded",
            ),
            (
                Error::TooLargeForIncremental {
                    path: "/t/d".into(),
                    entries: 3,
                    bytes: 70,
                },
                "/t/d: directory too large to record incrementally (3 entries, 70 bytes of \
                 manifest); use --full",
            ),
            (
                Error::Replaced { path: "/w".into() },
                "/w is no longer the directory the checkout made (it was replaced or moved); no \
                 stat cache recorded",
            ),
        ];
        for (e, want) in cases {
            assert_eq!(e.to_string(), want);
        }
    }

    #[test]
    fn strict_refusals_include_the_cross_device_refusal() {
        let e = Error::CrossDevice {
            store: "/s".into(),
            destination: "/d".into(),
        };
        assert!(e.is_strict_refusal());
        assert!(e.to_string().starts_with(
            "a clone was required (--mode clone, --strict): store /s is on a different filesystem"
        ));
        assert!(!Error::msg("x").is_strict_refusal());
    }
}

/// Why a removal was refused; nothing was changed.
#[derive(Debug)]
pub enum Refused {
    /// The directory holds `entry`, which no store has: it is not a store, nor what is left of
    /// one.
    NotAStore {
        /// The directory.
        path: PathBuf,
        /// An entry no store has.
        entry: std::ffi::OsString,
    },
    /// Registered worktrees that exist need the store (their status, switch, reset and
    /// snapshot use it).
    Worktrees {
        /// The store.
        path: PathBuf,
        /// The worktrees.
        worktrees: Vec<PathBuf>,
    },
    /// Another process holds the store's lock (a command using it, or another removal).
    InUse {
        /// The store.
        path: PathBuf,
    },
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refused::NotAStore { path, entry } => write!(
                f,
                "{} is not a cowtree store, nor what is left of one (it holds {}, which no \
                 store has); nothing removed",
                path.display(),
                shell_word(entry)
            ),
            Refused::Worktrees { path, worktrees } => {
                write!(
                    f,
                    "{} has {} registered worktree{} that need{} it: {}; remove {} first \
                     (`cowtree worktree rm DIR`), or add --force to keep {} as plain \
                     directories no store knows; nothing removed",
                    path.display(),
                    worktrees.len(),
                    if worktrees.len() == 1 { "" } else { "s" },
                    if worktrees.len() == 1 { "s" } else { "" },
                    worktrees
                        .iter()
                        .map(|w| w.display().to_string())
                        .collect::<Vec<_>>()
                        .join(", "),
                    if worktrees.len() == 1 { "it" } else { "them" },
                    if worktrees.len() == 1 { "it" } else { "them" },
                )
            }
            Refused::InUse { path } => write!(
                f,
                "the store {} is in use by another cowtree process (its lock is held); run \
                 this again once that has finished; nothing removed",
                path.display()
            ),
        }
    }
}

impl Refused {
    /// The path the refusal is about.
    pub fn path(&self) -> &Path {
        match self {
            Refused::NotAStore { path, .. }
            | Refused::Worktrees { path, .. }
            | Refused::InUse { path } => path,
        }
    }
}
