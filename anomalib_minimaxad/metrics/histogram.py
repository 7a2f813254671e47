# Copyright (C) 2026 anomalib-minimaxad developers
# SPDX-License-Identifier: Apache-2.0
"""Fixed-range histograms of scores per class: the running summary behind the streaming metrics.

A value ``x`` of the declared range ``[low, high]`` falls in bin ``floor((x - low) * num_bins / (high - low))``.
Each class's row has a slot below the bins (values below ``low``, NaN) and one above them (values from ``high``
up): when no value exceeded ``high`` (the running maximum says so), that slot holds values equal to ``high`` and
joins the last bin. Each batch costs a few element-wise passes and one ``bincount`` (an
``index_add_`` on accelerators, which never waits for the device), whatever the number of bins. Values outside the
range, NaN and targets other than 0/1 are counted in slots of their own and make ``compute`` raise
(:meth:`HistogramState.check`): they are never folded into the edge bins.

The evaluator hands the same ``anomaly_map`` and ``gt_mask`` tensors to several metrics (pixel AUROC, AUPR,
AUPRO; the post-processor's pixel threshold and the validation pixel AUROC see the same raw maps). The binned
batch is therefore memoised for the last ``(values, target, binning)`` seen: the tensors themselves (not their
addresses) and their version counters are the key, so an in-place change or a new tensor recomputes it. Inference
tensors (Lightning's test and predict loops) have no version counter: for them the tensor itself is the key, so
the metrics of one batch must not change its scores in place between their updates (anomalib's post-processor and
evaluator replace tensors, they never modify them). The memo holds the last four binned tensors (a validation
batch bins four: image scores and maps, by the post-processor and by the metrics), not a growing store.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torchmetrics import Metric

__all__ = ["BatchHistogram", "Binning", "HistogramState", "batch_histogram", "count", "in_bins", "on_host"]

#: Slot of a class's histogram row counting values below ``low`` or NaN (see :func:`batch_histogram`).
_BELOW = 0


@dataclass(frozen=True)
class Binning:
    """``num_bins`` equal bins over ``[low, high]``.

    Args:
        low (float): Lowest value of the range.
        high (float): Highest value of the range (inclusive).
        num_bins (int): Number of bins.

    Example:
        >>> Binning(0.0, 1.0, 4).edges().tolist()
        [0.0, 0.25, 0.5, 0.75]
    """

    low: float
    high: float
    num_bins: int

    def __post_init__(self) -> None:
        """Check the range and the bin count."""
        if not (math.isfinite(self.low) and math.isfinite(self.high) and self.low < self.high):
            msg = f"value_range must be two finite numbers (low, high) with low < high, got ({self.low}, {self.high})."
            raise ValueError(msg)
        if not 2 <= self.num_bins <= 2**24:
            msg = f"num_bins must be in [2, 2**24], got {self.num_bins}."
            raise ValueError(msg)

    @property
    def slots(self) -> int:
        """Slots per class: below range or NaN, the ``num_bins`` bins, above range."""
        return self.num_bins + 2

    @property
    def width(self) -> float:
        """Width of one bin."""
        return (self.high - self.low) / self.num_bins

    def edges(self) -> torch.Tensor:
        """Lower edge of every bin (float64)."""
        return self.low + torch.arange(self.num_bins, dtype=torch.float64) * self.width


@dataclass
class BatchHistogram:
    """One batch, binned.

    Attributes:
        slot: Slot of every value (flattened, int32; ``0`` below range or NaN, ``1..num_bins`` the bins,
            ``num_bins + 1`` from ``high`` up).
        counts: ``(2, slots)`` counts of the values with target 0 and 1 (int64).
        invalid_targets: Number of targets other than 0 and 1 (0-dim int64; those values are in no class).
        extrema: ``[min, max]`` of the values (float64; NaN if a value is NaN).
    """

    slot: torch.Tensor
    counts: torch.Tensor
    invalid_targets: torch.Tensor
    extrema: torch.Tensor


def on_host(tensor: torch.Tensor) -> bool:
    """Whether ``tensor`` is on the CPU, where host-side work (``bincount``, OpenCV) costs no device sync."""
    return tensor.device.type == "cpu"


def count(index: torch.Tensor, size: int, weights: torch.Tensor | None = None) -> torch.Tensor:
    """``bincount(index, weights, minlength=size)`` (``index < size``), without a host sync on accelerators."""
    if on_host(index):
        return torch.bincount(index, weights=weights, minlength=size)
    dtype = torch.int64 if weights is None else weights.dtype
    source = torch.ones_like(index, dtype=dtype) if weights is None else weights
    return torch.zeros(size, dtype=dtype, device=index.device).index_add_(0, index, source)


#: The last few binned batches: ``(values, target, (versions..., binning), binned)``, most recent last.
_memo: list[tuple[torch.Tensor, torch.Tensor, tuple, BatchHistogram]] = []
#: Batches kept: the post-processor's image and pixel thresholds and the validation metrics bin two tensors each.
_MEMO_SIZE = 4


def batch_histogram(values: torch.Tensor, target: torch.Tensor, binning: Binning) -> BatchHistogram:
    """Bin ``values`` by ``target`` class (memoised for the last tensors seen, see the module docstring).

    Args:
        values (torch.Tensor): Scores of any shape (any float dtype).
        target (torch.Tensor): Labels of the same number of elements (bool, or 0/1 of any dtype).
        binning (Binning): The bins.

    Raises:
        ValueError: ``values`` and ``target`` have different numbers of elements.
    """
    if values.numel() != target.numel():
        msg = f"scores {tuple(values.shape)} and targets {tuple(target.shape)} must have the same number of elements."
        raise ValueError(msg)
    key = (_version(values), _version(target), binning)
    for entry in _memo:
        if entry[0] is values and entry[1] is target and entry[2] == key:
            return entry[3]
    binned = _bin(values, target, binning)
    _memo.append((values, target, key, binned))
    del _memo[:-_MEMO_SIZE]
    return binned


def _bin(values: torch.Tensor, target: torch.Tensor, binning: Binning) -> BatchHistogram:
    flat = values.detach().reshape(-1)
    flat = flat if flat.dtype in {torch.float32, torch.float64} else flat.float()
    extrema = torch.stack(torch.aminmax(flat)).double() if flat.numel() else torch.tensor([math.inf, -math.inf])
    # Position in bins plus one: everything below the range truncates to slot 0, above it to num_bins + 1.
    scale = 1.0 / binning.width
    position = torch.addcmul(flat.new_tensor(1.0 - binning.low * scale), flat, flat.new_tensor(scale))
    if on_host(flat) and not torch.isnan(extrema).any():
        position.clamp_(0.0, binning.num_bins + 1)
    else:  # fmax maps NaN to slot 0 (the NaN extrema tell NaN from low values); no host sync on accelerators
        position = torch.fmax(position, position.new_tensor(0.0)).clamp_(max=binning.num_bins + 1)
    slot = position.to(torch.int32)
    labels = target.detach().reshape(-1)
    if labels.dtype == torch.bool:
        invalid = torch.zeros((), dtype=torch.int64, device=flat.device)
        index = slot + labels.to(torch.int32).mul_(binning.slots)  # (an add with alpha and a bool is 10x slower)
    else:
        bad = (labels != 0) & (labels != 1)
        invalid = bad.sum()
        # Values with an invalid target go to a third row that is dropped.
        index = slot + torch.where(bad, 2, labels.to(torch.int32)).mul_(binning.slots)
    counts = count(index, 3 * binning.slots)[: 2 * binning.slots].reshape(2, binning.slots)
    return BatchHistogram(slot=slot, counts=counts, invalid_targets=invalid, extrema=extrema.to(flat.device))


def _version(tensor: torch.Tensor) -> int | None:
    """Version counter (bumped by in-place changes); inference tensors have none."""
    return None if tensor.is_inference() else tensor._version  # noqa: SLF001


class HistogramState(Metric):
    """Per-class histogram of scores over a fixed range, summed over batches and processes.

    States (none persistent, all reduced by sum, min or max under DDP): ``counts`` ``(2, num_bins + 2)`` int64
    (row = target class; slot 0 = below the range or NaN, last slot = ``high`` and above), ``invalid_targets``,
    ``value_min`` and ``value_max`` (NaN once a NaN was seen).

    Args:
        value_range (tuple[float, float]): ``(low, high)`` of the scores. Defaults to ``(0.0, 1.0)``, the range of
            anomalib's
            normalised scores and maps.
        num_bins (int): Number of bins. Defaults to ``2**16``.
        **kwargs (object): Passed to :class:`torchmetrics.Metric`.
    """

    full_state_update = False
    is_differentiable = False
    counts: torch.Tensor
    invalid_targets: torch.Tensor
    value_min: torch.Tensor
    value_max: torch.Tensor

    def __init__(
        self,
        value_range: tuple[float, float] = (0.0, 1.0),
        num_bins: int = 2**16,
        **kwargs: object,
    ) -> None:
        super().__init__(**kwargs)
        self.binning = Binning(float(value_range[0]), float(value_range[1]), int(num_bins))
        self.add_state("counts", default=torch.zeros(2, self.binning.slots, dtype=torch.int64), dist_reduce_fx="sum")
        self.add_state("invalid_targets", default=torch.zeros((), dtype=torch.int64), dist_reduce_fx="sum")
        self.add_state("value_min", default=torch.tensor(math.inf, dtype=torch.float64), dist_reduce_fx="min")
        self.add_state("value_max", default=torch.tensor(-math.inf, dtype=torch.float64), dist_reduce_fx="max")

    @property
    def value_range(self) -> tuple[float, float]:
        """``(low, high)`` of the bins."""
        return self.binning.low, self.binning.high

    def _add(self, values: torch.Tensor, target: torch.Tensor) -> BatchHistogram:
        """Add a batch to the running state; returns it binned."""
        binned = batch_histogram(values, target, self.binning)
        self.counts += binned.counts
        self.invalid_targets += binned.invalid_targets
        self._add_extrema(binned.extrema)
        return binned

    def _add_extrema(self, extrema: torch.Tensor) -> None:
        # torch.minimum/maximum propagate NaN, so a NaN input stays visible in compute.
        self.value_min = torch.minimum(self.value_min, extrema[0])
        self.value_max = torch.maximum(self.value_max, extrema[1])

    def check(self) -> None:
        """Raise if a value was NaN, outside the range, or a target not 0/1.

        Raises:
            ValueError: Naming the count, the observed extremes, the range and how to widen it.
        """
        name = getattr(self, "name", type(self).__name__)
        if torch.isnan(self.value_min) or torch.isnan(self.value_max):
            msg = f"{name}: the scores contain NaN; the model produced invalid anomaly scores or maps."
            raise ValueError(msg)
        low, high = self.value_range
        below = int(self.counts[:, 0].sum())
        above = int(self.counts[:, -1].sum()) if float(self.value_max) > high else 0  # else: values equal to high
        if below or above:
            msg = (
                f"{name}: scores lie outside the declared value_range [{low}, {high}]: {below} below, {above} at or "
                f"above its end (observed min {float(self.value_min):.6g}, max {float(self.value_max):.6g}). Widen "
                "value_range to cover them, e.g. value_range=(min, max) of the model's scores, or normalise the "
                "scores first."
            )
            raise ValueError(msg)
        invalid = int(self.invalid_targets)
        if invalid:
            msg = f"{name}: {invalid} targets are neither 0 nor 1; labels and masks must be binary."
            raise ValueError(msg)

    def class_counts(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Checked ``(negatives, positives)`` per bin, float64, bins in increasing order."""
        self.check()
        bins = in_bins(self.counts.double())
        return bins[0], bins[1]


def in_bins(slots: torch.Tensor) -> torch.Tensor:
    """Bins of checked slot rows ``(..., num_bins + 2)``: the top slot (values equal to ``high``) joins the last."""
    bins = slots[..., 1:-1].clone()
    bins[..., -1] += slots[..., -1]
    return bins
