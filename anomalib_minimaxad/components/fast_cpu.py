# Copyright (C) 2026 anomalib-minimaxad developers
# SPDX-License-Identifier: Apache-2.0
"""The optional fast CPU kernels of a fused MiniMaxAD (the package's one use of private torch ops).

A fused :class:`~anomalib_minimaxad.components.layers.UniRepLKNetBlock` with ``fast_cpu = True``
(what :meth:`MiniMaxADModel.reparameterize <anomalib_minimaxad.torch_model.MiniMaxADModel.reparameterize>`
sets by default), and the :class:`~anomalib_minimaxad.components.layers.FastCPUConv2d` and
:class:`~anomalib_minimaxad.components.layers.FastCPUConvTranspose2d` that replace the dense and transposed
convs outside the blocks, compute their function here when :func:`applies` to the input: eager CPU
inference without autograd, in float32 or under bfloat16 autocast where oneDNN has bf16 kernels (AVX-512 and
newer; what ``precision="bf16-mixed"`` runs), not traced, exported or compiled (ONNX/OpenVINO exports and
``torch.compile`` see the standard graph; their compilers fuse it themselves). Everywhere else, and
whenever oneDNN's ``torch.ops.mkldnn._linear_pointwise`` is missing or rejects its operands, the block
runs its plain-torch :meth:`~anomalib_minimaxad.components.layers.UniRepLKNetBlock.forward_plain`, which
computes the same function (to float rounding, tested to 1e-5; under bf16 autocast to bf16 rounding).

Weights that do not change from call to call are kept in oneDNN's blocked layout (oneDNN would otherwise
re-order them at every call): the dense and transposed convs, and the Linears whose output width is at least the pixel
count (the others take the SE gate or GRN scale into their weight at every call). For MiniMaxAD-N at
256 px that is ~27 M floats (~107 MB) next to the model's 31 M, made at the first call for an input shape
and dropped with the model; a weight changed in place is re-packed. Under bf16 autocast the same weights
are kept as bf16 copies (packed or plain, about half that size again) instead of being cast at every call.

Example:
    >>> import torch
    >>> from anomalib_minimaxad.components import UniRepLKNetBlock
    >>> block = UniRepLKNetBlock(16, kernel_size=13).eval()
    >>> block.reparameterize()
    >>> x = torch.rand(1, 16, 32, 32)
    >>> with torch.inference_mode():
    ...     fast, plain = block(x), block.forward_plain(x)
    >>> bool((fast - plain).abs().max() < 1e-5)
    True
"""

import logging
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F  # noqa: N812
from torch import nn

if TYPE_CHECKING:
    from .layers import UniRepLKNetBlock

__all__ = [
    "applies",
    "compute_dtype",
    "conv2d",
    "conv_transpose2d",
    "fused_block_forward",
    "has_bf16_kernels",
    "is_available",
    "version_key",
]

logger = logging.getLogger(__name__)

#: oneDNN's inner product with fused GELU / residual add (the CPU kernel ``torch.compile`` uses for Linear);
#: ``None`` where this torch build lacks it.
_ONEDNN_LINEAR = getattr(torch.ops.mkldnn, "_linear_pointwise", None) if torch.backends.mkldnn.is_available() else None


def _onednn_linear() -> Any:  # noqa: ANN401 - a torch.ops overload packet, untyped
    """OneDNN's inner product; only reached where :func:`applies` found it, so its absence is a bug."""
    if _ONEDNN_LINEAR is None:
        msg = "this torch build has no torch.ops.mkldnn._linear_pointwise, yet the fused CPU path was taken"
        raise RuntimeError(msg)
    return _ONEDNN_LINEAR


#: oneDNN's convolution, which takes a weight already in its blocked layout (``torch.compile``'s CPU conv kernel).
_ONEDNN_CONV = (
    getattr(torch.ops.mkldnn, "_convolution_pointwise", None) if torch.backends.mkldnn.is_available() else None
)

