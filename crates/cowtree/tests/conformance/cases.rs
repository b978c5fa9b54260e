//! The cases, as data: a recipe of shell commands (run by `sh` in the case's fresh `state`
//! directory, after [`PRELUDE`]), where the add runs, its arguments, and what git does with
//! them. Ids in names (`A06`, `S01`, ...) are those of /tmp/research/git-cases.md, from git's
//! own tests (the `source` names the test file and test); `B..`/`F..`/`I..`/`K..`/`W..` ids
//! are this runner's own.
//!
//! Recipes must work under both profiles (main.rs): a bare repository is reached with
//! `--git-dir=` (under `safe.bareRepository=explicit` `git -C bare ...` is refused), and a
//! recipe that needs the files ref backend or SHA-1 says so with `--ref-format=files` /
//! `--object-format=sha1`, or is marked [`Case::default_profile_only`].

/// What git does with the case's arguments.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// Makes the worktree, exit 0.
    Success,
    /// Refuses: non-zero exit, no worktree.
    Refusal,
    /// Succeeds under the default profile, refuses under `git3` (an implicitly found bare
    /// repository under `safe.bareRepository=explicit`).
    RefusalUnderGit3,
    /// Makes the worktree but exits non-zero (a failing post-checkout hook).
    MadeButFails,
}

/// The profiles a case runs under.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Only {
    Both,
    /// Only the default profile, for the reason given (a files-backend trick, ...).
    DefaultProfile(&'static str),
}

/// One case: see the module doc.
#[derive(Debug, Clone, Copy)]
pub struct Case {
    /// Unique in the table; the line printed and the directory made are named after it.
    pub name: &'static str,
    /// git's test it comes from (`t2400: "add" worktree`), or what it exercises.
    pub source: &'static str,
    /// Shell commands, run by `sh` after [`PRELUDE`] in the case's `state` directory.
    pub recipe: &'static str,
    /// Where the add runs, relative to `state`.
    pub cwd: &'static str,
    /// The arguments after `worktree add`; `{copy}` is replaced by the copy's absolute path.
    pub args: &'static [&'static str],
    /// Environment of the add (both tools; never of the recipe): `GIT_DIR`, `-c` as
    /// `GIT_CONFIG_COUNT`/`GIT_CONFIG_KEY_n`/`GIT_CONFIG_VALUE_n`.
    pub env: &'static [(&'static str, &'static str)],
    /// The repository, relative to `state`, for the observations of refs, config and the
    /// worktree list (default: `cwd`); for cases whose `cwd` is not in it (`GIT_DIR`).
    pub repo: Option<&'static str>,
    pub expect: Expect,
    /// A refusal after which git leaves something it made on the way (a branch, an empty
    /// directory) and cowtree, by design, nothing (docs/git.md, "Refusals"): the exit status
    /// and message are compared with git's, the state after with the state before.
    pub git_leaves: Option<&'static str>,
    /// The oldest git that runs the case (older: skipped).
    pub min_git: (u32, u32, u32),
    pub only: Only,
}

/// A case git succeeds with, in the default profile and the git3 one.
pub const fn add(
    name: &'static str,
    source: &'static str,
    recipe: &'static str,
    cwd: &'static str,
    args: &'static [&'static str],
) -> Case {
    Case {
        name,
        source,
        recipe,
        cwd,
        args,
        env: &[],
        repo: None,
        expect: Expect::Success,
        git_leaves: None,
        // `--orphan` (2.42) is the newest option of the table but for relative paths.
        min_git: (2, 42, 0),
        only: Only::Both,
    }
}

impl Case {
    pub const fn refuses(self) -> Case {
        Case {
            expect: Expect::Refusal,
            ..self
        }
    }

    /// See [`Case::git_leaves`].
    pub const fn git_leaves(self, what: &'static str) -> Case {
        Case {
            git_leaves: Some(what),
            ..self
        }
    }

    pub const fn refuses_under_git3(self) -> Case {
        Case {
            expect: Expect::RefusalUnderGit3,
            ..self
        }
    }

    pub const fn made_but_fails(self) -> Case {
        Case {
            expect: Expect::MadeButFails,
            ..self
        }
    }

    pub const fn env(self, env: &'static [(&'static str, &'static str)]) -> Case {
        Case { env, ..self }
    }

    pub const fn repo(self, repo: &'static str) -> Case {
        Case {
            repo: Some(repo),
            ..self
        }
    }

    pub const fn min_git(self, min_git: (u32, u32, u32)) -> Case {
        Case { min_git, ..self }
    }

    pub const fn default_profile_only(self, why: &'static str) -> Case {
        Case {
            only: Only::DefaultProfile(why),
            ..self
        }
    }

    /// What git does under the profile (`git3`: the Git 3.0 one).
    pub fn expect_under(&self, git3: bool) -> Expect {
        match self.expect {
            Expect::RefusalUnderGit3 if git3 => Expect::Refusal,
            Expect::RefusalUnderGit3 => Expect::Success,
            e => e,
        }
    }
}

/// Shell functions every recipe may use (run with `sh`, `set -e`).
pub const PRELUDE: &str = r#"set -e
# git's test_commit NAME: NAME.t holding NAME, committed as NAME, tagged NAME.
tc() {
	printf '%s\n' "$1" >"$1.t"
	git add -- "$1.t"
	git commit -q -m "$1"
	git tag -- "$1"
}
# R0: repository DIR (default r) on main with one commit, init.
r0() {
	git init -q -b main "${1:-r}"
	(cd "${1:-r}" && tc init)
}
# t1091's layout: repo with a folder1/a folder2/a deep/... committed on main.
rsp() {
	git init -q -b main repo
	(
		cd repo
		for f in a folder1/a folder2/a deep/a deep/deeper1/a deep/deeper2/a deep/deeper1/deepest/a; do
			mkdir -p "$(dirname "$f")"
			echo initial >"$f"
		done
		git add .
		git commit -q -m "initial commit"
	)
}
# t2400's setup_remote_repo A B: B fetched A's main and foo as refs/remotes/A/*.
rrem() {
	git init -q -b main "$1"
	(cd "$1" && tc "$1_main" && git checkout -q -b foo && tc upstream_foo)
	git init -q -b main "$2"
	(
		cd "$2"
		tc "$2_main"
		git remote add "$1" "../$1"
		git config "remote.$1.fetch" "refs/heads/*:refs/remotes/$1/*"
		git fetch -q --all
	)
}
# A post-checkout hook in git dir $1 writing its arguments, git dir and top to hook.actual.
posthook() {
	mkdir -p "$1/hooks"
	cat >"$1/hooks/post-checkout" <<'EOF'
#!/bin/sh
{ echo "$*"; git rev-parse --git-dir --show-toplevel; } >hook.actual
EOF
	chmod +x "$1/hooks/post-checkout"
}
# dirs d (d/f, d/sub/g) and e (e/f), top-level file top, in repository r on main.
rde() {
	git init -q -b main r
	(
		cd r
		mkdir -p d/sub e
		echo df >d/f
		echo dg >d/sub/g
		echo ef >e/f
		echo top >top
		git add .
		git commit -q -m de
	)
}
# t1092's setup and init_repos: initial-repo (many branches), and its copies full-checkout,
# sparse-checkout (cone, deep) and sparse-index (cone, deep, sparse index).
r1092() {
	git init -q -b main initial-repo
	(
		cd initial-repo
		echo a >a
		echo "after deep" >e
		echo "after folder1" >g
		echo "after x" >z
		mkdir folder1 folder2 deep before x
		echo "before deep" >before/a
		echo "before deep again" >before/b
		mkdir deep/deeper1 deep/deeper2 deep/before deep/later
		mkdir deep/deeper1/deepest deep/deeper1/deepest2 deep/deeper1/deepest3
		echo "after deeper1" >deep/e
		echo "after deepest" >deep/deeper1/e
		for d in folder1 folder2 x deep deep/before deep/deeper1 deep/deeper2 deep/later \
			deep/deeper1/deepest deep/deeper1/deepest2 deep/deeper1/deepest3; do
			cp a "$d"
		done
		cp -r deep/deeper1/ deep/deeper2
		mkdir -p deep/deeper1/0/0
		touch deep/deeper1/0/1 deep/deeper1/0/0/0
		: >folder1-
		: >folder1.x
		: >folder10
		cp -r deep/deeper1/0 folder1
		cp -r deep/deeper1/0 folder2
		echo >>folder1/0/0/0
		echo >>folder2/0/1
		git add .
		git commit -q -m "initial commit"
		git checkout -q -b base
		for dir in folder1 folder2 deep; do
			git checkout -q -b "update-$dir" base
			echo "updated $dir" >"$dir/a"
			git commit -q -a -m "update $dir"
		done
		git checkout -q -b rename-base base
		printf 'matching\nlines\nhelp\ninexact\nrenames\n' >folder1/larger-content
		cp folder1/larger-content folder2/
		cp folder1/larger-content deep/deeper1/
		git add .
		git commit -q -m "add interesting rename content"
		git checkout -q -b rename-out-to-out rename-base
		mv folder1/a folder2/b
		mv folder1/larger-content folder2/edited-content
		echo >>folder2/edited-content
		echo >>folder2/0/1
		echo stuff >>deep/deeper1/a
		git add .
		git commit -q -m "rename folder1/... to folder2/..."
		git checkout -q -b df-conflict-1 base
		rm -rf folder1
		echo content >folder1
		git add .
		git commit -q -m "dir to file"
		git checkout -q -b fd-conflict base
		rm a
		mkdir a
		echo content >a/a
		git add .
		git commit -q -m "file to dir"
		for side in left right; do
			git checkout -q -b "merge-$side" base
			echo "$side" >>deep/deeper2/a
			echo "$side" >>folder1/a
			echo "$side" >>folder2/a
			git add .
			git commit -q -m "$side"
		done
		git checkout -q -b deepest base
		echo "updated deepest" >deep/deeper1/deepest/a
		echo "updated deepest2" >deep/deeper1/deepest2/a
		echo "updated deepest3" >deep/deeper1/deepest3/a
		git commit -q -a -m "update deepest"
		git checkout -q -f base
		git reset -q --hard
	)
	for r in full-checkout sparse-checkout sparse-index; do
		cp -r initial-repo "$r"
		git -C "$r" reset -q --hard
	done
	git -C sparse-checkout sparse-checkout init --cone
	git -C sparse-checkout sparse-checkout set deep
	git -C sparse-index sparse-checkout init --cone --sparse-index
	git -C sparse-index sparse-checkout set deep
	git -C sparse-index config advice.sparseIndexExpanded false
}
# A server repository (main, other, and a dir/ on other) allowing filters, and pc, a blobless
# clone of it by file:// URL with other as a local branch (other's blobs not fetched).
server_pc() {
	git init -q -b main server
	(
		cd server
		tc a
		git checkout -q -b other
		tc b
		mkdir dir
		echo y >dir/y
		git add dir
		git commit -q -m dir
		git checkout -q main
		git config uploadpack.allowFilter true
	)
	git clone -q --filter=blob:none "$@" "file://$PWD/server" pc
	git -C pc branch -q other origin/other
}
# project (with submodule "submodule" committed) and project-clone, its clone (submodule not
# initialized).
rsub() {
	git init -q -b main submodule
	(cd submodule && tc sub)
	git init -q -b main project
	(
		cd project
		tc init
		git -c protocol.file.allow=always submodule add -q ../submodule submodule
		git commit -q -m submodule
	)
	git clone -q project project-clone
}
"#;

