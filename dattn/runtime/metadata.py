"""What a runner needs to know about a model: class names, stride, image size, dynamic shapes, batch.

Read from the metadata ultralytics (and dattn) write: in ONNX as strings holding Python literals
(`"{0: 'box'}"`, `"[640, 640]"`), in the engine header as JSON values (`{"0": "box"}`, `[640, 640]`).
A raw TensorRT plan carries none; then the input's shape says what it can.

Python 3.6 compatible (this file travels to JetPack 4.6 in the Jetson bundle and into Triton's python backend).
"""

import ast
import collections
import numbers

from dattn.errors import ModelFileError

DEFAULT_STRIDE = 32
DEFAULT_IMGSZ = 640

ModelInfo = collections.namedtuple("ModelInfo", ["names", "stride", "imgsz", "dynamic", "batch", "head", "task"])
ModelInfo.__doc__ = ("names {class id: name}, stride (int), imgsz (h, w) the model was exported at, dynamic (bool: "
                     "height and width may vary), batch (int, or None when the batch dimension is dynamic), head "
                     "(dattn.runtime.heads.Head: the output's layout), task ('detect', or the task whose extra outputs "
                     "the runtime leaves alone: 'segment', 'pose', 'obb').")


def _value(raw):
    """A metadata value as Python data: literal strings parsed, JSON values kept."""
    if not isinstance(raw, str):
        return raw
    try:
        return ast.literal_eval(raw)
    except (ValueError, SyntaxError, TypeError, RecursionError, MemoryError):  # deep nesting: RecursionError/MemoryError
        return raw


def size_pair(value):
    """(h, w) from an int, [n] or [h, w]; ValueError for anything else."""
    sizes = list(value) if isinstance(value, (list, tuple)) else [value]
    if len(sizes) not in (1, 2) or not all(_is_int(v) for v in sizes):
        raise ValueError("a size is one or two integers (H or H W), got {!r}".format(value))
    return (int(sizes[0]), int(sizes[-1]))


def _is_int(value):
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)  # numpy's integers too


def _is_fixed(dim):
    return _is_int(dim) and dim > 0


def _names(raw, bad):
    """{class id: name} from a mapping (or a list) of names."""
    names = _value(raw)
    if isinstance(names, (list, tuple)):
        names = dict(enumerate(names))
    if not isinstance(names, dict):
        raise bad("names", "a mapping of class ids to names")
    try:
        return {int(k): str(v) for k, v in names.items()}
    except (TypeError, ValueError):
        raise bad("names", "a mapping of integer class ids to names")


def model_info(metadata, input_shape, source=None):
    """ModelInfo from a metadata mapping (possibly empty) and the model input's shape (N, 3, H, W).

    input_shape dims that vary are given as None, a negative number or a name, as runtimes report them.
    A value that cannot be right (stride 0, imgsz [0, 0], an imgsz that contradicts the graph's fixed input)
    raises ModelFileError naming `source` (the model file) and the key: the graph is not second-guessed.
    """
    from dattn.runtime.heads import METADATA_KEY as HEAD_KEY, head_of

    metadata = dict(metadata or {})
    where = source if source is not None else "the model"

    def bad(key, expected):
        return ModelFileError("{}: metadata '{}' is {}, expected {}; export the model again (a raw plan: fix --metadata)"
                              .format(where, key, _shown(metadata.get(key)), expected))

    names = _names(metadata.get("names", {}), bad)
    stride = _value(metadata.get("stride", DEFAULT_STRIDE))
    if not _is_int(stride) or stride < 1:
        raise bad("stride", "a positive integer such as 32")
    shape = list(input_shape)
    dynamic = not (_is_fixed(shape[2]) and _is_fixed(shape[3]))
    if "imgsz" in metadata:
        try:
            imgsz = size_pair(_value(metadata["imgsz"]))
        except ValueError:
            imgsz = None
        if imgsz is None or min(imgsz) < stride or any(s % stride for s in imgsz):
            raise bad("imgsz", "[H, W] in multiples of the stride {}".format(stride))
        if not dynamic and imgsz != (shape[2], shape[3]):
            raise bad("imgsz", "the graph's fixed input size {}x{}".format(shape[2], shape[3]))
    elif not dynamic:
        imgsz = (int(shape[2]), int(shape[3]))
    else:
        imgsz = (DEFAULT_IMGSZ, DEFAULT_IMGSZ)
    batch = int(shape[0]) if _is_fixed(shape[0]) else None
    head = head_of({key: _value(metadata[key]) for key in (HEAD_KEY, "end2end") if key in metadata}, where)
    task = str(_value(metadata.get("task", "detect")))
    return ModelInfo(names, stride, imgsz, dynamic, batch, head, task)


def _shown(value, limit=60):
    """A metadata value for an error message, cut short (crafted values can be huge)."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


def class_name(names, class_id):
    """The name of `class_id`, or the id as text when the model carries no names."""
    return names.get(int(class_id), str(int(class_id)))
