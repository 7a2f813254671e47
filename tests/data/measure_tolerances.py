"""Measure, at several thread counts, how far each parity comparison of the suite is from its fixture.

Prints one JSON line per thread count (see tests/data/REFERENCE.md, "Tolerances and their measured spread"):

* ``*_usage``: ``max |ours - theirs| / (1e-5 + 1e-4 |theirs|)``, the share of ``conftest.assert_close``'s
  tolerance used (the test passes below 1);
* ``*_rel``: the largest relative error, as the test computes it (for weights: per parameter, in the L2 norm);
* ``*_abs``: the largest absolute difference.

Run from the repository root: ``python tests/data/measure_tolerances.py --threads 1 2 4 8 16``. The kernels that
ATen and oneDNN pick can be lowered to measure other CPUs' rounding, e.g. ``ATEN_CPU_CAPABILITY=avx2
ONEDNN_MAX_CPU_ISA=AVX2``. Each thread count runs in its own process (``torch.set_num_threads``, which, unlike
``OMP_NUM_THREADS``, is not capped at the number of cores).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import torch

REPOSITORY = Path(__file__).resolve().parents[2]


def usage(ours: torch.Tensor, theirs: torch.Tensor) -> float:
    ours, theirs = ours.double(), theirs.double()
    return ((ours - theirs).abs() / (1e-5 + 1e-4 * theirs.abs())).max().item()


def relative(ours: torch.Tensor, theirs: torch.Tensor) -> float:
    ours, theirs = ours.double(), theirs.double()
    return ((ours - theirs).abs() / theirs.abs()).max().item()


def parity_spread() -> dict[str, float]:
    """tests/test_parity.py and tests/test_torch_model.py's re-parameterisation checks."""
    from anomalib_minimaxad.anomaly_map import AnomalyMapGenerator, cosine_distance_map  # noqa: PLC0415
    from anomalib_minimaxad.loss import ADCLoss, GlobalCosineLoss  # noqa: PLC0415
    from tests.conftest import PARITY_DIR, build_parity_model  # noqa: PLC0415

    expected = torch.load(PARITY_DIR / "expected.pt", weights_only=True)
    size = tuple(expected["input"].shape[-2:])
    spread: dict[str, float] = {}
    with torch.no_grad():
        for fused in (False, True):
            model = build_parity_model()
            if fused:
                model.reparameterize()
            _, decoder_features = model.extract_features(expected["input"])
            pairs = [
                *zip(model.encoder(expected["input"]), expected["encoder_features"], strict=True),
                (model.bottleneck(expected["encoder_features"]), expected["bottleneck"]),
                *zip(decoder_features, expected["decoder_features"], strict=True),
            ]
            output = model(expected["input"])
            tag = "reparameterized" if fused else "unfused"
            spread[f"features_usage[{tag}]"] = max(usage(ours, theirs) for ours, theirs in pairs)
            spread[f"eval_output_usage[{tag}]"] = max(
                usage(output.anomaly_map, expected["anomaly_map_smoothed"]),
                usage(output.pred_score, expected["score_top1pct_mean"]),
            )
        encoder, decoder = expected["encoder_features"], expected["decoder_features"]
        smoothed, top = AnomalyMapGenerator()(encoder, decoder, size)
        spread["maps_and_scores_usage"] = max(
            usage(ADCLoss.distance_map(encoder, decoder, size), expected["anomaly_map_loss"]),
            usage(cosine_distance_map(encoder, decoder, size), expected["anomaly_map_eval"]),
            usage(smoothed, expected["anomaly_map_smoothed"]),
            usage(top, expected["score_top1pct_mean"]),
        )
        spread["loss_rel"] = max(
            *(relative(ADCLoss()(encoder, expected[f"decoder_features{c}"], size), expected[f"loss_adc{c}"])
              for c in ("", "_near", "_aligned")),
            *(relative(GlobalCosineLoss()(encoder, expected[f"decoder_features{c}"], size), expected[f"loss_global{c}"])
              for c in ("", "_near")),
        )  # fmt: skip
        model = build_parity_model()
        before = model(expected["input"])
        after = model.reparameterize()(expected["input"])
        spread["reparameterize_abs"] = max(
            (after.anomaly_map - before.anomaly_map).abs().max().item(),
            (after.pred_score - before.pred_score).abs().max().item(),
        )
    return spread


def training_spread() -> dict[str, float]:
    """tests/test_training_parity.py: losses and weights after the fixture's AdamW steps."""
    from tests import test_training_parity as parity  # noqa: PLC0415

    fixture = torch.load(parity.DATA / "training.pt", weights_only=True)
    free = parity.gradient_free(fixture)
    excluded = free | parity.downstream_running_means(free)
    spread: dict[str, float] = {}
    for loss, steps in (("adc", 3), ("global", 2)):
        losses, module = parity.train(fixture, loss, steps)
        spread[f"training_loss_rel[{loss}]"] = relative(torch.tensor(losses), fixture[loss]["losses"])
        worst = 0.0
        for part in ("bottleneck", "decoder"):
            ours = getattr(module.model, part).state_dict()
            theirs = parity.unpack(fixture[loss]["after"][part])
            errors = [parity.relative_error(ours[n], theirs[n]) for n in theirs if f"{part}.{n}" not in excluded]
            worst = max(worst, *errors)
        spread[f"training_weights_rel[{loss}]"] = worst
    return spread


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="thread counts to measure")
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)  # a child process: measure at this count
    args = parser.parse_args()
    if args.one is not None:
        torch.set_num_threads(args.one)
        sys.path.insert(0, str(REPOSITORY))
        spread = {"threads": torch.get_num_threads(), "cpu_capability": torch.backends.cpu.get_cpu_capability()}
        print(json.dumps({**spread, **parity_spread(), **training_spread()}))  # noqa: T201
        return
    for threads in args.threads:
        subprocess.run([sys.executable, __file__, "--one", str(threads)], check=True, cwd=REPOSITORY)  # noqa: S603


if __name__ == "__main__":
    main()
