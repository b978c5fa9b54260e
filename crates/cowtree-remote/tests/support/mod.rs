//! Helpers for the remote tests: the S3 server scripts/test.sh started, servers of a test's
//! own (to kill and restart), stores on the real filesystems, trees to push.

#![allow(dead_code)]

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use cowtree_remote::{Remote, RemoteConfig};
use cowtree_store::Store;
use cowtree_testutil::{Fs, XorShift, pattern};

/// The S3 server of the run.
#[derive(Clone)]
pub struct S3 {
    pub endpoint: String,
    pub bucket: String,
    pub key: String,
    pub secret: String,
}

fn test_name() -> String {
    std::thread::current()
        .name()
        .unwrap_or("unnamed")
        .to_string()
}

/// Prints a skip line (logged for scripts/test.sh), or panics under COWTREE_TEST_REQUIRE_FS=1.
pub fn skip(why: &str) {
    if std::env::var_os("COWTREE_TEST_REQUIRE_FS").is_some_and(|v| v == "1") {
        panic!("{}: required S3 server missing: {why}", test_name());
    }
    let line = format!("skipped: {}: {why}", test_name());
    println!("{line}");
    if let Some(log) = std::env::var_os("COWTREE_TEST_SKIP_LOG") {
        use std::io::Write;
        if let Ok(mut f) = fs::OpenOptions::new().create(true).append(true).open(log) {
            let _ = writeln!(f, "{line}");
        }
    }
}

/// The run's S3 server, or `None` after a skip line.
pub fn s3() -> Option<S3> {
    let var = |v: &str| std::env::var(v).ok().filter(|s| !s.is_empty());
    match (
        var("COWTREE_TEST_S3_ENDPOINT"),
        var("COWTREE_TEST_S3_BUCKET"),
        var("COWTREE_TEST_S3_KEY"),
        var("COWTREE_TEST_S3_SECRET"),
    ) {
        (Some(endpoint), Some(bucket), Some(key), Some(secret)) => Some(S3 {
            endpoint,
            bucket,
            key,
            secret,
        }),
        _ => {
            skip("COWTREE_TEST_S3_ENDPOINT is not set (scripts/test.sh starts SeaweedFS)");
            None
        }
    }
}

/// A key prefix no other test (or run) uses.
pub fn unique_prefix() -> String {
    let name: String = test_name()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    let n = cowtree_testutil::unique_u64();
    format!("{name}-{}-{n:x}", std::process::id())
}

/// A remote config on `s3` under a fresh prefix.
pub fn s3_config(s3: &S3, name: &str) -> RemoteConfig {
    RemoteConfig {
        name: name.into(),
        url: format!("s3://{}/{}", s3.bucket, unique_prefix()),
        endpoint: Some(s3.endpoint.clone()),
        region: None,
    }
}

/// Opens `cfg` with the server's credentials.
pub fn open(cfg: &RemoteConfig, s3: &S3) -> Remote {
    Remote::open_with(cfg, Some((&s3.key, &s3.secret))).expect("open the remote")
}

/// A store in a scratch directory on `fs` (kept alive by the returned TempDir).
pub fn store_on(fs: Fs) -> Option<(tempfile::TempDir, Store)> {
    let dir = cowtree_testutil::scratch(fs)?;
    let store = Store::open(&dir.path().join("store")).expect("open store");
    Some((dir, store))
}

/// A tree of `n` files of sizes 1..=max_size (seeded), plus the testutil sample tree (symlinks,
/// modes, an empty dir, non-UTF-8 names).
pub fn make_tree(root: &Path, n: usize, max_size: u64, seed: u64) {
    cowtree_testutil::tree::sample_tree(root);
    let mut rng = XorShift::new(seed);
    for i in 0..n {
        let dir = root.join(format!("d{}", i % 17));
        fs::create_dir_all(&dir).unwrap();
        let size = 1 + rng.below(max_size) as usize;
        fs::write(
            dir.join(format!("f{i}")),
            pattern(size, seed * 1_000_003 + i as u64),
        )
        .unwrap();
    }
}

/// A SeaweedFS server of a test's own, started with scripts/seaweedfs.sh; stopped on drop.
pub struct OwnServer {
    pub dir: tempfile::TempDir,
    pub endpoint: String,
}

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/seaweedfs.sh")
}

impl OwnServer {
    /// Starts one, or `None` after a skip line when `weed` is not installed.
    pub fn start() -> Option<OwnServer> {
        if std::env::var_os("COWTREE_TEST_S3_ENDPOINT").is_none() {
            skip("no S3 server in this run (scripts/test.sh installs and starts SeaweedFS)");
            return None;
        }
        let dir = tempfile::Builder::new()
            .prefix("cowtree-weed-")
            .tempdir()
            .unwrap();
        let endpoint = start_in(dir.path());
        Some(OwnServer { dir, endpoint })
    }

