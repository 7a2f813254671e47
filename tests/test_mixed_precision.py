"""Mixed precision: training, evaluation and exports under ``bf16-mixed`` and ``16-mixed``, with float32 results.

Under autocast the networks run in the low dtype, but anomaly maps, scores and the ADC loss's quantile stay in
float32 (a bf16 64x64 map keeps about 170 distinct values instead of 8,000, which ties pixels in AUROC/AUPRO).
The ``Engine`` runs record, with a forward hook, the dtype the encoder really computed in, so a run that
silently stayed in float32 fails too. On CPU, Lightning (2.6) replaces ``16-mixed`` by ``bf16-mixed``, with a
warning ("AMP with fp16 is not supported on CPU"), which the ``16-mixed`` run asserts; float16 autocast itself is
tested on the torch model, and ``16-mixed`` proper runs on CUDA only. The command-line run restricts oneDNN to AVX2
(``ONEDNN_MAX_CPU_ISA=AVX2``): no native bf16 kernels, as on the AVX2-only CPUs where the fused fast path
once crashed.
"""

from __future__ import annotations

import os
import subprocess
import sys
import warnings
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from anomalib.data import MVTecAD
from anomalib.deploy import ExportType
from anomalib.engine import Engine
from lightning.pytorch import Callback, seed_everything
from torch.nn.modules.module import register_module_forward_hook

from anomalib_minimaxad import MiniMaxAD
from anomalib_minimaxad.components import fast_cpu
from anomalib_minimaxad.demo.dataset import generate_demo_dataset
from anomalib_minimaxad.loss import ADCLoss
from anomalib_minimaxad.torch_model import MiniMaxADModel

DIMS = (16, 32, 64, 128)
CATEGORY = "brick"
IMAGE_SIZE = 64
#: The dtype the network computes in on CPU, per Engine precision (Lightning turns 16-mixed into bf16 on CPU).
CPU_DTYPES = {"bf16-mixed": torch.bfloat16, "16-mixed": torch.bfloat16}
STAGES = ("train", "validation", "test", "predict")


# ----------------------------------------------------------------------------------------------------------------
# The torch model and the loss under autocast (fast)
# ----------------------------------------------------------------------------------------------------------------


def stem(model: MiniMaxADModel) -> torch.nn.Module:
    """The encoder's first convolution: it computes in the autocast dtype (the stages end in float32 norms)."""
    return model.encoder.downsample_layers[0][0]


@pytest.mark.parametrize("fused", [False, True], ids=["unfused", "fused"])
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=["bf16", "fp16"])
def test_maps_and_scores_are_float32_under_autocast(fused: bool, dtype: torch.dtype) -> None:
    torch.manual_seed(0)
    model = MiniMaxADModel(dims=DIMS).eval()
    model.fuse_frozen_encoder = False  # the hook below is on the model's own encoder
    if fused:
        model.reparameterize()
    low_dtypes = []
    stem(model).register_forward_hook(lambda _module, _inputs, output: low_dtypes.append(output.dtype))
    images = torch.rand(2, 3, IMAGE_SIZE, IMAGE_SIZE)
    with torch.inference_mode():
        reference = model(images)
        with torch.autocast("cpu", dtype=dtype):
            mixed = model(images)
    assert low_dtypes == [torch.float32, dtype]  # the network did run in the low dtype
    assert mixed.anomaly_map.dtype == torch.float32
    assert mixed.pred_score.dtype == torch.float32
    # A bf16 map would have about 170 distinct values; float32 keeps them apart.
    assert mixed.anomaly_map.unique().numel() > 4000
    assert (mixed.anomaly_map - reference.anomaly_map).abs().max() < 0.05
    assert (mixed.pred_score - reference.pred_score).abs().max() < 0.05


class RecordingADCLoss(ADCLoss):
    """ADC loss that records the dtype its hard-mining quantiles see."""

    def __init__(self) -> None:
        super().__init__()
        self.distance_dtypes: list[torch.dtype] = []

    def hard_elements(self, distance: torch.Tensor) -> tuple[torch.Tensor, str]:
        self.distance_dtypes.append(distance.dtype)
        return super().hard_elements(distance)


@pytest.mark.parametrize("has_kernels", [True, False])
def test_bf16_autocast_warns_where_it_is_emulated(monkeypatch: pytest.MonkeyPatch, has_kernels: bool) -> None:
    monkeypatch.setattr(fast_cpu, "_onednn_bf16", has_kernels)
    model = MiniMaxADModel(dims=DIMS).eval()
    images = torch.rand(1, 3, 64, 64)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with torch.no_grad():
            model(images)  # float32: never a warning
            with torch.autocast("cpu", dtype=torch.bfloat16):
                model(images)
    emulated = [w for w in caught if "without oneDNN bf16 kernels" in str(w.message)]
    assert len(emulated) == (0 if has_kernels else 1)


