//! What a repository is, read as git reads it, once, before anything else: its format
//! version and every `extensions.*` key (git's `check_repository_format`, setup.c), the state
//! of the worktree the command runs in that changes what `git worktree add` makes (sparse
//! checkout, index flags), and the environment git would obey. Every later step asks these
//! [`Facts`]; none reads the configuration for itself to decide what the repository is.
//!
//! The answer to "can cowtree make this worktree itself?" is [`Facts::handover`]: `None`, or
//! the one-line reason `git worktree add` itself must make it ([`crate::handover`]). Anything
//! not understood is handed over, never guessed: an unknown extension, a format version past
//! 1, a ref or object format cowtree cannot read or write. A repository git refuses (an
//! unknown extension in a version 1 repository, a format version past 1) is handed over too,
//! so that git refuses it with its own message and exit status.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};

/// The object format (`extensions.objectFormat`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ObjectFormat {
    /// SHA-1 (the default).
    Sha1,
    /// SHA-256.
    Sha256,
}

/// Where refs are kept (`extensions.refStorage`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefStorage {
    /// Loose and packed files (the default).
    Files,
    /// The reftable format.
    Reftable,
}

/// The extensions git 2.47 knows in a repository of format version 0 (setup.c,
/// `handle_extension_v0`): any version may have them.
const V0_EXTENSIONS: [&str; 4] = ["noop", "preciousobjects", "partialclone", "worktreeconfig"];
/// The extensions git knows only in format version 1 (`handle_extension`).
const V1_EXTENSIONS: [&str; 4] = [
    "noop-v1",
    "objectformat",
    "compatobjectformat",
    "refstorage",
];

/// The repository's format, as its common directory's `config` file states it (git reads the
/// format from that file alone, without includes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Format {
    /// `core.repositoryformatversion` (0 when absent).
    pub version: i64,
    /// Every `extensions.*` key (lower case) and its value (`None`: a key without `=`).
    pub extensions: Vec<(String, Option<String>)>,
}

impl Format {
    /// Reads the format from the `config` file in `common_dir`. A missing file is version 0
    /// with no extensions (git's own reading); one that cannot be parsed is an error.
    pub fn read(common_dir: &Path) -> std::io::Result<Format> {
        let path = common_dir.join("config");
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(Format {
                    version: 0,
                    extensions: Vec::new(),
                });
            }
            Err(e) => return Err(e),
        };
        Format::parse(&bytes).map_err(|e| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("{}: {e}", path.display()),
            )
        })
    }

    /// [`Format::read`] on the bytes of a config file.
    pub fn parse(bytes: &[u8]) -> Result<Format, String> {
        let file = gix::config::File::from_bytes_no_includes(
            bytes,
            gix::config::file::Metadata::from(gix::config::Source::Local),
            Default::default(),
        )
        .map_err(|e| e.to_string())?;
        let version = file
            .integer("core.repositoryformatversion")
            .map_err(|e| e.to_string())?
            .unwrap_or(0);
        let mut extensions = Vec::new();
        if let Some(sections) = file.sections_by_name("extensions") {
            for section in sections {
                // A subsection (`[extensions "x"]`) is not an `extensions.*` key to git.
                if section.header().subsection_name().is_some() {
                    continue;
                }
                let mut seen: Vec<String> = Vec::new();
                for key in section.value_names() {
                    let name = key.to_ascii_lowercase();
                    if seen.contains(&name) {
                        continue;
                    }
                    seen.push(name.clone());
                    match section.value_implicit(&key) {
                        Some(Some(v)) => extensions.push((name, Some(v.to_string()))),
                        _ => extensions.push((name, None)),
                    }
                }
            }
        }
        Ok(Format {
            version,
            extensions,
        })
    }

    /// Extension `name` (lower case): `None` when absent, `Some(None)` for a key without `=`
    /// (git's "implicit true"), else its last value.
    pub fn extension_value(&self, name: &str) -> Option<Option<&str>> {
        self.extensions
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_deref())
    }

    /// The last value of extension `name` (lower case); `None` also for a key without `=`.
    pub fn extension(&self, name: &str) -> Option<&str> {
        self.extension_value(name).flatten()
    }

    /// The object format, or why it is not one cowtree reads. git compares the name exactly
    /// (`hash_algo_by_name`: `SHA256` is refused), and a key without a value is an error.
    pub fn object_format(&self) -> Result<ObjectFormat, String> {
        if self.version < 1 {
            return Ok(ObjectFormat::Sha1);
        }
        match self.extension_value("objectformat") {
            None | Some(Some("sha1")) => Ok(ObjectFormat::Sha1),
            Some(Some("sha256")) => Ok(ObjectFormat::Sha256),
            Some(Some(v)) => Err(format!("extensions.objectFormat = {v}")),
            Some(None) => Err("extensions.objectFormat without a value".into()),
        }
    }

    /// The ref storage, or why it is not one cowtree knows (exact names, as git's
    /// `ref_storage_format_by_name`).
    pub fn ref_storage(&self) -> Result<RefStorage, String> {
        if self.version < 1 {
            return Ok(RefStorage::Files);
        }
        match self.extension_value("refstorage") {
            None | Some(Some("files")) => Ok(RefStorage::Files),
            Some(Some("reftable")) => Ok(RefStorage::Reftable),
            Some(Some(v)) => Err(format!("extensions.refStorage = {v}")),
            Some(None) => Err("extensions.refStorage without a value".into()),
        }
    }

    /// Why git would refuse this repository, or `None`: a format version past 1, an
    /// extension git does not know in a version 1 repository (git ignores unknown ones in
    /// version 0), a v1-only extension in a version 0 repository.
    pub fn git_refuses(&self) -> Option<String> {
        if self.version > 1 || self.version < 0 {
            return Some(format!("repository format version {}", self.version));
        }
        for (name, _) in &self.extensions {
            let v0 = V0_EXTENSIONS.contains(&name.as_str());
            let v1 = V1_EXTENSIONS.contains(&name.as_str());
            if self.version == 1 && !v0 && !v1 {
                return Some(format!("unknown extension extensions.{name}"));
            }
            if self.version == 0 && v1 {
                return Some(format!(
                    "extensions.{name} in a repository of format version 0"
                ));
            }
        }
        None
    }
}

