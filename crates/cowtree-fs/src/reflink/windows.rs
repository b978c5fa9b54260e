//! Block cloning into a new file on Windows, with the copy fallback: the Windows side of
//! [`try_reflink`] and [`clone_or_copy`] (by path) and of [`transfer_at`], [`try_reflink_at`]
//! and [`transfer_at_open`] (relative to directory handles: the source opened and the
//! destination created with `NtCreateFile` relative to their directories, never following a
//! reparse point, as `crate::dir` opens), with the same outcomes as on unix.
//!
//! One clone, in order (each step's failure is classified by
//! [`crate::classify::classify_win32_clone_error`]):
//! 1. The destination's name is checked against the names Windows cannot hold
//!    ([`crate::name::windows`]) before anything is opened or written.
//! 2. The source is opened without following a reparse point; a reparse point or directory is
//!    refused as not a regular file; a missing source is [`ReflinkOutcome::SourceVanished`].
//! 3. The destination is created exclusively (`CREATE_NEW`, `FILE_FLAG_OPEN_REPARSE_POINT`,
//!    checked to be a regular file): an existing destination, a symlink or junction
//!    included, is an [`io::ErrorKind::AlreadyExists`] error and is left as it was. This
//!    comes before the volume's verdict, as on Linux, so an existing destination is reported
//!    whether or not the volume clones.
//! 4. Can this volume clone? It must report block cloning (`FILE_SUPPORTS_BLOCK_REFCOUNTING`)
//!    and answer `FSCTL_GET_INTEGRITY_INFORMATION` (its cluster size, and the integrity
//!    setting the destination must share). If not: unsupported.
//! 5. Different volume serials: unsupported (cross-device). Otherwise the destination gets the
//!    source's integrity setting (on or off: a new file takes its directory's) and sparse
//!    flag, then its size, then the source's clusters in the calls
//!    [`crate::block_clone::clone_ranges`] plans. The size is read once, when the source is
//!    opened: a source written during the call gives what a copy would, a mix, and the
//!    store's rule (hash the clone, not the source) is what makes that safe.
//! 6. On failure the destination this call created is deleted through its own handle (so
//!    only that file, whatever now has its name), unless a copy is wanted: then the bytes are
//!    copied into it through the two handles.
//!
//! The copy is a plain read/write through the handles this call holds, not `CopyFileExW`:
//! `CopyFileExW` creates the destination itself by name, and since Windows 11 24H2 it may
//! block-clone, so a "copied" report could not be known true. Only the file's data is
//! transferred: no attributes, times, alternate data streams or security descriptor.
//!
//! Run under Wine (no ReFS there): steps 1 to 3 and 6, the unsupported verdict of step 4
//! and the copy; the `FSCTL_DUPLICATE_EXTENTS_TO_FILE` call is made (and refused) in a unit
//! test. Only compiled: the rest of step 4 and step 5 (integrity, sparse flag, size, the
//! clone calls on a volume that clones).

use std::ffi::OsStr;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::windows::io::{AsHandle, BorrowedHandle};
use std::path::Path;

use windows_sys::Win32::Foundation::{GENERIC_READ, GENERIC_WRITE};
use windows_sys::Win32::Storage::FileSystem::DELETE;

use super::{
    CopyMethod, Method, ReflinkOutcome, Transfer, TransferOptions, broken_promise,
    clone_or_copy_outcome, invalid_source,
};
use crate::block_clone::clone_ranges;
use crate::classify::{CloneErrno, UnsupportedCause, classify_win32_clone_error};
use crate::dir::Stat;
use crate::error::{at_path, at_paths};
use crate::name::NameError;
use crate::sys::at::{self, Disposition, Expect};
use crate::sys::{
    EntryKind, Integrity, create_new_no_follow, delete_by_handle, duplicate_extents, entry_kind,
    integrity_of, is_sparse, open_no_follow, set_integrity, set_sparse, volume_of,
};

