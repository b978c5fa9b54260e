//! cowtree-worktree: the lifecycle of worktrees checked out from a cowtree store.
//!
//! - [`checkout`]: the one way to make a worktree (the store's checkout, then the store marker
//!   and a stat cache of what was written).
//! - [`record`]: a worktree's record in the store's registry, the one type that reads and
//!   writes it.
//! - [`registry`]: finding a worktree's record in the store (by path, or by the root's device
//!   and inode after a move), its stat cache sidecar and its switch journal.
//! - [`cache`]: the stat cache (size, mtime, ctime, inode, mode and content hash per file),
//!   with git's racy-timestamp rule.
//! - [`scan`]: the parallel, directory-relative walk behind [`status::status`],
//!   [`snapshot::snapshot`] (incremental) and [`status::adopt`] (registration at checkout).
//! - [`os`]: what the crate asks of the platform beyond [`cowtree_fs`] (a path's stat, the
//!   64-bit file number, names as the OS takes them, the executable bit Windows lacks).
//! - [`switch`] and [`reset`]: change entries through [`apply`], content always landing
//!   under a temp name and renamed into place; an interrupted switch is journaled and
//!   finished by the next command.

#![warn(missing_docs)]
// Windows' `PathBuf` is a word larger than unix's: the store's error, which `Error` carries,
// passes clippy's 128-byte limit there only (cowtree-store allows it on Windows likewise).
#![cfg_attr(windows, allow(clippy::result_large_err))]

pub mod apply;
pub mod base;
pub mod blob;
pub mod cache;
pub mod checkout;
pub mod error;
pub mod os;
pub mod paths;
pub mod record;
pub mod registry;
pub mod reset;
pub mod scan;
pub mod snapshot;
pub mod status;
pub mod switch;

pub use error::{Error, Result};
pub use record::Record;
pub use registry::Worktree;
pub use scan::{Change, ChangeKind, Scan};
