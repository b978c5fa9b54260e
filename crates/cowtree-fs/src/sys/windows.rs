//! Windows: the calls behind the Windows subset of cowtree-fs (block cloning, volume facts,
//! handles that never follow a reparse point), through windows-sys where std has no wrapper.
//! The policy over them is in `reflink/windows.rs` and `probe_windows.rs`; the arithmetic in
//! [`crate::block_clone`].
//!
//! Every file is opened with `FILE_FLAG_OPEN_REPARSE_POINT`, so a symlink or junction as the
//! last component is opened itself (and then refused), never followed. Components before the
//! last are resolved by Windows as usual, as the unix path-based calls resolve theirs.

use std::fs::{File, OpenOptions};
use std::io;
use std::mem::size_of;
use std::os::windows::ffi::OsStrExt;
use std::os::windows::fs::{MetadataExt, OpenOptionsExt};
use std::os::windows::io::AsRawHandle;
use std::path::Path;

use windows_sys::Win32::Foundation::{GENERIC_READ, GENERIC_WRITE, HANDLE};
use windows_sys::Win32::Storage::FileSystem::{
    DELETE, FILE_ATTRIBUTE_DIRECTORY, FILE_ATTRIBUTE_REPARSE_POINT, FILE_ATTRIBUTE_SPARSE_FILE,
    FILE_DISPOSITION_INFO, FILE_FLAG_BACKUP_SEMANTICS, FILE_FLAG_OPEN_REPARSE_POINT,
    FILE_SHARE_DELETE, FILE_SHARE_READ, FILE_SHARE_WRITE, FileDispositionInfo, GetDiskFreeSpaceW,
    GetVolumeInformationByHandleW, GetVolumePathNameW, MAXIMUM_REPARSE_DATA_BUFFER_SIZE,
    SetFileInformationByHandle,
};
use windows_sys::Win32::System::IO::DeviceIoControl;
use windows_sys::Win32::System::Ioctl::{
    DUPLICATE_EXTENTS_DATA, FSCTL_DUPLICATE_EXTENTS_TO_FILE, FSCTL_GET_INTEGRITY_INFORMATION,
    FSCTL_GET_INTEGRITY_INFORMATION_BUFFER, FSCTL_GET_REPARSE_POINT,
    FSCTL_SET_INTEGRITY_INFORMATION, FSCTL_SET_INTEGRITY_INFORMATION_BUFFER,
    FSCTL_SET_REPARSE_POINT, FSCTL_SET_SPARSE,
};
use windows_sys::Win32::System::SystemServices::FILE_SUPPORTS_BLOCK_REFCOUNTING;

use crate::block_clone::CloneRange;

pub(crate) mod at;
mod entry_meta;
mod process;
pub(crate) mod reparse;
mod stat;

pub use entry_meta::{
    KEPT_ATTRIBUTES, chmod_entry, chown_entry, entry_attributes, open_entry, set_entry_attributes,
    set_entry_times, xattr_get, xattr_list, xattr_set,
};
pub use process::{process_running, process_start};
pub use stat::{FileType, Stat, Timespec};

/// The device of `st`: the volume serial number, what `st_dev` is on unix (so that callers
/// comparing devices write `sys::stat_dev` on every platform).
pub fn stat_dev(st: &Stat) -> u64 {
    st.dev
}

/// The unix mode that `st` amounts to, as Cygwin and MSYS show one: the type bits (a
/// directory, a symlink, else a regular file; any other reparse point shows as what it is
/// attached to), and permission bits read-and-search for everyone, write for everyone unless
/// the entry is read-only (`FILE_ATTRIBUTE_READONLY`), search on directories. Only the write
/// bits carry anything over: [`crate::place::place_at`] turns a mode without them back into
/// the read-only attribute. Windows keeps no other permission bits (its ACLs are not modes).
pub fn stat_mode(st: &Stat) -> u32 {
    use windows_sys::Win32::Storage::FileSystem::FILE_ATTRIBUTE_READONLY;
    let ft = st.file_type();
    let (kind, exec) = if ft.is_symlink() {
        (0o120_000, 0o111)
    } else if st.attributes & windows_sys::Win32::Storage::FileSystem::FILE_ATTRIBUTE_DIRECTORY != 0
    {
        (0o040_000, 0o111)
    } else {
        (0o100_000, 0)
    };
    let write = if st.attributes & FILE_ATTRIBUTE_READONLY != 0 {
        0
    } else {
        0o222
    };
    kind | 0o444 | write | exec
}

/// The access and modification times of `st`, as [`crate::dir::Dir::set_times`] takes them.
pub fn stat_times(st: &Stat) -> (Timespec, Timespec) {
    (st.atime(), st.mtime())
}

