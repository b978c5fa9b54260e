//! `cowtree clone --preserve=LIST` and `--archive`: GNU cp's names for what a per-file clone
//! keeps beyond data, permission bits and times, and the one line per kind of thing that
//! could not be kept.

use cowtree_link::{NotKept, Preserve};

/// The items `--preserve` accepts, for messages.
const ITEMS: &str = "ownership, xattr, acl, links, special, all (mode, timestamps: always kept)";

/// What `--preserve` alone keeps, as GNU cp's `--preserve` without a list does.
pub const GNU_DEFAULT: &str = "mode,ownership,timestamps";

/// Parses a `--preserve` list (comma-separated, as GNU cp's): `ownership`, `xattr`, `acl`,
/// `links`, `special`, `all`; `mode` and `timestamps` are accepted and change nothing (the
/// permission bits and times are always kept; `--no-preserve-times` drops times).
pub fn parse(list: &str) -> Result<Preserve, String> {
    let mut p = Preserve::default();
    for item in list.split(',') {
        match item.trim() {
            "ownership" => p.ownership = true,
            "xattr" => p.xattr = true,
            "acl" => p.acl = true,
            "links" => p.links = true,
            "special" => p.special = true,
            "all" => p = Preserve::ALL,
            "mode" | "timestamps" => {}
            "" => return Err(format!("an empty item in {list:?}; the items are: {ITEMS}")),
            other => return Err(format!("unknown item {other:?}; the items are: {ITEMS}")),
        }
    }
    Ok(p)
}

/// One line per kind of thing asked for and not kept, with how many entries and why.
pub fn not_kept_lines(n: &NotKept) -> Vec<String> {
    let entries = |k: u64| format!("{k} {}", if k == 1 { "entry" } else { "entries" });
    let rows = [
        (
            n.ownership,
            "ownership",
            "not permitted: run as root; the group was kept where you are a member of it, set-ID bits were dropped",
        ),
        (
            n.xattr,
            "extended attributes",
            "a namespace you may not write, such as trusted.* or security.* without root, or not supported by the destination",
        ),
        (
            n.acl,
            "ACLs",
            "not permitted or not supported by the destination",
        ),
        (
            n.links,
            "hardlinks",
            "the filesystem refused the link; each got a file of its own",
        ),
    ];
    let mut lines: Vec<String> = rows
        .into_iter()
        .filter(|&(k, _, _)| k > 0)
        .map(|(k, what, why)| format!("{what} not kept for {} ({why})", entries(k)))
        .collect();
    if n.special > 0 {
        let nodes = if n.special == 1 {
            "device node"
        } else {
            "device nodes"
        };
        lines.push(format!(
            "{} {nodes} not kept (not permitted: only root may make device nodes)",
            n.special
        ));
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn preserve_lists_parse_as_gnu_cp_names_them() -> Result<(), String> {
        let only = |f: fn(&mut Preserve)| {
            let mut p = Preserve::default();
            f(&mut p);
            p
        };
        let rows: [(&str, Preserve); 9] = [
            ("ownership", only(|p| p.ownership = true)),
            ("xattr", only(|p| p.xattr = true)),
            ("acl", only(|p| p.acl = true)),
            ("links", only(|p| p.links = true)),
            ("special", only(|p| p.special = true)),
            ("all", Preserve::ALL),
            ("mode,timestamps", Preserve::default()),
            (
                "ownership,links",
                only(|p| {
                    p.ownership = true;
                    p.links = true;
                }),
            ),
            ("mode,all,timestamps", Preserve::ALL),
        ];
        for (list, want) in rows {
            assert_eq!(parse(list)?, want, "{list}");
        }
        Ok(())
    }

    #[test]
    fn unknown_and_empty_preserve_items_are_refused_with_the_choices() -> Result<(), String> {
        for list in ["owner", "xattr,", "", "context"] {
            match parse(list) {
                Ok(p) => return Err(format!("{list:?} was accepted as {p:?}")),
                Err(e) => assert!(e.contains("ownership, xattr, acl"), "{list:?}: {e}"),
            }
        }
        Ok(())
    }

    #[test]
    fn each_kind_not_kept_is_one_line_with_its_count() {
        assert!(not_kept_lines(&NotKept::default()).is_empty());
        let lines = not_kept_lines(&NotKept {
            ownership: 12,
            special: 1,
            ..NotKept::default()
        });
        assert_eq!(lines.len(), 2, "{lines:?}");
        assert!(
            lines[0].starts_with("ownership not kept for 12 entries (not permitted: run as root"),
            "{lines:?}"
        );
        assert!(lines[1].starts_with("1 device node not kept"), "{lines:?}");
    }
}