#: Weights in oneDNN's blocked layout or cast to bf16, by (``id`` of the weight, what was made of it): (weak
#: reference to the weight, (its version, storage, the operand shape the layout was chosen for), the copy). oneDNN
#: re-orders a plain weight at every call: for the bottleneck's 960 -> 640 conv that was more than half of its time.
#: One entry per weight and use; dropped with the weight.
_packed_weights: dict[tuple[int, str], tuple[weakref.ref[torch.Tensor], tuple[int, ...], torch.Tensor]] = {}

#: Operand dtypes oneDNN refused on this machine (e.g. an ISA without the kernel); not tried again.
_rejected_dtypes: set[torch.dtype] = set()

#: Whether oneDNN has bf16 kernels here: its AVX-512 (``avx512_core``) check, which honours ``ONEDNN_MAX_CPU_ISA``.
#: Below it (AVX2 CPUs) bf16 autocast keeps the plain-torch path.
_onednn_bf16: bool = _ONEDNN_LINEAR is not None and bool(
    torch.ops.mkldnn._is_mkldnn_bf16_supported(),  # noqa: SLF001 - this module's private oneDNN ops
)

#: Whether the 13x13 depthwise convolutions run on an NCHW copy. With AVX-512 oneDNN's NCHW depthwise kernel is
#: 2x faster than its NHWC one at these sizes; below AVX-512 (AVX2 CPUs, or ``ONEDNN_MAX_CPU_ISA=AVX2``) NCHW
#: depthwise runs as an im2col GEMM, 20-45x slower than the NHWC ``brdgmm`` kernel.
_nchw_large_depthwise: bool = _onednn_bf16


def is_available() -> bool:
    """Whether the oneDNN kernels exist in this torch build and oneDNN is enabled."""
    return _ONEDNN_LINEAR is not None and torch.backends.mkldnn.enabled


def has_bf16_kernels() -> bool:
    """Whether oneDNN has bf16 kernels on this CPU (AVX-512 and newer; honours ``ONEDNN_MAX_CPU_ISA``).

    Without them CPU bf16 autocast is emulated: about 12x slower than float32 for MiniMaxAD-N at 256 px under
    AVX2 caps on an AMD EPYC (Zen 4) VM.
    """
    return _onednn_bf16


def version_key(tensor: torch.Tensor) -> tuple[int, int] | None:
    """``(in-place version counter, storage address)`` of ``tensor``: it changes when the values may have.

    The key of what is cached from a weight (here and the fused copy of the frozen encoder): an in-place
    change (``load_state_dict``, an optimizer step) or a new storage makes it differ. ``None`` for inference
    tensors (made under ``torch.inference_mode``), which have no version counter: cache nothing from them.
    """
    if tensor.is_inference():
        return None
    return tensor._version, tensor.data_ptr()  # noqa: SLF001 - the in-place change counter


def _packed(weight: torch.Tensor, use: str, shape: tuple[int, ...], pack: Callable[[], torch.Tensor]) -> torch.Tensor:
    """What ``pack`` makes of ``weight`` for ``use`` (e.g. oneDNN's layout for operands of ``shape``), unless cached.

    Keyed by :func:`version_key`; for inference tensors ``pack`` runs at every call (nothing is cached).
    """
    version = version_key(weight)
    if version is None:
        return pack()
    key, cache_key = (*version, *shape), (id(weight), use)
    entry = _packed_weights.get(cache_key)
    if entry is not None and entry[0]() is weight and entry[1] == key:
        return entry[2]
    packed = pack()
    _packed_weights[cache_key] = (weakref.ref(weight, lambda _: _packed_weights.pop(cache_key, None)), key, packed)
    return packed


def _cast(tensor: torch.Tensor | None, dtype: torch.dtype) -> torch.Tensor | None:
    """``tensor`` (a weight or bias) in ``dtype``; a bf16 copy is cached like a packed weight."""
    if tensor is None or tensor.dtype == dtype:
        return tensor
    return _packed(tensor, f"cast-{dtype}", (), lambda: tensor.to(dtype))


