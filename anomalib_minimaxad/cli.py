# Copyright (C) 2026 anomalib-minimaxad developers
# SPDX-License-Identifier: Apache-2.0
"""Command line of the ``anomalib-minimaxad`` console script.

Each subcommand is a :class:`Subcommand` in ``SUBCOMMANDS``: a name, a one-line help, a function that adds its
arguments to its parser and a function that runs it and returns the exit code. To add one, write those two
functions and append a ``Subcommand`` to the tuple. Heavy imports belong inside the run functions, so that
``--help`` and the light subcommands stay fast.

Example:
    Generate the demo dataset (brick and grass only) from a shell::

        anomalib-minimaxad demo-data --root ./datasets/minimaxad_demo --categories brick grass
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

PROGRAM_NAME = "anomalib-minimaxad"
USAGE_ERROR = 2  # the exit code argparse uses for bad arguments


@dataclass(frozen=True)
class Subcommand:
    """One subcommand of the command line.

    Attributes:
        name: What the user types, e.g. ``"demo-data"``.
        help: One line shown in ``anomalib-minimaxad --help``.
        add_arguments: Adds the subcommand's options to its parser.
        run: Runs the subcommand with the parsed options and returns the exit code.
    """

    name: str
    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]


def _add_demo_data_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``demo-data``; the defaults mirror ``generate_demo_dataset``."""
    parser.add_argument("--root", type=Path, required=True, help="folder that receives one sub-folder per category")
    parser.add_argument(
        "--categories",
        nargs="+",
        default=None,
        metavar="CATEGORY",
        help="categories to generate: brick, grass and/or gravel (default: all)",
    )
    parser.add_argument(
        "--image-size",
        type=int,
        default=256,
        help="side of the square images in pixels (default: %(default)s)",
    )
    parser.add_argument(
        "--num-train",
        type=int,
        default=60,
        help="normal training images per category (default: %(default)s)",
    )
    parser.add_argument(
        "--num-test-good",
        type=int,
        default=20,
        help="normal test images per category (default: %(default)s)",
    )
    parser.add_argument(
        "--num-test-defect",
        type=int,
        default=20,
        help="defective test images per category, spread over the defect kinds (default: %(default)s)",
    )
    parser.add_argument(
        "--seed",
        type=int,
        default=0,
        help="random seed; the same arguments give identical files (default: %(default)s)",
    )
    parser.add_argument("--overwrite", action="store_true", help="regenerate categories that already exist")


def _run_demo_data(arguments: argparse.Namespace) -> int:
    """Generate the demo dataset and say where it went."""
    # Imported here so that other subcommands do not pay for numpy, PIL and scikit-image.
    from anomalib_minimaxad.demo.dataset import DEMO_CATEGORIES, generate_demo_dataset

    categories = tuple(arguments.categories) if arguments.categories else DEMO_CATEGORIES
    try:
        root = generate_demo_dataset(
            arguments.root,
            categories,
            image_size=arguments.image_size,
            num_train=arguments.num_train,
            num_test_good=arguments.num_test_good,
            num_test_defect=arguments.num_test_defect,
            seed=arguments.seed,
            overwrite=arguments.overwrite,
        )
    except (ValueError, ImportError) as error:
        print(f"{PROGRAM_NAME} demo-data: error: {error}", file=sys.stderr)
        return USAGE_ERROR
    root = root.resolve()
    print(f"Demo dataset (MVTec AD layout) ready in {root}:")
    for category in dict.fromkeys(categories):
        print(f"  {category}: {root / category}")
    print(f'Load it with anomalib.data.MVTecAD(root="{root}", category="{categories[0]}").')
    return 0


