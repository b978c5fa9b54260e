//! git's checkout conversion for each path of the target tree: its attributes looked up with
//! gitoxide (the target tree's `.gitattributes`, `$GIT_COMMON_DIR/info/attributes`, the user's
//! attributes file), the configuration read as git reads it, the decision and the conversion
//! made by [`crate::conversion`] (a port of git's own code), and `filter=` drivers run through
//! gitoxide's driver state as git runs them.
//!
//! [`Setup`] holds what every worker shares; [`Filters`] is one worker's. [`Setup::risk`]
//! says which past conversions of SRC's files stat data cannot rule out (see
//! [`crate::trust::Risk`]).

use gix::bstr::{BStr, BString, ByteSlice};
use gix::filter::plumbing::driver::{self, Operation};
use gix::worktree::stack::state::attributes::Source;

use crate::conversion::{self, Attr, ConvAttrs, DriverInfo, EolConfig, NAMES, Smudged};
use crate::error::{Error, Result};
use crate::trust::Risk;

/// What every worker starts from: the target tree's attributes, the configuration and the
/// drivers it defines.
pub struct Setup {
    stack: gix::worktree::Stack,
    /// Whether any path can have a conversion: else every lookup is skipped.
    per_path: bool,
    config: EolConfig,
    drivers: Vec<gix::filter::plumbing::Driver>,
    infos: Vec<DriverInfo>,
    symlinks: bool,
    context: Option<gix::command::Context>,
}

/// A non-empty configuration value.
fn present(v: &Option<BString>) -> bool {
    v.as_ref().is_some_and(|v| !v.trim().is_empty())
}

/// Whether `v` runs git-lfs's own `sub` command (as `git lfs install` configures it).
fn runs_lfs(v: &Option<BString>, sub: &str) -> bool {
    v.as_ref().is_some_and(|v| {
        let mut words = v.split_str(" ").filter(|w| !w.is_empty());
        words.next() == Some(b"git-lfs".as_slice()) && words.next() == Some(sub.as_bytes())
    })
}

/// The words an attribute file must hold for any path to get a conversion attribute: `text`,
/// `eol`, `crlf`, `ident`, `filter`, `working-tree-encoding` and the built-in macro `binary`
/// (a macro of one's own is defined with the attributes it sets, so it holds them too).
const CONVERSION_WORDS: [&[u8]; 7] = [
    b"text",
    b"eol",
    b"crlf",
    b"ident",
    b"filter",
    b"encoding",
    b"binary",
];

fn mentions_conversions(data: &[u8]) -> bool {
    CONVERSION_WORDS.iter().any(|w| data.find(w).is_some())
}

/// Whether any attribute source of a checkout of `target` can give a path a conversion
/// attribute: the target's `.gitattributes` blobs, `$GIT_COMMON_DIR/info/attributes`, the
/// user's attributes file (`core.attributesFile`, or its default under `$XDG_CONFIG_HOME` or
/// `~/.config`) and the system's (`/etc/gitattributes`, `/usr/local/etc/gitattributes`).
/// When none even holds the words ([`CONVERSION_WORDS`]), no path's attributes need looking
/// up: the common case, which then costs one read of each source.
fn attribute_sources_mention_conversions(
    repo: &gix::Repository,
    target: &gix::index::State,
) -> Result<bool> {
    let backing = target.path_backing();
    for e in target.entries() {
        let p = e.path_in(backing);
        if p != ".gitattributes" && !p.ends_with(b"/.gitattributes") {
            continue;
        }
        let blob = repo
            .find_blob(e.id)
            .map_err(Error::git("read blob", p.to_path_lossy().into_owned()))?;
        if mentions_conversions(&blob.data) {
            return Ok(true);
        }
    }
    let mut files = vec![
        repo.common_dir().join("info/attributes"),
        std::path::PathBuf::from("/etc/gitattributes"),
        std::path::PathBuf::from("/usr/local/etc/gitattributes"),
    ];
    if let Ok(Some(p)) = repo.config_snapshot().trusted_path("core.attributesFile") {
        files.push(p);
    }
    if let Some(x) = std::env::var_os("XDG_CONFIG_HOME").filter(|x| !x.is_empty()) {
        files.push(std::path::Path::new(&x).join("git/attributes"));
    }
    if let Some(h) = std::env::var_os("HOME") {
        files.push(std::path::Path::new(&h).join(".config/git/attributes"));
    }
    for f in files {
        match std::fs::read(&f) {
            Ok(data) if mentions_conversions(&data) => return Ok(true),
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            // Unreadable: assume the worst, and let the lookups say.
            Err(_) => return Ok(true),
        }
    }
    Ok(false)
}

