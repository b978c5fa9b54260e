//! `cowtree completions SHELL`: the shell's completion script.

use std::io::Write;

use serde_json::json;

use crate::cmd::print_json;
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
///
/// Or load it at each start of the shell: `source <(cowtree completions bash)` in ~/.bashrc
/// (zsh: the same in ~/.zshrc, after compinit), `cowtree completions elvish | slurp | eval`,
/// `cowtree completions powershell | Out-String | Invoke-Expression` in $PROFILE.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  cowtree completions bash > ~/.local/share/bash-completion/completions/cowtree
  cowtree completions zsh > ~/.zfunc/_cowtree         # a directory in $fpath, before compinit
  cowtree completions fish > ~/.config/fish/completions/cowtree.fish")]
pub struct Args {
    /// The shell.
    #[arg(value_enum)]
    shell: Shell,
    /// Print one JSON object, {"shell", "script"}, instead of the script.
    #[arg(long)]
    json: bool,
}

pub fn run(args: Args) -> CmdResult {
    let script = script(args.shell);
    if args.json {
        let shell = clap::ValueEnum::to_possible_value(&args.shell)
            .map(|v| v.get_name().to_string())
            .unwrap_or_default();
        print_json(&json!({"shell": shell, "script": String::from_utf8_lossy(&script)}))?;
        return Ok(Exit::Ok);
    }
    std::io::stdout()
        .write_all(&script)
        .map_err(|e| CliError::new(format!("write the script to stdout: {e}")))?;
    Ok(Exit::Ok)
}