def test_adc_quantile_stays_float32_under_autocast() -> None:
    generator = torch.Generator().manual_seed(0)
    shapes = ((2, 8, 8, 8), (2, 16, 4, 4), (2, 32, 2, 2))
    encoder = [torch.randn(shape, generator=generator).bfloat16() for shape in shapes]
    decoder = [torch.randn(shape, generator=generator).bfloat16() for shape in shapes]
    loss = RecordingADCLoss()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        mixed = loss(encoder, decoder, (32, 32))
    # The same bf16 values, cast to float32 without autocast: identical hard elements, identical loss.
    reference = loss([f.float() for f in encoder], [f.float() for f in decoder], (32, 32))
    assert loss.distance_dtypes == [torch.float32, torch.float32]
    assert mixed.dtype == torch.float32
    assert torch.equal(mixed, reference)


# ----------------------------------------------------------------------------------------------------------------
# Engine fit, validate, test, predict and exports under mixed precision (slow)
# ----------------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def dataset_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate_demo_dataset(
        tmp_path_factory.mktemp("datasets"),
        categories=(CATEGORY,),
        image_size=IMAGE_SIZE,
        num_train=4,
        num_test_good=2,
        num_test_defect=2,
    )


def make_datamodule(root: Path) -> MVTecAD:
    return MVTecAD(root=root, category=CATEGORY, train_batch_size=4, eval_batch_size=4, num_workers=0, seed=0)


class DtypeRecorder(Callback):
    """Per stage: the dtypes the encoder's stem computed in, and those of the returned maps and scores.

    The stem is found by a global forward hook (3 input channels): test and predict run a fused copy of the
    network, whose stem is a new module.
    """

    def __init__(self) -> None:
        self.stage = ""
        self.encoder: dict[str, set[torch.dtype]] = {stage: set() for stage in STAGES}
        self.outputs: dict[str, set[tuple[torch.dtype, torch.dtype]]] = {stage: set() for stage in STAGES[1:]}

    def record_encoder(self, module: torch.nn.Module, _inputs: object, output: object) -> None:
        if isinstance(module, torch.nn.Conv2d) and module.in_channels == 3:
            self.encoder[self.stage].add(output.dtype)

    def record_outputs(self, outputs: object) -> None:
        self.outputs[self.stage].add((outputs.anomaly_map.dtype, outputs.pred_score.dtype))

    def on_train_batch_start(self, *_args: object) -> None:
        self.stage = "train"

    def on_validation_batch_start(self, *_args: object) -> None:
        self.stage = "validation"

    def on_test_batch_start(self, *_args: object) -> None:
        self.stage = "test"

    def on_predict_batch_start(self, *_args: object) -> None:
        self.stage = "predict"

    def on_validation_batch_end(self, _trainer: object, _module: object, outputs: object, *_args: object) -> None:
        self.record_outputs(outputs)

    def on_test_batch_end(self, _trainer: object, _module: object, outputs: object, *_args: object) -> None:
        self.record_outputs(outputs)

    def on_predict_batch_end(self, _trainer: object, _module: object, outputs: object, *_args: object) -> None:
        self.record_outputs(outputs)


@pytest.fixture(scope="module")
def runs(dataset_root: Path, tmp_path_factory: pytest.TempPathFactory):
    """``precision -> fit, validate, test and predict through the Engine``, each precision run once."""
    done: dict[str, SimpleNamespace] = {}

    def run(precision: str) -> SimpleNamespace:
        if precision not in done:
            seed_everything(0)
            project = tmp_path_factory.mktemp(precision)
            recorder = DtypeRecorder()
            model = MiniMaxAD(
                pre_trained=False, dims=DIMS, pre_processor=MiniMaxAD.configure_pre_processor((IMAGE_SIZE, IMAGE_SIZE))
            )
            hook = register_module_forward_hook(recorder.record_encoder)
            try:
                with warnings.catch_warnings(record=True) as caught:
                    warnings.simplefilter("always")
                    engine = Engine(
                        logger=False,
                        devices=1,
                        max_epochs=1,
                        precision=precision,
                        default_root_dir=project,
                        callbacks=[recorder],
                    )
                    engine.fit(model=model, datamodule=make_datamodule(dataset_root))
                    validation = engine.validate(model=model, datamodule=make_datamodule(dataset_root))
                    test = engine.test(model=model, datamodule=make_datamodule(dataset_root))
                    predictions = engine.predict(model=model, datamodule=make_datamodule(dataset_root))
            finally:
                hook.remove()
            ckpt = project / "MiniMaxAD" / "MVTecAD" / CATEGORY / "v0" / "weights" / "lightning" / "model.ckpt"
            done[precision] = SimpleNamespace(
                model=model,
                engine=engine,
                recorder=recorder,
                validation=validation,
                test=test,
                predictions=predictions,
                ckpt=ckpt,
                warnings=[str(warning.message) for warning in caught],
            )
        return done[precision]

    return run


