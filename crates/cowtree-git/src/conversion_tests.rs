use super::*;

const LF: EolConfig = EolConfig {
    autocrlf: AutoCrlf::False,
    eol: CoreEol::Unset,
};

fn attrs<'a>(pairs: &[(&str, Attr<'a>)]) -> [Attr<'a>; 6] {
    let mut out = [Attr::Unspecified; 6];
    for (name, a) in pairs {
        let i = NAMES.iter().position(|n| n == name).expect("a known name");
        out[i] = *a;
    }
    out
}

fn v(s: &'static str) -> Attr<'static> {
    Attr::Value(s.as_bytes())
}

fn drivers() -> Vec<DriverInfo> {
    vec![
        DriverInfo {
            name: "up".into(),
            smudge: true,
            clean: true,
            process: false,
            required: false,
        },
        DriverInfo {
            name: "cleanonly".into(),
            smudge: false,
            clean: true,
            process: false,
            required: false,
        },
        DriverInfo {
            name: "req".into(),
            smudge: false,
            clean: false,
            process: false,
            required: true,
        },
    ]
}

/// Attribute states, the configuration, and the action git decides.
type CrlfRow<'a> = (&'a [(&'a str, Attr<'a>)], EolConfig, CrlfAction);

#[test]
fn convert_attrs_decides_the_crlf_action_as_git_does() {
    use AutoCrlf::{False, Input, True};
    let cfg = |autocrlf, eol| EolConfig { autocrlf, eol };
    let rows: &[CrlfRow<'_>] = &[
        (&[], LF, CrlfAction::Binary),
        (&[], cfg(True, CoreEol::Unset), CrlfAction::AutoCrlf),
        (&[], cfg(Input, CoreEol::Unset), CrlfAction::AutoInput),
        (&[("text", Attr::Set)], LF, CrlfAction::TextInput),
        (
            &[("text", Attr::Set)],
            cfg(False, CoreEol::Crlf),
            CrlfAction::TextCrlf,
        ),
        (
            &[("text", Attr::Set)],
            cfg(True, CoreEol::Lf),
            CrlfAction::TextCrlf,
        ),
        (
            &[("text", Attr::Set)],
            cfg(Input, CoreEol::Crlf),
            CrlfAction::TextInput,
        ),
        (
            &[("text", Attr::Unset)],
            cfg(True, CoreEol::Crlf),
            CrlfAction::Binary,
        ),
        (&[("text", v("auto"))], LF, CrlfAction::Auto),
        (
            &[("text", v("auto")), ("eol", v("crlf"))],
            LF,
            CrlfAction::AutoCrlf,
        ),
        (
            &[("text", v("auto")), ("eol", v("lf"))],
            LF,
            CrlfAction::AutoInput,
        ),
        (&[("eol", v("crlf"))], LF, CrlfAction::TextCrlf),
        (
            &[("eol", v("lf"))],
            cfg(True, CoreEol::Unset),
            CrlfAction::TextInput,
        ),
        (
            &[("eol", v("crlf")), ("text", Attr::Unset)],
            LF,
            CrlfAction::Binary,
        ),
        (&[("crlf", Attr::Set)], LF, CrlfAction::TextInput),
        (
            &[("crlf", Attr::Unset)],
            cfg(True, CoreEol::Unset),
            CrlfAction::Binary,
        ),
        (
            &[("crlf", v("input"))],
            cfg(True, CoreEol::Unset),
            CrlfAction::TextInput,
        ),
        // `text` is read before the legacy `crlf`.
        (
            &[("text", Attr::Unset), ("crlf", Attr::Set)],
            LF,
            CrlfAction::Binary,
        ),
        // An unknown value is undefined, then the configuration decides.
        (
            &[("text", v("bogus"))],
            cfg(True, CoreEol::Unset),
            CrlfAction::AutoCrlf,
        ),
    ];
    for (a, config, want) in rows {
        let got = ConvAttrs::from_attrs(attrs(a), *config, &drivers()).unwrap();
        assert_eq!(got.crlf, *want, "{a:?} {config:?}");
    }
}

#[test]
fn working_tree_encoding_is_none_for_utf8_spellings_and_unset_and_refused_when_set_bare() {
    let enc = |a| {
        ConvAttrs::from_attrs(attrs(&[("working-tree-encoding", a)]), LF, &[])
            .map(|c| c.encoding.map(|e| e.to_string()))
    };
    assert_eq!(enc(v("UTF-16")), Ok(Some("UTF-16".into())));
    for same in ["UTF-8", "utf8", "utf-8", "Utf-8", ""] {
        assert_eq!(enc(v(same)), Ok(None), "{same}");
    }
    assert_eq!(enc(Attr::Set), Err(BadEncoding));
    assert_eq!(enc(Attr::Unset), Ok(None), "git's false is an empty string");
}

