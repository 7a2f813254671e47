"""anomalib's own inference tools, run unchanged on our checkpoint and exports, predict what the Engine predicts.

The three scripts of anomalib's ``tools/inference`` are vendored in ``tests/anomalib_tools`` (see its README).
Each runs in a subprocess through ``tests/anomalib_tools/capture.py``, which records the predictions the tool
computes (the tools themselves only save pictures); the pictures they save are checked too. The reference is
``Engine.predict`` on the same images from the same checkpoint.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import openvino
import pytest
import torch
from anomalib.data import MVTecAD, PredictDataset
from anomalib.deploy import ExportType, TorchInferencer
from anomalib.engine import Engine
from lightning.pytorch import seed_everything
from torch.utils.data import DataLoader

from anomalib_minimaxad import MiniMaxAD
from anomalib_minimaxad.demo.dataset import generate_demo_dataset

pytestmark = pytest.mark.slow

TOOLS_DIR = Path(__file__).parent / "anomalib_tools"
CAPTURE = TOOLS_DIR / "capture.py"
# Git blob ids of anomalib's tools/inference files at its tag lib/v2.6.0 (the same blobs from lib/v2.3.3 to
# main at b7233686, 2.6.1.dev0): `git ls-tree lib/v2.6.0 tools/inference/` in anomalib's repository.
ANOMALIB_BLOBS = {
    "lightning_inference.py": "cd5a32933e14282cfe0c142b643f61d72d0e9bd1",
    "torch_inference.py": "e14fb2af5acb894b8dbca8673d9afb323e840a1f",
    "openvino_inference.py": "5bedccf1c9d7449dc3063057908b460af8b5169e",
}
DIMS = (16, 32, 64, 128)
CATEGORY = "gravel"
IMAGE_SIZE = 64
NUM_TEST_IMAGES = 5
THRESHOLD = 0.5  # anomalib's post-processor normalises scores so that the threshold is 0.5
TOOL_TIMEOUT_S = 600
# Torch and Lightning run the same fp32 graph as the Engine.
TORCH_TOLERANCE = 1e-5
# openvino_inference.py cannot pass OpenVINO a config: on CPUs whose default inference precision is bf16 (AMX,
# or AVX512-BF16 as on an AMD EPYC), it runs in bf16, measured up to 0.019 off on scores and 0.009 on maps (tiny
# model, 64 px). In f32 it matches torch within PARITY_TOLERANCE (tests/test_integration.py).
OPENVINO_TOLERANCE = {"f32": 1e-4, "bf16": 0.05}


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    """A tiny MiniMaxAD fitted for an epoch, its torch and OpenVINO exports, and the Engine's predictions."""
    work = tmp_path_factory.mktemp("anomalib_tools")
    data_root = generate_demo_dataset(
        work / "data", categories=(CATEGORY,), image_size=IMAGE_SIZE, num_train=8, num_test_good=2, num_test_defect=3
    )
    datamodule = MVTecAD(
        root=data_root, category=CATEGORY, train_batch_size=4, eval_batch_size=8, num_workers=0, seed=0
    )
    seed_everything(0)
    model = MiniMaxAD(
        pre_trained=False, dims=DIMS, pre_processor=MiniMaxAD.configure_pre_processor((IMAGE_SIZE, IMAGE_SIZE))
    )
    engine = Engine(logger=False, devices=1, default_root_dir=work / "project", max_epochs=1)
    engine.fit(model=model, datamodule=datamodule)
    ckpt = Path(engine.trainer.checkpoint_callback.best_model_path)
    exports = {
        export_type: engine.export(model=model, export_type=export_type, export_root=work / "export")
        for export_type in (ExportType.TORCH, ExportType.OPENVINO)
    }

    images = data_root / CATEGORY / "test"
    dataset = PredictDataset(images)
    batches = Engine(logger=False, devices=1, default_root_dir=work / "reference").predict(
        model=MiniMaxAD(dims=DIMS),
        dataloaders=DataLoader(dataset, collate_fn=dataset.collate_fn),
        ckpt_path=ckpt,
    )
    reference = {
        str(path): {
            "pred_score": batch.pred_score[i],
            "pred_label": batch.pred_label[i],
            "anomaly_map": batch.anomaly_map[i],
        }
        for batch in batches
        for i, path in enumerate(batch.image_path)
    }
    assert len(reference) == NUM_TEST_IMAGES
    return SimpleNamespace(
        work=work,
        data_root=data_root,
        images=images,
        ckpt=ckpt,
        torch_export=exports[ExportType.TORCH],
        openvino_export=exports[ExportType.OPENVINO],
        reference=reference,
    )


def run_tool(trained: SimpleNamespace, tool: str, *tool_args: str, **env: str) -> list[dict]:
    """Run ``tool`` through the capture driver; return the predictions it made."""
    recorded = trained.work / f"{tool}.pt"
    completed = subprocess.run(  # noqa: S603 - our interpreter, our driver, fixed arguments
        [sys.executable, str(CAPTURE), tool, str(recorded), "--", *tool_args],
        env={**os.environ, "HF_HUB_OFFLINE": "1", **env},
        capture_output=True,
        text=True,
        timeout=TOOL_TIMEOUT_S,
        check=False,
    )
    assert completed.returncode == 0, f"{tool} failed:\n{completed.stderr[-4000:]}"
    return torch.load(recorded, weights_only=False)


