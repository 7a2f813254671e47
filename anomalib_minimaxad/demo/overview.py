# Copyright (C) 2026 anomalib-minimaxad developers
# SPDX-License-Identifier: Apache-2.0
"""The demo's pictures: a detailed grid per category and one overview PNG of all categories.

Both take the test images with their masks and the OpenVINO predictions of the demo's pipeline
(anything with ``anomaly_map``, ``pred_mask``, ``pred_score`` and ``pred_label``, such as anomalib's
``NumpyImageBatch``).

Example:
    >>> draw_overview({"gravel": (pairs, predictions, metrics)}, Path("overview.png"))  # doctest: +SKIP
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from pathlib import Path

__all__ = ["ImagePair", "draw_category_grid", "draw_overview"]

#: A test image and its ground-truth mask (``None`` for a normal image).
ImagePair = tuple["Path", "Path | None"]

GRID_ROWS = 6
OVERVIEW_DEFECTS = 3
#: Metrics written beside each category in the overview: (anomalib's name, label).
OVERVIEW_METRICS = (("image_AUROC", "image AUROC"), ("pixel_AUROC", "pixel AUROC"), ("pixel_AUPRO", "AUPRO"))


def _pyplot() -> Any:  # noqa: ANN401 - matplotlib's module
    import matplotlib as mpl

    mpl.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _resize(array: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    if array.shape == size:
        return array
    return np.asarray(Image.fromarray(array.astype(np.float32)).resize((size[1], size[0]), Image.BILINEAR))


def _one_per_defect_kind(pairs: Sequence[ImagePair]) -> list[int]:
    """Indices of the defective images, one of each defect kind first, then the others."""
    defective = [index for index, (_, mask) in enumerate(pairs) if mask is not None]
    first_of_kind: dict[str, int] = {}
    for index in defective:
        first_of_kind.setdefault(pairs[index][0].parent.name, index)
    chosen = list(first_of_kind.values())
    return chosen + [index for index in defective if index not in chosen]


def _image_and_heat(pair: ImagePair, prediction: Any) -> tuple[np.ndarray, np.ndarray]:  # noqa: ANN401
    image = np.asarray(Image.open(pair[0]).convert("RGB"))
    return image, _resize(np.squeeze(prediction.anomaly_map), image.shape[:2])


def draw_category_grid(pairs: Sequence[ImagePair], predictions: Sequence[Any], title: str, path: Path) -> None:
    """Image, ground truth, heat map and predicted mask for two normal images and one per defect kind.

    Args:
        pairs: Test images with their masks, in the order of ``predictions``.
        predictions: One OpenVINO prediction per test image.
        title: Title of the figure.
        path: PNG file to write.
    """
    plt = _pyplot()
    good = [index for index, (_, mask) in enumerate(pairs) if mask is None][:2]
    chosen = (good + _one_per_defect_kind(pairs))[:GRID_ROWS]
    figure, axes = plt.subplots(len(chosen), 4, figsize=(10, 2.6 * len(chosen)), squeeze=False)
    for row, index in enumerate(chosen):
        image_path, mask_path = pairs[index]
        prediction = predictions[index]
        image, heat = _image_and_heat(pairs[index], prediction)
        size = image.shape[:2]
        mask = np.asarray(Image.open(mask_path)) if mask_path else np.zeros(size, dtype=np.uint8)
        predicted = _resize(np.squeeze(prediction.pred_mask).astype(np.float32), size) > 0.5
        score = float(np.squeeze(prediction.pred_score))
        label = "anomalous" if bool(np.squeeze(prediction.pred_label)) else "normal"
        panels = [
            (image, None, f"{image_path.parent.name}/{image_path.name}"),
            (mask, "gray", "ground truth"),
            (heat, "jet", f"anomaly map (score {score:.2f})"),
            (predicted, "gray", f"predicted mask: {label}"),
        ]
        for column, (picture, colormap, caption) in enumerate(panels):
            axis = axes[row][column]
            if column == 2:  # the heat map, drawn over its image
                axis.imshow(image)
                axis.imshow(picture, cmap=colormap, alpha=0.5)
            else:
                axis.imshow(picture, cmap=colormap)
            axis.set_title(caption, fontsize=8)
            axis.axis("off")
    figure.suptitle(title)
    figure.tight_layout()
    figure.savefig(path, dpi=80)
    plt.close(figure)


def draw_overview(
    categories: Mapping[str, tuple[Sequence[ImagePair], Sequence[Any], Mapping[str, float]]],
    path: Path,
    title: str = "MiniMaxAD demo",
) -> None:
    """One row per category: its metrics, then image / heat-map pairs of a few defective test images.

    The heat maps of a category share one colour scale (its test maps' 1st to 99.9th percentile), so that
    a stronger response looks stronger across the row.

    Args:
        categories: Per category: test images with masks, their predictions and the category's metrics.
        path: PNG file to write.
        title: Title of the figure.
    """
    plt = _pyplot()
    columns = 1 + 2 * OVERVIEW_DEFECTS
    figure, axes = plt.subplots(
        len(categories),
        columns,
        figsize=(1.7 * columns, 1.9 * len(categories) + 0.4),
        squeeze=False,
    )
    for row, (category, (pairs, predictions, metrics)) in enumerate(categories.items()):
        maps = np.concatenate([np.ravel(prediction.anomaly_map) for prediction in predictions])
        low, high = np.percentile(maps, [1, 99.9])
        lines = [category, *(f"{label} {metrics[name]:.3f}" for name, label in OVERVIEW_METRICS if name in metrics)]
        axes[row][0].text(0.0, 0.5, "\n".join(lines), fontsize=8, va="center", ha="left")
        axes[row][0].axis("off")
        for slot, index in enumerate(_one_per_defect_kind(pairs)[:OVERVIEW_DEFECTS]):
            image, heat = _image_and_heat(pairs[index], predictions[index])
            image_axis, heat_axis = axes[row][1 + 2 * slot], axes[row][2 + 2 * slot]
            image_axis.imshow(image)
            image_axis.set_title(pairs[index][0].parent.name, fontsize=7)
            heat_axis.imshow(heat, cmap="jet", vmin=low, vmax=high)
            heat_axis.set_title(f"score {float(np.squeeze(predictions[index].pred_score)):.2f}", fontsize=7)
        for axis in axes[row][1:]:
            axis.axis("off")
    figure.suptitle(title, fontsize=9)
    figure.tight_layout()
    figure.savefig(path, dpi=72)
    plt.close(figure)
