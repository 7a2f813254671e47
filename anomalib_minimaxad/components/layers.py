# Original Code
# Copyright (c) 2023 the UniRepLKNet authors (Xiaohan Ding et al.)
# https://github.com/AILab-CVC/UniRepLKNet
# SPDX-License-Identifier: Apache-2.0
#
# Modified
# Copyright (C) 2026 anomalib-minimaxad developers
# SPDX-License-Identifier: Apache-2.0
"""The layers of UniRepLKNet, each with the re-parameterization that fuses it for inference.

UniRepLKNet (`Ding et al., 2024 <https://arxiv.org/abs/2311.15599>`_) is a large-kernel
ConvNet. Each block is: depthwise conv (a Dilated Reparam block for kernels >= 7) -> BN ->
SE -> Linear -> GELU -> GRN -> Linear -> BN -> layer scale, with a residual connection.
All the BNs, the dilated branches, the GRN bias and the layer scale fold into plain
convolutions and linears for inference (:meth:`UniRepLKNetBlock.reparameterize`,
:meth:`DilatedReparamBlock.merge_branches`, :func:`fuse_conv_bn`).

State-dict names equal the authors' (``dwconv.dil_conv_k5_1.weight`` ...).

Example:
    >>> import torch
    >>> block = UniRepLKNetBlock(16, kernel_size=13).eval()
    >>> x = torch.rand(1, 16, 32, 32)
    >>> before = block(x)
    >>> block.reparameterize()
    >>> bool((block(x) - before).abs().max() < 1e-5)
    True
"""

from typing import TypeVar

import torch
import torch.nn.functional as F  # noqa: N812
from timm.layers import DropPath
from torch import nn

from . import fast_cpu

__all__ = [
    "GRN",
    "ChannelsFirst",
    "ChannelsLast",
    "DilatedReparamBlock",
    "FastCPUConv2d",
    "FastCPUConvTranspose2d",
    "LayerNorm2d",
    "SEBlock",
    "UniRepLKNetBlock",
    "fuse_conv_bn",
]