const R0: &str = "r0";

/// `-c K=V` for both tools, as git passes it to its children.
macro_rules! config_env {
    ($k:expr, $v:expr) => {
        &[
            ("GIT_CONFIG_COUNT", "1"),
            ("GIT_CONFIG_KEY_0", $k),
            ("GIT_CONFIG_VALUE_0", $v),
        ]
    };
}

pub const T2400_ARGS: &[Case] = &[
    add(
        "A01-existing-nonempty-dst",
        "t2400: \"add\" an existing worktree",
        "r0\nmkdir -p r/existing/subtree",
        "r",
        &["--detach", "existing", "main"],
    )
    .refuses(),
    add(
        "A01b-new-branch-onto-existing-dst",
        "t2400 A01 with -b (git leaves the branch it made)",
        "r0\nmkdir -p r/existing/subtree",
        "r",
        &["-b", "newb", "existing", "main"],
    )
    .refuses()
    .git_leaves("the branch newb, made before the refusal"),
    add(
        "A02-existing-empty-dst",
        "t2400: \"add\" an existing empty worktree",
        "r0\nmkdir r/existing_empty",
        "r",
        &["--detach", "existing_empty", "main"],
    ),
    add(
        "A03-dash-without-previous-branch",
        "t2400: \"add\" using shorthand - fails when no previous branch",
        R0,
        "r",
        &["existing_short", "-"],
    )
    .refuses(),
    add(
        "A04-dash-previous-branch",
        "t2400: \"add\" using - shorthand",
        "r0\ncd r\ngit checkout -q -b newbranch\ntc new\ngit checkout -q main",
        "r",
        &["short-hand", "-"],
    ),
    add(
        "A05-branch-checked-out-elsewhere",
        "t2400: \"add\" refuses to checkout locked branch",
        R0,
        "r",
        &["zere", "main"],
    )
    .refuses(),
    add(
        "A06-detach",
        "t2400: \"add\" worktree",
        R0,
        "r",
        &["--detach", "here", "main"],
    ),
    add(
        "A07-lock",
        "t2400: \"add\" worktree with lock",
        R0,
        "r",
        &["--detach", "--lock", "here-with-lock", "main"],
    ),
    add(
        "A08-lock-reason",
        "t2400: \"add\" worktree with lock and reason",
        R0,
        "r",
        &["--detach", "--lock", "--reason", "why not", "here-with-lock-reason", "main"],
    ),
    add(
        "A09-reason-without-lock",
        "t2400: \"add\" worktree with reason but no lock",
        R0,
        "r",
        &["--detach", "--reason", "why not", "x", "main"],
    )
    .refuses(),
    add(
        "A10-from-subdir-id-collision",
        "t2400: \"add\" worktree from a subdir",
        "r0\ncd r\nmkdir sub\ngit worktree add -q --detach here main",
        "r/sub",
        &["--detach", "here", "main"],
    ),
    add(
        "A11-from-linked-worktree",
        "t2400: \"add\" from a linked checkout",
        "r0\ncd r\ngit worktree add -q --detach here main",
        "r/here",
        &["--detach", "nested-here", "main"],
    ),
    add(
        "A12-new-branch",
        "t2400: \"add\" worktree creating new branch",
        R0,
        "r",
        &["-b", "newmain", "there", "main"],
    ),
    add(
        "A13-force-branch-checked-out",
        "t2400: \"add\" from a linked checkout, --force",
        "r0\ncd r\ngit worktree add -q --detach here main\ngit worktree add -q -b newmain there main",
        "r/here",
        &["--force", "anothernewmain", "newmain"],
    ),
    add(
        "A14-branch-checked-out-symlink-head",
        "t2400: die the same branch is already checked out (symlink)",
        "r0\ncd r\ngit worktree add -q -b newmain there main\nh=$(git -C there rev-parse --git-path HEAD)\nrm \"$h\"\nln -s refs/heads/newmain \"$h\"",
        "r",
        &["anothernewmain", "newmain"],
    )
    .refuses()
    .default_profile_only("a symlink HEAD is a files-backend ref"),
    add(
        "A19-relative-head-detaches",
        "t2400: \"add\" from relative HEAD",
        "r0\ncd r\ntc one\ntc two\ntc three",
        "r",
        &["relhead", "HEAD~1"],
    ),
    add(
        "A20-b-without-commit",
        "t2400: \"add -b\" with <branch> omitted",
        R0,
        "r",
        &["-b", "burble", "flornk"],
    ),
    add(
        "A21-detach-without-commit",
        "t2400: \"add --detach\" with <branch> omitted",
        R0,
        "r",
        &["--detach", "fishhook"],
    ),
    add(
        "A22-dwim-basename-branch",
        "t2400: \"add\" with <branch> omitted",
        R0,
        "r",
        &["wiffle/bat"],
    ),
    add(
        "A23-dwim-existing-branch",
        "t2400: \"add\" checks out existing branch of dwimd name",
        "r0\ncd r\ntc second\ngit branch dwim HEAD~1",
        "r",
        &["dwim"],
    ),
    add(
        "A24-dwim-branch-checked-out",
        "t2400: \"add <path>\" dwim fails with checked out branch",
        "r0\ncd r\ngit checkout -q -b test-branch",
        "r",
        &["test-branch"],
    )
    .refuses(),
    add(
        "A25-force-dwim-branch-checked-out",
        "t2400: \"add --force\" with existing dwimd name doesn't die",
        "r0\ncd r\ngit checkout -q -b test-branch",
        "r",
        &["--force", "test-branch"],
    ),
    add(
        "A26-detach-no-auto-vivify",
        "t2400: \"add\" no auto-vivify with --detach and <branch> omitted",
        R0,
        "r",
        &["--detach", "mish/mash"],
    ),
    add(
        "A27a-b-and-B",
        "t2400: -b and -B are mutually exclusive",
        R0,
        "r",
        &["-b", "poodle", "-B", "poodle", "bamboo", "main"],
    )
    .refuses(),
    add(
        "A27b-b-and-detach",
        "t2400: -b and --detach are mutually exclusive",
        R0,
        "r",
        &["-b", "poodle", "--detach", "bamboo", "main"],
    )
    .refuses(),
    add(
        "A27c-B-and-detach",
        "t2400: -B and --detach are mutually exclusive",
        R0,
        "r",
        &["-B", "poodle", "--detach", "bamboo", "main"],
    )
    .refuses(),
    add(
        "A27d-orphan-and-detach",
        "t2400: --orphan and --detach are mutually exclusive",
        R0,
        "r",
        &["--orphan", "--detach", "bamboo"],
    )
    .refuses(),
    add(
        "A27e-orphan-and-no-checkout",
        "t2400: --orphan and --no-checkout are mutually exclusive",
        R0,
        "r",
        &["--orphan", "--no-checkout", "bamboo"],
    )
    .refuses(),
    add(
        "A27f-orphan-and-commit",
        "t2400: --orphan and <commit-ish> are mutually exclusive",
        R0,
        "r",
        &["--orphan", "bamboo", "main"],
    )
    .refuses(),
    add(
        "A27g-orphan-b-and-commit",
        "t2400: --orphan -b and <commit-ish> are mutually exclusive",
        R0,
        "r",
        &["--orphan", "-b", "bamboo", "wtdir/", "main"],
    )
    .refuses(),
    add(
        "A28-B-branch-checked-out",
        "t2400: \"add -B\" fails if the branch is checked out",
        "r0\ncd r\ngit worktree add -q -b newmain there main",
        "r",
        &["-B", "newmain", "bamboo", "main"],
    )
    .refuses(),
    add(
        "A29-B-new-branch",
        "t2400: add -B",
        "r0\ncd r\ntc second",
        "r",
        &["-B", "poodle", "bamboo2", "main^"],
    ),
    add(
        "A29b-B-resets-existing-branch",
        "t2400: add -B (branch exists, not checked out)",
        "r0\ncd r\ntc second\ngit branch poodle",
        "r",
        &["-B", "poodle", "bamboo2", "main^"],
    ),
    add(
        "A30-quiet-detach",
        "t2400: add --quiet",
        R0,
        "r",
        &["--quiet", "--detach", "another-worktree", "main"],
    ),
    add(
        "A30b-quiet-branch-checked-out",
        "t2400: add --quiet (main is checked out)",
        R0,
        "r",
        &["--quiet", "another-worktree", "main"],
    )
    .refuses(),
    add(
        "A30c-quiet-b",
        "t2400: add --quiet -b",
        R0,
        "r",
        &["--quiet", "-b", "quietnewbranch", "another-worktree"],
    ),
    add(
        "A40-no-checkout",
        "t2400: \"add\" worktree with --no-checkout",
        R0,
        "r",
        &["--no-checkout", "-b", "swamp", "swamp"],
    ),
    add(
        "A41-checkout",
        "t2400: \"add\" worktree with --checkout",
        R0,
        "r",
        &["--checkout", "-b", "swmap2", "swamp2"],
    ),
    add(
        "A42-branch-under-rebase",
        "t2400: add a worktree, checking out a rebased branch",
        "r0\ncd r\ntc second\ngit worktree add -q under-rebase\ncd under-rebase\nGIT_SEQUENCE_EDITOR='sed -i s/^pick/edit/' git rebase -q -i HEAD^",
        "r",
        &["new-rebase", "under-rebase"],
    )
    .refuses(),
    add(
        "A43-branch-under-bisect",
        "t2400: add a worktree, checking out a branch under bisect",
        "r0\ncd r\ntc two\ntc three\ngit worktree add -q under-bisect\ncd under-bisect\ngit bisect start >/dev/null\ngit bisect bad >/dev/null\ngit bisect good HEAD~2 >/dev/null",
        "r/under-bisect",
        &["new-bisect", "under-bisect"],
    )
    .refuses(),
    add(
        "A44-track",
        "t2400: --track sets up tracking",
        R0,
        "r",
        &["--track", "-b", "track", "track", "main"],
    ),
    add(
        "A66a-missing-registered",
        "t2400: \"add\" an existing but missing worktree",
        "r0\ncd r\ngit worktree add -q --detach pneu\nrm -rf pneu",
        "r",
        &["--detach", "pneu"],
    )
    .refuses(),
    add(
        "A66b-missing-registered-force",
        "t2400: \"add\" an existing but missing worktree, -f",
        "r0\ncd r\ngit worktree add -q --detach pneu\nrm -rf pneu",
        "r",
        &["--force", "--detach", "pneu"],
    ),
    add(
        "A67a-missing-locked",
        "t2400: \"add\" an existing locked but missing worktree",
        "r0\ncd r\ngit worktree add -q --detach gnoo\ngit worktree lock gnoo\nrm -rf gnoo",
        "r",
        &["--detach", "gnoo"],
    )
    .refuses(),
    add(
        "A67b-missing-locked-force-once",
        "t2400: \"add\" an existing locked but missing worktree, -f",
        "r0\ncd r\ngit worktree add -q --detach gnoo\ngit worktree lock gnoo\nrm -rf gnoo",
        "r",
        &["-f", "--detach", "gnoo"],
    )
    .refuses(),
    add(
        "A67c-missing-locked-force-twice",
        "t2400: \"add\" an existing locked but missing worktree, -f -f",
        "r0\ncd r\ngit worktree add -q --detach gnoo\ngit worktree lock gnoo\nrm -rf gnoo",
        "r",
        &["-f", "-f", "--detach", "gnoo"],
    ),
    add(
        "A68a-git-dir-from-subdir",
        "t2400: \"add\" not tripped up by magic worktree matching",
        "r0\nmkdir r/sub1 r/sub2",
        "r/sub1",
        &["--detach", "bozo"],
    )
    .env(&[("GIT_DIR", "../.git")])
    .repo("r"),
    add(
        "A68b-git-dir-from-other-subdir",
        "t2400: \"add\" not tripped up by magic worktree matching (second)",
        "r0\nmkdir r/sub1 r/sub2\ncd r/sub1\ngit --git-dir=../.git worktree add -q --detach bozo",
        "r/sub2",
        &["--detach", "bozo"],
    )
    .env(&[("GIT_DIR", "../.git")])
    .repo("r"),
    add(
        "A69-sanitized-id",
        "t2400: sanitize generated worktree name",
        R0,
        "r",
        &["--detach", ".  weird*..?.lock.lock"],
    ),
    add(
        "A70-other-worktree-gone",
        "t2400: should not fail because of another bad worktree",
        "r0\ncd r\ngit worktree add -q sub/to-be-deleted\nrm -rf sub",
        "r",
        &["second"],
    ),
    add(
        "X16-invalid-branch-name",
        "builtin/worktree.c: -b with an invalid name (the git branch child fails)",
        R0,
        "r",
        &["-b", "bad..name", "../bn"],
    )
    .refuses(),
    add(
        "X17a-branch-of-deleted-worktree",
        "builtin/worktree.c: a branch checked out in a deleted, unpruned worktree",
        "r0\ncd r\ngit worktree add -q -b gone ../gone\nrm -rf ../gone",
        "r",
        &["../g2", "gone"],
    )
    .refuses(),
    add(
        "X17b-dwim-branch-of-deleted-worktree",
        "builtin/worktree.c: DWIM onto a branch of a deleted, unpruned worktree",
        "r0\ncd r\ngit worktree add -q -b gone ../gone\nrm -rf ../gone",
        "r",
        &["../dup/gone"],
    )
    .refuses(),
    add(
        "X18a-track-without-new-branch",
        "builtin/worktree.c: --track when no branch is created",
        R0,
        "r",
        &["--track", "../t1", "HEAD"],
    )
    .refuses(),
    add(
        "X18b-too-many-arguments",
        "builtin/worktree.c: three positional arguments",
        R0,
        "r",
        &["../a", "b", "c"],
    )
    .refuses(),
    add(
        "A47-invalid-reference",
        "t2400: \"add\" <path> <non-existent-branch> fails",
        R0,
        "r",
        &["foo", "non-existent"],
    )
    .refuses(),
    add(
        "P01-absolute-dst",
        "t2401: worktree prune: not prune proper checkouts",
        R0,
        "r",
        &["--detach", "{copy}/r/nop", "main"],
    ),
    add(
        "P02a-stale-registration-dir",
        "t2401: prune directories without gitdir (add does not prune)",
        "r0\nmkdir -p r/.git/worktrees/abc",
        "r",
        &["--detach", "abc"],
    ),
    add(
        "P02b-stale-registration-file",
        "t2401: prune stale entries (a file in worktrees/)",
        "r0\nmkdir -p r/.git/worktrees\n: >r/.git/worktrees/foo",
        "r",
        &["--detach", "foo"],
    ),
    add(
        "A73-relative-paths",
        "t2400: can create worktrees with relative paths",
        R0,
        "r",
        &["--relative-paths", "./relative"],
    )
    .min_git((2, 48, 0)),
    add(
        "A74-use-relative-paths-config",
        "t2400: relative worktree sets extension config (worktree.useRelativePaths)",
        "r0\ngit -C r config worktree.useRelativePaths true",
        "r",
        &["./relative"],
    )
    .min_git((2, 48, 0)),
    add(
        "A76-no-relative-paths",
        "t2400: can create worktrees with absolute paths (--no-relative-paths over the config)",
        "r0\ngit -C r config worktree.useRelativePaths true",
        "r",
        &["--no-relative-paths", "./absolute"],
    )
    .min_git((2, 48, 0)),
    add(
        "P04-relative-paths-inside",
        "t2401: not prune proper worktrees inside linked worktree with relative paths",
        "r0\ngit -C r config worktree.useRelativePaths true\ngit -C r worktree add -q ../wt_ext",
        "r",
        &["wt_int"],
    )
    .min_git((2, 48, 0)),
    add(
        "L05-relative-paths-list",
        "t2402: linked worktrees with relative paths are shown with absolute paths",
        R0,
        "r",
        &["--relative-paths", "../first"],
    )
    .min_git((2, 48, 0)),
    add(
        "L04-from-git-dir",
        "t2402: worktree path when called in .git directory",
        R0,
        "r/.git",
        &["--detach", "../x"],
    ),
];