def compute_dtype(x: torch.Tensor) -> torch.dtype | None:
    """The dtype the fast kernels compute in for input ``x``, ``None`` where they do not apply.

    float32 for float32 input; bfloat16 under CPU bfloat16 autocast (for float32 or bfloat16 input) where oneDNN
    has bf16 kernels. Never with autograd, on other devices, or while traced, exported or compiled.
    """
    if not is_available() or x.device.type != "cpu" or torch.is_grad_enabled():
        return None
    if torch.compiler.is_compiling() or torch.jit.is_tracing() or torch.onnx.is_in_onnx_export():
        return None
    if torch.is_autocast_enabled("cpu"):
        dtype = torch.get_autocast_dtype("cpu")
        supported = dtype == torch.bfloat16 and _onednn_bf16 and x.dtype in {torch.float32, torch.bfloat16}
    else:
        dtype = torch.float32
        supported = x.dtype == torch.float32
    return dtype if supported and dtype not in _rejected_dtypes else None


def applies(x: torch.Tensor) -> bool:
    """Whether the fast kernels may compute a fused block's output for input ``x`` (see :func:`compute_dtype`)."""
    return compute_dtype(x) is not None


def fused_block_forward(block: "UniRepLKNetBlock", x: torch.Tensor) -> torch.Tensor:
    """The fused block's function, faster on CPUs (returns a channels-last tensor of :func:`compute_dtype`).

    - both Linears run as oneDNN inner products, the second with the residual add fused in (``F.linear``
      calls MKL's sgemm, which runs its AVX2 kernels on AMD CPUs: 2x slower there);
    - GELU in place after the first Linear, not as oneDNN's fused post-op: same speed with AVX-512, and
      oneDNN's erf-GELU post-op costs 4x the Linear itself with AVX2;
    - activations stay NHWC from the first Linear to the residual add: no strided permute copies;
    - for batch 1, the SE gate and GRN's ``gamma * N(x) + 1`` (per-channel scales) are folded into the
      Linear weights where the weight is smaller than the activation it would scale;
    - GRN's spatial norm as ``square().sum()`` (``vector_norm`` over non-inner dims is 3-8x slower);
    - with AVX-512, 13x13 depthwise convs run on an NCHW copy (oneDNN's NCHW kernel is 2x faster there);
      with AVX2 they stay NHWC (there NCHW falls back to an im2col GEMM, 20-45x slower);
    - batches run the Linear/GELU/GRN/Linear part one sample at a time, to stay in cache;
    - under bf16 autocast the convs, Linears and residual stream run in bf16 with cached bf16 weights
      (autocast would cast every weight at every call); the SE gate and GRN's scale are computed in float32.

    Falls back to ``block.forward_plain(x)`` when oneDNN rejects the operands.
    """
    dtype = compute_dtype(x)
    if dtype is None or block.pwconv1[1].weight.dtype != torch.float32:
        return block.forward_plain(x)
    if dtype == torch.float32:
        out = _fused_block(block, x)
    else:
        with torch.autocast("cpu", enabled=False):  # the operands are cast here, weights once
            out = _fused_block(block, x.to(dtype))
    return block.forward_plain(x) if out is None else out


