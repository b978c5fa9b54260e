//! What a caller asks of a checkout: the method ([`CheckoutMode`]), whether a fallback is
//! refused ([`CheckoutOptions`]), and what a recording checkout hands back on the way
//! ([`Hooks`]), and a snapshot still arriving in the store ([`Arriving`]).

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
}

/// What a recording checkout ([`super::checkout_recording`]) hands to its caller on the way.
pub struct Hooks<'a> {
    /// Runs once the tree is complete, beside the sync that makes it durable, before the tree
    /// is renamed into place.
    pub before_placing: &'a (dyn Fn(&Written) + Sync),
    /// The bytes of the worktree's record, made from its registration (path, base, root).
    pub record: &'a dyn Fn(&Registration) -> Vec<u8>,
}

/// Returns once a blob is in the store's `blobs/`, or the error that means it never will be
/// ([`Arriving::blob`]).
pub type BlobArrived<'a> = dyn Fn(&Hash) -> Result<()> + Sync + 'a;

/// A snapshot that is still arriving in the store while it is checked out (a pull that
/// runs beside the checkout: [`super::checkout_arriving`]).
///
/// The checkout goes per file (there is no tree of the snapshot to take whole), writes each
/// file as soon as `blob` says its blob is in `blobs/`, and places the tree only once
/// `recorded` says the snapshot is recorded in the store (its blobs durable), so that the
/// worktree's base is a snapshot of the store when anyone can reach the worktree. An error
/// from either stops the checkout, which then takes back what it made, as after any error.
pub struct Arriving<'a> {
    /// The snapshot's encoded manifest, as fetched: refused unless it hashes to the id
    /// checked out and decodes.
    pub manifest: &'a [u8],
    /// Returns once blob `hash` is in the store's `blobs/` (at once for one that was there),
    /// or the error that means it never will be.
    pub blob: &'a BlobArrived<'a>,
    /// Returns once the snapshot is recorded in the store, or the error that means it never
    /// will be.
    pub recorded: &'a (dyn Fn() -> Result<()> + Sync),
}