/// The (volume serial, file id) of `path`, what `(st_dev, st_ino)` of a `stat` is on unix
/// (std's `MetadataExt` has them on Windows only unstably): the entry opened for its
/// attributes alone, shared with every other opener; a final symlink or junction followed
/// when `follow`, else the reparse point itself. For callers that compare identities of
/// paths a user gave (a source and its destination); names inside a tree go through
/// [`crate::dir::Dir`].
pub fn path_id(path: &Path, follow: bool) -> io::Result<(u64, super::Ino)> {
    use windows_sys::Win32::Storage::FileSystem::FILE_READ_ATTRIBUTES;
    let reparse = if follow {
        0
    } else {
        FILE_FLAG_OPEN_REPARSE_POINT
    };
    let file = OpenOptions::new()
        .access_mode(FILE_READ_ATTRIBUTES)
        .share_mode(FILE_SHARE_READ | FILE_SHARE_WRITE | FILE_SHARE_DELETE)
        .custom_flags(FILE_FLAG_BACKUP_SEMANTICS | reparse)
        .open(path)?;
    let st = Stat::of(std::os::windows::io::AsHandle::as_handle(&file))?;
    Ok((st.dev, st.ino))
}

/// What an open handle is, from its attributes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum EntryKind {
    /// A regular file (possibly sparse).
    File,
    /// A directory.
    Directory,
    /// A reparse point (symlink, junction, or another kind): opened itself, not followed.
    ReparsePoint,
}

/// The kind of the entry `file` is open on, and its attributes.
pub(crate) fn entry_kind(file: &File) -> io::Result<(EntryKind, u32)> {
    let attrs = file.metadata()?.file_attributes();
    let kind = if attrs & FILE_ATTRIBUTE_REPARSE_POINT != 0 {
        EntryKind::ReparsePoint
    } else if attrs & FILE_ATTRIBUTE_DIRECTORY != 0 {
        EntryKind::Directory
    } else {
        EntryKind::File
    };
    Ok((kind, attrs))
}

/// True when `attrs` (a file's attributes) mark a sparse file.
pub(crate) fn is_sparse(attrs: u32) -> bool {
    attrs & FILE_ATTRIBUTE_SPARSE_FILE != 0
}

/// Opens `path` for reading without following a reparse point at it; others may keep reading,
/// writing and deleting it (as on unix). A directory opens too (`FILE_FLAG_BACKUP_SEMANTICS`),
/// so that the caller can say it is not a file rather than "access denied".
pub(crate) fn open_no_follow(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .read(true)
        .share_mode(FILE_SHARE_READ | FILE_SHARE_WRITE | FILE_SHARE_DELETE)
        .custom_flags(FILE_FLAG_BACKUP_SEMANTICS | FILE_FLAG_OPEN_REPARSE_POINT)
        .open(path)
}

/// Creates the new file `path` (`CREATE_NEW`: fails with `ERROR_FILE_EXISTS` when anything,
/// a symlink or junction included, has the name), open for reading, writing and deleting,
/// with `FILE_FLAG_OPEN_REPARSE_POINT`. The handle is checked to be a regular file before it
/// is handed back; otherwise it is an error and nothing is written.
pub(crate) fn create_new_no_follow(path: &Path) -> io::Result<File> {
    let file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .access_mode(GENERIC_READ | GENERIC_WRITE | DELETE)
        .share_mode(FILE_SHARE_READ | FILE_SHARE_DELETE)
        .custom_flags(FILE_FLAG_OPEN_REPARSE_POINT)
        .open(path)?;
    match entry_kind(&file)?.0 {
        EntryKind::File => Ok(file),
        kind => Err(io::Error::other(format!(
            "a new file was asked for and the handle is a {kind:?}"
        ))),
    }
}

/// Marks the file open in `file` for deletion: it goes when its last handle closes. This
/// removes exactly the file the handle is on, whatever now has its name.
pub(crate) fn delete_by_handle(file: &File) -> io::Result<()> {
    let info = FILE_DISPOSITION_INFO { DeleteFile: true };
    // SAFETY: the handle is open for the life of `file`; `info` is a valid
    // FILE_DISPOSITION_INFO and its size is passed with it.
    let ok = unsafe {
        SetFileInformationByHandle(
            handle(file),
            FileDispositionInfo,
            (&info as *const FILE_DISPOSITION_INFO).cast(),
            size_of::<FILE_DISPOSITION_INFO>() as u32,
        )
    };
    if ok == 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// What a volume says of itself (`GetVolumeInformationByHandleW`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Volume {
    /// The volume serial number: the key two handles on one volume share.
    pub serial: u32,
    /// The filesystem's name: `NTFS`, `ReFS`, `FAT32`, ...
    pub filesystem: String,
    /// The filesystem flags (`FILE_SUPPORTS_*`).
    pub flags: u32,
}

