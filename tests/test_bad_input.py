"""Bad input gives a clear error naming the problem, and nothing appears at the final path.

Sections: arguments, tensors, weight files, checkpoints, exports; ``# --- data`` holds the data-file cases.
Interrupted writes of checkpoints and exports are in ``tests/test_faults.py``; the export cases here add the
paths blocked by a file or folder. Tiny random-weight models only, so the module stays well under two minutes
on 2 cores.
"""

from __future__ import annotations

import inspect
import math
import numbers
from pathlib import Path

import pytest
import torch
from anomalib.data import MVTecAD
from anomalib.deploy import CompressionType
from anomalib.engine import Engine
from anomalib.models.components import AnomalibModule

from anomalib_minimaxad import MiniMaxAD, MiniMaxADModel
from anomalib_minimaxad.anomaly_map import AnomalyMapGenerator
from anomalib_minimaxad.components.pretrained import CheckpointError
from anomalib_minimaxad.data import generate_demo_dataset
from anomalib_minimaxad.fault_tolerance import export_atomically
from anomalib_minimaxad.loss import ADCLoss, LocalHardMiningLoss

from .conftest import PARITY_DIR

DIMS = (16, 32, 64, 128)
AUTHORS_CHECKPOINT = PARITY_DIR / "minimaxad_official_checkpoint.pt"  # {bn, decoder} of a DIMS model


def snapshot(root: Path) -> dict[str, bytes | None]:
    """Every path under ``root`` with its bytes (``None`` for folders): equal snapshots, nothing written."""
    return {str(p.relative_to(root)): (p.read_bytes() if p.is_file() else None) for p in root.rglob("*")}


def message_of(excinfo: pytest.ExceptionInfo, *parts: str) -> str:
    """The error's message, asserted to contain every one of ``parts``."""
    message = str(excinfo.value)
    for part in parts:
        assert part in message, (part, message)
    return message


# --- arguments

#: Constructors whose numeric arguments validation.py checks, with what else they need to be built small.
CONSTRUCTORS: dict[type, dict[str, object]] = {
    MiniMaxAD: {"pre_trained": False, "dims": DIMS, "visualizer": False},
    MiniMaxADModel: {"dims": DIMS},
    AnomalyMapGenerator: {},
    ADCLoss: {},
    LocalHardMiningLoss: {},
}


def _nan_like(default: object) -> object:
    """NaN in place of a number, or of each number of a tuple of numbers; ``None`` for other defaults."""
    if isinstance(default, numbers.Real) and not isinstance(default, bool):
        return math.nan
    if isinstance(default, tuple) and default and all(isinstance(v, numbers.Real) for v in default):
        return (math.nan,) * len(default)
    return None


#: (constructor, argument) for every argument with a numeric default: each must refuse NaN, naming itself.
NUMERIC_ARGUMENTS = [
    (constructor, name)
    for constructor in CONSTRUCTORS
    for name, parameter in inspect.signature(constructor).parameters.items()
    if _nan_like(parameter.default) is not None
]


@pytest.mark.parametrize(
    ("constructor", "name"), NUMERIC_ARGUMENTS, ids=[f"{c.__name__}.{n}" for c, n in NUMERIC_ARGUMENTS]
)
def test_nan_is_refused_for_every_numeric_argument(constructor: type, name: str) -> None:
    value = _nan_like(inspect.signature(constructor).parameters[name].default)
    with pytest.raises(ValueError, match=r"must be .*, got .*nan") as excinfo:
        constructor(**CONSTRUCTORS[constructor], **{name: value})
    message_of(excinfo, name)


def test_every_numeric_argument_of_minimaxad_is_listed() -> None:
    """The NaN cases above reach each numeric argument the issue names (a renamed one would drop silently)."""
    names = {name for constructor, name in NUMERIC_ARGUMENTS if constructor is MiniMaxAD}
    assert names == {
        "p_hard",
        "p_lim",
        "lr",
        "betas",
        "weight_decay",
        "lr_gamma",
        "score_ratio",
        "gaussian_kernel_size",
        "gaussian_sigma",
    }


