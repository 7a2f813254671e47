"""Our MiniMaxAD computes what the authors' implementation computes (tests/data/parity_tiny)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from anomalib_minimaxad.anomaly_map import AnomalyMapGenerator, cosine_distance_map
from anomalib_minimaxad.lightning_model import MiniMaxAD
from anomalib_minimaxad.loss import ADCLoss, GlobalCosineLoss
from anomalib_minimaxad.torch_model import MiniMaxADModel

from .conftest import TINY_DIMS, assert_close, build_parity_model

IMAGE_SIZE = (64, 64)
# Full-resolution ADC cases whose top-quantile pixels are distinct values (tests/data/adc_distinct).
ADC_DISTINCT = Path(__file__).parent / "data" / "adc_distinct" / "cases.pt"


def assert_loss_close(actual: torch.Tensor, expected: torch.Tensor) -> None:
    """Losses compare relatively at any magnitude (an absolute tolerance would accept any tiny loss)."""
    torch.testing.assert_close(actual.double(), expected.double(), rtol=1e-5, atol=0)


@pytest.fixture(scope="module", params=[False, True], ids=["unfused", "reparameterized"])
def model(request: pytest.FixtureRequest) -> MiniMaxADModel:
    model = build_parity_model()
    return model.reparameterize() if request.param else model


@torch.no_grad()
def test_encoder_features(model: MiniMaxADModel, expected: dict) -> None:
    for ours, theirs in zip(model.encoder(expected["input"]), expected["encoder_features"], strict=True):
        assert_close(ours, theirs)


@torch.no_grad()
def test_bottleneck(model: MiniMaxADModel, expected: dict) -> None:
    assert_close(model.bottleneck(expected["encoder_features"]), expected["bottleneck"])


@torch.no_grad()
def test_decoder_features(model: MiniMaxADModel, expected: dict) -> None:
    _, decoder_features = model.extract_features(expected["input"])
    for ours, theirs in zip(decoder_features, expected["decoder_features"], strict=True):
        assert_close(ours, theirs)


@torch.no_grad()
def test_eval_output(model: MiniMaxADModel, expected: dict) -> None:
    output = model(expected["input"])
    assert_close(output.anomaly_map, expected["anomaly_map_smoothed"])
    assert_close(output.pred_score, expected["score_top1pct_mean"])


def test_maps_and_scores(expected: dict) -> None:
    encoder, decoder = expected["encoder_features"], expected["decoder_features"]
    assert_close(ADCLoss.distance_map(encoder, decoder, IMAGE_SIZE), expected["anomaly_map_loss"])
    assert_close(cosine_distance_map(encoder, decoder, IMAGE_SIZE), expected["anomaly_map_eval"])
    smoothed, top_ratio = AnomalyMapGenerator()(encoder, decoder, IMAGE_SIZE)
    assert_close(smoothed, expected["anomaly_map_smoothed"])
    assert_close(top_ratio, expected["score_top1pct_mean"])
    _, max_score = AnomalyMapGenerator(score_mode="max")(encoder, decoder, IMAGE_SIZE)
    assert_close(max_score, expected["score_max"])


@pytest.mark.parametrize(
    ("case", "branch"),
    [("", "p_hard"), ("_near", "p_hard"), ("_aligned", "p_lim")],
    ids=["random", "near", "aligned"],
)
def test_adc_loss(expected: dict, case: str, branch: str) -> None:
    encoder, decoder = expected["encoder_features"], expected[f"decoder_features{case}"]
    loss = ADCLoss()
    assert_loss_close(loss(encoder, decoder, IMAGE_SIZE), expected[f"loss_adc{case}"])
    _, taken = loss.hard_elements(loss.distance_map(encoder, decoder, IMAGE_SIZE))
    assert taken == branch


@pytest.mark.parametrize("case", ["", "_near"], ids=["random", "near"])
def test_global_loss(expected: dict, case: str) -> None:
    encoder, decoder = expected["encoder_features"], expected[f"decoder_features{case}"]
    assert_loss_close(GlobalCosineLoss()(encoder, decoder, IMAGE_SIZE), expected[f"loss_global{case}"])


@pytest.mark.parametrize(("case", "branch"), [("near", "p_lim"), ("hotspots", "p_hard")])
@pytest.mark.parametrize(("p_hard", "p_lim"), [(None, None), (0.9999, 0.999), (0.999, 0.9995)])
def test_adc_loss_distinct_top_pixels(case: str, branch: str, p_hard: float | None, p_lim: float | None) -> None:
    """Each quantile picks its own pixels here, so a changed ``p_hard`` or ``p_lim`` changes the loss.

    ``None``: the Lightning module's defaults, which must be the authors' 0.9999 and 0.9995.
    """
    data = torch.load(ADC_DISTINCT, weights_only=True)
    encoder = [f.float() for f in data["encoder_features"]]
    decoder = [f.float() for f in data["cases"][case]["decoder_features"]]
    size = tuple(encoder[0].shape[-2:])
    if p_hard is None:
        loss = MiniMaxAD(pre_trained=False, dims=TINY_DIMS, evaluator=False, visualizer=False).loss
        p_hard, p_lim = 0.9999, 0.9995
    else:
        loss = ADCLoss(p_hard=p_hard, p_lim=p_lim)
    assert_loss_close(loss(encoder, decoder, size), data["cases"][case][f"p_hard={p_hard},p_lim={p_lim}"])
    assert loss.hard_elements(loss.distance_map(encoder, decoder, size))[1] == branch


def test_reparameterize_changes_structure_not_outputs(expected: dict) -> None:
    model = build_parity_model()
    with torch.no_grad():
        before = model(expected["input"])
        model.reparameterize()
        after = model(expected["input"])
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())
    assert (after.anomaly_map - before.anomaly_map).abs().max() < 1e-5
    assert (after.pred_score - before.pred_score).abs().max() < 1e-5
