//! Issue 50: `cowtree git worktree add` must write the bytes `git worktree add` writes, whatever
//! conversion SRC's checkout applied (line endings, `ident`, smudge filters,
//! `working-tree-encoding`, `core.symlinks`, `core.fileMode`) and whatever the target needs.
//!
//! SRC's index stat data prove a file unchanged since SRC's checkout, not that the checkout wrote
//! the bytes git would write now: the attributes and configuration may have changed since, or
//! differ between SRC's HEAD and the target commit. Each class of [`CLASSES`] builds such a
//! repository with real `git` commands, then runs `git worktree add ARGS` into one DST and
//! `cowtree git worktree add --json ARGS` into another (the same arguments and environment) and
//! compares the two worktrees ([`compare_worktrees`]): the same entries, each with the same type,
//! permission bits and bytes; the same `git status --porcelain`, `git diff`, `git diff --cached`,
//! `git ls-files -s`, HEAD and `git config --list`; and the same `git status` from an index
//! without stat data, where git hashes every file through its clean conversions. Every class
//! runs, every difference is collected (class, filesystem, path, both byte strings escaped), and
//! a test fails once at the end with the whole list.
//!
//! Classes: SRC's checkout converted and the target does not (the issue's own), the target
//! converts and SRC's files never were (the mirrors), conversions added after SRC's checkout that
//! already reach DST (which must keep passing, a test of their own), and cases from git's test
//! suite (t0020-crlf, t0021-conversion, t0027-auto-crlf, t0028-working-tree-encoding,
//! t2400-worktree-add). Not covered: long-running `filter.<driver>.process` filters and delayed
//! checkout (t0021's `test-tool rot13-filter`).
//!
//! Timing. SRC's files must be stat-clean and not racy for SRC's index to be trusted at all:
//! after git writes files in SRC, [`Src::settle`] waits for the next second and runs `git
//! status`, which refreshes and rewrites the index, before the attributes, configuration or
//! commits change. git's own DST is made not racy the same way before it is compared
//! ([`settle_index`]), as cowtree makes its index: otherwise whether `git status` there re-reads
//! a file whose conversion does not give its blob back would depend on the clock.
//!
//! The classes run on XFS (reflinks, the per-file way), on btrfs with SRC a subvolume large
//! enough for the snapshot way (`"method": "subvolume"` asserted), and through the Claude Code
//! hook (XFS); the README's run takes every third class through the hook and from btrfs, the
//! full tier every class ([`suites`]). The `--json` counts are checked strictly
//! (`reused_on_stat`, `reused_after_hash` and `from_objects` account for every file). A
//! property test builds random histories of commits, attribute and configuration changes,
//! checkouts, rewrites and settles from fixed seeds, and compares a `--detach` of SRC's HEAD or
//! an earlier commit the same way; a failure prints the seed and every step (a seed replays the
//! same steps; whether an entry written in the second of an index write stays racy can still
//! differ between runs). Run through scripts/test.sh (real mounts); the classes run in
//! parallel, as most of their time is waiting for the clock.

use crate::common;

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use cowtree_testutil::{Fs, XorShift, mount};
use serde_json::Value;

// ---------------------------------------------------------------------------------------------
// Running git and cowtree in one environment

/// `program` in `dir` with the environment both git and cowtree get: no system or global git
/// configuration, a fixed identity, none of the caller's `GIT_DIR`, `GIT_WORK_TREE` or
/// `GIT_INDEX_FILE`, and the home and XDG directories [`common::bin`] gives cowtree.
fn command(program: &str, dir: &Path) -> Command {
    let mut c = common::isolated(Command::new(program));
    cowtree_testutil::git_env(c.current_dir(dir));
    c
}

/// Runs `c` to completion with `stdin` (or none), capturing its output.
fn output(mut c: Command, stdin: Option<&[u8]>) -> Output {
    c.stdout(Stdio::piped()).stderr(Stdio::piped());
    let Some(data) = stdin else {
        return c
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("run {c:?}: {e}"));
    };
    let mut child = c
        .stdin(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("run {c:?}: {e}"));
    let mut pipe = child.stdin.take().expect("stdin pipe");
    let data = data.to_vec();
    // A writer thread: the child may answer before it has read everything.
    let writer = std::thread::spawn(move || {
        let _ = pipe.write_all(&data);
    });
    let out = child.wait_with_output().expect("wait for the child");
    let _ = writer.join();
    out
}

/// `git ARGS` in `dir`, whatever its outcome.
fn git_out(dir: &Path, args: &[&str]) -> Output {
    let mut c = command("git", dir);
    c.args(args);
    output(c, None)
}

/// `git ARGS` in `dir`, which must succeed; its stdout.
#[track_caller]
fn git(dir: &Path, args: &[&str]) -> String {
    let out = git_out(dir, args);
    assert!(
        out.status.success(),
        "git {args:?} in {}: {}",
        dir.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `git ARGS` in `dir` with `input` on stdin, which must succeed; its stdout.
#[track_caller]
fn git_stdin(dir: &Path, args: &[&str], input: &[u8]) -> String {
    let mut c = command("git", dir);
    c.args(args);
    let out = output(c, Some(input));
    assert!(
        out.status.success(),
        "git {args:?} in {}: {}",
        dir.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Sleeps until the wall clock is a little into the next second. Filesystems stamp files with a
/// coarse clock that may lag the wall clock by a tick, hence the margin.
fn next_second() {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970");
    let until = Duration::from_secs(now.as_secs() + 1) + Duration::from_millis(30);
    std::thread::sleep(until - now);
}

/// The bytes with everything but printable ASCII escaped, cut at 200 bytes.
fn esc(b: &[u8]) -> String {
    let shown: String = b
        .iter()
        .take(200)
        .flat_map(|&c| std::ascii::escape_default(c))
        .map(char::from)
        .collect();
    if b.len() > 200 {
        format!("b\"{shown}\"... ({} bytes)", b.len())
    } else {
        format!("b\"{shown}\"")
    }
}

fn utf16le_bom(s: &str) -> Vec<u8> {
    let mut v = vec![0xff, 0xfe];
    v.extend(s.encode_utf16().flat_map(u16::to_le_bytes));
    v
}

// ---------------------------------------------------------------------------------------------
// SRC: a repository built with git's own commands

/// Where a class's SRC lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Place {
    /// A directory on XFS (the per-file way, reflinks).
    Xfs,
    /// A btrfs subvolume holding [`FILLERS`] tracked files besides the class's own, so that the
    /// cost rule picks the snapshot way.
    BtrfsSubvolume,
}

impl Place {
    fn name(self) -> &'static str {
        match self {
            Place::Xfs => "xfs",
            Place::BtrfsSubvolume => "btrfs subvolume",
        }
    }
}

/// Tracked files in `filler/` of a SRC on btrfs (all the same bytes: one blob), more than the
/// entries of SRC's `.git`, so that the snapshot way removes fewer entries than the per-file way
/// creates.
const FILLERS: usize = 300;

/// A repository being built: `dir` is SRC, `root` the class's own scratch directory around it.
struct Src {
    root: PathBuf,
    dir: PathBuf,
}

impl Src {
    /// A new repository (`main` unborn) at `root/src`; on btrfs a subvolume with its fillers
    /// committed.
    fn create(root: &Path, place: Place) -> Src {
        let dir = root.join("src");
        match place {
            Place::Xfs => fs::create_dir(&dir).expect("create SRC"),
            Place::BtrfsSubvolume => {
                let out = Command::new("btrfs")
                    .args(["subvolume", "create"])
                    .arg(&dir)
                    .output()
                    .expect("run btrfs (scripts/mounts.sh installs btrfs-progs)");
                assert!(
                    out.status.success(),
                    "btrfs subvolume create {}: {}",
                    dir.display(),
                    String::from_utf8_lossy(&out.stderr)
                );
            }
        }
        let src = Src {
            root: root.to_path_buf(),
            dir,
        };
        src.git(&["init", "-q", "-b", "main"]);
        if place == Place::BtrfsSubvolume {
            for i in 0..FILLERS {
                src.write(&format!("filler/f{i:03}"), b"filler\n");
            }
            src.git(&["add", "filler"]);
            src.git(&["commit", "-q", "-m", "fillers"]);
        }
        src
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.join(rel)
    }

    /// A path beside SRC, in the class's scratch directory.
    fn outside(&self, name: &str) -> PathBuf {
        self.root.join(name)
    }

    #[track_caller]
    fn git(&self, args: &[&str]) -> String {
        git(&self.dir, args)
    }

    fn write(&self, rel: &str, data: impl AsRef<[u8]>) {
        let p = self.path(rel);
        fs::create_dir_all(p.parent().expect("a parent")).expect("create parents");
        fs::write(&p, data).unwrap_or_else(|e| panic!("write {}: {e}", p.display()));
    }

    fn attrs(&self, text: &str) {
        self.write(".gitattributes", text);
    }

    fn chmod(&self, rel: &str, mode: u32) {
        fs::set_permissions(self.path(rel), fs::Permissions::from_mode(mode)).expect("chmod");
    }

    /// `git add -A` and a commit.
    #[track_caller]
    fn commit(&self, msg: &str) {
        self.git(&["add", "-A"]);
        self.git(&["commit", "-q", "--allow-empty", "-m", msg]);
    }

    fn tag(&self, name: &str) {
        self.git(&["tag", name]);
    }

    fn config(&self, key: &str, value: &str) {
        self.git(&["config", key, value]);
    }

    fn unset(&self, key: &str) {
        self.git(&["config", "--unset-all", key]);
    }

    /// The filter driver `up`: smudge upper-cases, clean lower-cases (sizes kept).
    fn up_filter(&self) {
        self.config("filter.up.smudge", "tr a-z A-Z");
        self.config("filter.up.clean", "tr A-Z a-z");
    }

    /// Removes `paths` and has git write them again from the index, under the attributes and
    /// configuration of now.
    #[track_caller]
    fn rewrite(&self, paths: &[&str]) {
        for p in paths {
            fs::remove_file(self.path(p)).unwrap_or_else(|e| panic!("remove {p}: {e}"));
        }
        let mut args = vec!["checkout", "-q", "--"];
        args.extend_from_slice(paths);
        self.git(&args);
    }

    /// Waits for the next second, then `git status` refreshes SRC's index and rewrites it: every
    /// file written before is then stat-clean and not racy. Its failure is not the test's
    /// business (an encoding git cannot read back says so and goes on).
    fn settle(&self) {
        next_second();
        let _ = git_out(&self.dir, &["status", "--porcelain"]);
    }

    /// Makes every entry of SRC's index racy: the index's mtime goes back to the second of the
    /// oldest tracked file, so that neither git nor cowtree may trust any entry's stat data
    /// without reading the file. Deterministic, where writing files and the index in one second
    /// is a matter of luck.
    fn make_racy(&self) {
        let oldest = self
            .git(&["ls-files", "-z"])
            .split('\0')
            .filter(|p| !p.is_empty())
            .filter_map(|p| fs::symlink_metadata(self.path(p)).ok())
            .map(|m| m.mtime())
            .min();
        let Some(oldest) = oldest else { return };
        let index = self.path(".git/index");
        fs::File::options()
            .write(true)
            .open(&index)
            .and_then(|f| f.set_modified(UNIX_EPOCH + Duration::from_secs(oldest as u64)))
            .unwrap_or_else(|e| panic!("set the mtime of {}: {e}", index.display()));
    }

    /// Writes `data` as a blob (no conversion) and stages it at `path` with `mode`.
    fn stage_blob(&self, path: &str, mode: &str, data: &[u8]) {
        let oid = git_stdin(
            &self.dir,
            &["hash-object", "-w", "--no-filters", "--stdin"],
            data,
        );
        self.git(&[
            "update-index",
            "--add",
            "--cacheinfo",
            &format!("{mode},{},{path}", oid.trim()),
        ]);
    }
}

// ---------------------------------------------------------------------------------------------
// The classes

/// Why a class is in the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// SRC's checkout converted a file; the target does not convert it (the issue's classes).
    SrcConverted,
    /// The target needs a conversion that SRC's files never had.
    TargetConverts,
    /// A case from git's own test suite (t0020, t0021, t0027, t0028, t2400).
    GitSuite,
    /// A conversion added after SRC's checkout, which cowtree already gets right and must keep.
    MustKeep,
}

/// One class: a repository built in SRC, and the arguments of `git worktree add` (`DST` stands
/// for the destination).
struct Class {
    name: &'static str,
    kind: Kind,
    args: &'static [&'static str],
    setup: fn(&Src),
}

