"""`dattn demo`: the whole job on an embedded default, start to finish, on a CPU.

Generates a small detection dataset, trains a yolov8n-dattn for a few epochs with ultralytics'
own trainer, reloads best.pt in a fresh process and predicts, then exports ONNX and verifies it.
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
        f"result = dattn.load({str(weights)!r}).predict({str(image)!r}, imgsz={imgsz}, conf=0.001, verbose=False)[0]\n"
        "print(f'{len(result.boxes)} boxes, classes {sorted(result.names.values())}')\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"reloading {weights} in a fresh process failed:\n{done.stderr[-2000:]}")
    return done.stdout.strip().splitlines()[-1]


def run(workdir: Path, epochs: int, imgsz: int) -> Path:
    from dattn import export
    from dattn.export.verify import sample_image_paths
    from dattn.ultralytics.synthetic import make_dataset, train

    started = time.perf_counter()
    workdir.mkdir(parents=True, exist_ok=True)
    _step(f"generating a dataset in {workdir / 'data'}")
    data = make_dataset(workdir / "data", imgsz=imgsz)
    _step(f"training yolov8n-dattn for {epochs} epochs at {imgsz} px on the CPU")
    best = workdir / "best.pt"
    shutil.copyfile(train("yolov8n-dattn.yaml", data, workdir / "runs", epochs=epochs, imgsz=imgsz), best)
    _step(f"reloading {best} in a fresh process and predicting")
    print(_predict_in_fresh_process(best, sample_image_paths()[0], imgsz))
    _step("exporting ONNX and verifying it against PyTorch")
    onnx_path = export(best, imgsz=imgsz, conf=0.001)
    _step(f"done in {time.perf_counter() - started:.0f} s: {best}, {onnx_path}, {onnx_path.with_name(onnx_path.stem + '_verify.png')}")
    return onnx_path


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="dattn demo", description=__doc__.splitlines()[0])
    p.add_argument("--workdir", default="dattn-demo", help="folder for the dataset, runs, best.pt and best.onnx")
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--imgsz", type=int, default=128)
    args = p.parse_args(argv)
    print(run(Path(args.workdir), args.epochs, args.imgsz))
    return 0
