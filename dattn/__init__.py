"""dattn: deploy Ultralytics YOLO detectors that use Deformable Attention (DAttention).

Importing dattn registers the block into ultralytics, so `YOLO("yolov8n-dattn.yaml")` builds and
`YOLO("best.pt")` loads checkpoints trained with the widely copied recipe.
"""

from importlib.metadata import PackageNotFoundError, version

from dattn.nn import DAttention, LayerNormProxy
from dattn.ultralytics import CheckpointError, load, register
from dattn.export.api import export  # noqa: E402  (the function; the subpackage stays importable by full name)

try:
    __version__ = version("dattn")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0+unknown"

register()

__all__ = ["CheckpointError", "DAttention", "LayerNormProxy", "__version__", "export", "load", "register"]
