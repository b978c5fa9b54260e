//! The S3 server the remote tests talk to (SeaweedFS, which scripts/test.sh starts), or a skip
//! line when there is none.

use std::fs;

pub struct Server {
    pub endpoint: String,
    pub key: String,
    pub secret: String,
    /// The server refuses wrong credentials (SeaweedFS does; moto accepts any unless told
    /// otherwise: COWTREE_TEST_S3_ANY_CREDENTIALS=1).
    pub checks_credentials: bool,
}

pub fn server() -> Option<Server> {
    let var = |v: &str| std::env::var(v).ok().filter(|s| !s.is_empty());
    match (
        var("COWTREE_TEST_S3_ENDPOINT"),
        var("COWTREE_TEST_S3_KEY"),
        var("COWTREE_TEST_S3_SECRET"),
    ) {
        (Some(endpoint), Some(key), Some(secret)) => Some(Server {
            endpoint,
            key,
            secret,
            checks_credentials: var("COWTREE_TEST_S3_ANY_CREDENTIALS").is_none_or(|v| v != "1"),
        }),
        _ => {
            let why = "COWTREE_TEST_S3_ENDPOINT is not set (scripts/test.sh starts SeaweedFS)";
            if std::env::var_os("COWTREE_TEST_REQUIRE_FS").is_some_and(|v| v == "1") {
                panic!("required S3 server missing: {why}");
            }
            let name = std::thread::current().name().unwrap_or("?").to_string();
            let line = format!("skipped: {name}: {why}");
            println!("{line}");
            if let Some(log) = std::env::var_os("COWTREE_TEST_SKIP_LOG") {
                use std::io::Write;
                if let Ok(mut f) = fs::OpenOptions::new().create(true).append(true).open(log) {
                    let _ = writeln!(f, "{line}");
                }
            }
            None
        }
    }
}
