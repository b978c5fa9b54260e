//! Remote configuration. Remotes are the user's: `remotes.json` in the user's configuration
//! directory ([`user_dir`]: `$XDG_CONFIG_HOME/cowtree`, else `~/.config/cowtree`), usable from
//! every store. A store may override one, or add its own: the `remotes.json` in its root (the
//! file where every remote was kept before remotes were the user's, read as it was, so such
//! remotes keep working from that store). Each file is written atomically under the flock of
//! `remotes.lock` beside it. Credentials are never part of either: they come from the AWS
//! environment or profile.
//!
//! Per store and remote, a cache directory `remote-cache/<name>/` holds the pack indexes
//! already read (checked against their names) and the names last seen on the remote (for the
//! conditional name update), with a file `remote` naming the remote it is for: a cache of
//! another remote of the same name (one removed and added again with another URL, from any
//! store) is emptied before use.

use std::ffi::OsStr;
use std::io;
use std::path::{Path, PathBuf};

use cowtree_fs::dir::Dir;
use cowtree_fs::sys::AsFd;
use cowtree_store::Store;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

const FILE: &str = "remotes.json";
const LOCK: &str = "remotes.lock";
/// The directory under the store root that holds each remote's cache.
pub const CACHE: &str = "remote-cache";
/// The file in a remote's cache that names the remote it is for.
const CACHE_OWNER: &str = "remote";

/// The user's configuration directory for cowtree: `$XDG_CONFIG_HOME/cowtree`, else
/// (Windows) `%APPDATA%\\cowtree`, else `~/.config/cowtree`.
pub fn user_dir() -> Result<PathBuf> {
    let var = |v: &str| {
        std::env::var_os(v)
            .filter(|s| !s.is_empty())
            .map(PathBuf::from)
    };
    if let Some(p) = var("XDG_CONFIG_HOME") {
        return Ok(p.join("cowtree"));
    }
    // Windows keeps a user's settings in the roaming application data folder.
    #[cfg(windows)]
    if let Some(p) = var("APPDATA") {
        return Ok(p.join("cowtree"));
    }
    if let Some(h) = var("HOME") {
        return Ok(h.join(".config/cowtree"));
    }
    Err(Error::Config(
        "cannot locate the remotes file: neither XDG_CONFIG_HOME nor HOME is set".into(),
    ))
}

/// Where a remote is configured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// In the user's configuration: usable from every store.
    User,
    /// In one store (an override of the user's remote of the same name, or one of its own).
    Store(PathBuf),
}

impl Scope {
    /// `user` or `store`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Scope::User => "user",
            Scope::Store(_) => "store",
        }
    }
}

/// A remote as configured, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Configured {
    /// The remote.
    pub config: RemoteConfig,
    /// Where it is configured.
    pub scope: Scope,
    /// A user's remote of the same name that this one (a store's) overrides.
    pub overrides: Option<RemoteConfig>,
}

/// Where a remote's objects live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// An S3 bucket and a key prefix (empty, or without leading and trailing `/`).
    S3 {
        /// The bucket.
        bucket: String,
        /// The key prefix.
        prefix: String,
    },
    /// A directory on a local (or network) filesystem.
    File(PathBuf),
}

/// One configured remote.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemoteConfig {
    /// The remote's name.
    pub name: String,
    /// `s3://bucket/prefix` or `file:///path`.
    pub url: String,
    /// An S3 endpoint other than AWS's (e.g. `http://127.0.0.1:8333`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// The S3 region.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
}

