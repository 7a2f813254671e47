"""Quantile, losses and their numeric behaviour."""

from __future__ import annotations

import pytest
import torch

from anomalib_minimaxad.loss import (
    ADCLoss,
    GlobalCosineLoss,
    LocalHardMiningLoss,
    LocalLoss,
    build_loss,
    quantile,
)

IMAGE_SIZE = (32, 32)


@pytest.mark.parametrize("q", [0.0, 0.1, 0.25, 0.5, 0.9, 0.9995, 0.9999, 1.0])
@pytest.mark.parametrize("size", [1, 2, 7, 1000, 4097])
def test_quantile_equals_torch(q: float, size: int) -> None:
    values = torch.randn(size, generator=torch.Generator().manual_seed(size))
    assert quantile(values, q) == torch.quantile(values, q)


def test_quantile_above_torch_limit() -> None:
    # Older torch releases refuse more than 2**24 elements in torch.quantile; ours has no limit.
    n = 2**24 + 3
    values = torch.arange(n, dtype=torch.float64).flip(0)
    q = 0.9999
    assert quantile(values, q).item() == pytest.approx(q * (n - 1), abs=1e-6)
    large = torch.rand(n, generator=torch.Generator().manual_seed(0))
    assert quantile(large, q) == torch.quantile(large, q)


def test_quantile_rejects_bad_q() -> None:
    with pytest.raises(ValueError, match="in \\[0, 1\\]"):
        quantile(torch.rand(3), 1.5)


def features(seed: int, requires_grad: bool = False) -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return [
        torch.randn(2, c, s, s, generator=generator).requires_grad_(requires_grad)
        for c, s in ((8, 8), (16, 4), (32, 2))
    ]


@pytest.mark.parametrize("loss", [ADCLoss(), GlobalCosineLoss(), LocalLoss(), LocalHardMiningLoss()])
def test_losses_are_float32_under_bf16_autocast(loss: torch.nn.Module) -> None:
    encoder, decoder = features(0), features(1)
    reference = loss(encoder, decoder, IMAGE_SIZE)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        mixed = loss([f.bfloat16() for f in encoder], [f.bfloat16() for f in decoder], IMAGE_SIZE)
    assert mixed.dtype == torch.float32
    assert mixed.item() == pytest.approx(reference.item(), rel=0.05)


def test_adc_gradient_only_on_hard_elements() -> None:
    encoder, decoder = features(0), features(1, requires_grad=True)
    loss = ADCLoss()
    distance = loss.distance_map(encoder, decoder, IMAGE_SIZE)
    selected, _ = loss.hard_elements(distance)
    assert 0 < selected.sum() < selected.numel()
    distance_grad = torch.autograd.grad(loss(encoder, decoder, IMAGE_SIZE), decoder[0])[0]
    assert distance_grad.abs().sum() > 0
    # The loss equals the mean of the squared map over the selected elements only.
    assert loss(encoder, decoder, IMAGE_SIZE).item() == pytest.approx((distance[selected] ** 2).mean().item())


def test_local_losses() -> None:
    encoder, decoder = features(0), features(1)
    squared = ADCLoss.distance_map(encoder, decoder, IMAGE_SIZE) ** 2
    assert LocalLoss()(encoder, decoder, IMAGE_SIZE).item() == pytest.approx(squared.mean().item())
    threshold = torch.quantile(squared.flatten(), 0.9)
    hard_mean = squared[squared >= threshold].mean().item()
    assert LocalHardMiningLoss(p_lim=0.9)(encoder, decoder, IMAGE_SIZE).item() == pytest.approx(hard_mean)


def test_identical_features_give_zero_loss() -> None:
    encoder = features(0)
    for name in ("adc", "global", "local", "local_hm"):
        assert build_loss(name)(encoder, encoder, IMAGE_SIZE).item() == pytest.approx(0.0, abs=1e-6)


def test_build_loss_errors() -> None:
    with pytest.raises(ValueError, match="Unknown loss 'cosine'; choose one of: adc, global, local, local_hm"):
        build_loss("cosine")
    for bad in (0.0, 1.0, -0.5, 2.0):
        with pytest.raises(ValueError, match="p_hard must be in \\(0, 1\\)"):
            ADCLoss(p_hard=bad)
        with pytest.raises(ValueError, match="p_lim must be in \\(0, 1\\)"):
            build_loss("adc", p_lim=bad)