@pytest.mark.slow
@pytest.mark.parametrize("precision", ["bf16-mixed", "16-mixed"])
def test_engine_runs_in_the_low_dtype_and_returns_float32(runs, precision: str) -> None:
    result = runs(precision)
    for stage in STAGES:
        assert result.recorder.encoder[stage] == {CPU_DTYPES[precision]}, (stage, result.recorder.encoder)
    for stage in STAGES[1:]:
        assert result.recorder.outputs[stage] == {(torch.float32, torch.float32)}, (stage, result.recorder.outputs)
    assert np.isfinite(result.validation[0]["image_AUROC"])
    assert all(np.isfinite(value) for value in result.test[0].values()), result.test
    assert sum(len(batch.pred_score) for batch in result.predictions) == 4
    for batch in result.predictions:  # after anomalib's post-processing too
        assert batch.anomaly_map.dtype == torch.float32
        assert batch.pred_score.dtype == torch.float32
        assert torch.isfinite(batch.anomaly_map).all()
    fp16_replaced = any("fp16 is not supported on CPU" in message for message in result.warnings)
    assert fp16_replaced == (precision == "16-mixed"), result.warnings
    assert result.ckpt.is_file()
    # Autocast leaves the parameters, hence the checkpoint, in float32.
    restored = MiniMaxAD.load_from_checkpoint(result.ckpt)
    assert {tensor.dtype for tensor in restored.state_dict().values() if tensor.is_floating_point()} == {torch.float32}


@pytest.mark.slow
def test_exports_of_a_bf16_trained_model(runs, tmp_path: Path) -> None:
    import onnxruntime as ort  # noqa: PLC0415
    import openvino as ov  # noqa: PLC0415

    result = runs("bf16-mixed")
    images = torch.rand(2, 3, IMAGE_SIZE, IMAGE_SIZE)
    model = result.model.eval()
    with torch.no_grad():
        expected = model(images)

    def export(export_type: ExportType, **kwargs: object) -> Path:
        return result.engine.export(
            model=model, export_type=export_type, export_root=tmp_path / export_type.value, **kwargs
        )

    torch_file = export(ExportType.TORCH)
    exported = torch.load(torch_file, weights_only=False)["model"].eval()  # our own file, just written
    with torch.no_grad():
        outputs = exported(images)
    torch.testing.assert_close(outputs.pred_score, expected.pred_score, atol=1e-4, rtol=1e-4)

    session = ort.InferenceSession(str(export(ExportType.ONNX)), providers=["CPUExecutionProvider"])
    names = [output.name for output in session.get_outputs()]
    onnx_outputs = dict(zip(names, session.run(None, {"input": images.numpy()}), strict=True))
    assert onnx_outputs["anomaly_map"].dtype == np.float32
    np.testing.assert_allclose(onnx_outputs["pred_score"], expected.pred_score.numpy(), atol=1e-4)

    xml = export(ExportType.OPENVINO, input_size=(IMAGE_SIZE, IMAGE_SIZE))
    compiled = ov.Core().compile_model(str(xml), "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    ov_outputs = compiled(images.numpy())
    scores = next(ov_outputs[output] for output in compiled.outputs if output.get_any_name() == "pred_score")
    np.testing.assert_allclose(scores, expected.pred_score.numpy(), atol=1e-4)


@pytest.mark.slow
def test_cli_test_in_bf16_on_an_avx2_only_cpu(runs, dataset_root: Path, tmp_path: Path) -> None:
    """``anomalib test --trainer.precision bf16-mixed`` with oneDNN restricted to AVX2 (no native bf16)."""
    ckpt = runs("bf16-mixed").ckpt
    script = Path(sys.executable).with_name("anomalib")
    env = dict(os.environ, OMP_NUM_THREADS="1", ONEDNN_MAX_CPU_ISA="AVX2", MKL_ENABLE_INSTRUCTIONS="AVX2")
    env.update(HF_HUB_OFFLINE="1", HF_HOME=str(tmp_path / "empty_hf_home"), PYTHONWARNINGS="ignore", COLUMNS="200")
    command = [
        str(script), "test",
        "--model", "MiniMaxAD",
        "--model.dims", "[16,32,64,128]",
        "--data", "MVTec",
        "--data.root", str(dataset_root),
        "--data.category", CATEGORY,
        "--data.num_workers", "0",
        "--trainer.precision", "bf16-mixed",
        "--ckpt_path", str(ckpt),
        "--default_root_dir", str(tmp_path / "results"),
    ]  # fmt: skip
    process = subprocess.run(  # noqa: S603 - the installed console script with our arguments
        command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600, check=False
    )
    assert process.returncode == 0, process.stderr[-5000:]
    for name in ("image_AUROC", "pixel_AUROC", "pixel_AUPRO"):
        assert name in process.stdout, process.stdout[-3000:]