class LayerNorm2d(nn.LayerNorm):
    """LayerNorm over the channels of an ``(N, C, H, W)`` tensor (ConvNeXt's ``channels_first``).

    Computed as the authors do (mean and biased variance over channels) rather than by
    permuting, so that results match theirs to float rounding.
    """

    def __init__(self, num_channels: int, eps: float = 1e-6) -> None:
        super().__init__(num_channels, eps=eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Normalise over dim 1."""
        if x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous():
            # One kernel on the NHWC view (same mean and biased variance), for the channels-last activations of
            # the fast CPU path.
            return F.layer_norm(x.permute(0, 2, 3, 1), x.shape[1:2], self.weight, self.bias, self.eps).permute(
                0,
                3,
                1,
                2,
            )
        mean = x.mean(1, keepdim=True)
        var = (x - mean).pow(2).mean(1, keepdim=True)
        x = (x - mean) / torch.sqrt(var + self.eps)
        return self.weight[:, None, None] * x + self.bias[:, None, None]


class FastCPUConv2d(nn.Conv2d):
    """An ``nn.Conv2d`` (same parameters and state dict) that uses :func:`.fast_cpu.conv2d` where it applies.

    :meth:`MiniMaxADModel.reparameterize <anomalib_minimaxad.torch_model.MiniMaxADModel.reparameterize>`
    puts these in place of the dense convs of a fused model on CPU; elsewhere (training, float16 autocast, exports,
    other devices) they compute ``nn.Conv2d.forward``.
    """

    @classmethod
    def sharing_parameters(cls, conv: nn.Conv2d) -> "FastCPUConv2d":
        """A ``FastCPUConv2d`` with the configuration of ``conv`` and the same parameter tensors."""
        fast = cls(
            conv.in_channels,
            conv.out_channels,
            conv.kernel_size,
            conv.stride,
            conv.padding,
            conv.dilation,
            conv.groups,
            bias=False,
            padding_mode=conv.padding_mode,
            device="meta",
        )
        return _with_parameters_of(fast, conv)

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        #: Compute with :mod:`.fast_cpu` where it applies (eager CPU inference, float32 or bf16 autocast).
        self.fast_cpu = True

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The convolution."""
        fast = self.fast_cpu and self.padding_mode == "zeros" and not isinstance(self.padding, str)
        if fast and fast_cpu.applies(x):
            return fast_cpu.conv2d(self, x)
        return super().forward(x)


class FastCPUConvTranspose2d(nn.ConvTranspose2d):
    """An ``nn.ConvTranspose2d`` (same parameters and state dict) that uses :func:`.fast_cpu.conv_transpose2d`.

    Used where the kernel equals the stride (the decoder's 2x2 upsampling) and :func:`.fast_cpu.applies`;
    elsewhere it computes ``nn.ConvTranspose2d.forward``.
    """

    @classmethod
    def sharing_parameters(cls, conv: nn.ConvTranspose2d) -> "FastCPUConvTranspose2d":
        """A ``FastCPUConvTranspose2d`` with the configuration of ``conv`` and the same parameter tensors."""
        fast = cls(
            conv.in_channels,
            conv.out_channels,
            conv.kernel_size,
            conv.stride,
            conv.padding,
            conv.output_padding,
            conv.groups,
            bias=False,
            dilation=conv.dilation,
            padding_mode=conv.padding_mode,
            device="meta",
        )
        return _with_parameters_of(fast, conv)

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        #: Compute with :mod:`.fast_cpu` where it applies (eager CPU inference, float32 or bf16 autocast).
        self.fast_cpu = True

    def forward(self, x: torch.Tensor, output_size: list[int] | None = None) -> torch.Tensor:
        """The transposed convolution."""
        fast = self.fast_cpu and output_size is None and fast_cpu.is_pixel_shuffle_transpose(self)
        if fast and fast_cpu.applies(x):
            return fast_cpu.conv_transpose2d(self, x)
        return super().forward(x, output_size)


_FastConv = TypeVar("_FastConv", FastCPUConv2d, FastCPUConvTranspose2d)


def _with_parameters_of(fast: _FastConv, conv: nn.Module) -> _FastConv:
    """``fast`` (made on the meta device) with the parameter tensors and train/eval mode of ``conv``."""
    fast.weight, fast.bias = conv.weight, conv.bias
    return fast.train(conv.training)


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

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: PLR6301 - nn.Module's hook
        """Permute."""
        return x.permute(0, 2, 3, 1)


class ChannelsFirst(nn.Module):
    """``(N, H, W, C)`` -> ``(N, C, H, W)``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: PLR6301 - nn.Module's hook
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
            channels,
            channels,
            kernel_size,
            padding=kernel_size // 2,
            groups=channels,
            bias=False,
        )
        self.origin_bn: nn.BatchNorm2d | None = nn.BatchNorm2d(channels)
        for k, r in self.branches:
            conv = nn.Conv2d(
                channels,
                channels,
                k,
                padding=(r * (k - 1) + 1) // 2,
                dilation=r,
                groups=channels,
                bias=False,
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
        #: Set by :meth:`reparameterize`: BNs, branches, GRN bias and layer scale are folded in.
        self.is_fused = False
        #: Once fused, compute with :mod:`.fast_cpu` where it applies (eager CPU inference, float32 or bf16 autocast).
        self.fast_cpu = True

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Residual block; a fused block with ``fast_cpu`` set uses :mod:`.fast_cpu` where it applies."""
        if self.is_fused and self.fast_cpu and fast_cpu.applies(x):
            return fast_cpu.fused_block_forward(self, x)
        return self.forward_plain(x)

    def forward_plain(self, x: torch.Tensor) -> torch.Tensor:
        """Residual block in standard torch operations (training, exports, and the fast path's fallback)."""
        y = self.se(self.norm(self.dwconv(x)))
        y = self.pwconv2(self.act(self.pwconv1(y)))
        if self.gamma is not None:
            y = self.gamma.view(1, -1, 1, 1) * y
        return x + self.drop_path(y)

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
        if not self.is_fused:
            linear, bn = self.pwconv2[0], self.pwconv2[2]
            grn = self.act[1]
            scale = self.gamma if self.gamma is not None else torch.ones_like(bn.weight)
            std = (bn.running_var + bn.eps).sqrt()
            bn_scale = bn.weight / std
            # GRN's bias passes through the linear layer: b' = W @ beta.
            linear_bias = linear.weight @ grn.beta.reshape(-1) if grn.beta is not None else 0.0
            fused = nn.Linear(linear.in_features, linear.out_features, bias=True).to(
                linear.weight.device,
                linear.weight.dtype,
            )
            fused.weight.data = linear.weight * (bn_scale * scale).reshape(-1, 1)
            fused.bias.data = (bn.bias + (linear_bias - bn.running_mean) * bn_scale) * scale
            self.pwconv2 = nn.Sequential(fused, ChannelsFirst())
            grn.beta = None
            self.gamma = None
            self.is_fused = True
