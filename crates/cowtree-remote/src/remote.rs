//! An open remote: the object store client, the runtime its requests run on, and the few
//! request shapes push and pull use (each one counted, each error classified).
//!
//! The tokio runtime lives here and nowhere else: callers stay synchronous and get results.

use std::ops::Range;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::path::Path as Key;
use object_store::{
    BackoffConfig, ClientOptions, ObjectStore, PutMode, PutOptions, PutPayload, RetryConfig,
    UpdateVersion,
};

use crate::config::{Location, RemoteConfig};
use crate::error::{Error, Result};

/// The version file at the root of every remote.
pub const VERSION_KEY: &str = "cowtree-remote";
/// Its content, as this version writes it: layout 2 is layout 1 with lock objects
/// (`locks/`), which every writer takes, so that `remote gc` may delete. A cowtree that reads
/// only layout 1 refuses such a remote (it takes no locks, so its pushes would not be safe
/// from a gc).
pub const VERSION_TEXT: &str = "cowtree-remote 2\n";
/// The version file of a remote made before remote gc existed: read and pushed to as it is;
/// `remote gc`, `remote forget` and `remote rm` rewrite it to [`VERSION_TEXT`] first.
pub const VERSION_1_TEXT: &str = "cowtree-remote 1\n";

/// An open remote.
pub struct Remote {
    name: String,
    /// How it is configured.
    config: RemoteConfig,
    store: Arc<dyn ObjectStore>,
    /// The same store, making each request once (see [`Remote::check_reachable`]).
    probe: Arc<dyn ObjectStore>,
    /// The server's URL, for messages.
    endpoint: String,
    prefix: String,
    /// The bucket of an S3 remote, for messages.
    bucket: Option<String>,
    /// For a file:// remote, its directory (names are updated under a lock file there).
    file_root: Option<PathBuf>,
    pub(crate) rt: tokio::runtime::Runtime,
    requests: Arc<AtomicU64>,
}

/// What a listing says of one object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    /// Its key relative to the remote's prefix (`packs/x.idx`).
    pub rel: String,
    /// Its size in bytes.
    pub size: u64,
    /// Its Last-Modified time, by the server's clock, in ms since the epoch.
    pub modified_ms: i64,
}

/// The parts of a [`Remote`] a task on its runtime needs (the lock refresher): cheap to
/// clone, `'static`.
#[derive(Clone)]
pub(crate) struct Handle {
    pub(crate) store: Arc<dyn ObjectStore>,
    pub(crate) file_root: Option<PathBuf>,
    pub(crate) requests: Arc<AtomicU64>,
}

/// What a name object holds, and its version for a conditional update.
#[derive(Debug, Clone)]
pub struct NameState {
    /// The snapshot id text.
    pub body: String,
    /// The ETag (and version) of that object.
    pub version: UpdateVersion,
}

/// What a conditional name write expects to find.
#[derive(Debug, Clone)]
pub enum Expect {
    /// No object.
    Absent,
    /// This version of the object.
    Version(UpdateVersion),
}

impl Remote {
    /// Opens `cfg`: builds the client (credentials from the environment or the AWS profile
    /// file; never stored) and checks with one listing that the bucket or directory exists and
    /// the credentials are accepted.
    pub fn open(cfg: &RemoteConfig) -> Result<Remote> {
        Remote::open_with(cfg, None)
    }