/// What cowtree can make itself; a step not yet built here hands over instead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Support {
    /// SHA-256 object stores are read and written natively.
    pub sha256: bool,
    /// Reftable ref stores are read and written natively.
    pub reftable: bool,
    /// Partial clones (missing blobs fetched from the promisor remote).
    pub partial_clone: bool,
    /// Sparse checkout in the worktree the command runs in.
    pub sparse: bool,
}

/// What this build makes natively.
pub const SUPPORT: Support = Support {
    sha256: true,
    reftable: true,
    partial_clone: true,
    sparse: true,
};

/// A sparse checkout, as `git worktree add` copies it ([`crate::sparse`] reads the patterns).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sparse {
    /// The bytes of `$GIT_DIR/info/sparse-checkout` (copied into the new registration).
    pub patterns: Vec<u8>,
    /// `core.sparseCheckoutCone`.
    pub cone: bool,
    /// `index.sparse`.
    pub sparse_index: bool,
}

/// The facts every step reads (see the module doc).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Facts {
    /// `$GIT_COMMON_DIR`.
    pub common_dir: PathBuf,
    /// The repository's format.
    pub format: Format,
    /// The object format (SHA-1 when it could not be told: then [`Facts::handover`] says so).
    pub object_format: ObjectFormat,
    /// The ref storage (files when it could not be told: then [`Facts::handover`] says so).
    pub ref_storage: RefStorage,
    /// `extensions.worktreeConfig`.
    pub worktree_config: bool,
    /// `extensions.partialClone`: the promisor remote.
    pub partial_clone: Option<String>,
    /// The promisor remotes, in the order git asks them ([`crate::promisor`]); empty for a
    /// repository that is not a partial clone.
    pub promisors: Vec<String>,
    /// `core.ignoreStat`: git's checkout marks every entry it writes assume-unchanged.
    pub ignore_stat: bool,
    /// The sparse checkout of the worktree the command runs in, which `git worktree add`
    /// copies into the new one (`core.sparseCheckout` true).
    pub sparse: Option<Sparse>,
    /// Why `git worktree add` itself must make the worktree, or `None`.
    handover: Option<String>,
}

