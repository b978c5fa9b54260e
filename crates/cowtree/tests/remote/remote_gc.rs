//! Retention and gc on a remote (`remote rm REMOTE SNAP`, `remote forget`, `remote gc`) end to
//! end against the SeaweedFS server scripts/test.sh starts: what they drop and free, pushes of
//! several hosts racing gc and pulls, and gc killed at random points.

use crate::common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::common::s3::{Server, server};
use crate::common::{Ran, run_limited, suggested};
use cowtree_testutil::{Fs, XorShift, assert_diff_clean, pattern, scratch};

/// One test's setting: the server, its own configuration directory (remotes are the user's)
/// and the remote `origin` at a prefix of its own.
struct Ctx {
    srv: Server,
    config: tempfile::TempDir,
}

impl Ctx {
    fn new(srv: Server, store: &Path) -> Ctx {
        let ctx = Ctx {
            srv,
            config: tempfile::Builder::new()
                .prefix("cowtree-remote-gc-config-")
                .tempdir()
                .expect("a config directory"),
        };
        let url = format!("s3://cowtree/{}", prefix());
        let endpoint = ctx.srv.endpoint.clone();
        ctx.cw(
            store,
            &["remote", "add", "origin", &url, "--endpoint", &endpoint],
        )
        .assert_ok("remote add");
        ctx
    }

    fn command(&self, store: &Path, args: &[&str]) -> Command {
        let mut c = common::bin();
        c.env_remove("COWTREE_STORE")
            .env("AWS_ACCESS_KEY_ID", &self.srv.key)
            .env("AWS_SECRET_ACCESS_KEY", &self.srv.secret)
            .env("HOME", "/nonexistent")
            .env("XDG_CONFIG_HOME", self.config.path())
            // Locks on a test's scale: refreshed often, stale after seconds.
            .env("COWTREE_REMOTE_LOCK_REFRESH", "0.5")
            .env("COWTREE_REMOTE_LOCK_STALE", "20")
            .env("COWTREE_REMOTE_LOCK_SETTLE", "0.05")
            .env("COWTREE_REMOTE_LOCK_WAIT", "120");
        c.arg("--store").arg(store).args(args);
        c
    }

    fn cw(&self, store: &Path, args: &[&str]) -> Ran {
        run_limited(self.command(store, args), Duration::from_secs(240))
    }
}

/// `remote gc` of origin that takes everything unneeded now: no grace period, and every pack
/// with anything unneeded repacked.
const GC_NOW: &[&str] = &[
    "remote",
    "gc",
    "origin",
    "--grace",
    "0s",
    "--repack-threshold",
    "0",
];

fn prefix() -> String {
    let name: String = std::thread::current()
        .name()
        .unwrap_or("t")
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    format!(
        "gc-{name}-{}-{:x}",
        std::process::id(),
        cowtree_testutil::unique_u64()
    )
}

/// Writes `files` files under `root` (in 5 directories) of up to `max` bytes; with `change`
/// below 1.0, rewrites only that share of them (new bytes from `seed`).
fn write_tree(root: &Path, files: usize, max: u64, seed: u64, change: f64) {
    let mut rng = XorShift::new(seed);
    for i in 0..files {
        let pick = rng.below(1_000_000) as f64 / 1_000_000.0;
        let len = 1 + rng.below(max) as usize;
        if change < 1.0 && pick >= change {
            continue;
        }
        let d = root.join(format!("d{}", i % 5));
        fs::create_dir_all(&d).unwrap();
        fs::write(
            d.join(format!("f{i}")),
            pattern(len, seed * 7919 + i as u64),
        )
        .unwrap();
    }
}

/// A copy of `src` at `dst`, to compare a checkout with later.
fn keep_copy(src: &Path, dst: &Path) {
    let st = Command::new("cp")
        .arg("-a")
        .arg(src)
        .arg(dst)
        .status()
        .unwrap();
    assert!(st.success());
}

fn snapshot(ctx: &Ctx, store: &Path, src: &Path) -> String {
    let r = ctx.cw(store, &["snapshot", "--json", src.to_str().unwrap()]);
    r.assert_ok("snapshot");
    r.json()["id"].as_str().unwrap().to_string()
}

