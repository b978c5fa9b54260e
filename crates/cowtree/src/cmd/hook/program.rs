//! Which command the installed hooks run, so that they keep running *this* cowtree after
//! `install` has ended.
//!
//! `uvx cowtree ...` and `pipx run cowtree ...` run cowtree from a disposable environment in
//! their cache (uv: `~/.cache/uv/archive-v0/<hash>/bin`, deleted by `uv cache clean`; pipx:
//! `<PIPX_HOME>/.cache/<hash>/bin`, expired after 14 days) and put that directory first on
//! `PATH`. There the `cowtree` on `PATH` *is* this program, for as long as the command runs;
//! a hook that names `cowtree` bare then runs whatever `cowtree` the user's `PATH` has later:
//! none, or crates.io's other `cowtree`. So the command written is:
//! - from a disposable environment: the launcher that makes it again
//!   (`uvx --from cowtree==VERSION cowtree`, `pipx run --spec cowtree==VERSION cowtree`), or a
//!   persistent `cowtree` further on `PATH` of the same version;
//! - else `cowtree` when the one on `PATH` is this program, or this program's absolute path.
//!
//! Before it is written, a command that is not this very file is run with `--version` and must
//! print this program's version line.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::exit::CliError;

/// What this program prints for `--version`.
pub fn version_line() -> String {
    format!("cowtree {}", env!("CARGO_PKG_VERSION"))
}

/// The disposable environments cowtree can be run from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Launcher {
    /// `uvx` (`uv tool run`).
    Uvx,
    /// `pipx run`.
    PipxRun,
}

impl Launcher {
    fn name(self) -> &'static str {
        match self {
            Launcher::Uvx => "uv's",
            Launcher::PipxRun => "pipx's",
        }
    }

    fn deleted_by(self) -> &'static str {
        match self {
            Launcher::Uvx => "`uv cache clean` deletes",
            Launcher::PipxRun => "pipx deletes after 14 days",
        }
    }

    /// The words that start this version of cowtree again through the launcher.
    fn words(self) -> Vec<String> {
        let spec = format!("cowtree=={}", env!("CARGO_PKG_VERSION"));
        match self {
            Launcher::Uvx => vec!["uvx".into(), "--from".into(), spec, "cowtree".into()],
            Launcher::PipxRun => vec![
                "pipx".into(),
                "run".into(),
                "--spec".into(),
                spec,
                "cowtree".into(),
            ],
        }
    }
}

/// The command the hooks run, and why it was chosen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Program {
    /// The command's words, shell-quoted and joined (`cowtree`, `/opt/bin/cowtree`,
    /// `uvx --from cowtree==0.1.0 cowtree`).
    pub command: String,
    /// One of `path`, `absolute`, `uvx`, `pipx-run`, `persistent` (for --json).
    pub how: &'static str,
    /// Said by `install`: why this command.
    pub why: String,
}

/// The cache directories whose environments are disposable, with the launcher of each, from
/// the environment (`UV_CACHE_DIR`, `XDG_CACHE_HOME`, `PIPX_HOME`, `HOME`).
pub fn cache_roots(env: &dyn Fn(&str) -> Option<String>) -> Vec<(PathBuf, Launcher)> {
    let set = |k: &str| env(k).filter(|v| !v.is_empty()).map(PathBuf::from);
    let home = set("HOME");
    let xdg_cache = set("XDG_CACHE_HOME").or_else(|| home.as_ref().map(|h| h.join(".cache")));
    let mut out = Vec::new();
    if let Some(d) = set("UV_CACHE_DIR") {
        out.push((d, Launcher::Uvx));
    }
    if let Some(c) = &xdg_cache {
        out.push((c.join("uv"), Launcher::Uvx));
        out.push((c.join("pipx"), Launcher::PipxRun));
    }
    if let Some(d) = set("PIPX_HOME") {
        out.push((d.join(".cache"), Launcher::PipxRun));
    }
    if let Some(h) = &home {
        out.push((h.join(".local/share/pipx/.cache"), Launcher::PipxRun));
        out.push((h.join(".local/pipx/.cache"), Launcher::PipxRun));
    }
    out
}

