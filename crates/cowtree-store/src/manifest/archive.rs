//! Version 2 of the encoding: what `cowtree snapshot --archive` records beside the tree
//! ([`Archive`]): per entry its mode bits, owner and group, extended attributes and ACLs and
//! its hardlink group ([`EntryMeta`]); the same for every directory, and the special files
//! (FIFOs, sockets, device nodes), as records of their own ([`Extra`]). The entries themselves
//! are version 1's, so that what reads only the tree (status, verify, gc, push, pull) reads a
//! version 2 manifest as it reads version 1. A manifest without an archive is always encoded
//! as version 1.
//!
//! Everything here is checked when it is decoded ([`ArchiveCheck`]): a value out of range, an
//! attribute out of order or not of a kind the snapshot says it kept, a hardlink to an entry
//! that is not the first name of its group or holds other data, a record whose path is an
//! entry's or lies beneath a file: each is refused, naming the entry or the record.

use std::collections::HashMap;

use cowtree_fs::name::check_relative_path_from;
use cowtree_link::Preserve;

use super::encoding::{EntryRef, Reader};
use super::error::ManifestError;
use super::kind::Kind;
use crate::hash::Hash;

pub use super::kind::VERSION_ARCHIVE;
pub use super::meta::{EntryMeta, Link, Meta};

/// The longest extended attribute name Linux takes (`XATTR_NAME_MAX`).
const XATTR_NAME_MAX: usize = 255;
/// The largest extended attribute value Linux takes (`XATTR_SIZE_MAX`).
const XATTR_SIZE_MAX: usize = 65536;

/// What a record of [`Archive::extras`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExtraKind {
    /// A directory (the root's record has the empty path): its metadata only.
    Dir,
    /// A FIFO.
    Fifo,
    /// A socket (made again as a socket file; nothing listens on it).
    Socket,
    /// A character device with its device number.
    CharDevice(u64),
    /// A block device with its device number.
    BlockDevice(u64),
}

impl ExtraKind {
    fn code(self) -> u8 {
        match self {
            ExtraKind::Dir => 1,
            ExtraKind::Fifo => 2,
            ExtraKind::Socket => 3,
            ExtraKind::CharDevice(_) => 4,
            ExtraKind::BlockDevice(_) => 5,
        }
    }

    /// The name used in messages.
    pub fn as_str(self) -> &'static str {
        match self {
            ExtraKind::Dir => "directory",
            ExtraKind::Fifo => "fifo",
            ExtraKind::Socket => "socket",
            ExtraKind::CharDevice(_) => "character device",
            ExtraKind::BlockDevice(_) => "block device",
        }
    }
}

/// A directory or a special file, with its metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Extra {
    /// Path relative to the tree root (empty for the root).
    pub path: Vec<u8>,
    /// What it is.
    pub kind: ExtraKind,
    /// Its metadata.
    pub meta: Meta,
}

/// What a version 2 manifest records beside its entries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Archive {
    /// What was kept (`--preserve`'s items; at least one).
    pub preserve: Preserve,
    /// One per entry of the manifest, in its order.
    pub entries: Vec<EntryMeta>,
    /// Directories and special files, sorted by path bytes.
    pub extras: Vec<Extra>,
}

fn preserve_bits(p: Preserve) -> u8 {
    u8::from(p.ownership)
        | u8::from(p.xattr) << 1
        | u8::from(p.acl) << 2
        | u8::from(p.links) << 3
        | u8::from(p.special) << 4
}

/// The kept items of a version 2 header's byte; `None` when it is not a valid one.
pub(crate) fn preserve_of(bits: u8) -> Option<Preserve> {
    (bits != 0 && bits & !0x1f == 0).then_some(Preserve {
        ownership: bits & 1 != 0,
        xattr: bits & 2 != 0,
        acl: bits & 4 != 0,
        links: bits & 8 != 0,
        special: bits & 16 != 0,
    })
}

/// Appends what follows a version 2 header: the kept items and the records.
pub(super) fn encode_head(out: &mut Vec<u8>, a: &Archive) {
    out.push(preserve_bits(a.preserve));
    out.extend_from_slice(&(a.extras.len() as u64).to_le_bytes());
    for x in &a.extras {
        out.extend_from_slice(&(x.path.len() as u32).to_le_bytes());
        out.extend_from_slice(&x.path);
        out.push(x.kind.code());
        if let ExtraKind::CharDevice(rdev) | ExtraKind::BlockDevice(rdev) = x.kind {
            out.extend_from_slice(&rdev.to_le_bytes());
        }
        encode_meta(out, &x.meta);
    }
}

