#!/usr/bin/env bash
# The project's test command (what CI runs first): sets up .venv if needed, then
#   1. ruff check and ruff format --check of the whole repository, with anomalib's rules (pyproject.toml);
#   2. the test suite on two workers (OpenVINO Model API and TorchInferencer client tests included);
#   3. the upstream patch against anomalib 2.7.0's sdist, checked with anomalib's own ruff, ruff format and mypy
#      (scripts/upstream/check.sh);
#   4. anomalib's integration model suite for MiniMaxAD from the patched anomalib, in a fresh environment without
#      this package (scripts/upstream/integration.sh).
# Steps 3-4 need PyPI the first time (the sdist, the checkers, anomalib's dependencies; pip's cache keeps them)
# and take several minutes; MINIMAXAD_SKIP_UPSTREAM=1 leaves them out of a local run, never out of CI.
# Arguments go to pytest.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/setup_env.sh
echo "== ruff check and ruff format --check (anomalib's rules)"
.venv/bin/ruff check .
.venv/bin/ruff format --check .
# Two workers, one test file each at a time (module fixtures are built once), one OpenMP thread each: on 2 cores
# most of the suite waits on imports, subprocesses and NNCF, so this takes ~10 min instead of ~15 serially.
# A crashed worker is reported as its test's failure and not replaced: with --dist loadfile a replacement left
# pytest-xdist idle until killed (seen under the AVX2 caps, benchmarks/README.md).
echo "== the test suite"
OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}" .venv/bin/python -m pytest -n 2 --dist loadfile --max-worker-restart 0 "$@"
if [[ "${MINIMAXAD_SKIP_UPSTREAM:-0}" == 1 ]]; then
    echo "== MINIMAXAD_SKIP_UPSTREAM=1: the upstream patch checks and anomalib's integration suite did NOT run"
    exit 0
fi
echo "== the upstream patch, with anomalib's ruff, ruff format and mypy on its Python files"
bash scripts/upstream/check.sh
echo "== anomalib's integration model suite for MiniMaxAD, from the patched anomalib"
bash scripts/upstream/integration.sh
