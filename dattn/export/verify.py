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
from dattn.export.dataset import Dataset, evenly_spaced, split_images
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


# FP32 differs from PyTorch by summation order only. FP16 and INT8 differ by rounding activations and weights:
# measured on the generated-shapes detector (README, "Precision"), the largest errors over 66 images were
# FP16 0.07 px / 0.001 at 160 px, INT8 2.7 px / 0.18.
TOLERANCES = {
    "fp32": Tolerance(box_fraction=1e-4, score=1e-3),
    "fp16": Tolerance(box_fraction=2.5e-3, score=0.02),
    "int8": Tolerance(box_fraction=0.03, score=0.25),
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
    box_error_px: float  # largest coordinate difference of a matched pair
    score_error: float  # largest score difference of a matched pair
    identical: bool
    lost: list[float]  # scores of the reference detections without counterpart (tolerated or not), best first


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
                       nms: bool = True) -> DetectionComparison:
    """Match each detection to its best counterpart (IoU >= 0.5), greedily by overlap, preferring the same class:
    never by position in the output, where queries with tied scores may swap.

    A detection without counterpart is "missing"/"extra" only when its score is clearly above `conf` (one scoring
    within the score tolerance of the threshold may fall on either side of it in the other runtime) and, after NMS
    (`nms`), no box of the other side overlaps it nearly at the NMS threshold (NMS may have suppressed it there). A
    pair may differ in class: the raw comparison bounds the class scores, so that happens only where the two best
    class scores were within the tolerance of each other.
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
    box_error = max((float(np.abs(ref.boxes[i] - out.boxes[j]).max()) for i, j in pairs), default=0.0)
    score_error = max((abs(float(ref.scores[i]) - float(out.scores[j])) for i, j in pairs), default=0.0)
    identical = (len(ref.scores) == len(out.scores) and np.array_equal(ref.boxes, out.boxes)
                 and np.array_equal(ref.scores, out.scores) and np.array_equal(ref.class_ids, out.class_ids))
    lost = sorted((float(s) for i, s in enumerate(ref.scores) if i not in matched_ref), reverse=True)
    return DetectionComparison(len(ref.scores), len(out.scores), len(pairs), other_class, missing, extra, box_error,
                               score_error, identical, lost)


@dataclass
class CaseResult:
    name: str
    shape: tuple[int, ...]
    box_error_px: float | None  # raw boxes PyTorch is confident about (None: no such box)
    score_error: float  # raw class scores: every anchor's, or every top-k row whose rank is unambiguous
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
        return boxes_ok and self.score_error <= self.tolerance.score and self.detections_agree

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
                  f"{max(d.score_error for d in self.detections):.1e}") if matched else ""
        lost = f", lost {len(self.lost)} (best score {self.lost[0]:.2f})" if self.lost else ""
        return (f"{self.name:<14} {shape:<14} raw boxes {boxes:<9} scores {self.score_error:.1e}  "
                f"detections torch/export {ref}/{out}, {matched_text}{errors}{lost}  {'ok' if self.passed else 'DIFFER'}")


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
    box_errors, score_errors = [], [0.0]
    for ref_rows, out_rows in zip(expected, actual):
        ref_boxes, ref_scores, ref_fields = _ranked(ref_rows, head, classes)
        out_boxes, out_scores, out_fields = _ranked(out_rows, head, classes)
        gaps = np.abs(np.diff(ref_scores))
        clear = np.ones(len(ref_scores), bool)
        clear[1:] &= gaps > tol.score
        clear[:-1] &= gaps > tol.score
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
    return (max(box_errors) if box_errors else None), max(score_errors)


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
    comparisons = [compare_detections(a, b, conf, tol, head.nms) for a, b in zip(det_ref, det_out)]
    return CaseResult(name, batch.shape, box_error, score_error, comparisons, tol), det_ref, det_out


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
    return (f"verified on {len(results)} inputs against PyTorch (tolerance: {tol}): worst raw box error {worst_boxes}, "
            f"worst score error {max(r.score_error for r in results):.1e}; detections {verdict}")


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