/// Appends what follows an entry in version 2.
pub(super) fn encode_entry_meta(out: &mut Vec<u8>, m: &EntryMeta) {
    match m.link {
        Link::None => out.push(0),
        Link::First => out.push(1),
        Link::Of(i) => {
            out.push(2);
            out.extend_from_slice(&i.to_le_bytes());
        }
    }
    if !matches!(m.link, Link::Of(_)) {
        encode_meta(out, m.meta.as_ref().unwrap_or(&Meta::default()));
    }
}

fn encode_meta(out: &mut Vec<u8>, m: &Meta) {
    out.extend_from_slice(&m.mode.to_le_bytes());
    out.extend_from_slice(&m.uid.to_le_bytes());
    out.extend_from_slice(&m.gid.to_le_bytes());
    out.extend_from_slice(&(m.xattrs.len() as u32).to_le_bytes());
    for (name, value) in &m.xattrs {
        // (Names are at most 255 bytes: checked when the manifest is made.)
        out.push(name.len() as u8);
        out.extend_from_slice(name);
        out.extend_from_slice(&(value.len() as u32).to_le_bytes());
        out.extend_from_slice(value);
    }
}

impl<'a> Reader<'a> {
    /// Reads what follows a version 2 header: the kept items and the records, framed only
    /// (checked by [`ArchiveCheck::new`]). Truncation is [`ManifestError::Truncated`] of
    /// entry 0, as in the header.
    pub(super) fn archive_head(&mut self) -> Result<(u8, Vec<Extra>), ManifestError> {
        let trunc = || ManifestError::Truncated { index: 0 };
        let bits = self.u8().ok_or_else(trunc)?;
        let count = self.u64().ok_or_else(trunc)?;
        // Each record takes at least 22 bytes; never trust the count for an allocation.
        let cap = usize::try_from(count)
            .unwrap_or(usize::MAX)
            .min(self.remaining() / 22);
        let mut extras = Vec::with_capacity(cap);
        for i in 0..count {
            let len = self.u32().ok_or_else(trunc)? as usize;
            let path = self.take(len).ok_or_else(trunc)?.to_vec();
            let code = self.u8().ok_or_else(trunc)?;
            let kind = match code {
                1 => ExtraKind::Dir,
                2 => ExtraKind::Fifo,
                3 => ExtraKind::Socket,
                4 => ExtraKind::CharDevice(self.u64().ok_or_else(trunc)?),
                5 => ExtraKind::BlockDevice(self.u64().ok_or_else(trunc)?),
                _ => {
                    return Err(ManifestError::BadRecord {
                        index: i,
                        path,
                        reason: format!("unknown record type {code}"),
                    });
                }
            };
            let meta = self.meta().ok_or_else(trunc)?;
            extras.push(Extra { path, kind, meta });
        }
        Ok((bits, extras))
    }

    /// Reads what follows entry `index` in version 2, framed only.
    pub(super) fn entry_meta(
        &mut self,
        index: u64,
        path: &[u8],
    ) -> Result<EntryMeta, ManifestError> {
        let trunc = || ManifestError::Truncated { index };
        let link = match self.u8().ok_or_else(trunc)? {
            0 => Link::None,
            1 => Link::First,
            2 => Link::Of(self.u64().ok_or_else(trunc)?),
            code => {
                return Err(ManifestError::BadArchive {
                    index,
                    path: path.to_vec(),
                    reason: format!("unknown hardlink code {code}"),
                });
            }
        };
        let meta = match link {
            Link::Of(_) => None,
            _ => Some(self.meta().ok_or_else(trunc)?),
        };
        Ok(EntryMeta { link, meta })
    }

    /// A [`Meta`], framed; `None` when the bytes end inside it.
    fn meta(&mut self) -> Option<Meta> {
        let mode = self.u32()?;
        let uid = self.u32()?;
        let gid = self.u32()?;
        let count = self.u32()?;
        // Each attribute takes at least 5 bytes; never trust the count for an allocation.
        let mut xattrs = Vec::with_capacity((count as usize).min(self.remaining() / 5));
        for _ in 0..count {
            let len = self.u8()? as usize;
            let name = self.take(len)?.to_vec();
            let vlen = self.u32()? as usize;
            let value = self.take(vlen)?.to_vec();
            xattrs.push((name, value));
        }
        Some(Meta {
            mode,
            uid,
            gid,
            xattrs,
        })
    }
}

