#!/usr/bin/env python3
"""Runs the test binaries `cargo test --no-run --message-format=json` built, LANES at a time.

scripts/test.sh calls it after the build: `cargo test` runs one binary after another, and most
of this project's binaries wait on disks, servers and child processes more than they compute
(a whole run used 1.1 of 2 cores), so two binaries at a time finish sooner. Each binary runs as
`cargo test` would run it (in its package's directory, with cargo's CARGO_* variables, the
arguments after `--`); its whole output is printed when it ends, under cargo's own
"Running SRC (EXE)" line, so the log reads as cargo's. The heaviest binaries start first.

    test_lanes.py --lanes N --json BUILD.json [-- TEST ARGS...]

Exits 1 when a binary failed (naming each), 130 on an interrupt (every binary is stopped).
Tests that must be alone on a machine-wide resource take a lock for it (cowtree-testutil's
`small_alone`, a file lock), so they stay correct across binaries.
"""

import argparse
import json
import os
import signal
import subprocess
import sys
import threading
import time

# The binaries that took longest in a whole run (scripts/test.sh's "time per test binary"):
# started first, so that no long one starts last.
HEAVY = ["scale", "git", "cli", "remote", "hardening", "remote_tests", "crash", "store_tests",
         "link_tests", "worktree_tests"]


def binaries(build_json, workspace_root):
    """(name, src, exe, package dir, package name, version) of every test executable built."""
    out, seen = [], set()
    with open(build_json, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if not line.startswith("{"):
                continue
            m = json.loads(line)
            if m.get("reason") != "compiler-artifact" or not m.get("executable"):
                continue
            if not m.get("profile", {}).get("test"):
                continue
            exe = m["executable"]
            if exe in seen:
                continue
            seen.add(exe)
            pkg_dir = os.path.dirname(m["manifest_path"])
            src = os.path.relpath(m["target"]["src_path"], pkg_dir)
            kind = m["target"]["kind"]
            if any(k in ("lib", "bin", "rlib", "cdylib", "proc-macro") for k in kind):
                src = "unittests " + src
            # package_id: "path+file:///dir#name@version" or "...#version"
            pid = m.get("package_id", "")
            frag = pid.rsplit("#", 1)[-1]
            name, _, version = frag.partition("@")
            if not version:
                name, version = os.path.basename(pkg_dir), frag
            out.append({
                "name": m["target"]["name"],
                "src": src,
                "exe": exe,
                "dir": pkg_dir,
                "package": name,
                "version": version,
                "rel": os.path.relpath(exe, workspace_root),
            })
    return out


def order(bins):
    rank = {n: i for i, n in enumerate(HEAVY)}
    return sorted(bins, key=lambda b: rank.get(b["name"], len(HEAVY)))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lanes", type=int, default=2)
    ap.add_argument("--json", required=True)
    ap.add_argument("--root", default=os.getcwd())
    ap.add_argument("args", nargs="*")
    a = ap.parse_args()
    if a.lanes < 1:
        sys.exit("test_lanes: --lanes must be 1 or more")
    bins = order(binaries(a.json, a.root))
    if not bins:
        sys.exit("test_lanes: the build listed no test executable")
    sysroot = subprocess.run(["rustc", "--print", "sysroot"], capture_output=True, text=True,
                             check=True).stdout.strip()
    lock = threading.Lock()
    todo = list(bins)
    failed, running = [], {}
    stopping = threading.Event()

    def run(b):
        env = dict(os.environ)
        deps = os.path.dirname(b["exe"])
        env.update({
            "CARGO_MANIFEST_DIR": b["dir"],
            "CARGO_PKG_NAME": b["package"],
            "CARGO_PKG_VERSION": b["version"],
            "CARGO_CRATE_NAME": b["name"].replace("-", "_"),
            "LD_LIBRARY_PATH": os.pathsep.join(
                p for p in [deps, os.path.join(sysroot, "lib"), env.get("LD_LIBRARY_PATH", "")]
                if p),
        })
        started = time.monotonic()
        p = subprocess.Popen([b["exe"], *a.args], cwd=b["dir"], env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        with lock:
            running[p.pid] = p
        out, _ = p.communicate()
        with lock:
            running.pop(p.pid, None)
            took = time.monotonic() - started
            sys.stdout.write(f"     Running {b['src']} ({b['rel']})\n")
            sys.stdout.flush()
            sys.stdout.buffer.write(out)
            status = "ok" if p.returncode == 0 else f"FAILED (exit {p.returncode})"
            sys.stdout.write(f"test_lanes: {b['name']}: {status}, {took:.1f} s of wall time\n\n")
            sys.stdout.flush()
            if p.returncode != 0 and not stopping.is_set():
                failed.append(b["rel"])

    def lane():
        while not stopping.is_set():
            with lock:
                if not todo:
                    return
                b = todo.pop(0)
            run(b)

    def stop(signum, _frame):
        stopping.set()
        with lock:
            for p in running.values():
                p.send_signal(signal.SIGINT if signum == signal.SIGINT else signal.SIGTERM)

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    threads = [threading.Thread(target=lane, daemon=True) for _ in range(min(a.lanes, len(bins)))]
    for t in threads:
        t.start()
    for t in threads:
        while t.is_alive():
            t.join(0.5)
    if stopping.is_set():
        print("test_lanes: interrupted; the binaries still running were stopped", file=sys.stderr)
        sys.exit(130)
    if failed:
        print(f"test_lanes: {len(failed)} test binar{'y' if len(failed) == 1 else 'ies'} "
              f"failed: {' '.join(failed)}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
