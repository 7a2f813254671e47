# Original Code
# Copyright (c) 2025 WangFengJie
# https://github.com/WangFengJiee/MiniMaxAD
# SPDX-License-Identifier: MIT
#
# Modified
# Copyright (C) 2026 anomalib-minimaxad developers
# SPDX-License-Identifier: Apache-2.0
"""Training losses of MiniMaxAD.

- :class:`ADCLoss` (variant *fr*, feature-rich data): adaptive hard mining on the summed
  per-pixel cosine-distance map ``M``, exactly as the authors compute it.
- :class:`GlobalCosineLoss` (variant *fp*): per level, the batch mean of ``1 - cos`` of the
  flattened ``C*H*W`` feature vectors, summed over levels.
- :class:`LocalLoss` (``L_local``) and :class:`LocalHardMiningLoss` (``L_local-hm``): the
  ablation losses of the paper's Table 7.

Every loss takes ``(encoder_features, decoder_features, image_size)`` and computes in
float32, also under mixed-precision autocast.

Example:
    >>> import torch
    >>> from anomalib_minimaxad.loss import ADCLoss
    >>> encoder = [torch.rand(2, 8, 16, 16)]
    >>> decoder = [torch.rand(2, 8, 16, 16, requires_grad=True)]
    >>> loss = ADCLoss()(encoder, decoder, image_size=(64, 64))
    >>> loss.backward()
"""

import math
from collections.abc import Sequence
from enum import Enum

import torch
import torch.nn.functional as F  # noqa: N812
from torch import nn

from .anomaly_map import cosine_distance_map
from .validation import check_probability

__all__ = [
    "ADCLoss",
    "GlobalCosineLoss",
    "LocalHardMiningLoss",
    "LocalLoss",
    "LossType",
    "MiniMaxADLoss",
    "build_loss",
    "quantile",
]


def quantile(values: torch.Tensor, q: float) -> torch.Tensor:
    """Quantile of all elements with linear interpolation, equal to ``torch.quantile``.

    Older torch releases refuse inputs over 2**24 elements in ``torch.quantile`` (batch 16
    at 1024x1024 already exceeds that), and it sorts the whole input. This selects the two
    neighbouring order statistics with ``kthvalue`` and interpolates them bit for bit as
    ``torch.quantile`` does.

    Args:
        values (torch.Tensor): Any tensor; it is flattened.
        q (float): Quantile in ``[0, 1]``.

    Returns:
        0-d tensor.

    Example:
        >>> x = torch.arange(10.0)
        >>> bool(quantile(x, 0.5) == torch.quantile(x, 0.5))
        True
    """
    if not 0 <= q <= 1:
        msg = f"quantile q must be in [0, 1], got {q}."
        raise ValueError(msg)
    flat = values.detach().flatten()
    if flat.numel() == 0:
        msg = "quantile of an empty tensor."
        raise ValueError(msg)
    # As torch.quantile: q rounded to the input dtype, rank in float64, weight back in the input dtype.
    rank = torch.tensor(q, dtype=flat.dtype).double().item() * (flat.numel() - 1)
    below, above = math.floor(rank), math.ceil(rank)
    value_below = flat.kthvalue(below + 1).values
    value_above = flat.kthvalue(above + 1).values if above != below else value_below
    weight = torch.tensor(rank - below, dtype=flat.dtype, device=flat.device)
    return torch.lerp(value_below, value_above, weight)


class LossType(str, Enum):
    """Loss names accepted by :func:`build_loss` and the ``loss`` argument of ``MiniMaxAD``."""

    ADC = "adc"  # MiniMaxAD-fr
    GLOBAL = "global"  # MiniMaxAD-fp
    LOCAL = "local"  # ablation L_local
    LOCAL_HARD_MINING = "local_hm"  # ablation L_local-hm


class MiniMaxADLoss(nn.Module):
    """Base class: float32 computation of a loss from encoder and decoder features."""

    def forward(
        self,
        encoder_features: Sequence[torch.Tensor],
        decoder_features: Sequence[torch.Tensor],
        image_size: Sequence[int],
    ) -> torch.Tensor:
        """Compute the loss in float32, with autocast disabled."""
        device_type = decoder_features[0].device.type
        with torch.autocast(device_type=device_type, enabled=False):
            return self.compute(
                [f.float() for f in encoder_features],
                [f.float() for f in decoder_features],
                image_size,
            )

    def compute(
        self,
        encoder_features: Sequence[torch.Tensor],
        decoder_features: Sequence[torch.Tensor],
        image_size: Sequence[int],
    ) -> torch.Tensor:
        """Loss on float32 features; implemented by subclasses."""
        raise NotImplementedError

    @staticmethod
    def distance_map(
        encoder_features: Sequence[torch.Tensor],
        decoder_features: Sequence[torch.Tensor],
        image_size: Sequence[int],
    ) -> torch.Tensor:
        """The loss map ``M`` ``(B, H, W)``: nearest-upsampled distances summed over levels."""
        return cosine_distance_map(encoder_features, decoder_features, image_size, "nearest", "sum").squeeze(1)


