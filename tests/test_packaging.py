"""Packaging: a light console script, presets found from the package, and a wheel that carries them.

The whole install-from-wheel path (fresh venv, demo, ``anomalib train``/``export`` outside the checkout) is
``scripts/check_wheel.sh``, run by CI after the tests; these tests pin its parts cheaply.
"""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from anomalib_minimaxad import cli
from anomalib_minimaxad.demo.pipeline import DEFAULT_CONFIG
from anomalib_minimaxad.presets import CONFIG_DIR, preset_names, preset_path

REPO = Path(__file__).resolve().parent.parent
SOURCE_CONFIGS = sorted((REPO / "anomalib_minimaxad" / "configs").glob("*.yaml"))
TIMEOUT_S = 300

# Runs the command line in a fresh interpreter, then reports which heavy packages it imported.
_IMPORTS_AFTER_MAIN = """
import json, sys
from anomalib_minimaxad.cli import main
try:
    code = main(sys.argv[1:])
except SystemExit as exit_:
    code = exit_.code
heavy = sorted({name.partition(".")[0] for name in sys.modules} & {"torch", "anomalib", "lightning", "numpy"})
print(json.dumps({"code": code, "heavy": heavy}))
"""


@pytest.mark.parametrize(
    "arguments",
    [["--help"], ["demo", "--help"], ["demo-data", "--help"], ["config"], ["config", "minimaxad"]],
    ids=" ".join,
)
def test_light_commands_import_neither_torch_nor_anomalib(arguments: list[str]) -> None:
    result = subprocess.run(  # noqa: S603 - our interpreter, our code, fixed arguments
        [sys.executable, "-c", _IMPORTS_AFTER_MAIN, *arguments],
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
        check=True,
    )
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report == {"code": 0, "heavy": []}, result.stdout + result.stderr


def test_console_script_answers_help() -> None:
    script = Path(sys.executable).parent / cli.PROGRAM_NAME
    result = subprocess.run(  # noqa: S603 - the installed console script
        [script, "--help"], capture_output=True, text=True, timeout=TIMEOUT_S, check=True
    )
    for subcommand in cli.SUBCOMMANDS:
        assert subcommand.name in result.stdout


def test_every_shipped_config_is_a_preset() -> None:
    names = preset_names()
    assert names == [path.stem for path in SOURCE_CONFIGS]
    assert {"minimaxad", "minimaxad_fp", "demo_cpu"} <= set(names)
    for name in names:
        path = preset_path(name)
        assert path == (CONFIG_DIR / f"{name}.yaml").resolve()
        assert path.is_file()
        assert preset_path(f"{name}.yaml") == path
    assert DEFAULT_CONFIG.resolve() == preset_path("demo_cpu")  # the demo's default is the packaged preset


@pytest.mark.parametrize("name", ["no_such_preset", "../configs/minimaxad", "minimaxad.yml"])
def test_unknown_preset_names_the_presets_there_are(name: str) -> None:
    with pytest.raises(FileNotFoundError, match=f"no preset '{name}'") as error:
        preset_path(name)
    assert f"presets: {', '.join(preset_names())}" in str(error.value)


def test_config_command_prints_lists_and_copies(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["config"]) == 0
    assert capsys.readouterr().out.split() == preset_names()

    assert cli.main(["config", "minimaxad"]) == 0
    assert capsys.readouterr().out.strip() == str(preset_path("minimaxad"))

    copy = tmp_path / "mine.yaml"
    assert cli.main(["config", "minimaxad", "--copy", str(copy)]) == 0
    assert capsys.readouterr().out.strip() == str(copy.resolve())
    assert copy.read_bytes() == preset_path("minimaxad").read_bytes()

    assert cli.main(["config", "nope"]) == cli.USAGE_ERROR
    error = capsys.readouterr().err
    assert "no preset 'nope'" in error
    assert f"presets: {', '.join(preset_names())}" in error


@pytest.mark.slow
def test_wheel_carries_configs_hook_and_modules(tmp_path: Path) -> None:
    subprocess.run(  # noqa: S603 - our interpreter's pip on this checkout
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "--wheel-dir", str(tmp_path), str(REPO)],
        capture_output=True,
        timeout=TIMEOUT_S,
        check=True,
    )
    (wheel,) = tmp_path.glob("anomalib_minimaxad-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        files = set(archive.namelist())
        hook_pth = archive.read("anomalib_minimaxad_hook.pth")

    for config in SOURCE_CONFIGS:
        assert f"anomalib_minimaxad/configs/{config.name}" in files
    for module in (REPO / "anomalib_minimaxad").rglob("*.py"):
        assert module.relative_to(REPO).as_posix() in files
    assert "anomalib_minimaxad_hook.py" in files
    assert hook_pth == (REPO / "anomalib_minimaxad_hook.pth").read_bytes()
    assert not any(name.startswith(("tests/", "benchmarks/", "scripts/")) for name in files)
    (entry_points,) = (name for name in files if name.endswith(".dist-info/entry_points.txt"))
    with zipfile.ZipFile(wheel) as archive:
        assert "anomalib-minimaxad = anomalib_minimaxad.cli:main" in archive.read(entry_points).decode()
