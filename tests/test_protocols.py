"""Evaluation protocols: map combination, smoothing, image score, per-image AUPRO, presets and Real-IAD data."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from anomalib.cli.cli import AnomalibCLI
from anomalib.metrics import AUPRO
from PIL import Image
from scipy.ndimage import gaussian_filter
from torchvision import tv_tensors

from anomalib_minimaxad import MiniMaxAD
from anomalib_minimaxad.anomaly_map import AnomalyMapGenerator
from anomalib_minimaxad.data import Unified, generate_demo_dataset
from anomalib_minimaxad.data.realiad import RealIAD, RealIADLayoutError
from anomalib_minimaxad.metrics import PerImageAUPRO

from .conftest import TINY_DIMS
from .test_unified import aebad_like

CONFIGS = Path(__file__).parents[1] / "anomalib_minimaxad" / "configs"


def features(seed: int, batch: int = 2) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    generator = torch.Generator().manual_seed(seed)
    shapes = [(batch, 8, 16, 16), (batch, 16, 8, 8), (batch, 32, 4, 4)]
    encoder = [torch.rand(shape, generator=generator) for shape in shapes]
    decoder = [torch.rand(shape, generator=generator) for shape in shapes]
    return encoder, decoder


# ----------------------------------------------------------------------------------------------------------------
# Map combination, smoothing and image score
# ----------------------------------------------------------------------------------------------------------------


def test_sum_of_levels_is_the_number_of_levels_times_their_mean() -> None:
    encoder, decoder = features(0)
    unsmoothed = {"kernel_size": 1, "score_mode": "max"}
    mean_map, mean_score = AnomalyMapGenerator(map_combination="mean", **unsmoothed)(encoder, decoder, (32, 32))
    sum_map, sum_score = AnomalyMapGenerator(map_combination="sum", **unsmoothed)(encoder, decoder, (32, 32))
    torch.testing.assert_close(sum_map, 3 * mean_map)
    torch.testing.assert_close(sum_score, 3 * mean_score)
    # The sum itself, level by level (bilinear, align_corners=True, as the authors' cal_anomaly_map).
    levels = [
        torch.nn.functional.interpolate(
            1 - torch.nn.functional.cosine_similarity(e, d, dim=1)[:, None], size=(32, 32), mode="bilinear",
            align_corners=True,
        )
        for e, d in zip(encoder, decoder, strict=True)
    ]  # fmt: skip
    torch.testing.assert_close(sum_map, levels[0] + levels[1] + levels[2])


@pytest.mark.parametrize("shape", [(40, 40), (24, 56), (9, 12)])  # 9x12: the 33-pixel kernel is wider than the map
def test_full_smoothing_equals_scipy_gaussian_filter_with_reflect_borders(shape: tuple[int, int]) -> None:
    maps = torch.rand(2, 1, *shape, generator=torch.Generator().manual_seed(1))
    smoothed = AnomalyMapGenerator(smoothing="full", sigma=4.0).smooth(maps)
    expected = gaussian_filter(maps.double().numpy(), sigma=(0, 0, 4, 4), mode="reflect", truncate=4.0)
    np.testing.assert_allclose(smoothed.numpy(), expected, atol=2e-6, rtol=0)


def test_kernel_smoothing_is_a_zero_padded_5x5_gaussian() -> None:
    maps = torch.rand(3, 1, 20, 20, generator=torch.Generator().manual_seed(2))
    smoothed = AnomalyMapGenerator(smoothing="kernel", kernel_size=5, sigma=4.0).smooth(maps)
    coords = torch.arange(5, dtype=torch.float64) - 2
    kernel = torch.exp(-(coords[:, None] ** 2 + coords[None] ** 2) / 32)
    kernel = (kernel / kernel.sum())[None, None]
    expected = torch.nn.functional.conv2d(maps.double(), kernel, padding=2)
    torch.testing.assert_close(smoothed.double(), expected, atol=1e-6, rtol=0)
    # Zero padding darkens the borders of a constant map, reflect borders do not.
    ones = torch.ones(1, 1, 20, 20)
    assert AnomalyMapGenerator(smoothing="kernel").smooth(ones)[0, 0, 0, 0] < 0.7
    torch.testing.assert_close(AnomalyMapGenerator(smoothing="full").smooth(ones), ones)


def test_max_score_and_top_one_percent_score() -> None:
    maps = torch.rand(2, 1, 20, 20, generator=torch.Generator().manual_seed(3))  # 400 pixels: top 1% = 4
    top = AnomalyMapGenerator(score_mode="top_ratio", score_ratio=0.01).score(maps)
    best = AnomalyMapGenerator(score_mode="max").score(maps)
    flat = maps.flatten(1).sort(dim=1, descending=True).values
    torch.testing.assert_close(best, flat[:, 0])
    torch.testing.assert_close(top, flat[:, :4].mean(dim=1))
    assert (best > top).all()


# ----------------------------------------------------------------------------------------------------------------
# Per-image AUPRO
# ----------------------------------------------------------------------------------------------------------------


def test_per_image_aupro_is_the_mean_of_each_defective_images_aupro() -> None:
    generator = torch.Generator().manual_seed(4)
    masks = torch.zeros(5, 32, 32, dtype=torch.bool)  # (B, H, W), as in anomalib's batches
    masks[0, 4:10, 4:12] = True
    masks[1, 20:30, 2:6] = True
    masks[1, 2:5, 25:30] = True  # two regions on one image
    masks[3, 10:12, 0:32] = True  # images 2 and 4 are defect-free: skipped
    maps = gaussian_filter((masks.float() + 0.8 * torch.randn(masks.shape, generator=generator)).numpy(), (0, 2, 2))
    maps = torch.from_numpy(maps)
    reference = []
    for anomaly_map, mask in zip(maps, masks, strict=True):
        if mask.any():
            alone = AUPRO(fields=["anomaly_map", "gt_mask"], fpr_limit=0.3)
            alone.update(_Batch(anomaly_map=anomaly_map[None], gt_mask=mask[None]))
            reference.append(float(alone.compute()))
    assert len(reference) == 3
    assert len(set(reference)) == 3

    metric = PerImageAUPRO(fields=["anomaly_map", "gt_mask"], prefix="pixel_", strict=False)
    for first in (0, 2, 4):  # batches of 2, 2 and 1
        metric.update(_Batch(anomaly_map=maps[first : first + 2], gt_mask=masks[first : first + 2]))
    assert float(metric.compute()) == pytest.approx(float(np.mean(reference)), abs=1e-6)
    # It differs from anomalib's dataset-wide AUPRO on the same maps.
    dataset_wide = AUPRO(fields=["anomaly_map", "gt_mask"], fpr_limit=0.3)
    dataset_wide.update(_Batch(anomaly_map=maps, gt_mask=masks))
    assert abs(float(dataset_wide.compute()) - float(np.mean(reference))) > 1e-3


def test_per_image_aupro_without_defects_is_nan_and_checks_shapes() -> None:
    metric = PerImageAUPRO(fields=["anomaly_map", "gt_mask"], prefix="pixel_", strict=False)
    metric.update(_Batch(anomaly_map=torch.rand(2, 1, 8, 8), gt_mask=torch.zeros(2, 1, 8, 8, dtype=torch.bool)))
    assert torch.isnan(metric.compute())
    with pytest.raises(ValueError, match=r"anomaly maps \(2, 1, 8, 8\) and masks \(2, 1, 4, 4\)"):
        metric.update(_Batch(anomaly_map=torch.rand(2, 1, 8, 8), gt_mask=torch.ones(2, 1, 4, 4, dtype=torch.bool)))
    with pytest.raises(ValueError, match="fpr_limit"):
        PerImageAUPRO(fields=["anomaly_map", "gt_mask"], fpr_limit=0)


class _Batch:  # noqa: B903 - a stand-in with exactly the attributes the metric reads
    """The two fields the metric reads from an anomalib batch."""

    def __init__(self, anomaly_map: torch.Tensor, gt_mask: torch.Tensor) -> None:
        self.anomaly_map = anomaly_map
        self.gt_mask = gt_mask


def test_model_option_selects_the_evaluators_aupro() -> None:
    def aupro_names(model: MiniMaxAD) -> list[str]:
        return [m.name.removeprefix("pixel_") for m in model.evaluator.test_metrics if "AUPRO" in m.name]

    assert aupro_names(MiniMaxAD(pre_trained=False, dims=TINY_DIMS)) == ["AUPRO"]
    assert aupro_names(MiniMaxAD(pre_trained=False, dims=TINY_DIMS, aupro="per_image")) == ["PerImageAUPRO"]
    with pytest.raises(ValueError, match="aupro"):
        MiniMaxAD(pre_trained=False, dims=TINY_DIMS, aupro="per_pixel")


# ----------------------------------------------------------------------------------------------------------------
# Exports of the AeBAD-S protocol
# ----------------------------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_onnx_and_openvino_exports_of_the_aebad_protocol_match_torch(tmp_path: Path) -> None:
    import onnxruntime as ort  # noqa: PLC0415
    import openvino as ov  # noqa: PLC0415

    torch.manual_seed(0)
    model = MiniMaxAD(
        pre_trained=False, dims=TINY_DIMS, smoothing="full", map_combination="sum", score_mode="max",
        pre_processor=MiniMaxAD.configure_pre_processor(image_size=(64, 64)), post_processor=False, evaluator=False,
        visualizer=False,
    ).eval()  # fmt: skip
    images = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        expected = model(images)
    expected_map, expected_score = expected.anomaly_map.numpy(), expected.pred_score.numpy()
    assert expected_map.shape == (2, 1, 64, 64)

    onnx_path = model.to_onnx(tmp_path / "onnx", input_size=(64, 64))
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    names = [output.name for output in session.get_outputs()]
    onnx_outputs = dict(zip(names, session.run(None, {"input": images.numpy()}), strict=True))

    # What model.to_openvino does after its own ONNX export (one export instead of two keeps the test shorter).
    compiled = ov.Core().compile_model(ov.convert_model(onnx_path), "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    results = compiled(images.numpy())
    openvino_outputs = {output.get_any_name(): results[output] for output in compiled.outputs}

    for outputs in (onnx_outputs, openvino_outputs):
        np.testing.assert_allclose(outputs["anomaly_map"], expected_map, atol=1e-5, rtol=1e-4)
        np.testing.assert_allclose(outputs["pred_score"].reshape(-1), expected_score, atol=1e-5, rtol=1e-4)


# ----------------------------------------------------------------------------------------------------------------
# Presets
# ----------------------------------------------------------------------------------------------------------------

# preset -> (score_mode, map_combination, smoothing, AUPRO metric, loss, image size, epochs, weight decay)
PROTOCOLS = {
    "minimaxad": ("top_ratio", "mean", "kernel", "AUPRO", "ADCLoss", 256, 100, 1e-5),
    "minimaxad_fp": ("top_ratio", "mean", "kernel", "AUPRO", "GlobalCosineLoss", 256, 100, 1e-5),
    "mvtec_unified": ("top_ratio", "mean", "kernel", "AUPRO", "ADCLoss", 256, 100, 5e-5),
    "visa_unified": ("top_ratio", "mean", "kernel", "AUPRO", "ADCLoss", 256, 100, 5e-5),
    "visa_oneclass": ("max", "mean", "kernel", "AUPRO", "GlobalCosineLoss", 256, 130, 5e-5),
    "goodsad": ("top_ratio", "mean", "kernel", "AUPRO", "ADCLoss", 224, 240, 5e-5),
    "aebad_s": ("max", "sum", "full", "PerImageAUPRO", "GlobalCosineLoss", 224, 130, 5e-5),
    "mad_sim": ("max", "sum", "full", "PerImageAUPRO", "ADCLoss", 400, 150, 5e-5),
    "realiad_unified": ("top_ratio", "mean", "kernel", "AUPRO", "ADCLoss", 256, 1, 1e-5),
    "realiad_oneclass": ("top_ratio", "mean", "kernel", "AUPRO", "ADCLoss", 256, 50, 1e-5),
}


def realiad_like(root: Path, categories: tuple[str, ...] = ("audiojack", "bottle_cap")) -> Path:
    """A Real-IAD folder as anomalib's RealIAD reads it: realiad_512/<category>/{OK,NG}, multi-view JSON lists."""
    rng = np.random.default_rng(0)

    def write(path: Path, mask: bool = False) -> str:
        path.parent.mkdir(parents=True, exist_ok=True)
        if mask:
            pixels = np.zeros((64, 64), np.uint8)
            pixels[20:40, 10:30] = 255
            Image.fromarray(pixels).save(path)
        else:
            Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(path)
        return str(path.relative_to(path.parents[3] if "NG" in path.parts else path.parents[2]))

    for category in categories:
        folder = root / "realiad_512" / category
        train, test = [], []
        for index in range(4):
            image = write(folder / "OK" / f"S{index:04d}" / f"{category}_{index:04d}_OK_C1_0.jpg")
            (train if index < 3 else test).append({
                "category": category,
                "anomaly_class": "OK",
                "image_path": image,
                "mask_path": None,
            })
        for index in range(4, 6):
            stem = f"{category}_{index:04d}_NG_C1_0"
            sample = folder / "NG" / "AK" / f"S{index:04d}"
            test.append({
                "category": category, "anomaly_class": "AK",
                "image_path": write(sample / f"{stem}.jpg"), "mask_path": write(sample / f"{stem}_mask.png", mask=True),
            })  # fmt: skip
        json_file = root / "realiad_jsons" / "realiad_jsons" / f"{category}.json"
        json_file.parent.mkdir(parents=True, exist_ok=True)
        meta = {"prefix": "", "normal_class": "OK", "pixel_anomaly_classes": {"AK": "pit"}}
        json_file.write_text(json.dumps({"meta": meta, "train": train, "test": test}), encoding="utf-8")
    return root


