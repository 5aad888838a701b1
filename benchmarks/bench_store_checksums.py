"""Cost of the store's integrity checks: CRC-32C on every chunk, every chunk written.

Appends the trajectories of a typical fully connected width-study job (``fc2.weight`` of
``10 x width`` float32 values and a loss, recorded at every step in chunks of 64, one run per
replica) to a store in format 2 (zstd + crc32c, ``write_empty_chunks``, chunk existence checked on
read) and, in the same process and interleaved, to one whose arrays use zstd only (format 1's
encoding). Reports the median append and read times of each and their ratio, and the cost of
``verify`` (every chunk read and checked).

usage: python benchmarks/bench_store_checksums.py [--width 40] [--steps 1000] [--replicas 10]
                                                  [--repeats 5]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np


def one(path: Path, data: np.ndarray, loss: np.ndarray, chunk: int, checksums: bool
        ) -> tuple[float, float]:
    import conjugacy.store._write as store_mod  # where create_run looks up _codecs
    from conjugacy.store import TrajectoryStore

    real = store_mod._codecs
    if not checksums:
        from zarr.codecs import ZstdCodec

        store_mod._codecs = lambda: {"compressors": [ZstdCodec()],
                                     "config": {"write_empty_chunks": True}}
    try:
        t0 = time.perf_counter()
        with TrajectoryStore.open(path, "w") as st:
            for r in range(data.shape[0]):
                st.create_run(f"replica_{r}", {"fc2.weight": (data.shape[2:], "float32")},
                              chunk_steps=chunk)
                for a in range(0, data.shape[1], chunk):
                    b = min(a + chunk, data.shape[1])
                    st.append(f"replica_{r}", np.arange(a, b), {"fc2.weight": data[r, a:b]},
                              {"loss": loss[r, a:b]})
        t1 = time.perf_counter()
        with TrajectoryStore.open(path, "r") as st:
            out = st.read()
        t2 = time.perf_counter()
        assert np.array_equal(out.reshape(data.shape), data)
    finally:
        store_mod._codecs = real
    return t1 - t0, t2 - t1


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--width", type=int, default=40)
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--replicas", type=int, default=10)
    ap.add_argument("--chunk", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    data = rng.standard_normal((args.replicas, args.steps + 1, 10, args.width)).astype(np.float32)
    loss = rng.random((args.replicas, args.steps + 1))
    times: dict[bool, list[tuple[float, float]]] = {True: [], False: []}
    tmp = Path(tempfile.mkdtemp())
    try:
        one(tmp / "warm", data, loss, args.chunk, True)  # imports, caches
        for i in range(args.repeats):
            for checksums in (False, True):  # interleaved: drift in machine load hits both
                path = tmp / f"s{i}{checksums}"
                times[checksums].append(one(path, data, loss, args.chunk, checksums))
                shutil.rmtree(path)
        path = tmp / "v"
        one(path, data, loss, args.chunk, True)
        from conjugacy.store import TrajectoryStore

        t0 = time.perf_counter()
        with TrajectoryStore.open(path, "r") as st:
            rep = st.verify()
        t_verify = time.perf_counter() - t0
    finally:
        shutil.rmtree(tmp)
    med = {k: (statistics.median(a for a, _ in v), statistics.median(b for _, b in v))
           for k, v in times.items()}
    print(f"{args.replicas} runs x {args.steps + 1} steps of fc2.weight (10 x {args.width} "
          f"float32) + loss, chunks of {args.chunk}; median of {args.repeats}")
    print("| encoding | append (s) | read (s) |")
    print("|---|---|---|")
    print(f"| zstd (format 1) | {med[False][0]:.3f} | {med[False][1]:.3f} |")
    print(f"| zstd + crc32c (format 2) | {med[True][0]:.3f} | {med[True][1]:.3f} |")
    print(f"| ratio | {med[True][0] / med[False][0]:.3f} | {med[True][1] / med[False][1]:.3f} |")
    print(f"verify: {rep.chunks_checked} chunks in {t_verify:.3f} s, ok={rep.ok}")


if __name__ == "__main__":
    main()
