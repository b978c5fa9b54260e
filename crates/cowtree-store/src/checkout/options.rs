//! What a caller asks of a checkout: the method ([`CheckoutMode`]), whether a fallback is
//! refused ([`CheckoutOptions`]), and what a recording checkout hands back on the way
//! ([`Hooks`]), and a snapshot still arriving in the store ([`Arriving`]).

use cowtree_link::Preserve;

use crate::error::Result;
use crate::hash::Hash;
use crate::worktree_records::Registration;

use super::report::Written;

/// How file data gets into the worktree.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckoutMode {
    /// Clone where the filesystems can, copy where they cannot (the default).
    Auto,
    /// Clone; copy with a reported fallback where the filesystems cannot.
    Clone,
    /// Always copy, into data blocks of the worktree's own, never shared with the store
    /// ([`cowtree_fs::Method::Copy`]).
    Copy,
}

/// Options for [`super::checkout`].
#[derive(Debug, Clone, Copy)]
pub struct CheckoutOptions {
    /// The method.
    pub mode: CheckoutMode,
    /// Refuse every fallback (and a cross-device store) instead of copying.
    pub strict: bool,
    /// What of a `cowtree snapshot --archive`'s record the tree is given
    /// ([`crate::manifest::Archive`]; only what the snapshot recorded): `checkout --archive`
    /// or `--preserve=LIST`. [`Preserve::NONE`]: nothing, the tree made as for a version 1
    /// snapshot (no owners, set-ID bits, attributes, hardlinks or special files), whatever
    /// the snapshot recorded.
    pub preserve: Preserve,
}

/// What a recording checkout ([`super::checkout_recording`]) hands to its caller on the way.
pub struct Hooks<'a> {
    /// Runs once the tree is complete, beside the sync that makes it durable, before the tree
    /// is renamed into place.
    pub before_placing: &'a (dyn Fn(&Written) + Sync),
    /// The bytes of the worktree's record, made from its registration (path, base, root).
    pub record: &'a dyn Fn(&Registration) -> Vec<u8>,
}

/// Which of the blobs asked about are still to arrive, by position
/// ([`Arriving::coming`]).
pub type StillComing<'a> = dyn Fn(&[Hash]) -> Vec<bool> + Sync + 'a;

/// Waits for blobs to arrive ([`Arriving::next`]).
pub type NextArrived<'a> = dyn Fn(&mut Vec<Hash>) -> Result<bool> + Sync + 'a;

/// A snapshot that is still arriving in the store while it is checked out (a pull that
/// runs beside the checkout: [`super::checkout_arriving`]).
///
/// The checkout goes per file (there is no tree of the snapshot to take whole). It makes
/// every directory, symlink and file whose blob is in `blobs/` at once, then each other file
/// as its blob arrives, in the order they arrive (not the manifest's: a pull fetches in the
/// order of the remote's packs). It places the tree only once `recorded` says the snapshot is
/// recorded in the store (its blobs durable), so that the worktree's base is a snapshot of
/// the store when anyone can reach the worktree. An error from either stops the checkout,
/// which then takes back what it made, as after any error.
pub struct Arriving<'a> {
    /// The snapshot's encoded manifest, as fetched: refused unless it hashes to the id
    /// checked out and decodes.
    pub manifest: &'a [u8],
    /// For each blob asked about, whether it is still to arrive (`false`: it is in
    /// `blobs/`). Asked once, about every file's blob, before any file is written: each blob
    /// said to be coming must later be handed out by `next`.
    pub coming: &'a StillComing<'a>,
    /// Blocks until blobs have arrived that no call returned yet, and adds them to the
    /// vector: each arrived blob once, whichever worker calls (several call it at once).
    /// Returns `false` once every blob that was coming has been handed out, or the error that
    /// means the rest never will be. A blob `coming` said was there may be handed out too.
    pub next: &'a NextArrived<'a>,
    /// Returns once the snapshot is recorded in the store, or the error that means it never
    /// will be.
    pub recorded: &'a (dyn Fn() -> Result<()> + Sync),
}
