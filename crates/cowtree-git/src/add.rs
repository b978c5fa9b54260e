//! [`add`]: the steps of `git worktree add` by reflink, in order (docs/git.md, "Order of work,
//! interrupts and crashes").

use std::ffi::{OsStr, OsString};
use std::path::{Component, Path, PathBuf};
use std::time::Instant;

use cowtree_fs::atomic_file::write_atomic;
use cowtree_fs::dir::Dir;
use cowtree_fs::staging::{self, TREE as STAGING};

use crate::admin::{copy_worktree_config, write_encoded, write_head_logs, write_index};
use crate::error::{Error, Result};
use crate::options::{AddOptions, AddReport, BranchChoice};
use crate::post_checkout::run_post_checkout;
use crate::{branch, journal, register, resolve, run, steps, tree, way};

fn current_umask() -> u32 {
    crate::portable::umask()
}

/// What has no Windows meaning, refused in one line before anything is read or written:
/// `--subvolume` (btrfs snapshots) and `--sync` (committing a whole volume needs an
/// administrator there; a worktree is not made durable file by file).
#[cfg(windows)]
fn refuse_on_windows(opts: &AddOptions) -> Result<()> {
    let (what, feature) = if opts.method == way::MethodChoice::Subvolume {
        (
            "make by a snapshot (--subvolume)",
            "btrfs subvolume snapshots",
        )
    } else if opts.sync {
        (
            "make durable (--sync)",
            "a volume flush without administrator rights",
        )
    } else {
        return Ok(());
    };
    Err(Error::io(what, &opts.dst)(
        cowtree_fs::sys::Unavailable::error(feature),
    ))
}

/// Why Git for Windows must make the worktree of `plan`'s commit (a tree NTFS cannot hold as
/// git's index names it: [`crate::windows_names`]), read before anything is written; nothing
/// to check where no tree is written (`--no-checkout`, `--orphan`).
#[cfg(windows)]
fn windows_names(at: &Place, opts: &AddOptions, plan: &resolve::Plan) -> Result<Option<String>> {
    let Some(commit) = plan.commit.filter(|_| opts.checkout) else {
        return Ok(None);
    };
    let what = || PathBuf::from(commit.to_string());
    // (A commit that cannot be read fails as everywhere.)
    let tree = at
        .repo
        .find_commit(commit)
        .map_err(Error::git("read commit", what()))?
        .tree_id()
        .map_err(Error::git("read commit", what()))?;
    // gitoxide itself refuses a path Windows cannot hold (its `protectWindows` rules): git
    // decides then too, with its own message.
    let index = match at.repo.index_from_tree(&tree) {
        Ok(i) => i,
        Err(e) => return Ok(Some(format!("gitoxide refuses the tree on Windows ({e})"))),
    };
    if let Some(why) = crate::windows_names::git_decides(
        index.entries().iter().map(|e| -> &[u8] { e.path(&index) }),
    ) {
        return Ok(Some(why));
    }
    // A symlink where the configuration does not say `core.symlinks=false`: Git for Windows
    // makes a file or a directory symlink (by its target, and not without the privilege),
    // which cowtree does not decide for it.
    let symlinks = at.repo.config_snapshot().boolean("core.symlinks");
    if symlinks != Some(false)
        && index
            .entries()
            .iter()
            .any(|e| e.mode == gix::index::entry::Mode::SYMLINK)
    {
        return Ok(Some(
            "symlinks in the tree without core.symlinks=false (Git for Windows decides how \
             it makes them)"
                .into(),
        ));
    }
    Ok(None)
}

/// DST as an absolute path whose existing part is resolved (as git's `realpath` of it), its
/// name, and whether it is an existing empty directory.
struct Dst {
    path: PathBuf,
    parent: PathBuf,
    name: OsString,
    empty_dir: bool,
}

