//! The worktree made by `git worktree add` itself, with git's arguments for the options asked
//! for: where [`crate::facts`] says cowtree cannot make it exactly as git would (a repository
//! state it does not understand, or a step not yet built here). The result is git's own, its
//! refusals are git's own (message and exit status), and the report says in one line why.
//!
//! cowtree's own options have no git meaning; each gets a rule:
//! - `--from`, `--verify`, `--per-file`, `--subvolume`: about how cowtree takes files; none
//!   are taken here.
//! - `--strict` (no copy where a reflink is impossible): git writes every file, so it is refused
//!   with the reason, as any copy under `--strict` is.
//! - `--with-changes`: refused with the reason (git carries no uncommitted changes).
//! - `--ignored` and `.worktreeinclude`: SRC's selected ignored files are cloned into the new
//!   worktree once git has made it ([`crate::ignored`]).
//! - `--sync`: the worktree, its index and its registration are made durable afterwards.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::error::{Error, Result};
use crate::options::{AddOptions, AddReport, BranchChoice, HeadReport, Track};

/// git's arguments after `git worktree add` for `opts`, DST made absolute against `cwd`
/// (git resolves a relative one against the directory it runs in, which is SRC here).
pub fn git_args(opts: &AddOptions, cwd: &Path) -> Vec<OsString> {
    let mut a: Vec<OsString> = Vec::new();
    for _ in 0..opts.force {
        a.push("-f".into());
    }
    match &opts.branch {
        BranchChoice::Auto => {}
        BranchChoice::New(n) => a.extend(["-b".into(), n.into()]),
        BranchChoice::Reset(n) => a.extend(["-B".into(), n.into()]),
        BranchChoice::Detach => a.push("--detach".into()),
        BranchChoice::Orphan(n) => {
            a.push("--orphan".into());
            if let Some(n) = n {
                a.extend(["-b".into(), n.into()]);
            }
        }
    }
    if let Some(reason) = &opts.lock {
        a.push("--lock".into());
        // git's own text when no reason is given: not passed, so that git writes it.
        if reason != "added with --lock" {
            a.push("--reason".into());
            a.push(reason.into());
        }
    }
    match opts.track {
        Track::Default => {}
        Track::Track => a.push("--track".into()),
        Track::NoTrack => a.push("--no-track".into()),
    }
    match opts.guess_remote {
        None => {}
        Some(true) => a.push("--guess-remote".into()),
        Some(false) => a.push("--no-guess-remote".into()),
    }
    if !opts.checkout {
        a.push("--no-checkout".into());
    }
    if opts.quiet {
        a.push("--quiet".into());
    }
    let dst = if opts.dst.is_absolute() {
        opts.dst.clone()
    } else {
        cwd.join(&opts.dst)
    };
    // DST and COMMIT-ISH after `--`: a DST starting with `-` is a path to git too.
    a.push("--".into());
    a.push(dst.into());
    if let Some(c) = &opts.commit {
        a.push(c.into());
    }
    a
}

/// Refuses, before git runs, the cowtree options a worktree made by git cannot honour.
fn check(opts: &AddOptions, why: &str) -> Result<()> {
    if let Some(dirs) = &opts.sparse {
        crate::sparse::cone_file(dirs).map_err(|message| Error::SparseDir {
            dir: dirs.join(" "),
            message,
        })?;
    }
    if opts.with_changes {
        return Err(Error::Handover {
            why: why.to_owned(),
            what: "--with-changes (git carries no uncommitted changes)",
        });
    }
    if opts.strict {
        return Err(Error::Handover {
            why: why.to_owned(),
            what: "--strict (git writes every file: none is reflinked)",
        });
    }
    Ok(())
}

