#!/usr/bin/env bash
# Sets up .venv if needed, then runs the MiniMaxAD demo: generates the demo dataset, trains,
# tests, exports to OpenVINO, runs OpenVINO inference and writes pictures + metrics to demo_output/.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/setup_env.sh
exec .venv/bin/anomalib-minimaxad demo "$@"