/// The `filter.<name>` drivers of `repo`'s configuration, as git collects them: any key of
/// the section defines the driver, a later value replaces an earlier one.
fn drivers(repo: &gix::Repository) -> Result<Vec<gix::filter::plumbing::Driver>> {
    let snapshot = repo.config_snapshot();
    let mut out: Vec<gix::filter::plumbing::Driver> = Vec::new();
    for section in snapshot
        .plumbing()
        .sections_by_name("filter")
        .into_iter()
        .flatten()
    {
        let Some(name) = section.header().subsection_name() else {
            continue;
        };
        let i = match out.iter().position(|d| d.name == name) {
            Some(i) => i,
            None => {
                out.push(gix::filter::plumbing::Driver {
                    name: name.to_owned(),
                    clean: None,
                    smudge: None,
                    process: None,
                    required: false,
                });
                out.len() - 1
            }
        };
        let d = &mut out[i];
        for (key, slot) in [
            ("clean", &mut d.clean),
            ("smudge", &mut d.smudge),
            ("process", &mut d.process),
        ] {
            if let Some(v) = section.value(key) {
                *slot = Some(v);
            }
        }
        if let Some(v) = section.value("required") {
            d.required = gix::config::Boolean::try_from(v.as_bstr())
                .map(|b| b.0)
                .map_err(|e| Error::Git {
                    what: "read filter.<driver>.required",
                    path: repo.git_dir().to_owned(),
                    source: e.into(),
                })?;
        }
    }
    Ok(out)
}

impl Setup {
    /// The attributes of `target` (its `.gitattributes` blobs, plus the repository's and the
    /// user's attribute files) and `repo`'s conversion configuration. Drivers run as git runs
    /// them in the new worktree: `$GIT_DIR` its registration `git_dir`, `$GIT_WORK_TREE` the
    /// tree being made at `work_tree` (their working directory stays the caller's).
    pub fn new(
        repo: &gix::Repository,
        target: &gix::index::State,
        git_dir: &std::path::Path,
        work_tree: &std::path::Path,
    ) -> Result<Setup> {
        let snapshot = repo.config_snapshot();
        let config = EolConfig::parse(
            snapshot
                .string("core.autocrlf")
                .as_deref()
                .map(|v| v.as_bytes()),
            snapshot.string("core.eol").as_deref().map(|v| v.as_bytes()),
        )
        .map_err(|v| Error::Git {
            what: "read the configuration: not a boolean",
            path: repo.git_dir().to_owned(),
            source: v.into(),
        })?;
        let symlinks = snapshot.boolean("core.symlinks").unwrap_or(true);
        let drivers = drivers(repo)?;
        let infos = drivers
            .iter()
            .map(|d| DriverInfo {
                name: d.name.clone(),
                smudge: present(&d.smudge),
                clean: present(&d.clean),
                process: present(&d.process),
                required: d.required,
            })
            .collect();
        let stack = repo
            .attributes_only(target, Source::IdMapping)
            .map_err(Error::git("read attributes", repo.git_dir()))?
            .detach();
        let per_path = config.autocrlf != conversion::AutoCrlf::False
            || attribute_sources_mention_conversions(repo, target)?;
        Ok(Setup {
            stack,
            per_path,
            config,
            drivers,
            infos,
            symlinks,
            context: repo.command_context().ok().map(|mut c| {
                c.git_dir = Some(git_dir.to_owned());
                c.worktree_dir = Some(work_tree.to_owned());
                c
            }),
        })
    }

    /// Whether a path's attributes are looked up at all (see
    /// `attribute_sources_mention_conversions`).
    pub fn per_path(&self) -> bool {
        self.per_path
    }

    /// `core.symlinks`: whether a symlink is made as one (else as a file holding its
    /// target).
    pub fn symlinks(&self) -> bool {
        self.symlinks
    }

    /// Which conversions of SRC's past can have left a file of its blob's size that is not its
    /// blob, as far as the configuration shows: any driver (a smudge command may write
    /// anything; a clean command may have made the blob from other bytes of the same size;
    /// git-lfs's own only for files of a pointer's size).
    pub fn risk(&self) -> Risk {
        let mut risk = Risk::None;
        for d in &self.drivers {
            if !present(&d.smudge) && !present(&d.process) && !present(&d.clean) {
                continue;
            }
            let lfs = (!present(&d.smudge) || runs_lfs(&d.smudge, "smudge"))
                && (!present(&d.clean) || runs_lfs(&d.clean, "clean"))
                && (!present(&d.process) || runs_lfs(&d.process, "filter-process"));
            risk = risk.max(if lfs { Risk::LfsPointers } else { Risk::Any });
        }
        risk
    }

