"""End-to-end tests of MiniMaxAD in anomalib: Engine, command line, exports, bad input.

Modelled on anomalib's own integration test (tests/integration/model/test_models.py): one model is trained
for an epoch with ``Engine(logger=False, max_epochs=1, devices=1)`` and its checkpoint is then tested,
trained further, validated, used for prediction and exported. Everything runs offline on a tiny generated
dataset with random weights and small widths. The in-process tests resize to 64x64 (the image size) to stay
within a few CPU minutes; the command-line chain train -> test -> predict -> export uses the model's default
256x256 pre-processing (the other `anomalib train` spellings and the config files run at 64x64).
"""

from __future__ import annotations

import inspect
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from anomalib.data import MVTecAD
from anomalib.data.utils import read_image
from anomalib.deploy import CompressionType, ExportType
from anomalib.engine import Engine
from lightning.pytorch import Callback, seed_everything
from PIL import Image
from torchmetrics.classification import BinaryAUROC

from anomalib_minimaxad import MiniMaxAD
from anomalib_minimaxad.demo.dataset import generate_demo_dataset
from anomalib_minimaxad.loss import ADCLoss, GlobalCosineLoss
from anomalib_minimaxad.torch_model import MiniMaxADModel

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
DIMS = (16, 32, 64, 128)
CLI_DIMS = "[16,32,64,128]"
# For the runs that only check a spelling or a config file: 64x64 instead of the default 256x256 pre-processing.
CLI_SMALL_PRE_PROCESSOR = (
    '{"class_path": "anomalib.pre_processing.PreProcessor", "init_args": {"transform": '
    '{"class_path": "torchvision.transforms.v2.Resize", "init_args": {"size": [64, 64]}}}}'
)
CATEGORY = "brick"
IMAGE_SIZE = 64
NUM_TRAIN, BATCH_SIZE = 8, 4
TEST_METRICS = ("image_AUROC", "image_F1Score", "pixel_AUROC", "pixel_F1Score", "pixel_AUPRO", "pixel_AUPR")
VALIDATION_METRICS = ("image_AUROC", "pixel_AUROC")
OUTPUTS = ("pred_score", "pred_label", "anomaly_map", "pred_mask")
PARITY_TOLERANCE = 1e-4
THRESHOLD = 0.5  # anomalib's post-processor normalises scores and maps so that the threshold is 0.5

# Worst differences measured by the export tests, printed at the end of the module (pytest -s shows them).
MEASURED: dict[str, float] = {}


# ----------------------------------------------------------------------------------------------------------------
# Shared data, offline guard and the trained checkpoint
# ----------------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module", autouse=True)
def offline(tmp_path_factory: pytest.TempPathFactory):
    """No test may fetch ImageNet weights: hub offline, an empty cache, and a tripwire on the loader."""

    def refuse_download(self: MiniMaxADModel, pre_trained: object = True) -> str:
        msg = f"ImageNet weights requested ({pre_trained!r}): checkpoint restores must not need them"
        raise AssertionError(msg)

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HF_HUB_OFFLINE", "1")
        patch.setenv("HF_HOME", str(tmp_path_factory.mktemp("empty_hf_home")))
        patch.setattr(MiniMaxADModel, "load_pretrained_encoder", refuse_download)
        yield
    if MEASURED:
        print("\nMeasured differences to the torch model:")  # noqa: T201
        for name, value in MEASURED.items():
            print(f"  {name}: {value:.3g}")  # noqa: T201


@pytest.fixture(scope="module")
def dataset_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate_demo_dataset(
        tmp_path_factory.mktemp("datasets"),
        categories=(CATEGORY,),
        image_size=IMAGE_SIZE,
        num_train=NUM_TRAIN,
        num_test_good=4,
        num_test_defect=5,
    )


