#!/usr/bin/env bash
# Paper scale of the three trained experiments of Redman et al. (NeurIPS 2024) on one GPU, with
# the wall time of each, in one prepared run (issue 24, item 4):
#
#   fcn       sec. 4.2, fig. 3, S2, S4: 25 seeds x 3 widths x 10 replicas x 1,000 SGD steps
#   grokking  sec. 4.4, fig. 5, S6:     20 seeds x 2 regimes x 10 runs x 100 steps (S6: 200),
#                                        evaluated every step, plus fig. 5A/B (one long run per
#                                        regime, LONG_STEPS steps, log-spaced evaluations)
#   cnn       sec. 4.3, fig. 4, S5:     3 seeds x 10 replicas, LeNet and ResNet-20, 20 epochs;
#             then, from its stores, fig. S5 per seed of each network (benchmarks/s5_epochs.py
#             --arch lenet|resnet20 -> OUT/cnn_s5_<arch>.json) and the readings of "windows
#             similar after ~700 iterations" on LeNet's windows (benchmarks/hypotheses_cnn.py
#             criterion --from OUT/cnn -> OUT/cnn_700/criterion/summary.json)
#
# usage: benchmarks/paper_scale.sh [OUT]          (default OUT: results/paper_scale)
#        benchmarks/paper_scale.sh -h | --help    (this text)
#
# Environment:
#   PYTHON      the interpreter with conjugacy installed (default: .venv/bin/python, else python3)
#   DEVICE      cuda (default) or cpu
#   DATA_DIR    a folder with the MNIST IDX files and/or the CIFAR-10 binary batches; without it
#               FCN and the CNN study use the bundled 5k MNIST sample and ResNet-20 trains on
#               the MNIST images padded to 32x32x3 (the results say so)
#   ONLY        space-separated subset of "fcn grokking cnn" (default: all three)
#   LONG_STEPS  steps of the fig. 5A/B runs (default 20000: on the CPU the quick split's test
#               accuracy was 0.16 after 5,000 steps, so the jump comes later; 0 skips them)
#   LIMIT_S     wall-clock limit of each experiment in seconds (default 0: none); a stopped
#               experiment resumes from its store when the script is run again with the same OUT
#
# Writes OUT/<experiment>/ (results.json, figures, stores; a rerun resumes finished jobs),
# OUT/<experiment>.log, and OUT/timings.tsv (experiment, exit status, wall seconds, device,
# command). OUT/summary.md lists every claim of each results.json with holds / does not hold,
# and for the CNN study the S5 and 700-iteration readouts (numbers, no verdict: the epoch or
# window where the spectra settle within 1, 1.5 and 2 between-seed floors, mean and per seed).
# Exit status: 0 when every experiment finished, else the last failing status.
set -u -o pipefail

if [[ ${1:-} == -h || ${1:-} == --help ]]; then
    sed -n '2,/^set -u/p' "$0" | sed '$d' | sed -E 's/^# ?//'
    exit 0
