//! btrfs subvolume ioctls, called through `rustix::ioctl` with the argument structs of the
//! kernel's `include/uapi/linux/btrfs.h` (sizes and opcodes are checked against it in the
//! tests below). Every call is relative to an open directory and takes a single name: no path
//! is resolved here. What each errno means to a caller is decided in
//! [`crate::subvolume`], not here.
//!
//! | call | ioctl | needs |
//! |---|---|---|
//! | [`btrfs_subvolume_create`] | `BTRFS_IOC_SUBVOL_CREATE_V2` on the parent | write access to the parent |
//! | [`btrfs_snapshot`] | `BTRFS_IOC_SNAP_CREATE_V2` on the parent, the source's fd inside | owning the source subvolume's root (or `CAP_FOWNER`) |
//! | [`btrfs_read_only`] / [`btrfs_set_read_only`] | `BTRFS_IOC_SUBVOL_GETFLAGS` / `SETFLAGS` on the root | nothing / owning the root |
//! | [`btrfs_subvolume_delete`] | `BTRFS_IOC_SNAP_DESTROY_V2` (`SNAP_DESTROY` before Linux 5.7) on the parent | `CAP_SYS_ADMIN`, or the `user_subvol_rm_allowed` mount option and write access to the root |
//! | [`btrfs_subvolume_id`] | `BTRFS_IOC_INO_LOOKUP` with objectid 256 | nothing |
//! | [`btrfs_child_subvolumes`] | `BTRFS_IOC_GET_SUBVOL_ROOTREF` | nothing |
//! | [`btrfs_child_path`] | `BTRFS_IOC_INO_LOOKUP_USER` | read and search access on the way |
//! | [`btrfs_filesystem_id`] | `BTRFS_IOC_FS_INFO` | nothing |

use std::ffi::OsStr;
use std::os::fd::BorrowedFd;
use std::os::unix::ffi::OsStrExt;

use rustix::io::Errno;
use rustix::ioctl::{Getter, Opcode, Setter, Updater, ioctl, opcode};

const MAGIC: u8 = 0x94;
const SUBVOL_NAME_MAX: usize = 4039;
const PATH_NAME_MAX: usize = 4087;
const VOL_NAME_MAX: usize = 255;
const INO_LOOKUP_PATH_MAX: usize = 4080;
const INO_LOOKUP_USER_PATH_MAX: usize = 4080 - VOL_NAME_MAX - 1;
const MAX_ROOTREF_BUFFER_NUM: usize = 255;
/// `BTRFS_FIRST_FREE_OBJECTID`: the inode number of every subvolume's root directory.
pub const SUBVOLUME_ROOT_INO: u64 = 256;
/// `BTRFS_SUPER_MAGIC`, `statfs.f_type` of btrfs.
pub const BTRFS_MAGIC: u64 = 0x9123_683e;
const SUBVOL_RDONLY: u64 = 1 << 1;

/// `struct btrfs_ioctl_vol_args`.
#[repr(C)]
struct VolArgs {
    fd: i64,
    name: [u8; PATH_NAME_MAX + 1],
}

/// `struct btrfs_ioctl_vol_args_v2` (the qgroup-inherit union is unused: zero).
#[repr(C)]
struct VolArgsV2 {
    fd: i64,
    transid: u64,
    flags: u64,
    unused: [u64; 4],
    name: [u8; SUBVOL_NAME_MAX + 1],
}

/// `struct btrfs_ioctl_ino_lookup_args`.
#[repr(C)]
struct InoLookupArgs {
    treeid: u64,
    objectid: u64,
    name: [u8; INO_LOOKUP_PATH_MAX],
}

/// `struct btrfs_ioctl_ino_lookup_user_args`.
#[repr(C)]
struct InoLookupUserArgs {
    dirid: u64,
    treeid: u64,
    name: [u8; VOL_NAME_MAX + 1],
    path: [u8; INO_LOOKUP_USER_PATH_MAX],
}

/// One `rootref` of `struct btrfs_ioctl_get_subvol_rootref_args`.
#[repr(C)]
#[derive(Clone, Copy)]
struct RootRefRaw {
    treeid: u64,
    dirid: u64,
}

/// `struct btrfs_ioctl_get_subvol_rootref_args`.
#[repr(C)]
struct RootRefArgs {
    min_treeid: u64,
    rootref: [RootRefRaw; MAX_ROOTREF_BUFFER_NUM],
    num_items: u8,
    align: [u8; 7],
}

