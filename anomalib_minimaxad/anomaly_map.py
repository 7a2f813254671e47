# Original Code
# Copyright (c) 2025 WangFengJie
# https://github.com/WangFengJiee/MiniMaxAD
# SPDX-License-Identifier: MIT
#
# Modified
# Copyright (C) 2026 anomalib-minimaxad developers
# SPDX-License-Identifier: Apache-2.0
"""Anomaly maps and image scores of MiniMaxAD.

Per feature level the distance is ``1 - cos(f_E, f_D)`` over channels. The authors combine
the levels two ways, and so do we:

- for the loss: upsampled with ``nearest`` to the image size and **summed**
  (:func:`cosine_distance_map` with ``interpolation="nearest", reduction="sum"``);
- for evaluation: upsampled ``bilinear`` (``align_corners=True``), then combined and smoothed
  (:class:`AnomalyMapGenerator`) as one of the authors' two evaluation functions does:

  ============================  =====================  ==========================================
  authors' function             ``map_combination``    ``smoothing``
  ============================  =====================  ==========================================
  ``evaluation_batch`` (most)   ``"mean"`` of levels   ``"kernel"``: 5x5 normalised Gaussian,
                                                       zero padding
  ``evaluate`` (AeBAD-S)        ``"sum"`` of levels    ``"full"``: scipy's ``gaussian_filter``
                                                       (radius ``int(4 * sigma + 0.5)``, reflect
                                                       borders), as one exportable convolution
  ============================  =====================  ==========================================

The image score is the mean of the top ``score_ratio`` fraction of pixels of the smoothed
map (the authors' ``max_ratio=0.01``) or its maximum (``max_ratio=0``, and ``evaluate``).

Example:
    >>> import torch
    >>> from anomalib_minimaxad.anomaly_map import AnomalyMapGenerator
    >>> features = [torch.rand(2, 8, 16, 16), torch.rand(2, 16, 8, 8)]
    >>> anomaly_map, score = AnomalyMapGenerator()(features, features, image_size=(64, 64))
    >>> anomaly_map.shape, score.shape
    (torch.Size([2, 1, 64, 64]), torch.Size([2]))
"""

from collections.abc import Sequence
from enum import Enum
from typing import Literal

import torch
import torch.nn.functional as F  # noqa: N812
from torch import nn

from .validation import check_map_arguments

__all__ = [
    "AnomalyMapGenerator",
    "MapCombination",
    "ScoreMode",
    "Smoothing",
    "cosine_distance_map",
    "gaussian_kernel2d",
    "symmetric_pad",
]

# scipy.ndimage.gaussian_filter's default: the kernel reaches ``truncate * sigma`` pixels from its centre.
SCIPY_TRUNCATE = 4.0


class ScoreMode(str, Enum):
    """How the image score is taken from the smoothed anomaly map."""

    TOP_RATIO = "top_ratio"  # mean of the top ``score_ratio`` pixels (authors' default)
    MAX = "max"


class MapCombination(str, Enum):
    """How the per-level distance maps are combined at evaluation."""

    MEAN = "mean"  # the authors' evaluation_batch (all presets but AeBAD-S)
    SUM = "sum"  # the authors' evaluate (AeBAD-S)


class Smoothing(str, Enum):
    """Which Gaussian smooths the evaluation map."""

    KERNEL = "kernel"  # ``kernel_size`` x ``kernel_size`` normalised Gaussian, zero padding (evaluation_batch)
    FULL = "full"  # scipy ``gaussian_filter(sigma)``: radius ``int(4 sigma + 0.5)``, reflect borders (evaluate)


