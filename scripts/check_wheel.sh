#!/usr/bin/env bash
# Builds the wheel, installs it into a fresh virtual environment (no system or checkout packages) and, from a
# folder outside the checkout, runs what a user of the wheel meets first: the packaged presets, the demo's
# quickest form, `anomalib train --config $(anomalib-minimaxad config minimaxad)` and `anomalib export
# --export_type openvino` of its checkpoint. CI runs it after the tests; it stops at the first error.
# PYTHON picks the interpreter (default python3.11); nothing is downloaded from model hubs.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PYTHON="${PYTHON:-python3.11}"
work="$(mktemp -d "${TMPDIR:-/tmp}/minimaxad-wheel-check.XXXXXX")"
trap 'rm -rf "$work"' EXIT
started=$SECONDS

step() { printf '\n=== check_wheel [%3ds]: %s\n' "$((SECONDS - started))" "$*"; }
fail() {
    echo "check_wheel: FAILED: $*" >&2
    exit 1
}
# pip warns once per unreadable local index entry; those lines say nothing about this project.
quiet_pip() { "$venv/bin/python" -m pip "$@" 2>&1 | { grep -v 'is ignored: it is neither a file nor a directory' || true; }; }

step "fresh virtual environment in $work/venv"
venv="$work/venv"
"$PYTHON" -m venv "$venv"
quiet_pip install --quiet --upgrade pip

step "building the wheel"
quiet_pip wheel --no-deps --quiet --wheel-dir "$work/dist" "$repo"
wheels=("$work"/dist/anomalib_minimaxad-*.whl)
[[ ${#wheels[@]} -eq 1 && -f ${wheels[0]} ]] || fail "expected one wheel in $work/dist, found: ${wheels[*]}"
wheel="${wheels[0]}"
echo "$wheel"

step "installing torch (the pinned builds, as scripts/setup_env.sh) and the wheel with its openvino extra"
quiet_pip install --quiet "torch==2.14.1" "torchvision==0.29.1"
quiet_pip install --quiet "${wheel}[openvino]"
quiet_pip check

outside="$work/outside"
mkdir "$outside"
cd "$outside"
export PATH="$venv/bin:$PATH"
# No ImageNet weights and no hub: the demo and the training run with a randomly initialised encoder.
export MINIMAXAD_WEIGHTS_DIR="$work/no-weights" HF_HUB_OFFLINE=1 PYTHONWARNINGS=ignore
[[ "$(command -v anomalib)" == "$venv/bin/anomalib" ]] || fail "anomalib is not the fresh environment's"

step "the package and its presets come from site-packages"
site_packages="$(python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
package="$(python -c 'import pathlib, anomalib_minimaxad; print(pathlib.Path(anomalib_minimaxad.__file__).parent)')"
[[ "$package" == "$site_packages/anomalib_minimaxad" ]] || fail "anomalib_minimaxad imported from $package"
listed="$(anomalib-minimaxad config)"
for source in "$repo"/anomalib_minimaxad/configs/*.yaml; do
    name="$(basename "$source" .yaml)"
    grep -qx "$name" <<<"$listed" || fail "preset $name missing from \`anomalib-minimaxad config\`: $listed"
    installed="$(anomalib-minimaxad config "$name")"
    [[ "$installed" == "$site_packages/"* ]] || fail "preset $name resolves to $installed, outside $site_packages"
    cmp -s "$source" "$installed" || fail "installed preset $installed differs from $source"
done
echo "$(wc -l <<<"$listed") presets, e.g. $(anomalib-minimaxad config demo_cpu)"

step "the demo's quickest form"
tiny_model=(--model.dims "[16,32,64,128]")
anomalib-minimaxad demo --data-root data --output demo --categories gravel \
    --image-size 64 --num-train 8 --num-test-good 3 --num-test-defect 5 -- --trainer.max_epochs 1 "${tiny_model[@]}"
for produced in demo/metrics.json demo/metrics.md demo/gravel_grid.png; do
    [[ -s $produced ]] || fail "the demo wrote no $produced"
done

step "anomalib train with the packaged minimaxad preset"
anomalib train --config "$(anomalib-minimaxad config minimaxad)" \
    --data.root data --data.category gravel --data.train_batch_size 4 --data.eval_batch_size 4 --data.num_workers 0 \
    --model.pre_trained false "${tiny_model[@]}" --trainer.max_epochs 1 --trainer.accelerator cpu \
    --default_root_dir train
checkpoints=()
while IFS= read -r -d '' found; do checkpoints+=("$found"); done < <(find train -name '*.ckpt' -print0)
[[ ${#checkpoints[@]} -eq 1 ]] || fail "expected one checkpoint under train/, found ${#checkpoints[@]}"

step "anomalib export --export_type openvino, then OpenVINO inference on one test image"
anomalib export --model MiniMaxAD --model.pre_trained false "${tiny_model[@]}" --export_type openvino \
    --ckpt_path "${checkpoints[0]}" --export_root export
model_xml="$(find export -name model.xml -print -quit)"
[[ -n $model_xml ]] || fail "anomalib export wrote no model.xml under export/"
image="$(find data/gravel/test -name '*.png' -print -quit)"
python - "$model_xml" "$image" <<'EOF'
import math
import sys

import numpy as np
from anomalib.deploy import OpenVINOInferencer

model_xml, image = sys.argv[1:]
prediction = OpenVINOInferencer(path=model_xml, device="CPU").predict(image)
# predict() returns a batch of one: its score has shape (1,).
score = np.asarray(prediction.pred_score).item()
if not math.isfinite(score):
    sys.exit(f"OpenVINO gave a non-finite score {score} for {image}")
print(f"OpenVINO score of {image}: {score:.4f}")
EOF

step "passed"
