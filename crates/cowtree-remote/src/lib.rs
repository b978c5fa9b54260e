//! cowtree-remote: remote stores on S3 (or a plain directory) that snapshots are pushed to
//! and pulled from, so that hosts that cannot share a filesystem can share snapshots.
//!
//! A host keeps its own local store (where checkouts are reflinks) and fills it from the
//! remote. Remote layout (docs/remote.md has the full description):
//!
//! ```text
//! cowtree-remote          version file: "cowtree-remote 2\n" (1: before locks)
//! packs/<id>.pack         blobs concatenated; id = BLAKE3 of the index bytes
//! packs/<id>.idx          the pack's index (see [`pack`]); written after the pack
//! blobs/<hash>            a large blob as one object (uploaded in parts)
//! snapshots/<id>          a manifest, written after every blob it names: the commit marker
//! names/<name>            "<id>\n", changed only by conditional writes
//! locks/<kind>-<host>-..  lock objects (see [`lock`]): pushes share, gc/forget/rm exclude
//! ```
//!
//! [`forget`] drops snapshots (by retention policy, or by name) and [`gc`] deletes what no
//! snapshot needs, under the lock discipline of [`lock`].
//!
//! Everything but `names/` is immutable and content-addressed, created with
//! `If-None-Match: *` ("already exists" is success). The object_store crate does the requests,
//! on a tokio runtime owned by [`Remote`]; every call here is synchronous for its caller.
//!
//! Contract: a pulled blob is hashed before it gets its name in the store's `blobs/`, a pulled
//! manifest is checked against its id and decoded by the store's validating decoder, and a
//! snapshot is recorded only once every blob it names is in the store, durably. A push or pull
//! killed at any point is resumed by running it again, which does not transfer again what
//! already arrived.

#![warn(missing_docs)]
// Windows' `PathBuf` is a word larger than unix's: the store's error, which `Error` carries,
// passes clippy's 128-byte limit there only (cowtree-store allows it on Windows likewise).
#![cfg_attr(windows, allow(clippy::result_large_err))]

pub mod arrivals;
pub mod config;
pub mod error;
pub mod forget;
pub mod gc;
mod index;
pub mod list;
pub mod lock;
mod os;
pub mod pack;
pub mod partial;
pub mod pull;
pub mod push;
pub mod remote;
mod tracking;

use std::sync::atomic::{AtomicU64, Ordering};

pub use config::RemoteConfig;
pub use error::{Error, Result};
pub use remote::Remote;

/// Counters a transfer updates as it goes, for a progress display polled from another thread.
#[derive(Debug, Default)]
pub struct Progress {
    /// Objects to transfer (known once planning is done).
    pub total_objects: AtomicU64,
    /// Bytes to transfer.
    pub total_bytes: AtomicU64,
    /// Objects transferred so far.
    pub done_objects: AtomicU64,
    /// Bytes transferred so far.
    pub done_bytes: AtomicU64,
}

impl Progress {
    pub(crate) fn plan(&self, objects: u64, bytes: u64) {
        self.total_objects.store(objects, Ordering::Relaxed);
        self.total_bytes.store(bytes, Ordering::Relaxed);
    }

    pub(crate) fn add(&self, objects: u64, bytes: u64) {
        self.done_objects.fetch_add(objects, Ordering::Relaxed);
        self.done_bytes.fetch_add(bytes, Ordering::Relaxed);
    }
}