/// Runs `git worktree add` for `opts` in SRC (`opts.src`), the current directory's DST made
/// absolute. git's standard output goes to this process's standard error (a hook's standard
/// output is its caller's), its standard error is passed on as it comes. A refusal is
/// [`Error::GitRefused`] with git's exit status and last line.
pub fn run(opts: &AddOptions, why: &str) -> Result<AddReport> {
    check(opts, why)?;
    let cwd = std::env::current_dir().map_err(Error::io("read", "the current directory"))?;
    let src = if opts.src.is_absolute() {
        opts.src.clone()
    } else {
        cwd.join(&opts.src)
    };
    // --sparse: git's three commands, the first without its checkout.
    let sparse_then = opts.sparse.as_ref().filter(|_| opts.checkout);
    let args = if sparse_then.is_some() {
        git_args(
            &AddOptions {
                checkout: false,
                ..opts.clone()
            },
            &cwd,
        )
    } else {
        git_args(opts, &cwd)
    };
    // Both of git's outputs through one pipe, in the order git wrote them, passed on to this
    // process's standard error once git has ended.
    let (mut reader, writer) = std::io::pipe().map_err(Error::io("make a pipe for", &src))?;
    let mut child = Command::new("git")
        .current_dir(&src)
        .arg("worktree")
        .arg("add")
        .args(&args)
        .stdin(Stdio::null())
        .stdout(
            writer
                .try_clone()
                .map_err(Error::io("make a pipe for", &src))?,
        )
        .stderr(writer)
        .spawn()
        .map_err(Error::io("run git worktree add in", &src))?;
    // Passed on as it comes, and kept for the message. The reader is not waited for past git's
    // end (and a moment): a process a hook left running may hold the pipe open.
    let said = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    {
        let said = std::sync::Arc::clone(&said);
        std::thread::spawn(move || {
            let mut buf = [0u8; 8192];
            while let Ok(n) = std::io::Read::read(&mut reader, &mut buf) {
                if n == 0 {
                    break;
                }
                let _ = std::io::Write::write_all(&mut std::io::stderr(), &buf[..n]);
                said.lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .extend_from_slice(&buf[..n]);
            }
            let _ = done_tx.send(());
        });
    }
    let status = child
        .wait()
        .map_err(Error::io("wait for git worktree add in", &src))?;
    let _ = done_rx.recv_timeout(std::time::Duration::from_millis(200));
    let said = said
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone();
    let out = std::process::Output {
        status,
        stdout: Vec::new(),
        stderr: said,
    };
    let dst = match args.iter().rev().nth(usize::from(opts.commit.is_some())) {
        Some(d) => PathBuf::from(d),
        None => opts.dst.clone(),
    };
    if !out.status.success() {
        let text = String::from_utf8_lossy(&out.stderr);
        let message = text
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("")
            .trim()
            .to_owned();
        let status = crate::portable::exit_status(&out.status);
        return Err(Error::GitRefused {
            status,
            message,
            why: why.to_owned(),
        });
    }
    let dst = crate::portable::canonical(&dst);
    if let Some(dirs) = sparse_then {
        for args in [
            ["sparse-checkout", "set", "--cone", "--end-of-options"]
                .iter()
                .map(|s| s.to_string())
                .chain(dirs.iter().cloned())
                .collect::<Vec<_>>(),
            vec!["checkout".to_string(), "-q".to_string()],
        ] {
            let out = crate::branch::git(&dst)
                .args(&args)
                .output()
                .map_err(Error::io("run git in", &dst))?;
            let _ = std::io::Write::write_all(&mut std::io::stderr(), &out.stdout);
            let _ = std::io::Write::write_all(&mut std::io::stderr(), &out.stderr);
            if !out.status.success() {
                let text = String::from_utf8_lossy(&out.stderr);
                return Err(Error::GitRefused {
                    status: crate::portable::exit_status(&out.status),
                    message: text.lines().last().unwrap_or("").trim().to_owned(),
                    why: why.to_owned(),
                });
            }
        }
    }
    let mut report = report(opts, &dst, why)?;
    if opts.checkout {
        match copy_ignored(opts, &src, &dst) {
            Ok(r) => report.ignored = r,
            Err(e) => report
                .notes
                .push(format!("SRC's ignored files were not copied: {e}")),
        }
    }
    if opts.sync {
        sync(&dst, &report.admin_dir)?;
    }
    Ok(report)
}

/// SRC's ignored entries that `.worktreeinclude` and `--ignored` select, cloned into the
/// worktree git made at `dst` (as the native way clones them into its staging).
fn copy_ignored(opts: &AddOptions, src: &Path, dst: &Path) -> Result<Option<crate::IgnoredReport>> {
    let wants =
        opts.ignored.all || !opts.ignored.patterns.is_empty() || opts.ignored.worktreeinclude;
    if !wants {
        return Ok(None);
    }
    let open = |p: &Path| {
        gix::open(p).map_err(|e| Error::NotAWorktree {
            path: p.to_owned(),
            source: e.into(),
        })
    };
    let src_repo = open(src)?;
    let Some(src_root) = src_repo.workdir().map(Path::to_owned) else {
        return Ok(None);
    };
    let include = if opts.ignored.worktreeinclude {
        crate::ignored::worktreeinclude(&src_root)?
    } else {
        None
    };
    let sel = crate::ignored::Selection {
        all: opts.ignored.all,
        patterns: &opts.ignored.patterns,
        include: include.as_ref(),
    };
    if !sel.takes_any() {
        return Ok(None);
    }
    let index = |r: &gix::Repository, p: &Path| {
        r.index_or_empty()
            .map(|i| (*i).clone())
            .map_err(|e| Error::Git {
                what: "read the index",
                path: p.to_owned(),
                source: e.into(),
            })
    };
    let src_index = index(&src_repo, &src_root)?;
    let dst_repo = open(dst)?;
    let target = index(&dst_repo, dst)?;
    let dir = cowtree_fs::dir::Dir::open(dst).map_err(Error::io("open", dst))?;
    crate::ignored::copy_ignored(
        &src_repo, &src_root, &src_index, &target, &dir, dst, &sel, false,
    )
    .map(Some)
}