impl Dst {
    fn examine(dst: &Path) -> Result<Dst> {
        let bad = || Error::BadDst(dst.to_owned());
        let abs = std::path::absolute(dst).map_err(|_| bad())?;
        // The deepest existing ancestor, resolved; the rest must be plain names (a `..`
        // under a missing directory cannot be created, as with git).
        let mut existing = abs.as_path();
        let mut rest = Vec::new();
        loop {
            if std::fs::symlink_metadata(existing).is_ok() {
                break;
            }
            let (Some(parent), Some(name)) = (existing.parent(), existing.file_name()) else {
                return Err(bad());
            };
            rest.push(name.to_owned());
            existing = parent;
        }
        let mut path = if rest.is_empty() {
            // DST itself exists: resolve its parent, keep its own name (not following it).
            let name = abs.file_name().ok_or_else(bad)?.to_owned();
            let parent = abs.parent().ok_or_else(bad)?;
            rest.push(name);
            parent
                .canonicalize()
                .map(crate::portable::plain)
                .map_err(|_| bad())?
        } else {
            existing
                .canonicalize()
                .map(crate::portable::plain)
                .map_err(|_| bad())?
        };
        for name in rest.iter().rev() {
            if Path::new(name)
                .components()
                .any(|c| !matches!(c, Component::Normal(_)))
            {
                return Err(bad());
            }
            path.push(name);
        }
        let name = path.file_name().ok_or_else(bad)?.to_owned();
        let parent = path.parent().ok_or_else(bad)?.to_owned();
        let empty_dir = match std::fs::symlink_metadata(&path) {
            Err(_) => false,
            Ok(m) if m.is_dir() => std::fs::read_dir(&path)
                .map(|mut d| d.next().is_none())
                .unwrap_or(false),
            Ok(_) => {
                return Err(Error::DstExists {
                    path,
                    given: dst.display().to_string(),
                });
            }
        };
        if !empty_dir && std::fs::symlink_metadata(&path).is_ok() {
            return Err(Error::DstExists {
                path,
                given: dst.display().to_string(),
            });
        }
        Ok(Dst {
            path,
            parent,
            name,
            empty_dir,
        })
    }
}

/// Where the run works: the repository, the worktree it runs in, and DST.
struct Place {
    repo: gix::Repository,
    /// The worktree the command runs in (`None`: a bare repository).
    current_root: Option<PathBuf>,
    /// `$GIT_COMMON_DIR`, resolved.
    common: PathBuf,
    /// What the repository is ([`crate::facts`]).
    facts: crate::facts::Facts,
    /// Where git's own commands run: the worktree the command runs in, or the bare repository.
    src_root: PathBuf,
    dst: Dst,
}

/// What opening the repository decided: cowtree makes the worktree here, or git makes it
/// (the reason, [`crate::facts`]).
enum Opened {
    Here(Box<Place>),
    Git(String),
}

