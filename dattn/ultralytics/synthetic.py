"""A small generated detection dataset and a short training run, for the demo and the tests.

Images are noise with filled rectangles (class "box") and ellipses (class "disc"); labels are exact.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

CLASS_NAMES = ("box", "disc")


def _draw_image(rng: np.random.Generator, imgsz: int):
    import cv2

    image = rng.integers(0, 80, size=(imgsz, imgsz, 3), dtype=np.uint8)
    labels = []
    for _ in range(rng.integers(1, 4)):
        cls = int(rng.integers(0, len(CLASS_NAMES)))
        w, h = rng.integers(imgsz // 6, imgsz // 2, size=2)
        x0, y0 = rng.integers(0, imgsz - w), rng.integers(0, imgsz - h)
        colour = tuple(int(c) for c in rng.integers(120, 256, size=3))
        if cls == 0:
            cv2.rectangle(image, (int(x0), int(y0)), (int(x0 + w), int(y0 + h)), colour, thickness=-1)
        else:
            centre, axes = (int(x0 + w // 2), int(y0 + h // 2)), (int(w // 2), int(h // 2))
            cv2.ellipse(image, centre, axes, 0, 0, 360, colour, thickness=-1)
        labels.append((cls, (x0 + w / 2) / imgsz, (y0 + h / 2) / imgsz, w / imgsz, h / imgsz))
    return image, labels


def make_dataset(root: str | Path, n_train: int = 48, n_val: int = 64, imgsz: int = 160, seed: int = 0) -> Path:
    """Write images, YOLO labels and a data yaml under `root`; returns the yaml's path."""
    import cv2

    root = Path(root)
    rng = np.random.default_rng(seed)
    for split, count in (("train", n_train), ("val", n_val)):
        (root / "images" / split).mkdir(parents=True, exist_ok=True)
        (root / "labels" / split).mkdir(parents=True, exist_ok=True)
        for i in range(count):
            image, labels = _draw_image(rng, imgsz)
            cv2.imwrite(str(root / "images" / split / f"{i:04d}.png"), image)
            rows = (f"{c} {x:.6f} {y:.6f} {w:.6f} {h:.6f}" for c, x, y, w, h in labels)
            (root / "labels" / split / f"{i:04d}.txt").write_text("\n".join(rows) + "\n")
    data = root / "data.yaml"
    names = "".join(f"  {i}: {n}\n" for i, n in enumerate(CLASS_NAMES))
    data.write_text(f"path: {root.resolve()}\ntrain: images/train\nval: images/val\nnames:\n{names}")
    return data


def train(model, data: str | Path, project: str | Path, epochs: int = 80, imgsz: int = 160, batch: int = 8,
          seed: int = 0, **overrides) -> Path:
    """Train `model` (a yaml name, or an ultralytics YOLO or RTDETR object) briefly on the CPU; returns the best.pt
    it wrote. `overrides` are further ultralytics training arguments (optimizer, lr0, ...)."""
    from ultralytics import YOLO

    yolo = YOLO(model) if isinstance(model, (str, Path)) else model
    yolo.train(  # val=False: validated once, after the last epoch
        data=str(data), epochs=epochs, imgsz=imgsz, batch=batch, workers=0, device="cpu", amp=False, val=False,
        plots=False, project=str(Path(project).resolve()), name="train", exist_ok=True, seed=seed, verbose=False, **overrides,
    )
    best = Path(yolo.trainer.best)
    if not best.is_file():
        raise RuntimeError(f"training finished without writing {best}")
    return best
