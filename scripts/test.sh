#!/usr/bin/env bash
# Sets up .venv if needed, then runs lint and the whole test suite (what CI runs).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/setup_env.sh
.venv/bin/ruff check .
.venv/bin/ruff format --check .
# Two workers, one test file each at a time (module fixtures are built once), one OpenMP thread each: on 2 cores
# most of the suite waits on imports, subprocesses and NNCF, so this takes ~10 min instead of ~15 serially.
OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}" .venv/bin/python -m pytest -n 2 --dist loadfile "$@"
