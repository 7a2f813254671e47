"""Smoke tests of the benchmark scripts: each runs on tiny settings and writes its results (no timing checks)."""

from __future__ import annotations

import importlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
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
    bench("speed").main([
        "--quick",
        "--batches",
        "1",
        "--models",
        rows,
        "--dims",
        TINY,
        "--out-dir",
        str(tmp_path),
        *ONE_THREAD,
    ])
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
    bench("profile_fused").main([
        "--quick",
        "--variants",
        "fused_reference,fused",
        "--dims",
        TINY,
        "--out-dir",
        str(tmp_path),
        *ONE_THREAD,
    ])
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


# ---------------------------------------------------------------- accuracy.py --preset

PRESET_COLUMNS = ("I-AUROC", "P-AUROC", "AUPRO", "P-AUPR")


def _run_preset(bench, tmp_path: Path, preset: str, categories: str) -> dict:
    from anomalib_minimaxad.data import generate_demo_dataset  # noqa: PLC0415

    root = generate_demo_dataset(
        tmp_path / "demo", categories=("brick", "grass"), image_size=64, num_train=4, num_test_good=2, num_test_defect=2
    )
    bench("accuracy").main([
        "--preset", preset, "--root", str(root), "--categories", categories, "--pre-trained", "false",
        "--epochs", "1", "--image-size", "64", "--dims", TINY, "--out-dir", str(tmp_path), *ONE_THREAD,
    ])  # fmt: skip
    return _only_json(tmp_path, f"accuracy_preset_{preset}")


def _table_rows(printed: str) -> dict[str, list[str]]:
    """The printed markdown table: row title -> its four 'ours (paper)' cells."""
    rows = [line.strip("|").split("|") for line in printed.splitlines() if line.startswith("| ")]
    return {cells[0].strip(): [cell.strip() for cell in cells[1:]] for cells in rows}


def _assert_finite_percentages(result: dict, categories: list[str]) -> None:
    assert list(result["per_category"]) == categories
    for row in [*result["per_category"].values(), result["mean"]]:
        for column in PRESET_COLUMNS:
            assert 0 <= row[column] <= 100, (column, row)  # None (undefined) or nan fails here


def test_accuracy_preset_unified_on_two_categories_refuses_the_papers_mean(bench, tmp_path, capsys):
    result = _run_preset(bench, tmp_path, "mvtec_unified", "brick,grass")
    printed = capsys.readouterr().out
    assert result["mode"] == "one model for all categories"
    assert len(result["runs"]) == 1
    assert result["pre_trained"] is False
    _assert_finite_percentages(result, ["brick", "grass"])
    assert result["paper"] == {}  # the paper's mean is over 15 categories, this run's over 2
    assert "paper: 15 categories of mvtec; here: 2 (brick, grass)" in result["paper_refused"]
    rows = _table_rows(printed)
    assert list(rows) == ["Category", "brick", "grass", "Mean"]
    for title in ("brick", "grass", "Mean"):
        values = [float(cell.split(" (")[0]) for cell in rows[title]]
        expected = result["mean"] if title == "Mean" else result["per_category"][title]
        assert values == [pytest.approx(expected[c], abs=0.051) for c in PRESET_COLUMNS]
    assert all(cell.endswith("(-)") for title in ("brick", "Mean") for cell in rows[title])
    assert result["paper_refused"] in printed


def test_accuracy_preset_one_class_trains_one_model_per_category(bench, tmp_path, capsys):
    result = _run_preset(bench, tmp_path, "minimaxad", "brick,grass")
    printed = capsys.readouterr().out
    assert result["mode"] == "one model per category"
    assert [run["categories"] for run in result["runs"]] == [["brick"], ["grass"]]
    _assert_finite_percentages(result, ["brick", "grass"])
    assert result["paper"] == {}
    assert "Paper figures: none for preset minimaxad" in printed
    assert printed.count("anomalib train --config") == 2


def test_accuracy_unknown_preset_lists_the_presets(bench, tmp_path, capsys):
    from anomalib_minimaxad.presets import preset_names  # noqa: PLC0415

    with pytest.raises(SystemExit) as exit_info:
        bench("accuracy").main(["--preset", "mvtec_unifed", "--root", str(tmp_path), "--out-dir", str(tmp_path)])
    assert exit_info.value.code == 2
    error = capsys.readouterr().err
    assert "--preset: no preset 'mvtec_unifed'" in error
    assert all(name in error for name in preset_names())
    assert not list(tmp_path.glob("accuracy_preset_*"))


GPU_CHECK = BENCHMARKS / "gpu_check.sh"


def _run_gpu_check(*arguments: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603 - our script, fixed arguments
        [shutil.which("bash") or "/bin/bash", str(GPU_CHECK), *arguments],
        env={**os.environ, "PYTHON": sys.executable},
        capture_output=True,
        text=True,
        timeout=1200,
        check=False,
    )


