//! What git's checkout writes for a blob, byte for byte: the to-worktree half of git's
//! `convert.c`, ported rule by rule.
//!
//! A regular file's blob goes through, in this order: `ident` (`$Id$` expanded), the line-ending
//! conversion (`text`, `eol`, `crlf`, `core.autocrlf`, `core.eol`), `working-tree-encoding`
//! (re-encoded from UTF-8 with the system's iconv, as git does), and a `filter=` driver's
//! smudge command or process. [`ConvAttrs::from_attrs`] makes git's decision for one path
//! (`convert_attrs`); [`ConvAttrs::changes_blob`] says whether a checkout can write anything but
//! the blob's bytes; [`to_worktree`] converts.
//!
//! git takes one of two code paths, and they differ in corner cases of `ident`: a path whose
//! attributes need no driver, no encoding and no `text=auto` detection is *streamed*
//! (`get_stream_filter_ca`: a state machine for `ident`, then LF to CRLF), every other one is
//! converted *in core* (`convert_to_working_tree_ca`). Both are ported, and [`Class`] chooses
//! between them exactly as `classify_conv_attrs` does. Where git behaves oddly (a
//! `$IdX$Id:..$` keyword loses text in the streaming path), the port does the same: the point
//! is to write what git writes.
//!
//! Drivers are run by the caller ([`to_worktree`]'s `smudge`), through gitoxide's driver
//! state; everything else here is pure and table-tested.

#[cfg(unix)]
use std::ffi::{CStr, CString};

use gix::attrs::StateRef;
use gix::bstr::{BString, ByteSlice};

/// One attribute's state for a path, as git's attribute check reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attr<'a> {
    /// `attr` (git's `ATTR_TRUE`).
    Set,
    /// `-attr` (`ATTR_FALSE`).
    Unset,
    /// Not mentioned, or `!attr` (`ATTR_UNSET`).
    Unspecified,
    /// `attr=value`.
    Value(&'a [u8]),
}

impl<'a> From<StateRef<'a>> for Attr<'a> {
    fn from(s: StateRef<'a>) -> Attr<'a> {
        match s {
            StateRef::Set => Attr::Set,
            StateRef::Unset => Attr::Unset,
            StateRef::Unspecified => Attr::Unspecified,
            StateRef::Value(v) => Attr::Value(v.as_bstr().as_bytes()),
        }
    }
}

/// The attributes git's conversion reads, in the order of git's check (`convert_attrs`).
pub const NAMES: [&str; 6] = [
    "crlf",
    "ident",
    "filter",
    "eol",
    "text",
    "working-tree-encoding",
];

/// `core.autocrlf`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AutoCrlf {
    /// `false` (git's default).
    #[default]
    False,
    /// `true`.
    True,
    /// `input`.
    Input,
}

/// `core.eol`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CoreEol {
    /// Not set, or a value git does not know.
    #[default]
    Unset,
    /// `lf`.
    Lf,
    /// `crlf`.
    Crlf,
    /// `native` (LF on every platform cowtree builds for).
    Native,
}

/// The line-ending configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct EolConfig {
    /// `core.autocrlf`.
    pub autocrlf: AutoCrlf,
    /// `core.eol`.
    pub eol: CoreEol,
}

impl EolConfig {
    /// git's `text_eol_is_crlf`: whether a `text` file gets CRLF.
    fn text_eol_is_crlf(&self) -> bool {
        match self.autocrlf {
            AutoCrlf::True => true,
            AutoCrlf::Input => false,
            // EOL_NATIVE is LF outside Windows.
            AutoCrlf::False => self.eol == CoreEol::Crlf,
        }
    }

    /// Parses `core.autocrlf` and `core.eol` as git's config reader does (`input` is
    /// matched without case; any other `core.autocrlf` value is a boolean; an unknown
    /// `core.eol` is unset). `Err` names the value git refuses as a boolean.
    pub fn parse(autocrlf: Option<&[u8]>, eol: Option<&[u8]>) -> Result<EolConfig, String> {
        let autocrlf = match autocrlf {
            None => AutoCrlf::False,
            Some(v) if v.eq_ignore_ascii_case(b"input") => AutoCrlf::Input,
            Some(v) => match config_bool(v) {
                Some(true) => AutoCrlf::True,
                Some(false) => AutoCrlf::False,
                None => return Err(format!("core.autocrlf = {}", v.as_bstr())),
            },
        };
        let eol = match eol {
            Some(v) if v.eq_ignore_ascii_case(b"lf") => CoreEol::Lf,
            Some(v) if v.eq_ignore_ascii_case(b"crlf") => CoreEol::Crlf,
            Some(v) if v.eq_ignore_ascii_case(b"native") => CoreEol::Native,
            _ => CoreEol::Unset,
        };
        Ok(EolConfig { autocrlf, eol })
    }
}