/// The target is SRC's HEAD.
const HEAD: &[&str] = &["--detach", "DST"];
/// The target is the tag `target`.
const TARGET: &[&str] = &["--detach", "DST", "target"];

const LF: &[u8] = b"one\ntwo\n";
const CRLF: &[u8] = b"one\r\ntwo\r\n";
/// CRLF and LF line ends in one blob.
const MIXED: &[u8] = b"one\r\ntwo\nthree\r\n";
/// A lone CR among LF line ends.
const LONE_CR: &[u8] = b"one\ntwo\rthree\n";
/// A NUL among LF line ends.
const NUL: &[u8] = b"one\ntwo\0three\n";
/// A NUL among CRLF line ends.
const CRLF_NUL: &[u8] = b"one\r\ntwo\0\r\nthree\r\n";
/// Every `$Id` form of t0021's `expanded_in_repo`, and a few more.
const KEYWORDS: &[u8] = b"File with expanded keywords\n\
$Id$\n\
$Id:$\n\
$Id: 0000000000000000000000000000000000000000 $\n\
$Id: NoSpaceAtEnd$\n\
$Id:NoSpaceAtFront $\n\
$Id:NoSpaceAtEitherEnd$\n\
$Id: NoTerminatingSymbol\n\
$Id: Foreign Commit With Spaces $\n\
$$Id$\n\
$Id: split over\n$ two lines\n\
$Id: NoTerminatingSymbolAtEOF";

/// Commits `a.txt` as `text` (UTF-8), settles, then commits `*.txt text working-tree-encoding=ENC`.
fn target_adds_encoding(s: &Src, encoding: &str, text: &str) {
    s.write("a.txt", text);
    s.commit("utf-8");
    s.settle();
    s.attrs(&format!("*.txt text working-tree-encoding={encoding}\n"));
    s.commit("encoding");
}

/// Commits `files`, settles, then commits `attributes`: the blobs are as written, not
/// normalized by the attributes (as t0027's files committed before their attributes).
fn blobs_then_attributes(s: &Src, files: &[(&str, &[u8])], attributes: &str) {
    for (p, data) in files {
        s.write(p, data);
    }
    s.commit("blobs");
    s.settle();
    s.attrs(attributes);
    s.commit("attributes");
}

const EOL_FILES: &[(&str, &[u8])] = &[
    ("lf.txt", LF),
    ("crlf.txt", CRLF),
    ("mixed.txt", MIXED),
    ("lonecr.txt", LONE_CR),
    ("nul.txt", NUL),
    ("crlfnul.txt", CRLF_NUL),
];

