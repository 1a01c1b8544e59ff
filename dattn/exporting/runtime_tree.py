"""The part of dattn that runs an exported model where dattn is not installed: a Jetson, Triton's python backend.

Copied, never kept by hand: dattn/errors.py, dattn/runtime/*.py and the plugin's contract and library loader,
all Python 3.6 compatible, under a `dattn` package whose __init__ imports nothing (the full package's would
reach for what the device lacks).
"""

from __future__ import annotations

from pathlib import Path

from dattn.exporting.files import StagedOutputs

PACKAGE = Path(__file__).resolve().parents[1]  # dattn/
SHIPPED = ("errors.py", "runtime/*.py", "plugin/__init__.py", "plugin/contract.py", "plugin/build.py", "plugin/library.py")


def shipped_files() -> list[Path]:
    """The package files that travel, relative to the package folder."""
    return sorted(path.relative_to(PACKAGE) for pattern in SHIPPED for path in PACKAGE.glob(pattern))


def stage_runtime_tree(staged: StagedOutputs, folder: Path, purpose: str) -> None:
    """Stage `folder`/dattn/ (`folder` being staged) with the shipped files; `purpose` goes in its __init__'s docstring."""
    package = folder / "dattn"
    staged.folder(package)
    for subfolder in sorted({relative.parent for relative in shipped_files()} - {Path(".")}):
        staged.folder(package / subfolder)
    for relative in shipped_files():
        staged.copy(package / relative, PACKAGE / relative)
    staged.file(package / "__init__.py", f'"""dattn\'s runtime alone, {purpose}."""\n')
