#!/usr/bin/env bash
# scripts/upstream_patch.sh OUT.patch [TREE]
#
# Writes OUT.patch: MiniMaxAD as a contribution to anomalib 2.7.0, against its source distribution from PyPI
# (cached under $MINIMAXAD_UPSTREAM_CACHE, default ~/.cache/anomalib-minimaxad-upstream), made from this
# package by the mechanical rewrites of scripts/upstream/make_patch.py and the table scripts/upstream/layout.txt.
# The patched tree is left in TREE (default: a temporary folder, removed at exit). ruff comes from the pinned
# tools environment of scripts/upstream/tools.sh.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
[[ $# -ge 1 && $# -le 2 ]] || { echo "usage: $0 OUT.patch [TREE]" >&2; exit 2; }
out="$(realpath -m "$1")"
if [[ $# -eq 2 ]]; then
    tree="$(realpath -m "$2")"
else
    scratch="$(mktemp -d "${TMPDIR:-/tmp}/minimaxad-upstream.XXXXXX")"
    trap 'rm -rf "$scratch"' EXIT
    tree="$scratch/anomalib"
fi
source "$repo/scripts/upstream/tools.sh"  # sets $tools_venv, $sdist
"$tools_venv/bin/python" "$repo/scripts/upstream/make_patch.py" "$sdist" "$tree" "$out" \
    --ruff "$tools_venv/bin/ruff" --python-files "$tree.python-files"
