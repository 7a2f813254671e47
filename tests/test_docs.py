"""The documentation runs: every command and snippet of README.md and CONTRIBUTING.md, as written.

Snippets are found by parsing the Markdown: each command of a fenced ``bash`` block (continuation lines joined,
comments dropped) and each fenced ``python`` block. Each one either runs or is in ``EXCLUDED`` with the reason
it cannot run here; ``test_every_snippet_runs_or_is_excluded_for_a_reason`` fails on an exclusion that matches
no snippet and on a substitution that changes none. Before a snippet runs, only the substitutions of
``SUBSTITUTIONS`` are made, each with its reason (tiny widths, one epoch, offline weights, collecting the fast
tests instead of running them inside this suite). The data is generated: tiny images in the MVTec AD layout
under ``./datasets/MVTecAD`` (categories ``bottle`` and ``cable``, defect ``broken_large``, as in MVTec AD);
``$MINIMAXAD_WEIGHTS_DIR`` and ``./mvtec_minimaxad_fr.pth`` hold the tiny ImageNet-layout and authors'
checkpoints of ``tests/data/parity_tiny``.

README's commands are meant to work anywhere, so they run in a temporary folder outside the checkout;
CONTRIBUTING's are meant for a checkout and run in its root. All bash commands of a document run in one bash
script and all its Python snippets in one interpreter (each in a fresh namespace), in document order; a
snippet's failure names its document and line.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DOCUMENTS = ("README.md", "CONTRIBUTING.md")
RUNS_IN_CHECKOUT = {"CONTRIBUTING.md"}  # its commands are for working on a checkout; README's work anywhere
PARITY_DIR = REPO / "tests" / "data" / "parity_tiny"
TINY_DIMS = "[16,32,64,128]"
COMMAND_TIMEOUT_S = 1500  # one document's whole script


@dataclass(frozen=True)
class Substitution:
    """``pattern`` (a regular expression) is replaced by ``replacement`` in every snippet of ``language``."""

    language: str
    pattern: str
    replacement: str
    reason: str


SUBSTITUTIONS = (
    Substitution(
        "bash",
        r"^(anomalib train .*)$",
        rf'\1 --model.pre_trained false --model.dims "{TINY_DIMS}" --trainer.max_epochs 1'
        " --trainer.check_val_every_n_epoch 1",
        "offline weights (random encoder), tiny widths, one epoch that still validates (the presets validate every "
        "10 epochs; without a validation the post-processor has no thresholds or normalisation for the test)",
    ),
    Substitution(
        "bash",
        r"^(anomalib (?:test|predict|export) .*--ckpt_path .*)$",
        rf'\1 --model.dims "{TINY_DIMS}"',
        "the checkpoint was trained at tiny widths: the model options of training are repeated",
    ),
    Substitution(
        "bash",
        r'^pytest -m "not slow"$',
        'pytest -m "not slow" --collect-only -q',
        "collects the fast tests only: running them would run most of this suite again inside it",
    ),
    Substitution("python", r"(?<![.\w])MiniMaxAD\(", "MiniMaxAD(pre_trained=False, dims=(16, 32, 64, 128), ", "tiny"),
    Substitution("python", r"max_epochs=100\b", "max_epochs=1", "one epoch"),
    Substitution("python", r"pretrained=True\b", "pretrained=False", "offline weights: timm would download them"),
)

#: (document, command or snippet as written) -> why it does not run here.
EXCLUDED = {
    ("README.md", "bash scripts/demo.sh"): (
        "the Quickstart's demo (set-up of .venv, then about 4 min of training): CI runs its pipeline on tiny "
        "settings (tests/test_demo.py) and from an installed wheel (scripts/check_wheel.sh in .ci/run)"
    ),
    ("README.md", "bash scripts/test.sh"): "the Quickstart's test command is this suite itself (.ci/run runs it)",
    ("CONTRIBUTING.md", "bash scripts/test.sh"): "this suite itself (.ci/run runs it)",
    ("README.md", "MINIMAXAD_AUTHORS_REPO=/path/to/MiniMaxAD python benchmarks/speed.py --sizes 256 --batches 1 "
     "--models minimaxad_eager,minimaxad_fused_reference,minimaxad_fused,minimaxad_fused_bf16,"
     "authors_reparameterized,minimaxad_onnxruntime,minimaxad_openvino_f32,minimaxad_openvino_bf16,"
     "minimaxad_openvino_int8,minimaxad_openvino_int8_bf16,reverse_distillation"): (
        "a benchmark (about 10 min, and needs the authors' repository): tests/test_benchmarks_smoke.py runs "
        "speed.py with --quick"
    ),
    ("README.md", "MINIMAXAD_AUTHORS_REPO=/path/to/MiniMaxAD python benchmarks/train_cost.py --threads 2"): (
        "a benchmark (about 5 min, 10 GB of memory, the authors' repository): tests/test_benchmarks_smoke.py runs "
        "train_cost.py with --quick"
    ),
    ("README.md", "python benchmarks/size_flops.py --threads 2"): (
        "reads the newest speed run's JSON, which the excluded speed.py command writes: "
        "tests/test_benchmarks_smoke.py runs size_flops.py with --quick"
    ),
}  # fmt: skip


@dataclass(frozen=True)
class Snippet:
    """One command of a ``bash`` block (continuations joined, comment dropped) or one whole ``python`` block."""

    document: str
    line: int  # of its first line in the document
    language: str
    text: str

    @property
    def excluded(self) -> str | None:
        return EXCLUDED.get((self.document, self.text))

    def substituted(self) -> str:
        text = self.text
        for substitution in SUBSTITUTIONS:
            if substitution.language == self.language:
                text = re.sub(substitution.pattern, substitution.replacement, text, flags=re.MULTILINE)
        return text


def _without_comment(line: str) -> str:
    """``line`` without a trailing ``# comment`` (a ``#`` outside quotes, after a blank)."""
    quote = None
    for index, char in enumerate(line):
        if quote:
            quote = None if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char == "#" and (index == 0 or line[index - 1].isspace()):
            return line[:index].rstrip()
    return line.rstrip()


