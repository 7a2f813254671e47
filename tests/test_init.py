"""Initial weights follow the references: the authors' for bottleneck/decoder, UniRepLKNet's for the encoder.

``tests/data/init_stats.json`` holds, per parameter group (module type, parameter name,
shape), the count, mean, std, min and max measured from the reference code with the same
seeds (see tests/data/REFERENCE.md). Our networks built with those seeds must give the same
groups and statistics within sampling tolerance.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from torch import nn

from anomalib_minimaxad.components import Bottleneck, Decoder, UniRepLKNetEncoder
from anomalib_minimaxad.components.weight_init import init_minimaxad, init_unireplknet

REFERENCE = json.loads((Path(__file__).parent / "data" / "init_stats.json").read_text())
DEPTHS = tuple(REFERENCE["depths"])
# Our module types under the reference's names.
KIND = {"LayerNorm2d": "LayerNorm", "UniRepLKNetBlock": "LayerScale"}
# trunc_normal_'s inverse-CDF sampler clamps a draw of exactly -1 (or a rounding to +1) to
# the bound, +-2; such rare values are counted, not averaged.
TRUNC_BOUND = 2.0

BUILDERS: dict[str, Callable[[tuple[int, ...]], nn.Module]] = {
    "bottleneck": Bottleneck,
    "decoder": lambda dims: Decoder(dims, DEPTHS),
    "encoder": lambda dims: UniRepLKNetEncoder(dims, DEPTHS),
}


def compared_parts(module: nn.Module) -> list[nn.Module]:
    """The modules the reference measured: the encoder's ``norm0-2`` are MiniMaxAD's, not UniRepLKNet's."""
    if isinstance(module, UniRepLKNetEncoder):
        return [module.downsample_layers, module.stages]
    return [module]


def group_stats(modules: list[nn.Module]) -> dict[str, dict[str, float]]:
    """Statistics of all parameters, pooled per ``Kind.name[shape]``."""
    groups: dict[str, list[torch.Tensor]] = {}
    for root in modules:
        for module in root.modules():
            kind = KIND.get(type(module).__name__, type(module).__name__)
            for name, param in module.named_parameters(recurse=False):
                key = f"{kind}.{name}[{'x'.join(map(str, param.shape))}]"
                groups.setdefault(key, []).append(param.detach().flatten().double())
    stats = {}
    for key, tensors in groups.items():
        values = torch.cat(tensors)
        at_bound = values.abs() == TRUNC_BOUND
        inside = values[~at_bound]
        stats[key] = {
            "n": values.numel(),
            "at_bound": int(at_bound.sum()),
            "mean": inside.mean().item(),
            "std": inside.std(unbiased=False).item(),
            "min": inside.min().item(),
            "max": inside.max().item(),
        }
    return stats


def mismatches(ours: dict[str, dict[str, float]], theirs: dict[str, dict[str, float]]) -> list[str]:
    """Groups whose statistics differ by more than sampling noise (about 6 standard errors)."""
    if set(ours) != set(theirs):
        return [f"groups differ: {sorted(set(ours) ^ set(theirs))}"]
    found = []
    for key, ref in theirs.items():
        got, n, std = ours[key], ref["n"], ref["std"]
        if got["n"] != n or got["at_bound"] > 2:
            found.append(f"{key}: n {got['n']} vs {n}, {got['at_bound']} values at the truncation bound")
        elif std == 0.0:  # a constant (norm weights/biases, GRN, layer scale)
            if any(got[s] != pytest.approx(ref[s], abs=1e-12) for s in ("mean", "std", "min", "max")):
                found.append(f"{key}: {got} vs constant {ref}")
        else:
            extent = max(abs(ref["min"]), abs(ref["max"]))
            if abs(got["mean"] - ref["mean"]) > 6 * std * math.sqrt(2 / n):
                found.append(f"{key}: mean {got['mean']:.3g} vs {ref['mean']:.3g}")
            if abs(got["std"] / std - 1) > 6 / math.sqrt(n) + 1e-3:
                found.append(f"{key}: std {got['std']:.4g} vs {std:.4g}")
            if max(abs(got["min"] - ref["min"]), abs(got["max"] - ref["max"])) > 0.5 * extent:
                found.append(
                    f"{key}: range [{got['min']:.3g}, {got['max']:.3g}] vs [{ref['min']:.3g}, {ref['max']:.3g}]"
                )
    return found


def built_stats(config: str, part: str) -> dict[str, dict[str, float]]:
    reference = REFERENCE["configs"][config]
    modules = []
    for seed in reference["seeds"]:
        torch.manual_seed(seed)
        modules += compared_parts(BUILDERS[part](tuple(reference["dims"])))
    return group_stats(modules)


@pytest.mark.parametrize("part", ["bottleneck", "decoder", "encoder"])
@pytest.mark.parametrize("config", ["tiny", "n"], ids=["tiny", "unireplknet_n"])
def test_init_statistics_match_reference(config: str, part: str) -> None:
    assert mismatches(built_stats(config, part), REFERENCE["configs"][config][part]) == []


def test_comparison_rejects_the_other_init() -> None:
    """Swapping the two inits is detected in every part, so the test above can fail."""
    swapped = {"bottleneck": init_unireplknet, "decoder": init_unireplknet, "encoder": init_minimaxad}
    reference = REFERENCE["configs"]["tiny"]
    for part, init in swapped.items():
        torch.manual_seed(0)
        module = BUILDERS[part](tuple(reference["dims"]))
        module.apply(init)
        assert mismatches(group_stats(compared_parts(module)), reference[part]), part


def test_minimaxad_init_leaves_pytorch_defaults() -> None:
    """Only Conv2d weights (Kaiming normal, fan_out) and BN change; linears and biases keep their draws."""
    linear, transposed, conv = nn.Linear(8, 8), nn.ConvTranspose2d(8, 4, 2, stride=2), nn.Conv2d(8, 16, 3)
    before = [p.clone() for p in (linear.weight, linear.bias, transposed.weight, conv.bias)]
    for module in (linear, transposed, conv):
        module.apply(init_minimaxad)
    after = [linear.weight, linear.bias, transposed.weight, conv.bias]
    assert all(torch.equal(b, a) for b, a in zip(before, after, strict=True))
    assert conv.weight.std().item() == pytest.approx(math.sqrt(2 / (16 * 3 * 3)), rel=0.1)