static CLASSES: &[Class] = &[
    // --- SRC's checkout converted; the target does not convert (issue 50) ---
    Class {
        name: "lf_where_src_head_has_eol_crlf_and_the_target_commit_has_no_attributes",
        kind: Kind::SrcConverted,
        args: TARGET,
        setup: |s| {
            s.write("a.txt", LF);
            s.write("sub/b.txt", LF);
            s.write("c.dat", LF);
            s.commit("plain");
            s.tag("target");
            s.attrs("*.txt text eol=crlf\n");
            s.commit("crlf");
            s.rewrite(&["a.txt", "sub/b.txt"]);
            s.settle();
        },
    },
    Class {
        name: "lf_after_a_later_commit_removed_eol_crlf",
        kind: Kind::SrcConverted,
        args: HEAD,
        setup: |s| {
            s.attrs("*.txt text eol=crlf\n");
            s.write("a.txt", LF);
            s.commit("crlf");
            s.rewrite(&["a.txt"]);
            s.settle();
            s.git(&["rm", "-q", ".gitattributes"]);
            s.commit("no attributes");
        },
    },
    Class {
        name: "lf_after_a_later_commit_removed_eol_crlf_from_a_subdirectory_gitattributes",
        kind: Kind::SrcConverted,
        args: HEAD,
        setup: |s| {
            s.write("sub/.gitattributes", "*.txt text eol=crlf\n");
            s.write("sub/a.txt", LF);
            s.write("a.txt", LF);
            s.commit("crlf in sub");
            s.rewrite(&["sub/a.txt"]);
            s.settle();
            s.git(&["rm", "-q", "sub/.gitattributes"]);
            s.commit("no attributes");
        },
    },
    Class {
        name: "lf_after_eol_crlf_became_eol_lf",
        kind: Kind::SrcConverted,
        args: HEAD,
        setup: |s| {
            s.attrs("*.txt text eol=crlf\n");
            s.write("a.txt", LF);
            s.commit("crlf");
            s.rewrite(&["a.txt"]);
            s.settle();
            s.attrs("*.txt text eol=lf\n");
            s.commit("lf");
        },
    },
    Class {
        name: "lf_after_core_autocrlf_true_was_unset",
        kind: Kind::SrcConverted,
        args: HEAD,
        setup: |s| {
            s.write("a.txt", LF);
            s.commit("lf");
            s.config("core.autocrlf", "true");
            s.rewrite(&["a.txt"]);
            s.settle();
            s.unset("core.autocrlf");
        },
    },
    Class {
        name: "lf_after_core_autocrlf_true_became_input",
        kind: Kind::SrcConverted,
        args: HEAD,
        setup: |s| {
            s.write("a.txt", LF);
            s.commit("lf");
            s.config("core.autocrlf", "true");
            s.rewrite(&["a.txt"]);
            s.settle();
            s.config("core.autocrlf", "input");
        },
    },
    Class {
        name: "lf_after_core_eol_crlf_with_text_auto_was_unset",
        kind: Kind::SrcConverted,
        args: HEAD,
        setup: |s| {
            s.attrs("* text=auto\n");
            s.write("a.txt", LF);
            s.commit("auto");
            s.config("core.eol", "crlf");
            s.rewrite(&["a.txt"]);
            s.settle();
            s.unset("core.eol");
        },
    },
    Class {
        name: "lf_after_core_eol_crlf_with_the_text_attribute_was_unset",
        kind: Kind::SrcConverted,
        args: HEAD,
        setup: |s| {
            s.attrs("*.txt text\n");
            s.write("a.txt", LF);
            s.commit("text");
            s.config("core.eol", "crlf");
            s.rewrite(&["a.txt"]);
            s.settle();
            s.unset("core.eol");
        },
    },
    Class {
        name: "lf_after_an_uncommitted_gitattributes_edit_rewrote_src_with_crlf",
        kind: Kind::SrcConverted,
        args: HEAD,
        setup: |s| {
            s.attrs("*.md text\n");
            s.write("a.txt", LF);
            s.commit("lf");
            s.attrs("*.md text\n*.txt eol=crlf\n");
            s.rewrite(&["a.txt"]);
            s.settle();
        },
    },
    Class {
        name: "lf_after_core_attributes_file_with_eol_crlf_was_unset",
        kind: Kind::SrcConverted,
        args: HEAD,
        setup: |s| {
            s.write("a.txt", LF);
            s.commit("lf");
            let file = s.outside("user-attributes");
            fs::write(&file, "*.txt eol=crlf\n").expect("write the attributes file");
            s.config("core.attributesFile", file.to_str().expect("UTF-8 path"));
            s.rewrite(&["a.txt"]);
            s.settle();
            s.unset("core.attributesFile");
        },
    },
    Class {
        name: "lf_after_info_attributes_with_eol_crlf_were_removed",
        kind: Kind::SrcConverted,
        args: HEAD,
        setup: |s| {
            s.write("a.txt", LF);
            s.commit("lf");
            s.write(".git/info/attributes", "*.txt eol=crlf\n");
            s.rewrite(&["a.txt"]);
            s.settle();
            fs::remove_file(s.path(".git/info/attributes")).expect("remove info/attributes");
        },
    },
    Class {
        name: "lf_where_crlf_was_written_by_hand_and_normalized_by_the_text_attribute",
        kind: Kind::SrcConverted,
        args: HEAD,
        setup: |s| {
            s.attrs("*.txt text\n");
            s.write("a.txt", CRLF);
            s.commit("normalized");
            s.settle();
        },
    },
    Class {
        name: "lf_where_src_holds_crlf_in_a_racy_entry_under_the_text_attribute",
        kind: Kind::SrcConverted,
        args: HEAD,
        setup: |s| {
            s.attrs("*.txt text\n");
            s.write("a.txt", CRLF);
            s.commit("normalized");
            s.make_racy();
        },
    },
    Class {
        name: "lf_where_src_holds_crlf_in_a_racy_entry_after_core_autocrlf_true_was_unset",
        kind: Kind::SrcConverted,
        args: HEAD,
        setup: |s| {
            s.write("a.txt", LF);
            s.commit("lf");
            s.config("core.autocrlf", "true");
            s.rewrite(&["a.txt"]);
            s.unset("core.autocrlf");
            s.make_racy();
        },
    },
    Class {
        name: "blob_after_a_later_commit_removed_a_smudge_filter",
        kind: Kind::SrcConverted,
        args: HEAD,
        setup: |s| {
            s.up_filter();
            s.attrs("*.txt filter=up\n");
            s.write("a.txt", "abc\n");
            s.commit("up");
            s.rewrite(&["a.txt"]);
            s.settle();
            s.git(&["rm", "-q", ".gitattributes"]);
            s.commit("no filter");
        },
    },
    Class {
        name: "blob_where_src_head_has_a_smudge_filter_and_the_target_commit_has_none",
        kind: Kind::SrcConverted,
        args: TARGET,
        setup: |s| {
            s.up_filter();
            s.write("a.txt", "abc\n");
            s.commit("plain");
            s.tag("target");
            s.attrs("*.txt filter=up\n");
            s.commit("up");
            s.rewrite(&["a.txt"]);
            s.settle();
        },
    },
    Class {
        name: "blob_after_the_smudge_filter_driver_was_unconfigured",
        kind: Kind::SrcConverted,
        args: HEAD,
        setup: |s| {
            s.up_filter();
            s.attrs("*.txt filter=up\n");
            s.write("a.txt", "abc\n");
            s.commit("up");
            s.rewrite(&["a.txt"]);
            s.settle();
            s.git(&["config", "--remove-section", "filter.up"]);
        },
    },
    Class {
        name: "new_smudge_output_after_the_smudge_command_changed",
        kind: Kind::SrcConverted,
        args: HEAD,
        setup: |s| {
            s.up_filter();
            s.attrs("*.txt filter=up\n");
            s.write("a.txt", "abc\n");
            s.commit("up");
            s.rewrite(&["a.txt"]);
            s.settle();
            s.config("filter.up.smudge", "tr abc xyz");
        },
    },
    Class {
        name: "unexpanded_id_after_a_later_commit_removed_ident",
        kind: Kind::SrcConverted,
        args: HEAD,
        setup: |s| {
            s.attrs("*.txt ident\n");
            s.write("a.txt", "x $Id$ y\n");
            s.commit("ident");
            s.rewrite(&["a.txt"]);
            s.settle();
            s.git(&["rm", "-q", ".gitattributes"]);
            s.commit("no ident");
        },
    },
    Class {
        name: "unexpanded_id_where_src_holds_an_expanded_id_in_a_racy_entry",
        kind: Kind::SrcConverted,
        args: HEAD,
        setup: |s| {
            s.attrs("*.txt ident\n");
            s.write("a.txt", "x $Id$ y\n");
            s.commit("ident");
            s.rewrite(&["a.txt"]);
            // Not racy while the index is written without `ident`: git would mark the entry
            // modified.
            s.settle();
            s.git(&["rm", "-q", ".gitattributes"]);
            s.git(&["commit", "-q", "-m", "no ident"]);
            s.make_racy();
        },
    },
    Class {
        name: "unexpanded_id_where_src_head_has_ident_and_the_target_commit_has_none",
        kind: Kind::SrcConverted,
        args: TARGET,
        setup: |s| {
            s.write("a.txt", "x $Id$ y\n");
            s.commit("plain");
            s.tag("target");
            s.attrs("*.txt ident\n");
            s.commit("ident");
            s.rewrite(&["a.txt"]);
            s.settle();
        },
    },
    Class {
        name: "utf8_after_a_later_commit_removed_working_tree_encoding",
        kind: Kind::SrcConverted,
        args: HEAD,
        setup: |s| {
            s.attrs("*.txt text working-tree-encoding=UTF-16LE-BOM\n");
            s.write("a.txt", utf16le_bom("hello\nw\u{f6}rld\n"));
            s.commit("utf-16");
            s.settle();
            s.git(&["rm", "-q", ".gitattributes"]);
            s.commit("no encoding");
        },
    },
    Class {
        name: "utf16_where_src_and_the_target_commit_have_working_tree_encoding_utf16le_bom",
        kind: Kind::SrcConverted,
        args: HEAD,
        setup: |s| {
            s.attrs("*.txt text working-tree-encoding=UTF-16LE-BOM\n");
            s.write("a.txt", utf16le_bom("hello\nw\u{f6}rld\n"));
            s.commit("utf-16");
            s.rewrite(&["a.txt"]);
            s.settle();
        },
    },
    Class {
        name: "regular_file_where_core_symlinks_false_is_set_after_src_checkout",
        kind: Kind::TargetConverts,
        args: HEAD,
        setup: |s| {
            s.write("f", "hi\n");
            symlink("f", s.path("l")).expect("symlink");
            symlink("../nowhere", s.path("dangling")).expect("symlink");
            s.commit("links");
            s.settle();
            s.config("core.symlinks", "false");
        },
    },
    // --- The target converts; SRC's files never were ---
    Class {
        name: "crlf_where_the_target_commit_adds_eol_crlf",
        kind: Kind::TargetConverts,
        args: HEAD,
        setup: |s| {
            blobs_then_attributes(
                s,
                &[("a.txt", LF), ("sub/b.txt", LF)],
                "*.txt text eol=crlf\n",
            )
        },
    },
    Class {
        name: "expanded_id_where_the_target_commit_adds_ident",
        kind: Kind::TargetConverts,
        args: HEAD,
        setup: |s| blobs_then_attributes(s, &[("a.txt", b"x $Id$ y\n")], "*.txt ident\n"),
    },
    Class {
        name: "smudged_where_the_target_commit_adds_a_filter_driver",
        kind: Kind::TargetConverts,
        args: HEAD,
        setup: |s| {
            s.up_filter();
            blobs_then_attributes(s, &[("a.txt", b"abc\n")], "*.txt filter=up\n");
        },
    },
    Class {
        name: "utf16le_bom_where_the_target_commit_adds_working_tree_encoding",
        kind: Kind::TargetConverts,
        args: HEAD,
        setup: |s| target_adds_encoding(s, "UTF-16LE-BOM", "Test \u{422}\u{435}\u{441}\u{442}\n"),
    },
    Class {
        name: "utf16_with_bom_where_the_target_commit_adds_working_tree_encoding_utf16",
        kind: Kind::TargetConverts,
        args: HEAD,
        setup: |s| target_adds_encoding(s, "UTF-16", "Test \u{422}\u{435}\u{441}\u{442}\n"),
    },
    Class {
        name: "utf16be_bom_where_the_target_commit_adds_working_tree_encoding",
        kind: Kind::TargetConverts,
        args: HEAD,
        setup: |s| target_adds_encoding(s, "UTF-16BE-BOM", "Test \u{422}\u{435}\u{441}\u{442}\n"),
    },
    Class {
        name: "utf16le_without_bom_where_the_target_commit_adds_working_tree_encoding",
        kind: Kind::TargetConverts,
        args: HEAD,
        setup: |s| target_adds_encoding(s, "UTF-16LE", "Test \u{422}\u{435}\u{441}\u{442}\n"),
    },
    Class {
        name: "utf32le_where_the_target_commit_adds_working_tree_encoding",
        kind: Kind::TargetConverts,
        args: HEAD,
        setup: |s| target_adds_encoding(s, "UTF-32LE", "Test \u{422}\u{435}\u{441}\u{442}\n"),
    },
    Class {
        name: "shift_jis_where_the_target_commit_adds_working_tree_encoding",
        kind: Kind::TargetConverts,
        args: HEAD,
        setup: |s| target_adds_encoding(s, "SHIFT-JIS", "\u{65e5}\u{672c}\u{8a9e}\nhallo\n"),
    },
    Class {
        name: "latin1_where_the_target_commit_adds_working_tree_encoding_iso_8859_1",
        kind: Kind::TargetConverts,
        args: HEAD,
        setup: |s| target_adds_encoding(s, "ISO-8859-1", "caf\u{e9} cr\u{e8}me\n"),
    },
    Class {
        name: "crlf_where_core_eol_crlf_is_set_after_src_checkout_under_text_auto",
        kind: Kind::TargetConverts,
        args: HEAD,
        setup: |s| {
            s.attrs("* text=auto\n");
            s.write("a.txt", LF);
            s.commit("auto");
            s.settle();
            s.config("core.eol", "crlf");
        },
    },
    Class {
        name: "symlink_where_src_holds_the_plain_file_core_symlinks_false_wrote",
        kind: Kind::SrcConverted,
        args: HEAD,
        setup: |s| {
            s.config("core.symlinks", "false");
            s.write("f", "hi\n");
            s.git(&["add", "f"]);
            s.stage_blob("l", "120000", b"f");
            s.git(&["commit", "-q", "-m", "a link"]);
            // A plain file holding the link's target, as git writes it under symlinks=false.
            s.git(&["checkout", "-q", "--", "l"]);
            s.settle();
            s.unset("core.symlinks");
        },
    },
    Class {
        name: "mode_0644_where_src_made_the_file_executable_under_core_filemode_false",
        kind: Kind::TargetConverts,
        args: HEAD,
        setup: |s| {
            s.write("run.sh", "#!/bin/sh\n");
            s.commit("not executable");
            s.config("core.fileMode", "false");
            s.chmod("run.sh", 0o755);
            s.settle();
        },
    },
    Class {
        name: "mode_0755_where_src_dropped_the_executable_bit_under_core_filemode_false",
        kind: Kind::TargetConverts,
        args: HEAD,
        setup: |s| {
            s.write("run.sh", "#!/bin/sh\n");
            s.chmod("run.sh", 0o755);
            s.commit("executable");
            s.config("core.fileMode", "false");
            s.chmod("run.sh", 0o644);
            s.settle();
        },
    },
    Class {
        name: "executable_files_stay_executable_under_core_filemode_false",
        kind: Kind::TargetConverts,
        args: HEAD,
        setup: |s| {
            s.write("run.sh", "#!/bin/sh\n");
            s.write("plain.txt", LF);
            s.chmod("run.sh", 0o755);
            s.commit("executable");
            s.settle();
            s.config("core.fileMode", "false");
        },
    },
    // --- Conversions added after SRC's checkout that already reach DST ---
    Class {
        name: "crlf_where_core_autocrlf_true_is_set_after_src_checkout",
        kind: Kind::MustKeep,
        args: HEAD,
        setup: |s| {
            s.write("a.txt", LF);
            s.commit("lf");
            s.settle();
            s.config("core.autocrlf", "true");
        },
    },
    Class {
        name: "crlf_where_info_attributes_add_eol_crlf_after_src_checkout",
        kind: Kind::MustKeep,
        args: HEAD,
        setup: |s| {
            s.write("a.txt", LF);
            s.commit("lf");
            s.settle();
            s.write(".git/info/attributes", "*.txt eol=crlf\n");
        },
    },
    Class {
        name: "crlf_where_core_attributes_file_adds_eol_crlf_after_src_checkout",
        kind: Kind::MustKeep,
        args: HEAD,
        setup: |s| {
            s.write("a.txt", LF);
            s.commit("lf");
            s.settle();
            let file = s.outside("user-attributes");
            fs::write(&file, "*.txt eol=crlf\n").expect("write the attributes file");
            s.config("core.attributesFile", file.to_str().expect("UTF-8 path"));
        },
    },
    // --- From git's test suite ---
    Class {
        // t0020 "Mixed file is still mixed with autocrlf"; t0027 autocrlf=true rows.
        name: "autocrlf_true_converts_lf_only_blobs_and_leaves_mixed_ones_alone",
        kind: Kind::GitSuite,
        args: HEAD,
        setup: |s| {
            for (p, data) in [("lf.txt", LF), ("crlf.txt", CRLF), ("mixed.txt", MIXED)] {
                s.write(p, data);
            }
            s.commit("blobs");
            s.settle();
            s.config("core.autocrlf", "true");
        },
    },
    Class {
        // t0027: LF_mix_CR is binary to the auto detection.
        name: "autocrlf_true_leaves_a_blob_with_a_lone_cr_alone",
        kind: Kind::GitSuite,
        args: HEAD,
        setup: |s| {
            s.write("lonecr.txt", LONE_CR);
            s.commit("lone cr");
            s.settle();
            s.config("core.autocrlf", "true");
        },
    },
    Class {
        // t0020 `three` (a NUL), t0027 CRLF_nul: binary to the auto detection.
        name: "autocrlf_true_leaves_blobs_with_nul_alone",
        kind: Kind::GitSuite,
        args: HEAD,
        setup: |s| {
            s.write("nul.txt", NUL);
            s.write("crlfnul.txt", CRLF_NUL);
            s.commit("nul");
            s.settle();
            s.config("core.autocrlf", "true");
        },
    },
    Class {
        // t0027 "auto" with core.eol=crlf: CRLF already in the blob is not converted.
        name: "text_auto_with_core_eol_crlf_converts_only_lf_only_text_blobs",
        kind: Kind::GitSuite,
        args: HEAD,
        setup: |s| {
            blobs_then_attributes(s, EOL_FILES, "*.txt text=auto\n");
            s.config("core.eol", "crlf");
        },
    },
    Class {
        // t0027 `checkout_files text ... crlf`: every LF becomes CRLF, lone CR and NUL kept.
        name: "text_eol_crlf_converts_mixed_lone_cr_and_nul_blobs",
        kind: Kind::GitSuite,
        args: HEAD,
        setup: |s| blobs_then_attributes(s, EOL_FILES, "*.txt text eol=crlf\n"),
    },
    Class {
        // t0027 `checkout_files auto ... crlf`: eol=crlf with text=auto converts LF-only text.
        name: "text_auto_eol_crlf_converts_only_lf_only_text_blobs",
        kind: Kind::GitSuite,
        args: HEAD,
        setup: |s| blobs_then_attributes(s, EOL_FILES, "*.txt text=auto eol=crlf\n"),
    },
    Class {
        // t0020 ".gitattributes says two is binary / input / text".
        name: "legacy_crlf_attributes_under_autocrlf_true",
        kind: Kind::GitSuite,
        args: HEAD,
        setup: |s| {
            s.write("one", "Hello\nworld\nhow\nare\nyou\n");
            s.write("dir/two", "I\nam\nvery\nvery\nfine\nthank\nyou\n");
            s.write("three", "Oh\nhere\nis\nNUL\0in\ntext\nhere\n");
            s.write("four", "plain\ntext\n");
            s.commit("initial");
            s.settle();
            s.config("core.autocrlf", "true");
            s.attrs("two -crlf\none crlf=input\nthree crlf\n");
            s.commit("legacy attributes");
        },
    },
    Class {
        // t0027: `text` follows core.eol, `-text` never converts, unspecified is not text.
        name: "text_and_minus_text_under_core_eol_crlf",
        kind: Kind::GitSuite,
        args: HEAD,
        setup: |s| {
            blobs_then_attributes(
                s,
                &[("t.txt", LF), ("b.txt", LF), ("u.txt", LF)],
                "t.txt text\nb.txt -text\n",
            );
            s.config("core.eol", "crlf");
        },
    },
    Class {
        // t0027 `checkout_files "" ... lf true`.
        name: "eol_lf_overrides_core_autocrlf_true",
        kind: Kind::GitSuite,
        args: HEAD,
        setup: |s| {
            blobs_then_attributes(s, &[("a.txt", LF), ("b.dat", LF)], "*.txt eol=lf\n");
            s.config("core.autocrlf", "true");
        },
    },
    Class {
        // t0027 "text: core.autocrlf = true overrides core.eol".
        name: "core_autocrlf_true_overrides_core_eol_lf_for_text_files",
        kind: Kind::GitSuite,
        args: HEAD,
        setup: |s| {
            blobs_then_attributes(s, &[("a.txt", LF)], "*.txt text\n");
            s.config("core.eol", "lf");
            s.config("core.autocrlf", "true");
        },
    },
    Class {
        // t0027 "-text overrides core.autocrlf and core.eol", with eol=crlf.
        name: "minus_text_overrides_eol_crlf",
        kind: Kind::GitSuite,
        args: HEAD,
        setup: |s| {
            blobs_then_attributes(s, &[("a.txt", LF)], "*.txt -text eol=crlf\n");
            s.config("core.autocrlf", "true");
        },
    },
    Class {
        name: "an_unspecified_eol_overrides_a_wildcard_eol_crlf",
        kind: Kind::GitSuite,
        args: HEAD,
        setup: |s| {
            blobs_then_attributes(
                s,
                &[("a.txt", LF), ("b.txt", LF)],
                "*.txt eol=crlf\na.txt !eol\n",
            );
        },
    },
    Class {
        // t0020 "checkout with existing .gitattributes": `.file2 -crlf\r`.
        name: "attribute_lines_ending_in_cr_still_apply_under_autocrlf_true",
        kind: Kind::GitSuite,
        args: HEAD,
        setup: |s| {
            blobs_then_attributes(s, &[("one.txt", LF), ("two.txt", LF)], "one.txt -crlf\r\n");
            s.config("core.autocrlf", "true");
        },
    },
    Class {
        name: "binary_and_custom_macros_under_autocrlf_true",
        kind: Kind::GitSuite,
        args: HEAD,
        setup: |s| {
            blobs_then_attributes(
                s,
                &[("a.txt", LF), ("b.txt", LF), ("c.dat", LF)],
                "[attr]crlfy text eol=crlf\nb.txt binary\nc.dat crlfy\n",
            );
            s.config("core.autocrlf", "true");
        },
    },
    Class {
        // t0021 expanded_in_repo.
        name: "ident_expands_the_id_forms_git_expands_and_keeps_foreign_ids",
        kind: Kind::GitSuite,
        args: HEAD,
        setup: |s| blobs_then_attributes(s, &[("kw.txt", KEYWORDS)], "kw.txt ident\n"),
    },
    Class {
        // t0021 expanded_in_repo, expanded-keywords-crlf.
        name: "ident_with_text_eol_crlf_expands_and_ends_lines_with_crlf",
        kind: Kind::GitSuite,
        args: HEAD,
        setup: |s| {
            blobs_then_attributes(s, &[("kw.txt", KEYWORDS)], "kw.txt ident text eol=crlf\n");
        },
    },
    Class {
        name: "empty_and_unterminated_blobs_under_eol_crlf_and_ident",
        kind: Kind::GitSuite,
        args: HEAD,
        setup: |s| {
            blobs_then_attributes(
                s,
                &[
                    ("empty.txt", b""),
                    ("last.txt", b"a\nb"),
                    ("id.txt", b"$Id$"),
                ],
                "*.txt text eol=crlf ident\n",
            );
        },
    },
    Class {
        // t0021 "filter shell-escaped filenames".
        name: "smudge_filter_gets_the_shell_quoted_path_for_percent_f",
        kind: Kind::GitSuite,
        args: HEAD,
        setup: |s| {
            let script = s.outside("argc.sh");
            fs::write(&script, "cat >/dev/null\necho argc: $# \"$@\"\n").expect("script");
            s.config(
                "filter.argc.smudge",
                &format!("sh {} %f", script.to_str().expect("UTF-8 path")),
            );
            blobs_then_attributes(
                s,
                &[
                    ("name-no-magic", b"some test text\n"),
                    ("name  with 'sq' and $x", b"some test text\n"),
                ],
                "name* filter=argc\n",
            );
        },
    },
    Class {
        // t0021 "filter: smudge empty file".
        name: "smudge_filter_runs_on_an_empty_blob",
        kind: Kind::GitSuite,
        args: HEAD,
        setup: |s| {
            s.config("filter.empty.smudge", "echo smudged && cat");
            blobs_then_attributes(s, &[("empty", b"")], "empty filter=empty\n");
        },
    },
    Class {
        // t0021 "disable filter with empty override".
        name: "filter_driver_with_an_empty_smudge_command_writes_the_blob",
        kind: Kind::GitSuite,
        args: HEAD,
        setup: |s| {
            s.config("filter.disable.smudge", "");
            s.config("filter.disable.clean", "");
            blobs_then_attributes(s, &[("d.dis", b"data\n")], "*.dis filter=disable\n");
        },
    },
    Class {
        // t0021 "required filter should filter data".
        name: "required_filter_driver_smudges",
        kind: Kind::GitSuite,
        args: HEAD,
        setup: |s| {
            s.config("filter.req.smudge", "tr a-z A-Z");
            s.config("filter.req.clean", "tr A-Z a-z");
            s.config("filter.req.required", "true");
            s.attrs("*.r filter=req\n");
            s.write("a.r", "abc\n");
            s.commit("required");
            s.settle();
        },
    },
    Class {
        // t0021 "required filter with absent smudge field": git's checkout fails.
        name: "required_filter_driver_without_smudge_fails_the_checkout",
        kind: Kind::GitSuite,
        args: HEAD,
        setup: |s| {
            s.config("filter.nosmudge.clean", "cat");
            s.config("filter.nosmudge.required", "true");
            s.attrs("*.r filter=nosmudge\n");
            s.write("a.r", "abc\n");
            s.commit("required");
            s.settle();
        },
    },
    Class {
        // t0021: a driver with `clean` only; SRC holds what was written by hand.
        name: "blob_where_a_clean_only_filter_lowered_what_src_holds",
        kind: Kind::GitSuite,
        args: HEAD,
        setup: |s| {
            s.config("filter.low.clean", "tr A-Z a-z");
            s.attrs("*.txt filter=low\n");
            s.write("a.txt", "ABC\n");
            s.commit("clean only");
            s.settle();
        },
    },
    Class {
        // git runs a checkout's filters with the new worktree's $GIT_DIR (its registration,
        // HEAD at the commit checked out); cowtree too (their working directory is not the
        // new worktree's: docs/git.md).
        name: "smudge_filter_runs_with_the_new_worktrees_git_dir",
        kind: Kind::GitSuite,
        args: HEAD,
        setup: |s| {
            s.config("filter.wd.smudge", "cat; git rev-parse HEAD");
            blobs_then_attributes(s, &[("a.txt", b"abc\n")], "*.txt filter=wd\n");
        },
    },
    Class {
        // t0028 "eol conversion for UTF-16 encoded files on checkout".
        name: "working_tree_encoding_utf16_with_core_eol_crlf",
        kind: Kind::GitSuite,
        args: HEAD,
        setup: |s| {
            target_adds_encoding(s, "UTF-16", "one\ntwo\nthree\n");
            s.config("core.eol", "crlf");
        },
    },
    Class {
        // t0028 "check unsupported encodings" and "Commit UTF-8, checkout UTF-8".
        name: "working_tree_encoding_utf8_unset_or_empty_writes_utf8",
        kind: Kind::GitSuite,
        args: HEAD,
        setup: |s| {
            let text: &[u8] = "Test \u{422}\u{435}\u{441}\u{442}\n".as_bytes();
            blobs_then_attributes(
                s,
                &[("a.u8", text), ("b.un", text), ("c.em", text)],
                "*.u8 text working-tree-encoding=UTF-8\n*.un text -working-tree-encoding\n\
                 *.em text working-tree-encoding=\n",
            );
        },
    },
    Class {
        // git reports the failure and writes the blob as it is.
        name: "working_tree_encoding_that_cannot_represent_the_blob_writes_it_as_utf8",
        kind: Kind::GitSuite,
        args: HEAD,
        setup: |s| target_adds_encoding(s, "ISO-8859-1", "\u{65e5}\u{672c}\n"),
    },
    Class {
        // t2400 "add to bare repo with worktree config": config.worktree is copied.
        name: "worktree_config_core_autocrlf_is_copied_into_the_new_worktree",
        kind: Kind::GitSuite,
        args: HEAD,
        setup: |s| {
            s.write("a.txt", LF);
            s.commit("lf");
            s.settle();
            s.config("extensions.worktreeConfig", "true");
            s.git(&["config", "--worktree", "core.autocrlf", "true"]);
        },
    },
];

