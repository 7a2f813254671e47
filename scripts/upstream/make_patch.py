# Copyright (C) 2026 anomalib-minimaxad developers
# SPDX-License-Identifier: Apache-2.0
"""Lay the package out in anomalib 2.7.0's source tree and write the result as a git patch.

Run through ``scripts/upstream_patch.sh``, which downloads the source distribution. Every step is mechanical:

1. the sdist is extracted and committed as the base, together with the two files of anomalib's repository that
   the patch edits but the sdist lacks (``scripts/upstream/anomalib_repo/``: Studio's ``model_metadata.yaml`` and
   the docs' model index, vendored at the commit named in that folder's README);
2. ``scripts/upstream/cli_seed.patch`` (an anomalib CLI fix), if present, is applied;
3. each package file is copied where ``scripts/upstream/layout.txt`` puts it, with three rewrites: the copyright
   line names Intel Corporation (anomalib's ruff ``CPY001`` requires it of every file), module paths follow the
   layout (``anomalib_minimaxad.metrics`` -> ``anomalib.metrics.per_image_aupro``, relative imports between
   modules that the layout separates become absolute), and the imports are re-sorted (ruff's isort, as the new
   paths sort differently);
4. the model is registered in ``anomalib.models`` and ``anomalib.models.image``; the model README (its benchmark
   table read from ``benchmarks/results/``), LICENSE, docs page, example config (the ``model:`` and ``trainer:`` of
   ``configs/minimaxad.yaml``), ``third-party-programs.txt``, CHANGELOG and Studio entries are added from
   ``scripts/upstream/files/``;
5. ``git diff`` of the tree against the base is the patch.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

# The checkout whose package is laid out (another one only to try the script on a snapshot).
REPO = Path(os.environ.get("MINIMAXAD_UPSTREAM_SOURCE", Path(__file__).resolve().parents[2])).resolve()
HERE = Path(__file__).resolve().parent
PACKAGE = "anomalib_minimaxad"
MODEL_PACKAGE = "anomalib.models.image.minimaxad"
OUR_COPYRIGHT = re.compile(r"^# Copyright \(C\) (\d{4}(?:-\d{4})?) anomalib-minimaxad developers$", re.MULTILINE)
ANOMALIB_COPYRIGHT = r"# Copyright (C) \1 Intel Corporation"
MODULE_REFERENCE = re.compile(rf"\b{PACKAGE}((?:\.[A-Za-z_][A-Za-z0-9_]*)*)\b(?!_)")
RELATIVE_IMPORT = re.compile(r"^(?P<indent>[ \t]*)from (?P<dots>\.+)(?P<module>[A-Za-z_][A-Za-z0-9_.]*)? import ", re.M)


class LayoutError(RuntimeError):
    """The layout table does not account for a package file or module."""


@dataclass(frozen=True)
class Rule:
    """One line of layout.txt."""

    pattern: str
    target: str | None  # None: excluded
    reason: str
    line: int

    def matches(self, path: str) -> re.Match[str] | None:
        """The match of this rule's pattern on a package path (``None`` if it does not match)."""
        regex = "^" + re.escape(self.pattern).replace(r"\*", "([^/]*)") + "$"
        return re.match(regex, path)


def read_layout(path: Path) -> list[Rule]:
    """The rules of layout.txt, in order."""
    rules = []
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        pattern, _, rest = line.partition(" ")
        rest = rest.strip()
        if not rest:
            msg = f"{path}:{number}: no target for {pattern!r}"
            raise LayoutError(msg)
        if rest.startswith("- ") or rest == "-":
            rules.append(Rule(pattern, None, rest[1:].strip(), number))
        else:
            rules.append(Rule(pattern, rest, "", number))
    return rules


def package_files() -> list[str]:
    """The package's files as git sees them (tracked, or new and not ignored)."""
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "--", PACKAGE],
        cwd=REPO,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()
    return sorted({path for path in listed if (REPO / path).is_file() and "__pycache__" not in path})


