//! Keeping what [`crate::Preserve`] asks of an entry beyond its data, permission bits and
//! times, on an entry this run made: owner and group, then set-ID bits, then extended
//! attributes and ACLs (`cp`'s order: a `chown` clears set-ID bits and file capabilities, so
//! the mode and the attributes come after it). None of these calls changes an access or
//! modification time, so the times given before hold.
//!
//! Both entries are reached through handles of the entries themselves
//! ([`cowtree_fs::sys::EntryFd`]: the file or directory as the caller holds it open, or a
//! handle from [`cowtree_fs::sys::open_entry`]): a symlink swapped in at a name is never
//! followed. What the caller may not do (not root) or the destination cannot hold is counted
//! in [`NotKept`], never an error; anything else is (ENOSPC, EIO, ...).

use std::io;

use cowtree_fs::dir::{FileType, Stat};
use cowtree_fs::sys::{BorrowedFd, EntryFd};
#[cfg(unix)]
use cowtree_fs::sys::{chmod_entry, chown_entry, xattr_get, xattr_list, xattr_set};
#[cfg(unix)]
use rustix::fs::fstat;
#[cfg(unix)]
use rustix::io::Errno;
#[cfg(unix)]
use rustix::process::geteuid;

use crate::options::Preserve;
use crate::report::NotKept;

/// The source entry whose metadata is kept.
#[derive(Clone, Copy)]
pub(crate) struct Src<'a> {
    /// A handle of it, for its attributes (`None`: it has none to give).
    pub fd: Option<EntryFd<'a>>,
    /// Its owner and group (`None`: none to give).
    pub owner: Option<(u32, u32)>,
    /// Its mode bits.
    pub mode: u32,
}

impl<'a> Src<'a> {
    /// The source entry `fd` whose `lstat` is `st`.
    pub fn of(fd: EntryFd<'a>, st: &Stat) -> Src<'a> {
        Src {
            fd: Some(fd),
            owner: cowtree_fs::sys::stat_owner(st),
            mode: cowtree_fs::sys::stat_mode(st) & 0o7777,
        }
    }
}

/// What an extended attribute is, as [`crate::Preserve`] copies it: the rules of libattr's
/// `/etc/xattr.conf`, which `cp --preserve` follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Attribute {
    /// An ACL (POSIX or NFSv4): kept under [`Preserve::acl`], never under [`Preserve::xattr`].
    Acl,
    /// Never copied: a filesystem's own second view of what is copied otherwise (XFS shows
    /// each ACL again as `trusted.SGI_ACL_*`), or what only the kernel may write
    /// (`security.evm`).
    Skip,
    /// Any other: kept under [`Preserve::xattr`].
    Other,
}

fn attribute(name: &[u8]) -> Attribute {
    const ACL: [&[u8]; 4] = [
        b"system.posix_acl_access",
        b"system.posix_acl_default",
        b"system.nfs4_acl",
        b"system.nfs4acl",
    ];
    const SKIP: [&[u8]; 4] = [
        b"trusted.SGI_ACL_DEFAULT",
        b"trusted.SGI_ACL_FILE",
        b"trusted.SGI_CAP_FILE",
        b"trusted.SGI_MAC_FILE",
    ];
    const SKIP_PREFIX: [&[u8]; 4] = [b"trusted.SGI_DMI_", b"xfsroot.", b"afs.", b"security.evm"];
    if ACL.contains(&name) {
        Attribute::Acl
    } else if SKIP.contains(&name) || SKIP_PREFIX.iter().any(|p| name.starts_with(p)) {
        Attribute::Skip
    } else {
        Attribute::Other
    }
}

/// Whether `preserve` asks for the extended attribute `name`: an ACL under
/// [`Preserve::acl`], any other under [`Preserve::xattr`], except those `cp` never copies
/// (XFS's second view of its ACLs, `trusted.SGI_*`, and `security.evm`, which only the kernel
/// writes). What `cowtree snapshot --archive` records is chosen by the same rule.
pub fn keeps_attribute(preserve: Preserve, name: &[u8]) -> bool {
    wanted(preserve, name)
}

