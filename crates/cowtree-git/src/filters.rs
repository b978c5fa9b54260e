//! git's checkout filters: which target entries git would not write as their blob's bytes.
//!
//! `.gitattributes` (and `core.autocrlf`/`core.eol`) can make a checkout write something else
//! than the blob: a `filter=` driver (LFS), `ident` (`$Id$` expanded), a
//! `working-tree-encoding`, or CRLF line endings. For such a file, the blob id proves nothing
//! about SRC's bytes, so it is never cloned: it is written from the object database through
//! gitoxide's filter pipeline, with the attributes of the target tree, as git would write it.
//! [`reason`] is the policy; [`Filters`] asks gitoxide for the attributes and converts.

use gix::attrs::StateRef;
use gix::bstr::{BStr, ByteSlice};
use gix::filter::plumbing::driver::apply::Delay;
use gix::filter::plumbing::pipeline::convert::ToWorktreeOutcome;
use gix::filter::plumbing::pipeline::convert::to_worktree::Options;
use gix::worktree::stack::state::attributes::Source;

use crate::error::{Error, GitError, Result};

/// The attributes that can change what a checkout writes.
const NAMES: [&str; 6] = [
    "filter",
    "ident",
    "working-tree-encoding",
    "eol",
    "text",
    "crlf",
];

/// How the configuration ends lines of text files on checkout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct EolConfig {
    /// `core.autocrlf=true`: every file git detects as text gets CRLF.
    pub autocrlf: bool,
    /// `core.eol=crlf`: files marked `text` get CRLF.
    pub eol_crlf: bool,
}

/// Why git would not write `path`'s blob as it is, from its attribute states (by name, as in
/// `NAMES`) and the configuration; `None` when it writes the blob's bytes.
pub fn reason<'a, 'b>(
    attrs: impl IntoIterator<Item = (&'a str, StateRef<'b>)>,
    config: EolConfig,
) -> Option<String> {
    let (mut text, mut eol) = (StateRef::Unspecified, StateRef::Unspecified);
    for (name, state) in attrs {
        match (name, state) {
            ("filter", StateRef::Value(v)) => return Some(format!("filter={}", v.as_bstr())),
            ("ident", StateRef::Set) => return Some("ident".into()),
            ("working-tree-encoding", StateRef::Value(v)) => {
                return Some(format!("working-tree-encoding={}", v.as_bstr()));
            }
            ("eol", s) => eol = s,
            // The old name of `text`; `crlf=input` means `eol=lf`.
            ("crlf", StateRef::Value(v)) if v.as_bstr() == "input" => {
                eol = StateRef::Value(gix::attrs::state::ValueRef::from_bytes(b"lf"));
            }
            ("text", s) => text = s,
            // Selected after `text`, which wins.
            ("crlf", s) if text == StateRef::Unspecified => text = s,
            _ => {}
        }
    }
    let is = |s: StateRef<'_>, v: &str| matches!(s, StateRef::Value(x) if x.as_bstr() == v);
    if text == StateRef::Unset || is(eol, "lf") {
        return None;
    }
    if is(eol, "crlf") {
        return Some("eol=crlf".into());
    }
    match text {
        StateRef::Set if config.autocrlf || config.eol_crlf => Some(format!(
            "text with {}",
            if config.autocrlf {
                "core.autocrlf=true"
            } else {
                "core.eol=crlf"
            }
        )),
        StateRef::Value(v) if v.as_bstr() == "auto" && (config.autocrlf || config.eol_crlf) => {
            Some(format!(
                "text=auto with {}",
                if config.autocrlf {
                    "core.autocrlf=true"
                } else {
                    "core.eol=crlf"
                }
            ))
        }
        StateRef::Unspecified if config.autocrlf => Some("core.autocrlf=true".into()),
        _ => None,
    }
}

/// What every worker starts from: the target tree's attributes and the configuration.
pub struct Setup {
    stack: gix::worktree::Stack,
    config: EolConfig,
}

impl Setup {
    /// The attributes of `target` (its `.gitattributes` blobs, plus the repository's and the
    /// user's attribute files) and `repo`'s line-ending configuration.
    pub fn new(repo: &gix::Repository, target: &gix::index::State) -> Result<Setup> {
        let config = repo.config_snapshot();
        let config = EolConfig {
            autocrlf: config.boolean("core.autocrlf") == Some(true),
            eol_crlf: config
                .string("core.eol")
                .is_some_and(|v| <[u8]>::eq_ignore_ascii_case(&v, b"crlf")),
        };
        let stack = repo
            .attributes_only(target, Source::IdMapping)
            .map_err(Error::git("read attributes", repo.git_dir()))?
            .detach();
        Ok(Setup { stack, config })
    }

    /// One worker's filters, on its own repository handle.
    pub fn worker(&self, repo: &gix::Repository) -> Result<Filters> {
        let (pipeline, stack) = gix::filter::Pipeline::new(repo, self.stack.clone())
            .map_err(Error::git("configure filters", repo.git_dir()))?
            .into_parts();
        let outcome = stack.selected_attribute_matches(NAMES);
        Ok(Filters {
            pipeline,
            stack,
            outcome,
            config: self.config,
        })
    }
}

/// One worker's attribute lookups and filter pipeline.
pub struct Filters {
    pipeline: gix::filter::plumbing::Pipeline,
    stack: gix::worktree::Stack,
    outcome: gix::attrs::search::Outcome,
    config: EolConfig,
}