/// git's `git_config_bool` for a value given as text (`None`: not a boolean).
fn config_bool(v: &[u8]) -> Option<bool> {
    let s = std::str::from_utf8(v).ok()?;
    if s.is_empty() {
        return Some(false);
    }
    for t in ["true", "yes", "on"] {
        if s.eq_ignore_ascii_case(t) {
            return Some(true);
        }
    }
    for f in ["false", "no", "off"] {
        if s.eq_ignore_ascii_case(f) {
            return Some(false);
        }
    }
    // An integer, with git's unit suffixes.
    let digits = s.trim_end_matches(['k', 'K', 'm', 'M', 'g', 'G']);
    digits.parse::<i64>().ok().map(|n| n != 0)
}

/// git's `enum convert_crlf_action`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CrlfAction {
    /// Nothing said yet.
    Undefined,
    /// `-text`: never converted.
    Binary,
    /// `text`, before the configuration decides.
    Text,
    /// `text` ending lines with LF (`eol=lf`, `crlf=input`).
    TextInput,
    /// `text` ending lines with CRLF (`eol=crlf`).
    TextCrlf,
    /// `text=auto`, before the configuration decides.
    Auto,
    /// `text=auto` with CRLF (`eol=crlf`, or `core.autocrlf=true`).
    AutoCrlf,
    /// `text=auto` with LF (`eol=lf`, or `core.autocrlf=input`).
    AutoInput,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Eol {
    Unset,
    Lf,
    Crlf,
}

impl CrlfAction {
    /// git's `output_eol`.
    fn output_eol(self, cfg: EolConfig) -> Eol {
        match self {
            CrlfAction::Binary => Eol::Unset,
            CrlfAction::TextCrlf | CrlfAction::Undefined | CrlfAction::AutoCrlf => Eol::Crlf,
            CrlfAction::TextInput | CrlfAction::AutoInput => Eol::Lf,
            CrlfAction::Text | CrlfAction::Auto => {
                if cfg.text_eol_is_crlf() {
                    Eol::Crlf
                } else {
                    Eol::Lf
                }
            }
        }
    }

    /// git's `git_path_check_crlf`, for the `text` or the `crlf` attribute.
    fn of(a: Attr<'_>) -> CrlfAction {
        match a {
            Attr::Set => CrlfAction::Text,
            Attr::Unset => CrlfAction::Binary,
            Attr::Unspecified => CrlfAction::Undefined,
            Attr::Value(b"input") => CrlfAction::TextInput,
            Attr::Value(b"auto") => CrlfAction::Auto,
            Attr::Value(_) => CrlfAction::Undefined,
        }
    }
}

/// Which of git's two code paths converts a file (`classify_conv_attrs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// Streamed: `ident` and LF to CRLF as state machines.
    Streamable,
    /// In core: `ident`, line endings and the encoding, no driver.
    InCore,
    /// In core, with a driver's `smudge` (or `clean`) command.
    InCoreFilter,
    /// In core, with a driver's long-running `process`.
    InCoreProcess,
}

/// A `filter.<name>` driver from the configuration, as far as a checkout is concerned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DriverInfo {
    /// `<name>`.
    pub name: BString,
    /// `smudge` is set (and not empty).
    pub smudge: bool,
    /// `clean` is set (and not empty).
    pub clean: bool,
    /// `process` is set (and not empty).
    pub process: bool,
    /// `required`.
    pub required: bool,
}

/// git's conversion decision for one path (`struct conv_attrs`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConvAttrs {
    /// The line-ending action, decided.
    pub crlf: CrlfAction,
    /// `ident` is set.
    pub ident: bool,
    /// The driver `filter=` names, when the configuration defines it (index into the
    /// drivers given to [`ConvAttrs::from_attrs`]).
    pub driver: Option<usize>,
    /// `filter=` names a driver (defined or not).
    pub filter_named: bool,
    /// `working-tree-encoding`, unless UTF-8 (or not set).
    pub encoding: Option<BString>,
    /// The line-ending configuration it was decided with.
    pub config: EolConfig,
}

