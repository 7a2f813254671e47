"""Clients around anomalib: OpenVINO Model API on our OpenVINO export, and anomalib's TorchInferencer.

The OpenVINO export carries Model API's ``model_info`` (``anomalib_minimaxad.model_info``), so
``model_api.models.Model.create_model(xml)`` builds its ``AnomalyDetection`` wrapper for a segmentation task,
and its scores, maps and masks are those of anomalib's ``OpenVINOInferencer`` on the same RGB images.
Model API 0.4.7 names the labels and adds boxes only with ``scripts/upstream/model_api_anomaly_labels.patch``
(tested here on a patched copy of the installed package).
"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import model_api as model_api_package
import numpy as np
import openvino
import pytest
from anomalib.data import MVTecAD
from anomalib.deploy import ExportType, OpenVINOInferencer, TorchInferencer
from anomalib.engine import Engine
from lightning.pytorch import seed_everything
from model_api.models import AnomalyDetection, Model
from PIL import Image

from anomalib_minimaxad import MiniMaxAD
from anomalib_minimaxad.demo.dataset import generate_demo_dataset
from anomalib_minimaxad.model_info import MODEL_API_LABELS, model_info, write_model_info

pytestmark = pytest.mark.slow

MODEL_API_PATCH = Path(__file__).parents[1] / "scripts" / "upstream" / "model_api_anomaly_labels.patch"
CATEGORY = "gravel"
IMAGE_SIZE = 64
# Both clients compile the same IR with the same default CPU configuration: the same kernels, the same numbers.
SCORE_TOLERANCE = 1e-5


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    """A tiny MiniMaxAD fitted for an epoch, with its OpenVINO and torch exports."""
    work = tmp_path_factory.mktemp("model_api")
    data_root = generate_demo_dataset(
        work / "data",
        categories=(CATEGORY,),
        image_size=IMAGE_SIZE,
        num_train=8,
        num_test_good=2,
        num_test_defect=3,
    )
    datamodule = MVTecAD(root=data_root, category=CATEGORY, train_batch_size=4, eval_batch_size=8, num_workers=0)
    seed_everything(0)
    model = MiniMaxAD(
        pre_trained=False,
        dims=(16, 32, 64, 128),
        pre_processor=MiniMaxAD.configure_pre_processor((IMAGE_SIZE, IMAGE_SIZE)),
    )
    engine = Engine(logger=False, devices=1, default_root_dir=work / "project", max_epochs=1)
    engine.fit(model=model, datamodule=datamodule)
    return SimpleNamespace(
        model=model,
        xml=engine.export(model=model, export_type=ExportType.OPENVINO, export_root=work / "export"),
        pt=engine.export(model=model, export_type=ExportType.TORCH, export_root=work / "export"),
        images=sorted((data_root / CATEGORY / "test").rglob("*.png")),
    )


def test_openvino_export_carries_model_api_model_info(exported: SimpleNamespace) -> None:
    ir = openvino.Core().read_model(exported.xml)
    read = {name: ir.get_rt_info(["model_info", name]).astype(str) for name in ("model_type", "task", "labels")}
    assert read == {"model_type": "AnomalyDetection", "task": "segmentation", "labels": "Normal Anomaly"}
    post_processor = exported.model.post_processor
    assert float(ir.get_rt_info(["model_info", "raw_image_threshold"]).astype(str)) == pytest.approx(
        float(post_processor.image_threshold),
    )
    assert float(ir.get_rt_info(["model_info", "pixel_max"]).astype(str)) == pytest.approx(
        float(post_processor.pixel_max),
    )
    # What the outputs are in: anomalib's post-processor puts the thresholds at 0.5 with a unit scale.
    assert ir.get_rt_info(["model_info", "image_threshold"]).astype(str) == "0.5"


def test_model_api_predicts_as_openvino_inferencer(exported: SimpleNamespace) -> None:
    model_api = Model.create_model(str(exported.xml), device="CPU")
    assert isinstance(model_api, AnomalyDetection)
    assert model_api.params.task == "segmentation"
    assert list(model_api.params.labels) == list(MODEL_API_LABELS)
    inferencer = OpenVINOInferencer(path=exported.xml, device="CPU")
    labels_seen = set()
    for path in exported.images:
        rgb = np.asarray(Image.open(path).convert("RGB"))  # Model API expects RGB arrays
        result = model_api(rgb)
        reference = inferencer.predict(rgb)
        assert result.pred_score == pytest.approx(float(reference.pred_score.item()), abs=SCORE_TOLERANCE)
        # Model API returns the map as uint8 (x 255, rounded) and the mask, both at the image's size.
        reference_map = np.asarray(reference.anomaly_map).squeeze()
        assert result.anomaly_map.shape == reference_map.shape == rgb.shape[:2]
        assert np.abs(result.anomaly_map.astype(np.int16) - np.round(reference_map * 255)).max() <= 1
        np.testing.assert_array_equal(result.pred_mask, np.asarray(reference.pred_mask).squeeze().astype(np.uint8))
        # Model API 0.4.7 passes an export's own pred_label output through as str(bool), not as a label name.
        assert result.pred_label == str(bool(reference.pred_label.item()))
        labels_seen.add(result.pred_label)
    assert labels_seen  # every image was predicted


# Runs Model API from the patched copy (PYTHONPATH, ahead of site-packages): label, score, boxes, map and mask.
PATCHED_MODEL_API_SCRIPT = """
import json, os, sys
from pathlib import Path
import numpy as np
import model_api
from model_api.models import Model
from PIL import Image
xml, out, *images = sys.argv[1:]
assert Path(model_api.__file__).is_relative_to(os.environ["PYTHONPATH"]), model_api.__file__
model = Model.create_model(xml, device="CPU")
rows = []
for number, path in enumerate(images):
    result = model(np.asarray(Image.open(path).convert("RGB")))
    np.save(Path(out) / f"{number}_map.npy", result.anomaly_map)
    np.save(Path(out) / f"{number}_mask.npy", result.pred_mask)
    boxes = np.asarray(result.pred_boxes).tolist()
    rows.append({"label": result.pred_label, "score": result.pred_score, "boxes": boxes})