pub const T2400_ORPHAN_DWIM: &[Case] = &[
    add(
        "A31-orphan-b",
        "t2400: \"add --orphan\"",
        R0,
        "r",
        &["--orphan", "-b", "neworphan", "orphandir"],
    ),
    add(
        "A32-orphan-no-b",
        "t2400: \"add --orphan (no -b)\"",
        R0,
        "r",
        &["--orphan", "neworphan"],
    ),
    add(
        "A33-orphan-quiet",
        "t2400: \"add --orphan --quiet\"",
        R0,
        "r",
        &["--quiet", "--orphan", "-b", "neworphan", "orphandir"],
    ),
    add(
        "A34-orphan-existing-branch",
        "t2400: \"add --orphan\" fails if the branch already exists",
        "r0\ngit -C r branch existingbranch",
        "r",
        &["--orphan", "-b", "existingbranch", "orphandir"],
    )
    .refuses()
    .git_leaves("an empty .git/worktrees"),
    add(
        "A36-orphan-lock",
        "t2400: \"add --orphan\" with lock",
        R0,
        "r",
        &["--lock", "--orphan", "-b", "orphanbr", "orphan-with-lock"],
    ),
    add(
        "A37a-orphan-hint-dwim",
        "t2400: show orphan hint in bad/orphan HEAD w/ no args",
        "git init -q -b main repo\ncd repo\ntc commit\ngit switch -q --orphan noref",
        "repo",
        &["foobar/"],
    )
    .refuses(),
    add(
        "A37b-orphan-hint-b",
        "t2400: show orphan hint in bad/orphan HEAD w/ -b",
        "git init -q -b main repo\ncd repo\ntc commit\ngit switch -q --orphan noref",
        "repo",
        &["-b", "foobar_branch", "foobar/"],
    )
    .refuses(),
    add(
        "A37c-orphan-hint-B",
        "t2400: show orphan hint in bad/orphan HEAD w/ -B",
        "git init -q -b main repo\ncd repo\ntc commit\ngit switch -q --orphan noref",
        "repo",
        &["-B", "foobar_branch", "foobar/"],
    )
    .refuses(),
    add(
        "A38-orphan-hint-quiet",
        "t2400: doesn't show orphan hint w/ --quiet",
        "git init -q -b main repo\ncd repo\ntc commit\ngit switch -q --orphan noref",
        "repo",
        &["--quiet", "foobar_branch", "foobar/"],
    )
    .refuses(),
    add(
        "A55a-empty-repo-dwim-infers-orphan",
        "t2400: DWIM infer --orphan: empty repo",
        "git init -q -b main repo",
        "repo",
        &["../foo"],
    ),
    add(
        "A55b-empty-repo-b-infers-orphan",
        "t2400: DWIM infer --orphan: empty repo, -b",
        "git init -q -b main repo",
        "repo",
        &["-b", "foo", "../foo"],
    ),
    add(
        "A55c-empty-repo-quiet",
        "t2400: DWIM infer --orphan: empty repo, --quiet",
        "git init -q -b main repo",
        "repo",
        &["--quiet", "../foo"],
    ),
    add(
        "A56a-local-ref-no-orphan",
        "t2400: DWIM doesnt infer --orphan w/ local ref",
        "git init -q -b main repo\ncd repo\ntc commit",
        "repo",
        &["../foo"],
    ),
    add(
        "A56b-local-ref-b-no-orphan",
        "t2400: DWIM doesnt infer --orphan w/ local ref, -b",
        "git init -q -b main repo\ncd repo\ntc commit",
        "repo",
        &["-b", "foo", "../foo"],
    ),
    add(
        "A57a-remote-not-fetched",
        "t2400: DWIM infer --orphan: remote but no fetched refs",
        "git init -q -b main repo\ngit -C repo remote add upstream ../upstream",
        "repo",
        &["../foo"],
    ),
    add(
        "A57b-remote-not-fetched-guess-remote",
        "t2400: DWIM fails: remote but no fetched refs, --guess-remote",
        "git init -q -b main repo\ngit -C repo remote add upstream ../upstream",
        "repo",
        &["--guess-remote", "../foo"],
    )
    .refuses(),
    add(
        "A57c-remote-not-fetched-guess-remote-force",
        "t2400: DWIM infer --orphan: no fetched refs, --guess-remote --force",
        "git init -q -b main repo\ngit -C repo remote add upstream ../upstream",
        "repo",
        &["--guess-remote", "--force", "../foo"],
    ),
    add(
        "A58a-fetched-remote-guess-remote",
        "t2400: DWIM doesnt infer --orphan w/ remote refs and --guess-remote",
        "git init -q -b main upstream\n(cd upstream && tc u && git branch foo)\ngit init -q -b main repo\ngit -C repo remote add upstream ../upstream\ngit -C repo fetch -q upstream",
        "repo",
        &["--guess-remote", "../foo"],
    ),
    add(
        "A58b-fetched-remote-b-infers-orphan",
        "t2400: DWIM infer --orphan w/ -b and remote refs",
        "git init -q -b main upstream\n(cd upstream && tc u && git branch foo)\ngit init -q -b main repo\ngit -C repo remote add upstream ../upstream\ngit -C repo fetch -q upstream",
        "repo",
        &["-b", "foo", "--guess-remote", "../foo"],
    ),
    add(
        "A59a-bad-head",
        "t2400: warn_bad_head, no -b",
        "git init -q -b main repo\ncd repo\ntc commit\ngit symbolic-ref HEAD refs/heads/badbranch",
        "repo",
        &["../foo"],
    )
    .refuses(),
    add(
        "A59b-bad-head-b",
        "t2400: warn_bad_head, -b",
        "git init -q -b main repo\ncd repo\ntc commit\ngit symbolic-ref HEAD refs/heads/badbranch",
        "repo",
        &["-b", "foo", "../foo"],
    )
    .refuses(),
    add(
        "A59c-bad-head-detach",
        "t2400: warn_bad_head, --detach",
        "git init -q -b main repo\ncd repo\ntc commit\ngit symbolic-ref HEAD refs/heads/badbranch",
        "repo",
        &["--detach", "../foo"],
    )
    .refuses(),
    add(
        "A59d-bad-head-quiet",
        "t2400: warn_bad_head, --quiet",
        "git init -q -b main repo\ncd repo\ntc commit\ngit symbolic-ref HEAD refs/heads/badbranch",
        "repo",
        &["--quiet", "../foo"],
    )
    .refuses(),
    add(
        "A60a-inferred-orphan-no-checkout",
        "t2400: fatal_orphan_bad_combo --no-checkout",
        "git init -q -b main repo",
        "repo",
        &["--no-checkout", "../foo"],
    )
    .refuses(),
    add(
        "A60b-inferred-orphan-track",
        "t2400: fatal_orphan_bad_combo --track",
        "git init -q -b main repo",
        "repo",
        &["--track", "../foo"],
    )
    .refuses(),
    add(
        "A60c-inferred-orphan-b-no-checkout",
        "t2400: fatal_orphan_bad_combo -b --no-checkout",
        "git init -q -b main repo",
        "repo",
        &["-b", "foo", "--no-checkout", "../foo"],
    )
    .refuses(),
    add(
        "A60d-inferred-orphan-b-track",
        "t2400: fatal_orphan_bad_combo -b --track",
        "git init -q -b main repo",
        "repo",
        &["-b", "foo", "--track", "../foo"],
    )
    .refuses(),
    add(
        "A61a-linked-orphan-dwim",
        "t2400: DWIM infer --orphan from a linked worktree",
        "git init -q -b main repo\ngit -C repo worktree add -q --orphan -b main ../wt",
        "wt",
        &["../foo"],
    ),
    add(
        "A61b-linked-local-ref",
        "t2400: DWIM doesnt infer --orphan from a linked worktree w/ local ref",
        "git init -q -b main repo\ngit -C repo worktree add -q --orphan -b main ../wt\n(cd wt && tc commit)",
        "wt",
        &["../foo"],
    ),
];

