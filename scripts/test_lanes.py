#!/usr/bin/env python3
"""Runs the test binaries `cargo test --no-run --message-format=json` built, LANES at a time.

scripts/test.sh calls it after the build: `cargo test` runs one binary after another, and a
whole run used 1.35 of 2 cores; two binaries at a time used 1.6 and cut the test binaries from
523 to 451 s (fresh clones on 2 cores, 2026-11-27). Each binary runs
in its package's directory, as cargo runs it, with CARGO_MANIFEST_DIR, CARGO_PKG_NAME and
CARGO_PKG_VERSION set and the arguments after `--`; "started NAME" is printed when it starts,
its output goes to LOGS/NAME.log as it runs and is printed whole when it ends, under cargo's
own "Running SRC (EXE)" line, so the log reads as cargo's. The heaviest binaries start first.

    test_lanes.py --lanes N --json BUILD.json --logs DIR [-- TEST ARGS...]

Exits 1 when a binary failed or could not be run (naming each), 130 on SIGINT and 143 on
SIGTERM (every running binary and what it started is stopped: each runs in a session of its
own). Tests that must be alone on a machine-wide resource take a lock for it
(cowtree-testutil's `small_alone`, a file lock), so they stay correct across binaries.
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
    ap.add_argument("--logs", required=True, help="directory for each binary's output")
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
    failed, done, running = [], set(), {}
    stopping = threading.Event()
    stop_signal = [0]
    os.makedirs(a.logs, exist_ok=True)

    def env_of(b):
        env = dict(os.environ)
        deps = os.path.dirname(b["exe"])
        env.update({
            "CARGO_MANIFEST_DIR": b["dir"],
            "CARGO_PKG_NAME": b["package"],
            "CARGO_PKG_VERSION": b["version"],
            "LD_LIBRARY_PATH": os.pathsep.join(
                p for p in [deps, os.path.join(sysroot, "lib"), env.get("LD_LIBRARY_PATH", "")]
                if p),
        })
        return env

    def say(text):
        sys.stdout.write(text)
        sys.stdout.flush()

    def run(b, log_path):
        started = time.monotonic()
        with open(log_path, "wb") as log:
            with lock:
                if stopping.is_set():
                    return None
                p = subprocess.Popen([b["exe"], *a.args], cwd=b["dir"], env=env_of(b),
                                     stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                     start_new_session=True)
                running[p.pid] = p
                say(f"test_lanes: started {b['name']}\n")
            # wait4, not p.wait(): its rusage is the CPU of the binary and of every process it
            # started and waited for (the cowtree and git commands of the tests).
            _, wstatus, usage = os.wait4(p.pid, 0)
            p.returncode = code = os.waitstatus_to_exitcode(wstatus)
        with lock:
            running.pop(p.pid, None)
        return code, time.monotonic() - started, usage.ru_utime + usage.ru_stime

    def one(b, n):
        log_path = os.path.join(a.logs, f"{n:02d}-{b['name']}.log")
        try:
            r = run(b, log_path)
        except Exception as e:  # a binary that cannot be started fails the run, by name
            r = ("error", e)
        if r is None:
            return
        with lock:
            done.add(b["exe"])
            say(f"     Running {b['src']} ({b['rel']})\n")
            try:
                with open(log_path, "rb") as f:
                    sys.stdout.buffer.write(f.read())
            except OSError:
                pass
            if r[0] == "error":
                status, ok = f"FAILED (could not run it: {r[1]})", False
            else:
                code, took, cpu = r
                ok = code == 0
                status = ("ok" if ok else f"FAILED (exit {code})") + \
                    f", {took:.1f} s of wall time, {cpu:.1f} s of CPU"
            say(f"test_lanes: {b['name']}: {status}\n\n")
            if not ok and not stopping.is_set():
                failed.append(b["rel"])

    def lane():
        while True:
            with lock:
                if stopping.is_set() or not todo:
                    return
                n = len(bins) - len(todo)
                b = todo.pop(0)
            one(b, n)

    def stop(signum, _frame):
        stopping.set()
        stop_signal[0] = signum
        with lock:
            for p in running.values():
                try:
                    os.killpg(p.pid, signum)
                except ProcessLookupError:
                    pass

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
        sys.exit(130 if stop_signal[0] == signal.SIGINT else 143)
    never = [b["rel"] for b in bins if b["exe"] not in done]
    if never:
        print(f"test_lanes: never ran: {' '.join(never)}", file=sys.stderr)
        failed.extend(never)
    if failed:
        print(f"test_lanes: {len(failed)} test binar{'y' if len(failed) == 1 else 'ies'} "
              f"failed: {' '.join(failed)}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
