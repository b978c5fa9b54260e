//! Writers that do not stop, and the rounds of recording that run against them: shared by the
//! ingest tests that run the writers as threads (`ingest_writers.rs`) and as separate
//! processes (`ingest_writer_processes.rs`).
//!
//! Each writer works on its own file, in bursts and pauses: one appends and cuts back, one
//! truncates and rewrites in place, one keeps a shared writable mapping and stores through it
//! without pause (its pages stay dirty and writable until the clone writes them back, the case
//! that makes hashing before the clone unsafe), one writes a new file and renames it over the
//! name, one rewrites its first 64 KiB in place (same size: only the times tell the change).

use std::ffi::OsStr;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::Duration;

use cowtree_fs::dir::Dir;
use cowtree_store::ingest::Putter;
use cowtree_store::{Hash, Store};
use cowtree_testutil::{XorShift, pattern};

/// The margin the tests give the source-hash rule: above the kernel's tick (at most 10 ms) on
/// filesystems with nanosecond times, and short, so that a file is eligible again soon after a
/// writer's burst.
pub const MARGIN_NS: i64 = 20_000_000;

/// The writers, by the name of the file each one writes.
pub const KINDS: [&str; 5] = ["append", "truncate", "mmap", "rename", "pulse"];

/// A writer: writes `path` until `stop` is set, with randomness from `seed`.
pub type Writer = fn(&Path, &AtomicBool, u64);

/// The writer of the file named `kind` (one of [`KINDS`]).
pub fn writer(kind: &str) -> Option<Writer> {
    let f: Writer = match kind {
        "append" => appender,
        "truncate" => truncater,
        "mmap" => mapper,
        "rename" => renamer,
        "pulse" => pulser,
        _ => return None,
    };
    Some(f)
}

