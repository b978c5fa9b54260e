//! Directory-relative calls on Windows, what [`crate::dir::Dir`] is built on there: `NtCreateFile`
//! with `OBJECT_ATTRIBUTES.RootDirectory` set to an open directory (the `openat` of NT), always
//! with `FILE_OPEN_REPARSE_POINT`, so a symlink or junction at the name is opened itself and
//! never followed; the listing of a directory through its handle (`NtQueryDirectoryFile`,
//! `FileIdBothDirectoryInformation`); the facts of an open handle.
//!
//! Relative opens take one validated name each (the caller walks a path component by
//! component), so no path limit applies to them and no `\\?\` prefix is needed; a root opened
//! from a path gets one ([`verbatim`]), so that long paths work there too.

use std::ffi::OsStr;
use std::io;
use std::mem::{offset_of, size_of};
use std::os::windows::ffi::OsStrExt;
use std::os::windows::io::{AsHandle, AsRawHandle, BorrowedHandle, FromRawHandle, OwnedHandle};

use windows_sys::Wdk::Foundation::OBJECT_ATTRIBUTES;
use windows_sys::Wdk::Storage::FileSystem::{
    FILE_CREATE, FILE_DIRECTORY_FILE, FILE_ID_BOTH_DIR_INFORMATION, FILE_NON_DIRECTORY_FILE,
    FILE_OPEN, FILE_OPEN_REPARSE_POINT, FILE_RENAME_INFORMATION, FILE_RENAME_INFORMATION_0,
    FILE_SYNCHRONOUS_IO_NONALERT, FileIdBothDirectoryInformation, FileLinkInformation,
    FileRenameInformation, NtCreateFile, NtQueryDirectoryFile, NtSetInformationFile,
};
use windows_sys::Win32::Foundation::{
    HANDLE, NTSTATUS, OBJ_CASE_INSENSITIVE, RtlNtStatusToDosError, STATUS_NO_MORE_FILES,
    STATUS_NO_SUCH_FILE, UNICODE_STRING,
};
use windows_sys::Win32::Storage::FileSystem::{
    FILE_ATTRIBUTE_DIRECTORY, FILE_ATTRIBUTE_NORMAL, FILE_ATTRIBUTE_REPARSE_POINT,
    FILE_ATTRIBUTE_TAG_INFO, FILE_BASIC_INFO, FILE_ID_INFO, FILE_NAME_NORMALIZED,
    FILE_READ_ATTRIBUTES, FILE_SHARE_DELETE, FILE_SHARE_READ, FILE_SHARE_WRITE, FILE_STANDARD_INFO,
    FileAttributeTagInfo, FileBasicInfo, FileIdInfo, FileStandardInfo, FlushFileBuffers,
    GetFileInformationByHandleEx, GetFinalPathNameByHandleW, SYNCHRONIZE,
    SetFileInformationByHandle, VOLUME_NAME_DOS,
};
use windows_sys::Win32::System::IO::IO_STATUS_BLOCK;
use windows_sys::Win32::System::SystemServices::{
    IO_REPARSE_TAG_MOUNT_POINT, IO_REPARSE_TAG_SYMLINK,
};

/// What the caller expects at a name it opens: anything else there is an error, and a reparse
/// point is never what a [`Expect::Directory`] or [`Expect::File`] open accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Expect {
    /// A directory (`FILE_DIRECTORY_FILE`), not a reparse point.
    Directory,
    /// A file (`FILE_NON_DIRECTORY_FILE`), not a reparse point.
    File,
    /// Whatever is there, a reparse point opened itself (for `stat` and removal).
    Any,
}

/// Whether the open makes the entry or finds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Disposition {
    /// `FILE_OPEN`: it must exist.
    Open,
    /// `FILE_CREATE`: it must not exist (whatever is there, a reparse point included, makes
    /// the call fail with `STATUS_OBJECT_NAME_COLLISION`: never opened, never written).
    Create,
}