// ---------------------------------------------------------------------------------------------
// Comparing two worktrees

/// One entry of a worktree: its type, permission bits and bytes (a symlink's: its target).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Node {
    kind: &'static str,
    perm: u32,
    data: Vec<u8>,
}

/// Every entry under `root` but its `.git`, by relative path.
fn walk(root: &Path) -> BTreeMap<String, Node> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let entries = fs::read_dir(&dir).unwrap_or_else(|e| panic!("read {}: {e}", dir.display()));
        for e in entries {
            let p = e.expect("a directory entry").path();
            let rel = p
                .strip_prefix(root)
                .expect("beneath the root")
                .to_string_lossy()
                .into_owned();
            if rel == ".git" {
                continue;
            }
            let m = fs::symlink_metadata(&p).expect("lstat");
            let ft = m.file_type();
            let (kind, data) = if ft.is_symlink() {
                let t = fs::read_link(&p).expect("readlink");
                ("symlink", t.into_os_string().into_encoded_bytes())
            } else if ft.is_dir() {
                stack.push(p.clone());
                ("directory", Vec::new())
            } else if ft.is_file() {
                ("file", fs::read(&p).expect("read"))
            } else {
                ("special file", Vec::new())
            };
            out.insert(
                rel,
                Node {
                    kind,
                    perm: m.mode() & 0o7777,
                    data,
                },
            );
        }
    }
    out
}

