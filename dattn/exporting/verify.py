"""Check an exported model against PyTorch: raw outputs, detections after NMS, and (with a dataset) mAP.

Runners (how to execute a model on an NCHW float32 batch) and comparators (how to judge two raw outputs) are
separate pieces: a new runtime is one new runner. Boxes are judged in pixels and scores in absolute terms, each
against its own tolerance for the export's precision; one relative figure over both would let wrong scores
through, since box coordinates (hundreds of pixels) dwarf scores (0-1).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import torch

from dattn.errors import VerificationError
from dattn.exporting.dataset import Dataset, evenly_spaced, split_images
from dattn.runtime.heads import Head, decode, network_input
from dattn.runtime.postprocess import Detections
from dattn.runtime.preprocess import read_image

SAMPLE_IMAGES = ("bus.jpg", "zidane.jpg")  # shipped in ultralytics' assets
MATCH_IOU = 0.5  # a detection and its counterpart overlap at least this much
NMS_IOU = 0.7  # ultralytics' default
NMS_MARGIN = 0.05  # boxes overlapping this close to NMS_IOU may suppress each other in one runtime only


@dataclass(frozen=True)
class Tolerance:
    """What an export of one precision may differ from PyTorch by.

    Boxes: the coordinates of the anchors PyTorch is confident about, in pixels, as a fraction of the input's
    longer side (rounding errors grow with the coordinates). Scores: every class score of every anchor, and the
    scores of matched detections, absolute.
    """

    box_fraction: float
    score: float

    def box_px(self, shape: tuple[int, ...]) -> float:
        return self.box_fraction * max(shape[-2:])

    def describe(self, shape: tuple[int, ...]) -> str:
        return f"boxes {self.box_px(shape):.3g} px, scores {self.score:g}"


# FP32 differs from PyTorch by summation order only; FP16 and INT8 by rounding activations and weights. Each
# tolerance is 1.4 to 4 times the largest error measured on real images (ultralytics' two samples and the 64
# validation images, 160 px) of three fixtures trained with different seeds and heads: yolov8n-dattn (anchors, seed
# 0), yolo26n-dattn (top-k, seed 1) and a reduced RT-DETR (normalised boxes, seed 2), INT8 in both flavours, each
# within its mAP gate (benchmarks/bench_precision.py --errors; README, "Precision"). Largest seen: FP32 0.031 px /
# 4.7e-4 (RT-DETR's decoder refining normalised boxes), FP16 0.095 px / 9.7e-4, INT8 2.7 px / 0.089 on YOLO anchors
# and 4.4 px / 0.14 on RT-DETR's surest detections (scored 0.40-0.45; one scored 0.41 was lost). The review's cases
# fall outside: a detection 10 px off at 160 px, a lost detection PyTorch scored 0.45 or more.
TOLERANCES = {
    "fp32": Tolerance(box_fraction=5e-4, score=1e-3),
    "fp16": Tolerance(box_fraction=2.5e-3, score=0.01),
    "int8": Tolerance(box_fraction=0.04, score=0.2),
}


# ---- inputs -------------------------------------------------------------------------------------


def sample_image_paths() -> list[Path]:
    import ultralytics

    assets = Path(ultralytics.__file__).parent / "assets"
    return [assets / name for name in SAMPLE_IMAGES]


def random_batch(batch: int, size: tuple[int, int], seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).random((batch, 3, *size), dtype=np.float32)


VALIDATION_IMAGES = 8  # images of the --data set verified beside the samples


def validation_images(dataset: Dataset) -> list[Path]:
    """Up to 8 images of the dataset's val split (its calibration images for a plain folder)."""
    images = split_images(dataset.data_yaml, "val") if dataset.data_yaml is not None else dataset.calibration
    return evenly_spaced(images, VALIDATION_IMAGES)


def verification_cases(imgsz: tuple[int, int], batch: int, dynamic: bool, head: Head, images: list[Path] = (),
                       precision: str = "fp32") -> list[tuple[str, np.ndarray]]:
    """Real images (ultralytics' samples and `images`) at the export size, fitted as the head expects; with `dynamic`,
    at other sizes and batch sizes too. FP32, which differs from PyTorch by summation order only, is also judged on
    random inputs; reduced precision is judged on real images alone (noise is not what it is meant for)."""
    paths = [*sample_image_paths(), *images]
    inputs = [network_input(head, read_image(p), imgsz) for p in paths]
    cases = [(p.name, np.repeat(x[None], batch, axis=0)) for p, x in zip(paths, inputs)]
    if precision == "fp32":
        cases.append(("random", random_batch(batch, imgsz)))
    if dynamic:
        stride = 32
        for b, factor in ((2, 1.0), (3, 0.5), (1, 0.75)):
            size = tuple(max(stride, round(s * factor / stride) * stride) for s in imgsz)
            if precision == "fp32":
                cases.append((f"random-b{b}", random_batch(b, size, seed=b)))
            else:
                cases.append((f"images-b{b}-{size[0]}x{size[1]}",
                              np.stack([network_input(head, read_image(p), size) for p in (paths * 3)[:b]])))
        cases.append(("images-b2", np.stack(inputs[:2])))
    return cases


