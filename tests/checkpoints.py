"""Make the checkpoints the tests start from, by real (tiny) training runs, each in a fresh process.

    python tests/checkpoints.py KIND OUT

    recipe   yolov8n-dattn trained with the recipe's classes pasted into ultralytics, until it detects (seed 0)
    yolo26   yolo26n-dattn trained the same way (a recipe-style YOLO26), saved with its NMS-free branch on (seed 1)
    rtdetr   a reduced RT-DETR with a DAttention block (dattn's class), until it detects (seed 2)
    dattn    yolov8n-dattn briefly trained with dattn's own class, BatchNorm statistics calibrated (it only loads)

Each writes OUT/best.pt, OUT/data/ (the generated dataset, data.yaml with a val split) and OUT/reference.pt: a fixed
input and the trained model's eager outputs on it, computed by the classes it was trained with, in a process of its
own (training leaves torch's global settings changed, e.g. deterministic algorithms). Training always runs with the
installed ultralytics, also when a test pass puts another release first on the path: one fixture serves both.
"""

import os
import subprocess
import sys
from pathlib import Path

os.environ.setdefault("YOLO_OFFLINE", "1")
TESTS = Path(__file__).parent


class Kind:
    def __init__(self, cfg, imgsz, epochs, seed, recipe_classes, end2end=False, rtdetr=False, **train_args):
        self.cfg, self.imgsz, self.epochs, self.seed = cfg, imgsz, epochs, seed
        self.recipe_classes, self.end2end, self.rtdetr, self.train_args = recipe_classes, end2end, rtdetr, train_args


# Long enough on generated shapes to detect them (mAP50 >= 0.5; measured: recipe 0.8, yolo26's one-to-one branch 0.6
# after 120 epochs (0.45 after 80), rtdetr 0.59 after 120 epochs at 128 px with AdamW at 0.003 (0.43 after 150 at
# ultralytics' defaults)), except "dattn", which only has to load.
KINDS = {
    "recipe": Kind("yolov8n-dattn.yaml", 160, 80, 0, recipe_classes=True),
    "yolo26": Kind("yolo26n-dattn.yaml", 160, 120, 1, recipe_classes=True, end2end=True),
    "rtdetr": Kind(str(TESTS / "cfg" / "rtdetr-tiny-dattn.yaml"), 128, 120, 2, recipe_classes=False, rtdetr=True,
                   optimizer="AdamW", lr0=0.003),
    "dattn": Kind("yolov8n-dattn.yaml", 128, 2, 0, recipe_classes=False),
}
# What a fixture depends on besides its Kind: a change to any of these trains it again.
SOURCES = (TESTS / "checkpoints.py", TESTS / "recipe.py", TESTS / "cfg" / "rtdetr-tiny-dattn.yaml",
           TESTS.parent / "dattn" / "ultralytics" / "synthetic.py", TESTS.parent / "dattn" / "nn" / "dattention.py",
           TESTS.parent / "dattn" / "ultralytics" / "cfg" / "yolov8-dattn.yaml",
           TESTS.parent / "dattn" / "ultralytics" / "cfg" / "yolo26-dattn.yaml")


def _model(kind: Kind, weights):
    from ultralytics import RTDETR, YOLO

    return (RTDETR if kind.rtdetr else YOLO)(str(weights))


def reference_outputs(name: str, out: Path) -> None:
    import contextlib

    import torch
    from ultralytics.nn.tasks import torch_safe_load

    kind = KINDS[name]
    if kind.recipe_classes:
        from recipe import recipe_classes_pasted

        classes = recipe_classes_pasted()
    else:
        import dattn  # noqa: F401

        classes = contextlib.nullcontext()
    with classes:
        model = torch_safe_load(str(out / "best.pt"))[0]["model"].float().eval()
        x = torch.rand(2, 3, kind.imgsz, kind.imgsz, generator=torch.Generator().manual_seed(0))
        with torch.no_grad():
            y = model(x)[0]
    torch.save({"input": x, "output": y}, out / "reference.pt")


