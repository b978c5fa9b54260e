//! What a caller asks of a checkout: the method ([`CheckoutMode`]), whether a fallback is
//! refused ([`CheckoutOptions`]), and what a recording checkout hands back on the way
//! ([`Hooks`]).

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
