"""Writing outputs safely: through a temporary file in the same folder, renamed into place only when complete.

Readers never see half a file, a failed or interrupted export leaves nothing behind, and the file gets the
permissions a plain `open(path, "w")` would give it (the replaced file's mode, else 0o666 minus the umask).
"""

from __future__ import annotations

import os
import shutil
import stat
import tempfile
from pathlib import Path


def umask() -> int:
    mask = os.umask(0)  # the only portable way to read it is to set it
    os.umask(mask)
    return mask


def _mode_for(path: Path) -> int:
    try:
        return stat.S_IMODE(path.stat().st_mode)
    except FileNotFoundError:
        return 0o666 & ~umask()


class StagedOutputs:
    """Files and folders written to temporary names beside their destinations, renamed into place together.

    Use as a context manager: leaving the block by an exception removes everything staged and not yet
    committed, so a failed or interrupted export leaves no partial output and replaces nothing.
    """

    def __init__(self):
        self._staged: dict[Path, Path] = {}  # destination -> temporary

    def file(self, path: Path, data: bytes) -> Path:
        """Stage `data` for `path`; returns the temporary file (complete, readable for checks)."""
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        tmp = Path(tmp)
        self._staged[path] = tmp
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, _mode_for(path))
        return tmp

    def folder(self, path: Path) -> Path:
        """Stage an empty folder for `path`; fill it, and commit renames it into place."""
        tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
        os.chmod(tmp, 0o777 & ~umask())
        self._staged[path] = tmp
        return tmp

    @property
    def paths(self) -> list[Path]:
        """The destinations staged and not yet committed."""
        return list(self._staged)

    def commit(self, *paths: Path) -> list[Path]:
        """Rename the staged `paths` into place; returns them."""
        chosen = list(paths)
        for path in chosen:
            tmp = self._staged[path]
            if tmp.is_dir() and path.exists():
                shutil.rmtree(path)  # a folder output replaces an earlier export of the same kind
            os.replace(tmp, path)
            del self._staged[path]  # only now: a failed rename leaves the temporary to discard()
        return chosen

    def discard(self) -> None:
        for tmp in self._staged.values():
            shutil.rmtree(tmp, ignore_errors=True) if tmp.is_dir() else tmp.unlink(missing_ok=True)
        self._staged.clear()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.discard()
        return False


def write_atomically(path: Path, data: bytes) -> None:
    """Write `data` to `path` through a temporary file in the same folder and a rename."""
    with StagedOutputs() as staged:
        staged.file(path, data)
        staged.commit(path)
