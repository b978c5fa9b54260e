"""Installs unpacked wheels into a Python virtual environment with one `cowtree.Linker` pass:
the job of a package manager's installer, written in Python, as
crates/cowtree-link/examples/wheel_install.rs does it in Rust.

    python wheel_install.py [--mode clone|hardlink|copy] [--hash-all] VENV WHEEL_DIR...

Each WHEEL_DIR is an unpacked wheel, as a package manager's cache keeps them
(`<name>-<version>.dist-info/` and maybe `<name>-<version>.data/` at its top). Everything is
linked in one pass, each wheel's layout given as mapping rules (cowtree.Source), which the
Linker applies in its own threads:

    <name>.data/scripts/*            -> VENV/bin/ (a `#!python` first line is pointed at the
                                        venv's python, by its absolute path)
    <name>.data/data/*               -> VENV/
    <name>.data/headers/*            -> VENV/include/site/python3.X/<name>/
    <name>.data/purelib/*, platlib/* -> site-packages
    everything else                  -> site-packages
    <name>.dist-info/RECORD          -> left out: rewritten below

Then each package's `.dist-info` gets `INSTALLER` (`cowtree`) and a new `RECORD` listing
every file the pass wrote for it (path relative to site-packages, SHA-256, size), which is
what `pip uninstall` removes and `pip check` reads beside METADATA. The lines come from
`cowtree.record_lines`, given the package's part of the pass's record (`Record.by_source`):
as uv and pip do, the SHA-256 (and, in hardlink mode, the size) is the one the wheel's own
RECORD gives for the file each path came from, and only a file that is new or changed here
(a script whose `#!python` line is rewritten) is hashed; `--hash-all` has the Linker hash
every file as it links it instead. The record stays in Rust: no Python object is made per
installed file. Packages are finished on as many threads as there are cores (`record_lines`
releases the interpreter). Console-script launchers from `entry_points.txt` are not
generated: this installs files, it does not resolve or build.

It prints one line, in the Rust example's format, with the time from the start of the link to
the last RECORD written (bench/wheels.sh reads it).
"""

import os
import sys
import threading
import time

import cowtree


class Wheel:
    def __init__(self, path, site, include):
        self.dir = path
        self.dist_info = next(n for n in os.listdir(path) if n.endswith(".dist-info"))
        stem = self.dist_info[: -len(".dist-info")]
        self.name = stem.split("-")[0]
        self.data = f"{stem}.data"
        self.record = f"{self.dist_info}/RECORD"
        self.site = site
        self.include = include

    def source(self):
        """The wheel layout (the module doc's table) as rules; the first that applies wins."""
        d = self.data
        rules = [
            (f"{d}/scripts", "bin"),
            (f"{d}/data", ""),
            (f"{d}/headers", f"{self.include}/{self.name}"),
            (f"{d}/purelib", self.site),
            (f"{d}/platlib", self.site),
            (d, None),
            (self.record, None),
            ("", self.site),
        ]
        return cowtree.Source(self.dir, rules)

    def scripts(self):
        """Where the wheel's scripts were installed, relative to the venv (the `scripts`
        rule above): `bin/` and their path beneath `<name>.data/scripts/`."""
        top = os.path.join(self.dir, self.data, "scripts")
        found = []
        for dirpath, _, files in os.walk(top):
            rel = os.path.relpath(dirpath, top)
            for f in files:
                found.append(f"bin/{f}" if rel == "." else f"bin/{rel}/{f}")
        return found


def shebang(python):
    """The first line(s) of a script run by `python` (an absolute path), as installers write
    them (pip, through distlib): `#!PYTHON`, or, where the kernel would not run that line (a
    space in the path, or a line over 127 bytes, the limit of older kernels), a /bin/sh line
    that execs the interpreter on the script, which Python then reads past as a string."""
    path = os.fsencode(python)
    if len(path) + 2 <= 127 and not any(c in b" \t\n\r\f" for c in path):
        return b"#!" + path
    return b"#!/bin/sh\n'''exec' \"" + path + b"\" \"$0\" \"$@\"\n' '''"