/// `working-tree-encoding` set without a value: git dies on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadEncoding;

impl ConvAttrs {
    /// git's `convert_attrs`: `attrs` are the states of [`NAMES`] in that order.
    pub fn from_attrs(
        attrs: [Attr<'_>; 6],
        config: EolConfig,
        drivers: &[DriverInfo],
    ) -> Result<ConvAttrs, BadEncoding> {
        let [crlf_attr, ident, filter, eol, text, encoding] = attrs;
        let mut crlf = CrlfAction::of(text);
        if crlf == CrlfAction::Undefined {
            crlf = CrlfAction::of(crlf_attr);
        }
        let driver = match filter {
            Attr::Value(name) => drivers.iter().position(|d| d.name.as_bytes() == name),
            _ => None,
        };
        let filter_named = matches!(filter, Attr::Value(_));
        if crlf != CrlfAction::Binary {
            let eol = match eol {
                Attr::Value(b"lf") => Eol::Lf,
                Attr::Value(b"crlf") => Eol::Crlf,
                _ => Eol::Unset,
            };
            crlf = match (crlf, eol) {
                (CrlfAction::Auto, Eol::Lf) => CrlfAction::AutoInput,
                (CrlfAction::Auto, Eol::Crlf) => CrlfAction::AutoCrlf,
                (_, Eol::Lf) => CrlfAction::TextInput,
                (_, Eol::Crlf) => CrlfAction::TextCrlf,
                (c, Eol::Unset) => c,
            };
        }
        // git's `-working-tree-encoding` is its "false" value, an empty string: no encoding.
        let encoding = match encoding {
            Attr::Unspecified | Attr::Unset | Attr::Value(b"") => None,
            Attr::Set => return Err(BadEncoding),
            Attr::Value(v) if same_encoding(v, b"UTF-8") => None,
            Attr::Value(v) => Some(BString::from(v)),
        };
        crlf = match crlf {
            CrlfAction::Text if config.text_eol_is_crlf() => CrlfAction::TextCrlf,
            CrlfAction::Text => CrlfAction::TextInput,
            CrlfAction::Undefined => match config.autocrlf {
                AutoCrlf::False => CrlfAction::Binary,
                AutoCrlf::True => CrlfAction::AutoCrlf,
                AutoCrlf::Input => CrlfAction::AutoInput,
            },
            c => c,
        };
        Ok(ConvAttrs {
            crlf,
            ident: ident == Attr::Set,
            driver,
            filter_named,
            encoding,
            config,
        })
    }

    /// git's `classify_conv_attrs`.
    pub fn class(&self, drivers: &[DriverInfo]) -> Class {
        if let Some(d) = self.driver.and_then(|i| drivers.get(i)) {
            if d.process {
                return Class::InCoreProcess;
            }
            if d.smudge || d.clean {
                return Class::InCoreFilter;
            }
        }
        if self.encoding.is_some() || matches!(self.crlf, CrlfAction::Auto | CrlfAction::AutoCrlf) {
            return Class::InCore;
        }
        Class::Streamable
    }

    /// Whether git's checkout may write other bytes than the blob's for this path (`None`: it
    /// writes the blob as it is), and why, in words. A required driver that has no command
    /// for a checkout counts: git fails on it.
    pub fn changes_blob(&self, drivers: &[DriverInfo]) -> Option<String> {
        if let Some(d) = self.driver.and_then(|i| drivers.get(i))
            && (d.smudge || d.process || d.required)
        {
            return Some(format!("filter={}", d.name));
        }
        if self.ident {
            return Some("ident".into());
        }
        if let Some(e) = &self.encoding {
            return Some(format!("working-tree-encoding={e}"));
        }
        if self.crlf.output_eol(self.config) == Eol::Crlf {
            return Some(
                match self.crlf {
                    CrlfAction::TextCrlf => {
                        "text with CRLF line endings (eol=crlf, or core.eol=crlf)"
                    }
                    CrlfAction::AutoCrlf => {
                        "text=auto with CRLF line endings (eol=crlf, or core.autocrlf=true)"
                    }
                    _ => "CRLF line endings",
                }
                .into(),
            );
        }
        None
    }
}

/// What a driver's smudge step did.
pub enum Smudged {
    /// The driver ran and wrote these bytes.
    Output(Vec<u8>),
    /// The driver had nothing to do for a checkout (no smudge command or capability).
    NotApplied,
    /// The driver failed (its message).
    Failed(String),
}

/// A conversion git refuses to finish.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConvertError {
    /// A `required` driver failed or could not smudge.
    RequiredDriverFailed {
        /// The driver.
        driver: BString,
        /// What happened.
        message: String,
    },
    /// The path has a `working-tree-encoding`, and this build cannot encode (Windows: no
    /// iconv(3) is linked there, and git's bytes are iconv's).
    EncodingUnavailable {
        /// The encoding.
        encoding: BString,
    },
}

