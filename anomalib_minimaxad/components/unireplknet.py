# Copyright (C) 2026 anomalib-minimaxad developers
# SPDX-License-Identifier: Apache-2.0
"""UniRepLKNet and the MiniMaxAD encoder, bottleneck and decoder built from its blocks.

UniRepLKNet (`Ding et al., 2024 <https://arxiv.org/abs/2311.15599>`_) is a large-kernel
ConvNet. Each block is: depthwise conv (a Dilated Reparam block for kernels >= 7) -> BN ->
SE -> Linear -> GELU -> GRN -> Linear -> BN -> layer scale, with a residual connection.
All the BNs, the dilated branches, the GRN bias and the layer scale fold into plain
convolutions and linears for inference (:meth:`UniRepLKNetBlock.reparameterize`).

MiniMaxAD (`Wang et al., 2024 <https://arxiv.org/abs/2405.09933>`_) uses:

- :class:`UniRepLKNetEncoder`: stem, stages 1-3 of a pretrained UniRepLKNet and a
  channels-first LayerNorm (``norm0-2``) after each stage;
- :class:`Bottleneck`: fuses the three scales into the fourth width, then two
  small-kernel blocks;
- :class:`Decoder`: the encoder mirrored, upsampling with 2x2 transposed convolutions.

The full classifier :class:`UniRepLKNet` is registered in timm's model registry
(``unireplknet_a`` ... ``unireplknet_s``) with pretrained configs that point at the
authors' Hugging Face files, so that ``timm.create_model("unireplknet_n", pretrained=True)``
downloads, caches and loads the ImageNet checkpoint through timm's own machinery.

State-dict names equal the authors' (``stages.1.0.dwconv.dil_conv_k5_1.weight`` ...), so
their checkpoints load without key conversion.

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

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F  # noqa: N812
from timm.layers import DropPath, trunc_normal_
from timm.models import build_model_with_cfg, generate_default_cfgs, register_model
from torch import nn

__all__ = [
    "GRN",
    "UNIREPLKNET_VARIANTS",
    "Bottleneck",
    "Decoder",
    "DilatedReparamBlock",
    "LayerNorm2d",
    "SEBlock",
    "UniRepLKNet",
    "UniRepLKNetBlock",
    "UniRepLKNetEncoder",
    "checkpoint_filter_fn",
    "default_kernel_sizes",
    "fuse_conv_bn",
    "reparameterize_modules",
    "unwrap_state_dict",
]

HF_HUB_REPO = "DingXiaoH/UniRepLKNet"

#: oneDNN's inner product with fused GELU / residual add (the CPU kernel torch.compile uses for Linear).
_HAS_ONEDNN_LINEAR = torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_linear_pointwise")


def is_fast_cpu_inference(x: torch.Tensor) -> bool:
    """Whether the fast CPU inference paths apply to ``x``.

    They apply to plain eager float32 CPU inference only: no autograd, not traced, exported or compiled
    (ONNX/OpenVINO exports and ``torch.compile`` see the standard graph; their compilers fuse it themselves).
    """
    if not _HAS_ONEDNN_LINEAR or not torch.backends.mkldnn.enabled:
        return False
    if x.device.type != "cpu" or x.dtype != torch.float32 or torch.is_grad_enabled():
        return False
    return not (torch.compiler.is_compiling() or torch.jit.is_tracing() or torch.onnx.is_in_onnx_export())


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


class LayerNorm2d(nn.LayerNorm):
    """LayerNorm over the channels of an ``(N, C, H, W)`` tensor (ConvNeXt's ``channels_first``).

    Computed as the authors do (mean and biased variance over channels) rather than by
    permuting, so that results match theirs to float rounding.
    """

    def __init__(self, num_channels: int, eps: float = 1e-6) -> None:
        super().__init__(num_channels, eps=eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Normalise over dim 1."""
        if x.is_contiguous(memory_format=torch.channels_last) and is_fast_cpu_inference(x):
            # One kernel on the NHWC view (same mean and biased variance), for the channels-last activations of
            # the fused model's fast CPU path.
            return F.layer_norm(x.permute(0, 2, 3, 1), x.shape[1:2], self.weight, self.bias, self.eps).permute(
                0, 3, 1, 2
            )
        mean = x.mean(1, keepdim=True)
        var = (x - mean).pow(2).mean(1, keepdim=True)
        x = (x - mean) / torch.sqrt(var + self.eps)
        return self.weight[:, None, None] * x + self.bias[:, None, None]


class GRN(nn.Module):
    """Global Response Normalization on channels-last tensors (ConvNeXt V2).

    ``gamma`` and ``beta`` keep the authors' shape ``(1, 1, 1, C)``. After
    :meth:`UniRepLKNetBlock.reparameterize` the bias is folded into the next linear layer
    and ``beta`` is removed.
    """

    def __init__(self, dim: int, use_bias: bool = True) -> None:
        super().__init__()
        self.gamma = nn.Parameter(torch.zeros(1, 1, 1, dim))
        self.beta: nn.Parameter | None = nn.Parameter(torch.zeros(1, 1, 1, dim)) if use_bias else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Scale each channel by its spatial L2 norm relative to the mean over channels."""
        spatial_norm = torch.norm(x, p=2, dim=(1, 2), keepdim=True)
        relative_norm = spatial_norm / (spatial_norm.mean(dim=-1, keepdim=True) + 1e-6)
        out = (self.gamma * relative_norm + 1) * x
        return out if self.beta is None else out + self.beta


class SEBlock(nn.Module):
    """Squeeze-and-excitation with 1x1 convolutions (names ``down``/``up`` as upstream)."""

    def __init__(self, channels: int, internal_channels: int) -> None:
        super().__init__()
        self.down = nn.Conv2d(channels, internal_channels, kernel_size=1, bias=True)
        self.up = nn.Conv2d(internal_channels, channels, kernel_size=1, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Reweight channels by a gate computed from their global average."""
        gate = F.adaptive_avg_pool2d(x, output_size=1)
        gate = torch.sigmoid(self.up(F.relu(self.down(gate))))
        return x * gate


class ChannelsLast(nn.Module):
    """``(N, C, H, W)`` -> ``(N, H, W, C)``; a module so that state-dict indices match upstream."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Permute."""
        return x.permute(0, 2, 3, 1)


class ChannelsFirst(nn.Module):
    """``(N, H, W, C)`` -> ``(N, C, H, W)``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Permute."""
        return x.permute(0, 3, 1, 2)


def fuse_conv_bn(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> nn.Conv2d:
    """Return one convolution equal to ``bn(conv(x))`` in eval mode."""
    std = (bn.running_var + bn.eps).sqrt()
    scale = bn.weight / std
    conv_bias = conv.bias if conv.bias is not None else torch.zeros_like(bn.running_mean)
    fused = nn.Conv2d(
        conv.in_channels,
        conv.out_channels,
        conv.kernel_size,
        stride=conv.stride,
        padding=conv.padding,
        dilation=conv.dilation,
        groups=conv.groups,
        bias=True,
    ).to(conv.weight.device, conv.weight.dtype)
    fused.weight.data = conv.weight.detach() * scale.detach().reshape(-1, 1, 1, 1)
    fused.bias.data = (bn.bias + (conv_bias - bn.running_mean) * scale).detach()
    return fused


def _dilated_to_dense_kernel(kernel: torch.Tensor, dilation: int) -> torch.Tensor:
    """Spread a depthwise kernel ``(C, 1, k, k)`` onto the dense grid it covers at ``dilation``."""
    size = dilation * (kernel.shape[-1] - 1) + 1
    dense = kernel.new_zeros(kernel.shape[0], 1, size, size)
    dense[..., ::dilation, ::dilation] = kernel
    return dense


# Parallel dilated branches per large kernel size, (kernel size, dilation), as upstream.
_DILATED_BRANCHES: dict[int, tuple[tuple[int, int], ...]] = {
    17: ((5, 1), (9, 2), (3, 4), (3, 5), (3, 7)),
    15: ((5, 1), (7, 2), (3, 3), (3, 5), (3, 7)),
    13: ((5, 1), (7, 2), (3, 3), (3, 4), (3, 5)),
    11: ((5, 1), (5, 2), (3, 3), (3, 4), (3, 5)),
    9: ((5, 1), (5, 2), (3, 3), (3, 4)),
    7: ((5, 1), (3, 2), (3, 3)),
    5: ((3, 1), (3, 2)),
}


class DilatedReparamBlock(nn.Module):
    """Depthwise large kernel plus parallel dilated small kernels, each followed by its BN.

    The branches widen the receptive field cheaply while training; :meth:`merge_branches`
    folds all of them into one large depthwise convolution (``lk_origin``, with bias).
    """

    def __init__(self, channels: int, kernel_size: int) -> None:
        super().__init__()
        if kernel_size not in _DILATED_BRANCHES:
            msg = f"Dilated Reparam block supports kernel sizes {sorted(_DILATED_BRANCHES)}, got {kernel_size}."
            raise ValueError(msg)
        self.branches = _DILATED_BRANCHES[kernel_size]
        self.lk_origin = nn.Conv2d(
            channels, channels, kernel_size, padding=kernel_size // 2, groups=channels, bias=False
        )
        self.origin_bn: nn.BatchNorm2d | None = nn.BatchNorm2d(channels)
        for k, r in self.branches:
            conv = nn.Conv2d(
                channels, channels, k, padding=(r * (k - 1) + 1) // 2, dilation=r, groups=channels, bias=False
            )
            self.add_module(f"dil_conv_k{k}_{r}", conv)
            self.add_module(f"dil_bn_k{k}_{r}", nn.BatchNorm2d(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Sum of the large-kernel branch and the dilated branches."""
        if self.origin_bn is None:
            return self.lk_origin(x)
        out = self.origin_bn(self.lk_origin(x))
        for k, r in self.branches:
            out = out + getattr(self, f"dil_bn_k{k}_{r}")(getattr(self, f"dil_conv_k{k}_{r}")(x))
        return out

    @torch.no_grad()
    def merge_branches(self) -> None:
        """Fold every branch and BN into ``lk_origin``."""
        if self.origin_bn is None:
            return
        merged = fuse_conv_bn(self.lk_origin, self.origin_bn)
        large_k = merged.kernel_size[0]
        for k, r in self.branches:
            branch = fuse_conv_bn(getattr(self, f"dil_conv_k{k}_{r}"), getattr(self, f"dil_bn_k{k}_{r}"))
            dense = _dilated_to_dense_kernel(branch.weight, r)
            pad = large_k // 2 - dense.shape[-1] // 2
            merged.weight += F.pad(dense, [pad] * 4)
            merged.bias += branch.bias
            delattr(self, f"dil_conv_k{k}_{r}")
            delattr(self, f"dil_bn_k{k}_{r}")
        self.lk_origin = merged
        self.origin_bn = None


class UniRepLKNetBlock(nn.Module):
    """One UniRepLKNet block; ``kernel_size`` 3 or 5 uses a plain depthwise conv, >= 7 a Dilated Reparam block."""

    def __init__(
        self,
        dim: int,
        kernel_size: int,
        drop_path: float = 0.0,
        layer_scale_init_value: float = 1e-6,
        ffn_factor: int = 4,
    ) -> None:
        super().__init__()
        if kernel_size >= 7:
            self.dwconv: nn.Module = DilatedReparamBlock(dim, kernel_size)
        elif kernel_size in {3, 5}:
            self.dwconv = nn.Conv2d(dim, dim, kernel_size, padding=kernel_size // 2, groups=dim, bias=False)
        else:
            msg = f"UniRepLKNet blocks support kernel sizes 3, 5 or >= 7, got {kernel_size}."
            raise ValueError(msg)
        self.norm: nn.Module = nn.BatchNorm2d(dim)
        self.se = SEBlock(dim, dim // 4)
        ffn_dim = int(ffn_factor * dim)
        self.pwconv1 = nn.Sequential(ChannelsLast(), nn.Linear(dim, ffn_dim))
        self.act = nn.Sequential(nn.GELU(), GRN(ffn_dim))
        self.pwconv2 = nn.Sequential(nn.Linear(ffn_dim, dim, bias=False), ChannelsFirst(), nn.BatchNorm2d(dim))
        self.gamma: nn.Parameter | None = nn.Parameter(layer_scale_init_value * torch.ones(dim))
        self.drop_path = DropPath(drop_path) if drop_path > 0.0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Residual block."""
        if len(self.pwconv2) == 2 and is_fast_cpu_inference(x):  # re-parameterized, eager CPU inference
            return self._fused_cpu_forward(x)
        y = self.se(self.norm(self.dwconv(x)))
        y = self.pwconv2(self.act(self.pwconv1(y)))
        if self.gamma is not None:
            y = self.gamma.view(1, -1, 1, 1) * y
        return x + self.drop_path(y)

    def _fused_cpu_forward(self, x: torch.Tensor) -> torch.Tensor:
        """The fused block's function, faster on CPUs (returns a channels-last tensor).

        - both Linears run as oneDNN inner products with GELU and the residual add fused in (``F.linear``
          calls MKL's sgemm, which runs its AVX2 kernels on AMD CPUs: 2x slower there);
        - activations stay NHWC from the first Linear to the residual add: no strided permute copies;
        - for batch 1, the SE gate and GRN's ``gamma * N(x) + 1`` (per-channel scales) are folded into the
          Linear weights where the weight is smaller than the activation it would scale;
        - GRN's spatial norm as ``square().sum()`` (``vector_norm`` over non-inner dims is 3-8x slower);
        - 13x13 depthwise convs run on an NCHW copy (oneDNN's NCHW depthwise kernel is 2-4x faster there);
        - batches run the Linear/GELU/GRN/Linear part one sample at a time, to stay in cache.
        """
        batch, channels, height, width = x.shape
        pixels = height * width
        residual = x.contiguous(memory_format=torch.channels_last)
        large_kernel = self.dwconv.kernel_size[0] >= 7
        y = self.dwconv(x.contiguous() if large_kernel else residual)
        se = self.se
        squeezed = F.relu(F.linear(y.mean((2, 3)), se.down.weight.reshape(se.down.out_channels, -1), se.down.bias))
        gate = torch.sigmoid(F.linear(squeezed, se.up.weight.reshape(se.up.out_channels, -1), se.up.bias))
        nhwc = y.permute(0, 2, 3, 1)
        residual_rows = residual.permute(0, 2, 3, 1).reshape(batch, pixels, channels)
        if batch == 1:
            out = self._fused_cpu_mlp(nhwc, gate, residual_rows)
        else:
            out = torch.empty((batch, pixels, channels), dtype=x.dtype)
            for i in range(batch):
                out[i] = self._fused_cpu_mlp(nhwc[i : i + 1], gate[i : i + 1], residual_rows[i : i + 1])
        return out.view(batch, height, width, channels).permute(0, 3, 1, 2)

    def _fused_cpu_mlp(self, nhwc: torch.Tensor, gate: torch.Tensor, residual_rows: torch.Tensor) -> torch.Tensor:
        """``residual + Linear2(GRN(GELU(Linear1(y * gate))))`` for one sample: (1, H, W, C) -> (1, HW, C)."""
        _, height, width, channels = nhwc.shape
        pixels = height * width
        linear1, linear2, grn = self.pwconv1[1], self.pwconv2[0], self.act[1]
        if pixels > linear1.out_features:  # (y * gate) @ W1^T == y @ (W1 * gate)^T
            rows, weight1 = nhwc.reshape(pixels, channels), linear1.weight * gate
        else:  # scale while transposing to NHWC, in one pass
            rows = torch.empty((pixels, channels), dtype=nhwc.dtype)
            torch.mul(
                nhwc.reshape(height, width, channels), gate.view(1, 1, channels), out=rows.view(height, width, channels)
            )
            weight1 = linear1.weight
        hidden = torch.ops.mkldnn._linear_pointwise(rows, weight1, linear1.bias, "gelu", [], "none")  # noqa: SLF001
        spatial_norm = hidden.square().sum(dim=0).sqrt()
        scale = grn.gamma.reshape(-1) * (spatial_norm / (spatial_norm.mean() + 1e-6)) + 1
        if pixels > linear2.out_features:  # (h * s) @ W2^T == h @ (W2 * s)^T
            weight2 = linear2.weight * scale
        else:
            hidden.mul_(scale)
            weight2 = linear2.weight
        residual = residual_rows.reshape(pixels, channels)
        out = torch.ops.mkldnn._linear_pointwise.binary(hidden, residual, weight2, linear2.bias, "add")  # noqa: SLF001
        return out.view(1, pixels, channels)

    @torch.no_grad()
    def reparameterize(self) -> None:
        """Fold BNs, dilated branches, GRN bias and layer scale into the convs and linears.

        Afterwards the block is ``dwconv -> SE -> Linear -> GELU -> GRN(no bias) -> Linear``
        and computes the same function (in eval mode) with fewer operations.
        """
        if isinstance(self.norm, nn.BatchNorm2d):
            if isinstance(self.dwconv, DilatedReparamBlock):
                self.dwconv.merge_branches()
                self.dwconv = self.dwconv.lk_origin
            self.dwconv = fuse_conv_bn(self.dwconv, self.norm)
            self.norm = nn.Identity()
        if len(self.pwconv2) == 3:
            linear, bn = self.pwconv2[0], self.pwconv2[2]
            grn = self.act[1]
            scale = self.gamma if self.gamma is not None else torch.ones_like(bn.weight)
            std = (bn.running_var + bn.eps).sqrt()
            bn_scale = bn.weight / std
            # GRN's bias passes through the linear layer: b' = W @ beta.
            linear_bias = linear.weight @ grn.beta.reshape(-1) if grn.beta is not None else 0.0
            fused = nn.Linear(linear.in_features, linear.out_features, bias=True).to(
                linear.weight.device, linear.weight.dtype
            )
            fused.weight.data = linear.weight * (bn_scale * scale).reshape(-1, 1)
            fused.bias.data = (bn.bias + (linear_bias - bn.running_mean) * bn_scale) * scale
            self.pwconv2 = nn.Sequential(fused, ChannelsFirst())
            grn.beta = None
            self.gamma = None


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
        ]
    )
    for i in range(len(dims) - 1):
        layers.append(
            nn.Sequential(
                nn.Conv2d(dims[i], dims[i + 1], kernel_size=3, stride=2, padding=1), LayerNorm2d(dims[i + 1])
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


def _init_weights(module: nn.Module) -> None:
    """Truncated-normal init for convs and linears, as upstream."""
    if isinstance(module, nn.Conv2d | nn.ConvTranspose2d | nn.Linear):
        trunc_normal_(module.weight, std=0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)


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
        in_chans: Input channels.
        num_classes: Classes of the head; 0 gives an identity head.
        dims: Widths of the 4 stages.
        depths: Blocks per stage.
        kernel_sizes: Kernel size of every block; defaults to :func:`default_kernel_sizes`.
        drop_path_rate: Stochastic depth, rising linearly to this value.
        layer_scale_init_value: Initial layer-scale value.
        head_init_scale: Multiplies the initial head weights.

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
        self.apply(_init_weights)
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
        dims: Widths of the 4 UniRepLKNet stages (the 4th sizes the bottleneck only).
        depths: Blocks per stage.
        kernel_sizes: Per-block kernel sizes; defaults to :func:`default_kernel_sizes`.
        in_chans: Input channels.
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
        self.apply(_init_weights)

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
        dims: The 4 UniRepLKNet widths.
        depth: Number of blocks after the fusion.
        kernel_size: Kernel size of those blocks.
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
        self.apply(_init_weights)

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
        dims: The 4 UniRepLKNet widths.
        depths: Blocks per stage (the 4th is unused).
        kernel_sizes: Per-block kernel sizes; defaults to :func:`default_kernel_sizes`.
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
                nn.ConvTranspose2d(dims[i + 1], dims[i], kernel_size=2, stride=2, bias=False), LayerNorm2d(dims[i])
            )
            for i in reversed(range(levels))
        )
        self.stages = _make_stages(dims[:levels], kernel_sizes[:levels])
        self.apply(_init_weights)

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


# ---------------------------------------------------------------- checkpoints and timm


def unwrap_state_dict(checkpoint: object) -> dict[str, torch.Tensor] | None:
    """Return the tensors of a checkpoint saved bare or under ``model``, ``models`` or ``state_dict``.

    Returns ``None`` when ``checkpoint`` holds no state dict.
    """
    if not isinstance(checkpoint, dict):
        return None
    for key in ("model", "models", "state_dict"):
        if isinstance(checkpoint.get(key), dict):
            checkpoint = checkpoint[key]
            break
    if not checkpoint or not all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in checkpoint.items()):
        return None
    return checkpoint


def checkpoint_filter_fn(state_dict: dict[str, Any], model: nn.Module) -> dict[str, torch.Tensor]:  # noqa: ARG001
    """Unwrap, as timm's ``pretrained_filter_fn``, the authors' ``{"model": ...}`` checkpoints."""
    tensors = unwrap_state_dict(state_dict)
    if tensors is None:
        msg = "The UniRepLKNet checkpoint holds no state dict (tensors by name, bare or under 'model')."
        raise ValueError(msg)
    return tensors


def _cfg(file: str) -> dict[str, Any]:
    return {
        "hf_hub_id": HF_HUB_REPO,
        "hf_hub_filename": file,
        "num_classes": 1000,
        "input_size": (3, 224, 224),
        "pool_size": (7, 7),
        "crop_pct": 0.875,
        "interpolation": "bicubic",
        "mean": (0.485, 0.456, 0.406),
        "std": (0.229, 0.224, 0.225),
        "first_conv": "downsample_layers.0.0",
        "classifier": "head",
        "license": "apache-2.0",
    }


default_cfgs = generate_default_cfgs({f"{name}.in1k": _cfg(v["file"]) for name, v in UNIREPLKNET_VARIANTS.items()})


def _create_unireplknet(variant: str, pretrained: bool = False, **kwargs: Any) -> UniRepLKNet:  # noqa: ANN401
    config = UNIREPLKNET_VARIANTS[variant]
    model_args = {"dims": config["dims"], "depths": config["depths"], **kwargs}
    return build_model_with_cfg(
        UniRepLKNet,
        variant,
        pretrained,
        pretrained_filter_fn=checkpoint_filter_fn,
        **model_args,
    )


@register_model
def unireplknet_a(pretrained: bool = False, **kwargs: Any) -> UniRepLKNet:  # noqa: ANN401
    """UniRepLKNet-A (ImageNet-1k 77.0%)."""
    return _create_unireplknet("unireplknet_a", pretrained, **kwargs)


@register_model
def unireplknet_f(pretrained: bool = False, **kwargs: Any) -> UniRepLKNet:  # noqa: ANN401
    """UniRepLKNet-F (ImageNet-1k 78.6%)."""
    return _create_unireplknet("unireplknet_f", pretrained, **kwargs)


@register_model
def unireplknet_p(pretrained: bool = False, **kwargs: Any) -> UniRepLKNet:  # noqa: ANN401
    """UniRepLKNet-P (ImageNet-1k 80.2%)."""
    return _create_unireplknet("unireplknet_p", pretrained, **kwargs)


@register_model
def unireplknet_n(pretrained: bool = False, **kwargs: Any) -> UniRepLKNet:  # noqa: ANN401
    """UniRepLKNet-N (ImageNet-1k 81.6%), MiniMaxAD's encoder."""
    return _create_unireplknet("unireplknet_n", pretrained, **kwargs)


@register_model
def unireplknet_t(pretrained: bool = False, **kwargs: Any) -> UniRepLKNet:  # noqa: ANN401
    """UniRepLKNet-T (ImageNet-1k 83.2%)."""
    return _create_unireplknet("unireplknet_t", pretrained, **kwargs)


@register_model
def unireplknet_s(pretrained: bool = False, **kwargs: Any) -> UniRepLKNet:  # noqa: ANN401
    """UniRepLKNet-S (ImageNet-1k 83.9%)."""
    return _create_unireplknet("unireplknet_s", pretrained, **kwargs)
