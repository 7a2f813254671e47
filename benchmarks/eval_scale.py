"""Evaluation at scale: peak memory and time of ``fit`` and ``test`` against the test-set size, three evaluations.

For every resolution and test-set size, MiniMaxAD (a tiny random network, ``pre_trained=False``, so that the
model's own memory is negligible) is fitted for one epoch on a few normal images, validating on the whole test
set, and then tested, on generated data in the MVTec AD layout (``scale_data.py``; one category, half of its
test images defective), with each evaluation side by side:

- ``ours``: MiniMaxAD's default evaluator and post-processor (``MiniMaxAD()``);
- ``anomalib``: anomalib's exact metrics, built from anomalib's own classes: an ``Evaluator`` of ``AUROC``,
  ``F1Score``, ``AUPRO`` and ``AUPR`` (the metric set of MiniMaxAD's tables: image AUROC/F1, pixel
  AUROC/F1/AUPRO/AUPR; image and pixel AUROC during validation) and ``anomalib.post_processing.PostProcessor``;
- ``authors``: the evaluation of the MiniMaxAD authors' ``evaluation_batch`` (``utils/eval.py`` of
  WangFengJiee/MiniMaxAD), written here from its description: no evaluator and no post-processor; one list of
  anomaly maps, float masks, labels and scores per category during the test, concatenated at the category's end
  and evaluated with scikit-learn (``roc_auc_score``, ``average_precision_score``, the best F1 of
  ``precision_recall_curve``) and the authors' PRO procedure (200 thresholds evenly spaced between the maps'
  minimum and maximum, mean overlap of every connected defect region, points below 0.3 FPR, FPR rescaled by its
  maximum; computed here with one pass per image), then freed. Their training loop does not validate, so there
  is no ``authors`` fit: its test loads the weights of another mode's fit (the same seed, the same weights).

A fourth test, ``none`` (no evaluator, no post-processor), is the network and data alone: the metric cost of a
mode is its test time minus that, per image.

``--merge EARLIER.json`` (repeatable) adds the rows of earlier runs for the resolutions and modes this run does not
measure (each row keeps its start time and load), so that one table, JSON and plot holds runs that had to be made
apart (``--sizes ""`` measures nothing: a report of the merged files).

Every measurement runs in a fresh process, forked from this one after the libraries are imported and before any
tensor work (so no import time is paid per measurement, and OpenMP is not yet running when it forks): its peak
memory is that process's resident-set high-water mark (``VmHWM``), reported beside the RSS when the phase starts.
A run whose peak, predicted from the measured sizes (a least-squares line; from one point, through the set-up RSS;
from the other resolution's slope scaled by the pixel count when this resolution has none yet) would exceed
``--max-gb`` is not started and is recorded as ``skipped: predicted X GB``.

``--realiad`` measures instead the unified Real-IAD preset (``configs/realiad_unified.yaml``, through anomalib's
CLI parser, random weights) on a generated Real-IAD-layout set (``--realiad-images`` test images over
``--realiad-categories`` categories at 256 px), each phase in its
own process: one fit validating on a 20th of the test set, tests of a 40th and a 20th, then the whole test set
if the line through those two predicts a peak under ``--max-gb``.

Examples:
    python benchmarks/eval_scale.py                                  # 200..3200 images, 256 and 512 px
    python benchmarks/eval_scale.py --sizes 200,400 --resolutions 256 --modes ours,anomalib
    python benchmarks/eval_scale.py --quick                          # 64 px, 4 and 8 images: a smoke run
    python benchmarks/eval_scale.py --realiad --realiad-images 10000 # the Real-IAD preset at scale
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import multiprocessing
import os
import resource
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import benchlib
import numpy as np
import scale_data

MODES = ("ours", "anomalib", "authors")
#: Modes whose model has neither evaluator nor post-processor.
PLAIN_MODES = ("authors", "none")
#: The test without any evaluation (network and data only): the baseline of the metric cost.
NO_EVALUATION = "none"
PHASES = ("fit", "test")
MIB = 2**20
GB = 1e9
#: Memory budgets of the "how many test images fit" table.
BUDGETS_GB = (8, 16, 64)
#: The authors' PRO curve: thresholds between the maps' minimum and maximum, FPR limit.
AUTHORS_PRO_THRESHOLDS = 200
AUTHORS_PRO_FPR_LIMIT = 0.3
REALIAD_PRESET = "realiad_unified"


# ---------------------------------------------------------------- memory of this process


def _status_mib(field: str) -> float:
    """``VmRSS`` / ``VmHWM`` of this process in MiB (``ru_maxrss`` where /proc is missing)."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/status").read_text(encoding="utf-8").splitlines():
            if line.startswith(f"{field}:"):
                return int(line.split()[1]) / 1024
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 1024 if sys.platform != "darwin" else peak / MIB


# ---------------------------------------------------------------- the authors' evaluation (mode "authors")


