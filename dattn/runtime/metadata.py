"""What a runner needs to know about a model: class names, stride, image size, dynamic shapes, batch.

Read from the metadata ultralytics (and dattn) write: in ONNX as strings holding Python literals
(`"{0: 'box'}"`, `"[640, 640]"`), in the engine header as JSON values (`{"0": "box"}`, `[640, 640]`).
A raw TensorRT plan carries none; then the input's shape says what it can.

Python 3.6 compatible (this file travels to JetPack 4.6 in the Jetson bundle and into Triton's python backend).
"""

import ast
import collections

DEFAULT_STRIDE = 32
DEFAULT_IMGSZ = 640

ModelInfo = collections.namedtuple("ModelInfo", ["names", "stride", "imgsz", "dynamic", "batch", "head"])
ModelInfo.__doc__ = ("names {class id: name}, stride (int), imgsz (h, w) the model was exported at, dynamic (bool: "
                     "height and width may vary), batch (int, or None when the batch dimension is dynamic), head "
                     "(dattn.runtime.heads.Head: the output's layout).")


def _value(raw):
    """A metadata value as Python data: literal strings parsed, JSON values kept."""
    if not isinstance(raw, str):
        return raw
    try:
        return ast.literal_eval(raw)
    except (ValueError, SyntaxError):
        return raw


def size_pair(value):
    """(h, w) from an int, [n] or [h, w]."""
    sizes = [int(v) for v in (value if isinstance(value, (list, tuple)) else [value])]
    return (sizes[0], sizes[0]) if len(sizes) == 1 else (sizes[0], sizes[1])


def _is_fixed(dim):
    return isinstance(dim, int) and dim > 0


def model_info(metadata, input_shape, source="the model"):
    """ModelInfo from a metadata mapping (possibly empty) and the model input's shape (N, 3, H, W).

    input_shape dims that vary are given as None, a negative number or a name, as runtimes report them.
    """
    from dattn.runtime.heads import head_of

    metadata = dict(metadata or {})
    names = _value(metadata.get("names", {}))
    names = {int(k): str(v) for k, v in names.items()} if isinstance(names, dict) else {}
    stride = int(_value(metadata.get("stride", DEFAULT_STRIDE)))
    shape = list(input_shape)
    dynamic = not (_is_fixed(shape[2]) and _is_fixed(shape[3]))
    if "imgsz" in metadata:
        imgsz = size_pair(_value(metadata["imgsz"]))
    elif not dynamic:
        imgsz = (int(shape[2]), int(shape[3]))
    else:
        imgsz = (DEFAULT_IMGSZ, DEFAULT_IMGSZ)
    batch = int(shape[0]) if _is_fixed(shape[0]) else None
    return ModelInfo(names, stride, imgsz, dynamic, batch, head_of({k: _value(v) for k, v in metadata.items()}, source))


def class_name(names, class_id):
    """The name of `class_id`, or the id as text when the model carries no names."""
    return names.get(int(class_id), str(int(class_id)))
