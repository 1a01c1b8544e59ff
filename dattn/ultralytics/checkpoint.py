"""Make checkpoints trained with the pasted-in recipe classes loadable by a stock ultralytics.

The recipe pickles its classes wherever the user pasted them (usually `ultralytics.nn.modules.conv`).
The checkpoint itself says where: `torch.serialization.get_unsafe_globals_in_checkpoint` lists every
class it references without unpickling anything. Each reference that no longer resolves and names one
of dattn's classes gets an alias to that class, so ultralytics' own loader can unpickle the file.
"""

from __future__ import annotations

import importlib
import sys
import types
import zipfile
from pathlib import Path

import torch

from dattn.errors import CheckpointError
from dattn.nn import DAttention, LayerNormProxy

RECIPE_CLASSES = {"DAttention": DAttention, "LayerNormProxy": LayerNormProxy}


def referenced_globals(path: str | Path) -> list[str]:
    """The dotted names of the classes and functions a checkpoint references; raises CheckpointError if unreadable."""
    path = Path(path)
    try:
        if not path.exists():
            raise CheckpointError(f"{path}: no such file")
        if not path.is_file():
            raise CheckpointError(f"{path}: not a file")
        with path.open("rb") as f:
            starts_like_zip = f.read(4) == b"PK\x03\x04"
    except PermissionError:
        raise CheckpointError(f"{path}: cannot be read (permission denied)") from None
    if not starts_like_zip:
        raise CheckpointError(f"{path}: not a PyTorch checkpoint (expected the zip archive that torch.save writes)")
    if not zipfile.is_zipfile(path):  # the zip directory sits at the end of the file
        raise CheckpointError(f"{path}: truncated or corrupted checkpoint (the zip archive has no end)")
    try:
        return torch.serialization.get_unsafe_globals_in_checkpoint(str(path))
    except Exception as e:  # truncated or damaged archives fail in the zip reader with assorted errors
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise CheckpointError(f"{path}: truncated or corrupted checkpoint ({reason})") from None


def _resolves(dotted: str) -> bool:
    module_name, _, attr = dotted.rpartition(".")
    try:
        module = importlib.import_module(module_name)
    except ImportError:
        return False
    return hasattr(module, attr)


def _module_for_alias(module_name: str) -> types.ModuleType:
    """The module to hold an alias: the real one if importable, else an empty stand-in registered in sys.modules."""
    try:
        return importlib.import_module(module_name)
    except ImportError:
        parent_name, _, child = module_name.rpartition(".")
        module = types.ModuleType(module_name, "dattn stand-in for a module that held pasted DAttention classes")
        sys.modules[module_name] = module
        if parent_name:
            setattr(_module_for_alias(parent_name), child, module)
        return module


def _is_pasted_location(module_name: str) -> bool:
    return module_name == "__main__" or module_name.split(".")[0] == "ultralytics"


def map_recipe_classes(path: str | Path) -> list[str]:
    """Alias every unresolvable DAttention/LayerNormProxy reference in the checkpoint to dattn's classes.

    Returns the dotted names that were aliased. Raises CheckpointError for an unreadable file, or for
    a class pasted into ultralytics (or __main__) that dattn does not provide.
    """
    names = referenced_globals(path)
    missing = [name for name in names if not _resolves(name)]
    unknown = [n for n in missing if n.rpartition(".")[2] not in RECIPE_CLASSES and _is_pasted_location(n.rpartition(".")[0])]
    if unknown:
        raise CheckpointError(
            f"{path}: references classes that are neither in ultralytics nor in dattn: {', '.join(unknown)} "
            f"(dattn provides {', '.join(RECIPE_CLASSES)})"
        )
    aliased = []
    for name in missing:
        module_name, _, attr = name.rpartition(".")
        cls = RECIPE_CLASSES.get(attr)
        if cls is None:
            continue  # another package's class: ultralytics' loader reports it in its own words
        setattr(_module_for_alias(module_name), attr, cls)
        torch.serialization.add_safe_globals([(cls, name)])  # lets ultralytics' opt-in weights_only load accept it
        aliased.append(name)
    return aliased