def authors_pro(masks: np.ndarray, maps: np.ndarray, num_thresholds: int = AUTHORS_PRO_THRESHOLDS) -> float:
    """AUPRO as the authors compute it, up to FPR 0.3: ``masks`` and ``maps`` of shape ``(N, H, W)``.

    Thresholds ``t`` are ``arange(min, max, (max - min) / num_thresholds)`` over all maps; at each, a pixel is
    positive when its value is above ``t``; PRO is the mean over every connected defect region (8-connected) of
    the fraction of its pixels that are positive, FPR the fraction of normal pixels that are. The points with
    FPR below 0.3 are kept, their FPR divided by the largest, and the area under PRO(FPR) is returned. Each image
    is visited once: the number of thresholds below each pixel's value gives all thresholds at once.
    """
    from scipy import ndimage  # noqa: PLC0415
    from sklearn.metrics import auc  # noqa: PLC0415

    low, high = maps.min(), maps.max()  # in the maps' dtype, as the authors' thresholds are
    thresholds = np.arange(low, high, (high - low) / num_thresholds) if high > low else np.array([low])
    bins = len(thresholds) + 1
    normal_counts = np.zeros(bins, dtype=np.int64)
    region_counts: list[np.ndarray] = []
    eight_connected = np.ones((3, 3), dtype=bool)
    for mask, amap in zip(masks, maps, strict=True):
        below = np.searchsorted(thresholds, amap.ravel(), side="left")  # positive at thresholds[:below]
        defect = mask.ravel() > 0
        normal_counts += np.bincount(below[~defect], minlength=bins)
        regions, count = ndimage.label(mask > 0, structure=eight_connected)
        if count:
            ids = regions.ravel()[defect] - 1
            region_counts.append(np.bincount(ids * bins + below[defect], minlength=count * bins).reshape(count, bins))
    if not region_counts:
        return math.nan
    per_region = np.concatenate(region_counts)
    # positives at threshold index i: pixels with more than i thresholds below them
    positives = np.cumsum(per_region[:, ::-1], axis=1)[:, ::-1][:, 1:]
    pro = (positives / per_region.sum(axis=1, keepdims=True)).mean(axis=0)
    fpr = np.cumsum(normal_counts[::-1])[::-1][1:] / max(int(normal_counts.sum()), 1)
    kept = fpr < AUTHORS_PRO_FPR_LIMIT
    if kept.sum() < 2 or fpr[kept].max() == 0:
        return math.nan
    return float(auc(fpr[kept] / fpr[kept].max(), pro[kept]))


def authors_category_metrics(
    masks: list[Any], maps: list[Any], labels: list[Any], scores: list[Any]
) -> dict[str, float]:
    """The authors' ``evaluation_batch`` metrics of one category from its lists (torch tensors, as stored)."""
    import torch  # noqa: PLC0415
    from sklearn.metrics import average_precision_score, precision_recall_curve, roc_auc_score  # noqa: PLC0415

    def best_f1(truth: np.ndarray, score: np.ndarray) -> float:
        precision, recall, _ = precision_recall_curve(truth, score)
        return float((2 * precision * recall / (precision + recall + 1e-7))[:-1].max())

    gt_px = torch.cat(masks)[:, 0].numpy()
    pr_px = torch.cat(maps)[:, 0].numpy()
    gt_sp = torch.cat(labels).flatten().numpy()
    pr_sp = torch.cat(scores).flatten().numpy()
    results = {"pixel_AUPRO": authors_pro(gt_px, pr_px)}
    gt_px, pr_px = gt_px.ravel(), pr_px.ravel()
    results |= {
        "image_AUROC": float(roc_auc_score(gt_sp, pr_sp)),
        "image_AP": float(average_precision_score(gt_sp, pr_sp)),
        "image_F1max": best_f1(gt_sp, pr_sp),
        "pixel_AUROC": float(roc_auc_score(gt_px, pr_px)),
        "pixel_AP": float(average_precision_score(gt_px, pr_px)),
        "pixel_F1max": best_f1(gt_px, pr_px),
    }
    return results


def _authors_evaluation_callback() -> Any:  # noqa: ANN401 - a Lightning callback, built after the imports
    """A Lightning callback that evaluates the test set per category as the authors' scripts do."""
    import torch  # noqa: PLC0415
    from lightning.pytorch import Callback, LightningModule, Trainer  # noqa: PLC0415

    from anomalib_minimaxad.data.per_category import CategoryAware  # noqa: PLC0415

    class AuthorsEvaluation(Callback):
        """Per category: lists of maps, float masks, labels and scores; evaluated and freed once complete."""

        def __init__(self) -> None:
            self.results: dict[str, dict[str, float]] = {}
            self._lists: dict[str, tuple[list[Any], ...]] = {}
            self._expected: dict[str, int] = {}
            self._seen: dict[str, int] = {}

        def on_test_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
            del pl_module
            samples = trainer.datamodule.test_data.samples
            if "category" in samples:
                self._expected = samples["category"].value_counts().to_dict()
            else:
                self._expected = {trainer.datamodule.category: len(samples)}

        def on_test_batch_end(
            self,
            trainer: Trainer,
            pl_module: LightningModule,
            outputs: Any,  # noqa: ANN401
            batch: Any,  # noqa: ANN401
            *args: Any,  # noqa: ANN401
        ) -> None:
            del pl_module, outputs, args
            datamodule = trainer.datamodule
            if isinstance(datamodule, CategoryAware):
                categories = datamodule.category_of(batch.image_path)
            else:
                categories = [datamodule.category] * len(batch.image_path)
            for category in dict.fromkeys(categories):
                index = torch.tensor([i for i, c in enumerate(categories) if c == category])
                masks, maps, labels, scores = self._lists.setdefault(category, ([], [], [], []))
                masks.append(batch.gt_mask[index].reshape(len(index), 1, *batch.gt_mask.shape[-2:]).float())
                maps.append(batch.anomaly_map[index].reshape(len(index), 1, *batch.anomaly_map.shape[-2:]))
                labels.append(batch.gt_label[index])
                scores.append(batch.pred_score[index])
                self._seen[category] = self._seen.get(category, 0) + len(index)
                if self._seen[category] == self._expected[category]:
                    self.results[category] = authors_category_metrics(*self._lists.pop(category))

        def on_test_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
            del trainer, pl_module
            for category in list(self._lists):  # none unless a category's count was off
                self.results[category] = authors_category_metrics(*self._lists.pop(category))

    return AuthorsEvaluation()


