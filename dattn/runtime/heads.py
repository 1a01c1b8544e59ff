"""The detection heads an exported model can end in, stated once: how each lays out its output, how images are
fitted to its input, and whether its detections need NMS. Export writes the head's name into the model's metadata
(`dattn_head`); the runtime, verification, Triton's post-processing and the Jetson bundle read it from there.

    anchors      (N, 4 + classes, anchors)  cx, cy, w, h in input pixels, then a score per class; NMS per class.
                 YOLOv3-v9, YOLO11, YOLO26 and YOLOv10 exported with their one-to-many branch.
    topk         (N, k, 6)  x1, y1, x2, y2 in input pixels, score, class id; best first, no NMS.
                 The NMS-free one-to-one branch of YOLO26 (--end2end) and YOLOv10.
    rtdetr       (N, queries, 4 + classes)  cx, cy, w, h as fractions of the input, then a probability per class;
                 no NMS. RT-DETR's decoder as ultralytics 8.3 exports it.
    rtdetr-topk  (N, k, 6)  cx, cy, w, h as fractions of the input, score, class id; best first, no NMS.
                 RT-DETR's decoder as ultralytics 8.4 exports it.

YOLO heads see letterboxed images; RT-DETR sees the image stretched to the input (ultralytics' scale_fill), and
its boxes are scaled back by the image's own width and height, unclipped, as ultralytics does.

Python 3.6 compatible (this file travels to JetPack 4.6 in the Jetson bundle and into Triton's python backend).
"""

import collections

from dattn.errors import ModelFileError
from dattn.runtime.postprocess import decode_anchors, decode_queries, decode_ranked
from dattn.runtime.preprocess import Letterbox, Stretch

Head = collections.namedtuple("Head", ["name", "family", "layout", "field_axis", "fixed_width", "boxes", "normalised",
                                       "stretched", "nms"])
Head.__doc__ = ("name (the metadata value), family (what exports it), layout (the output, in words), field_axis (the "
                "axis holding one candidate's fields), fixed_width (its number of fields, or None for 4 + classes), "
                "boxes ('xywh' centre and size, or 'xyxy' corners), normalised (fractions of the input, not pixels), "
                "stretched (images stretched to the input, not letterboxed), nms (candidates go through NMS).")

HEADS = collections.OrderedDict((head.name, head) for head in (
    Head("anchors", "YOLO (one-to-many branch)", "(N, 4 + classes, anchors)", 1, None, "xywh", False, False, True),
    Head("topk", "YOLO26 / YOLOv10 (one-to-one branch)", "(N, k, 6)", 2, 6, "xyxy", False, False, False),
    Head("rtdetr", "RT-DETR (ultralytics 8.3)", "(N, queries, 4 + classes)", 2, None, "xywh", True, True, False),
    Head("rtdetr-topk", "RT-DETR (ultralytics 8.4)", "(N, k, 6)", 2, 6, "xywh", True, True, False),
))
METADATA_KEY = "dattn_head"
# What other tasks add after the class scores, which the runtime neither decodes nor draws.
NOT_SERVED = {"segment": "masks", "pose": "keypoints", "obb": "box angles (boxes are drawn axis-aligned)"}


def head_named(name, source="the model"):
    """The Head called `name`; ModelFileError for a name this dattn does not know."""
    if name not in HEADS:
        raise ModelFileError("{}: unknown detection head {!r} in its metadata (this dattn knows {}); update dattn"
                             .format(source, name, ", ".join(HEADS)))
    return HEADS[name]


def head_of(metadata, source="the model"):
    """The model's Head: from dattn's `dattn_head`, else (files ultralytics exported) from its `end2end` flag."""
    if METADATA_KEY in metadata:
        return head_named(str(metadata[METADATA_KEY]), source)
    end2end = metadata.get("end2end", False)
    return HEADS["topk" if end2end in (True, "True", "true", 1) else "anchors"]


def check_output_shape(head, shape, classes, source="the model"):
    """ModelFileError unless an output of `shape` (None where a dim is dynamic) is what `head` writes for a model of
    `classes` classes (None when unknown); segment, pose and obb models add fields after the class scores."""
    shape = list(shape)
    expected = head.fixed_width or (4 + classes if classes else 5)
    width = shape[head.field_axis] if len(shape) == 3 else -1
    if len(shape) == 3 and (width is None or width >= expected):
        return
    raise ModelFileError("{}: its output has shape {}, but a {} head writes {}{}; is it a detector exported by "
                         "dattn-export or ultralytics?".format(
                             source, "x".join(str(d) for d in shape), head.family, head.layout,
                             " with {} classes".format(classes) if classes and not head.fixed_width else ""))


def fit_image(head, image_shape, size, auto=False, stride=32):
    """Where an image of `image_shape` goes in the input of `size`: a Letterbox, or a Stretch for RT-DETR."""
    if head.stretched:
        return Stretch(image_shape, size)
    return Letterbox(image_shape, size, auto=auto, stride=stride)


def decode(head, output, input_size, conf=0.25, iou=0.7, max_det=300, nms=None, classes=None):
    """Detections per image (boxes xyxy in input pixels, best first) of a raw output for an input of `input_size`.

    classes: the model's class count, where known: the fields after the class scores (a segment model's mask
    coefficients, a pose model's keypoints) are left out.
    """
    fields = head.fixed_width or (4 + classes if classes else None)
    output = output[:, :fields] if head.field_axis == 1 else output[..., :fields]
    if head.nms:
        return decode_anchors(output, conf, iou, max_det, **({"nms": nms} if nms is not None else {}))
    scale = (input_size[1], input_size[0]) if head.normalised else (1, 1)
    if head.fixed_width:
        return decode_ranked(output, conf, max_det, head.boxes, scale)
    return decode_queries(output, conf, max_det, scale)


def network_input(head, image, size):
    """(3, H, W) float32 RGB in [0, 1]: a BGR uint8 image fitted to `size` as `head` expects, as ultralytics predicts."""
    from dattn.runtime.preprocess import to_network_input

    fit = fit_image(head, image.shape, size)
    return to_network_input([fit.apply(image)])[0]
