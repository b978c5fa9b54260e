//! What a snapshot's walk found, held compactly until it is written out as a manifest.
//!
//! The manifest is the one thing a snapshot must hold for the whole tree before it can write
//! any of it (its entries are sorted by path, the walk finds them in any order). Held as
//! manifest entries, each would repeat its directory's path; here no path is held at all:
//! - each directory the walk visits has a slot (a number given when its parent descends into
//!   it) and a [`Node`]: its subdirectories' names and slots, and whether it was empty;
//! - each file and symlink is a [`Leaf`] of 48 bytes (kind, size, blob hash, where its name
//!   is) in a [`Piece`]: the leaves one visit or one job found in one directory, their names
//!   (and symlink targets) in one buffer beside them.
//!
//! So an entry costs 48 bytes and its name, whatever its depth. [`Found::write`] then walks
//! the slots depth first from the root, each directory's entries in manifest order, and gives
//! each encoded entry, its path put together on the way, to a sink (the store's
//! [`crate::store::ManifestWriter`], which checks, hashes and writes it): the manifest is
//! never held whole either.
//!
//! Manifest order within one directory: paths compare as bytes and every path beneath a
//! subdirectory `d` starts with `d/`, so a subdirectory sorts as its name followed by `/`, an
//! empty one (itself an entry) as its name.

use crate::hash::Hash;
use crate::manifest::{Kind, encode_blob, encode_dir, encode_symlink, name_order};
use crate::trees::Counts;

/// A file or symlink found in a directory.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Leaf {
    /// Where its name starts in its piece's bytes; a symlink's target follows the name.
    start: u32,
    name_len: u16,
    kind: Kind,
    /// A file's size, a symlink's target length.
    size: u64,
    /// A file's blob (zero for a symlink).
    hash: [u8; 32],
}

/// The leaves one visit or one job found in the directory of slot `slot`.
#[derive(Debug, Default)]
pub(crate) struct Piece {
    slot: u32,
    bytes: Vec<u8>,
    leaves: Vec<Leaf>,
}

/// Why a name or a target does not fit (never for what a Linux directory holds: names are at
/// most 255 bytes, targets at most 4096).
#[derive(Debug)]
pub(crate) struct TooLong;

impl Piece {
    /// A piece of the directory of slot `slot`, with room for `leaves` leaves and `bytes`
    /// bytes of names.
    pub fn new(slot: u32, leaves: usize, bytes: usize) -> Piece {
        Piece {
            slot,
            bytes: Vec::with_capacity(bytes),
            leaves: Vec::with_capacity(leaves),
        }
    }

    fn push(
        &mut self,
        name: &[u8],
        target: &[u8],
        kind: Kind,
        size: u64,
        hash: [u8; 32],
    ) -> Result<(), TooLong> {
        let start = u32::try_from(self.bytes.len()).map_err(|_| TooLong)?;
        let name_len = u16::try_from(name.len()).map_err(|_| TooLong)?;
        u32::try_from(self.bytes.len() + name.len() + target.len()).map_err(|_| TooLong)?;
        self.bytes.extend_from_slice(name);
        self.bytes.extend_from_slice(target);
        self.leaves.push(Leaf {
            start,
            name_len,
            kind,
            size,
            hash,
        });
        Ok(())
    }

    /// Adds a file (or executable) named `name` whose blob is `hash`.
    pub fn file(
        &mut self,
        name: &[u8],
        executable: bool,
        size: u64,
        hash: &Hash,
    ) -> Result<(), TooLong> {
        let kind = if executable {
            Kind::Executable
        } else {
            Kind::File
        };
        self.push(name, &[], kind, size, *hash.as_bytes())
    }

    /// Adds a symlink named `name` to `target`.
    pub fn symlink(&mut self, name: &[u8], target: &[u8]) -> Result<(), TooLong> {
        self.push(name, target, Kind::Symlink, target.len() as u64, [0; 32])
    }