impl Place {
    /// The repository's refs, read the way it keeps them ([`crate::refs`]).
    fn refs(&self) -> crate::refs::Refs<'_> {
        crate::refs::Refs::new(&self.repo, self.facts.ref_storage, &self.src_root)
    }

    /// Opens SRC's repository and reads its [`crate::facts::Facts`] before anything else;
    /// a repository cowtree cannot open, or whose facts say so, is git's to make.
    fn open(opts: &AddOptions) -> Result<Opened> {
        if let Some(why) = crate::facts::environment_handover() {
            return Ok(Opened::Git(why));
        }
        let repo = match gix::discover(&opts.src) {
            Ok(r) => r,
            Err(e) => {
                // Not openable here: a repository all the same (an object format this build
                // does not read, a format git refuses)? Then its facts say why git makes it.
                if let Some((git_dir, common)) = crate::facts::discover_dirs(&opts.src) {
                    let why = match crate::facts::Facts::read(
                        &common,
                        &git_dir,
                        &|_| None,
                        crate::facts::SUPPORT,
                    ) {
                        Ok(f) => f.handover().map(str::to_owned),
                        Err(_) => None,
                    };
                    // A repository all the same: git decides, with its own message.
                    return Ok(Opened::Git(why.unwrap_or_else(|| {
                        format!("gitoxide cannot open the repository: {e}")
                    })));
                }
                return Err(Error::NotAWorktree {
                    path: opts.src.clone(),
                    source: e.into(),
                });
            }
        };
        let facts = {
            let config = repo.config_snapshot();
            let lookup = |key: &str| crate::facts::config_value(config.plumbing(), key);
            crate::facts::Facts::read(
                repo.common_dir(),
                repo.git_dir(),
                &lookup,
                crate::facts::SUPPORT,
            )
            .map_err(Error::io("read the configuration of", repo.common_dir()))?
        };
        if let Some(why) = facts.handover() {
            return Ok(Opened::Git(why.to_owned()));
        }
        if let Some(why) = git_decides_access(&repo) {
            return Ok(Opened::Git(why));
        }
        if opts.dst.file_name().is_some_and(|n| n.to_str().is_none()) {
            // Its worktree id is git's sanitizing of the raw bytes, which ids here (strings)
            // do not carry.
            return Ok(Opened::Git("a destination name that is not UTF-8".into()));
        }
        let mut facts = facts;
        facts.promisors = crate::promisor::remotes(&repo, facts.partial_clone.as_deref());
        if let Some(why) = crate::promisor::unsupported_filter(&repo, &facts.promisors) {
            return Ok(Opened::Git(why));
        }
        if let Some(dirs) = &opts.sparse {
            if repo.config_snapshot().boolean("core.ignoreCase") == Some(true) {
                // git's cone matching then ignores case; cowtree's does not.
                return Ok(Opened::Git("--sparse with core.ignoreCase".into()));
            }
            // What `git sparse-checkout set --cone DIRS` makes of the new worktree: its patterns,
            // cone mode, and the sparse index the configuration asks for.
            let patterns = crate::sparse::cone_file(dirs).map_err(|message| Error::SparseDir {
                dir: dirs.join(" "),
                message,
            })?;
            let sparse_index = repo.config_snapshot().boolean("index.sparse") == Some(true);
            facts.sparse = Some(crate::facts::Sparse {
                patterns,
                cone: true,
                sparse_index,
            });
        }
        let current_root = match repo.workdir() {
            Some(w) => Some(
                w.canonicalize()
                    .map(crate::portable::plain)
                    .map_err(Error::io("resolve", w))?,
            ),
            None => None,
        };
        let common = repo
            .common_dir()
            .canonicalize()
            .map(crate::portable::plain)
            .map_err(Error::io("resolve", repo.common_dir()))?;
        let src_root = current_root.clone().unwrap_or_else(|| common.clone());
        let dst = Dst::examine(&opts.dst)?;
        Ok(Opened::Here(Box::new(Place {
            repo,
            current_root,
            common,
            facts,
            src_root,
            dst,
        })))
    }
}

/// Whether git, run in `dir`, takes the repository for a bare one (`core.bare` as git reads it,
/// in the worktree's own configuration too).
fn git_says_bare(dir: &Path) -> bool {
    branch::git(dir)
        .args(["rev-parse", "--is-bare-repository"])
        .output()
        .is_ok_and(|o| o.status.success() && o.stdout.trim_ascii() == b"true")
}

/// Why git itself must decide whether it may use the repository `repo`, where it would refuse
/// what gitoxide opens: a bare repository found by discovery under `safe.bareRepository =
/// explicit` (Git 3.0's default), or a repository another user owns (git's `safe.directory`
/// rule). Handed over, git refuses or goes on, with its own message.
fn git_decides_access(repo: &gix::Repository) -> Option<String> {
    // git reads it from the protected configuration only (system, global, command line).
    let protected = |m: &gix::config::file::Metadata| {
        !matches!(
            m.source,
            gix::config::Source::Local | gix::config::Source::Worktree
        )
    };
    if repo.workdir().is_none()
        && repo
            .config_snapshot()
            .plumbing()
            .string_filter("safe.bareRepository", protected)
            .is_some_and(|v| v.eq_ignore_ascii_case(b"explicit"))
    {
        return Some(
            "a bare repository under safe.bareRepository = explicit (git decides whether it \
             may be used)"
                .into(),
        );
    }
    another_owner(repo)
}