pub const T2400_REMOTES: &[Case] = &[
    add(
        "A45-remote-branch-no-head",
        "t2400: \"add\" <path> <remote/branch> w/ no HEAD",
        "rrem repo_upstream repo_local\ncd repo_local\ngit config --bool core.bare true\ngit branch -D main",
        "repo_local",
        &["./foo", "repo_upstream/foo"],
    ),
    add(
        "A46-no-track",
        "t2400: --no-track avoids setting up tracking",
        "rrem repo_upstream repo_local",
        "repo_local",
        &["--no-track", "-b", "foo", "../foo", "repo_upstream/foo"],
    ),
    add(
        "A46b-remote-start-tracks",
        "t2400: -b from a remote-tracking branch (branch.autoSetupMerge)",
        "rrem repo_upstream repo_local",
        "repo_local",
        &["-b", "foo", "../foo", "repo_upstream/foo"],
    ),
    add(
        "A48-dwim-remote-branch",
        "t2400: \"add\" <path> <branch> dwims",
        "rrem repo_upstream repo_dwim",
        "repo_dwim",
        &["../foo", "foo"],
    ),
    add(
        "A49a-dwim-two-remotes",
        "t2400: \"add\" <path> <branch> dwims with checkout.defaultRemote (ambiguous)",
        "rrem repo_upstream repo_dwim\nrrem repo_upstream2 unused\ncd repo_dwim\ngit remote add repo_upstream2 ../repo_upstream2\ngit config remote.repo_upstream2.fetch 'refs/heads/*:refs/remotes/repo_upstream2/*'\ngit fetch -q --all",
        "repo_dwim",
        &["../foo", "foo"],
    )
    .refuses(),
    add(
        "A49b-dwim-default-remote",
        "t2400: \"add\" <path> <branch> dwims with checkout.defaultRemote",
        "rrem repo_upstream repo_dwim\nrrem repo_upstream2 unused\ncd repo_dwim\ngit remote add repo_upstream2 ../repo_upstream2\ngit config remote.repo_upstream2.fetch 'refs/heads/*:refs/remotes/repo_upstream2/*'\ngit fetch -q --all",
        "repo_dwim",
        &["../foo", "foo"],
    )
    .env(config_env!("checkout.defaultRemote", "repo_upstream")),
    add(
        "A50-no-remote-match",
        "t2400: git worktree add does not match remote",
        "rrem repo_a repo_b",
        "repo_b",
        &["../foo"],
    ),
    add(
        "A51-guess-remote",
        "t2400: git worktree add --guess-remote sets up tracking",
        "rrem repo_a repo_b",
        "repo_b",
        &["--guess-remote", "../foo"],
    ),
    add(
        "A51b-guess-remote-quiet",
        "t2400: git worktree add --guess-remote sets up tracking (quiet)",
        "rrem repo_a repo_b",
        "repo_b",
        &["--quiet", "--guess-remote", "../foo"],
    ),
    add(
        "A52-no-guess-remote-quiet",
        "t2400: git worktree --no-guess-remote (quiet)",
        "rrem repo_a repo_b",
        "repo_b",
        &["--quiet", "--no-guess-remote", "../foo"],
    ),
    add(
        "A53-guess-remote-config",
        "t2400: git worktree add with worktree.guessRemote sets up tracking",
        "rrem repo_a repo_b\ngit -C repo_b config worktree.guessRemote true",
        "repo_b",
        &["../foo"],
    ),
    add(
        "A54-no-guess-remote-overrides-config",
        "t2400: git worktree --no-guess-remote option overrides config",
        "rrem repo_a repo_b\ngit -C repo_b config worktree.guessRemote true",
        "repo_b",
        &["--no-guess-remote", "../foo"],
    ),
    add(
        "A54b-guess-remote-with-commit",
        "t2400: --guess-remote is ignored with a commit-ish",
        "rrem repo_a repo_b",
        "repo_b",
        &["--guess-remote", "../foo", "HEAD"],
    ),
    add(
        "A54c-track-remote-branch",
        "t2400: --track -b from a remote-tracking branch",
        "rrem repo_a repo_b",
        "repo_b",
        &["--track", "-b", "bar", "../bar", "repo_a/foo"],
    ),
    add(
        "A54d-autosetupmerge-always",
        "t2400: -b with branch.autoSetupMerge=always from a local branch",
        "rrem repo_a repo_b\ngit -C repo_b config branch.autoSetupMerge always",
        "repo_b",
        &["-b", "bar", "../bar", "main"],
    ),
];