fn exit_code(r: &Ran, want: i32, what: &str) {
    assert_eq!(
        r.code(),
        Some(want),
        "{what}: exit {:?}\nstdout: {}\nstderr: {}",
        r.code(),
        r.stdout,
        r.stderr
    );
}

/// The snapshot ids `ls --remote origin` lists.
fn remote_ids(ctx: &Ctx, store: &Path) -> Vec<String> {
    let r = ctx.cw(store, &["ls", "--remote", "origin", "--json"]);
    let v = r.assert_ok("ls --remote").json();
    let mut ids: Vec<String> = v["snapshots"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap().to_string())
        .collect();
    ids.sort();
    ids
}

/// Pulls `id` into a fresh store under `dir` and checks it out; the checkout must equal
/// `want`. Returns the pull's exit code (0, or 7 when a gc raced it).
fn pull_exact(ctx: &Ctx, dir: &Path, tag: &str, id: &str, want: &Path) -> i32 {
    let store = dir.join(format!("store-{tag}"));
    let r = ctx.cw(&store, &["pull", "--quiet", id]);
    match r.code() {
        Some(0) => {}
        Some(7) => return 7,
        _ => panic!(
            "pull {id}: exit {:?}\nstdout: {}\nstderr: {}",
            r.code(),
            r.stdout,
            r.stderr
        ),
    }
    let wt = dir.join(format!("wt-{tag}"));
    ctx.cw(&store, &["checkout", id, wt.to_str().unwrap()])
        .assert_ok("checkout");
    assert_diff_clean(want, &wt);
    let _ = fs::remove_dir_all(&wt);
    let _ = fs::remove_dir_all(&store);
    0
}