#: Arguments of MiniMaxAD out of range or of another type, and what the error must say.
ARGUMENT_CASES = [
    ({"lr_gamma": -0.5}, "lr_gamma must be in (0, 1], got -0.5"),
    ({"lr_gamma": 1.5}, "lr_gamma must be in (0, 1], got 1.5"),
    ({"gaussian_kernel_size": -3}, "gaussian_kernel_size must be an integer of at least 0, got -3"),
    ({"gaussian_kernel_size": 4}, "gaussian_kernel_size must be odd (or 0 or 1 for no smoothing), got 4"),
    ({"gaussian_kernel_size": 5.0}, "gaussian_kernel_size must be an integer of at least 0, got 5.0"),
    ({"gaussian_sigma": 0}, "gaussian_sigma must be in (0, inf), got 0"),
    ({"gaussian_sigma": "4"}, "gaussian_sigma must be in (0, inf), got '4'"),
    ({"score_ratio": 0.0}, "score_ratio must be in (0, 1], got 0.0"),
    ({"weight_decay": -1e-5}, "weight_decay must be in [0, inf), got -1e-05"),
    ({"lr": math.inf}, "lr must be in (0, inf), got inf"),
    ({"betas": (0.9,)}, "betas must be 2 numbers in [0, 1), got (0.9,)"),
    ({"betas": (0.9, 1.0)}, "betas[1] must be in [0, 1), got 1.0"),
    ({"dims": (16, 0, 64, 128)}, "dims[1] must be an integer of at least 4, got 0"),
    ({"dims": (16, 32, 64)}, "dims must be 4 integers (one per stage), got (16, 32, 64)"),
    ({"dims": "16,32,64,128"}, "dims must be 4 integers (one per stage), got '16,32,64,128'"),
    ({"depths": (2, 2, 8.5, 2)}, "depths[2] must be an integer of at least 1, got 8.5"),
    ({"loss": "global", "p_lim": 1.0}, "p_lim must be in (0, 1), got 1.0"),  # unused by that loss, still kept
]


@pytest.mark.parametrize(
    ("arguments", "named"),
    ARGUMENT_CASES,
    ids=[",".join(f"{k}={v!r}" for k, v in arguments.items()) for arguments, _ in ARGUMENT_CASES],
)
def test_argument_out_of_range_or_of_another_type_is_named(arguments: dict, named: str) -> None:
    with pytest.raises(ValueError) as excinfo:
        MiniMaxAD(**{**CONSTRUCTORS[MiniMaxAD], **arguments})
    message_of(excinfo, named)


@pytest.mark.parametrize(
    ("kernel_sizes", "named"),
    [
        ((3, 3, 3, 3), "kernel_sizes[0] must be a sequence, got 3"),
        (((3,), (3,), (3,), (4,)), "kernel_sizes[3][0] must be odd, got 4"),
    ],
    ids=["stage-not-a-list", "even-size"],
)
def test_kernel_sizes_are_named(kernel_sizes: tuple, named: str) -> None:
    with pytest.raises(ValueError) as excinfo:
        MiniMaxADModel(dims=DIMS, depths=(1, 1, 1, 1), kernel_sizes=kernel_sizes)
    message_of(excinfo, named)


# --- tensors


@pytest.fixture(scope="module")
def models() -> dict[str, MiniMaxADModel]:
    """A tiny model in eval mode and its fused copy (the fast CPU path), which check their input alike."""
    model = MiniMaxADModel(dims=DIMS).eval()
    return {"unfused": model, "fused": model.fused_copy()}


IMAGES = torch.rand(1, 3, 64, 64)


