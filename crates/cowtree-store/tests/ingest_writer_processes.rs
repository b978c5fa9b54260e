//! Snapshot ingest against writers in other processes, on real XFS and btrfs: every blob must
//! match its name while separate processes append to, truncate, rename over and write through
//! a shared writable mapping (continuously) of the files being recorded.
//!
//! A writer in another process is what a snapshot meets in practice (an editor, a build, a
//! database keeping a file mapped): its stores through `MAP_SHARED` pages reach the file
//! without any system call of the recording process, and its page tables are its own. The
//! rule of `cowtree_store::ingest` (clone first, then hash the source and compare two stats)
//! must hold against that too.
//!
//! The binary has its own harness: started with `COWTREE_INGEST_WRITER=<kind>` (and the file
//! and seed in the two variables below) it is one writer of `support/writers.rs`, which runs
//! until it is killed; otherwise it runs the tests, each starting one writer process per kind
//! by executing itself. Rounds: `COWTREE_TEST_INGEST_ROUNDS` (default 100 per filesystem in the
//! full tier, 30 in the README's run).
//! Arguments as for a libtest binary: name filters (`--exact` to match whole names), `--list`,
//! `--ignored` (there are none).

#[path = "support/writers.rs"]
mod writers;

use std::env;
use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::AtomicBool;
use std::thread;

use cowtree_store::Store;
use cowtree_testutil::{Fs, XorShift, scratch};

/// Set in a writer process: the kind of writer it is (one of [`writers::KINDS`]).
const ROLE: &str = "COWTREE_INGEST_WRITER";
/// The file a writer process writes.
const FILE: &str = "COWTREE_INGEST_WRITER_FILE";
/// The seed of a writer process's randomness.
const SEED: &str = "COWTREE_INGEST_WRITER_SEED";

const TESTS: [(&str, Fs); 2] = [
    (
        "blobs_match_their_names_while_writer_processes_append_truncate_map_and_rename_on_xfs",
        Fs::Xfs,
    ),
    (
        "blobs_match_their_names_while_writer_processes_append_truncate_map_and_rename_on_btrfs",
        Fs::Btrfs,
    ),
];

fn main() {
    if let Some(kind) = env::var_os(ROLE) {
        writer_process(&kind.to_string_lossy());
    }
    let args: Vec<String> = env::args().skip(1).collect();
    let mut filters = Vec::new();
    let (mut exact, mut list, mut ignored_only) = (false, false, false);
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--exact" => exact = true,
            "--list" => list = true,
            "--ignored" => ignored_only = true,
            // Options of libtest that take a value.
            "--test-threads" | "--skip" | "--format" | "--color" | "--logfile" | "-Z" => {
                it.next();
            }
            _ if a.starts_with('-') => {}
            _ => filters.push(a.as_str()),
        }
    }
    let selected: Vec<_> = TESTS
        .iter()
        .filter(|(name, _)| {
            filters.is_empty()
                || filters
                    .iter()
                    .any(|f| if exact { name == f } else { name.contains(f) })
        })
        .collect();
    if list {
        for (name, _) in &selected {
            println!("{name}: test");
        }
        return;
    }
    if ignored_only {
        return;
    }
    let mut failed = Vec::new();
    for &&(name, fs_kind) in &selected {
        // A thread named after the test, as libtest runs it: skip lines name the test.
        let outcome = thread::Builder::new()
            .name(name.to_string())
            .spawn(move || run(fs_kind))
            .expect("spawn the test's thread")
            .join();
        println!(
            "test {name} ... {}",
            if outcome.is_ok() { "ok" } else { "FAILED" }
        );
        if outcome.is_err() {
            failed.push(name);
        }
    }
    println!(
        "\ntest result: {}. {} passed; {} failed",
        if failed.is_empty() { "ok" } else { "FAILED" },
        selected.len() - failed.len(),
        failed.len()
    );
    if !failed.is_empty() {
        std::process::exit(101);
    }
}

/// The life of a writer process: says it is ready, then writes until it is killed.
fn writer_process(kind: &str) -> ! {
    let w = writers::writer(kind).unwrap_or_else(|| panic!("{ROLE}={kind}: no such writer"));
    let path = PathBuf::from(env::var_os(FILE).unwrap_or_else(|| panic!("{FILE} not set")));
    let seed: u64 = env::var(SEED)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("{SEED} not set to a number"));
    let mut out = std::io::stdout();
    writeln!(out, "ready").and_then(|()| out.flush()).unwrap();
    // Never set: the test kills the process.
    let never = AtomicBool::new(false);
    w(&path, &never, seed);
    std::process::exit(0)
}

/// The writer processes of one test, killed (and reaped) when dropped, also when the test
/// fails.
struct Writers(Vec<(&'static str, Child)>);

impl Drop for Writers {
    fn drop(&mut self) {
        for (_, child) in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn run(fs_kind: Fs) {
    let Some(dir) = scratch(fs_kind) else { return };
    let store = Store::open(&dir.path().join("store")).unwrap();
    let src = dir.path().join("src");
    writers::make_sources(&src);
    let seed = XorShift::from_clock("ingest writer processes").next_u64();
    let exe = env::current_exe().expect("the test binary's path");
    let mut procs = Writers(Vec::new());
    for (i, k) in writers::KINDS.iter().enumerate() {
        let mut child = Command::new(&exe)
            .env(ROLE, k)
            .env(FILE, src.join(k))
            .env(SEED, (seed + i as u64).to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("start writer process {k}: {e}"));
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("piped"))
            .read_line(&mut line)
            .unwrap();
        procs.0.push((k, child));
        assert_eq!(line, "ready\n", "writer process {k} did not start");
    }
    let rounds = writers::rounds(100, 30);
    let counts = writers::record_rounds(&store, &src, rounds);
    // A writer that died early stopped writing: the rounds after it tested less.
    for (k, child) in &mut procs.0 {
        let status = child.try_wait().unwrap();
        assert!(status.is_none(), "writer process {k} exited: {status:?}");
    }
    drop(procs);
    writers::report_and_check(
        &format!("{fs_kind:?}, writer processes"),
        seed,
        rounds,
        &counts,
    );
}