/// Tries to block-clone `src` to the new file `dst` (same volume, ReFS or a Dev Drive).
///
/// Never falls back to a copy: [`ReflinkOutcome::Unsupported`] says why no clone was made,
/// and no destination is left then, nor when the source vanished. Errors name both paths; an
/// existing `dst` (anything at its name) is [`io::ErrorKind::AlreadyExists`] and is left as it
/// was; a name Windows cannot hold is [`io::ErrorKind::InvalidInput`] before anything is
/// written.
pub fn try_reflink(src: &Path, dst: &Path) -> io::Result<ReflinkOutcome> {
    Ok(match transfer(src, dst, false)? {
        Transfer::Cloned { .. } => ReflinkOutcome::Cloned,
        Transfer::Unsupported(cause) => ReflinkOutcome::Unsupported(cause),
        Transfer::SourceVanished => ReflinkOutcome::SourceVanished,
        Transfer::Copied { .. } => return Err(broken_promise(src, dst)),
    })
}

/// Block-clones `src` to the new file `dst`, or copies it when the volume cannot clone, and
/// says which ran and why. A source that vanished is an [`io::ErrorKind::NotFound`] error
/// naming it; the rest as [`try_reflink`].
pub fn clone_or_copy(src: &Path, dst: &Path) -> io::Result<CopyMethod> {
    clone_or_copy_outcome(transfer(src, dst, true)?, src, dst)
}

/// What step 4 found: how to clone on this volume, or why it cannot.
struct Plan {
    cluster: u64,
    integrity: Integrity,
    serial: u32,
}

/// One transfer by path; `copy` says whether an unsupported clone becomes a copy. Never
/// returns [`Transfer::Unsupported`] when `copy` is set, nor [`Transfer::Copied`] when it is
/// not.
fn transfer(src: &Path, dst: &Path, copy: bool) -> io::Result<Transfer> {
    check_name(dst)?;
    let src_file = match open_no_follow(src) {
        Ok(f) => f,
        Err(e) if vanished(&e) => return Ok(Transfer::SourceVanished),
        Err(e) => return Err(at_paths("open", src, dst, e)),
    };
    let (kind, attrs) = entry_kind(&src_file).map_err(|e| at_paths("stat", src, dst, e))?;
    if kind != EntryKind::File {
        return Err(invalid_source(src.as_os_str()));
    }
    let size = src_file
        .metadata()
        .map_err(|e| at_paths("stat", src, dst, e))?
        .len();
    let dst_file = create_new_no_follow(dst).map_err(|e| at_paths("create", src, dst, e))?;
    let method = if copy {
        Method::CloneOrCopy
    } else {
        Method::Clone
    };
    let gone = || matches!(std::fs::symlink_metadata(src), Err(ref m) if vanished(m));
    transfer_files(&src_file, (size, attrs), &dst_file, method, gone)
        .map_err(|(op, e)| at_paths(op, src, dst, e))
}

/// Fills the new, empty `dst` (created by the caller's own call) from `src` of `size` bytes
/// and attributes `attrs` by `method`. When it returns [`Transfer::Cloned`] or
/// [`Transfer::Copied`], `dst` holds the data; otherwise (unsupported, vanished: `src_gone`
/// says whether the source is really gone after a "not found", or an error, named by the
/// step that failed) `dst` has been deleted through its handle.
fn transfer_files(
    src: &File,
    (size, attrs): (u64, u32),
    dst: &File,
    method: Method,
    src_gone: impl FnOnce() -> bool,
) -> Result<Transfer, (&'static str, io::Error)> {
    if method == Method::Copy {
        return match copy_into(src, dst) {
            Ok(bytes) => Ok(Transfer::Copied {
                bytes,
                because: None,
            }),
            Err(e) => Err(("copy", discard(dst, e))),
        };
    }
    let cloned = match plan(src) {
        Ok(Ok(plan)) => clone_into(src, dst, size, attrs, &plan),
        Ok(Err(cause)) => Ok(Err(Failure::Unsupported(cause))),
        Err(e) => Err(e),
    };
    let failure = match cloned {
        Ok(Ok(())) => return Ok(Transfer::Cloned { bytes: size }),
        Ok(Err(failure)) => failure,
        Err(e) => return Err(("clone", discard(dst, e))),
    };
    match failure {
        Failure::Unsupported(cause) if method == Method::CloneOrCopy => match copy_into(src, dst) {
            Ok(bytes) => Ok(Transfer::Copied {
                bytes,
                because: Some(cause),
            }),
            Err(e) => Err(("copy", discard(dst, e))),
        },
        Failure::Unsupported(cause) => {
            delete_by_handle(dst).map_err(|e| ("remove", e))?;
            Ok(Transfer::Unsupported(cause))
        }
        Failure::MaybeVanished(e) => {
            let gone = src_gone();
            delete_by_handle(dst).map_err(|e| ("remove", e))?;
            if gone {
                Ok(Transfer::SourceVanished)
            } else {
                Err(("clone", e))
            }
        }
    }
}