@pytest.fixture(scope="module")
def data_roots(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("protocols")
    demo = generate_demo_dataset(
        root / "demo", categories=("brick",), image_size=64, num_train=4, num_test_good=2, num_test_defect=2
    )
    return {"demo": demo, "aebad": aebad_like(root / "AeBAD"), "realiad": realiad_like(root / "Real-IAD")}


def preset_overrides(preset: str, roots: dict[str, Path]) -> list[str]:
    if preset.startswith("realiad"):
        if preset == "realiad_unified":
            return ["--data.root", str(roots["realiad"] / "realiad_512")]
        return ["--data.root", str(roots["realiad"]), "--data.category", "audiojack"]
    if preset.startswith("visa"):
        return ["--data.root", str(roots["demo"].parent / "visa_not_downloaded")]
    if preset == "aebad_s":
        return ["--data.root", str(roots["aebad"])]
    if preset == "mvtec_unified":
        return ["--data.root", str(roots["demo"])]
    return ["--data.root", str(roots["demo"]), "--data.category", "brick"]


def build_preset(preset: str, roots: dict[str, Path]) -> AnomalibCLI:
    args = ["train", "--config", str(CONFIGS / f"{preset}.yaml"), *preset_overrides(preset, roots)]
    return AnomalibCLI([*args, "--model.pre_trained", "false", "--model.dims", "[16, 32, 64, 128]"], run=False)


def test_every_packaged_preset_has_a_protocol_here() -> None:
    assert {p.stem for p in CONFIGS.glob("*.yaml")} - {"demo_cpu"} == set(PROTOCOLS)


@pytest.mark.parametrize("preset", sorted(PROTOCOLS))
def test_preset_builds_with_its_scripts_protocol(preset: str, data_roots: dict[str, Path]) -> None:
    cli = build_preset(preset, data_roots)
    model, datamodule = cli.model, cli.datamodule
    score_mode, combination, smoothing, aupro, loss, size, epochs, weight_decay = PROTOCOLS[preset]
    generator = model.model.anomaly_map_generator
    assert (generator.score_mode.value, generator.map_combination.value, generator.smoothing.value) == (
        score_mode, combination, smoothing,
    )  # fmt: skip
    assert [m.name.removeprefix("pixel_") for m in model.evaluator.test_metrics if "AUPRO" in m.name] == [aupro]
    assert type(model.loss).__name__ == loss
    assert cli.config["train"]["trainer"]["max_epochs"] == epochs
    assert model.weight_decay == pytest.approx(weight_decay)
    resize = model.pre_processor.transform.transforms[0]
    assert list(resize.size) in ([size, size], [size]), preset
    if preset == "aebad_s":  # the authors' test transform: Resize 256, CenterCrop 224
        for augmentations in (datamodule.val_augmentations, datamodule.test_augmentations):
            resize_256, crop = augmentations.transforms
            assert (type(resize_256).__name__, list(resize_256.size)) == ("Resize", [256, 256])
            assert (type(crop).__name__, list(crop.size)) == ("CenterCrop", [224, 224])
    if preset.startswith("realiad"):
        assert isinstance(datamodule, Unified if preset == "realiad_unified" else RealIAD)
    # Every transform the preset names runs (a config value torchvision only rejects when called fails here).
    image = tv_tensors.Image(torch.rand(3, 300, 300))
    for augmentations in (datamodule.train_augmentations, datamodule.val_augmentations, datamodule.test_augmentations):
        if augmentations is not None:
            augmentations(image)
    assert model.pre_processor.transform(image).shape[-2:] == (size, size)


# ----------------------------------------------------------------------------------------------------------------
# Real-IAD
# ----------------------------------------------------------------------------------------------------------------


def test_realiad_layout_loads_alone_and_through_unified(data_roots: dict[str, Path]) -> None:
    root = data_roots["realiad"]
    single = RealIAD(root=root, category="bottle_cap", num_workers=0)
    assert single.resolution == "512"
    single.setup()
    assert (len(single.train_data), len(single.test_data)) == (3, 3)
    assert sorted(single.test_data.samples.label_index.tolist()) == [0, 1, 1]

    unified = Unified(dataset="anomalib_minimaxad.data.realiad.RealIAD", root=root / "realiad_512", num_workers=0)
    unified.setup()
    assert unified.test_categories == ["audiojack", "bottle_cap"]
    assert len(unified.train_data) == 6
    assert len(unified.test_data) == 6
    batch = next(iter(unified.test_dataloader()))
    assert batch.gt_mask is not None
    assert set(unified.category_of(batch.image_path)) <= {"audiojack", "bottle_cap"}


def test_realiad_missing_json_or_folder_or_unknown_layout_fails_naming_the_file(tmp_path: Path) -> None:
    root = realiad_like(tmp_path / "Real-IAD", categories=("audiojack",))
    json_file = root / "realiad_jsons" / "realiad_jsons" / "audiojack.json"
    with pytest.raises(RealIADLayoutError, match=r"realiad_jsons/realiad_jsons/mint\.json' of category 'mint'"):
        RealIAD(root=root, category="mint")
    with pytest.raises(RealIADLayoutError, match=r"image folder '.*realiad_256/audiojack'"):
        RealIAD(root=root, category="audiojack", resolution=256)
    json_file.write_text(json.dumps({"train": [{"path": "OK/x.jpg"}], "test": []}), encoding="utf-8")
    with pytest.raises(RealIADLayoutError, match=r"audiojack\.json' has an unknown layout.*'train'"):
        RealIAD(root=root, category="audiojack")
    json_file.write_text("{not json", encoding="utf-8")
    with pytest.raises(RealIADLayoutError, match=r"audiojack\.json' is not valid JSON"):
        RealIAD(root=root, category="audiojack")
    # Through the one-class preset (when the CLI builds the datamodule) and Unified (when it is set up).
    json_file.unlink()
    # (jsonargparse reports the datamodule's error inside its own ValueError, message included)
    with pytest.raises(ValueError, match=r"audiojack\.json' of category 'audiojack' does not exist"):
        build_preset("realiad_oneclass", {"realiad": root})
    with pytest.raises(RealIADLayoutError, match=r"audiojack\.json' of category 'audiojack' does not exist"):
        Unified(dataset="anomalib_minimaxad.data.realiad.RealIAD", root=root / "realiad_512", num_workers=0).setup()
