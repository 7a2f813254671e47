#!/usr/bin/env bash
# scripts/upstream/integration.sh
#
# anomalib's own integration model suite (tests/integration/model/test_models.py and its helpers, vendored under
# tests/anomalib_integration/) for MiniMaxAD, run from the patched anomalib 2.7.0: fit, test, train, validate,
# predict and the three exports (torch, onnx, openvino) of `get_model("mini_max_a_d")` on anomalib's dummy
# MVTec AD dataset. The environment is a fresh virtual environment (no system site-packages) holding only the
# patched anomalib with its openvino and datasets extras (the dummy datasets need pyarrow), the pinned torch of
# scripts/setup_env.sh (from pip's cache after the first run) and pytest: neither this package nor its import
# hook is in it, which the script checks.
#
# One substitution: the default model loads the encoder's ImageNet weights (pre_trained=True), which cannot be
# downloaded here. $MINIMAXAD_WEIGHTS_DIR names a folder holding a file of that name with a randomly initialised
# UniRepLKNet-N state dict, so the model's own loading path runs on it; the test file is unchanged.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
PYTHON="${PYTHON:-python3.11}"
work="$(mktemp -d "${TMPDIR:-/tmp}/minimaxad-anomalib-suite.XXXXXX")"
trap 'rm -rf "$work"' EXIT
started=$SECONDS
step() { printf '\n=== anomalib integration [%3ds]: %s\n' "$((SECONDS - started))" "$*"; }
quiet_pip() { "$venv/bin/python" -m pip "$@" 2>&1 | { grep -v 'is ignored: it is neither a file nor a directory' || true; }; }

step "the vendored files are anomalib's (git blob ids of tests/anomalib_integration/vendored.sha1)"
suite="$repo/tests/anomalib_integration/anomalib_tests"
while read -r blob path; do
    [[ "$(git hash-object "$suite/$path")" == "$blob" ]] || { echo "$suite/$path differs from anomalib's $blob" >&2; exit 1; }
done <"$repo/tests/anomalib_integration/vendored.sha1"

step "the patched anomalib tree"
bash "$repo/scripts/upstream_patch.sh" "$work/minimaxad.patch" "$work/anomalib"

step "a fresh virtual environment with the patched anomalib[openvino,datasets], torch and pytest"
venv="$work/venv"
"$PYTHON" -m venv "$venv"
quiet_pip install --quiet --upgrade pip
quiet_pip install --quiet "torch==2.14.1" "torchvision==0.29.1"
quiet_pip install --quiet "$work/anomalib[openvino,datasets]" pytest
quiet_pip check
cd "$work"
"$venv/bin/python" - <<'PY'
import importlib.util
import sys

for name in ("anomalib_minimaxad", "anomalib_minimaxad_hook"):
    if importlib.util.find_spec(name) is not None:
        sys.exit(f"{name} is importable in the suite's environment: it must run without this package")
import anomalib.models

print("anomalib from", anomalib.models.__file__)
print("MiniMaxAD:", anomalib.models.MiniMaxAD.__module__, "| listed as", sorted(m for m in anomalib.models.list_models() if "max" in m))
PY

step "the substitution: a randomly initialised UniRepLKNet-N state dict as the ImageNet checkpoint"
export MINIMAXAD_WEIGHTS_DIR="$work/weights" HF_HUB_OFFLINE=1
"$venv/bin/python" - <<'PY'
import os
from pathlib import Path

import torch

from anomalib.models.image.minimaxad.components import UNIREPLKNET_VARIANTS, UniRepLKNet

variant = UNIREPLKNET_VARIANTS["unireplknet_n"]
folder = Path(os.environ["MINIMAXAD_WEIGHTS_DIR"])
folder.mkdir()
torch.manual_seed(0)
network = UniRepLKNet(dims=variant["dims"], depths=variant["depths"])
torch.save(network.state_dict(), folder / variant["file"])
print("wrote", folder / variant["file"])
PY

step "anomalib's tests/integration/model/test_models.py, the MiniMaxAD cases"
cp -r "$suite" "$work/suite"
cd "$work/suite"
"$venv/bin/python" -m pytest tests/integration/model/test_models.py -k "mini_max_a_d" -v "$@"
step "passed"
