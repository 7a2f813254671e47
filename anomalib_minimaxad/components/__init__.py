# Copyright (C) 2026 anomalib-minimaxad developers
# SPDX-License-Identifier: Apache-2.0
"""Building blocks of MiniMaxAD: the UniRepLKNet architecture and checkpoint handling.

- :mod:`.layers`: the UniRepLKNet layers and their re-parameterization for inference;
- :mod:`.networks`: the classifier, and MiniMaxAD's encoder, bottleneck and decoder;
- :mod:`.weight_init`: their initial weights;
- :mod:`.fast_cpu`: the optional oneDNN kernels of the fused blocks on CPU;
- :mod:`.timm_registration`: the classifier variants in timm's registry;
- :mod:`.pretrained`: finding, reading and checking checkpoints.
"""

from .layers import (
    GRN,
    DilatedReparamBlock,
    FastCPUConv2d,
    FastCPUConvTranspose2d,
    LayerNorm2d,
    SEBlock,
    UniRepLKNetBlock,
    fuse_conv_bn,
)
from .networks import (
    UNIREPLKNET_VARIANTS,
    Bottleneck,
    Decoder,
    UniRepLKNet,
    UniRepLKNetEncoder,
    default_kernel_sizes,
    reparameterize_modules,
)
from .pretrained import (
    WEIGHTS_DIR_ENV,
    CheckpointError,
    PretrainedWeightsUnavailableError,
    load_module_state,
    read_checkpoint,
    resolve_imagenet_state_dict,
    unwrap_state_dict,
)
from .timm_registration import checkpoint_filter_fn

__all__ = [
    "GRN",
    "UNIREPLKNET_VARIANTS",
    "WEIGHTS_DIR_ENV",
    "Bottleneck",
    "CheckpointError",
    "Decoder",
    "DilatedReparamBlock",
    "FastCPUConv2d",
    "FastCPUConvTranspose2d",
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