    pub fn is_empty(&self) -> bool {
        self.leaves.is_empty()
    }

    pub fn len(&self) -> usize {
        self.leaves.len()
    }

    /// The leaves' capacity made their length (a piece is kept until the walk ends).
    pub fn shrink(&mut self) {
        self.leaves.shrink_to_fit();
        self.bytes.shrink_to_fit();
    }

    fn name(&self, l: &Leaf) -> &[u8] {
        &self.bytes[l.start as usize..l.start as usize + l.name_len as usize]
    }

    fn target(&self, l: &Leaf) -> &[u8] {
        let from = l.start as usize + l.name_len as usize;
        &self.bytes[from..from + l.size as usize]
    }

    /// The name of each leaf, in the order they were added.
    #[cfg(test)]
    #[cfg_attr(windows, allow(dead_code))] // ingest's tests, unix only
    pub fn names(&self) -> Vec<&[u8]> {
        self.leaves.iter().map(|l| self.name(l)).collect()
    }

    /// The blob of each file, in the order they were added.
    #[cfg(test)]
    #[cfg_attr(windows, allow(dead_code))] // ingest's tests, unix only
    pub fn hashes(&self) -> Vec<Hash> {
        self.leaves
            .iter()
            .map(|l| Hash::from_bytes(l.hash))
            .collect()
    }
}

/// A directory the walk visited: its subdirectories (names and slots), and whether it was
/// empty (then itself an entry).
#[derive(Debug, Default)]
pub(crate) struct Node {
    names: Vec<u8>,
    /// (end of the name in `names`, slot)
    subs: Vec<(u32, u32)>,
    empty: bool,
}

impl Node {
    /// A directory that listed empty.
    pub fn empty() -> Node {
        Node {
            empty: true,
            ..Node::default()
        }
    }

    /// Adds the subdirectory `name`, visited as slot `slot`.
    pub fn sub(&mut self, name: &[u8], slot: u32) -> Result<(), TooLong> {
        self.names.extend_from_slice(name);
        let end = u32::try_from(self.names.len()).map_err(|_| TooLong)?;
        self.subs.push((end, slot));
        Ok(())
    }

    fn sub_name(&self, i: usize) -> &[u8] {
        let start = if i == 0 {
            0
        } else {
            self.subs[i - 1].0 as usize
        };
        &self.names[start..self.subs[i].0 as usize]
    }

    pub fn shrink(&mut self) {
        self.names.shrink_to_fit();
        self.subs.shrink_to_fit();
    }
}

/// What every worker of a walk found, put together by slot.
#[derive(Debug, Default)]
pub(crate) struct Found {
    /// By slot (the root is 0); `None` for a slot not visited (the store's own directory,
    /// left out).
    nodes: Vec<Option<Node>>,
    /// Sorted by slot.
    pieces: Vec<Piece>,
    /// `first[s]..first[s + 1]`: slot `s`'s pieces.
    first: Vec<u32>,
    entries: u64,
}

/// One entry of a directory in the order being decided: a leaf (piece, leaf) or a
/// subdirectory (its index in the node's `subs`).
#[derive(Debug, Clone, Copy)]
enum Item {
    Leaf(u32, u32),
    Sub(u32),
}

/// A directory on [`Found::write`]'s stack.
struct Frame {
    slot: u32,
    items: Vec<Item>,
    next: usize,
    /// `path`'s length at this directory (its own path, without a trailing `/`).
    path_len: usize,
    /// Counted among the tree's directories (something was written beneath it).
    counted: bool,
}

