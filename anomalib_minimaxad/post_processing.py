# Copyright (C) 2026 anomalib-minimaxad developers
# SPDX-License-Identifier: Apache-2.0
"""anomalib's post-processor with adaptive thresholds computed from histograms, in bounded memory.

anomalib's :class:`~anomalib.post_processing.PostProcessor` finds the image and pixel thresholds with
``F1AdaptiveThreshold``, which keeps every validation score and every pixel of every validation map until the
epoch ends. :class:`StreamingPostProcessor` uses
:class:`~anomalib_minimaxad.metrics.StreamingF1AdaptiveThreshold` instead (a threshold within one bin of
anomalib's); the min/max normalisation (running extremes) is anomalib's. Everything else, including what a
checkpoint holds (the thresholds and extremes as buffers, the same keys), is anomalib's post-processor: the
histograms are non-persistent torchmetrics states, and a checkpoint written with either post-processor loads into
the other.

Example:
    >>> from anomalib.models import Padim
    >>> from anomalib_minimaxad.post_processing import StreamingPostProcessor
    >>> post_processor = StreamingPostProcessor(value_range=(0.0, 100.0))  # the range of the model's raw scores
    >>> model = Padim(post_processor=post_processor)  # doctest: +SKIP
    >>> sorted(post_processor.state_dict())[:2]
    ['_image_threshold', '_pixel_threshold']
"""

from __future__ import annotations

from typing import Any

from anomalib.post_processing import PostProcessor

from .metrics import StreamingF1AdaptiveThreshold

__all__ = ["StreamingPostProcessor"]


class StreamingPostProcessor(PostProcessor):
    """:class:`~anomalib.post_processing.PostProcessor` whose adaptive thresholds come from histograms.

    Args:
        value_range (tuple[float, float]): ``(low, high)`` of the model's raw scores and maps (what the thresholds are
            computed on);
            a value outside it makes the threshold's computation raise a ``ValueError``.
        num_bins (int): Number of histogram bins over ``value_range``. Defaults to ``2**16``.
        **kwargs (Any): Passed to :class:`~anomalib.post_processing.PostProcessor` (sensitivities, switches).

    Example:
        >>> post_processor = StreamingPostProcessor(value_range=(0.0, 2.0))
        >>> type(post_processor._pixel_threshold_metric).__name__
        'StreamingF1AdaptiveThreshold'
    """

    def __init__(self, value_range: tuple[float, float], num_bins: int = 2**16, **kwargs: Any) -> None:  # noqa: ANN401
        super().__init__(**kwargs)
        self.value_range = (float(value_range[0]), float(value_range[1]))
        self.num_bins = int(num_bins)
        self._image_threshold_metric = StreamingF1AdaptiveThreshold(
            fields=["pred_score", "gt_label"],
            strict=False,
            value_range=self.value_range,
            num_bins=self.num_bins,
        )
        self._pixel_threshold_metric = StreamingF1AdaptiveThreshold(
            fields=["anomaly_map", "gt_mask"],
            strict=False,
            value_range=self.value_range,
            num_bins=self.num_bins,
        )
