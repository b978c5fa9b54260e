//! The files of the new worktree's registration that the run writes once its tree is made:
//! DST's index, `ORIG_HEAD` and `logs/HEAD` as `git worktree add` leaves them, and with
//! `extensions.worktreeConfig` the current worktree's `config.worktree`.

use std::path::Path;

use crate::error::{Error, Result};
use crate::options::HeadReport;
use crate::{branch, index_file, register, resolve};

/// Writes `target` as DST's index in the registration, at once. An entry whose file was
/// written in the same second as the index file is racy for git, as after git's own checkout:
/// the first `git status` reads those few files, and trusts the others. Returns how many
/// entries git trusts without reading the file (stat data recorded, not racy by git's rule in
/// whole seconds).
pub(crate) fn write_index(
    reg: &register::Registration,
    target: &gix::index::File,
    tree: Option<&(gix::index::extension::Tree, bool)>,
) -> Result<u64> {
    let (secs, _) = reg.write_index(|w| {
        if let Some((tree, sparse)) = tree {
            return index_file::write_with(target, Some(tree), *sparse, w);
        }
        if !index_file::supported(target) {
            return target
                .write_to(
                    w,
                    gix::index::write::Options {
                        extensions: gix::index::write::Extensions::Given {
                            tree_cache: true,
                            end_of_index_entry: false,
                        },
                        ..Default::default()
                    },
                )
                .map(|_| ())
                .map_err(std::io::Error::other);
        }
        index_file::write_with(target, target.tree(), target.is_sparse(), w)
    })?;
    Ok(target
        .entries()
        .iter()
        .filter(|e| e.stat != Default::default() && i64::from(e.stat.mtime.secs) < secs)
        .count() as u64)
}

/// Writes `encoded` as DST's index in the registration, its trailer computed again; as
/// [`write_index`] does, returns how many entries git trusts without reading the file.
pub(crate) fn write_encoded(
    reg: &register::Registration,
    encoded: &index_file::Located,
) -> Result<u64> {
    let (secs, _) = reg.write_index(|w| encoded.write_to(w))?;
    Ok(encoded.trusted_before(secs))
}

/// Writes what `git worktree add` leaves in the registration besides HEAD and the index:
/// `ORIG_HEAD` (its `git reset --hard` writes it) and `logs/HEAD` ([`register::head_log`]),
/// signed with the committer identity git would use.
pub(crate) fn write_head_logs(
    repo: &gix::Repository,
    reg: &register::Registration,
    plan: &resolve::Plan,
    checkout: bool,
    ident: Ident,
) -> Result<()> {
    let Some(commit) = plan.commit else {
        return Ok(());
    };
    if checkout {
        reg.write("ORIG_HEAD", format!("{commit}\n").as_bytes())?;
    }
    let config = repo.config_snapshot();
    let log = match config.string("core.logAllRefUpdates") {
        None => register::LogRefs::Unset,
        Some(v) if v.eq_ignore_ascii_case(b"always") => register::LogRefs::Yes,
        Some(_) => match config.boolean("core.logAllRefUpdates") {
            Some(false) => register::LogRefs::Never,
            _ => register::LogRefs::Yes,
        },
    };
    let bare = config.boolean("core.bare").unwrap_or(false);
    let on_branch = matches!(plan.head, HeadReport::Branch { .. });
    let lines = register::head_log(Some(commit), on_branch, checkout, log, bare);
    if lines.is_empty() {
        return Ok(());
    }
    match ident.get(repo)? {
        Some(ident) => reg.write_head_log(&lines, &ident),
        None => Ok(()),
    }
}

/// The committer identity a run signs `logs/HEAD` with ([`write_head_logs`]): the
/// configuration's, or where it has none git's guess ([`ident_of_var_list`]), asked of
/// `git var -l` when the run starts and read when the log is written, so that git's start-up
/// (a few milliseconds) overlaps the making of the tree.
pub(crate) enum Ident {
    /// The configuration's, read when asked (as `git commit` reads it: the time is then's).
    Configured,
    /// `git var -l`, running, its output piped, in this directory.
    Asking(std::process::Child, std::path::PathBuf),
}