    /// Kills the server (SIGKILL: no chance to finish anything).
    pub fn kill(&self) {
        let pid: i32 = fs::read_to_string(self.dir.path().join("pid"))
            .expect("pid file")
            .trim()
            .parse()
            .expect("a pid");
        // SAFETY: plain syscalls on the server's pid, which this test started.
        unsafe {
            libc::kill(pid, libc::SIGKILL);
        }
        for _ in 0..100 {
            // SAFETY: signal 0 only checks that the process exists.
            if unsafe { libc::kill(pid, 0) } != 0 {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        let _ = fs::remove_file(self.dir.path().join("pid"));
    }

    /// Starts it again on the same ports and data.
    pub fn restart(&self) {
        let again = start_in(self.dir.path());
        assert_eq!(again, self.endpoint, "restarted on the same port");
    }
}

fn start_in(dir: &Path) -> String {
    let out = Command::new("bash")
        .arg(script())
        .arg("start")
        .arg(dir)
        // Stopped with this test process even when it is killed and Drop never runs.
        .arg(std::process::id().to_string())
        .output()
        .expect("run scripts/seaweedfs.sh");
    assert!(
        out.status.success(),
        "seaweedfs.sh start failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    text.split_whitespace()
        .next()
        .expect("endpoint")
        .to_string()
}

impl Drop for OwnServer {
    fn drop(&mut self) {
        let _ = Command::new("bash")
            .arg(script())
            .arg("kill")
            .arg(self.dir.path())
            .status();
    }
}

/// A raw client of the run's S3 server, to tamper with a remote the way a broken or hostile
/// server would.
pub struct Raw {
    pub store: std::sync::Arc<dyn object_store::ObjectStore>,
    pub rt: tokio::runtime::Runtime,
    pub prefix: String,
}

impl Raw {
    pub fn new(s3: &S3, cfg: &RemoteConfig) -> Raw {
        let prefix = cfg
            .url
            .strip_prefix(&format!("s3://{}/", s3.bucket))
            .expect("an s3 url of the run's bucket")
            .to_string();
        let store = object_store::aws::AmazonS3Builder::new()
            .with_bucket_name(&s3.bucket)
            .with_endpoint(&s3.endpoint)
            .with_allow_http(true)
            .with_region("us-east-1")
            .with_access_key_id(&s3.key)
            .with_secret_access_key(&s3.secret)
            .build()
            .expect("raw client");
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        Raw {
            store: std::sync::Arc::new(store),
            rt,
            prefix,
        }
    }

    fn key(&self, rel: &str) -> object_store::path::Path {
        object_store::path::Path::from(format!("{}/{rel}", self.prefix))
    }

    pub fn get(&self, rel: &str) -> Vec<u8> {
        self.rt
            .block_on(async { self.store.get(&self.key(rel)).await?.bytes().await })
            .unwrap_or_else(|e| panic!("get {rel}: {e}"))
            .to_vec()
    }

    pub fn put(&self, rel: &str, bytes: Vec<u8>) {
        self.rt
            .block_on(self.store.put(&self.key(rel), bytes.into()))
            .unwrap_or_else(|e| panic!("put {rel}: {e}"));
    }

    pub fn delete(&self, rel: &str) {
        self.rt
            .block_on(self.store.delete(&self.key(rel)))
            .unwrap_or_else(|e| panic!("delete {rel}: {e}"));
    }

    /// Keys under `dir` relative to the prefix.
    pub fn list(&self, dir: &str) -> Vec<String> {
        use futures::TryStreamExt;
        let base = format!("{}/", self.prefix);
        self.rt
            .block_on(
                self.store
                    .list(Some(&self.key(dir)))
                    .try_collect::<Vec<_>>(),
            )
            .expect("list")
            .into_iter()
            .map(|m| {
                m.location
                    .to_string()
                    .strip_prefix(&base)
                    .unwrap()
                    .to_string()
            })
            .collect()
    }
}

/// Every blob named by the remote's pack indexes, with how many indexes name it.
pub fn indexed_blobs(raw: &Raw) -> std::collections::HashMap<cowtree_store::Hash, u32> {
    let mut count = std::collections::HashMap::new();
    for key in raw.list("packs/") {
        if key.ends_with(".idx") {
            let idx = cowtree_remote::pack::PackIndex::decode(&raw.get(&key)).expect("index");
            for s in idx.slots {
                *count.entry(s.hash).or_insert(0) += 1;
            }
        }
    }
    count
}

/// A manifest encoded entry by entry, unchecked (so that it can hold what
/// `Manifest::new` refuses): one file entry per (path, size, hash).
pub fn raw_manifest(entries: &[(&[u8], u64, cowtree_store::Hash)]) -> Vec<u8> {
    use cowtree_store::manifest::{encode_blob, encode_header};
    let mut out = Vec::new();
    encode_header(&mut out, entries.len() as u64);
    for (path, size, hash) in entries {
        encode_blob(&mut out, path, false, *size, hash);
    }
    out
}