    /// [`Remote::open`] with explicit S3 credentials (access key id, secret), for callers that
    /// hold them elsewhere; `None` takes them from the environment as `open` does.
    pub fn open_with(cfg: &RemoteConfig, credentials: Option<(&str, &str)>) -> Result<Remote> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("cowtree-remote")
            .enable_all()
            .build()
            .map_err(|e| Error::Config(format!("remote {}: start the runtime: {e}", cfg.name)))?;
        let mut bucket_name = None;
        let endpoint;
        type Stores = (Arc<dyn ObjectStore>, Arc<dyn ObjectStore>);
        let ((store, probe), prefix, file_root): (Stores, String, Option<PathBuf>) = match cfg
            .location()?
        {
            Location::File(path) => {
                if !path.is_dir() {
                    return Err(Error::NoBucket {
                        remote: cfg.name.clone(),
                        what: format!("directory {}", path.display()),
                    });
                }
                let fs = LocalFileSystem::new_with_prefix(&path).map_err(|e| {
                    Error::Config(format!("remote {}: {}: {e}", cfg.name, path.display()))
                })?;
                endpoint = format!("file://{}", path.display());
                let fs: Arc<dyn ObjectStore> = Arc::new(fs);
                ((Arc::clone(&fs), fs), String::new(), Some(path))
            }
            Location::S3 { bucket, prefix } => {
                bucket_name = Some(bucket.clone());
                let mut b = AmazonS3Builder::from_env()
                    .with_bucket_name(&bucket)
                    .with_retry(retry_config())
                    .with_client_options(client_options(cfg.endpoint.as_deref()));
                if let Some((key, secret)) = credentials {
                    b = b.with_access_key_id(key).with_secret_access_key(secret);
                } else if std::env::var_os("AWS_ACCESS_KEY_ID").is_none()
                    && let Some(c) = profile_credentials()
                {
                    b = b.with_access_key_id(c.key).with_secret_access_key(c.secret);
                    if let Some(t) = c.token {
                        b = b.with_token(t);
                    }
                }
                if let Some(e) = &cfg.endpoint {
                    b = b.with_endpoint(e).with_allow_http(e.starts_with("http://"));
                }
                if let Some(r) = &cfg.region {
                    b = b.with_region(r);
                }
                endpoint = match &cfg.endpoint {
                    Some(e) => e.clone(),
                    None => format!(
                        "the AWS S3 endpoint of bucket {bucket:?} (region {})",
                        cfg.region
                            .clone()
                            .or_else(|| std::env::var("AWS_REGION").ok())
                            .unwrap_or_else(|| "us-east-1".into())
                    ),
                };
                let built = |b: AmazonS3Builder| {
                    b.build()
                        .map_err(|e| Error::Config(format!("remote {}: {}", cfg.name, flatten(&e))))
                };
                // The first request is made once, with a shorter connect timeout: a server
                // that refuses the connection is said so at once, not after retries.
                let probe = built(
                    b.clone()
                        .with_retry(RetryConfig {
                            max_retries: 0,
                            ..retry_config()
                        })
                        .with_client_options(
                            client_options(cfg.endpoint.as_deref())
                                .with_connect_timeout(PROBE_CONNECT_TIMEOUT),
                        ),
                )?;
                let s3 = built(b)?;
                ((Arc::new(s3), Arc::new(probe)), prefix, None)
            }
        };
        let remote = Remote {
            name: cfg.name.clone(),
            config: cfg.clone(),
            store,
            probe,
            endpoint,
            prefix,
            bucket: bucket_name,
            file_root,
            rt,
            requests: Arc::new(AtomicU64::new(0)),
        };
        remote.check_reachable(cfg)?;
        Ok(remote)
    }

    /// One listing of the prefix: the bucket exists and the credentials are accepted. Made
    /// first without retries: a server that cannot be reached (a refused connection, a name
    /// that does not resolve, a connect timeout) is [`Error::Unreachable`] at once; any other
    /// failure is asked again with the retries every request gets (a busy server may answer
    /// the second time).
    fn check_reachable(&self, cfg: &RemoteConfig) -> Result<()> {
        let key = self.key("");
        self.count(1);
        let first = self.rt.block_on(self.probe.list_with_delimiter(Some(&key)));
        let r = match first {
            Ok(found) => Ok(found),
            Err(e) if cannot_connect(&e).is_some() => return Err(self.fail("", e)),
            Err(_) => {
                self.count(1);
                self.rt.block_on(self.store.list_with_delimiter(Some(&key)))
            }
        };
        match r {
            Ok(_) => Ok(()),
            Err(object_store::Error::NotFound { .. }) => Err(Error::NoBucket {
                remote: self.name.clone(),
                what: match cfg.location()? {
                    Location::S3 { bucket, .. } => format!("bucket {bucket:?}"),
                    Location::File(p) => format!("directory {}", p.display()),
                },
            }),
            Err(e) => Err(self.fail("", e)),
        }
    }

    /// Runs one of the request helpers below to completion on the remote's runtime.
    pub fn block_on<F: std::future::Future>(&self, f: F) -> F::Output {
        self.rt.block_on(f)
    }

    /// The remote's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The remote's configuration.
    pub fn config(&self) -> &RemoteConfig {
        &self.config
    }

    /// Requests made so far.
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    pub(crate) fn count(&self, n: u64) {
        self.requests.fetch_add(n, Ordering::Relaxed);
    }

    /// The full key of `rel` under the remote's prefix.
    pub fn key(&self, rel: &str) -> Key {
        match (self.prefix.is_empty(), rel.is_empty()) {
            (true, _) => Key::from(rel),
            (false, true) => Key::from(self.prefix.as_str()),
            (false, false) => Key::from(format!("{}/{rel}", self.prefix)),
        }
    }

    /// Turns an object store error into ours; `NotFound` is the caller's to handle first.
    /// Some S3 answers reach us only as text (a listing's errors are not typed), so the
    /// standard S3 error codes are looked for in it.
    pub(crate) fn fail(&self, rel: &str, e: object_store::Error) -> Error {
        if let Some(cause) = cannot_connect(&e) {
            return Error::Unreachable {
                remote: self.name.clone(),
                endpoint: self.endpoint.clone(),
                cause,
            };
        }
        let text = flatten(&e);
        let code = text
            .split_once("<Code>")
            .and_then(|(_, rest)| rest.split_once("</Code>"))
            .map(|(c, _)| c.to_string());
        let auth = |detail: String| Error::Auth {
            remote: self.name.clone(),
            detail,
        };
        match code.as_deref() {
            Some("NoSuchBucket") => {
                return Error::NoBucket {
                    remote: self.name.clone(),
                    what: format!("bucket {:?}", self.bucket.as_deref().unwrap_or("?")),
                };
            }
            Some(
                c @ ("AccessDenied"
                | "InvalidAccessKeyId"
                | "SignatureDoesNotMatch"
                | "InvalidToken"
                | "ExpiredToken"
                | "AllAccessDisabled"),
            ) => return auth(format!("the server answered {c}")),
            _ => {}
        }
        if text.contains("169.254.169.254") {
            return auth(
                "no credentials in the environment or the profile file, and no \
                         instance metadata service to ask"
                    .into(),
            );
        }
        match e {
            object_store::Error::PermissionDenied { .. }
            | object_store::Error::Unauthenticated { .. } => auth(text),
            e if text.contains("403 Forbidden") => auth(flatten(&e)),
            e => Error::Request {
                remote: self.name.clone(),
                key: self.key(rel).to_string(),
                source: Box::new(e),
            },
        }
    }

    /// GETs a whole object; `None` when it does not exist.
    pub async fn get(&self, rel: &str) -> Result<Option<Bytes>> {
        self.count(1);
        let r = match self.store.get(&self.key(rel)).await {
            Ok(r) => r,
            Err(object_store::Error::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(self.fail(rel, e)),
        };
        r.bytes().await.map(Some).map_err(|e| self.fail(rel, e))
    }

    /// GETs a name object with its version; `None` when it does not exist.
    pub async fn get_name(&self, rel: &str) -> Result<Option<NameState>> {
        self.count(1);
        let r = match self.store.get(&self.key(rel)).await {
            Ok(r) => r,
            Err(object_store::Error::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(self.fail(rel, e)),
        };
        let version = UpdateVersion {
            e_tag: r.meta.e_tag.clone(),
            version: r.meta.version.clone(),
        };
        let bytes = r.bytes().await.map_err(|e| self.fail(rel, e))?;
        Ok(Some(NameState {
            body: String::from_utf8_lossy(&bytes).into_owned(),
            version,
        }))
    }

    /// GETs an object as a stream of chunks.
    pub async fn get_stream(
        &self,
        rel: &str,
    ) -> Result<futures::stream::BoxStream<'static, object_store::Result<Bytes>>> {
        self.count(1);
        match self.store.get(&self.key(rel)).await {
            Ok(r) => Ok(r.into_stream()),
            Err(object_store::Error::NotFound { .. }) => Err(Error::Missing {
                remote: self.name.clone(),
                what: format!("object {} does not exist", self.key(rel)),
            }),
            Err(e) => Err(self.fail(rel, e)),
        }
    }

    /// GETs a byte range; the answer must be exactly that long.
    pub async fn get_range(&self, rel: &str, range: Range<u64>) -> Result<Bytes> {
        self.count(1);
        let want = range.end - range.start;
        let b = match self.store.get_range(&self.key(rel), range.clone()).await {
            Ok(b) => b,
            Err(object_store::Error::NotFound { .. }) => {
                return Err(Error::Missing {
                    remote: self.name.clone(),
                    what: format!("object {} does not exist", self.key(rel)),
                });
            }
            Err(e) => return Err(self.fail(rel, e)),
        };
        if b.len() as u64 != want {
            return Err(Error::Corrupt {
                remote: self.name.clone(),
                key: self.key(rel).to_string(),
                detail: format!(
                    "asked for bytes {}..{}, got {} bytes (object shorter than its index says)",
                    range.start,
                    range.end,
                    b.len()
                ),
            });
        }
        Ok(b)
    }

    /// Creates an immutable object (`If-None-Match: *`); one that exists already counts as
    /// success, since an object's name fixes its content. True when this call created it.
    pub async fn put_immutable(&self, rel: &str, bytes: Bytes) -> Result<bool> {
        self.count(1);
        let opts = PutOptions {
            mode: PutMode::Create,
            ..Default::default()
        };
        match self
            .store
            .put_opts(&self.key(rel), PutPayload::from_bytes(bytes), opts)
            .await
        {
            Ok(_) => Ok(true),
            Err(object_store::Error::AlreadyExists { .. }) => Ok(false),
            Err(e) => Err(self.fail(rel, e)),
        }
    }

    /// True when the object exists.
    pub async fn exists(&self, rel: &str) -> Result<bool> {
        self.count(1);
        match self.store.head(&self.key(rel)).await {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(self.fail(rel, e)),
        }
    }

    /// Uploads a large object in parts from `file`, checking that its bytes hash to `hash`
    /// before completing the upload (a mismatch aborts it).
    pub async fn put_large(
        &self,
        rel: &str,
        file: &mut std::fs::File,
        hash: &cowtree_store::Hash,
        on_part: &(dyn Fn(u64) + Sync),
    ) -> Result<()> {
        use std::io::Read;
        const PART: usize = 16 << 20;
        let key = self.key(rel);
        self.count(2);
        let upload = self
            .store
            .put_multipart(&key)
            .await
            .map_err(|e| self.fail(rel, e))?;
        let mut w = object_store::WriteMultipart::new_with_chunk_size(upload, PART);
        let mut hasher = blake3::Hasher::new();
        let mut buf = vec![0u8; PART];
        loop {
            if let Err(e) = w.wait_for_capacity(1).await {
                return Err(self.fail(rel, e));
            }
            let n = match file.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    let _ = w.abort().await;
                    return Err(Error::Io {
                        path: PathBuf::from(format!("blob {hash}")),
                        source: e,
                    });
                }
            };
            hasher.update(&buf[..n]);
            self.count(1);
            w.write(&buf[..n]);
            on_part(n as u64);
        }
        if cowtree_store::Hash::from_bytes(*hasher.finalize().as_bytes()) != *hash {
            let _ = w.abort().await;
            return Err(Error::BadLocalBlob {
                store: PathBuf::new(),
                blob: PathBuf::from(format!("{hash}")),
            });
        }
        w.finish().await.map_err(|e| self.fail(rel, e))?;
        Ok(())
    }

    /// Every key under `dir` (relative to the prefix, e.g. `packs/x.idx`) with its size.
    pub async fn list(&self, dir: &str) -> Result<Vec<(String, u64)>> {
        let listed = self.list_meta(dir).await?;
        Ok(listed.into_iter().map(|l| (l.rel, l.size)).collect())
    }

    /// Writes a name object if it is as `expect` says (`If-None-Match: *` or `If-Match`
    /// on the ETag); another state is a [`Error::Conflict`]. Returns the new version.
    pub async fn put_name(
        &self,
        rel: &str,
        name: &str,
        body: &str,
        expect: &Expect,
    ) -> Result<UpdateVersion> {
        let conflict = |detail: &str| Error::Conflict {
            remote: self.name.clone(),
            name: name.to_string(),
            detail: detail.to_string(),
        };
        let payload = PutPayload::from(body.as_bytes().to_vec());
        let key = self.key(rel);
        if let Some(root) = &self.file_root {
            // A plain directory has no conditional write; a lock file serializes the
            // check-and-write of every cowtree writing names there.
            let _lock = lock_file(&root.join("names.lock"))?;
            self.count(1);
            let current = match self.store.head(&key).await {
                Ok(m) => Some(m.e_tag),
                Err(object_store::Error::NotFound { .. }) => None,
                Err(e) => return Err(self.fail(rel, e)),
            };
            match (expect, current) {
                (Expect::Absent, None) => {}
                (Expect::Version(v), Some(now)) if v.e_tag == now => {}
                _ => return Err(conflict("it was changed on the remote by another writer")),
            }
            self.count(2);
            self.store
                .put(&key, payload)
                .await
                .map_err(|e| self.fail(rel, e))?;
            let m = self.store.head(&key).await.map_err(|e| self.fail(rel, e))?;
            return Ok(UpdateVersion {
                e_tag: m.e_tag,
                version: m.version,
            });
        }
        let mode = match expect {
            Expect::Absent => PutMode::Create,
            Expect::Version(v) => PutMode::Update(v.clone()),
        };
        self.count(1);
        let opts = PutOptions {
            mode,
            ..Default::default()
        };
        match self.store.put_opts(&key, payload, opts).await {
            Ok(r) if r.e_tag.is_some() => Ok(UpdateVersion {
                e_tag: r.e_tag,
                version: r.version,
            }),
            Ok(_) => {
                self.count(1);
                let m = self.store.head(&key).await.map_err(|e| self.fail(rel, e))?;
                Ok(UpdateVersion {
                    e_tag: m.e_tag,
                    version: m.version,
                })
            }
            Err(object_store::Error::AlreadyExists { .. })
            | Err(object_store::Error::Precondition { .. }) => Err(conflict(
                "it was changed on the remote by another writer at the same time",
            )),
            Err(e) => Err(self.fail(rel, e)),
        }
    }

    /// Checks the remote's version file, creating it (at [`VERSION_TEXT`]) when `create` and
    /// it is missing. False when it is missing (an empty remote). Layouts 1 and 2 are read.
    pub async fn check_version(&self, create: bool) -> Result<bool> {
        Ok(self.version(create).await?.is_some())
    }

    /// The remote's layout version (1 or 2), creating the version file when `create` and it
    /// is missing; `None` when it is missing. Another version is refused.
    pub async fn version(&self, create: bool) -> Result<Option<u32>> {
        match self.get(VERSION_KEY).await? {
            Some(b) if b.as_ref() == VERSION_TEXT.as_bytes() => Ok(Some(2)),
            Some(b) if b.as_ref() == VERSION_1_TEXT.as_bytes() => Ok(Some(1)),
            Some(b) => Err(Error::Config(format!(
                "remote {}: {} holds {:?}; this cowtree reads {:?} and {:?} (a newer cowtree \
                 wrote it: use that one)",
                self.name,
                self.key(VERSION_KEY),
                String::from_utf8_lossy(&b).trim_end(),
                VERSION_1_TEXT.trim_end(),
                VERSION_TEXT.trim_end()
            ))),
            None if create => {
                if !self
                    .put_immutable(VERSION_KEY, Bytes::from_static(VERSION_TEXT.as_bytes()))
                    .await?
                {
                    // Created by another writer since the read: check what it wrote.
                    return Box::pin(self.version(false)).await;
                }
                Ok(Some(2))
            }
            None => Ok(None),
        }
    }

    /// Makes the remote layout 2 (the version file rewritten from layout 1, conditionally on
    /// the version read), so that a cowtree that takes no locks refuses it from now on; a
    /// missing version file is created. Called before anything is deleted.
    pub async fn upgrade_version(&self) -> Result<()> {
        if self.version(true).await? == Some(2) {
            return Ok(());
        }
        let key = self.key(VERSION_KEY);
        let payload = PutPayload::from_static(VERSION_TEXT.as_bytes());
        if let Some(root) = &self.file_root {
            let _lock = lock_file(&root.join("names.lock"))?;
            self.count(1);
            self.store
                .put(&key, payload)
                .await
                .map_err(|e| self.fail(VERSION_KEY, e))?;
            return Ok(());
        }
        self.count(2);
        let meta = self
            .store
            .head(&key)
            .await
            .map_err(|e| self.fail(VERSION_KEY, e))?;
        let opts = PutOptions {
            mode: PutMode::Update(UpdateVersion {
                e_tag: meta.e_tag,
                version: meta.version,
            }),
            ..Default::default()
        };
        match self.store.put_opts(&key, payload, opts).await {
            Ok(_) => Ok(()),
            // Another writer changed it meanwhile: what it wrote must be layout 2.
            Err(object_store::Error::Precondition { .. }) => match self.version(false).await? {
                Some(2) => Ok(()),
                _ => Err(Error::Config(format!(
                    "remote {}: {} changed while it was being upgraded",
                    self.name, key
                ))),
            },
            Err(e) => Err(self.fail(VERSION_KEY, e)),
        }
    }

    /// Every object under `dir` with its size and Last-Modified time.
    pub async fn list_meta(&self, dir: &str) -> Result<Vec<Listed>> {
        let key = self.key(dir);
        let base = self.key("").to_string();
        let strip = if base.is_empty() { 0 } else { base.len() + 1 };
        let mut out = Vec::new();
        let mut stream = self.store.list(Some(&key));
        self.count(1);
        loop {
            match stream.try_next().await {
                Ok(Some(meta)) => {
                    let full = meta.location.to_string();
                    if let Some(rel) = full.get(strip..) {
                        out.push(Listed {
                            rel: rel.to_string(),
                            size: meta.size,
                            modified_ms: meta.last_modified.timestamp_millis(),
                        });
                    }
                    // One request returns up to 1,000 keys.
                    if out.len() % 1000 == 0 {
                        self.count(1);
                    }
                }
                Ok(None) => break,
                Err(object_store::Error::NotFound { .. }) => break,
                Err(e) => return Err(self.fail(dir, e)),
            }
        }
        Ok(out)
    }

    /// Deletes objects (one that is not there counts as deleted): S3's multi-object delete,
    /// up to 1,000 keys a request.
    pub async fn delete_all(&self, rels: &[String]) -> Result<()> {
        if rels.is_empty() {
            return Ok(());
        }
        self.count(if self.file_root.is_some() {
            rels.len() as u64
        } else {
            rels.len().div_ceil(1000) as u64
        });
        let keys: Vec<object_store::Result<Key>> = rels.iter().map(|r| Ok(self.key(r))).collect();
        let mut results = self
            .store
            .delete_stream(futures::stream::iter(keys).boxed());
        let mut i = 0;
        while let Some(r) = results.next().await {
            match r {
                Ok(_) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(self.fail(rels.get(i).map_or("", |s| s.as_str()), e)),
            }
            i += 1;
        }
        Ok(())
    }

    /// A cheap clone of what a task on the runtime needs to make requests.
    pub(crate) fn handle(&self) -> Handle {
        Handle {
            store: Arc::clone(&self.store),
            file_root: self.file_root.clone(),
            requests: Arc::clone(&self.requests),
        }
    }

    /// Requests this kind of remote makes to delete `n` objects.
    pub fn delete_requests(&self, n: u64) -> u64 {
        if self.file_root.is_some() {
            n
        } else {
            n.div_ceil(1000)
        }
    }

    /// True for a `file://` remote (no conditional writes: a lock file serializes them).
    pub fn is_file(&self) -> bool {
        self.file_root.is_some()
    }
}

