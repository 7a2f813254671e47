# Copyright (C) 2026 anomalib-minimaxad developers
# SPDX-License-Identifier: Apache-2.0
"""Streaming AUROC, AUPR, AUPRO (dataset-wide and per image) and F1 adaptive threshold from histograms.

Each metric computes anomalib's curve from :class:`~anomalib_minimaxad.metrics.histogram.HistogramState`
instead of from stored scores: the thresholds are the lower edges of the bins, and scores within one bin count as
ties. Everything else follows anomalib 2.7's definitions:

* AUROC: trapezoid under the ROC curve (anomalib's ``AUROC``).
* AUPR: step-wise average precision, ``sum((R_k - R_{k+1}) * P_k)`` (anomalib's ``AUPR``).
* AUPRO: FPR over normal pixels and PRO averaged over the 8-connected regions of the masks, the curve cut at
  ``fpr_limit`` (interpolated there), trapezoid area normalised by the limit (anomalib's ``AUPRO``).
* Per-image AUPRO: the same curve of every image with a defect, averaged (the AeBAD-S protocol,
  :class:`~anomalib_minimaxad.metrics.PerImageAUPRO`).
* F1 adaptive threshold: the non-empty bin whose lower edge has the highest F1 (lowest on ties),
  ``2PR / (P + R + 1e-10)`` with ``score >= edge``, as anomalib's ``F1AdaptiveThreshold`` picks a score; the
  threshold is that bin's upper edge, within one bin of anomalib's (anomalib's post-processor flags scores strictly
  above the threshold, so this flags the scores anomalib's flags, except any in that bin above anomalib's value).
  With one class missing it falls back as anomalib's does: to the highest score seen (no anomalous sample) or the
  lowest (no normal one).

Undefined values: AUROC, AUPR and AUPRO of a set without positives or without negatives are ``nan`` with a warning
(anomalib returns 0, which reads as a real score). Per-image AUPRO skips images without a defect, as the exact
metric does, and images without a normal pixel, whose FPR is undefined (the exact metric gives them 0, anomalib's
value for a curve without negatives); with no image left it is ``nan``.

A mask without any normal pixel is one region here. anomalib's CPU labelling (``connected_components_cpu``) drops
it (it skips the lowest label present, there the region's, as if it were the background) and counts its pixels as
normal: on such sets the dataset-wide AUPRO differs from anomalib's (``tests/test_streaming_metrics.py`` checks
ours against anomalib's curve given whole regions).
"""

from __future__ import annotations

import logging
import math
from typing import Any, ClassVar

import cv2
import numpy as np
import torch
from anomalib.metrics import AnomalibMetric
from kornia.contrib import connected_components

from . import histogram
from .histogram import HistogramState, count, in_bins
from .per_image_aupro import check_map_mask_shapes

__all__ = [
    "StreamingAUPR",
    "StreamingAUPRO",
    "StreamingAUROC",
    "StreamingF1AdaptiveThreshold",
    "StreamingPerImageAUPRO",
]

logger = logging.getLogger(__name__)

#: Iterations of kornia's connected components on accelerators (anomalib's ``connected_components_gpu`` value).
_GPU_CCA_ITERATIONS = 1000
#: Images per vectorised per-image PRO curve (each image costs a few ``num_bins`` float64 rows).
_CURVE_CHUNK = 8


def _undefined(name: str, what: str) -> torch.Tensor:
    logger.warning("%s is undefined: %s; returning nan.", name, what)
    return torch.tensor(math.nan)


def _descending(values: torch.Tensor) -> torch.Tensor:
    """Cumulative sums from the highest bin down: entry ``k`` is the sum over bins ``>= k`` (last dimension)."""
    return values.flip(-1).cumsum(-1).flip(-1)