def fix_shebang(script, first_line):
    """Points a `#!python` first line at the venv's python: a new file renamed over the linked
    one (whose inode the cache shares is never written). Returns whether it changed."""
    with open(script, "rb") as f:
        data = f.read()
    if not data.startswith(b"#!python"):
        return False
    tmp = script + ".cowtree-shebang"
    with open(tmp, "wb") as f:
        f.write(first_line + data[len(b"#!python") :])
    os.chmod(tmp, os.stat(script).st_mode & 0o7777)
    os.replace(tmp, script)
    return True


def finish(wheel, part, venv, first_line):
    """The package's scripts pointed at the venv's python, then its INSTALLER and RECORD."""
    changed = [p for p in wheel.scripts() if fix_shebang(os.path.join(venv, p), first_line)]
    lines = cowtree.record_lines(
        part,
        wheel.site,
        known=os.path.join(wheel.dir, wheel.record),
        changed=changed,
    )
    info = os.path.join(venv, wheel.site, wheel.dist_info)
    with open(os.path.join(info, "INSTALLER"), "w") as f:
        f.write("cowtree\n")
    with open(os.path.join(info, "RECORD"), "w", encoding="utf-8") as f:
        f.write(f"{lines}{wheel.dist_info}/INSTALLER,,\n{wheel.dist_info}/RECORD,,\n")


def finish_all(wheels, parts, venv, first_line):
    """`finish` for every package, on as many threads as cores, each taking the next package
    (`record_lines` runs with the interpreter released)."""
    jobs = iter(range(len(wheels)))
    lock = threading.Lock()
    errors = []

    def worker():
        while True:
            with lock:
                i = next(jobs, None)
            if i is None:
                return
            try:
                finish(wheels[i], parts[i], venv, first_line)
            except BaseException as e:  # raised again on the main thread
                errors.append(e)
                return

    cores = len(os.sched_getaffinity(0))
    threads = [threading.Thread(target=worker) for _ in range(min(cores, len(wheels)))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]


def main(argv):
    mode, hash_all = "clone", False
    while argv and argv[0].startswith("--"):
        if argv[0] == "--mode" and len(argv) > 1 and argv[1] in ("clone", "hardlink", "copy"):
            mode = argv[1]
            argv = argv[2:]
        elif argv[0] == "--hash-all":
            hash_all = True
            argv = argv[1:]
        else:
            sys.exit(f"wheel_install: unknown option {argv[0]}")
    if len(argv) < 2:
        sys.exit("usage: wheel_install.py [--mode clone|hardlink|copy] [--hash-all] VENV WHEEL_DIR...")
    venv, dirs = argv[0], argv[1:]
    pyver = next(n for n in os.listdir(os.path.join(venv, "lib")) if n.startswith("python3"))
    site = f"lib/{pyver}/site-packages"
    wheels = [Wheel(d, site, f"include/site/{pyver}") for d in dirs]

    started = time.perf_counter()
    linker = cowtree.Linker(
        mode,
        "overwrite",
        record=True,
        hash="sha256" if hash_all else None,
        # An installed file's times say when it was installed, as with pip and uv.
        preserve_times=False,
        # Sizes come from each wheel's RECORD, as the hashes do.
        hardlink_sizes=hash_all,
    )
    report = linker.link_trees([w.source() for w in wheels], venv)
    # Absolute, as installers write it: a script must run from any directory, whatever VENV
    # was given as; and without `..` in it.
    first_line = shebang(os.path.join(os.path.realpath(venv), "bin", "python"))
    finish_all(wheels, report.record.by_source(), venv, first_line)
    ms = (time.perf_counter() - started) * 1000
    print(
        f"installed {len(wheels)} packages: {report.files} files ({report.cloned} cloned, "
        f"{report.copied} copied, {report.hardlinked} hardlinked), "
        f"{len(report.collisions)} collisions, in {ms:.1f} ms"
    )
    for f in report.fallbacks:
        print(f"warning: {f.count} files copied: {f.description}")


if __name__ == "__main__":
    try:
        main(sys.argv[1:])
    except cowtree.LinkError as e:
        sys.exit(f"wheel_install: {e} (kind {e.kind}, path {e.path})")