def place(files: list[str], rules: list[Rule]) -> dict[str, str | None]:
    """Package path -> anomalib path (None: excluded); every file must match a rule."""
    placed: dict[str, str | None] = {}
    unmapped = []
    for path in files:
        for rule in rules:
            match = rule.matches(path)
            if match is None:
                continue
            if rule.target is None:
                placed[path] = None
            else:
                name = match.group(1) if match.groups() else PurePosixPath(path).name
                placed[path] = rule.target.replace("*", name)
            break
        else:
            unmapped.append(path)
    if unmapped:
        msg = (
            "scripts/upstream/layout.txt has no rule for: "
            + ", ".join(unmapped)
            + ". Add a line saying where each goes in anomalib (or '-' and why it stays out)."
        )
        raise LayoutError(msg)
    targets = [target for target in placed.values() if target is not None]
    duplicates = sorted({target for target in targets if targets.count(target) > 1})
    if duplicates:
        msg = f"layout.txt puts several package files at: {', '.join(duplicates)}"
        raise LayoutError(msg)
    return placed


def module_name(path: str) -> str:
    """``anomalib_minimaxad/components/layers.py`` -> ``anomalib_minimaxad.components.layers``."""
    parts = list(PurePosixPath(path).with_suffix("").parts)
    if parts[0] == "src":
        parts = parts[1:]
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def module_map(placed: dict[str, str | None]) -> dict[str, str | None]:
    """Our module -> anomalib module (None: excluded), for the Python files of the package."""
    return {
        module_name(path): None if target is None else module_name(target)
        for path, target in placed.items()
        if path.endswith(".py")
    }


def translate(reference: str, modules: dict[str, str | None], where: str) -> str:
    """``anomalib_minimaxad.metrics.PerImageAUPRO`` -> ``anomalib.metrics.per_image_aupro.PerImageAUPRO``."""
    parts = reference.split(".")
    for length in range(len(parts), 0, -1):
        candidate = ".".join(parts[:length])
        if candidate in modules:
            rest = parts[length:]
            folder = REPO / candidate.replace(".", "/")
            if rest and ((folder / rest[0]).is_dir() or (folder / f"{rest[0]}.py").is_file()):
                msg = f"{where} refers to {reference}: layout.txt places no module {candidate}.{rest[0]}"
                raise LayoutError(msg)
            target = modules[candidate]
            if target is None:
                msg = f"{where} refers to {reference}, but layout.txt leaves {candidate} out of anomalib"
                raise LayoutError(msg)
            return ".".join([target, *parts[length:]])
    msg = f"{where} refers to {reference}, which is no module of the package"
    raise LayoutError(msg)


def rewrite_source(text: str, path: str, modules: dict[str, str | None]) -> str:
    """The copyright line, relative imports across the layout's folders, and every ``anomalib_minimaxad`` path."""
    text, count = OUR_COPYRIGHT.subn(ANOMALIB_COPYRIGHT, text, count=1)
    if count != 1:
        msg = f"{path} lacks the line '# Copyright (C) <year> anomalib-minimaxad developers'"
        raise LayoutError(msg)
    own = module_name(path)
    package = own if path.endswith("__init__.py") else own.rpartition(".")[0]
    own_target = modules[own]
    if own_target is None:
        msg = f"{path} is excluded by layout.txt"
        raise LayoutError(msg)
    target_package = own_target if path.endswith("__init__.py") else own_target.rpartition(".")[0]

    def absolute_if_moved(match: re.Match[str]) -> str:
        base = package.split(".")
        levels = len(match["dots"]) - 1
        if levels:
            base = base[:-levels]
        imported = ".".join([*base, *([match["module"]] if match["module"] else [])])
        target = translate(imported, modules, f"{path} (from {match['dots']}{match['module'] or ''})")
        # A relative import stays relative while both modules keep their places relative to each other.
        target_base = target_package.split(".")
        if levels:
            target_base = target_base[:-levels]
        unchanged = ".".join([*target_base, *([match["module"]] if match["module"] else [])])
        if target == unchanged:
            return match[0]
        return f"{match['indent']}from {target} import "

    text = RELATIVE_IMPORT.sub(absolute_if_moved, text)
    text = MODULE_REFERENCE.sub(lambda m: translate(m[0], modules, path), text)
    if "anomalib-minimaxad" in text:
        line = text[: text.index("anomalib-minimaxad")].count("\n") + 1
        msg = f"{path}:{line} names the plugin distribution anomalib-minimaxad, which anomalib does not have"
        raise LayoutError(msg)
    return text


