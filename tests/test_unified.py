"""Unified training over categories, per-category metrics, the MVTec-layout and AeBAD-S datamodules, presets."""

from __future__ import annotations

import csv
import json
import math
import shutil
from pathlib import Path

import pytest
import torch
from anomalib.cli.cli import AnomalibCLI
from anomalib.data import ImageBatch
from anomalib.engine import Engine
from anomalib.metrics import AUPR, AUPRO, AUROC
from lightning.pytorch import seed_everything
from PIL import Image

from anomalib_minimaxad import MiniMaxAD
from anomalib_minimaxad.data import AeBADS, MVTecLayout, PerCategoryMetrics, Unified, generate_demo_dataset
from anomalib_minimaxad.data.aebad import AEBAD_DOMAINS
from anomalib_minimaxad.data.file_checks import DatasetLayoutError
from anomalib_minimaxad.data.per_category import RESULTS_FILE_STEM, CategoryResults, default_metrics
from anomalib_minimaxad.data.unified import UNIFIED_CATEGORY, UnifiedDataError

from .conftest import TINY_DIMS

CATEGORIES = ("brick", "grass", "gravel")
CONFIGS = Path(__file__).parents[1] / "anomalib_minimaxad" / "configs"
PRESETS = ("mvtec_unified", "visa_unified", "visa_oneclass", "goodsad", "aebad_s", "mad_sim")


@pytest.fixture(scope="module")
def demo_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate_demo_dataset(
        tmp_path_factory.mktemp("demo"),
        categories=CATEGORIES,
        image_size=64,
        num_train=8,
        num_test_good=4,
        num_test_defect=5,
    )


def unified(root: Path, **kwargs: object) -> Unified:
    kwargs.setdefault("num_workers", 0)
    return Unified(root=root, **kwargs)


# ----------------------------------------------------------------------------------------------------------------
# The datamodule
# ----------------------------------------------------------------------------------------------------------------


def test_union_of_categories_keeps_each_samples_category(demo_root: Path) -> None:
    datamodule = unified(demo_root, dataset="MVTecAD", categories="all", eval_batch_size=10)
    assert datamodule.test_categories == list(CATEGORIES)
    assert datamodule.category == UNIFIED_CATEGORY
    datamodule.setup()
    assert len(datamodule.train_data) == 3 * 8
    assert len(datamodule.test_data) == 3 * 9
    for dataset in (datamodule.train_data, datamodule.test_data, datamodule.val_data):
        samples = dataset.samples
        assert (samples.category == [Path(p).parts[-4] for p in samples.image_path]).all()
    batch = next(iter(datamodule.test_dataloader()))
    assert datamodule.category_of(batch.image_path) == [Path(p).parts[-4] for p in batch.image_path]
    with pytest.raises(KeyError, match="belongs to no category"):
        datamodule.category_of(["/elsewhere/x.png"])


@pytest.mark.parametrize(
    ("dataset", "categories", "expected"),
    [
        ("MVTec", ["gravel", "brick"], ["gravel", "brick"]),
        ("MVTecLayout", "grass, brick", ["grass", "brick"]),
        ("anomalib.data.MVTecAD", "brick", ["brick"]),
    ],
)
def test_dataset_names_and_category_lists(demo_root: Path, dataset: str, categories: object, expected: list) -> None:
    datamodule = unified(demo_root, dataset=dataset, categories=categories)
    datamodule.setup()
    assert datamodule.test_categories == expected
    assert set(datamodule.test_data.samples.category) == set(expected)


def test_visa_split_layout(demo_root: Path, tmp_path: Path) -> None:
    """VisA categories live in <root>/visa_pytorch/<category> once anomalib's Visa has split them."""
    for name, source in (("candle", "brick"), ("pcb1", "grass")):
        shutil.copytree(demo_root / source, tmp_path / "visa" / "visa_pytorch" / name)
    datamodule = unified(tmp_path / "visa", dataset="Visa", categories="all")
    assert datamodule.test_categories == ["candle", "pcb1"]
    datamodule.prepare_data()  # finds the split data: no download
    datamodule.setup()
    assert datamodule.test_data.samples.groupby("category").size().to_dict() == {"candle": 9, "pcb1": 9}
    with pytest.raises(UnifiedDataError, match=r"category 'pcb2': folder '.*visa_pytorch/pcb2' does not exist"):
        unified(tmp_path / "visa", dataset="Visa", categories=["pcb1", "pcb2"])