/// `git ARGS` in `dir` as text for a comparison: its stdout, and its exit status when it failed.
fn shown(dir: &Path, args: &[&str], index: Option<&Path>) -> String {
    let mut c = command("git", dir);
    c.args(args);
    if let Some(i) = index {
        c.env("GIT_INDEX_FILE", i);
    }
    let out = output(c, None);
    let mut s = String::from_utf8_lossy(&out.stdout).into_owned();
    if !out.status.success() {
        s.push_str(&format!(
            "[{}: {}]",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    s
}

/// `git status` of `wt` from an index without stat data (`read-tree HEAD` into `index`): every
/// tracked file hashed through git's clean conversions and compared with its blob.
fn rehashed_status(wt: &Path, index: &Path) -> String {
    let _ = fs::remove_file(index);
    let read = shown(wt, &["read-tree", "HEAD"], Some(index));
    let status = shown(
        wt,
        &["status", "--porcelain", "--untracked-files=no"],
        Some(index),
    );
    let _ = fs::remove_file(index);
    format!("{read}{status}")
}

/// What `git` says of a worktree, for comparing two: (what was asked, the answer).
fn git_views(wt: &Path, scratch: &Path) -> Vec<(&'static str, String)> {
    vec![
        (
            "git status --porcelain",
            shown(
                wt,
                &["status", "--porcelain", "--untracked-files=all"],
                None,
            ),
        ),
        ("git diff", shown(wt, &["diff"], None)),
        ("git diff --cached", shown(wt, &["diff", "--cached"], None)),
        ("git ls-files -s", shown(wt, &["ls-files", "-s"], None)),
        ("HEAD", shown(wt, &["rev-parse", "HEAD"], None)),
        ("git config --list", shown(wt, &["config", "--list"], None)),
        (
            "git status with every file re-hashed (an index without stat data)",
            rehashed_status(wt, scratch),
        ),
    ]
}

/// Every difference between the worktree git made and the one cowtree made, one line each.
fn compare_worktrees(by_git: &Path, by_cowtree: &Path, scratch: &Path) -> Vec<String> {
    let mut problems = Vec::new();
    let (a, b) = (walk(by_git), walk(by_cowtree));
    for (path, x) in &a {
        let Some(y) = b.get(path) else {
            problems.push(format!(
                "{path}: missing in cowtree's worktree (git: a {})",
                x.kind
            ));
            continue;
        };
        if x.kind != y.kind {
            problems.push(format!(
                "{path}: type: git a {} {}, cowtree a {} {}",
                x.kind,
                esc(&x.data),
                y.kind,
                esc(&y.data)
            ));
            continue;
        }
        if x.data != y.data {
            problems.push(format!(
                "{path}: bytes: git {}, cowtree {}",
                esc(&x.data),
                esc(&y.data)
            ));
        }
        if x.perm != y.perm && x.kind != "symlink" {
            problems.push(format!(
                "{path}: permission bits: git {:o}, cowtree {:o}",
                x.perm, y.perm
            ));
        }
    }
    for (path, y) in &b {
        if !a.contains_key(path) {
            problems.push(format!("{path}: only in cowtree's worktree (a {})", y.kind));
        }
    }
    let views_git = git_views(by_git, &scratch.join("rehash-git.index"));
    let views_cow = git_views(by_cowtree, &scratch.join("rehash-cowtree.index"));
    for ((what, x), (_, y)) in views_git.iter().zip(&views_cow) {
        if x != y {
            problems.push(format!(
                "{what}: git's worktree {}, cowtree's {}",
                esc(x.as_bytes()),
                esc(y.as_bytes())
            ));
        }
    }
    problems
}

/// Makes the index of `wt`, a worktree just made (by git or by cowtree: both leave the files
/// written in the index's own second racy), not racy, as if the checkout had ended in a later
/// second than it wrote its last file: git then trusts every entry's stat data. Without this,
/// whether `git status` re-reads a file whose conversion does not give its blob back (a smudge
/// and a clean that are not inverses, a CRLF blob under `text`) would depend on the clock.
/// What reading every file says is compared apart ([`rehashed_status`]).
fn settle_index(wt: &Path) {
    let index = wt.join(git(wt, &["rev-parse", "--git-path", "index"]).trim());
    // Seconds: git is built without USE_NSEC, so an entry is racy when its mtime is in the
    // index's second or later.
    let mtime = |p: &Path| fs::symlink_metadata(p).map(|m| m.mtime()).ok();
    let Some(written) = mtime(&index) else { return };
    let racy = git(wt, &["ls-files", "-z"])
        .split('\0')
        .filter(|p| !p.is_empty())
        .filter_map(|p| mtime(&wt.join(p)))
        .any(|t| t >= written);
    if racy {
        next_second();
        fs::File::options()
            .write(true)
            .open(&index)
            .and_then(|f| f.set_modified(SystemTime::now()))
            .unwrap_or_else(|e| panic!("touch {}: {e}", index.display()));
    }
}

/// Tracked regular files in `wt`'s index.
fn tracked_files(wt: &Path) -> usize {
    git(wt, &["ls-files", "-s"])
        .lines()
        .filter(|l| l.starts_with("100644 ") || l.starts_with("100755 "))
        .count()
}

// ---------------------------------------------------------------------------------------------
// One comparison: git worktree add against cowtree git worktree add

/// What one comparison found.
#[derive(Debug, Default)]
struct Finding {
    /// The class (or random sequence) and where it ran.
    label: String,
    kind: Option<Kind>,
    /// Every difference from git, one line each; empty when cowtree did what git did.
    problems: Vec<String>,
    /// cowtree's `--json` report, when it succeeded.
    json: Option<Value>,
    /// Tracked regular files in git's worktree.
    files: usize,
}

/// `args` with `DST` replaced by `dst`.
fn with_dst(args: &[&str], dst: &Path) -> Vec<String> {
    args.iter()
        .map(|a| {
            if *a == "DST" {
                dst.to_str().expect("UTF-8 path").to_owned()
            } else {
                (*a).to_owned()
            }
        })
        .collect()
}

/// A one-line account of a failed command.
fn failed(out: &Output) -> String {
    format!(
        "{}: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr).trim()
    )
}

/// Runs `git worktree add ARGS` and `cowtree git worktree add --json --from SRC ARGS` in `src`
/// (each DST `wt` under its own directory in `root`) and compares the outcomes and the
/// worktrees. `--from` pins SRC as the worktree that lends its files: git's own new worktree,
/// which holds exactly git's bytes, must not lend them.
fn compare_add(src: &Path, root: &Path, args: &[&str], place: Place, f: &mut Finding) {
    let (git_dst, cow_dst) = (root.join("by-git/wt"), root.join("by-cowtree/wt"));
    let mut g = command("git", src);
    g.args(["worktree", "add"]).args(with_dst(args, &git_dst));
    let by_git = output(g, None);
    let mut c = command(common::BIN, src);
    c.args(["git", "worktree", "add", "--json", "--from"])
        .arg(src)
        .args(with_dst(args, &cow_dst));
    let by_cowtree = output(c, None);
    compare_added((&git_dst, by_git), (&cow_dst, by_cowtree), place, root, f);
    remove_worktrees(src, &[&git_dst, &cow_dst]);
}

/// Removes the worktrees `wts` of `src`'s repository (those that were made), so that a later
/// comparison in the same repository sees none of them.
fn remove_worktrees(src: &Path, wts: &[&Path]) {
    for wt in wts {
        if wt.exists() {
            let mut g = command("git", src);
            g.args(["worktree", "remove", "--force", "--force"]).arg(wt);
            output(g, None);
        }
    }
}

/// The rest of [`compare_add`]: the outcomes and the worktrees compared.
fn compare_added(
    (git_dst, by_git): (&Path, Output),
    (cow_dst, by_cowtree): (&Path, Output),
    place: Place,
    root: &Path,
    f: &mut Finding,
) {
    match (by_git.status.success(), by_cowtree.status.success()) {
        (true, false) => {
            f.problems.push(format!(
                "cowtree failed where git succeeded: {}",
                failed(&by_cowtree)
            ));
            return;
        }
        (false, true) => f.problems.push(format!(
            "cowtree succeeded where git failed ({})",
            failed(&by_git)
        )),
        (false, false) => {
            if cow_dst.exists() {
                f.problems
                    .push("cowtree failed, as git did, but left its DST".to_owned());
            }
            return;
        }
        (true, true) => {}
    }
    let json: Value = match serde_json::from_slice(&by_cowtree.stdout) {
        Ok(v) => v,
        Err(e) => {
            f.problems.push(format!(
                "cowtree's --json output is not one JSON object ({e}): {}",
                esc(&by_cowtree.stdout)
            ));
            Value::Null
        }
    };
    if place == Place::BtrfsSubvolume && json["method"] != "subvolume" {
        f.problems.push(format!(
            "made by {} ({}), not by snapshot: the comparison does not cover the snapshot way",
            json["method"], json["reason"]
        ));
    }
    if !by_git.status.success() {
        return;
    }
    settle_index(git_dst);
    settle_index(cow_dst);
    f.files = tracked_files(git_dst);
    f.json = Some(json);
    f.problems.extend(compare_worktrees(git_dst, cow_dst, root));
}

/// The Claude Code hook with `{"name": "wt", "cwd": SRC, "base_commit": COMMIT}` against
/// `git worktree add -b by-git-wt DST COMMIT`, COMMIT the commit `args` name; both worktrees
/// removed after.
fn compare_hook(src: &Path, root: &Path, args: &[&str], f: &mut Finding) {
    compare_hook_made(src, root, args, f);
    remove_worktrees(
        src,
        &[
            &root.join("hook-by-git/wt"),
            &src.join(".claude/worktrees/wt"),
        ],
    );
}

fn compare_hook_made(src: &Path, root: &Path, args: &[&str], f: &mut Finding) {
    let commitish = match args.iter().position(|a| *a == "DST") {
        Some(i) if i + 1 < args.len() => args[i + 1],
        _ => "HEAD",
    };
    let commit = git(src, &["rev-parse", &format!("{commitish}^{{commit}}")]);
    let commit = commit.trim();
    let git_dst = root.join("hook-by-git/wt");
    // The hook first: git's new worktree, which holds exactly git's bytes, must not lend its
    // files to it.
    let payload = serde_json::json!({
        "name": "wt",
        "cwd": src.to_str().expect("UTF-8 path"),
        "base_commit": commit,
    });
    let mut c = command(common::BIN, src);
    c.args(["hook", "claude-code", "worktree-create"]);
    let by_hook = output(c, Some(payload.to_string().as_bytes()));
    let hook_dst = src.join(".claude/worktrees/wt");
    let mut g = command("git", src);
    g.args(["worktree", "add", "-b", "by-git-wt"])
        .arg(&git_dst)
        .arg(commit);
    let by_git = output(g, None);
    match (by_git.status.success(), by_hook.status.success()) {
        (true, false) => {
            f.problems.push(format!(
                "the hook failed where git succeeded: {}",
                failed(&by_hook)
            ));
            return;
        }
        (false, true) => {
            f.problems.push(format!(
                "the hook succeeded where git failed ({})",
                failed(&by_git)
            ));
            return;
        }
        (false, false) => return,
        (true, true) => {}
    }
    let said = String::from_utf8_lossy(&by_hook.stdout);
    if said != format!("{}\n", hook_dst.display()) {
        f.problems.push(format!(
            "the hook printed {}, not the worktree's path",
            esc(said.as_bytes())
        ));
        return;
    }
    settle_index(&git_dst);
    settle_index(&hook_dst);
    f.files = tracked_files(&git_dst);
    f.problems
        .extend(compare_worktrees(&git_dst, &hook_dst, root));
}

/// Which comparisons a class run makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Via {
    /// `cowtree git worktree add --json ARGS`.
    Add,
    /// `cowtree hook claude-code worktree-create`.
    Hook,
}

/// How a finding names its class, where it ran and how.
fn label(class: &Class, place: Place, via: Via) -> String {
    match via {
        Via::Add => format!("{} on {}", class.name, place.name()),
        Via::Hook => format!("{} through the hook on {}", class.name, place.name()),
    }
}

/// Builds `class` in a fresh SRC under `base` and compares each of `vias` with git.
fn run_class(class: &Class, base: &Path, place: Place, vias: &[Via]) -> Vec<Finding> {
    let root = base.join(class.name);
    fs::create_dir(&root).expect("the class's directory");
    let built = catch_unwind(AssertUnwindSafe(|| {
        let src = Src::create(&root, place);
        (class.setup)(&src);
        src
    }));
    let src = match built {
        Ok(src) => src,
        Err(e) => {
            return vias
                .iter()
                .map(|via| Finding {
                    label: label(class, place, *via),
                    kind: Some(class.kind),
                    problems: vec![format!("setup failed: {}", common::panic_message(&*e))],
                    ..Finding::default()
                })
                .collect();
        }
    };
    vias.iter()
        .map(|via| {
            let mut f = Finding {
                label: label(class, place, *via),
                kind: Some(class.kind),
                ..Finding::default()
            };
            let r = catch_unwind(AssertUnwindSafe(|| match via {
                Via::Add => compare_add(&src.dir, &root, class.args, place, &mut f),
                Via::Hook => compare_hook(&src.dir, &root, class.args, &mut f),
            }));
            if let Err(e) = r {
                f.problems.push(format!(
                    "the comparison panicked: {}",
                    common::panic_message(&*e)
                ));
            }
            f
        })
        .collect()
}

const THREADS: usize = 16;

/// Every class's findings on one filesystem, computed once for all the tests that read them.
struct Suite {
    findings: Vec<Finding>,
}

/// The classes on `fs`, each compared through `vias(k)` for class `k` (none: not built).
fn run_suite(fs: Fs, place: Place, vias: impl Fn(usize) -> Vec<Via> + Sync) -> Option<Suite> {
    let mount = mount(fs)?;
    let dir = tempfile::Builder::new()
        .prefix("cowtree-test-conversions-")
        .tempdir_in(&mount)
        .expect("a scratch directory");
    let started = Instant::now();
    let picked: Vec<(usize, Vec<Via>)> = (0..CLASSES.len())
        .map(|k| (k, vias(k)))
        .filter(|(_, v)| !v.is_empty())
        .collect();
    let findings = common::parallel(picked.len(), THREADS, |i| {
        let (k, vias) = &picked[i];
        run_class(&CLASSES[*k], dir.path(), place, vias)
    })
    .into_iter()
    .flatten()
    .collect();
    println!(
        "{} of {} classes on {} in {:.1} s",
        picked.len(),
        CLASSES.len(),
        place.name(),
        started.elapsed().as_secs_f64()
    );
    Some(Suite { findings })
}

/// The classes on XFS (through `add`, and through the hook) and from a btrfs subvolume (through
/// `add`), computed once for all the tests that read them. The two suites run at the same time:
/// most of their time is waiting for the clock, and the tests that read both would otherwise
/// hold two test threads while one suite after the other ran. Each is `Err` with the message of
/// its panic (a mount that `COWTREE_TEST_REQUIRE_FS=1` requires, a scratch directory): the cell
/// is always filled, and only the tests that read the failed suite fail.
///
/// Every class goes through `add` on XFS. The hook and the btrfs snapshot way take every class
/// in the full tier (`COWTREE_TEST_FULL=1`, .ci/run) and every third in the README's run, each
/// a different third: 116 of the 210 comparisons.
struct Suites {
    xfs: Result<Option<Suite>, String>,
    btrfs: Result<Option<Suite>, String>,
}

static SUITES: OnceLock<Suites> = OnceLock::new();

fn suites() -> &'static Suites {
    SUITES.get_or_init(|| {
        let all = CLASSES.len();
        // The classes k with k % 3 == 1 (btrfs) and those with k % 3 == 2 (the hook): 23 of
        // the 70 each, all / 3 (one more for btrfs when all % 3 == 2).
        let n = cowtree_testutil::fewer(
            "classes through the hook and from a btrfs subvolume",
            all as u64,
            (all / 3) as u64,
        );
        let every = if n == all as u64 { 1 } else { 3 };
        let name = std::thread::current()
            .name()
            .unwrap_or("git_conversions")
            .to_owned();
        std::thread::scope(|scope| {
            // Named after the test that started it, as skip lines name their test.
            let btrfs = std::thread::Builder::new()
                .name(format!("{name} (btrfs suite)"))
                .spawn_scoped(scope, || {
                    run_suite(Fs::Btrfs, Place::BtrfsSubvolume, |k| {
                        if k % every == 1 % every {
                            vec![Via::Add]
                        } else {
                            Vec::new()
                        }
                    })
                })
                .expect("a thread for the btrfs suite");
            let xfs = catch_unwind(AssertUnwindSafe(|| {
                run_suite(Fs::Xfs, Place::Xfs, |k| {
                    if k % every == 2 % every {
                        vec![Via::Add, Via::Hook]
                    } else {
                        vec![Via::Add]
                    }
                })
            }));
            Suites {
                xfs: xfs.map_err(|e| format!("the XFS suite: {}", common::panic_message(&*e))),
                btrfs: btrfs
                    .join()
                    .map_err(|e| format!("the btrfs suite: {}", common::panic_message(&*e))),
            }
        })
    })
}

fn xfs_suite() -> Option<&'static Suite> {
    match &suites().xfs {
        Ok(suite) => suite.as_ref(),
        Err(e) => panic!("{e}"),
    }
}