fn wanted(preserve: Preserve, name: &[u8]) -> bool {
    match attribute(name) {
        Attribute::Acl => preserve.acl,
        Attribute::Skip => false,
        Attribute::Other => preserve.xattr,
    }
}

/// Checks that `fd`, just opened (with [`cowtree_fs::sys::open_entry`]) at the name where
/// this run made an entry of a type `ft` accepts, or held open since this run created it, is
/// still that entry: of that type, with one link, owned by this process's effective user. In a
/// merge the name is in a directory others may write to: an entry swapped in there (someone's
/// own file, a hardlink to another) must never be given an owner, set-ID bits or attributes. What is checked is the handle the changes
/// then go through, so a later swap at the name changes nothing.
#[cfg(unix)]
pub(crate) fn check_made(fd: BorrowedFd<'_>, ft: impl Fn(FileType) -> bool) -> io::Result<Made> {
    let st = fstat(fd)?;
    let made = ft(FileType::from_raw_mode(st.st_mode)) && st.st_nlink == 1 && st.st_uid == euid();
    if made {
        Ok(Made {
            owner: (st.st_uid, st.st_gid),
        })
    } else {
        Err(io::Error::other(
            "not the entry this run made there: it was replaced meanwhile",
        ))
    }
}

/// [`check_made`] on Windows, where nothing is kept beyond data, mode and times (owners,
/// attributes and ACLs are refused up front, see [`crate::options::unsupported_here`]):
/// never reached, and an error if it were.
#[cfg(windows)]
pub(crate) fn check_made(_fd: BorrowedFd<'_>, _ft: impl Fn(FileType) -> bool) -> io::Result<Made> {
    Err(not_here())
}

/// The error of the calls that keep owners and attributes, on Windows.
#[cfg(windows)]
fn not_here() -> io::Error {
    cowtree_fs::sys::Unavailable::error("owners, extended attributes and ACLs of entries")
}

/// What [`check_made`] found of the entry: its owner and group now.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Made {
    pub owner: (u32, u32),
}

/// This process's effective user id, asked once.
#[cfg(unix)]
fn euid() -> u32 {
    static EUID: std::sync::OnceLock<u32> = std::sync::OnceLock::new();
    *EUID.get_or_init(|| geteuid().as_raw())
}

/// What becomes of the mode once owner and group are settled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModeStep {
    /// Left as it is: a symlink (no mode of its own), or a directory (given its mode when it
    /// is finished, after this).
    Leave,
    /// A regular file, made with the source's bits but its set-ID bits: they are added when
    /// the source has some and its owner and group were kept.
    SetId,
    /// A special file, made with the umask applied: always given the source's bits, with
    /// set-ID bits only when its owner and group were kept.
    Always,
}

/// The permission bits an entry gets from the source's `mode`: its set-ID bits only when
/// its owner and group were kept (`owned`), since they grant the owner's or group's rights.
#[cfg_attr(windows, allow(dead_code))]
pub(crate) fn kept_bits(mode: u32, owned: bool) -> u32 {
    if owned { mode & 0o7777 } else { mode & 0o1777 }
}

/// Gives the entry `dst` (a handle of an entry this run made: the file as its creation
/// opened it, one from [`cowtree_fs::sys::open_entry`], or a directory's own) what
/// `preserve` asks of the source entry `src`: owner and group, then the mode (`step`), then
/// attributes (a symlink's own, through its `O_PATH` handle, as a file's). Counts what could
/// not be kept in `not_kept`; returns whether owner and group were both kept.
/// `made`: what [`check_made`] found of `dst`, when it was asked (else `dst` is asked its
/// owner again before it is given one).
pub(crate) fn keep(
    preserve: Preserve,
    src: Src<'_>,
    (dst, made): (EntryFd<'_>, Option<Made>),
    step: ModeStep,
    not_kept: &mut NotKept,
) -> io::Result<bool> {
    let attrs = match src.fd {
        Some(fd) => Attrs::Entry(fd),
        None => Attrs::Recorded(&[]),
    };
    let dst = Dst {
        fd: dst,
        owner: made.map(|m| m.owner),
    };
    apply(preserve, src.owner, src.mode, attrs, dst, step, not_kept)
}

/// The entry given metadata, and its owner and group where already known.
#[derive(Clone, Copy)]
#[cfg_attr(windows, allow(dead_code))]
struct Dst<'a> {
    fd: EntryFd<'a>,
    owner: Option<(u32, u32)>,
}