impl Facts {
    /// Reads the facts of the repository whose common directory is `common_dir`, for a run in
    /// the worktree whose git directory is `git_dir` (the same for the main worktree and a
    /// bare repository), with `config` the configuration git would read there.
    pub fn read(
        common_dir: &Path,
        git_dir: &Path,
        config: &dyn Fn(&str) -> Option<String>,
        support: Support,
    ) -> std::io::Result<Facts> {
        let format = Format::read(common_dir)?;
        let mut handover = environment_handover();
        let object_format = match format.object_format() {
            Ok(f) => f,
            Err(why) => {
                handover.get_or_insert(why);
                ObjectFormat::Sha1
            }
        };
        let ref_storage = match format.ref_storage() {
            Ok(r) => r,
            Err(why) => {
                handover.get_or_insert(why);
                RefStorage::Files
            }
        };
        if let Some(why) = format.git_refuses() {
            handover.get_or_insert(format!("{why} (git decides)"));
        }
        if format.extension("compatobjectformat").is_some() {
            handover.get_or_insert("extensions.compatObjectFormat".into());
        }
        if object_format == ObjectFormat::Sha256 && !support.sha256 {
            handover.get_or_insert("SHA-256 objects (extensions.objectFormat = sha256)".into());
        }
        if ref_storage == RefStorage::Reftable && !support.reftable {
            handover.get_or_insert("reftable refs (extensions.refStorage = reftable)".into());
        }
        let partial_clone = match format.extension_value("partialclone") {
            None => None,
            Some(Some(remote)) => Some(remote.to_owned()),
            Some(None) => {
                // git: "missing value for 'extensions.partialclone'", the repository refused.
                handover.get_or_insert("extensions.partialClone without a value".into());
                None
            }
        };
        if let Some(remote) = &partial_clone
            && !support.partial_clone
        {
            handover.get_or_insert(format!(
                "a partial clone (promisor remote {remote}): blobs may have to be fetched"
            ));
        }
        let bool_of = |key: &str| config(key).map(|v| git_bool(&v));
        let worktree_config = match format.extension_value("worktreeconfig") {
            None => false,
            Some(None) => true,
            Some(Some(v)) => git_bool(v).unwrap_or_else(|| {
                handover.get_or_insert(format!("extensions.worktreeConfig = {v}"));
                false
            }),
        };
        let sparse = match bool_of("core.sparsecheckout") {
            Some(Some(true)) => {
                let file = git_dir.join("info/sparse-checkout");
                let patterns = match std::fs::read(&file) {
                    Ok(b) => Some(b),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
                    Err(e) => return Err(e),
                };
                let cone = match bool_of("core.sparsecheckoutcone") {
                    None => false,
                    Some(Some(b)) => b,
                    Some(None) => {
                        handover.get_or_insert("core.sparseCheckoutCone is not a boolean".into());
                        false
                    }
                };
                let sparse_index = bool_of("index.sparse") == Some(Some(true));
                if !support.sparse {
                    handover.get_or_insert("sparse checkout (core.sparseCheckout is true)".into());
                }
                if patterns.is_none() {
                    handover.get_or_insert(format!(
                        "sparse checkout without its patterns file {}",
                        shown(&file)
                    ));
                }
                if bool_of("core.ignorecase") == Some(Some(true)) {
                    handover.get_or_insert("sparse checkout with core.ignoreCase".into());
                }
                Some(Sparse {
                    patterns: patterns.unwrap_or_default(),
                    cone,
                    sparse_index,
                })
            }
            Some(None) => {
                handover.get_or_insert("core.sparseCheckout is not a boolean".into());
                None
            }
            _ => None,
        };
        let ignore_stat = match config("core.ignorestat") {
            None => false,
            Some(v) => match git_bool(&v) {
                Some(b) => b,
                None => {
                    handover.get_or_insert(format!("core.ignoreStat = {v}"));
                    false
                }
            },
        };
        for key in [
            "core.splitindex",
            "core.untrackedcache",
            "core.fsmonitor",
            "index.version",
            "feature.manyfiles",
            "index.skiphash",
            "core.worktree",
            "core.sharedrepository",
            // EOIE and IEOT extensions (git's `record_eoie`, `record_ieot`).
            "index.recordendofindexentries",
            "index.recordoffsettable",
            "index.threads",
        ] {
            if let Some(v) = config(key) {
                handover.get_or_insert(format!("{key} = {v}"));
            }
        }
        Ok(Facts {
            common_dir: common_dir.to_owned(),
            format,
            object_format,
            ref_storage,
            worktree_config,
            partial_clone,
            ignore_stat,
            sparse,
            promisors: Vec::new(),
            handover,
        })
    }

    /// Why `git worktree add` itself must make the worktree, or `None` (see the module doc).
    pub fn handover(&self) -> Option<&str> {
        self.handover.as_deref()
    }
}

/// `key`'s value in `config` as git reads it, for [`Facts::read`]: a key written without `=` is
/// git's implicit true and comes back as `"true"` (gitoxide's `string` takes it for unset).
pub fn config_value(config: &gix::config::File, key: &str) -> Option<String> {
    if let Some(v) = config.string(key) {
        return Some(v.to_string());
    }
    // Present without a value: the one case where the boolean is there and the string not.
    matches!(config.boolean(key), Ok(Some(true))).then(|| "true".to_owned())
}