def pro_curve_area(
    normal: torch.Tensor,
    region: torch.Tensor,
    num_regions: torch.Tensor,
    fpr_limit: float,
) -> torch.Tensor:
    """Normalised area under PRO curves up to ``fpr_limit``, as anomalib's ``AUPRO`` computes it, per row.

    Args:
        normal (torch.Tensor): ``(A, num_bins)`` counts of normal pixels per bin (increasing scores).
        region (torch.Tensor): ``(A, num_bins)`` sums of ``1 / region size`` of the region pixels per bin.
        num_regions (torch.Tensor): ``(A,)`` numbers of regions.
        fpr_limit (float): Highest false positive rate.

    Returns:
        ``(A,)`` areas in ``[0, 1]`` (rows need normal pixels and regions).
    """
    rows = normal.shape[0]
    zero = normal.new_zeros(rows, 1)
    # Points from the highest threshold down, after a leading (0, 0).
    fpr = torch.cat([zero, normal.flip(-1).cumsum(-1) / normal.sum(-1, keepdim=True)], dim=-1).clamp_(max=1.0)
    pro = torch.cat([zero, region.flip(-1).cumsum(-1) / num_regions.unsqueeze(-1)], dim=-1).clamp_(max=1.0)
    segments = (fpr[:, 1:] - fpr[:, :-1]) * (pro[:, 1:] + pro[:, :-1]) / 2
    area_to = torch.cat([zero, segments.cumsum(-1)], dim=-1)  # area from the first point to each point
    last = ((fpr <= fpr_limit).sum(-1) - 1).unsqueeze(-1)  # last point within the limit
    following = (last + 1).clamp(max=fpr.shape[-1] - 1)
    f1, f2 = fpr.gather(-1, last), fpr.gather(-1, following)
    p1, p2 = pro.gather(-1, last), pro.gather(-1, following)
    cut = (f1 < fpr_limit) & (following > last)
    p_limit = p1 + (p2 - p1) * (fpr_limit - f1) / torch.where(cut, f2 - f1, torch.ones_like(f1))
    area = area_to.gather(-1, last) + torch.where(cut, (fpr_limit - f1) * (p1 + p_limit) / 2, torch.zeros_like(f1))
    end = torch.where(cut, torch.full_like(f1, fpr_limit), f1)
    return (area / end).squeeze(-1)


class _StreamingAUROC(HistogramState):
    """Area under the ROC curve of the binned scores (see the module docstring)."""

    def update(self, preds: torch.Tensor, target: torch.Tensor) -> None:
        """Add scores and their 0/1 targets (any shapes with the same number of elements)."""
        self._add(preds, target)

    def compute(self) -> torch.Tensor:
        """AUROC, ``nan`` when a class is missing."""
        negatives, positives = self.class_counts()
        name = getattr(self, "name", "AUROC")
        if not negatives.sum() or not positives.sum():
            return _undefined(name, "the targets lack negatives or positives")
        zero = negatives.new_zeros(1)
        fpr = torch.cat([zero, negatives.flip(0).cumsum(0) / negatives.sum()])
        tpr = torch.cat([zero, positives.flip(0).cumsum(0) / positives.sum()])
        return torch.trapezoid(tpr, fpr).float()


class _StreamingAUPR(HistogramState):
    """Average precision of the binned scores (anomalib's ``AUPR``; see the module docstring)."""

    def update(self, preds: torch.Tensor, target: torch.Tensor) -> None:
        """Add scores and their 0/1 targets (any shapes with the same number of elements)."""
        self._add(preds, target)

    def compute(self) -> torch.Tensor:
        """AUPR, ``nan`` when a class is missing."""
        negatives, positives = self.class_counts()
        name = getattr(self, "name", "AUPR")
        if not negatives.sum() or not positives.sum():
            return _undefined(name, "the targets lack negatives or positives")
        true_positives = positives.flip(0).cumsum(0)
        predicted = true_positives + negatives.flip(0).cumsum(0)
        precision = torch.nan_to_num(true_positives / predicted, nan=0.0)
        recall = true_positives / positives.sum()
        gained = torch.diff(recall, prepend=recall.new_zeros(1))
        return (gained * precision).sum().float()