fn retry_config() -> RetryConfig {
    RetryConfig {
        backoff: BackoffConfig {
            init_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(4),
            base: 2.0,
        },
        max_retries: 6,
        retry_timeout: Duration::from_secs(30),
    }
}

fn client_options(endpoint: Option<&str>) -> ClientOptions {
    ClientOptions::new()
        .with_allow_http(endpoint.is_some_and(|e| e.starts_with("http://")))
        .with_connect_timeout(Duration::from_secs(10))
        .with_timeout(Duration::from_secs(300))
}

pub(crate) fn lock_file(path: &std::path::Path) -> Result<std::fs::File> {
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .map_err(|e| Error::Io {
            path: path.to_path_buf(),
            source: e,
        })?;
    cowtree_fs::file_lock::lock(&f, cowtree_fs::file_lock::LockKind::Exclusive).map_err(|e| {
        Error::Io {
            path: path.to_path_buf(),
            source: e,
        }
    })?;
    Ok(f)
}

/// How long the first request waits for a connection (every later one waits 10 s).
const PROBE_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// When `e` says that the server could not be reached (a connection refused or timed out, a
/// host name that does not resolve), why, in one line: the connector's words and the OS's or
/// the resolver's ("tcp connect error: Connection refused (os error 111)"). object_store keeps
/// its own error types private; the HTTP client's error, in the chain, tells.
fn cannot_connect(e: &object_store::Error) -> Option<String> {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    let mut below: Vec<String> = Vec::new();
    let mut connect = false;
    while let Some(x) = cur {
        if connect {
            below.push(x.to_string());
        } else if x
            .downcast_ref::<reqwest::Error>()
            .is_some_and(|r| r.is_connect())
        {
            connect = true;
        }
        cur = x.source();
    }
    if !connect {
        return None;
    }
    let n = below.len();
    let last_two = below[n.saturating_sub(2)..].join(": ");
    Some(last_two.lines().next().unwrap_or("").trim().to_string()).filter(|c| !c.is_empty())
}