impl Ident {
    /// [`Ident::Configured`] where `repo`'s configuration (or environment) names a committer,
    /// else `git var -l` started in `src_root`.
    pub(crate) fn start(repo: &gix::Repository, src_root: &Path) -> Result<Ident> {
        if configured(repo).is_some() {
            return Ok(Ident::Configured);
        }
        let child = branch::git(src_root)
            .args(["var", "-l"])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .map_err(Error::io("run git var -l in", src_root))?;
        Ok(Ident::Asking(child, src_root.to_owned()))
    }

    /// The identity (`None`: git gives none).
    fn get(self, repo: &gix::Repository) -> Result<Option<Vec<u8>>> {
        match self {
            Ident::Configured => Ok(configured(repo)),
            Ident::Asking(child, dir) => {
                let out = child
                    .wait_with_output()
                    .map_err(Error::io("run git var -l in", &dir))?;
                Ok(out
                    .status
                    .success()
                    .then(|| ident_of_var_list(&out.stdout))
                    .flatten())
            }
        }
    }
}

/// The committer `repo`'s configuration or environment names, with the time now, as a reflog
/// line has it.
fn configured(repo: &gix::Repository) -> Option<Vec<u8>> {
    let sig = repo.committer()?.ok()?;
    let time = sig.time().ok()?;
    let mut v = Vec::new();
    v.extend_from_slice(sig.name);
    v.extend_from_slice(b" <");
    v.extend_from_slice(sig.email);
    v.extend_from_slice(format!("> {time}").as_bytes());
    Some(v)
}

/// The committer identity git signs a reflog line with where the configuration gives none:
/// the user's name and `user@host` as git guesses them (`root <root@vm.(none)>`), which git
/// writes into reflogs without a word (`git_committer_info(0)`). `git var GIT_COMMITTER_IDENT`
/// refuses such a guessed address ("unable to auto-detect email address"); `git var -l` lists
/// the same variable without that check, after the configuration, so the value is that of the
/// last `GIT_COMMITTER_IDENT=` line of its output.
fn ident_of_var_list(listed: &[u8]) -> Option<Vec<u8>> {
    const KEY: &[u8] = b"GIT_COMMITTER_IDENT=";
    listed
        .split(|b| *b == b'\n')
        .filter_map(|line| line.strip_prefix(KEY))
        .next_back()
        .filter(|v| !v.is_empty())
        .map(<[u8]>::to_vec)
}

/// What `git sparse-checkout set --cone` does to the configuration for the new worktree
/// (`--sparse`): `extensions.worktreeConfig` turned on in the repository (git's
/// `init_worktree_config`, which moves a `core.bare = true` of the common configuration to the
/// main worktree's), then `core.sparseCheckout` and `core.sparseCheckoutCone` true in the
/// new worktree's `config.worktree`. Written by `git config`, as git writes them, but for a
/// `config.worktree` that does not exist yet, whose whole text is known.
pub(crate) fn set_sparse_config(
    common: &Path,
    facts: &crate::facts::Facts,
    reg: &register::Registration,
) -> Result<()> {
    let git_config = |file: &Path, args: &[&str]| -> Result<()> {
        let out = branch::git(common)
            .arg("config")
            .arg("--file")
            .arg(file)
            .args(args)
            .output()
            .map_err(Error::io("run git config in", common))?;
        if out.status.success() {
            return Ok(());
        }
        Err(Error::GitFailed {
            command: format!("git config --file {} {}", file.display(), args.join(" ")),
            message: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        })
    };
    if !facts.worktree_config {
        let config = common.join("config");
        git_config(&config, &["extensions.worktreeConfig", "true"])?;
        let bare = std::process::Command::new("git")
            .arg("config")
            .arg("--file")
            .arg(&config)
            .args(["--type=bool", "core.bare"])
            .output()
            .is_ok_and(|o| o.status.success() && o.stdout.trim_ascii() == b"true");
        if bare {
            git_config(&common.join("config.worktree"), &["core.bare", "true"])?;
            git_config(&config, &["--unset", "core.bare"])?;
        }
    }
    let file = reg.path().join("config.worktree");
    if std::fs::symlink_metadata(&file).is_err() {
        return reg.write(
            "config.worktree",
            b"[core]\n\tsparseCheckout = true\n\tsparseCheckoutCone = true\n",
        );
    }
    git_config(&file, &["core.sparseCheckout", "true"])?;
    git_config(&file, &["core.sparseCheckoutCone", "true"])
}