class _StreamingF1AdaptiveThreshold(HistogramState):
    """Threshold of highest F1 among the bins' lower edges (see the module docstring)."""

    def update(self, preds: torch.Tensor, target: torch.Tensor) -> None:
        """Add scores and their 0/1 targets (any shapes with the same number of elements)."""
        self._add(preds, target)

    def compute(self) -> torch.Tensor:
        """The threshold (float32), ``nan`` before any update."""
        negatives, positives = self.class_counts()
        if not negatives.sum() and not positives.sum():
            return torch.tensor(math.nan)
        if not positives.sum():
            logger.warning(
                "The validation set does not contain any anomalous images. As a result, the adaptive threshold "
                "will take the value of the highest anomaly score observed in the normal validation images.",
            )
            return self.value_max.float()
        if not negatives.sum():
            logger.warning(
                "The validation set does not contain any normal images. As a result, the adaptive threshold "
                "will take the value of the lowest anomaly score observed in the anomalous validation images.",
            )
            return self.value_min.float()
        true_positives, false_positives = _descending(positives), _descending(negatives)
        precision = true_positives / (true_positives + false_positives)
        recall = true_positives / positives.sum()
        f1_score = torch.nan_to_num(2 * precision * recall / (precision + recall + 1e-10), nan=0.0)
        f1_score = torch.where(negatives + positives > 0, f1_score, -1.0)  # thresholds at observed values only
        best = int(torch.argmax(f1_score))  # the first maximum: the lowest threshold, as anomalib's argmax
        # The bin's upper edge: anomalib's post-processor flags scores strictly above the threshold, and anomalib's
        # threshold is a score of this bin, so both flag every score of the bins above and none of the bins below.
        return torch.tensor(self.binning.low + (best + 1) * self.binning.width, device=self.counts.device).float()