@pytest.mark.parametrize("variant", ["unfused", "fused"])
@pytest.mark.parametrize(
    ("images", "error", "parts"),
    [
        (IMAGES[0], ValueError, ["shape (B, 3, H, W)", "got a tensor of shape (3, 64, 64)"]),
        (IMAGES[:, :1], ValueError, ["3-channel images", "(1, 1, 64, 64)"]),
        (IMAGES[..., :31], ValueError, ["at least 32x32 pixels", "(1, 3, 64, 31)"]),
        ((IMAGES * 255).to(torch.uint8), TypeError, ["float images, got torch.uint8", "images.float() / 255"]),
        (IMAGES.double(), TypeError, ["weights are torch.float32", "images are torch.float64"]),
        (IMAGES.bfloat16(), TypeError, ["weights are torch.float32", "images are torch.bfloat16"]),
    ],
    ids=["rank-3", "1-channel", "31-px", "uint8", "float64", "bf16-without-autocast"],
)
def test_bad_images_are_named(
    models: dict[str, MiniMaxADModel], variant: str, images: torch.Tensor, error: type, parts: list[str]
) -> None:
    with torch.no_grad(), pytest.raises(error) as excinfo:
        models[variant](images)
    message_of(excinfo, *parts)


def test_float64_images_under_autocast_are_named(models: dict[str, MiniMaxADModel]) -> None:
    """Autocast casts float32/float16 operands, never float64 ones: torch would only say 'Input type (double)'."""
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16), pytest.raises(TypeError) as excinfo:
        models["unfused"](IMAGES.double())
    message_of(excinfo, "images are torch.float64", "Autocast does not cast float64")


def test_float32_images_for_bf16_weights_are_named() -> None:
    model = MiniMaxADModel(dims=DIMS).eval().bfloat16()
    with torch.no_grad(), pytest.raises(TypeError) as excinfo:
        model(IMAGES)
    message_of(excinfo, "weights are torch.bfloat16", "images are torch.float32")


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16, torch.float32], ids=str)
def test_images_that_autocast_casts_are_accepted(models: dict[str, MiniMaxADModel], dtype: torch.dtype) -> None:
    """The control of the dtype checks: under bf16 autocast, what autocast casts itself runs, in float32 out."""
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        output = models["unfused"](IMAGES[..., :32, :32].to(dtype))  # 32 px keeps the bf16 calls short
    assert output.pred_score.dtype == torch.float32


# --- weight files


def _pickled_code_ran(marker: str) -> None:
    """What the malicious pickles below call when unpickled without ``weights_only``: writes ``marker``."""
    Path(marker).write_text("code in a pickle ran", encoding="utf-8")


class _RunsCodeWhenUnpickled:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        return _pickled_code_ran, (str(self.marker),)


def write_malicious_checkpoint(path: Path, marker: Path, **tensors: object) -> Path:
    """A torch.save file that writes ``marker`` when loaded with ``weights_only=False``."""
    torch.save({**tensors, "payload": _RunsCodeWhenUnpickled(marker)}, path)
    return path


def assert_would_run_code(path: Path, marker: Path) -> None:
    """The control: a plain unpickler does run the file's code, so the refusal above is what kept it from running."""
    assert not marker.exists()
    torch.load(path, weights_only=False)
    assert marker.exists()


def trainable_state(model: MiniMaxADModel) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in [*model.bottleneck.state_dict().items(), *model.decoder.state_dict().items()]}


def assert_unchanged(model: MiniMaxADModel, before: dict[str, torch.Tensor]) -> None:
    after = trainable_state(model)
    assert after.keys() == before.keys()
    assert all(torch.equal(after[k], before[k]) for k in before), "the model was partly overwritten"


def authors_tensors() -> dict[str, dict[str, torch.Tensor]]:
    return torch.load(AUTHORS_CHECKPOINT, weights_only=True)


def test_authors_checkpoint_control_changes_both_parts() -> None:
    """The control of the all-or-nothing cases: the intact file replaces bottleneck and decoder weights."""
    model = MiniMaxADModel(dims=DIMS)
    before = trainable_state(model)
    model.load_authors_checkpoint(AUTHORS_CHECKPOINT)
    after = trainable_state(model)
    for prefix in ("bn", "decoder"):
        keys = authors_tensors()[prefix]
        changed = [k for k in before if k in keys and not torch.equal(before[k], after[k])]
        assert changed, prefix


