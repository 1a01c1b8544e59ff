"""Unpickle YOLO checkpoints, by default without running any code from the file.

A checkpoint is a zip archive whose pickle names, as globals, every class and function it needs;
`torch.serialization.get_unsafe_globals_in_checkpoint` lists them without unpickling anything.

- Restricted loading (the default) is torch's `weights_only` unpickler with an allowlist that rules build
  from those names (`_allowed`): module classes of torch.nn, ultralytics and dattn, rebuilt from their state
  and never constructed, and the few data types checkpoints hold. A file naming anything else is refused
  before unpickling.
- Trusted loading is pickle's own unpickler, which runs whatever the file asks, as ultralytics loads.

Both give the recipe's classes, pickled wherever the user pasted them (ultralytics' module tree or
`__main__`), dattn's classes inside the unpickler: no module is ever created or changed.
"""

from __future__ import annotations

import enum
import pathlib
import pickle
import sys
import zipfile
from pathlib import Path

import torch

from dattn.errors import CheckpointError
from dattn.nn import DAttention, LayerNormProxy

RECIPE_CLASSES = {"DAttention": DAttention, "LayerNormProxy": LayerNormProxy}
# The packages module classes may come from: torch's layers, ultralytics' layers and models, dattn's block.
MODULE_CLASS_HOMES = ("torch.nn.modules", "ultralytics.nn.modules", "ultralytics.nn.tasks", "dattn.nn")
# Checkpoints saved during training (8.3) hold the training criterion, ultralytics' loss classes.
CRITERION_HOMES = ("ultralytics.utils.loss", "ultralytics.utils.tal")
# Trained classifiers keep their preprocessing, torchvision transforms, in the checkpoint.
TRANSFORMS = ("torchvision.transforms",)
# Training arguments given as paths (Python 3.13 pickles them under pathlib._local).
PATH_MODULES = ("pathlib", "pathlib._local")
PATH_CLASSES = ("Path", "PosixPath", "WindowsPath", "PurePath", "PurePosixPath", "PureWindowsPath")
# The function numpy scalars pickle with, as numpy 2 and numpy 1 name it.
NUMPY_SCALAR_NAMES = ("numpy._core.multiarray.scalar", "numpy.core.multiarray.scalar")
TRUST_HINT = ("if the file comes from a source you trust, load it with --trust-weights "
              "(dattn.load(..., trust=True)), which runs what it contains")


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


def recipe_class(name: str) -> type | None:
    """dattn's class for `name` if it is a recipe class where the recipe pastes them (ultralytics, __main__), else None."""
    module, _, attr = name.rpartition(".")
    return RECIPE_CLASSES.get(attr) if _is_pasted_location(module) else None


def check_checkpoint(path: str | Path, trust: bool = False) -> list[str]:
    """The globals a checkpoint references, once it is known to load under the policy; CheckpointError otherwise.

    Reads the pickle without unpickling it. Untrusted (the default), a file naming anything the rules do not
    allow is refused; trusted, only unreadable files are.
    """
    names = referenced_globals(path)
    if not trust:
        _allowlist(path, names)
    return names


def load_restricted(path: str | Path) -> dict:
    """The checkpoint, unpickled by torch's weights_only unpickler with the allowlist its globals earn."""
    allowlist = _allowlist(path, referenced_globals(path))
    try:
        with torch.serialization.safe_globals(allowlist):  # for this load only
            checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except _Refused as e:
        raise CheckpointError(f"{path}: refused: {e}; {TRUST_HINT}") from None
    except pickle.UnpicklingError as e:  # torch's own refusals: a call or an object its unpickler does not allow
        reason = str(e).partition("WeightsUnpickler error: ")[2].strip().splitlines() or ["torch's weights_only unpickler refused it"]
        raise CheckpointError(f"{path}: refused: {reason[0]}; {TRUST_HINT}") from None
    return _as_checkpoint(path, checkpoint)


def load_trusted(path: str | Path) -> dict:
    """The checkpoint, unpickled by pickle's own unpickler (it runs what the file asks), recipe classes mapped."""
    referenced_globals(path)  # one-line errors for unreadable files
    checkpoint = torch.load(path, map_location="cpu", weights_only=False, pickle_module=_PickleWithRecipeClasses)
    return _as_checkpoint(path, checkpoint)


def _is_pasted_location(module: str) -> bool:
    return module.split(".")[0] in ("ultralytics", "__main__")


def _as_checkpoint(path, checkpoint) -> dict:
    if not isinstance(checkpoint, dict):  # e.g. torch.save(model)
        raise CheckpointError(f"{path}: not an ultralytics checkpoint (it holds a {type(checkpoint).__name__}, not the "
                              "dict that YOLO(...).save() and the trainer write); save it with YOLO(...).save('best.pt')")
    return checkpoint


# The rules of restricted loading


