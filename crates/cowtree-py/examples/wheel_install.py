"""Installs unpacked wheels into a Python virtual environment with one `cowtree.Linker` pass:
the job of a package manager's installer, written in Python, as
crates/cowtree-link/examples/wheel_install.rs does it in Rust.

    python wheel_install.py [--mode clone|hardlink|copy] [--hash-all] VENV WHEEL_DIR...

Each WHEEL_DIR is an unpacked wheel, as a package manager's cache keeps them
(`<name>-<version>.dist-info/` and maybe `<name>-<version>.data/` at its top). Everything is
linked in one pass, each wheel's layout given as mapping rules (cowtree.Source), which the
Linker applies in its own threads:

    <name>.data/scripts/*            -> VENV/bin/ (a `#!python` first line is pointed at the
                                        venv's python)
    <name>.data/data/*               -> VENV/
    <name>.data/headers/*            -> VENV/include/site/python3.X/<name>/
    <name>.data/purelib/*, platlib/* -> site-packages
    everything else                  -> site-packages
    <name>.dist-info/RECORD          -> left out: rewritten below

Then each package's `.dist-info` gets `INSTALLER` (`cowtree`) and a new `RECORD` listing
every file the pass wrote for it (path relative to site-packages, SHA-256, size), which is
what `pip uninstall` removes and `pip check` reads beside METADATA. As uv and pip do, the
SHA-256 (and, in hardlink mode, the size) comes from the wheel's own RECORD; only a file
that is new or changed here (a rewritten script) is hashed; `--hash-all` has the Linker hash
every file as it links it instead. Console-script launchers from `entry_points.txt` are not
generated: this installs files, it does not resolve or build.

It prints one line, in the Rust example's format, with the time from the start of the link to
the last RECORD written (bench/wheels.sh reads it).
"""

import base64
import hashlib
import os
import sys
import time

import cowtree


def b64(digest):
    """URL-safe base64 without padding, as RECORD files write hashes."""
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


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

    def known(self):
        """{path in the wheel: (sha256 as in RECORD, size as text or "")} from its RECORD."""
        known = {}
        with open(os.path.join(self.dir, self.record), encoding="utf-8") as f:
            text = f.read()
        for line in text.splitlines():
            # A path may itself hold commas (then it is quoted); the hash and size do not.
            parts = line.rsplit(",", 2)
            if len(parts) == 3 and parts[1][:7] == "sha256=":
                p = parts[0]
                if p[:1] == '"':
                    p = p.strip('"')
                known[p] = (parts[1][7:], parts[2].strip())
        return known


def record_path(path, site):
    """`path` (relative to the venv) as RECORD writes it: relative to site-packages."""
    prefix = site + "/"
    if path.startswith(prefix):
        return path[len(prefix):]
    return "../" * len(site.split("/")) + path


def fix_shebang(script, python):
    """Points a `#!python` first line at the venv's python: a new file renamed over the linked
    one (whose inode the cache shares is never written). Returns (sha256, size) or None."""
    with open(script, "rb") as f:
        data = f.read()
    if not data.startswith(b"#!python"):
        return None
    new = b"#!" + os.fsencode(python) + data[len(b"#!python"):]
    tmp = script + ".cowtree-shebang"
    with open(tmp, "wb") as f:
        f.write(new)
    os.chmod(tmp, os.stat(script).st_mode & 0o7777)
    os.replace(tmp, script)
    return hashlib.sha256(new).digest(), len(new)


def write_record(wheel, entries, venv, python):
    info = os.path.join(venv, wheel.site, wheel.dist_info)
    known = wheel.known()
    prefix = wheel.site + "/"
    cut = len(prefix)
    lines = []
    append = lines.append
    for e in entries:
        path = e.path
        digest = e.hash
        h = b64(digest) if digest is not None else None
        size = e.size
        if e.kind == "file":
            if h is None or size is None:
                listed = known.get(e.from_path)
                if h is None:
                    if listed is not None:
                        h = listed[0]
                    else:
                        with open(os.path.join(venv, path), "rb") as f:
                            h = b64(hashlib.sha256(f.read()).digest())
                if size is None:
                    size = listed[1] if listed is not None and listed[1] else None
                    if size is None:
                        size = os.lstat(os.path.join(venv, path)).st_size
            if path[:4] == "bin/":
                fixed = fix_shebang(os.path.join(venv, path), python)
                if fixed is not None:
                    h, size = b64(fixed[0]), fixed[1]
        rel = path[cut:] if path[:cut] == prefix else record_path(path, wheel.site)
        append(f"{rel},sha256={h},{size}" if h is not None else f"{rel},,")
    append(f"{wheel.dist_info}/INSTALLER,,")
    append(f"{wheel.dist_info}/RECORD,,")
    with open(os.path.join(info, "INSTALLER"), "w") as f:
        f.write("cowtree\n")
    with open(os.path.join(info, "RECORD"), "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")


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
    by_source = [[] for _ in wheels]
    for e in report.record:
        if e.kind != "dir":
            by_source[e.source].append(e)
    python = os.path.join(venv, "bin", "python")
    for w, entries in zip(wheels, by_source):
        write_record(w, entries, venv, python)
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
