"""State-dict layouts equal the authors'; checkpoints load, and bad ones fail clearly."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import timm
import torch

from anomalib_minimaxad.components import (
    WEIGHTS_DIR_ENV,
    Bottleneck,
    CheckpointError,
    Decoder,
    PretrainedWeightsUnavailableError,
    UniRepLKNetEncoder,
)
from anomalib_minimaxad.torch_model import MiniMaxADModel

from .conftest import LAYOUT_DIR, PARITY_DIR, TINY_DIMS

N_DIMS, N_DEPTHS = (80, 160, 320, 640), (2, 2, 8, 2)
#: Authors' encoder entries our encoder does not build: stage 4 is never used by MiniMaxAD.
UNUSED_ENCODER_PREFIXES = ("downsample_layers.3.", "stages.3.", "norm3.")


def read_layout(name: str) -> dict[str, tuple[int, ...]]:
    layout = {}
    for line in (LAYOUT_DIR / name).read_text().splitlines():
        key, shape = line.split(" ", 1)
        layout[key] = tuple(json.loads(shape.replace("(", "[").replace(",)", "]").replace(")", "]")))
    return layout


def layout_of(module: torch.nn.Module) -> dict[str, tuple[int, ...]]:
    return {k: tuple(v.shape) for k, v in module.state_dict().items()}


def test_encoder_layout_is_the_authors_used_part() -> None:
    theirs = read_layout("encoder_unireplknet_n.txt")
    used = {k: v for k, v in theirs.items() if not k.startswith(UNUSED_ENCODER_PREFIXES)}
    assert len(theirs) == 630
    assert layout_of(UniRepLKNetEncoder(N_DIMS, N_DEPTHS)) == used


def test_bottleneck_and_decoder_layouts() -> None:
    assert layout_of(Bottleneck(N_DIMS)) == read_layout("bottleneck_unireplknet_n.txt")
    assert layout_of(Decoder(N_DIMS, N_DEPTHS)) == read_layout("decoder_unireplknet_n.txt")


def test_timm_classifier_layout_is_the_imagenet_checkpoint() -> None:
    model = timm.create_model("unireplknet_n", pretrained=False)
    assert layout_of(model) == read_layout("unireplknet_n_imagenet_checkpoint.txt")


def test_timm_loads_a_local_imagenet_file_strictly() -> None:
    path = PARITY_DIR / "unireplknet_imagenet_layout.pt"
    model = timm.create_model(
        "unireplknet_n", pretrained=True, dims=TINY_DIMS, pretrained_cfg_overlay={"file": str(path)}
    )
    reference = torch.load(path, weights_only=True)["model"]
    for key, value in model.state_dict().items():
        assert torch.equal(value, reference[key]), key


def test_imagenet_layout_loads_into_encoder_with_identity_norms() -> None:
    model = MiniMaxADModel(dims=TINY_DIMS)
    source = model.load_pretrained_encoder(PARITY_DIR / "unireplknet_imagenet_layout.pt")
    assert source.endswith("unireplknet_imagenet_layout.pt")
    authors_encoder = torch.load(PARITY_DIR / "encoder.pt", weights_only=True)
    for key, value in model.encoder.state_dict().items():
        if key.startswith(("norm0.", "norm1.", "norm2.")):
            expected = torch.ones_like(value) if key.endswith("weight") else torch.zeros_like(value)
            assert torch.equal(value, expected), key
        else:
            assert torch.equal(value, authors_encoder[key]), key


def test_authors_checkpoint_loads_into_bottleneck_and_decoder() -> None:
    model = MiniMaxADModel(dims=TINY_DIMS)
    model.load_authors_checkpoint(PARITY_DIR / "minimaxad_official_checkpoint.pt")
    checkpoint = torch.load(PARITY_DIR / "minimaxad_official_checkpoint.pt", weights_only=True)
    for module, key in ((model.bottleneck, "bn"), (model.decoder, "decoder")):
        for name, value in module.state_dict().items():
            assert torch.equal(value, checkpoint[key][name]), name


@pytest.mark.parametrize("wrapper", [None, "model", "models", "state_dict"])
def test_imagenet_checkpoint_wrappers(tmp_path: Path, wrapper: str | None) -> None:
    tensors = torch.load(PARITY_DIR / "unireplknet_imagenet_layout.pt", weights_only=True)["model"]
    path = tmp_path / "weights.pth"
    torch.save(tensors if wrapper is None else {wrapper: tensors}, path)
    MiniMaxADModel(dims=TINY_DIMS).load_pretrained_encoder(path)


def test_truncated_file_is_refused(tmp_path: Path) -> None:
    data = (PARITY_DIR / "unireplknet_imagenet_layout.pt").read_bytes()
    path = tmp_path / "truncated.pth"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match=r"truncated\.pth"):
        MiniMaxADModel(dims=TINY_DIMS).load_pretrained_encoder(path)


def test_non_checkpoint_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("not a checkpoint")
    with pytest.raises(CheckpointError, match=r"notes\.txt"):
        MiniMaxADModel(dims=TINY_DIMS).load_pretrained_encoder(path)
    torch.save([1, 2, 3], tmp_path / "list.pth")
    with pytest.raises(CheckpointError, match="holds no state dict"):
        MiniMaxADModel(dims=TINY_DIMS).load_pretrained_encoder(tmp_path / "list.pth")


def test_missing_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="not found"):
        MiniMaxADModel(dims=TINY_DIMS).load_pretrained_encoder(tmp_path / "absent.pth")


def test_wrong_shapes_are_listed() -> None:
    model = MiniMaxADModel()  # N widths; the file has the tiny widths
    with pytest.raises(
        CheckpointError, match=r"mis-shaped tensors: downsample_layers\.0\.0\.weight \(file \(8, 3, 3, 3\)"
    ):
        model.load_pretrained_encoder(PARITY_DIR / "unireplknet_imagenet_layout.pt")


def test_missing_keys_are_listed(tmp_path: Path) -> None:
    tensors = torch.load(PARITY_DIR / "unireplknet_imagenet_layout.pt", weights_only=True)["model"]
    del tensors["stages.1.0.dwconv.dil_conv_k5_1.weight"]
    torch.save({"model": tensors}, tmp_path / "incomplete.pth")
    with pytest.raises(CheckpointError, match=r"incomplete.pth.*missing keys: stages\.1\.0\.dwconv\.dil_conv_k5_1"):
        MiniMaxADModel(dims=TINY_DIMS).load_pretrained_encoder(tmp_path / "incomplete.pth")


def test_authors_checkpoint_errors(tmp_path: Path) -> None:
    model = MiniMaxADModel(dims=TINY_DIMS)
    with pytest.raises(CheckpointError, match="expected keys 'bn' and 'decoder'"):
        model.load_authors_checkpoint(PARITY_DIR / "unireplknet_imagenet_layout.pt")
    checkpoint = torch.load(PARITY_DIR / "minimaxad_official_checkpoint.pt", weights_only=True)
    del checkpoint["decoder"]["upsample_layers.0.0.weight"]
    torch.save(checkpoint, tmp_path / "partial.pth")
    with pytest.raises(CheckpointError, match=r"\[decoder\].*upsample_layers\.0\.0\.weight"):
        model.load_authors_checkpoint(tmp_path / "partial.pth")
    with pytest.raises(CheckpointError, match="mis-shaped"):
        MiniMaxADModel().load_authors_checkpoint(PARITY_DIR / "minimaxad_official_checkpoint.pt")


def test_loading_into_a_fused_model_is_refused() -> None:
    model = MiniMaxADModel(dims=TINY_DIMS).reparameterize()
    with pytest.raises(RuntimeError, match="before reparameterize"):
        model.load_pretrained_encoder(PARITY_DIR / "encoder.pt")


def _write_weights_dir(folder: Path, file_name: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    tensors = torch.load(PARITY_DIR / "unireplknet_imagenet_layout.pt", weights_only=True)
    torch.save(tensors, folder / file_name)


def test_weights_dir_environment_variable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _write_weights_dir(tmp_path, "unireplknet_n_in1k_224_acc81.64.pth")
    monkeypatch.setenv(WEIGHTS_DIR_ENV, str(tmp_path))
    source = MiniMaxADModel(dims=TINY_DIMS).load_pretrained_encoder(True)
    assert source == str(tmp_path / "unireplknet_n_in1k_224_acc81.64.pth")
    monkeypatch.setenv(WEIGHTS_DIR_ENV, str(tmp_path / "empty"))
    with pytest.raises(PretrainedWeightsUnavailableError, match=r"does not exist.*pre_trained=False"):
        MiniMaxADModel(dims=TINY_DIMS).load_pretrained_encoder(True)


HUB_SCRIPT = """
import sys
from anomalib_minimaxad.torch_model import MiniMaxADModel
from anomalib_minimaxad.components import PretrainedWeightsUnavailableError
try:
    print("SOURCE", MiniMaxADModel(dims=(16, 32, 64, 128)).load_pretrained_encoder(True))
