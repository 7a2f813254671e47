"""Bad input gives a clear error naming the problem, and nothing appears at the final path.

Sections: arguments, tensors, weight files, checkpoints, exports and interrupted writes; ``# --- data`` holds
the data-file cases. Tiny random-weight models only, so the module stays well under a minute on 2 cores.
"""

from __future__ import annotations

import math

import pytest

from anomalib_minimaxad import MiniMaxAD

DIMS = (16, 32, 64, 128)


# --- arguments


@pytest.mark.parametrize(("name", "value"), [("p_hard", math.nan), ("p_lim", 1.0)])
def test_loss_probabilities_are_named(name: str, value: float) -> None:
    with pytest.raises(ValueError, match=name):
        MiniMaxAD(pre_trained=False, dims=DIMS, **{name: value})


# --- data

# Imports of this section stay here: the section is edited independently of the ones above.
import urllib.error  # noqa: E402
from collections.abc import Callable  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
from anomalib.data import AnomalibDataModule  # noqa: E402
from anomalib.data.utils import download  # noqa: E402
from PIL import Image  # noqa: E402

from anomalib_minimaxad.data import AeBADS, MVTec, MVTecLayout, Unified  # noqa: E402
from anomalib_minimaxad.data.file_checks import DatasetLayoutError, ImageFileError  # noqa: E402
from anomalib_minimaxad.data.mvtec import MVTecNotFoundError  # noqa: E402
from anomalib_minimaxad.data.unified import UnifiedDataError  # noqa: E402

CATEGORY = "widget"
PIXELS = 32


def write_image(path: Path, size: int = PIXELS, seed: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path)
    return path


def write_mask(path: Path, size: int = PIXELS) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    mask = np.zeros((size, size), dtype=np.uint8)
    mask[4:12, 4:12] = 255
    Image.fromarray(mask).save(path)
    return path


def mvtec_category(root: Path, extension: str = ".png") -> Path:
    """``<root>/widget`` in the MVTec AD layout: 3 training images, 1 normal and 2 cracked test images."""
    folder = root / CATEGORY
    for i in range(3):
        write_image(folder / "train" / "good" / f"00{i}{extension}", seed=i)
    write_image(folder / "test" / "good" / f"000{extension}", seed=10)
    for i in range(2):
        write_image(folder / "test" / "crack" / f"00{i}{extension}", seed=20 + i)
        write_mask(folder / "ground_truth" / "crack" / f"00{i}_mask.png")
    return folder


def truncate(path: Path) -> Path:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def snapshot(root: Path) -> dict[str, bytes | None]:
    return {str(p.relative_to(root)): (p.read_bytes() if p.is_file() else None) for p in root.rglob("*")}


#: The datamodules reading one MVTec-layout category, by how a user names them.
DATAMODULES: dict[str, Callable[[Path], AnomalibDataModule]] = {
    "MVTec": lambda root: MVTec(root=root, category=CATEGORY, num_workers=0),
    "MVTecLayout": lambda root: MVTecLayout(root=root, category=CATEGORY, num_workers=0),
    "Unified": lambda root: Unified(dataset="MVTecAD", root=root, categories=[CATEGORY], num_workers=0),
}


def fails_in_setup(datamodule: AnomalibDataModule, root: Path, error: type[Exception], *parts: str) -> str:
    """Set up, expect ``error`` with every one of ``parts`` in its message, and nothing written under ``root``."""
    before = snapshot(root)
    with pytest.raises(error) as excinfo:
        datamodule.setup()
    message = str(excinfo.value)
    for part in parts:
        assert part in message, (part, message)
    assert snapshot(root) == before
    return message


def test_good_data_passes_the_checks(tmp_path: Path) -> None:
    """The control case: the data the cases below break sets up in every datamodule."""
    mvtec_category(tmp_path)
    for build in DATAMODULES.values():
        datamodule = build(tmp_path)
        datamodule.setup()
        assert len(datamodule.train_data) == 3


@pytest.mark.parametrize("name", ["MVTec", "Unified"])
def test_empty_training_folder_names_folder_and_category(tmp_path: Path, name: str) -> None:
    folder = mvtec_category(tmp_path)
    for image in (folder / "train" / "good").iterdir():
        image.unlink()
    error = UnifiedDataError if name == "Unified" else DatasetLayoutError
    message = fails_in_setup(DATAMODULES[name](tmp_path), tmp_path, error, repr(CATEGORY), "no training images")
    assert str(folder / "train" / "good") in message
    assert "num_samples" not in message


def test_empty_training_folder_of_mvtec_layout_names_it(tmp_path: Path) -> None:
    folder = mvtec_category(tmp_path)
    for image in (folder / "train" / "good").iterdir():
        image.unlink()
    with pytest.raises(DatasetLayoutError, match=f"No images .* in the training folder '{folder / 'train' / 'good'}'"):
        MVTecLayout(root=tmp_path, category=CATEGORY).prepare_data()


@pytest.mark.parametrize("name", list(DATAMODULES))
def test_truncated_png_is_named(tmp_path: Path, name: str) -> None:
    broken = truncate(mvtec_category(tmp_path) / "train" / "good" / "001.png")
    fails_in_setup(DATAMODULES[name](tmp_path), tmp_path, ImageFileError, f"'{broken}' is truncated", CATEGORY)