/// Gives the entry `dst` (a handle of an entry the caller made: from
/// [`cowtree_fs::sys::open_entry`], or a directory's own) metadata recorded earlier, as
/// [`crate::Linker`] gives an entry its source's under `preserve` and in the same order:
/// owner and group (`owner`), then the mode (`step`; set-ID bits only where owner and group
/// were kept), then the attributes `xattrs` (those `preserve` asks for: see
/// [`keeps_attribute`]). What the caller may not do or `dst`'s filesystem cannot hold is
/// counted in `not_kept`, never an error. Returns whether owner and group were both kept.
/// What a checkout of a `cowtree snapshot --archive` calls for each entry it restores.
pub fn keep_recorded(
    preserve: Preserve,
    owner: Option<(u32, u32)>,
    mode: u32,
    xattrs: &[(Vec<u8>, Vec<u8>)],
    dst: EntryFd<'_>,
    step: ModeStep,
    not_kept: &mut NotKept,
) -> io::Result<bool> {
    let dst = Dst {
        fd: dst,
        owner: None,
    };
    apply(
        preserve,
        owner,
        mode,
        Attrs::Recorded(xattrs),
        dst,
        step,
        not_kept,
    )
}

/// Where the attributes an entry is given come from.
#[derive(Clone, Copy)]
#[cfg_attr(windows, allow(dead_code))]
enum Attrs<'a> {
    /// The source entry's own, read through this handle.
    Entry(EntryFd<'a>),
    /// Names and values recorded earlier.
    Recorded(&'a [(Vec<u8>, Vec<u8>)]),
}

#[cfg(unix)]
fn apply(
    preserve: Preserve,
    owner: Option<(u32, u32)>,
    mode: u32,
    attrs: Attrs<'_>,
    dst: Dst<'_>,
    step: ModeStep,
    not_kept: &mut NotKept,
) -> io::Result<bool> {
    let owned = match owner {
        Some(owner) if preserve.ownership => chown(dst, owner, not_kept)?,
        _ => false,
    };
    let mode = mode & 0o7777;
    let chmod = match step {
        ModeStep::Leave => false,
        ModeStep::SetId => owned && mode & 0o6000 != 0,
        ModeStep::Always => true,
    };
    if chmod {
        chmod_entry(dst.fd, kept_bits(mode, owned))?;
    }
    if preserve.xattr || preserve.acl {
        copy_attributes(preserve, attrs, dst.fd, not_kept)?;
    }
    Ok(owned)
}

/// [`apply`] on Windows: owners, attributes and ACLs are not kept there (refused up front,
/// see [`crate::options::unsupported_here`]), nor a mode set on its own (special files and
/// recorded entries); a file's set-ID bits need its owner kept, so there is nothing else.
#[cfg(windows)]
fn apply(
    preserve: Preserve,
    _owner: Option<(u32, u32)>,
    _mode: u32,
    _attrs: Attrs<'_>,
    _dst: Dst<'_>,
    step: ModeStep,
    _not_kept: &mut NotKept,
) -> io::Result<bool> {
    if preserve.metadata() || step == ModeStep::Always {
        return Err(not_here());
    }
    Ok(false)
}

/// Gives `dst` the owner and group `(uid, gid)`, or the group alone where only that is
/// permitted (the caller is not root but a member of the group); true when both were set.
#[cfg(unix)]
fn chown(dst: Dst<'_>, (uid, gid): (u32, u32), not_kept: &mut NotKept) -> io::Result<bool> {
    // Already theirs (most entries of a tree one user owns, copied by that user): nothing to
    // change. A `chown` to the same owner would clear set-ID bits and capabilities, which an
    // entry this run made has not been given yet.
    let now = match dst.owner {
        Some(o) => o,
        None => {
            let st = fstat(dst.fd.fd())?;
            (st.st_uid, st.st_gid)
        }
    };
    if now == (uid, gid) {
        return Ok(true);
    }
    let dst = dst.fd;
    match chown_entry(dst, Some(uid), Some(gid)) {
        Ok(()) => return Ok(true),
        // EINVAL: an id with no mapping in this user namespace.
        Err(Errno::PERM | Errno::INVAL) => {}
        Err(e) => return Err(e.into()),
    }
    not_kept.ownership += 1;
    match chown_entry(dst, None, Some(gid)) {
        Ok(()) | Err(Errno::PERM | Errno::INVAL) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// Sets on `dst` each attribute of `src` that `preserve` asks for. One the caller may not
/// write (`trusted.*`, `security.*` without root) or the destination cannot hold counts the
/// entry once in `not_kept` (under `acl` for an ACL, else `xattr`).
#[cfg(unix)]
fn copy_attributes(
    preserve: Preserve,
    src: Attrs<'_>,
    dst: EntryFd<'_>,
    not_kept: &mut NotKept,
) -> io::Result<()> {
    let (mut lost_xattr, mut lost_acl) = (false, false);
    let listed = match src {
        Attrs::Entry(fd) => xattr_list(fd)?,
        Attrs::Recorded(_) => Vec::new(),
    };
    let recorded = match src {
        Attrs::Recorded(list) => list,
        Attrs::Entry(_) => &[],
    };
    let names = (listed.iter().map(|n| (n.as_slice(), None))).chain(
        recorded
            .iter()
            .map(|(n, v)| (n.as_slice(), Some(v.as_slice()))),
    );
    for (name, given) in names {
        if !wanted(preserve, name) {
            continue;
        }
        let read;
        let value = match (given, src) {
            (Some(v), _) => v,
            (None, Attrs::Entry(fd)) => match xattr_get(fd, name)? {
                Some(v) => {
                    read = v;
                    &read
                }
                None => continue,
            },
            (None, Attrs::Recorded(_)) => continue,
        };
        match xattr_set(dst, name, value) {
            Ok(()) => {}
            Err(Errno::PERM | Errno::ACCESS | Errno::NOTSUP) => {
                if attribute(name) == Attribute::Acl {
                    lost_acl = true;
                } else {
                    lost_xattr = true;
                }
            }
            Err(e) => return Err(e.into()),
        }
    }
    not_kept.xattr += u64::from(lost_xattr);
    not_kept.acl += u64::from(lost_acl);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn acls_are_kept_under_acl_others_under_xattr_and_filesystem_internals_never() {
        let xattr = Preserve {
            xattr: true,
            ..Preserve::default()
        };
        let acl = Preserve {
            acl: true,
            ..Preserve::default()
        };
        let rows: [(&[u8], bool, bool); 11] = [
            (b"user.test", true, false),
            (b"security.selinux", true, false),
            (b"security.capability", true, false),
            (b"trusted.x", true, false),
            (b"system.posix_acl_access", false, true),
            (b"system.posix_acl_default", false, true),
            (b"system.nfs4_acl", false, true),
            // XFS's own view of its ACLs, and what only the kernel writes: never.
            (b"trusted.SGI_ACL_FILE", false, false),
            (b"trusted.SGI_ACL_DEFAULT", false, false),
            (b"trusted.SGI_DMI_x", false, false),
            (b"security.evm", false, false),
        ];
        for (name, under_xattr, under_acl) in rows {
            assert_eq!(wanted(xattr, name), under_xattr, "{name:?}");
            assert_eq!(wanted(acl, name), under_acl, "{name:?}");
            assert_eq!(
                wanted(Preserve::ALL, name),
                under_xattr || under_acl,
                "{name:?}"
            );
            assert!(!wanted(Preserve::default(), name), "{name:?}");
        }
    }

    #[test]
    fn set_id_bits_are_kept_only_with_owner_and_group() {
        let rows = [
            (0o104755, true, 0o4755),
            (0o104755, false, 0o755),
            (0o102750, false, 0o750),
            (0o101777, false, 0o1777),
            (0o100644, true, 0o644),
        ];
        for (mode, owned, bits) in rows {
            assert_eq!(kept_bits(mode, owned), bits, "{mode:o} owned={owned}");
        }
    }
}
