//! The cache-tree (`TREE` extension) of a target tree, and the sparse index git makes of a
//! cone-mode sparse checkout (`sparse-index.c`, `convert_to_sparse`).
//!
//! git's `worktree add` primes the cache-tree from the tree it checked out, so that the first
//! `git status` and commit need not read the trees; with `index.sparse`, the directories the
//! cone leaves out whole become one entry each (mode 040000, the directory's tree id,
//! skip-worktree), and the cache-tree is made again over the collapsed entries: a collapsed
//! directory counts one entry and has no children. Subtrees are in the tree's order, as git
//! writes them after `read-tree`.

use gix::ObjectId;
use gix::bstr::{BStr, ByteSlice};
use gix::index::entry::{Flags, Mode};
use gix::index::extension::Tree;

use crate::error::{Error, Result};

/// The cache-tree of the tree `id`: every directory's tree id and its number of non-tree
/// entries (files, symlinks, submodules), read from the object database.
pub fn of_tree(repo: &gix::Repository, id: ObjectId) -> Result<Tree> {
    node(repo, id, &[])
}

fn node(repo: &gix::Repository, id: ObjectId, name: &[u8]) -> Result<Tree> {
    let tree = repo.find_tree(id).map_err(Error::git(
        "read tree",
        std::path::PathBuf::from(id.to_string()),
    ))?;
    let decoded = tree.decode().map_err(Error::git(
        "read tree",
        std::path::PathBuf::from(id.to_string()),
    ))?;
    let mut count = 0u32;
    let mut children = Vec::new();
    for e in &decoded.entries {
        if e.mode.is_tree() {
            let child = node(repo, e.oid.to_owned(), e.filename.as_ref())?;
            count += child.num_entries.unwrap_or(0);
            children.push(child);
        } else {
            count += 1;
        }
    }
    Ok(Tree {
        name: name.into(),
        id,
        num_entries: Some(count),
        children,
    })
}

/// The subtree named `name` of `t`.
fn child<'t>(t: &'t Tree, name: &[u8]) -> Option<&'t Tree> {
    t.children.iter().find(|c| c.name.as_slice() == name)
}

/// `state`'s entries with every directory the cone leaves out whole, and whose entries are all
/// skip-worktree and unconflicted, made one sparse-directory entry (as git's checkout of a
/// sparse index makes them; `convert_to_sparse_rec`), and the cache-tree of the result. `tree` is the cache-tree of the
/// full entries ([`of_tree`]).
pub fn collapse(
    state: &gix::index::State,
    tree: &Tree,
    excluded_dir: &dyn Fn(&BStr) -> bool,
) -> (gix::index::State, Tree) {
    let mut out = gix::index::State::new(state.object_hash());
    let entries = state.entries();
    rec(
        state,
        entries,
        0,
        entries.len(),
        b"",
        tree,
        excluded_dir,
        &mut out,
    );
    let tree = recount(&out, tree);
    (out, tree)
}

#[allow(clippy::too_many_arguments)]
fn rec(
    state: &gix::index::State,
    entries: &[gix::index::Entry],
    start: usize,
    end: usize,
    dir: &[u8],
    ct: &Tree,
    excluded_dir: &dyn Fn(&BStr) -> bool,
    out: &mut gix::index::State,
) {
    let backing = state.path_backing();
    // A submodule below does not keep its directory whole: git's checkout of a sparse index
    // makes the sparse directory from the tree, whatever it holds (seen with git 2.47; its
    // later `convert_to_sparse` of a full index would keep it).
    let can_convert = !dir.is_empty()
        && excluded_dir(dir[..dir.len() - 1].as_bstr())
        && entries[start..end].iter().all(|e| {
            e.stage() == gix::index::entry::Stage::Unconflicted
                && e.flags.contains(Flags::SKIP_WORKTREE)
        });
    if can_convert {
        out.dangerously_push_entry(
            Default::default(),
            ct.id,
            Flags::SKIP_WORKTREE | Flags::EXTENDED,
            Mode::DIR,
            dir.as_bstr(),
        );
        return;
    }
    let mut i = start;
    while i < end {
        let e = &entries[i];
        let path = e.path_in(backing);
        let rest = &path[dir.len()..];
        let sub = rest
            .find_byte(b'/')
            .and_then(|slash| child(ct, &rest[..slash]).map(|c| (slash, c)));
        let Some((slash, sub)) = sub else {
            out.dangerously_push_entry(e.stat, e.id, e.flags, e.mode, path);
            i += 1;
            continue;
        };
        let span = sub.num_entries.unwrap_or(0) as usize;
        let child_dir = &path[..dir.len() + slash + 1];
        rec(
            state,
            entries,
            i,
            (i + span).min(end),
            child_dir,
            sub,
            excluded_dir,
            out,
        );
        i += span.max(1);
    }
}