fn btrfs_suite() -> Option<&'static Suite> {
    match &suites().btrfs {
        Ok(suite) => suite.as_ref(),
        Err(e) => panic!("{e}"),
    }
}

/// The findings `pick` keeps of `suite`, at least one: a suite that compared nothing (no
/// class picked) fails the test that reads it.
#[track_caller]
fn some_findings<'a>(
    suite: &'a Suite,
    pick: impl Fn(&Finding) -> bool,
    what: &str,
) -> Vec<&'a Finding> {
    let found: Vec<&Finding> = suite.findings.iter().filter(|f| pick(f)).collect();
    assert!(!found.is_empty(), "{what}: no class was compared");
    found
}

fn through_add(f: &Finding) -> bool {
    !f.label.contains(" through the hook ")
}

/// Panics with every finding that has problems, or returns when none has.
#[track_caller]
fn assert_no_problems<'a>(what: &str, findings: impl IntoIterator<Item = &'a Finding>) {
    let mut total = 0;
    let mut report = String::new();
    for f in findings {
        total += 1;
        if f.problems.is_empty() {
            continue;
        }
        report.push_str(&format!("\n* {}:", f.label));
        for p in &f.problems {
            report.push_str(&format!("\n    {p}"));
        }
    }
    let failing = report.matches("\n* ").count();
    assert!(
        failing == 0,
        "{what}: {failing} of {total} differ from git:{report}"
    );
}

