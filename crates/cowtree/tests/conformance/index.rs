//! What an index file says beyond `git ls-files`: its version, its extensions in order,
//! whether its checksum is written (`index.skipHash` leaves it zero), and its cache tree (a
//! stale tree id there would make the next `git commit` write a wrong tree). Read as
//! gitformat-index(5) specifies it; a file that does not parse is described as such.

/// A description of the index at `bytes`, in lines, for a repository whose object ids are
/// `hash_len` bytes long; the cache tree in a second string.
pub fn describe(bytes: &[u8], hash_len: usize) -> (String, String) {
    match parse(bytes, hash_len) {
        Ok(ix) => {
            let mut head = format!(
                "version {}\nentries in this file {}\nextensions {}\nchecksum {}\n",
                ix.version,
                ix.entries,
                ix.extensions.join(" "),
                if ix.checksum_zero { "zero" } else { "written" }
            );
            if ix.extensions.iter().any(|e| e == "link") {
                head.push_str("split index (entries partly in sharedindex.*)\n");
            }
            (head, ix.tree.unwrap_or_else(|| "no cache tree\n".into()))
        }
        Err(e) => (format!("unreadable index: {e}\n"), String::new()),
    }
}

struct Index {
    version: u32,
    entries: u32,
    extensions: Vec<String>,
    checksum_zero: bool,
    tree: Option<String>,
}

fn be32(b: &[u8], at: usize) -> Result<u32, String> {
    b.get(at..at + 4)
        .map(|s| u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
        .ok_or_else(|| format!("truncated at {at}"))
}

fn parse(b: &[u8], hash_len: usize) -> Result<Index, String> {
    if b.get(..4) != Some(b"DIRC") {
        return Err("no DIRC signature".into());
    }
    let version = be32(b, 4)?;
    let entries = be32(b, 8)?;
    if !(2..=4).contains(&version) {
        return Err(format!("version {version}"));
    }
    let end = b
        .len()
        .checked_sub(hash_len)
        .ok_or("shorter than its checksum")?;
    let mut at = 12;
    for _ in 0..entries {
        let start = at;
        // ctime, mtime (8 each), dev, ino, mode, uid, gid, size (4 each), the id, flags.
        let flags_at = start + 40 + hash_len;
        let flags = b
            .get(flags_at..flags_at + 2)
            .map(|s| u16::from_be_bytes([s[0], s[1]]))
            .ok_or_else(|| format!("entry at {start} truncated"))?;
        let mut name_at = flags_at + 2;
        if version >= 3 && flags & 0x4000 != 0 {
            name_at += 2;
        }
        if version == 4 {
            // The varint of the prefix to strip, then the rest of the name, NUL-terminated.
            let mut i = name_at;
            while b.get(i).ok_or("varint truncated")? & 0x80 != 0 {
                i += 1;
            }
            i += 1;
            let nul = b[i..end]
                .iter()
                .position(|&c| c == 0)
                .ok_or("name without NUL")?;
            at = i + nul + 1;
        } else {
            let nul = b
                .get(name_at..end)
                .ok_or("name truncated")?
                .iter()
                .position(|&c| c == 0)
                .ok_or("name without NUL")?;
            // Padded with 1 to 8 NULs to a multiple of 8 bytes.
            let len = name_at - start + nul;
            at = start + (len + 8) / 8 * 8;
        }
        if at > end {
            return Err(format!("entry at {start} runs past the end"));
        }
    }
    let mut extensions = Vec::new();
    let mut tree = None;
    while at < end {
        let sig = b.get(at..at + 4).ok_or("extension truncated")?;
        let size = be32(b, at + 4)? as usize;
        let data = b
            .get(at + 8..at + 8 + size)
            .ok_or("extension data truncated")?;
        let name = String::from_utf8_lossy(sig).into_owned();
        if sig == b"TREE" {
            tree = Some(cache_tree(data, hash_len)?);
        }
        extensions.push(name);
        at += 8 + size;
    }
    if at != end {
        return Err("extensions run into the checksum".into());
    }
    Ok(Index {
        version,
        entries,
        extensions,
        checksum_zero: b[end..].iter().all(|&c| c == 0),
        tree,
    })
}

/// The `TREE` extension: per directory, its full path, entry count (-1: invalid), subtree
/// count and tree id, sorted by path. git stores subtrees depth first, each level ordered by
/// name length then name, and reads them in any order: the order is not compared.
fn cache_tree(mut d: &[u8], hash_len: usize) -> Result<String, String> {
    let mut lines = Vec::new();
    // The paths of the directories whose subtrees are being read, with how many remain.
    let mut open: Vec<(String, usize)> = Vec::new();
    while !d.is_empty() {
        let nul = d.iter().position(|&c| c == 0).ok_or("TREE path")?;
        let name = String::from_utf8_lossy(&d[..nul]).into_owned();
        d = &d[nul + 1..];
        let nl = d.iter().position(|&c| c == b'\n').ok_or("TREE counts")?;
        let counts = String::from_utf8_lossy(&d[..nl]).into_owned();
        d = &d[nl + 1..];
        let subtrees: usize = counts
            .split(' ')
            .nth(1)
            .and_then(|n| n.parse().ok())
            .ok_or("TREE subtree count")?;
        let id = if counts.starts_with('-') {
            "invalid".to_owned()
        } else {
            let id = d.get(..hash_len).ok_or("TREE id truncated")?;
            d = &d[hash_len..];
            id.iter().map(|c| format!("{c:02x}")).collect()
        };
        while open.last().is_some_and(|(_, left)| *left == 0) {
            open.pop();
        }
        let path = match open.last_mut() {
            Some((parent, left)) => {
                *left -= 1;
                format!("{parent}{name}/")
            }
            None => name.clone(),
        };
        lines.push(format!("{path:?} {counts} {id}\n"));
        open.push((path, subtrees));
    }
    lines.sort();
    Ok(lines.concat())
}

#[cfg(test)]
mod tests {
    /// A `TREE` entry: name, entry and subtree counts, and an id of `fill` bytes.
    fn node(name: &str, entries: u32, subtrees: u32, fill: u8) -> Vec<u8> {
        let mut v = format!("{name}\0{entries} {subtrees}\n").into_bytes();
        v.extend([fill; 20]);
        v
    }

    #[test]
    fn conformance_cache_trees_in_another_subtree_order_are_described_alike() {
        let root = node("", 3, 2, 1);
        let (x, ab) = (node("x", 1, 0, 2), node("ab", 2, 1, 3));
        let deep = node("c", 1, 0, 4);
        // git's order (by length, then name) and the lexical one.
        let git = [root.clone(), x.clone(), ab.clone(), deep.clone()].concat();
        let lexical = [root, ab, deep, x].concat();
        let a = super::cache_tree(&git, 20).unwrap();
        assert_eq!(a, super::cache_tree(&lexical, 20).unwrap());
        assert!(a.contains("\"ab/c/\" 1 0 0404"), "{a}");
        let other = [
            node("", 3, 2, 1),
            node("x", 1, 0, 9),
            node("ab", 2, 1, 3),
            node("c", 1, 0, 4),
        ]
        .concat();
        assert_ne!(
            a,
            super::cache_tree(&other, 20).unwrap(),
            "a stale subtree id must show"
        );
    }

    #[test]
    fn conformance_an_unreadable_index_is_described_not_panicked_on() {
        let (head, _) = super::describe(b"DIRC\0\0\0\x02\0\0\0\x05", 20);
        assert!(head.starts_with("unreadable index"), "{head}");
    }
}