/// The error of a failed NT call, as the Win32 error code std maps to an [`io::ErrorKind`]
/// (`STATUS_OBJECT_NAME_COLLISION` is `ERROR_ALREADY_EXISTS`, `STATUS_NOT_A_DIRECTORY` is
/// `ERROR_DIRECTORY`, ...).
pub(crate) fn nt_error(status: NTSTATUS) -> io::Error {
    // SAFETY: a pure table lookup; any value is accepted.
    let code = unsafe { RtlNtStatusToDosError(status) };
    io::Error::from_raw_os_error(code as i32)
}

/// The UTF-16 of one name, as [`open_at`] takes it.
pub(crate) fn wide(name: &OsStr) -> Vec<u16> {
    name.encode_wide().collect()
}

/// Opens or creates the entry `name` (one component, already validated; empty: `dir` itself,
/// a new handle with its own listing position) relative to the directory `dir`, with `access`
/// (`SYNCHRONIZE` and `FILE_READ_ATTRIBUTES` are always added), never following a reparse
/// point. An open that expects a directory or a file checks what it opened and refuses a
/// reparse point (a symlink or junction planted there) with [`reparse_in_the_way`], closing the
/// handle without touching anything through it.
pub(crate) fn open_at(
    dir: BorrowedHandle<'_>,
    name: &[u16],
    access: u32,
    disposition: Disposition,
    expect: Expect,
) -> io::Result<OwnedHandle> {
    open_at_shared(
        dir,
        name,
        access,
        FILE_SHARE_READ | FILE_SHARE_WRITE | FILE_SHARE_DELETE,
        disposition,
        expect,
    )
}

/// [`open_at`] with the share mode `share` (`FILE_SHARE_*`) instead of sharing everything:
/// with 0, the open fails with `ERROR_SHARING_VIOLATION` while any other handle with data
/// access (reading, writing, listing, deleting) is open on the entry, and no such handle can
/// be opened while this one is.
pub(crate) fn open_at_shared(
    dir: BorrowedHandle<'_>,
    name: &[u16],
    access: u32,
    share: u32,
    disposition: Disposition,
    expect: Expect,
) -> io::Result<OwnedHandle> {
    let bytes = u16::try_from(name.len() * 2).map_err(|_| {
        io::Error::new(io::ErrorKind::InvalidInput, "name too long for one NT call")
    })?;
    let object_name = UNICODE_STRING {
        Length: bytes,
        MaximumLength: bytes,
        Buffer: name.as_ptr().cast_mut(),
    };
    let attributes = OBJECT_ATTRIBUTES {
        Length: size_of::<OBJECT_ATTRIBUTES>() as u32,
        RootDirectory: dir.as_raw_handle() as HANDLE,
        ObjectName: &object_name,
        // As CreateFileW opens: names are matched without regard to case.
        Attributes: OBJ_CASE_INSENSITIVE,
        SecurityDescriptor: std::ptr::null(),
        SecurityQualityOfService: std::ptr::null(),
    };
    let kind = match expect {
        Expect::Directory => FILE_DIRECTORY_FILE,
        Expect::File => FILE_NON_DIRECTORY_FILE,
        Expect::Any => 0,
    };
    let (disposition, file_attributes) = match disposition {
        Disposition::Open => (FILE_OPEN, 0),
        Disposition::Create => (FILE_CREATE, FILE_ATTRIBUTE_NORMAL),
    };
    let mut io_status = IO_STATUS_BLOCK::default();
    let mut handle: HANDLE = std::ptr::null_mut();
    // SAFETY: every pointer is to a live local for the duration of the call: `object_name`
    // points into `name`, which outlives it, and its lengths are `name`'s in bytes; `dir` is an
    // open handle borrowed for the call; no allocation size and no extended attributes are
    // passed (null, 0). The handle written to `handle` is owned by us only on success.
    let status = unsafe {
        NtCreateFile(
            &mut handle,
            access | SYNCHRONIZE | FILE_READ_ATTRIBUTES,
            &attributes,
            &mut io_status,
            std::ptr::null(),
            file_attributes,
            share,
            disposition,
            kind | FILE_OPEN_REPARSE_POINT | FILE_SYNCHRONOUS_IO_NONALERT,
            std::ptr::null(),
            0,
        )
    };
    if status < 0 {
        return Err(nt_error(status));
    }
    // SAFETY: NtCreateFile succeeded, so `handle` is a new open handle that nothing else owns.
    let owned = unsafe { OwnedHandle::from_raw_handle(handle as _) };
    if disposition == FILE_OPEN && expect != Expect::Any && !name.is_empty() {
        let (attributes, tag) = attribute_tag(owned.as_handle())?;
        if attributes & FILE_ATTRIBUTE_REPARSE_POINT != 0 {
            return Err(reparse_in_the_way(tag));
        }
    }
    Ok(owned)
}

