"""Writing outputs safely: through a temporary file in the same folder, renamed into place only when complete.

Readers never see half a file, a failed or interrupted export leaves nothing behind, and the file gets the
permissions a plain `open(path, "w")` would give it (the replaced file's mode, else 0o666 minus the umask).
"""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from pathlib import Path


def _umask() -> int:
    mask = os.umask(0)  # the only portable way to read it is to set it
    os.umask(mask)
    return mask


def _mode_for(path: Path) -> int:
    try:
        return stat.S_IMODE(path.stat().st_mode)
    except FileNotFoundError:
        return 0o666 & ~_umask()


@contextlib.contextmanager
def staged_beside(path: Path, data: bytes):
    """Yield a temporary file in `path`'s folder holding `data`; it becomes `path` only if the block succeeds."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    tmp = Path(tmp)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, _mode_for(path))  # mkstemp makes 0600, and the rename would keep it
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_atomically(path: Path, data: bytes) -> None:
    """Write `data` to `path` through a temporary file in the same folder and a rename."""
    with staged_beside(path, data):
        pass
