"""Run one of the vendored anomalib tools unchanged and save the predictions it computed.

Not vendored: this driver is ours. anomalib's inference tools only draw their predictions as pictures (and
``lightning_inference.py``'s ``--callbacks`` option cannot pass a callback: the tool hands the parsed,
uninstantiated namespace to ``Engine``), so the test needs another way to read the numbers. This driver loads
the tool's module, parses the command line with the tool's own ``get_parser()``, puts a recording subclass of
the class that predicts (``Engine``, ``TorchInferencer``, ``OpenVINOInferencer``) in the module's namespace and
calls the tool's ``infer()``; everything else (building the model or inferencer, reading images, inference,
visualisation, saving pictures) is the tool's code.

Example:
    python tests/anomalib_tools/capture.py torch_inference predictions.pt -- --weights model.pt --input images/
"""

from __future__ import annotations

import argparse
import importlib.util
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

TOOLS_DIR = Path(__file__).resolve().parent
#: The class each tool predicts with, by the name the tool imports it under.
PREDICTING_CLASS = {
    "lightning_inference": "Engine",
    "torch_inference": "TorchInferencer",
    "openvino_inference": "OpenVINOInferencer",
}
FIELDS = ("pred_score", "pred_label", "anomaly_map")


def _as_tensor(value: Any) -> torch.Tensor:
    return value.detach().cpu() if isinstance(value, torch.Tensor) else torch.as_tensor(np.asarray(value))


def _records(batch: Any, image_paths: Iterator[Path]) -> list[dict[str, Any]]:
    """One entry per image: its path and the predicted fields as CPU tensors."""
    paths = batch.image_path if batch.image_path is not None else [next(image_paths) for _ in batch.pred_score]
    fields = {field: _as_tensor(getattr(batch, field)) for field in FIELDS}
    return [
        {"image_path": str(path), **{field: value[index] for field, value in fields.items()}}
        for index, path in enumerate(paths)
    ]


def load_tool(name: str) -> Any:
    """Import ``tests/anomalib_tools/<name>.py`` as a module (not as ``__main__``)."""
    spec = importlib.util.spec_from_file_location(name, TOOLS_DIR / f"{name}.py")
    if spec is None or spec.loader is None:
        msg = f"No anomalib tool {name!r} in {TOOLS_DIR}"
        raise FileNotFoundError(msg)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_tool(name: str, tool_args: list[str], output: Path) -> None:
    """Run the tool's ``infer()`` on its own parsed arguments; ``torch.save`` what it predicted to ``output``."""
    tool = load_tool(name)
    args = tool.get_parser().parse_args(tool_args)
    records: list[dict[str, Any]] = []
    # The inferencer tools predict on images read by path, in the order of anomalib's get_image_filenames.
    image_paths = iter(tool.get_image_filenames(path=args.input)) if hasattr(args, "input") else iter(())

    class Recording(getattr(tool, PREDICTING_CLASS[name])):
        def predict(self, *predict_args: Any, **predict_kwargs: Any) -> Any:
            predictions = super().predict(*predict_args, **predict_kwargs)
            for batch in predictions if isinstance(predictions, list) else [predictions]:
                records.extend(_records(batch, image_paths))
            return predictions

    setattr(tool, PREDICTING_CLASS[name], Recording)
    tool.infer(args)
    if not records:
        msg = f"{name} predicted nothing for {tool_args}"
        raise RuntimeError(msg)
    torch.save(records, output)


def main(argv: list[str] | None = None) -> None:
    """Command line: ``capture.py TOOL OUTPUT -- TOOL_ARGUMENTS...``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("tool", choices=sorted(PREDICTING_CLASS))
    parser.add_argument("output", type=Path, help="File that receives the recorded predictions")
    parser.add_argument("tool_args", nargs=argparse.REMAINDER, help="-- then the tool's own arguments")
    args = parser.parse_args(argv)
    tool_args = args.tool_args[1:] if args.tool_args[:1] == ["--"] else args.tool_args
    run_tool(args.tool, tool_args, args.output)


if __name__ == "__main__":
    main()