/// The error for a reparse point where a directory or a file was expected, naming its kind.
pub(crate) fn reparse_in_the_way(tag: u32) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        format!(
            "a {} is in the way (cowtree never follows a reparse point in a destination)",
            reparse_kind(tag)
        ),
    )
}

/// What a reparse tag is, in words.
pub(crate) fn reparse_kind(tag: u32) -> String {
    match tag {
        IO_REPARSE_TAG_SYMLINK => "symlink".to_owned(),
        IO_REPARSE_TAG_MOUNT_POINT => "junction".to_owned(),
        tag => format!("reparse point (tag {tag:#010x})"),
    }
}

/// The attributes and reparse tag of an open handle (`FileAttributeTagInfo`; the tag is 0
/// unless the attributes have `FILE_ATTRIBUTE_REPARSE_POINT`).
pub(crate) fn attribute_tag(handle: BorrowedHandle<'_>) -> io::Result<(u32, u32)> {
    let info: FILE_ATTRIBUTE_TAG_INFO = info_by_handle(handle, FileAttributeTagInfo)?;
    let tag = if info.FileAttributes & FILE_ATTRIBUTE_REPARSE_POINT != 0 {
        info.ReparseTag
    } else {
        0
    };
    Ok((info.FileAttributes, tag))
}

/// What one open handle is: [`crate::dir::Stat`]'s fields, from three queries of the
/// handle that never need its name (`GetFileInformationByHandle` asks for the name too, and
/// under Wine that fails once a directory above the handle was renamed): `FileBasicInfo`
/// (attributes and the four times), `FileStandardInfo` (size, links), `FileIdInfo` (volume
/// serial and the 128-bit file id) and, for a reparse point only, its tag.
pub(crate) struct RawStat {
    pub basic: FILE_BASIC_INFO,
    pub standard: FILE_STANDARD_INFO,
    pub id: FILE_ID_INFO,
    pub tag: u32,
}

/// One `GetFileInformationByHandleEx` of `class` into a `T`.
fn info_by_handle<T: Default>(handle: BorrowedHandle<'_>, class: i32) -> io::Result<T> {
    let mut out = T::default();
    // SAFETY: the handle is open for the call; `out` is a live `T`, the structure `class`
    // fills (every caller pairs them), and its size is passed with it.
    let ok = unsafe {
        GetFileInformationByHandleEx(
            handle.as_raw_handle() as HANDLE,
            class,
            (&mut out as *mut T).cast(),
            size_of::<T>() as u32,
        )
    };
    if ok == 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(out)
}

/// See [`RawStat`].
pub(crate) fn stat_handle(handle: BorrowedHandle<'_>) -> io::Result<RawStat> {
    let basic: FILE_BASIC_INFO = info_by_handle(handle, FileBasicInfo)?;
    let standard: FILE_STANDARD_INFO = info_by_handle(handle, FileStandardInfo)?;
    let id: FILE_ID_INFO = info_by_handle(handle, FileIdInfo)?;
    let tag = if basic.FileAttributes & FILE_ATTRIBUTE_REPARSE_POINT != 0 {
        attribute_tag(handle)?.1
    } else {
        0
    };
    Ok(RawStat {
        basic,
        standard,
        id,
        tag,
    })
}

