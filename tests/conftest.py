import importlib.util
import os
import sys
from pathlib import Path

import pytest

# Keep BLAS single-threaded in tests: results are then bit-reproducible and the suite shares the
# machine's cores predictably.
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")


BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.fixture(scope="module")
def load_benchmark():
    """``load_benchmark(name)``: ``benchmarks/<name>.py`` imported as the module ``name`` (kept
    in ``sys.modules`` while the test module runs: dataclasses look their module up there)."""
    loaded = []

    def load(name: str):
        spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
        loaded.append(name)
        return module

    yield load
    for name in loaded:
        sys.modules.pop(name, None)
