//! `cowtree.Source`: a tree (or file) to link, with an optional path mapping given as rules,
//! so that the mapping runs in the Linker's threads without calling back into Python.
//!
//! A rule is `(prefix, target)`. It applies to an entry whose path relative to the source is
//! `prefix` or lies beneath it (whole components: `a/b` is beneath `a`, `ab` is not; the
//! empty prefix matches every entry). The entry goes to `target` joined with the rest of its
//! path below `prefix`, or is left out (with everything beneath it) when `target` is `None`.
//! The first rule that applies decides; an entry no rule applies to keeps its path. An entry
//! mapped to the empty path (a directory mapped onto the destination root) is left out, its
//! entries still linked where their rules say.
//!
//! On Windows a prefix's components are compared as the path's components (`/` and `\`
//! both separate them there), and a target's path is joined with `\` as `Path::join` does.

#[cfg(unix)]
use std::ffi::OsStr;
#[cfg(unix)]
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use cowtree_link::EntryKind;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyTuple;

use crate::path_args;

/// One rule: a prefix in bytes without a trailing `/` (on Windows a path, compared by its
/// components), and the target (`None`: dropped).
#[derive(Debug, Clone)]
pub struct Rule {
    #[cfg(unix)]
    prefix: Vec<u8>,
    #[cfg(windows)]
    prefix: PathBuf,
    target: Option<PathBuf>,
}

/// The rules of one source, applied in order.
#[derive(Debug, Clone, Default)]
pub struct Rules(Vec<Rule>);

impl Rules {
    /// Where the entry at `rel` goes, or `None` when it is left out.
    #[cfg(unix)]
    pub fn map(&self, rel: &Path, _kind: EntryKind) -> Option<PathBuf> {
        let bytes = rel.as_os_str().as_bytes();
        for rule in &self.0 {
            let rest = if rule.prefix.is_empty() {
                Some(bytes)
            } else {
                bytes.strip_prefix(rule.prefix.as_slice()).and_then(|r| {
                    if r.is_empty() {
                        Some(r)
                    } else {
                        r.strip_prefix(b"/")
                    }
                })
            };
            let Some(rest) = rest else { continue };
            let target = rule.target.as_ref()?;
            let out = if rest.is_empty() {
                target.clone()
            } else {
                target.join(OsStr::from_bytes(rest))
            };
            return (!out.as_os_str().is_empty()).then_some(out);
        }
        Some(rel.to_path_buf())
    }

    /// Where the entry at `rel` goes, or `None` when it is left out (the unix rule, on the
    /// paths' components).
    #[cfg(windows)]
    pub fn map(&self, rel: &Path, _kind: EntryKind) -> Option<PathBuf> {
        for rule in &self.0 {
            let Ok(rest) = rel.strip_prefix(&rule.prefix) else {
                continue;
            };
            let target = rule.target.as_ref()?;
            let out = if rest.as_os_str().is_empty() {
                target.clone()
            } else {
                target.join(rest)
            };
            return (!out.as_os_str().is_empty()).then_some(out);
        }
        Some(rel.to_path_buf())
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// A tree or file to link, with optional mapping rules (see the module doc).
#[pyclass(frozen, module = "cowtree")]
#[derive(Debug, Clone)]
pub struct Source {
    pub path: PathBuf,
    pub rules: Rules,
}

#[pymethods]
impl Source {
    #[new]
    #[pyo3(signature = (path, map = None))]
    fn new(path: &Bound<'_, PyAny>, map: Option<&Bound<'_, PyAny>>) -> PyResult<Source> {
        let path = path_args::extract(path)?;
        let mut rules = Vec::new();
        if let Some(map) = map {
            for item in map.try_iter()? {
                let item = item?;
                let pair = item.cast::<PyTuple>().map_err(|_| {
                    PyValueError::new_err("each map rule is a (prefix, target or None) tuple")
                })?;
                if pair.len() != 2 {
                    return Err(PyValueError::new_err(
                        "each map rule is a (prefix, target or None) tuple",
                    ));
                }
                let prefix = path_args::extract(&pair.get_item(0)?)?;
                #[cfg(unix)]
                let prefix = {
                    let mut prefix = prefix.into_os_string().into_encoded_bytes();
                    while prefix.last() == Some(&b'/') {
                        prefix.pop();
                    }
                    if prefix.first() == Some(&b'/') {
                        return Err(PyValueError::new_err(format!(
                            "map prefix {:?} must be relative to the source",
                            String::from_utf8_lossy(&prefix)
                        )));
                    }
                    prefix
                };
                #[cfg(windows)]
                if prefix.has_root()
                    || matches!(
                        prefix.components().next(),
                        Some(std::path::Component::Prefix(_))
                    )
                {
                    return Err(PyValueError::new_err(format!(
                        "map prefix {:?} must be relative to the source",
                        prefix.display().to_string()
                    )));
                }
                let target = pair.get_item(1)?;
                let target = if target.is_none() {
                    None
                } else {
                    Some(path_args::extract(&target)?)
                };
                rules.push(Rule { prefix, target });
            }
        }
        Ok(Source {
            path,
            rules: Rules(rules),
        })
    }

    /// The tree or file.
    #[getter]
    fn path<'py>(&self, py: Python<'py>) -> Bound<'py, pyo3::types::PyString> {
        path_args::to_str(py, &self.path)
    }

    fn __repr__(&self) -> String {
        format!(
            "Source({:?}, {} rule{})",
            self.path,
            self.rules.0.len(),
            if self.rules.0.len() == 1 { "" } else { "s" }
        )
    }
}

impl Source {
    /// A source from a `Source` or any path.
    pub fn from_any(obj: &Bound<'_, PyAny>) -> PyResult<Source> {
        if let Ok(s) = obj.cast::<Source>() {
            return Ok(s.get().clone());
        }
        Ok(Source {
            path: path_args::extract(obj)?,
            rules: Rules::default(),
        })
    }
}