#[test]
fn forget_rm_and_gc_drop_what_no_kept_snapshot_needs_and_keep_the_rest_exact() {
    let Some(srv) = server() else { return };
    let Some(a) = scratch(Fs::Xfs) else { return };
    let sa = a.path().join("store");
    let src = a.path().join("src");
    let ctx = Ctx::new(srv, &sa);
    // Five generations of a tree, each rewriting 30% of its files; the first is named.
    let mut ids = Vec::new();
    for g in 0..5u64 {
        write_tree(&src, 300, 24 << 10, 10 + g, if g == 0 { 1.0 } else { 0.3 });
        keep_copy(&src, &a.path().join(format!("gen{g}")));
        let mut args = vec!["snapshot", "--json", src.to_str().unwrap()];
        if g == 0 {
            args.extend(["--name", "first"]);
        }
        let r = ctx.cw(&sa, &args);
        ids.push(
            r.assert_ok("snapshot").json()["id"]
                .as_str()
                .unwrap()
                .to_string(),
        );
        // Arrival order is the manifests' Last-Modified (1 s resolution on some servers).
        std::thread::sleep(Duration::from_millis(1100));
        let what = if g == 0 {
            "first"
        } else {
            ids[g as usize].as_str()
        };
        ctx.cw(&sa, &["push", "--quiet", what]).assert_ok("push");
    }
    let mut all = ids.clone();
    all.sort();
    assert_eq!(remote_ids(&ctx, &sa), all);

    // Nothing is unneeded yet.
    let r = ctx.cw(&sa, &["remote", "gc", "origin", "--grace", "0s", "--json"]);
    let g0 = r.assert_ok("gc").json();
    assert_eq!(g0["snapshots"], 5);
    assert_eq!(g0["objects_deleted"], 0, "{g0}");
    assert_eq!(g0["blobs_missing"], 0);

    // forget --keep-last 2: gen3 and gen4 by age, gen0 by its name; gen1 and gen2 go.
    let dry = ctx.cw(
        &sa,
        &[
            "remote",
            "forget",
            "origin",
            "--keep-last",
            "2",
            "--dry-run",
            "--json",
        ],
    );
    let d = dry.assert_ok("forget --dry-run").json();
    let dropped: Vec<&str> = d["dropped"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    assert_eq!(dropped, vec![ids[2].as_str(), ids[1].as_str()], "{d}");
    assert_eq!(d["dry_run"], true);
    assert_eq!(remote_ids(&ctx, &sa), all, "a dry run changes nothing");
    let plain = ctx.cw(&sa, &["remote", "forget", "origin", "--keep-last", "2"]);
    plain.assert_ok("forget");
    assert!(
        plain.stdout.contains(&format!("drop {}", ids[1]))
            && plain
                .stdout
                .contains(&format!("keep {}  first  (name first)", ids[0])),
        "{}",
        plain.stdout
    );
    let mut kept = vec![ids[0].clone(), ids[3].clone(), ids[4].clone()];
    kept.sort();
    assert_eq!(remote_ids(&ctx, &sa), kept);

    // The command the summary prints runs as printed: with the default grace period of 24 h,
    // it leaves what was just written.
    let cmds = suggested::commands(&plain.stdout);
    assert_eq!(cmds.len(), 1, "{}", plain.stdout);
    assert_eq!(cmds[0], ["cowtree", "remote", "gc", "origin"]);
    let printed = ctx.cw(
        &sa,
        &cmds[0][1..].iter().map(|s| s.as_str()).collect::<Vec<_>>(),
    );
    printed.assert_ok("the printed gc");
    assert!(
        printed.stderr.contains("younger than the grace period"),
        "{}",
        printed.stderr
    );

    // gc --dry-run says what it would free; then gc frees it.
    let r = ctx.cw(&sa, &[GC_NOW, &["--dry-run", "--json"]].concat());
    let dry = r.assert_ok("gc --dry-run").json();
    assert!(dry["bytes_deleted"].as_u64().unwrap() > 0, "{dry}");
    assert!(dry["sweep_requests"].as_u64().unwrap() > 0, "{dry}");
    let r = ctx.cw(&sa, &[GC_NOW, &["--json"]].concat());
    let g = r.assert_ok("gc").json();
    for k in ["bytes_deleted", "objects_deleted", "packs_repacked"] {
        assert_eq!(g[k], dry[k], "{k}: the dry run said what gc did: {dry} {g}");
    }
    assert_eq!(g["snapshots"], 3);
    assert_eq!(g["blobs_missing"], 0);
    // Every pack is now fully needed: the next gc finds nothing, and the remote holds about
    // what the kept snapshots need.
    let r = ctx.cw(&sa, &[GC_NOW, &["--json"]].concat());
    let again = r.assert_ok("second gc").json();
    assert_eq!(again["objects_deleted"], 0, "{again}");
    let (before, after, needed) = (
        g["bytes_before"].as_u64().unwrap(),
        again["bytes_before"].as_u64().unwrap(),
        again["bytes_needed"].as_u64().unwrap(),
    );
    assert!(after < before, "{before} -> {after}");
    assert!(
        after as f64 <= needed as f64 * 1.1,
        "on the remote {after} B, needed {needed} B"
    );

    // The kept snapshots pull exact into another store; a dropped one is not there (exit 8).
    let b = scratch(Fs::Xfs).unwrap();
    for (g, id) in ids.iter().enumerate() {
        let want = a.path().join(format!("gen{g}"));
        if kept.contains(id) {
            assert_eq!(pull_exact(&ctx, b.path(), &format!("k{g}"), id, &want), 0);
        } else {
            let r = ctx.cw(&b.path().join("s"), &["pull", id]);
            exit_code(&r, 8, "pull of a forgotten snapshot");
        }
    }

    // remote rm: by name (the name goes with it), by id; something not there exits 8 and
    // removes nothing.
    let r = ctx.cw(&sa, &["remote", "rm", "origin", "first", "nosuchname"]);
    exit_code(&r, 8, "rm of a name not there");
    assert_eq!(remote_ids(&ctx, &sa), kept);
    let r = ctx.cw(&sa, &["remote", "rm", "origin", "first", "--dry-run"]);
    r.assert_ok("rm --dry-run");
    assert_eq!(remote_ids(&ctx, &sa), kept);
    ctx.cw(&sa, &["remote", "rm", "origin", "first", &ids[3]])
        .assert_ok("rm");
    assert_eq!(remote_ids(&ctx, &sa), vec![ids[4].clone()]);
    let r = ctx.cw(&b.path().join("s2"), &["pull", "first"]);
    exit_code(&r, 8, "pull of a removed name");
    ctx.cw(&sa, &["remote", "gc", "origin", "--grace", "0s"])
        .assert_ok("gc");
    assert_eq!(
        pull_exact(&ctx, b.path(), "last", &ids[4], &a.path().join("gen4")),
        0
    );
    // A policy that keeps nothing is refused.
    let r = ctx.cw(&sa, &["remote", "forget", "origin", "--forget-named"]);
    exit_code(&r, 1, "forget without a rule");
}

/// Several hosts (stores) push overlapping snapshots while gc runs in a loop and pulls read:
/// every push that returned is complete afterwards, every pull that returned is exact (a pull
/// may exit 7 when gc raced it, and then succeeds on a re-run), gc never fails.
#[test]
fn pushes_of_several_hosts_pulls_and_gc_race_and_nothing_referenced_is_lost() {
    let Some(srv) = server() else { return };
    let Some(a) = scratch(Fs::Xfs) else { return };
    let root = a.path().to_path_buf();
    let ctx = Arc::new(Ctx::new(srv, &root.join("host0")));
    common::init_store(&root.join("gc-store"));
    const HOSTS: usize = 3;
    const ROUNDS: u64 = 4;
    // Snapshots pushed (id, a copy of its tree), as pushes return.
    let pushed: Arc<Mutex<Vec<(String, PathBuf)>>> = Arc::default();
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut pushers = Vec::new();
    for h in 0..HOSTS {
        let (ctx, pushed, root) = (Arc::clone(&ctx), Arc::clone(&pushed), root.clone());
        pushers.push(std::thread::spawn(move || {
            let store = root.join(format!("host{h}"));
            let src = root.join(format!("src{h}"));
            // Every host starts from the same tree: their first snapshots overlap entirely,
            // later ones in most files.
            write_tree(&src, 250, 24 << 10, 1, 1.0);
            for r in 0..ROUNDS {
                write_tree(&src, 250, 24 << 10, 100 * (h as u64 + 1) + r, 0.2);
                let copy = root.join(format!("copy-{h}-{r}"));
                keep_copy(&src, &copy);
                let id = snapshot(&ctx, &store, &src);
                let p = ctx.cw(&store, &["push", "--quiet", &id]);
                p.assert_ok("push during gc");
                pushed.lock().unwrap().push((id, copy));
            }
        }));
    }
    let gc = {
        let (ctx, done, root) = (Arc::clone(&ctx), Arc::clone(&done), root.clone());
        std::thread::spawn(move || {
            let mut runs = 0;
            let mut deleted = 0;
            let mut repacked = 0;
            let gs = root.join("gc-store");
            while !done.load(std::sync::atomic::Ordering::SeqCst) || runs < 2 {
                // A decoy, pushed then removed: the whole tree of some host's round (which
                // that host pushes a fifth of, before or after), so that packs the hosts use
                // are left partly needed, to be repacked under the pulls.
                let (h, r) = (runs % HOSTS as u64, (runs / HOSTS as u64) % ROUNDS);
                let decoy = root.join(format!("decoy{runs}"));
                write_tree(&decoy, 250, 24 << 10, 100 * (h + 1) + r, 1.0);
                let id = snapshot(&ctx, &gs, &decoy);
                ctx.cw(&gs, &["push", "--quiet", &id])
                    .assert_ok("decoy push");
                ctx.cw(&gs, &["remote", "rm", "origin", &id])
                    .assert_ok("rm during pushes");
                let r = ctx.cw(&gs, &[GC_NOW, &["--json"]].concat());
                let g = r.assert_ok("gc during pushes").json();
                assert_eq!(g["blobs_missing"], 0, "{g}");
                deleted += g["objects_deleted"].as_u64().unwrap();
                repacked += g["packs_repacked"].as_u64().unwrap();
                runs += 1;
                // gc runs now and then, not back to back: pushes get in between.
                std::thread::sleep(Duration::from_millis(300));
            }
            (runs, deleted, repacked)
        })
    };
    let puller = {
        let (ctx, pushed, done, root) = (
            Arc::clone(&ctx),
            Arc::clone(&pushed),
            Arc::clone(&done),
            root.clone(),
        );
        std::thread::spawn(move || {
            let (mut ok, mut raced) = (0, 0);
            let dir = root.join("puller");
            fs::create_dir_all(&dir).unwrap();
            let mut n = 0;
            while !done.load(std::sync::atomic::Ordering::SeqCst) {
                let pick = pushed.lock().unwrap().last().cloned();
                let Some((id, copy)) = pick else {
                    std::thread::sleep(Duration::from_millis(100));
                    continue;
                };
                n += 1;
                let mut tries = 0;
                loop {
                    tries += 1;
                    match pull_exact(&ctx, &dir, &format!("{n}-{tries}"), &id, &copy) {
                        0 => break,
                        _ => {
                            raced += 1;
                            assert!(tries < 5, "pull of {id} raced gc {tries} times in a row");
                        }
                    }
                }
                ok += 1;
            }
            (ok, raced)
        })
    };
    for p in pushers {
        p.join().expect("pusher");
    }
    done.store(true, std::sync::atomic::Ordering::SeqCst);
    let (runs, deleted, repacked) = gc.join().expect("gc");
    let (pulls, raced) = puller.join().expect("puller");
    println!(
        "gc runs {runs} (deleted {deleted} objects, repacked {repacked} packs), pulls {pulls} \
         ({raced} raced gc)"
    );
    assert!(deleted > 0, "gc had decoys to delete");
    // Every push that returned is complete: each pulls exact into a fresh store.
    let pushed = pushed.lock().unwrap().clone();
    assert_eq!(pushed.len(), HOSTS * ROUNDS as usize);
    for (i, (id, copy)) in pushed.iter().enumerate() {
        assert_eq!(
            pull_exact(&ctx, &root, &format!("end{i}"), id, copy),
            0,
            "snapshot {id} after the race"
        );
    }
}

/// gc killed (SIGKILL) at random points, 20 times (8 or more in the README's run), each after
/// a push and a forget gave it something to delete: every time, the kept snapshots pull
/// exact, the next push works, and a gc that runs to the end leaves nothing it would delete.
#[test]
fn gc_killed_at_random_points_leaves_a_remote_push_pull_and_the_next_gc_accept() {
    let Some(srv) = server() else { return };
    let Some(a) = scratch(Fs::Xfs) else { return };
    let sa = a.path().join("store");
    let src = a.path().join("src");
    let ctx = Ctx::new(srv, &sa);
    let mut rng = XorShift::from_clock("gc kill");
    let mut kept: Vec<(String, PathBuf)> = Vec::new();
    let gc_args = GC_NOW;
    // How long a whole gc takes here, to kill within it.
    let mut gc_ms = 300u64;
    let mut killed = 0;
    // 20 rounds in the full tier; in the README's run 8, or more until 5 gc runs were killed.
    let rounds = cowtree_testutil::rounds_until(20, 8);
    for round in 0u64.. {
        if rounds.done(round, killed >= 5) {
            break;
        }
        write_tree(
            &src,
            200,
            40 << 10,
            1000 + round,
            if round == 0 { 1.0 } else { 0.3 },
        );
        let copy = a.path().join(format!("gen{round}"));
        keep_copy(&src, &copy);
        let id = snapshot(&ctx, &sa, &src);
        ctx.cw(&sa, &["push", "--quiet", &id])
            .assert_ok("push after a killed gc");
        kept.push((id, copy));
        // Arrival order by the server's clock (1 s resolution).
        std::thread::sleep(Duration::from_millis(1050));
        if kept.len() > 3 {
            ctx.cw(&sa, &["remote", "forget", "origin", "--keep-last", "3"])
                .assert_ok("forget after a killed gc");
            kept.remove(0);
        }
        let delay = rng.below(gc_ms.max(1));
        let mut child = ctx.command(&sa, gc_args).spawn().expect("gc");
        let t = Instant::now();
        std::thread::sleep(Duration::from_millis(delay));
        if child.try_wait().unwrap().is_none() {
            killed += 1;
            let _ = child.kill();
        }
        let st = child.wait().unwrap();
        if st.success() {
            gc_ms = (t.elapsed().as_millis() as u64).max(gc_ms);
        }
        // What is kept pulls exact.
        let (id, copy) = &kept[rng.below(kept.len() as u64) as usize];
        assert_eq!(
            pull_exact(&ctx, a.path(), &format!("r{round}"), id, copy),
            0,
            "round {round}: pull of {id} after gc killed at {delay} ms"
        );
    }
    assert!(killed >= 5, "only {killed} gc runs were killed mid-way");
    let r = ctx.cw(&sa, &[gc_args, &["--json"]].concat());
    let g = r.assert_ok("gc after the kills").json();
    assert_eq!(g["blobs_missing"], 0);
    let r = ctx.cw(&sa, &[gc_args, &["--json"]].concat());
    let g = r.assert_ok("gc after gc").json();
    assert_eq!(g["objects_deleted"], 0, "{g}");
    for (i, (id, copy)) in kept.iter().enumerate() {
        assert_eq!(pull_exact(&ctx, a.path(), &format!("end{i}"), id, copy), 0);
    }
}

/// Pushes killed at random points while gc runs (10 rounds, 6 or more in the README's run, each
/// a new generation of the tree pushed while a gc of everything unneeded runs; the push is
/// killed at a random point, then run again): every push that returned is complete, what is
/// kept pulls exact, and the last gc finds nothing missing and, run twice, nothing more to
/// delete.
#[test]
fn pushes_killed_while_gc_runs_leave_a_remote_push_pull_and_gc_accept() {
    let Some(srv) = server() else { return };
    let Some(a) = scratch(Fs::Xfs) else { return };
    let sa = a.path().join("store");
    let src = a.path().join("src");
    let ctx = Ctx::new(srv, &sa);
    let mut rng = XorShift::from_clock("push kill");
    let mut kept: Vec<(String, PathBuf)> = Vec::new();
    // How long a whole push takes here, to kill within it.
    let mut push_ms = 300u64;
    let mut killed = 0;
    // 10 rounds in the full tier; in the README's run 6 (the forget that gives gc something to
    // delete beside a push starts after round 3), or more until 3 pushes were killed.
    let rounds = cowtree_testutil::rounds_until(10, 6);
    for round in 0u64.. {
        if rounds.done(round, killed >= 3) {
            break;
        }
        write_tree(
            &src,
            200,
            40 << 10,
            2000 + round,
            if round == 0 { 1.0 } else { 0.3 },
        );
        let copy = a.path().join(format!("gen{round}"));
        keep_copy(&src, &copy);
        let id = snapshot(&ctx, &sa, &src);
        let mut gc = ctx.command(&sa, GC_NOW).spawn().expect("gc");
        let delay = rng.below(push_ms.max(1));
        let mut push = ctx
            .command(&sa, &["push", "--quiet", &id])
            .spawn()
            .expect("push");
        let t = Instant::now();
        std::thread::sleep(Duration::from_millis(delay));
        if push.try_wait().unwrap().is_none() {
            killed += 1;
            let _ = push.kill();
        }
        if push.wait().unwrap().success() {
            push_ms = (t.elapsed().as_millis() as u64).max(push_ms);
        }
        assert!(
            gc.wait().unwrap().success(),
            "round {round}: gc beside a killed push"
        );
        // The push run again completes it.
        ctx.cw(&sa, &["push", "--quiet", &id])
            .assert_ok("push after a killed push");
        kept.push((id, copy));
        std::thread::sleep(Duration::from_millis(1050));
        if kept.len() > 3 {
            ctx.cw(&sa, &["remote", "forget", "origin", "--keep-last", "3"])
                .assert_ok("forget");
            kept.remove(0);
        }
        let (id, copy) = &kept[rng.below(kept.len() as u64) as usize];
        assert_eq!(
            pull_exact(&ctx, a.path(), &format!("r{round}"), id, copy),
            0,
            "round {round}: pull of {id} after a push killed at {delay} ms"
        );
    }
    assert!(killed >= 3, "only {killed} pushes were killed mid-way");
    let r = ctx.cw(&sa, &[GC_NOW, &["--json"]].concat());
    let g = r.assert_ok("gc after the kills").json();
    assert_eq!(g["blobs_missing"], 0, "{g}");
    let r = ctx.cw(&sa, &[GC_NOW, &["--json"]].concat());
    let g = r.assert_ok("gc after gc").json();
    assert_eq!(g["objects_deleted"], 0, "{g}");
    for (i, (id, copy)) in kept.iter().enumerate() {
        assert_eq!(pull_exact(&ctx, a.path(), &format!("end{i}"), id, copy), 0);
    }
}

/// `pull SNAPSHOT --path GLOB`: fetches only the blobs under the paths, records that part as
/// a snapshot of its own, which checks out to exactly those files; a glob that selects
/// nothing is refused.
#[test]
fn a_partial_pull_fetches_only_the_selected_paths_and_checks_them_out() {
    let Some(srv) = server() else { return };
    let Some(a) = scratch(Fs::Xfs) else { return };
    let sa = a.path().join("store");
    let src = a.path().join("src");
    let ctx = Ctx::new(srv, &sa);
    // 5 directories d0..d4 of 100 files each; d1 is a fifth of the tree.
    write_tree(&src, 500, 16 << 10, 7, 1.0);
    let r = ctx.cw(
        &sa,
        &[
            "snapshot",
            "--json",
            "--name",
            "mono",
            src.to_str().unwrap(),
        ],
    );
    let id = r.assert_ok("snapshot").json()["id"]
        .as_str()
        .unwrap()
        .to_string();
    ctx.cw(&sa, &["push", "--quiet", "mono"]).assert_ok("push");
    let b = scratch(Fs::Xfs).unwrap();
    let sb = b.path().join("store");
    let r = ctx.cw(
        &sb,
        &[
            "pull", "mono", "--path", "d1/**", "--path", "d3/f3", "--json",
        ],
    );
    let p = r.assert_ok("partial pull").json();
    let part = p["parts"][0]["id"].as_str().unwrap().to_string();
    assert_eq!(p["parts"][0]["of"], id.as_str());
    assert_eq!(p["parts"][0]["files"], 101, "{p}");
    assert_eq!(p["blobs_received"], 101, "only the selected blobs: {p}");
    assert_eq!(p["names"].as_array().unwrap().len(), 0, "no name set: {p}");
    let wt = b.path().join("wt");
    ctx.cw(&sb, &["checkout", &part, wt.to_str().unwrap()])
        .assert_ok("checkout of the part");
    assert_diff_clean(&src.join("d1"), &wt.join("d1"));
    assert_eq!(
        fs::read(wt.join("d3/f3")).unwrap(),
        fs::read(src.join("d3/f3")).unwrap()
    );
    let mut top: Vec<String> = fs::read_dir(&wt)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    top.sort();
    assert_eq!(top, ["d1", "d3"]);
    assert_eq!(fs::read_dir(wt.join("d3")).unwrap().count(), 1);
    // The worktree is a worktree of the part: clean.
    let st = ctx.cw(&sb, &["status", wt.to_str().unwrap(), "--json"]);
    st.assert_ok("status");
    // The whole snapshot afterwards fetches only the rest.
    let r = ctx.cw(&sb, &["pull", "mono", "--json"]);
    let whole = r.assert_ok("whole pull").json();
    assert_eq!(whole["blobs_received"], 399, "{whole}");
    let r = ctx.cw(&sb, &["pull", "mono", "--path", "nothing/**"]);
    exit_code(&r, 1, "a glob that selects nothing");
    assert!(r.stderr.contains("no path of snapshot"), "{}", r.stderr);
}
