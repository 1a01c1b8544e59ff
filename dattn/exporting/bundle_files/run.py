#!/usr/bin/env python3
"""Detections on this device with the bundle's model: `dattn predict` from the dattn.runtime modules shipped beside.

    python3 run.py --source IMAGE|FOLDER|'GLOB'|VIDEO [--save-dir out] [--save-json] [--conf 0.25] ...

Runs model.engine with TensorRT once ./build_engine.sh has built it (and loads the plugin library it built,
when the model uses the plugin); before that, or with --model model.onnx, the ONNX with ONNX Runtime.
Needs Python 3.6+, numpy and OpenCV; TensorRT's Python bindings for the engine (JetPack's python3-libnvinfer),
onnxruntime for the ONNX. `python3 run.py --help` lists every option.
"""

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)  # the shipped dattn/ (errors and runtime only), ahead of any installed dattn

from dattn.runtime.predict import main  # noqa: E402  (needs the path above)

ENGINE = os.path.join(HERE, "model.engine")
ONNX = os.path.join(HERE, "model.onnx")
PLUGIN = os.path.join(HERE, "plugin", "build", "libdattn_trt_plugins.so")
METADATA = os.path.join(HERE, "model.json")


def tensorrt_importable():
    try:
        import tensorrt  # noqa: F401
    except ImportError:
        return False
    return True


def default_model():
    """The engine when it is built and TensorRT is here, else the ONNX (ONNX Runtime)."""
    if os.path.isfile(ENGINE) and tensorrt_importable():
        return ENGINE
    if os.path.isfile(ENGINE):
        sys.stderr.write("run.py: TensorRT's Python bindings are missing, running model.onnx with ONNX Runtime\n")
    return ONNX


if __name__ == "__main__":
    sys.exit(main(prog="run.py", model=default_model(), plugin=PLUGIN if os.path.isfile(PLUGIN) else None,
                  metadata=METADATA))
