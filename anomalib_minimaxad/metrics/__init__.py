# Copyright (C) 2026 anomalib-minimaxad developers
# SPDX-License-Identifier: Apache-2.0
"""Evaluation metrics: streaming (bounded-memory) AUROC, AUPR, AUPRO and F1 threshold, and per-image AUPRO.

anomalib's AUROC, AUPR, AUPRO and ``F1AdaptiveThreshold`` keep every score (every pixel of every anomaly map) until
the epoch ends: memory grows with the test set (issue 19 measured 4.2 MiB per 256-px test image with MiniMaxAD's
exact evaluator and post-processor) and sorting it all dominates a test run. The ``Streaming*`` metrics keep,
instead, a histogram per class over a declared value range
(:class:`~anomalib_minimaxad.metrics.histogram.HistogramState`: ``2**16`` bins by default, int64 counts, 1 MiB per
metric) and compute anomalib's curves from it, scores in one bin counting as ties. Their names are those of the
metrics they replace (``image_AUROC``, ``pixel_AUPRO``, ...).

Why not torchmetrics' binned mode (``thresholds=int``, which anomalib's ``F1AdaptiveThreshold`` also accepts): it
compares every score with every threshold, O(N x T) per update. Measured on this project's 2-core VM (AMD EPYC,
one thread, process CPU time, load average about 13), 8 maps of 256x256: 20 ms per map with 100 thresholds and
106 ms per map with 1,000, against 0.38 ms per map for the histogram update with ``2**16`` bins; and 100
thresholds are far too coarse for 1e-4.

Values outside the range are never clamped into the edge bins: they are counted apart, and ``compute`` raises a
``ValueError`` that gives their number, the observed extremes, the range and how to widen it; NaN scores and
targets other than 0/1 raise too. Updates run on the metric's device without a host sync (``index_add_`` on
accelerators; connected components by kornia there, as anomalib's AUPRO does on GPU). Under DDP the histograms are
summed across processes (``dist_reduce_fx="sum"``, extremes by min/max), so a multi-process run gives the
single-process values. The states are torchmetrics states, not persistent: they never enter a checkpoint
(``StreamingAUPRO`` keeps anomalib AUPRO's ``fpr_limit`` buffer, so checkpoints of either evaluator load into the
other).

The bin count: on 24 smoothed-noise maps of 128x128 with a defect on every other one, the largest difference to
the exact metric (AUPR's) was 1.6e-4 with ``2**12`` bins, 3.5e-5 with ``2**14`` and 7e-6 with ``2**16``. With the
default, on the fixtures of ``tests/test_streaming_metrics.py`` (33x47 to 256x256, continuous and tied scores) the
largest differences were 6e-8 (AUROC), 9.4e-6 (AUPR), 4.1e-6 (AUPRO), 1.6e-6 (per-image AUPRO), and the
thresholds 0.57 bin from anomalib's. :mod:`anomalib_minimaxad.metrics.streaming` gives the definitions and the
undefined cases.

Any anomalib model can use them:

Example:
    >>> from anomalib.metrics import Evaluator, F1Score
    >>> from anomalib_minimaxad.metrics import StreamingAUPR, StreamingAUPRO, StreamingAUROC
    >>> evaluator = Evaluator(test_metrics=[
    ...     StreamingAUROC(fields=["pred_score", "gt_label"], prefix="image_"),
    ...     F1Score(fields=["pred_label", "gt_label"], prefix="image_"),
    ...     StreamingAUROC(fields=["anomaly_map", "gt_mask"], prefix="pixel_", strict=False),
    ...     StreamingAUPRO(fields=["anomaly_map", "gt_mask"], prefix="pixel_", strict=False),
    ...     StreamingAUPR(fields=["anomaly_map", "gt_mask"], prefix="pixel_", strict=False),
    ... ])
    >>> [metric.name for metric in evaluator.test_metrics]
    ['image_AUROC', 'image_F1Score', 'pixel_AUROC', 'pixel_AUPRO', 'pixel_AUPR']

    With anomalib's post-processor the test metrics see normalised scores in ``[0, 1]`` (the default range); raw
    scores need their range, e.g. ``StreamingAUROC(..., value_range=(0.0, 2.0))`` for MiniMaxAD's ``1 - cos``.
    :class:`~anomalib_minimaxad.post_processing.StreamingPostProcessor` computes the adaptive thresholds the same
    way (``Padim(post_processor=StreamingPostProcessor(value_range=...))``).
"""

from .per_image_aupro import AuproMode, PerImageAUPRO
from .streaming import (
    StreamingAUPR,
    StreamingAUPRO,
    StreamingAUROC,
    StreamingF1AdaptiveThreshold,
    StreamingPerImageAUPRO,
)

__all__ = [
    "AuproMode",
    "PerImageAUPRO",
    "StreamingAUPR",
    "StreamingAUPRO",
    "StreamingAUROC",
    "StreamingF1AdaptiveThreshold",
    "StreamingPerImageAUPRO",
]