fn add_findings(suite: &Suite) -> impl Iterator<Item = &Finding> {
    suite.findings.iter().filter(|f| through_add(f))
}

#[test]
fn every_conversion_class_checks_out_as_git_worktree_add_does_on_xfs() {
    let Some(suite) = xfs_suite() else { return };
    let what = "`cowtree git worktree add` on XFS";
    assert_no_problems(what, some_findings(suite, through_add, what));
}

#[test]
fn every_conversion_class_checks_out_as_git_worktree_add_does_from_a_btrfs_subvolume() {
    let Some(suite) = btrfs_suite() else { return };
    let what = "`cowtree git worktree add` by snapshot of a btrfs subvolume";
    assert_no_problems(what, some_findings(suite, through_add, what));
}

#[test]
fn conversions_added_after_src_checkout_keep_reaching_the_new_worktree() {
    let mut findings: Vec<&Finding> = Vec::new();
    for suite in [xfs_suite(), btrfs_suite()].into_iter().flatten() {
        findings.extend(add_findings(suite).filter(|f| f.kind == Some(Kind::MustKeep)));
    }
    assert!(
        findings.is_empty() || findings.len() >= 3,
        "the classes that must keep passing: {}",
        findings.len()
    );
    assert_no_problems("conversions added after SRC's checkout", findings);
}

#[test]
fn the_claude_code_hook_checks_out_every_conversion_class_as_git_worktree_add_b_does() {
    let Some(suite) = xfs_suite() else { return };
    let what = "`cowtree hook claude-code worktree-create` on XFS";
    assert_no_problems(what, some_findings(suite, |f| !through_add(f), what));
}

// ---------------------------------------------------------------------------------------------
// The JSON counts

/// `counts.KEY` of cowtree's `--json` report: a field that is missing or not a whole number is
/// an error naming it. The one place the counts are read.
fn count(json: &Value, key: &str) -> Result<u64, String> {
    json["counts"][key]
        .as_u64()
        .ok_or_else(|| format!("counts.{key} is missing or not a whole number"))
}

/// What is wrong with the counts of `json`, a report of a worktree with `files` tracked regular
/// files: every tracked entry is cloned, copied, kept or written from objects, and every file was
/// reused on its stat data, reused after hashing, or written from objects.
fn counts_problems(json: &Value, files: usize) -> Vec<String> {
    let keys = [
        "entries",
        "cloned",
        "copied",
        "kept",
        "from_objects",
        "reused_on_stat",
        "reused_after_hash",
    ];
    let mut n = BTreeMap::new();
    let mut problems = Vec::new();
    for k in keys {
        match count(json, k) {
            Ok(v) => {
                n.insert(k, v);
            }
            Err(e) => problems.push(e),
        }
    }
    if !problems.is_empty() {
        problems.push(format!("counts: {}", json["counts"]));
        return problems;
    }
    let made = n["cloned"] + n["copied"] + n["kept"] + n["from_objects"];
    if made != n["entries"] {
        problems.push(format!(
            "cloned + copied + kept + from_objects = {made}, not entries = {}",
            n["entries"]
        ));
    }
    let reused = n["reused_on_stat"] + n["reused_after_hash"];
    let proven = reused + n["from_objects"];
    if proven < files as u64 {
        problems.push(format!(
            "reused_on_stat + reused_after_hash + from_objects = {proven}, fewer than the {files} \
             tracked files"
        ));
    }
    if proven > n["entries"] {
        problems.push(format!(
            "reused_on_stat + reused_after_hash + from_objects = {proven}, more than the {} entries",
            n["entries"]
        ));
    }
    if reused > n["cloned"] + n["copied"] + n["kept"] {
        problems.push(format!(
            "reused_on_stat + reused_after_hash = {reused}, more than cloned + copied + kept = {}",
            n["cloned"] + n["copied"] + n["kept"]
        ));
    }
    if !problems.is_empty() {
        problems.push(format!("counts: {}", json["counts"]));
    }
    problems
}

#[test]
fn add_json_counts_say_how_each_tracked_file_was_made() {
    let mut checked = Vec::new();
    for suite in [xfs_suite(), btrfs_suite()].into_iter().flatten() {
        for f in add_findings(suite) {
            if let Some(json) = &f.json {
                checked.push(Finding {
                    label: f.label.clone(),
                    problems: counts_problems(json, f.files),
                    ..Finding::default()
                });
            }
        }
    }
    assert_no_problems("the counts of `add --json`", &checked);
}

// ---------------------------------------------------------------------------------------------
// Random histories

/// The files a random history writes. `.u8` files always hold valid UTF-8 text: only they may
/// get `working-tree-encoding`.
const POOL: [&str; 6] = ["a.txt", "b.txt", "c.dat", "d/e.txt", "f.u8", "d/g.u8"];
const PATTERNS: [&str; 5] = ["*.txt", "*.dat", "d/*", "a.txt", "*.u8"];
const ATTRIBUTES: [&str; 8] = [
    "text",
    "-text",
    "text=auto",
    "eol=crlf",
    "eol=lf",
    "ident",
    "filter=up",
    "working-tree-encoding=UTF-16LE-BOM",
];

/// The kinds of content a file gets.
const CONTENTS: [&str; 7] = ["lf", "crlf", "mixed", "lone-cr", "nul", "id", "utf8"];
/// Those a `.u8` file may get.
const TEXT_CONTENTS: [&str; 5] = ["lf", "crlf", "mixed", "id", "utf8"];

fn pick<'a, T: ?Sized>(rng: &mut XorShift, from: &[&'a T]) -> &'a T {
    from[rng.below(from.len() as u64) as usize]
}

/// A few random lines of `kind`.
fn content(rng: &mut XorShift, kind: &str) -> Vec<u8> {
    const WORDS: [&str; 5] = ["alpha", "beta", "Gamma", "delta", "x"];
    let lines = 1 + rng.below(4) as usize;
    let mut out = Vec::new();
    for i in 0..lines {
        let word = WORDS[rng.below(5) as usize];
        out.extend_from_slice(word.as_bytes());
        out.extend_from_slice(match (kind, i % 2) {
            ("crlf", _) | ("mixed", 0) => b"\r\n",
            ("lone-cr", 0) => b"\rmore\n",
            ("nul", 0) => b"\0\n",
            ("id", 0) => b" $Id$\n",
            ("utf8", _) => "\u{e9}t\u{e9} \u{65e5}\n".as_bytes(),
            _ => b"\n",
        });
    }
    if rng.below(5) == 0 {
        out.pop();
    }
    out
}

