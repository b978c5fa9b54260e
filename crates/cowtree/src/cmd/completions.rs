//! `cowtree completions SHELL`: the shell's completion script.

use std::io::Write;

use crate::complete::{Shell, script};
use crate::exit::{CliError, CmdResult, Exit};

/// Print the completion script for a shell.
///
/// The script completes commands, options and paths, and values known only at run time:
/// snapshot names (from the store the command would use), remote names, the known stores, and
/// git refs for `cowtree git worktree add`. It does so by running `cowtree` (the one on PATH) at
/// each TAB with COWTREE_COMPLETE set, so it always matches the installed binary; regenerate it
/// only if you move to a cowtree whose completion protocol changed (the wheel installs the
/// scripts with the binary, in the environment's share/ directories).
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  source <(cowtree completions bash)                  # in ~/.bashrc
  cowtree completions bash > ~/.local/share/bash-completion/completions/cowtree
  cowtree completions zsh > ~/.zfunc/_cowtree         # a directory in $fpath, before compinit
  cowtree completions fish > ~/.config/fish/completions/cowtree.fish
  cowtree completions elvish >> ~/.config/elvish/rc.elv
  cowtree completions powershell >> $PROFILE")]
pub struct Args {
    /// The shell.
    #[arg(value_enum)]
    shell: Shell,
}

pub fn run(args: Args) -> CmdResult {
    std::io::stdout()
        .write_all(&script(args.shell))
        .map_err(|e| CliError::new(format!("write the script to stdout: {e}")))?;
    Ok(Exit::Ok)
}