/// True when `attributes` (of an open handle) say directory and not reparse point.
pub(crate) fn is_plain_directory(attributes: u32) -> bool {
    attributes & FILE_ATTRIBUTE_DIRECTORY != 0 && attributes & FILE_ATTRIBUTE_REPARSE_POINT == 0
}

/// One record of a directory listing, as [`list`] hands it over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Record<'a> {
    /// The name, UTF-16 (never `.` or `..`: those are skipped).
    pub name: &'a [u16],
    /// `FileAttributes`.
    pub attributes: u32,
    /// The reparse tag when `attributes` has `FILE_ATTRIBUTE_REPARSE_POINT` (the listing puts
    /// it in `EaSize`), else 0.
    pub tag: u32,
    /// `FileId`: the file index [`crate::dir::Stat::ino`] gives for the entry (0 where the
    /// filesystem has none).
    pub file_id: u64,
}

/// Bytes of one listing call's buffer (a multiple of 8: the records are 8-byte aligned).
const LIST_BUFFER: usize = 64 * 1024;

/// Lists the directory open in `dir` through its own handle's position: from the start when
/// `restart` (else from wherever the handle's last listing stopped), to the end, calling
/// `each` for every entry but `.` and `..`.
pub(crate) fn list(
    dir: BorrowedHandle<'_>,
    mut restart: bool,
    mut each: impl FnMut(Record<'_>),
) -> io::Result<()> {
    let mut buf = vec![0u64; LIST_BUFFER / 8];
    let mut name = Vec::new();
    loop {
        let mut io_status = IO_STATUS_BLOCK::default();
        // SAFETY: `dir` is an open directory handle, opened for synchronous I/O (no event, no
        // APC: the call returns once the buffer is filled); `buf` is 8-byte aligned and
        // LIST_BUFFER bytes long, as passed; no file name filter (null).
        let status = unsafe {
            NtQueryDirectoryFile(
                dir.as_raw_handle() as HANDLE,
                std::ptr::null_mut(),
                None,
                std::ptr::null(),
                &mut io_status,
                buf.as_mut_ptr().cast(),
                LIST_BUFFER as u32,
                FileIdBothDirectoryInformation,
                false,
                std::ptr::null(),
                restart,
            )
        };
        restart = false;
        if status == STATUS_NO_MORE_FILES || status == STATUS_NO_SUCH_FILE {
            return Ok(());
        }
        if status < 0 {
            return Err(nt_error(status));
        }
        let filled = io_status.Information.min(LIST_BUFFER);
        // SAFETY: `buf` is LIST_BUFFER bytes of initialized u64s, and `filled` is at most that;
        // any byte pattern is a valid u8.
        let bytes = unsafe { std::slice::from_raw_parts(buf.as_ptr().cast::<u8>(), filled) };
        parse_records(bytes, &mut name, &mut each)?;
    }
}

/// Where the name starts in a `FILE_ID_BOTH_DIR_INFORMATION` record.
const NAME_AT: usize = offset_of!(FILE_ID_BOTH_DIR_INFORMATION, FileName);

fn u32_at(rec: &[u8], at: usize) -> u32 {
    let mut b = [0u8; 4];
    b.copy_from_slice(&rec[at..at + 4]);
    u32::from_le_bytes(b)
}

/// Reads the `FILE_ID_BOTH_DIR_INFORMATION` records in `buf` (what one listing call filled),
/// calling `each` for every one but `.` and `..`. Treats the buffer as untrusted: a record
/// or name that would run past its end, or a next-record offset that does not move forward, is
/// an error, never a panic or an endless loop.
pub(crate) fn parse_records(
    buf: &[u8],
    name: &mut Vec<u16>,
    mut each: impl FnMut(Record<'_>),
) -> io::Result<()> {
    let bad = |what: &str| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("directory listing record {what}"),
        )
    };
    let mut at = 0usize;
    while at < buf.len() {
        let rec = &buf[at..];
        if rec.len() < NAME_AT {
            return Err(bad("cut short"));
        }
        let next = u32_at(
            rec,
            offset_of!(FILE_ID_BOTH_DIR_INFORMATION, NextEntryOffset),
        );
        let attributes = u32_at(
            rec,
            offset_of!(FILE_ID_BOTH_DIR_INFORMATION, FileAttributes),
        );
        let name_len = u32_at(
            rec,
            offset_of!(FILE_ID_BOTH_DIR_INFORMATION, FileNameLength),
        );
        let ea = u32_at(rec, offset_of!(FILE_ID_BOTH_DIR_INFORMATION, EaSize));
        let id_at = offset_of!(FILE_ID_BOTH_DIR_INFORMATION, FileId);
        let mut id = [0u8; 8];
        id.copy_from_slice(&rec[id_at..id_at + 8]);
        let name_bytes = usize::try_from(name_len)
            .ok()
            .and_then(|n| rec.get(NAME_AT..NAME_AT.checked_add(n)?))
            .filter(|b| b.len() % 2 == 0)
            .ok_or_else(|| bad("with a name past its end"))?;
        name.clear();
        name.extend(
            name_bytes
                .chunks_exact(2)
                .map(|c| u16::from_le_bytes([c[0], c[1]])),
        );
        let dot = name.as_slice() == [u16::from(b'.')]
            || name.as_slice() == [u16::from(b'.'), u16::from(b'.')];
        if !dot {
            each(Record {
                name,
                attributes,
                tag: if attributes & FILE_ATTRIBUTE_REPARSE_POINT != 0 {
                    ea
                } else {
                    0
                },
                file_id: u64::from_le_bytes(id),
            });
        }
        if next == 0 {
            return Ok(());
        }
        let next = usize::try_from(next).map_err(|_| bad("offset too large"))?;
        if next < NAME_AT {
            return Err(bad("offset inside the record"));
        }
        at = at
            .checked_add(next)
            .ok_or_else(|| bad("offset too large"))?;
    }
    Ok(())
}

