//! A claimed spare of another commit moved to the target, as `git checkout` moves a worktree
//! between two commits: the entries both commits hold alike are kept (with the spare's stat
//! data, proven by the claim), the others removed and written, only those.
//!
//! Written entries are made by the per-file way's own builder ([`crate::build`]) on a target
//! of just those entries: reflinked from SRC where SRC's index proves them, else written from
//! objects through git's checkout filters. A kept entry's bytes are what git writes for the
//! target because the blob and mode are the same and nothing else that decides its conversion
//! differs: the fingerprint (configuration, attribute files outside the tree) is the
//! repository's own, and a spare is not moved where a `.gitattributes` file or a submodule
//! differs between the two commits.

use std::collections::BTreeSet;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use cowtree_fs::dir::Dir;
use gix::index::entry::{Flags, Mode, Stage};

use crate::build;
use crate::error::{Error, Result};
use crate::way::{Input, Made, Prepared};

/// What moving the spare takes: the target (with SRC and the filters, [`Prepared`]), and for
/// each target entry, the spare's entry it keeps.
pub(super) struct Plan {
    prep: Prepared,
    /// For each target entry, the index of the spare's entry kept for it.
    kept: Vec<Option<usize>>,
    /// The spare's entries to remove (not kept).
    remove: Vec<usize>,
}

/// Compares the spare's index with the target. `Err(why)`: the spare cannot be moved (a
/// `.gitattributes` or a submodule differs, a sparse entry).
pub(super) fn plan(
    input: &Input<'_>,
    spare: &gix::index::File,
) -> Result<std::result::Result<Plan, String>> {
    let prep = Prepared::new(input)?;
    let (t, s) = (&prep.target, spare);
    let (tb, sb) = (t.path_backing(), s.path_backing());
    let (te, se) = (t.entries(), s.entries());
    let mut kept = vec![None; te.len()];
    let mut in_target = vec![false; se.len()];
    let (mut i, mut j) = (0, 0);
    while i < te.len() && j < se.len() {
        match te[i].path_in(tb).cmp(se[j].path_in(sb)) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => {
                if te[i].id == se[j].id
                    && te[i].mode == se[j].mode
                    && te[i].stage() == Stage::Unconflicted
                    && se[j].stage() == Stage::Unconflicted
                {
                    kept[i] = Some(j);
                    in_target[j] = true;
                }
                i += 1;
                j += 1;
            }
        }
    }
    let changed = te
        .iter()
        .zip(&kept)
        .filter(|(_, k)| k.is_none())
        .map(|(e, _)| (e, e.path_in(tb)))
        .chain(
            se.iter()
                .zip(&in_target)
                .filter(|(_, k)| !**k)
                .map(|(e, _)| (e, e.path_in(sb))),
        );
    for (e, path) in changed {
        if e.mode == Mode::COMMIT {
            return Ok(Err(format!("the submodule {path} differs from the target")));
        }
        if path == ".gitattributes" || path.ends_with(b"/.gitattributes") {
            return Ok(Err(format!("{path} differs from the target's")));
        }
        if e.flags.contains(Flags::SKIP_WORKTREE) {
            return Ok(Err(format!("{path} is outside a sparse checkout")));
        }
    }
    let remove = (0..se.len()).filter(|j| !in_target[*j]).collect();
    Ok(Ok(Plan { prep, kept, remove }))
}

/// Every directory that holds an entry of `state` (the top excluded).
fn dirs_of(state: &gix::index::State) -> BTreeSet<&[u8]> {
    let backing = state.path_backing();
    let mut out = BTreeSet::new();
    for e in state.entries() {
        let p: &[u8] = e.path_in(backing);
        let mut end = p.len();
        while let Some(slash) = p[..end].iter().rposition(|b| *b == b'/') {
            if !out.insert(&p[..slash]) {
                break;
            }
            end = slash;
        }
    }
    out
}

fn split(p: &[u8]) -> (&[u8], &OsStr) {
    match p.iter().rposition(|b| *b == b'/') {
        Some(i) => (&p[..i], OsStr::from_bytes(&p[i + 1..])),
        None => (b"", OsStr::from_bytes(p)),
    }
}

/// The directory `rel` of the tree `root` (the top for the empty path), never through a
/// symlink.
fn open_in(root: &Dir, rel: &[u8]) -> std::io::Result<Dir> {
    if rel.is_empty() {
        root.try_clone()
    } else {
        root.open_dir_deep(Path::new(OsStr::from_bytes(rel)))
    }
}

/// Moves the spare in `staging` (its index `spare`) to the target as [`plan`] says; `made`
/// gets DST's index and the counts.
pub(super) fn apply(
    input: &Input<'_>,
    staging: &Dir,
    spare: &gix::index::File,
    plan: Plan,
    made: &mut Made,
) -> Result<()> {
    let Plan { prep, kept, remove } = plan;
    let at = |rel: &[u8]| input.staging_path.join(OsStr::from_bytes(rel));
    let sb = spare.path_backing();
    let se = spare.entries();
    // The spare's entries the target does not keep, then its directories the target lacks,
    // deepest first (a directory sorts after its parent).
    for &j in &remove {
        let path: &[u8] = se[j].path_in(sb);
        let (parent, name) = split(path);
        open_in(staging, parent)
            .and_then(|d| d.remove_file(name))
            .map_err(Error::io("remove", at(path)))?;
    }
    let spare_dirs = dirs_of(spare);
    let target_dirs = dirs_of(&prep.target);
    let gone: Vec<&&[u8]> = spare_dirs.difference(&target_dirs).collect();
    for d in gone.into_iter().rev() {
        let (parent, name) = split(d);
        open_in(staging, parent)
            .and_then(|p| p.remove_dir(name))
            .map_err(Error::io("remove", at(d)))?;
    }
    // The target's entries not kept, written by the per-file builder into the directories
    // the target has and the spare had not.
    let mut write = prep.target.clone();
    write.remove_entries(|i, _, _| kept[i].is_some());
    for d in target_dirs.difference(&spare_dirs) {
        let (parent, name) = split(d);
        open_in(staging, parent)
            .and_then(|p| p.create_dir(name, 0o777))
            .map_err(Error::io("create directory", at(d)))?;
    }
    let fallback = build::Fallback::default();
    let results = build::build(
        &build::BuildInput {
            repo: &prep.sync_repo,
            src_root: prep.src_root.as_deref(),
            src_index: &prep.src_index,
            evidence: prep.evidence,
            sizes: &prep.sizes,
            target: &write,
            staging,
            staging_path: input.staging_path,
            with_changes: false,
            strict: input.opts.strict,
            umask: input.umask,
            filters: &prep.filters,
        },
        &fallback,
    )?;
    let mut target = prep.target.clone();
    let mut written = results.iter();
    for (e, k) in target.entries_mut().iter_mut().zip(&kept) {
        if let Some(j) = k {
            e.stat = se[*j].stat;
            made.counts.kept += 1;
            continue;
        }
        let Some(r) = written.next() else { break };
        made.count_built(r);
        e.stat = r.stat.unwrap_or_default();
    }
    made.counts.removed += remove.len() as u64;
    made.counts.entries = target
        .entries()
        .iter()
        .filter(|e| e.mode != Mode::COMMIT)
        .count() as u64;
    if made.fallback.is_none() {
        made.fallback = fallback.first.into_inner().unwrap_or_default();
    }
    made.src = prep.src_root.clone();
    prep.finish_into(input, target, made)?;
    Ok(())
}
