"""dattn: deploy Ultralytics YOLO detectors that use Deformable Attention (DAttention).

`import dattn` registers the block into ultralytics (now, or as soon as ultralytics loads), so
`YOLO("yolov8n-dattn.yaml")` builds and `YOLO("best.pt")` loads checkpoints trained with the widely
copied recipe. It imports neither torch nor ultralytics itself (nor dattn.ultralytics, until ultralytics
loads): `dattn.runtime` runs exported models on machines that have neither.
"""

import importlib
from importlib.metadata import PackageNotFoundError, version

from dattn.errors import CheckpointError, ConfigError, DattnError, ModelFileError, PluginError, VerificationError
from dattn.ultralytics_hook import register_when_ultralytics_loads

try:
    __version__ = version("dattn")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0+unknown"

# Names served on first use, so that `import dattn` stays light.
_LAZY = {
    "DAttention": "dattn.nn", "LayerNormProxy": "dattn.nn",
    "load": "dattn.ultralytics.load", "register": "dattn.ultralytics.register",
}


def export(weights, options=None, **option_values):
    """Export a checkpoint and return the path written: dattn.exporting.api.export (imports torch when called)."""
    from dattn.exporting.api import export as run_export

    return run_export(weights, options, **option_values)


def __getattr__(name):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'dattn' has no attribute {name!r}")


register_when_ultralytics_loads()

__all__ = ["CheckpointError", "ConfigError", "DAttention", "DattnError", "LayerNormProxy", "ModelFileError", "PluginError",
           "VerificationError", "__version__", "export", "load", "register"]