# ---------------------------------------------------------------- one measurement (in a forked process)


@dataclass(frozen=True)
class Measurement:
    """One row: a phase of one evaluation mode on one test set."""

    phase: str
    mode: str
    resolution: int
    size: int


def exact_evaluator() -> Any:  # noqa: ANN401
    """The exact metrics of anomalib, the metric set of MiniMaxAD's tables (``anomalib`` mode)."""
    from anomalib.metrics import AUPR, AUPRO, AUROC, Evaluator, F1Score  # noqa: PLC0415

    val_metrics = [
        AUROC(fields=["pred_score", "gt_label"], prefix="image_"),
        AUROC(fields=["anomaly_map", "gt_mask"], prefix="pixel_", strict=False),
    ]
    test_metrics = [
        AUROC(fields=["pred_score", "gt_label"], prefix="image_"),
        F1Score(fields=["pred_label", "gt_label"], prefix="image_"),
        AUROC(fields=["anomaly_map", "gt_mask"], prefix="pixel_", strict=False),
        F1Score(fields=["pred_mask", "gt_mask"], prefix="pixel_", strict=False),
        AUPRO(fields=["anomaly_map", "gt_mask"], prefix="pixel_", strict=False),
        AUPR(fields=["anomaly_map", "gt_mask"], prefix="pixel_", strict=False),
    ]
    return Evaluator(val_metrics=val_metrics, test_metrics=test_metrics)


def build_model(mode: str, resolution: int, dims: Sequence[int], depths: Sequence[int]) -> Any:  # noqa: ANN401
    """MiniMaxAD with the evaluation of ``mode`` at ``resolution`` px (random weights, no visualizer)."""
    from anomalib.post_processing import PostProcessor  # noqa: PLC0415

    from anomalib_minimaxad import MiniMaxAD  # noqa: PLC0415

    common = {
        "pre_trained": False,
        "dims": tuple(dims),
        "depths": tuple(depths),
        "visualizer": False,
        # the default pre-processor resizes to 256 px: the maps would not be of the images' size
        "pre_processor": MiniMaxAD.configure_pre_processor(image_size=(resolution, resolution)),
    }
    if mode == "ours":
        return MiniMaxAD(**common)
    if mode == "anomalib":
        return MiniMaxAD(**common, evaluator=exact_evaluator(), post_processor=PostProcessor())
    return MiniMaxAD(**common, evaluator=False, post_processor=False)  # authors, none


def describe_evaluation(model: Any) -> dict[str, Any]:  # noqa: ANN401
    """Class names of the model's post-processor and test metrics (which implementation was measured)."""
    evaluator = getattr(model, "evaluator", None)
    metrics = [f"{type(m).__name__}:{m.name}" for m in evaluator.test_metrics] if evaluator is not None else []
    post_processor = getattr(model, "post_processor", None)
    return {"post_processor": type(post_processor).__name__ if post_processor else None, "test_metrics": metrics}


def _number(value: Any) -> float | None:  # noqa: ANN401
    with contextlib.suppress(TypeError, ValueError):
        value = float(value)
        return value if math.isfinite(value) else None
    return None


def run_measurement(measurement: Measurement, args: argparse.Namespace, root: Path, workdir: Path) -> dict[str, Any]:
    """Fit or test once in this (fresh) process; peak memory, time and the metrics."""
    import torch  # noqa: PLC0415
    from anomalib.engine import Engine  # noqa: PLC0415

    from anomalib_minimaxad.data import MVTecLayout  # noqa: PLC0415

    benchlib.set_threads(args.threads)
    torch.manual_seed(0)
    category = f"n{measurement.size}"
    datamodule = MVTecLayout(
        root=root / str(measurement.resolution),
        category=category,
        train_batch_size=args.batch,
        eval_batch_size=args.batch,
        num_workers=0,
    )
    model = build_model(measurement.mode, measurement.resolution, args.dims, args.depths)
    if measurement.phase == "test" and measurement.mode in PLAIN_MODES:
        model.strict_loading = False  # the weights of a fit with a post-processor: its statistics are not used
    callbacks = (
        [_authors_evaluation_callback()] if measurement.mode == "authors" and measurement.phase == "test" else []
    )
    engine = Engine(
        max_epochs=1,
        accelerator="cpu",
        devices=1,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=str(workdir / f"{measurement.mode}_{measurement.resolution}_{measurement.size}"),
        callbacks=callbacks,
    )
    fitted = checkpoint_mode(measurement, args.modes) if measurement.phase == "test" else measurement.mode
    checkpoint = workdir / f"{fitted}_{measurement.resolution}_{measurement.size}.ckpt"
    rss_start = _status_mib("VmRSS")
    load_start = os.getloadavg()
    wall, cpu = time.perf_counter(), time.process_time()
    metrics: dict[str, Any] = {}
    if measurement.phase == "fit":
        engine.fit(model=model, datamodule=datamodule)
        engine.trainer.save_checkpoint(checkpoint)
    else:
        tested = engine.test(model=model, datamodule=datamodule, ckpt_path=str(checkpoint), verbose=False)
        metrics = {key: _number(value) for key, value in (tested[0] if tested else {}).items()}
        if callbacks:
            metrics |= {key: _number(v) for result in callbacks[0].results.values() for key, v in result.items()}
    seconds, cpu_seconds = time.perf_counter() - wall, time.process_time() - cpu
    return {
        **asdict(measurement),
        "seconds": seconds,
        "cpu_seconds": cpu_seconds,
        "rss_start_mib": rss_start,
        "peak_rss_mib": _status_mib("VmHWM"),
        "load_start": load_start,
        "load_end": os.getloadavg(),
        "test_images": len(datamodule.test_data.samples),
        "map_size": list(model.pre_processor.transform.transforms[0].size),
        "metrics": metrics,
        "evaluation": describe_evaluation(model),
    }