def run(command: list[str], cwd: Path) -> None:
    """Run a command (git, ruff) in ``cwd``; fail on a non-zero exit."""
    subprocess.run(command, cwd=cwd, check=True)


def git(tree: Path, *args: str) -> str:
    """Output of ``git ARGS`` in ``tree``."""
    return subprocess.run(["git", *args], cwd=tree, check=True, capture_output=True, text=True).stdout


def insert_after(path: Path, anchor: str, addition: str, count: int = 1) -> None:
    """Insert ``addition`` after the ``count`` lines equal to ``anchor`` (each occurrence), or fail."""
    text = path.read_text(encoding="utf-8")
    lines = text.splitlines(keepends=True)
    positions = [i for i, line in enumerate(lines) if line.rstrip("\n") == anchor]
    if len(positions) != count:
        msg = (
            f"{path}: expected {count} line(s) {anchor!r}, found {len(positions)}: anomalib changed, update the script"
        )
        raise LayoutError(msg)
    for position in reversed(positions):
        lines.insert(position + 1, addition)
    path.write_text("".join(lines), encoding="utf-8")


def insert_before(path: Path, anchor: str, addition: str) -> None:
    """Insert ``addition`` before the one occurrence of ``anchor``, or fail."""
    text = path.read_text(encoding="utf-8")
    if text.count(anchor) != 1:
        msg = f"{path}: expected one {anchor!r}, found {text.count(anchor)}: anomalib changed, update the script"
        raise LayoutError(msg)
    path.write_text(text.replace(anchor, addition + anchor), encoding="utf-8")


def register(tree: Path) -> None:
    """Add MiniMaxAD to anomalib.models and anomalib.models.image, after MH-PatchCore (alphabetical order)."""
    image = tree / "src/anomalib/models/image/__init__.py"
    insert_after(
        image,
        "    - :class:`MHPatchcore`: Mahalanobis PatchCore",
        "    - :class:`MiniMaxAD`: Lightweight Autoencoder for Feature-Rich Anomaly Detection\n",
    )
    insert_after(image, "from .mh_patchcore import MHPatchcore", "from .minimaxad import MiniMaxAD\n")
    insert_after(image, '    "MHPatchcore",', '    "MiniMaxAD",\n')
    models = tree / "src/anomalib/models/__init__.py"
    insert_after(
        models,
        "    - MH-PatchCore (:class:`anomalib.models.image.MHPatchcore`)",
        "    - MiniMaxAD (:class:`anomalib.models.image.MiniMaxAD`)\n",
    )
    insert_after(models, "    MHPatchcore,", "    MiniMaxAD,\n")
    insert_after(models, '    "MHPatchcore",', '    "MiniMaxAD",\n')


def example_config(preset: Path) -> str:
    """The ``model:`` and ``trainer:`` blocks of a preset, as anomalib's examples/configs/model/*.yaml."""
    blocks: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in preset.read_text(encoding="utf-8").splitlines():
        key = re.match(r"^([A-Za-z_]+):", line)
        if key:
            current = blocks.setdefault(key.group(1), []) if key.group(1) in {"model", "trainer"} else None
        if current is not None:
            current.append(line)
    if set(blocks) != {"model", "trainer"}:
        msg = f"{preset} lacks a model: or trainer: block"
        raise LayoutError(msg)
    model = "\n".join(blocks["model"]).rstrip()
    model, count = re.subn(
        r"class_path: anomalib_minimaxad\.MiniMaxAD\b",
        "class_path: anomalib.models.MiniMaxAD",
        model,
    )
    if count != 1:
        msg = f"{preset}: model.class_path is not anomalib_minimaxad.MiniMaxAD"
        raise LayoutError(msg)
    return model + "\n\n" + "\n".join(blocks["trainer"]).rstrip() + "\n"