/// A repository or worktree another user owns: git's `safe.directory` rule decides.
#[cfg(unix)]
fn another_owner(repo: &gix::Repository) -> Option<String> {
    let me = rustix::process::geteuid().as_raw();
    let paths = [Some(repo.git_dir()), repo.workdir()];
    for p in paths.into_iter().flatten() {
        if let Ok(st) = rustix::fs::stat(p)
            && st.st_uid != me
        {
            return Some(format!(
                "{} belongs to another user (git's safe.directory decides)",
                p.display()
            ));
        }
    }
    None
}

/// On Windows an owner is a SID, which Git for Windows compares with the user's own for its
/// `safe.directory` rule: git itself is asked (`git rev-parse --git-dir` in the repository),
/// and a refusal hands the worktree to git, which refuses it with its own message. Where no
/// git runs at all (none on `PATH`), there is no rule to defer to.
#[cfg(windows)]
fn another_owner(repo: &gix::Repository) -> Option<String> {
    let dir = repo.workdir().unwrap_or(repo.git_dir());
    let out = branch::git(dir)
        .args(["rev-parse", "--git-dir"])
        .stdin(std::process::Stdio::null())
        .output()
        .ok()?;
    (!out.status.success()).then(|| {
        format!(
            "git refuses {} (its safe.directory rule decides)",
            dir.display()
        )
    })
}

/// Where the tree is staged: DST's parent, open, and the staging directory's name and path,
/// journaled; the registration directory.
struct Staged {
    admin_dir: PathBuf,
    parent_dir: Dir,
    staging_name: OsString,
    staging_path: PathBuf,
}

/// Makes the new worktree described by `opts`; see the crate documentation for what is
/// promised. The steps, in order: refuse what git refuses, clean what killed runs left,
/// register, make the tree in staging, make the branch, write the registration's files,
/// publish (the rename), run the hook.
pub fn add(opts: &AddOptions) -> Result<AddReport> {
    let started = Instant::now();
    steps::start();
    resolve::check_options(opts)?;
    #[cfg(windows)]
    refuse_on_windows(opts)?;
    let umask = current_umask();
    let at = match Place::open(opts)? {
        Opened::Here(at) => at,
        Opened::Git(why) => return crate::handover::run(opts, &why),
    };
    steps::mark("open");
    let (cleaned, plan) = resolve_checked(&at, opts)?;
    steps::mark("resolve");
    #[cfg(windows)]
    if let Some(why) = windows_names(&at, opts, &plan)? {
        return crate::handover::run(opts, &why);
    }
    let run = run::Run::begin(
        &at.src_root,
        &at.common,
        &at.dst.path,
        opts.run_registry.as_deref(),
    )?;
    let staged = register_and_stage(&at, &run, opts, &plan)?;
    // The identity logs/HEAD is signed with, asked of git now where it must be (its start-up
    // then overlaps the tree's making); the reftable backend's git writes its own.
    let ident = match at.facts.ref_storage {
        crate::facts::RefStorage::Reftable => None,
        _ if plan.commit.is_none() => None,
        _ => Some(crate::admin::Ident::start(&at.repo, &at.src_root)?),
    };
    steps::mark("register");
    // DST's tree is made here, one way or the other (see [`tree`]): the staging directory is
    // created (or snapshotted) and filled.
    let t_tree = Instant::now();
    let (staging, mut made) = tree::make(&way::Input {
        repo: &at.repo,
        opts,
        current_root: at.current_root.as_deref(),
        commit: plan.commit,
        parent: &staged.parent_dir,
        parent_path: &at.dst.parent,
        staging_name: &staged.staging_name,
        staging_path: &staged.staging_path,
        admin_dir: &staged.admin_dir,
        umask,
        facts: &at.facts,
    })?;
    let t_tree = t_tree.elapsed();
    steps::mark("tree");
    let notes = make_branch(&at, &run, opts, &plan)?;
    let index_stat_entries = write_registration(
        &at,
        &run,
        opts,
        &plan,
        &staging,
        &staged,
        made.index.take(),
        made.index_tree.take().map(|t| (t, made.sparse_index)),
        made.encoded.take(),
        ident,
    )?;
    publish(&at, run, opts, staging, &staged)?;
    steps::mark("publish");
    steps::print();
    if std::env::var_os("COWTREE_TIMING").is_some() {
        eprintln!(
            "timing: tree ({}) {:.1} ms; add {:.1} ms",
            made.method.as_str(),
            t_tree.as_secs_f64() * 1e3,
            started.elapsed().as_secs_f64() * 1e3
        );
    }
    let hook = match plan.commit {
        Some(commit) if opts.run_hooks && opts.checkout => {
            run_post_checkout(&at.repo, &at.dst.path, commit, opts.sparse.is_some())
        }
        _ => None,
    };
    Ok(report(
        opts,
        &at,
        &plan,
        staged.admin_dir,
        made,
        Finished {
            index_stat_entries,
            cleaned,
            notes,
            hook,
        },
    ))
}

