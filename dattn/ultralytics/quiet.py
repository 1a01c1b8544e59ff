"""Keep ultralytics' console output (progress lines, tables, blank lines) out of dattn's own report."""

from __future__ import annotations

import contextlib
import io
import logging


@contextlib.contextmanager
def ultralytics_quiet():
    """While active, ultralytics logs warnings and errors only, and nothing it prints reaches stdout."""
    from ultralytics.utils import LOGGER

    level = LOGGER.level
    LOGGER.setLevel(logging.WARNING)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            yield
    finally:
        LOGGER.setLevel(level)
