"""What the deployment writers (the Jetson bundle, the Triton repository) share: the graphs they take (an
onnx.ModelProto or a path), the one way their text templates are filled (`@KEY@`), and the largest batch a
dynamic-batch deployment takes by default."""

from __future__ import annotations

import os
import re
from pathlib import Path

import onnx

from dattn.errors import ConfigError
from dattn.exporting.files import StagedOutputs

DEFAULT_MAX_BATCH = 8
_PLACEHOLDER = re.compile(r"@([A-Z][A-Z0-9_]*)@")


def load_onnx(source: onnx.ModelProto | str | os.PathLike) -> onnx.ModelProto:
    """The graph `source` is, or holds; ConfigError for a path that is not a readable ONNX file."""
    if isinstance(source, onnx.ModelProto):
        return source
    path = Path(source)
    if not path.is_file():
        raise ConfigError(f"{path}: no such ONNX file")
    try:
        return onnx.load(str(path), load_external_data=False)
    except Exception as error:  # onnx raises DecodeError, ValueError, ... for files that are not ONNX
        raise ConfigError(f"{path}: not a readable ONNX model ({type(error).__name__})") from None


def stage_onnx(staged: StagedOutputs, destination: Path, source: onnx.ModelProto | str | os.PathLike) -> None:
    """Stage the graph for `destination`: a ModelProto serialized, a file copied byte for byte."""
    if isinstance(source, onnx.ModelProto):
        staged.file(destination, source.SerializeToString())
    else:
        staged.copy(destination, Path(source), executable=False)


def render(template: Path, values: dict[str, str]) -> str:
    """The template's text with every @KEY@ replaced by values[KEY], in one pass (a value is never read as a
    template); KeyError for a placeholder without a value."""
    return _PLACEHOLDER.sub(lambda match: values[match.group(1)], Path(template).read_text())
