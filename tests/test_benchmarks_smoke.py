"""Smoke tests of the benchmark scripts: each runs on tiny settings and writes its results (no timing checks)."""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path

import pytest
import torch

from anomalib_minimaxad.components import fast_cpu

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
TINY = "16,32,64,128"
# One thread: on a loaded machine, two OpenMP threads that keep being descheduled make these tiny runs
# 10-30x slower (barrier waits), one thread does not care.
ONE_THREAD = ["--threads", "1"]


@pytest.fixture(autouse=True)
def _restore_threads():
    """The scripts set torch's thread count for the process: put it back for the other tests."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def bench():
    """Import a benchmark script by name (``benchmarks/`` on ``sys.path`` while the tests run)."""
    sys.path.insert(0, str(BENCHMARKS))
    try:
        yield importlib.import_module
    finally:
        sys.path.remove(str(BENCHMARKS))
        for name, module in list(sys.modules.items()):  # generic names (speed, plot, ...): do not leak them
            if str(getattr(module, "__file__", "") or "").startswith(str(BENCHMARKS)):
                del sys.modules[name]


def _only_json(folder: Path, prefix: str) -> dict:
    files = sorted(folder.glob(f"{prefix}_*.json"))
    assert len(files) == 1, files
    return json.loads(files[0].read_text(encoding="utf-8"))


def test_reference_path_computes_the_fused_model(bench):
    benchlib = bench("benchlib")
    switch = fast_cpu.applies
    fused = benchlib.build_minimaxad((16, 32, 64, 128), fused=True)
    reference = benchlib.build_minimaxad_reference((16, 32, 64, 128))
    for batch in (1, 3):
        images = torch.rand(batch, 3, 64, 96, generator=torch.Generator().manual_seed(batch))
        with torch.inference_mode():
            ours, theirs = fused(images), reference(images)
        assert (ours.anomaly_map - theirs.anomaly_map).abs().max() < 1e-5
        assert (ours.pred_score - theirs.pred_score).abs().max() < 1e-5
    # the reference model switches the package's fast path off around its own forward only
    assert fast_cpu.applies is switch


def _run_speed(bench, tmp_path: Path, rows: str) -> dict:
    bench("speed").main(
        ["--quick", "--batches", "1", "--models", rows, "--dims", TINY, "--out-dir", str(tmp_path), *ONE_THREAD]
    )
    return _only_json(tmp_path, "speed")


def test_speed_quick(bench, tmp_path):
    result = _run_speed(bench, tmp_path, "minimaxad_eager,minimaxad_fused_reference,minimaxad_fused,fused_bf16")
    rows = {r["row"]: r for r in result["results"]}
    assert {"minimaxad_eager", "minimaxad_fused", "minimaxad_fused_bf16"} <= set(rows)
    # bf16 autocast returns float32 maps, within bf16 rounding of the float32 model (random weights, tiny model)
    assert rows["minimaxad_fused_bf16"]["check_vs_fused"]["anomaly_map_max_abs_diff"] < 0.1
    assert rows["minimaxad_fused"]["time_vs_fused"] == pytest.approx(1.0)
    assert rows["minimaxad_eager"]["check_vs_fused"]["anomaly_map_max_abs_diff"] < 1e-5
    assert result["minimaxad_flops_per_image"]["64"]["fused"] > 0


@pytest.mark.slow  # the ONNX export alone takes ~10 s
def test_speed_quick_exported_runtimes(bench, tmp_path):
    result = _run_speed(bench, tmp_path, "minimaxad_fused,onnxruntime,openvino_f32")
    rows = {r["row"]: r for r in result["results"]}
    assert set(rows) == {"minimaxad_fused", "minimaxad_onnxruntime", "minimaxad_openvino_f32"}
    for name in ("minimaxad_onnxruntime", "minimaxad_openvino_f32"):
        assert rows[name]["check_vs_fused"]["anomaly_map_max_abs_diff"] < 1e-4


def test_size_flops_quick(bench, tmp_path):
    bench("size_flops").main(["--quick", "--dims", TINY, "--out-dir", str(tmp_path), *ONE_THREAD])
    result = _only_json(tmp_path, "size_flops")
    flops = {r["model"]: r["gflop"] for r in result["flops"]}
    assert 0 < flops["minimaxad fused"] <= flops["minimaxad (un-fused)"]
    assert result["fp32_peak"]["gflops"] > 0


def test_profile_quick(bench, tmp_path):
    bench("profile_fused").main(
        ["--quick", "--variants", "fused_reference,fused", "--dims", TINY, "--out-dir", str(tmp_path), *ONE_THREAD]
    )
    result = _only_json(tmp_path, "profile")
    assert set(result["profiles"]) == {"fused_reference", "fused"}
    assert "fused_reference_over_fused" in result["ratios"]


def test_train_cost_quick(bench, tmp_path, monkeypatch):
    train_cost = bench("train_cost")
    monkeypatch.delenv("MINIMAXAD_AUTHORS_REPO", raising=False)
    # one configuration = one fresh interpreter; bf16-mixed also covers the fp32 code path (autocast off)
    options = ["--models", "authors,minimaxad", "--precisions", "bf16-mixed", "--memory-formats", "channels_last"]
    train_cost.main(["--quick", *options, "--dims", TINY, "--out-dir", str(tmp_path), *ONE_THREAD])
    authors, ours = _only_json(tmp_path, "train_cost")["results"]
    assert authors["model"] == "authors"
    assert "MINIMAXAD_AUTHORS_REPO" in authors["skipped"]  # no checkout: skipped, saying how to get one
    assert "error" not in ours, ours
    assert ours["peak_rss_mib"] >= ours["rss_after_setup_mib"] > 0
    assert ours["median_step_s"] > 0
    assert ours["first_loss"] > 0


def test_speed_authors_row_is_skipped_with_the_reason(bench, tmp_path, monkeypatch):
    monkeypatch.delenv("MINIMAXAD_AUTHORS_REPO", raising=False)
    result = _run_speed(bench, tmp_path, "minimaxad_fused,authors_reparameterized")
    assert result["skipped"]
    for skip in result["skipped"]:
        assert skip["row"] == "authors_reparameterized"
        assert "MINIMAXAD_AUTHORS_REPO" in skip["reason"]
    assert result["machine"]["isa"]  # the ISA the run had, e.g. "AVX2 (FMA)"


def test_accuracy_then_plot_quick(bench, tmp_path):
    bench("accuracy").main([
        "--dataset", "demo", "--quick", "--models", "minimaxad", "--dims", TINY,
        "--root", str(tmp_path / "demo"), "--out-dir", str(tmp_path), *ONE_THREAD,
    ])  # fmt: skip
    accuracy = _only_json(tmp_path, "accuracy_demo")
    assert accuracy["pre_trained"] is False
    assert "RANDOMLY INITIALISED" in accuracy["condition"]
    assert 0 <= accuracy["means"]["minimaxad"]["I-AUROC"] <= 100
    assert len(list(tmp_path.glob("accuracy_demo_*.csv"))) == 1
    # plot.py needs a speed result: a minimal one in the format speed.py writes
    speed = {
        "machine": {"cpu": "test-cpu"},
        "config": {"threads": 2},
        "results": [{"row": "minimaxad_fused", "device": "cpu", "size": 64, "batch": 1, "median_ms": 12.0}],
    }
    (tmp_path / "speed_test.json").write_text(json.dumps(speed), encoding="utf-8")
    out = bench("plot").main(["--results-dir", str(tmp_path), "--out", str(tmp_path / "plot.png")])
    assert out.stat().st_size > 0
