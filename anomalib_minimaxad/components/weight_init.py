# Copyright (C) 2026 anomalib-minimaxad developers
# SPDX-License-Identifier: Apache-2.0
"""Initial weights of the UniRepLKNet networks.

Example:
    >>> from torch import nn
    >>> nn.Linear(4, 4).apply(init_weights).bias.abs().sum().item()
    0.0
"""

from __future__ import annotations

from timm.layers import trunc_normal_
from torch import nn

__all__ = ["init_weights"]


def init_weights(module: nn.Module) -> None:
    """Truncated-normal init for convs and linears, as upstream."""
    if isinstance(module, nn.Conv2d | nn.ConvTranspose2d | nn.Linear):
        trunc_normal_(module.weight, std=0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
