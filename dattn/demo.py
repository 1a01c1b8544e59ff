"""`dattn demo`: the whole job on a CPU, start to finish, with a model that really detects.

Generates a dataset of shapes, trains a yolov8n-dattn on it until it detects them, reloads best.pt in a fresh
process and predicts, exports ONNX verified on the generated validation images and ultralytics' samples, and
prints the mAP of the PyTorch model and of the ONNX side by side.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import time
from pathlib import Path


def _step(message: str) -> None:
    print(f"\n== dattn demo: {message}", flush=True)


def _predict_in_fresh_process(weights: Path, image: Path, imgsz: int) -> str:
    code = (
        "import dattn\n"
        f"result = dattn.load({str(weights)!r}).predict({str(image)!r}, imgsz={imgsz}, conf=0.25, verbose=False)[0]\n"
        "found = ', '.join(f'{result.names[int(c)]} {s:.2f}' for c, s in zip(result.boxes.cls, result.boxes.conf))\n"
        "print(f'{len(result.boxes)} boxes: {found}')\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"reloading {weights} in a fresh process failed: {done.stderr.strip().splitlines()[-1:]}")
    return done.stdout.strip().splitlines()[-1]


def run(workdir: Path, epochs: int, imgsz: int) -> Path:
    from dattn.exporting.accuracy import validation_map
    from dattn.exporting.api import export
    from dattn.ultralytics.synthetic import make_dataset, train

    started = time.perf_counter()
    workdir.mkdir(parents=True, exist_ok=True)
    _step(f"generating a dataset of shapes in {workdir / 'data'}")
    data = make_dataset(workdir / "data", imgsz=imgsz)
    _step(f"training yolov8n-dattn for {epochs} epochs at {imgsz} px on the CPU")
    best = workdir / "best.pt"
    shutil.copyfile(train("yolov8n-dattn.yaml", data, workdir / "runs", epochs=epochs, imgsz=imgsz), best)
    validation = workdir / "data" / "images" / "val"
    image = sorted(validation.glob("*.png"))[0]
    _step(f"reloading {best} in a fresh process and predicting on {image.name}")
    print(_predict_in_fresh_process(best, image, imgsz))
    _step("exporting ONNX, verified against PyTorch on validation images and ultralytics' samples")
    onnx_path = export(best, imgsz=imgsz, data=validation)
    _step("mAP on the validation split")
    torch_map = validation_map(best, data, imgsz, batch=1)
    onnx_map = validation_map(onnx_path, data, imgsz, batch=1)
    print(f"mAP50-95 / mAP50: PyTorch {torch_map[0]:.1f} / {torch_map[1]:.1f}, ONNX {onnx_map[0]:.1f} / {onnx_map[1]:.1f}")
    picture = onnx_path.with_name(onnx_path.stem + "_verify.png")
    _step(f"done in {time.perf_counter() - started:.0f} s: {best}, {onnx_path}, {picture}")
    return onnx_path


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="dattn demo", description=__doc__.splitlines()[0])
    p.add_argument("--workdir", default="dattn-demo", help="folder for the dataset, runs, best.pt and best.onnx")
    p.add_argument("--epochs", type=int, default=55)  # measured: mAP50 0.80 on the shapes in 179 s on 2 cores (60: 0.76, 187 s)
    p.add_argument("--imgsz", type=int, default=160)
    args = p.parse_args(argv)
    print(run(Path(args.workdir), args.epochs, args.imgsz))
    return 0
