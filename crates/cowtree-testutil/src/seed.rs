//! Seeds of randomized tests, and how to replay a failure.
//!
//! Each test binary has one base seed: `COWTREE_TEST_SEED` when it is set, else one taken from
//! the clock the first time a test asks. A test's generator is seeded from the base and the
//! name the test gives it ([`crate::XorShift::from_clock`]), so a test run alone with the
//! same base makes the same choices it made among all the others. The first test that takes a
//! generator prints the base; a test that fails after taking one prints, beside its panic,
//! the exact command that replays it (`COWTREE_TEST_SEED=... scripts/test.sh -p PACKAGE
//! --test TARGET -- TEST --exact`), with the other variables that set how many rounds ran.

use std::panic::Location;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// The variable that replaces the clock's seed.
pub const VAR: &str = "COWTREE_TEST_SEED";

/// The variables that change what a randomized test does besides its seed: a replay sets them
/// as the failing run had them.
const SHAPING: [&str; 3] = [
    "COWTREE_TEST_FULL",
    "COWTREE_TEST_ROUNDS",
    "COWTREE_TEST_HEAVY",
];

/// This test binary's base seed (see the module doc).
pub fn base() -> u64 {
    static BASE: OnceLock<u64> = OnceLock::new();
    *BASE.get_or_init(|| {
        let (seed, from) = match std::env::var(VAR).ok().and_then(|v| v.trim().parse().ok()) {
            Some(s) => (s, VAR),
            None => (
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(1, |d| d.as_nanos() as u64),
                "the clock",
            ),
        };
        println!("randomized tests: base seed {seed} (from {from}; {VAR}={seed} replays it)");
        install_replay_hook();
        seed
    })
}

/// The seed of the generator a test names `what`: the base and the name mixed (FNV-1a of the
/// name, then a splitmix64 round), so that two generators of one test differ.
pub fn for_name(what: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in what.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    let mut z = base() ^ h;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

thread_local! {
    /// Where the running test (this thread) took a generator, for its replay command.
    static TAKEN: std::cell::Cell<Option<&'static Location<'static>>> =
        const { std::cell::Cell::new(None) };
}

/// The base seed, for a generator of another library (proptest's `RngSeed::Fixed`): noted as
/// taken here, so that a panic of the test prints the replay.
#[track_caller]
pub fn taken() -> u64 {
    note_taken(Location::caller());
    base()
}

/// Notes that the test on this thread took a generator at `at`: its panic prints the replay.
pub fn note_taken(at: &'static Location<'static>) {
    TAKEN.with(|t| {
        if t.get().is_none() {
            t.set(Some(at));
        }
    });
}

/// Chains a panic hook that prints the replay command when a test that took a generator
/// panics (on its own thread: libtest names it after the test and shows what it printed).
fn install_replay_hook() {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        previous(info);
        if let Some(at) = TAKEN.with(|t| t.get())
            && let Some(test) = std::thread::current().name()
            && test != "main"
        {
            eprintln!("replay: {}", replay_command(at, test));
        }
    }));
}

/// The command that runs `test` again with this binary's base seed and round settings.
pub fn replay_command(at: &Location<'_>, test: &str) -> String {
    let mut env = format!("{VAR}={}", base());
    for v in SHAPING {
        if let Ok(val) = std::env::var(v) {
            env.push_str(&format!(" {v}={val}"));
        }
    }
    let package = package_of(at.file()).unwrap_or_else(|| "PACKAGE".into());
    let target = target_of_this_binary(&package);
    format!("{env} scripts/test.sh -p {package} {target} -- {test} --exact")
}

/// The workspace root, as this crate was built in it.
fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The package whose source `file` (`crates/DIR/...`, as rustc names it) is: the `name` of
/// `crates/DIR/Cargo.toml`.
fn package_of(file: &str) -> Option<String> {
    let mut parts = Path::new(file).components();
    let (crates, dir) = (parts.next()?, parts.next()?);
    if crates.as_os_str() != "crates" {
        return None;
    }
    let manifest = std::fs::read_to_string(
        workspace_root()
            .join("crates")
            .join(dir.as_os_str())
            .join("Cargo.toml"),
    )
    .ok()?;
    manifest.lines().find_map(|l| {
        let rest = l
            .trim()
            .strip_prefix("name")?
            .trim_start()
            .strip_prefix('=')?;
        Some(rest.trim().trim_matches('"').to_owned())
    })
}

/// `--lib` when this binary is `package`'s unit tests, else `--test TARGET` (the binary's
/// name without cargo's `-HASH`).
fn target_of_this_binary(package: &str) -> String {
    let stem = std::env::current_exe()
        .ok()
        .and_then(|p| p.file_stem().map(|s| s.to_string_lossy().into_owned()))
        .unwrap_or_default();
    let name = match stem.rsplit_once('-') {
        Some((n, hash)) if hash.bytes().all(|b| b.is_ascii_hexdigit()) => n.to_owned(),
        _ => stem,
    };
    if name == package.replace('-', "_") {
        "--lib".into()
    } else {
        format!("--test {name}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_mix_into_different_seeds_and_the_same_name_into_the_same() {
        assert_eq!(for_name("a"), for_name("a"));
        assert_ne!(for_name("a"), for_name("b"));
    }

    #[test]
    fn the_replay_command_names_the_package_the_target_and_the_test() {
        let cmd = replay_command(Location::caller(), "seed::tests::x");
        assert!(cmd.starts_with(&format!("{VAR}={} ", base())), "{cmd}");
        assert!(
            cmd.ends_with("scripts/test.sh -p cowtree-testutil --lib -- seed::tests::x --exact"),
            "{cmd}"
        );
    }

    #[test]
    fn packages_are_read_from_their_manifests() {
        assert_eq!(
            package_of("crates/cowtree/tests/git/main.rs").as_deref(),
            Some("cowtree-cli")
        );
        assert_eq!(
            package_of("crates/cowtree-fs/src/lib.rs").as_deref(),
            Some("cowtree-fs")
        );
        assert_eq!(package_of("src/lib.rs"), None);
    }
}
