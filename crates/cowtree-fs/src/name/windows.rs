//! Names Windows cannot hold, refused before any call sees them: pure functions, built and
//! tested on every platform.
//!
//! The rules are git's (`is_valid_win32_path` in compat/mingw.c, which `verify_path` in
//! read-cache.c applies under `core.protectNTFS`), with the device names Microsoft lists and
//! git does not added ("Naming Files, Paths, and Namespaces"): refusing more is the safe side.
//!
//! - a reserved device name, in any case, alone or followed by spaces and then the end, a `.`
//!   (an extension: `aux.txt`, `con .x`) or a `:` (a stream): `AUX`, `CON`, `CONIN$`,
//!   `CONOUT$`, `NUL`, `PRN`, `COM1`-`COM9`, `LPT0`-`LPT9` (git's set), and `COM0`, `COM¹`,
//!   `COM²`, `COM³`, `LPT¹`, `LPT²`, `LPT³` (Microsoft's, in UTF-8). `COM10`, `CONx`, `aux x`
//!   are ordinary names, as in git;
//! - a name ending in a dot or a space (Windows strips them, so `a.` would be `a`);
//! - the characters `<` `>` `:` `"` `\` `|` `?` `*` (`:` names a stream, `\` separates) and
//!   the control characters 1 to 31.
//!
//! [`is_ntfs_dotgit`] is git's own test for the names NTFS resolves to `.git`; it is not part
//! of [`validate_component`] (a `.git` entry is an ordinary name to cowtree-fs) and is there for
//! code that guards a repository.

use std::fmt;

use super::NameError;

/// Why Windows cannot hold a name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WindowsNameError {
    /// A reserved device name (the device, as Windows spells it: `"CON"`, `"COM1"`, ...).
    Reserved(&'static str),
    /// The name ends in `.` or a space.
    TrailingDotOrSpace,
    /// One of `<` `>` `:` `"` `\` `|` `?` `*`.
    ReservedChar(u8),
    /// A control character (1 to 31).
    Control(u8),
    /// Longer than [`NAME_MAX_UTF16`] UTF-16 code units (how many it has).
    TooLong(usize),
}

impl fmt::Display for WindowsNameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Reserved(d) => write!(f, "reserved device name {d}"),
            Self::TrailingDotOrSpace => write!(f, "ends in a dot or a space"),
            Self::ReservedChar(c) => write!(f, "reserved character '{}'", *c as char),
            Self::Control(c) => write!(f, "control character 0x{c:02x}"),
            Self::TooLong(n) => write!(f, "{n} UTF-16 code units long (limit {NAME_MAX_UTF16})"),
        }
    }
}

impl std::error::Error for WindowsNameError {}

/// The device names, longest first where one is a prefix of another (`CONIN$` before `CON`).
const DEVICES: &[(&[u8], &str)] = &[
    (b"CONIN$", "CONIN$"),
    (b"CONOUT$", "CONOUT$"),
    (b"CON", "CON"),
    (b"AUX", "AUX"),
    (b"NUL", "NUL"),
    (b"PRN", "PRN"),
    (b"COM0", "COM0"),
    (b"COM1", "COM1"),
    (b"COM2", "COM2"),
    (b"COM3", "COM3"),
    (b"COM4", "COM4"),
    (b"COM5", "COM5"),
    (b"COM6", "COM6"),
    (b"COM7", "COM7"),
    (b"COM8", "COM8"),
    (b"COM9", "COM9"),
    ("COM\u{b9}".as_bytes(), "COM\u{b9}"),
    ("COM\u{b2}".as_bytes(), "COM\u{b2}"),
    ("COM\u{b3}".as_bytes(), "COM\u{b3}"),
    (b"LPT0", "LPT0"),
    (b"LPT1", "LPT1"),
    (b"LPT2", "LPT2"),
    (b"LPT3", "LPT3"),
    (b"LPT4", "LPT4"),
    (b"LPT5", "LPT5"),
    (b"LPT6", "LPT6"),
    (b"LPT7", "LPT7"),
    (b"LPT8", "LPT8"),
    (b"LPT9", "LPT9"),
    ("LPT\u{b9}".as_bytes(), "LPT\u{b9}"),
    ("LPT\u{b2}".as_bytes(), "LPT\u{b2}"),
    ("LPT\u{b3}".as_bytes(), "LPT\u{b3}"),
];