/// The launcher whose cache holds `exe` (resolved), if any.
pub fn disposable(exe: &Path, roots: &[(PathBuf, Launcher)]) -> Option<(PathBuf, Launcher)> {
    roots.iter().find_map(|(root, l)| {
        let root = root.canonicalize().ok()?;
        exe.starts_with(&root).then_some((root, *l))
    })
}

/// Decides the hooks' command (see the module doc). Fails, saying what to do, when this
/// program runs from a disposable environment and no command that runs it later could be
/// shown to.
pub fn choose() -> Result<Program, CliError> {
    let me = std::env::current_exe()
        .ok()
        .and_then(|p| p.canonicalize().ok());
    let env = |k: &str| std::env::var(k).ok();
    let path_cowtrees: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|paths| {
            std::env::split_paths(&paths)
                .map(|d| d.join("cowtree"))
                .filter(|p| p.is_file())
                .collect()
        })
        .unwrap_or_default();
    let Some(me) = me else {
        return Ok(Program {
            command: "cowtree".into(),
            how: "path",
            why: "this program's own path could not be read: the `cowtree` on PATH".into(),
        });
    };
    let roots = cache_roots(&env);
    let Some((cache, launcher)) = disposable(&me, &roots) else {
        let first = path_cowtrees.first().and_then(|p| p.canonicalize().ok());
        return Ok(if first.as_deref() == Some(me.as_path()) {
            Program {
                command: "cowtree".into(),
                how: "path",
                why: "the `cowtree` on PATH is this program".into(),
            }
        } else {
            Program {
                command: super::shell_quote(&me.to_string_lossy()),
                how: "absolute",
                why: match first {
                    Some(p) => format!(
                        "the `cowtree` on PATH ({}) is another program than this one",
                        p.display()
                    ),
                    None => "no `cowtree` is on PATH".into(),
                },
            }
        });
    };
    let place = format!(
        "this cowtree runs from {} disposable environment in {}, which {}",
        launcher.name(),
        cache.display(),
        launcher.deleted_by()
    );
    let words = launcher.words();
    let mut tried = Vec::new();
    match runs_this_version(&words) {
        Ok(()) => {
            return Ok(Program {
                command: words
                    .iter()
                    .enumerate()
                    // After the first word, `=` is plain text to a shell (no assignment).
                    .map(|(i, w)| {
                        if i > 0
                            && w.bytes()
                                .all(|b| b.is_ascii_alphanumeric() || b"/._-+=".contains(&b))
                        {
                            w.clone()
                        } else {
                            super::shell_quote(w)
                        }
                    })
                    .collect::<Vec<_>>()
                    .join(" "),
                how: match launcher {
                    Launcher::Uvx => "uvx",
                    Launcher::PipxRun => "pipx-run",
                },
                why: format!(
                    "{place}: the command that makes it again, checked to print `{}`",
                    version_line()
                ),
            });
        }
        Err(e) => tried.push(format!("`{} --version` {e}", words.join(" "))),
    }
    // A persistent install of the same version further on PATH (`uv tool install`, `pipx
    // install`, `cargo install`).
    for p in &path_cowtrees {
        let Ok(real) = p.canonicalize() else { continue };
        if disposable(&real, &roots).is_some() || real == me {
            continue;
        }
        let words = vec![real.to_string_lossy().into_owned()];
        match runs_this_version(&words) {
            Ok(()) => {
                return Ok(Program {
                    command: super::shell_quote(&words[0]),
                    how: "persistent",
                    why: format!(
                        "{place}: {} is a lasting install of the same version",
                        real.display()
                    ),
                });
            }
            Err(e) => tried.push(format!("{} {e}", real.display())),
        }
    }
    Err(CliError::new(format!(
        "{place}, and no command that runs this cowtree later was found ({}); install it to \
         last (`uv tool install cowtree` or `pipx install cowtree`, from the wheel you ran) and run \
         `cowtree hook claude-code install` with that one",
        tried.join("; ")
    ))
    .path(&me))
}