/// git's boolean: `true`/`yes`/`on`/a non-zero number, `false`/`no`/`off`/0/empty; `None` for
/// anything else.
pub fn git_bool(v: &str) -> Option<bool> {
    let l = v.trim().to_ascii_lowercase();
    match l.as_str() {
        "true" | "yes" | "on" => Some(true),
        "false" | "no" | "off" | "" => Some(false),
        n => n.parse::<i64>().ok().map(|n| n != 0),
    }
}

/// The variables that point git at another repository, work tree, index or object store than
/// discovery finds, or change what it writes or reads: set, git obeys them and cowtree would
/// not.
const GIT_LOCATION_VARS: [&str; 8] = [
    "GIT_DIR",
    "GIT_WORK_TREE",
    "GIT_COMMON_DIR",
    "GIT_INDEX_FILE",
    "GIT_OBJECT_DIRECTORY",
    "GIT_ALTERNATE_OBJECT_DIRECTORIES",
    // The index version git writes.
    "GIT_INDEX_VERSION",
    // Configuration from git's command line (`git -c`, passed to what git runs), which
    // gitoxide does not read (it reads `GIT_CONFIG_COUNT` and its keys, as git does).
    "GIT_CONFIG_PARAMETERS",
];

/// Why the environment makes git see another repository than discovery does, or `None`.
pub fn environment_handover() -> Option<String> {
    GIT_LOCATION_VARS
        .iter()
        .find(|v| std::env::var_os(v).is_some_and(|x| !x.is_empty()))
        .map(|v| format!("{v} is set in the environment"))
}

/// The git directory and common directory of the repository `start` is in, found as git's
/// discovery finds them (a `.git` directory or file, or a bare repository), for a repository
/// gitoxide cannot open (an object format it was not built for). `None` when there is none.
pub fn discover_dirs(start: &Path) -> Option<(PathBuf, PathBuf)> {
    let start = std::path::absolute(start).ok()?;
    let mut dir = Some(start.as_path());
    while let Some(d) = dir {
        let dotgit = d.join(".git");
        let git_dir = if dotgit.is_dir() {
            Some(dotgit)
        } else if dotgit.is_file() {
            let text = std::fs::read_to_string(&dotgit).ok()?;
            let rest = text.trim_end().strip_prefix("gitdir: ")?;
            let p = Path::new(rest);
            Some(if p.is_absolute() {
                p.to_owned()
            } else {
                d.join(p)
            })
        } else if d.join("HEAD").is_file() && d.join("objects").is_dir() {
            Some(d.to_owned())
        } else {
            None
        };
        if let Some(g) = git_dir {
            let common = match std::fs::read_to_string(g.join("commondir")) {
                Ok(c) => {
                    let c = Path::new(c.trim_end());
                    if c.is_absolute() {
                        c.to_owned()
                    } else {
                        g.join(c)
                    }
                }
                Err(_) => g.clone(),
            };
            let canon = |p: PathBuf| p.canonicalize().unwrap_or(p);
            return Some((canon(g), canon(common)));
        }
        dir = d.parent();
    }
    None
}