/// With `extensions.worktreeConfig`, the current worktree's `config.worktree` copied into the
/// new registration, as `git worktree add` copies it ("the new worktree behaves the same as
/// this one"), without `core.bare = true` and `core.worktree`, which git removes from the copy.
pub(crate) fn copy_worktree_config(
    repo: &gix::Repository,
    reg: &register::Registration,
) -> Result<()> {
    let config = repo.config_snapshot();
    if config.boolean("extensions.worktreeConfig") != Some(true) {
        return Ok(());
    }
    let from = repo.git_dir().join("config.worktree");
    let bytes = match std::fs::read(&from) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(Error::io("read", &from)(e)),
    };
    reg.write("config.worktree", &bytes)?;
    let to = reg.path().join("config.worktree");
    let copied = gix::config::File::from_bytes_no_includes(
        &bytes,
        gix::config::file::Metadata::from(gix::config::Source::Worktree),
        Default::default(),
    )
    .map_err(|e| Error::Git {
        what: "read the worktree configuration",
        path: from.clone(),
        source: e.into(),
    })?;
    let bare = matches!(copied.boolean("core.bare"), Ok(Some(true)));
    let worktree = copied.string("core.worktree").is_some();
    // Rare; git's own `config --file` edits the copy as `git worktree add` does: one
    // `core.bare` whose value reads `true`, one `core.worktree`; where that fails (a value
    // spelled otherwise, several values), git says so and goes on with the copy as it is.
    for (needed, key, args) in [
        (bare, "core.bare", &["--unset", "core.bare", "true"][..]),
        (worktree, "core.worktree", &["--unset", "core.worktree"][..]),
    ] {
        if !needed {
            continue;
        }
        let out = branch::git(&reg.path())
            .arg("config")
            .arg("--file")
            .arg(&to)
            .args(args)
            .output()
            .map_err(Error::io("run git config in", reg.path()))?;
        if !out.status.success() {
            eprintln!("error: failed to unset '{key}' in '{}'", to.display());
        }
    }
    Ok(())
}

#[cfg(all(test, unix))]
mod tests {
    use super::ident_of_var_list;

    #[test]
    fn the_identity_is_the_last_committer_line_of_git_var_l() {
        // A configuration value spanning lines could start a line with the variable's name;
        // git lists the variables after the configuration.
        let listed = b"user.x=a\nGIT_COMMITTER_IDENT=fake <f@x> 1 +0000\n\
                       GIT_AUTHOR_IDENT=root <root@vm.(none)> 5 +0000\n\
                       GIT_COMMITTER_IDENT=root <root@vm.(none)> 5 +0000\nGIT_EDITOR=vi\n";
        assert_eq!(
            ident_of_var_list(listed).as_deref(),
            Some(&b"root <root@vm.(none)> 5 +0000"[..])
        );
        assert_eq!(ident_of_var_list(b"GIT_EDITOR=vi\n"), None);
        assert_eq!(ident_of_var_list(b"GIT_COMMITTER_IDENT=\n"), None);
    }
}