impl Volume {
    /// True when the volume reports block cloning (`FILE_SUPPORTS_BLOCK_REFCOUNTING`: ReFS v2
    /// and later, a Dev Drive). The clone itself is the proof; this is what the volume claims.
    pub fn reports_block_cloning(&self) -> bool {
        self.flags & FILE_SUPPORTS_BLOCK_REFCOUNTING != 0
    }
}

/// The volume `file` is on.
pub fn volume_of(file: &File) -> io::Result<Volume> {
    let mut serial = 0u32;
    let mut max_component = 0u32;
    let mut flags = 0u32;
    let mut name = [0u16; 64];
    // SAFETY: the handle is open; every out pointer is to a live local, and the name buffer's
    // length in u16s is passed with it; the volume name is not asked for (null, 0).
    let ok = unsafe {
        GetVolumeInformationByHandleW(
            handle(file),
            std::ptr::null_mut(),
            0,
            &mut serial,
            &mut max_component,
            &mut flags,
            name.as_mut_ptr(),
            name.len() as u32,
        )
    };
    if ok == 0 {
        return Err(io::Error::last_os_error());
    }
    let len = name.iter().position(|&c| c == 0).unwrap_or(name.len());
    Ok(Volume {
        serial,
        filesystem: String::from_utf16_lossy(&name[..len]),
        flags,
    })
}

/// The cluster size of the volume `path` is on (`GetVolumePathNameW`, then
/// `GetDiskFreeSpaceW`: sectors per cluster times bytes per sector).
pub fn cluster_size_of(path: &Path) -> io::Result<u64> {
    let wide: Vec<u16> = path.as_os_str().encode_wide().chain(Some(0)).collect();
    let mut root = vec![0u16; wide.len().max(8) + 1];
    // SAFETY: `wide` is NUL-terminated; `root`'s length in u16s is passed with it.
    let ok = unsafe { GetVolumePathNameW(wide.as_ptr(), root.as_mut_ptr(), root.len() as u32) };
    if ok == 0 {
        return Err(io::Error::last_os_error());
    }
    let (mut per_cluster, mut per_sector, mut free, mut total) = (0u32, 0u32, 0u32, 0u32);
    // SAFETY: `root` was NUL-terminated by the call above; the out pointers are live locals.
    let ok = unsafe {
        GetDiskFreeSpaceW(
            root.as_ptr(),
            &mut per_cluster,
            &mut per_sector,
            &mut free,
            &mut total,
        )
    };
    if ok == 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(u64::from(per_cluster) * u64::from(per_sector))
}

/// The root of the volume the path `path` (UTF-16, no NUL) is on, as `GetVolumePathNameW`
/// gives it (`C:\`, `\\?\C:\`, a mount point's directory), with its trailing `\`.
pub(crate) fn volume_root(path: &[u16]) -> io::Result<Vec<u16>> {
    let wide: Vec<u16> = path.iter().copied().chain(Some(0)).collect();
    let mut root = vec![0u16; wide.len().max(8) + 1];
    // SAFETY: `wide` is NUL-terminated; `root`'s length in u16s is passed with it.
    let ok = unsafe { GetVolumePathNameW(wide.as_ptr(), root.as_mut_ptr(), root.len() as u32) };
    if ok == 0 {
        return Err(io::Error::last_os_error());
    }
    let len = root.iter().position(|&c| c == 0).unwrap_or(root.len());
    root.truncate(len);
    Ok(root)
}

/// The path of the directory open in `dir`, for messages; `None` when it cannot be read.
pub fn dir_path(dir: std::os::windows::io::BorrowedHandle<'_>) -> Option<std::path::PathBuf> {
    use std::os::windows::ffi::OsStringExt;
    let wide = at::final_path(dir).ok()?;
    Some(std::path::PathBuf::from(std::ffi::OsString::from_wide(
        &wide,
    )))
}

/// A file's integrity-stream setting and its volume's cluster size
/// (`FSCTL_GET_INTEGRITY_INFORMATION`; ReFS answers, NTFS fails with `ERROR_INVALID_FUNCTION`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Integrity {
    /// `CHECKSUM_TYPE_NONE` (0) when integrity streams are off.
    pub algorithm: u16,
    /// `FSCTL_INTEGRITY_FLAG_*`.
    pub flags: u32,
    /// The volume's cluster size, in bytes.
    pub cluster: u32,
}