def calibrate_batchnorm(weights: Path, images: Path, imgsz: int) -> None:
    """Replace BatchNorm running statistics with their averages over the training images.

    A few training steps barely move them from init (momentum 0.03), which leaves the features that
    reach DAttention far too small to exercise it. Calibrated, the model behaves like a trained one.
    """
    import numpy as np
    import torch
    from ultralytics.nn.tasks import torch_safe_load

    from dattn.runtime.heads import HEADS, network_input
    from dattn.runtime.preprocess import read_image

    ckpt = torch_safe_load(str(weights))[0]
    model = ckpt["model"].float()
    batch = torch.from_numpy(np.stack([network_input(HEADS["anchors"], read_image(p), (imgsz, imgsz))
                                       for p in sorted(images.glob("*.png"))]))
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.reset_running_stats()
            m.momentum = None  # cumulative average
    model.train()
    with torch.no_grad():
        model(batch)
    ckpt["model"], ckpt["ema"] = model.eval().half(), None
    torch.save(ckpt, weights)


def _save_with_end2end(weights: Path) -> None:
    """Switch the head to its one-to-one branch in the saved checkpoint, as a user who saved it so."""
    import torch
    from ultralytics.nn.tasks import torch_safe_load

    ckpt = torch_safe_load(str(weights))[0]
    for key in ("model", "ema"):
        if ckpt.get(key) is not None:
            ckpt[key].model[-1].end2end = True
    torch.save(ckpt, weights)


def train(name: str, out: Path) -> None:
    import ultralytics.nn.tasks as tasks

    import dattn  # noqa: F401  (builds the yamls with DAttention)
    from dattn.ultralytics.register import DAttentionFromYaml
    from dattn.ultralytics.synthetic import make_dataset, train
    from recipe import as_recipe_objects, recipe_classes_pasted

    kind = KINDS[name]
    small = name == "dattn"
    data = make_dataset(out / "data", n_train=16 if small else 48, n_val=4 if small else 64, imgsz=kind.imgsz,
                        seed=kind.seed)
    if kind.recipe_classes:
        class RecipeDAttentionFromYaml(DAttentionFromYaml):  # what the recipe's parse_model patch builds
            def __new__(cls, *args, **kwargs):
                return as_recipe_objects(DAttentionFromYaml(*args, **kwargs))

        with recipe_classes_pasted():
            tasks.DAttention = RecipeDAttentionFromYaml
            best = train(_model(kind, kind.cfg), data, out / "runs", epochs=kind.epochs, imgsz=kind.imgsz, seed=kind.seed,
                         **kind.train_args)
            if kind.end2end:
                _save_with_end2end(best)
    else:
        best = train(_model(kind, kind.cfg), data, out / "runs", epochs=kind.epochs, imgsz=kind.imgsz, seed=kind.seed,
                     **kind.train_args)
        if small:
            calibrate_batchnorm(best, out / "data" / "images" / "train", kind.imgsz)
    (out / "best.pt").write_bytes(best.read_bytes())


def _overrides() -> list[str]:
    """PYTHONPATH entries that put another ultralytics ahead of the installed one (the 8.3 test pass does)."""
    return [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p and (Path(p) / "ultralytics").is_dir()]


def training_environment() -> dict:
    """This process's environment without PYTHONPATH entries that override the installed ultralytics."""
    paths = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p and p not in _overrides()]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(paths)}


def installed_ultralytics() -> str:
    """The version of the installed ultralytics, which trains the fixtures."""
    import importlib.metadata

    overrides = {os.path.abspath(p) for p in _overrides()}
    path = [p for p in sys.path if os.path.abspath(p or ".") not in overrides]
    return next(importlib.metadata.distributions(name="ultralytics", path=path)).version


if __name__ == "__main__":
    name, out = sys.argv[1], Path(sys.argv[2])
    out.mkdir(parents=True, exist_ok=True)
    if len(sys.argv) > 3 and sys.argv[3] == "--reference-only":
        reference_outputs(name, out)
    else:
        train(name, out)
        subprocess.run([sys.executable, __file__, name, str(out), "--reference-only"], check=True)