/// Runs `words` with `--version` (stdin closed, at most two minutes: a launcher may download)
/// and checks it prints this program's version line.
fn runs_this_version(words: &[String]) -> Result<(), String> {
    let (prog, args) = words.split_first().ok_or("is empty")?;
    let mut child = Command::new(prog)
        .args(args)
        .arg("--version")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("could not run: {e}"))?;
    let until = std::time::Instant::now() + std::time::Duration::from_secs(120);
    loop {
        match child.try_wait() {
            Ok(Some(_)) => break,
            Ok(None) if std::time::Instant::now() < until => {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err("did not end within two minutes".into());
            }
            Err(e) => return Err(format!("could not be waited for: {e}")),
        }
    }
    let out = child
        .wait_with_output()
        .map_err(|e| format!("could not be read: {e}"))?;
    let said = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    if out.status.success() && said == version_line() {
        Ok(())
    } else if out.status.success() {
        Err(format!("printed `{said}`, not `{}`", version_line()))
    } else {
        let err = String::from_utf8_lossy(&out.stderr);
        let last = err
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("");
        Err(format!("failed ({}): {}", out.status, last.trim()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env_of<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |k| {
            pairs
                .iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| (*v).to_owned())
        }
    }

    #[test]
    fn the_caches_of_uv_and_pipx_are_found_where_each_puts_them() {
        let roots = cache_roots(&env_of(&[("HOME", "/h")]));
        assert!(roots.contains(&(PathBuf::from("/h/.cache/uv"), Launcher::Uvx)));
        assert!(roots.contains(&(PathBuf::from("/h/.cache/pipx"), Launcher::PipxRun)));
        assert!(roots.contains(&(
            PathBuf::from("/h/.local/share/pipx/.cache"),
            Launcher::PipxRun
        )));
        let roots = cache_roots(&env_of(&[
            ("HOME", "/h"),
            ("UV_CACHE_DIR", "/c/uv"),
            ("XDG_CACHE_HOME", "/x"),
            ("PIPX_HOME", "/p"),
        ]));
        assert_eq!(roots[0], (PathBuf::from("/c/uv"), Launcher::Uvx));
        assert!(roots.contains(&(PathBuf::from("/x/uv"), Launcher::Uvx)));
        assert!(roots.contains(&(PathBuf::from("/p/.cache"), Launcher::PipxRun)));
        assert!(cache_roots(&env_of(&[])).is_empty());
    }

    #[test]
    fn a_program_inside_a_cache_is_disposable_and_one_beside_it_is_not() {
        let tmp = tempfile::tempdir().unwrap();
        let uv = tmp.path().join("cache/uv");
        let bin = uv.join("archive-v0/abc/bin");
        std::fs::create_dir_all(&bin).unwrap();
        let other = tmp.path().join("cache/uvx-not");
        std::fs::create_dir_all(&other).unwrap();
        let roots = vec![(uv.clone(), Launcher::Uvx)];
        let exe = bin.canonicalize().unwrap().join("cowtree");
        assert_eq!(
            disposable(&exe, &roots),
            Some((uv.canonicalize().unwrap(), Launcher::Uvx))
        );
        assert_eq!(
            disposable(&other.canonicalize().unwrap().join("cowtree"), &roots),
            None
        );
    }

    #[test]
    fn launchers_name_this_version() {
        let v = env!("CARGO_PKG_VERSION");
        assert_eq!(
            Launcher::Uvx.words().join(" "),
            format!("uvx --from cowtree=={v} cowtree")
        );
        assert_eq!(
            Launcher::PipxRun.words().join(" "),
            format!("pipx run --spec cowtree=={v} cowtree")
        );
    }
}
