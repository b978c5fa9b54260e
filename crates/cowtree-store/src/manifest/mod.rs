//! Snapshot manifests: the binary encoding, and the validation every decoded manifest passes.
//!
//! A manifest lists a tree's entries sorted by path bytes. Its bytes are canonical (one tree has
//! exactly one encoding), so the snapshot id, the BLAKE3 hash of those bytes, is the same for the
//! same tree. Manifests come from disk and from other tools, so [`Manifest::decode`] treats its
//! input as hostile: it validates every path and returns an error naming the entry, and never
//! panics.
//!
//! Encoding, version 1 (integers little-endian):
//!
//! ```text
//! header   "CTMANIF\n" (8 bytes), version u32 = 1, entry count u64
//! entry    path length u32, path bytes, kind u8, then by kind:
//!            1 file        size u64, BLAKE3 hash (32 bytes)
//!            2 executable  size u64, BLAKE3 hash (32 bytes)
//!            3 symlink     target length u32, target bytes
//!            4 empty dir   nothing
//! ```
//! Nothing may follow the last entry.

mod check;
mod encoding;
mod error;
mod kind;
mod owned;
mod sorted;
mod stream;
mod view;

pub(crate) use check::{Checker, EntryChecker};
pub use check::{EncodedCounts, each_encoded, validate, validate_encoded};
pub use encoding::{
    Data, DataRef, Entry, EntryRef, MAGIC, VERSION, encode_blob, encode_dir, encode_header,
    encode_symlink, encoded_len,
};
pub use error::{ManifestError, show};
pub use kind::Kind;
pub use owned::Manifest;
pub use sorted::{
    SortedPath, cmp_pieces, find_child_from, first_beneath, name_order, range_in, range_near,
};
pub(crate) use stream::{READ_CHUNK, Sink, read_each, read_into};
pub use view::{Entries, ManifestView};

#[cfg(test)]
#[path = "manifest_tests.rs"]
mod tests;