/// A source file opened for [`transfer_at_open`] on Windows: its handle (named `fd` as on
/// unix, so that callers read it the same way) and what it is, which the caller may read
/// before the transfer and keep using after it, with no second open.
#[derive(Debug)]
pub struct OpenSource {
    /// Open for reading, the entry itself (a reparse point is opened, not followed; see
    /// [`OpenSource::open`]).
    pub fd: File,
    /// What it is, read right after the open.
    pub stat: Stat,
}

impl OpenSource {
    /// Opens `name` under `dir` as [`transfer_at`] opens a source: for reading, relative to
    /// the directory's handle, never following a reparse point (one is refused later, by
    /// [`transfer_at_open`], as not a regular file), and reads what it is; `None` when it is
    /// absent. `name` is checked as [`crate::dir::check_name`] checks names (a name Windows
    /// cannot open is [`io::ErrorKind::InvalidInput`]). Errors name `name`.
    pub fn open(dir: impl AsHandle, name: &OsStr) -> io::Result<Option<OpenSource>> {
        let handle = match crate::dir::open_existing(dir.as_handle(), name) {
            Ok(Some(h)) => h,
            Ok(None) => return Ok(None),
            // A refused name is said as check_name says it; an open that failed names `name`.
            Err(e) if e.kind() == io::ErrorKind::InvalidInput => return Err(e),
            Err(e) => return Err(at_path("open", Path::new(name), e)),
        };
        let stat = Stat::of(handle.as_handle()).map_err(|e| at_path("stat", Path::new(name), e))?;
        Ok(Some(OpenSource {
            fd: File::from(handle),
            stat,
        }))
    }
}

/// [`try_reflink`] relative to directory handles: `src_name` under `src_dir`, `dst_name`
/// under `dst_dir`, neither followed if it is a reparse point. The same outcomes; errors name
/// the two names.
pub fn try_reflink_at(
    src_dir: impl AsHandle,
    src_name: &OsStr,
    dst_dir: impl AsHandle,
    dst_name: &OsStr,
) -> io::Result<ReflinkOutcome> {
    let opts = TransferOptions::new(Method::Clone);
    Ok(
        match transfer_at(src_dir, src_name, dst_dir, dst_name, &opts)? {
            Transfer::Cloned { .. } => ReflinkOutcome::Cloned,
            Transfer::Unsupported(cause) => ReflinkOutcome::Unsupported(cause),
            Transfer::SourceVanished => ReflinkOutcome::SourceVanished,
            Transfer::Copied { .. } => {
                return Err(broken_promise(Path::new(src_name), Path::new(dst_name)));
            }
        },
    )
}