/// The path as git prints it in a message.
pub fn shown(p: &Path) -> std::borrow::Cow<'_, str> {
    OsStr::new(p).to_string_lossy()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn format(text: &str) -> Format {
        Format::parse(text.as_bytes()).expect("parse")
    }

    #[test]
    fn format_version_and_extensions_are_read_as_git_reads_them() {
        let f = format(
            "[core]\n\trepositoryformatversion = 1\n[extensions]\n\tobjectFormat = sha256\n\
             \trefStorage = reftable\n[extensions \"sub\"]\n\tx = y\n",
        );
        assert_eq!(f.version, 1);
        assert_eq!(f.object_format(), Ok(ObjectFormat::Sha256));
        assert_eq!(f.ref_storage(), Ok(RefStorage::Reftable));
        assert_eq!(f.git_refuses(), None);
        let plain = format("[core]\n\tbare = false\n");
        assert_eq!(plain.version, 0);
        assert_eq!(plain.object_format(), Ok(ObjectFormat::Sha1));
        assert_eq!(plain.ref_storage(), Ok(RefStorage::Files));
    }

    /// git's rules (setup.c): an unknown extension refuses a version 1 repository and is
    /// ignored in version 0; a v1-only extension in version 0 is refused; versions past 1 are.
    #[test]
    fn what_git_refuses_is_told_apart_from_what_it_ignores() {
        let cases = [
            (
                "[core]\nrepositoryformatversion = 1\n[extensions]\nfoo = bar\n",
                true,
            ),
            (
                "[core]\nrepositoryformatversion = 0\n[extensions]\nfoo = bar\n",
                false,
            ),
            (
                "[core]\nrepositoryformatversion = 0\n[extensions]\nrefstorage = files\n",
                true,
            ),
            ("[core]\nrepositoryformatversion = 2\n", true),
            (
                "[core]\nrepositoryformatversion = 1\n[extensions]\nworktreeConfig = true\n",
                false,
            ),
            (
                "[core]\nrepositoryformatversion = 0\n[extensions]\npartialclone = origin\n",
                false,
            ),
        ];
        for (text, refused) in cases {
            assert_eq!(format(text).git_refuses().is_some(), refused, "{text}");
        }
    }

    #[test]
    fn an_unknown_ref_or_object_format_is_not_guessed() {
        let f = format("[core]\nrepositoryformatversion = 1\n[extensions]\nrefstorage = other\n");
        assert!(f.ref_storage().is_err());
        let f = format("[core]\nrepositoryformatversion = 1\n[extensions]\nobjectformat = md5\n");
        assert!(f.object_format().is_err());
    }

    #[test]
    fn git_booleans() {
        for (v, b) in [
            ("true", Some(true)),
            ("Yes", Some(true)),
            ("on", Some(true)),
            ("1", Some(true)),
            ("false", Some(false)),
            ("0", Some(false)),
            ("", Some(false)),
            ("maybe", None),
        ] {
            assert_eq!(git_bool(v), b, "{v}");
        }
    }

    #[test]
    fn a_key_without_a_value_is_true_as_git_reads_it() {
        let file = gix::config::File::from_bytes_no_includes(
            b"[core]\n\tsparseCheckout\n\tsplitIndex =\n\tignoreStat = maybe\n",
            gix::config::file::Metadata::from(gix::config::Source::Local),
            Default::default(),
        )
        .expect("parse");
        assert_eq!(
            config_value(&file, "core.sparsecheckout").as_deref(),
            Some("true")
        );
        assert_eq!(config_value(&file, "core.splitIndex").as_deref(), Some(""));
        assert_eq!(
            config_value(&file, "core.ignoreStat").as_deref(),
            Some("maybe")
        );
        assert_eq!(config_value(&file, "core.untrackedCache"), None);
        let facts = |text: &[u8]| {
            let dir = tempfile::tempdir().unwrap();
            std::fs::write(dir.path().join("config"), text).unwrap();
            std::fs::create_dir(dir.path().join("info")).unwrap();
            std::fs::write(dir.path().join("info/sparse-checkout"), "/*\n").unwrap();
            let file = gix::config::File::from_bytes_no_includes(
                text,
                gix::config::file::Metadata::from(gix::config::Source::Local),
                Default::default(),
            )
            .unwrap();
            Facts::read(dir.path(), dir.path(), &|k| config_value(&file, k), SUPPORT).unwrap()
        };
        let f = facts(b"[core]\n\tsparseCheckout\n[extensions]\n\tworktreeConfig\n");
        assert!(f.sparse.is_some(), "core.sparseCheckout without = is true");
        assert!(
            f.worktree_config,
            "extensions.worktreeConfig without = is true"
        );
        assert_eq!(f.handover(), None);
        let f = facts(b"[core]\n\tuntrackedCache\n");
        assert_eq!(f.handover(), Some("core.untrackedcache = true"));
        let f = facts(b"[index]\n\tthreads = 4\n");
        assert_eq!(f.handover(), Some("index.threads = 4"));
    }

    #[test]
    fn format_names_are_exact_and_need_a_value_as_in_git() {
        let v1 = |ext: &str| {
            format(&format!(
                "[core]\n\trepositoryformatversion = 1\n[extensions]\n\t{ext}\n"
            ))
        };
        assert!(v1("objectFormat = SHA256").object_format().is_err());
        assert!(v1("objectFormat").object_format().is_err());
        assert_eq!(
            v1("objectFormat = sha256").object_format(),
            Ok(ObjectFormat::Sha256)
        );
        assert!(v1("refStorage = Reftable").ref_storage().is_err());
        assert!(v1("refStorage").ref_storage().is_err());
        assert_eq!(
            v1("refStorage = reftable").ref_storage(),
            Ok(RefStorage::Reftable)
        );
    }
}