def parse_snippets(document: str) -> list[Snippet]:
    """The ``bash`` commands and ``python`` blocks of a Markdown document, in order."""
    lines = (REPO / document).read_text(encoding="utf-8").splitlines()
    snippets: list[Snippet] = []
    index = 0
    while index < len(lines):
        fence = re.fullmatch(r"```(\w*)\s*", lines[index])
        if not fence:
            index += 1
            continue
        language, start = fence.group(1), index + 1
        end = next(i for i in range(start, len(lines)) if lines[i].strip() == "```")
        if language == "python":
            snippets.append(Snippet(document, start + 1, language, "\n".join(lines[start:end])))
        elif language == "bash":
            command, first = "", 0
            for number in range(start, end):
                text = _without_comment(lines[number])
                if not command:
                    first = number + 1
                if text.endswith("\\"):
                    command += text[:-1].strip() + " "
                    continue
                command = (command + text.strip()).strip()
                if command:
                    snippets.append(Snippet(document, first, language, command))
                command = ""
        index = end + 1
    return snippets


ALL_SNIPPETS = [snippet for document in DOCUMENTS for snippet in parse_snippets(document)]


def test_every_snippet_runs_or_is_excluded_for_a_reason() -> None:
    found = {(snippet.document, snippet.text) for snippet in ALL_SNIPPETS}
    stale = [key for key in EXCLUDED if key not in found]
    assert not stale, f"exclusions that match no snippet (the documentation changed?): {stale}"
    assert all(reason.strip() for reason in EXCLUDED.values())
    languages = {snippet.language for snippet in ALL_SNIPPETS}
    assert languages == {"bash", "python"}, languages
    for substitution in SUBSTITUTIONS:  # every substitution is used: the table says what the test changes
        assert any(
            re.search(substitution.pattern, snippet.text, flags=re.MULTILINE)
            for snippet in ALL_SNIPPETS
            if substitution.language == snippet.language and not snippet.excluded
        ), substitution