#[test]
fn classification_and_whether_the_blob_changes_follow_git() {
    let d = drivers();
    let ca = |a: &[(&str, Attr<'_>)], config| ConvAttrs::from_attrs(attrs(a), config, &d).unwrap();
    let auto_crlf = EolConfig {
        autocrlf: AutoCrlf::True,
        eol: CoreEol::Unset,
    };
    assert_eq!(ca(&[], LF).class(&d), Class::Streamable);
    assert_eq!(ca(&[], LF).changes_blob(&d), None);
    assert_eq!(ca(&[("text", v("auto"))], LF).class(&d), Class::InCore);
    assert_eq!(ca(&[("text", v("auto"))], LF).changes_blob(&d), None);
    assert!(
        ca(&[("text", v("auto"))], auto_crlf)
            .changes_blob(&d)
            .is_some()
    );
    assert!(ca(&[], auto_crlf).changes_blob(&d).is_some());
    assert_eq!(
        ca(&[("filter", v("up"))], LF).class(&d),
        Class::InCoreFilter
    );
    assert!(ca(&[("filter", v("up"))], LF).changes_blob(&d).is_some());
    // A driver with only `clean` classifies in core but writes the blob.
    assert_eq!(
        ca(&[("filter", v("cleanonly"))], LF).class(&d),
        Class::InCoreFilter
    );
    assert_eq!(ca(&[("filter", v("cleanonly"))], LF).changes_blob(&d), None);
    // A driver the configuration does not define is no driver.
    assert_eq!(ca(&[("filter", v("nosuch"))], LF).driver, None);
    // A required driver without a smudge command makes git fail: it counts as a change.
    assert!(ca(&[("filter", v("req"))], LF).changes_blob(&d).is_some());
    assert!(ca(&[("ident", Attr::Set)], LF).changes_blob(&d).is_some());
    assert_eq!(ca(&[("ident", Attr::Unset)], LF).changes_blob(&d), None);
    assert!(ca(&[("eol", v("crlf"))], LF).changes_blob(&d).is_some());
    assert_eq!(
        ca(&[("eol", v("crlf")), ("text", Attr::Unset)], LF).changes_blob(&d),
        None
    );
}

const HEX: &str = "0123456789abcdef0123456789abcdef01234567";

fn stream(s: &str) -> String {
    String::from_utf8(ident_stream(s.as_bytes(), HEX.as_bytes())).unwrap()
}

fn in_core(s: &str) -> String {
    ident_in_core(s.as_bytes(), HEX.as_bytes())
        .map(|v| String::from_utf8(v).unwrap())
        .unwrap_or_else(|| s.to_owned())
}

#[test]
fn ident_expands_keywords_in_both_of_gits_paths() {
    let id = format!("$Id: {HEX} $");
    for (input, want) in [
        ("a $Id$ b", format!("a {id} b")),
        ("$Id: old $", id.clone()),
        ("$Id:old$", id.clone()),
        ("two $Id$ $Id$", format!("two {id} {id}")),
        ("no keyword", "no keyword".to_owned()),
        ("$Id", "$Id".to_owned()),
        ("$Id: broken\nline $", "$Id: broken\nline $".to_owned()),
        (
            "$Id: foreign id here $",
            "$Id: foreign id here $".to_owned(),
        ),
    ] {
        assert_eq!(stream(input), want, "stream {input:?}");
        assert_eq!(in_core(input), want, "in core {input:?}");
    }
}

#[test]
fn ident_paths_differ_where_gits_differ() {
    let id = format!("$Id: {HEX} $");
    // The stream does not look at a `$` that broke a partial match again.
    assert_eq!(stream("$$Id$"), "$$Id$");
    assert_eq!(in_core("$$Id$"), format!("${id}"));
    // The stream drops the text before a second keyword that follows `$IdX`.
    assert_eq!(stream("$IdX$Id:abc$"), id);
    assert_eq!(in_core("$IdX$Id:abc$"), format!("$IdX{id}"));
    // Foreign ids: the stream treats a tab as a space, the in-core path only ' '.
    assert_eq!(stream("$Id: a\tb $"), "$Id: a\tb $");
    assert_eq!(in_core("$Id: a\tb $"), id);
}

#[test]
fn lf_to_crlf_keeps_crlf_and_lone_cr() {
    for (input, want) in [
        ("a\nb\n", "a\r\nb\r\n"),
        ("a\r\nb\n", "a\r\nb\r\n"),
        ("a\rb", "a\rb"),
        ("a\r", "a\r"),
        ("\r\r\n", "\r\r\n"),
        ("", ""),
    ] {
        let got = String::from_utf8(lf_to_crlf_stream(input.as_bytes())).unwrap();
        assert_eq!(got, want, "{input:?}");
    }
}

#[test]
fn auto_leaves_files_with_cr_or_binary_content_alone() {
    let auto = EolConfig {
        autocrlf: AutoCrlf::True,
        eol: CoreEol::Unset,
    };
    let conv = |s: &[u8]| crlf_to_worktree(s, CrlfAction::AutoCrlf, auto);
    assert_eq!(conv(b"a\nb\n").as_deref(), Some(&b"a\r\nb\r\n"[..]));
    assert_eq!(conv(b"a\r\nb\n"), None, "has CRLF already");
    assert_eq!(conv(b"a\rb\n"), None, "lone CR: binary");
    assert_eq!(conv(b"a\0b\n"), None, "NUL: binary");
    assert_eq!(conv(b"ab"), None, "no LF");
    // `text` converts what `auto` would leave.
    assert_eq!(
        crlf_to_worktree(b"a\r\nb\n", CrlfAction::TextCrlf, LF).as_deref(),
        Some(&b"a\r\nb\r\n"[..])
    );
}

#[test]
fn encoding_uses_iconv_with_gits_bom_handling() {
    assert_eq!(
        encode_to_worktree(b"hi\n", b"UTF-16LE-BOM").as_deref(),
        Some(&b"\xff\xfeh\0i\0\n\0"[..])
    );
    assert_eq!(
        encode_to_worktree(b"hi", b"utf-16be-bom").as_deref(),
        Some(&b"\xfe\xff\0h\0i"[..])
    );
    assert_eq!(
        encode_to_worktree(b"hi", b"UTF-16LE").as_deref(),
        Some(&b"h\0i\0"[..])
    );
    assert_eq!(
        encode_to_worktree("\u{e9}".as_bytes(), b"latin-1").as_deref(),
        Some(&b"\xe9"[..]),
        "latin-1 falls back to ISO-8859-1"
    );
    assert_eq!(
        encode_to_worktree(b"", b"UTF-16"),
        None,
        "nothing to encode"
    );
    assert_eq!(encode_to_worktree(b"\xff", b"UTF-16LE"), None, "not UTF-8");
    assert_eq!(encode_to_worktree(b"x", b"NO-SUCH-ENCODING"), None);
}

#[test]
fn a_failing_driver_keeps_the_earlier_steps_unless_required() {
    let d = drivers();
    let ca =
        ConvAttrs::from_attrs(attrs(&[("filter", v("up")), ("eol", v("crlf"))]), LF, &d).unwrap();
    let failed = to_worktree(&ca, &d, HEX, b"a\n", |_| Smudged::Failed("x".into())).unwrap();
    assert_eq!(failed.as_deref(), Some(&b"a\r\n"[..]));
    let ran = to_worktree(&ca, &d, HEX, b"a\n", |i| {
        Smudged::Output(i.to_ascii_uppercase())
    })
    .unwrap();
    assert_eq!(ran.as_deref(), Some(&b"A\r\n"[..]));
    let mut req = d.clone();
    req[0].required = true;
    assert!(matches!(
        to_worktree(&ca, &req, HEX, b"a\n", |_| Smudged::Failed("x".into())),
        Err(ConvertError::RequiredDriverFailed { .. })
    ));
}

/// The oracle: blobs of every shape, under attributes and configurations of every kind,
/// checked out by git itself and converted here; the bytes must be the same.
#[test]
fn to_worktree_writes_what_git_checkout_writes() {
    let contents: Vec<(&str, Vec<u8>)> = vec![
        ("lf", b"one\ntwo\n".to_vec()),
        ("crlf", b"one\r\ntwo\r\n".to_vec()),
        ("mixed", b"one\r\ntwo\nthree\n".to_vec()),
        ("lonecr", b"one\rtwo\n".to_vec()),
        ("nul", b"a\0b\nc\n".to_vec()),
        ("noeol", b"no newline".to_vec()),
        ("empty", Vec::new()),
        ("ctrlz", b"a\nb\n\x1a".to_vec()),
        ("id", b"x $Id$ y\n".to_vec()),
        ("idold", b"x $Id: old $ y\n".to_vec()),
        ("idforeign", b"x $Id: foreign one $\n".to_vec()),
        ("idtab", b"x $Id: a\tb $\n".to_vec()),
        ("iddollar", b"$$Id$\n".to_vec()),
        ("idx", b"$IdX$Id:abc$\n".to_vec()),
        ("idnl", b"$Id: a\nb$\n".to_vec()),
        ("idincomplete", b"$Id: open\n".to_vec()),
        ("utf8", "caf\u{e9} \u{4e2d}\u{6587}\n".as_bytes().to_vec()),
        ("binary", (0u8..=255).collect()),
    ];
    let attr_sets: &[&str] = &[
        "",
        "text",
        "-text",
        "text=auto",
        "eol=crlf",
        "eol=lf",
        "text eol=crlf",
        "text=auto eol=crlf",
        "crlf",
        "-crlf",
        "crlf=input",
        "ident",
        "ident eol=crlf",
        "ident text=auto",
        "ident filter=up",
        "filter=up",
        "filter=up eol=crlf",
        "working-tree-encoding=UTF-16LE-BOM",
        "working-tree-encoding=UTF-16 eol=crlf",
        "working-tree-encoding=ISO-8859-1",
        "ident working-tree-encoding=UTF-16BE-BOM",
    ];
    let configs: &[(&str, &str)] = &[
        ("false", ""),
        ("true", ""),
        ("input", ""),
        ("false", "crlf"),
        ("true", "lf"),
    ];
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("r");
    std::fs::create_dir(&repo).unwrap();
    let git = |args: &[&str]| {
        let out = cowtree_testutil::git_cmd(&repo)
            .args(args)
            .output()
            .expect("run git");
        assert!(out.status.success(), "git {args:?}: {out:?}");
        out.stdout
    };
    git(&["init", "-q"]);
    git(&["config", "filter.up.smudge", "tr a-z A-Z"]);
    git(&["config", "filter.up.clean", "tr A-Z a-z"]);
    let mut gitattributes = String::new();
    let mut cases = Vec::new();
    let mut n = 0;
    for (aname, a) in attr_sets.iter().enumerate() {
        for (cname, c) in &contents {
            let path = format!("f{aname}-{cname}");
            std::fs::write(repo.join(&path), c).unwrap();
            gitattributes.push_str(&format!("/{path} {a}\n"));
            cases.push((path, *a, c.clone()));
            n += 1;
        }
    }
    assert!(n > 300);
    // The blobs are stored as they are: no attributes while adding them.
    git(&["add", "-A"]);
    std::fs::write(repo.join(".gitattributes"), &gitattributes).unwrap();
    git(&["add", ".gitattributes"]);
    git(&["commit", "-qm", "c"]);
    let d = vec![DriverInfo {
        name: "up".into(),
        smudge: true,
        clean: true,
        process: false,
        required: false,
    }];
    let ids: std::collections::HashMap<String, String> =
        String::from_utf8(git(&["ls-tree", "HEAD"]))
            .unwrap()
            .lines()
            .map(|l| {
                let (meta, path) = l.split_once('\t').unwrap();
                (path.to_owned(), meta.split(' ').nth(2).unwrap().to_owned())
            })
            .collect();
    let mut failures = Vec::new();
    for (autocrlf, eol) in configs {
        git(&["config", "core.autocrlf", autocrlf]);
        if eol.is_empty() {
            let _ = cowtree_testutil::git_cmd(&repo)
                .args(["config", "--unset", "core.eol"])
                .output();
        } else {
            git(&["config", "core.eol", eol]);
        }
        for (path, _, _) in &cases {
            std::fs::remove_file(repo.join(path)).unwrap();
        }
        git(&["checkout", "--", "."]);
        let config = EolConfig::parse(
            Some(autocrlf.as_bytes()),
            (!eol.is_empty()).then_some(eol.as_bytes()),
        )
        .unwrap();
        for (path, a, blob) in &cases {
            let mut parsed: Vec<(String, Option<String>, bool)> = Vec::new();
            for word in a.split_whitespace() {
                if let Some(n) = word.strip_prefix('-') {
                    parsed.push((n.to_owned(), None, false));
                } else if let Some((k, val)) = word.split_once('=') {
                    parsed.push((k.to_owned(), Some(val.to_owned()), true));
                } else {
                    parsed.push((word.to_owned(), None, true));
                }
            }
            let mut states = [Attr::Unspecified; 6];
            for (k, val, set) in &parsed {
                let i = NAMES.iter().position(|x| x == k).unwrap();
                states[i] = match (val, set) {
                    (Some(val), _) => Attr::Value(val.as_bytes()),
                    (None, true) => Attr::Set,
                    (None, false) => Attr::Unset,
                };
            }
            let ca = ConvAttrs::from_attrs(states, config, &d).unwrap();
            let id = &ids[path];
            let ours = to_worktree(&ca, &d, id, blob, |i| {
                Smudged::Output(i.to_ascii_uppercase())
            })
            .unwrap()
            .unwrap_or_else(|| blob.clone());
            let theirs = std::fs::read(repo.join(path)).unwrap();
            if ours != theirs {
                failures.push(format!(
                    "{path} [{a}] autocrlf={autocrlf} eol={eol}: git {:?}, ours {:?}",
                    theirs.as_bstr(),
                    ours.as_bstr()
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