/// An error and its sources on one line.
pub(crate) fn flatten(e: &(dyn std::error::Error + 'static)) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(x) = src {
        let t = x.to_string();
        if !s.contains(&t) {
            s.push_str(": ");
            s.push_str(&t);
        }
        src = x.source();
    }
    s
}

struct ProfileCredentials {
    key: String,
    secret: String,
    token: Option<String>,
}

/// The `AWS_PROFILE` (else `default`) section of the shared credentials file
/// (`AWS_SHARED_CREDENTIALS_FILE`, else `~/.aws/credentials`; on Windows the home is
/// `%USERPROFILE%` where `HOME` is not set, as the AWS tools take it).
fn profile_credentials() -> Option<ProfileCredentials> {
    let home = std::env::var_os("HOME");
    #[cfg(windows)]
    let home = home.or_else(|| std::env::var_os("USERPROFILE"));
    let path = std::env::var_os("AWS_SHARED_CREDENTIALS_FILE")
        .map(PathBuf::from)
        .or_else(|| home.map(|h| PathBuf::from(h).join(".aws/credentials")))?;
    let text = std::fs::read_to_string(path).ok()?;
    let profile = std::env::var("AWS_PROFILE").unwrap_or_else(|_| "default".into());
    parse_profile(&text, &profile)
}

