# Copyright (C) 2026 anomalib-minimaxad developers
# SPDX-License-Identifier: Apache-2.0
"""Per-category test metrics: the layout of the paper's Table 3 (one row per category, then the mean).

A datamodule whose test set mixes several categories (:class:`~anomalib_minimaxad.data.unified.Unified`, or the
four domains of :class:`~anomalib_minimaxad.data.aebad.AeBADS`) tells which category each test image belongs to
through the :class:`CategoryAware` protocol (``test_categories`` and ``category_of(image_paths)``; the image path
is the key, since anomalib's batches carry no category field). The :class:`PerCategoryMetrics` callback then keeps
one set of metric objects *per category* (anomalib metrics are stateful), updates each with that category's part
of every test batch, and at the end of the test

* logs ``<category>/<metric>`` and ``mean/<metric>`` (they appear in the table Lightning prints and in the list
  ``Engine.test`` returns),
* logs the table (rows: categories and ``Mean``; columns: ``I-AUROC``, ``P-AUROC``, ``AUPRO``, ``P-AUPR``, ...),
* writes it to ``<trainer.default_root_dir>/per_category_results.csv`` and ``.json`` (rank 0, atomically).

The metrics are, by default, fresh copies of the model evaluator's test metrics (for MiniMaxAD: image AUROC and
F1, pixel AUROC, F1, AUPRO and AUPR), so every column means what the evaluator's metric of the same name means,
computed on the same full-resolution maps. With MiniMaxAD's default streaming metrics
(:mod:`anomalib_minimaxad.metrics`) each category holds histograms, not maps: about 9 MiB per category whatever
the number of test images (30 categories: about 270 MiB). Exact metrics (``streaming_metrics=False``) keep every
map of their category, as the evaluator's do.

:class:`MultiCategoryDataModule` is the datamodule side: the base of ``Unified`` and ``AeBADS``, it maps image
paths to the ``category`` column of the samples tables and attaches the callback in ``setup`` (a datamodule
cannot declare callbacks), so it works from ``anomalib train/test`` and ``Engine().test`` alike; add one
explicitly to choose its options. It moves itself behind the model's post-processor and evaluator, so it sees the
same values they do.

Example:
    >>> import torch
    >>> from types import MappingProxyType, SimpleNamespace
    >>> from anomalib.metrics import AUROC
    >>> callback = PerCategoryMetrics(metrics=[AUROC(fields=["pred_score", "gt_label"], prefix="image_")])
    >>> callback.reset(["a", "b"])
    >>> batch = SimpleNamespace(pred_score=torch.tensor([0.1, 0.9, 0.2, 0.8]), gt_label=torch.tensor([0, 1, 0, 1]))
    >>> callback.update(batch, ["a", "a", "b", "b"])
    >>> results = callback.compute()
    >>> results.mean["image_AUROC"]
    1.0
"""

import copy
import csv
import io
import json
import logging
import math
from abc import abstractmethod
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType, SimpleNamespace
from typing import Any, Protocol, runtime_checkable

import torch
from anomalib.data import AnomalibDataModule
from anomalib.metrics import AnomalibMetric
from lightning.pytorch import Callback, LightningModule, Trainer

from anomalib_minimaxad.fault_tolerance import atomic_write
from anomalib_minimaxad.metrics.histogram import HistogramState

__all__ = [
    "DISPLAY_NAMES",
    "RESULTS_FILE_STEM",
    "CategoryAware",
    "CategoryResults",
    "MultiCategoryDataModule",
    "PerCategoryMetrics",
    "attach_per_category_metrics",
    "default_metrics",
]

logger = logging.getLogger(__name__)

#: Results are written to ``<output dir>/per_category_results.csv`` and ``.json``.
RESULTS_FILE_STEM = "per_category_results"

#: Column titles of the table, as the paper writes them, in the paper's order (other metrics follow, keeping
#: their anomalib name).
DISPLAY_NAMES: dict[str, str] = {
    "image_AUROC": "I-AUROC",
    "pixel_AUROC": "P-AUROC",
    "pixel_AUPRO": "AUPRO",
    "pixel_AUPR": "P-AUPR",
    "image_AUPR": "I-AUPR",
    "image_F1Score": "I-F1",
    "pixel_F1Score": "P-F1",
}


