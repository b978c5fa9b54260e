//! Shell completion: the scripts `cowtree completions SHELL` prints, and the values they
//! complete by asking the binary at each TAB.
//!
//! The scripts are clap_complete's dynamic ones (`CompleteEnv`): a small function per shell
//! that runs `COWTREE_COMPLETE=SHELL cowtree -- WORDS...` and shows what it prints. [`run_if_asked`]
//! answers that call before anything else runs. So the options and commands completed are
//! always the running binary's own, and values that only exist at run time are completed
//! too: snapshot names (from the store the command would use: `--store` on the line, else
//! `COWTREE_STORE`, else the store of the current directory), remote names, the known stores,
//! and git refs for `cowtree git worktree add`. Paths complete as paths.
//!
//! The values are attached here, from outside the commands' definitions, by command path and
//! argument id ([`VALUES`]); a test checks that every row names an argument that exists.

use std::ffi::OsString;
use std::path::PathBuf;

use clap_complete::engine::{ArgValueCandidates, CompletionCandidate};
use clap_complete::env::{Bash, Elvish, EnvCompleter, Fish, Powershell, Zsh};

/// The variable that turns a run of the binary into a completion request.
pub const VAR: &str = "COWTREE_COMPLETE";

/// What an argument completes to.
#[derive(Debug, Clone, Copy)]
enum Values {
    /// Names of snapshots in the store.
    Snapshots,
    /// Names of remotes.
    Remotes,
    /// The known stores.
    Stores,
    /// Branches, tags and remote-tracking branches of the repository here.
    GitRefs,
}

/// (command path, argument id, values).
const VALUES: &[(&[&str], &str, Values)] = &[
    (&["checkout"], "snapshot", Values::Snapshots),
    (&["checkout"], "remote", Values::Remotes),
    (&["switch"], "snapshot", Values::Snapshots),
    (&["show"], "snapshot", Values::Snapshots),
    (&["rm"], "snapshot", Values::Snapshots),
    (&["tag"], "snapshot", Values::Snapshots),
    (&["push"], "snapshots", Values::Snapshots),
    (&["push"], "remote", Values::Remotes),
    (&["pull"], "remote", Values::Remotes),
    (&["ls"], "remote", Values::Remotes),
    (&["remote", "rm"], "name", Values::Remotes),
    (&["stores", "rm"], "paths", Values::Stores),
    (&["git", "worktree", "add"], "commit", Values::GitRefs),
    (&["git", "worktree", "add"], "reset_branch", Values::GitRefs),
];

/// `cmd` with the run-time values of [`VALUES`] attached to its arguments (rows whose
/// argument does not exist are skipped; see the test).
pub fn attach(mut cmd: clap::Command) -> clap::Command {
    for (path, id, values) in VALUES {
        cmd = attach_one(cmd, path, id, *values);
    }
    cmd
}

fn attach_one(cmd: clap::Command, path: &[&str], id: &str, values: Values) -> clap::Command {
    match path.split_first() {
        Some((first, rest)) => {
            if cmd.find_subcommand(first).is_none() {
                return cmd;
            }
            cmd.mut_subcommand(first, |sub| attach_one(sub, rest, id, values))
        }
        None => {
            if !cmd.get_arguments().any(|a| a.get_id() == id) {
                return cmd;
            }
            let candidates = match values {
                Values::Snapshots => ArgValueCandidates::new(snapshots),
                Values::Remotes => ArgValueCandidates::new(remotes),
                Values::Stores => ArgValueCandidates::new(stores),
                Values::GitRefs => ArgValueCandidates::new(git_refs),
            };
            // In place: `mut_arg` moves the argument to the end, which renumbers positionals.
            let mut candidates = Some(candidates);
            cmd.mut_args(|a| match candidates.take_if(|_| a.get_id() == id) {
                Some(c) => a.add(c),
                None => a,
            })
        }
    }
}

/// Answers a completion request (`COWTREE_COMPLETE=SHELL cowtree -- WORDS...`) and exits;
/// returns at once on any other run.
pub fn run_if_asked(factory: fn() -> clap::Command) {
    clap_complete::CompleteEnv::with_factory(move || attach(factory()))
        .var(VAR)
        .complete();
}

/// The shells `cowtree completions` writes a script for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Shell {
    /// bash (4.4 or newer for the full behaviour).
    Bash,
    /// zsh.
    Zsh,
    /// fish.
    Fish,
    /// elvish.
    Elvish,
    /// PowerShell.
    Powershell,
}

/// The completion script for `shell`: it calls `cowtree` (the one on PATH) to complete.
pub fn script(shell: Shell) -> Vec<u8> {
    let completer: &dyn EnvCompleter = match shell {
        Shell::Bash => &Bash,
        Shell::Zsh => &Zsh,
        Shell::Fish => &Fish,
        Shell::Elvish => &Elvish,
        Shell::Powershell => &Powershell,
    };
    let mut buf = Vec::new();
    completer
        .write_registration(VAR, "cowtree", "cowtree", "cowtree", &mut buf)
        .expect("writing to a Vec cannot fail");
    if shell == Shell::Zsh {
        buf = zsh_autoloadable(buf);
    }
    buf
}

