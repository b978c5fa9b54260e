"""`cowtree hook claude-code install` run through uvx and `pipx run`, with the real launchers
and the wheel under test: the command it writes into Claude Code's settings runs this cowtree
later, after the disposable environment it ran from is gone (uv: `uv cache clean`), and not a
bare `cowtree` that PATH would resolve to whatever is there then.

The wheel is found offline: scripts/test_python.sh exports COWTREE_TEST_WHEEL (its path) and
COWTREE_TEST_TOOLS_BIN (where uv, uvx and pipx are); the launchers are pointed at the wheel's
directory (UV_FIND_LINKS / PIP_FIND_LINKS) with no index."""

import json
import os
import shutil
import subprocess

import pytest


def _tools():
    whl = os.environ.get("COWTREE_TEST_WHEEL")
    tools = os.environ.get("COWTREE_TEST_TOOLS_BIN")
    if not whl or not tools:
        pytest.skip("COWTREE_TEST_WHEEL / COWTREE_TEST_TOOLS_BIN not set (run scripts/test.sh)")
    return whl, tools


def _repo(root):
    repo = os.path.join(root, "repo")
    os.makedirs(repo)
    env = dict(os.environ, GIT_CONFIG_NOSYSTEM="1", GIT_CONFIG_GLOBAL="/dev/null")
    for args in (["init", "-q", "-b", "main"], ["add", "-A"]):
        if args[0] == "add":
            with open(os.path.join(repo, "a.txt"), "w") as f:
                f.write("one\n")
            with open(os.path.join(repo, ".gitignore"), "w") as f:
                f.write(".claude/\n")
        subprocess.run(["git", *args], cwd=repo, env=env, check=True)
    subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "one"],
        cwd=repo, env=env, check=True)
    return repo


def _env(root, tools, whl, **more):
    home = os.path.join(root, "home")
    os.makedirs(home, exist_ok=True)
    env = {
        "HOME": home,
        # The launchers first, then the system: no other cowtree on PATH.
        "PATH": f"{tools}:/usr/bin:/bin",
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CONFIG_GLOBAL": "/dev/null",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@t",
        "XDG_STATE_HOME": os.path.join(home, "state"),
        "XDG_DATA_HOME": os.path.join(home, "data"),
        "UV_CACHE_DIR": os.path.join(root, "uv-cache"),
        "UV_FIND_LINKS": os.path.dirname(whl),
        "UV_OFFLINE": "1",
        "UV_NO_CONFIG": "1",
        "PIP_FIND_LINKS": os.path.dirname(whl),
        "PIP_NO_INDEX": "1",
        "PIPX_HOME": os.path.join(root, "pipx"),
        "PIPX_BIN_DIR": os.path.join(root, "pipx-bin"),
    }
    env.update(more)
    return env


def _installed_command(repo):
    with open(os.path.join(repo, ".claude", "settings.local.json")) as f:
        settings = json.load(f)
    return settings["hooks"]["WorktreeCreate"][0]["hooks"][0]["command"]


def _create(repo, env, command, name):
    """Runs the installed WorktreeCreate command through a shell, as Claude Code does."""
    out = subprocess.run(["sh", "-c", command], cwd=repo, env=env, capture_output=True,
                         input=json.dumps({"name": name, "cwd": repo}).encode())
    assert out.returncode == 0, out.stderr.decode()
    path = out.stdout.decode().strip()
    assert os.path.isfile(os.path.join(path, ".git")), path
    return path


def test_install_through_uvx_writes_the_command_that_makes_the_environment_again(ext4):
    whl, tools = _tools()
    repo = _repo(ext4)
    env = _env(ext4, tools, whl)
    out = subprocess.run(
        [os.path.join(tools, "uvx"), "--from", whl, "cowtree", "hook", "claude-code", "install",
         "--json"], cwd=repo, env=env, capture_output=True)
    assert out.returncode == 0, out.stderr.decode() + out.stdout.decode()
    said = json.loads(out.stdout)
    version = subprocess.run([os.path.join(tools, "uvx"), "--from", whl, "cowtree", "--version"],
                             env=env, capture_output=True, check=True).stdout.decode().split()[1]
    assert said["how"] == "uvx", said
    assert said["command"] == f"uvx --from cowtree=={version} cowtree", said
    command = _installed_command(repo)
    assert command == f"uvx --from cowtree=={version} cowtree hook claude-code worktree-create"
    # The environment it ran from goes; the hook runs all the same.
    subprocess.run([os.path.join(tools, "uv"), "cache", "clean", "-q"], env=env, check=True)
    assert not os.path.exists(os.path.join(env["UV_CACHE_DIR"], "archive-v0"))
    _create(repo, env, command, "after-clean")


def test_install_through_pipx_run_writes_the_command_that_makes_the_environment_again(ext4):
    whl, tools = _tools()
    if not os.path.exists(os.path.join(tools, "pipx")):
        pytest.skip("no pipx in the wheel tools")
    repo = _repo(ext4)
    env = _env(ext4, tools, whl)
    version = subprocess.run([os.path.join(tools, "uvx"), "--from", whl, "cowtree", "--version"],
                             env=env, capture_output=True, check=True).stdout.decode().split()[1]
    out = subprocess.run(
        [os.path.join(tools, "pipx"), "run", "--spec", whl, "cowtree", "hook", "claude-code",
         "install", "--json"], cwd=repo, env=env, capture_output=True)
    assert out.returncode == 0, out.stderr.decode() + out.stdout.decode()
    said = json.loads(out.stdout)
    assert said["how"] == "pipx-run", said
    assert said["command"] == f"pipx run --spec cowtree=={version} cowtree", said
    command = _installed_command(repo)
    shutil.rmtree(os.path.join(env["PIPX_HOME"], ".cache"))
    _create(repo, env, command, "after-expiry")
