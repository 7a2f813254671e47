# Copyright (C) 2026 anomalib-minimaxad developers
# SPDX-License-Identifier: Apache-2.0
"""Find the anomalib configs shipped inside the package (``anomalib_minimaxad/configs/*.yaml``).

anomalib's CLI takes a config *path*; these functions turn a preset name into the path of the file in
the installed package (a wheel or a checkout alike). Standard library only, so the console script's
``config`` subcommand stays fast.

Example:
    >>> from anomalib_minimaxad.presets import preset_path
    >>> preset_path("minimaxad").name
    'minimaxad.yaml'
"""

from __future__ import annotations

from pathlib import Path

CONFIG_DIR = Path(__file__).parent / "configs"


def preset_names() -> list[str]:
    """Names of the shipped presets, sorted (file names without ``.yaml``)."""
    return sorted(path.stem for path in CONFIG_DIR.glob("*.yaml"))


def preset_path(name: str) -> Path:
    """Path of the shipped preset ``name`` (``"minimaxad"`` or ``"minimaxad.yaml"``).

    Args:
        name: A preset name from :func:`preset_names`, with or without ``.yaml``.

    Returns:
        The absolute path of the config file.

    Raises:
        FileNotFoundError: ``name`` is no shipped preset; the message lists the ones there are.
    """
    path = CONFIG_DIR / (name if name.endswith(".yaml") else f"{name}.yaml")
    if Path(name).name != name or not path.is_file():
        msg = f"no preset {name!r} in {CONFIG_DIR}; presets: {', '.join(preset_names())}"
        raise FileNotFoundError(msg)
    return path.resolve()