(Path(out) / "results.json").write_text(json.dumps(rows))
"""


def patched_model_api(site: Path) -> Path:
    """A copy of the installed ``model_api`` package with our Model API patch applied, under ``site``."""
    shutil.copytree(Path(model_api_package.__file__).parent, site / "model_api")
    git = shutil.which("git")
    assert git is not None, "applying the Model API patch needs git"
    # The patch is against Model API's repository (model_api/src/model_api/...): -p3 maps it onto the package.
    subprocess.run(  # noqa: S603 - git on our own patch file
        [git, "apply", "-p3", "--include=model_api/models/anomaly.py", str(MODEL_API_PATCH)],
        cwd=site,
        check=True,
    )
    return site


def test_patched_model_api_names_labels_and_gives_boxes(exported: SimpleNamespace, tmp_path: Path) -> None:
    site = patched_model_api(tmp_path / "site")
    out = tmp_path / "out"
    out.mkdir()
    images = [str(path) for path in exported.images]
    subprocess.run(  # noqa: S603 - our interpreter, our script, fixed arguments
        [sys.executable, "-c", PATCHED_MODEL_API_SCRIPT, str(exported.xml), str(out), *images],
        env={**os.environ, "PYTHONPATH": str(site)},
        check=True,
    )
    rows = json.loads((out / "results.json").read_text(encoding="utf-8"))
    inferencer = OpenVINOInferencer(path=exported.xml, device="CPU")
    boxes_seen = 0
    for number, (path, row) in enumerate(zip(images, rows, strict=True)):
        reference = inferencer.predict(np.asarray(Image.open(path).convert("RGB")))
        assert row["label"] == MODEL_API_LABELS[int(reference.pred_label.item())]
        assert row["score"] == pytest.approx(float(reference.pred_score.item()), abs=SCORE_TOLERANCE)
        reference_map = np.asarray(reference.anomaly_map).squeeze()
        assert np.abs(np.load(out / f"{number}_map.npy").astype(np.int16) - np.round(reference_map * 255)).max() <= 1
        mask = np.load(out / f"{number}_mask.npy")
        np.testing.assert_array_equal(mask, np.asarray(reference.pred_mask).squeeze().astype(np.uint8))
        # Boxes [x1, y1, x2, y2) bound the mask: every masked pixel is in one, each box's edges touch the mask.
        covered = np.zeros_like(mask, dtype=bool)
        for x1, y1, x2, y2 in row["boxes"]:
            covered[y1:y2, x1:x2] = True
            inside = mask[y1:y2, x1:x2]
            assert all(edge.any() for edge in (inside[0], inside[-1], inside[:, 0], inside[:, -1]))
        assert not (mask.astype(bool) & ~covered).any()
        boxes_seen += len(row["boxes"])
    assert boxes_seen  # some image has a predicted defect region


def test_torch_export_outputs_need_no_grad(exported: SimpleNamespace, monkeypatch: pytest.MonkeyPatch) -> None:
    # Every anomalib .pt export is a pickle: anomalib loads one only when the user trusts it.
    monkeypatch.setenv("TRUST_REMOTE_CODE", "1")
    prediction = TorchInferencer(path=exported.pt, device="cpu").predict(exported.images[0])
    assert not prediction.pred_score.requires_grad
    assert not prediction.anomaly_map.requires_grad
    assert np.asarray(prediction.pred_score).shape == (1,)
    # The model that was exported still trains.
    assert any(parameter.requires_grad for parameter in exported.model.parameters())


def test_model_info_leaves_out_what_an_unvalidated_post_processor_lacks() -> None:
    info = model_info(float("nan"), 0.5, (float("nan"), float("nan")), (0.0, 1.0), task="segmentation")
    assert {"raw_image_threshold", "image_min", "image_max"}.isdisjoint(info)
    assert (info["raw_pixel_threshold"], info["pixel_max"], info["model_type"]) == ("0.5", "1.0", "AnomalyDetection")
    with pytest.raises(ValueError, match="task"):
        model_info(0.5, 0.5, (0.0, 1.0), (0.0, 1.0), task="anomaly")


def test_write_model_info_refuses_a_file_that_is_no_ir(tmp_path: Path) -> None:
    not_ir = tmp_path / "model.xml"
    not_ir.write_text("<svg/>", encoding="utf-8")
    with pytest.raises(ValueError, match="not an OpenVINO IR"):
        write_model_info(not_ir, {"model_type": "AnomalyDetection"})