/// What git refuses, refused before anything is written, in git's order (`-B` of a branch
/// checked out elsewhere first, then DST (a missing but registered worktree), then the rest);
/// what killed runs left in this repository cleaned first (a killed run's registration must
/// not hold its branch). The plan, and what was cleaned.
fn resolve_checked(at: &Place, opts: &AddOptions) -> Result<(Vec<String>, resolve::Plan)> {
    let cleaned = register::clean_stale(&at.common)?;
    steps::mark("clean stale");
    let reset = matches!(opts.branch, BranchChoice::Reset(_));
    let given = opts.dst.display().to_string();
    if !reset {
        register::check_candidate(&at.common, &at.dst.path, &given, opts.force)?;
    }
    let refs = at.refs();
    let plan = resolve::resolve(&at.repo, &refs, opts, &at.dst.name, &at.src_root)?;
    if reset {
        register::check_candidate(&at.common, &at.dst.path, &given, opts.force)?;
    }
    if opts.with_changes {
        let head = refs.head_commit().ok_or_else(|| Error::Unborn {
            path: at.src_root.clone(),
        })?;
        if Some(head) != plan.commit {
            return Err(Error::WithChangesOtherCommit {
                path: at.src_root.clone(),
                head: head.to_string(),
                commit: plan.commit.map(|c| c.to_string()).unwrap_or_default(),
            });
        }
    }
    Ok((cleaned, plan))
}

/// The registration directory (HEAD detached at the commit, or on the unborn branch, so that
/// `git branch -B` does not see this worktree as having the branch checked out; it gets its
/// final value later), DST's missing parents, and the staging directory's name, each journaled
/// before it is made.
fn register_and_stage(
    at: &Place,
    run: &run::Run,
    opts: &AddOptions,
    plan: &resolve::Plan,
) -> Result<Staged> {
    let first_head = match plan.commit {
        Some(c) => c.to_string(),
        None => plan.head_line.clone(),
    };
    let admin_dir = run.register(|| {
        register::Registration::create(
            &at.common,
            &at.dst.name,
            &at.dst.path.join(".git"),
            &first_head,
            opts.lock.as_deref(),
            opts.sync,
        )
    })?;
    if at.facts.ref_storage == crate::facts::RefStorage::Reftable {
        // Its HEAD set at once, as the files registration's is: filters and hooks that run
        // git in the new worktree while it is made find it.
        run.with_registration(|reg| {
            reg.make_reftable_store()?;
            let admin = reg.path();
            crate::refs::HeadWriter { admin: &admin }.set_head_unlogged(&first_head)
        })?;
    }
    run.create_parents(&at.dst.path)?;
    let parent = &at.dst.parent;
    let parent_dir = Dir::open(parent).map_err(Error::io("open", parent))?;
    staging::remove_stale(&parent_dir, &STAGING.prefix(&at.dst.name))
        .map_err(Error::io("remove stale staging in", parent))?;
    let staging_name = STAGING.name(&at.dst.name, &format!("{:016x}", staging::random_u64()));
    let staging_path = parent.join(&staging_name);
    run.staging(&staging_path)?;
    Ok(Staged {
        admin_dir,
        parent_dir,
        staging_name,
        staging_path,
    })
}