def test_folder_with_glob_patterns(demo_root: Path) -> None:
    args = {
        "normal_dir": "train/good",
        "normal_test_dir": "test/good",
        "abnormal_dir": "test/*",
        "mask_dir": "ground_truth/*",
    }
    datamodule = unified(demo_root, dataset="Folder", categories="all", dataset_args=args)
    datamodule.setup()
    assert datamodule.test_categories == list(CATEGORIES)
    samples = datamodule.test_data.samples
    assert len(samples) == 27
    assert (samples.label_index == 1).sum() == 15  # test/good is not taken as anomalous
    assert samples.loc[samples.label_index == 1, "mask_path"].str.endswith("_mask.png").all()


def test_unknown_category_and_missing_folders_fail_early(demo_root: Path, tmp_path: Path) -> None:
    with pytest.raises(UnifiedDataError, match=r"category 'brik'.*brik' does not exist.*found.*brick, grass"):
        unified(demo_root, categories=["brick", "brik"])
    with pytest.raises(UnifiedDataError, match=f"no category folders found under '{tmp_path}'"):
        unified(tmp_path, categories="all")
    with pytest.raises(UnifiedDataError, match=r"normal_dir '.*brick/train/normal' does not exist"):
        unified(demo_root, dataset="Folder", categories=["brick"], dataset_args={"normal_dir": "train/normal"})
    with pytest.raises(ValueError, match="unknown dataset 'MVtec'"):
        unified(demo_root, dataset="MVtec")
    with pytest.raises(ValueError, match="listed twice"):
        unified(demo_root, categories=["brick", "brick"])
    # A root that appears only later (e.g. created by a download) is checked in setup, still before training.
    later = unified(tmp_path / "later", categories=["brick"])
    shutil.copytree(demo_root / "grass", tmp_path / "later" / "grass")
    with pytest.raises(UnifiedDataError, match="category 'brick'"):
        later.setup()


# ----------------------------------------------------------------------------------------------------------------
# Per-category metrics
# ----------------------------------------------------------------------------------------------------------------


def synthetic_batch(generator: torch.Generator, size: int = 32) -> tuple[ImageBatch, list[str]]:
    """12 images of two categories: per category 3 normal and 3 anomalous with a square defect."""
    labels = torch.tensor([0, 0, 0, 1, 1, 1] * 2)
    masks = torch.zeros(12, size, size, dtype=torch.bool)
    for i in torch.nonzero(labels).flatten().tolist():
        top, left = torch.randint(0, size - 8, (2,), generator=generator).tolist()
        masks[i, top : top + 8, left : left + 8] = True
    batch = ImageBatch(
        image=torch.rand(12, 3, size, size, generator=generator),
        gt_label=labels,
        gt_mask=masks,
        image_path=[f"/data/{i}.png" for i in range(12)],
    )
    return batch, ["a"] * 6 + ["b"] * 6


def test_perfect_scorer_scores_one_everywhere() -> None:
    batch, categories = synthetic_batch(torch.Generator().manual_seed(0))
    batch.pred_score, batch.pred_label = batch.gt_label.float(), batch.gt_label.bool()
    batch.anomaly_map, batch.pred_mask = batch.gt_mask.float(), batch.gt_mask
    callback = PerCategoryMetrics()  # the model's test metrics, in the paper's column order
    callback.reset(["a", "b"])
    callback.update(batch, categories)
    results = callback.compute()
    assert results.metric_names == [
        "image_AUROC",
        "pixel_AUROC",
        "pixel_AUPRO",
        "pixel_AUPR",
        "image_F1Score",
        "pixel_F1Score",
    ]
    assert {m.name for m in MiniMaxAD.configure_evaluator().test_metrics} == set(results.metric_names)
    for row in (*results.per_category.values(), results.mean):
        assert row == pytest.approx(dict.fromkeys(results.metric_names, 1.0))
    assert results.num_images == {"a": 6, "b": 6}


