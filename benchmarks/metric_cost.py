# Copyright (C) 2026 anomalib-minimaxad developers
# SPDX-License-Identifier: Apache-2.0
"""Metric cost per test image: MiniMaxAD's evaluator and post-processor, streaming (default) against exact.

What a validation and a test epoch spend outside the network: the post-processor's threshold and min/max updates
on raw validation maps plus the validation metrics, then the post-processor's normalisation and thresholding of
every test batch plus all the test metrics (image AUROC and F1; pixel AUROC, F1, AUPRO, AUPR), ``compute``
included. Generated 256-px maps (smoothed noise, a rectangular defect on every other image), batches of 32 as
anomalib's default ``eval_batch_size``.

Usage:
    python benchmarks/metric_cost.py --threads 2 --images 256
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import benchlib
import torch
import torch.nn.functional as F  # noqa: N812

from anomalib_minimaxad import MiniMaxAD

BATCH = 32


def make_batches(num_images: int, size: int, seed: int = 0) -> list[SimpleNamespace]:
    """Raw maps in about [0, 0.6] and their masks, ``BATCH`` images each."""
    generator = torch.Generator().manual_seed(seed)
    batches = []
    for _ in range(0, num_images, BATCH):
        masks = torch.zeros(BATCH, 1, size, size, dtype=torch.bool)
        masks[::2, :, size // 3 : size // 2, size // 4 : size // 2] = True
        noise = torch.rand(BATCH, 1, size // 8, size // 8, generator=generator)
        maps = F.interpolate(noise, size=(size, size), mode="bilinear", align_corners=True) * 0.3
        maps = (maps + 0.3 * masks.float() * torch.rand(BATCH, 1, 1, 1, generator=generator))[:, 0]
        masks = masks[:, 0]
        batches.append(SimpleNamespace(anomaly_map=maps, pred_score=maps.flatten(1).amax(1), gt_mask=masks,
                                       gt_label=masks.flatten(1).any(1), pred_label=None, pred_mask=None))  # fmt: skip
    return batches


def copy(batch: SimpleNamespace) -> SimpleNamespace:
    return SimpleNamespace(**vars(batch))


def epoch_cost(streaming: bool, batches: list[SimpleNamespace]) -> dict[str, Any]:
    """Wall and process-CPU seconds of a validation epoch and of a test epoch of metrics on ``batches``.

    The CPU time is what the work costs on a shared machine, whose load stretches the wall time.
    """
    model = MiniMaxAD(pre_trained=False, dims=(8, 16, 32, 64), streaming_metrics=streaming, visualizer=False)
    post_processor, evaluator = model.post_processor, model.evaluator
    start, cpu_start = time.perf_counter(), time.process_time()
    for batch in batches:
        post_processor.on_validation_batch_end(None, None, batch)
        for metric in evaluator.val_metrics:
            metric.update(batch)
    post_processor.on_validation_epoch_end(None, None)
    for metric in evaluator.val_metrics:
        metric.compute()
    validation, validation_cpu = time.perf_counter() - start, time.process_time() - cpu_start
    start, cpu_start = time.perf_counter(), time.process_time()
    for batch in batches:
        tested = copy(batch)
        post_processor.post_process_batch(tested)
        for metric in evaluator.test_metrics:
            metric.update(tested)
    values = {metric.name: float(metric.compute()) for metric in evaluator.test_metrics}
    test, test_cpu = time.perf_counter() - start, time.process_time() - cpu_start
    return {
        "validation_s": validation, "test_s": test, "validation_cpu_s": validation_cpu, "test_cpu_s": test_cpu,
        "values": values,
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--images", type=int, default=256, help="test (and validation) images, a multiple of 32")
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--out-dir", default=str(Path(__file__).parent / "results"))
    args = parser.parse_args()
    benchlib.set_threads(args.threads)
    batches = make_batches(args.images, args.size)
    rows, results = [], {}
    for name, streaming in (("streaming (default)", True), ("exact (streaming_metrics=False)", False)):
        epoch_cost(streaming, batches[:1])  # warm-up
        cost = epoch_cost(streaming, batches)
        per_image = {key[:-2]: 1e3 * value / args.images for key, value in cost.items() if key.endswith("_s")}
        results[name] = {**cost, "ms_per_image": per_image}
        rows.append([name, *(f"{per_image[key]:.2f}" for key in ("validation", "validation_cpu", "test", "test_cpu"))])
    streamed, exact = (results[name]["values"] for name in results)
    difference = {name: abs(streamed[name] - exact[name]) for name in streamed}
    headers = ["metrics", "validation ms/image", "(CPU ms)", "test ms/image", "(CPU ms)"]
    load = benchlib.machine_info()["load_average"]
    print(f"{args.images} images of {args.size} px, {args.threads} threads, load average {load}")
    print(benchlib.markdown_table(headers, rows))
    print("largest |streaming - exact|:", max(difference.values()), difference)
    payload = {
        "machine": benchlib.machine_info(args.threads),
        "images": args.images,
        "size": args.size,
        "results": results,
        "abs_difference": difference,
    }
    print(benchlib.write_json(benchlib.result_path(args.out_dir, "metric_cost"), payload))


if __name__ == "__main__":
    main()
