"""Checkpoint -> deployable ONNX, TensorRT engine, Jetson bundle or Triton repository; `dattn.export(...)` runs it.

The package is callable: `dattn.export("best.pt", imgsz=640)` is `dattn.export.api.export(...)`. A module
subclass makes that possible without importing torch when the package is merely imported.
"""

import sys
import types


class _CallableModule(types.ModuleType):
    def __call__(self, *args, **kwargs):
        from dattn.export.api import export

        return export(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
