"""Check an exported ONNX against PyTorch on real images and random inputs.

Runners (how to execute a model on an NCHW float32 batch) and comparators (how to judge two raw
outputs) are separate pieces: a new runtime is one new runner.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

SAMPLE_IMAGES = ("bus.jpg", "zidane.jpg")  # shipped in ultralytics' assets


# ---- inputs -------------------------------------------------------------------------------------


def sample_image_paths() -> list[Path]:
    import ultralytics

    assets = Path(ultralytics.__file__).parent / "assets"
    return [assets / name for name in SAMPLE_IMAGES]


def letterbox(path: Path, size: tuple[int, int]) -> np.ndarray:
    """(3, H, W) float32 RGB in [0, 1]: the image scaled to fit, centred on grey, as ultralytics predicts."""
    import cv2

    image = cv2.imread(str(path))
    if image is None:
        raise FileNotFoundError(f"cannot read image {path}")
    h, w = image.shape[:2]
    scale = min(size[0] / h, size[1] / w)
    nh, nw = round(h * scale), round(w * scale)
    canvas = np.full((size[0], size[1], 3), 114, dtype=np.uint8)
    top, left = (size[0] - nh) // 2, (size[1] - nw) // 2
    canvas[top : top + nh, left : left + nw] = cv2.resize(image, (nw, nh), interpolation=cv2.INTER_LINEAR)
    return np.ascontiguousarray(canvas[..., ::-1].transpose(2, 0, 1), dtype=np.float32) / 255.0


def random_batch(batch: int, size: tuple[int, int], seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).random((batch, 3, *size), dtype=np.float32)


# ---- runners ------------------------------------------------------------------------------------


def torch_runner(model: torch.nn.Module):
    def run(batch: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            out = model(torch.from_numpy(batch))
        return (out[0] if isinstance(out, (tuple, list)) else out).numpy()

    return run


def onnxruntime_runner(onnx_path: Path, uses_plugin: bool = False, threads: int | None = None):
    import onnx
    import onnxruntime

    if uses_plugin:
        from dattn.plugin.ort_reference import onnxruntime_model, session_options

        options, model_bytes = session_options(), onnxruntime_model(onnx.load(str(onnx_path))).SerializeToString()
    else:
        options, model_bytes = onnxruntime.SessionOptions(), str(onnx_path)
    if threads:
        options.intra_op_num_threads = threads
    session = onnxruntime.InferenceSession(model_bytes, sess_options=options, providers=["CPUExecutionProvider"])
    input_name = session.get_inputs()[0].name

    def run(batch: np.ndarray) -> np.ndarray:
        return session.run(None, {input_name: batch})[0]

    return run


# ---- comparators --------------------------------------------------------------------------------


@dataclass
class Detections:
    boxes: np.ndarray  # (n, 4) xyxy pixels
    scores: np.ndarray
    classes: np.ndarray


SCORE_QUANTUM = 1e-4  # scores this close count as tied; ties go to the lower anchor index on both sides


def detections(output: np.ndarray, conf: float, iou: float = 0.7, max_det: int = 300) -> list[Detections]:
    """Class-aware NMS over a raw YOLO output (batch, 4 + classes, anchors) with xywh boxes.

    NMS visits boxes in order of quantised score, then anchor index: two runtimes whose scores differ
    by rounding keep the same box of a near-tied overlapping pair, so their results can be compared.
    """
    from torchvision.ops import batched_nms

    found = []
    for image in torch.from_numpy(output).double():
        scores, classes = image[4:].max(dim=0)
        anchors = torch.nonzero(scores > conf).flatten()
        xywh, scores, classes = image[:4, anchors].T, scores[anchors], classes[anchors]
        boxes = torch.cat((xywh[:, :2] - xywh[:, 2:] / 2, xywh[:, :2] + xywh[:, 2:] / 2), dim=1)
        visiting_order = torch.floor(scores / SCORE_QUANTUM) + 0.5 * (1 - anchors.double() / (anchors.max() + 1 if len(anchors) else 1))
        kept = batched_nms(boxes, visiting_order, classes, iou)[:max_det]
        found.append(Detections(boxes[kept].float().numpy(), scores[kept].float().numpy(), classes[kept].numpy()))
    return found


def _iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    lt, rb = np.maximum(a[:, None, :2], b[None, :, :2]), np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.clip(rb - lt, 0, None).prod(-1)
    area = lambda x: (x[:, 2] - x[:, 0]) * (x[:, 3] - x[:, 1])  # noqa: E731
    return inter / (area(a)[:, None] + area(b)[None, :] - inter + 1e-9)


def _unmatched(a: Detections, b: Detections, min_score: float, min_iou: float) -> int:
    """How many of a's detections scoring at least min_score have no same-class box in b with IoU >= min_iou."""
    sure = a.scores >= min_score
    if not sure.any():
        return 0
    if len(b.scores) == 0:
        return int(sure.sum())
    overlap = _iou(a.boxes[sure], b.boxes) * (a.classes[sure][:, None] == b.classes[None, :])
    return int((overlap.max(axis=1) < min_iou).sum())