/// The bytes git's checkout writes for the blob `data` (whose id is `id_hex`) at a path with
/// the conversion `ca`. `smudge` runs the path's driver on its input (called only when the
/// path has a driver with a smudge command or a process). `None` when the blob is written as
/// it is.
pub fn to_worktree(
    ca: &ConvAttrs,
    drivers: &[DriverInfo],
    id_hex: &str,
    data: &[u8],
    smudge: impl FnOnce(&[u8]) -> Smudged,
) -> Result<Option<Vec<u8>>, ConvertError> {
    if ca.class(drivers) == Class::Streamable {
        let mut out: Option<Vec<u8>> = None;
        if ca.ident {
            out = Some(ident_stream(data, id_hex.as_bytes()));
        }
        if ca.crlf.output_eol(ca.config) == Eol::Crlf {
            out = Some(lf_to_crlf_stream(out.as_deref().unwrap_or(data)));
        }
        return Ok(out);
    }
    // convert_to_working_tree_ca_internal, not normalizing.
    let mut out: Option<Vec<u8>> = if ca.ident {
        ident_in_core(data, id_hex.as_bytes())
    } else {
        None
    };
    if let Some(c) = crlf_to_worktree(out.as_deref().unwrap_or(data), ca.crlf, ca.config) {
        out = Some(c);
    }
    #[cfg(windows)]
    if let Some(enc) = &ca.encoding {
        return Err(ConvertError::EncodingUnavailable {
            encoding: enc.clone(),
        });
    }
    #[cfg(unix)]
    if let Some(enc) = &ca.encoding
        && let Some(e) = encode_to_worktree(out.as_deref().unwrap_or(data), enc)
    {
        out = Some(e);
    }
    let Some(d) = ca.driver.and_then(|i| drivers.get(i)) else {
        return Ok(out);
    };
    let input = out.as_deref().unwrap_or(data);
    let applied = if d.smudge || d.process {
        smudge(input)
    } else {
        Smudged::NotApplied
    };
    match applied {
        Smudged::Output(v) => Ok(Some(v)),
        Smudged::NotApplied if d.required => Err(ConvertError::RequiredDriverFailed {
            driver: d.name.clone(),
            message: "it has no command for a checkout".into(),
        }),
        Smudged::Failed(message) if d.required => Err(ConvertError::RequiredDriverFailed {
            driver: d.name.clone(),
            message,
        }),
        // git keeps what the earlier steps made when a driver that is not required fails.
        Smudged::NotApplied | Smudged::Failed(_) => Ok(out),
    }
}

/// git's `struct text_stat`.
#[derive(Debug, Default, PartialEq, Eq)]
struct TextStat {
    nul: u32,
    lonecr: u32,
    lonelf: u32,
    crlf: u32,
    printable: u32,
    nonprintable: u32,
}

/// git's `gather_stats`.
fn gather_stats(buf: &[u8]) -> TextStat {
    let mut s = TextStat::default();
    let mut i = 0;
    while i < buf.len() {
        let c = buf[i];
        if c == b'\r' {
            if buf.get(i + 1) == Some(&b'\n') {
                s.crlf += 1;
                i += 1;
            } else {
                s.lonecr += 1;
            }
        } else if c == b'\n' {
            s.lonelf += 1;
        } else if c == 127 {
            s.nonprintable += 1;
        } else if c < 32 {
            match c {
                b'\x08' | b'\t' | b'\x1b' | b'\x0c' => s.printable += 1,
                0 => {
                    s.nul += 1;
                    s.nonprintable += 1;
                }
                _ => s.nonprintable += 1,
            }
        } else {
            s.printable += 1;
        }
        i += 1;
    }
    // A trailing ^Z (DOS end of file) is not counted as non-printable.
    if buf.last() == Some(&0x1a) {
        s.nonprintable = s.nonprintable.wrapping_sub(1);
    }
    s
}