/// clap_complete's zsh script registers its function with `compdef` when sourced; loaded from
/// `$fpath` as `_cowtree` (how `share/zsh/site-functions/_cowtree` is used) that would only
/// register it, completing nothing on the first TAB. This makes it do either, as zsh's own
/// completion files do: complete when run as `_cowtree`, register when sourced.
fn zsh_autoloadable(script: Vec<u8>) -> Vec<u8> {
    let text = String::from_utf8_lossy(&script).into_owned();
    let register = "compdef _clap_dynamic_completer_cowtree cowtree";
    if !text.contains(register) {
        return script;
    }
    text.replace(
        register,
        "if [[ \"${funcstack[1]}\" == _cowtree ]]; then\n    \
         _clap_dynamic_completer_cowtree \"$@\"\nelse\n    \
         compdef _clap_dynamic_completer_cowtree cowtree\nfi",
    )
    .into_bytes()
}

/// The words being completed (after the `--` clap_complete's scripts pass).
fn words() -> Vec<OsString> {
    let args: Vec<OsString> = std::env::args_os().collect();
    match args.iter().position(|a| a == "--") {
        Some(i) => args[i + 1..].to_vec(),
        None => Vec::new(),
    }
}

/// The store named on the line being completed (`--store PATH` or `--store=PATH`), else by
/// `COWTREE_STORE`, else the store of the current directory.
fn store_root() -> Option<PathBuf> {
    let words = words();
    let mut named = None;
    for (i, w) in words.iter().enumerate() {
        if w == "--store" {
            named = words.get(i + 1).map(PathBuf::from);
        } else if let Some(p) = w.to_str().and_then(|s| s.strip_prefix("--store=")) {
            named = Some(PathBuf::from(p));
        }
    }
    if named.is_some() {
        return named;
    }
    if let Some(p) = cowtree_store::discover::from_env() {
        return Some(p);
    }
    cowtree_store::discover::store_here(&std::env::current_dir().ok()?).ok()
}

fn snapshots() -> Vec<CompletionCandidate> {
    // Never create a store while completing: only an existing one is opened.
    let Some(root) = store_root().filter(|r| cowtree_store::discover::exists(r)) else {
        return Vec::new();
    };
    let Ok(store) = cowtree_store::Store::open(&root) else {
        return Vec::new();
    };
    cowtree_store::refs::list(&store)
        .unwrap_or_default()
        .into_iter()
        .map(|(name, id)| {
            CompletionCandidate::new(name)
                .help(Some(format!("snapshot {}", &id.to_hex()[..12]).into()))
        })
        .collect()
}

fn remotes() -> Vec<CompletionCandidate> {
    let store = store_root()
        .filter(|r| cowtree_store::discover::exists(r))
        .and_then(|r| cowtree_store::Store::open(&r).ok());
    cowtree_remote::config::list(store.as_ref())
        .unwrap_or_default()
        .into_iter()
        .map(|c| {
            let url = c.config.url.clone();
            CompletionCandidate::new(c.config.name).help(Some(url.into()))
        })
        .collect()
}

fn stores() -> Vec<CompletionCandidate> {
    let mut out: Vec<CompletionCandidate> = Vec::new();
    let mut known = cowtree_store::discover::known_stores();
    if let Ok(d) = cowtree_store::discover::default_location() {
        known.push(d);
    }
    for p in known {
        if cowtree_store::discover::exists(&p)
            && !out.iter().any(|c| c.get_value() == p.as_os_str())
        {
            out.push(CompletionCandidate::new(p.into_os_string()));
        }
    }
    out
}

fn git_refs() -> Vec<CompletionCandidate> {
    let out = std::process::Command::new("git")
        .args([
            "for-each-ref",
            "--format=%(refname:short)",
            "refs/heads",
            "refs/tags",
            "refs/remotes",
        ])
        .stderr(std::process::Stdio::null())
        .output();
    let Ok(out) = out else { return Vec::new() };
    if !out.status.success() {
        return Vec::new();
    }
    let mut v: Vec<CompletionCandidate> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.is_empty())
        .map(CompletionCandidate::new)
        .collect();
    v.push(CompletionCandidate::new("HEAD"));
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_completed_argument_exists_in_the_command_it_names() {
        let cmd = crate::full_command();
        for (path, id, _) in VALUES {
            let mut c = &cmd;
            for p in *path {
                c = c
                    .find_subcommand(p)
                    .unwrap_or_else(|| panic!("no command: cowtree {}", path.join(" ")));
            }
            assert!(
                c.get_arguments().any(|a| a.get_id() == id),
                "cowtree {} has no argument {id}",
                path.join(" ")
            );
        }
    }

    #[test]
    fn every_shell_gets_a_script_that_calls_cowtree_with_the_variable() {
        for shell in [
            Shell::Bash,
            Shell::Zsh,
            Shell::Fish,
            Shell::Elvish,
            Shell::Powershell,
        ] {
            let s = String::from_utf8(script(shell)).unwrap();
            assert!(s.contains(VAR), "{shell:?}: {s}");
            assert!(s.contains("cowtree"), "{shell:?}: {s}");
        }
        let zsh = String::from_utf8(script(Shell::Zsh)).unwrap();
        assert!(zsh.starts_with("#compdef cowtree"), "{zsh}");
        assert!(
            zsh.contains("funcstack[1]"),
            "the autoload fix applied: {zsh}"
        );
    }
}
