"""MiniMaxADModel: shapes, input checks, frozen encoder, fusion."""

from __future__ import annotations

import pytest
import torch

from anomalib_minimaxad.loss import ADCLoss
from anomalib_minimaxad.torch_model import MiniMaxADModel

from .conftest import TINY_DIMS


@pytest.fixture(scope="module")
def tiny_model() -> MiniMaxADModel:
    return MiniMaxADModel(dims=TINY_DIMS).eval()


@pytest.mark.parametrize("size", [(250, 250), (400, 400), (224, 320), (64, 96)])
def test_any_input_size(tiny_model: MiniMaxADModel, size: tuple[int, int]) -> None:
    with torch.no_grad():
        output = tiny_model(torch.rand(2, 3, *size))
    assert output.anomaly_map.shape == (2, 1, *size)
    assert output.pred_score.shape == (2,)
    assert torch.isfinite(output.anomaly_map).all()


def test_decoder_features_resized_to_encoder(tiny_model: MiniMaxADModel) -> None:
    with torch.no_grad():
        encoder_features, decoder_features = tiny_model.extract_features(torch.rand(1, 3, 400, 400))
    assert [f.shape[-1] for f in encoder_features] == [100, 50, 25]
    assert [f.shape[-2:] for f in decoder_features] == [f.shape[-2:] for f in encoder_features]


@pytest.mark.parametrize(
    ("shape", "message"),
    [
        ((3, 64, 64), r"shape \(B, 3, H, W\), got a tensor of shape \(3, 64, 64\)"),
        ((1, 1, 64, 64), r"3-channel images, got shape \(1, 1, 64, 64\)"),
        ((1, 3, 16, 64), r"at least 32x32 pixels, got shape \(1, 3, 16, 64\)"),
    ],
)
def test_bad_input_names_the_shape(tiny_model: MiniMaxADModel, shape: tuple[int, ...], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        tiny_model(torch.rand(shape))


def test_unknown_backbone_lists_choices() -> None:
    with pytest.raises(ValueError, match="unireplknet_a, unireplknet_f, unireplknet_p, unireplknet_n"):
        MiniMaxADModel(backbone="resnet18")


def test_gradients_reach_only_bottleneck_and_decoder() -> None:
    model = MiniMaxADModel(dims=TINY_DIMS).train()
    assert not model.encoder.training
    encoder_features, decoder_features = model(torch.rand(2, 3, 64, 64))
    ADCLoss()(encoder_features, decoder_features, (64, 64)).backward()
    assert all(p.grad is None and not p.requires_grad for p in model.encoder.parameters())
    for module in (model.bottleneck, model.decoder):
        assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in module.parameters())


def test_encoder_batchnorm_statistics_stay_frozen_in_training() -> None:
    model = MiniMaxADModel(dims=TINY_DIMS).train()
    before = {k: v.clone() for k, v in model.encoder.state_dict().items()}
    model(torch.rand(2, 3, 64, 64))
    assert all(torch.equal(before[k], v) for k, v in model.encoder.state_dict().items())


def test_reparameterize_keeps_outputs_with_random_statistics() -> None:
    torch.manual_seed(0)
    model = MiniMaxADModel(dims=TINY_DIMS)
    # Non-trivial BN statistics, layer scales and GRN parameters so that every fused term matters.
    for name, tensor in model.state_dict().items():
        if name.endswith(("running_var",)):
            tensor.uniform_(0.5, 2.0)
        elif name.endswith(("running_mean", "gamma", "beta")) or ".bn" in name or "norm" in name:
            tensor.normal_(0, 0.5) if tensor.is_floating_point() else None
    model.eval()
    images = torch.rand(2, 3, 96, 64)
    with torch.no_grad():
        before = model(images)
        after = model.reparameterize()(images)
    assert (before.anomaly_map - after.anomaly_map).abs().max() < 1e-5
    assert (before.pred_score - after.pred_score).abs().max() < 1e-5


def test_fused_model_refuses_training() -> None:
    model = MiniMaxADModel(dims=TINY_DIMS).reparameterize().train()
    with pytest.raises(RuntimeError, match="inference only"):
        model(torch.rand(1, 3, 64, 64))


def test_parameter_counts_of_the_n_model() -> None:
    model = MiniMaxADModel()

    def count(module: torch.nn.Module) -> int:
        return sum(p.numel() for p in module.parameters())

    # The reference's figures (tests/data/REFERENCE.md): encoder 8.99 M used, bottleneck 13.57 M, decoder 9.45 M.
    assert (count(model.encoder), count(model.bottleneck), count(model.decoder)) == (8_985_080, 13_566_080, 9_452_600)
    model.reparameterize()
    # Authors' fused model: 31,301,360; they keep the bottleneck's three BNs unfused (+800).
    assert count(model) == 31_300_560


def test_lightning_tests_and_predicts_with_a_fused_copy() -> None:
    from anomalib_minimaxad import MiniMaxAD  # noqa: PLC0415

    module = MiniMaxAD(pre_trained=False, dims=TINY_DIMS)
    keys = set(module.state_dict())
    module.on_test_start()
    assert module._inference_model().is_reparameterized
    assert not module.model.is_reparameterized  # the trained network stays trainable
    assert set(module.state_dict()) == keys  # the copy is not part of checkpoints
    images = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        fused, plain = module._inference_model()(images), module.model.eval()(images)
    assert (fused.anomaly_map - plain.anomaly_map).abs().max() < 1e-5
    module.on_test_end()
    assert module._inference_model() is module.model