def _add_demo_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``demo``."""
    parser.add_argument("--data-root", type=Path, default=Path("datasets/minimaxad_demo"), help="demo dataset folder")
    parser.add_argument("--output", type=Path, default=Path("demo_output"), help="runs, exports, pictures, metrics")
    parser.add_argument(
        "--categories",
        nargs="+",
        default=None,
        metavar="CATEGORY",
        help="brick, grass, gravel or all (default gravel)",
    )
    parser.add_argument("--config", type=Path, default=None, help="anomalib config (default: packaged demo_cpu.yaml)")
    parser.add_argument("--image-size", type=int, default=256, help="side of the generated images")
    parser.add_argument("--num-train", type=int, default=60, help="normal training images per category")
    parser.add_argument("--num-test-good", type=int, default=20, help="normal test images per category")
    parser.add_argument("--num-test-defect", type=int, default=20, help="defective test images per category")
    parser.add_argument(
        "train_args",
        nargs=argparse.REMAINDER,
        help="after --: extra `anomalib train` arguments, e.g. -- --trainer.max_epochs 2",
    )


def _run_demo(arguments: argparse.Namespace) -> int:
    """Run the end-to-end demo."""
    from anomalib_minimaxad.demo.pipeline import (
        DEFAULT_CONFIG,
        DemoSettings,
        resolve_categories,
        run_demo,
    )

    extra = [a for a in arguments.train_args if a != "--"]
    settings = DemoSettings(
        data_root=arguments.data_root,
        output=arguments.output,
        categories=resolve_categories(arguments.categories),
        config=arguments.config or DEFAULT_CONFIG,
        image_size=arguments.image_size,
        num_train=arguments.num_train,
        num_test_good=arguments.num_test_good,
        num_test_defect=arguments.num_test_defect,
        extra_train_args=extra,
    )
    try:
        run_demo(settings)
    except (RuntimeError, FileNotFoundError, ValueError) as error:
        print(f"{PROGRAM_NAME} demo: error: {error}", file=sys.stderr)
        return 1
    return 0


def _add_config_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``config``."""
    parser.add_argument("name", nargs="?", default=None, help="preset name, e.g. minimaxad (default: list them)")
    parser.add_argument("--copy", type=Path, default=None, metavar="DEST", help="copy the preset to DEST to edit it")


def _run_config(arguments: argparse.Namespace) -> int:
    """List the presets, print the path of one or copy it."""
    from anomalib_minimaxad.presets import preset_names, preset_path

    if arguments.name is None:
        print("\n".join(preset_names()))
        return 0
    try:
        path = preset_path(arguments.name)
    except FileNotFoundError as error:
        print(f"{PROGRAM_NAME} config: error: {error}", file=sys.stderr)
        return USAGE_ERROR
    if arguments.copy is not None:
        import shutil

        path = Path(shutil.copy(path, arguments.copy)).resolve()
    print(path)
    return 0


SUBCOMMANDS: tuple[Subcommand, ...] = (
    Subcommand(
        name="demo-data",
        help="generate a small deterministic demo dataset in the MVTec AD layout",
        add_arguments=_add_demo_data_arguments,
        run=_run_demo_data,
    ),
    Subcommand(
        name="demo",
        help="train, test, export and run MiniMaxAD on the demo dataset, with pictures and a metrics table",
        add_arguments=_add_demo_arguments,
        run=_run_demo,
    ),
    Subcommand(
        name="config",
        help="list the shipped anomalib configs or print the path of one: anomalib train --config $(... config NAME)",
        add_arguments=_add_config_arguments,
        run=_run_config,
    ),
)


def build_parser() -> argparse.ArgumentParser:
    """Build the argument parser with one sub-parser per entry of ``SUBCOMMANDS``.

    Returns:
        The parser; the chosen subcommand's ``run`` function is stored as ``run`` in the parsed namespace.
    """
    parser = argparse.ArgumentParser(prog=PROGRAM_NAME, description="MiniMaxAD anomaly detection for anomalib.")
    subparsers = parser.add_subparsers(title="subcommands", dest="subcommand", metavar="SUBCOMMAND", required=True)
    for subcommand in SUBCOMMANDS:
        subparser = subparsers.add_parser(
            subcommand.name,
            help=subcommand.help,
            description=subcommand.help,
        )
        subcommand.add_arguments(subparser)
        subparser.set_defaults(run=subcommand.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line.

    Args:
        argv: Arguments without the program name; ``None`` reads ``sys.argv``.

    Returns:
        The exit code: 0 on success. Invalid arguments exit through argparse with code 2.

    Example:
        >>> main(["demo-data", "--root", "/tmp/minimaxad_demo", "--categories", "brick"])
        0
    """
    arguments = build_parser().parse_args(argv)
    return arguments.run(arguments)


if __name__ == "__main__":
    sys.exit(main())
