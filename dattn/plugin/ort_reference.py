"""Run DAttnGridSample plugin nodes in ONNX Runtime with a numpy reference of the TensorRT plugin.

onnxruntime-extensions registers Python ops only in its own domain, "ai.onnx.contrib" (its
`onnx_op` takes no domain), so the plugin node's domain "dattn" cannot be served as written.
`onnxruntime_model()` therefore returns a copy whose plugin nodes are moved to that domain;
nothing else changes. Typical use:

    session = plugin_session(model)          # or, by hand:
    session = onnxruntime.InferenceSession(
        onnxruntime_model(model).SerializeToString(), sess_options=session_options())

The reference computes like the plugin's kernel (fp32, torch's formulas); a NaN/inf coordinate
samples 0, as torch's CUDA kernel and the plugin do (torch's CPU kernel returns NaN there).
"""

from __future__ import annotations

import copy

import numpy as np
import onnx
from onnx import helper

from dattn.plugin.contract import ALIGN_CORNERS, DOMAIN, OP_TYPE

# Coordinates at or beyond this magnitude cannot touch a pixel (the kernel uses the same bound).
_LARGEST_USEFUL_COORDINATE = np.float32(1e9)
_OUT_OF_RANGE_COORDINATE = np.float32(-100.0)
_registered = False


def grid_sample_bilinear_reference(x: np.ndarray, grid: np.ndarray, align_corners: bool) -> np.ndarray:
    """torch.nn.functional.grid_sample(x, grid, "bilinear", "zeros", align_corners) in float32 numpy."""
    x = np.ascontiguousarray(x, dtype=np.float32)
    grid = np.asarray(grid, dtype=np.float32)
    n, c, h, w = x.shape
    _, ho, wo, _ = grid.shape

    def unnormalize(coord, size):
        size = np.float32(size)
        if align_corners:
            pixel = ((coord + np.float32(1)) * np.float32(0.5)) * (size - np.float32(1))
        else:
            pixel = ((coord + np.float32(1)) * size - np.float32(1)) * np.float32(0.5)
        # NaN fails both comparisons, so non-finite and huge coordinates land outside the image.
        usable = (pixel > -_LARGEST_USEFUL_COORDINATE) & (pixel < _LARGEST_USEFUL_COORDINATE)
        return np.where(usable, pixel, _OUT_OF_RANGE_COORDINATE).astype(np.float32)

    with np.errstate(invalid="ignore", over="ignore"):
        px = unnormalize(grid[..., 0].reshape(n, -1), w)
        py = unnormalize(grid[..., 1].reshape(n, -1), h)
    x0, y0 = np.floor(px), np.floor(py)
    toward_left, toward_right = (x0 + np.float32(1)) - px, px - x0
    toward_top, toward_bottom = (y0 + np.float32(1)) - py, py - y0
    x0, y0 = x0.astype(np.int64), y0.astype(np.int64)

    planes = x.reshape(n, c, h * w)
    out = np.zeros((n, c, ho * wo), dtype=np.float32)
    # Same corner order and products as torch: nw, ne, sw, se.
    for dx, dy, weight in ((0, 0, toward_left * toward_top), (1, 0, toward_right * toward_top),
                           (0, 1, toward_left * toward_bottom), (1, 1, toward_right * toward_bottom)):
        cx, cy = x0 + dx, y0 + dy
        inside = (cx >= 0) & (cx < w) & (cy >= 0) & (cy < h)
        index = np.where(inside, cy * w + cx, 0)[:, None, :]
        values = np.take_along_axis(planes, np.broadcast_to(index, (n, c, index.shape[2])), axis=2)
        # Outside corners add nothing, even where the gathered stand-in pixel is inf/NaN.
        out += np.where(inside[:, None, :], values * weight[:, None, :].astype(np.float32), np.float32(0))
    return out.reshape(n, c, ho, wo)


def register_reference_op() -> None:
    """Register the reference op with onnxruntime-extensions (once per process)."""
    global _registered
    if _registered:
        return
    try:
        from onnxruntime_extensions import PyCustomOpDef, onnx_op
    except ImportError as error:
        raise ImportError("running DAttnGridSample nodes in ONNX Runtime needs onnxruntime-extensions: "
                          "pip install onnxruntime-extensions") from error

    @onnx_op(op_type=OP_TYPE, inputs=[PyCustomOpDef.dt_float, PyCustomOpDef.dt_float],
             outputs=[PyCustomOpDef.dt_float],
             attrs={ALIGN_CORNERS: PyCustomOpDef.dt_int64, "plugin_version": PyCustomOpDef.dt_string,
                    "plugin_namespace": PyCustomOpDef.dt_string})
    def dattn_grid_sample(x, grid, align_corners=0, plugin_version="", plugin_namespace=""):
        return grid_sample_bilinear_reference(x, grid, bool(align_corners))

    _registered = True


def session_options(options=None):
    """onnxruntime SessionOptions (a new one, or `options`) with the reference op's library registered."""
    import onnxruntime
    from onnxruntime_extensions import get_library_path

    register_reference_op()
    options = options if options is not None else onnxruntime.SessionOptions()
    options.register_custom_ops_library(get_library_path())
    return options


def onnxruntime_model(model: onnx.ModelProto) -> onnx.ModelProto:
    """A copy of `model` whose DAttnGridSample nodes sit in onnxruntime-extensions' domain."""
    from onnxruntime_extensions import default_opset_domain

    ort_domain = default_opset_domain()
    out = copy.deepcopy(model)
    moved = False
    for node in out.graph.node:
        if node.op_type == OP_TYPE and node.domain == DOMAIN:
            node.domain = ort_domain
            moved = True
    if moved and not any(imp.domain == ort_domain for imp in out.opset_import):
        out.opset_import.append(helper.make_opsetid(ort_domain, 1))
    return out


def plugin_session(model: onnx.ModelProto, providers=("CPUExecutionProvider",)):
    """An onnxruntime InferenceSession that runs `model`, plugin nodes included (float32 only)."""
    import onnxruntime

    return onnxruntime.InferenceSession(onnxruntime_model(model).SerializeToString(),
                                        sess_options=session_options(), providers=list(providers))