impl RemoteConfig {
    /// The parsed URL.
    pub fn location(&self) -> Result<Location> {
        parse_url(&self.url)
    }
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct File {
    version: u32,
    remotes: Vec<RemoteConfig>,
}

/// Parses `s3://bucket[/prefix]` or `file:///absolute/path`.
pub fn parse_url(url: &str) -> Result<Location> {
    let bad = |why: &str| Err(Error::Config(format!("remote URL {url:?}: {why}")));
    if let Some(rest) = url.strip_prefix("s3://") {
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        let bucket_ok = (3..=63).contains(&bucket.len())
            && bucket
                .bytes()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-' || c == b'.');
        if !bucket_ok {
            return bad("the bucket name must be 3-63 lowercase letters, digits, '-' or '.'");
        }
        let prefix = prefix.trim_matches('/');
        if prefix
            .split('/')
            .any(|c| c == "." || c == ".." || (c.is_empty() && !prefix.is_empty()))
            || prefix.chars().any(|c| c.is_control())
        {
            return bad(
                "the key prefix has an empty, '.' or '..' component or a control character",
            );
        }
        return Ok(Location::S3 {
            bucket: bucket.to_string(),
            prefix: prefix.to_string(),
        });
    }
    if let Some(path) = url.strip_prefix("file://") {
        return match file_url_path(path) {
            Some(p) => Ok(Location::File(p)),
            None => bad(FILE_URL_NEEDS),
        };
    }
    bad("expected s3://bucket/prefix or file:///path")
}

#[cfg(unix)]
const FILE_URL_NEEDS: &str = "a file:// URL needs an absolute path (file:///dir)";
#[cfg(windows)]
const FILE_URL_NEEDS: &str = "a file:// URL needs an absolute path with its drive (file:///C:/dir)";

/// The directory of a `file://` URL (what follows `file://`): an absolute path.
#[cfg(unix)]
fn file_url_path(path: &str) -> Option<PathBuf> {
    path.starts_with('/').then(|| PathBuf::from(path))
}

/// The directory of a `file://` URL (what follows `file://`) on Windows: `/C:/dir` (the form
/// of `file:///C:/dir`, `/` or `\\` after the drive) is `C:/dir`; anything else that is not
/// an absolute path with a drive (a `\\server\share` path, a path relative to a drive) is
/// refused.
#[cfg(windows)]
fn file_url_path(path: &str) -> Option<PathBuf> {
    let b = path.as_bytes();
    let drive = b.len() >= 4
        && b[0] == b'/'
        && b[1].is_ascii_alphabetic()
        && b[2] == b':'
        && matches!(b[3], b'/' | b'\\');
    drive.then(|| PathBuf::from(&path[1..]))
}

/// Checks a remote name: the rules of snapshot names.
pub fn validate_name(name: &str) -> Result<()> {
    cowtree_store::refs::validate_name(name)
        .map_err(|_| Error::Config(format!("invalid remote name {name:?}: use letters, digits, '-', '_' or '.', not starting with '.' or '-'")))
}

struct Locked {
    _file: std::fs::File,
}

/// Where one `remotes.json` is: the user's configuration directory or a store's root.
fn file_dir(scope: &Scope) -> Result<PathBuf> {
    match scope {
        Scope::User => user_dir(),
        Scope::Store(root) => Ok(root.clone()),
    }
}

fn lock(dir: &Path) -> Result<Locked> {
    let d = Dir::open(dir).map_err(|e| io_at(dir.to_path_buf(), e))?;
    let file =
        crate::os::open_lock_file(&d, OsStr::new(LOCK)).map_err(|e| io_at(dir.join(LOCK), e))?;
    cowtree_fs::file_lock::lock(&file, cowtree_fs::file_lock::LockKind::Exclusive)
        .map_err(|e| io_at(dir.join(LOCK), e))?;
    Ok(Locked { _file: file })
}

fn io_at(path: PathBuf, source: io::Error) -> Error {
    Error::Io { path, source }
}

fn read(dir: &Path) -> Result<File> {
    let path = dir.join(FILE);
    match std::fs::read(&path) {
        Ok(bytes) => {
            let f: File = serde_json::from_slice(&bytes)
                .map_err(|e| Error::Config(format!("{}: {e}", path.display())))?;
            if f.version != 1 {
                return Err(Error::Config(format!(
                    "{}: version {} is not supported (this cowtree reads version 1)",
                    path.display(),
                    f.version
                )));
            }
            Ok(f)
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(File {
            version: 1,
            remotes: Vec::new(),
        }),
        Err(e) => Err(io_at(path, e)),
    }
}

fn write(dir: &Path, f: &File) -> Result<()> {
    let d = Dir::open(dir).map_err(|e| io_at(dir.to_path_buf(), e))?;
    let mut bytes = serde_json::to_vec_pretty(f).expect("a config of strings serializes");
    bytes.push(b'\n');
    cowtree_fs::atomic_file::write_atomic(d.as_fd(), OsStr::new(FILE), &bytes, 0o644, true)
        .map_err(|e| io_at(dir.join(FILE), e))
}

/// Every remote usable from `store` (or from no store), in the order added: the user's, each
/// replaced by the store's remote of the same name when the store has one, then the store's
/// own.
pub fn list(store: Option<&Store>) -> Result<Vec<Configured>> {
    let mut out: Vec<Configured> = read(&user_dir()?)?
        .remotes
        .into_iter()
        .map(|config| Configured {
            config,
            scope: Scope::User,
            overrides: None,
        })
        .collect();
    if let Some(store) = store {
        let scope = Scope::Store(store.root().to_path_buf());
        for config in read(store.root())?.remotes {
            match out.iter_mut().find(|c| c.config.name == config.name) {
                Some(c) => {
                    c.overrides = Some(std::mem::replace(&mut c.config, config));
                    c.scope = scope.clone();
                }
                None => out.push(Configured {
                    config,
                    scope: scope.clone(),
                    overrides: None,
                }),
            }
        }
    }
    Ok(out)
}

/// The remote called `name`, as usable from `store` (see [`list`]).
pub fn get(store: Option<&Store>, name: &str) -> Result<RemoteConfig> {
    list(store)?
        .into_iter()
        .find(|r| r.config.name == name)
        .map(|r| r.config)
        .ok_or_else(|| {
            Error::Config(format!(
                "no remote named {name:?} (`cowtree remote ls` lists the remotes)"
            ))
        })
}

/// The remote to use when none is named: `origin` if there is one, else the only remote.
pub fn default_remote(store: Option<&Store>) -> Result<RemoteConfig> {
    let all: Vec<RemoteConfig> = list(store)?.into_iter().map(|c| c.config).collect();
    if let Some(o) = all.iter().find(|r| r.name == "origin") {
        return Ok(o.clone());
    }
    match all.as_slice() {
        [one] => Ok(one.clone()),
        [] => Err(Error::Config(
            "no remote configured (`cowtree remote add --help` says how to add one)".into(),
        )),
        _ => Err(Error::Config(
            "several remotes and none is called origin: name one with --remote".into(),
        )),
    }
}

/// Adds a remote where `scope` says (the user's configuration, created when missing, or a
/// store); the name must be new there and the URL valid.
pub fn add(scope: &Scope, remote: RemoteConfig) -> Result<()> {
    validate_name(&remote.name)?;
    parse_url(&remote.url)?;
    if let Some(e) = &remote.endpoint
        && !(e.starts_with("http://") || e.starts_with("https://"))
    {
        return Err(Error::Config(format!(
            "endpoint {e:?}: expected http://host:port or https://host"
        )));
    }
    let dir = file_dir(scope)?;
    if *scope == Scope::User {
        std::fs::create_dir_all(&dir).map_err(|e| io_at(dir.clone(), e))?;
    }
    let _l = lock(&dir)?;
    let mut f = read(&dir)?;
    if f.remotes.iter().any(|r| r.name == remote.name) {
        let flag = match scope {
            Scope::User => "",
            Scope::Store(_) => " --in-store",
        };
        let store = match scope {
            Scope::User => String::new(),
            Scope::Store(root) => format!(" --store {}", cowtree_store::error::shell_word(root)),
        };
        return Err(Error::Config(format!(
            "a remote named {:?} exists in {} (remove it first with `cowtree{store} remote rm{flag} {}`)",
            remote.name,
            dir.join(FILE).display(),
            cowtree_store::error::shell_word(&remote.name)
        )));
    }
    f.remotes.push(remote);
    write(&dir, &f)
}

/// Removes the remote `name` from the user's configuration and from `store`'s (only from the
/// store's when `store_only`), and `store`'s cache of it; returns where it was removed from.
/// Not configured in either is an error. The remote's data is left alone.
pub fn remove(store: Option<&Store>, name: &str, store_only: bool) -> Result<Vec<Scope>> {
    let mut places: Vec<Scope> = Vec::new();
    if !store_only {
        places.push(Scope::User);
    }
    if let Some(s) = store {
        places.push(Scope::Store(s.root().to_path_buf()));
    }
    let mut removed = Vec::new();
    for scope in places {
        let dir = file_dir(&scope)?;
        if !dir.join(FILE).exists() {
            continue;
        }
        let _l = lock(&dir)?;
        let mut f = read(&dir)?;
        let before = f.remotes.len();
        f.remotes.retain(|r| r.name != name);
        if f.remotes.len() != before {
            write(&dir, &f)?;
            removed.push(scope);
        }
    }
    if removed.is_empty() {
        return Err(Error::Config(format!(
            "no remote named {name:?}{} (`cowtree remote ls` lists the remotes)",
            if store_only { " in the store" } else { "" }
        )));
    }
    if let Some(s) = store {
        remove_cache(s, name)?;
    }
    Ok(removed)
}

fn remove_cache(store: &Store, name: &str) -> Result<()> {
    let root = Dir::open(store.root()).map_err(|e| io_at(store.root().to_path_buf(), e))?;
    let cache = match root.open_dir(OsStr::new(CACHE)) {
        Ok(d) => d,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io_at(store.root().join(CACHE), e)),
    };
    match cache.remove_tree(OsStr::new(name)) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io_at(store.root().join(CACHE).join(name), e)),
    }
}

