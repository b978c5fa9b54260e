//! Remote configuration, kept in the store: `remotes.json` (written atomically, under the
//! flock of `remotes.lock`), and per remote a cache directory `remote-cache/<name>/` holding
//! the pack indexes already read (checked against their names) and the names last seen on the
//! remote (for the conditional name update). Credentials are never part of it.

use std::ffi::OsStr;
use std::io;
use std::os::fd::AsFd;
use std::path::PathBuf;

use cowtree_fs::dir::Dir;
use cowtree_store::Store;
use rustix::fs::{FlockOperation, Mode, OFlags, flock, openat};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

const FILE: &str = "remotes.json";
const LOCK: &str = "remotes.lock";
/// The directory under the store root that holds each remote's cache.
pub const CACHE: &str = "remote-cache";

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
        if !path.starts_with('/') {
            return bad("a file:// URL needs an absolute path (file:///dir)");
        }
        return Ok(Location::File(PathBuf::from(path)));
    }
    bad("expected s3://bucket/prefix or file:///path")
}

/// Checks a remote name: the rules of snapshot names.
pub fn validate_name(name: &str) -> Result<()> {
    cowtree_store::refs::validate_name(name)
        .map_err(|_| Error::Config(format!("invalid remote name {name:?}: use letters, digits, '-', '_' or '.', not starting with '.' or '-'")))
}

struct Locked {
    _fd: std::os::fd::OwnedFd,
}

fn lock(store: &Store) -> Result<Locked> {
    let dir = Dir::open(store.root()).map_err(|e| io_at(store.root().to_path_buf(), e))?;
    let fd = openat(
        &dir,
        LOCK,
        OFlags::RDONLY | OFlags::CREATE | OFlags::CLOEXEC | OFlags::NOFOLLOW,
        Mode::from_raw_mode(0o644),
    )
    .map_err(|e| io_at(store.root().join(LOCK), e.into()))?;
    flock(&fd, FlockOperation::LockExclusive)
        .map_err(|e| io_at(store.root().join(LOCK), e.into()))?;
    Ok(Locked { _fd: fd })
}

fn io_at(path: PathBuf, source: io::Error) -> Error {
    Error::Io { path, source }
}

fn read(store: &Store) -> Result<File> {
    let path = store.root().join(FILE);
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

fn write(store: &Store, f: &File) -> Result<()> {
    let dir = Dir::open(store.root()).map_err(|e| io_at(store.root().to_path_buf(), e))?;
    let mut bytes = serde_json::to_vec_pretty(f).expect("a config of strings serializes");
    bytes.push(b'\n');
    cowtree_fs::dir::write_atomic(dir.as_fd(), OsStr::new(FILE), &bytes, 0o644, true)
        .map_err(|e| io_at(store.root().join(FILE), e))
}

/// Every configured remote, in the order added.
pub fn list(store: &Store) -> Result<Vec<RemoteConfig>> {
    Ok(read(store)?.remotes)
}

/// The remote called `name`.
pub fn get(store: &Store, name: &str) -> Result<RemoteConfig> {
    list(store)?
        .into_iter()
        .find(|r| r.name == name)
        .ok_or_else(|| {
            Error::Config(format!(
                "no remote named {name:?} (see `cowtree remote ls`)"
            ))
        })
}

/// The remote to use when none is named: `origin` if there is one, else the only remote.
pub fn default_remote(store: &Store) -> Result<RemoteConfig> {
    let all = list(store)?;
    if let Some(o) = all.iter().find(|r| r.name == "origin") {
        return Ok(o.clone());
    }
    match all.as_slice() {
        [one] => Ok(one.clone()),
        [] => Err(Error::Config(
            "no remote configured (add one with `cowtree remote add NAME URL`)".into(),
        )),
        _ => Err(Error::Config(
            "several remotes and none is called origin: name one with --remote".into(),
        )),
    }
}

/// Adds a remote; the name must be new and the URL valid.
pub fn add(store: &Store, remote: RemoteConfig) -> Result<()> {
    validate_name(&remote.name)?;
    parse_url(&remote.url)?;
    if let Some(e) = &remote.endpoint
        && !(e.starts_with("http://") || e.starts_with("https://"))
    {
        return Err(Error::Config(format!(
            "endpoint {e:?}: expected http://host:port or https://host"
        )));
    }
    let _l = lock(store)?;
    let mut f = read(store)?;
    if f.remotes.iter().any(|r| r.name == remote.name) {
        return Err(Error::Config(format!(
            "a remote named {:?} exists (remove it first with `cowtree remote rm`)",
            remote.name
        )));
    }
    // A cache left by an earlier remote of this name must not be taken for this one's.
    remove_cache(store, &remote.name)?;
    f.remotes.push(remote);
    write(store, &f)
}

/// Removes a remote and its cache.
pub fn remove(store: &Store, name: &str) -> Result<()> {
    let _l = lock(store)?;
    let mut f = read(store)?;
    let before = f.remotes.len();
    f.remotes.retain(|r| r.name != name);
    if f.remotes.len() == before {
        return Err(Error::Config(format!("no remote named {name:?}")));
    }
    write(store, &f)?;
    remove_cache(store, name)
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

/// The cache directory of remote `name` (`remote-cache/<name>/`, with `idx/` and `names/`),
/// created on demand.
pub fn cache_dir(store: &Store, name: &str) -> Result<(Dir, PathBuf)> {
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
        assert_eq!(
            parse_url("file:///srv/x").unwrap(),
            Location::File(PathBuf::from("/srv/x"))
        );
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