/// The directory-relative transfer on Windows, as on unix: opens `src_name` under `src_dir`
/// ([`OpenSource::open`]), creates `dst_name` under `dst_dir` exclusively (anything there, a
/// reparse point included, is an [`io::ErrorKind::AlreadyExists`] error and left as it was),
/// then block-clones and/or copies per `opts` (the steps of the module doc, by handle). The
/// new file gets the source's last access and write times when `opts.preserve_times`, and is
/// made read-only when `opts.mode` has no write bit or, with no mode, the source is read-only
/// (the rest of a mode has no meaning here: a new file takes its directory's ACL). On any
/// failure the file this call created is deleted through its own handle.
pub fn transfer_at(
    src_dir: impl AsHandle,
    src_name: &OsStr,
    dst_dir: impl AsHandle,
    dst_name: &OsStr,
    opts: &TransferOptions,
) -> io::Result<Transfer> {
    let src_dir = src_dir.as_handle();
    let Some(src) = OpenSource::open(src_dir, src_name)? else {
        return Ok(Transfer::SourceVanished);
    };
    let (done, _dst) = transfer_at_open(
        &src,
        (src_dir, src_name),
        (dst_dir.as_handle(), dst_name),
        opts,
    )?;
    Ok(done)
}

/// [`transfer_at`] from a source the caller opened ([`OpenSource::open`] of `src_name` under
/// `src_dir`: the name a clone's "not found" is checked against), handing back the new file
/// still open for writing (`None` when no file is left: the clone was unsupported or the
/// source vanished). Unlike unix's, it takes no `CopyRange` (the copy is a read and write
/// through the handles; there is no in-kernel copy to remember a refusal of) and no
/// `CreationMask` (Windows applies no permission bits).
pub fn transfer_at_open(
    src: &OpenSource,
    (src_dir, src_name): (BorrowedHandle<'_>, &OsStr),
    (dst_dir, dst_name): (BorrowedHandle<'_>, &OsStr),
    opts: &TransferOptions,
) -> io::Result<(Transfer, Option<File>)> {
    if !src.stat.file_type().is_file() {
        return Err(invalid_source(src_name));
    }
    crate::dir::check_name(dst_name)?;
    let names =
        |op: &'static str, e: io::Error| at_paths(op, Path::new(src_name), Path::new(dst_name), e);
    let dst = at::open_at(
        dst_dir,
        &at::wide(dst_name),
        GENERIC_READ | GENERIC_WRITE | DELETE,
        Disposition::Create,
        Expect::File,
    )
    .map(File::from)
    .map_err(|e| names("create", e))?;
    let gone = || {
        matches!(
            at::open_at(src_dir, &at::wide(src_name), 0, Disposition::Open, Expect::Any),
            Err(ref e) if e.kind() == io::ErrorKind::NotFound
        )
    };
    let done = transfer_files(
        &src.fd,
        (src.stat.size, src.stat.attributes),
        &dst,
        opts.method,
        gone,
    )
    .map_err(|(op, e)| names(op, e))?;
    if !matches!(done, Transfer::Cloned { .. } | Transfer::Copied { .. }) {
        return Ok((done, None));
    }
    if opts.preserve_times
        && let Err(e) = at::set_times(dst.as_handle(), src.stat.accessed, src.stat.modified)
    {
        return Err(names("set times of", discard(&dst, e)));
    }
    if read_only(opts.mode, src.stat.attributes)
        && let Err(e) = make_read_only(&dst)
    {
        return Err(names("make read-only", discard(&dst, e)));
    }
    Ok((done, Some(dst)))
}

/// Whether the new file is made read-only: the one permission Windows keeps in an attribute
/// (`FILE_ATTRIBUTE_READONLY`), as [`crate::place::place_at`] gives it. A `mode` without
/// write bits asks for it; with no mode (the source's), a read-only source does.
fn read_only(mode: Option<u32>, src_attributes: u32) -> bool {
    use windows_sys::Win32::Storage::FileSystem::FILE_ATTRIBUTE_READONLY;
    match mode {
        Some(mode) => mode & 0o222 == 0,
        None => src_attributes & FILE_ATTRIBUTE_READONLY != 0,
    }
}

/// Adds the read-only attribute to `dst`'s own, through its handle (which, opened for
/// writing before, keeps every right it has: times can still be set through it).
fn make_read_only(dst: &File) -> io::Result<()> {
    use windows_sys::Win32::Storage::FileSystem::FILE_ATTRIBUTE_READONLY;
    let st = Stat::of(dst.as_handle())?;
    at::set_attributes(dst.as_handle(), st.attributes | FILE_ATTRIBUTE_READONLY)
}

/// A clone that made nothing, as far as the caller acts on it.
enum Failure {
    Unsupported(UnsupportedCause),
    /// "Not found" from a clone step: the source is checked again.
    MaybeVanished(io::Error),
}

/// Step 4: `Ok(Err(cause))` when the source's volume cannot clone.
fn plan(src: &File) -> io::Result<Result<Plan, UnsupportedCause>> {
    let volume = volume_of(src)?;
    if !volume.reports_block_cloning() {
        return Ok(Err(UnsupportedCause::Filesystem));
    }
    let integrity = match integrity_of(src) {
        Ok(i) => i,
        Err(e) => {
            return match classify(&e) {
                CloneErrno::Unsupported(cause) => Ok(Err(cause)),
                _ => Err(e),
            };
        }
    };
    Ok(Ok(Plan {
        cluster: u64::from(integrity.cluster),
        integrity,
        serial: volume.serial,
    }))
}

/// Step 5, into the new, empty `dst`. `Ok(Err(_))` for a failure the caller acts on.
fn clone_into(
    src: &File,
    dst: &File,
    size: u64,
    src_attrs: u32,
    plan: &Plan,
) -> io::Result<Result<(), Failure>> {
    if volume_of(dst)?.serial != plan.serial {
        return Ok(Err(Failure::Unsupported(UnsupportedCause::CrossDevice)));
    }
    let ranges = clone_ranges(size, plan.cluster)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    let steps = || -> io::Result<()> {
        // Both ways: a new file takes its directory's integrity setting, which need not be
        // the source's ("The source and destination files must have the same Integrity
        // Streams setting").
        let have = integrity_of(dst)?;
        if (have.algorithm, have.flags) != (plan.integrity.algorithm, plan.integrity.flags) {
            set_integrity(dst, plan.integrity)?;
        }
        if is_sparse(src_attrs) {
            set_sparse(dst)?;
        }
        dst.set_len(size)?;
        for range in ranges {
            duplicate_extents(src, dst, range)?;
        }
        Ok(())
    };
    match steps() {
        Ok(()) => Ok(Ok(())),
        Err(e) => match classify(&e) {
            CloneErrno::Unsupported(cause) => Ok(Err(Failure::Unsupported(cause))),
            CloneErrno::MaybeVanished => Ok(Err(Failure::MaybeVanished(e))),
            CloneErrno::Retry | CloneErrno::Exists | CloneErrno::Fatal => Err(e),
        },
    }
}

/// Copies all of `src` into `dst` (the new file this call created), from the start, and
/// leaves `dst` exactly as long as what was read. In 1 MiB pieces: `io::copy` between two
/// files on Windows goes 8 KiB at a time.
fn copy_into(mut src: &File, mut dst: &File) -> io::Result<u64> {
    src.seek(SeekFrom::Start(0))?;
    dst.set_len(0)?;
    dst.seek(SeekFrom::Start(0))?;
    let mut buf = vec![0u8; 1 << 20];
    let mut bytes = 0u64;
    loop {
        let n = match src.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        dst.write_all(&buf[..n])?;
        bytes += n as u64;
    }
    dst.set_len(bytes)?;
    Ok(bytes)
}

/// Deletes the destination this call created, and hands back `err` (with the deletion's
/// error beside it when that failed too, so the leftover file is not silent).
fn discard(dst: &File, err: io::Error) -> io::Error {
    match delete_by_handle(dst) {
        Ok(()) => err,
        Err(e) => io::Error::new(
            err.kind(),
            format!("{err} (and the new destination could not be removed: {e})"),
        ),
    }
}

fn classify(e: &io::Error) -> CloneErrno {
    match e.raw_os_error().and_then(|c| u32::try_from(c).ok()) {
        Some(code) => classify_win32_clone_error(code),
        None => CloneErrno::Fatal,
    }
}

fn vanished(e: &io::Error) -> bool {
    classify(e) == CloneErrno::MaybeVanished
}

/// Step 1: the destination's last component must be a name Windows can hold.
fn check_name(dst: &Path) -> io::Result<()> {
    let refused = |why: NameError| {
        at_path(
            "create",
            dst,
            io::Error::new(io::ErrorKind::InvalidInput, why),
        )
    };
    let name = dst.file_name().ok_or_else(|| refused(NameError::Empty))?;
    crate::name::windows::validate_component(name.as_encoded_bytes()).map_err(refused)
}

/// The FSCTL calls themselves, on the volume the tests run on. Under Wine (no ReFS) they
/// check the calls are made and their refusals classified; on a ReFS volume, the clone.
#[cfg(test)]
mod tests {
    use super::*;
    use crate::block_clone::CloneRange;

    fn two_files() -> (tempfile::TempDir, File, File) {
        let t = tempfile::tempdir().expect("tempdir");
        std::fs::write(t.path().join("src"), vec![7u8; 10_000]).expect("write");
        let src = open_no_follow(&t.path().join("src")).expect("open src");
        let dst = create_new_no_follow(&t.path().join("dst")).expect("create dst");
        (t, src, dst)
    }

    #[test]
    fn a_new_file_is_read_only_for_a_mode_without_write_bits_or_else_a_read_only_source() {
        const RO: u32 = 0x1;
        const ARCHIVE: u32 = 0x20;
        let rows = [
            (Some(0o444), 0, true),
            (Some(0o555), ARCHIVE, true),
            (Some(0o644), RO, false),
            (Some(0o200), RO, false),
            (None, RO | ARCHIVE, true),
            (None, ARCHIVE, false),
            (None, 0, false),
        ];
        for (mode, attrs, want) in rows {
            assert_eq!(read_only(mode, attrs), want, "{mode:?} {attrs:#x}");
        }
    }

    #[test]
    fn duplicate_extents_is_refused_as_unsupported_where_the_volume_cannot_clone() {
        let (_t, src, dst) = two_files();
        if volume_of(&src).expect("volume").reports_block_cloning() {
            return; // a ReFS volume: the clone tests in tests/windows.rs cover it
        }
        dst.set_len(10_000).expect("set_len");
        let range = CloneRange {
            offset: 0,
            len: 16 << 10,
        };
        let e = duplicate_extents(&src, &dst, range).expect_err("no block cloning here");
        eprintln!("FSCTL_DUPLICATE_EXTENTS_TO_FILE refused: {e:?}");
        assert!(
            matches!(classify(&e), CloneErrno::Unsupported(_)),
            "{e:?} (Win32 error {:?})",
            e.raw_os_error()
        );
    }

    #[test]
    fn integrity_information_is_refused_as_unsupported_where_the_volume_cannot_clone() {
        let (_t, src, _dst) = two_files();
        if volume_of(&src).expect("volume").reports_block_cloning() {
            let found = integrity_of(&src).expect("ReFS answers");
            assert!(found.cluster.is_power_of_two(), "{found:?}");
            return;
        }
        let e = integrity_of(&src).expect_err("no integrity streams here");
        eprintln!("FSCTL_GET_INTEGRITY_INFORMATION refused: {e:?}");
        assert!(matches!(classify(&e), CloneErrno::Unsupported(_)), "{e:?}");
    }

    #[test]
    fn the_plan_says_unsupported_where_the_volume_does_not_report_cloning() {
        let (_t, src, _dst) = two_files();
        let volume = volume_of(&src).expect("volume");
        assert!(!volume.filesystem.is_empty(), "{volume:?}");
        if volume.reports_block_cloning() {
            return;
        }
        assert!(matches!(
            plan(&src).expect("plan"),
            Err(UnsupportedCause::Filesystem)
        ));
    }

    #[test]
    fn a_new_file_is_deleted_through_its_handle() {
        let (t, _src, dst) = two_files();
        delete_by_handle(&dst).expect("delete");
        drop(dst);
        assert!(!t.path().join("dst").exists());
    }
}
