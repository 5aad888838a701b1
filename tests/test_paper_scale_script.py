"""benchmarks/paper_scale.sh checks its settings before it runs anything: one line, exit 2."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "paper_scale.sh"


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
@pytest.mark.parametrize(("env", "word"), [
    ({"LONG_STEPS": "1e4"}, "LONG_STEPS"),   # bash arithmetic once dropped the runs silently
    ({"LONG_STEPS": "abc"}, "LONG_STEPS"),
    ({"LIMIT_S": "x"}, "LIMIT_S"),           # once failed after starting the FCN run
    ({"DEVICE": "tpu"}, "DEVICE"),
    ({"ONLY": "fcn optimizers"}, "ONLY"),
    ({"ONLY": " "}, "ONLY"),                  # once ran nothing and exited 0
    ({"LONG_STEPS": "1234567890123"}, "LONG_STEPS"),  # over 12 digits
])
def test_bad_settings_stop_before_anything_runs(tmp_path, env, word):
    out = tmp_path / "out"
    r = subprocess.run(["bash", str(SCRIPT), str(out)], env={**os.environ, **env},
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and word in lines[0]
    assert not out.exists()