/// The cache-tree of the collapsed entries: each node's count is the number of entries below
/// it in `state` (a sparse directory counts one), a collapsed directory has no children. One
/// pass over the sorted entries: those below a directory are consecutive.
fn recount(state: &gix::index::State, full: &Tree) -> Tree {
    let backing = state.path_backing();
    let paths: Vec<&BStr> = state.entries().iter().map(|e| e.path_in(backing)).collect();
    fn go(paths: &[&BStr], dir_len: usize, t: &Tree) -> Tree {
        let mut children = Vec::new();
        let mut i = 0;
        while i < paths.len() {
            let rest = &paths[i][dir_len..];
            let Some(slash) = rest.find_byte(b'/') else {
                i += 1;
                continue;
            };
            let name = &rest[..slash];
            let prefix_len = dir_len + slash + 1;
            let prefix = &paths[i][..prefix_len];
            let end = i + paths[i..]
                .iter()
                .take_while(|p| p.starts_with(prefix))
                .count();
            if let Some(c) = child(t, name) {
                children.push(go(&paths[i..end], prefix_len, c));
            }
            i = end;
        }
        Tree {
            name: t.name.clone(),
            id: t.id,
            num_entries: Some(paths.len() as u32),
            children,
        }
    }
    go(&paths, 0, full)
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    fn git(dir: &std::path::Path, args: &[&str]) -> String {
        let out = cowtree_testutil::git_cmd(dir)
            .args(args)
            .output()
            .expect("run git");
        assert!(out.status.success(), "git {args:?}: {out:?}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn flat(t: &Tree, out: &mut Vec<(String, u32, usize, ObjectId)>) {
        out.push((
            t.name.to_str_lossy().into_owned(),
            t.num_entries.unwrap_or(0),
            t.children.len(),
            t.id,
        ));
        for c in &t.children {
            flat(c, out);
        }
    }

    /// The cache-tree of a tree is the one git's index holds after `git read-tree`, in git's
    /// order.
    #[test]
    fn the_cache_tree_of_a_tree_is_gits() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let r = tmp.path();
        git(r, &["init", "-q", "-b", "main"]);
        for f in ["top", "ab/x", "c/y", "c/d/z", "c/d/e/w", "zz/q", "b/v"] {
            let p = r.join(f);
            std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
            std::fs::write(&p, f).expect("write");
        }
        git(r, &["add", "-A"]);
        git(r, &["commit", "-qm", "one"]);
        git(r, &["read-tree", "HEAD"]);
        let repo = gix::open(r).expect("open");
        let index = repo.open_index().expect("index");
        let theirs = index.tree().expect("git's cache-tree");
        let tree_id = repo.head_tree_id().expect("tree").detach();
        let ours = of_tree(&repo, tree_id).expect("ours");
        let (mut a, mut b) = (Vec::new(), Vec::new());
        flat(&ours, &mut a);
        flat(theirs, &mut b);
        assert_eq!(a, b);
    }
}