def make_datamodule(root: Path) -> MVTecAD:
    return MVTecAD(root=root, category=CATEGORY, train_batch_size=BATCH_SIZE, eval_batch_size=16, num_workers=0, seed=0)


def make_engine(root_dir: Path, **kwargs: object) -> Engine:
    kwargs.setdefault("max_epochs", 1)
    return Engine(logger=False, devices=1, default_root_dir=root_dir, **kwargs)


def new_model(**kwargs: object) -> MiniMaxAD:
    """A tiny model trained from scratch, resizing to the dataset's 64x64."""
    return MiniMaxAD(
        pre_trained=False,
        dims=DIMS,
        pre_processor=MiniMaxAD.configure_pre_processor((IMAGE_SIZE, IMAGE_SIZE)),
        **kwargs,
    )


def model_for_checkpoint() -> MiniMaxAD:
    """What a user builds to restore the checkpoint: defaults (``pre_trained=True``, 256x256), right widths."""
    return MiniMaxAD(dims=DIMS)


class EncoderModeProbe(Callback):
    """Records, at every training step, whether the frozen encoder and the trainable decoder are in train mode."""

    def __init__(self) -> None:
        self.modes: list[tuple[bool, bool]] = []

    def on_train_batch_start(self, trainer: object, pl_module: MiniMaxAD, batch: object, batch_idx: int) -> None:
        del trainer, batch, batch_idx
        self.modes.append((pl_module.model.encoder.training, pl_module.model.decoder.training))


