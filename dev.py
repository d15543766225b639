#!/usr/bin/env python3
"""Set up genexp's own environment (.venv, pinned by constraints.txt) when needed, then run it.

    python3 dev.py run model=classifier     # = python -m genexp model=classifier, inside .venv
    python3 dev.py test [pytest args]       # = pytest, inside .venv

Needs only Python >= 3.10. Re-installs when pyproject.toml or constraints.txt change.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
PY = VENV / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
STAMP = VENV / ".genexp-installed"
TORCH = "torch==2.13.0"  # also pinned in constraints.txt; installed first so nothing pulls another build


def _digest() -> str:
    return hashlib.sha256(
        b"".join((ROOT / f).read_bytes() for f in ("pyproject.toml", "setup.py", "constraints.txt"))
    ).hexdigest()


def _pip(*args: str) -> None:
    subprocess.check_call([str(PY), "-m", "pip", "install", "--disable-pip-version-check", "-q", *args], cwd=ROOT)


def ensure_env() -> None:
    if STAMP.is_file() and STAMP.read_text() == _digest():
        return
    if not PY.exists():
        print(f"dev.py: creating {VENV}", flush=True)
        subprocess.check_call([sys.executable, "-m", "venv", str(VENV)])
    print("dev.py: installing genexp and its pinned dependencies (first time only)", flush=True)
    _pip(TORCH)
    _pip("-c", "constraints.txt", "-e", ".[dev,sweeps]")
    STAMP.write_text(_digest())


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in ("run", "test", "setup"):
        print(__doc__, file=sys.stderr)
        return 2
    ensure_env()
    cmd = {"run": [str(PY), "-m", "genexp"], "test": [str(PY), "-m", "pytest"], "setup": None}[argv[0]]
    # run: in the caller's directory, like `python -m genexp` (outputs/ lands where you are); test: in the repo
    return subprocess.call(cmd + argv[1:], cwd=None if argv[0] == "run" else ROOT) if cmd else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