@runtime_checkable
class CategoryAware(Protocol):
    """What :class:`PerCategoryMetrics` needs from a datamodule: the test categories and each image's one."""

    @property
    def test_categories(self) -> list[str]:
        """Categories of the test set, in the order of the results table."""
        ...

    def category_of(self, image_paths: Iterable[str]) -> list[str]:
        """Category of each image (by its path as it appears in the batches)."""
        ...


def default_metrics() -> list[AnomalibMetric]:
    """MiniMaxAD's test metrics (those of ``MiniMaxAD.configure_evaluator``), for models without an evaluator.

    Image AUROC and F1, pixel AUROC, F1, AUPRO and AUPR: the columns of the paper's tables.
    """
    from anomalib_minimaxad.lightning_model import MiniMaxAD

    return list(MiniMaxAD.configure_evaluator().test_metrics)


class MultiCategoryDataModule(AnomalibDataModule):
    """Base of datamodules whose test set mixes categories (:class:`CategoryAware`), reported per category.

    Subclasses build datasets whose samples tables have a ``category`` column and name the test categories;
    :meth:`setup` indexes each image's category and attaches :class:`PerCategoryMetrics` to the trainer.

    Example:
        >>> from anomalib_minimaxad.data import AeBADS
        >>> datamodule = AeBADS(root="./datasets/AeBAD/AeBAD_S", num_workers=0)
        >>> datamodule.setup()  # doctest: +SKIP
        >>> datamodule.category_of(datamodule.test_data.samples.image_path[:1])  # doctest: +SKIP
        ['background']
    """

    #: Category of each image path of the built datasets (filled by :meth:`setup`).
    _category_by_path: Mapping[str, str] = MappingProxyType({})  # replaced by setup, never mutated

    @property
    @abstractmethod
    def test_categories(self) -> list[str]:
        """Categories of the test set, in the order of the results table."""

    def category_of(self, image_paths: Iterable[str]) -> list[str]:
        """Category of each image, by its path as it appears in ``samples`` and in batches.

        Raises:
            KeyError: A path belongs to no category (the datamodule is not set up, or the path is foreign).
        """
        try:
            return [self._category_by_path[str(path)] for path in image_paths]
        except KeyError as exc:
            name = type(self).__name__
            msg = f"{name}: image {exc.args[0]!r} belongs to no category of this datamodule (is it set up?)."
            raise KeyError(msg) from None

    def setup(self, stage: str | None = None) -> None:
        """Set up the data, index each image's category, and attach per-category test metrics to the trainer."""
        super().setup(stage)
        index: dict[str, str] = {}
        for dataset in (self.train_data, self.test_data):
            index.update(zip(dataset.samples.image_path.astype(str), dataset.samples.category, strict=True))
        self._category_by_path = index
        attach_per_category_metrics(self.trainer)