def _child(connection: Any, function: Any, arguments: tuple[Any, ...]) -> None:  # noqa: ANN401
    try:
        result = function(*arguments)
    except BaseException as error:  # noqa: BLE001 - reported to the parent, which records it
        result = {"error": f"{type(error).__name__}: {error}", "traceback": traceback.format_exc()[-3000:]}
    connection.send(result)
    connection.close()


def in_fresh_process(function: Any, arguments: tuple[Any, ...], timeout: float) -> dict[str, Any]:  # noqa: ANN401
    """``function(*arguments)`` in a process forked from this one: its result, or what went wrong."""
    context = multiprocessing.get_context("fork")
    receiver, sender = context.Pipe(duplex=False)
    process = context.Process(target=_child, args=(sender, function, arguments))
    process.start()
    sender.close()
    result: dict[str, Any] | None = None
    if receiver.poll(timeout):
        with contextlib.suppress(EOFError):
            result = receiver.recv()
    process.join(10 if result is not None else 0)
    if process.is_alive():
        process.kill()
        process.join()
    if result is None:
        reason = f"timed out after {timeout:.0f} s" if process.exitcode == -9 else f"exit code {process.exitcode}"
        result = {"error": f"the measurement process died ({reason}; killed by the kernel for memory?)"}
    return result


# ---------------------------------------------------------------- predictions and slopes


def linear_fit(points: Sequence[tuple[float, float]]) -> tuple[float, float] | None:
    """Least-squares ``(slope, intercept)`` of ``(x, y)`` points; ``None`` with fewer than two distinct x."""
    if len({x for x, _ in points}) < 2:
        return None
    xs, ys = np.array([p[0] for p in points]), np.array([p[1] for p in points])
    slope, intercept = np.polyfit(xs, ys, 1)
    return float(slope), float(intercept)


def predict_peak_mib(results: Sequence[dict[str, Any]], measurement: Measurement) -> float | None:
    """Peak memory of ``measurement`` predicted from the measured rows of the same phase and mode."""
    same = [
        r for r in results if "peak_rss_mib" in r and (r["phase"], r["mode"]) == (measurement.phase, measurement.mode)
    ]
    here = [r for r in same if r["resolution"] == measurement.resolution]
    line = linear_fit([(r["size"], r["peak_rss_mib"]) for r in here])
    if line is not None:
        return line[0] * measurement.size + line[1]
    if here:  # one point: a line through it and the RSS the phase started from
        point = here[-1]
        slope = (point["peak_rss_mib"] - point["rss_start_mib"]) / point["size"]
        return point["rss_start_mib"] + slope * measurement.size
    others = [r for r in same if r["resolution"] != measurement.resolution]
    by_resolution = {r["resolution"] for r in others}
    for resolution in sorted(by_resolution, reverse=True):
        line = linear_fit([(r["size"], r["peak_rss_mib"]) for r in others if r["resolution"] == resolution])
        if line is not None:
            scale = (measurement.resolution / resolution) ** 2
            return line[0] * scale * measurement.size + line[1]
    return None


