//! `cowtree show`: print a snapshot's manifest.

use std::io::{self, Write};
use std::path::Path;

use cowtree_store::interchange::JsonWriter;
use cowtree_store::manifest::{DataRef, show};

use crate::cmd::{StoreOpt, store_here};
use crate::exit::{CliError, CmdResult, Exit, Kind};
use crate::units::{bytes, count};

/// Print a snapshot's entries: kind, size, blob or link target, path.
///
/// --json prints the manifest interchange format (docs/manifest.md), which `cowtree snapshot
/// --from-json` reads back. Of a snapshot taken with `snapshot --archive` (a version 2
/// manifest) the first line names what it records beside the entries (which `cowtree
/// checkout` gives back), and the JSON (version 2) holds all of it: each entry's mode, owner,
/// group, attributes and hardlink group, and the records of directories and special files;
/// `snapshot --from-json` records the same snapshot (the same id) from it.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  cowtree show v1                   # every entry of the snapshot named v1
  cowtree show --json v1 > v1.json  # the interchange format (snapshot --from-json reads it)")]
pub struct Args {
    /// Snapshot id, id prefix (8+ hex digits) or name.
    snapshot: String,
    /// Print the manifest as one JSON object (format "cowtree-manifest", version 1, or 2 for
    /// a snapshot taken with --archive).
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    store: StoreOpt,
}

pub fn run(args: Args, top: Option<&Path>) -> CmdResult {
    let store = store_here(&args.store.clone().or(top))?;
    let id = cowtree_store::refs::resolve(&store, &args.snapshot)?;
    // Two reads of the manifest's file, holding none of its entries: the totals the output
    // starts with (which also checks the whole manifest before anything is printed), then the
    // entries, each printed as it is read.
    let snap = store.open_snapshot(&id)?;
    let (files, total) = snap.file_totals()?;
    let out = io::BufWriter::with_capacity(1 << 16, io::stdout().lock());
    let items = store.archive_items(&id)?;
    let mut out = if args.json {
        let mut w = JsonWriter::start_archive(out, total, items).map_err(output)?;
        let archive = snap.each_entry_meta(|e, m| w.entry_with(e, m))?;
        match archive {
            Some(a) => w.finish_archive(&id, files, &a.extras),
            None => w.finish(&id, files),
        }
        .map_err(output)?
    } else {
        let archive = match items {
            Some(p) => format!(
                " (and modes, {}: snapshot --archive, version 2)",
                cowtree_store::interchange::archive_items(p).join(", ")
            ),
            None => String::new(),
        };
        let mut lines = Lines { out, failed: None };
        lines.line(format_args!(
            "snapshot {id}: {}, {}{archive}",
            count(files, "file", "files"),
            bytes(total)
        ));
        snap.each_entry(|e| {
            let what = match e.data {
                DataRef::Blob { hash, .. } => hash.to_hex()[..16].to_string(),
                DataRef::Target(t) => format!("-> {}", show(t)),
                DataRef::None => String::new(),
            };
            lines.line(format_args!(
                "{:<10} {:>12} {} {}",
                e.kind.as_str(),
                e.size(),
                show(e.path),
                what
            ));
        })?;
        lines.finish().map_err(output)?
    };
    if args.json {
        out.write_all(b"\n").map_err(output)?;
    }
    out.flush().map_err(output)?;
    Ok(Exit::Ok)
}

/// An error writing the output.
fn output(e: io::Error) -> CliError {
    CliError::new(format!("show: writing the output: {e}")).kind(Kind::Io)
}

/// Lines written to `out` until one fails; [`Lines::finish`] returns that error.
struct Lines<W: Write> {
    out: W,
    failed: Option<io::Error>,
}

impl<W: Write> Lines<W> {
    fn line(&mut self, args: std::fmt::Arguments<'_>) {
        if self.failed.is_none()
            && let Err(e) = writeln!(self.out, "{args}")
        {
            self.failed = Some(e);
        }
    }

    fn finish(self) -> io::Result<W> {
        match self.failed {
            Some(e) => Err(e),
            None => Ok(self.out),
        }
    }
}