def _fused_block(block: "UniRepLKNetBlock", x: torch.Tensor) -> torch.Tensor | None:
    """:func:`fused_block_forward` in ``x.dtype``; ``None`` when oneDNN rejects the operands."""
    batch, channels, height, width = x.shape
    pixels, dtype = height * width, x.dtype
    residual = x.contiguous(memory_format=torch.channels_last)
    dwconv = block.dwconv
    nchw_depthwise = _nchw_large_depthwise and dwconv.kernel_size[0] >= 7
    y = F.conv2d(
        x.contiguous() if nchw_depthwise else residual,
        _cast(dwconv.weight, dtype),
        _cast(dwconv.bias, dtype),
        dwconv.stride,
        dwconv.padding,
        dwconv.dilation,
        dwconv.groups,
    )
    se = block.se
    squeezed = F.relu(F.linear(y.mean((2, 3)).float(), se.down.weight.reshape(se.down.out_channels, -1), se.down.bias))
    gate = torch.sigmoid(F.linear(squeezed, se.up.weight.reshape(se.up.out_channels, -1), se.up.bias)).to(dtype)
    nhwc = y.permute(0, 2, 3, 1)
    residual_rows = residual.permute(0, 2, 3, 1).reshape(batch, pixels, channels)
    try:
        if batch == 1:
            out = _mlp(block, nhwc, gate, residual_rows)
        else:
            out = torch.empty((batch, pixels, channels), dtype=dtype)
            for i in range(batch):
                out[i] = _mlp(block, nhwc[i : i + 1], gate[i : i + 1], residual_rows[i : i + 1])
    except RuntimeError as error:  # e.g. "could not create a primitive descriptor" on an ISA without the kernel
        _rejected_dtypes.add(dtype)
        logger.warning("oneDNN's fused Linear rejected %s input (%s); using the plain-torch block.", dtype, error)
        return None
    return out.view(batch, height, width, channels).permute(0, 3, 1, 2)


def _mlp(
    block: "UniRepLKNetBlock",
    nhwc: torch.Tensor,
    gate: torch.Tensor,
    residual_rows: torch.Tensor,
) -> torch.Tensor:
    """``residual + Linear2(GRN(GELU(Linear1(y * gate))))`` for one sample: (1, H, W, C) -> (1, HW, C)."""
    _, height, width, channels = nhwc.shape
    pixels, dtype = height * width, nhwc.dtype
    linear1, linear2, grn = block.pwconv1[1], block.pwconv2[0], block.act[1]
    if pixels > linear1.out_features:  # (y * gate) @ W1^T == y @ (W1 * gate)^T
        rows, weight1 = nhwc.reshape(pixels, channels), _cast(linear1.weight, dtype) * gate
    else:  # scale while transposing to NHWC, in one pass
        rows = torch.empty((pixels, channels), dtype=dtype)
        torch.mul(
            nhwc.reshape(height, width, channels),
            gate.view(1, 1, channels),
            out=rows.view(height, width, channels),
        )
        weight1 = _packed_linear_weight(linear1.weight, pixels, dtype)
    hidden = torch.ops.aten.gelu_(_onednn_linear()(rows, weight1, _cast(linear1.bias, dtype), "none", [], ""))
    spatial_norm = hidden.square().sum(dim=0).float().sqrt()
    scale = (grn.gamma.reshape(-1) * (spatial_norm / (spatial_norm.mean() + 1e-6)) + 1).to(dtype)
    if pixels > linear2.out_features:  # (h * s) @ W2^T == h @ (W2 * s)^T
        weight2 = _cast(linear2.weight, dtype) * scale
    else:
        hidden.mul_(scale)
        weight2 = _packed_linear_weight(linear2.weight, pixels, dtype)
    residual = residual_rows.reshape(pixels, channels)
    out = _onednn_linear().binary(hidden, residual, weight2, _cast(linear2.bias, dtype), "add")
    return out.view(1, pixels, channels)


def _packed_linear_weight(weight: torch.Tensor, rows: int, dtype: torch.dtype) -> torch.Tensor:
    return _packed(
        weight,
        f"linear-{dtype}",
        (rows,),
        lambda: torch.ops.mkldnn._reorder_linear_weight(weight.to(dtype), rows),  # noqa: SLF001
    )