def slopes(results: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Peak-memory line (MiB per test image and intercept) per resolution, phase and mode, from measured rows."""
    rows = []
    keys = sorted({(r["resolution"], r["phase"], r["mode"]) for r in results if "peak_rss_mib" in r})
    for resolution, phase, mode in keys:
        points = [
            (r["size"], r["peak_rss_mib"])
            for r in results
            if "peak_rss_mib" in r and (r["resolution"], r["phase"], r["mode"]) == (resolution, phase, mode)
        ]
        line = linear_fit(points)
        rows.append({
            "resolution": resolution, "phase": phase, "mode": mode, "sizes": [p[0] for p in points],
            "mib_per_image": line[0] if line else None, "intercept_mib": line[1] if line else None,
        })  # fmt: skip
    return rows


def images_that_fit(slope_rows: Sequence[dict[str, Any]], budgets_gb: Sequence[float]) -> list[dict[str, Any]]:
    """Largest test set whose fit and test peaks stay within each budget (extrapolated from the lines)."""
    rows = []
    for resolution, mode in sorted({(r["resolution"], r["mode"]) for r in slope_rows}):
        lines = [r for r in slope_rows if (r["resolution"], r["mode"]) == (resolution, mode) and r["mib_per_image"]]
        if not lines or mode == NO_EVALUATION:
            continue
        row: dict[str, Any] = {"resolution": resolution, "mode": mode, "phases": [r["phase"] for r in lines]}
        for budget in budgets_gb:
            limits = [
                (budget * GB / MIB - r["intercept_mib"]) / r["mib_per_image"] if r["mib_per_image"] > 0 else math.inf
                for r in lines
            ]
            row[f"{budget:g}GB"] = max(0, math.floor(min(limits))) if min(limits) < math.inf else None
        rows.append(row)
    return rows


# ---------------------------------------------------------------- the size sweep


def fit_modes(modes: Sequence[str]) -> list[str]:
    """Modes that fit: those that validate, or ``authors`` alone (its weights for the tests) without them."""
    validating = [m for m in MODES if m in modes and m not in PLAIN_MODES]
    return validating or ["authors"]


def checkpoint_mode(measurement: Measurement, modes: Sequence[str]) -> str:
    """The fit whose checkpoint a test loads: its own, or for ``authors`` and ``none`` the first fit's."""
    return fit_modes(modes)[0] if measurement.mode in PLAIN_MODES else measurement.mode


def measurements(args: argparse.Namespace) -> list[Measurement]:
    """Resolutions ascending, sizes ascending; at each size the fits, then the tests (modes interleaved)."""
    rows = []
    for resolution in sorted(args.resolutions):
        for size in sorted(args.sizes):
            rows += [Measurement("fit", mode, resolution, size) for mode in fit_modes(args.modes)]
            rows += [Measurement("test", mode, resolution, size) for mode in args.test_modes]
    return rows


def prepare_data(args: argparse.Namespace, root: Path) -> None:
    """The largest test set per resolution, and every size as hard links to its first images."""
    for resolution in args.resolutions:
        folder = root / str(resolution)
        start = time.perf_counter()
        scale_data.write_mvtec_layout(folder, "source", resolution, args.train_images, max(args.sizes), args.seed)
        for size in args.sizes:
            scale_data.link_mvtec_subset(folder / "source", folder / f"n{size}", size)
        print(f"data {resolution} px: {time.perf_counter() - start:.1f} s ({folder})", flush=True)


def add_costs(results: list[dict[str, Any]]) -> None:
    """Metric cost per image: test time above the test without evaluation (same run and size), per image."""
    baseline = {
        (r["run_started"], r["resolution"], r["size"]): r
        for r in results
        if r["mode"] == NO_EVALUATION and "seconds" in r
    }
    for r in results:
        reference = baseline.get((r["run_started"], r["resolution"], r["size"]))
        if r["phase"] == "test" and "seconds" in r and reference is not None and reference is not r:
            r["metric_ms_per_image"] = 1e3 * (r["seconds"] - reference["seconds"]) / r["size"]


def print_tables(results: Sequence[dict[str, Any]], slope_rows: Sequence[dict[str, Any]], fits: Sequence[Any]) -> None:
    """Per measurement, then the slopes and the test-set sizes that fit the budgets."""
    rows = []
    for r in results:
        label = [r["resolution"], r["size"], r["phase"], r["mode"]]
        if "peak_rss_mib" not in r:
            rows.append([*label, "-", "-", "-", "-", r.get("skipped") or r.get("error", "")[:90]])
            continue
        cost = f"{r['metric_ms_per_image']:.1f}" if "metric_ms_per_image" in r else "-"
        load = f"{r['load_start'][0]:.1f}"
        rows.append([
            *label,
            f"{r['peak_rss_mib']:.0f}",
            f"{r['rss_start_mib']:.0f}",
            f"{r['seconds']:.1f}",
            cost,
            load,
        ])
    headers = ["px", "test images", "phase", "mode", "peak RSS MiB", "RSS at start MiB", "s", "metric ms/img", "load"]
    print(benchlib.markdown_table(headers, rows))
    print()
    slope_table = [
        [
            s["resolution"], s["phase"], s["mode"], ",".join(map(str, s["sizes"])),
            f"{s['mib_per_image']:.3f}" if s["mib_per_image"] is not None else "-",
            f"{s['intercept_mib']:.0f}" if s["intercept_mib"] is not None else "-",
        ]
        for s in slope_rows
    ]  # fmt: skip
    print(benchlib.markdown_table(["px", "phase", "mode", "sizes", "MiB per test image", "intercept MiB"], slope_table))
    print()
    budget_keys = [f"{b:g}GB" for b in BUDGETS_GB]
    fit_table = [
        [f["resolution"], f["mode"], *(f"{f[k]:,}" if f[k] is not None else "unbounded" for k in budget_keys)]
        for f in fits
    ]
    headers = ["px", "mode", *(f"test images in {b} GB (extrapolated)" for b in BUDGETS_GB)]
    print(benchlib.markdown_table(headers, fit_table))


def plot(results: Sequence[dict[str, Any]], path: Path, machine: dict[str, Any]) -> Path:
    """Peak memory against test-set size, one panel per resolution; skipped runs at their predicted peak."""
    import matplotlib as mpl  # noqa: PLC0415

    mpl.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    resolutions = sorted({r["resolution"] for r in results})
    figure, axes = plt.subplots(1, len(resolutions), figsize=(6 * len(resolutions), 4.5), squeeze=False)
    colours = {"ours": "tab:green", "anomalib": "tab:red", "authors": "tab:blue", NO_EVALUATION: "tab:gray"}
    for axis, resolution in zip(axes[0], resolutions, strict=True):
        for mode, colour in colours.items():
            for phase, style in (("fit", "--"), ("test", "-")):
                rows = [r for r in results if (r["resolution"], r["mode"], r["phase"]) == (resolution, mode, phase)]
                measured = [(r["size"], r["peak_rss_mib"] / 1024) for r in rows if "peak_rss_mib" in r]
                predicted = [
                    (r["size"], r["predicted_mib"] / 1024) for r in rows if "skipped" in r and "predicted_mib" in r
                ]
                if measured:
                    axis.plot(*zip(*measured, strict=True), style, marker="o", color=colour, label=f"{mode} {phase}")
                if predicted:
                    axis.plot(*zip(*predicted, strict=True), "x", color=colour, markersize=9)
        axis.set_xscale("log", base=2)
        axis.set_xlabel("test images")
        axis.set_ylabel("peak RSS (GiB)")
        axis.set_title(f"{resolution} px (x: skipped, predicted peak)")
        axis.grid(alpha=0.3)
        axis.legend(fontsize=7)
    loads = [r["load_start"][0] for r in results if "load_start" in r] or [machine["load_average"][0]]
    figure.suptitle(
        f"MiniMaxAD evaluation at scale: {machine['cpu']}, load average {min(loads):.0f}-{max(loads):.0f}", fontsize=9
    )
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def run_sweep(args: argparse.Namespace, machine: dict[str, Any], partial: Path) -> dict[str, Any]:
    """Every measurement of the size sweep, each in a fresh process unless predicted over the budget.

    The rows so far are written to ``partial`` after each measurement (an interrupted sweep keeps them: give that
    file to ``--merge``).
    """
    root = args.data_dir / "mvtec_layout"
    if args.sizes:
        prepare_data(args, root)
    limit_mib = args.max_gb * GB / MIB
    started = machine["date"]
    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="eval_scale_") as workdir:
        for measurement in measurements(args):
            record: dict[str, Any] = {**asdict(measurement), "run_started": started}
            name = f"[{measurement.phase} {measurement.mode} {measurement.resolution} px {measurement.size}]"
            predicted = predict_peak_mib(results, measurement)
            needs_checkpoint = measurement.phase == "test" and not any(
                r.get("phase") == "fit"
                and "peak_rss_mib" in r
                and r["mode"] == checkpoint_mode(measurement, args.modes)
                and (r["resolution"], r["size"]) == (measurement.resolution, measurement.size)
                for r in results
            )
            if predicted is not None and predicted > limit_mib:
                record |= {"skipped": f"predicted {predicted * MIB / GB:.1f} GB", "predicted_mib": predicted}
            elif needs_checkpoint:
                record["skipped"] = "no checkpoint: its fit did not run"
            else:
                print(f"{name} ...", flush=True)
                record |= in_fresh_process(run_measurement, (measurement, args, root, Path(workdir)), args.timeout)
                if predicted is not None:
                    record["predicted_mib"] = predicted
            if "error" in record:
                print(f"  failed: {record['error']}", flush=True)
            elif "skipped" in record:
                print(f"{name} skipped: {record['skipped']}", flush=True)
            else:
                print(f"  peak {record['peak_rss_mib']:.0f} MiB, {record['seconds']:.1f} s", flush=True)
            results.append(record)
            benchlib.write_json(partial, {"machine": machine, "results": results, "partial": True})
    merged_from = []
    # a resolution and mode this run measured replace the earlier rows of them
    measured = {(r["resolution"], r["mode"]) for r in results}
    for earlier in args.merge:
        previous = json.loads(earlier.read_text(encoding="utf-8"))
        kept = [r for r in previous["results"] if (r["resolution"], r["mode"]) not in measured]
        merged_from.append({
            "path": str(earlier),
            "machine": previous["machine"],
            "rows": sorted({f"{r['resolution']} px {r['mode']}" for r in kept}),
        })  # fmt: skip
        results = kept + results
    add_costs(results)
    slope_rows = slopes(results)
    fits = images_that_fit(slope_rows, BUDGETS_GB)
    machine["load_average_end"] = os.getloadavg()
    print()
    print_tables(results, slope_rows, fits)
    return {"results": results, "slopes": slope_rows, "images_that_fit": fits, "merged_from": merged_from}


