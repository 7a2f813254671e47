# Copyright (C) 2026 anomalib-minimaxad developers
# SPDX-License-Identifier: Apache-2.0
"""The end-to-end demo: its generated dataset, its pipeline and its overview picture.

- ``dataset``: the deterministic demo dataset in the MVTec AD layout (numpy, PIL, scikit-image only);
- ``pipeline``: data, training, test, OpenVINO export and inference, metrics;
- ``overview``: the pictures the pipeline draws (one grid per category, one overview of all).

Importing this package stays light: the pipeline (torch, anomalib) is imported on first use.

Example:
    >>> from anomalib_minimaxad.demo import generate_demo_dataset
    >>> root = generate_demo_dataset("./datasets/minimaxad_demo", categories=("brick",))  # doctest: +SKIP
"""

from anomalib_minimaxad.demo.dataset import DEFECT_TYPES, DEMO_CATEGORIES, generate_demo_dataset

__all__ = ["DEFECT_TYPES", "DEMO_CATEGORIES", "DemoSettings", "generate_demo_dataset", "run_demo"]


def __getattr__(name: str) -> object:
    """Import the pipeline lazily: it imports anomalib and torch."""
    if name in {"DemoSettings", "run_demo"}:
        from anomalib_minimaxad.demo import pipeline

        return getattr(pipeline, name)
    msg = f"module {__name__!r} has no attribute {name!r}"
    raise AttributeError(msg)
