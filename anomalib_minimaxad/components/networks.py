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
"""The UniRepLKNet networks: the classifier, and MiniMaxAD's encoder, bottleneck and decoder.

MiniMaxAD (`Wang et al., 2024 <https://arxiv.org/abs/2405.09933>`_) uses:

- :class:`UniRepLKNetEncoder`: stem, stages 1-3 of a pretrained UniRepLKNet and a
  channels-first LayerNorm (``norm0-2``) after each stage;
- :class:`Bottleneck`: fuses the three scales into the fourth width, then two
  small-kernel blocks;
- :class:`Decoder`: the encoder mirrored, upsampling with 2x2 transposed convolutions.

The full classifier :class:`UniRepLKNet` is registered with timm by
:mod:`~anomalib_minimaxad.components.timm_registration`. State-dict names equal the
authors' (``stages.1.0.dwconv.dil_conv_k5_1.weight`` ...), so their checkpoints load
without key conversion.

Example:
    >>> import torch
    >>> from anomalib_minimaxad.components import UniRepLKNetEncoder, Bottleneck, Decoder
    >>> dims, depths = (16, 32, 64, 128), (2, 2, 8, 2)
    >>> encoder = UniRepLKNetEncoder(dims, depths)
    >>> features = encoder(torch.rand(1, 3, 64, 64))
    >>> [f.shape[1] for f in features]
    [16, 32, 64]
    >>> [f.shape[1] for f in Decoder(dims, depths)(Bottleneck(dims)(features))]
    [16, 32, 64]
"""

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F  # noqa: N812
from torch import nn

from .layers import LayerNorm2d, UniRepLKNetBlock, fuse_conv_bn
from .weight_init import init_minimaxad, init_unireplknet

__all__ = [
    "HF_HUB_REPO",
    "UNIREPLKNET_VARIANTS",
    "Bottleneck",
    "Decoder",
    "UniRepLKNet",
    "UniRepLKNetEncoder",
    "default_kernel_sizes",
    "reparameterize_modules",
]

#: The Hugging Face repo of the ImageNet checkpoints.
HF_HUB_REPO = "DingXiaoH/UniRepLKNet"

#: The upstream sizes. ``file``: the ImageNet-1k checkpoint in the Hugging Face repo.
UNIREPLKNET_VARIANTS: dict[str, dict[str, Any]] = {
    "unireplknet_a": {
        "dims": (40, 80, 160, 320),
        "depths": (2, 2, 6, 2),
        "file": "unireplknet_a_in1k_224_acc77.03.pth",
    },
    "unireplknet_f": {
        "dims": (48, 96, 192, 384),
        "depths": (2, 2, 6, 2),
        "file": "unireplknet_f_in1k_224_acc78.58.pth",
    },
    "unireplknet_p": {
        "dims": (64, 128, 256, 512),
        "depths": (2, 2, 6, 2),
        "file": "unireplknet_p_in1k_224_acc80.23.pth",
    },
    "unireplknet_n": {
        "dims": (80, 160, 320, 640),
        "depths": (2, 2, 8, 2),
        "file": "unireplknet_n_in1k_224_acc81.64.pth",
    },
    "unireplknet_t": {
        "dims": (80, 160, 320, 640),
        "depths": (3, 3, 18, 3),
        "file": "unireplknet_t_in1k_224_acc83.21.pth",
    },
    "unireplknet_s": {
        "dims": (96, 192, 384, 768),
        "depths": (3, 3, 27, 3),
        "file": "unireplknet_s_in1k_224_acc83.91.pth",
    },
}

# Kernel sizes per stage, as upstream picks them from the depths.
_STAGE3_PATTERNS: dict[int, tuple[int, ...]] = {6: (13,), 8: (13,), 18: (13, 3), 27: (13, 3, 3)}