class ADCLoss(MiniMaxADLoss):
    """Adaptive contraction loss with hard mining (MiniMaxAD-fr).

    With ``M`` the summed distance map of the whole batch, ``s`` its unbiased standard
    deviation and ``A = M**2``: the threshold is ``d = quantile(M, p_hard) - s**2``; if fewer
    than ``num_lim = numel(M) * (1 - p_lim)`` elements have ``A >= d``, it becomes
    ``quantile(A, p_lim) - s**2``. The loss is the mean of ``A`` over ``A >= d``; the other
    elements get no gradient. (The first test compares ``A`` with a threshold taken from
    ``M``, as the authors do.)

    Under distributed data parallel training every process computes ``M``, its quantiles and its
    standard deviation from its own batch only, as the authors' single-process code does for one
    batch; nothing is gathered, DDP only averages the gradients. ``N`` processes with batch ``b``
    each therefore mine ``N`` batches of ``b``, not one of ``N * b``: to keep the paper's batch of
    16 per threshold, keep ``train_batch_size: 16`` per process.

    Args:
        p_hard (float): Quantile of ``M`` for the hard-mining threshold.
        p_lim (float): Quantile of ``A`` used when too few elements pass; sets ``num_lim``.
    """

    def __init__(self, p_hard: float = 0.9999, p_lim: float = 0.9995) -> None:
        super().__init__()
        check_probability("p_hard", p_hard)
        check_probability("p_lim", p_lim)
        self.p_hard = p_hard
        self.p_lim = p_lim

    def compute(
        self,
        encoder_features: Sequence[torch.Tensor],
        decoder_features: Sequence[torch.Tensor],
        image_size: Sequence[int],
    ) -> torch.Tensor:
        """Mean of the hard elements of ``M**2``."""
        distance = self.distance_map(encoder_features, decoder_features, image_size)
        squared = distance**2
        selected, _ = self.hard_elements(distance)
        return squared[selected].mean()

    def hard_elements(self, distance: torch.Tensor) -> tuple[torch.Tensor, str]:
        """Mask of the elements the loss averages, and which threshold chose them (``p_hard``/``p_lim``)."""
        with torch.no_grad():
            squared = distance**2
            variance = distance.std() ** 2
            num_lim = distance.numel() * (1 - self.p_lim)
            selected = squared >= quantile(distance, self.p_hard) - variance
            if selected.sum() >= num_lim:
                return selected, "p_hard"
            return squared >= quantile(squared, self.p_lim) - variance, "p_lim"


class GlobalCosineLoss(MiniMaxADLoss):
    """Global cosine loss (MiniMaxAD-fp): per level the batch mean of ``1 - cos`` of flattened features, summed."""

    def compute(  # noqa: PLR6301 - overrides MiniMaxADLoss.compute
        self,
        encoder_features: Sequence[torch.Tensor],
        decoder_features: Sequence[torch.Tensor],
        image_size: Sequence[int],  # noqa: ARG002 - same call for every loss
    ) -> torch.Tensor:
        """Sum over levels."""
        return sum(
            (1 - F.cosine_similarity(e.flatten(1), d.flatten(1), dim=1)).mean()
            for e, d in zip(encoder_features, decoder_features, strict=True)
        )


class LocalLoss(MiniMaxADLoss):
    """Ablation ``L_local``: mean of the squared summed distance map."""

    def compute(
        self,
        encoder_features: Sequence[torch.Tensor],
        decoder_features: Sequence[torch.Tensor],
        image_size: Sequence[int],
    ) -> torch.Tensor:
        """Mean of ``M**2``."""
        return (self.distance_map(encoder_features, decoder_features, image_size) ** 2).mean()


class LocalHardMiningLoss(MiniMaxADLoss):
    """Ablation ``L_local-hm``: mean of ``M**2`` over the elements at or above its ``p_lim`` quantile.

    Args:
        p_lim (float): Quantile of ``M**2`` above which elements are averaged.
    """

    def __init__(self, p_lim: float = 0.9995) -> None:
        super().__init__()
        check_probability("p_lim", p_lim)
        self.p_lim = p_lim

    def compute(
        self,
        encoder_features: Sequence[torch.Tensor],
        decoder_features: Sequence[torch.Tensor],
        image_size: Sequence[int],
    ) -> torch.Tensor:
        """Mean of the top ``1 - p_lim`` of ``M**2``."""
        squared = self.distance_map(encoder_features, decoder_features, image_size) ** 2
        return squared[squared >= quantile(squared, self.p_lim)].mean()


def build_loss(loss: LossType | str, p_hard: float = 0.9999, p_lim: float = 0.9995) -> MiniMaxADLoss:
    """Create a loss by name (``adc``, ``global``, ``local``, ``local_hm``).

    ``p_hard`` is used by ``adc`` only, ``p_lim`` by ``adc`` and ``local_hm``; both are checked for every
    loss, since a checkpoint's hyper-parameters keep them whatever the loss.

    Example:
        >>> build_loss("global")
        GlobalCosineLoss()
    """
    try:
        loss_type = LossType(loss)
    except ValueError:
        choices = ", ".join(t.value for t in LossType)
        msg = f"Unknown loss {loss!r}; choose one of: {choices}."
        raise ValueError(msg) from None
    check_probability("p_hard", p_hard)
    check_probability("p_lim", p_lim)
    if loss_type == LossType.ADC:
        return ADCLoss(p_hard=p_hard, p_lim=p_lim)
    if loss_type == LossType.LOCAL_HARD_MINING:
        return LocalHardMiningLoss(p_lim=p_lim)
    if loss_type == LossType.LOCAL:
        return LocalLoss()
    return GlobalCosineLoss()