def conv2d(conv: nn.Conv2d, x: torch.Tensor) -> torch.Tensor:
    """``conv(x)`` for a dense, zero-padded conv with a cached weight in oneDNN's layout (where :func:`applies`).

    Same values as ``F.conv2d`` (the same oneDNN kernel, without re-ordering the weight at every call; under bf16
    autocast in bf16, as autocast computes it). Falls back to ``F.conv2d`` when oneDNN rejects the operands.
    """
    weight, shape, dtype = conv.weight, tuple(x.shape), compute_dtype(x)

    def pack() -> torch.Tensor:
        return torch._C._nn.mkldnn_reorder_conv2d_weight(  # noqa: SLF001 - oneDNN's weight re-order
            weight.to(dtype).to_mkldnn(),
            list(conv.padding),
            list(conv.stride),
            list(conv.dilation),
            conv.groups,
            list(shape),
        )

    if _ONEDNN_CONV is not None and dtype is not None:
        try:
            return _ONEDNN_CONV(
                x.to(dtype),
                _packed(weight, f"conv-{dtype}", shape, pack),
                _cast(conv.bias, dtype),
                list(conv.padding),
                list(conv.stride),
                list(conv.dilation),
                conv.groups,
                "none",
                [],
                "",
            )
        except RuntimeError as error:
            _rejected_dtypes.add(dtype)
            logger.warning("oneDNN's convolution rejected %s input (%s); using F.conv2d.", dtype, error)
    return F.conv2d(x, weight, conv.bias, conv.stride, conv.padding, conv.dilation, conv.groups)


def is_pixel_shuffle_transpose(conv: nn.ConvTranspose2d) -> bool:
    """Whether ``conv`` is a transposed conv whose kernel equals its stride (each input pixel fills its own patch)."""
    return (
        tuple(conv.kernel_size) == tuple(conv.stride)
        and tuple(conv.padding) == (0, 0)
        and tuple(conv.output_padding) == (0, 0)
        and tuple(conv.dilation) == (1, 1)
        and conv.groups == 1
        and conv.padding_mode == "zeros"
    )


def conv_transpose2d(conv: nn.ConvTranspose2d, x: torch.Tensor) -> torch.Tensor:
    """``conv(x)`` for a :func:`is_pixel_shuffle_transpose` conv (where :func:`applies`), as one GEMM and one copy.

    Every input pixel's patch is ``x[pixel] @ weight``: one oneDNN inner product over all pixels (cached weight
    in its layout) gives the patches, and one copy puts them in place (a channels-last result). On the
    decoder's shapes at 256 px that was 60-120 us less per call than torch's transposed convolution (~0.6 ms),
    and up to 7x faster where torch's kernel gets a channels-last input with a contiguous weight (AVX-512, 2 threads).
    Falls back to ``F.conv_transpose2d`` when oneDNN rejects the operands.
    """
    batch, in_channels, height, width = x.shape
    kernel_h, kernel_w = conv.kernel_size
    out_channels, rows = conv.out_channels, batch * height * width
    weight, dtype = conv.weight, compute_dtype(x)

    def pack() -> torch.Tensor:
        # (C_in, C_out, kh, kw) -> (kh * kw * C_out, C_in): output columns ordered (kernel row, kernel column, channel)
        patches = weight.permute(2, 3, 1, 0).reshape(-1, in_channels).to(dtype, memory_format=torch.contiguous_format)
        return torch.ops.mkldnn._reorder_linear_weight(patches, rows)  # noqa: SLF001

    if dtype is None:
        return F.conv_transpose2d(x, weight, conv.bias, conv.stride)
    bias = _cast(conv.bias, dtype)
    if bias is not None:
        bias = bias.repeat(kernel_h * kernel_w)
    try:
        patches = _onednn_linear()(
            x.to(dtype).permute(0, 2, 3, 1).reshape(rows, in_channels),
            _packed(weight, f"transposed-conv-{dtype}", (rows,), pack),
            bias,
            "none",
            [],
            "",
        )
    except RuntimeError as error:
        _rejected_dtypes.add(dtype)
        logger.warning("oneDNN's inner product rejected %s input (%s); using F.conv_transpose2d.", dtype, error)
        return F.conv_transpose2d(x, weight, conv.bias, conv.stride)
    patches = patches.view(batch, height, width, kernel_h, kernel_w, out_channels).permute(0, 1, 3, 2, 4, 5)
    return patches.reshape(batch, height * kernel_h, width * kernel_w, out_channels).permute(0, 3, 1, 2)