/// The integrity setting of `file`.
pub(crate) fn integrity_of(file: &File) -> io::Result<Integrity> {
    let mut out = FSCTL_GET_INTEGRITY_INFORMATION_BUFFER::default();
    fsctl(
        file,
        FSCTL_GET_INTEGRITY_INFORMATION,
        std::ptr::null(),
        0,
        (&mut out as *mut FSCTL_GET_INTEGRITY_INFORMATION_BUFFER).cast(),
        size_of::<FSCTL_GET_INTEGRITY_INFORMATION_BUFFER>(),
    )?;
    Ok(Integrity {
        algorithm: out.ChecksumAlgorithm,
        flags: out.Flags,
        cluster: out.ClusterSizeInBytes,
    })
}

/// Gives `file` the integrity setting `want` (block cloning needs source and destination
/// alike).
pub(crate) fn set_integrity(file: &File, want: Integrity) -> io::Result<()> {
    let input = FSCTL_SET_INTEGRITY_INFORMATION_BUFFER {
        ChecksumAlgorithm: want.algorithm,
        Reserved: 0,
        Flags: want.flags,
    };
    fsctl(
        file,
        FSCTL_SET_INTEGRITY_INFORMATION,
        (&input as *const FSCTL_SET_INTEGRITY_INFORMATION_BUFFER).cast(),
        size_of::<FSCTL_SET_INTEGRITY_INFORMATION_BUFFER>(),
        std::ptr::null_mut(),
        0,
    )
    .map(drop)
}

/// Marks `file` sparse (no input buffer: "set sparse").
pub(crate) fn set_sparse(file: &File) -> io::Result<()> {
    fsctl(
        file,
        FSCTL_SET_SPARSE,
        std::ptr::null(),
        0,
        std::ptr::null_mut(),
        0,
    )
    .map(drop)
}

/// One `FSCTL_DUPLICATE_EXTENTS_TO_FILE`: `range` of `src` shared into the same range of `dst`
/// (the call goes to the destination's handle and names the source's).
pub(crate) fn duplicate_extents(src: &File, dst: &File, range: CloneRange) -> io::Result<()> {
    let too_far = || io::Error::new(io::ErrorKind::InvalidInput, "clone range past i64::MAX");
    let offset = i64::try_from(range.offset).map_err(|_| too_far())?;
    let input = DUPLICATE_EXTENTS_DATA {
        FileHandle: handle(src),
        SourceFileOffset: offset,
        TargetFileOffset: offset,
        ByteCount: i64::try_from(range.len).map_err(|_| too_far())?,
    };
    fsctl(
        dst,
        FSCTL_DUPLICATE_EXTENTS_TO_FILE,
        (&input as *const DUPLICATE_EXTENTS_DATA).cast(),
        size_of::<DUPLICATE_EXTENTS_DATA>(),
        std::ptr::null_mut(),
        0,
    )
    .map(drop)
}

fn handle(file: &File) -> HANDLE {
    file.as_raw_handle() as HANDLE
}

/// A synchronous `DeviceIoControl` on `file`; the number of bytes it wrote to `output`.
pub(crate) fn fsctl(
    file: &File,
    code: u32,
    input: *const std::ffi::c_void,
    input_len: usize,
    output: *mut std::ffi::c_void,
    output_len: usize,
) -> io::Result<usize> {
    let mut returned = 0u32;
    // SAFETY: the handle is open for the life of `file` and was not opened for overlapped
    // I/O (no OVERLAPPED is passed); every caller passes buffers that live across the call,
    // with their true sizes (or null and 0).
    let ok = unsafe {
        DeviceIoControl(
            handle(file),
            code,
            input,
            input_len as u32,
            output,
            output_len as u32,
            &mut returned,
            std::ptr::null_mut(),
        )
    };
    if ok == 0 {
        return Err(io::Error::last_os_error());
    }
    Ok((returned as usize).min(output_len))
}

/// Makes `file` (a new, empty file or directory this process created) a reparse point with
/// `data` (`FSCTL_SET_REPARSE_POINT`; a symlink needs the privilege to create symlinks).
pub(crate) fn set_reparse_point(file: &File, data: &[u8]) -> io::Result<()> {
    fsctl(
        file,
        FSCTL_SET_REPARSE_POINT,
        data.as_ptr().cast(),
        data.len(),
        std::ptr::null_mut(),
        0,
    )
    .map(drop)
}

/// The reparse data of the reparse point open in `file` (opened with
/// `FILE_OPEN_REPARSE_POINT`), as [`reparse::parse`] reads it.
pub(crate) fn reparse_point(file: &File) -> io::Result<Vec<u8>> {
    let mut buf = vec![0u8; MAXIMUM_REPARSE_DATA_BUFFER_SIZE as usize];
    let n = fsctl(
        file,
        FSCTL_GET_REPARSE_POINT,
        std::ptr::null(),
        0,
        buf.as_mut_ptr().cast(),
        buf.len(),
    )?;
    buf.truncate(n);
    Ok(buf)
}