def _rename_top_keys(checkpoint: dict) -> dict:
    return {"bottleneck": checkpoint["bn"], "decoder": checkpoint["decoder"]}


def _reshape_decoder_tensor(checkpoint: dict) -> dict:
    checkpoint["decoder"]["upsample_layers.0.0.weight"] = torch.zeros(3, 3)
    return checkpoint


def _add_decoder_tensor(checkpoint: dict) -> dict:
    checkpoint["decoder"]["head.weight"] = torch.zeros(2)
    return checkpoint


def _drop_decoder_tensor(checkpoint: dict) -> dict:
    del checkpoint["decoder"]["upsample_layers.0.0.weight"]
    return checkpoint


def _decoder_not_a_state_dict(checkpoint: dict) -> dict:
    checkpoint["decoder"] = [1, 2, 3]
    return checkpoint


@pytest.mark.parametrize(
    ("corrupt", "parts"),
    [
        (_rename_top_keys, ["expected keys 'bn' and 'decoder'", "found ['bottleneck', 'decoder']"]),
        (_reshape_decoder_tensor, ["[decoder]", "mis-shaped", "upsample_layers.0.0.weight (file (3, 3), model ("]),
        (_add_decoder_tensor, ["[decoder] has tensors Decoder does not have: ['head.weight']"]),
        (_drop_decoder_tensor, ["[decoder]", "missing keys: upsample_layers.0.0.weight"]),
        (_decoder_not_a_state_dict, ["[decoder] holds no state dict"]),
    ],
    ids=["wrong-keys", "wrong-shape", "extra-tensor", "missing-tensor", "not-a-state-dict"],
)
def test_authors_checkpoint_that_does_not_fit_changes_nothing(
    tmp_path: Path, corrupt: object, parts: list[str]
) -> None:
    """The bottleneck fits in each case and comes first: it must not stay loaded when the decoder fails."""
    path = tmp_path / "minimaxad.pth"
    torch.save(corrupt(authors_tensors()), path)
    model = MiniMaxADModel(dims=DIMS)
    before = trainable_state(model)
    with pytest.raises(CheckpointError) as excinfo:
        model.load_authors_checkpoint(path)
    message_of(excinfo, str(path), *parts)
    assert_unchanged(model, before)


def test_authors_checkpoint_of_another_size_lists_shapes_and_changes_nothing() -> None:
    model = MiniMaxADModel(dims=(8, 16, 32, 64))
    before = trainable_state(model)
    with pytest.raises(CheckpointError) as excinfo:
        model.load_authors_checkpoint(AUTHORS_CHECKPOINT)
    message_of(excinfo, f"{AUTHORS_CHECKPOINT} [bn] does not fit Bottleneck", "mis-shaped tensors")
    assert_unchanged(model, before)


@pytest.mark.parametrize("loader", ["load_authors_checkpoint", "load_pretrained_encoder"])
def test_weight_file_with_code_is_refused_and_the_code_never_runs(tmp_path: Path, loader: str) -> None:
    marker = tmp_path / "ran"
    path = write_malicious_checkpoint(tmp_path / "weights.pth", marker, **authors_tensors())
    model = MiniMaxADModel(dims=DIMS)
    before = trainable_state(model)
    with pytest.raises(CheckpointError) as excinfo:
        getattr(model, loader)(path)
    message_of(excinfo, str(path), "not a readable PyTorch checkpoint", "_pickled_code_ran")
    assert not marker.exists()
    assert_unchanged(model, before)
    assert_would_run_code(path, marker)