def test_parser_joins_continuations_and_drops_comments(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    document = tmp_path / "DOC.md"
    document.write_text(
        "text `inline` is not a snippet\n```bash\nls -l \\\n    -a   # list\n# a comment line\n"
        "echo '# kept'  # dropped\n```\n```python\nprint(1)\n```\n```\nplain block\n```\n",
        encoding="utf-8",
    )
    monkeypatch.setattr(sys.modules[__name__], "REPO", tmp_path)
    assert parse_snippets("DOC.md") == [
        Snippet("DOC.md", 3, "bash", "ls -l -a"),
        Snippet("DOC.md", 6, "bash", "echo '# kept'"),
        Snippet("DOC.md", 9, "python", "print(1)"),
    ]


def _workspace(folder: Path) -> dict[str, str]:
    """Generated data and checkpoints in ``folder``; the environment the snippets run in."""
    from anomalib_minimaxad.data import generate_demo_dataset  # noqa: PLC0415

    root = folder / "datasets" / "MVTecAD"
    generate_demo_dataset(
        folder / "generated", categories=("brick", "gravel"), image_size=64, num_train=4, num_test_good=2,
        num_test_defect=2,
    )  # fmt: skip
    for texture, category in (("brick", "bottle"), ("gravel", "cable")):  # MVTec AD's names
        shutil.copytree(folder / "generated" / texture, root / category)
        for kind in ("test", "ground_truth"):
            (root / category / kind / "scratch").rename(root / category / kind / "broken_large")
    weights = folder / "weights"
    weights.mkdir()
    shutil.copy(PARITY_DIR / "unireplknet_imagenet_layout.pt", weights / "unireplknet_n_in1k_224_acc81.64.pth")
    shutil.copy(PARITY_DIR / "minimaxad_official_checkpoint.pt", folder / "mvtec_minimaxad_fr.pth")
    return {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "MINIMAXAD_WEIGHTS_DIR": str(weights),
        "HF_HUB_OFFLINE": "1",
        "PYTHONWARNINGS": "ignore",
    }


#: Runs the snippets of a JSON file in order, each in a fresh namespace, with tracebacks naming the document line.
PYTHON_DRIVER = """
import json, sys
for snippet in json.load(open(sys.argv[1], encoding="utf-8")):
    print(f"+++ {snippet['document']}:{snippet['line']}", flush=True)
    code = "\\n" * (snippet["line"] - 1) + snippet["code"]
    exec(compile(code, snippet["document"], "exec"), {"__name__": "__main__"})
"""


def _run_document(document: str, workspace: Path, env: dict[str, str]) -> None:
    snippets = [s for s in ALL_SNIPPETS if s.document == document and not s.excluded]
    commands = [s for s in snippets if s.language == "bash"]
    python = [s for s in snippets if s.language == "python"]
    script = ["set -euo pipefail"]
    for snippet in commands:
        script += [f"echo {shlex.quote(f'+++ {document}:{snippet.line}: {snippet.text}')}", snippet.substituted()]
    (workspace / "snippets.sh").write_text("\n".join(script) + "\n", encoding="utf-8")
    payload = [{"document": document, "line": s.line, "code": s.substituted()} for s in python]
    (workspace / "snippets.json").write_text(json.dumps(payload), encoding="utf-8")
    (workspace / "driver.py").write_text(PYTHON_DRIVER, encoding="utf-8")
    cwd = REPO if document in RUNS_IN_CHECKOUT else workspace
    runs = (
        ["bash", str(workspace / "snippets.sh")],
        [sys.executable, str(workspace / "driver.py"), str(workspace / "snippets.json")],
    )
    for argv in runs:
        done = subprocess.run(  # noqa: S603
            argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=COMMAND_TIMEOUT_S, check=False
        )
        output = done.stdout + done.stderr
        failed = [line for line in output.splitlines() if line.startswith("+++ ")][-1:] or ["(before the first)"]
        assert done.returncode == 0, f"{document}: the snippet at {failed[0][4:]} failed:\n{output[-6000:]}"


@pytest.mark.slow
def test_readme_runs_as_written(tmp_path: Path) -> None:
    env = _workspace(tmp_path)
    _run_document("README.md", tmp_path, env)
    assert (tmp_path / "exported" / "weights" / "openvino" / "model.xml").is_file()


@pytest.mark.slow
def test_contributing_runs_as_written(tmp_path: Path) -> None:
    _run_document("CONTRIBUTING.md", tmp_path, _workspace(tmp_path))