/// Rounds of recording per filesystem: `COWTREE_TEST_INGEST_ROUNDS`, else `all` in the full
/// tier and `readme` in the README's run (`cowtree_testutil::rounds`).
pub fn rounds(all: u64, readme: u64) -> u64 {
    std::env::var("COWTREE_TEST_INGEST_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| cowtree_testutil::rounds(all, readme))
}

fn pause(rng: &mut XorShift, stop: &AtomicBool) {
    // A burst ends with a pause: often longer than the margin, so that the next round finds
    // the file's ctime old and a new burst may start while it is being recorded.
    let ms = rng.below(60);
    for _ in 0..ms {
        if stop.load(Ordering::Relaxed) {
            return;
        }
        thread::sleep(Duration::from_millis(1));
    }
}

fn burst_len(rng: &mut XorShift) -> u64 {
    1 + rng.below(40)
}

fn appender(path: &Path, stop: &AtomicBool, seed: u64) {
    let mut rng = XorShift::new(seed);
    let mut f = OpenOptions::new().append(true).open(path).unwrap();
    while !stop.load(Ordering::Relaxed) {
        for _ in 0..burst_len(&mut rng) {
            let n = 1 + rng.below(8192) as usize;
            f.write_all(&pattern(n, rng.next_u64())).unwrap();
            if f.metadata().unwrap().len() > 1 << 20 {
                f.set_len(4096).unwrap();
            }
        }
        pause(&mut rng, stop);
    }
}

fn truncater(path: &Path, stop: &AtomicBool, seed: u64) {
    let mut rng = XorShift::new(seed);
    let f = OpenOptions::new().write(true).open(path).unwrap();
    while !stop.load(Ordering::Relaxed) {
        for _ in 0..burst_len(&mut rng) {
            let len = rng.below(256 << 10);
            f.set_len(len).unwrap();
            let at = rng.below(len.max(1));
            f.write_all_at(&pattern(1 + rng.below(16384) as usize, rng.next_u64()), at)
                .unwrap();
        }
        pause(&mut rng, stop);
    }
}

fn pulser(path: &Path, stop: &AtomicBool, seed: u64) {
    // Same size, other bytes, in place: only the times tell the change.
    let mut rng = XorShift::new(seed);
    let f = OpenOptions::new().write(true).open(path).unwrap();
    while !stop.load(Ordering::Relaxed) {
        f.write_all_at(&pattern(64 << 10, rng.next_u64()), 0)
            .unwrap();
        pause(&mut rng, stop);
    }
}

fn renamer(path: &Path, stop: &AtomicBool, seed: u64) {
    let mut rng = XorShift::new(seed);
    let tmp = path.with_extension("next");
    while !stop.load(Ordering::Relaxed) {
        for _ in 0..burst_len(&mut rng) {
            fs::write(
                &tmp,
                pattern(1 + rng.below(200 << 10) as usize, rng.next_u64()),
            )
            .unwrap();
            fs::rename(&tmp, path).unwrap();
        }
        pause(&mut rng, stop);
    }
}

const MAP_LEN: usize = 256 << 10;

fn mapper(path: &Path, stop: &AtomicBool, seed: u64) {
    let mut rng = XorShift::new(seed);
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .unwrap();
    f.set_len(MAP_LEN as u64).unwrap();
    // SAFETY: a fresh shared mapping of a file this writer keeps open and never truncates;
    // only this writer touches the memory, through volatile stores within its length.
    let base = unsafe {
        rustix::mm::mmap(
            std::ptr::null_mut(),
            MAP_LEN,
            rustix::mm::ProtFlags::READ | rustix::mm::ProtFlags::WRITE,
            rustix::mm::MapFlags::SHARED,
            &f,
            0,
        )
        .unwrap()
    } as *mut u8;
    let mut n = 0u64;
    while !stop.load(Ordering::Relaxed) {
        n += 1;
        let at = rng.below(MAP_LEN as u64 / 8) as usize * 8;
        // SAFETY: `at` is 8-aligned and `at + 8 <= MAP_LEN`, inside the mapping made above.
        unsafe { std::ptr::write_volatile(base.add(at) as *mut u64, n) };
        if n.is_multiple_of(256) {
            // Stores keep coming, with short gaps so that one can land on either side of
            // each step of a snapshot.
            thread::sleep(Duration::from_micros(rng.below(100)));
        }
    }
    // SAFETY: the mapping made above, not used after this.
    unsafe { rustix::mm::munmap(base as *mut _, MAP_LEN).unwrap() };
}

/// What the recording of one writer's file did over all rounds.
#[derive(Default, Debug)]
pub struct Counts {
    pub puts: u64,
    pub source_hashed: u64,
    pub source_changed: u64,
}

/// Fails unless the blob named `hash` holds `size` bytes whose hash is `hash`.
pub fn check_blob(store: &Store, hash: &Hash, size: u64, what: &str) {
    let bytes = fs::read(store.blob_path(hash)).unwrap();
    assert_eq!(bytes.len() as u64, size, "{what}: blob {hash} size");
    assert_eq!(
        Hash::of(&bytes),
        *hash,
        "{what}: blob {hash} bytes do not match its name"
    );
}

/// Makes `src` with one 64 KiB file per writer in [`KINDS`].
pub fn make_sources(src: &Path) {
    fs::create_dir(src).unwrap();
    for k in KINDS {
        File::create(src.join(k))
            .unwrap()
            .write_all(&pattern(64 << 10, 1))
            .unwrap();
    }
}

/// Records every file of `src` (made by [`make_sources`]) `rounds` times, each round with a
/// fresh [`Putter`], and checks every blob's bytes against its name; returns the counts per
/// writer, in the order of [`KINDS`].
pub fn record_rounds(store: &Store, src: &Path, rounds: u64) -> Vec<Counts> {
    let root = Dir::open(src).unwrap();
    let dev = root.stat_self().unwrap().st_dev;
    let mut counts: Vec<Counts> = KINDS.iter().map(|_| Counts::default()).collect();
    for round in 0..rounds {
        let staging = store.staging("writers").unwrap();
        let putter = Putter::new(store, staging.dir()).with_ctime_margin(MARGIN_NS);
        for (i, k) in KINDS.iter().enumerate() {
            let (h0, c0) = (putter.source_hashed(), putter.source_changed());
            let Some(put) = putter.put(&root, dev, OsStr::new(k)).unwrap() else {
                continue;
            };
            let c = &mut counts[i];
            c.puts += 1;
            c.source_hashed += putter.source_hashed() - h0;
            c.source_changed += putter.source_changed() - c0;
            check_blob(store, &put.hash, put.size, &format!("round {round}, {k}"));
            // Checked: removed, so that thousands of rounds fit on the test mounts (a blob
            // holds the blocks its source has since rewritten).
            match fs::remove_file(store.blob_path(&put.hash)) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => panic!("remove blob {}: {e}", put.hash),
            }
        }
        drop(staging);
        // Longer than the margin: a file its writer left alone is eligible next round.
        thread::sleep(Duration::from_millis(25));
    }
    counts
}

/// Prints the counts, and fails unless the rule under test really ran: sources were hashed
/// after their clone and kept, and writers changed sources while they were hashed (the mapped
/// file among them).
pub fn report_and_check(what: &str, seed: u64, rounds: u64, counts: &[Counts]) {
    eprintln!("{what}: seed {seed}, rounds {rounds}");
    for (k, c) in KINDS.iter().zip(counts) {
        eprintln!("  {k}: {c:?}");
    }
    let total = |f: fn(&Counts) -> u64| counts.iter().map(f).sum::<u64>();
    assert!(total(|c| c.source_hashed) > 0, "{what}: {counts:?}");
    assert!(total(|c| c.source_changed) > 0, "{what}: {counts:?}");
    let mmap = &counts[2];
    assert!(
        mmap.source_hashed + mmap.source_changed > 0,
        "{what}: {mmap:?}"
    );
}