/// git's `convert_is_binary`.
fn is_binary(s: &TextStat) -> bool {
    s.lonecr > 0 || s.nul > 0 || (s.printable >> 7) < s.nonprintable
}

/// git's `will_convert_lf_to_crlf`.
fn will_convert_lf_to_crlf(s: &TextStat, action: CrlfAction, cfg: EolConfig) -> bool {
    if action.output_eol(cfg) != Eol::Crlf || s.lonelf == 0 {
        return false;
    }
    if matches!(
        action,
        CrlfAction::Auto | CrlfAction::AutoInput | CrlfAction::AutoCrlf
    ) && (s.lonecr > 0 || s.crlf > 0 || is_binary(s))
    {
        return false;
    }
    true
}

/// git's in-core `crlf_to_worktree`: every LF not preceded by CR gets one, when the action
/// and the content call for it.
fn crlf_to_worktree(src: &[u8], action: CrlfAction, cfg: EolConfig) -> Option<Vec<u8>> {
    if src.is_empty() || action.output_eol(cfg) != Eol::Crlf {
        return None;
    }
    let stats = gather_stats(src);
    if !will_convert_lf_to_crlf(&stats, action, cfg) {
        return None;
    }
    let mut out = Vec::with_capacity(src.len() + stats.lonelf as usize);
    let mut prev = None;
    for &c in src {
        if c == b'\n' && prev != Some(b'\r') {
            out.push(b'\r');
        }
        out.push(c);
        prev = Some(c);
    }
    Some(out)
}

/// git's streaming `lf_to_crlf_filter`: a lone LF becomes CRLF, a CRLF stays, a lone CR
/// stays.
fn lf_to_crlf_stream(src: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(src.len() + src.len() / 16);
    let mut was_cr = false;
    for &ch in src {
        // A CR before this character: written now (before an LF it is that LF's own).
        if ch == b'\n' || was_cr {
            out.push(b'\r');
        }
        if ch == b'\r' {
            was_cr = true;
            continue;
        }
        was_cr = false;
        out.push(ch);
    }
    if was_cr {
        out.push(b'\r');
    }
    out
}

/// git's `count_ident`: `$Id$` and `$Id:...$` (no newline inside) keywords.
fn count_ident(s: &[u8]) -> usize {
    let (mut cnt, mut i) = (0, 0);
    while i < s.len() {
        let ch = s[i];
        i += 1;
        if ch != b'$' {
            continue;
        }
        if s.len() - i < 3 {
            break;
        }
        if &s[i..i + 2] != b"Id" {
            continue;
        }
        let ch = s[i + 2];
        i += 3;
        if ch == b'$' {
            cnt += 1;
        }
        if ch != b':' {
            continue;
        }
        while i < s.len() {
            let ch = s[i];
            i += 1;
            if ch == b'$' {
                cnt += 1;
                break;
            }
            if ch == b'\n' {
                break;
            }
        }
    }
    cnt
}

/// git's in-core `ident_to_worktree`: `$Id$` and `$Id:xxx$` become `$Id: <id> $`, but for a
/// keyword broken by a newline or holding spaces elsewhere than before its last `$` (another
/// system's id).
fn ident_in_core(src: &[u8], id_hex: &[u8]) -> Option<Vec<u8>> {
    if count_ident(src) == 0 {
        return None;
    }
    let mut out = Vec::with_capacity(src.len() + id_hex.len() + 3);
    let mut s = src;
    while let Some(d) = s.find_byte(b'$') {
        out.extend_from_slice(&s[..=d]);
        s = &s[d + 1..];
        if s.len() < 3 || &s[..2] != b"Id" {
            continue;
        }
        if s[2] == b'$' {
            s = &s[3..];
        } else if s[2] == b':' {
            let Some(d2) = s[3..].find_byte(b'$') else {
                // An incomplete keyword: the rest is kept as it is.
                break;
            };
            let dollar = 3 + d2;
            if s[3..dollar].contains(&b'\n') {
                continue;
            }
            // `memchr(src + 4, ' ', dollar - src - 4)`, a space before `dollar - 1`.
            let foreign = dollar > 4
                && s[4..dollar]
                    .iter()
                    .position(|&c| c == b' ')
                    .is_some_and(|p| 4 + p < dollar - 1);
            if foreign {
                continue;
            }
            s = &s[dollar + 1..];
        } else {
            continue;
        }
        out.extend_from_slice(b"Id: ");
        out.extend_from_slice(id_hex);
        out.extend_from_slice(b" $");
    }
    out.extend_from_slice(s);
    Some(out)
}