/// The new (or `-B` reset) branch, made by git's own `git branch` as `git worktree add` makes
/// it, journaled so that an interrupt takes it back; then checked to point at the commit built
/// (git resolved the start point again). What git said.
fn make_branch(
    at: &Place,
    run: &run::Run,
    opts: &AddOptions,
    plan: &resolve::Plan,
) -> Result<Vec<String>> {
    let mut notes = plan.notes.clone();
    let (Some(b), Some(commit)) = (&plan.new_branch, plan.commit) else {
        return Ok(notes);
    };
    let undo = journal::BranchUndo {
        name: b.name.clone(),
        new: commit,
        previous: b.previous,
    };
    let start = branch::start_point(b);
    run.branch(undo, || {
        notes.extend(branch::make(
            &at.src_root,
            b,
            &start,
            &opts.track,
            opts.quiet,
        )?);
        // Read again, not from what the resolution read: `git branch` has just run.
        match resolve::branch_tip(&at.refs(), &b.name)? {
            Some(tip) if tip == commit => Ok(()),
            tip => Err(Error::GitFailed {
                command: format!("git branch {} {}", b.name, b.start),
                message: format!(
                    "the branch is at {}, not at {commit} which was checked out (the start \
                     point moved meanwhile); nothing was left",
                    tip.map(|t| t.to_string())
                        .unwrap_or_else(|| "nothing".into())
                ),
            }),
        }
    })?;
    Ok(notes)
}

