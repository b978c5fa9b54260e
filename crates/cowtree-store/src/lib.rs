//! cowtree-store: a content-addressed store of trees, and worktrees checked out from it.
//!
//! Layout of a store directory (docs/architecture.md, "The store and worktrees"):
//!
//! ```text
//! format             "cowtree-store 1\n": the layout version; another version is refused
//! lock               flock: snapshot, checkout, verify take it shared; gc takes it exclusive
//!                    (Windows: LockFileEx, the same shared and exclusive)
//! blobs/ab/cdef...   file contents, loose, uncompressed, read-only (0444), named by BLAKE3 hex
//! snapshots/<id>     manifests (see [`manifest`]); id = BLAKE3 of the manifest bytes
//! refs/<name>        snapshot names: the id in hex and a newline
//! worktrees/<id>     one JSON record per checked-out worktree (see [`worktree_records`])
//! worktrees/staging-<pid>-...  a checkout's staging directory beside its destination, while
//!                    in use (see [`dest_staging`])
//! tmp/               staging; each writer holds an flock on its own staging directory
//!                    (Windows: its own open handle on it)
//! trees/<id>         btrfs: snapshot <id>'s tree as a read-only subvolume (see [`trees`];
//!                    none on Windows)
//! history            when and from where each snapshot was recorded (see [`history`])
//! removing           only in a store being removed (see [`remove`]): it is refused until then
//! ```
//!
//! Which store serves a tree (one per filesystem) is decided by [`discover`]; where a
//! checkout's snapshot comes from (this store, another filesystem's store, a remote), by
//! [`source`].
//!
//! - [`Store::open`] finds or creates a store; [`ingest::snapshot_dir`] records a tree;
//!   [`checkout::checkout`] materializes one (registering its staging beside the destination
//!   in [`dest_staging`] so that gc can remove what a killed checkout left); [`gc`], [`verify`]
//!   maintain the store; [`interchange`] is the JSON manifest format other tools can write.

#![warn(missing_docs)]
// Windows' `PathBuf` is a word larger than unix's (32 bytes): `Error`'s largest variant
// (`Conflict`, two paths) passes clippy's 128-byte limit there only. Boxing it would change
// the type every caller matches on for one platform's lint.
#![cfg_attr(windows, allow(clippy::result_large_err))]

pub mod checkout;
pub mod compact;
pub mod dest_staging;
pub mod discover;
pub mod error;
mod found;
pub mod gc;
pub mod hash;
pub mod history;
pub mod ingest;
pub mod interchange;
/// The store's file locks on Windows (`LockFileEx`), where unix takes an `flock`.
#[cfg(windows)]
#[path = "lock_windows.rs"]
mod lock;
pub mod manifest;
mod pools;
mod readahead;
pub mod refs;
pub mod remove;
pub mod source;
pub mod store;
mod tmp_staging;
pub mod trees;
mod util;
pub mod verify;
pub mod worktree_records;

/// What `snapshot --archive` (`--preserve=LIST`) records beside the tree: the items of
/// `cp --preserve` (see [`manifest::Archive`]).
pub use cowtree_link::Preserve;
pub use error::{Error, Result};
pub use hash::Hash;
pub use manifest::{Entry, Kind, Manifest, ManifestError};
pub use store::{SnapshotFile, Store};