    /// One worker's lookups and driver state, on its own repository handle.
    pub fn worker(&self) -> Filters {
        let outcome = self.stack.selected_attribute_matches(NAMES);
        Filters {
            stack: self.stack.clone(),
            per_path: self.per_path,
            outcome,
            config: self.config,
            drivers: self.drivers.clone(),
            infos: self.infos.clone(),
            state: driver::State::new(self.context.clone().unwrap_or_default()),
        }
    }
}

/// What git's checkout does with one regular file, and what its attributes tell of SRC's past.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Look {
    /// Why git's checkout writes other bytes than the blob (`None`: the blob as it is).
    pub converts: Option<String>,
    /// Its attributes name a `filter=` driver the configuration does not define (any more):
    /// SRC's copy may be that driver's output, of any size.
    pub unconfigured_filter: bool,
}

/// One worker's attribute lookups and driver processes.
pub struct Filters {
    stack: gix::worktree::Stack,
    per_path: bool,
    outcome: gix::attrs::search::Outcome,
    config: EolConfig,
    drivers: Vec<gix::filter::plumbing::Driver>,
    infos: Vec<DriverInfo>,
    state: driver::State,
}

impl Filters {
    /// git's conversion decision for the regular file at `path`.
    pub fn attrs(&mut self, repo: &gix::Repository, path: &BStr) -> Result<ConvAttrs> {
        if !self.per_path {
            // No attribute source names a conversion: every path has none set.
            return ConvAttrs::from_attrs([Attr::Unspecified; 6], self.config, &self.infos)
                .map_err(|_| Error::Checkout {
                    path: path.to_path_lossy().into_owned(),
                    why: "working-tree-encoding is set without a value".into(),
                });
        }
        let platform = self
            .stack
            .at_entry(path, Some(gix::index::entry::Mode::FILE), &repo.objects)
            .map_err(Error::io("read attributes for", path.to_path_lossy()))?;
        self.outcome.reset();
        platform.matching_attributes(&mut self.outcome);
        let mut states = [Attr::Unspecified; 6];
        for (s, m) in states.iter_mut().zip(self.outcome.iter_selected()) {
            *s = m.assignment.state.into();
        }
        ConvAttrs::from_attrs(states, self.config, &self.infos).map_err(|_| Error::Checkout {
            path: path.to_path_lossy().into_owned(),
            why: "working-tree-encoding is set without a value (git: \"true/false are no valid \
                  working-tree-encodings\")"
                .into(),
        })
    }

    /// What git's checkout does with the regular file at `path`.
    pub fn look(&mut self, repo: &gix::Repository, path: &BStr) -> Result<Look> {
        let ca = self.attrs(repo, path)?;
        Ok(Look {
            converts: ca.changes_blob(&self.infos),
            unconfigured_filter: ca.filter_named && ca.driver.is_none(),
        })
    }

    /// `data` (the blob `id` at `path`) as git's checkout writes it.
    pub fn to_worktree(
        &mut self,
        repo: &gix::Repository,
        path: &BStr,
        id: &gix::oid,
        data: &[u8],
    ) -> Result<Vec<u8>> {
        let ca = self.attrs(repo, path)?;
        let hex = id.to_hex().to_string();
        let (state, drivers) = (&mut self.state, &self.drivers);
        let smudge = |input: &[u8]| -> Smudged {
            let Some(d) = ca.driver.and_then(|i| drivers.get(i)) else {
                return Smudged::NotApplied;
            };
            let ctx = driver::apply::Context {
                rela_path: path,
                ref_name: None,
                treeish: None,
                blob: Some(id.to_owned()),
            };
            let mut src = input;
            match state.apply(d, &mut src, Operation::Smudge, ctx) {
                Ok(Some(mut out)) => {
                    let mut v = Vec::new();
                    match std::io::Read::read_to_end(&mut out, &mut v) {
                        Ok(_) => Smudged::Output(v),
                        Err(e) => Smudged::Failed(e.to_string()),
                    }
                }
                Ok(None) => Smudged::NotApplied,
                Err(e) => Smudged::Failed(e.to_string()),
            }
        };
        match conversion::to_worktree(&ca, &self.infos, &hex, data, smudge) {
            Ok(Some(v)) => Ok(v),
            Ok(None) => Ok(data.to_vec()),
            Err(conversion::ConvertError::RequiredDriverFailed { driver, message }) => {
                Err(Error::Checkout {
                    path: path.to_path_lossy().into_owned(),
                    why: format!("the required filter driver `{driver}` failed: {message}"),
                })
            }
            Err(conversion::ConvertError::EncodingUnavailable { .. }) => {
                Err(Error::io(
                    "write with its working-tree-encoding",
                    path.to_path_lossy().into_owned(),
                )(cowtree_fs::sys::Unavailable::error(
                    "iconv(3), which git encodes working-tree-encoding with,",
                )))
            }
        }
    }
}