fi
if (( $# > 1 )) || [[ ${1:-} == -* ]]; then
    echo "error: the only argument is the output folder OUT (or -h / --help), got '$*'" >&2; exit 2
fi
OUT=${1:-results/paper_scale}
DEVICE=${DEVICE:-cuda}
ONLY=${ONLY:-fcn grokking cnn}
LONG_STEPS=${LONG_STEPS:-20000}
LIMIT_S=${LIMIT_S:-0}
if [[ -z ${PYTHON:-} ]]; then
    if [[ -x .venv/bin/python ]]; then PYTHON=.venv/bin/python; else PYTHON=python3; fi
fi
case $DEVICE in cuda|cpu) ;; *) echo "error: DEVICE must be cuda or cpu, got '$DEVICE'" >&2; exit 2;; esac
read -r -a only_names <<< "$ONLY"
if (( ${#only_names[@]} == 0 )); then
    echo "error: ONLY names no experiment; give a subset of 'fcn grokking cnn' or leave it unset" >&2; exit 2
fi
for name in "${only_names[@]}"; do
    case $name in fcn|grokking|cnn) ;;
        *) echo "error: ONLY may name fcn, grokking and cnn, got '$name'" >&2; exit 2 ;;
    esac
done
for var in LONG_STEPS LIMIT_S; do
    if [[ ! ${!var} =~ ^[0-9]+$ ]]; then
        echo "error: $var must be a whole number of steps/seconds (0 to skip), got '${!var}'" >&2; exit 2
    fi
    value=${!var}
    if (( ${#value} > 12 )); then
        echo "error: $var must have at most 12 digits, got '$value'" >&2; exit 2
    fi
    printf -v "$var" '%d' "$((10#$value))"  # base 10: '08' is 8, not an octal error
done
if [[ -n ${DATA_DIR:-} && ! -d $DATA_DIR ]]; then
    echo "error: DATA_DIR '$DATA_DIR' is not a folder" >&2; exit 2
fi
if ! "$PYTHON" -c "import conjugacy, torch" 2>/dev/null; then
    echo "error: $PYTHON cannot import conjugacy and torch; set PYTHON to the project's interpreter" >&2
    exit 2
fi
if [[ $DEVICE == cuda ]] && ! "$PYTHON" -c "import torch, sys; sys.exit(not torch.cuda.is_available())"; then
    echo "error: DEVICE=cuda but torch sees no CUDA device; set DEVICE=cpu to run on the CPU" >&2
    exit 2
fi
mkdir -p "$OUT"
TIMINGS=$OUT/timings.tsv
[[ -f $TIMINGS ]] || printf 'experiment\tstatus\twall_s\tdevice\tcommand\n' > "$TIMINGS"

has_mnist() { [[ -n ${DATA_DIR:-} ]] && compgen -G "$DATA_DIR/train-images*idx3-ubyte*" > /dev/null; }

fcn_args=(reproduce fcn --scale paper --device "$DEVICE" --out "$OUT/fcn" --no-progress)
if has_mnist; then fcn_args+=(--data mnist --data-dir "$DATA_DIR"); fi
grok_args=(reproduce grokking --scale paper --device "$DEVICE" --out "$OUT/grokking" --no-progress)
if (( LONG_STEPS > 0 )); then grok_args+=(--long-steps "$LONG_STEPS"); fi
cnn_args=(reproduce cnn --scale paper --device "$DEVICE" --out "$OUT/cnn" --no-progress)
if [[ -n ${DATA_DIR:-} ]]; then
    if has_mnist; then cnn_args+=(--data mnist); fi
    cnn_args+=(--data-dir "$DATA_DIR")
fi

status=0
run_one() {  # name, then the command (the interpreter and its arguments)
    local name=$1; shift
    local start end rc
    echo "== $name: $*" | tee -a "$OUT/$name.log"
    start=$(date +%s.%N)
    if (( LIMIT_S > 0 )); then
        timeout --signal=TERM "$LIMIT_S" "$@" >> "$OUT/$name.log" 2>&1
    else
        "$@" >> "$OUT/$name.log" 2>&1
    fi
    rc=$?
    end=$(date +%s.%N)
    local wall
    wall=$(awk -v a="$start" -v b="$end" 'BEGIN { printf "%.1f", b - a }')
    printf '%s\t%s\t%s\t%s\t%s\n' "$name" "$rc" "$wall" "$DEVICE" "${*:2}" >> "$TIMINGS"
    echo "== $name: exit $rc after $wall s" | tee -a "$OUT/$name.log"
    (( rc == 0 )) || status=$rc
}

for name in "${only_names[@]}"; do
    case $name in
        fcn) run_one fcn "$PYTHON" -m conjugacy "${fcn_args[@]}" ;;
        grokking) run_one grokking "$PYTHON" -m conjugacy "${grok_args[@]}" ;;
        cnn) run_one cnn "$PYTHON" -m conjugacy "${cnn_args[@]}" ;;
    esac
done

# The CNN readouts of fig. S5 (both networks) and of the 700-iteration claim, from its stores.
HERE=$(dirname "$0")
if [[ " ${only_names[*]} " == *" cnn "* && -f $OUT/cnn/results.json ]]; then
    # a rerun into the same OUT must not report an earlier run's readouts if this one fails
    rm -f "$OUT/cnn_s5_lenet.json" "$OUT/cnn_s5_resnet20.json" "$OUT/cnn_700/criterion/summary.json"
    for arch in lenet resnet20; do
        run_one "cnn_s5_$arch" "$PYTHON" "$HERE/s5_epochs.py" "$OUT/cnn" \
            "$OUT/cnn_s5_$arch.json" --arch "$arch"
    done
    run_one cnn_700 "$PYTHON" "$HERE/hypotheses_cnn.py" criterion "$OUT/cnn_700" --from "$OUT/cnn"
fi

# One table of the claims each experiment decided on its numbers.
"$PYTHON" - "$OUT" "${only_names[@]}" > "$OUT/summary.md" <<'PY'
import json, sys
from pathlib import Path

out = Path(sys.argv[1])
print("# Paper scale: claims decided on the numbers\n")
for line in (out / "timings.tsv").read_text().splitlines()[1:]:
    name, rc, wall, device, _ = line.split("\t", 4)
    print(f"- {name}: exit {rc}, {float(wall):.0f} s wall on {device}")
for name in sys.argv[2:]:
    path = out / name / "results.json"
    print(f"\n## {name}\n")
    if not path.is_file():
        print("no results.json (see the log)")
        continue
    doc = json.loads(path.read_text())
    print("| claim | holds | evidence |\n|---|---|---|")
    for c in doc.get("claims", []):
        holds = {True: "holds", False: "does not hold", None: "undecided"}[c["holds"]]
        claim, evidence = (str(c[k]).replace("|", "/") for k in ("claim", "evidence"))
        print(f"| {claim} | {holds} | {evidence} |")
    if name != "cnn":
        continue
    print("\nReadouts (no verdict): the first epoch/window of the lower-right block of spectra "
          "mutually within k between-seed floors (k = 1, 1.5, 2), mean matrix; per seed.\n")
    for arch in ("lenet", "resnet20"):
        path = out / f"cnn_s5_{arch}.json"
        if not path.is_file():
            print(f"- fig. S5 {arch}: no {path.name} (see cnn_s5_{arch}.log)")
            continue
        s5 = json.loads(path.read_text())
        crit = s5["criteria"]
        blocks = ", ".join(f"{k}: {v}" for k, v in crit["late_block_start"].items())
        seeds = "; ".join(", ".join(s["late_block_start"].values()) for s in s5["per_seed"])
        print(f"- fig. S5 {arch} ({path.name}): refit equals the run: "
              f"{s5['mean_matrix_equals_run']}; first epoch most distinct: "
              f"{s5['findings'].get('first_window_most_distinct')}; block from {blocks}; "
              f"per seed {seeds}; trend rho {crit['trend_rho']['mean']:.2f}")
    path = out / "cnn_700" / "criterion" / "summary.json"
    if not path.is_file():
        print("- ~700 iterations: no cnn_700/criterion/summary.json (see cnn_700.log)")
    else:
        crit = json.loads(path.read_text())["criteria"]
        pair = crit.get("paper_pair") or {}
        blocks = ", ".join(f"{k}: {v}" for k, v in crit["late_block_start"].items())
        print(f"- ~700 iterations, LeNet (cnn_700/criterion/summary.json): "
              f"d(600-699, 700-799) = {pair.get('over_floor', float('nan')):.2f} floors, "
              f"rank {pair.get('rank_among_consecutive')} of {pair.get('n_consecutive')} "
              f"consecutive; block from {blocks}; trend rho {crit['trend_rho']['mean']:.2f}")
PY
cat "$OUT/summary.md"
exit $status