/// `struct btrfs_ioctl_fs_info_args`.
#[repr(C)]
struct FsInfoArgs {
    max_id: u64,
    num_devices: u64,
    fsid: [u8; 16],
    nodesize: u32,
    sectorsize: u32,
    clone_alignment: u32,
    csum_type: u16,
    csum_size: u16,
    flags: u64,
    generation: u64,
    metadata_uuid: [u8; 16],
    reserved: [u8; 944],
}

const SNAP_DESTROY: Opcode = opcode::write::<VolArgs>(MAGIC, 15);
const INO_LOOKUP: Opcode = opcode::read_write::<InoLookupArgs>(MAGIC, 18);
const SNAP_CREATE_V2: Opcode = opcode::write::<VolArgsV2>(MAGIC, 23);
const SUBVOL_CREATE_V2: Opcode = opcode::write::<VolArgsV2>(MAGIC, 24);
const SUBVOL_GETFLAGS: Opcode = opcode::read::<u64>(MAGIC, 25);
const SUBVOL_SETFLAGS: Opcode = opcode::write::<u64>(MAGIC, 26);
const FS_INFO: Opcode = opcode::read::<FsInfoArgs>(MAGIC, 31);
const GET_SUBVOL_ROOTREF: Opcode = opcode::read_write::<RootRefArgs>(MAGIC, 61);
const INO_LOOKUP_USER: Opcode = opcode::read_write::<InoLookupUserArgs>(MAGIC, 62);
const SNAP_DESTROY_V2: Opcode = opcode::write::<VolArgsV2>(MAGIC, 63);

/// Zeroed argument struct.
fn zeroed<T>() -> Box<T> {
    // SAFETY: every argument struct here is plain integers and byte arrays, for which all
    // zero bytes are a valid value (and what the kernel expects in unused fields).
    unsafe { Box::new(std::mem::zeroed()) }
}

/// Copies `name` into a NUL-terminated field; the kernel takes one component, so a name with
/// `/` or NUL, empty, `.` or `..`, or too long for the field is `EINVAL` before any call.
fn put_name(field: &mut [u8], name: &OsStr) -> Result<(), Errno> {
    let bytes = name.as_bytes();
    if bytes.is_empty()
        || bytes == b"."
        || bytes == b".."
        || bytes.contains(&b'/')
        || bytes.contains(&0)
        || bytes.len() >= field.len()
    {
        return Err(Errno::INVAL);
    }
    field[..bytes.len()].copy_from_slice(bytes);
    Ok(())
}

/// The bytes of a NUL-terminated field.
fn take_cstr(field: &[u8]) -> Vec<u8> {
    let end = field.iter().position(|&b| b == 0).unwrap_or(field.len());
    field[..end].to_vec()
}

/// Creates the empty subvolume `name` in the directory `parent`.
pub fn btrfs_subvolume_create(parent: BorrowedFd<'_>, name: &OsStr) -> Result<(), Errno> {
    let mut args = zeroed::<VolArgsV2>();
    put_name(&mut args.name, name)?;
    // SAFETY: SUBVOL_CREATE_V2 reads a `btrfs_ioctl_vol_args_v2`, which `VolArgsV2` is (size
    // checked in the tests); the kernel writes nothing back.
    unsafe {
        ioctl(
            parent,
            Updater::<SUBVOL_CREATE_V2, VolArgsV2>::new(&mut *args),
        )
    }
}

/// Snapshots the subvolume whose root directory is open as `src` to `name` in `parent`,
/// writable or read-only. The kernel snapshots the subvolume that *contains* `src`, whichever
/// of its directories `src` is: the caller checks that `src` is the root.
pub fn btrfs_snapshot(
    src: BorrowedFd<'_>,
    parent: BorrowedFd<'_>,
    name: &OsStr,
    read_only: bool,
) -> Result<(), Errno> {
    use std::os::fd::AsRawFd;
    let mut args = zeroed::<VolArgsV2>();
    put_name(&mut args.name, name)?;
    args.fd = i64::from(src.as_raw_fd());
    if read_only {
        args.flags = SUBVOL_RDONLY;
    }
    // SAFETY: SNAP_CREATE_V2 reads a `btrfs_ioctl_vol_args_v2` whose `fd` is an open
    // descriptor (borrowed for the call); nothing is written back.
    unsafe {
        ioctl(
            parent,
            Updater::<SNAP_CREATE_V2, VolArgsV2>::new(&mut *args),
        )
    }
}