/// The device `name` names, if it is one: a device name (ASCII case-insensitive), then any
/// spaces, then the end, a `.` or a `:`.
pub fn reserved_device(name: &[u8]) -> Option<&'static str> {
    DEVICES.iter().find_map(|&(device, shown)| {
        let head = name.get(..device.len())?;
        if !head.eq_ignore_ascii_case(device) {
            return None;
        }
        let rest = &name[device.len()..];
        let after_spaces = rest.iter().position(|&b| b != b' ').map(|i| rest[i]);
        matches!(after_spaces, None | Some(b'.') | Some(b':')).then_some(shown)
    })
}

/// Only the Windows rules of one name (none of [`super::validate_component`]'s): the first
/// refusal in the order characters, device name, trailing dot or space.
pub fn windows_refusal(name: &[u8]) -> Option<WindowsNameError> {
    for &b in name {
        match b {
            b'<' | b'>' | b':' | b'"' | b'\\' | b'|' | b'?' | b'*' => {
                return Some(WindowsNameError::ReservedChar(b));
            }
            1..=31 => return Some(WindowsNameError::Control(b)),
            _ => {}
        }
    }
    if let Some(device) = reserved_device(name) {
        return Some(WindowsNameError::Reserved(device));
    }
    if matches!(name.last(), Some(b'.' | b' ')) {
        return Some(WindowsNameError::TrailingDotOrSpace);
    }
    None
}

/// Checks one directory entry name against the rules every platform has
/// ([`super::validate_component`]) and then Windows' ([`NameError::Windows`]).
pub fn validate_component(name: &[u8]) -> Result<(), NameError> {
    super::validate_component(name)?;
    match windows_refusal(name) {
        Some(e) => Err(NameError::Windows(e)),
        None => Ok(()),
    }
}

/// The longest name NTFS and ReFS hold, in UTF-16 code units (Windows counts names in those,
/// not in bytes).
pub const NAME_MAX_UTF16: usize = 255;

/// The number of UTF-16 code units the UTF-8 (or WTF-8, as a Windows `OsStr`'s
/// `as_encoded_bytes` gives it) `name` takes: one per sequence of up to three bytes, two per
/// four-byte sequence (a character outside the Basic Multilingual Plane). Continuation bytes
/// count nothing, so a malformed sequence is never counted as more than its lead bytes.
pub fn utf16_len(name: &[u8]) -> usize {
    name.iter()
        .map(|&b| match b {
            0x80..=0xbf => 0,
            0xf0..=0xff => 2,
            _ => 1,
        })
        .sum()
}

/// [`validate_component`] for a name a Windows call is about to get (its `OsStr`'s encoded
/// bytes): the same rules, except that the length limit is Windows' own,
/// [`NAME_MAX_UTF16`] UTF-16 code units, not [`super::NAME_MAX`] bytes (a name of 100 CJK
/// characters is 300 bytes of UTF-8 and a valid Windows name).
pub fn validate_native_component(name: &[u8]) -> Result<(), NameError> {
    match validate_component(name) {
        Err(NameError::ComponentTooLong(_)) => {}
        other => return other,
    }
    // Too long in bytes: every other rule of validate_component is checked here in its order.
    let units = utf16_len(name);
    if units > NAME_MAX_UTF16 {
        return Err(NameError::Windows(WindowsNameError::TooLong(units)));
    }
    if name.contains(&0) {
        return Err(NameError::Nul);
    }
    if name.contains(&b'/') {
        return Err(NameError::Slash);
    }
    match windows_refusal(name) {
        Some(e) => Err(NameError::Windows(e)),
        None => Ok(()),
    }
}

/// Checks a relative path (components joined by `/`, as [`super::check_relative_path`]
/// takes them) with [`validate_component`]'s rules for every component.
pub fn check_relative_path(path: &[u8]) -> Result<(), NameError> {
    super::check_relative_path(path)?;
    path.split(|&b| b == b'/').try_for_each(validate_component)
}

