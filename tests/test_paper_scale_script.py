"""benchmarks/paper_scale.sh checks its settings before it runs anything: one line, exit 2."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
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


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
@pytest.mark.parametrize("flag", ["--help", "-h"])
def test_help_prints_usage_and_exits_0(tmp_path, flag):
    # once: DEVICE=cuda failed on the CUDA check first; DEVICE=cpu took --help as OUT
    for device in ("cuda", "cpu"):
        r = subprocess.run(["bash", str(SCRIPT), flag], env={**os.environ, "DEVICE": device},
                           capture_output=True, text=True, timeout=60, cwd=tmp_path)
        assert r.returncode == 0 and r.stderr == ""
        assert r.stdout.startswith("Paper scale of the three trained experiments")
        assert "usage: benchmarks/paper_scale.sh [OUT]" in r.stdout and "LIMIT_S" in r.stdout
        assert "set -u" not in r.stdout and not (tmp_path / flag).exists()


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
@pytest.mark.parametrize("args", [["--out", "x"], ["a", "b"]])
def test_other_arguments_are_one_error_line(tmp_path, args):
    r = subprocess.run(["bash", str(SCRIPT), *args], capture_output=True, text=True, timeout=60,
                       cwd=tmp_path)
    assert r.returncode == 2 and r.stderr.count("\n") == 1
    assert r.stderr.startswith("error: the only argument is the output folder OUT")


# A stand-in interpreter: logs every command line, passes the summary's heredoc (`-`) to the
# real one, and writes the smallest outputs each step of the CNN part reads.
FAKE = r'''#!/usr/bin/env bash
echo "$*" >> "$FAKE_LOG"
case $1 in
    -c) exit 0 ;;
    -) exec "$REAL_PYTHON" "$@" ;;
    -m) while [[ $1 != --out ]]; do shift; done
        mkdir -p "$2" && echo '{"claims": []}' > "$2/results.json" ;;
    *s5_epochs.py) cat > "$3" <<JSON
{"mean_matrix_equals_run": true, "findings": {"first_window_most_distinct": true},
 "criteria": {"late_block_start": {"1.0": "epoch 18", "1.5": "epoch 13", "2.0": "epoch 11"},
              "trend_rho": {"mean": -0.86}},
 "per_seed": [{"late_block_start": {"1.0": "epoch 13", "1.5": "epoch 12", "2.0": "epoch 9"}}]}
JSON
        ;;
    *hypotheses_cnn.py) mkdir -p "$3/criterion" && cat > "$3/criterion/summary.json" <<JSON
{"criteria": {"paper_pair": {"over_floor": 0.41, "rank_among_consecutive": 3,
                             "n_consecutive": 9},
              "late_block_start": {"1.0": "700-799", "1.5": "600-699", "2.0": "500-599"},
              "trend_rho": {"mean": -0.5}}}
JSON
        ;;
esac
'''


def _run_with_fake_python(tmp_path, only):
    """paper_scale.sh OUT with ONLY=only and a stand-in interpreter that logs its arguments."""
    fake, log, out = tmp_path / "python", tmp_path / "log", tmp_path / "out"
    fake.write_text(FAKE)
    fake.chmod(0o755)
    env = {**os.environ, "PYTHON": str(fake), "FAKE_LOG": str(log), "DEVICE": "cpu",
           "ONLY": only, "REAL_PYTHON": sys.executable}
    r = subprocess.run(["bash", str(SCRIPT), str(out)], env=env, capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    return log, out


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_cnn_run_is_followed_by_s5_of_both_archs_and_the_700_readout(tmp_path):
    log, out = _run_with_fake_python(tmp_path, "cnn")
    bench = SCRIPT.parent
    runs = [line for line in log.read_text().splitlines() if not line.startswith(("-c", "- "))]
    assert runs == [
        f"-m conjugacy reproduce cnn --scale paper --device cpu --out {out}/cnn --no-progress",
        f"{bench}/s5_epochs.py {out}/cnn {out}/cnn_s5_lenet.json --arch lenet",
        f"{bench}/s5_epochs.py {out}/cnn {out}/cnn_s5_resnet20.json --arch resnet20",
        f"{bench}/hypotheses_cnn.py criterion {out}/cnn_700 --from {out}/cnn",
    ]
    timings = [line.split("\t")[:2] for line in (out / "timings.tsv").read_text().splitlines()]
    assert timings == [["experiment", "status"], ["cnn", "0"], ["cnn_s5_lenet", "0"],
                       ["cnn_s5_resnet20", "0"], ["cnn_700", "0"]]
    summary = (out / "summary.md").read_text()
    for arch in ("lenet", "resnet20"):
        assert (f"- fig. S5 {arch} (cnn_s5_{arch}.json): refit equals the run: True; first "
                "epoch most distinct: True; block from 1.0: epoch 18, 1.5: epoch 13, 2.0: "
                "epoch 11; per seed epoch 13, epoch 12, epoch 9; trend rho -0.86") in summary
    assert ("- ~700 iterations, LeNet (cnn_700/criterion/summary.json): d(600-699, 700-799) = "
            "0.41 floors, rank 3 of 9 consecutive; block from 1.0: 700-799, 1.5: 600-699, "
            "2.0: 500-599; trend rho -0.50") in summary


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_no_readouts_without_the_cnn_run(tmp_path):
    log, out = _run_with_fake_python(tmp_path, "fcn")
    assert "s5_epochs.py" not in log.read_text() and "hypotheses_cnn" not in log.read_text()
    assert "fig. S5" not in (out / "summary.md").read_text()
