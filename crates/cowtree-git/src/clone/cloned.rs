//! What [`super::clone_checked`] did: the same outcomes on every platform.

use cowtree_fs::UnsupportedCause;
use cowtree_fs::dir::Stat;

/// What [`super::clone_checked`] did.
pub enum Cloned {
    /// DST's file holds SRC's data (shared, or copied because of `because`); `stat` is its
    /// stat (`fstat`) after the times were set.
    Done {
        /// DST's stat after the times were set.
        stat: Stat,
        /// Bytes.
        bytes: u64,
        /// Why the data was copied instead of shared.
        because: Option<UnsupportedCause>,
    },
    /// SRC's file changed during the clone; nothing is left at DST.
    Changed,
    /// The copy was hashed and is not the blob asked for; nothing is left at DST.
    Mismatch,
    /// `--strict` and the pair cannot clone; nothing is left at DST.
    Refused(UnsupportedCause),
}