@pytest.mark.slow
def test_gpu_check_dry_run_runs_every_step_on_the_cpu(tmp_path):
    completed = _run_gpu_check("--dry-run", "--out-dir", str(tmp_path))
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]
    speed = _only_json(tmp_path, "speed")
    assert {row["row"] for row in speed["results"]} == {"minimaxad_fused_cl", "minimaxad_fused_bf16"}
    (train,) = _only_json(tmp_path, "train_cost")["results"]
    assert train["model"] == "minimaxad"
    assert train["median_step_s"] > 0, train
    engine = _only_json(tmp_path, "engine_check")
    assert engine["passed"]
    assert set(engine["stages"]) == {"generate_data", "fit", "test", "export_torch"}


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal without a GPU")
def test_gpu_check_without_a_gpu_says_so(tmp_path):
    completed = _run_gpu_check("--out-dir", str(tmp_path))
    assert completed.returncode == 2
    assert "torch sees no CUDA device; use --dry-run" in completed.stderr
    assert not list(tmp_path.iterdir())


@pytest.mark.slow
def test_openvino_precision_quick(bench, tmp_path):
    result = json.loads(
        bench("openvino_precision").main(["--quick", "--threads", "1", "--out-dir", str(tmp_path)]).read_text()
    )
    variants = {record["variant"]: record for record in result["results"]}
    assert {"f32", "int8_ptq"} <= set(variants)
    assert variants["f32"]["speedup_vs_f32"] == 1.0
    for record in variants.values():
        assert 0.0 <= record["image_AUROC"] <= 1.0
        assert record["median_ms"] > 0
        assert sum(record["profile"]["share_by_precision"].values()) == pytest.approx(1.0)
    assert variants["int8_ptq"]["profile"]["share_by_precision"].get("int8", 0) > 0.3  # the int8 graph runs int8


@pytest.mark.slow  # export and NNCF calibration: ~20 s
def test_speed_openvino_int8_runs_depthwise_convolutions_in_int8(bench, tmp_path):
    # through Core.read_model on the ONNX file NNCF quantised the depthwise kernels per kernel column, and the
    # CPU plugin ran all of them in f32 (the runtime graph calls depthwise and dense convolutions "Convolution")
    result = _run_speed(bench, tmp_path, "minimaxad_fused,openvino_int8")
    rows = [r for r in result["results"] if r["row"] == "minimaxad_openvino_int8"]
    assert rows
    for row in rows:
        assert set(row["layer_precisions"]["Convolution"]) <= {"i8", "u8"}, row["layer_precisions"]


def test_accuracy_paper_figures_only_beside_the_papers_category_set(bench, tmp_path, capsys):
    accuracy = bench("accuracy")
    paper = accuracy.load_paper("mvtec")
    assert paper["mean"]["I-AUROC"] == 98.7
    assert accuracy.comparable_paper(paper, "mvtec", list(reversed(accuracy.MVTEC_CATEGORIES))) is None
    refusal = accuracy.comparable_paper(paper, "mvtec", accuracy.MVTEC_CATEGORIES[:14])
    assert "paper: 15 categories of mvtec; here: 14 (bottle," in refusal
    assert accuracy.comparable_paper({}, None, ["brick"]) is None  # nothing to refuse
    # A seed makes a preset run repeatable: two identical runs give identical metrics.
    first = _run_preset(bench, tmp_path / "first", "minimaxad", "grass")
    second = _run_preset(bench, tmp_path / "second", "minimaxad", "grass")
    assert first["per_category"] == second["per_category"]
    assert "Categories: 1 (grass)" in capsys.readouterr().out


# ---------------------------------------------------------------- eval_scale.py


def test_eval_scale_quick_measures_every_mode_in_its_own_process(bench, tmp_path):
    options = ["--quick", "--data-dir", str(tmp_path / "data"), "--out-dir", str(tmp_path), *ONE_THREAD]
    path = bench("eval_scale").main(options)
    result = json.loads(path.read_text(encoding="utf-8"))
    rows = {(r["phase"], r["mode"], r["size"]): r for r in result["results"]}
    # no "authors" fit: the authors do not validate, their test loads the weights of the first fit
    modes = {"fit": {"ours", "anomalib"}, "test": {"none", "ours", "anomalib", "authors"}}
    assert set(rows) == {(phase, mode, size) for phase in modes for mode in modes[phase] for size in (4, 8)}
    for row in rows.values():
        assert "error" not in row, row
        assert row["peak_rss_mib"] >= row["rss_start_mib"] > 0
        assert row["test_images"] == row["size"]
    assert rows["test", "anomalib", 8]["evaluation"]["post_processor"] == "PostProcessor"
    assert rows["test", "none", 8]["evaluation"] == {"post_processor": None, "test_metrics": []}
    authors = rows["test", "authors", 8]["metrics"]
    assert set(authors) == {
        "image_AUROC",
        "image_AP",
        "image_F1max",
        "pixel_AUROC",
        "pixel_AP",
        "pixel_F1max",
        "pixel_AUPRO",
    }
    assert all(0 <= value <= 1 for value in authors.values()), authors
    assert "metric_ms_per_image" in rows["test", "ours", 8]
    assert {(s["phase"], s["mode"]) for s in result["slopes"]} == {(p, m) for p in modes for m in modes[p]}
    assert all(s["mib_per_image"] is not None for s in result["slopes"])
    assert {f["mode"] for f in result["images_that_fit"]} == {"ours", "anomalib", "authors"}
    assert path.with_suffix(".png").stat().st_size > 0


