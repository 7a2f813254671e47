"""The demo pipeline end to end on tiny settings."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from anomalib_minimaxad.components import WEIGHTS_DIR_ENV
from anomalib_minimaxad.demo import DemoSettings, run_demo


@pytest.mark.slow
def test_demo_pipeline_on_tiny_settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # No weights anywhere: the demo must say so and go on with a random encoder.
    monkeypatch.setenv(WEIGHTS_DIR_ENV, str(tmp_path / "no_weights"))
    settings = DemoSettings(
        data_root=tmp_path / "data",
        output=tmp_path / "out",
        categories=("gravel",),
        image_size=64,
        num_train=8,
        num_test_good=3,
        num_test_defect=5,
        extra_train_args=("--trainer.max_epochs", "1", "--model.dims", "[16,32,64,128]"),
    )
    rows = run_demo(settings)
    printed = capsys.readouterr().out
    assert "RANDOMLY INITIALISED encoder" in printed
    assert "| gravel |" in printed

    summary = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert summary["encoder"] == "randomly initialised (offline)"
    metrics = summary["categories"]["gravel"]
    assert metrics == pytest.approx(rows["gravel"])
    for name in ("image_AUROC", "pixel_AUROC", "pixel_AUPRO", "image_F1Score"):
        assert 0.0 <= metrics[name] <= 1.0, name
    assert metrics["latency_ms"] > 0
    grid = tmp_path / "out" / "gravel_grid.png"
    assert grid.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (tmp_path / "out" / "metrics.md").read_text().count("| gravel |") == 1
    assert list((tmp_path / "out" / "export" / "gravel").rglob("model.xml"))