# ---- runners ------------------------------------------------------------------------------------


def torch_runner(model: torch.nn.Module):
    def run(batch: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            out = model(torch.from_numpy(batch))
        return (out[0] if isinstance(out, (tuple, list)) else out).float().numpy()

    return run


def onnxruntime_runner(model: Path | onnx.ModelProto, name: str | None = None):
    """The runtime's own ONNX Runtime runner on the CPU (plugin nodes run with the reference op), for an ONNX file
    or an in-memory model."""
    from dattn.runtime.onnxruntime_runner import OnnxRuntimeRunner

    source = model.SerializeToString() if isinstance(model, onnx.ModelProto) else model
    return OnnxRuntimeRunner(source, device="cpu", name=name)


# ---- comparators --------------------------------------------------------------------------------


@dataclass
class DetectionComparison:
    """Detections of the reference and the candidate on one image, matched by class and overlap."""

    reference: int
    candidate: int
    matched: int
    other_class: int  # matched pairs whose classes differ: the box's two best class scores were about equal
    missing: int  # confident reference detections with no counterpart
    extra: int  # confident candidate detections with no counterpart
    box_error_px: float  # largest coordinate difference of a pair the reference is sure of (see `swapped`)
    score_error: float  # largest score difference of such a pair
    identical: bool
    lost: list[float]  # scores of the reference detections without counterpart (tolerated or not), best first
    swapped: int = 0  # pairs whose candidate is another box the reference predicted there (NMS or rank chose another)
    swap_shift_px: float = 0.0  # largest coordinate difference between the two boxes of such a pair
    near_conf_box_px: float = 0.0  # largest coordinate difference of the other pairs (reported, not judged)
    sure: int = 0  # pairs the reference is sure of (scored above conf + the score tolerance)


def _iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    lt, rb = np.maximum(a[:, None, :2], b[None, :, :2]), np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.clip(rb - lt, 0, None).prod(-1)
    area = lambda x: (x[:, 2] - x[:, 0]) * (x[:, 3] - x[:, 1])  # noqa: E731
    return inter / (area(a)[:, None] + area(b)[None, :] - inter + 1e-9)


def _overlap(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU, and 1 for boxes within a pixel of each other: a box clipped to a line at an image edge has no area."""
    near = np.abs(a[:, None, :] - b[None, :, :]).max(-1) <= 1.0
    return np.where(near, 1.0, _iou(a, b))


def compare_detections(ref: Detections, out: Detections, conf: float, tol: Tolerance,
                       nms: bool = True, predicted: Detections | None = None,
                       input_size: tuple[int, int] = (0, 0)) -> DetectionComparison:
    """Match each detection to its best counterpart (IoU >= 0.5), greedily by overlap, preferring the same class:
    never by position in the output, where queries with tied scores may swap.

    A detection without counterpart is "missing"/"extra" only when its score is clearly above `conf` (one scoring
    within the score tolerance of the threshold may fall on either side of it in the other runtime) and, after NMS
    (`nms`), no box of the other side overlaps it nearly at the NMS threshold (NMS may have suppressed it there). A
    pair may differ in class: the raw comparison bounds the class scores, so that happens only where the two best
    class scores were within the tolerance of each other. Pairs are judged in position and score where the reference
    is sure of its detection (as above); near `conf`, where other candidates compete (and RT-DETR's query selection
    may pick another), their differences are reported only.

    `predicted`: every box the reference predicted near `conf`, before NMS, for an input of `input_size`. Where
    boxes of about equal score overlap, NMS (or the rank of a top-k) may keep another of them in the other runtime,
    so a pair is judged against the predicted box closest to its candidate (of its class, its score within the
    tolerance): the reference's detection as a rule; another ("swapped") where NMS kept another.
    """
    same_class = ref.class_ids[:, None] == out.class_ids[None, :]
    overlap = _overlap(ref.boxes, out.boxes) if len(ref.scores) and len(out.scores) else np.zeros((len(ref.scores), len(out.scores)))
    could_be_suppressed = (overlap >= NMS_IOU - NMS_MARGIN) & same_class if nms else np.zeros(overlap.shape, bool)
    ranking = overlap * np.where(same_class, 1.0, 0.999)  # ties go to the same class
    pairs = []
    while ranking.size and ranking.max() >= MATCH_IOU:
        i, j = np.unravel_index(ranking.argmax(), ranking.shape)
        pairs.append((i, j))
        ranking[i, :], ranking[:, j] = 0, 0
    sure = conf + tol.score
    matched_ref, matched_out = {i for i, _ in pairs}, {j for _, j in pairs}
    missing = sum(1 for i, s in enumerate(ref.scores) if i not in matched_ref and s > sure and not could_be_suppressed[i].any())
    extra = sum(1 for j, s in enumerate(out.scores) if j not in matched_out and s > sure and not could_be_suppressed[:, j].any())
    other_class = sum(1 for i, j in pairs if ref.class_ids[i] != out.class_ids[j])
    judged = [(i, j) for i, j in pairs if ref.scores[i] > sure]
    errors = [_pair_errors(ref, out, i, j, tol.box_px(input_size), tol.score, predicted) for i, j in judged]
    swaps = [float(np.abs(ref.boxes[i] - out.boxes[j]).max()) for (i, j), (_, _, swapped) in zip(judged, errors) if swapped]
    near_conf = [float(np.abs(ref.boxes[i] - out.boxes[j]).max()) for i, j in pairs if ref.scores[i] <= sure]
    identical = (len(ref.scores) == len(out.scores) and np.array_equal(ref.boxes, out.boxes)
                 and np.array_equal(ref.scores, out.scores) and np.array_equal(ref.class_ids, out.class_ids))
    lost = sorted((float(s) for i, s in enumerate(ref.scores) if i not in matched_ref), reverse=True)
    return DetectionComparison(len(ref.scores), len(out.scores), len(pairs), other_class, missing, extra,
                               max((box for box, _, _ in errors), default=0.0),
                               max((score for _, score, _ in errors), default=0.0), identical, lost, len(swaps),
                               max(swaps, default=0.0), max(near_conf, default=0.0), len(judged))


def _pair_errors(ref: Detections, out: Detections, i: int, j: int, box_tol: float, score_tol: float,
                 predicted: Detections | None) -> tuple[float, float, bool]:
    """(box error px, score error, swapped) of the pair (ref i, out j): against the box the reference predicted that
    is closest to the candidate's among those of its class and score (ref i itself, as a rule); "swapped" where that
    is another box, and ref i is beyond the tolerance."""
    box, score = float(np.abs(ref.boxes[i] - out.boxes[j]).max()), abs(float(ref.scores[i]) - float(out.scores[j]))
    if predicted is None or not len(predicted.scores):
        return box, score, False
    boxes = np.abs(predicted.boxes - out.boxes[j]).max(axis=1)
    scores = np.abs(predicted.scores - out.scores[j])
    reproduced = (predicted.class_ids == out.class_ids[j]) & (scores <= score_tol)
    if not reproduced.any() or boxes[reproduced].min() >= box:
        return box, score, False
    best = int(np.argmin(np.where(reproduced, boxes, np.inf)))
    return float(boxes[best]), float(scores[best]), box > box_tol


@dataclass
class CaseResult:
    name: str
    shape: tuple[int, ...]
    box_error_px: float | None  # raw boxes PyTorch is confident about (None: no such box)
    score_error: float | None  # raw class scores: every anchor's, or every row whose rank is unambiguous (None: none)
    detections: list[DetectionComparison]
    tolerance: Tolerance

    @property
    def detections_agree(self) -> bool:
        box_px = self.tolerance.box_px(self.shape)
        return all(d.missing == 0 and d.extra == 0 and d.score_error <= self.tolerance.score and d.box_error_px <= box_px
                   for d in self.detections)

    @property
    def passed(self) -> bool:
        boxes_ok = self.box_error_px is None or self.box_error_px <= self.tolerance.box_px(self.shape)
        scores_ok = self.score_error is None or self.score_error <= self.tolerance.score
        return boxes_ok and scores_ok and self.detections_agree

    @property
    def lost(self) -> list[float]:
        return sorted((s for d in self.detections for s in d.lost), reverse=True)

    def line(self) -> str:
        shape = "x".join(map(str, self.shape))
        boxes = "n/a" if self.box_error_px is None else f"{self.box_error_px:.2g} px"
        ref, out = sum(d.reference for d in self.detections), sum(d.candidate for d in self.detections)
        matched = sum(d.matched for d in self.detections)
        flipped = sum(d.other_class for d in self.detections)
        matched_text = f"{matched} matched" + (f" ({flipped} of the other class)" if flipped else "")
        errors = (f", matched box {max(d.box_error_px for d in self.detections):.2g} px / score "
                  f"{max(d.score_error for d in self.detections):.1e}") if any(d.sure for d in self.detections) else ""
        swapped = sum(d.swapped for d in self.detections)
        if swapped:
            errors += (f" ({swapped} another box PyTorch predicted there, "
                       f"{max(d.swap_shift_px for d in self.detections):.2g} px from PyTorch's pick)")
        near_conf = max((d.near_conf_box_px for d in self.detections), default=0.0)
        if near_conf > self.tolerance.box_px(self.shape):
            errors += f", near --conf {near_conf:.2g} px"
        scores = "n/a" if self.score_error is None else f"{self.score_error:.1e}"
        return (f"{self.name:<14} {shape:<14} raw boxes {boxes:<9} scores {scores:<7}  "
                f"detections torch/export {ref}/{out}, {matched_text}{errors}{self._lost_text()}  "
                f"{'ok' if self.passed else 'DIFFER'}")

    def _lost_text(self) -> str:
        """PyTorch's detections without counterpart: the confident ones plainly, the rest as tolerated."""
        missing = sum(d.missing for d in self.detections)
        if missing:
            return f", LOST {missing} confident detection{'s' if missing > 1 else ''} (best score {self.lost[0]:.2f})"
        if self.lost:
            return f", {len(self.lost)} unmatched near --conf or NMS (best score {self.lost[0]:.2f})"
        return ""


def _raw_anchor_errors(expected, actual, classes, conf):
    """Anchor grids: boxes of the anchors PyTorch is confident about (px), every class score of every anchor."""
    scores = slice(4, 4 + classes)
    confident = expected[:, scores].max(axis=1) >= conf  # (N, anchors)
    box_diff = np.abs(expected[:, :4] - actual[:, :4]).max(axis=1)
    return (float(box_diff[confident].max()) if confident.any() else None,
            float(np.abs(expected[:, scores] - actual[:, scores]).max()))


def _ranked(rows: np.ndarray, head: Head, classes: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(boxes, scores, class scores or class ids) of one image's rows, best first."""
    if head.fixed_width:  # [box, score, class id], already ranked
        return rows[:, :4], rows[:, 4], rows[:, 5:6]
    class_scores = rows[:, 4:4 + classes]
    order = np.argsort(-class_scores.max(axis=1), kind="stable")
    return rows[order, :4], class_scores[order].max(axis=1), class_scores[order]


def _raw_row_errors(expected, actual, head: Head, classes, conf, tol: Tolerance, input_size):
    """Top-k and query rows, ranked by score: compared row by row only where the rank is unambiguous (the score is
    further than the tolerance from its neighbours'), since rows of about equal score may swap in the other runtime."""
    scale = np.array([input_size[1], input_size[0]] * 2, np.float32) if head.normalised else np.ones(4, np.float32)
    box_errors, score_errors = [], []
    for ref_rows, out_rows in zip(expected, actual):
        ref_boxes, ref_scores, ref_fields = _ranked(ref_rows, head, classes)
        out_boxes, out_scores, out_fields = _ranked(out_rows, head, classes)
        gaps = np.abs(np.diff(ref_scores))
        clear = np.ones(len(ref_scores), bool)
        clear[1:] &= gaps > tol.score
        clear[:-1] &= gaps > tol.score
        clear[-1] &= not head.fixed_width  # a top-k's last row has a neighbour below the cut, which may take its place
        if not clear.any():
            continue
        score_errors.append(float(np.abs(ref_scores[clear] - out_scores[clear]).max()))
        if not head.fixed_width:  # every class score of the query
            score_errors.append(float(np.abs(ref_fields[clear] - out_fields[clear]).max()))
        elif (ref_fields[clear] != out_fields[clear]).any():
            score_errors.append(float("inf"))  # a row of clear rank holds another class: not a rounding difference
        confident = clear & (ref_scores >= conf)
        if confident.any():
            box_errors.append(float((np.abs(ref_boxes[confident] - out_boxes[confident]) * scale).max()))
    return (max(box_errors) if box_errors else None), (max(score_errors) if score_errors else None)


def compare(name: str, batch: np.ndarray, reference, candidate, head: Head, classes: int, conf: float,
            tol: Tolerance):
    """Run both on `batch` and compare as `head` lays its output out; returns (CaseResult, reference detections,
    candidate detections), detections in input pixels."""
    expected, actual = reference(batch), candidate(batch)
    if expected.shape != actual.shape:
        raise VerificationError(f"{name}: the export's output shape {actual.shape} differs from PyTorch's {expected.shape}")
    input_size = batch.shape[2:]
    if head.nms:
        box_error, score_error = _raw_anchor_errors(expected, actual, classes, conf)
    else:
        box_error, score_error = _raw_row_errors(expected, actual, head, classes, conf, tol, input_size)
    det_ref, det_out = (decode(head, y, input_size, conf, NMS_IOU, classes=classes) for y in (expected, actual))
    # every box PyTorch predicted that could be a detection in the other runtime, before NMS
    predicted = decode(head, expected, input_size, max(conf - tol.score, 0.0), NMS_IOU, max_det=max(expected.shape[1:]),
                       nms=_keep_all if head.nms else None, classes=classes)
    comparisons = [compare_detections(a, b, conf, tol, head.nms, p, input_size)
                   for a, b, p in zip(det_ref, det_out, predicted)]
    return CaseResult(name, batch.shape, box_error, score_error, comparisons, tol), det_ref, det_out


def _keep_all(boxes, scores, iou):
    """An NMS that suppresses nothing: every candidate, best first."""
    return np.argsort(-scores, kind="stable")


def summary(results: list[CaseResult]) -> str:
    """One line saying what was compared and how it came out, without overstating it."""
    tol = results[0].tolerance.describe(results[0].shape)
    boxes = [r.box_error_px for r in results if r.box_error_px is not None]
    detections = [d for r in results for d in r.detections]
    matched, total = sum(d.matched for d in detections), sum(max(d.reference, d.candidate) for d in detections)
    flipped = sum(d.other_class for d in detections)
    verdict = ("identical" if all(d.identical for d in detections)
               else f"{matched} of {total} matched" + (f" ({flipped} of the other class, their two best scores within tolerance)" if flipped else "")
               + (", the rest within tolerance of --conf or of the NMS threshold" if matched < total else ""))
    worst_boxes = f"{max(boxes):.2g} px" if boxes else "n/a"
    scores = [r.score_error for r in results if r.score_error is not None]
    worst_scores = f"{max(scores):.1e}" if scores else "n/a"
    return (f"verified on {len(results)} inputs against PyTorch (tolerance: {tol}): worst raw box error {worst_boxes}, "
            f"worst score error {worst_scores}; detections {verdict}")


def lost_detections(results: list[CaseResult]) -> str | None:
    """A plain sentence on PyTorch's detections the export did not find (None when it found them all)."""
    lost = [(r.name, r.lost) for r in results if r.lost]
    if not lost:
        return None
    count = sum(len(scores) for _, scores in lost)
    best_name, best = max(((name, scores[0]) for name, scores in lost), key=lambda item: item[1])
    return (f"{count} of PyTorch's detections were not found by the export (on {len(lost)} inputs; the most confident "
            f"scored {best:.2f} on {best_name})")


def side_by_side_png(image: np.ndarray, left: Detections, right: Detections, names: dict, right_title: str) -> bytes:
    """PyTorch's detections (left) and the export's (right) drawn on `image` (3, H, W) by the runtime's own drawer;
    the PNG's bytes."""
    import cv2

    from dattn.runtime.annotate import draw_predictions
    from dattn.runtime.detector import Prediction
    from dattn.runtime.metadata import class_name

    base = np.ascontiguousarray((image.transpose(1, 2, 0)[..., ::-1] * 255).astype(np.uint8))
    zoom = max(1.0, 480 / base.shape[0])  # small exports are drawn larger, so labels stay readable
    base = cv2.resize(base, None, fx=zoom, fy=zoom, interpolation=cv2.INTER_LINEAR)
    panels = []
    for title, found in (("PyTorch", left), (right_title, right)):
        shown = Prediction(found.boxes * zoom, found.scores, found.class_ids, [class_name(names, c) for c in found.class_ids])
        panel = draw_predictions(base, shown)
        cv2.putText(panel, f"{title}: {len(found.scores)} boxes", (6, 18), cv2.FONT_HERSHEY_SIMPLEX, 0.55, (255, 255, 255), 2, cv2.LINE_AA)
        panels.append(panel)
    ok, png = cv2.imencode(".png", np.concatenate(panels, axis=1))
    if not ok:
        raise VerificationError("OpenCV could not encode the verification picture")
    return png.tobytes()