def detections_agree(a: Detections, b: Detections, conf: float, min_iou: float = 0.99, margin: float = 0.01) -> bool:
    """Same boxes and classes both ways; a box scoring within `margin` (relative) of conf may be on one side only."""
    sure = conf * (1 + margin)
    return _unmatched(a, b, sure, min_iou) == 0 and _unmatched(b, a, sure, min_iou) == 0


# ---- the report ---------------------------------------------------------------------------------


@dataclass
class CaseResult:
    name: str
    shape: tuple[int, ...]
    max_abs: float
    max_rel: float  # max_abs / max |reference|
    boxes_torch: int
    boxes_onnx: int
    detections_match: bool

    def passed(self, rtol: float) -> bool:
        return self.max_rel <= rtol and self.detections_match

    def line(self) -> str:
        shape = "x".join(map(str, self.shape))
        return (f"{self.name:<14} {shape:<14} max|diff| {self.max_abs:.2e}  rel {self.max_rel:.2e}  "
                f"boxes torch/onnx {self.boxes_torch}/{self.boxes_onnx}  {'match' if self.detections_match else 'DIFFER'}")


def compare(name: str, batch: np.ndarray, reference, candidate, conf: float) -> tuple[CaseResult, list, list]:
    expected, actual = reference(batch), candidate(batch)
    if expected.shape != actual.shape:
        raise AssertionError(f"{name}: output shape {actual.shape} differs from PyTorch's {expected.shape}")
    max_abs = float(np.abs(expected - actual).max())
    scale = float(np.abs(expected).max()) or 1.0
    det_ref, det_out = detections(expected, conf), detections(actual, conf)
    agree = all(detections_agree(a, b, conf) for a, b in zip(det_ref, det_out))
    result = CaseResult(name, batch.shape, max_abs, max_abs / scale, sum(len(d.scores) for d in det_ref),
                        sum(len(d.scores) for d in det_out), agree)
    return result, det_ref, det_out


def verification_cases(imgsz: tuple[int, int], batch: int, dynamic: bool) -> list[tuple[str, np.ndarray]]:
    """Real images and random inputs at the export size; with `dynamic`, other sizes and batch sizes too."""
    images = [letterbox(p, imgsz) for p in sample_image_paths()]
    cases = [(p.name, np.repeat(image[None], batch, axis=0)) for p, image in zip(sample_image_paths(), images)]
    cases.append(("random", random_batch(batch, imgsz)))
    if dynamic:
        stride = 32
        for b, factor in ((2, 1.0), (3, 0.5), (1, 0.75)):
            size = tuple(max(stride, round(s * factor / stride) * stride) for s in imgsz)
            cases.append((f"random-b{b}", random_batch(b, size, seed=b)))
        cases.append(("images-b2", np.stack(images)))
    return cases


def side_by_side_png(path: Path, image: np.ndarray, left: Detections, right: Detections, names: dict) -> Path:
    """Draw PyTorch's detections (left) and ONNX Runtime's (right) on `image` (3, H, W) and save a PNG."""
    import cv2

    base = np.ascontiguousarray((image.transpose(1, 2, 0)[..., ::-1] * 255).astype(np.uint8))
    zoom = max(1.0, 480 / base.shape[0])  # small exports are drawn larger, so labels stay readable
    base = cv2.resize(base, None, fx=zoom, fy=zoom, interpolation=cv2.INTER_LINEAR)
    panels = []
    for title, found, colour in (("PyTorch", left, (40, 200, 40)), ("ONNX Runtime", right, (230, 120, 30))):
        panel = base.copy()
        for box, score, cls in zip(found.boxes, found.scores, found.classes):
            x0, y0, x1, y1 = (int(round(v * zoom)) for v in box)
            cv2.rectangle(panel, (x0, y0), (x1, y1), colour, 2)
            cv2.putText(panel, f"{names.get(int(cls), int(cls))} {score:.2f}", (x0, max(12, y0 - 4)),
                        cv2.FONT_HERSHEY_SIMPLEX, 0.45, colour, 1, cv2.LINE_AA)
        cv2.putText(panel, f"{title}: {len(found.scores)} boxes", (6, 18), cv2.FONT_HERSHEY_SIMPLEX, 0.55, (255, 255, 255), 2, cv2.LINE_AA)
        panels.append(panel)
    cv2.imwrite(str(path), np.concatenate(panels, axis=1))
    return path
