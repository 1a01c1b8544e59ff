"""Make the checkpoints the tests start from, by real (tiny) training runs, each in a fresh process.

    python tests/checkpoints.py recipe OUT   # trained with the recipe's classes pasted into ultralytics, until it detects
    python tests/checkpoints.py dattn OUT    # briefly trained with dattn's own class

Each writes OUT/best.pt and OUT/reference.pt: a fixed input and the trained model's eager outputs on it,
computed by the classes it was trained with, in a process of its own (training leaves torch's global
settings changed, e.g. deterministic algorithms).
"""

import os
import subprocess
import sys
from pathlib import Path

os.environ.setdefault("YOLO_OFFLINE", "1")

# The recipe detector: long enough on generated shapes to detect them (mAP50 ~0.75); the dattn one only loads.
RECIPE_IMGSZ, RECIPE_EPOCHS = 160, 80
DATTN_IMGSZ, DATTN_EPOCHS = 128, 2


def reference_outputs(kind: str, out: Path) -> None:
    import contextlib

    import torch
    from ultralytics.nn.tasks import torch_safe_load

    if kind == "recipe":
        from recipe import recipe_classes_pasted

        classes = recipe_classes_pasted()
    else:
        import dattn  # noqa: F401

        classes = contextlib.nullcontext()
    with classes:
        model = torch_safe_load(str(out / "best.pt"))[0]["model"].float().eval()
        size = RECIPE_IMGSZ if kind == "recipe" else DATTN_IMGSZ
        x = torch.rand(2, 3, size, size, generator=torch.Generator().manual_seed(0))
        with torch.no_grad():
            y = model(x)[0]
    torch.save({"input": x, "output": y}, out / "reference.pt")


def calibrate_batchnorm(weights: Path, images: Path) -> None:
    """Replace BatchNorm running statistics with their averages over the training images.

    A few training steps barely move them from init (momentum 0.03), which leaves the features that
    reach DAttention far too small to exercise it. Calibrated, the model behaves like a trained one.
    """
    import numpy as np
    import torch
    from ultralytics.nn.tasks import torch_safe_load

    from dattn.export.verify import letterbox

    ckpt = torch_safe_load(str(weights))[0]
    model = ckpt["model"].float()
    batch = torch.from_numpy(np.stack([letterbox(p, (DATTN_IMGSZ, DATTN_IMGSZ)) for p in sorted(images.glob("*.png"))]))
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.reset_running_stats()
            m.momentum = None  # cumulative average
    model.train()
    with torch.no_grad():
        model(batch)
    ckpt["model"], ckpt["ema"] = model.eval().half(), None
    torch.save(ckpt, weights)


def train_recipe(out: Path) -> None:
    import ultralytics.nn.tasks as tasks

    import dattn  # noqa: F401  (builds the recipe's yaml)
    from dattn.ultralytics.register import DAttentionFromYaml
    from dattn.ultralytics.synthetic import make_dataset, train
    from recipe import as_recipe_objects, recipe_classes_pasted

    class RecipeDAttentionFromYaml(DAttentionFromYaml):  # what the recipe's parse_model patch builds
        def __new__(cls, *args, **kwargs):
            return as_recipe_objects(DAttentionFromYaml(*args, **kwargs))

    with recipe_classes_pasted():
        tasks.DAttention = RecipeDAttentionFromYaml
        data = make_dataset(out / "data", imgsz=RECIPE_IMGSZ)
        best = train("yolov8n-dattn.yaml", data, out / "runs", epochs=RECIPE_EPOCHS, imgsz=RECIPE_IMGSZ)
    (out / "best.pt").write_bytes(best.read_bytes())


def train_dattn(out: Path) -> None:
    import dattn  # noqa: F401
    from dattn.ultralytics.synthetic import make_dataset, train

    data = make_dataset(out / "data", n_train=16, n_val=4, imgsz=DATTN_IMGSZ)
    best = train("yolov8n-dattn.yaml", data, out / "runs", epochs=DATTN_EPOCHS, imgsz=DATTN_IMGSZ)
    calibrate_batchnorm(best, out / "data" / "images" / "train")
    (out / "best.pt").write_bytes(best.read_bytes())


if __name__ == "__main__":
    kind, out = sys.argv[1], Path(sys.argv[2])
    out.mkdir(parents=True, exist_ok=True)
    if len(sys.argv) > 3 and sys.argv[3] == "--reference-only":
        reference_outputs(kind, out)
    else:
        {"recipe": train_recipe, "dattn": train_dattn}[kind](out)
        subprocess.run([sys.executable, __file__, kind, str(out), "--reference-only"], check=True)
