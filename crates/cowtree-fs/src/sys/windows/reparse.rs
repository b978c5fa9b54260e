//! Symlink reparse data: the `REPARSE_DATA_BUFFER` that `FSCTL_SET_REPARSE_POINT` takes to
//! make a symlink relative to a directory handle (Windows' `CreateSymbolicLinkW` takes a path,
//! which a directory-relative caller cannot trust), and that `FSCTL_GET_REPARSE_POINT` gives
//! back. Plain bytes in, plain bytes out: no system call here, and the parser treats its input
//! as untrusted (errors, never a panic).
//!
//! The layout (`ntifs.h`): `ReparseTag` u32, `ReparseDataLength` u16 (bytes after these 8),
//! `Reserved` u16, then for a symlink `SubstituteNameOffset`, `SubstituteNameLength`,
//! `PrintNameOffset`, `PrintNameLength` (u16 each, bytes, offsets from the path buffer),
//! `Flags` u32 (`SYMLINK_FLAG_RELATIVE`) and the path buffer; a junction
//! (`IO_REPARSE_TAG_MOUNT_POINT`) has the same without `Flags`.

use std::io;

use windows_sys::Wdk::Storage::FileSystem::SYMLINK_FLAG_RELATIVE;
use windows_sys::Win32::Storage::FileSystem::MAXIMUM_REPARSE_DATA_BUFFER_SIZE;
use windows_sys::Win32::System::SystemServices::{
    IO_REPARSE_TAG_MOUNT_POINT, IO_REPARSE_TAG_SYMLINK,
};

/// The bytes before a reparse point's data: tag, data length, reserved.
const HEADER: usize = 8;
/// A symlink's fixed fields after the header: four name offsets and lengths, then `Flags`.
const SYMLINK_FIXED: usize = 12;
/// A junction's: the four offsets and lengths.
const MOUNT_POINT_FIXED: usize = 8;

fn w(s: &str) -> Vec<u16> {
    s.encode_utf16().collect()
}

fn invalid(why: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, why.to_owned())
}

