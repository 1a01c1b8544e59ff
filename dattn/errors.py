"""The project's errors. Each message is one line that names the problem and what to do about it.

The command line prints such an error as one line and exits 2 (bad input) or 1 (a check failed);
anything else that escapes is reported as one line too (see dattn.cli), with the traceback behind --debug.
"""


class DattnError(Exception):
    """Base class of every error dattn raises on purpose."""

    exit_code = 2


class ConfigError(DattnError, ValueError):
    """A request that cannot be honoured: bad options, paths or combinations."""


class CheckpointError(DattnError, ValueError):
    """A weights file that cannot be loaded; the message names the file and says why."""


class ModelFileError(DattnError, ValueError):
    """An exported model (ONNX, engine) that cannot be run here: wrong kind, truncated, built for another GPU."""


class PluginError(DattnError, RuntimeError):
    """The TensorRT plugin library is missing, cannot be built, or does not fit the TensorRT in use."""


class VerificationError(DattnError, RuntimeError):
    """An exported model disagrees with PyTorch beyond tolerance (or loses too much accuracy)."""

    exit_code = 1