def test_truncated_jpeg_test_image_is_named(tmp_path: Path) -> None:
    folder = mvtec_category(tmp_path, extension=".jpg")
    broken = truncate(folder / "test" / "crack" / "001.jpg")
    fails_in_setup(DATAMODULES["MVTecLayout"](tmp_path), tmp_path, ImageFileError, f"'{broken}' is truncated")


def test_file_that_is_no_image_is_named(tmp_path: Path) -> None:
    impostor = mvtec_category(tmp_path) / "test" / "good" / "000.png"
    impostor.write_text("not an image")
    fails_in_setup(DATAMODULES["MVTec"](tmp_path), tmp_path, ImageFileError, f"'{impostor}'", "not an image")


@pytest.mark.parametrize("name", list(DATAMODULES))
def test_mask_of_another_size_names_both_files_and_sizes(tmp_path: Path, name: str) -> None:
    folder = mvtec_category(tmp_path)
    mask = write_mask(folder / "ground_truth" / "crack" / "001_mask.png", size=PIXELS * 2)
    image = folder / "test" / "crack" / "001.png"
    fails_in_setup(
        DATAMODULES[name](tmp_path), tmp_path, ImageFileError, f"mask '{mask}' is 64x64", f"image '{image}' is 32x32"
    )


@pytest.mark.parametrize(("name", "extension"), [("MVTec", ".png"), ("Unified", ".png"), ("MVTecLayout", ".tif")])
def test_16_bit_image_is_refused_not_clipped(tmp_path: Path, name: str, extension: str) -> None:
    folder = mvtec_category(tmp_path, extension=extension)
    deep = folder / "train" / "good" / f"000{extension}"
    Image.fromarray(np.full((PIXELS, PIXELS), 40000, dtype=np.uint16)).save(deep)  # > 255: would read as white
    fails_in_setup(DATAMODULES[name](tmp_path), tmp_path, ImageFileError, f"'{deep}'", "more than 8 bits", "I;16")


def test_16_bit_mask_is_read_correctly(tmp_path: Path) -> None:
    """Masks are only compared with 0, so a 16-bit mask is read right and accepted."""
    folder = mvtec_category(tmp_path)
    mask = np.zeros((PIXELS, PIXELS), dtype=np.uint16)
    mask[4:12, 4:12] = 65535
    Image.fromarray(mask).save(folder / "ground_truth" / "crack" / "000_mask.png")
    datamodule = DATAMODULES["MVTec"](tmp_path)
    datamodule.setup()
    item = next(i for i in datamodule.test_data if i.image_path.endswith("crack/000.png"))
    assert int(item.gt_mask.sum()) == 64


def test_truncated_mask_of_aebad_s_is_named(tmp_path: Path) -> None:
    subset = tmp_path / "AeBAD_S"
    write_image(subset / "train" / "good" / "view" / "0.png")
    write_image(subset / "test" / "good" / "same" / "0.png")
    write_image(subset / "test" / "groove" / "same" / "0.png")
    mask = truncate(write_mask(subset / "ground_truth" / "groove" / "same" / "0.png"))
    datamodule = AeBADS(root=subset, domains="same", num_workers=0)
    fails_in_setup(datamodule, tmp_path, ImageFileError, f"'{mask}' is truncated", "AeBAD-S (test set")


def _offline(url: str, filename: Path, reporthook: object = None) -> None:
    """``urlretrieve`` failing like a dropped connection, after writing part of the archive."""
    del url, reporthook
    Path(filename).write_bytes(b"partial")
    msg = "[Errno -3] Temporary failure in name resolution"
    raise urllib.error.URLError(msg)


def test_unified_mvtec_ad_without_root_says_which_folder_to_fill(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(download, "urlretrieve", _offline)
    root = tmp_path / "datasets" / "MVTecAD"
    datamodule = Unified(dataset="MVTecAD", root=root, categories=["bottle"], num_workers=0)
    with pytest.raises(MVTecNotFoundError) as excinfo:
        datamodule.prepare_data()
    message = str(excinfo.value)
    assert f"'{root / 'bottle'}'" in message
    assert "train/good" in message
    assert "URLError" in message
    assert list(tmp_path.iterdir()) == []  # no empty datasets/MVTecAD left behind


def test_unified_failed_download_of_another_dataset_is_named_and_cleaned_up(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(download, "urlretrieve", _offline)
    root = tmp_path / "visa"
    datamodule = Unified(dataset="Visa", root=root, categories=["candle"], num_workers=0)
    with pytest.raises(UnifiedDataError) as excinfo:
        datamodule.prepare_data()
    message = str(excinfo.value)
    assert "category 'candle'" in message
    assert "could not download it (URLError" in message
    assert str(root) in message
    assert list(tmp_path.iterdir()) == []


def test_bad_file_stops_fit_before_any_training_or_checkpoint(tmp_path: Path) -> None:
    from anomalib.engine import Engine  # noqa: PLC0415 - slow import, for this test only

    data = tmp_path / "data"
    broken = truncate(mvtec_category(data) / "train" / "good" / "002.png")
    run = tmp_path / "run"
    engine = Engine(
        default_root_dir=run,
        max_epochs=1,
        accelerator="cpu",
        devices=1,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    model = MiniMaxAD(pre_trained=False, dims=DIMS, visualizer=False)
    with pytest.raises(ImageFileError, match=f"'{broken}' is truncated"):
        engine.fit(model=model, datamodule=DATAMODULES["MVTec"](data))
    assert model.global_step == 0
    assert not list(run.rglob("*.ckpt"))