/// Why `m` is refused under `preserve` for an entry of kind `kind` (`None` for a record's
/// directory or special file), if it is.
/// The most the names of one entry's attributes may take, each with its NUL (Linux's
/// `XATTR_LIST_MAX`): no real entry has more.
const XATTR_LIST_MAX: usize = 65536;

/// `dir`: the record or entry is a directory (only a directory has a default ACL).
fn meta_fault(m: &Meta, preserve: Preserve, kind: Option<Kind>, dir: bool) -> Option<String> {
    if m.mode > 0o7777 {
        return Some(format!("mode {:o} has bits beyond 07777", m.mode));
    }
    if !preserve.ownership && (m.uid != 0 || m.gid != 0 || m.mode & 0o6000 != 0) {
        return Some("owner, group or set-ID bits recorded where ownership was not kept".into());
    }
    match kind {
        Some(Kind::Symlink) if m.mode != 0 => {
            return Some("a symlink with a mode".into());
        }
        // Its own attributes, as `clone --archive` keeps them; never an ACL (Linux has none
        // on a symlink).
        Some(Kind::Symlink)
            if m.xattrs.iter().any(|(n, _)| {
                n.as_slice() == b"system.posix_acl_access"
                    || n.as_slice() == b"system.posix_acl_default"
            }) =>
        {
            return Some("a symlink with an ACL".into());
        }
        Some(Kind::File) if m.mode & 0o111 != 0 => {
            return Some(format!("a file of kind file with mode {:o}", m.mode));
        }
        Some(Kind::Executable) if m.mode & 0o111 == 0 => {
            return Some(format!("a file of kind executable with mode {:o}", m.mode));
        }
        _ => {}
    }
    let mut last: Option<&[u8]> = None;
    let listed: usize = m.xattrs.iter().map(|(n, _)| n.len() + 1).sum();
    if listed > XATTR_LIST_MAX {
        return Some(format!(
            "attribute names of {listed} bytes in all (no entry holds more than {XATTR_LIST_MAX})"
        ));
    }
    for (name, value) in &m.xattrs {
        let shown = super::error::show(name);
        if name.is_empty() || name.len() > XATTR_NAME_MAX || name.contains(&0) {
            return Some(format!("invalid attribute name {shown}"));
        }
        // A worktree's marker names the store that commands run in it use: one in a
        // snapshot (from elsewhere) would send them to another store. A checkout sets the
        // root's own; a snapshot never records it.
        if name.as_slice() == crate::discover::MARKER_XATTR.as_bytes() {
            return Some(format!(
                "attribute {shown}, a worktree's store marker, which a snapshot never records"
            ));
        }
        if name.as_slice() == b"system.posix_acl_default" && !dir {
            return Some(format!(
                "attribute {shown} (a default ACL) on what is not a directory"
            ));
        }
        if last.is_some_and(|l| l >= name.as_slice()) {
            return Some(format!(
                "attribute {shown} out of order or twice (they are sorted by name)"
            ));
        }
        last = Some(name);
        if value.len() > XATTR_SIZE_MAX {
            return Some(format!("attribute {shown} longer than 65536 bytes"));
        }
        if !cowtree_link::keeps_attribute(preserve, name) {
            return Some(format!("attribute {shown} is not one the snapshot keeps"));
        }
    }
    None
}

/// The first name of a hardlink group, as [`ArchiveCheck`] holds it.
struct Group {
    kind: Kind,
    size: u64,
    hash: Hash,
    followed: bool,
    path: Vec<u8>,
}

/// The checks of a version 2 manifest's archive, made on its records (when created) and on
/// each entry in order ([`ArchiveCheck::entry`]), and at the end ([`ArchiveCheck::finish`]).
/// It holds the records and, per hardlink group, its first name's data: not the entries.
pub(crate) struct ArchiveCheck {
    preserve: Preserve,
    extras: Vec<Extra>,
    /// Per record: it is in the tree. A directory record has an entry beneath it (a
    /// directory holding only special files is an empty-directory entry); a special file's
    /// directory is the root, an empty-directory entry, or has an entry beneath it.
    placed: Vec<bool>,
    /// The special files' directories (not the root), sorted, with the records' indices.
    parents: Vec<(Vec<u8>, usize)>,
    /// First names of hardlink groups: kind, size, hash, whether a later name was seen, and
    /// the path (for a message).
    groups: HashMap<u64, Group>,
    /// Each entry's metadata, when it is kept ([`Manifest::decode`](super::Manifest::decode)).
    kept: Option<Vec<EntryMeta>>,
}