def benchmark_table() -> str:
    """Markdown table of the newest saved demo accuracy run (benchmarks/accuracy.py --dataset demo)."""
    runs = sorted((REPO / "benchmarks/results").glob("accuracy_demo_*.json"))
    if not runs:
        msg = "no benchmarks/results/accuracy_demo_*.json to make the model README's benchmark table from"
        raise LayoutError(msg)
    run_file = runs[-1]
    result = json.loads(run_file.read_text(encoding="utf-8"))
    metrics = list(result["metrics"])
    names = {"minimaxad": "MiniMaxAD", "reverse_distillation": "Reverse Distillation", "patchcore": "PatchCore"}
    rows = [
        "| Model | " + " | ".join(metrics) + " |",
        "| --- | " + " | ".join("---" for _ in metrics) + " |",
    ]
    rows.extend(
        f"| {names.get(model, model)} | " + " | ".join(f"{means[metric]:.1f}" for metric in metrics) + " |"
        for model, means in result["means"].items()
    )
    machine = result["machine"]
    source = (
        f"`{run_file.name}` of the anomalib-minimaxad repository: {result['condition']} "
        f"Mean over the categories; anomalib {machine.get('anomalib')}, torch {machine.get('torch')}, "
        f"{machine.get('cpu')} ({machine.get('isa')}), {machine.get('date', '')[:10]}."
    )
    return "\n".join(rows) + "\n\n" + source


def paper_table() -> str:
    """Markdown table of the paper's figures stored in benchmarks/paper_results.json (those it holds)."""
    paper = json.loads((REPO / "benchmarks/paper_results.json").read_text(encoding="utf-8"))
    rows = ["| Dataset | Setting | Metric | Paper | Checked against the paper |", "| --- | --- | --- | --- | --- |"]
    for dataset, entry in paper["datasets"].items():
        if not entry:
            continue
        for metric, value in entry.get("mean", {}).items():
            setting = entry["setting"].split(",")[0]
            checked = "yes" if entry.get("verified") else "no (figure as given, table not read)"
            rows.append(f"| {dataset} | {setting} | {metric} | {value} | {checked} |")
    return "\n".join(rows)


def add_files(tree: Path) -> None:
    """The model README, LICENSE, docs page, example config, third-party, CHANGELOG and Studio entries."""
    files = HERE / "files"
    model_dir = tree / "src/anomalib/models/image/minimaxad"
    readme = (files / "model_README.md").read_text(encoding="utf-8")
    (model_dir / "README.md").write_text(
        readme.replace("{paper_table}", paper_table()).replace("{benchmark_table}", benchmark_table()),  # noqa: RUF027
        encoding="utf-8",
    )
    shutil.copyfile(files / "LICENSE", model_dir / "LICENSE")
    docs = tree / "docs/source/markdown/guides/reference/models/image"
    docs.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(files / "docs_minimaxad.md", docs / "minimaxad.md")
    insert_before(
        docs / "index.md",
        ":::{grid-item-card} {material-regular}`model_training;1.5em` PaDiM\n",
        (files / "docs_index_card.md").read_text(encoding="utf-8"),
    )
    insert_after(docs / "index.md", "./l2bt", "./minimaxad\n")
    config = tree / "examples/configs/model/minimaxad.yaml"
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text(example_config(REPO / PACKAGE / "configs/minimaxad.yaml"), encoding="utf-8")

    third_party = tree / "third-party-programs.txt"
    text = third_party.read_text(encoding="utf-8")
    number = max(int(n) for n in re.findall(r"^(\d+)\. ", text, re.MULTILINE)) + 1
    entries = (files / "third_party_programs.txt").read_text(encoding="utf-8")
    entries = re.sub(r"^N\+(\d+)\. ", lambda m: f"{number + int(m[1])}. ", entries, flags=re.MULTILINE)
    third_party.write_text(text.rstrip("\n") + "\n\n" + entries, encoding="utf-8")

    changelog = tree / "CHANGELOG.md"
    text = changelog.read_text(encoding="utf-8")
    unreleased = "## [Unreleased]\n\n### Added\n\n"
    if text.count(unreleased) != 1:
        msg = f"{changelog}: no '## [Unreleased]' section starting with '### Added'"
        raise LayoutError(msg)
    entry = (files / "CHANGELOG_entry.md").read_text(encoding="utf-8")
    changelog.write_text(text.replace(unreleased, unreleased + entry + "\n"), encoding="utf-8")

    metadata = tree / "application/backend/src/core/model_metadata.yaml"
    gan_section = "# =============================================================================\n# GAN-based\n"
    insert_before(metadata, gan_section, (files / "model_metadata_entry.yaml").read_text(encoding="utf-8") + "\n")