/// DST's `.git` file (in staging), its index, HEAD's final value, its reflog and the other
/// files git leaves in the registration; with `--sync`, everything made so far durable before
/// DST appears. How many index entries git trusts without reading the file.
#[allow(clippy::too_many_arguments)]
fn write_registration(
    at: &Place,
    run: &run::Run,
    opts: &AddOptions,
    plan: &resolve::Plan,
    staging: &staging::Staging<'_>,
    staged: &Staged,
    index: Option<gix::index::File>,
    index_tree: Option<(gix::index::extension::Tree, bool)>,
    encoded: Option<crate::index_file::Located>,
    ident: Option<crate::admin::Ident>,
) -> Result<u64> {
    let mut dotgit = b"gitdir: ".to_vec();
    dotgit.extend_from_slice(&crate::portable::git_path_text(&staged.admin_dir));
    dotgit.push(b'\n');
    write_atomic(&staging.dir, OsStr::new(".git"), &dotgit, 0o666, false)
        .map_err(Error::io("write", staged.staging_path.join(".git")))?;
    steps::mark("branch, .git file");
    let index_stat_entries = match (index, encoded) {
        (_, Some(mut encoded)) => {
            if at.facts.ignore_stat {
                encoded.assume_valid();
            }
            run.with_registration(|reg| write_encoded(reg, &encoded))?
        }
        (Some(mut index), None) => {
            if at.facts.ignore_stat {
                // git's checkout marks every entry it writes (`fill_stat_cache_info`): not those
                // a sparse checkout skips, nor sparse directories.
                for e in index.entries_mut() {
                    if !e.flags.contains(gix::index::entry::Flags::SKIP_WORKTREE) {
                        e.flags |= gix::index::entry::Flags::ASSUME_VALID;
                    }
                }
            }
            run.with_registration(|reg| write_index(reg, &index, index_tree.as_ref()))?
        }
        (None, None) => 0,
    };
    steps::mark("write the index");
    // With --sparse the checkout is git's `sparse-checkout set` and `checkout` after a
    // `--no-checkout` add: no `git reset --hard`, so no ORIG_HEAD and no reset in the reflog.
    let reset = opts.checkout && opts.sparse.is_none();
    if at.facts.ref_storage == crate::facts::RefStorage::Reftable {
        // The worktree's own reftable stack, written by git ([`crate::refs`]).
        run.with_registration(|reg| {
            let admin = reg.path();
            let w = crate::refs::HeadWriter { admin: &admin };
            // `git worktree add` sets HEAD in its own process: a bare one in a bare repository,
            // or where core.bare says so (which git's logAllRefUpdates default follows).
            let bare = at.current_root.is_none() || git_says_bare(&at.src_root);
            w.set_head(&plan.head_line, bare, &staged.staging_path)?;
            match plan.commit {
                Some(commit) if reset => w.reset_logs(commit, &staged.staging_path),
                _ => Ok(()),
            }
        })?;
    } else {
        run.with_registration(|reg| reg.write("HEAD", format!("{}\n", plan.head_line).as_bytes()))?;
        if let Some(ident) = ident {
            run.with_registration(|reg| write_head_logs(&at.repo, reg, plan, reset, ident))?;
        }
    }
    run.with_registration(|reg| copy_worktree_config(&at.repo, reg))?;
    if opts.sparse.is_some() {
        run.with_registration(|reg| crate::admin::set_sparse_config(&at.common, &at.facts, reg))?;
    }
    if let Some(sparse) = &at.facts.sparse {
        // git's `copy_sparse_checkout`: the current worktree's patterns, as they are.
        run.with_registration(|reg| reg.write_in("info", "sparse-checkout", &sparse.patterns))?;
    }
    steps::mark("HEAD, logs");
    if opts.sync {
        // Everything built and written so far reaches the disk before DST appears: the tree
        // and the `.git` file (DST's filesystem), the index, HEAD, the registration and the
        // branch (the repository's filesystem, when it is another one).
        staging
            .dir
            .sync_filesystem()
            .map_err(Error::io("sync", &staged.staging_path))?;
        let common_dir = Dir::open(&at.common).map_err(Error::io("open", &at.common))?;
        if !same_filesystem(&staging.dir, &common_dir) {
            common_dir
                .sync_filesystem()
                .map_err(Error::io("sync", &at.common))?;
        }
    }
    Ok(index_stat_entries)
}

/// The rename of staging to DST (journaled: a signal after it finishes the run instead), DST's
/// parent synced with `--sync`, the registration made final.
fn publish(
    at: &Place,
    run: run::Run,
    opts: &AddOptions,
    mut staging: staging::Staging<'_>,
    staged: &Staged,
) -> Result<()> {
    let dst = &at.dst;
    run.publish(|| {
        staging
            .commit(&dst.name, dst.empty_dir)
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::Interrupted => Error::Interrupted,
                std::io::ErrorKind::AlreadyExists | std::io::ErrorKind::DirectoryNotEmpty => {
                    Error::DstExists {
                        path: dst.path.clone(),
                        given: opts.dst.display().to_string(),
                    }
                }
                _ => Error::io("rename into", &dst.path)(e),
            })
    })?;
    if opts.sync {
        // The tree, and the parents this run created, were made durable by the filesystem
        // sync above; the rename is, once DST's parent is synced.
        staged
            .parent_dir
            .sync()
            .map_err(Error::io("sync", &dst.parent))?;
    }
    run.finish(opts.sync)
}

/// What the run ends with, besides the tree.
struct Finished {
    index_stat_entries: u64,
    cleaned: Vec<String>,
    notes: Vec<String>,
    hook: Option<i32>,
}

fn report(
    opts: &AddOptions,
    at: &Place,
    plan: &resolve::Plan,
    admin_dir: PathBuf,
    made: way::Made,
    end: Finished,
) -> AddReport {
    AddReport {
        dst: at.dst.path.clone(),
        src_is_current: made.src.is_some() && made.src == at.current_root,
        src: made.src,
        admin_dir,
        commit: plan.commit,
        head: plan.head.clone(),
        method: made.method,
        reason: made.reason,
        locked: opts.lock.clone(),
        counts: made.counts,
        submodules: made.submodules,
        index_stat_entries: end.index_stat_entries,
        ignored: made.ignored,
        fallback: made.fallback,
        pool: made.pool,
        cleaned: end.cleaned,
        notes: end.notes,
        hook: end.hook,
        made_by_git: None,
    }
}

