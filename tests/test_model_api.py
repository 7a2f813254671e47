"""Clients around anomalib: OpenVINO Model API on our OpenVINO export, and anomalib's TorchInferencer.

The OpenVINO export carries Model API's ``model_info`` (``anomalib_minimaxad.model_info``), so
``model_api.models.Model.create_model(xml)`` builds its ``AnomalyDetection`` wrapper for a segmentation task,
and its scores, maps and masks are those of anomalib's ``OpenVINOInferencer`` on the same RGB images.
"""

from pathlib import Path
from types import SimpleNamespace

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