def _allowed(name: str):
    """What the restricted unpickler gets for the global `name`, or None where no rule allows it."""
    import numpy as np
    from ultralytics.utils import IterableSimpleNamespace  # holds the args in checkpoints saved during training

    module, _, attr = name.rpartition(".")
    if recipe_class(name) is not None:
        return _BuiltFromState(recipe_class(name), name)
    if name == "builtins.getattr":
        return _forward_method
    if name in NUMPY_SCALAR_NAMES:
        return np.float64(0).__reduce__()[0]
    if module in PATH_MODULES and attr in PATH_CLASSES:  # a path pickled on any system, as this system's path
        return getattr(pathlib, attr) if attr.startswith("Pure") else type(pathlib.Path())
    cls = _loaded_class(name)
    if cls is None:
        return None
    if (issubclass(cls, torch.nn.Module) and _within(module, MODULE_CLASS_HOMES)) or _within(module, CRITERION_HOMES):
        return _BuiltFromState(cls, name)
    if _within(module, TRANSFORMS):
        return cls if issubclass(cls, enum.Enum) else _BuiltFromState(cls, name)
    if cls is IterableSimpleNamespace or issubclass(cls, np.dtype):
        return cls  # data types: calling one builds data and runs nothing else
    return None


def _allowlist(path, names: list[str]) -> list:
    """torch safe_globals entries for a checkpoint's globals; CheckpointError naming those that no rule allows.

    (Globals that something else in the process registered with torch.serialization.add_safe_globals are not in
    `names`: the scan leaves them out, and torch applies them as registered.)
    """
    import numpy as np

    _import_homes()
    allowed = {name: _allowed(name) for name in sorted(names)}
    refused = [name for name, obj in allowed.items() if obj is None]
    missing = [name for name in refused if _is_pasted_location(name.rpartition(".")[0]) and not _exists(name)]
    if refused and missing == refused:  # classes pasted beside the recipe's that dattn does not have: trust cannot help
        raise CheckpointError(f"{path}: references classes that are neither in ultralytics nor in dattn: "
                              f"{', '.join(missing)} (dattn provides {', '.join(RECIPE_CLASSES)})")
    if refused:
        raise CheckpointError(f"{path}: refused: it references {', '.join(refused)}, which YOLO checkpoints do not "
                              f"need and which could run code when unpickled; {TRUST_HINT}")
    entries = []
    for name, obj in allowed.items():
        entries.append((obj, name))
        if isinstance(obj, _BuiltFromState):
            # Its objects must pass BUILD, so the class is listed too, under a name no GLOBAL can spell (a newline).
            entries.append((obj.cls, name + "\n"))
    if "numpy.dtype" in allowed:  # a rebuilt dtype is an object of its concrete class, which no GLOBAL names
        entries += [(t, f"numpy.dtypes.{t.__name__}") for t in {type(np.dtype(c)) for c in np.typecodes["All"]}]
    return entries


def _exists(name: str) -> bool:
    module, _, attr = name.rpartition(".")
    return hasattr(sys.modules.get(module), attr)


def _within(module: str, packages: tuple[str, ...]) -> bool:
    return any(module == p or module.startswith(p + ".") for p in packages)


def _import_homes() -> None:
    """Import the fixed packages module classes may come from (never a module the file names), so that a check
    made before anything loaded ultralytics judges its classes as a load would."""
    import importlib

    for package in (*MODULE_CLASS_HOMES, *CRITERION_HOMES):
        importlib.import_module(package)


def _loaded_class(name: str) -> type | None:
    """The class `name` names, if a module already imported defines it under that name; imports nothing the file names."""
    module, _, attr = name.rpartition(".")
    if _within(module, TRANSFORMS):
        import torchvision.transforms  # noqa: F401  (a fixed package; ultralytics imports it only for training)
    obj = getattr(sys.modules.get(module), attr, None)
    return obj if isinstance(obj, type) and obj.__module__ == module and obj.__qualname__ == attr else None


class _Refused(Exception):
    """Raised inside the restricted unpickler when the file asks for something the rules do not allow."""


class _BuiltFromState:
    """Stands for a class in the restricted unpickler: its objects are rebuilt from their state, never constructed.

    Pickle rebuilds an object with NEWOBJ (`cls.__new__(cls)`, then BUILD sets its state). A REDUCE that calls the
    class instead would run its __init__ with arguments of the file's choosing (ultralytics' model classes eval
    the activation string of the yaml they are given), so that is refused.
    """

    def __init__(self, cls: type, name: str):
        self.cls, self.name = cls, name
        self.__new__ = self._rebuild  # NEWOBJ calls `cls.__new__(cls, *args)` on the object the GLOBAL gave

    def _rebuild(self, _, *args):
        return self.cls.__new__(self.cls, *args)

    def __call__(self, *args, **kwargs):
        raise _Refused(f"it calls {self.name}(...), which would run that class's constructor with arguments from the file")


def _forward_method(obj, name):
    """`builtins.getattr` for the restricted unpickler: fused layers pickle their bound `forward_fuse` this way."""
    target = obj.cls if isinstance(obj, _BuiltFromState) else obj
    is_module = isinstance(target, torch.nn.Module) or (isinstance(target, type) and issubclass(target, torch.nn.Module))
    if not (is_module and isinstance(name, str) and name.startswith("forward")):
        raise _Refused(f"it asks for getattr(<{type(target).__name__}>, {name!r}); only modules' forward methods are allowed")
    return getattr(target, name)


class _PickleWithRecipeClasses:
    """pickle as torch.load uses it (its Unpickler), giving dattn's classes for recipe classes the process lacks."""

    class Unpickler(pickle.Unpickler):
        def find_class(self, module, name):
            try:
                return super().find_class(module, name)
            except (AttributeError, ImportError):
                if recipe_class(f"{module}.{name}") is None:
                    raise
                return recipe_class(f"{module}.{name}")
