"""What the fast paths keep between calls follows the weights: the fused copy of the frozen encoder and the
oneDNN-layout weights of a fused model are remade when a weight changes, and stay out of the state dict."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from anomalib_minimaxad.components import FastCPUConv2d, FastCPUConvTranspose2d, fast_cpu
from anomalib_minimaxad.torch_model import MiniMaxADModel

from .conftest import TINY_DIMS, build_parity_model

needs_onednn = pytest.mark.skipif(not fast_cpu.is_available(), reason="this torch build has no oneDNN kernels")


def encoder_features(model: MiniMaxADModel, images: torch.Tensor) -> list[torch.Tensor]:
    with torch.no_grad():
        return model.extract_features(images)[0]


def other_encoder_weights(model: MiniMaxADModel) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(1)
    return {
        key: value + 0.1 * torch.randn(value.shape, generator=generator) if value.is_floating_point() else value
        for key, value in model.encoder.state_dict().items()
    }


@pytest.mark.parametrize("training", [True, False])
def test_frozen_encoder_copy_gives_the_encoders_features(training: bool) -> None:
    model = build_parity_model().train(training)
    images = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected = model.encoder(images)
    for got, want in zip(encoder_features(model, images), expected, strict=True):
        torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-4)


def test_frozen_encoder_copy_follows_new_weights_and_stays_out_of_the_state_dict() -> None:
    model = build_parity_model()
    keys = set(model.state_dict())
    images = torch.rand(1, 3, 64, 64)
    before = encoder_features(model, images)
    model.encoder.load_state_dict(other_encoder_weights(model))  # in place: same tensors, new values
    after = encoder_features(model, images)
    with torch.no_grad():
        expected = model.encoder(images)
    assert (after[0] - before[0]).abs().max() > 1e-2
    for got, want in zip(after, expected, strict=True):
        torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-4)
    assert set(model.state_dict()) == keys
    assert not any(isinstance(module, FastCPUConv2d) for module in model.modules())
    assert not model.fused_copy()._fused_encoder  # the fused model runs its own encoder


def test_hooks_on_the_encoder_fire_with_fuse_frozen_encoder_off() -> None:
    model = MiniMaxADModel(dims=TINY_DIMS).eval()
    images = torch.rand(1, 3, 64, 64)
    encoder_features(model, images)  # makes the fused copy
    calls = []
    model.encoder.stages[0].register_forward_hook(lambda *_: calls.append(1))
    encoder_features(model, images)
    assert calls == []  # the fused copy ran
    model.fuse_frozen_encoder = False
    encoder_features(model, images)
    assert calls == [1]


@needs_onednn
@pytest.mark.parametrize(
    "autocast",
    [
        False,
        pytest.param(
            True, marks=pytest.mark.skipif(not fast_cpu.has_bf16_kernels(), reason="oneDNN has no bf16 kernels here")
        ),
    ],
)
def test_fused_model_follows_weights_loaded_after_fusing(autocast: bool) -> None:
    # Under bf16 autocast the cached copies are bf16 casts of the weights: they follow the weights too.
    fused = build_parity_model().reparameterize()
    images = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(2))
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
        before = fused(images)  # packs the weights of the first model
    other = build_parity_model()
    with torch.no_grad():
        for parameter in other.parameters():
            parameter.mul_(1.1)
    other.reparameterize()
    fused.load_state_dict(other.state_dict())
    plain = other.reparameterize(fast_cpu=False)
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
        got, expected = fused(images), plain(images)
    tolerance = 4e-3 if autocast else 1e-5  # bf16 rounding of two different computations
    assert (got.anomaly_map - before.anomaly_map).abs().max() > 5 * tolerance
    torch.testing.assert_close(got.anomaly_map, expected.anomaly_map, atol=tolerance, rtol=1e-4)


@needs_onednn
@pytest.mark.parametrize("shape", [(1, 16, 32, 32), (3, 16, 20, 28)])
def test_fast_cpu_conv_equals_conv2d(shape: tuple[int, ...]) -> None:
    torch.manual_seed(0)
    conv = nn.Conv2d(16, 24, kernel_size=3, stride=2, padding=1)
    fast = FastCPUConv2d.sharing_parameters(conv)
    assert fast.weight is conv.weight
    assert set(fast.state_dict()) == set(conv.state_dict())
    x = torch.rand(shape)
    with torch.inference_mode():
        for layout in (torch.contiguous_format, torch.channels_last):
            torch.testing.assert_close(fast(x.contiguous(memory_format=layout)), conv(x), atol=1e-5, rtol=1e-5)


@pytest.mark.skipif(not fast_cpu.has_bf16_kernels(), reason="oneDNN has no bf16 kernels on this CPU")
def test_fast_cpu_convs_compute_in_bf16_under_autocast() -> None:
    torch.manual_seed(0)
    conv = nn.Conv2d(16, 24, kernel_size=3, stride=2, padding=1)
    transposed = nn.ConvTranspose2d(16, 24, kernel_size=2, stride=2)
    x = torch.rand(2, 16, 12, 12)
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
        for plain in (conv, transposed):
            fast = (FastCPUConv2d if plain is conv else FastCPUConvTranspose2d).sharing_parameters(plain)
            got, expected = fast(x), plain(x)
            assert got.dtype == expected.dtype == torch.bfloat16
            torch.testing.assert_close(got.float(), expected.float(), atol=2e-2, rtol=1e-2)


@needs_onednn
@pytest.mark.parametrize(("kernel", "bias", "shape"), [(2, False, (1, 16, 8, 8)), (3, True, (2, 16, 5, 7))])
def test_fast_cpu_transposed_conv_equals_conv_transpose2d(kernel: int, bias: bool, shape: tuple[int, ...]) -> None:
    torch.manual_seed(0)
    conv = nn.ConvTranspose2d(16, 24, kernel_size=kernel, stride=kernel, bias=bias)
    fast = FastCPUConvTranspose2d.sharing_parameters(conv)
    assert fast.weight is conv.weight
    assert set(fast.state_dict()) == set(conv.state_dict())
    x = torch.rand(shape)
    calls = [0]
    original = fast_cpu.conv_transpose2d

    def counting(*args: object) -> torch.Tensor:
        calls[0] += 1
        return original(*args)

    with pytest.MonkeyPatch.context() as patch, torch.inference_mode():
        patch.setattr(fast_cpu, "conv_transpose2d", counting)
        for layout in (torch.contiguous_format, torch.channels_last):
            torch.testing.assert_close(fast(x.contiguous(memory_format=layout)), conv(x), atol=1e-5, rtol=1e-5)
    assert calls[0] == 2


@needs_onednn
def test_overlapping_transposed_conv_takes_torchs_kernel(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fast_cpu, "conv_transpose2d", None)  # would fail if called
    conv = nn.ConvTranspose2d(8, 4, kernel_size=3, stride=2, padding=1, output_padding=1)
    x = torch.rand(1, 8, 6, 6)
    with torch.inference_mode():
        torch.testing.assert_close(FastCPUConvTranspose2d.sharing_parameters(conv)(x), conv(x))


@needs_onednn
def test_packed_weights_are_dropped_with_the_model() -> None:
    model = MiniMaxADModel(dims=TINY_DIMS).reparameterize()
    with torch.inference_mode():
        model(torch.rand(1, 3, 64, 64))
    ids = {id(tensor) for tensor in model.parameters()}
    assert ids & {weight_id for weight_id, _ in fast_cpu._packed_weights}
    copied = copy.deepcopy(model)  # the cache is not part of the module: copies pack their own weights
    del model
    assert not ids & {weight_id for weight_id, _ in fast_cpu._packed_weights}
    with torch.inference_mode():
        copied(torch.rand(1, 3, 64, 64))


@needs_onednn
def test_rejected_conv_falls_back_to_conv2d(monkeypatch: pytest.MonkeyPatch) -> None:
    def rejecting(*_args: object) -> torch.Tensor:
        msg = "could not create a primitive descriptor for a convolution forward propagation primitive"
        raise RuntimeError(msg)

    monkeypatch.setattr(fast_cpu, "_ONEDNN_CONV", rejecting)
    monkeypatch.setattr(fast_cpu, "_rejected_dtypes", set())
    conv = nn.Conv2d(8, 8, kernel_size=3, padding=1)
    x = torch.rand(1, 8, 16, 16)
    with torch.inference_mode():
        torch.testing.assert_close(FastCPUConv2d.sharing_parameters(conv)(x), conv(x))
    assert fast_cpu._rejected_dtypes == {torch.float32}  # the fast path is off for float32 from now on