/// What names a remote for its cache: its URL and endpoint.
fn owner_of(remote: &RemoteConfig) -> String {
    format!(
        "{}\n{}\n",
        remote.url,
        remote.endpoint.as_deref().unwrap_or("")
    )
}

/// The cache directory of `remote` in `store` (`remote-cache/<name>/`, with `idx/` and
/// `names/`), created on demand. A cache made for another remote of the same name (another
/// URL or endpoint) is emptied first; one made before caches named their remote is taken as
/// this remote's.
pub fn cache_dir(store: &Store, remote: &RemoteConfig) -> Result<(Dir, PathBuf)> {
    let name = remote.name.as_str();
    validate_name(name)?;
    let path = store.root().join(CACHE).join(name);
    let root = Dir::open(store.root()).map_err(|e| io_at(store.root().to_path_buf(), e))?;
    let mut d = root;
    for part in [CACHE, name] {
        d = match d.open_dir(OsStr::new(part)) {
            Ok(x) => x,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                match d.create_dir_open(OsStr::new(part), 0o755) {
                    Ok(x) => x,
                    Err(e) if e.kind() == io::ErrorKind::AlreadyExists => d
                        .open_dir(OsStr::new(part))
                        .map_err(|e| io_at(path.clone(), e))?,
                    Err(e) => return Err(io_at(path.clone(), e)),
                }
            }
            Err(e) => return Err(io_at(path.clone(), e)),
        };
    }
    let owner = owner_of(remote);
    let owner_path = || path.join(CACHE_OWNER);
    let found = crate::os::read_if_exists(&d, OsStr::new(CACHE_OWNER))
        .map_err(|e| io_at(owner_path(), e))?;
    if found.as_deref() != Some(owner.as_bytes()) {
        // Another remote's: what it read and saw is not this one's. (None: a cache made before
        // caches named their remote, when a store's one remote of a name owned it.)
        if found.is_some() {
            for sub in ["idx", "names"] {
                match d.remove_tree(OsStr::new(sub)) {
                    Err(e) if e.kind() != io::ErrorKind::NotFound => {
                        return Err(io_at(path.join(sub), e));
                    }
                    _ => {}
                }
            }
        }
        cowtree_fs::atomic_file::write_atomic(
            &d,
            OsStr::new(CACHE_OWNER),
            owner.as_bytes(),
            0o644,
            false,
        )
        .map_err(|e| io_at(owner_path(), e))?;
    }
    for sub in ["idx", "names"] {
        match d.create_dir(OsStr::new(sub), 0o755) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(io_at(path.join(sub), e)),
        }
    }
    Ok((d, path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cache_made_for_another_remote_of_the_same_name_is_emptied_and_a_legacy_one_kept() {
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::open(&tmp.path().join("store")).unwrap();
        let cfg = |url: &str| RemoteConfig {
            name: "origin".into(),
            url: url.into(),
            endpoint: None,
            region: None,
        };
        let idx = tmp.path().join("store/remote-cache/origin/idx/x");
        // A cache from before caches named their remote: taken as this remote's.
        std::fs::create_dir_all(idx.parent().unwrap()).unwrap();
        std::fs::write(&idx, b"i").unwrap();
        cache_dir(&store, &cfg("s3://one/a")).unwrap();
        assert!(idx.exists(), "a legacy cache is kept");
        cache_dir(&store, &cfg("s3://one/a")).unwrap();
        assert!(idx.exists(), "the same remote keeps its cache");
        cache_dir(&store, &cfg("s3://two/b")).unwrap();
        assert!(!idx.exists(), "another remote's cache is emptied");
        assert!(idx.parent().unwrap().is_dir(), "and made again");
    }

    #[test]
    fn urls_parse_and_bad_ones_are_refused() {
        assert_eq!(
            parse_url("s3://my-bucket/a/b/").unwrap(),
            Location::S3 {
                bucket: "my-bucket".into(),
                prefix: "a/b".into()
            }
        );
        assert_eq!(
            parse_url("s3://bkt").unwrap(),
            Location::S3 {
                bucket: "bkt".into(),
                prefix: String::new()
            }
        );
        #[cfg(unix)]
        assert_eq!(
            parse_url("file:///srv/x").unwrap(),
            Location::File(PathBuf::from("/srv/x"))
        );
        #[cfg(windows)]
        {
            assert_eq!(
                parse_url("file:///C:/srv/x").expect("a file URL with a drive"),
                Location::File(PathBuf::from("C:/srv/x"))
            );
            for bad in [
                "file:///srv/x",
                "file://C:/x",
                "file:///C:",
                "file:////server/share",
            ] {
                assert!(parse_url(bad).is_err(), "{bad} accepted");
            }
        }
        for bad in [
            "s3://",
            "s3://UPPER/x",
            "s3://ok-bucket/a/../b",
            "s3://ok-bucket/a//b",
            "file://relative",
            "http://x",
            "",
        ] {
            assert!(parse_url(bad).is_err(), "{bad} accepted");
        }
    }
}
