# Copyright (C) 2026 anomalib-minimaxad developers
# SPDX-License-Identifier: Apache-2.0
"""Tests of the deterministic MVTec-AD-layout demo dataset and its ``demo-data`` command."""

from __future__ import annotations

import hashlib
import inspect
import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from anomalib.data import MVTecAD
from PIL import Image

from anomalib_minimaxad import cli
from anomalib_minimaxad.demo import DEFECT_TYPES, DEMO_CATEGORIES, generate_demo_dataset
from anomalib_minimaxad.demo import dataset as demo_data

# Tiny but complete: 6 defective images cover every defect kind and an uneven spread (scratch gets two).
TINY = {"image_size": 64, "num_train": 4, "num_test_good": 2, "num_test_defect": 6}
EXPECTED_DEFECT_COUNTS = {"scratch": 2, "stain": 1, "hole": 1, "color_spot": 1, "cut_paste": 1}


def file_hash(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def tree_hashes(root: Path) -> dict[str, str]:
    """SHA-256 of every file under ``root``, keyed by its relative POSIX path."""
    return {path.relative_to(root).as_posix(): file_hash(path) for path in sorted(root.rglob("*")) if path.is_file()}


@pytest.fixture(scope="module")
def tiny_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """All three categories at the tiny settings, shared by the read-only tests."""
    return generate_demo_dataset(tmp_path_factory.mktemp("demo") / "data", seed=0, **TINY)


def test_layout_is_mvtec_ad(tiny_root: Path) -> None:
    assert sorted(path.name for path in tiny_root.iterdir()) == sorted(DEMO_CATEGORIES)
    category_dir = tiny_root / "brick"
    expected = {"train/good/000.png", "train/good/001.png", "train/good/002.png", "train/good/003.png"}
    expected |= {"test/good/000.png", "test/good/001.png", demo_data.COMPLETE_MARKER}
    for defect, count in EXPECTED_DEFECT_COUNTS.items():
        for index in range(count):
            expected |= {f"test/{defect}/{index:03d}.png", f"ground_truth/{defect}/{index:03d}_mask.png"}
    assert set(tree_hashes(category_dir)) == expected
    marker = json.loads((category_dir / demo_data.COMPLETE_MARKER).read_text())
    assert marker["category"] == "brick"
    assert marker["seed"] == 0
    assert {key: marker[key] for key in TINY} == TINY


def test_same_seed_gives_identical_bytes(tiny_root: Path, tmp_path: Path) -> None:
    again = generate_demo_dataset(tmp_path / "again", seed=0, **TINY)
    assert tree_hashes(again) == tree_hashes(tiny_root)


def test_different_seed_gives_different_images(tiny_root: Path, tmp_path: Path) -> None:
    other = tree_hashes(generate_demo_dataset(tmp_path / "other", seed=1, **TINY))
    reference = tree_hashes(tiny_root)
    assert set(other) == set(reference)  # same layout ...
    images = [name for name in reference if name.endswith(".png")]
    assert all(other[name] != reference[name] for name in images)  # ... but every image and mask differs


def test_a_category_does_not_depend_on_which_others_are_generated(tiny_root: Path, tmp_path: Path) -> None:
    alone = generate_demo_dataset(tmp_path / "alone", categories="gravel", seed=0, **TINY)
    assert sorted(path.name for path in alone.iterdir()) == ["gravel"]
    assert tree_hashes(alone / "gravel") == tree_hashes(tiny_root / "gravel")


def test_images_are_rgb_and_train_and_test_normals_differ(tiny_root: Path) -> None:
    for category in DEMO_CATEGORIES:
        images = sorted((tiny_root / category).glob("*/*/*.png"))
        images = [path for path in images if path.parts[-3] != "ground_truth"]
        assert len(images) == TINY["num_train"] + TINY["num_test_good"] + TINY["num_test_defect"]
        for path in images:
            with Image.open(path) as image:
                assert image.mode == "RGB"
                assert image.size == (TINY["image_size"], TINY["image_size"])
        train = {file_hash(path) for path in images if path.parts[-3] == "train"}
        test = {file_hash(path) for path in images if path.parts[-3] == "test"}
        assert len(train) == TINY["num_train"]  # no duplicate crops
        assert not train & test


def test_every_mask_matches_its_image(tiny_root: Path) -> None:
    for category in DEMO_CATEGORIES:
        category_dir = tiny_root / category
        masks = sorted((category_dir / "ground_truth").rglob("*.png"))
        assert len(masks) == TINY["num_test_defect"]
        for defect in DEFECT_TYPES:
            images = sorted((category_dir / "test" / defect).glob("*.png"))
            assert len(images) == EXPECTED_DEFECT_COUNTS[defect]
            for image_path in images:
                mask_path = category_dir / "ground_truth" / defect / f"{image_path.stem}_mask.png"
                with Image.open(image_path) as image, Image.open(mask_path) as mask:
                    assert mask.mode == "L"
                    assert mask.size == image.size
                    pixels = np.asarray(mask)
                assert set(np.unique(pixels).tolist()) == {0, 255}
                assert 0.004 < (pixels == 255).mean() < 0.15  # visible, but far from the whole image


@pytest.mark.parametrize("category", DEMO_CATEGORIES)
@pytest.mark.parametrize("defect", DEFECT_TYPES)
def test_defects_change_the_masked_pixels_only(category: str, defect: str) -> None:
    texture = demo_data._load_texture(category)
    for index in range(3):
        rng = np.random.default_rng([123, index])
        image, scale = demo_data._random_normal_crop(texture, rng, (307, 512), 128, allow_rot90=False)
        defective, mask = demo_data._DEFECT_PAINTERS[defect](demo_data._Canvas(image, texture, scale), rng)
        assert defective.shape == image.shape
        assert mask.shape == image.shape[:2]
        assert mask.dtype == bool
        change = np.abs(defective - image).mean(axis=2)
        assert 0.004 < mask.mean() < 0.12
        assert change[mask].mean() > 12.0  # clearly visible inside the mask
        assert change[~mask].mean() < 1.5  # and (nearly) nothing changes outside it


def test_loads_with_anomalib_mvtec_datamodule(tiny_root: Path) -> None:
    datamodule = MVTecAD(root=tiny_root, category="brick", train_batch_size=2, eval_batch_size=2, num_workers=0)
    datamodule.setup()

    train = datamodule.train_data.samples
    assert len(train) == TINY["num_train"]
    assert set(train.label_index) == {0}
    assert set(train.label) == {"good"}

    test = datamodule.test_data.samples
    assert len(test) == TINY["num_test_good"] + TINY["num_test_defect"]
    assert (test.label_index == 0).sum() == TINY["num_test_good"]
    assert (test.label_index == 1).sum() == TINY["num_test_defect"]
    assert test.attrs["task"] == "segmentation"
    abnormal = test[test.label_index == 1]
    assert abnormal.mask_path.notna().all()
    assert all(
        Path(mask).name == f"{Path(image).stem}_mask.png"
        for image, mask in zip(abnormal.image_path, abnormal.mask_path, strict=True)
    )

    item = datamodule.test_data[int(abnormal.index[0])]
    assert tuple(item.image.shape) == (3, TINY["image_size"], TINY["image_size"])
    assert tuple(item.gt_mask.shape) == (TINY["image_size"], TINY["image_size"])
    assert item.gt_mask.any()
    assert int(item.gt_label) == 1


def test_interrupted_run_leaves_nothing_behind(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "data"
    real_write_png = demo_data._write_png
    written = []

    def write_then_fail(path: Path, pixels: np.ndarray) -> None:
        if len(written) == 5:
            raise KeyboardInterrupt  # like Ctrl-C in the middle of the category
        written.append(path)
        real_write_png(path, pixels)

    monkeypatch.setattr(demo_data, "_write_png", write_then_fail)
    with pytest.raises(KeyboardInterrupt):
        generate_demo_dataset(root, categories=("grass",), **TINY)
    assert len(written) == 5
    assert all(not path.exists() for path in written)  # they were in the work folder, now removed
    assert not (root / "grass").exists()
    assert list(root.iterdir()) == []

    # A run killed outright (no clean-up) leaves its work folder; the next run must remove it.
    dead_pid = 2**22 + 7  # above Linux's pid_max, so no live process has it
    stale = root / f".grass.tmp-{dead_pid}"
    (stale / "train" / "good").mkdir(parents=True)
    (stale / "train" / "good" / "000.png").write_bytes(b"half")
    monkeypatch.setattr(demo_data, "_write_png", real_write_png)
    generate_demo_dataset(root, categories=("grass",), **TINY)
    assert sorted(path.name for path in root.iterdir()) == ["grass"]
    assert (root / "grass" / demo_data.COMPLETE_MARKER).is_file()


def test_work_folder_of_a_live_process_is_kept(tmp_path: Path) -> None:
    root = tmp_path / "data"
    other_live_pid = os.getppid()  # the parent of this test process is certainly alive
    busy = root / f".brick.tmp-{other_live_pid}"
    busy.mkdir(parents=True)
    generate_demo_dataset(root, categories=("brick",), **TINY)
    if sys.platform != "win32":
        assert busy.is_dir()
    assert (root / "brick" / demo_data.COMPLETE_MARKER).is_file()


def test_complete_category_is_reused(tmp_path: Path) -> None:
    root = generate_demo_dataset(tmp_path / "data", categories=("brick",), **TINY)
    sentinel = root / "brick" / "sentinel.txt"
    sentinel.write_text("kept")
    before = {path: path.stat().st_mtime_ns for path in (root / "brick").rglob("*")}

    assert generate_demo_dataset(root, categories=("brick",), **TINY) == root
    assert {path: path.stat().st_mtime_ns for path in (root / "brick").rglob("*")} == before

    # overwrite=True regenerates: the foreign file is gone, the images are back and identical.
    hashes = tree_hashes(root / "brick")
    generate_demo_dataset(root, categories=("brick",), overwrite=True, **TINY)
    assert not sentinel.exists()
    hashes.pop("sentinel.txt")
    assert tree_hashes(root / "brick") == hashes
    assert [path.name for path in root.iterdir()] == ["brick"]  # no work or old folders left


def test_parameter_mismatch_is_refused(tmp_path: Path) -> None:
    root = generate_demo_dataset(tmp_path / "data", categories=("grass",), seed=0, **TINY)
    hashes = tree_hashes(root)
    with pytest.raises(ValueError, match=r"seed=0 \(requested 1\).*overwrite=True"):
        generate_demo_dataset(root, categories=("grass",), seed=1, **TINY)
    with pytest.raises(ValueError, match=r"image_size=64 \(requested 96\)"):
        generate_demo_dataset(root, categories=("grass",), seed=0, **{**TINY, "image_size": 96})
    assert tree_hashes(root) == hashes  # nothing was touched

    generate_demo_dataset(root, categories=("grass",), seed=1, overwrite=True, **TINY)
    assert json.loads((root / "grass" / demo_data.COMPLETE_MARKER).read_text())["seed"] == 1


def test_folder_without_marker_is_refused(tmp_path: Path) -> None:
    (tmp_path / "brick").mkdir()
    with pytest.raises(ValueError, match=r"no valid \.complete marker.*overwrite=True"):
        generate_demo_dataset(tmp_path, categories=("brick",), **TINY)
    generate_demo_dataset(tmp_path, categories=("brick",), overwrite=True, **TINY)
    assert (tmp_path / "brick" / demo_data.COMPLETE_MARKER).is_file()


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"categories": ("brick", "wood")}, r"Unknown demo categories \['wood'\]; choose from \['brick', 'grass'"),
        ({"categories": ()}, "empty"),
        ({"image_size": 31}, "image_size"),
        ({"image_size": 64.0}, "image_size"),
        ({"num_train": 0}, "num_train"),
        ({"num_test_good": 0}, "num_test_good"),
        ({"num_test_defect": 0}, "num_test_defect"),
        ({"seed": -1}, "seed"),
    ],
)
def test_invalid_arguments_are_refused(tmp_path: Path, arguments: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        generate_demo_dataset(tmp_path / "data", **{**TINY, **arguments})
    assert not (tmp_path / "data").exists()  # validation happens before anything is written


def test_source_photographs_load_without_network(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_network(*_args: object, **_kwargs: object) -> None:
        msg = "network access attempted"
        raise AssertionError(msg)

    monkeypatch.setattr(socket.socket, "connect", no_network)
    for category in DEMO_CATEGORIES:
        texture = demo_data._load_texture.__wrapped__(category)
        assert texture.shape == (512, 512)
        assert texture.dtype == np.uint8
        assert texture.std() > 10  # a real photograph, not a blank placeholder


def test_cli_writes_the_dataset(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "cli"
    argv = ["demo-data", "--root", str(root), "--categories", "brick", "grass", "--image-size", "64"]
    argv += ["--num-train", "4", "--num-test-good", "2", "--num-test-defect", "6", "--seed", "0"]
    assert cli.main(argv) == 0
    output = capsys.readouterr().out
    assert str(root.resolve()) in output
    assert sorted(path.name for path in root.iterdir()) == ["brick", "grass"]
    reference = generate_demo_dataset(tmp_path / "api", categories=("brick", "grass"), seed=0, **TINY)
    assert tree_hashes(root) == tree_hashes(reference)

    # A mismatch is reported as an error with exit code 2, and --overwrite resolves it.
    assert cli.main([*argv[:-1], "5"]) == cli.USAGE_ERROR
    assert "overwrite" in capsys.readouterr().err
    assert cli.main([*argv[:-1], "5", "--overwrite"]) == 0


def test_cli_defaults_match_the_function() -> None:
    arguments = cli.build_parser().parse_args(["demo-data", "--root", "somewhere"])
    defaults = {
        name: parameter.default
        for name, parameter in inspect.signature(generate_demo_dataset).parameters.items()
        if parameter.default is not inspect.Parameter.empty
    }
    assert arguments.categories is None
    assert defaults.pop("categories") == DEMO_CATEGORIES
    assert {name: getattr(arguments, name) for name in defaults} == defaults


def test_cli_rejects_missing_subcommand() -> None:
    with pytest.raises(SystemExit) as raised:
        cli.main([])
    assert raised.value.code == cli.USAGE_ERROR


def test_installed_console_script(tmp_path: Path) -> None:
    script = shutil.which("anomalib-minimaxad", path=str(Path(sys.executable).parent)) or shutil.which(
        "anomalib-minimaxad"
    )
    assert script is not None, "pip install -e . installs the anomalib-minimaxad console script"
    root = tmp_path / "script"
    command = [script, "demo-data", "--root", str(root), "--categories", "gravel", "--image-size", "32"]
    command += ["--num-train", "1", "--num-test-good", "1", "--num-test-defect", "1"]
    result = subprocess.run(command, capture_output=True, text=True, check=False, timeout=120)  # noqa: S603 - our own script
    assert result.returncode == 0, result.stderr
    assert str(root.resolve()) in result.stdout
    assert sorted(path.relative_to(root).as_posix() for path in root.rglob("*.png")) == [
        "gravel/ground_truth/scratch/000_mask.png",
        "gravel/test/good/000.png",
        "gravel/test/scratch/000.png",
        "gravel/train/good/000.png",
    ]