/// git's `is_ntfs_dotgit`: true when NTFS would resolve `name` (one component, or the first
/// component of a path cut at `/` or `\`) to `.git`: `.git` or its 8.3 short name `git~1`, in
/// any case, followed only by dots and spaces (which Windows strips) up to the end, a
/// separator, or a `:` (any stream of it, as `.git::$INDEX_ALLOCATION`).
pub fn is_ntfs_dotgit(name: &[u8]) -> bool {
    let rest = if name.len() >= 4 && name[0] == b'.' && name[1..4].eq_ignore_ascii_case(b"git") {
        &name[4..]
    } else if name.len() >= 5 && name[..3].eq_ignore_ascii_case(b"git") && &name[3..5] == b"~1" {
        &name[5..]
    } else {
        return false;
    };
    for &c in rest {
        match c {
            b'/' | b'\\' | b':' => return true,
            b'.' | b' ' => {}
            _ => return false,
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refusal(name: &str) -> Option<WindowsNameError> {
        windows_refusal(name.as_bytes())
    }

    #[test]
    fn reserved_device_names_in_any_case_and_with_an_extension() {
        use WindowsNameError::Reserved;
        let cases = [
            ("CON", "CON"),
            ("con", "CON"),
            ("Con.txt", "CON"),
            ("aux", "AUX"),
            ("aux.txt", "AUX"),
            ("AUX.tar.gz", "AUX"),
            ("nul", "NUL"),
            ("NuL.c", "NUL"),
            ("prn", "PRN"),
            ("com1", "COM1"),
            ("COM9.log", "COM9"),
            ("lpt1", "LPT1"),
            ("LPT9", "LPT9"),
            ("lpt0", "LPT0"),
            ("com0", "COM0"),
            ("conin$", "CONIN$"),
            ("CONOUT$.x", "CONOUT$"),
            ("con .txt", "CON"),
            ("com\u{b9}", "COM\u{b9}"),
            ("COM\u{b2}.txt", "COM\u{b2}"),
            ("lpt\u{b3}", "LPT\u{b3}"),
        ];
        for (name, device) in cases {
            assert_eq!(refusal(name), Some(Reserved(device)), "{name:?}");
        }
    }

    #[test]
    fn names_that_only_start_like_a_device_are_ordinary() {
        for name in [
            "COM10",
            "LPT10",
            "CONx",
            "console",
            "auxiliary",
            "nul_",
            "aux x",
            "prn-1",
            "com",
            "lpt",
            "com\u{b9}0",
            "xcon",
            "a.con",
            "CONIN",
            "CONOUT",
        ] {
            assert_eq!(refusal(name), None, "{name:?}");
        }
    }

    #[test]
    fn a_trailing_dot_or_space_is_refused() {
        for name in ["a.", "a ", "a. .", "...", " ", "file.txt "] {
            assert_eq!(
                refusal(name),
                Some(WindowsNameError::TrailingDotOrSpace),
                "{name:?}"
            );
        }
        for name in ["a.b", " a", ".hidden", "a b"] {
            assert_eq!(refusal(name), None, "{name:?}");
        }
    }

    #[test]
    fn reserved_and_control_characters_are_refused() {
        for c in *b"<>:\"\\|?*" {
            let name = [b'a', c, b'b'];
            assert_eq!(
                windows_refusal(&name),
                Some(WindowsNameError::ReservedChar(c)),
                "{}",
                c as char
            );
        }
        for c in 1..=31u8 {
            assert_eq!(
                windows_refusal(&[b'a', c]),
                Some(WindowsNameError::Control(c))
            );
        }
        // A stream of a device is refused for its ':' first.
        assert_eq!(
            refusal("aux:stream"),
            Some(WindowsNameError::ReservedChar(b':'))
        );
    }

    #[test]
    fn non_ascii_and_ordinary_names_pass() {
        for name in [
            "a",
            "README.md",
            "caf\u{e9}",
            "\u{65e5}\u{672c}",
            ".git",
            "x~1",
        ] {
            assert_eq!(refusal(name), None, "{name:?}");
            assert_eq!(validate_component(name.as_bytes()), Ok(()));
        }
    }

    #[test]
    fn the_rules_of_every_platform_come_first() {
        assert_eq!(validate_component(b""), Err(NameError::Empty));
        assert_eq!(validate_component(b"."), Err(NameError::Dot));
        assert_eq!(validate_component(b".."), Err(NameError::DotDot));
        assert_eq!(validate_component(b"a/b"), Err(NameError::Slash));
        assert_eq!(
            validate_component(b"aux.txt"),
            Err(NameError::Windows(WindowsNameError::Reserved("AUX")))
        );
        let e = validate_component(b"con").unwrap_err().to_string();
        assert!(e.contains("reserved device name CON"), "{e}");
    }

    #[test]
    fn a_relative_path_is_checked_component_by_component() {
        assert_eq!(check_relative_path(b"src/lib.rs"), Ok(()));
        assert_eq!(
            check_relative_path(b"src/aux/lib.rs"),
            Err(NameError::Windows(WindowsNameError::Reserved("AUX")))
        );
        assert_eq!(
            check_relative_path(b"a/b./c"),
            Err(NameError::Windows(WindowsNameError::TrailingDotOrSpace))
        );
        assert_eq!(check_relative_path(b"a/../b"), Err(NameError::DotDot));
    }

    #[test]
    fn utf16_len_counts_code_units_not_bytes() {
        let cases: &[(&str, usize)] = &[
            ("", 0),
            ("abc", 3),
            ("caf\u{e9}", 4),
            ("\u{65e5}\u{672c}", 2),
            ("\u{1f600}", 2),
            ("a\u{1f600}b", 4),
        ];
        for &(name, want) in cases {
            assert_eq!(utf16_len(name.as_bytes()), want, "{name:?}");
            assert_eq!(name.encode_utf16().count(), want, "{name:?}");
        }
        // A lone continuation byte counts nothing; a lone lead byte counts as its sequence.
        assert_eq!(utf16_len(&[0x80, 0x80]), 0);
        assert_eq!(utf16_len(&[0xf0]), 2);
    }

    #[test]
    fn a_native_name_is_limited_in_utf16_units_not_bytes() {
        let cjk = "\u{65e5}".repeat(200); // 600 bytes, 200 units
        assert_eq!(
            validate_component(cjk.as_bytes()),
            Err(NameError::ComponentTooLong(600))
        );
        assert_eq!(validate_native_component(cjk.as_bytes()), Ok(()));
        let long = "\u{65e5}".repeat(256);
        assert_eq!(
            validate_native_component(long.as_bytes()),
            Err(NameError::Windows(WindowsNameError::TooLong(256)))
        );
        assert_eq!(validate_native_component(&[b'a'; 255]), Ok(()));
        assert_eq!(
            validate_native_component(&[b'a'; 256]),
            Err(NameError::Windows(WindowsNameError::TooLong(256)))
        );
        // Every other rule still applies to a name long in bytes.
        let bad = format!("{cjk}.");
        assert_eq!(
            validate_native_component(bad.as_bytes()),
            Err(NameError::Windows(WindowsNameError::TrailingDotOrSpace))
        );
        let slash = format!("{cjk}/x");
        assert_eq!(
            validate_native_component(slash.as_bytes()),
            Err(NameError::Slash)
        );
        for (name, want) in [
            (&b""[..], NameError::Empty),
            (b"..", NameError::DotDot),
            (
                b"a\\b",
                NameError::Windows(WindowsNameError::ReservedChar(b'\\')),
            ),
            (
                b"CON",
                NameError::Windows(WindowsNameError::Reserved("CON")),
            ),
        ] {
            assert_eq!(validate_native_component(name), Err(want));
        }
    }

    /// What git's `is_ntfs_dotgit` answers for these (read from its code).
    #[test]
    fn ntfs_dotgit_matches_git() {
        for name in [
            ".git",
            ".GIT",
            ".git.",
            ".git . .",
            ".git::$INDEX_ALLOCATION",
            ".git:stream",
            "git~1",
            "GIT~1",
            "git~1.",
            ".git/config",
            ".git\\config",
            "git~1\\x",
        ] {
            assert!(is_ntfs_dotgit(name.as_bytes()), "{name:?}");
        }
        for name in [
            ".gitfoo", ".git~1", "git~2", "git", ".gi", "git~11", "x.git", ".git.x", "",
        ] {
            assert!(!is_ntfs_dotgit(name.as_bytes()), "{name:?}");
        }
    }
}
