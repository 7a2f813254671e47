"""The demo pipeline end to end on tiny settings, twice: same seed and threads give the same metrics."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from anomalib_minimaxad.components import WEIGHTS_DIR_ENV
from anomalib_minimaxad.demo import DEMO_CATEGORIES
from anomalib_minimaxad.demo.pipeline import DEFAULT_CATEGORIES, DemoSettings, resolve_categories, run_demo

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def test_categories_default_to_one_and_all_means_every_one() -> None:
    assert resolve_categories(None) == DEFAULT_CATEGORIES
    assert len(DEFAULT_CATEGORIES) == 1
    assert resolve_categories(["all"]) == DEMO_CATEGORIES
    assert resolve_categories(["brick", "grass"]) == ("brick", "grass")


@pytest.mark.slow
def test_demo_pipeline_is_reproducible_on_tiny_settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # No weights anywhere: the demo must say so and go on with a random encoder.
    monkeypatch.setenv(WEIGHTS_DIR_ENV, str(tmp_path / "no_weights"))
    summaries = []
    for run in ("first", "second"):
        settings = DemoSettings(
            data_root=tmp_path / "data",
            output=tmp_path / run,
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
        summary = json.loads((tmp_path / run / "metrics.json").read_text())
        assert summary["categories"]["gravel"] == pytest.approx(rows["gravel"])
        summaries.append(summary)

    summary = summaries[0]
    assert summary["encoder"] == "randomly initialised (offline)"
    assert summary["model_input_size"] == [128, 128]  # the config's Resize, not the generated images' size
    assert summary["dataset_image_size"] == 64
    metrics = summary["categories"]["gravel"]
    for name in ("image_AUROC", "pixel_AUROC", "pixel_AUPRO", "image_F1Score"):
        assert 0.0 <= metrics[name] <= 1.0, name
    assert metrics["latency_ms"] > 0

    # Same seed, same threads: identical metrics (latency aside).
    first, second = ({k: v for k, v in s["categories"]["gravel"].items() if k != "latency_ms"} for s in summaries)
    assert first == second

    out = tmp_path / "first"
    for picture in ("gravel_grid.png", "overview.png"):
        assert (out / picture).read_bytes()[:8] == PNG_SIGNATURE
    assert (out / "metrics.md").read_text().count("| gravel |") == 1
    assert list((out / "export" / "gravel").rglob("model.xml"))