pub const BARE: &[Case] = &[
    add(
        "A15-bare-b",
        "t2400: \"add\" from a bare repo",
        "r0\ngit clone -q --bare r bare",
        "bare",
        &["-b", "bare-main", "../there2", "main"],
    )
    .refuses_under_git3(),
    add(
        "A16-bare-default-branch",
        "t2400: \"add\" default branch of a bare repo",
        "r0\ngit clone -q --bare r bare2",
        "bare2",
        &["../there3", "main"],
    )
    .refuses_under_git3(),
    add(
        "A17a-bare-worktree-config",
        "t2400: \"add\" to bare repo with worktree config",
        "r0\ngit clone -q --bare r bare3\ng() { git --git-dir=bare3 \"$@\"; }\ng config extensions.worktreeconfig true\ng config --worktree core.bare true\ng config --worktree core.worktree \"$PWD/bare3\"\ng config --worktree bogus.key value\ng config --unset core.bare",
        "bare3",
        &["../there4", "main"],
    )
    .refuses_under_git3(),
    add(
        "A17b-from-linked-worktree-of-bare",
        "t2400: \"add\" to bare repo with worktree config (from the first worktree)",
        "r0\ngit clone -q --bare r bare3\ng() { git --git-dir=bare3 \"$@\"; }\ng config extensions.worktreeconfig true\ng config --worktree core.bare true\ng config --worktree core.worktree \"$PWD/bare3\"\ng config --worktree bogus.key value\ng config --unset core.bare\ng worktree add -q there4 main",
        "there4",
        &["--detach", "../there5"],
    ),
    add(
        "A35a-orphan-empty-bare",
        "t2400: \"add --orphan\" with empty repository",
        "git init -q --bare empty_repo",
        "empty_repo",
        &["--orphan", "-b", "newbranch", "worktreedir"],
    )
    .refuses_under_git3(),
    add(
        "A35b-orphan-empty-bare-git-dir",
        "t2400: \"add --orphan\" with empty repository, through GIT_DIR",
        "git init -q --bare empty_repo",
        ".",
        &["--orphan", "-b", "newbranch", "worktreedir"],
    )
    .env(&[("GIT_DIR", "empty_repo")])
    .repo("empty_repo"),
    add(
        "L02-bare-list",
        "t2402: worktree list --porcelain from a bare main",
        "r0\ngit init -q --bare bare1\ngit -C r push -q ../bare1 main",
        "bare1",
        &["--detach", "../there", "main"],
    )
    .refuses_under_git3(),
    add(
        "R01-bare-dot-git-suffix",
        "t2406: repair .git file from bare.git",
        "r0\ngit clone -q --bare r bare.git",
        "bare.git",
        &["--detach", "../corrupt"],
    )
    .refuses_under_git3(),
    add(
        "X07-bare-git-dir-reflog",
        "builtin/worktree.c: add from a bare repository (reflog quirk), through GIT_DIR",
        "r0\ngit clone -q --bare r bare",
        ".",
        &["wtb"],
    )
    .env(&[("GIT_DIR", "bare")])
    .repo("bare"),
    // git 2.49 (78a95e0d80) makes this a success: the case then reports itself broken.
    add(
        "X09-bare-in-config-worktree",
        "t3200: secondary worktrees recognize core.bare=true in main config.worktree (git < 2.49 refuses)",
        "r0\ngit clone -q --bare r bare\ng() { git --git-dir=bare \"$@\"; }\ng config extensions.worktreeConfig true\ng config --worktree core.bare true\ng config --unset core.bare\ng worktree add -q --detach w1",
        "w1",
        &["../w2", "main"],
    )
    .refuses(),
    add(
        "X10-bare-yes-in-config-worktree",
        "builtin/worktree.c: core.bare spelled yes is kept in the copy",
        "r0\ngit clone -q --bare r bare\ng() { git --git-dir=bare \"$@\"; }\ng config extensions.worktreeConfig true\ng config --worktree core.bare yes\ng config --unset core.bare\ng worktree add -q --detach w1",
        "w1",
        &["--detach", "../w2"],
    ),
    add(
        "X11-multiple-core-worktree",
        "builtin/worktree.c: several core.worktree in config.worktree",
        "r0\ncd r\ngit config extensions.worktreeConfig true\ngit config --worktree core.worktree \"$PWD\"\ngit config --worktree --add core.worktree \"$PWD\"",
        "r",
        &["--detach", "../w"],
    ),
    add(
        "X20a-explicit-implicit-bare",
        "t0035/X20: safe.bareRepository=explicit refuses an implicit bare repository",
        "r0\ngit clone -q --bare r bare",
        "bare",
        &["../x1"],
    )
    .env(config_env!("safe.bareRepository", "explicit"))
    .refuses(),
    add(
        "X20b-explicit-git-dir-bare",
        "t0035/X20: safe.bareRepository=explicit and GIT_DIR",
        "r0\ngit clone -q --bare r bare",
        ".",
        &["x2"],
    )
    .env(&[("GIT_DIR", "bare"), ("GIT_CONFIG_COUNT", "1"), ("GIT_CONFIG_KEY_0", "safe.bareRepository"), ("GIT_CONFIG_VALUE_0", "explicit")])
    .repo("bare"),
    add(
        "X08-embedded-repo-no-commits",
        "t0035: setup embedded bare repo, secondary worktree",
        "git init -q -b main outer-repo",
        "outer-repo",
        &["../outer-secondary"],
    ),
];

pub const POST_CHECKOUT_HOOK: &[Case] = &[
    add(
        "A62a-hook-new-branch",
        "t2400: \"add\" invokes post-checkout hook (branch)",
        "r0\nposthook r/.git",
        "r",
        &["gumby"],
    ),
    add(
        "A62b-hook-detached",
        "t2400: \"add\" invokes post-checkout hook (detached)",
        "r0\nposthook r/.git",
        "r",
        &["--detach", "grumpy"],
    ),
    add(
        "A62c-hook-no-checkout",
        "t2400: \"add --no-checkout\" suppresses post-checkout hook",
        "r0\nposthook r/.git",
        "r",
        &["--no-checkout", "gloopy"],
    ),
    add(
        "A63-hook-from-other-worktree",
        "t2400: \"add\" in other worktree invokes post-checkout hook",
        "r0\nposthook r/.git\ngit -C r worktree add -q --no-checkout gloopy",
        "r/gloopy",
        &["--detach", "../guppy"],
    ),
    add(
        "A64-hook-bare",
        "t2400: \"add\" in bare repo invokes post-checkout hook",
        "r0\ngit clone -q --bare r bare\nposthook bare",
        "bare",
        &["--detach", "../goozy"],
    )
    .refuses_under_git3(),
    add(
        "A65-hook-fails",
        "builtin/worktree.c: a failing post-checkout hook is the exit status",
        "r0\nmkdir -p r/.git/hooks\nprintf '#!/bin/sh\\nexit 3\\n' >r/.git/hooks/post-checkout\nchmod +x r/.git/hooks/post-checkout",
        "r",
        &["--detach", "../hk"],
    )
    .made_but_fails(),
    add(
        "A65b-hook-orphan-not-run",
        "t2400: \"add --orphan\" runs no post-checkout hook",
        "r0\nposthook r/.git",
        "r",
        &["--orphan", "-b", "o", "../o"],
    ),
];

