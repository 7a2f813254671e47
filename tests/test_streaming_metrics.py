"""Streaming (histogram) metrics against anomalib's exact ones, their errors, DDP, the Engine, bounded memory."""

from __future__ import annotations

import json
import math
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from anomalib.engine import Engine
from anomalib.metrics import AUPR, AUPRO, AUROC, Evaluator, F1AdaptiveThreshold
from anomalib.post_processing import PostProcessor
from lightning.pytorch import seed_everything
from scipy.ndimage import gaussian_filter

from anomalib_minimaxad import MiniMaxAD
from anomalib_minimaxad.data import MVTecLayout, PerCategoryMetrics, generate_demo_dataset
from anomalib_minimaxad.metrics import (
    PerImageAUPRO,
    StreamingAUPR,
    StreamingAUPRO,
    StreamingAUROC,
    StreamingF1AdaptiveThreshold,
    StreamingPerImageAUPRO,
    histogram,
)
from anomalib_minimaxad.metrics.streaming import _RegionHistograms
from anomalib_minimaxad.post_processing import StreamingPostProcessor

from .conftest import TINY_DIMS

PIXELS = ["anomaly_map", "gt_mask"]
#: (exact anomalib metric, streaming metric) pairs computed on anomaly maps and masks.
PAIRS = [
    (AUROC, StreamingAUROC),
    (AUPR, StreamingAUPR),
    (AUPRO, StreamingAUPRO),
    (PerImageAUPRO, StreamingPerImageAUPRO),
]