@pytest.mark.parametrize(
    ("damage", "parts"),
    [("truncate", ["not a readable PyTorch checkpoint", "truncated"]), ("remove", ["Checkpoint file not found"])],
)
def test_truncated_or_missing_authors_checkpoint_is_named(tmp_path: Path, damage: str, parts: list[str]) -> None:
    path = tmp_path / "minimaxad.pth"
    data = AUTHORS_CHECKPOINT.read_bytes()
    if damage == "truncate":
        path.write_bytes(data[: len(data) // 2])
    model = MiniMaxADModel(dims=DIMS)
    before = trainable_state(model)
    with pytest.raises(CheckpointError) as excinfo:
        model.load_authors_checkpoint(path)
    message_of(excinfo, str(path), *parts)
    assert_unchanged(model, before)


# --- checkpoints


@pytest.fixture(scope="module")
def demo_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate_demo_dataset(
        tmp_path_factory.mktemp("demo"),
        categories=("brick",),
        image_size=32,
        num_train=2,
        num_test_good=1,
        num_test_defect=1,
    )


def _lightning_checkpoint_truncated(path: Path, marker: Path) -> None:
    del marker
    torch.save({"pytorch-lightning_version": "2.5.0", "state_dict": authors_tensors()["bn"]}, path)
    path.write_bytes(path.read_bytes()[:200])


def _plain_state_dict(path: Path, marker: Path) -> None:
    del marker
    torch.save(authors_tensors()["bn"], path)


def _authors_file(path: Path, marker: Path) -> None:
    del marker
    path.write_bytes(AUTHORS_CHECKPOINT.read_bytes())


def _garbage(path: Path, marker: Path) -> None:
    del marker
    path.write_bytes(bytes(range(256)) * 4)


CHECKPOINT_CASES = {
    "authors-format": (
        _authors_file,
        ["in the MiniMaxAD authors' format", "not a Lightning checkpoint", "load_authors_checkpoint("],
    ),
    "garbage-bytes": (
        _garbage,
        ["is not a Lightning checkpoint", "cannot be read with torch.load(weights_only=True)"],
    ),
    "pickled-code": (
        lambda path, marker: write_malicious_checkpoint(path, marker, **{"pytorch-lightning_version": "2.5.0"}),
        ["is not a Lightning checkpoint", "holds code, which is never run", "_pickled_code_ran"],
    ),
    "truncated": (_lightning_checkpoint_truncated, ["is not a Lightning checkpoint", "truncated"]),
    "plain-state-dict": (_plain_state_dict, ["no 'pytorch-lightning_version'", "weights/lightning/"]),
}


@pytest.mark.parametrize(
    ("case", "verb"),
    [
        ("authors-format", "test"),
        ("garbage-bytes", "fit"),
        ("pickled-code", "predict"),
        ("truncated", "validate"),
        ("plain-state-dict", "test"),
    ],
)
def test_ckpt_path_that_is_no_lightning_checkpoint_is_named(
    demo_root: Path, tmp_path: Path, case: str, verb: str
) -> None:
    write, parts = CHECKPOINT_CASES[case]
    marker = tmp_path / "ran"
    path = tmp_path / "given.ckpt"
    write(path, marker)
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
    datamodule = MVTecAD(root=demo_root, category="brick", train_batch_size=2, eval_batch_size=2, num_workers=0)
    before = trainable_state(model.model)
    with pytest.raises(CheckpointError) as excinfo:
        getattr(engine, verb)(model=model, datamodule=datamodule, ckpt_path=path)
    message_of(excinfo, str(path), *parts)
    assert not marker.exists()
    assert_unchanged(model.model, before)
    assert not [p for p in run.rglob("*") if p.is_file()], "nothing written: no checkpoint, result or image"
    if case == "pickled-code":
        assert_would_run_code(path, marker)


@pytest.mark.parametrize("case", ["authors-format", "pickled-code"])
def test_load_from_checkpoint_of_no_lightning_checkpoint_is_named(tmp_path: Path, case: str) -> None:
    write, parts = CHECKPOINT_CASES[case]
    marker = tmp_path / "ran"
    path = tmp_path / "given.ckpt"
    write(path, marker)
    with pytest.raises(CheckpointError) as excinfo:
        MiniMaxAD.load_from_checkpoint(path)
    message_of(excinfo, str(path), *parts)
    assert not marker.exists()


# --- exports


@pytest.fixture(scope="module")
def fused_module() -> MiniMaxAD:
    return MiniMaxAD(pre_trained=False, dims=DIMS, visualizer=False).fused_copy()


@pytest.mark.parametrize(
    ("blocker", "error", "named"),
    [
        ("export", FileExistsError, "{root}/export is a file, where the export needs a folder"),
        ("export/weights", FileExistsError, "{root}/export/weights is a file, where the export needs a folder"),
        ("export/weights/torch/model.pt/", IsADirectoryError, "{root}/export/weights/torch/model.pt: a folder"),
    ],
    ids=["root-is-a-file", "weights-is-a-file", "model.pt-is-a-folder"],
)
def test_export_blocked_by_a_file_or_folder_is_named_and_writes_nothing(
    fused_module: MiniMaxAD, tmp_path: Path, blocker: str, error: type, named: str
) -> None:
    path = tmp_path / blocker
    if blocker.endswith("/"):
        path.mkdir(parents=True)
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("a file of the user's")
    before = snapshot(tmp_path)
    with pytest.raises(error) as excinfo:
        fused_module.to_torch(tmp_path / "export")
    message_of(excinfo, named.format(root=tmp_path), "choose another export_root")
    assert snapshot(tmp_path) == before  # no staging folder, nothing moved, the user's file intact


def test_blocked_companion_leaves_the_previous_export_untouched(tmp_path: Path) -> None:
    """A folder where the new ``.bin`` goes is found before any rename: the old ``.xml``/``.bin`` pair stays."""
    folder = tmp_path / "weights" / "openvino"
    folder.mkdir(parents=True)
    (folder / "model.xml").write_text("old model")
    (folder / "model.bin").write_bytes(b"old weights")
    (folder / "extra.json").mkdir()  # the new export brings a file of that name

    def exporter(root: Path) -> Path:
        staged = root / "weights" / "openvino"
        staged.mkdir(parents=True)
        (staged / "model.bin").write_bytes(b"new weights")
        (staged / "extra.json").write_text("{}")
        (staged / "model.xml").write_text("new model")
        return staged / "model.xml"

    before = snapshot(tmp_path)
    with pytest.raises(IsADirectoryError) as excinfo:
        export_atomically(exporter, tmp_path)
    message_of(excinfo, str(folder / "extra.json"), "a folder of that name is in the way")
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize(
    ("arguments", "named"),
    [
        ({"compression_type": CompressionType.INT8_PTQ}, "compression_type int8_ptq needs a datamodule"),
        ({"compression_type": CompressionType.INT8_ACQ, "max_drop": math.nan}, "max_drop must be in [0, 1], got nan"),
    ],
    ids=["ptq-without-datamodule", "acq-nan-max-drop"],
)
def test_quantized_export_arguments_are_checked_before_exporting(
    fused_module: MiniMaxAD,
    demo_root: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    arguments: dict,
    named: str,
) -> None:
    def float_export(*args: object, **kwargs: object) -> Path:
        del args, kwargs
        msg = "the float export ran before the arguments were checked"
        raise AssertionError(msg)

    monkeypatch.setattr(AnomalibModule, "to_openvino", float_export)
    if "max_drop" in arguments:
        arguments = {**arguments, "datamodule": MVTecAD(root=demo_root, category="brick", num_workers=0)}
    with pytest.raises(ValueError) as excinfo:
        fused_module.to_openvino(tmp_path, **arguments)
    message_of(excinfo, named)
    assert list(tmp_path.iterdir()) == []  # no staging folder, no weights/openvino


# --- data

# Imports of this section stay here: the section is edited independently of the ones above.
import urllib.error  # noqa: E402
from collections.abc import Callable  # noqa: E402

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