/// Whether the subvolume whose root directory is open as `root` is read-only (`EINVAL` when
/// `root` is not a subvolume's root).
pub fn btrfs_read_only(root: BorrowedFd<'_>) -> Result<bool, Errno> {
    // SAFETY: SUBVOL_GETFLAGS writes one `u64`, which the getter provides.
    let flags = unsafe { ioctl(root, Getter::<SUBVOL_GETFLAGS, u64>::new())? };
    Ok(flags & SUBVOL_RDONLY != 0)
}

/// Makes the subvolume whose root directory is open as `root` read-only or writable.
pub fn btrfs_set_read_only(root: BorrowedFd<'_>, read_only: bool) -> Result<(), Errno> {
    let flags = if read_only { SUBVOL_RDONLY } else { 0 };
    // SAFETY: SUBVOL_SETFLAGS reads one `u64`.
    unsafe { ioctl(root, Setter::<SUBVOL_SETFLAGS, u64>::new(flags)) }
}

/// Deletes the subvolume `name` in `parent` (its tree is freed in the background, O(1) for
/// the caller). `BTRFS_IOC_SNAP_DESTROY_V2`, or `SNAP_DESTROY` where the kernel predates it.
pub fn btrfs_subvolume_delete(parent: BorrowedFd<'_>, name: &OsStr) -> Result<(), Errno> {
    let mut args = zeroed::<VolArgsV2>();
    put_name(&mut args.name, name)?;
    // SAFETY: SNAP_DESTROY_V2 reads a `btrfs_ioctl_vol_args_v2` naming the subvolume (flags
    // 0: by name); nothing is written back.
    match unsafe {
        ioctl(
            parent,
            Updater::<SNAP_DESTROY_V2, VolArgsV2>::new(&mut *args),
        )
    } {
        Err(Errno::NOTTY) => {
            let mut v1 = zeroed::<VolArgs>();
            put_name(&mut v1.name, name)?;
            // SAFETY: SNAP_DESTROY reads a `btrfs_ioctl_vol_args` naming the subvolume.
            unsafe { ioctl(parent, Updater::<SNAP_DESTROY, VolArgs>::new(&mut *v1)) }
        }
        r => r,
    }
}

/// The id of the subvolume that contains `fd` (5 for the top level). Unprivileged: with
/// objectid 256 the kernel answers the containing tree without resolving a path.
pub fn btrfs_subvolume_id(fd: BorrowedFd<'_>) -> Result<u64, Errno> {
    let mut args = zeroed::<InoLookupArgs>();
    args.objectid = SUBVOLUME_ROOT_INO;
    // SAFETY: INO_LOOKUP reads and writes an `btrfs_ioctl_ino_lookup_args`.
    unsafe { ioctl(fd, Updater::<INO_LOOKUP, InoLookupArgs>::new(&mut *args))? };
    Ok(args.treeid)
}

/// A subvolume directly inside another: its id and the inode of the directory holding it (in
/// the parent subvolume).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RootRef {
    /// The child subvolume's id.
    pub id: u64,
    /// The inode number, in the parent subvolume, of the directory the child's root is in.
    pub dirid: u64,
}

/// Every subvolume directly inside the subvolume that contains `fd` (not only below `fd`),
/// in id order. Unprivileged.
pub fn btrfs_child_subvolumes(fd: BorrowedFd<'_>) -> Result<Vec<RootRef>, Errno> {
    let mut out = Vec::new();
    let mut args = zeroed::<RootRefArgs>();
    loop {
        // SAFETY: GET_SUBVOL_ROOTREF reads `min_treeid` and writes the refs and their count
        // into a `btrfs_ioctl_get_subvol_rootref_args`.
        let r = unsafe {
            ioctl(
                fd,
                Updater::<GET_SUBVOL_ROOTREF, RootRefArgs>::new(&mut *args),
            )
        };
        // EOVERFLOW: the buffer is full and `min_treeid` was advanced past the last one.
        let more = match r {
            Ok(()) => false,
            Err(Errno::OVERFLOW) => true,
            Err(e) => return Err(e),
        };
        let n = usize::from(args.num_items).min(MAX_ROOTREF_BUFFER_NUM);
        out.extend(args.rootref[..n].iter().map(|r| RootRef {
            id: r.treeid,
            dirid: r.dirid,
        }));
        if !more || n == 0 {
            return Ok(out);
        }
        args.num_items = 0;
    }
}