impl Filters {
    /// Looks up `path`'s attributes into `self.outcome`.
    fn look_up(&mut self, repo: &gix::Repository, path: &BStr) -> Result<()> {
        let platform = self
            .stack
            .at_entry(path, Some(gix::index::entry::Mode::FILE), &repo.objects)
            .map_err(Error::io("read attributes for", path.to_path_lossy()))?;
        self.outcome.reset();
        platform.matching_attributes(&mut self.outcome);
        Ok(())
    }

    /// `path`'s attribute states in the order of [`NAMES`], unmatched ones unspecified.
    fn states(&self) -> impl Iterator<Item = (&'static str, StateRef<'_>)> {
        NAMES
            .into_iter()
            .zip(self.outcome.iter_selected().map(|m| m.assignment.state))
    }

    /// Why git would not write the blob at `path` (a regular file) as it is; see [`reason`].
    pub fn reason(&mut self, repo: &gix::Repository, path: &BStr) -> Result<Option<String>> {
        self.look_up(repo, path)?;
        Ok(reason(self.states(), self.config))
    }

    /// `data` (the blob at `path`) as git writes it to the worktree. Refused: `ident` on a
    /// blob holding `$Id`, which gitoxide expands unlike git (no space before the closing
    /// `$`, and only the `$Id$` form).
    pub fn to_worktree(
        &mut self,
        repo: &gix::Repository,
        path: &BStr,
        data: &[u8],
    ) -> Result<Vec<u8>> {
        self.look_up(repo, path)?;
        let ident = self
            .states()
            .any(|(name, state)| name == "ident" && state == StateRef::Set);
        if ident && data.find(b"$Id").is_some() {
            return Err(Error::UnsupportedFilter {
                path: path.to_path_lossy().into_owned(),
                attribute: "ident",
                why: "gitoxide does not expand $Id$ as git does",
            });
        }
        let fail = |e: GitError| Error::Git {
            what: "apply the checkout filters to",
            path: path.to_path_lossy().into_owned(),
            source: e,
        };
        let entry = self
            .stack
            .at_entry(path, Some(gix::index::entry::Mode::FILE), &repo.objects)
            .map_err(|e| fail(e.into()))?;
        let out = self
            .pipeline
            .convert_to_worktree(
                data,
                path,
                &mut |_, attrs| {
                    entry.matching_attributes(attrs);
                },
                Options {
                    can_delay: Delay::Forbid,
                    ..Default::default()
                },
            )
            .map_err(|e| fail(e.into()))?;
        match out {
            ToWorktreeOutcome::Unchanged(b) | ToWorktreeOutcome::Buffer(b) => Ok(b.to_vec()),
            ToWorktreeOutcome::Process(p) => {
                let mut v = Vec::new();
                match p {
                    gix::filter::plumbing::driver::apply::MaybeDelayed::Immediate(mut r) => {
                        std::io::Read::read_to_end(&mut r, &mut v).map_err(|e| fail(e.into()))?;
                    }
                    gix::filter::plumbing::driver::apply::MaybeDelayed::Delayed(_) => {
                        return Err(fail("the filter driver delayed its output".into()));
                    }
                }
                Ok(v)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gix::attrs::state::ValueRef;

    fn v(s: &'static str) -> StateRef<'static> {
        StateRef::Value(ValueRef::from_bytes(s.as_bytes()))
    }

    const LF: EolConfig = EolConfig {
        autocrlf: false,
        eol_crlf: false,
    };
    const AUTOCRLF: EolConfig = EolConfig {
        autocrlf: true,
        eol_crlf: false,
    };
    const EOL_CRLF: EolConfig = EolConfig {
        autocrlf: false,
        eol_crlf: true,
    };

    /// Attribute states, configuration, the reason expected.
    type Row<'a> = (&'a [(&'a str, StateRef<'a>)], EolConfig, Option<&'a str>);

    #[test]
    fn reason_names_the_attribute_or_setting_that_changes_the_checkout() {
        use StateRef::{Set, Unset, Unspecified};
        let rows: &[Row<'_>] = &[
            (&[], LF, None),
            (&[], AUTOCRLF, Some("core.autocrlf=true")),
            (&[], EOL_CRLF, None),
            (&[("filter", v("lfs"))], LF, Some("filter=lfs")),
            (&[("filter", Set)], LF, None),
            (&[("ident", Set)], LF, Some("ident")),
            (&[("ident", Unset)], LF, None),
            (
                &[("working-tree-encoding", v("UTF-16"))],
                LF,
                Some("working-tree-encoding=UTF-16"),
            ),
            (&[("eol", v("crlf"))], LF, Some("eol=crlf")),
            (&[("eol", v("crlf")), ("text", Unset)], LF, None),
            (&[("eol", v("lf"))], AUTOCRLF, None),
            (&[("text", Set)], LF, None),
            (&[("text", Set)], EOL_CRLF, Some("text with core.eol=crlf")),
            (&[("text", v("auto"))], LF, None),
            (
                &[("text", v("auto"))],
                AUTOCRLF,
                Some("text=auto with core.autocrlf=true"),
            ),
            (&[("text", Unset)], AUTOCRLF, None),
            (&[("crlf", Unset)], AUTOCRLF, None),
            (&[("crlf", v("input"))], AUTOCRLF, None),
            (
                &[("text", Unspecified)],
                AUTOCRLF,
                Some("core.autocrlf=true"),
            ),
        ];
        for (attrs, config, want) in rows {
            assert_eq!(
                reason(attrs.iter().copied(), *config).as_deref(),
                *want,
                "{attrs:?} {config:?}"
            );
        }
    }
}
