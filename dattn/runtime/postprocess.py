"""Raw detector output in, detections out, as ultralytics does it, in numpy and OpenCV: one decoder per output
layout (dattn.runtime.heads says which head writes which).

- decode_anchors: (N, 4 + classes, anchors), centre x, centre y, width, height, then one score per class. Each
  anchor votes for its best class; anchors scoring above `conf` go through NMS per class (boxes of different classes
  never suppress each other), the best `max_det` per image are kept.
- decode_ranked: (N, k, 6) rows of box, score, class id, best first (end-to-end heads): the rows above `conf`.
- decode_queries: (N, queries, 4 + classes) rows of box and class scores (RT-DETR as ultralytics 8.3 exports it):
  each query's best class, the queries above `conf`, best first.

Python 3.6 compatible (this file travels to JetPack 4.6 in the Jetson bundle and into Triton's python backend).
"""

import collections

import numpy as np

MAX_CANDIDATES = 30000  # boxes handed to NMS at most, the highest scoring (ultralytics' max_nms)
CLASS_OFFSET = 7680  # pixels between classes in the class-offset trick (ultralytics' max_wh)

Detections = collections.namedtuple("Detections", ["boxes", "scores", "class_ids"])
Detections.__doc__ = "One image's detections: boxes (n, 4) xyxy float32, scores (n,) float32, class_ids (n,) int64."


def check_thresholds(conf, iou):
    """ValueError unless 0 <= conf < 1 and 0 < iou <= 1 (NaN fails both)."""
    if not 0.0 <= conf < 1.0:
        raise ValueError("conf must be in [0, 1), got {}".format(conf))
    if not 0.0 < iou <= 1.0:
        raise ValueError("iou must be in (0, 1], got {}".format(iou))


def nms_opencv(boxes, scores, iou):
    """Indices kept by NMS, best first: OpenCV's NMSBoxes (every OpenCV since 3.4) on xyxy boxes."""
    import cv2

    if len(scores) == 0:
        return np.zeros(0, dtype=np.int64)
    xywh = np.concatenate([boxes[:, :2], boxes[:, 2:] - boxes[:, :2]], axis=1).astype(np.float64)
    kept = cv2.dnn.NMSBoxes(xywh.tolist(), scores.astype(np.float64).tolist(), 0.0, float(iou))
    return np.array(kept, dtype=np.int64).reshape(-1)


def nms_numpy(boxes, scores, iou):
    """Indices kept by NMS, best first: the same greedy algorithm in numpy, for machines without OpenCV's dnn."""
    order = np.argsort(-scores, kind="stable")
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    kept = []
    while order.size:
        best, rest = order[0], order[1:]
        kept.append(best)
        lt = np.maximum(boxes[best, :2], boxes[rest, :2])
        rb = np.minimum(boxes[best, 2:], boxes[rest, 2:])
        inter = np.clip(rb - lt, 0, None).prod(axis=1)
        overlap = inter / (areas[best] + areas[rest] - inter)
        order = rest[~(overlap > iou)]
    return np.array(kept, dtype=np.int64)


def xywh_to_xyxy(boxes):
    """Centre-size boxes (n, 4) -> corner boxes (n, 4)."""
    return np.concatenate([boxes[:, :2] - boxes[:, 2:] / 2, boxes[:, :2] + boxes[:, 2:] / 2], axis=1)


def decode_anchors(output, conf=0.25, iou=0.7, max_det=300, nms=nms_opencv):
    """Detections per image of a raw (N, 4 + classes, anchors) output, boxes in network-input pixels."""
    check_thresholds(conf, iou)
    found = []
    for image in np.asarray(output, dtype=np.float32):
        class_scores = image[4:]
        class_ids = class_scores.argmax(axis=0)
        scores = class_scores[class_ids, np.arange(class_scores.shape[1])]
        candidates = np.nonzero(scores > conf)[0]
        candidates = candidates[np.argsort(-scores[candidates], kind="stable")][:MAX_CANDIDATES]
        boxes = xywh_to_xyxy(image[:4, candidates].T)
        offsets = class_ids[candidates, None].astype(np.float32) * CLASS_OFFSET
        kept = nms(boxes + offsets, scores[candidates], iou)[:max_det]
        chosen = candidates[kept]
        found.append(Detections(boxes[kept], scores[chosen], class_ids[chosen].astype(np.int64)))
    return found


def decode_ranked(output, conf=0.25, max_det=300, boxes="xyxy", scale=(1, 1)):
    """Detections per image of (N, k, 6) rows [box, score, class id], best first: the rows scoring above `conf`.

    boxes: "xyxy" or "xywh" (centre and size); scale: (x, y) factors that take them to input pixels.
    """
    check_thresholds(conf, 0.5)
    found = []
    for rows in np.asarray(output, dtype=np.float32):
        rows = rows[rows[:, 4] > conf][:max_det]
        found.append(Detections(_scaled_corners(rows[:, :4], boxes, scale), rows[:, 4].copy(),
                                rows[:, 5].round().astype(np.int64)))
    return found


def decode_queries(output, conf=0.25, max_det=300, scale=(1, 1)):
    """Detections per image of (N, queries, 4 + classes) rows [cx, cy, w, h, class scores]: each query's best class,
    the queries scoring above `conf`, best first; scale: (x, y) factors that take boxes to input pixels."""
    check_thresholds(conf, 0.5)
    found = []
    for rows in np.asarray(output, dtype=np.float32):
        class_ids = rows[:, 4:].argmax(axis=1)
        scores = rows[np.arange(len(rows)), 4 + class_ids]
        chosen = np.nonzero(scores > conf)[0]
        chosen = chosen[np.argsort(-scores[chosen], kind="stable")][:max_det]
        found.append(Detections(_scaled_corners(rows[chosen, :4], "xywh", scale), scores[chosen],
                                class_ids[chosen].astype(np.int64)))
    return found


def _scaled_corners(boxes, form, scale):
    corners = xywh_to_xyxy(boxes) if form == "xywh" else np.array(boxes, dtype=np.float32)
    return (corners * np.array([scale[0], scale[1], scale[0], scale[1]], dtype=np.float32)).astype(np.float32)
