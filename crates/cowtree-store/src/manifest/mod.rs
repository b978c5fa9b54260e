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
//!
//! Version 2 is what `cowtree snapshot --archive` writes ([`Archive`]): version 1 with the
//! metadata `cp -a` keeps. A manifest without it is always version 1, byte for byte, so a
//! snapshot taken without `--archive` keeps its id; both versions are read.
//!
//! ```text
//! header   "CTMANIF\n", version u32 = 2, entry count u64, then
//!          kept u8 (bits: 1 ownership, 2 xattr, 4 acl, 8 links, 16 special; not 0, no other)
//!          record count u64, records (directories and special files), strictly increasing
//!          by path bytes, the root's first:
//!            path length u32, path bytes (empty: the root, first if present), type u8:
//!              1 directory (holding entries or records)   2 fifo   3 socket
//!              4 character device, rdev u64               5 block device, rdev u64
//!            then meta
//! entry    as in version 1, then link u8:
//!            0 no hardlink, then meta
//!            1 the first name (in path order) of files that were one inode, then meta
//!            2 a later name of such a group, then the u64 index of its first name (its
//!              kind, size and blob are the first name's; no meta: the inode's is there)
//! meta     mode u32 (permission, set-ID and sticky bits, at most 0o7777; 0 for a
//!          symlink; a file's executable bits match its kind), uid u32, gid u32 (0, and
//!          no set-ID bits, unless ownership was kept), attribute count u32, attributes
//!          strictly increasing by name: name length u8 (1..=255), name (no NUL), value
//!          length u32 (at most 65536), value. Only attributes the kept items cover
//!          (`cowtree_link::keeps_attribute`: ACLs under acl, others under xattr, never
//!          `trusted.SGI_*` or `security.evm`). A symlink's are its own (`trusted.*`,
//!          `security.*`), never an ACL.
//! ```
//! The root and every directory above an entry have a record (an empty directory is an
//! entry, with its meta). A record's path is never an entry's, nor beneath a special file or an entry, but for
//! special files directly in an empty-directory entry (a directory holding only special
//! files is an empty directory to version 1's readers). A directory record has an entry
//! beneath it (an empty directory is an entry with its own meta); a special file's directory
//! is the root, an empty-directory entry, or has an entry beneath it: one tree, one
//! encoding. Every group of hardlinks has a later name. Readers that look at the tree only
//! (status, verify, gc, push, pull) read the entries as they read version 1's; every reader
//! checks the whole, as [`Manifest::decode`] does.

mod archive;
mod check;
mod encoding;
mod error;
mod kind;
mod meta;
mod owned;
mod sorted;
mod stream;
mod view;

pub(crate) use archive::preserve_of;
pub use archive::{Archive, EntryMeta, Extra, ExtraKind, Link, Meta, VERSION_ARCHIVE};
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
pub(crate) use stream::{READ_CHUNK, Sink, read_each, read_each_meta, read_into};
pub use view::{Entries, ManifestView};

#[cfg(test)]
#[path = "manifest_tests.rs"]
mod tests;

#[cfg(test)]
#[path = "archive_tests.rs"]
mod archive_tests;
