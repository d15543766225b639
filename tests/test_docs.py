"""The README's model table is generated from the studies' result files, never typed by hand."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import ROOT


def test_readme_model_table_is_up_to_date():
    out = subprocess.run(
        [sys.executable, str(ROOT / "experiments" / "make_readme.py"), "--check"], capture_output=True, text=True
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-1000:]