def cosine_distance_map(
    encoder_features: Sequence[torch.Tensor],
    decoder_features: Sequence[torch.Tensor],
    image_size: Sequence[int],
    interpolation: Literal["nearest", "bilinear"] = "bilinear",
    reduction: Literal["sum", "mean"] = "mean",
) -> torch.Tensor:
    """Combine per-level ``1 - cosine similarity`` maps at ``image_size``.

    Args:
        encoder_features (Sequence[torch.Tensor]): Feature maps ``(B, C_l, h_l, w_l)`` per level.
        decoder_features (Sequence[torch.Tensor]): Reconstructions of the same shapes.
        image_size (Sequence[int]): ``(H, W)`` of the output map.
        interpolation (Literal['nearest', 'bilinear']): ``"nearest"`` (loss) or ``"bilinear"`` with
            ``align_corners=True`` (evaluation).
        reduction (Literal['sum', 'mean']): ``"sum"`` (loss) or ``"mean"`` (evaluation) over the levels.

    Returns:
        Map of shape ``(B, 1, H, W)``.
    """
    size = (int(image_size[0]), int(image_size[1]))
    combined: torch.Tensor | None = None
    for encoded, decoded in zip(encoder_features, decoder_features, strict=True):
        distance = 1 - F.cosine_similarity(encoded, decoded, dim=1).unsqueeze(1)
        if interpolation == "bilinear":
            distance = F.interpolate(distance, size=size, mode="bilinear", align_corners=True)
        else:
            distance = F.interpolate(distance, size=size, mode="nearest")
        combined = distance if combined is None else combined + distance
    if combined is None:
        msg = "At least one feature level is needed to compute an anomaly map."
        raise ValueError(msg)
    return combined / len(encoder_features) if reduction == "mean" else combined


def gaussian_kernel2d(kernel_size: int, sigma: float) -> torch.Tensor:
    """Normalised ``(1, 1, k, k)`` Gaussian kernel (the outer product of two normalised 1-D profiles)."""
    coords = torch.arange(kernel_size, dtype=torch.float64) - (kernel_size - 1) / 2
    profile = torch.exp(-(coords**2) / (2 * sigma**2))
    kernel = torch.outer(profile, profile)
    return (kernel / kernel.sum()).to(torch.float32)[None, None]


def symmetric_pad(image: torch.Tensor, pad: int) -> torch.Tensor:
    """Pad the last two dimensions by ``pad`` pixels, mirroring about the edge (``d c b a | a b c d``).

    This is scipy.ndimage's ``mode="reflect"`` (numpy's ``"symmetric"``), which torch's ``F.pad`` lacks. It is
    built from slices, flips and concatenations, so it traces and exports to ONNX/OpenVINO. Pads wider than the
    image repeat the mirroring, as scipy does.

    Example:
        >>> symmetric_pad(torch.arange(3.0).view(1, 1, 1, 3), 2)[0, 0, 0]
        tensor([1., 0., 0., 1., 2., 2., 1.])
    """
    for dim in (-1, -2):
        remaining = pad
        while remaining > 0:
            step = min(remaining, image.shape[dim])
            head = image.narrow(dim, 0, step).flip(dim)
            tail = image.narrow(dim, image.shape[dim] - step, step).flip(dim)
            image = torch.cat([head, image, tail], dim=dim)
            remaining -= step
    return image


