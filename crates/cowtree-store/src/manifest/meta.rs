//! What version 2 of the encoding records of one entry, directory or special file beside
//! its data ([`super::Archive`]): the plain values, which the encoding and the archive's
//! checks both use.

/// What an entry, a directory or a special file had beside its data.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Meta {
    /// Permission bits with the set-user-ID, set-group-ID and sticky bits (`0o7777` at most;
    /// set-ID bits only where ownership was kept; 0 for a symlink).
    pub mode: u32,
    /// Owner (0 where ownership was not kept).
    pub uid: u32,
    /// Group (0 where ownership was not kept).
    pub gid: u32,
    /// Extended attributes and ACLs kept, by name (sorted by name bytes, each once).
    pub xattrs: Vec<(Vec<u8>, Vec<u8>)>,
}

/// An entry's place in a group of hardlinks (files that were one inode in the source).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Link {
    /// Not in a group.
    None,
    /// The first name of a group (in path order): it carries the inode's metadata.
    First,
    /// A later name of the group whose first name is entry `.0` (same kind, size and blob).
    Of(u64),
}

/// What version 2 records of one entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryMeta {
    /// Its hardlink group.
    pub link: Link,
    /// Its metadata; `None` exactly for a later name of a group (see [`Link::Of`]).
    pub meta: Option<Meta>,
}