def make_set(seed: int, num: int, height: int, width: int, levels: int | None = None) -> tuple[torch.Tensor, ...]:
    """Smoothed noisy masks in [0, 1] (every other image defective); ``levels`` quantises them (ties)."""
    generator = torch.Generator().manual_seed(seed)
    masks = torch.zeros(num, height, width, dtype=torch.bool)
    for index in range(0, num, 2):
        top = int(torch.randint(0, height - height // 4, (1,), generator=generator))
        left = int(torch.randint(0, width - width // 4, (1,), generator=generator))
        masks[index, top : top + height // 5, left : left + width // 6] = True
        masks[index, height - 2, width - 2] = True  # a single-pixel region
    noisy = masks.float() + 0.8 * torch.randn(masks.shape, generator=generator)
    maps = torch.from_numpy(gaussian_filter(noisy.numpy(), (0, 2, 2)))
    maps = (maps - maps.min()) / (maps.max() - maps.min())
    if levels is not None:
        maps = (maps * levels).round() / levels
    return maps, masks


def run(metric: object, maps: torch.Tensor, masks: torch.Tensor, batch: int = 4) -> float:
    """Update in batches of ``batch`` images, then compute."""
    for start in range(0, len(maps), batch):
        metric.update(SimpleNamespace(anomaly_map=maps[start : start + batch], gt_mask=masks[start : start + batch]))
    return float(metric.compute())


@pytest.mark.parametrize(
    ("seed", "size", "levels"),
    [(0, (64, 64), None), (1, (48, 80), None), (2, (64, 64), 50), (3, (33, 47), 7)],
    ids=["continuous", "non-square", "ties", "few-levels"],
)
def test_streaming_matches_exact(seed: int, size: tuple[int, int], levels: int | None) -> None:
    maps, masks = make_set(seed, 10, *size, levels=levels)
    for exact, streaming in PAIRS:
        expected = run(exact(fields=PIXELS), maps, masks)
        assert run(streaming(fields=PIXELS), maps, masks) == pytest.approx(expected, abs=1e-4), exact.__name__
    # Image level: scores and labels.
    scores, labels = maps.flatten(1).amax(1), masks.flatten(1).any(1)
    fields = ["pred_score", "gt_label"]
    for exact, streaming in ((AUROC, StreamingAUROC), (AUPR, StreamingAUPR)):
        batch = SimpleNamespace(pred_score=scores, gt_label=labels)
        reference, metric = exact(fields=fields), streaming(fields=fields)
        reference.update(batch)
        metric.update(batch)
        assert float(metric.compute()) == pytest.approx(float(reference.compute()), abs=1e-4)


def test_threshold_within_one_bin_of_anomalib() -> None:
    for seed, levels in ((0, None), (4, 32)):
        maps, masks = make_set(seed, 8, 64, 64, levels=levels)
        for num_bins in (2**10, 2**16):
            exact = run(F1AdaptiveThreshold(fields=PIXELS), maps, masks)
            streamed = run(StreamingF1AdaptiveThreshold(fields=PIXELS, num_bins=num_bins), maps, masks)
            if levels is None and num_bins == 2**16:  # the default: finer than the scores' gaps near the optimum
                assert abs(streamed - exact) <= 1 / num_bins + 1e-7
            if levels is not None:  # values on the bins' lower edges: the threshold is the next edge
                assert streamed == pytest.approx(exact + 1 / num_bins, abs=1e-6)


def test_bin_count_sets_the_error() -> None:
    """Coarse bins give a measurable error that the default removes (the comparison can fail)."""
    maps, masks = make_set(5, 8, 64, 64)
    exact = run(AUPR(fields=PIXELS), maps, masks)
    assert abs(run(StreamingAUPR(fields=PIXELS, num_bins=64), maps, masks) - exact) > 1e-3
    assert abs(run(StreamingAUPR(fields=PIXELS), maps, masks) - exact) < 1e-4


def exact_aupro_with_whole_regions(maps: torch.Tensor, masks: torch.Tensor) -> float:
    """anomalib's AUPRO with regions labelled per image by OpenCV, a mask without background included.

    anomalib's ``connected_components_cpu`` drops the region of a mask without background (it skips the lowest
    label present, assuming it is the background) and so counts its pixels as normal.
    """
    labels, offset = torch.zeros(masks.shape, dtype=torch.int64), 0
    for index, mask in enumerate(masks.numpy().astype(np.uint8)):
        count, components = cv2.connectedComponents(mask, connectivity=8)  # regions 1..count-1, even in a full mask
        labels[index] = torch.from_numpy(np.where(components > 0, components + offset, 0))
        offset += count - 1
    metric = AUPRO(fields=PIXELS)
    metric.update(SimpleNamespace(anomaly_map=maps, gt_mask=masks))
    metric.perform_cca = lambda: labels
    return float(metric.compute())


def test_empty_full_and_single_pixel_masks() -> None:
    maps, masks = make_set(6, 6, 32, 32)
    masks[1] = False  # empty
    masks[3] = True  # full: no normal pixel
    masks[5] = False
    masks[5, 0, 0] = masks[5, 31, 31] = masks[5, 10, 10] = True  # three single-pixel regions
    for exact, streaming in PAIRS[:2]:
        assert run(streaming(fields=PIXELS), maps, masks) == pytest.approx(
            run(exact(fields=PIXELS), maps, masks), abs=1e-4
        )
    expected = exact_aupro_with_whole_regions(maps, masks)
    assert run(StreamingAUPRO(fields=PIXELS), maps, masks) == pytest.approx(expected, abs=1e-4)
    assert abs(run(AUPRO(fields=PIXELS), maps, masks) - expected) > 1e-3  # anomalib's labelling drops the full mask
    kept = torch.tensor([0, 1, 2, 4, 5])
    assert exact_aupro_with_whole_regions(maps[kept], masks[kept]) == pytest.approx(
        run(AUPRO(fields=PIXELS), maps[kept], masks[kept]), abs=1e-6
    )  # the reference is anomalib's AUPRO where its labelling is right
    # Per image: the full mask has no FPR and is left out (the exact metric scores it 0).
    expected = run(PerImageAUPRO(fields=PIXELS), maps[kept], masks[kept])
    metric = StreamingPerImageAUPRO(fields=PIXELS)
    assert run(metric, maps, masks) == pytest.approx(expected, abs=1e-4)
    assert int(metric.num_full_masks) == 1


def test_accelerator_code_path_gives_the_same_values(monkeypatch: pytest.MonkeyPatch) -> None:
    """The accelerator path (index_add_, kornia labelling, dense weights, no host sync) run on the CPU."""
    maps, masks = make_set(16, 6, 40, 40)
    expected = [run(streaming(fields=PIXELS), maps, masks) for _, streaming in PAIRS]
    monkeypatch.setattr(histogram, "on_host", lambda _tensor: False)
    assert [run(streaming(fields=PIXELS), maps, masks) for _, streaming in PAIRS] == pytest.approx(expected, abs=1e-12)
    with pytest.raises(ValueError, match="NaN"):
        run(StreamingAUROC(fields=PIXELS), torch.where(masks, math.nan, maps), masks)


def test_accelerator_labelling_matches_opencv() -> None:
    _, masks = make_set(7, 4, 40, 40)
    masks[1, 5:9, 30:33] = True
    masks[1, 9, 33] = True  # touches diagonally: 8-connected
    weights, regions = _RegionHistograms._region_weights(masks, opencv=True)
    kornia_weights, kornia_regions = _RegionHistograms._region_weights(masks, opencv=False)
    assert torch.equal(regions, kornia_regions)
    assert regions.tolist() == [2, 1, 2, 0]  # the diagonal touch joins the two rectangles of image 1
    torch.testing.assert_close(weights, kornia_weights)


def test_one_class_sets_are_nan_and_thresholds_fall_back_as_anomalib() -> None:
    maps, _ = make_set(8, 4, 32, 32)
    for masks in (torch.zeros(4, 32, 32, dtype=torch.bool), torch.ones(4, 32, 32, dtype=torch.bool)):
        for streaming in (StreamingAUROC, StreamingAUPR, StreamingAUPRO, StreamingPerImageAUPRO):
            assert math.isnan(run(streaming(fields=PIXELS), maps, masks)), streaming.__name__
        exact = run(F1AdaptiveThreshold(fields=PIXELS), maps, masks)
        assert run(StreamingF1AdaptiveThreshold(fields=PIXELS), maps, masks) == pytest.approx(exact)  # max / min


def test_values_outside_the_range_nan_and_bad_targets_raise() -> None:
    maps, masks = make_set(9, 4, 16, 16)
    metric = StreamingAUROC(fields=PIXELS)
    metric.update(SimpleNamespace(anomaly_map=maps * 1.5 - 0.25, gt_mask=masks))
    below, above = int(((maps * 1.5 - 0.25) < 0).sum()), int(((maps * 1.5 - 0.25) >= 1).sum())
    message = rf"value_range \[0.0, 1.0\]: {below} below, {above} at or above its end \(observed min -0.25, max 1.25\)"
    with pytest.raises(ValueError, match=message):
        metric.compute()
    wide = StreamingAUROC(fields=PIXELS, value_range=(-0.25, 1.25))
    assert run(wide, maps * 1.5 - 0.25, masks) == pytest.approx(run(AUROC(fields=PIXELS), maps, masks), abs=1e-4)
    with pytest.raises(ValueError, match="NaN"):
        run(StreamingAUPRO(fields=PIXELS), torch.where(masks, math.nan, maps), masks)
    with pytest.raises(ValueError, match="2 targets are neither 0 nor 1"):
        run(StreamingAUPR(fields=PIXELS), maps, torch.where(torch.arange(maps.numel()).view(maps.shape) < 2, 2, 0))
    with pytest.raises(ValueError, match="value_range"):
        StreamingAUROC(fields=PIXELS, value_range=(1.0, 1.0))


@pytest.mark.parametrize("metric_class", [StreamingAUPRO, StreamingPerImageAUPRO, PerImageAUPRO])
def test_maps_and_masks_of_other_images_are_refused(metric_class: type) -> None:
    maps, masks = make_set(16, 4, 16, 16)
    metric = metric_class(fields=PIXELS)
    with pytest.raises(ValueError, match=r"anomaly maps \(4, 16, 16\) and masks \(4, 16, 12\) must have the same"):
        metric.update(SimpleNamespace(anomaly_map=maps, gt_mask=masks[..., :12]))


def test_per_category_results_do_not_hide_values_outside_the_range() -> None:
    maps, masks = make_set(15, 4, 16, 16)
    callback = PerCategoryMetrics(metrics=[StreamingAUROC(fields=PIXELS, prefix="pixel_")])
    callback.reset(["a", "b"])
    callback.update(SimpleNamespace(anomaly_map=maps * 2, gt_mask=masks, gt_label=masks.flatten(1).any(1)), ["a"] * 4)
    with pytest.raises(ValueError, match="outside the declared value_range"):
        callback.compute()


def test_shared_batches_and_in_place_changes() -> None:
    """Metrics fed the same tensors share one binning; an in-place change is binned again."""
    maps, masks = make_set(10, 4, 32, 32)
    first, second = StreamingAUROC(fields=PIXELS), StreamingAUROC(fields=PIXELS)
    first.update(SimpleNamespace(anomaly_map=maps, gt_mask=masks))
    maps.mul_(0.5)
    second.update(SimpleNamespace(anomaly_map=maps, gt_mask=masks))
    assert not torch.equal(first.counts, second.counts)
    fresh = StreamingAUROC(fields=PIXELS)
    fresh.update(SimpleNamespace(anomaly_map=maps.clone(), gt_mask=masks.clone()))
    assert torch.equal(fresh.counts, second.counts)


def test_checkpoints_of_either_evaluator_load_into_the_other() -> None:
    for aupro in ("dataset", "per_image"):
        models = [MiniMaxAD(pre_trained=False, dims=TINY_DIMS, aupro=aupro, streaming_metrics=s) for s in (True, False)]
        assert list(models[0].state_dict()) == list(models[1].state_dict())
        models[0].load_state_dict(models[1].state_dict())  # strict
        models[1].load_state_dict(models[0].state_dict())
    assert list(StreamingAUPRO(fields=PIXELS).state_dict()) == ["fpr_limit"]  # as anomalib's AUPRO; no histogram


def test_no_state_in_checkpoints_and_post_processor_as_anomalib() -> None:
    assert StreamingAUROC(fields=PIXELS).state_dict() == {}
    maps, masks = make_set(11, 8, 32, 32)
    maps = maps * 2  # raw range [0, 2]
    streaming, exact = StreamingPostProcessor(value_range=(0.0, 2.0)), PostProcessor()
    assert list(streaming.state_dict()) == list(exact.state_dict())
    batch = SimpleNamespace(
        anomaly_map=maps, gt_mask=masks, pred_score=maps.flatten(1).amax(1), gt_label=masks.flatten(1).any(1)
    )
    for post_processor in (streaming, exact):
        post_processor.on_validation_batch_end(None, None, batch)
        post_processor.on_validation_epoch_end(None, None)
    bin_width = 2.0 / 2**16
    for name in ("_image_threshold", "_pixel_threshold"):
        assert abs(float(getattr(streaming, name)) - float(getattr(exact, name))) <= bin_width
    for name in ("image_min", "image_max", "pixel_min", "pixel_max"):
        assert float(getattr(streaming, name)) == float(getattr(exact, name))
    exact.load_state_dict(streaming.state_dict())  # checkpoints interchange


# ----------------------------------------------------------------------------------------------------------------
# DDP: two gloo processes on the CPU give the one-process values
# ----------------------------------------------------------------------------------------------------------------


def _ddp_metrics() -> list:
    return [streaming(fields=PIXELS) for _, streaming in PAIRS] + [StreamingF1AdaptiveThreshold(fields=PIXELS)]


def _ddp_worker(rank: int, port: int, output: str) -> None:
    torch.set_num_threads(1)  # a forked child must not enter the parent's OpenMP pool
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    maps, masks = make_set(12, 8, 32, 32)
    values = []
    for metric in _ddp_metrics():
        run(metric, maps[rank::2], masks[rank::2], batch=2)  # each process half of the images
        values.append(float(metric.compute()))  # torchmetrics reduces the states across processes
    if rank == 0:
        Path(output).write_text(json.dumps(values), encoding="utf-8")
    dist.destroy_process_group()


def test_two_gloo_processes_give_the_single_process_values(tmp_path: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    output = tmp_path / "values.json"
    # fork: the workers start without importing anything again
    mp.start_processes(_ddp_worker, args=(port, str(output)), nprocs=2, join=True, start_method="fork")
    maps, masks = make_set(12, 8, 32, 32)
    expected = [run(metric, maps, masks) for metric in _ddp_metrics()]
    assert json.loads(output.read_text()) == pytest.approx(expected, abs=1e-9)


# ----------------------------------------------------------------------------------------------------------------
# Through the Engine: MiniMaxAD's default, and another anomalib model
# ----------------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def dataset_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate_demo_dataset(
        tmp_path_factory.mktemp("streaming"), categories=("brick",), image_size=64, num_train=4, num_test_good=3,
        num_test_defect=4,
    )  # fmt: skip


def _fit_and_test(
    root: Path, project: Path, limit_val_batches: float = 1.0, **model_kwargs: object
) -> tuple[dict[str, float], MiniMaxAD]:
    seed_everything(3)
    model = MiniMaxAD(
        pre_trained=False, dims=TINY_DIMS, visualizer=False,
        pre_processor=MiniMaxAD.configure_pre_processor((64, 64)), **model_kwargs,
    )  # fmt: skip
    datamodule = MVTecLayout(root=root, category="brick", train_batch_size=4, eval_batch_size=4, num_workers=0)
    engine = Engine(
        logger=False, devices=1, max_epochs=1, default_root_dir=project, limit_val_batches=limit_val_batches
    )
    engine.fit(model=model, datamodule=datamodule)
    (results,) = engine.test(model=model, datamodule=datamodule)
    return results, model


def test_engine_default_matches_exact_metrics(dataset_root: Path, tmp_path: Path) -> None:
    streamed, streaming_model = _fit_and_test(dataset_root, tmp_path / "streaming")
    exact, exact_model = _fit_and_test(dataset_root, tmp_path / "exact", streaming_metrics=False)
    assert isinstance(streaming_model.post_processor, StreamingPostProcessor)
    assert type(exact_model.post_processor) is PostProcessor
    names = {"image_AUROC", "image_F1Score", "pixel_AUROC", "pixel_F1Score", "pixel_AUPRO", "pixel_AUPR"}
    assert names <= set(streamed)
    assert {name: streamed[name] for name in names} == pytest.approx({name: exact[name] for name in names}, abs=1e-4)
    bin_width = 2.0 / 2**16
    for name in ("_image_threshold", "_pixel_threshold"):
        difference = getattr(streaming_model.post_processor, name) - getattr(exact_model.post_processor, name)
        assert abs(float(difference)) <= bin_width


def test_test_without_validation_sees_raw_maps_within_range(dataset_root: Path, tmp_path: Path) -> None:
    """No validation ran: the post-processor has no statistics and passes raw maps (up to 2) to the test metrics."""
    streamed, streaming_model = _fit_and_test(dataset_root, tmp_path / "streaming", limit_val_batches=0)
    exact, _ = _fit_and_test(dataset_root, tmp_path / "exact", limit_val_batches=0, streaming_metrics=False)
    assert torch.isnan(streaming_model.post_processor.pixel_max)
    names = {"image_AUROC", "pixel_AUROC", "pixel_AUPRO", "pixel_AUPR"}
    assert {name: streamed[name] for name in names} == pytest.approx({name: exact[name] for name in names}, abs=1e-4)


def test_any_anomalib_model_can_use_them(dataset_root: Path, tmp_path: Path) -> None:
    """Padim (random ResNet-18) with streaming metrics in its Evaluator, beside the exact ones (renamed)."""
    from anomalib.models import Padim  # noqa: PLC0415

    pairs = [(AUROC, StreamingAUROC, ["pred_score", "gt_label"], "image_")]
    pairs += [(exact, streaming, PIXELS, "pixel_") for exact, streaming in PAIRS[:3]]
    metrics = [streaming(fields=fields, prefix=prefix) for _, streaming, fields, prefix in pairs]
    metrics += [exact(fields=fields, prefix=f"exact_{prefix}") for exact, _, fields, prefix in pairs]
    seed_everything(0)
    model = Padim(
        backbone="resnet18", pre_trained=False, pre_processor=Padim.configure_pre_processor(image_size=(64, 64)),
        evaluator=Evaluator(test_metrics=metrics), visualizer=False,
    )  # fmt: skip
    datamodule = MVTecLayout(root=dataset_root, category="brick", train_batch_size=4, eval_batch_size=4, num_workers=0)
    engine = Engine(logger=False, devices=1, default_root_dir=tmp_path)
    engine.fit(model=model, datamodule=datamodule)
    (values,) = engine.test(model=model, datamodule=datamodule)
    names = ("image_AUROC", "pixel_AUROC", "pixel_AUPR", "pixel_AUPRO")
    assert {name: values[name] for name in names} == pytest.approx({n: values[f"exact_{n}"] for n in names}, abs=1e-4)


# ----------------------------------------------------------------------------------------------------------------
# Bounded memory
# ----------------------------------------------------------------------------------------------------------------

_MEMORY_SCRIPT = textwrap.dedent(
    """
    import resource, sys
    from types import SimpleNamespace
    import torch
    from anomalib_minimaxad import MiniMaxAD

    torch.set_num_threads(1)
    streaming, size = sys.argv[1] == "streaming", 256
    model = MiniMaxAD(pre_trained=False, dims=(8, 16, 32, 64), streaming_metrics=streaming)
    post_processor, evaluator = model.post_processor, model.evaluator
    generator = torch.Generator().manual_seed(0)
    for batches in (6, 24, 24):  # 48, 240 and 432 images seen: the states accumulate
        for _ in range(batches):
            maps = torch.rand(8, size, size, generator=generator)
            masks = torch.zeros(8, size, size, dtype=torch.bool)
            masks[::2, 100:140, 60:90] = True
            batch = SimpleNamespace(
                anomaly_map=maps, gt_mask=masks, pred_score=maps.flatten(1).amax(1), gt_label=masks.flatten(1).any(1),
                pred_label=maps.flatten(1).amax(1) > 0.5, pred_mask=maps > 0.5,
            )
            post_processor.on_validation_batch_end(None, None, batch)
            for metric in (*evaluator.val_metrics, *evaluator.test_metrics):
                metric.update(batch)
        post_processor.on_validation_epoch_end(None, None)
        values = [float(metric.compute()) for metric in (*evaluator.val_metrics, *evaluator.test_metrics)]
        print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)  # peak MiB so far
    """
)


@pytest.mark.slow
def test_peak_memory_does_not_grow_with_the_test_set(tmp_path: Path) -> None:
    """The default evaluator's metrics and post-processor on 240, then 432 256-px maps: peak RSS grows < 0.1 MiB/map.

    Measured (2-core VM): +12 MiB from 48 to 240 maps (the allocator settling), +5 MiB from 240 to 432; the exact
    metrics grow about 4.5 MiB per map.
    """
    script = tmp_path / "memory.py"
    script.write_text(_MEMORY_SCRIPT)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    completed = subprocess.run(  # noqa: S603 - this interpreter on a script of this test
        [sys.executable, str(script), "streaming"], capture_output=True, text=True, env=env, check=True
    )
    peaks = [float(line) for line in completed.stdout.split()[-3:]]
    growth = (peaks[2] - peaks[1]) / (432 - 240)
    assert growth <= 0.1, f"peak RSS after 48, 240 and 432 maps: {peaks} MiB; {growth:.3f} MiB per map"


def test_states_are_a_few_mib_whatever_the_test_set() -> None:
    metrics = MiniMaxAD.configure_evaluator().test_metrics
    sizes = {}
    for metric in metrics:
        states = [getattr(metric, name) for name in metric._defaults]
        sizes[metric.name] = sum(s.numel() * s.element_size() for s in states if isinstance(s, torch.Tensor))
    # 2**16 bins per unit over the raw range [0, 2] (which covers the normalised [0, 1]): about 2 MiB a histogram.
    assert sum(sizes.values()) < 10 * 2**20, sizes
    assert all(isinstance(getattr(m, name), torch.Tensor) for m in metrics for name in m._defaults)  # no lists