pub const T2401_T2407: &[Case] = &[
    add(
        "L01-git-path-objects",
        "t2402: rev-parse --git-path objects linked worktree",
        R0,
        "r",
        &["--detach", "linked-tree", "main"],
    ),
    add(
        "M01-submodule-head-detaches",
        "t2403: move a repo with uninitialized submodule",
        "r0\ncd r\ngit -c protocol.file.allow=always submodule add -q \"$PWD/.git\" sub\ngit commit -q -m sub",
        "r",
        &["second", "HEAD"],
    ),
    add(
        "G01-config-worktree-copied",
        "t2404: config --worktree w/o extension; enable extension later",
        "r0\ncd r\ngit config --worktree foo.bar true\ngit worktree add -q wt1\ngit worktree add -q wt2\ngit config core.repositoryformatversion 1\ngit config extensions.worktreeConfig true\ngit config --worktree this.is for-main",
        "r",
        &["wt3"],
    ),
    add(
        "G02-core-bare-from-linked",
        "t2404: per-worktree core.bare is picked up",
        "r0\ncd r\ngit worktree add -q wt1\ngit config core.repositoryformatversion 1\ngit config extensions.worktreeConfig true\ngit -C wt1 config --worktree core.bare true",
        "r/wt1",
        &["../wt4"],
    ),
    add(
        "U01-superproject-detached",
        "t2405: add superproject worktree",
        "mkdir origin\ngit init -q -b main origin/sub\n(cd origin/sub && tc file1)\ngit init -q -b main origin/main\n(cd origin/main && tc first && git -c protocol.file.allow=always submodule add -q ../sub sub && git commit -q -m sub)\ngit -c protocol.file.allow=always clone -q --recursive origin/main main",
        "main",
        &["{copy}/worktree", "first"],
    ),
    add(
        "U02-superproject-recurse",
        "t2405: add superproject worktree and initialize submodules",
        "mkdir origin\ngit init -q -b main origin/sub\n(cd origin/sub && tc file1)\ngit init -q -b main origin/main\n(cd origin/main && tc first && git -c protocol.file.allow=always submodule add -q ../sub sub && git commit -q -m sub)\ngit -c protocol.file.allow=always clone -q --recursive origin/main main",
        "main",
        &["{copy}/checkout-recurse", "--detach"],
    ),
    add(
        "H01-branches-in-use",
        "t2407: setup (worktree branches in use)",
        "r0\ncd r\nfor i in 1 2 3; do git checkout -q -b conflict-$i; echo \"test $i\" >>a; git add a; git commit -q -m \"commit $i\"; git checkout -q init; git branch wt-$i; git branch fake-$i; git worktree add -q wt-$i wt-$i; done\ngit checkout -q -b conflict-4\ngit checkout -q init\ngit branch wt-4",
        "r",
        &["wt-4", "wt-4"],
    ),
    add(
        "H02a-branch-under-rebase-state",
        "t2407: refuse to overwrite when in error states (rebase; the worktree detached, as die_if_checked_out asks)",
        "r0\ncd r\nfor i in 1 2 3; do git branch wt-$i; git branch fake-$i; git worktree add -q wt-$i wt-$i; done\ngit -C wt-3 checkout -q --detach\nd=$(git -C wt-3 rev-parse --git-dir)\nmkdir -p \"$d/rebase-merge\"\necho refs/heads/fake-1 >\"$d/rebase-merge/head-name\"\necho refs/heads/fake-1 >\"$d/rebase-merge/onto\"",
        "r",
        &["x", "fake-1"],
    )
    .refuses(),
    add(
        "H02b-branch-under-bisect-state",
        "t2407: refuse to overwrite when in error states (bisect; the worktree detached)",
        "r0\ncd r\nfor i in 1 2 3; do git branch wt-$i; git branch fake-$i; git worktree add -q wt-$i wt-$i; done\ngit -C wt-1 checkout -q --detach\nd=$(git -C wt-1 rev-parse --git-dir)\necho fake-2 >\"$d/BISECT_START\"\n: >\"$d/BISECT_LOG\"",
        "r",
        &["y", "fake-2"],
    )
    .refuses(),
];

pub const SPARSE: &[Case] = &[
    add(
        "S01-copies-non-cone-patterns",
        "t1091: worktree: add copies sparse-checkout patterns",
        "rsp\ngit -C repo sparse-checkout set --no-cone '/*'",
        "repo",
        &["--quiet", "../worktree"],
    ),
    add(
        "S02-cone-two-dirs",
        "t1091: different sparse-checkouts with worktrees",
        "rsp\ngit -C repo sparse-checkout set --cone deep folder1",
        "repo",
        &["--detach", "../worktree"],
    ),
    add(
        "S03-cone-init",
        "t1091: cone mode: init and set (top-level files)",
        "rsp\ngit -C repo sparse-checkout init --cone",
        "repo",
        &["--detach", "../wt"],
    ),
    add(
        "S04-no-cone-init",
        "t1091: git sparse-checkout init",
        "rsp\ngit -C repo sparse-checkout init --no-cone",
        "repo",
        &["--detach", "../wt"],
    ),
    add(
        "S05-init-with-existing-patterns",
        "t1091: init with existing sparse-checkout",
        "rsp\ngit -C repo sparse-checkout init --no-cone\necho '*folder*' >>repo/.git/info/sparse-checkout\ngit -C repo sparse-checkout init",
        "repo",
        &["--detach", "../wt"],
    ),
    add(
        "S06-set-enables-worktree-config",
        "t1091: set enables config",
        "git init -q -b main worktree-config\n(cd worktree-config && tc test && git sparse-checkout set nothing)",
        "worktree-config",
        &["--detach", "../wt"],
    ),
    add(
        "S07-sparse-index",
        "t1091: sparse-index enabled and disabled (enabled)",
        "rsp\ngit -C repo sparse-checkout init --cone --sparse-index\ngit -C repo sparse-checkout set folder1",
        "repo",
        &["--detach", "../wt"],
    ),
    add(
        "S08-sparse-disabled-patterns-left",
        "t1091: sparse-checkout disable",
        "rsp\ngit -C repo sparse-checkout init --cone --sparse-index\ngit -C repo sparse-checkout set folder1\ngit -C repo sparse-checkout disable",
        "repo",
        &["--detach", "../wt"],
    ),
    add(
        "S09-cone-no-sparse-index",
        "t1091: reapply can handle config options",
        "rsp\ngit -C repo sparse-checkout init --cone --no-sparse-index",
        "repo",
        &["--detach", "../wt"],
    ),
    add(
        "S10-cone-config-non-cone-patterns",
        "t1091: switching to cone mode with non-cone mode patterns",
        "rsp\ngit -C repo sparse-checkout init --no-cone\ngit -C repo sparse-checkout add folder1\ngit -C repo config --worktree core.sparseCheckoutCone true",
        "repo",
        &["../wt"],
    ),
    add(
        "S11-cone-set-d",
        "issue: git sparse-checkout set --cone d",
        "rde\ngit -C r sparse-checkout set --cone d",
        "r",
        &["../wt"],
    ),
    add(
        "S11b-non-cone-set-d",
        "issue: git sparse-checkout set --no-cone /d/",
        "rde\ngit -C r sparse-checkout set --no-cone /d/",
        "r",
        &["../wt"],
    ),
    add(
        "S11c-cone-sparse-index-d",
        "issue: sparse index (cone d)",
        "rde\ngit -C r sparse-checkout set --cone --sparse-index d",
        "r",
        &["-b", "x", "../wt"],
    ),
    add(
        "S12-sparse-submodule",
        "t1091: interaction with submodules",
        "rsp\ngit clone -q repo super\ncd super\ngit -c protocol.file.allow=always submodule add -q ../repo modules/child\ngit commit -q -m 'add submodule'\ngit sparse-checkout init --cone\ngit sparse-checkout set folder1",
        "super",
        &["../superwt"],
    ),
    add(
        "S12b-sparse-index-submodule",
        "t1091: interaction with submodules (sparse index)",
        "rsp\ngit clone -q repo super\ncd super\ngit -c protocol.file.allow=always submodule add -q ../repo modules/child\ngit commit -q -m 'add submodule'\ngit sparse-checkout init --cone --sparse-index\ngit sparse-checkout set folder1",
        "super",
        &["../superwt"],
    ),
    add(
        "S13-old-style-sparse",
        "builtin/worktree.c: core.sparseCheckout in the shared config, no worktreeConfig",
        "rde\ncd r\ngit config core.sparseCheckout true\nprintf '/top\\n/d/\\n' >.git/info/sparse-checkout\ngit read-tree -mu HEAD",
        "r",
        &["../wt"],
    ),
    add(
        "S14a-c-sparse-checkout",
        "builtin/worktree.c: -c core.sparseCheckout=true copies the patterns",
        "rde\ncd r\nprintf '/top\\n/d/\\n' >.git/info/sparse-checkout",
        "r",
        &["../wt"],
    )
    .env(config_env!("core.sparseCheckout", "true")),
    add(
        "S14b-patterns-without-sparse-checkout",
        "builtin/worktree.c: info/sparse-checkout without core.sparseCheckout is not copied",
        "rde\ncd r\nprintf '/top\\n/d/\\n' >.git/info/sparse-checkout",
        "r",
        &["../wt"],
    ),
    add(
        "S15-from-linked-sparse-worktree",
        "builtin/worktree.c: patterns and config.worktree from the current worktree",
        "rsp\ncd repo\ngit sparse-checkout init --cone --sparse-index\ngit sparse-checkout set folder1\ngit worktree add -q --detach ../wt\ngit -C ../wt sparse-checkout set deep\ngit -C ../wt config --worktree foo.only wt",
        "wt",
        &["../wt2"],
    ),
    add(
        "S16-sparse-no-checkout",
        "builtin/worktree.c: --no-checkout on a sparse repository",
        "rsp\ngit -C repo sparse-checkout init --cone --sparse-index\ngit -C repo sparse-checkout set folder1",
        "repo",
        &["--no-checkout", "../wt"],
    ),
    add(
        "S17-skip-worktree-without-sparse",
        "issue: a skip-worktree entry, no sparse checkout",
        "rde\ngit -C r update-index --skip-worktree d/f",
        "r",
        &["--detach", "../wt"],
    ),
    add(
        "S18-assume-unchanged-entry",
        "issue: an assume-unchanged entry in SRC",
        "rde\ngit -C r update-index --assume-unchanged d/f",
        "r",
        &["--detach", "../wt"],
    ),
    add(
        "S19-sparse-other-commit",
        "t1091: sparse checkout of another commit than SRC's",
        "rde\ncd r\ngit checkout -q -b other\necho changed >d/f\necho new >e/new\ngit add .\ngit commit -q -m other\ngit checkout -q main\ngit sparse-checkout set --cone d",
        "r",
        &["../wt", "other"],
    ),
    add(
        "S20-sparse-ignore-case",
        "facts.rs: a sparse checkout under core.ignoreCase (git matches without case)",
        "rde\ncd r\ngit config core.ignoreCase true\ngit sparse-checkout set --cone d",
        "r",
        &["../wt"],
    ),
    add(
        "S21-sparse-checkout-not-a-boolean",
        "config.c: core.sparseCheckout = maybe (git dies reading it)",
        "rde\ngit -C r config core.sparseCheckout maybe",
        "r",
        &["--detach", "../wt"],
    )
    .refuses(),
];