/// `abs` (an absolute path as `GetFullPathNameW` gives it) as a `\\?\` path, which Windows
/// takes as it is, with no `MAX_PATH` limit: `C:\x` becomes `\\?\C:\x`, `\\server\share\x`
/// becomes `\\?\UNC\server\share\x`; a path already in the `\\?\` or `\\.\` form is kept.
/// The caller has normalized it already (`\\?\` paths are not: no `..`, `/` or trailing-dot
/// stripping happens after this).
pub(crate) fn verbatim(abs: &[u16]) -> Vec<u16> {
    let w = |s: &str| s.encode_utf16().collect::<Vec<u16>>();
    let is = |prefix: &str| abs.starts_with(&w(prefix));
    if is(r"\\?\") || is(r"\\.\") || is(r"\??\") {
        return abs.to_vec();
    }
    if is(r"\\") {
        let mut out = w(r"\\?\UNC\");
        out.extend_from_slice(&abs[2..]);
        return out;
    }
    let mut out = w(r"\\?\");
    out.extend_from_slice(abs);
    out
}

/// What [`set_name`] makes of the entry open in a handle: a new name for it (a rename) or a
/// second name (a hardlink). The two `FILE_*_INFORMATION` structures have the same layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NewName {
    /// `FileRenameInformation`: the entry moves to the new name.
    Rename,
    /// `FileLinkInformation`: the new name is another link to the entry.
    Link,
}

/// Gives the entry open in `handle` the name `name` (one validated component) in the
/// directory `root`, relative to that directory's handle (`RootDirectory`: the `renameat` and
/// `linkat` of NT, no path is resolved), replacing what is there only when `replace`.
/// Without `replace`, anything at `name` (a reparse point included) makes it fail with
/// `ERROR_ALREADY_EXISTS` and is left as it was: the check and the rename are one call.
/// `handle` must have been opened with `DELETE` for a rename.
pub(crate) fn set_name(
    handle: BorrowedHandle<'_>,
    root: BorrowedHandle<'_>,
    name: &[u16],
    replace: bool,
    what: NewName,
) -> io::Result<()> {
    // The two structures are the same bytes (checked in a test); one layout serves both.
    type Info = FILE_RENAME_INFORMATION;
    let name_at = offset_of!(Info, FileName);
    let name_bytes = name.len() * 2;
    let total = (name_at + name_bytes).max(size_of::<Info>());
    let name_len = u32::try_from(name_bytes)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "name too long"))?;
    // u64s: the structure holds a handle, so it is 8-byte aligned.
    let mut buf = vec![0u64; total.div_ceil(8)];
    let info = Info {
        Anonymous: FILE_RENAME_INFORMATION_0 {
            ReplaceIfExists: replace,
        },
        RootDirectory: root.as_raw_handle() as HANDLE,
        FileNameLength: name_len,
        FileName: [0],
    };
    // SAFETY: `buf` is at least `size_of::<Info>()` bytes and 8-byte aligned (u64s), so an
    // `Info` fits at its start; the name's `name_bytes` bytes are copied from `name` (a live
    // slice of that many u16s) to `name_at`, inside `buf` (`total` covers them); u16 needs
    // 2-byte alignment, which `name_at` (a field offset of a u16 array) has.
    unsafe {
        let base = buf.as_mut_ptr().cast::<u8>();
        std::ptr::write(base.cast::<Info>(), info);
        std::ptr::copy_nonoverlapping(name.as_ptr(), base.add(name_at).cast::<u16>(), name.len());
    }
    let class = match what {
        NewName::Rename => FileRenameInformation,
        NewName::Link => FileLinkInformation,
    };
    let mut io_status = IO_STATUS_BLOCK::default();
    // SAFETY: `handle` and `root` are open handles borrowed for the call; `buf` holds a
    // complete structure of the class's layout followed by its name, and its true length in
    // bytes is passed with it (`total` fits in u32: the name is at most 65535 bytes long).
    let status = unsafe {
        NtSetInformationFile(
            handle.as_raw_handle() as HANDLE,
            &mut io_status,
            buf.as_ptr().cast(),
            total as u32,
            class,
        )
    };
    if status < 0 {
        return Err(nt_error(status));
    }
    Ok(())
}