@dataclass
class CategoryResults:
    """Metrics per category and their mean (the layout of the paper's Table 3).

    Attributes:
        metric_names: Metric names in column order (anomalib names, e.g. ``image_AUROC``).
        per_category: ``{category: {metric: value}}`` in row order; a value is ``nan`` when it is undefined
            (e.g. no anomalous image in that category).
        mean: ``{metric: mean over the categories}``, ignoring undefined values.
        num_images: ``{category: number of test images seen}``.

    Example:
        >>> results = CategoryResults(["image_AUROC"], {"a": {"image_AUROC": 1.0}, "b": {"image_AUROC": 0.5}})
        >>> results.mean
        {'image_AUROC': 0.75}
        >>> print(results.format_table())
        Category  I-AUROC
        a           100.0
        b            50.0
        Mean         75.0
    """

    metric_names: list[str]
    per_category: dict[str, dict[str, float]]
    mean: dict[str, float] = field(default_factory=dict)
    num_images: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        """Average the categories when no mean is given."""
        if not self.mean:
            self.mean = {
                name: _nanmean(row.get(name, math.nan) for row in self.per_category.values())
                for name in self.metric_names
            }

    @property
    def columns(self) -> list[str]:
        """Column titles (``I-AUROC``, ``P-AUROC``, ``AUPRO``, ``P-AUPR``, ...)."""
        return [DISPLAY_NAMES.get(name, name) for name in self.metric_names]

    def rows(self) -> list[tuple[str, list[float]]]:
        """``(row title, values)`` for every category, then ``Mean``."""
        rows = [
            (category, [values.get(n, math.nan) for n in self.metric_names])
            for category, values in self.per_category.items()
        ]
        rows.append(("Mean", [self.mean.get(n, math.nan) for n in self.metric_names]))
        return rows

    def format_table(self, percent: bool = True, digits: int = 1) -> str:
        """The table as aligned text, values in percent (as the paper prints them) unless ``percent=False``."""
        scale = 100.0 if percent else 1.0
        header = ["Category", *self.columns]
        body = [[title, *(f"{value * scale:.{digits}f}" for value in values)] for title, values in self.rows()]
        widths = [max(len(row[i]) for row in (header, *body)) for i in range(len(header))]
        lines = []
        for row in (header, *body):
            cells = [row[0].ljust(widths[0])]
            cells += [cell.rjust(width) for cell, width in zip(row[1:], widths[1:], strict=True)]
            lines.append("  ".join(cells).rstrip())
        return "\n".join(lines)

    def to_csv(self) -> str:
        """CSV text: ``category,<columns>`` then one line per category and ``Mean``; values as fractions."""
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(["category", *self.columns])
        for title, values in self.rows():
            writer.writerow([title, *(f"{value:.6f}" for value in values)])
        return buffer.getvalue()

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (``nan`` becomes ``None``)."""
        return {
            "metrics": self.metric_names,
            "columns": self.columns,
            "per_category": {c: {n: _json_float(v) for n, v in row.items()} for c, row in self.per_category.items()},
            "mean": {n: _json_float(v) for n, v in self.mean.items()},
            "num_images": self.num_images,
        }

    def save(self, directory: str | Path, stem: str = RESULTS_FILE_STEM) -> tuple[Path, Path]:
        """Write ``<directory>/<stem>.csv`` and ``.json`` atomically; returns both paths."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        csv_path, json_path = directory / f"{stem}.csv", directory / f"{stem}.json"
        atomic_write(csv_path, lambda path: path.write_text(self.to_csv(), encoding="utf-8"))
        text = json.dumps(self.to_dict(), indent=2) + "\n"
        atomic_write(json_path, lambda path: path.write_text(text, encoding="utf-8"))
        return csv_path, json_path