pub const T1092: &[Case] = &[
    add(
        "C01a-full-checkout",
        "t1092: worktree (full-checkout)",
        "r1092",
        "full-checkout",
        &["../full-checkout-wt"],
    ),
    add(
        "C01b-sparse-checkout",
        "t1092: worktree (sparse-checkout)",
        "r1092",
        "sparse-checkout",
        &["../sparse-checkout-wt"],
    ),
    add(
        "C01c-sparse-index",
        "t1092: worktree (sparse-index)",
        "r1092",
        "sparse-index",
        &["../sparse-index-wt"],
    ),
    add(
        "C02a-nested-full-checkout",
        "t1092: worktree (nested, full-checkout)",
        "r1092",
        "full-checkout",
        &[".worktrees/hotfix"],
    ),
    add(
        "C02b-nested-sparse-checkout",
        "t1092: worktree (nested, sparse-checkout)",
        "r1092",
        "sparse-checkout",
        &[".worktrees/hotfix"],
    ),
    add(
        "C03-nested-sparse-index",
        "t1092: worktree is not expanded",
        "r1092",
        "sparse-index",
        &[".worktrees/hotfix"],
    ),
    add(
        "C04-sparse-index-orphan",
        "t1092 variant: sparse-index and --orphan",
        "r1092",
        "sparse-index",
        &["--orphan", "../o"],
    ),
    add(
        "C05-sparse-index-other-branch",
        "t1092 variant: sparse-index and -b from another branch",
        "r1092",
        "sparse-index",
        &["-b", "nb", "../nb", "update-folder1"],
    ),
    add(
        "C06-sparse-checkout-dir-to-file",
        "t1092 variant: sparse-checkout onto df-conflict-1 (folder1 a file)",
        "r1092",
        "sparse-checkout",
        &["--detach", "../df", "df-conflict-1"],
    ),
];

pub const FORMATS: &[Case] = &[
    add(
        "F01-reftable",
        "t0610: worktree: adding worktree creates separate stack",
        "git init -q -b main --ref-format=reftable repo\n(cd repo && tc A)",
        "repo",
        &["../worktree"],
    )
    .min_git((2, 45, 0)),
    add(
        "F02-reftable-detach",
        "t0610 variant: reftable, --detach",
        "git init -q -b main --ref-format=reftable repo\n(cd repo && tc A)",
        "repo",
        &["--detach", "../d"],
    )
    .min_git((2, 45, 0)),
    add(
        "F03-reftable-b-lock",
        "t0610 variant: reftable, -b and --lock",
        "git init -q -b main --ref-format=reftable repo\n(cd repo && tc A)",
        "repo",
        &["--lock", "-b", "x", "../b"],
    )
    .min_git((2, 45, 0)),
    add(
        "F04-reftable-orphan",
        "t0610 variant: reftable, --orphan",
        "git init -q -b main --ref-format=reftable repo\n(cd repo && tc A)",
        "repo",
        &["--orphan", "../o"],
    )
    .min_git((2, 45, 0)),
    add(
        "F05-reftable-dash",
        "t2400 A04 on reftable: - is the previous branch",
        "git init -q -b main --ref-format=reftable repo\ncd repo\ntc A\ngit checkout -q -b newbranch\ntc B\ngit checkout -q main",
        "repo",
        &["short-hand", "-"],
    )
    .min_git((2, 45, 0)),
    add(
        "F06-reftable-branch-checked-out",
        "t2400 A05 on reftable",
        "git init -q -b main --ref-format=reftable repo\n(cd repo && tc A)",
        "repo",
        &["zere", "main"],
    )
    .min_git((2, 45, 0))
    .refuses(),
    add(
        "F07-sha256-files",
        "code: --object-format=sha256, files refs",
        "git init -q -b main --object-format=sha256 --ref-format=files repo\n(cd repo && tc A)",
        "repo",
        &["../w"],
    )
    .min_git((2, 45, 0)),
    add(
        "F08-sha256-files-detach",
        "code: sha256, files refs, --detach",
        "git init -q -b main --object-format=sha256 --ref-format=files repo\n(cd repo && tc A)",
        "repo",
        &["--detach", "../d"],
    )
    .min_git((2, 45, 0)),
    add(
        "F09-sha256-files-orphan",
        "code: sha256, files refs, --orphan",
        "git init -q -b main --object-format=sha256 --ref-format=files repo\n(cd repo && tc A)",
        "repo",
        &["--orphan", "../o"],
    )
    .min_git((2, 45, 0)),
    add(
        "F10-sha256-reftable",
        "code: sha256 and reftable",
        "git init -q -b main --object-format=sha256 --ref-format=reftable repo\n(cd repo && tc A)",
        "repo",
        &["-b", "x", "../b"],
    )
    .min_git((2, 45, 0)),
    add(
        "F11-sha1-files",
        "code: SHA-1 and files refs, whatever the defaults",
        "git init -q -b main --object-format=sha1 --ref-format=files repo\n(cd repo && tc A)",
        "repo",
        &["../w"],
    )
    .min_git((2, 45, 0)),
    add(
        "F12-format-version-2",
        "setup.c: core.repositoryformatversion=2",
        "r0\ngit -C r config core.repositoryformatversion 2",
        "r",
        &["--detach", "../w"],
    )
    .refuses(),
    add(
        "F13-unknown-extension-v1",
        "setup.c: an unknown extensions.foo with repositoryformatversion=1",
        "r0\ngit -C r config core.repositoryformatversion 1\ngit -C r config extensions.foo bar",
        "r",
        &["--detach", "../w"],
    )
    .refuses(),
    add(
        "F14-unknown-extension-v0",
        "setup.c: an unknown extensions.foo with repositoryformatversion=0 (ignored)",
        "git init -q -b main --object-format=sha1 --ref-format=files r\n(cd r && tc init)\ngit -C r config core.repositoryformatversion 0\ngit -C r config extensions.foo bar",
        "r",
        &["--detach", "../w"],
    )
    .min_git((2, 45, 0)),
    add(
        "F15-noop-extension",
        "setup.c: extensions.noop (known, v1)",
        "r0\ngit -C r config core.repositoryformatversion 1\ngit -C r config extensions.noop true",
        "r",
        &["--detach", "../w"],
    ),
    add(
        "F16-precious-objects",
        "setup.c: extensions.preciousObjects (known, v1)",
        "r0\ngit -C r config core.repositoryformatversion 1\ngit -C r config extensions.preciousObjects true",
        "r",
        &["-b", "x", "../w"],
    ),
    add(
        "F17-unknown-v1-only-extension-in-v0",
        "setup.c: extensions.worktreeConfig with v0 and an unknown one",
        "git init -q -b main --object-format=sha1 --ref-format=files r\n(cd r && tc init)\ngit -C r config extensions.worktreeConfig true\ngit -C r config extensions.foo bar",
        "r",
        &["--detach", "../w"],
    )
    .min_git((2, 45, 0)),
    add(
        "F18-grafts",
        "t2400: checkout with grafts",
        "git init -q -b main --object-format=sha1 --ref-format=files r\ncd r\ntc zero\ntc one\ntc two\necho \"$(git rev-parse two) $(git rev-parse zero)\" >.git/info/grafts",
        "r",
        &["--detach", "grafted", "main"],
    )
    .min_git((2, 45, 0)),
    add(
        "F19-compat-object-format",
        "setup.c: extensions.compatObjectFormat (a SHA-1 repository keeping SHA-256 names)",
        "git init -q -b main --object-format=sha1 r\ncd r\ntc A\ngit config core.repositoryformatversion 1\ngit config extensions.compatObjectFormat sha256",
        "r",
        &["../w"],
    )
    .min_git((2, 45, 0)),
];