/// `--sync`: what git made durable (the worktree's filesystem and the registration's).
fn sync(dst: &Path, admin: &Path) -> Result<()> {
    for p in [dst, admin] {
        let d = cowtree_fs::dir::Dir::open(p).map_err(Error::io("open", p))?;
        d.sync_filesystem().map_err(Error::io("sync", p))?;
    }
    Ok(())
}

/// What git made at `dst`, read back with git: the registration, HEAD.
fn report(opts: &AddOptions, dst: &Path, why: &str) -> Result<AddReport> {
    let git_out = |args: &[&str]| -> Option<String> {
        let out = crate::branch::git(dst).args(args).output().ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
    };
    let admin_dir = git_out(&["rev-parse", "--absolute-git-dir"])
        .map(PathBuf::from)
        .unwrap_or_default();
    let commit = git_out(&["rev-parse", "--verify", "-q", "HEAD"])
        .and_then(|h| gix::ObjectId::from_hex(h.as_bytes()).ok());
    let branch = git_out(&["symbolic-ref", "-q", "--short", "HEAD"]);
    let head = match (branch, commit) {
        (Some(name), Some(_)) => HeadReport::Branch {
            created: matches!(opts.branch, BranchChoice::New(_) | BranchChoice::Reset(_)),
            name,
        },
        (Some(name), None) => HeadReport::Unborn { name },
        (None, _) => HeadReport::Detached,
    };
    let locked = std::fs::read_to_string(admin_dir.join("locked")).ok();
    Ok(AddReport {
        dst: dst.to_owned(),
        src: None,
        src_is_current: false,
        admin_dir,
        commit,
        head,
        method: crate::Method::Git,
        reason: None,
        locked: locked.map(|l| l.trim_end_matches('\n').to_owned()),
        counts: Default::default(),
        submodules: Vec::new(),
        index_stat_entries: 0,
        ignored: None,
        fallback: None,
        pool: None,
        cleaned: Vec::new(),
        notes: Vec::new(),
        hook: None,
        made_by_git: Some(why.to_owned()),
    })
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    fn args(opts: &AddOptions) -> Vec<String> {
        git_args(opts, Path::new("/here"))
            .into_iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect()
    }

    #[test]
    fn git_gets_the_arguments_the_options_stand_for() {
        let mut o = AddOptions::new("/repo", "wt");
        assert_eq!(args(&o), ["--", "/here/wt"]);
        o.branch = BranchChoice::New("x".into());
        o.commit = Some("main".into());
        o.force = 2;
        o.lock = Some("because".into());
        o.track = Track::NoTrack;
        o.guess_remote = Some(true);
        o.quiet = true;
        assert_eq!(
            args(&o),
            [
                "-f",
                "-f",
                "-b",
                "x",
                "--lock",
                "--reason",
                "because",
                "--no-track",
                "--guess-remote",
                "--quiet",
                "--",
                "/here/wt",
                "main"
            ]
        );
        let mut o = AddOptions::new("/repo", "/abs/wt");
        o.branch = BranchChoice::Orphan(Some("o".into()));
        o.lock = Some("added with --lock".into());
        assert_eq!(args(&o), ["--orphan", "-b", "o", "--lock", "--", "/abs/wt"]);
        let mut o = AddOptions::new("/repo", "-odd");
        o.branch = BranchChoice::Detach;
        o.checkout = false;
        o.track = Track::Track;
        o.guess_remote = Some(false);
        assert_eq!(
            args(&o),
            [
                "--detach",
                "--track",
                "--no-guess-remote",
                "--no-checkout",
                "--",
                "/here/-odd"
            ]
        );
    }

    #[test]
    fn options_git_cannot_honour_are_refused_with_the_reason() {
        let mut o = AddOptions::new("/repo", "wt");
        o.with_changes = true;
        let e = check(&o, "reftable refs").unwrap_err().to_string();
        assert!(
            e.contains("reftable refs") && e.contains("--with-changes"),
            "{e}"
        );
        let mut o = AddOptions::new("/repo", "wt");
        o.strict = true;
        assert!(check(&o, "x").unwrap_err().to_string().contains("--strict"));
        assert!(check(&AddOptions::new("/repo", "wt"), "x").is_ok());
    }
}
