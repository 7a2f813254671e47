#!/usr/bin/env bash
# scripts/upstream/check.sh [OUT.patch]
#
# Makes the upstream patch and checks every Python file it adds or edits, in the patched anomalib 2.7.0 tree,
# as anomalib's pre-commit does: `ruff check` and `ruff format --check` (ruff 0.12.0) and mypy 1.16.1 (with
# pre-commit's default arguments and the hook's extra dependencies, types-PyYAML and types-setuptools), each
# with the [tool.ruff] / [tool.mypy] of anomalib's pyproject.toml. Fails unless all three report nothing.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
work="$(mktemp -d "${TMPDIR:-/tmp}/minimaxad-upstream-check.XXXXXX")"
trap 'rm -rf "$work"' EXIT
patch="${1:-$work/minimaxad.patch}"
bash "$repo/scripts/upstream_patch.sh" "$patch" "$work/anomalib"
source "$repo/scripts/upstream/tools.sh"
mapfile -t files <"$work/anomalib.python-files"
cd "$work/anomalib"
status=0
echo "== ruff check (anomalib's rules) on the ${#files[@]} Python files of the patch"
"$tools_venv/bin/ruff" check --no-cache "${files[@]}" || status=1
echo "== ruff format --check"
"$tools_venv/bin/ruff" format --no-cache --check "${files[@]}" || status=1
echo "== mypy (anomalib's [tool.mypy], pre-commit's --ignore-missing-imports --scripts-are-modules)"
"$tools_venv/bin/mypy" --no-incremental --ignore-missing-imports --scripts-are-modules "${files[@]}" || status=1
exit $status