/// git's `isspace` (its own ctype: tab, LF, CR and space).
fn git_isspace(c: u8) -> bool {
    matches!(c, b'\t' | b'\n' | b'\r' | b' ')
}

/// git's `is_foreign_ident` on a NUL-terminated buffer (bytes after a NUL are not seen).
fn is_foreign_ident(left: &[u8]) -> bool {
    let s = match left.iter().position(|&c| c == 0) {
        Some(n) => &left[..n],
        None => left,
    };
    let Some(rest) = s.strip_prefix(b"$Id: ") else {
        return false;
    };
    (0..rest.len()).any(|i| git_isspace(rest[i]) && rest.get(i + 1) != Some(&b'$'))
}

/// git's streaming `ident_filter`, fed the whole blob at once (its output does not depend on
/// how the input is cut).
fn ident_stream(src: &[u8], id_hex: &[u8]) -> Vec<u8> {
    const HEAD: &[u8] = b"$Id";
    let mut ident = Vec::with_capacity(id_hex.len() + 4);
    ident.extend_from_slice(b": ");
    ident.extend_from_slice(id_hex);
    ident.extend_from_slice(b" $");
    let mut out = Vec::with_capacity(src.len());
    let mut left: Vec<u8> = Vec::new();
    // 0..=3: how much of HEAD was matched; `skipping`: inside `$Id:...`.
    let mut state = 0usize;
    let mut skipping = false;
    for &ch in src {
        if skipping {
            left.push(ch);
            if ch != b'\n' && ch != b'$' {
                continue;
            }
            if ch == b'$' && !is_foreign_ident(&left) {
                left.truncate(HEAD.len());
                left.extend_from_slice(&ident);
            }
            out.append(&mut left);
            skipping = false;
            state = 0;
            continue;
        }
        if state < HEAD.len() && HEAD[state] == ch {
            state += 1;
            continue;
        }
        if state > 0 {
            left.extend_from_slice(&HEAD[..state]);
        }
        if state == HEAD.len() {
            if ch != b':' && ch != b'$' {
                // Kept in `left`, not written yet: git's filter does the same.
                left.push(ch);
                state = 0;
                continue;
            }
            if ch == b':' {
                left.push(ch);
                skipping = true;
            } else {
                left.extend_from_slice(&ident);
                out.append(&mut left);
                state = 0;
            }
            continue;
        }
        left.push(ch);
        out.append(&mut left);
        state = 0;
    }
    if !skipping {
        left.extend_from_slice(&HEAD[..state]);
    }
    out.append(&mut left);
    out
}

/// git's `same_utf_encoding`: both names start with `utf` (any case), and the rest, after one
/// optional `-`, is the same (any case).
fn same_utf_encoding(a: &[u8], b: &[u8]) -> bool {
    let strip = |s: &[u8]| -> Option<Vec<u8>> {
        if s.len() >= 3 && s[..3].eq_ignore_ascii_case(b"utf") {
            let rest = &s[3..];
            Some(rest.strip_prefix(b"-").unwrap_or(rest).to_vec())
        } else {
            None
        }
    };
    match (strip(a), strip(b)) {
        (Some(x), Some(y)) => x.eq_ignore_ascii_case(&y),
        _ => false,
    }
}

/// git's `same_encoding`.
fn same_encoding(a: &[u8], b: &[u8]) -> bool {
    same_utf_encoding(a, b) || a.eq_ignore_ascii_case(b)
}

#[cfg(unix)]
/// git's `fallback_encoding`.
fn fallback_encoding(name: &[u8]) -> &[u8] {
    if same_utf_encoding(b"utf-8", name) {
        b"UTF-8"
    } else if name.eq_ignore_ascii_case(b"latin-1") {
        b"ISO-8859-1"
    } else {
        name
    }
}