except PretrainedWeightsUnavailableError as error:
    print("ERROR", error)
"""


def _run_with_hub_env(hf_home: Path) -> str:
    env = {k: v for k, v in os.environ.items() if k != WEIGHTS_DIR_ENV}
    env.update(HF_HOME=str(hf_home), HF_HUB_OFFLINE="1")
    result = subprocess.run(  # noqa: S603
        [sys.executable, "-c", HUB_SCRIPT], env=env, capture_output=True, text=True, timeout=300, check=True
    )
    return result.stdout


def test_hub_offline_without_cache_says_what_to_do(tmp_path: Path) -> None:
    out = _run_with_hub_env(tmp_path / "hf")
    assert "ERROR Could not get the ImageNet weights of unireplknet_n" in out
    assert "https://huggingface.co/DingXiaoH/UniRepLKNet" in out
    assert "pre_trained=False" in out
    assert WEIGHTS_DIR_ENV in out


def test_hub_offline_reads_the_hf_cache(tmp_path: Path) -> None:
    # The layout huggingface_hub itself writes: blobs are reached through snapshots/<revision>.
    repo = tmp_path / "hf" / "hub" / "models--DingXiaoH--UniRepLKNet"
    revision = "0" * 40
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(revision)
    _write_weights_dir(repo / "snapshots" / revision, "unireplknet_n_in1k_224_acc81.64.pth")
    out = _run_with_hub_env(tmp_path / "hf")
    assert "SOURCE hf-hub:DingXiaoH/UniRepLKNet/unireplknet_n_in1k_224_acc81.64.pth" in out
