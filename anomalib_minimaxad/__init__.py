# Copyright (C) 2026 anomalib-minimaxad developers
# SPDX-License-Identifier: Apache-2.0
"""MiniMaxAD for anomalib: a lightweight autoencoder for feature-rich anomaly detection.

Importing the package is light (the console script and the import hook rely on that): ``MiniMaxAD``
and ``MiniMaxADModel`` are imported on first access (PEP 562), together with torch and anomalib.
The UniRepLKNet variants join timm's registry when the model is imported, or with
``import anomalib_minimaxad.components.timm_registration``;
``import anomalib_minimaxad`` alone does not register them, since that would import torch and timm
(about 3.6 s) for every use of the console script.

Example:
    >>> import timm
    >>> import anomalib_minimaxad.components.timm_registration  # registers unireplknet_a ... unireplknet_s
    >>> encoder = timm.create_model("unireplknet_n", pretrained=False)
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .lightning_model import MiniMaxAD
    from .torch_model import MiniMaxADModel

__all__ = ["MiniMaxAD", "MiniMaxADModel"]

_LAZY_ATTRIBUTES = {"MiniMaxAD": ".lightning_model", "MiniMaxADModel": ".torch_model"}


def __getattr__(name: str) -> object:
    """Import ``MiniMaxAD`` / ``MiniMaxADModel`` on first access."""
    module_name = _LAZY_ATTRIBUTES.get(name)
    if module_name is None:
        msg = f"module {__name__!r} has no attribute {name!r}"
        raise AttributeError(msg)
    value = getattr(importlib.import_module(module_name, __name__), name)
    globals()[name] = value  # later accesses skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