/// Sets the last access and last write times of the entry open in `handle` (opened with
/// `FILE_WRITE_ATTRIBUTES`), in `FILETIME` units; the creation and change times and the
/// attributes are left as they are (0 in `FILE_BASIC_INFO` means "unchanged").
pub(crate) fn set_times(
    handle: BorrowedHandle<'_>,
    accessed: i64,
    modified: i64,
) -> io::Result<()> {
    let info = FILE_BASIC_INFO {
        CreationTime: 0,
        LastAccessTime: accessed,
        LastWriteTime: modified,
        ChangeTime: 0,
        FileAttributes: 0,
    };
    set_info(handle, FileBasicInfo, &info)
}

/// Sets the attributes of the entry open in `handle` (opened with `FILE_WRITE_ATTRIBUTES`),
/// leaving its times as they are. `attributes` must not be 0 (that means "unchanged"):
/// `FILE_ATTRIBUTE_NORMAL` is "none".
pub(crate) fn set_attributes(handle: BorrowedHandle<'_>, attributes: u32) -> io::Result<()> {
    let info = FILE_BASIC_INFO {
        FileAttributes: attributes,
        ..FILE_BASIC_INFO::default()
    };
    set_info(handle, FileBasicInfo, &info)
}

/// One `SetFileInformationByHandle` of `class` from a `T`.
fn set_info<T>(handle: BorrowedHandle<'_>, class: i32, info: &T) -> io::Result<()> {
    // SAFETY: the handle is open for the call; `info` is a live `T`, the structure `class`
    // reads (every caller pairs them), and its size is passed with it.
    let ok = unsafe {
        SetFileInformationByHandle(
            handle.as_raw_handle() as HANDLE,
            class,
            (info as *const T).cast(),
            size_of::<T>() as u32,
        )
    };
    if ok == 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// `FlushFileBuffers` of `handle` (a file opened for writing, a directory opened with
/// `FILE_ADD_FILE`, or a volume): its data and metadata reach the device.
pub(crate) fn flush(handle: BorrowedHandle<'_>) -> io::Result<()> {
    // SAFETY: the handle is open for the call.
    if unsafe { FlushFileBuffers(handle.as_raw_handle() as HANDLE) } == 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// The path of the entry open in `handle`, as `GetFinalPathNameByHandleW` gives it (`\\?\C:\..`;
/// `\\?\UNC\..` on a share), for messages and for finding its volume.
pub(crate) fn final_path(handle: BorrowedHandle<'_>) -> io::Result<Vec<u16>> {
    let mut buf = vec![0u16; 512];
    loop {
        // SAFETY: the handle is open; `buf`'s length in u16s is passed with it.
        let n = unsafe {
            GetFinalPathNameByHandleW(
                handle.as_raw_handle() as HANDLE,
                buf.as_mut_ptr(),
                buf.len() as u32,
                FILE_NAME_NORMALIZED | VOLUME_NAME_DOS,
            )
        } as usize;
        if n == 0 {
            return Err(io::Error::last_os_error());
        }
        if n < buf.len() {
            buf.truncate(n);
            return Ok(buf);
        }
        // Too small: `n` is the size needed, with the terminating NUL.
        buf.resize(n + 1, 0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(s: &str) -> Vec<u16> {
        s.encode_utf16().collect()
    }

    #[test]
    fn verbatim_prefixes_drive_and_unc_paths_and_keeps_verbatim_ones() {
        let cases = [
            (r"C:\x\y", r"\\?\C:\x\y"),
            (r"C:\", r"\\?\C:\"),
            (r"\\server\share\d", r"\\?\UNC\server\share\d"),
            (r"\\?\C:\already", r"\\?\C:\already"),
            (r"\\?\UNC\s\sh", r"\\?\UNC\s\sh"),
            (r"\\.\PhysicalDrive0", r"\\.\PhysicalDrive0"),
        ];
        for (abs, want) in cases {
            assert_eq!(verbatim(&w(abs)), w(want), "{abs}");
        }
    }

    /// One FILE_ID_BOTH_DIR_INFORMATION record, 8-byte padded, `next` set when `last` is false.
    fn record(name: &str, attributes: u32, ea: u32, id: u64, last: bool) -> Vec<u8> {
        let name = w(name);
        let len = (NAME_AT + name.len() * 2).next_multiple_of(8);
        let mut rec = vec![0u8; len];
        let put = |rec: &mut Vec<u8>, at: usize, v: &[u8]| rec[at..at + v.len()].copy_from_slice(v);
        let next = if last { 0 } else { len as u32 };
        put(&mut rec, 0, &next.to_le_bytes());
        type R = FILE_ID_BOTH_DIR_INFORMATION;
        put(
            &mut rec,
            offset_of!(R, FileAttributes),
            &attributes.to_le_bytes(),
        );
        put(
            &mut rec,
            offset_of!(R, FileNameLength),
            &((name.len() * 2) as u32).to_le_bytes(),
        );
        put(&mut rec, offset_of!(R, EaSize), &ea.to_le_bytes());
        put(&mut rec, offset_of!(R, FileId), &id.to_le_bytes());
        let bytes: Vec<u8> = name.iter().flat_map(|u| u.to_le_bytes()).collect();
        put(&mut rec, NAME_AT, &bytes);
        rec
    }

    fn parse(buf: &[u8]) -> io::Result<Vec<(String, u32, u32, u64)>> {
        let mut out = Vec::new();
        parse_records(buf, &mut Vec::new(), |r| {
            out.push((
                String::from_utf16_lossy(r.name),
                r.attributes,
                r.tag,
                r.file_id,
            ))
        })?;
        Ok(out)
    }

    #[test]
    fn records_give_names_attributes_tags_and_ids_without_dot_and_dotdot() {
        let mut buf = record(".", FILE_ATTRIBUTE_DIRECTORY, 0, 1, false);
        buf.extend(record("..", FILE_ATTRIBUTE_DIRECTORY, 0, 2, false));
        buf.extend(record("caf\u{e9}", 0x20, 7, 3, false));
        buf.extend(record(
            "link",
            FILE_ATTRIBUTE_DIRECTORY | FILE_ATTRIBUTE_REPARSE_POINT,
            IO_REPARSE_TAG_MOUNT_POINT,
            4,
            false,
        ));
        buf.extend(record("\u{1f600}", FILE_ATTRIBUTE_DIRECTORY, 0, 5, true));
        let got = parse(&buf).expect("parse");
        assert_eq!(
            got,
            vec![
                // EaSize is the tag only for a reparse point.
                ("caf\u{e9}".to_owned(), 0x20, 0, 3),
                (
                    "link".to_owned(),
                    FILE_ATTRIBUTE_DIRECTORY | FILE_ATTRIBUTE_REPARSE_POINT,
                    IO_REPARSE_TAG_MOUNT_POINT,
                    4
                ),
                ("\u{1f600}".to_owned(), FILE_ATTRIBUTE_DIRECTORY, 0, 5),
            ]
        );
        assert_eq!(parse(&[]).expect("empty"), vec![]);
    }

    #[test]
    fn a_hostile_buffer_is_an_error_never_a_panic_or_a_loop() {
        let good = record("name", 0, 0, 1, true);
        // Cut anywhere inside the record.
        for cut in 1..good.len() - 1 {
            let r = parse(&good[..cut]);
            assert!(r.is_err() || cut >= NAME_AT + 8, "cut at {cut}: {r:?}");
        }
        // A name length past the end.
        let mut long = good.clone();
        long[offset_of!(FILE_ID_BOTH_DIR_INFORMATION, FileNameLength)..][..4]
            .copy_from_slice(&1000u32.to_le_bytes());
        assert!(parse(&long).is_err());
        // An odd name length.
        let mut odd = good.clone();
        odd[offset_of!(FILE_ID_BOTH_DIR_INFORMATION, FileNameLength)..][..4]
            .copy_from_slice(&3u32.to_le_bytes());
        assert!(parse(&odd).is_err());
        // A next offset that points back into the record (it would never end).
        let mut back = good.clone();
        back[..4].copy_from_slice(&4u32.to_le_bytes());
        assert!(parse(&back).is_err());
        // A next offset past the end stops the walk without reading there.
        let mut past = good.clone();
        past[..4].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(parse(&past).expect("past").len(), 1);
    }

    #[test]
    fn rename_and_link_information_share_one_layout() {
        use windows_sys::Wdk::Storage::FileSystem::FILE_LINK_INFORMATION;
        type R = FILE_RENAME_INFORMATION;
        type L = FILE_LINK_INFORMATION;
        assert_eq!(size_of::<R>(), size_of::<L>());
        assert_eq!(offset_of!(R, RootDirectory), offset_of!(L, RootDirectory));
        assert_eq!(offset_of!(R, FileNameLength), offset_of!(L, FileNameLength));
        assert_eq!(offset_of!(R, FileName), offset_of!(L, FileName));
    }

    #[test]
    fn reparse_kinds_are_named() {
        assert_eq!(reparse_kind(IO_REPARSE_TAG_SYMLINK), "symlink");
        assert_eq!(reparse_kind(IO_REPARSE_TAG_MOUNT_POINT), "junction");
        assert_eq!(reparse_kind(0x8000_001b), "reparse point (tag 0x8000001b)");
        let e = reparse_in_the_way(IO_REPARSE_TAG_MOUNT_POINT);
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
        assert!(e.to_string().contains("a junction is in the way"), "{e}");
    }
}
