# Original Code
# Copyright (c) 2023 the UniRepLKNet authors (Xiaohan Ding et al.)
# https://github.com/AILab-CVC/UniRepLKNet
# SPDX-License-Identifier: Apache-2.0
#
# Original Code
# Copyright (c) 2025 WangFengJie
# https://github.com/WangFengJiee/MiniMaxAD
# SPDX-License-Identifier: MIT
#
# Modified
# Copyright (C) 2026 anomalib-minimaxad developers
# SPDX-License-Identifier: Apache-2.0
"""Initial weights of the networks, as their reference implementations set them.

- :func:`init_unireplknet`: UniRepLKNet's own init (the encoder and the classifier):
  truncated normal, std 0.02, on every ``Conv2d`` and ``Linear`` weight, zero biases.
- :func:`init_minimaxad`: the MiniMaxAD authors' init of the bottleneck and the decoder:
  Kaiming normal (``fan_out``, ReLU gain) on every ``Conv2d`` weight, BatchNorm weight 1
  and bias 0; every other parameter keeps PyTorch's default (``Linear``,
  ``ConvTranspose2d``, all conv biases) or its module's constant (LayerNorm 1/0, GRN 0,
  layer scale 1e-6).

Both are applied per module with :meth:`torch.nn.Module.apply`, after construction.

Example:
    >>> import torch
    >>> from torch import nn
    >>> conv = nn.Conv2d(8, 16, 3).apply(init_minimaxad)
    >>> round(conv.weight.std().item(), 1)  # sqrt(2 / (16 * 3 * 3))
    0.1
    >>> nn.Linear(4, 4).apply(init_unireplknet).bias.abs().sum().item()
    0.0
"""

from torch import nn

__all__ = ["init_minimaxad", "init_unireplknet"]


def init_unireplknet(module: nn.Module) -> None:
    """UniRepLKNet's init: ``trunc_normal_(std=0.02)`` on conv and linear weights, zero biases.

    The truncation bounds are upstream's (timm's defaults): +-2 absolute, i.e. about 100
    standard deviations, so the weights are in effect normal. ``ConvTranspose2d`` is not
    touched, as upstream.

    Args:
        module (nn.Module): One module; use ``root.apply(init_unireplknet)`` for a network.
    """
    if isinstance(module, nn.Conv2d | nn.Linear):
        nn.init.trunc_normal_(module.weight, std=0.02, a=-2.0, b=2.0)
        if module.bias is not None:
            nn.init.zeros_(module.bias)


def init_minimaxad(module: nn.Module) -> None:
    """The MiniMaxAD authors' init: Kaiming normal (``fan_out``, ReLU) on ``Conv2d`` weights, BN 1/0.

    Conv biases (the SE block's), linears and transposed convolutions keep the values
    PyTorch drew when they were constructed, as in the authors' code.

    Args:
        module (nn.Module): One module; use ``root.apply(init_minimaxad)`` for a network.
    """
    if isinstance(module, nn.Conv2d):
        nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
    elif isinstance(module, nn.BatchNorm2d | nn.GroupNorm):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)