def test_random_scorer_matches_metrics_of_each_category_alone() -> None:
    generator = torch.Generator().manual_seed(1)
    callback = PerCategoryMetrics()
    callback.reset(["b", "a"])  # table order is the given order
    reference = {c: default_metrics() for c in ("a", "b")}
    for _ in range(2):  # two batches: states accumulate per category
        batch, categories = synthetic_batch(generator)
        batch.pred_score = torch.rand(12, generator=generator)
        batch.anomaly_map = torch.rand(12, 32, 32, generator=generator)
        batch.pred_label, batch.pred_mask = batch.pred_score > 0.5, batch.anomaly_map > 0.5
        callback.update(batch, categories)
        for category, part in (("a", slice(0, 6)), ("b", slice(6, 12))):
            for metric in reference[category]:
                metric.update(
                    ImageBatch(
                        image=batch.image[part],
                        gt_label=batch.gt_label[part],
                        gt_mask=batch.gt_mask[part],
                        pred_score=batch.pred_score[part],
                        pred_label=batch.pred_label[part],
                        anomaly_map=batch.anomaly_map[part],
                        pred_mask=batch.pred_mask[part],
                    )
                )
    results = callback.compute()
    assert list(results.per_category) == ["b", "a"]
    for category, metrics in reference.items():
        expected = {m.name: float(m.compute()) for m in metrics}
        assert results.per_category[category] == pytest.approx(expected, abs=1e-6)
        assert 0.2 < expected["image_AUROC"] < 0.9  # random, not degenerate
    for name in results.metric_names:
        assert results.mean[name] == pytest.approx(sum(r[name] for r in results.per_category.values()) / 2)


def test_full_resolution_maps_and_undefined_metrics_are_nan() -> None:
    generator = torch.Generator().manual_seed(2)
    batch, categories = synthetic_batch(generator, size=64)
    batch.pred_score, batch.pred_label = batch.gt_label.float(), batch.gt_label.bool()
    batch.anomaly_map, batch.pred_mask = batch.gt_mask.float(), batch.gt_mask
    normal_only = [
        "c" if label == 0 and category == "a" else category
        for label, category in zip(batch.gt_label.tolist(), categories, strict=True)
    ]
    metrics = [
        AUROC(fields=["pred_score", "gt_label"], prefix="image_"),
        AUPRO(fields=["anomaly_map", "gt_mask"], prefix="pixel_", strict=False),
        AUPR(fields=["anomaly_map", "gt_mask"], prefix="pixel_", strict=False),
    ]
    exact, streaming = PerCategoryMetrics(metrics=metrics), PerCategoryMetrics()  # the model's streaming metrics
    for callback in (exact, streaming):
        callback.reset(["a", "b", "c"])
        callback.update(batch, normal_only)
    aupro = exact._metrics["b"][1]
    assert aupro.preds[0].shape[-2:] == aupro.target[0].shape[-2:] == (64, 64)  # maps as the evaluator sees them
    results, streamed = exact.compute(), streaming.compute()
    assert math.isnan(results.per_category["c"]["image_AUROC"])  # normal images only: undefined
    assert math.isnan(streamed.per_category["c"]["image_AUROC"])
    assert results.mean["image_AUROC"] == pytest.approx(1.0)  # the mean skips undefined values
    assert results.per_category["b"]["pixel_AUPRO"] == pytest.approx(1.0)
    for name in ("image_AUROC", "pixel_AUPRO", "pixel_AUPR"):
        assert streamed.per_category["b"][name] == pytest.approx(results.per_category["b"][name], abs=1e-4)


def test_results_table_and_files(tmp_path: Path) -> None:
    results = CategoryResults(
        ["image_AUROC", "pixel_AUPRO"],
        {"brick": {"image_AUROC": 0.9, "pixel_AUPRO": 0.8}, "grass": {"image_AUROC": 1.0, "pixel_AUPRO": math.nan}},
    )
    assert results.mean == pytest.approx({"image_AUROC": 0.95, "pixel_AUPRO": 0.8})
    table = results.format_table().splitlines()
    assert table[0].split() == ["Category", "I-AUROC", "AUPRO"]
    assert table[-1].split() == ["Mean", "95.0", "80.0"]
    csv_path, json_path = results.save(tmp_path)
    rows = list(csv.reader(csv_path.open()))
    assert rows[0] == ["category", "I-AUROC", "AUPRO"]
    assert [row[0] for row in rows[1:]] == ["brick", "grass", "Mean"]
    saved = json.loads(json_path.read_text())
    assert saved["per_category"]["grass"]["pixel_AUPRO"] is None
    assert not list(tmp_path.glob(".*"))  # no temporary files left