/// Where the child subvolume `child` is, relative to the directory `fd` (which must be in
/// the child's parent subvolume): its directory's path from `fd` (empty when it is `fd`
/// itself) and its name. `EACCES` when the child is not below `fd` or a directory on the way
/// is not readable and searchable by the caller.
pub fn btrfs_child_path(fd: BorrowedFd<'_>, child: RootRef) -> Result<(Vec<u8>, Vec<u8>), Errno> {
    let mut args = zeroed::<InoLookupUserArgs>();
    args.dirid = child.dirid;
    args.treeid = child.id;
    // SAFETY: INO_LOOKUP_USER reads `dirid` and `treeid` and writes NUL-terminated `name` and
    // `path` into a `btrfs_ioctl_ino_lookup_user_args`.
    unsafe {
        ioctl(
            fd,
            Updater::<INO_LOOKUP_USER, InoLookupUserArgs>::new(&mut *args),
        )?
    };
    let mut dir = take_cstr(&args.path);
    // The kernel ends a non-empty path with '/'.
    if dir.last() == Some(&b'/') {
        dir.pop();
    }
    Ok((dir, take_cstr(&args.name)))
}

/// The btrfs filesystem's UUID (`fsid`): the same for every subvolume and every mount of one
/// filesystem, unlike `st_dev` (one per subvolume) and `statfs.f_fsid`. Unprivileged.
pub fn btrfs_filesystem_id(fd: BorrowedFd<'_>) -> Result<[u8; 16], Errno> {
    let mut args = zeroed::<FsInfoArgs>();
    // SAFETY: FS_INFO reads `flags` and writes the rest of a `btrfs_ioctl_fs_info_args`.
    unsafe { ioctl(fd, Updater::<FS_INFO, FsInfoArgs>::new(&mut *args))? };
    Ok(args.fsid)
}

/// No directory clone on Linux (only macOS's `clonefile` copies a hierarchy): `ENOTSUP`.
pub fn clone_directory(
    _src: BorrowedFd<'_>,
    _parent: BorrowedFd<'_>,
    _name: &OsStr,
) -> Result<(), Errno> {
    Err(Errno::NOTSUP)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Sizes and opcodes as `<linux/btrfs.h>` (Linux 6.1 uapi) gives them on x86-64 and
    /// aarch64, printed by a C program compiled against the header.
    #[test]
    fn structs_and_opcodes_match_the_kernel_header() {
        assert_eq!(std::mem::size_of::<VolArgs>(), 4096);
        assert_eq!(std::mem::size_of::<VolArgsV2>(), 4096);
        assert_eq!(std::mem::offset_of!(VolArgsV2, name), 56);
        assert_eq!(std::mem::size_of::<InoLookupArgs>(), 4096);
        assert_eq!(std::mem::size_of::<InoLookupUserArgs>(), 4096);
        assert_eq!(std::mem::offset_of!(InoLookupUserArgs, name), 16);
        assert_eq!(std::mem::offset_of!(InoLookupUserArgs, path), 272);
        assert_eq!(std::mem::size_of::<RootRefArgs>(), 4096);
        assert_eq!(std::mem::offset_of!(RootRefArgs, num_items), 4088);
        assert_eq!(std::mem::size_of::<FsInfoArgs>(), 1024);
        assert_eq!(std::mem::offset_of!(FsInfoArgs, fsid), 16);
        let table: [(Opcode, u64); 10] = [
            (SNAP_CREATE_V2, 0x5000_9417),
            (SUBVOL_CREATE_V2, 0x5000_9418),
            (SUBVOL_GETFLAGS, 0x8008_9419),
            (SUBVOL_SETFLAGS, 0x4008_941a),
            (SNAP_DESTROY, 0x5000_940f),
            (SNAP_DESTROY_V2, 0x5000_943f),
            (INO_LOOKUP, 0xd000_9412),
            (GET_SUBVOL_ROOTREF, 0xd000_943d),
            (INO_LOOKUP_USER, 0xd000_943e),
            (FS_INFO, 0x8400_941f),
        ];
        for (op, want) in table {
            assert_eq!(op as u64, want, "opcode {op:#x}");
        }
    }

    #[test]
    fn names_are_one_component_that_fits_or_einval() {
        let mut field = [0u8; 8];
        for bad in [&b""[..], b".", b"..", b"a/b", b"a\0b", b"12345678"] {
            assert_eq!(
                put_name(&mut field, OsStr::from_bytes(bad)),
                Err(Errno::INVAL),
                "{bad:?}"
            );
        }
        put_name(&mut field, OsStr::new("1234567")).expect("fits with its NUL");
        assert_eq!(take_cstr(&field), b"1234567");
        let mut field = [0u8; 8];
        put_name(&mut field, OsStr::new("..a")).expect("a name starting with dots");
        assert_eq!(take_cstr(&field), b"..a");
    }
}