#[cfg(unix)]
/// git's `encode_to_worktree`: `src` (UTF-8) in `encoding`, through the system's iconv as git
/// converts it (`reencode_string_len`). `None` when there is nothing to encode or iconv
/// fails, in which case git writes the content unencoded (after an error message).
pub fn encode_to_worktree(src: &[u8], encoding: &[u8]) -> Option<Vec<u8>> {
    if src.is_empty() {
        return None;
    }
    let (to, bom): (&[u8], &[u8]) = if same_utf_encoding(b"UTF-16LE-BOM", encoding) {
        (b"UTF-16LE", b"\xff\xfe")
    } else if same_utf_encoding(b"UTF-16BE-BOM", encoding) {
        (b"UTF-16BE", b"\xfe\xff")
    } else {
        (encoding, b"")
    };
    let conv = iconv::Iconv::open(to, b"UTF-8")
        .or_else(|| iconv::Iconv::open(fallback_encoding(to), b"UTF-8"))?;
    let mut out = conv.convert(src, bom.len())?;
    out[..bom.len()].copy_from_slice(bom);
    Some(out)
}

// libc marks its iconv bindings deprecated on Apple targets (it plans to drop the libiconv
// link there); the C library's iconv is what git itself uses, on every platform.
#[allow(deprecated)]
#[cfg(unix)]
mod iconv {
    //! The system's iconv(3), which git converts `working-tree-encoding` with: the same
    //! converter gives the same bytes. No Rust crate encodes to UTF-16 and the rest of
    //! iconv's encodings as the C library does.

    use super::{CStr, CString};

    /// An open conversion descriptor, closed on drop.
    pub(super) struct Iconv(libc::iconv_t);

    impl Iconv {
        /// `iconv_open(to, from)`; `None` when the pair is unknown (or a name holds a NUL).
        pub(super) fn open(to: &[u8], from: &[u8]) -> Option<Iconv> {
            let to = CString::new(to).ok()?;
            let from = CString::new(from).ok()?;
            open_c(&to, &from)
        }

        /// Converts all of `input` in one `iconv` call (growing the output on E2BIG), as git's
        /// `reencode_string_iconv` does (without a final flush of the shift state), into a
        /// buffer that starts with `reserve` bytes for the caller; `None` on any other error.
        pub(super) fn convert(&self, input: &[u8], reserve: usize) -> Option<Vec<u8>> {
            let mut out = vec![0u8; reserve + input.len() + 1];
            let mut in_ptr = input.as_ptr() as *mut libc::c_char;
            let mut in_left = input.len();
            let mut written = reserve;
            loop {
                let mut out_left = out.len() - written - 1;
                // SAFETY: `out[written..]` is valid for `out_left` bytes and `input[..]` for
                // `in_left` from `in_ptr`; iconv only advances the pointers within them and
                // updates the counts.
                let (r, errno) = unsafe {
                    let mut out_ptr = out.as_mut_ptr().add(written) as *mut libc::c_char;
                    let before = out_ptr;
                    let r = libc::iconv(
                        self.0,
                        &mut in_ptr,
                        &mut in_left,
                        &mut out_ptr,
                        &mut out_left,
                    );
                    written += out_ptr.offset_from(before) as usize;
                    (r, std::io::Error::last_os_error().raw_os_error())
                };
                if r != usize::MAX {
                    out.truncate(written);
                    return Some(out);
                }
                if errno != Some(libc::E2BIG) {
                    return None;
                }
                let grown = written + in_left * 2 + 32 + 1;
                out.resize(grown.max(out.len() * 2), 0);
            }
        }
    }

    fn open_c(to: &CStr, from: &CStr) -> Option<Iconv> {
        // SAFETY: both are valid NUL-terminated strings for the duration of the call.
        let cd = unsafe { libc::iconv_open(to.as_ptr(), from.as_ptr()) };
        if cd as isize == -1 {
            None
        } else {
            Some(Iconv(cd))
        }
    }

    impl Drop for Iconv {
        fn drop(&mut self) {
            // SAFETY: `self.0` came from a successful `iconv_open` and is closed once.
            unsafe {
                libc::iconv_close(self.0);
            }
        }
    }
}

#[cfg(all(test, unix))]
#[path = "conversion_tests.rs"]
mod tests;
