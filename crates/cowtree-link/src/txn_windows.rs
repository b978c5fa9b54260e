//! Merges into an existing destination on Windows: not available, and refused before anything
//! is written ([`Journal::create`] is the one way a merge starts).
//!
//! A merge (see `txn.rs`) publishes each new entry with a rename, and an entry that replaces
//! one with an atomic exchange of the two names (`renameat2(RENAME_EXCHANGE)`), so that a
//! crash at any point leaves either name whole and the journal can finish or undo the rest.
//! Windows has no exchange: the replacement would be two renames (the old entry aside to a
//! hidden name, the new one in), each journalled, with recovery taught the state in between.
//! Until that is built and tested, a merge says it is unavailable instead of publishing
//! without the guarantee. A new destination (staging directory renamed into place) needs
//! none of this and works.

use std::io;
use std::marker::PhantomData;
use std::path::Path;

use cowtree_fs::dir::Dir;

use crate::cancel_handle::CancelHandle;
use crate::error::LinkError;

pub(crate) use crate::publication::Op;

/// What a merge is called where it is refused.
pub(crate) const MERGE: &str =
    "a merge into an existing destination (OnExisting::Overwrite or Skip)";

/// Every journal's name starts so (as on unix).
const PREFIX: &[u8] = b".cowtree-txn.";

/// The journal of a merge in progress: never made on Windows ([`Journal::create`] refuses).
pub(crate) struct Journal<'a> {
    never: std::convert::Infallible,
    _root: PhantomData<&'a Dir>,
}

impl<'a> Journal<'a> {
    /// Refuses: merges are unavailable on Windows (see the module documentation).
    pub fn create(
        _root: &'a Dir,
        _root_path: &'a Path,
        _sync: bool,
    ) -> Result<Journal<'a>, LinkError> {
        Err(LinkError::Unsupported(MERGE))
    }

    /// Never called: there is no journal.
    pub fn note_temp(&self, _dir: &Path, _tmp: &std::ffi::OsStr) -> Result<(), LinkError> {
        match self.never {}
    }

    /// Never called: there is no journal.
    pub fn abort(self, _error: LinkError) -> LinkError {
        match self.never {}
    }

    /// Never called: there is no journal.
    pub fn publish(self, _ops: &[Op], _cancel: &CancelHandle) -> Result<(), LinkError> {
        match self.never {}
    }
}

/// Finishes interrupted merges in `root`: Windows makes none, so there is nothing to finish
/// unless another platform's run left a journal there (a shared drive), which is refused
/// rather than ignored.
pub(crate) fn recover(root: &Dir) -> io::Result<usize> {
    let journals = root
        .entries()?
        .iter()
        .filter(|e| e.name.as_encoded_bytes().starts_with(PREFIX))
        .count();
    if journals > 0 {
        return Err(io::Error::new(
            io::ErrorKind::Unsupported,
            format!(
                "{journals} merge journal(s) of an interrupted merge: {MERGE} is not available on Windows; finish it where it ran"
            ),
        ));
    }
    Ok(0)
}
