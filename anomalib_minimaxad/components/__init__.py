# Copyright (C) 2026 anomalib-minimaxad developers
# SPDX-License-Identifier: Apache-2.0
"""Building blocks of MiniMaxAD: the UniRepLKNet architecture and checkpoint handling."""

from .pretrained import (
    WEIGHTS_DIR_ENV,
    CheckpointError,
    PretrainedWeightsUnavailableError,
    load_module_state,
    read_checkpoint,
    resolve_imagenet_state_dict,
)
from .unireplknet import (
    GRN,
    UNIREPLKNET_VARIANTS,
    Bottleneck,
    Decoder,
    DilatedReparamBlock,
    LayerNorm2d,
    SEBlock,
    UniRepLKNet,
    UniRepLKNetBlock,
    UniRepLKNetEncoder,
    checkpoint_filter_fn,
    default_kernel_sizes,
    fuse_conv_bn,
    reparameterize_modules,
    unwrap_state_dict,
)

__all__ = [
    "GRN",
    "UNIREPLKNET_VARIANTS",
    "WEIGHTS_DIR_ENV",
    "Bottleneck",
    "CheckpointError",
    "Decoder",
    "DilatedReparamBlock",
    "LayerNorm2d",
    "PretrainedWeightsUnavailableError",
    "SEBlock",
    "UniRepLKNet",
    "UniRepLKNetBlock",
    "UniRepLKNetEncoder",
    "checkpoint_filter_fn",
    "default_kernel_sizes",
    "fuse_conv_bn",
    "load_module_state",
    "read_checkpoint",
    "reparameterize_modules",
    "resolve_imagenet_state_dict",
    "unwrap_state_dict",
]