# ---------------------------------------------------------------- Real-IAD at scale (--realiad)


def realiad_cli_args(args: argparse.Namespace, root: Path, workdir: Path, json_path: str) -> list[str]:
    """``anomalib train`` arguments of the unified Real-IAD preset on the generated set (random weights)."""
    from anomalib_minimaxad.presets import preset_path  # noqa: PLC0415

    cli_args = ["train", "--config", str(preset_path(REALIAD_PRESET))]
    cli_args += ["--data.root", str(root / "realiad_256"), "--data.categories", ",".join(args.categories)]
    cli_args += ["--data.dataset_args", json.dumps({"json_path": json_path})]
    cli_args += ["--data.num_workers", "0", "--model.pre_trained", "false", "--model.visualizer", "false"]
    cli_args += ["--trainer.max_epochs", "1", "--trainer.logger", "false", "--trainer.accelerator", "cpu"]
    cli_args += ["--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false"]
    cli_args += ["--default_root_dir", str(workdir)]
    if args.realiad_dims:
        cli_args += ["--model.dims", json.dumps(list(args.realiad_dims))]
    if args.realiad_depths:
        cli_args += ["--model.depths", json.dumps(list(args.realiad_depths))]
    return cli_args


def run_realiad_phase(
    phase: str, args: argparse.Namespace, root: Path, workdir: Path, json_path: str
) -> dict[str, Any]:
    """Fit (validating on the test set of ``json_path``) or test the preset in this (fresh) process."""
    from anomalib.cli.cli import AnomalibCLI  # noqa: PLC0415

    benchlib.set_threads(args.threads)
    cli = AnomalibCLI(realiad_cli_args(args, root, workdir, json_path), run=False)
    checkpoint = workdir / "realiad.ckpt"
    rss_start = _status_mib("VmRSS")
    load_start = os.getloadavg()
    wall, cpu = time.perf_counter(), time.process_time()
    metrics: dict[str, Any] = {}
    if phase == "fit":
        cli.engine.fit(model=cli.model, datamodule=cli.datamodule)
        cli.engine.trainer.save_checkpoint(checkpoint)
    else:
        tested = cli.engine.test(model=cli.model, datamodule=cli.datamodule, ckpt_path=str(checkpoint), verbose=False)
        metrics = {key: _number(value) for key, value in (tested[0] if tested else {}).items()}
    return {
        "phase": phase,
        "seconds": time.perf_counter() - wall,
        "cpu_seconds": time.process_time() - cpu,
        "rss_start_mib": rss_start,
        "peak_rss_mib": _status_mib("VmHWM"),
        "load_start": load_start,
        "load_end": os.getloadavg(),
        "test_images": len(cli.datamodule.test_data.samples),
        "model": {"dims": list(cli.model.model.dims), "depths": list(cli.model.model.depths)},
        "evaluation": describe_evaluation(cli.model),
        "metrics": metrics,
    }