def extract(sdist: Path, tree: Path) -> None:
    """Extract the sdist's one top folder as ``tree``."""
    with tempfile.TemporaryDirectory(dir=tree.parent) as scratch, tarfile.open(sdist) as archive:
        top = {PurePosixPath(member.name).parts[0] for member in archive.getmembers()}
        if len(top) != 1:
            msg = f"{sdist} has several top folders: {sorted(top)}"
            raise LayoutError(msg)
        archive.extractall(scratch, filter="data")
        (Path(scratch) / top.pop()).rename(tree)


def make_tree(sdist: Path, tree: Path) -> list[str]:
    """Build the patched tree; return the anomalib paths of the Python files written or edited."""
    if tree.exists():
        shutil.rmtree(tree)
    tree.parent.mkdir(parents=True, exist_ok=True)
    extract(sdist, tree)
    shutil.copytree(HERE / "anomalib_repo", tree, dirs_exist_ok=True, ignore=shutil.ignore_patterns("README.md"))
    git(tree, "init", "--quiet")
    git(tree, "add", "--all")
    git(tree, "-c", "user.name=base", "-c", "user.email=base@localhost", "commit", "--quiet", "-m", "anomalib sdist")

    cli_patch = HERE / "cli_seed.patch"
    if cli_patch.is_file():
        run(["git", "apply", "--whitespace=nowarn", str(cli_patch)], tree)

    placed = place(package_files(), read_layout(HERE / "layout.txt"))
    modules = module_map(placed)
    written = []
    for path, target in placed.items():
        if target is None:
            continue
        destination = tree / target
        if destination.exists():
            msg = f"layout.txt puts {path} at {target}, which anomalib already has"
            raise LayoutError(msg)
        destination.parent.mkdir(parents=True, exist_ok=True)
        source = (REPO / path).read_text(encoding="utf-8")
        destination.write_text(rewrite_source(source, path, modules) if path.endswith(".py") else source)
        written.append(target)
    register(tree)
    add_files(tree)
    return sorted(
        {*written, "src/anomalib/models/__init__.py", "src/anomalib/models/image/__init__.py"}
        | ({line for line in git(tree, "diff", "--name-only").split() if line.endswith(".py")}),
    )


def main() -> int:
    """Build the tree, re-sort its imports, write the patch; 1 on a layout error."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sdist", type=Path, help="anomalib-2.7.0.tar.gz")
    parser.add_argument("tree", type=Path, help="where to build the patched tree (replaced)")
    parser.add_argument("patch", type=Path, help="the patch to write")
    parser.add_argument("--ruff", default="ruff", help="the ruff that re-sorts the imports (anomalib's pinned one)")
    parser.add_argument("--python-files", type=Path, help="write the patch's Python files here, one a line")
    args = parser.parse_args()
    try:
        python_files = make_tree(args.sdist.resolve(), args.tree.resolve())
    except LayoutError as error:
        print(f"upstream_patch: {error}", file=sys.stderr)
        return 1
    # The new module paths sort differently from ours: re-sort the imports, nothing else.
    run([args.ruff, "check", "--quiet", "--select", "I001", "--fix", "--exit-zero", *python_files], args.tree)
    git(args.tree, "add", "--all")
    args.patch.write_text(git(args.tree, "diff", "--cached", "--binary"), encoding="utf-8")
    if args.python_files:
        args.python_files.write_text("\n".join(python_files) + "\n", encoding="utf-8")
    print(
        f"{args.patch}: {len(python_files)} Python files, "
        f"{len(git(args.tree, 'diff', '--cached', '--name-only').split())} files in all",
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
