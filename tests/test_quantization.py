"""INT8 OpenVINO exports (post-training and accuracy-controlled) keep the anomaly-map smoothing in float."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from anomalib.data import MVTecAD
from anomalib.data.utils import read_image
from anomalib.deploy import CompressionType
from anomalib.engine import Engine
from lightning.pytorch import seed_everything

from anomalib_minimaxad import MiniMaxAD
from anomalib_minimaxad.demo.dataset import generate_demo_dataset
from anomalib_minimaxad.quantization import quantize_openvino, smoothing_convolutions

pytestmark = pytest.mark.slow

CATEGORY = "brick"
IMAGE_SIZE = 64


@pytest.fixture(scope="module")
def dataset_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate_demo_dataset(
        tmp_path_factory.mktemp("datasets"),
        categories=(CATEGORY,),
        image_size=IMAGE_SIZE,
        num_train=4,
        num_test_good=4,
        num_test_defect=5,
    )


@pytest.fixture(scope="module")
def model(dataset_root: Path, tmp_path_factory: pytest.TempPathFactory) -> MiniMaxAD:
    seed_everything(0)
    model = MiniMaxAD(
        pre_trained=False,
        dims=(16, 32, 64, 128),
        pre_processor=MiniMaxAD.configure_pre_processor((IMAGE_SIZE, IMAGE_SIZE)),
    )
    # One epoch gives the post-processor its thresholds and normalisation statistics (NaN before), which the
    # exported graph clamps with.
    engine = Engine(max_epochs=1, logger=False, default_root_dir=tmp_path_factory.mktemp("runs"))
    engine.fit(model=model, datamodule=datamodule(dataset_root))
    return model.eval()


def datamodule(root: Path) -> MVTecAD:
    return MVTecAD(root=root, category=CATEGORY, train_batch_size=4, eval_batch_size=16, num_workers=0, seed=0)


def load_test_images(root: Path) -> np.ndarray:
    paths = sorted((root / CATEGORY / "test").glob("*/*.png"))
    return torch.stack([read_image(path, as_tensor=True) for path in paths]).numpy()


@pytest.mark.parametrize("compression", [CompressionType.INT8_PTQ, CompressionType.INT8_ACQ], ids=["ptq", "acq"])
def test_int8_keeps_the_smoothing_in_float(
    model: MiniMaxAD, dataset_root: Path, tmp_path: Path, compression: CompressionType
) -> None:
    import openvino as ov  # noqa: PLC0415

    # ACQ accepts any drop: it still validates the float and the INT8 model with our metric function, but skips
    # NNCF's own ranking of layers to give back to float, which takes 5-8 minutes on 2 cores for this network.
    path = model.to_openvino(
        tmp_path,
        input_size=(IMAGE_SIZE, IMAGE_SIZE),
        compression_type=compression,
        datamodule=datamodule(dataset_root),
        max_drop=1.0,
    )
    assert path == tmp_path / "weights" / "openvino" / "model.xml"
    assert sorted(p.name for p in tmp_path.rglob("*") if p.is_file()) == ["model.bin", "model.xml"]
    quantized = ov.Core().read_model(str(path))
    ops = quantized.get_ops()
    assert sum(op.get_type_name() == "FakeQuantize" for op in ops) > 10, "the network was not quantized"
    smoothing = smoothing_convolutions(quantized)
    assert len(smoothing) == 1
    (conv,) = (op for op in ops if op.get_friendly_name() == smoothing[0])
    # Neither the map nor the Gaussian kernel pass through a quantizer on their way into the smoothing.
    for value in conv.input_values():
        producer = value.get_node()
        while producer.get_type_name() in {"Pad", "Convert", "Reshape"}:
            producer = producer.input_value(0).get_node()
        assert producer.get_type_name() not in {"FakeQuantize", "FakeConvert"}, producer
    scores = ov.Core().compile_model(str(path), "CPU")(load_test_images(dataset_root))["pred_score"]
    assert np.isfinite(scores).all()
    # Quantized smoothing collapsed every score to 0; in float they stay spread out.
    assert np.ptp(scores) > 1e-3, scores


def test_non_quantizing_compression_is_refused(model: MiniMaxAD, dataset_root: Path) -> None:
    with pytest.raises(ValueError, match="compression_type must be one of"):
        quantize_openvino(object(), CompressionType.FP16, datamodule(dataset_root))  # type: ignore[arg-type]


def test_quantization_without_datamodule_names_it(tmp_path: Path, model: MiniMaxAD) -> None:
    with pytest.raises(ValueError, match="needs a datamodule"):
        model.to_openvino(tmp_path, input_size=(IMAGE_SIZE, IMAGE_SIZE), compression_type=CompressionType.INT8_PTQ)
    assert not list(tmp_path.rglob("*.xml")), "nothing may be left at the final path"