impl ArchiveCheck {
    /// Checks the records (`bits` as read), on their own: kept items, order, paths, what
    /// lies beneath what among them. `keep`: keep each entry's metadata for
    /// [`ArchiveCheck::finish`].
    pub(crate) fn new(
        bits: u8,
        extras: Vec<Extra>,
        keep: bool,
    ) -> Result<ArchiveCheck, ManifestError> {
        let preserve = preserve_of(bits).ok_or_else(|| {
            ManifestError::BadArchiveHeader(format!("kept items {bits:#04x} are not valid"))
        })?;
        let bad = |i: usize, x: &Extra, reason: String| ManifestError::BadRecord {
            index: i as u64,
            path: x.path.clone(),
            reason,
        };
        if extras.first().is_none_or(|x| !x.path.is_empty()) {
            return Err(ManifestError::BadArchiveHeader(
                "no record of the root directory".into(),
            ));
        }
        let mut placed = vec![false; extras.len()];
        let mut parents = Vec::new();
        for (i, x) in extras.iter().enumerate() {
            if x.path.is_empty() {
                if i != 0 || x.kind != ExtraKind::Dir {
                    return Err(bad(
                        i,
                        x,
                        "an empty path that is not the root's first record".into(),
                    ));
                }
                // (The root is always there.)
                placed[0] = true;
            } else if let Err(reason) = check_relative_path_from(&x.path, 0) {
                return Err(bad(i, x, format!("invalid path: {reason}")));
            }
            if i > 0 && extras[i - 1].path >= x.path {
                return Err(bad(i, x, "records out of order or twice".into()));
            }
            if x.kind != ExtraKind::Dir && !preserve.special {
                return Err(bad(
                    i,
                    x,
                    "a special file where special files were not kept".into(),
                ));
            }
            if let Some(reason) = meta_fault(&x.meta, preserve, None, x.kind == ExtraKind::Dir) {
                return Err(bad(i, x, reason));
            }
            if x.kind != ExtraKind::Dir {
                match x.path.iter().rposition(|&b| b == b'/') {
                    Some(at) => parents.push((x.path[..at].to_vec(), i)),
                    None => placed[i] = true,
                }
            }
            // Nothing lies beneath a special file.
            for a in ancestors(&x.path) {
                if let Ok(j) = extras[..i].binary_search_by(|y| y.path.as_slice().cmp(a))
                    && extras[j].kind != ExtraKind::Dir
                {
                    return Err(bad(
                        i,
                        x,
                        format!(
                            "lies beneath the {} {}",
                            extras[j].kind.as_str(),
                            super::error::show(a)
                        ),
                    ));
                }
            }
        }
        parents.sort();
        Ok(ArchiveCheck {
            preserve,
            extras,
            placed,
            parents,
            groups: HashMap::new(),
            kept: keep.then(Vec::new),
        })
    }