def test_eval_scale_skips_a_run_predicted_over_the_budget(bench):
    eval_scale = bench("eval_scale")
    measured = [
        {"phase": "test", "mode": "anomalib", "resolution": 256, "size": size, "peak_rss_mib": 500 + 4 * size,
         "rss_start_mib": 500} for size in (200, 400)
    ]  # fmt: skip
    # a line through the measured sizes, then scaled by the pixel count for a resolution not yet measured
    assert eval_scale.predict_peak_mib(measured, eval_scale.Measurement("test", "anomalib", 256, 1600)) == (
        pytest.approx(500 + 4 * 1600)
    )
    assert eval_scale.predict_peak_mib(measured, eval_scale.Measurement("test", "anomalib", 512, 200)) == (
        pytest.approx(500 + 16 * 200)
    )
    assert eval_scale.predict_peak_mib(measured, eval_scale.Measurement("test", "ours", 256, 200)) is None
    fits = eval_scale.images_that_fit(eval_scale.slopes(measured), [8])
    assert fits == [{"resolution": 256, "mode": "anomalib", "phases": ["test"], "8GB": (8e9 / 2**20 - 500) // 4}]


def _authors_pro_by_thresholds(masks: np.ndarray, maps: np.ndarray) -> float:
    """The authors' PRO procedure one threshold at a time, as its description reads (the reference)."""
    from scipy import ndimage  # noqa: PLC0415
    from sklearn.metrics import auc  # noqa: PLC0415

    low, high = maps.min(), maps.max()
    points = []
    for threshold in np.arange(low, high, (high - low) / 200):
        positive = maps > threshold
        overlaps = []
        for mask, binary in zip(masks, positive, strict=True):
            regions, count = ndimage.label(mask, structure=np.ones((3, 3)))
            overlaps += [binary[regions == region].mean() for region in range(1, count + 1)]
        fpr = (positive & (masks == 0)).sum() / (masks == 0).sum()
        points.append((fpr, np.mean(overlaps)))
    kept = np.array([p for p in points if p[0] < 0.3])
    return auc(kept[:, 0] / kept[:, 0].max(), kept[:, 1])


def test_eval_scale_authors_pro_matches_the_procedure_threshold_by_threshold(bench):
    eval_scale = bench("eval_scale")
    rng = np.random.default_rng(0)
    masks = np.zeros((4, 24, 24), dtype=np.uint8)
    masks[0, 2:6, 3:9] = 1
    masks[0, 15:20, 15:17] = 1  # two regions in one image
    masks[1, 10, 10] = 1  # a single pixel
    masks[2, 0:3, 20:24] = 1
    masks[2, 1, 19] = 1  # diagonal neighbour: the same (8-connected) region
    maps = (rng.normal(size=masks.shape) + 1.5 * masks).astype(np.float32)  # masks[3] is all normal
    expected = _authors_pro_by_thresholds(masks, maps)
    assert eval_scale.authors_pro(masks, maps) == pytest.approx(expected, abs=1e-9)
    # a perfect map never gives a false positive: the procedure's FPR rescaling divides by zero
    assert np.isnan(eval_scale.authors_pro(masks, masks.astype(np.float32)))
    assert np.isnan(eval_scale.authors_pro(np.zeros_like(masks), maps))


@pytest.mark.slow  # the preset through anomalib's CLI parser, four forked runs: ~1 min on a loaded machine
def test_eval_scale_realiad_quick_runs_the_unified_preset_on_a_generated_set(bench, tmp_path):
    options = ["--realiad", "--quick", "--data-dir", str(tmp_path / "data"), "--out-dir", str(tmp_path)]
    result = json.loads(bench("eval_scale").main([*options, *ONE_THREAD]).read_text(encoding="utf-8"))["realiad"]
    assert result["preset"] == "realiad_unified"
    assert result["categories"] == ["audiojack", "bottle_cap"]
    runs = result["runs"]
    assert list(runs) == ["fit", "test_pilot_small", "test_pilot", "test_full"]
    for run in runs.values():
        assert "peak_rss_mib" in run, run  # neither skipped nor failed
        assert run["peak_rss_mib"] >= run["rss_start_mib"] > 0
    assert runs["test_full"]["test_images"] == 80  # both categories' whole test lists
    assert runs["test_full"]["predicted_mib"] > 0  # from the two pilot tests
    metrics = runs["test_full"]["metrics"]
    assert {"audiojack/image_AUROC", "bottle_cap/pixel_AUROC", "mean/image_AUROC"} <= set(metrics)