def default_kernel_sizes(depths: Sequence[int]) -> tuple[tuple[int, ...], ...]:
    """Return UniRepLKNet's kernel sizes for ``depths``.

    Stage 1 uses 3x3 kernels, stages 2 and 4 use 13x13, and stage 3 repeats the upstream
    pattern for its depth (all 13 up to depth 8; ``13, 3`` for T; ``13, 3, 3`` for S and up).

    Example:
        >>> default_kernel_sizes((2, 2, 8, 2))[2]
        (13, 13, 13, 13, 13, 13, 13, 13)
    """
    pattern = _STAGE3_PATTERNS.get(depths[2], (13,))
    stage3 = tuple(pattern[i % len(pattern)] for i in range(depths[2]))
    return ((3,) * depths[0], (13,) * depths[1], stage3, (13,) * depths[3])[: len(depths)]


def _make_downsample_layers(in_chans: int, dims: Sequence[int]) -> nn.ModuleList:
    """Stem (two stride-2 convs, /4) then one stride-2 conv before each later stage."""
    layers = nn.ModuleList(
        [
            nn.Sequential(
                nn.Conv2d(in_chans, dims[0] // 2, kernel_size=3, stride=2, padding=1),
                LayerNorm2d(dims[0] // 2),
                nn.GELU(),
                nn.Conv2d(dims[0] // 2, dims[0], kernel_size=3, stride=2, padding=1),
                LayerNorm2d(dims[0]),
            ),
        ],
    )
    for i in range(len(dims) - 1):
        layers.append(
            nn.Sequential(
                nn.Conv2d(dims[i], dims[i + 1], kernel_size=3, stride=2, padding=1),
                LayerNorm2d(dims[i + 1]),
            ),
        )
    return layers


def _make_stages(
    dims: Sequence[int],
    kernel_sizes: Sequence[Sequence[int]],
    drop_path_rate: float = 0.0,
    layer_scale_init_value: float = 1e-6,
) -> nn.ModuleList:
    """One ``nn.Sequential`` of blocks per width; drop-path rate rises linearly over all blocks."""
    num_blocks = sum(len(k) for k in kernel_sizes)
    rates = torch.linspace(0, drop_path_rate, num_blocks).tolist() if num_blocks else []
    stages = nn.ModuleList()
    index = 0
    for dim, stage_kernels in zip(dims, kernel_sizes, strict=True):
        blocks = [
            UniRepLKNetBlock(dim, k, drop_path=rates[index + j], layer_scale_init_value=layer_scale_init_value)
            for j, k in enumerate(stage_kernels)
        ]
        index += len(stage_kernels)
        stages.append(nn.Sequential(*blocks))
    return stages


def reparameterize_modules(root: nn.Module) -> None:
    """Call ``reparameterize`` on every submodule of ``root`` that has one."""
    for module in list(root.modules()):
        if module is not root and hasattr(module, "reparameterize"):
            module.reparameterize()


def _check_config(dims: Sequence[int], depths: Sequence[int], kernel_sizes: Sequence[Sequence[int]]) -> None:
    if len(dims) != 4 or len(depths) != 4:
        msg = f"UniRepLKNet needs 4 widths and 4 depths, got dims={tuple(dims)} depths={tuple(depths)}."
        raise ValueError(msg)
    if [len(k) for k in kernel_sizes] != list(depths):
        msg = f"kernel_sizes {kernel_sizes} do not match depths {tuple(depths)}."
        raise ValueError(msg)


class UniRepLKNet(nn.Module):
    """The UniRepLKNet image classifier (4 stages, pooled LayerNorm, linear head).

    Args:
        in_chans (int): Input channels.
        num_classes (int): Classes of the head; 0 gives an identity head.
        dims (Sequence[int]): Widths of the 4 stages.
        depths (Sequence[int]): Blocks per stage.
        kernel_sizes (Sequence[Sequence[int]] | None): Kernel size of every block; defaults to
            :func:`default_kernel_sizes`.
        drop_path_rate (float): Stochastic depth, rising linearly to this value.
        layer_scale_init_value (float): Initial layer-scale value.
        head_init_scale (float): Multiplies the initial head weights.

    Example:
        >>> import timm, torch
        >>> import anomalib_minimaxad  # registers the variants with timm
        >>> model = timm.create_model("unireplknet_a", pretrained=False, num_classes=10)
        >>> model(torch.rand(1, 3, 64, 64)).shape
        torch.Size([1, 10])
    """

    def __init__(
        self,
        in_chans: int = 3,
        num_classes: int = 1000,
        dims: Sequence[int] = (80, 160, 320, 640),
        depths: Sequence[int] = (2, 2, 8, 2),
        kernel_sizes: Sequence[Sequence[int]] | None = None,
        drop_path_rate: float = 0.0,
        layer_scale_init_value: float = 1e-6,
        head_init_scale: float = 1.0,
        **kwargs: Any,  # noqa: ANN401, ARG002 - timm passes pretrained_cfg etc.
    ) -> None:
        super().__init__()
        kernel_sizes = kernel_sizes or default_kernel_sizes(depths)
        _check_config(dims, depths, kernel_sizes)
        self.num_classes = num_classes
        self.num_features = dims[-1]
        self.downsample_layers = _make_downsample_layers(in_chans, dims)
        self.stages = _make_stages(dims, kernel_sizes, drop_path_rate, layer_scale_init_value)
        self.norm = nn.LayerNorm(dims[-1], eps=1e-6)
        self.head = nn.Linear(dims[-1], num_classes) if num_classes > 0 else nn.Identity()
        self.apply(init_unireplknet)
        if isinstance(self.head, nn.Linear):
            self.head.weight.data.mul_(head_init_scale)
            self.head.bias.data.mul_(head_init_scale)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Feature map after the last stage."""
        for downsample, stage in zip(self.downsample_layers, self.stages, strict=True):
            x = stage(downsample(x))
        return x

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """Global average pool, LayerNorm, then the linear head."""
        x = self.norm(x.mean((-2, -1)))
        return x if pre_logits else self.head(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class logits."""
        return self.forward_head(self.forward_features(x))

    def reparameterize(self) -> None:
        """Fuse every block for inference (see :meth:`UniRepLKNetBlock.reparameterize`)."""
        reparameterize_modules(self)


class UniRepLKNetEncoder(nn.Module):
    """MiniMaxAD's encoder: stem and stages 1-3 of UniRepLKNet, each stage output through ``norm{i}``.

    The norms are absent from ImageNet checkpoints; loaded from one, they keep their initial
    weight 1 and bias 0 (plain channel LayerNorms), as in the authors' code.

    Args:
        dims (Sequence[int]): Widths of the 4 UniRepLKNet stages (the 4th sizes the bottleneck only).
        depths (Sequence[int]): Blocks per stage.
        kernel_sizes (Sequence[Sequence[int]] | None): Per-block kernel sizes; defaults to :func:`default_kernel_sizes`.
        in_chans (int): Input channels.
    """

    num_levels = 3

    def __init__(
        self,
        dims: Sequence[int],
        depths: Sequence[int],
        kernel_sizes: Sequence[Sequence[int]] | None = None,
        in_chans: int = 3,
    ) -> None:
        super().__init__()
        kernel_sizes = kernel_sizes or default_kernel_sizes(depths)
        _check_config(dims, depths, kernel_sizes)
        levels = self.num_levels
        self.in_chans = in_chans
        self.dims = tuple(dims[:levels])
        self.downsample_layers = _make_downsample_layers(in_chans, dims[:levels])
        self.stages = _make_stages(dims[:levels], kernel_sizes[:levels])
        for i, dim in enumerate(self.dims):
            self.add_module(f"norm{i}", LayerNorm2d(dim))
        self.apply(init_unireplknet)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Return the normalised outputs of stages 1-3 (strides 4, 8, 16)."""
        features = []
        for i, (downsample, stage) in enumerate(zip(self.downsample_layers, self.stages, strict=True)):
            x = stage(downsample(x))
            features.append(getattr(self, f"norm{i}")(x))
        return features

    def reparameterize(self) -> None:
        """Fuse every block for inference."""
        reparameterize_modules(self)


def _conv3x3(in_channels: int, out_channels: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_channels, out_channels, kernel_size=3, stride=stride, padding=1, bias=False)


class Bottleneck(nn.Module):
    """Fuses the three encoder scales into one map of the 4th width at stride 32.

    Level 1 goes through two stride-2 convs, level 2 through one (each conv with BN and
    ReLU); both are concatenated with level 3, projected by a stride-2 conv to
    ``dims[3]`` channels and refined by ``depth`` small-kernel UniRepLKNet blocks.

    Args:
        dims (Sequence[int]): The 4 UniRepLKNet widths.
        depth (int): Number of blocks after the fusion.
        kernel_size (int): Kernel size of those blocks.
    """

    def __init__(self, dims: Sequence[int], depth: int = 2, kernel_size: int = 3) -> None:
        super().__init__()
        self.conv1 = _conv3x3(dims[0], dims[1], stride=2)
        self.bn1: nn.Module = nn.BatchNorm2d(dims[1])
        self.conv2 = _conv3x3(dims[1], dims[2], stride=2)
        self.bn2: nn.Module = nn.BatchNorm2d(dims[2])
        self.conv3 = _conv3x3(dims[1], dims[2], stride=2)
        self.bn3: nn.Module = nn.BatchNorm2d(dims[2])
        self.conv4 = _conv3x3(3 * dims[2], dims[3], stride=2)
        self.stages = _make_stages(dims[3:4], [(kernel_size,) * depth])
        self.apply(init_minimaxad)

    def forward(self, features: Sequence[torch.Tensor]) -> torch.Tensor:
        """Fuse ``[level1, level2, level3]`` into the bottleneck map."""
        level1 = F.relu(self.bn2(self.conv2(F.relu(self.bn1(self.conv1(features[0]))))))
        level2 = F.relu(self.bn3(self.conv3(features[1])))
        fused = self.conv4(torch.cat([level1, level2, features[2]], dim=1))
        return self.stages[0](fused)

    @torch.no_grad()
    def reparameterize(self) -> None:
        """Fold each conv's BN into the conv and fuse the blocks for inference."""
        for conv_name, bn_name in (("conv1", "bn1"), ("conv2", "bn2"), ("conv3", "bn3")):
            bn = getattr(self, bn_name)
            if isinstance(bn, nn.BatchNorm2d):
                setattr(self, conv_name, fuse_conv_bn(getattr(self, conv_name), bn))
                setattr(self, bn_name, nn.Identity())
        reparameterize_modules(self)


class Decoder(nn.Module):
    """The encoder mirrored: 2x2 transposed-conv upsampling + LayerNorm, then the stage's blocks.

    ``upsample_layers[0]`` goes from the bottleneck width to ``dims[2]``; ``stages[i]``
    has the width and kernel sizes of encoder stage ``i``.

    Args:
        dims (Sequence[int]): The 4 UniRepLKNet widths.
        depths (Sequence[int]): Blocks per stage (the 4th is unused).
        kernel_sizes (Sequence[Sequence[int]] | None): Per-block kernel sizes; defaults to :func:`default_kernel_sizes`.
    """

    num_levels = 3

    def __init__(
        self,
        dims: Sequence[int],
        depths: Sequence[int],
        kernel_sizes: Sequence[Sequence[int]] | None = None,
    ) -> None:
        super().__init__()
        kernel_sizes = kernel_sizes or default_kernel_sizes(depths)
        _check_config(dims, depths, kernel_sizes)
        levels = self.num_levels
        self.upsample_layers = nn.ModuleList(
            nn.Sequential(
                nn.ConvTranspose2d(dims[i + 1], dims[i], kernel_size=2, stride=2, bias=False),
                LayerNorm2d(dims[i]),
            )
            for i in reversed(range(levels))
        )
        self.stages = _make_stages(dims[:levels], kernel_sizes[:levels])
        self.apply(init_minimaxad)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Return reconstructed features ordered like the encoder's (stride 4, 8, 16)."""
        features: list[torch.Tensor] = []
        for upsample, level in zip(self.upsample_layers, reversed(range(self.num_levels)), strict=True):
            x = self.stages[level](upsample(x))
            features.insert(0, x)
        return features

    def reparameterize(self) -> None:
        """Fuse every block for inference."""
        reparameterize_modules(self)