    /// Checks entry `index` (`e`, already framed and checked as version 1 checks it) and
    /// what version 2 records of it.
    pub(crate) fn entry(
        &mut self,
        index: u64,
        e: &EntryRef<'_>,
        m: EntryMeta,
    ) -> Result<(), ManifestError> {
        let bad = |reason: String| ManifestError::BadArchive {
            index,
            path: e.path.to_vec(),
            reason,
        };
        let find = |p: &[u8]| self.extras.binary_search_by(|x| x.path.as_slice().cmp(p));
        if let Ok(j) = find(e.path) {
            return Err(bad(format!(
                "also recorded as a {}",
                self.extras[j].kind.as_str()
            )));
        }
        // Nothing recorded beneath an entry (every entry is a leaf), but the special files
        // of a directory that holds nothing else (an empty directory to version 1).
        let mut below = e.path.to_vec();
        below.push(b'/');
        let at = find(&below).unwrap_or_else(|j| j);
        let beneath = self.extras[at.min(self.extras.len())..]
            .iter()
            .take_while(|x| x.path.starts_with(&below));
        for x in beneath {
            let child = !x.path[below.len()..].contains(&b'/');
            if e.kind != Kind::Dir || x.kind == ExtraKind::Dir || !child {
                return Err(bad(format!(
                    "the {} {} lies beneath it",
                    x.kind.as_str(),
                    super::error::show(&x.path)
                )));
            }
        }
        // The directories this entry shows to be in the tree: its ancestors, each of which
        // has its record, and itself when it is an empty directory.
        let own = (e.kind == Kind::Dir).then_some(e.path);
        for a in ancestors(e.path).chain(own) {
            match find(a) {
                Ok(j) if self.extras[j].kind != ExtraKind::Dir => {
                    return Err(bad(format!(
                        "it lies beneath the {} {}",
                        self.extras[j].kind.as_str(),
                        super::error::show(a)
                    )));
                }
                Ok(j) => self.placed[j] = true,
                Err(_) if Some(a) != own => {
                    return Err(bad(format!(
                        "its directory {} has no record",
                        super::error::show(a)
                    )));
                }
                Err(_) => {}
            }
            let from = self.parents.partition_point(|(p, _)| p.as_slice() < a);
            for (p, j) in &self.parents[from..] {
                if p.as_slice() != a {
                    break;
                }
                self.placed[*j] = true;
            }
        }
        let blob = e.hash().map(|h| (h, e.size()));
        match (m.link, blob) {
            (Link::None, _) => {}
            (_, _) if !self.preserve.links => {
                return Err(bad("a hardlink where hardlinks were not kept".into()));
            }
            (_, None) => return Err(bad(format!("a hardlink of kind {}", e.kind))),
            (Link::First, Some((hash, size))) => {
                self.groups.insert(
                    index,
                    Group {
                        kind: e.kind,
                        size,
                        hash,
                        followed: false,
                        path: e.path.to_vec(),
                    },
                );
            }
            (Link::Of(first), Some((hash, size))) => {
                let Some(g) = self.groups.get_mut(&first).filter(|_| first < index) else {
                    return Err(bad(format!(
                        "a later name of entry {first}, which is not the first name of a group before it"
                    )));
                };
                if (g.kind, g.size, g.hash) != (e.kind, size, hash) {
                    return Err(bad(format!(
                        "a later name of {}, whose kind, size or blob differ",
                        super::error::show(&g.path)
                    )));
                }
                g.followed = true;
            }
        }
        if let Some(meta) = &m.meta
            && let Some(reason) = meta_fault(meta, self.preserve, Some(e.kind), e.kind == Kind::Dir)
        {
            return Err(bad(reason));
        }
        if let Some(kept) = &mut self.kept {
            kept.push(m);
        }
        Ok(())
    }

    /// The last checks: every record is in the tree (see `placed`), every group has a
    /// later name. Returns the archive: its records, and its entries' metadata when it was
    /// kept (else none).
    pub(crate) fn finish(self) -> Result<Option<Archive>, ManifestError> {
        if let Some(i) = self.placed.iter().position(|p| !p) {
            let x = &self.extras[i];
            let reason = match x.kind {
                ExtraKind::Dir => {
                    "a directory record with no entry beneath it (an empty directory, or one \
                     holding only special files, is an entry)"
                }
                _ => "its directory is not in the tree (no entry is it or lies beneath it)",
            };
            return Err(ManifestError::BadRecord {
                index: i as u64,
                path: x.path.clone(),
                reason: reason.into(),
            });
        }
        let lone = (self.groups.iter())
            .filter(|(_, g)| !g.followed)
            .min_by_key(|(i, _)| **i);
        if let Some((&index, g)) = lone {
            return Err(ManifestError::BadArchive {
                index,
                path: g.path.clone(),
                reason: "the first name of a hardlink group without a later name".into(),
            });
        }
        Ok(Some(Archive {
            preserve: self.preserve,
            entries: self.kept.unwrap_or_default(),
            extras: self.extras,
        }))
    }
}

/// The proper ancestors of `path` (not the root), shortest first.
fn ancestors(path: &[u8]) -> impl Iterator<Item = &[u8]> {
    path.iter()
        .enumerate()
        .filter(|&(_, &b)| b == b'/')
        .map(|(i, _)| &path[..i])
}
