"""The part of dattn that runs an exported model where dattn is not installed: a Jetson, Triton's python backend.

Copied, never kept by hand: dattn/errors.py, dattn/runtime/*.py and the plugin's contract and library loader,
all Python 3.6 compatible, under a `dattn` package whose __init__ imports nothing (the full package's would
reach for what the device lacks).
"""

from __future__ import annotations

import shutil
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1]  # dattn/
SHIPPED = ("errors.py", "runtime/*.py", "plugin/__init__.py", "plugin/contract.py", "plugin/build.py", "plugin/library.py")


def shipped_files() -> list[Path]:
    """The package files that travel, relative to the package folder."""
    return sorted(path.relative_to(PACKAGE) for pattern in SHIPPED for path in PACKAGE.glob(pattern))


def copy_runtime_tree(folder: Path, purpose: str) -> None:
    """Write `folder`/dattn/ with the shipped files; `purpose` goes in its __init__'s docstring."""
    package = folder / "dattn"
    for relative in shipped_files():
        (package / relative).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(PACKAGE / relative, package / relative)
    (package / "__init__.py").write_text(f'"""dattn\'s runtime alone, {purpose}."""\n')
