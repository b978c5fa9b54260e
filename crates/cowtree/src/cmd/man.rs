//! `cowtree man`: the manual pages, rendered from the commands' own help (clap_mangen).

use std::io::Write;
use std::path::{Path, PathBuf};

use serde_json::json;

use crate::cmd::print_json;
use crate::exit::{CliError, CmdResult, Exit};

/// Print a command's manual page, or write every page to a directory.
///
/// The pages are roff, made from the same text as `--help`: one for `cowtree` and one for each
/// command and subcommand (`cowtree-stores-rm.1` for `cowtree stores rm`). The wheel installs
/// them into the environment's share/man/man1; after `cargo install`, write them where `man`
/// looks (a `man1` directory under a directory in `manpath`).
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  cowtree man stores rm | man -l -                    # read one page
  cowtree man --dir ~/.local/share/man/man1           # every page, for `man cowtree-checkout`")]
pub struct Args {
    /// The command whose page to print (none: `cowtree` itself).
    #[arg(value_name = "COMMAND")]
    command: Vec<String>,
    /// Write every page into DIR (created if missing), as `cowtree.1`, `cowtree-clone.1`, ...
    #[arg(long, value_name = "DIR", conflicts_with = "command")]
    dir: Option<PathBuf>,
    /// Print one JSON object: with --dir {"dir", "pages": [file names]}, else {"page": file
    /// name, "roff": the page}.
    #[arg(long)]
    json: bool,
    /// With --dir: print nothing but errors.
    #[arg(long, short = 'q')]
    quiet: bool,
}

pub fn run(args: Args, cmd: clap::Command) -> CmdResult {
    let mut cmd = cmd.disable_help_subcommand(true);
    cmd.build();
    if let Some(dir) = &args.dir {
        let pages = write_all(&cmd, dir)?;
        if args.json {
            print_json(&json!({"dir": dir, "pages": pages}))?;
        } else if !args.quiet {
            println!("wrote {} manual pages to {}", pages.len(), dir.display());
        }
        return Ok(Exit::Ok);
    }
    let mut page = &cmd;
    for w in &args.command {
        page = page.find_subcommand(w).ok_or_else(|| {
            CliError::with_code(
                format!(
                    "man: {} has no command {w:?} (its --help lists them)",
                    page.get_bin_name().unwrap_or("cowtree"),
                ),
                2,
            )
        })?;
    }
    let mut out = Vec::new();
    let man = man_page(page.clone());
    man.render(&mut out)
        .map_err(|e| CliError::new(format!("render the manual page: {e}")))?;
    if args.json {
        print_json(&json!({"page": man.get_filename(), "roff": String::from_utf8_lossy(&out)}))?;
        return Ok(Exit::Ok);
    }
    std::io::stdout()
        .write_all(&out)
        .map_err(|e| CliError::new(format!("write the page to stdout: {e}")))?;
    Ok(Exit::Ok)
}

/// The page of `cmd` (built), titled by its full name (`COWTREE-STORES-RM`), from this
/// cowtree's version; no date (a blank one: an empty one would shift the fields that follow),
/// so that the same version always renders the same bytes.
fn man_page(cmd: clap::Command) -> clap_mangen::Man {
    let title = cmd
        .get_display_name()
        .unwrap_or(cmd.get_name())
        .to_uppercase();
    clap_mangen::Man::new(cmd)
        .title(title)
        .source(format!("cowtree {}", env!("CARGO_PKG_VERSION")))
        .date(" ")
        .manual("cowtree manual")
}

/// Writes the page of `cmd` and of every command below it (hidden ones excepted) into `dir`;
/// returns the file names, sorted.
fn write_all(cmd: &clap::Command, dir: &Path) -> Result<Vec<String>, CliError> {
    let err = |e: std::io::Error, p: &Path| {
        CliError::new(format!("{}: {e}", p.display()))
            .kind(crate::exit::Kind::Io)
            .path(p)
    };
    std::fs::create_dir_all(dir).map_err(|e| err(e, dir))?;
    let mut names = Vec::new();
    let mut stack = vec![cmd.clone()];
    while let Some(c) = stack.pop() {
        stack.extend(c.get_subcommands().filter(|s| !s.is_hide_set()).cloned());
        let man = man_page(c);
        let name = man.get_filename();
        let mut bytes = Vec::new();
        man.render(&mut bytes)
            .map_err(|e| err(e, &dir.join(&name)))?;
        std::fs::write(dir.join(&name), bytes).map_err(|e| err(e, &dir.join(&name)))?;
        names.push(name);
    }
    names.sort();
    Ok(names)
}
