"""examples/wheel_install.py installs unpacked wheels into a venv on XFS in one Linker pass,
and pip accepts the result: `pip check` finds every requirement, a script's `#!python` runs
the venv's python, and `pip uninstall` removes every file the install wrote."""

import base64
import hashlib
import os
import subprocess
import sys
from pathlib import Path

from conftest import all_shared

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "wheel_install.py"


def unpacked_wheel(root, name, version, files, requires=()):
    """An unpacked wheel as an installer's cache keeps it, with a correct RECORD."""
    d = Path(root, f"{name}-{version}")
    info = f"{name}-{version}.dist-info"
    meta = [f"Metadata-Version: 2.1", f"Name: {name}", f"Version: {version}"]
    meta += [f"Requires-Dist: {r}" for r in requires]
    files = dict(files)
    files[f"{info}/METADATA"] = ("\n".join(meta) + "\n").encode()
    files[f"{info}/WHEEL"] = b"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
    record = []
    for path, data in sorted(files.items()):
        p = d / path
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
        if path.endswith((".sh", "-tool")):
            p.chmod(0o755)
        h = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record.append(f"{path},sha256={h},{len(data)}")
    record.append(f"{info}/RECORD,,")
    (d / info / "RECORD").write_text("\n".join(record) + "\n")
    return d


def test_wheel_install_example_gives_a_venv_pip_checks_and_uninstalls(xfs):
    cache = Path(xfs, "cache")
    alpha = unpacked_wheel(
        cache,
        "alpha",
        "1.0",
        {
            "alpha/__init__.py": b"VALUE = 41 * 1024 * [0]\n" * 200,
            "alpha-1.0.data/scripts/alpha-tool": b"#!python\nimport alpha, sys\nprint(sys.prefix)\n",
            "alpha-1.0.data/data/share/alpha/notes.txt": b"notes\n",
        },
        requires=["beta>=2"],
    )
    beta = unpacked_wheel(cache, "beta", "2.0", {"beta.py": b"B = 2\n" * 5000})
    venv = Path(xfs, "venv")
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    site = Path(subprocess.check_output([str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"], text=True).strip())
    before = {p for p in venv.rglob("*")}

    out = subprocess.run(
        [sys.executable, str(EXAMPLE), str(venv), str(alpha), str(beta)],
        check=True, capture_output=True, text=True,
    ).stdout
    assert out.startswith("installed 2 packages: 8 files (8 cloned, 0 copied"), out
    assert all_shared(site / "beta.py")
    assert (site / "alpha-1.0.dist-info" / "INSTALLER").read_text() == "cowtree\n"
    assert not (site / "alpha-1.0.data").exists()
    assert (venv / "share/alpha/notes.txt").read_bytes() == b"notes\n"
    tool = venv / "bin" / "alpha-tool"
    assert tool.read_bytes().startswith(b"#!" + os.fsencode(python) + b"\n")
    assert subprocess.check_output([str(tool)], text=True).strip() == str(venv)

    check = subprocess.run([str(python), "-m", "pip", "check"], capture_output=True, text=True)
    assert check.returncode == 0 and "No broken requirements found" in check.stdout, check
    # Each RECORD line's hash matches the installed file.
    for line in (site / "alpha-1.0.dist-info" / "RECORD").read_text().splitlines():
        path, h, size = line.rsplit(",", 2)
        if h:
            data = (site / path).read_bytes()
            assert h == "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode(), path
            assert int(size) == len(data), path

    subprocess.run([str(python), "-m", "pip", "uninstall", "-q", "-y", "alpha", "beta"], check=True)
    left = {p for p in venv.rglob("*")} - before
    # pip leaves directories it did not list (share/alpha); no file of either package stays.
    assert not [p for p in left if not p.is_dir()], sorted(left)
    assert not tool.exists() and not (site / "beta.py").exists()