def test_unified_training_reports_per_category_results(demo_root: Path, tmp_path: Path) -> None:
    seed_everything(111)
    datamodule = unified(demo_root, categories="all", train_batch_size=8, eval_batch_size=27)
    model = MiniMaxAD(pre_trained=False, dims=TINY_DIMS, visualizer=False)
    engine = Engine(
        default_root_dir=tmp_path,
        max_epochs=1,
        limit_train_batches=1,
        accelerator="cpu",
        devices=1,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    engine.fit(model=model, datamodule=datamodule)
    (logged,) = engine.test(model=model, datamodule=datamodule, verbose=False)
    callback = engine.trainer.callbacks[-1]
    assert isinstance(callback, PerCategoryMetrics)
    results = callback.results
    assert list(results.per_category) == list(CATEGORIES)
    assert results.metric_names[:4] == ["image_AUROC", "pixel_AUROC", "pixel_AUPRO", "pixel_AUPR"]
    for name in results.metric_names:
        assert logged[f"mean/{name}"] == pytest.approx(results.mean[name], nan_ok=True)
        for category in CATEGORIES:
            assert logged[f"{category}/{name}"] == pytest.approx(results.per_category[category][name], nan_ok=True)
    written = Path(engine.trainer.default_root_dir) / f"{RESULTS_FILE_STEM}.csv"
    assert written.parent.parts[-3:-1] == (demo_root.name, UNIFIED_CATEGORY)
    assert [row[0] for row in csv.reader(written.open())][1:] == [*CATEGORIES, "Mean"]
    assert sum(results.num_images.values()) == 27


# ----------------------------------------------------------------------------------------------------------------
# MVTec-layout (GoodsAD, MAD-Sim) and AeBAD-S datamodules
# ----------------------------------------------------------------------------------------------------------------


def goodsad_like(demo_root: Path, root: Path) -> Path:
    """The brick category as GoodsAD lays it out: JPEG images, PNG masks named like the image."""
    source, target = demo_root / "brick", root / "drink_can"
    for image in source.glob("*/*/*.png"):
        split, kind = image.parts[-3], image.parts[-2]
        destination = target / split / kind
        destination.mkdir(parents=True, exist_ok=True)
        if split == "ground_truth":
            shutil.copy(image, destination / image.name.replace("_mask", ""))
        else:
            Image.open(image).convert("RGB").save(destination / f"{image.stem}.jpg")
    (target / "train" / "good" / "._000.jpg").write_bytes(b"macOS metadata")  # hidden: skipped
    return root


def test_mvtec_layout_reads_goodsad_like_data(demo_root: Path, tmp_path: Path) -> None:
    root = goodsad_like(demo_root, tmp_path / "GoodsAD")
    datamodule = MVTecLayout(root=root, category="drink_can", num_workers=0, eval_batch_size=9)
    datamodule.prepare_data()
    datamodule.setup()
    assert len(datamodule.train_data) == 8
    samples = datamodule.test_data.samples
    abnormal = samples[samples.label_index == 1]
    assert len(abnormal) == 5
    assert all(Path(m).stem == Path(i).stem for i, m in zip(abnormal.image_path, abnormal.mask_path, strict=True))
    batch = next(iter(datamodule.test_dataloader()))
    assert batch.gt_mask.shape == (9, 64, 64)
    assert batch.gt_mask.any()

    with pytest.raises(DatasetLayoutError, match=r"Category 'drink_bottle' not found.*drink_can"):
        MVTecLayout(root=root, category="drink_bottle").prepare_data()
    next((root / "drink_can" / "ground_truth").glob("*/*.png")).unlink()
    with pytest.raises(DatasetLayoutError, match="1 defective test image"):
        MVTecLayout(root=root, category="drink_can").prepare_data()
    shutil.rmtree(root / "drink_can" / "train")
    with pytest.raises(DatasetLayoutError, match=r"training images folder '.*drink_can/train/good' does not exist"):
        MVTecLayout(root=root, category="drink_can").prepare_data()


def aebad_like(root: Path, per_folder: int = 2) -> Path:
    """A tiny AeBAD-S: two training sub-folders, two defect kinds, the four domains."""
    generator = torch.Generator().manual_seed(0)

    def write(path: Path, mask: bool = False) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        if mask:
            array = torch.zeros(32, 32, dtype=torch.uint8)
            array[8:16, 8:16] = 255
            Image.fromarray(array.numpy()).save(path)
        else:
            Image.fromarray((torch.rand(32, 32, 3, generator=generator) * 255).byte().numpy()).save(path)

    subset = root / "AeBAD_S"
    for sub in ("background", "view"):
        for i in range(per_folder):
            write(subset / "train" / "good" / sub / f"{sub}{i}.png")
    for domain in AEBAD_DOMAINS:
        for i in range(per_folder):
            write(subset / "test" / "good" / domain / f"g{i}.png")
            for kind in ("ablation", "fracture"):
                write(subset / "test" / kind / domain / f"{kind}{i}.png")
                write(subset / "ground_truth" / kind / domain / f"{kind}{i}.png", mask=True)
    (subset / "test" / "good" / "same" / "._g0.png").write_bytes(b"macOS metadata")
    return root


def test_aebad_s_domains_are_the_categories(tmp_path: Path) -> None:
    root = aebad_like(tmp_path / "AeBAD")
    datamodule = AeBADS(root=root, num_workers=0)  # the AeBAD folder is accepted too
    assert datamodule.root == root / "AeBAD_S"
    datamodule.prepare_data()
    datamodule.setup()
    assert len(datamodule.train_data) == 4
    assert datamodule.test_categories == list(AEBAD_DOMAINS)
    samples = datamodule.test_data.samples
    assert len(samples) == 4 * 6
    assert datamodule.category_of(samples.image_path) == [Path(p).parent.name for p in samples.image_path]
    assert (samples.loc[samples.label_index == 1, "mask_path"] != "").all()

    two = AeBADS(root=root, domains="view,same", num_workers=0)
    two.setup()
    assert two.test_categories == ["view", "same"]
    assert set(two.test_data.samples.category) == {"view", "same"}
    with pytest.raises(ValueError, match="domains must be distinct names"):
        AeBADS(root=root, domains=["sunny"])
    shutil.rmtree(root / "AeBAD_S" / "test" / "good" / "view")
    for kind in ("ablation", "fracture"):
        shutil.rmtree(root / "AeBAD_S" / "test" / kind / "view")
    with pytest.raises(DatasetLayoutError, match="domain 'view' has no test images"):
        AeBADS(root=root).prepare_data()


# ----------------------------------------------------------------------------------------------------------------
# Presets
# ----------------------------------------------------------------------------------------------------------------


def test_every_preset_parses_and_builds(demo_root: Path, tmp_path: Path) -> None:
    aebad = aebad_like(tmp_path / "AeBAD")
    overrides = {
        "mvtec_unified": ["--data.root", str(demo_root)],
        "visa_unified": ["--data.root", str(tmp_path / "visa_not_downloaded")],
        "visa_oneclass": ["--data.root", str(tmp_path / "visa_not_downloaded")],
        "goodsad": ["--data.root", str(demo_root), "--data.category", "brick"],
        "aebad_s": ["--data.root", str(aebad)],
        "mad_sim": ["--data.root", str(demo_root), "--data.category", "grass"],
    }
    expected = {  # loss, image size, epochs, data class
        "mvtec_unified": ("ADCLoss", 256, 100, Unified),
        "visa_unified": ("ADCLoss", 256, 100, Unified),
        "visa_oneclass": ("GlobalCosineLoss", 256, 130, None),
        "goodsad": ("ADCLoss", 224, 240, MVTecLayout),
        "aebad_s": ("GlobalCosineLoss", 224, 130, AeBADS),
        "mad_sim": ("ADCLoss", 400, 150, MVTecLayout),
    }
    assert set(PRESETS) <= {p.stem for p in CONFIGS.glob("*.yaml")}
    for preset in PRESETS:
        args = [
            "train",
            "--config",
            str(CONFIGS / f"{preset}.yaml"),
            *overrides[preset],
            "--model.pre_trained",
            "false",
            "--model.dims",
            "[16, 32, 64, 128]",
        ]
        cli = AnomalibCLI(args, run=False)
        loss, size, epochs, data_class = expected[preset]
        model, datamodule = cli.model, cli.datamodule
        assert type(model.loss).__name__ == loss, preset
        assert list(model.pre_processor.transform.transforms[0].size) == [size, size], preset
        assert cli.engine._cache.args["max_epochs"] == epochs, preset
        assert model.weight_decay == pytest.approx(5e-5), preset  # the paper's value
        assert datamodule.train_batch_size == 16, preset
        assert cli.config["train"]["seed_everything"] == 111, preset
        if data_class is not None:
            assert isinstance(datamodule, data_class), preset
        augmentations = datamodule.train_augmentations
        if preset == "aebad_s":
            crop, flip = augmentations.transforms
            assert (type(crop).__name__, crop.scale, type(flip).__name__) == (
                "RandomResizedCrop",
                (0.7, 1.0),
                "RandomHorizontalFlip",
            )
        else:
            assert augmentations is None, preset