impl Found {
    /// Puts together the `nodes` (by slot) and `pieces` the workers found; `slots` slots were
    /// given out.
    pub fn new(nodes: Vec<(u32, Node)>, mut pieces: Vec<Piece>, slots: u32) -> Found {
        let mut table: Vec<Option<Node>> = (0..slots).map(|_| None).collect();
        for (slot, node) in nodes {
            if let Some(t) = table.get_mut(slot as usize) {
                *t = Some(node);
            }
        }
        // A piece of a directory not visited whole (or listed empty) is not written: not
        // counted either, so that the count is that of what `write` gives.
        pieces.retain(|p| {
            !p.is_empty() && matches!(table.get(p.slot as usize), Some(Some(n)) if !n.empty)
        });
        pieces.sort_unstable_by_key(|p| p.slot);
        let mut first = Vec::with_capacity(table.len() + 1);
        let mut at = 0usize;
        for s in 0..table.len() {
            first.push(at as u32);
            while at < pieces.len() && pieces[at].slot as usize == s {
                at += 1;
            }
        }
        first.push(at as u32);
        // Every node is reachable from the root (a slot is given only by a visited parent's
        // descent), so the entries are the leaves and the empty directories.
        let leaves: usize = pieces.iter().map(Piece::len).sum();
        let empties = table.iter().flatten().filter(|n| n.empty).count();
        Found {
            nodes: table,
            pieces,
            first,
            entries: (leaves + empties) as u64,
        }
    }

    /// Manifest entries.
    pub fn entries(&self) -> u64 {
        self.entries
    }

    fn pieces_of(&self, slot: u32) -> &[Piece] {
        let s = slot as usize;
        match (self.first.get(s), self.first.get(s + 1)) {
            (Some(&a), Some(&b)) => &self.pieces[a as usize..b as usize],
            _ => &[],
        }
    }

    /// A directory's items in manifest order.
    fn items(&self, slot: u32, node: &Node) -> Vec<Item> {
        let pieces = self.pieces_of(slot);
        let first = self.first.get(slot as usize).copied().unwrap_or(0);
        let mut items: Vec<Item> =
            Vec::with_capacity(pieces.iter().map(Piece::len).sum::<usize>() + node.subs.len());
        for (p, piece) in pieces.iter().enumerate() {
            for l in 0..piece.len() {
                items.push(Item::Leaf(first + p as u32, l as u32));
            }
        }
        for i in 0..node.subs.len() {
            items.push(Item::Sub(i as u32));
        }
        let key = |item: &Item| -> (&[u8], bool) {
            match *item {
                Item::Leaf(p, l) => {
                    let piece = &self.pieces[p as usize];
                    (piece.name(&piece.leaves[l as usize]), false)
                }
                Item::Sub(i) => {
                    let (_, sub) = node.subs[i as usize];
                    let empty = matches!(self.nodes.get(sub as usize), Some(Some(n)) if n.empty);
                    (node.sub_name(i as usize), !empty)
                }
            }
        };
        items.sort_unstable_by(|a, b| {
            let (a, a_dir) = key(a);
            let (b, b_dir) = key(b);
            name_order(a, a_dir, b, b_dir)
        });
        items
    }

