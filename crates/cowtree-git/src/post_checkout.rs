//! git's `post-checkout` hook, run in the new worktree as `git worktree add` runs it.

use std::path::Path;

use gix::ObjectId;

use crate::branch;

/// Runs git's `post-checkout` hook in DST as `git worktree add` does (`0{40} COMMIT 1`; with
/// `from_head`, as the `git checkout` of `--sparse`'s three commands does, `COMMIT COMMIT 1`),
/// when the repository has one. `Some(status)` when it failed.
pub(crate) fn run_post_checkout(
    repo: &gix::Repository,
    dst: &Path,
    commit: ObjectId,
    from_head: bool,
) -> Option<i32> {
    let hooks = match repo.config_snapshot().trusted_path("core.hooksPath") {
        Ok(Some(p)) => {
            if p.is_absolute() {
                p
            } else {
                dst.join(p)
            }
        }
        _ => repo.common_dir().join("hooks"),
    };
    let hook = hooks.join("post-checkout");
    #[cfg(unix)]
    let executable = std::fs::metadata(&hook)
        .is_ok_and(|m| std::os::unix::fs::PermissionsExt::mode(&m.permissions()) & 0o111 != 0);
    // Windows has no execute bit: a hook file is there, and `git hook run` decides how to run
    // it, as Git for Windows does.
    #[cfg(windows)]
    let executable = std::fs::metadata(&hook).is_ok_and(|m| m.is_file());
    if !executable {
        return None;
    }
    let null = if from_head {
        commit.to_string()
    } else {
        ObjectId::null(commit.kind()).to_string()
    };
    // As git runs hooks: their output goes to stderr (stdout may be a program's to read).
    let stdout = cowtree_fs::sys::AsFd::as_fd(&std::io::stderr())
        .try_clone_to_owned()
        .map(std::process::Stdio::from)
        .unwrap_or_else(|_| std::process::Stdio::null());
    let status = branch::git(dst)
        .args(["hook", "run", "--ignore-missing", "post-checkout", "--"])
        .args([null.as_str(), &commit.to_string(), "1"])
        .stdout(stdout)
        .status();
    match status {
        Ok(s) if s.success() => None,
        Ok(s) => Some(s.code().unwrap_or(128)),
        Err(_) => Some(127),
    }
}
