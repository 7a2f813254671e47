#!/usr/bin/env bash
# Creates (or refreshes) the project's virtual environment in .venv with Python 3.11.
# Sourced by scripts/test.sh and scripts/demo.sh; safe to run again: it reinstalls only
# when pyproject.toml changed.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PYTHON="${PYTHON:-python3.11}"
if [ ! -x .venv/bin/python ]; then
    echo "Creating .venv with $PYTHON ..."
    "$PYTHON" -m venv .venv
fi
# The editable install copies the hook into site-packages: a changed hook needs a reinstall too.
stamp=".venv/.installed-$(cat pyproject.toml anomalib_minimaxad_hook.py anomalib_minimaxad_hook.pth | sha256sum | cut -c1-16)"
if [ ! -f "$stamp" ]; then
    echo "Installing anomalib-minimaxad and its dependencies into .venv (first run takes a few minutes) ..."
    .venv/bin/python -m pip install --quiet --upgrade pip
    # torch first, pinned: these builds are what the project is tested with.
    .venv/bin/python -m pip install --quiet "torch==2.14.1" "torchvision==0.29.1"
    .venv/bin/python -m pip install --quiet -e ".[dev]"
    rm -f .venv/.installed-*
    touch "$stamp"
fi