    /// Gives each encoded entry, in manifest order, to `sink`, and returns the tree's counts.
    /// Stops at the sink's first error.
    pub fn write<E>(&self, mut sink: impl FnMut(&[u8]) -> Result<(), E>) -> Result<Counts, E> {
        let mut counts = Counts::default();
        let mut path: Vec<u8> = Vec::new();
        let mut entry: Vec<u8> = Vec::new();
        let mut stack: Vec<Frame> = Vec::new();
        // The root is never an entry, nor counted among the directories.
        if let Some(Some(root)) = self.nodes.first() {
            stack.push(Frame {
                slot: 0,
                items: self.items(0, root),
                next: 0,
                path_len: 0,
                counted: true,
            });
        }
        // Counts the directories on the stack that something was just written beneath.
        let count_dirs = |stack: &mut [Frame], counts: &mut Counts| {
            for f in stack.iter_mut().rev() {
                if f.counted {
                    break;
                }
                f.counted = true;
                counts.dirs += 1;
            }
        };
        while let Some(top) = stack.last_mut() {
            let Some(&item) = top.items.get(top.next) else {
                stack.pop();
                continue;
            };
            top.next += 1;
            let (slot, path_len) = (top.slot, top.path_len);
            let Some(Some(node)) = self.nodes.get(slot as usize) else {
                continue;
            };
            path.truncate(path_len);
            if path_len > 0 {
                path.push(b'/');
            }
            entry.clear();
            match item {
                Item::Leaf(p, l) => {
                    let piece = &self.pieces[p as usize];
                    let leaf = &piece.leaves[l as usize];
                    path.extend_from_slice(piece.name(leaf));
                    match leaf.kind {
                        Kind::Symlink => {
                            encode_symlink(&mut entry, &path, piece.target(leaf));
                            counts.symlinks += 1;
                        }
                        kind => {
                            let exec = kind == Kind::Executable;
                            encode_blob(
                                &mut entry,
                                &path,
                                exec,
                                leaf.size,
                                &Hash::from_bytes(leaf.hash),
                            );
                            counts.files += 1;
                            counts.bytes += leaf.size;
                        }
                    }
                    sink(&entry)?;
                    count_dirs(&mut stack, &mut counts);
                }
                Item::Sub(i) => {
                    let (_, sub) = node.subs[i as usize];
                    let Some(Some(child)) = self.nodes.get(sub as usize) else {
                        // Not visited (the store itself): nothing of it is recorded.
                        continue;
                    };
                    path.extend_from_slice(node.sub_name(i as usize));
                    if child.empty {
                        encode_dir(&mut entry, &path);
                        sink(&entry)?;
                        counts.dirs += 1;
                        count_dirs(&mut stack, &mut counts);
                    } else {
                        stack.push(Frame {
                            slot: sub,
                            items: self.items(sub, child),
                            next: 0,
                            path_len: path.len(),
                            counted: false,
                        });
                    }
                }
            }
        }
        Ok(counts)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::{Entry, Manifest};
    use cowtree_testutil::XorShift;

    /// A random tree as the walk would find it (each directory's leaves split into pieces,
    /// the pieces and nodes in shuffled order), and the same tree as manifest entries.
    fn random_tree(rng: &mut XorShift) -> (Found, Vec<Entry>) {
        // Bytes on both sides of `/` (0x2f), which is where name order and path order part.
        const ALPHABET: &[u8] = b"-.0a~\xc3";
        let mut nodes: Vec<(u32, Node)> = Vec::new();
        let mut pieces: Vec<Piece> = Vec::new();
        let mut entries: Vec<Entry> = Vec::new();
        // (slot, path, depth)
        let mut todo: Vec<(u32, Vec<u8>, u32)> = vec![(0, Vec::new(), 0)];
        let mut slots = 1u32;
        while let Some((slot, path, depth)) = todo.pop() {
            let n = if depth >= 4 { 0 } else { rng.below(8) };
            if n == 0 && slot != 0 {
                nodes.push((slot, Node::empty()));
                entries.push(Entry::dir(path));
                continue;
            }
            let mut names: Vec<Vec<u8>> = Vec::new();
            while (names.len() as u64) < n {
                let len = 1 + rng.below(3) as usize;
                let name: Vec<u8> = (0..len)
                    .map(|_| ALPHABET[rng.below(ALPHABET.len() as u64) as usize])
                    .collect();
                if name != b"." && name != b".." && !names.contains(&name) {
                    names.push(name);
                }
            }
            let mut node = Node::default();
            let mut dir_pieces = vec![Piece::new(slot, 0, 0), Piece::new(slot, 0, 0)];
            for name in names {
                let child = if path.is_empty() {
                    name.clone()
                } else {
                    [&path[..], b"/", &name].concat()
                };
                let piece = &mut dir_pieces[rng.below(2) as usize];
                match rng.below(4) {
                    0 => {
                        node.sub(&name, slots).unwrap();
                        todo.push((slots, child, depth + 1));
                        slots += 1;
                    }
                    1 => {
                        let target = b"../t".repeat(1 + rng.below(3) as usize);
                        piece.symlink(&name, &target).unwrap();
                        entries.push(Entry::symlink(child, target));
                    }
                    k => {
                        let size = rng.below(1 << 20);
                        let hash = Hash::of(&child);
                        piece.file(&name, k == 3, size, &hash).unwrap();
                        entries.push(Entry::blob(child, k == 3, size, hash));
                    }
                }
            }
            nodes.push((slot, node));
            pieces.extend(dir_pieces);
        }
        // The workers' order is any order.
        for i in (1..pieces.len()).rev() {
            pieces.swap(i, rng.below(i as u64 + 1) as usize);
        }
        for i in (1..nodes.len()).rev() {
            nodes.swap(i, rng.below(i as u64 + 1) as usize);
        }
        (Found::new(nodes, pieces, slots), entries)
    }

    #[test]
    fn written_entries_are_the_manifest_of_the_tree_byte_for_byte() {
        let mut rng = XorShift::from_clock("found");
        for round in 0..300 {
            let (found, entries) = random_tree(&mut rng);
            let manifest = Manifest::new(entries).expect("a valid tree");
            let mut bytes = Vec::new();
            crate::manifest::encode_header(&mut bytes, found.entries());
            let counts = found
                .write(|e| {
                    bytes.extend_from_slice(e);
                    Ok::<_, ()>(())
                })
                .unwrap();
            assert_eq!(
                found.entries(),
                manifest.entries().len() as u64,
                "round {round}"
            );
            assert!(
                bytes == manifest.encode(),
                "round {round}: {:?}",
                Manifest::decode(&bytes).map(|m| m
                    .entries()
                    .iter()
                    .map(|e| crate::manifest::show(&e.path))
                    .collect::<Vec<_>>())
            );
            assert_eq!(counts, Counts::of(&manifest), "round {round}");
        }
    }

    #[test]
    fn a_directory_not_visited_is_left_out_with_everything_beneath_it() {
        // The root holds `a` (a file), `s` (the store: given a slot, never visited) and `t`,
        // which holds only `t/x`.
        let mut root = Node::default();
        root.sub(b"s", 1).unwrap();
        root.sub(b"t", 2).unwrap();
        let mut t = Node::default();
        t.sub(b"x", 3).unwrap();
        let mut files = Piece::new(0, 1, 1);
        files.file(b"a", false, 1, &Hash::of(b"a")).unwrap();
        let found = Found::new(vec![(0, root), (2, t), (3, Node::empty())], vec![files], 4);
        assert_eq!(found.entries(), 2);
        let mut paths = Vec::new();
        let counts = found
            .write(|e| {
                paths.push(
                    crate::manifest::EntryRef::decode_one(e)
                        .unwrap()
                        .path
                        .to_vec(),
                );
                Ok::<_, ()>(())
            })
            .unwrap();
        assert_eq!(paths, [b"a".to_vec(), b"t/x".to_vec()]);
        assert_eq!((counts.files, counts.dirs, counts.bytes), (1, 2, 1));
    }

    #[test]
    fn a_sink_error_stops_the_writing() {
        let mut root = Node::default();
        root.sub(b"d", 1).unwrap();
        let found = Found::new(vec![(0, root), (1, Node::empty())], Vec::new(), 2);
        let mut calls = 0;
        let r = found.write(|_| {
            calls += 1;
            Err("full")
        });
        assert_eq!((r.unwrap_err(), calls), ("full", 1));
    }

    #[test]
    fn a_name_too_long_for_a_leaf_is_refused_not_cut() {
        let mut p = Piece::new(0, 0, 0);
        assert!(
            p.file(&vec![b'a'; 70_000], false, 0, &Hash::of(b""))
                .is_err()
        );
        assert!(p.is_empty());
    }
}