/// The reparse data of a symlink to `target` (UTF-16, as the caller gave it). An absolute
/// target (`C:\x`, `C:/x`, `\\server\share\x`, `\\?\C:\x`) gets the NT form as its substitute
/// name (`\??\C:\x`, `\??\UNC\server\share\x`); anything else is relative to the link's
/// directory (`SYMLINK_FLAG_RELATIVE`). The substitute name, which Windows resolves, has `/`
/// turned into `\` (NT paths know no other separator); the print name, which [`parse`] gives
/// back, is `target` unchanged. Refused (`InvalidInput`): an empty target, one relative to a
/// drive's current directory (`C:x`) or to the root of the current drive (`\x`), which would
/// resolve differently for every reader, a NUL, and a target too long for one reparse point.
pub(crate) fn symlink_data(target: &[u16]) -> io::Result<Vec<u8>> {
    let slash = u16::from(b'/');
    let backslash = u16::from(b'\\');
    let is_sep = |c: u16| c == slash || c == backslash;
    if target.is_empty() {
        return Err(invalid("a symlink's target cannot be empty"));
    }
    if target.contains(&0) {
        return Err(invalid("a symlink's target cannot hold a NUL"));
    }
    let drive = target.len() >= 2
        && target[1] == u16::from(b':')
        && u8::try_from(target[0]).is_ok_and(|c| c.is_ascii_alphabetic());
    let unc = target.len() >= 2 && is_sep(target[0]) && is_sep(target[1]);
    let (mut substitute, relative) =
        if target.starts_with(&w(r"\\?\")) || target.starts_with(&w(r"\??\")) {
            let mut s = w(r"\??\");
            s.extend_from_slice(&target[4..]);
            (s, false)
        } else if unc {
            let mut s = w(r"\??\UNC\");
            s.extend_from_slice(&target[2..]);
            (s, false)
        } else if drive && target.len() >= 3 && is_sep(target[2]) {
            let mut s = w(r"\??\");
            s.extend_from_slice(target);
            (s, false)
        } else if drive {
            return Err(invalid(
                "a symlink's target relative to a drive's current directory (C:x) is refused",
            ));
        } else if is_sep(target[0]) {
            return Err(invalid(
                "a symlink's target relative to the current drive's root (\\x) is refused",
            ));
        } else {
            (target.to_vec(), true)
        };
    for c in &mut substitute {
        if *c == slash {
            *c = backslash;
        }
    }
    let too_long = || invalid("a symlink's target is too long for a reparse point");
    let sub_bytes = substitute.len() * 2;
    let print_bytes = target.len() * 2;
    let data_len = SYMLINK_FIXED + sub_bytes + print_bytes;
    if HEADER + data_len > MAXIMUM_REPARSE_DATA_BUFFER_SIZE as usize {
        return Err(too_long());
    }
    let u16_of = |n: usize| u16::try_from(n).map_err(|_| too_long());
    let mut out = Vec::with_capacity(HEADER + data_len);
    out.extend_from_slice(&IO_REPARSE_TAG_SYMLINK.to_le_bytes());
    out.extend_from_slice(&u16_of(data_len)?.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes()); // substitute name first in the buffer
    out.extend_from_slice(&u16_of(sub_bytes)?.to_le_bytes());
    out.extend_from_slice(&u16_of(sub_bytes)?.to_le_bytes()); // then the print name
    out.extend_from_slice(&u16_of(print_bytes)?.to_le_bytes());
    let flags = if relative { SYMLINK_FLAG_RELATIVE } else { 0 };
    out.extend_from_slice(&flags.to_le_bytes());
    out.extend(substitute.iter().flat_map(|c| c.to_le_bytes()));
    out.extend(target.iter().flat_map(|c| c.to_le_bytes()));
    Ok(out)
}

/// What a reparse point's data says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Reparse {
    /// A symlink: the target as it was given when made (the print name; the substitute name
    /// with its `\??\` turned back into a Win32 path when there is no print name), and whether
    /// it is relative to the link's directory.
    Symlink { target: Vec<u16>, relative: bool },
    /// A junction (or volume mount point): its target, as for a symlink.
    Junction { target: Vec<u16> },
    /// Another kind of reparse point: its tag.
    Other(u32),
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

/// Reads reparse data as `FSCTL_GET_REPARSE_POINT` fills it. Every offset and length is
/// checked against the buffer: a record that does not fit is `InvalidData`.
pub(crate) fn parse(buf: &[u8]) -> io::Result<Reparse> {
    let bad = || io::Error::new(io::ErrorKind::InvalidData, "malformed reparse point data");
    let tag = u32_at(buf, 0).ok_or_else(bad)?;
    let fixed = match tag {
        IO_REPARSE_TAG_SYMLINK => SYMLINK_FIXED,
        IO_REPARSE_TAG_MOUNT_POINT => MOUNT_POINT_FIXED,
        tag => return Ok(Reparse::Other(tag)),
    };
    let data_len = usize::from(u16_at(buf, 4).ok_or_else(bad)?);
    let data = buf.get(HEADER..HEADER + data_len).ok_or_else(bad)?;
    let field = |i: usize| u16_at(data, i * 2).map(usize::from).ok_or_else(bad);
    let (sub_at, sub_len, print_at, print_len) = (field(0)?, field(1)?, field(2)?, field(3)?);
    let paths = data.get(fixed..).ok_or_else(bad)?;
    let name = |at: usize, len: usize| -> io::Result<Vec<u16>> {
        let bytes = paths
            .get(at..at.checked_add(len).ok_or_else(bad)?)
            .ok_or_else(bad)?;
        if bytes.len() % 2 != 0 {
            return Err(bad());
        }
        Ok(bytes
            .chunks_exact(2)
            .map(|c| u16::from_le_bytes([c[0], c[1]]))
            .collect())
    };
    let (substitute, print) = (name(sub_at, sub_len)?, name(print_at, print_len)?);
    let target = if print.is_empty() {
        win32_of_nt(&substitute)
    } else {
        print
    };
    Ok(if tag == IO_REPARSE_TAG_SYMLINK {
        let flags = u32_at(data, 8).ok_or_else(bad)?;
        Reparse::Symlink {
            target,
            relative: flags & SYMLINK_FLAG_RELATIVE != 0,
        }
    } else {
        Reparse::Junction { target }
    })
}

/// `\??\UNC\s\x` as `\\s\x`, `\??\C:\x` as `C:\x`; anything else unchanged.
fn win32_of_nt(nt: &[u16]) -> Vec<u16> {
    if let Some(rest) = nt.strip_prefix(w(r"\??\UNC\").as_slice()) {
        let mut out = w(r"\\");
        out.extend_from_slice(rest);
        return out;
    }
    match nt.strip_prefix(w(r"\??\").as_slice()) {
        Some(rest) => rest.to_vec(),
        None => nt.to_vec(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(target: &str) -> (Reparse, Vec<u8>) {
        let data = symlink_data(&w(target)).expect(target);
        (parse(&data).expect(target), data)
    }

    /// The substitute name as it sits in a symlink's data.
    fn substitute(data: &[u8]) -> String {
        let len = usize::from(u16_at(data, HEADER + 2).expect("length"));
        let at = HEADER + SYMLINK_FIXED;
        let units: Vec<u16> = data[at..at + len]
            .chunks_exact(2)
            .map(|c| u16::from_le_bytes([c[0], c[1]]))
            .collect();
        String::from_utf16(&units).expect("utf-16")
    }

    #[test]
    fn symlink_targets_come_back_as_given_with_nt_substitute_names() {
        let cases = [
            ("a", r"a", true),
            ("caf\u{e9}/sub/../x", "caf\u{e9}\\sub\\..\\x", true),
            (r"..\up", r"..\up", true),
            (r"C:\abs\x", r"\??\C:\abs\x", false),
            (r"c:/abs/x", r"\??\c:\abs\x", false),
            (r"\\server\share\x", r"\??\UNC\server\share\x", false),
            (r"\\?\D:\v", r"\??\D:\v", false),
        ];
        for (target, sub, relative) in cases {
            let (parsed, data) = round_trip(target);
            assert_eq!(
                parsed,
                Reparse::Symlink {
                    target: w(target),
                    relative
                },
                "{target}"
            );
            assert_eq!(substitute(&data), sub, "{target}");
        }
    }

    #[test]
    fn targets_that_resolve_differently_per_reader_are_refused() {
        for bad in ["", r"\rooted", "/rooted", "C:drive-relative", "a\0b"] {
            let e = symlink_data(&w(bad)).expect_err(bad);
            assert_eq!(e.kind(), io::ErrorKind::InvalidInput, "{bad:?}");
        }
        let long = "x".repeat(MAXIMUM_REPARSE_DATA_BUFFER_SIZE as usize / 4);
        assert!(symlink_data(&w(&long)).is_err());
    }

    #[test]
    fn a_junction_and_other_tags_are_told_apart_and_nt_names_made_win32() {
        // A junction as mklink /J makes it: substitute \??\C:\t, empty print name.
        let sub: Vec<u8> = w(r"\??\C:\t")
            .iter()
            .flat_map(|c| c.to_le_bytes())
            .collect();
        let mut data = Vec::new();
        data.extend_from_slice(&IO_REPARSE_TAG_MOUNT_POINT.to_le_bytes());
        data.extend_from_slice(&((MOUNT_POINT_FIXED + sub.len()) as u16).to_le_bytes());
        data.extend_from_slice(&[0, 0, 0, 0]);
        data.extend_from_slice(&(sub.len() as u16).to_le_bytes());
        data.extend_from_slice(&(sub.len() as u16).to_le_bytes());
        data.extend_from_slice(&[0, 0]);
        data.extend_from_slice(&sub);
        assert_eq!(
            parse(&data).expect("junction"),
            Reparse::Junction { target: w(r"C:\t") }
        );
        assert_eq!(
            parse(&0x8000_0017u32.to_le_bytes()).expect("other"),
            Reparse::Other(0x8000_0017)
        );
        assert_eq!(win32_of_nt(&w(r"\??\UNC\s\x")), w(r"\\s\x"));
    }

    #[test]
    fn malformed_data_is_an_error_never_a_panic() {
        let (_, good) = round_trip(r"C:\some\target");
        for cut in 0..good.len() {
            assert!(parse(&good[..cut]).is_err(), "cut at {cut}");
        }
        // A name offset past the end.
        let mut far = good.clone();
        far[HEADER + 4..HEADER + 6].copy_from_slice(&u16::MAX.to_le_bytes());
        assert!(parse(&far).is_err());
        // An odd name length.
        let mut odd = good.clone();
        odd[HEADER + 6..HEADER + 8].copy_from_slice(&3u16.to_le_bytes());
        assert!(parse(&odd).is_err());
        // A data length past the end.
        let mut long = good;
        long[4..6].copy_from_slice(&u16::MAX.to_le_bytes());
        assert!(parse(&long).is_err());
    }
}