class PerCategoryMetrics(Callback):
    """Compute test metrics per category of a :class:`CategoryAware` datamodule, and their mean.

    Args:
        metrics: Metric objects to compute for each category (each is copied per category). Defaults to the
            model evaluator's test metrics, or :func:`default_metrics` when the model has none.
        output_dir: Folder of ``per_category_results.{csv,json}``. Defaults to ``trainer.default_root_dir``.

    Example:
        >>> from anomalib.engine import Engine
        >>> from anomalib_minimaxad import MiniMaxAD
        >>> from anomalib_minimaxad.data import Unified
        >>> datamodule = Unified(dataset="MVTecAD", root="./datasets/MVTecAD", categories="all")
        >>> engine = Engine(callbacks=[PerCategoryMetrics(output_dir="results")])  # optional: attached anyway
        >>> engine.test(MiniMaxAD(), datamodule=datamodule, ckpt_path="model.ckpt")  # doctest: +SKIP
        >>> engine.trainer.callbacks[-1].results.mean  # doctest: +SKIP
    """

    def __init__(
        self,
        metrics: Sequence[AnomalibMetric] | None = None,
        output_dir: str | Path | None = None,
    ) -> None:
        super().__init__()
        self.metric_templates = list(metrics) if metrics is not None else None
        self.output_dir = Path(output_dir) if output_dir is not None else None
        self.results: CategoryResults | None = None
        self._metrics: dict[str, list[AnomalibMetric]] = {}
        # Per category: normal images, anomalous images, anomalous mask pixels, mask pixels.
        self._counts: dict[str, torch.Tensor] = {}
        self._device = torch.device("cpu")
        self._active = False

    # ------------------------------------------------------------------------------------------------------------
    # Plain API (usable without a trainer)
    # ------------------------------------------------------------------------------------------------------------

    def reset(self, categories: Sequence[str], templates: Sequence[AnomalibMetric] | None = None) -> None:
        """Start over with fresh metric objects for each of ``categories`` (in table order)."""
        templates = list(templates if templates is not None else self.metric_templates or default_metrics())
        order = list(DISPLAY_NAMES)  # the paper's columns first, then the others as given
        templates.sort(key=lambda m: order.index(m.name) if m.name in order else len(order))
        names = [metric.name for metric in templates]
        if len(set(names)) != len(names):
            msg = f"Metric names must be unique to form table columns, got {names}."
            raise ValueError(msg)
        self._metrics = {}
        for category in dict.fromkeys(categories):
            fresh = [copy.deepcopy(metric) for metric in templates]
            for metric in fresh:
                metric.reset()
            self._metrics[category] = fresh
        self._counts = {category: torch.zeros(4, dtype=torch.float64) for category in self._metrics}
        self.results = None

    def update(self, batch: Any, categories: Sequence[str]) -> None:  # noqa: ANN401 - any batch-like object
        """Add a batch; ``categories[i]`` is the category of its ``i``-th image."""
        unknown = set(categories) - self._metrics.keys()
        if unknown:
            msg = f"Test images of categories {sorted(unknown)} are not in the table {list(self._metrics)}."
            raise KeyError(msg)
        for category in dict.fromkeys(categories):
            indices = [i for i, c in enumerate(categories) if c == category]
            part = self._select(batch, indices)
            for metric in self._metrics[category]:
                metric.update(part)
            self._counts[category] += _label_counts(part)

    def compute(self) -> CategoryResults:
        """Metrics of every category (``nan`` where undefined) and their mean."""
        if not self._metrics:
            msg = "PerCategoryMetrics.compute() before reset(): no categories."
            raise RuntimeError(msg)
        names = [metric.name for metric in next(iter(self._metrics.values()))]
        counts = self._gathered_counts()
        table = {
            category: {m.name: self._value(category, m, counts[category]) for m in metrics}
            for category, metrics in self._metrics.items()
        }
        num_images = {category: int(count[0] + count[1]) for category, count in counts.items()}
        self.results = CategoryResults(names, table, num_images=num_images)
        return self.results

    # ------------------------------------------------------------------------------------------------------------
    # Lightning hooks
    # ------------------------------------------------------------------------------------------------------------

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        """Run after the model's callbacks (post-processor, evaluator): they prepare the values compared here."""
        del pl_module, stage
        callbacks = trainer.callbacks
        if self in callbacks and callbacks[-1] is not self:
            callbacks.remove(self)
            callbacks.append(self)

    def on_test_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Fresh metrics per category of the datamodule; inactive if it is not category-aware."""
        datamodule = getattr(trainer, "datamodule", None)
        self._active = isinstance(datamodule, CategoryAware)
        if not self._active:
            logger.warning(
                "PerCategoryMetrics: the datamodule %s tells no categories; skipped.",
                type(datamodule).__name__,
            )
            return
        templates = self.metric_templates
        evaluator = getattr(pl_module, "evaluator", None)
        if templates is None and evaluator is not None and len(evaluator.test_metrics):
            templates = list(evaluator.test_metrics)
        self.reset(datamodule.test_categories, templates)
        # The metrics live where the batches are (streaming summaries update there without a host copy); metrics
        # that store their inputs move them to the CPU after each update, as the Evaluator's do.
        self._device = pl_module.device
        for metrics in self._metrics.values():
            for metric in metrics:
                metric.to(self._device)
                metric.compute_on_cpu = trainer.num_devices == 1

    def on_test_batch_end(
        self,
        trainer: Trainer,
        pl_module: LightningModule,
        outputs: Any,  # noqa: ANN401 - the batch with predictions
        batch: Any,  # noqa: ANN401
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        """Split the batch by category and update each category's metrics."""
        del pl_module, outputs, batch_idx, dataloader_idx
        if self._active:
            self.update(batch, trainer.datamodule.category_of(batch.image_path))

    def on_test_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Compute, log and save the table."""
        if not self._active:
            return
        results = self.compute()
        logged = {f"{c}/{n}": v for c, row in results.per_category.items() for n, v in row.items()}
        logged.update({f"mean/{n}": v for n, v in results.mean.items()})
        pl_module.log_dict(logged, sync_dist=False)  # compute() already gathered every process's samples
        if trainer.is_global_zero:
            logger.info("Per-category test results (%%):\n%s", results.format_table())
            directory = self.output_dir or Path(trainer.default_root_dir)
            csv_path, _ = results.save(directory)
            logger.info("Per-category results written to %s (and .json).", csv_path)

    # ------------------------------------------------------------------------------------------------------------

    def _select(self, batch: Any, indices: list[int]) -> SimpleNamespace:  # noqa: ANN401
        """The fields the metrics read, restricted to ``indices``."""
        fields = {name for metrics in self._metrics.values() for m in metrics for name in m.fields}
        fields |= {"gt_label", "gt_mask"}  # for the label counts
        index = torch.tensor(indices, dtype=torch.long)
        part = {}
        for name in fields:
            value = getattr(batch, name, None)
            if isinstance(value, torch.Tensor) and value.ndim > 0:
                value = value.detach()[index.to(value.device)]
            elif isinstance(value, (list, tuple)):
                value = [value[i] for i in indices]
            part[name] = value
        return SimpleNamespace(**part)

    def _gathered_counts(self) -> dict[str, torch.Tensor]:
        """Label counts of every category, summed over the processes of a distributed run."""
        stacked = torch.stack(list(self._counts.values())) if self._counts else torch.zeros(0, 4)
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            stacked = stacked.to(self._device)
            torch.distributed.all_reduce(stacked)  # every process computes, in the same order
        return dict(zip(self._counts, stacked.cpu(), strict=True))

    def _value(self, category: str, metric: AnomalibMetric, counts: torch.Tensor) -> float:  # noqa: PLR6301
        normal, anomalous, positive_pixels, pixels = counts.tolist()
        if ("gt_label" in metric.fields and not (normal and anomalous)) or (
            "gt_mask" in metric.fields and not 0 < positive_pixels < pixels
        ):
            logger.warning(
                "%s of category %r is undefined: its test set lacks normal or anomalous %s.",
                metric.name,
                category,
                "pixels" if "gt_mask" in metric.fields else "images",
            )
            return math.nan
        try:
            value = metric.compute()
        except Exception as exc:
            if isinstance(metric, HistogramState):  # undefined is nan there: an error is bad input (range, NaN)
                raise
            logger.warning("%s of category %r is undefined (%s: %s).", metric.name, category, type(exc).__name__, exc)
            return math.nan
        if value is None:
            return math.nan
        value = torch.as_tensor(value).float()
        return float(value) if value.numel() == 1 else math.nan


def attach_per_category_metrics(trainer: Trainer | None) -> None:
    """Append a default :class:`PerCategoryMetrics` to ``trainer.callbacks`` unless one is there already."""
    if trainer is None:
        return
    if not any(isinstance(callback, PerCategoryMetrics) for callback in trainer.callbacks):
        trainer.callbacks.append(PerCategoryMetrics())


def _label_counts(part: SimpleNamespace) -> torch.Tensor:
    """``[normal images, anomalous images, anomalous mask pixels, mask pixels]`` of a batch part."""
    counts = torch.zeros(4, dtype=torch.float64)
    labels = getattr(part, "gt_label", None)
    if isinstance(labels, torch.Tensor):
        anomalous = int((labels.flatten() != 0).sum())
        counts[0], counts[1] = labels.numel() - anomalous, anomalous
    masks = getattr(part, "gt_mask", None)
    if isinstance(masks, torch.Tensor):
        counts[2], counts[3] = float((masks != 0).sum()), float(masks.numel())
    return counts


def _nanmean(values: Iterable[float]) -> float:
    finite = [v for v in values if not math.isnan(v)]
    return sum(finite) / len(finite) if finite else math.nan


def _json_float(value: float) -> float | None:
    return None if math.isnan(value) else round(float(value), 8)