def run_realiad(args: argparse.Namespace) -> dict[str, Any]:
    """Fit on a 20th of the test set, test a 40th and a 20th, then all of it if their line stays under the budget.

    The fit validates on the 20th (its thresholds and normalisation: the weights are random anyway), so that the
    fit costs no second pass over the whole set; every test loads its checkpoint.
    """
    from anomalib.data.datasets.image.realiad import CATEGORIES  # noqa: PLC0415

    args.categories = list(CATEGORIES[: args.realiad_categories])
    per_category = math.ceil(args.realiad_images / len(args.categories))
    root = args.data_dir / "realiad"
    start = time.perf_counter()
    scale_data.write_realiad_layout(root, args.categories, per_category, args.train_images, 256, args.seed)
    print(f"data: {per_category} x {len(args.categories)} test images in {time.perf_counter() - start:.0f} s ({root})")
    steps = (
        ("fit", "fit", max(2, per_category // 20)),
        ("test_pilot_small", "test", max(1, per_category // 40)),
        ("test_pilot", "test", max(2, per_category // 20)),
        ("test_full", "test", per_category),
    )
    runs: dict[str, Any] = {}
    limit_mib = args.max_gb * GB / MIB
    with tempfile.TemporaryDirectory(prefix="eval_scale_realiad_") as workdir:
        for name, phase, size in steps:
            images = size * len(args.categories)
            json_path = (
                scale_data.REALIAD_JSON_PATH
                if size == per_category
                else scale_data.write_realiad_subset_lists(root, args.categories, size)
            )
            pilots = [(r["test_images"], r["peak_rss_mib"]) for r in runs.values() if r.get("phase") == "test"]
            line = linear_fit([p for p in pilots if p[1] is not None])
            predicted = line[0] * images + line[1] if line else None
            if name == "test_full" and (predicted is None or predicted > limit_mib):
                reason = f"predicted {predicted * MIB / GB:.1f} GB" if predicted else "the pilot tests did not run"
                runs[name] = {"phase": phase, "test_images": images, "skipped": reason}
                print(f"[{name}: {images} test images] skipped: {reason}", flush=True)
                continue
            if phase == "test" and "peak_rss_mib" not in runs.get("fit", {}):
                runs[name] = {"phase": phase, "test_images": images, "skipped": "no checkpoint: the fit did not run"}
                continue
            print(f"[{name}: {images} test images] ...", flush=True)
            record = in_fresh_process(run_realiad_phase, (phase, args, root, Path(workdir), json_path), args.timeout)
            if predicted is not None:
                record["predicted_mib"] = predicted
            runs[name] = record
            if "error" in record:
                print(f"  failed: {record['error']}", flush=True)
            else:
                print(f"  peak {record['peak_rss_mib']:.0f} MiB, {record['seconds']:.0f} s", flush=True)
    rows = []
    for name, run in runs.items():
        if "peak_rss_mib" in run:
            memory = [f"{run['peak_rss_mib']:.0f}", f"{run['rss_start_mib']:.0f}"]
            load = [f"{run['load_start'][0]:.1f}", f"{run['load_end'][0]:.1f}"]
            rows.append([name, run["test_images"], *memory, f"{run['seconds']:.0f}", *load])
        else:
            reason = (run.get("skipped") or run.get("error", ""))[:90]
            rows.append([name, run.get("test_images", "-"), "-", "-", "-", "-", reason])
    headers = ["run", "test images", "peak RSS MiB", "RSS at start MiB", "s", "load start", "load end"]
    print()
    print(benchlib.markdown_table(headers, rows))
    return {
        "preset": REALIAD_PRESET,
        "categories": args.categories,
        "test_images_per_category": per_category,
        "validation": "the fit validates on the test_pilot lists (a 20th of each category's test set)",
        "runs": runs,
    }


# ---------------------------------------------------------------- command line


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", type=benchlib.parse_int_list, default=[200, 400, 800, 1600, 3200])
    parser.add_argument("--resolutions", type=benchlib.parse_int_list, default=[256, 512])
    parser.add_argument(
        "--modes",
        type=benchlib.parse_str_list,
        default=list(MODES),
        help=f"evaluations to compare, of {', '.join(MODES)} (the test without evaluation always runs)",
    )
    parser.add_argument("--dims", type=benchlib.parse_int_list, default=[8, 16, 32, 64], help="network widths")
    parser.add_argument("--depths", type=benchlib.parse_int_list, default=[1, 1, 1, 1], help="network depths")
    parser.add_argument("--train-images", type=int, default=8, help="normal training images (per category)")
    parser.add_argument("--batch", type=int, default=16, help="training and evaluation batch size")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--max-gb", type=float, default=6.0, help="skip runs predicted to peak above this (GB)")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds per measurement")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data-dir", type=Path, default=None, help="generated data (default: a temporary folder)")
    parser.add_argument("--out-dir", type=Path, default=benchlib.RESULTS_DIR)
    parser.add_argument(
        "--merge",
        type=Path,
        action="append",
        default=[],
        help="an earlier eval_scale JSON (repeatable): add its rows of the resolutions and modes not measured here",
    )
    parser.add_argument("--quick", action="store_true", help="64 px, 4 and 8 test images, 4 training images")
    parser.add_argument("--realiad", action="store_true", help="measure the Real-IAD preset at scale instead")
    parser.add_argument("--realiad-images", type=int, default=10_000, help="Real-IAD test images in all")
    parser.add_argument("--realiad-categories", type=int, default=5, help="Real-IAD categories (anomalib's first)")
    parser.add_argument(
        "--realiad-dims", type=benchlib.parse_dims, default=None, help="override of the preset's widths"
    )
    parser.add_argument(
        "--realiad-depths", type=benchlib.parse_dims, default=None, help="override of the preset's depths"
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.sizes, args.resolutions, args.train_images, args.batch = [4, 8], [64], 4, 4
        args.realiad_images, args.realiad_categories = min(args.realiad_images, 80), min(args.realiad_categories, 2)
        args.realiad_dims, args.realiad_depths = args.realiad_dims or args.dims, args.realiad_depths or args.depths
    unknown = set(args.modes) - set(MODES)
    if unknown:
        parser.error(f"--modes: unknown {', '.join(sorted(unknown))}; choose from {', '.join(MODES)}")
    args.test_modes = [NO_EVALUATION, *(m for m in MODES if m in args.modes)]
    return args


def git_commit() -> str | None:
    """The checkout's commit (``+dirty`` with uncommitted changes)."""
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        run = {"cwd": benchlib.REPO_ROOT, "capture_output": True, "text": True, "timeout": 10}
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], check=True, **run).stdout.strip()  # noqa: S607
        dirty = subprocess.run(["git", "status", "--porcelain", "-uno"], check=True, **run).stdout.strip()  # noqa: S607
        return commit + ("+dirty" if dirty else "")
    return None


def main(argv: Sequence[str] | None = None) -> Path:
    args = parse_args(argv)
    # Imported here, before any measurement forks: every measurement starts with the libraries loaded.
    import anomalib.engine  # noqa: F401, PLC0415
    import sklearn.metrics  # noqa: F401, PLC0415

    import anomalib_minimaxad  # noqa: F401, PLC0415

    machine = benchlib.machine_info(args.threads)
    machine["commit"] = git_commit()
    print(f"CPU: {machine['cpu']}; ISA: {machine['isa']}; threads {args.threads}; load {machine['load_average']}")
    with contextlib.ExitStack() as stack:
        if args.data_dir is None:
            args.data_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="eval_scale_data_")))
        payload: dict[str, Any] = {"machine": machine}
        payload["config"] = {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}
        if args.realiad:
            payload["realiad"] = run_realiad(args)
            prefix = "eval_scale_realiad"
        else:
            partial = benchlib.result_path(args.data_dir, "eval_scale_partial")
            print(f"rows so far: {partial}")
            payload |= run_sweep(args, machine, partial)
            payload["memory"] = "VmHWM of a process forked per measurement after the imports (includes Python, torch)"
            prefix = "eval_scale"
    machine["load_average_end"] = os.getloadavg()
    path = benchlib.write_json(benchlib.result_path(args.out_dir, prefix), payload)
    if not args.realiad:
        print(f"plot: {plot(payload['results'], path.with_suffix('.png'), machine)}")
    print(f"\nwrote {path}")
    return path


if __name__ == "__main__":
    main()
