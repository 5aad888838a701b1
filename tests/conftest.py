import os

# Keep BLAS single-threaded in tests: results are then bit-reproducible and the suite shares the
# machine's cores predictably.
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")