fn parse_profile(text: &str, profile: &str) -> Option<ProfileCredentials> {
    let (mut key, mut secret, mut token) = (None, None, None);
    let mut inside = false;
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('#') || line.starts_with(';') || line.is_empty() {
            continue;
        }
        if let Some(section) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            inside = section.trim() == profile;
            continue;
        }
        if !inside {
            continue;
        }
        if let Some((k, v)) = line.split_once('=') {
            let v = v.trim().to_string();
            match k.trim() {
                "aws_access_key_id" => key = Some(v),
                "aws_secret_access_key" => secret = Some(v),
                "aws_session_token" => token = Some(v),
                _ => {}
            }
        }
    }
    Some(ProfileCredentials {
        key: key?,
        secret: secret?,
        token,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_named_profile_section_gives_the_credentials() {
        let text = "[default]\naws_access_key_id = A\naws_secret_access_key=B\n\n\
                    [ci]\n# comment\naws_access_key_id=C\naws_secret_access_key = D\n\
                    aws_session_token = T\n[partial]\naws_access_key_id=E\n";
        let d = parse_profile(text, "default").expect("default");
        assert_eq!(
            (d.key.as_str(), d.secret.as_str(), d.token),
            ("A", "B", None)
        );
        let c = parse_profile(text, "ci").expect("ci");
        assert_eq!((c.key.as_str(), c.secret.as_str()), ("C", "D"));
        assert_eq!(c.token.as_deref(), Some("T"));
        assert!(parse_profile(text, "partial").is_none());
        assert!(parse_profile(text, "nosuch").is_none());
    }
}
