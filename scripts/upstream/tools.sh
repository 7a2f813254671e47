# Sourced by the upstream scripts: the anomalib 2.7.0 sdist and a virtual environment with anomalib's pinned
# checkers (ruff and mypy as its .pre-commit-config.yaml pins them, with the mypy hook's extra dependencies),
# both cached between runs.
# Sets $sdist and $tools_venv.
ANOMALIB_VERSION=2.7.0
RUFF_PIN=ruff==0.12.0
MYPY_PIN=mypy==1.16.1
cache="${MINIMAXAD_UPSTREAM_CACHE:-$HOME/.cache/anomalib-minimaxad-upstream}"
mkdir -p "$cache"
sdist="$cache/anomalib-$ANOMALIB_VERSION.tar.gz"
tools_venv="$cache/tools-venv"
python_for_tools="${PYTHON:-python3.11}"
if [[ ! -s $sdist ]]; then
    echo "Downloading anomalib $ANOMALIB_VERSION's source distribution into $cache ..."
    "$python_for_tools" -m pip download --quiet --no-binary :all: --no-deps "anomalib==$ANOMALIB_VERSION" \
        -d "$cache" 2>&1 | { grep -v 'is ignored: it is neither a file nor a directory' || true; }
    [[ -s $sdist ]] || { echo "pip download wrote no $sdist" >&2; exit 1; }
fi
if [[ ! -x $tools_venv/bin/mypy || -z "$(compgen -G "$tools_venv/lib/python*/site-packages/yaml-stubs")" || "$("$tools_venv/bin/ruff" --version)" != "ruff ${RUFF_PIN#ruff==}" ]]; then
    echo "Installing $RUFF_PIN and $MYPY_PIN into $tools_venv ..."
    rm -rf "$tools_venv"
    "$python_for_tools" -m venv "$tools_venv"
    "$tools_venv/bin/python" -m pip install --quiet "$RUFF_PIN" "$MYPY_PIN" types-PyYAML types-setuptools 2>&1 \
        | { grep -v 'is ignored: it is neither a file nor a directory' || true; }
fi
