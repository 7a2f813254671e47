# Copyright (C) 2026 anomalib-minimaxad developers
# SPDX-License-Identifier: Apache-2.0
"""MiniMaxAD for anomalib: a lightweight autoencoder for feature-rich anomaly detection.

Importing the package registers the UniRepLKNet variants with timm
(``timm.create_model("unireplknet_n", pretrained=True)``).
"""

from .components import unireplknet as _unireplknet  # noqa: F401 - registers the timm variants
from .lightning_model import MiniMaxAD
from .torch_model import MiniMaxADModel

__all__ = ["MiniMaxAD", "MiniMaxADModel"]