/// Builds a random history in a new SRC under `root` and compares a `--detach` of one of its
/// commits; the finding names the seed and every step.
fn random_sequence(seed: u64, root: &Path, place: Place) -> Finding {
    let mut steps: Vec<String> = Vec::new();
    let mut f = Finding {
        label: format!("random sequence, seed {seed}, on {}", place.name()),
        ..Finding::default()
    };
    let r = catch_unwind(AssertUnwindSafe(|| {
        let mut rng = XorShift::new(seed);
        let src = Src::create(root, place);
        src.up_filter();
        // The first commit: every file of the pool.
        for p in POOL {
            let kind = if p.ends_with(".u8") {
                pick(&mut rng, &TEXT_CONTENTS)
            } else {
                pick(&mut rng, &CONTENTS)
            };
            src.write(p, content(&mut rng, kind));
            steps.push(format!("write {p} ({kind})"));
        }
        src.commit("first");
        let mut commits = vec![src.git(&["rev-parse", "HEAD"]).trim().to_owned()];
        steps.push("commit #0".to_owned());
        let n = 10 + rng.below(7);
        for _ in 0..n {
            let roll = rng.below(100);
            let step = if roll < 22 {
                commit_step(&src, &mut rng, &mut commits)
            } else if roll < 47 {
                attributes_step(&src, &mut rng, &mut commits)
            } else if roll < 63 {
                config_step(&src, &mut rng)
            } else if roll < 70 {
                let i = rng.below(commits.len() as u64) as usize;
                src.git(&["checkout", "-q", "-f", "--detach", &commits[i]]);
                format!("checkout -f commit #{i}")
            } else if roll < 84 {
                rewrite_step(&src, &mut rng)
            } else {
                src.settle();
                "settle".to_owned()
            };
            steps.push(step);
        }
        // Often every file is written again under the settings of now, and the conversions go
        // afterwards, as in most of the issue's classes: SRC's files keep what they were
        // written with.
        if rng.below(3) != 0 {
            let tracked = src.git(&["ls-files", "--", "*.txt", "*.dat", "*.u8"]);
            let tracked: Vec<&str> = tracked.lines().filter(|p| src.path(p).exists()).collect();
            if !tracked.is_empty() {
                src.rewrite(&tracked);
            }
            steps.push("rewrite every file".to_owned());
        }
        if rng.below(3) != 0 {
            for k in ["core.autocrlf", "core.eol"] {
                let _ = git_out(&src.dir, &["config", "--unset-all", k]);
            }
            steps.push("core.autocrlf and core.eol unset".to_owned());
        }
        if rng.below(2) == 0 && src.path(".gitattributes").exists() {
            src.git(&["rm", "-q", "-f", "--ignore-unmatch", "--", ".gitattributes"]);
            let _ = fs::remove_file(src.path(".gitattributes"));
            src.git(&["commit", "-q", "--allow-empty", "-m", "no attributes"]);
            commits.push(src.git(&["rev-parse", "HEAD"]).trim().to_owned());
            steps.push(format!("attributes removed, commit #{}", commits.len() - 1));
        }
        if rng.below(5) != 0 {
            src.settle();
            steps.push("settle".to_owned());
        } else {
            src.make_racy();
            steps.push("every entry of SRC's index made racy".to_owned());
        }
        // Half the time SRC's HEAD: most of the issue's classes change what SRC's HEAD needs.
        let target = if rng.below(2) == 0 {
            steps.push("worktree add --detach DST HEAD".to_owned());
            src.git(&["rev-parse", "HEAD"]).trim().to_owned()
        } else {
            let i = rng.below(commits.len() as u64) as usize;
            steps.push(format!("worktree add --detach DST commit #{i}"));
            commits[i].clone()
        };
        let args = ["--detach", "DST", target.as_str()];
        compare_add(&src.dir, root, &args, place, &mut f);
    }));
    if let Err(e) = r {
        f.problems.push(format!(
            "the sequence panicked: {}",
            common::panic_message(&*e)
        ));
    }
    if !f.problems.is_empty() {
        f.problems.push(format!("steps: {}", steps.join("; ")));
    }
    f
}

/// Commits 1 to 3 files of the pool with new random contents: written in the worktree and
/// added (git's clean conversions apply), or staged as blobs and then checked out (the smudge
/// conversions of now apply). Sometimes with the attributes as they are in the worktree.
fn commit_step(src: &Src, rng: &mut XorShift, commits: &mut Vec<String>) -> String {
    let mut desc = Vec::new();
    let mut checkout = Vec::new();
    for _ in 0..1 + rng.below(3) {
        let p = POOL[rng.below(POOL.len() as u64) as usize];
        if desc
            .iter()
            .any(|d: &String| d.starts_with(&format!("{p} ")))
        {
            continue;
        }
        let u8_file = p.ends_with(".u8");
        let kind = if u8_file {
            pick(rng, &TEXT_CONTENTS)
        } else {
            pick(rng, &CONTENTS)
        };
        let data = content(rng, kind);
        // A `.u8` file may be under working-tree-encoding: git would decode what is written.
        if u8_file || rng.below(2) == 0 {
            src.stage_blob(p, "100644", &data);
            checkout.push(p);
            desc.push(format!("{p} {kind} as a blob"));
        } else {
            src.write(p, &data);
            src.git(&["add", "--", p]);
            desc.push(format!("{p} {kind} written and added"));
        }
    }
    if rng.below(3) == 0
        && !src
            .git(&["status", "--porcelain", "--", ".gitattributes"])
            .is_empty()
    {
        src.git(&["add", "-A", "--", ".gitattributes"]);
        desc.push(".gitattributes".to_owned());
    }
    src.git(&["commit", "-q", "--allow-empty", "-m", "step"]);
    commits.push(src.git(&["rev-parse", "HEAD"]).trim().to_owned());
    for p in &checkout {
        let _ = fs::remove_file(src.path(p));
    }
    if !checkout.is_empty() {
        let mut args = vec!["checkout", "-q", "--"];
        args.extend(checkout.iter().copied());
        src.git(&args);
    }
    format!("commit #{} of {}", commits.len() - 1, desc.join(", "))
}

/// Adds, removes or changes one line of `.gitattributes` in the worktree, and commits it or not.
fn attributes_step(src: &Src, rng: &mut XorShift, commits: &mut Vec<String>) -> String {
    let path = src.path(".gitattributes");
    let mut lines: Vec<String> = fs::read_to_string(&path)
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect();
    let random_line = |rng: &mut XorShift| loop {
        let pattern = pick(rng, &PATTERNS);
        let attribute = pick(rng, &ATTRIBUTES);
        if attribute.starts_with("working-tree-encoding") && pattern != "*.u8" {
            continue;
        }
        return format!("{pattern} {attribute}");
    };
    let what = if lines.is_empty() || rng.below(3) == 0 {
        let l = random_line(rng);
        lines.push(l.clone());
        format!("+ {l}")
    } else if rng.below(2) == 0 {
        let i = rng.below(lines.len() as u64) as usize;
        format!("- {}", lines.remove(i))
    } else {
        let i = rng.below(lines.len() as u64) as usize;
        let l = random_line(rng);
        let old = std::mem::replace(&mut lines[i], l.clone());
        format!("{old} -> {l}")
    };
    if lines.is_empty() {
        let _ = fs::remove_file(&path);
    } else {
        fs::write(&path, lines.join("\n") + "\n").expect("write .gitattributes");
    }
    let committed = rng.below(2) == 0
        && !src
            .git(&["status", "--porcelain", "--", ".gitattributes"])
            .is_empty();
    if committed {
        src.git(&["add", "-A", "--", ".gitattributes"]);
        src.git(&["commit", "-q", "-m", "attributes"]);
        commits.push(src.git(&["rev-parse", "HEAD"]).trim().to_owned());
        format!("attributes {what}, commit #{}", commits.len() - 1)
    } else {
        format!("attributes {what}, not committed")
    }
}

/// Sets or unsets `core.autocrlf` or `core.eol` (never autocrlf=input with eol=crlf, which git
/// refuses).
fn config_step(src: &Src, rng: &mut XorShift) -> String {
    let get = |k: &str| {
        String::from_utf8_lossy(&git_out(&src.dir, &["config", k]).stdout)
            .trim()
            .to_owned()
    };
    let set = |k: &str, v: &str| {
        if v == "unset" {
            let _ = git_out(&src.dir, &["config", "--unset-all", k]);
        } else {
            src.config(k, v);
        }
    };
    if rng.below(2) == 0 {
        let v = pick(rng, &["true", "true", "input", "false", "unset", "unset"]);
        if v == "input" && get("core.eol") == "crlf" {
            set("core.eol", "unset");
        }
        set("core.autocrlf", v);
        format!("core.autocrlf {v}")
    } else {
        let v = pick(rng, &["crlf", "crlf", "lf", "unset"]);
        if v == "crlf" && get("core.autocrlf") == "input" {
            set("core.autocrlf", "unset");
        }
        set("core.eol", v);
        format!("core.eol {v}")
    }
}

/// Removes 1 to 3 tracked files of the pool and has git write them again.
fn rewrite_step(src: &Src, rng: &mut XorShift) -> String {
    let tracked: Vec<String> = src
        .git(&["ls-files", "--", "*.txt", "*.dat", "*.u8"])
        .lines()
        .map(str::to_owned)
        .collect();
    if tracked.is_empty() {
        return "rewrite nothing".to_owned();
    }
    let mut chosen: Vec<&str> = Vec::new();
    for _ in 0..1 + rng.below(3) {
        let p = tracked[rng.below(tracked.len() as u64) as usize].as_str();
        if !chosen.contains(&p) && src.path(p).exists() {
            chosen.push(p);
        }
    }
    if chosen.is_empty() {
        return "rewrite nothing".to_owned();
    }
    src.rewrite(&chosen);
    format!("rewrite {}", chosen.join(" "))
}

fn random_histories(fs: Fs, place: Place, seeds: std::ops::Range<u64>) {
    let Some(mount) = mount(fs) else { return };
    let dir = tempfile::Builder::new()
        .prefix("cowtree-test-conversions-random-")
        .tempdir_in(&mount)
        .expect("a scratch directory");
    let seeds: Vec<u64> = seeds.collect();
    let findings = common::parallel(seeds.len(), THREADS, |i| {
        let root = dir.path().join(format!("seed-{}", seeds[i]));
        fs::create_dir(&root).expect("the sequence's directory");
        random_sequence(seeds[i], &root, place)
    });
    assert_no_problems(&format!("random histories on {}", place.name()), &findings);
}

#[test]
fn random_histories_check_out_as_git_worktree_add_does_on_xfs() {
    // 24 histories in the full tier, 8 in the README's run (`cowtree_testutil::rounds`).
    random_histories(Fs::Xfs, Place::Xfs, 1..1 + cowtree_testutil::rounds(24, 8));
}

#[test]
fn random_histories_check_out_as_git_worktree_add_does_from_a_btrfs_subvolume() {
    random_histories(Fs::Btrfs, Place::BtrfsSubvolume, 1001..1005);
}
