"""Seeds and resumption through anomalib's CLI: a preset's seed makes ``anomalib train`` repeatable, exactly.

anomalib 2.7's CLI parses ``seed_everything`` but never calls it; for MiniMaxAD our registration seeds as
``LightningCLI`` does (``anomalib_minimaxad._registration``), which also switches on ``ExactResume``. Each run is
the packaged ``demo_cpu`` preset (``seed_everything: 111``) at tiny sizes, through the installed console script.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from anomalib_minimaxad.data import generate_demo_dataset
from anomalib_minimaxad.presets import preset_path

CATEGORY = "brick"
SMALL_PRE_PROCESSOR = (
    '{"class_path": "anomalib.pre_processing.PreProcessor", "init_args": {"transform": '
    '{"class_path": "torchvision.transforms.v2.Resize", "init_args": {"size": [64, 64]}}}}'
)
# A row of the metrics table that `anomalib train` prints after testing: "│ image_AUROC │ 0.83 │".
METRIC_ROW = re.compile(r"│\s*(\w+)\s*│\s*([-+0-9.eE]+|nan)\s*│")


def anomalib_train(dataset: Path, out: Path, *extra: str) -> tuple[dict[str, float], dict[str, torch.Tensor], str]:
    """``anomalib train --config <demo_cpu preset>`` offline at tiny sizes: printed metrics, final weights, output."""
    script = Path(sys.executable).with_name("anomalib")
    command = [
        str(script), "train", "--config", str(preset_path("demo_cpu")),
        "--data.root", str(dataset), "--data.category", CATEGORY,
        "--data.train_batch_size", "4", "--data.num_workers", "0",
        "--model.pre_trained", "false", "--model.dims", "[8,16,32,64]",
        "--model.pre_processor", SMALL_PRE_PROCESSOR, "--model.visualizer", "false",
        "--trainer.max_epochs", "2", "--trainer.enable_progress_bar", "false",
        "--default_root_dir", str(out), *extra,
    ]  # fmt: skip
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONWARNINGS": "ignore", "COLUMNS": "200"}
    env.pop("ANOMALIB_MINIMAXAD_NO_HOOK", None)
    env.pop("PL_GLOBAL_SEED", None)  # the preset's seed, not an inherited one
    process = subprocess.run(  # noqa: S603 - the installed console script with our arguments
        command, cwd=out.parent, env=env, capture_output=True, text=True, timeout=600, check=False
    )
    output = process.stdout + process.stderr
    assert process.returncode == 0, f"{' '.join(command)}\n{output[-5000:]}"
    metrics = {name: float(value) for name, value in METRIC_ROW.findall(process.stdout)}
    assert "image_AUROC" in metrics, process.stdout[-3000:]
    (checkpoint,) = out.rglob("weights/lightning/model.ckpt")
    state = torch.load(checkpoint, map_location="cpu", weights_only=False)["state_dict"]
    return metrics, state, output


def max_difference(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    assert a.keys() == b.keys()
    return max((a[k].double() - b[k].double()).abs().max().item() for k in a if a[k].is_floating_point())


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[dict[str, float], dict[str, torch.Tensor], str]]:
    """Two identical runs, and one interrupted after its first epoch and resumed."""
    work = tmp_path_factory.mktemp("cli_seeds")
    dataset = generate_demo_dataset(
        work / "data", categories=(CATEGORY,), image_size=64, num_train=8, num_test_good=2, num_test_defect=3
    )
    results = {
        "first": anomalib_train(dataset, work / "first"),
        "again": anomalib_train(dataset, work / "again"),
        "interrupted": anomalib_train(dataset, work / "interrupted", "--trainer.max_epochs", "1"),
    }
    (checkpoint,) = (work / "interrupted").rglob("weights/lightning/model.ckpt")
    results["resumed"] = anomalib_train(dataset, work / "resumed", "--ckpt_path", str(checkpoint))
    return results


@pytest.mark.slow
def test_preset_seed_makes_runs_identical(runs: dict) -> None:
    first_metrics, first_state, output = runs["first"]
    again_metrics, again_state, _ = runs["again"]
    assert "Seed set to 111" in output
    assert again_metrics == first_metrics
    assert max_difference(first_state, again_state) == 0.0


@pytest.mark.slow
def test_resumed_run_ends_with_the_uninterrupted_weights_and_prints_their_metrics(runs: dict) -> None:
    first_metrics, first_state, _ = runs["first"]
    _, interrupted_state, _ = runs["interrupted"]
    resumed_metrics, resumed_state, output = runs["resumed"]
    assert max_difference(interrupted_state, first_state) > 1e-3  # the second epoch changed the weights
    assert max_difference(resumed_state, first_state) <= 1e-6
    # anomalib's Engine.train tests with ckpt_path, which would reload the interrupted run's weights.
    assert "testing the weights this run trained" in output
    assert resumed_metrics == first_metrics


def test_the_seed_decides_the_initial_model_and_only_minimaxad_is_seeded(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The same seed builds the same MiniMaxAD, another seed another; anomalib's own models keep anomalib's ways."""
    from anomalib.cli import AnomalibCLI  # noqa: PLC0415 - after the hook is installed by the interpreter

    def build(model: str, seed: int, *model_args: str) -> tuple[AnomalibCLI, str | None]:
        monkeypatch.delenv("PL_GLOBAL_SEED", raising=False)
        arguments = ["fit", "--model", model, "--model.pre_trained", "false", *model_args, "--data", "MVTecAD"]
        cli = AnomalibCLI([*arguments, "--data.root", str(tmp_path), "--seed_everything", str(seed)], run=False)
        return cli, os.environ.get("PL_GLOBAL_SEED")

    _, padim_seed = build("Padim", 5)
    assert padim_seed is None  # anomalib 2.7's CLI does not seed (scripts/upstream/cli_seed.patch would)
    models = {}
    for name, seed in (("first", 111), ("again", 111), ("other", 112)):
        cli, global_seed = build("MiniMaxAD", seed, "--model.dims", "[8,16,32,64]")
        assert global_seed == str(seed)
        assert cli.config["fit"]["seed_everything"] == seed
        models[name] = {k: v for k, v in cli.model.state_dict().items() if k.startswith("model.")}  # the network
    assert max_difference(models["first"], models["again"]) == 0.0
    assert max_difference(models["first"], models["other"]) > 1e-3