fn same_filesystem(a: &Dir, b: &Dir) -> bool {
    match (a.stat_self(), b.stat_self()) {
        (Ok(x), Ok(y)) => cowtree_fs::sys::stat_dev(&x) == cowtree_fs::sys::stat_dev(&y),
        _ => false,
    }
}

/// SRC's repository opened as [`add`] opens it, to make the spares of its pool
/// ([`crate::pool::fill`]): trees of one commit, per file, with their index, unregistered.
#[cfg(unix)]
pub(crate) struct SpareMaker {
    at: Box<Place>,
    opts: AddOptions,
    umask: u32,
}

#[cfg(unix)]
impl SpareMaker {
    /// The staging directory's name in [`SpareMaker::make`].
    pub(crate) const STAGING: &'static str = ".tree-staging";

    /// Opens the repository `src` is in. `Err(why)`: git makes its worktrees (a repository
    /// state cowtree hands over, [`crate::facts`]), or its current worktree is sparse (a spare
    /// holds the whole tree).
    pub(crate) fn open(src: &Path) -> Result<std::result::Result<SpareMaker, String>> {
        let umask = current_umask();
        // DST is only examined (its parent must exist): the spares are made elsewhere.
        let mut opts = AddOptions::new(src, src.join(".cowtree-spare"));
        opts.branch = BranchChoice::Detach;
        opts.ignored = crate::Ignored::none();
        opts.method = way::MethodChoice::PerFile;
        opts.run_hooks = false;
        let at = match Place::open(&opts)? {
            Opened::Here(at) => at,
            Opened::Git(why) => return Ok(Err(why)),
        };
        if at.facts.sparse.is_some() {
            return Ok(Err(format!(
                "{} is a sparse checkout; a spare holds the whole tree",
                at.src_root.display()
            )));
        }
        Ok(Ok(SpareMaker { at, opts, umask }))
    }

    /// `$GIT_COMMON_DIR`, resolved.
    pub(crate) fn common(&self) -> &Path {
        &self.at.common
    }

    /// The commit HEAD names in SRC.
    pub(crate) fn head(&self) -> Option<gix::ObjectId> {
        self.at.refs().head_commit()
    }

    /// The repository's object hash.
    pub(crate) fn object_hash(&self) -> gix::hash::Kind {
        self.at.repo.object_hash()
    }

    /// Whether the repository has the commit `id`.
    pub(crate) fn has_commit(&self, id: gix::ObjectId) -> bool {
        self.at.repo.find_commit(id).is_ok()
    }

    /// The pool's fingerprint of this repository and process ([`crate::pool`]).
    pub(crate) fn fingerprint(&self) -> Result<std::result::Result<String, String>> {
        crate::pool::fingerprint(&self.at.repo, self.umask)
    }

    /// Makes the tree of `commit` in `parent` (at `parent_path`) as the staging directory
    /// [`SpareMaker::STAGING`] (at `staging_path`), per file, with no ignored entries; DST's
    /// index-to-be with it.
    pub(crate) fn make<'p>(
        &'p self,
        commit: gix::ObjectId,
        parent: &'p Dir,
        parent_path: &'p Path,
        staging_path: &'p Path,
    ) -> Result<(staging::Staging<'p>, way::Made)> {
        let name = OsStr::new(Self::STAGING);
        tree::make(&way::Input {
            repo: &self.at.repo,
            opts: &self.opts,
            current_root: self.at.current_root.as_deref(),
            commit: Some(commit),
            parent,
            parent_path,
            staging_name: name,
            staging_path,
            admin_dir: parent_path,
            umask: self.umask,
            facts: &self.at.facts,
        })
    }
}