pub const INDEX_CONFIG: &[Case] = &[
    add(
        "I01-ignore-stat",
        "code: core.ignoreStat=true (entries assume-unchanged)",
        "rde\ngit -C r config core.ignoreStat true",
        "r",
        &["--detach", "../ig"],
    ),
    add(
        "I02-ignore-stat-before-commit",
        "code: core.ignoreStat=true before the files were added",
        "git init -q -b main r\ncd r\ngit config core.ignoreStat true\nmkdir d\necho f >d/f\necho top >top\ngit add .\ngit commit -q -m c",
        "r",
        &["-b", "x", "../ig"],
    ),
    add(
        "I03-check-stat-minimal",
        "code: core.checkStat=minimal",
        "rde\ngit -C r config core.checkStat minimal",
        "r",
        &["--detach", "../w"],
    ),
    add(
        "I04-index-version-4",
        "code: index.version=4",
        "rde\ngit -C r config index.version 4",
        "r",
        &["--detach", "../w"],
    ),
    add(
        "I05-many-files",
        "code: feature.manyFiles=true",
        "rde\ngit -C r config feature.manyFiles true",
        "r",
        &["--detach", "../w"],
    ),
    add(
        "I06-split-index",
        "code: core.splitIndex=true",
        "rde\ngit -C r config core.splitIndex true",
        "r",
        &["--detach", "../w"],
    ),
    add(
        "I07-split-index-src",
        "code: core.splitIndex=true, SRC's index already split",
        "rde\ncd r\ngit config core.splitIndex true\ngit update-index --split-index",
        "r",
        &["-b", "x", "../w"],
    ),
    add(
        "I08-untracked-cache",
        "code: core.untrackedCache=true",
        "rde\ncd r\ngit config core.untrackedCache true\ngit status >/dev/null",
        "r",
        &["--detach", "../w"],
    ),
    add(
        "I09-skip-hash",
        "code: index.skipHash=true",
        "rde\ngit -C r config index.skipHash true",
        "r",
        &["--detach", "../w"],
    ),
    add(
        "I10-index-version-4-src",
        "code: SRC's index is version 4, the config not",
        "rde\ngit -C r update-index --index-version 4",
        "r",
        &["--detach", "../w"],
    ),
    add(
        "I11-trust-ctime-false",
        "code: core.trustctime=false",
        "rde\ngit -C r config core.trustctime false",
        "r",
        &["--detach", "../w"],
    ),
    add(
        "I12-filemode-false",
        "code: core.fileMode=false with an executable file",
        "git init -q -b main r\ncd r\nprintf '#!/bin/sh\\n' >x.sh\nchmod +x x.sh\necho f >f\ngit add .\ngit commit -q -m c\ngit config core.fileMode false",
        "r",
        &["--detach", "../w"],
    ),
    add(
        "I13-symlinks-false",
        "code: core.symlinks=false with a symlink",
        "git init -q -b main r\ncd r\necho f >f\nln -s f l\ngit add .\ngit commit -q -m c\ngit config core.symlinks false",
        "r",
        &["--detach", "../w"],
    ),
    add(
        "I14-autocrlf",
        "code: core.autocrlf=true",
        "git init -q -b main r\ncd r\nprintf 'a\\nb\\n' >t.txt\ngit add .\ngit commit -q -m c\ngit config core.autocrlf true",
        "r",
        &["--detach", "../w"],
    ),
    add(
        "I15-ident-attribute",
        "code: the ident attribute",
        "git init -q -b main r\ncd r\necho '*.txt ident' >.gitattributes\nprintf '$Id$\\n' >t.txt\ngit add .\ngit commit -q -m c",
        "r",
        &["--detach", "../w"],
    ),
    add(
        "I16-dirty-src",
        "code: SRC's file changed since its index (not committed)",
        "rde\necho changed >r/d/f",
        "r",
        &["--detach", "../w"],
    ),
    add(
        "I17-staged-src",
        "code: SRC's file staged but not committed",
        "rde\necho staged >r/d/f\ngit -C r add d/f",
        "r",
        &["--detach", "../w"],
    ),
    add(
        "I18-conflict-in-src",
        "code: SRC's index has a conflict",
        "rde\ncd r\ngit checkout -q -b side\necho side >d/f\ngit commit -q -am side\ngit checkout -q main\necho main >d/f\ngit commit -q -am main\ngit merge -q side >/dev/null 2>&1 || true",
        "r",
        &["--detach", "../w", "main"],
    ),
];

pub const PARTIAL_CLONE: &[Case] = &[
    add(
        "K01-blobless-other-branch",
        "issue: partial clone, target blobs not local (lazy fetch)",
        "server_pc",
        "pc",
        &["../w", "other"],
    ),
    add(
        "K02-blobless-checked-out-commit",
        "issue: partial clone, target blobs local",
        "server_pc",
        "pc",
        &["--detach", "../w", "main"],
    ),
    add(
        "K03-blobless-no-checkout-clone",
        "issue: partial clone made with --no-checkout",
        "server_pc --no-checkout",
        "pc",
        &["--detach", "../w", "main"],
    ),
    add(
        "K04-blobless-offline",
        "issue: partial clone, server gone, target blobs not local",
        "server_pc\nmv server server-gone",
        "pc",
        &["../w", "other"],
    )
    .refuses(),
    add(
        "K05-blobless-offline-local-blobs",
        "issue: partial clone, server gone, target blobs local",
        "server_pc\nmv server server-gone",
        "pc",
        &["--detach", "../w", "main"],
    ),
    add(
        "K06-blobless-sparse",
        "X14: blobless partial clone with --sparse",
        "server_pc --sparse",
        "pc",
        &["../w"],
    ),
    add(
        "K07-blobless-remote-unreachable-url",
        "issue: partial clone, remote URL unreachable",
        "server_pc\ngit -C pc remote set-url origin \"file://$PWD/nowhere\"",
        "pc",
        &["--detach", "../w", "other"],
    )
    .refuses(),
    add(
        "K08-treeless-filter",
        "issue: a partial clone whose filter leaves out trees (blob:none combined with tree:0)",
        "server_pc --filter=tree:0",
        "pc",
        &["../w", "other"],
    ),
];

pub const SUBMODULES: &[Case] = &[
    add(
        "A71a-uninitialized-submodule",
        "t2400: \"add\" with uninitialized submodule, with submodule.recurse unset",
        "rsub",
        "project-clone",
        &["../project-1"],
    ),
    add(
        "A71b-uninitialized-submodule-recurse",
        "t2400: \"add\" with uninitialized submodule, with submodule.recurse set",
        "rsub",
        "project-clone",
        &["../project-2"],
    )
    .env(config_env!("submodule.recurse", "true")),
    add(
        "A72a-initialized-submodule",
        "t2400: \"add\" with initialized submodule, with submodule.recurse unset",
        "rsub\ngit -C project-clone -c protocol.file.allow=always submodule update -q --init",
        "project-clone",
        &["../project-3"],
    ),
    add(
        "A72b-initialized-submodule-recurse",
        "t2400: \"add\" with initialized submodule, with submodule.recurse set",
        "rsub\ngit -C project-clone -c protocol.file.allow=always submodule update -q --init",
        "project-clone",
        &["../project-4"],
    )
    .env(config_env!("submodule.recurse", "true")),
    add(
        "A72c-submodule-recurse-in-config",
        "issue: submodule.recurse=true in the repository's config",
        "rsub\ngit -C project-clone -c protocol.file.allow=always submodule update -q --init\ngit -C project-clone config submodule.recurse true",
        "project-clone",
        &["-b", "x", "../project-5"],
    ),
    add(
        "B01-repo-with-submodule",
        "issue: a repository with a submodule (added here)",
        "rsub",
        "project",
        &["--detach", "../p"],
    ),
    add(
        "B02-submodule-itself",
        "issue: add in a submodule's own repository",
        "rsub\ngit -C project-clone -c protocol.file.allow=always submodule update -q --init",
        "project-clone/submodule",
        &["--detach", "../../subwt"],
    ),
];

pub const WORKTREE_CONFIG: &[Case] = &[
    add(
        "W01-core-worktree-relative",
        "issue: core.worktree set (relative)",
        "r0\ngit -C r config core.worktree ..",
        "r",
        &["--detach", "../w"],
    ),
    add(
        "W02-separate-git-dir",
        "issue: core.worktree set (git init --separate-git-dir)",
        "git init -q -b main --separate-git-dir=repo.git wtree\n(cd wtree && tc init)",
        "wtree",
        &["--detach", "../w"],
    ),
    add(
        "W03-core-worktree-elsewhere",
        "issue: core.worktree naming another directory",
        "mkdir tree\ngit --git-dir=repo.git --work-tree=tree init -q -b main\ngit --git-dir=repo.git config core.worktree \"$PWD/tree\"\n(cd tree && echo x >x && git --git-dir=../repo.git add x && git --git-dir=../repo.git commit -q -m x)",
        "tree",
        &["--detach", "../w"],
    )
    .env(&[("GIT_DIR", "../repo.git")])
    .repo("repo.git"),
    add(
        "W04-worktree-config-copied",
        "builtin/worktree.c: config.worktree copied, comments and all",
        "r0\ncd r\ngit config extensions.worktreeConfig true\nprintf '# mine\\n[foo]\\n\\tbar = 1\\n[include]\\n\\tpath = nowhere\\n' >.git/config.worktree",
        "r",
        &["--detach", "../w"],
    ),
    add(
        "W05-worktree-config-without-extension",
        "builtin/worktree.c: config.worktree without extensions.worktreeConfig is not copied",
        "r0\nprintf '[foo]\\n\\tbar = 1\\n' >r/.git/config.worktree",
        "r",
        &["--detach", "../w"],
    ),
    add(
        "W06-shared-repository-group",
        "X15: core.sharedRepository=group with sparse patterns",
        "rde\ncd r\ngit config core.sharedRepository group\ngit sparse-checkout set --cone d",
        "r",
        &["../w"],
    ),
    add(
        "W07-hooks-path",
        "code: core.hooksPath naming a post-checkout hook",
        "r0\nposthook hk\nmv hk/hooks/post-checkout hk/post-checkout\ngit -C r config core.hooksPath \"$PWD/hk\"",
        "r",
        &["--detach", "../w"],
    ),
    add(
        "W08-info-exclude-not-copied",
        "builtin/worktree.c: info/exclude stays in the common dir",
        "r0\necho ignored >>r/.git/info/exclude\necho x >r/ignored",
        "r",
        &["--detach", "../w"],
    ),
    add(
        "W09-another-users-repository",
        "t0033: a repository another user owns (git's safe.directory refuses it)",
        "r0\nchown -R nobody r",
        "r",
        &["--detach", "../w"],
    )
    .refuses(),
];

/// Every group, by the name its test takes (`conformance_<name>`).
pub const GROUPS: &[(&str, &[Case])] = &[
    ("t2400_args", T2400_ARGS),
    ("t2400_orphan_dwim", T2400_ORPHAN_DWIM),
    ("t2400_remotes", T2400_REMOTES),
    ("bare", BARE),
    ("post_checkout_hook", POST_CHECKOUT_HOOK),
    ("t2401_t2407", T2401_T2407),
    ("sparse", SPARSE),
    ("t1092", T1092),
    ("formats", FORMATS),
    ("index_config", INDEX_CONFIG),
    ("partial_clone", PARTIAL_CLONE),
    ("submodules", SUBMODULES),
    ("worktree_config", WORKTREE_CONFIG),
];
