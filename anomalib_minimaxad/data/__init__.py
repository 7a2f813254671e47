# Copyright (C) 2026 anomalib-minimaxad developers
# SPDX-License-Identifier: Apache-2.0
"""Datamodules of MiniMaxAD; the demo dataset generator (``anomalib_minimaxad.demo``) is re-exported here."""

from typing import TYPE_CHECKING

from anomalib_minimaxad.demo.dataset import DEFECT_TYPES, DEMO_CATEGORIES, generate_demo_dataset

if TYPE_CHECKING:
    from anomalib_minimaxad.data.aebad import AeBADS
    from anomalib_minimaxad.data.mvtec import MVTec
    from anomalib_minimaxad.data.mvtec_layout import MVTecLayout
    from anomalib_minimaxad.data.per_category import PerCategoryMetrics
    from anomalib_minimaxad.data.unified import Unified

__all__ = [
    "DEFECT_TYPES",
    "DEMO_CATEGORIES",
    "AeBADS",
    "MVTec",
    "MVTecLayout",
    "PerCategoryMetrics",
    "Unified",
    "generate_demo_dataset",
]

#: Names imported on first access: they import anomalib (and torch), which demo-data users should not pay for.
_LAZY = {
    "MVTec": "anomalib_minimaxad.data.mvtec",
    "Unified": "anomalib_minimaxad.data.unified",
    "MVTecLayout": "anomalib_minimaxad.data.mvtec_layout",
    "AeBADS": "anomalib_minimaxad.data.aebad",
    "PerCategoryMetrics": "anomalib_minimaxad.data.per_category",
}


def __getattr__(name: str) -> object:
    """Import the datamodules lazily (see ``_LAZY``)."""
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    msg = f"module {__name__!r} has no attribute {name!r}"
    raise AttributeError(msg)
