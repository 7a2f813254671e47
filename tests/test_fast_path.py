"""The optional fast CPU path of fused blocks equals its plain-torch fallback, which takes over where it cannot run."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

from anomalib_minimaxad.components import UniRepLKNetBlock, fast_cpu
from anomalib_minimaxad.torch_model import MiniMaxADModel

from .conftest import TINY_DIMS

needs_onednn = pytest.mark.skipif(not fast_cpu.is_available(), reason="this torch build has no oneDNN fused Linear")


def fused_model(fast: bool = True) -> MiniMaxADModel:
    torch.manual_seed(0)
    model = MiniMaxADModel(dims=TINY_DIMS).eval()
    with torch.no_grad():  # non-trivial layer scales and GRN gains, so that the fused terms matter
        for module in model.modules():
            if isinstance(module, UniRepLKNetBlock):
                module.gamma.uniform_(0.1, 1.0)
                module.act[1].gamma.normal_()
    return model.reparameterize(fast_cpu=fast)


def count_fast_calls(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    calls = [0]
    original = fast_cpu.fused_block_forward

    def counting(block: UniRepLKNetBlock, x: torch.Tensor) -> torch.Tensor:
        calls[0] += 1
        return original(block, x)

    monkeypatch.setattr(fast_cpu, "fused_block_forward", counting)
    return calls


@needs_onednn
@pytest.mark.parametrize(("batch", "size"), [(1, 64), (3, 64), (1, 96)])
def test_fast_path_equals_plain_fallback(monkeypatch: pytest.MonkeyPatch, batch: int, size: int) -> None:
    calls = count_fast_calls(monkeypatch)
    fast, plain = fused_model(fast=True), fused_model(fast=False)
    images = torch.rand(batch, 3, size, size, generator=torch.Generator().manual_seed(batch))
    with torch.inference_mode():
        ours, reference = fast(images), plain(images)
    assert calls[0] > 0  # the fast path ran ...
    assert (ours.anomaly_map - reference.anomaly_map).abs().max() < 1e-5  # ... and gave the fallback's outputs
    assert (ours.pred_score - reference.pred_score).abs().max() < 1e-5


@needs_onednn
@pytest.mark.parametrize("nchw_depthwise", [True, False])
def test_both_depthwise_layouts_equal_plain_fallback(monkeypatch: pytest.MonkeyPatch, nchw_depthwise: bool) -> None:
    # The layout of the 13x13 depthwise convs follows the ISA (NCHW with AVX-512, NHWC below): test both here.
    monkeypatch.setattr(fast_cpu, "_nchw_large_depthwise", nchw_depthwise)
    calls = count_fast_calls(monkeypatch)
    images = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(7))
    with torch.inference_mode():
        ours, reference = fused_model(fast=True)(images), fused_model(fast=False)(images)
    assert calls[0] > 0
    assert (ours.anomaly_map - reference.anomaly_map).abs().max() < 1e-5
    assert (ours.pred_score - reference.pred_score).abs().max() < 1e-5


def test_plain_path_where_the_fast_path_does_not_apply(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = count_fast_calls(monkeypatch)
    model = fused_model()
    images = torch.rand(1, 3, 64, 64)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.float16):
        model(images)
    monkeypatch.setattr(fast_cpu, "_onednn_bf16", False)  # as on AVX2-only CPUs
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        model(images)
    block = model.decoder.stages[0][0]
    features = torch.rand(1, TINY_DIMS[0], 16, 16)
    with torch.enable_grad():
        block(features)
    assert calls[0] == 0
    with torch.inference_mode():
        fused_model(fast=False)(images)
    assert calls[0] == 0
    assert not fast_cpu.applies(features.double())


@pytest.mark.skipif(not fast_cpu.has_bf16_kernels(), reason="oneDNN has no bf16 kernels on this CPU")
@pytest.mark.parametrize("batch", [1, 2])
def test_bf16_autocast_fast_path_is_as_close_to_float32_as_plain_autocast(
    monkeypatch: pytest.MonkeyPatch, batch: int
) -> None:
    calls = count_fast_calls(monkeypatch)
    fast, plain = fused_model(fast=True), fused_model(fast=False)
    images = torch.rand(batch, 3, 64, 64, generator=torch.Generator().manual_seed(batch))
    with torch.inference_mode():
        reference = plain(images)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            ours, autocast = fast(images), plain(images)
    assert calls[0] > 0
    assert ours.anomaly_map.dtype == torch.float32
    for field in ("anomaly_map", "pred_score"):
        ours_error = (getattr(ours, field) - getattr(reference, field)).abs().max()
        autocast_error = (getattr(autocast, field) - getattr(reference, field)).abs().max()
        assert ours_error < 2 * autocast_error + 1e-3, field
        assert (getattr(ours, field) - getattr(autocast, field)).abs().max() < 0.01, field


def test_missing_op_falls_back(monkeypatch: pytest.MonkeyPatch) -> None:
    images = torch.rand(1, 3, 64, 64)
    with torch.inference_mode():
        expected = fused_model(fast=False)(images).anomaly_map
    monkeypatch.setattr(fast_cpu, "_ONEDNN_LINEAR", None)
    calls = count_fast_calls(monkeypatch)
    with torch.inference_mode():
        got = fused_model()(images).anomaly_map
    assert calls[0] == 0
    assert torch.equal(got, expected)


class RejectingOp:
    """Stands for oneDNN refusing its operands (as on AVX2-only CPUs for bf16)."""

    def __call__(self, *_args: object) -> torch.Tensor:
        msg = "could not create a primitive descriptor for the inner product forward propagation primitive"
        raise RuntimeError(msg)

    binary = __call__


@needs_onednn
def test_rejected_operands_fall_back(monkeypatch: pytest.MonkeyPatch) -> None:
    images = torch.rand(2, 3, 64, 64)
    with torch.inference_mode():
        expected = fused_model(fast=False)(images).anomaly_map
    monkeypatch.setattr(fast_cpu, "_ONEDNN_LINEAR", RejectingOp())
    monkeypatch.setattr(fast_cpu, "_rejected_dtypes", set())
    with torch.inference_mode():
        got = fused_model()(images).anomaly_map
    assert (got - expected).abs().max() < 1e-5
    assert fast_cpu._rejected_dtypes == {torch.float32}  # not tried again


BF16_SCRIPT = """
import torch
from anomalib_minimaxad.torch_model import MiniMaxADModel
torch.manual_seed(0)
model = MiniMaxADModel(dims=(16, 32, 64, 128)).eval().reparameterize()
images = torch.rand(2, 3, 64, 64)
with torch.inference_mode():
    reference = model(images).anomaly_map.float()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        mixed = model(images).anomaly_map.float()
assert torch.isfinite(mixed).all()
print(float((mixed - reference).abs().max()))
"""


@pytest.mark.parametrize("isa", [None, "AVX2"])
def test_fused_model_under_bf16_autocast(isa: str | None) -> None:
    env = dict(os.environ, OMP_NUM_THREADS="1")
    if isa:  # oneDNN without native bf16 kernels, as on AVX2-only CPUs
        env |= {"ONEDNN_MAX_CPU_ISA": isa, "MKL_ENABLE_INSTRUCTIONS": isa}
    result = subprocess.run(  # noqa: S603 - our own interpreter and script
        [sys.executable, "-c", BF16_SCRIPT], env=env, capture_output=True, text=True, timeout=300, check=False
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert float(result.stdout.strip().splitlines()[-1]) < 0.05