class AnomalyMapGenerator(nn.Module):
    """Evaluation-time anomaly map and image score.

    Args:
        kernel_size (int): Side of the ``"kernel"`` smoothing Gaussian (odd). 0 or 1 disables that smoothing;
            ignored by ``"full"``, whose side is ``2 * int(4 * sigma + 0.5) + 1``.
        sigma (float): Standard deviation of the Gaussian, in pixels.
        score_mode (ScoreMode | str): ``"top_ratio"`` or ``"max"``.
        score_ratio (float): Fraction of pixels averaged by ``"top_ratio"`` (at least one pixel).
        map_combination (MapCombination | str): ``"mean"`` or ``"sum"`` of the per-level maps.
        smoothing (Smoothing | str): ``"kernel"`` (zero-padded ``kernel_size`` Gaussian) or ``"full"`` (scipy's
            ``gaussian_filter(sigma=sigma)`` with reflect borders).

    Example:
        >>> import torch
        >>> aebad = AnomalyMapGenerator(score_mode="max", map_combination="sum", smoothing="full")
        >>> features = [torch.rand(1, 8, 14, 14), torch.rand(1, 16, 7, 7)]
        >>> anomaly_map, score = aebad(features, features, image_size=(56, 56))
        >>> aebad.kernel.shape
        torch.Size([1, 1, 33, 33])
    """

    def __init__(
        self,
        kernel_size: int = 5,
        sigma: float = 4.0,
        score_mode: ScoreMode | str = ScoreMode.TOP_RATIO,
        score_ratio: float = 0.01,
        map_combination: MapCombination | str = MapCombination.MEAN,
        smoothing: Smoothing | str = Smoothing.KERNEL,
    ) -> None:
        super().__init__()
        check_map_arguments(kernel_size, sigma, score_ratio)
        self.score_mode = ScoreMode(score_mode)
        self.score_ratio = score_ratio
        self.map_combination = MapCombination(map_combination)
        self.smoothing = Smoothing(smoothing)
        if self.smoothing == Smoothing.FULL:
            kernel_size = 2 * int(SCIPY_TRUNCATE * sigma + 0.5) + 1
        self.kernel_size = kernel_size
        self.register_buffer("kernel", gaussian_kernel2d(max(kernel_size, 1), sigma), persistent=False)

    def smooth(self, anomaly_map: torch.Tensor) -> torch.Tensor:
        """Gaussian-smooth ``(B, 1, H, W)``: zero padding (``"kernel"``) or reflect borders (``"full"``)."""
        if self.kernel_size <= 1:
            return anomaly_map
        kernel = self.kernel.to(anomaly_map.dtype)
        if self.smoothing == Smoothing.FULL:
            # One 2-D convolution (not two 1-D ones), so an export has a single smoothing node to keep in float.
            return F.conv2d(symmetric_pad(anomaly_map, self.kernel_size // 2), kernel)
        batch = anomaly_map.shape[0]
        exporting = torch.compiler.is_compiling() or torch.jit.is_tracing() or torch.onnx.is_in_onnx_export()
        if batch > 1 and not exporting:
            # The batch as the channels of one depthwise conv: bit-identical, and 7x faster on CPU at batch 16
            # than B single-channel convolutions (not for exports: it would fix the batch size in the graph).
            planes = anomaly_map.reshape(1, batch * anomaly_map.shape[1], *anomaly_map.shape[-2:])
            kernels = kernel.expand(planes.shape[1], 1, self.kernel_size, self.kernel_size)
            return F.conv2d(planes, kernels, padding=self.kernel_size // 2, groups=planes.shape[1]).view_as(anomaly_map)
        return F.conv2d(anomaly_map, kernel, padding=self.kernel_size // 2)

    def score(self, anomaly_map: torch.Tensor) -> torch.Tensor:
        """Image scores ``(B,)`` from a smoothed map ``(B, 1, H, W)``."""
        flat = anomaly_map.flatten(1)
        if self.score_mode == ScoreMode.MAX:
            return flat.amax(dim=1)
        num_pixels = max(int(self.score_ratio * flat.shape[1]), 1)
        return flat.topk(num_pixels, dim=1).values.mean(dim=1)

    def forward(
        self,
        encoder_features: Sequence[torch.Tensor],
        decoder_features: Sequence[torch.Tensor],
        image_size: Sequence[int],
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Return the smoothed anomaly map ``(B, 1, H, W)`` and the image scores ``(B,)``."""
        combined = cosine_distance_map(
            encoder_features,
            decoder_features,
            image_size,
            reduction=self.map_combination.value,
        )
        anomaly_map = self.smooth(combined)
        return anomaly_map, self.score(anomaly_map)