@pytest.fixture(scope="module")
def trained(dataset_root: Path, tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    """Fit once with anomalib's Engine; every Engine/export test starts from this checkpoint."""
    project = tmp_path_factory.mktemp("project")
    seed_everything(0)  # reproducible random weights, hence reproducible measurements
    model = new_model()
    encoder_before = {key: value.clone() for key, value in model.model.encoder.state_dict().items()}
    probe = EncoderModeProbe()
    engine = make_engine(project, callbacks=[probe])
    engine.fit(model=model, datamodule=make_datamodule(dataset_root))
    ckpt = project / "MiniMaxAD" / "MVTecAD" / CATEGORY / "v0" / "weights" / "lightning" / "model.ckpt"
    assert ckpt.is_file(), sorted(str(path) for path in project.rglob("*.ckpt"))
    return SimpleNamespace(project=project, ckpt=ckpt, model=model, encoder_before=encoder_before, probe=probe)


# ----------------------------------------------------------------------------------------------------------------
# (a) The Engine path, as anomalib's integration test runs every model
# ----------------------------------------------------------------------------------------------------------------


def test_fit_keeps_the_frozen_encoder_in_eval_mode(trained: SimpleNamespace) -> None:
    # Lightning calls model.train() before training; the encoder must stay in eval mode (frozen BN statistics).
    assert trained.probe.modes == [(False, True)] * (NUM_TRAIN // BATCH_SIZE)
    after = trained.model.model.encoder.state_dict()
    assert after.keys() == trained.encoder_before.keys()
    changed = [key for key, value in trained.encoder_before.items() if not torch.equal(value, after[key])]
    assert not changed, f"the frozen encoder changed during fit: {changed[:5]}"


def test_checkpoint_loads_with_weights_only_and_offline(trained: SimpleNamespace) -> None:
    # anomalib's load_from_checkpoint defaults to weights_only=True; the checkpoint holds only allowlisted types.
    assert inspect.signature(MiniMaxAD.load_from_checkpoint).parameters["weights_only"].default is True
    model = MiniMaxAD.load_from_checkpoint(trained.ckpt)
    assert model.model.dims == DIMS
    for key, value in trained.model.state_dict().items():
        torch.testing.assert_close(model.state_dict()[key], value, rtol=0, atol=0, msg=key)
    assert model.pre_processor.transform is not None
    assert model.input_size == (IMAGE_SIZE, IMAGE_SIZE)  # the pre-processing comes back from the checkpoint


def test_test_from_checkpoint(trained: SimpleNamespace, dataset_root: Path) -> None:
    results = make_engine(trained.project).test(
        model=model_for_checkpoint(), datamodule=make_datamodule(dataset_root), ckpt_path=trained.ckpt
    )
    assert len(results) == 1
    metrics = results[0]
    assert set(TEST_METRICS) <= metrics.keys(), sorted(metrics)
    for name in TEST_METRICS:
        assert 0.0 <= metrics[name] <= 1.0, (name, metrics[name])


def test_train_from_checkpoint(trained: SimpleNamespace, dataset_root: Path) -> None:
    # One more epoch from the checkpoint (optimizer and scheduler state restored), then Engine.train's test.
    probe = EncoderModeProbe()
    engine = make_engine(trained.project, max_epochs=2, callbacks=[probe])
    engine.train(model=model_for_checkpoint(), datamodule=make_datamodule(dataset_root), ckpt_path=trained.ckpt)
    assert engine.trainer.current_epoch == 2
    assert engine.trainer.global_step == 2 * (NUM_TRAIN // BATCH_SIZE)
    assert probe.modes == [(False, True)] * (NUM_TRAIN // BATCH_SIZE)
    assert set(TEST_METRICS) <= engine.trainer.callback_metrics.keys()


def test_validate_from_checkpoint(trained: SimpleNamespace, dataset_root: Path) -> None:
    results = make_engine(trained.project).validate(
        model=model_for_checkpoint(), datamodule=make_datamodule(dataset_root), ckpt_path=trained.ckpt
    )
    for name in VALIDATION_METRICS:
        assert 0.0 <= results[0][name] <= 1.0, (name, results)


def test_predict_from_checkpoint(trained: SimpleNamespace, dataset_root: Path) -> None:
    predictions = make_engine(trained.project).predict(
        model=model_for_checkpoint(), datamodule=make_datamodule(dataset_root), ckpt_path=trained.ckpt
    )
    assert predictions
    num_images = 0
    for batch in predictions:
        num_images += len(batch.image)
        assert batch.image.shape[-2:] == (IMAGE_SIZE, IMAGE_SIZE)
        assert batch.anomaly_map.shape[-2:] == batch.image.shape[-2:]
        assert batch.pred_mask.shape[-2:] == batch.image.shape[-2:]
        assert torch.isfinite(batch.anomaly_map).all()
        assert torch.isfinite(batch.pred_score).all()
        assert ((batch.pred_score >= 0) & (batch.pred_score <= 1)).all()
        assert torch.equal(batch.pred_label, batch.pred_score >= THRESHOLD)
    assert num_images == 9  # MVTecAD predicts on the test split


@pytest.fixture(scope="module")
def exports(trained: SimpleNamespace, tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    """Engine exports from the checkpoint: torch, ONNX without input_size (dynamic), OpenVINO with input_size."""
    root = tmp_path_factory.mktemp("exports")
    engine = make_engine(trained.project)

    def export(export_type: ExportType, folder: str, **kwargs: object) -> Path:
        return engine.export(
            model=model_for_checkpoint(),
            export_type=export_type,
            export_root=root / folder,
            ckpt_path=trained.ckpt,
            **kwargs,
        )

    return SimpleNamespace(
        torch=export(ExportType.TORCH, "torch"),
        onnx=export(ExportType.ONNX, "dynamic"),
        openvino=export(ExportType.OPENVINO, "fixed", input_size=(IMAGE_SIZE, IMAGE_SIZE)),
    )


def test_export_from_checkpoint(exports: SimpleNamespace) -> None:
    assert exports.torch.name == "model.pt"
    assert exports.torch.is_file()
    assert exports.onnx.suffix == ".onnx"
    assert exports.onnx.is_file()
    assert exports.openvino.suffix == ".xml"
    assert exports.openvino.is_file()
    assert exports.openvino.with_suffix(".bin").is_file()


# ----------------------------------------------------------------------------------------------------------------
# (c) The exported graphs compute what the Lightning module computes
# ----------------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def reference(trained: SimpleNamespace, dataset_root: Path) -> SimpleNamespace:
    """The test images as raw [0, 1] RGB (what the exported graph takes) and the Lightning module's outputs."""
    model = MiniMaxAD.load_from_checkpoint(trained.ckpt).eval()
    paths = sorted((dataset_root / CATEGORY / "test").glob("*/*.png"))
    images = torch.stack([read_image(path, as_tensor=True) for path in paths])
    labels = torch.tensor([path.parent.name != "good" for path in paths])
    with torch.no_grad():
        outputs = model(images)
    # Random-weight scores must not all saturate at 0 or 1, or the score comparisons would prove nothing.
    assert ((outputs.pred_score > 0) & (outputs.pred_score < 1)).sum() >= 3, outputs.pred_score
    return SimpleNamespace(model=model, images=images, labels=labels, outputs=outputs)


def torch_outputs(model: MiniMaxAD, images: torch.Tensor) -> dict[str, np.ndarray]:
    with torch.no_grad():
        outputs = model(images)
    return {name: getattr(outputs, name).numpy() for name in OUTPUTS}


def run_onnxruntime(path: Path, images: torch.Tensor) -> dict[str, np.ndarray]:
    import onnxruntime as ort  # noqa: PLC0415

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = [output.name for output in session.get_outputs()]
    return dict(zip(names, session.run(None, {"input": images.numpy()}), strict=True))


def run_openvino(path: Path, images: torch.Tensor) -> dict[str, np.ndarray]:
    import openvino as ov  # noqa: PLC0415

    # f32 explicitly: on CPUs with AMX (or avx512_bf16) OpenVINO would otherwise infer in bf16.
    compiled = ov.Core().compile_model(str(path), "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    results = compiled(images.numpy())
    return {output.get_any_name(): results[output] for output in compiled.outputs}


def max_errors(actual: dict[str, np.ndarray], expected: dict[str, np.ndarray]) -> dict[str, float]:
    """Max absolute difference of the scores and maps; labels and masks may differ only at the threshold."""
    assert set(OUTPUTS) <= actual.keys(), sorted(actual)
    errors = {}
    for name in ("pred_score", "anomaly_map"):
        assert actual[name].shape == expected[name].shape, (name, actual[name].shape, expected[name].shape)
        errors[name] = float(np.abs(actual[name].astype(np.float64) - expected[name]).max())
    for name, values in (("pred_label", "pred_score"), ("pred_mask", "anomaly_map")):
        assert actual[name].shape == expected[name].shape, name
        assert actual[name].dtype == np.bool_, (name, actual[name].dtype)
        flipped = actual[name] != expected[name]
        # A flip is allowed only where the value itself sits within the tolerance of the threshold.
        near_threshold = np.abs(expected[values] - THRESHOLD) <= max(errors[values], PARITY_TOLERANCE)
        assert not (flipped & ~near_threshold).any(), f"{name} differs away from the threshold"
    return errors


def test_exported_graphs_take_raw_images_and_return_the_inference_batch(exports: SimpleNamespace) -> None:
    import onnx  # noqa: PLC0415
    import openvino as ov  # noqa: PLC0415

    # ONNX without input_size: batch, height and width are all dynamic.
    graph = onnx.load(str(exports.onnx), load_external_data=False).graph
    assert [node.name for node in graph.input] == ["input"]
    dims = [dim.dim_param or dim.dim_value for dim in graph.input[0].type.tensor_type.shape.dim]
    assert dims == ["batch_size", 3, "height", "width"]
    assert [node.name for node in graph.output] == list(OUTPUTS)
    # OpenVINO with input_size: fixed height and width, dynamic batch.
    model = ov.Core().read_model(str(exports.openvino))
    assert [port.get_any_name() for port in model.inputs] == ["input"]
    assert str(model.input(0).get_partial_shape()) == f"[?,3,{IMAGE_SIZE},{IMAGE_SIZE}]"
    assert [port.get_any_name() for port in model.outputs] == list(OUTPUTS)


@pytest.mark.parametrize("size", [(IMAGE_SIZE, IMAGE_SIZE), (96, 80)], ids=["64x64", "96x80"])
def test_onnxruntime_matches_torch_with_dynamic_shapes(
    exports: SimpleNamespace, reference: SimpleNamespace, size: tuple[int, int]
) -> None:
    # Exported without input_size, the graph takes any image size (and batch size), like the torch model.
    images = torch.nn.functional.interpolate(reference.images[:5], size=size, mode="bilinear", antialias=True)
    errors = max_errors(run_onnxruntime(exports.onnx, images), torch_outputs(reference.model, images))
    for name, error in errors.items():
        MEASURED[f"onnxruntime dynamic {size[0]}x{size[1]} {name}"] = error
        assert error <= PARITY_TOLERANCE, (name, error)


def test_openvino_matches_torch_with_fixed_shape(exports: SimpleNamespace, reference: SimpleNamespace) -> None:
    errors = max_errors(
        run_openvino(exports.openvino, reference.images), torch_outputs(reference.model, reference.images)
    )
    for name, error in errors.items():
        MEASURED[f"openvino f32 fixed {name}"] = error
        assert error <= PARITY_TOLERANCE, (name, error)
    # Exported with input_size, another size is refused by the runtime, naming both shapes.
    with pytest.raises(RuntimeError, match=rf"\[\?,3,{IMAGE_SIZE},{IMAGE_SIZE}\].*96"):
        run_openvino(exports.openvino, torch.rand(1, 3, 96, 80))


def image_auroc(scores: np.ndarray, labels: torch.Tensor) -> float:
    return float(BinaryAUROC()(torch.from_numpy(scores), labels.long()))


@pytest.mark.parametrize("compression", [CompressionType.FP16, CompressionType.INT8_PTQ], ids=["fp16", "int8_ptq"])
def test_openvino_compression(
    trained: SimpleNamespace,
    reference: SimpleNamespace,
    dataset_root: Path,
    tmp_path: Path,
    compression: CompressionType,
) -> None:
    # INT8_PTQ calibrates with NNCF on the datamodule's validation images (raw, like the graph's input).
    path = make_engine(trained.project).export(
        model=model_for_checkpoint(),
        export_type=ExportType.OPENVINO,
        export_root=tmp_path,
        compression_type=compression,
        datamodule=make_datamodule(dataset_root),
        ckpt_path=trained.ckpt,
    )
    expected = torch_outputs(reference.model, reference.images)
    actual = run_openvino(path, reference.images)
    assert actual["pred_score"].shape == expected["pred_score"].shape
    assert actual["anomaly_map"].shape == expected["anomaly_map"].shape
    assert np.isfinite(actual["pred_score"]).all()
    assert np.isfinite(actual["anomaly_map"]).all()
    score_drop = float(np.abs(actual["pred_score"] - expected["pred_score"]).max())
    map_drop = float(np.abs(actual["anomaly_map"] - expected["anomaly_map"]).max())
    auroc_drop = image_auroc(expected["pred_score"], reference.labels) - image_auroc(
        actual["pred_score"], reference.labels
    )
    MEASURED[f"openvino {compression.value} pred_score"] = score_drop
    MEASURED[f"openvino {compression.value} anomaly_map"] = map_drop
    MEASURED[f"openvino {compression.value} image AUROC drop"] = auroc_drop
    import openvino as ov  # noqa: PLC0415

    ops = ov.Core().read_model(str(path)).get_ops()
    if compression == CompressionType.FP16:
        # fp16 weights, f32 inference: only the rounding of the weights.
        assert score_drop <= 1e-2
        assert map_drop <= 1e-2
        assert abs(auroc_drop) <= 0.05
    else:
        assert any(op.get_type_name() == "FakeQuantize" for op in ops), "nothing was quantized"
        # The Gaussian smoothing of the map stays in float: quantized, it returned zero maps and scores.
        smoothing = [op for op in ops if op.get_type_name() == "Convolution" and op.get_output_partial_shape(0)[1] == 1]
        assert len(smoothing) == 1
        assert smoothing[0].input_value(0).get_node().get_type_name() != "FakeQuantize"
        assert np.ptp(actual["pred_score"]) > 0, actual["pred_score"]
        # 8-bit activations calibrated on 9 images of an untrained model, whose score normalisation amplifies
        # raw differences about tenfold: loose bounds, which still catch the collapse (all scores 0, drop 1.0).
        assert score_drop <= 0.5
        assert map_drop <= 0.5
        assert abs(auroc_drop) <= 0.3


# ----------------------------------------------------------------------------------------------------------------
# (d) Bad input
# ----------------------------------------------------------------------------------------------------------------


def test_unknown_backbone_lists_the_choices() -> None:
    with pytest.raises(ValueError, match=r"Unknown backbone 'x'.*unireplknet_a.*unireplknet_n.*unireplknet_s"):
        MiniMaxAD(backbone="x", pre_trained=False)


def test_unknown_loss_lists_the_choices() -> None:
    with pytest.raises(ValueError, match=r"Unknown loss 'x'.*adc.*global.*local.*local_hm"):
        MiniMaxAD(loss="x", pre_trained=False, dims=DIMS)


@pytest.mark.parametrize("name", ["p_hard", "p_lim"])
@pytest.mark.parametrize("value", [0.0, 1.0, math.nan])
def test_probabilities_outside_the_open_unit_interval_are_refused(name: str, value: float) -> None:
    with pytest.raises(ValueError, match=rf"{name} must be in \(0, 1\)"):
        MiniMaxAD(pre_trained=False, dims=DIMS, **{name: value})


def test_checkpoint_of_another_size_is_refused(trained: SimpleNamespace, dataset_root: Path) -> None:
    # The user forgot --model.dims: a default-size (unireplknet_n) model restoring the tiny checkpoint.
    tiny, default = str(DIMS), "(80, 160, 320, 640)"
    with pytest.raises(ValueError, match="checkpoint holds a MiniMaxAD") as error:
        make_engine(trained.project).test(
            model=MiniMaxAD(), datamodule=make_datamodule(dataset_root), ckpt_path=trained.ckpt
        )
    assert tiny in str(error.value)
    assert default in str(error.value)
    # load_from_checkpoint writes keyword arguments over the saved hyper-parameters: still refused clearly.
    with pytest.raises(ValueError, match="checkpoint holds a MiniMaxAD") as error:
        MiniMaxAD.load_from_checkpoint(trained.ckpt, dims=None)
    assert tiny in str(error.value)
    assert default in str(error.value)
    with pytest.raises(ValueError, match=r"depths \(2, 2, 8, 2\).*depths \(1, 1, 1, 1\)"):
        MiniMaxAD.load_from_checkpoint(trained.ckpt, depths=(1, 1, 1, 1))


def test_grayscale_and_rgba_images_train_and_predict(dataset_root: Path, tmp_path: Path) -> None:
    root = tmp_path / "modes"
    shutil.copytree(dataset_root, root)
    images = sorted((root / CATEGORY / "train").rglob("*.png")) + sorted((root / CATEGORY / "test").rglob("*.png"))
    for index, path in enumerate(images):  # masks under ground_truth/ stay as they are
        mode = "L" if index % 2 == 0 else "RGBA"
        Image.open(path).convert(mode).save(path)
    assert {Image.open(path).mode for path in images} == {"L", "RGBA"}
    assert all(read_image(path, as_tensor=True).shape == (3, IMAGE_SIZE, IMAGE_SIZE) for path in images[:2])

    model = new_model()
    engine = make_engine(tmp_path / "project")
    engine.fit(model=model, datamodule=make_datamodule(root))
    predictions = engine.predict(model=model, datamodule=make_datamodule(root))
    for batch in predictions:
        assert batch.image.shape[1] == 3
        assert batch.anomaly_map.shape[-2:] == (IMAGE_SIZE, IMAGE_SIZE)
        assert torch.isfinite(batch.pred_score).all()
        assert torch.isfinite(batch.anomaly_map).all()


# ----------------------------------------------------------------------------------------------------------------
# (b) The user's commands, with the installed `anomalib` console script, offline
# ----------------------------------------------------------------------------------------------------------------


def anomalib_cli(*args: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run ``anomalib ARGS`` offline; fail with its output unless it exits with 0."""
    script = Path(sys.executable).with_name("anomalib")
    assert script.is_file(), f"no anomalib console script next to {sys.executable}"
    env = dict(os.environ)
    env.update(HF_HUB_OFFLINE="1", HF_HOME=str(cwd / "empty_hf_home"), PYTHONWARNINGS="ignore", COLUMNS="200")
    env.pop("ANOMALIB_MINIMAXAD_NO_HOOK", None)
    command = [str(script), *map(str, args)]
    process = subprocess.run(  # noqa: S603  # the installed console script with our arguments
        command, cwd=cwd, env=env, capture_output=True, text=True, timeout=600, check=False
    )
    assert process.returncode == 0, (
        f"{' '.join(command)}\nexit code {process.returncode}\nstdout:\n{process.stdout[-5000:]}\n"
        f"stderr:\n{process.stderr[-5000:]}"
    )
    return process


def train_overrides(root: Path, results: Path) -> list[str | Path]:
    """Small, fast settings for `anomalib train` (random weights: no download)."""
    return [
        "--data.root", root,
        "--data.category", CATEGORY,
        "--model.pre_trained", "false",
        "--model.dims", CLI_DIMS,
        "--trainer.max_epochs", "1",
        "--data.train_batch_size", str(BATCH_SIZE),
        "--data.eval_batch_size", "16",
        "--data.num_workers", "0",
        "--default_root_dir", results,
    ]  # fmt: skip


def only_checkpoint(results: Path) -> Path:
    checkpoints = sorted(results.rglob("v0/weights/lightning/model.ckpt"))
    assert len(checkpoints) == 1, checkpoints
    return checkpoints[0]


@pytest.fixture(scope="module")
def cli_dataset_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Fewer images than the Engine tests' dataset: the command line works at 256x256."""
    return generate_demo_dataset(
        tmp_path_factory.mktemp("cli_datasets"),
        categories=(CATEGORY,),
        image_size=IMAGE_SIZE,
        num_train=BATCH_SIZE,
        num_test_good=2,
        num_test_defect=2,
    )


@pytest.fixture(scope="module")
def cli_checkpoint(cli_dataset_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`anomalib train --model MiniMaxAD --data MVTec ...` (names published by the import hook)."""
    work = tmp_path_factory.mktemp("cli")
    results = work / "results"
    process = anomalib_cli(
        "train", "--model", "MiniMaxAD", "--data", "MVTec", *train_overrides(cli_dataset_root, results), cwd=work
    )
    for name in TEST_METRICS:  # `anomalib train` tests the model after fitting
        assert name in process.stdout, process.stdout[-3000:]
    ckpt = only_checkpoint(results)
    assert ckpt.parts[-7:-4] == ("MiniMaxAD", "MVTec", CATEGORY)
    return ckpt


def test_cli_train_with_short_names(cli_checkpoint: Path) -> None:
    model = MiniMaxAD.load_from_checkpoint(cli_checkpoint)
    assert model.model.dims == DIMS
    assert isinstance(model.loss, ADCLoss)
    assert model.input_size == (256, 256)  # the default pre-processor


@pytest.mark.parametrize(
    ("arguments", "loss_class"),
    [
        (["--model", "anomalib_minimaxad.MiniMaxAD", "--data", "MVTec"], ADCLoss),
        (["--config", REPO / "anomalib_minimaxad" / "configs" / "minimaxad.yaml"], ADCLoss),
        (["--config", REPO / "anomalib_minimaxad" / "configs" / "minimaxad_fp.yaml"], GlobalCosineLoss),
    ],
    ids=["class_path", "config_fr", "config_fp"],
)
def test_cli_train(arguments: list[str | Path], loss_class: type, cli_dataset_root: Path, tmp_path: Path) -> None:
    results = tmp_path / "results"
    overrides = [*train_overrides(cli_dataset_root, results), "--model.pre_processor", CLI_SMALL_PRE_PROCESSOR]
    anomalib_cli("train", *arguments, *overrides, cwd=tmp_path)
    ckpt = only_checkpoint(results)
    model = MiniMaxAD.load_from_checkpoint(ckpt)
    assert isinstance(model.loss, loss_class)
    assert model.input_size == (IMAGE_SIZE, IMAGE_SIZE)
    if "--config" in arguments:
        saved_config = (ckpt.parents[2] / "config.yaml").read_text()
        assert "seed_everything: 111" in saved_config
        assert model.lr == 5e-3
        assert model.betas == (0.9, 0.999)
        assert model.weight_decay == 1e-5
        assert model.lr_gamma == 0.995


def test_cli_test_from_checkpoint_offline(cli_checkpoint: Path, cli_dataset_root: Path, tmp_path: Path) -> None:
    # No --model.pre_trained: the model is built with pre_trained=True and must restore, not download.
    process = anomalib_cli(
        "test",
        "--model", "MiniMaxAD",
        "--data", "MVTec",
        "--data.root", cli_dataset_root,
        "--data.category", CATEGORY,
        "--data.num_workers", "0",
        "--model.dims", CLI_DIMS,
        "--ckpt_path", cli_checkpoint,
        "--default_root_dir", tmp_path / "results",
        cwd=tmp_path,
    )  # fmt: skip
    for name in TEST_METRICS:
        assert name in process.stdout, process.stdout[-3000:]


def test_cli_predict_from_checkpoint_offline(cli_checkpoint: Path, cli_dataset_root: Path, tmp_path: Path) -> None:
    folder = cli_dataset_root / CATEGORY / "test" / "good"
    results = tmp_path / "results"
    anomalib_cli(
        "predict",
        "--model", "MiniMaxAD",
        "--data", folder,
        "--model.dims", CLI_DIMS,
        "--ckpt_path", cli_checkpoint,
        "--default_root_dir", results,
        cwd=tmp_path,
    )  # fmt: skip
    written = sorted(path.name for path in results.rglob("images/**/*.png"))
    assert written == sorted(path.name for path in folder.glob("*.png"))


@pytest.mark.parametrize(
    ("export_type", "files"),
    [
        ("torch", ["torch/model.pt"]),
        ("onnx", ["onnx/model.onnx"]),
        ("openvino", ["openvino/model.xml", "openvino/model.bin"]),
    ],
)
def test_cli_export_offline(cli_checkpoint: Path, tmp_path: Path, export_type: str, files: list[str]) -> None:
    results = tmp_path / "results"
    anomalib_cli(
        "export",
        "--model", "MiniMaxAD",
        "--export_type", export_type,
        "--model.dims", CLI_DIMS,
        "--ckpt_path", cli_checkpoint,
        "--default_root_dir", results,
        cwd=tmp_path,
    )  # fmt: skip
    for file in files:
        assert (results / "weights" / file).is_file(), sorted(str(path) for path in results.rglob("*"))
