#!/usr/bin/env bash
# DiSSECT vs BYOL vs random initialization on the 521-image NIH ChestX-ray14 sample.
#
#     benchmarks/nih_sample_comparison.sh [SAMPLE_DIR] [RUN_ROOT]
#
# SAMPLE_DIR is the sample in the NIH layout (images/, Data_Entry_2017_v2020.csv,
# train_val_list.txt, test_list.txt); without it, DISSECT_DATA_DIR is used.
# RUN_ROOT (default: runs/nih_sample_comparison) receives the prepared TFDS
# dataset, one folder per seed and summary.md. `dissect` and `python` of the
# environment where keras-dissect is installed must be on PATH.
#
# For each seed (0, 1, 2) the recipe recipes/nih_sample_comparison.toml pretrains
# DiSSECT and BYOL, then trains linear probes with 100 % and 10 % of the training
# labels on both encoders and on a randomly initialized one. The budget below
# (64 px, width 32, 10 epochs for pretraining and probes) is small on purpose:
# on a 2-core CPU one seed took about 4 minutes of CPU time. `--set` changes an
# option in every step, so the probes also train for at most 10 epochs.
set -euo pipefail

SAMPLE_DIR="${1:-${DISSECT_DATA_DIR:-}}"
RUN_ROOT="${2:-runs/nih_sample_comparison}"
SEEDS=(0 1 2)
EPOCHS=10
WIDTH=32

if [[ -z "${SAMPLE_DIR}" || ! -f "${SAMPLE_DIR}/Data_Entry_2017_v2020.csv" ]]; then
    echo "error: give the NIH sample folder (with Data_Entry_2017_v2020.csv) as the first" \
        "argument or in DISSECT_DATA_DIR. Received: SAMPLE_DIR='${SAMPLE_DIR}'" >&2
    exit 2
fi

# A finished probe run is never overwritten, so a second comparison needs a new RUN_ROOT.
for seed in "${SEEDS[@]}"; do
    if [[ -e "${RUN_ROOT}/seed${seed}" ]]; then
        echo "error: ${RUN_ROOT}/seed${seed} already exists. Give a new RUN_ROOT or remove" \
            "the earlier comparison. Received: RUN_ROOT='${RUN_ROOT}'" >&2
        exit 2
    fi
done

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
RECIPE="${HERE}/../recipes/nih_sample_comparison.toml"
export KERAS_BACKEND="${KERAS_BACKEND:-tensorflow}"
mkdir -p "${RUN_ROOT}"

for seed in "${SEEDS[@]}"; do
    TIMEFORMAT="seed ${seed}: %R s wall, %U s user CPU, %S s system CPU"
    time dissect run "${RECIPE}" \
        --run-root "${RUN_ROOT}/seed${seed}" \
        --data-dir "${RUN_ROOT}/tfds" \
        --set "manual_dir=${SAMPLE_DIR}" \
        --set "seed=${seed}" \
        --set "epochs=${EPOCHS}" \
        --set "width=${WIDTH}"
done

# Collect the test AUCs, run times and codebook health into one markdown table.
python - "${RUN_ROOT}" "${SEEDS[@]}" <<'PYTHON' | tee "${RUN_ROOT}/summary.md"
import csv
import json
import pathlib
import statistics
import sys

root = pathlib.Path(sys.argv[1])
seeds = sys.argv[2:]
scales = ("coarse", "medium", "fine")


def seconds(run_dir, last_file):
    # config.json is written when a run starts, last_file when it ends.
    return (run_dir / last_file).stat().st_mtime - (run_dir / "config.json").stat().st_mtime


def spread(values):
    return statistics.stdev(values) if len(values) > 1 else 0.0


print("| encoder | labels | mean AUC (mean ± std over seeds) | per seed | classes used | probe wall s (mean) |")
print("| --- | --- | --- | --- | --- | --- |")
for method in ("dissect", "byol", "random"):
    for percent in ("100", "10"):
        aucs, used, times = [], [], []
        for seed in seeds:
            run_dir = root / f"seed{seed}" / f"sample_{method}_probe_{percent}pct"
            report = json.loads((run_dir / "test_auc.json").read_text())
            aucs.append(report["mean_auc"])
            used.append(f"{report['num_classes_used']}/{report['num_classes']}")
            times.append(seconds(run_dir, "test_auc.json"))
        per_seed = ", ".join(f"{value:.3f}" for value in aucs)
        print(f"| {method} | {percent} % | {statistics.mean(aucs):.3f} ± {spread(aucs):.3f} "
              f"| {per_seed} | {', '.join(sorted(set(used)))} | {statistics.mean(times):.0f} |")

print()
print("| pretraining | wall s per seed | mean |")
print("| --- | --- | --- |")
for method in ("dissect", "byol"):
    times = [seconds(root / f"seed{seed}" / f"sample_{method}", "model.keras") for seed in seeds]
    print(f"| {method} | {', '.join(f'{value:.0f}' for value in times)} | {statistics.mean(times):.0f} |")

print()
print("| DiSSECT seed | last epoch | " + " | ".join(f"perplexity {s}" for s in scales)
      + " | " + " | ".join(f"live codes {s}" for s in scales) + " |")
print("| --- " * (2 + 2 * len(scales)) + "|")
for seed in seeds:
    with open(root / f"seed{seed}" / "sample_dissect" / "history.csv") as handle:
        last = list(csv.DictReader(handle))[-1]
    values = [f"{float(last[f'perplexity_{s}']):.2f}" for s in scales]
    values += [f"{float(last[f'live_code_fraction_{s}']):.3f}" for s in scales]
    print(f"| {seed} | {int(last['epoch']) + 1} | " + " | ".join(values) + " |")
PYTHON