def assert_same_predictions(trained: SimpleNamespace, records: list[dict], tolerance: float) -> None:
    """Same images, scores and maps within ``tolerance``, same labels wherever the score is clear of the threshold."""
    by_path = {str(Path(record["image_path"]).resolve()): record for record in records}
    assert sorted(by_path) == sorted(str(Path(path).resolve()) for path in trained.reference)
    for path, expected in trained.reference.items():
        actual = by_path[str(Path(path).resolve())]
        score, label, anomaly_map = (
            torch.as_tensor(actual[key]) for key in ("pred_score", "pred_label", "anomaly_map")
        )
        torch.testing.assert_close(
            score.float().reshape(()), expected["pred_score"].reshape(()), atol=tolerance, rtol=0
        )
        assert anomaly_map.squeeze().shape == expected["anomaly_map"].squeeze().shape == (IMAGE_SIZE, IMAGE_SIZE)
        torch.testing.assert_close(
            anomaly_map.float().squeeze(), expected["anomaly_map"].squeeze(), atol=tolerance, rtol=0
        )
        if abs(float(expected["pred_score"]) - THRESHOLD) > tolerance:
            assert bool(label) == bool(expected["pred_label"]), path
    # The maps are not flat: the comparison says something.
    assert max(float(record["anomaly_map"].max()) for record in records) > 0.1


def saved_pictures(folder: Path) -> list[str]:
    return sorted(path.relative_to(folder).as_posix() for path in folder.rglob("*.png"))


def relative_image_paths(trained: SimpleNamespace) -> list[str]:
    """``good/000.png``, ``hole/000.png``, ...: the test images relative to the test folder."""
    return sorted(Path(path).relative_to(trained.images).as_posix() for path in trained.reference)


def git_blob_id(path: Path) -> str:
    """The id git gives the file's contents (``git hash-object``)."""
    data = path.read_bytes()
    return hashlib.sha1(b"blob %d\0" % len(data) + data, usedforsecurity=False).hexdigest()


def test_vendored_tools_are_anomalibs_unchanged_with_their_licence_header() -> None:
    assert sorted(path.name for path in TOOLS_DIR.glob("*_inference.py")) == sorted(ANOMALIB_BLOBS)
    for name, blob in ANOMALIB_BLOBS.items():
        path = TOOLS_DIR / name
        assert git_blob_id(path) == blob, f"{path} is no longer anomalib's file (blob {blob})"
        assert path.read_text().splitlines()[1] == "# SPDX-License-Identifier: Apache-2.0", path


def test_lightning_inference_predicts_as_the_engine(trained: SimpleNamespace) -> None:
    output = trained.work / "lightning_output"
    records = run_tool(
        trained,
        "lightning_inference",
        "--model",
        "anomalib_minimaxad.MiniMaxAD",
        "--model.dims",
        str(list(DIMS)),
        "--ckpt_path",
        str(trained.ckpt),
        "--data.path",
        str(trained.images),
        "--output",
        str(output),
    )
    assert_same_predictions(trained, records, TORCH_TOLERANCE)
    # Its visualiser keeps each image's subfolder.
    assert saved_pictures(output / "MiniMaxAD" / "latest" / "images") == relative_image_paths(trained)


def test_torch_inference_predicts_as_the_engine(trained: SimpleNamespace, monkeypatch: pytest.MonkeyPatch) -> None:
    output = trained.work / "torch_output"
    tool_args = ("--weights", str(trained.torch_export), "--input", str(trained.images))
    tool_args += ("--output", str(output), "--device", "cpu")
    # Every anomalib .pt export is a pickle: anomalib refuses to load one unless the user trusts it.
    monkeypatch.delenv("TRUST_REMOTE_CODE", raising=False)
    with pytest.raises(ValueError, match="TRUST_REMOTE_CODE=1"):
        TorchInferencer(path=trained.torch_export, device="cpu")

    records = run_tool(trained, "torch_inference", *tool_args, TRUST_REMOTE_CODE="1")
    assert_same_predictions(trained, records, TORCH_TOLERANCE)
    # anomalib names each picture by the image's file name alone (it resolves --input to an absolute path) and
    # numbers repeated names: good/000.png and hole/000.png become 000.png and 000_1.png, in one folder.
    pictures = saved_pictures(output)
    assert len(pictures) == NUM_TEST_IMAGES, pictures
    assert all("/" not in picture for picture in pictures), pictures


def test_openvino_inference_predicts_as_the_engine(trained: SimpleNamespace) -> None:
    output = trained.work / "openvino_output"
    records = run_tool(
        trained,
        "openvino_inference",
        "--weights",
        str(trained.openvino_export),
        "--input",
        str(trained.images),
        "--output",
        str(output),
    )
    precision = openvino.Core().get_property("CPU", "INFERENCE_PRECISION_HINT")
    tolerance = OPENVINO_TOLERANCE["bf16" if precision == openvino.Type.bf16 else "f32"]
    assert_same_predictions(trained, records, tolerance)
    # Named by the image's file name alone, as torch_inference.py's, but saved without numbering repeated names:
    # good/000.png, hole/000.png, ... overwrite one 000.png (README: run it once per subfolder).
    distinct_names = sorted({Path(path).name for path in relative_image_paths(trained)})
    assert len(distinct_names) < NUM_TEST_IMAGES  # the data has repeated names: the check says something
    assert saved_pictures(output) == distinct_names