class _RegionHistograms(HistogramState):
    """Histogram of normal pixels (class 0) plus the regions' ``1 / size`` weights, shared by the AUPRO metrics.

    Args:
        fpr_limit (float): Highest false positive rate of the PRO curve. Defaults to ``0.3``.
        **kwargs (Any): Passed to :class:`HistogramState` (``value_range``, ``num_bins``, torchmetrics' options).
    """

    def __init__(self, fpr_limit: float = 0.3, **kwargs: Any) -> None:  # noqa: ANN401
        super().__init__(**kwargs)
        if not 0 < fpr_limit <= 1:
            msg = f"fpr_limit must be in (0, 1], got {fpr_limit}."
            raise ValueError(msg)

    @staticmethod
    def _planes(preds: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        check_map_mask_shapes(preds, target)
        masks = target.reshape(-1, *target.shape[-2:])
        return preds.reshape(-1, *preds.shape[-2:]), masks if masks.dtype == torch.bool else masks != 0

    @staticmethod
    def _opencv_regions(masks: torch.Tensor) -> list[tuple[int, np.ndarray, np.ndarray]]:
        """Per CPU mask: 8-connected regions (OpenCV), as ``(number, labels, 1 / size per label)``."""
        regions = []
        for mask in masks.contiguous().view(torch.uint8).numpy():
            num_labels, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8, ltype=cv2.CV_32S)
            inverse_size = np.zeros(num_labels)  # label 0: the background (of area 0 in a full mask)
            inverse_size[1:] = 1.0 / stats[1:, cv2.CC_STAT_AREA]
            regions.append((num_labels - 1, labels, inverse_size))
        return regions

    @staticmethod
    def _region_weights(masks: torch.Tensor, opencv: bool | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """``1 / region size`` per pixel (0 on the background, float64) and the regions of each image.

        8-connected regions, as anomalib's AUPRO labels them: with OpenCV (``opencv``, the default on the CPU), or
        with kornia's iterative labelling and anomalib's ``connected_components_gpu`` iteration count (the default
        elsewhere: no host sync).
        """
        if opencv if opencv is not None else histogram.on_host(masks):
            weights = torch.zeros(masks.shape, dtype=torch.float64)
            regions = torch.zeros(masks.shape[0], dtype=torch.int64)
            for index, (number, labels, inverse_size) in enumerate(_RegionHistograms._opencv_regions(masks.cpu())):
                weights[index], regions[index] = torch.from_numpy(inverse_size[labels]), number
            return weights.to(masks.device), regions.to(masks.device)
        batch, pixels = masks.shape[0], masks.shape[-2] * masks.shape[-1]
        labels = connected_components(masks.unsqueeze(1).float(), num_iterations=_GPU_CCA_ITERATIONS).view(batch, -1)
        # Labels are ids within the plane (plus the plane's offset in recent kornia): make them unique per batch.
        offsets = torch.arange(batch, device=masks.device).unsqueeze(1) * pixels
        labels = torch.where(labels > 0, (labels - 1) % pixels + 1 + offsets, 0).view(-1)
        sizes = count(labels, batch * pixels + 1)
        weights = torch.where(labels > 0, 1.0 / sizes[labels].double(), 0.0).view(masks.shape)
        regions = (sizes[1:].view(batch, pixels) > 0).sum(1)
        return weights, regions


class _StreamingAUPRO(_RegionHistograms):
    """AUPRO over the whole set from histograms (see the module docstring)."""

    fpr_limit: torch.Tensor
    region_weight: torch.Tensor
    num_regions: torch.Tensor

    def __init__(self, fpr_limit: float = 0.3, **kwargs: Any) -> None:  # noqa: ANN401
        super().__init__(fpr_limit=fpr_limit, **kwargs)
        # A buffer, as anomalib's AUPRO has: checkpoints of either evaluator load into the other.
        self.register_buffer("fpr_limit", torch.tensor(fpr_limit))
        self.add_state(
            "region_weight",
            default=torch.zeros(self.binning.slots, dtype=torch.float64),
            dist_reduce_fx="sum",
        )
        self.add_state("num_regions", default=torch.zeros((), dtype=torch.int64), dist_reduce_fx="sum")

    def update(self, preds: torch.Tensor, target: torch.Tensor) -> None:
        """Add anomaly maps ``(B, [1,] H, W)`` and their masks of the same shape."""
        maps, masks = self._planes(preds, target)
        binned = self._add(preds, target)
        if not histogram.on_host(masks):  # dense weights: no host sync
            weights, regions = self._region_weights(masks)
            self.region_weight += count(binned.slot, self.binning.slots, weights.reshape(-1))
            self.num_regions += regions.sum()
            return
        # On the CPU: label the images with a defect, and add only their defect pixels.
        slots = binned.slot.view(maps.shape[0], -1)
        defective = masks.flatten(1).any(1).nonzero().squeeze(1).tolist()
        region_slots, region_weights = [], []
        for image, (number, labels, inverse_size) in zip(
            defective,
            self._opencv_regions(masks[defective]),
            strict=True,
        ):
            pixels = np.flatnonzero(labels)
            region_slots.append(slots[image][torch.from_numpy(pixels)])
            region_weights.append(torch.from_numpy(inverse_size[labels.reshape(-1)[pixels]]))
            self.num_regions += number
        if defective:
            self.region_weight += count(torch.cat(region_slots), self.binning.slots, torch.cat(region_weights))

    def compute(self) -> torch.Tensor:
        """AUPRO, ``nan`` without regions or without normal pixels."""
        negatives, _ = self.class_counts()
        name = getattr(self, "name", "AUPRO")
        if not self.num_regions or not negatives.sum():
            return _undefined(name, "the masks have no defect or no normal pixel")
        region = in_bins(self.region_weight).unsqueeze(0)
        return pro_curve_area(
            negatives.unsqueeze(0),
            region,
            self.num_regions.double().reshape(1),
            float(self.fpr_limit),
        )[0].float()


class _StreamingPerImageAUPRO(_RegionHistograms):
    """Mean over the images with a defect of each image's AUPRO, from per-image histograms discarded after use."""

    aupro_sum: torch.Tensor
    num_images: torch.Tensor
    num_full_masks: torch.Tensor

    def __init__(self, fpr_limit: float = 0.3, **kwargs: Any) -> None:  # noqa: ANN401
        super().__init__(fpr_limit=fpr_limit, **kwargs)
        self.fpr_limit = fpr_limit  # a plain attribute, as in PerImageAUPRO (same checkpoint keys)
        self.add_state("aupro_sum", default=torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("num_images", default=torch.zeros((), dtype=torch.int64), dist_reduce_fx="sum")
        self.add_state("num_full_masks", default=torch.zeros((), dtype=torch.int64), dist_reduce_fx="sum")

    def update(self, preds: torch.Tensor, target: torch.Tensor) -> None:
        """Add the AUPRO of every image of the batch whose mask has a defect."""
        maps, masks = self._planes(preds, target)
        binned = self._add(preds, target)
        slots = binned.slot.view(maps.shape[0], -1)
        if histogram.on_host(masks):
            defective = masks.flatten(1).any(1).nonzero().squeeze(1)
            masks, slots = masks[defective], slots[defective]
        slot_count = self.binning.slots
        for start in range(0, masks.shape[0], _CURVE_CHUNK):
            chunk_masks = masks[start : start + _CURVE_CHUNK]
            chunk = chunk_masks.shape[0]
            weights, regions = self._region_weights(chunk_masks)
            index = slots[start : start + _CURVE_CHUNK] + slot_count * torch.arange(chunk, device=slots.device)[:, None]
            index = index.view(-1)
            # Defect pixels go to a trailing dummy slot of the normal-pixel histogram.
            normal_index = torch.where(chunk_masks.reshape(-1), chunk * slot_count, index)
            # Images with values outside the range give wrong areas here, but compute() raises for them.
            normal = in_bins(count(normal_index, chunk * slot_count + 1)[:-1].view(chunk, slot_count).double())
            region = in_bins(count(index, chunk * slot_count, weights.reshape(-1)).view(chunk, slot_count))
            regions = regions.to(normal.device)
            has_normal = normal.sum(1) > 0
            valid = has_normal & (regions > 0)
            safe_regions = torch.where(valid, regions, 1).double()
            normal = torch.where(has_normal.unsqueeze(1), normal, 1.0)  # rows left out below; avoids 0 / 0
            area = pro_curve_area(normal, region, safe_regions, self.fpr_limit)
            self.aupro_sum += torch.where(valid, area, 0.0).sum()
            self.num_images += valid.sum()
            self.num_full_masks += ((regions > 0) & ~has_normal).sum()

    def compute(self) -> torch.Tensor:
        """Mean per-image AUPRO, ``nan`` when no image had a defect and a normal pixel."""
        self.check()
        name = getattr(self, "name", "PerImageAUPRO")
        if self.num_full_masks:
            logger.warning(
                "%s: %d images without a normal pixel were left out (their FPR is undefined).",
                name,
                int(self.num_full_masks),
            )
        if not self.num_images:
            return _undefined(name, "no image has a defect and a normal pixel")
        return (self.aupro_sum / self.num_images).float()


class _AnomalibStreamingMetric(AnomalibMetric, HistogramState):  # type: ignore[misc]
    """Reads its inputs from anomalib batches (``fields``) and keeps the exact metric's name (``prefix + name``)."""

    #: Name after the prefix: that of the anomalib metric it replaces, so results keep their keys.
    metric_name: ClassVar[str]

    def __init__(
        self,
        fields: list[str] | None = None,
        prefix: str = "",
        strict: bool = True,
        **kwargs: Any,  # noqa: ANN401
    ) -> None:
        super().__init__(fields=fields, prefix=prefix, strict=strict, **kwargs)
        self.name = prefix + self.metric_name


class StreamingAUROC(_AnomalibStreamingMetric, _StreamingAUROC):  # type: ignore[misc]
    """AUROC from a histogram, named like anomalib's ``AUROC`` (``image_AUROC``, ``pixel_AUROC``).

    Args:
        fields (list[str] | None): Batch fields of the scores and targets, e.g. ``["anomaly_map", "gt_mask"]``.
        prefix (str): Name prefix (``"image_"``, ``"pixel_"``).
        strict (bool): Raise when a batch lacks a field (else skip the batch).
        value_range (tuple[float, float]): ``(low, high)`` of the scores. Defaults to ``(0.0, 1.0)``
            (normalised scores).
        num_bins (int): Number of bins. Defaults to ``2**16``.

    Example:
        >>> import torch
        >>> from types import SimpleNamespace
        >>> metric = StreamingAUROC(fields=["pred_score", "gt_label"], prefix="image_")
        >>> metric.update(SimpleNamespace(pred_score=torch.tensor([0.1, 0.4, 0.35, 0.8]),
        ...                               gt_label=torch.tensor([0, 0, 1, 1])))
        >>> metric.name, round(float(metric.compute()), 4)
        ('image_AUROC', 0.75)
    """

    metric_name = "AUROC"


class StreamingAUPR(_AnomalibStreamingMetric, _StreamingAUPR):  # type: ignore[misc]
    """AUPR (average precision) from a histogram, named like anomalib's ``AUPR``; arguments as :class:`StreamingAUROC`.

    Example:
        >>> metric = StreamingAUPR(fields=["anomaly_map", "gt_mask"], prefix="pixel_")
        >>> metric.name
        'pixel_AUPR'
    """

    metric_name = "AUPR"


class StreamingAUPRO(_AnomalibStreamingMetric, _StreamingAUPRO):  # type: ignore[misc]
    """Dataset-wide AUPRO from histograms, named like anomalib's ``AUPRO``.

    Arguments as :class:`StreamingAUROC`, plus ``fpr_limit`` (highest FPR of the curve, default ``0.3``).

    Example:
        >>> import torch
        >>> from types import SimpleNamespace
        >>> metric = StreamingAUPRO(fields=["anomaly_map", "gt_mask"], prefix="pixel_")
        >>> masks = torch.zeros(2, 1, 8, 8, dtype=torch.bool)
        >>> masks[:, :, 2:4, 2:4] = True
        >>> metric.update(SimpleNamespace(anomaly_map=masks.float(), gt_mask=masks))
        >>> metric.name, float(metric.compute())
        ('pixel_AUPRO', 1.0)
    """

    metric_name = "AUPRO"


class StreamingPerImageAUPRO(_AnomalibStreamingMetric, _StreamingPerImageAUPRO):  # type: ignore[misc]
    """Per-image AUPRO (AeBAD-S) from per-image histograms, named like :class:`PerImageAUPRO`.

    Arguments as :class:`StreamingAUPRO`.

    Example:
        >>> metric = StreamingPerImageAUPRO(fields=["anomaly_map", "gt_mask"], prefix="pixel_")
        >>> metric.name
        'pixel_PerImageAUPRO'
    """

    metric_name = "PerImageAUPRO"


class StreamingF1AdaptiveThreshold(_AnomalibStreamingMetric, _StreamingF1AdaptiveThreshold):  # type: ignore[misc]
    """F1-maximising threshold from a histogram (for the post-processor).

    Arguments as :class:`StreamingAUROC`; the range is that of the raw scores the post-processor sees.

    Example:
        >>> import torch
        >>> from types import SimpleNamespace
        >>> threshold = StreamingF1AdaptiveThreshold(fields=["pred_score", "gt_label"], num_bins=100)
        >>> threshold.update(SimpleNamespace(pred_score=torch.tensor([0.1, 0.2, 0.8, 0.9]),
        ...                                  gt_label=torch.tensor([0, 0, 1, 1])))
        >>> round(float(threshold.compute()), 4)  # the upper edge of 0.8's bin; anomalib's: 0.8 (flags above it)
        0.81
    """

    metric_name = "F1AdaptiveThreshold"
