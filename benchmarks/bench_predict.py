"""Images/s of `dattn predict` against ultralytics' `YOLO("best.onnx").predict` on one folder, side by side in one run.

Both run the same ONNX (exported once by dattn) on ONNX Runtime's CPU provider with its default thread count,
over the same folder of images, model loaded and warmed up beforehand; only the pass over the folder is timed
(reading, letterbox, inference, decode, NMS, results). Rounds are interleaved with a rotating order so drifts
in clock speed or load hit both alike; the table reports the median round.

A third row runs dattn's pipeline with its read-ahead thread (reading and letterboxing the next images during
inference), which `dattn predict` uses only when the model runs on a GPU. The share of the CPU that other
processes used while timing is printed: on a shared machine, ONNX Runtime's spinning workers (both sides use
its defaults) lose the most, and the figures move with the load.

It also times decode + NMS alone with OpenCV's NMSBoxes against the numpy NMS on the folder's raw outputs
(at a low confidence threshold, so NMS has work), after checking that both keep the same detections.

    python benchmarks/bench_predict.py --weights best.pt [--source FOLDER] [--imgsz 640] [--repeats 5] [--conf 0.25]

--source defaults to the validation images beside the weights (a dattn test run's data/images/val) or, without
them, ultralytics' bus.jpg and zidane.jpg.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("YOLO_OFFLINE", "1")

GOAL_SPEEDUP = 1.3  # dattn predict at least 1.3x ultralytics' images/s


def default_source(weights: Path) -> Path:
    beside = weights.parent / "data" / "images" / "val"
    if beside.is_dir():
        return beside
    import ultralytics

    return Path(ultralytics.__file__).parent / "assets"


def image_files(folder: Path) -> list[str]:
    return sorted(str(p) for p in folder.iterdir() if p.suffix.lower() in {".jpg", ".jpeg", ".png", ".bmp"})


def interleaved_rounds(contenders: dict, repeats: int) -> dict[str, list[float]]:
    """Seconds per pass over the folder for each contender, rounds interleaved with a rotating order."""
    names = list(contenders)
    for name in names:  # warm-up pass: first-call allocations, file cache
        contenders[name]()
    seconds = {name: [] for name in names}
    for round_ in range(repeats):
        shift = round_ % len(names)
        for name in names[shift:] + names[:shift]:
            start = time.perf_counter()
            contenders[name]()
            seconds[name].append(time.perf_counter() - start)
    return seconds


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", type=Path, required=True, help="the .pt checkpoint to export and run")
    parser.add_argument("--source", type=Path, help="a folder of images (default: see above)")
    parser.add_argument("--imgsz", type=int, default=640, help="export and predict size (default 640)")
    parser.add_argument("--conf", type=float, default=0.25, help="confidence threshold for both (default 0.25)")
    parser.add_argument("--repeats", type=int, default=5, help="timed passes over the folder per contender (default 5)")
    parser.add_argument("--nms-conf", type=float, default=0.01, help="confidence threshold of the NMS timing (default 0.01)")
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")

    import numpy as np
    import onnxruntime
    from ultralytics import YOLO

    import dattn
    from bench_onnx_runtime import machine_busy_seconds

    from dattn.runtime import Detector
    from dattn.runtime.postprocess import decode, nms_numpy, nms_opencv
    from dattn.runtime.predict import predict_files
    from dattn.runtime.preprocess import read_image

    source = args.source or default_source(args.weights)
    files = image_files(source)
    if not files:
        parser.error(f"no images in {source}")
    with tempfile.TemporaryDirectory(prefix="dattn-bench-predict-") as tmp:
        onnx_path = dattn.export(args.weights, imgsz=args.imgsz, output=Path(tmp) / "best.onnx", verify=False)
        detector = Detector(onnx_path, conf=args.conf, device="cpu")
        ultralytics_model = YOLO(str(onnx_path), task="detect")

        def run_dattn():
            return predict_files(detector, files)

        def run_dattn_read_ahead():
            return predict_files(detector, files, read_ahead=True)

        def run_ultralytics():
            return list(ultralytics_model.predict(str(source), imgsz=args.imgsz, conf=args.conf, device="cpu",
                                                  stream=True, verbose=False, save=False))

        ours = sum(len(r["scores"]) for r in run_dattn().records)
        theirs = sum(len(r.boxes) for r in run_ultralytics())
        busy, own, wall = machine_busy_seconds(), time.process_time(), time.perf_counter()
        seconds = interleaved_rounds({"dattn predict": run_dattn, "ultralytics": run_ultralytics,
                                      "dattn, read-ahead": run_dattn_read_ahead}, args.repeats)
        others = (machine_busy_seconds() - busy - (time.process_time() - own)) / (time.perf_counter() - wall)
        stages = run_dattn().timings

        outputs = [detector.infer(detector.preprocess([read_image(f)])[0]) for f in files]
        same = all(np.array_equal(a.class_ids, b.class_ids) and np.allclose(a.boxes, b.boxes, atol=1e-3)
                   for out in outputs for a, b in zip(decode(out, args.nms_conf, nms=nms_opencv),
                                                      decode(out, args.nms_conf, nms=nms_numpy)))
        candidates = sum(int((out[0, 4:].max(axis=0) > args.nms_conf).sum()) for out in outputs)
        nms_seconds = interleaved_rounds({
            "opencv": lambda: [decode(out, args.nms_conf, nms=nms_opencv) for out in outputs],
            "numpy": lambda: [decode(out, args.nms_conf, nms=nms_numpy) for out in outputs],
        }, max(args.repeats, 5))

    n = len(files)
    rate = {name: n / statistics.median(s) for name, s in seconds.items()}
    speedup = rate["dattn predict"] / rate["ultralytics"]
    print(f"CPU: {platform.processor() or platform.machine()}, {os.cpu_count()} cores; onnxruntime {onnxruntime.__version__} "
          f"CPU provider, default threads for both; {detector.description}")
    print(f"model: {args.weights} exported at {args.imgsz}x{args.imgsz}; folder {source}: {n} images; conf {args.conf}; "
          f"median of {args.repeats} interleaved passes after one warm-up")
    print(f"detections per pass: dattn predict {ours}, ultralytics {theirs}")
    if others == others:  # not NaN: /proc/stat was readable
        print(f"other processes used {max(others, 0.0):.2f} of {os.cpu_count()} cores while timing")
    print(f"{'pipeline':16} {'images/s':>9} {'ms/image':>9} {'vs ultralytics':>15}")
    for name, r in rate.items():
        print(f"{name:16} {r:>9.1f} {1e3 / r:>9.2f} {r / rate['ultralytics']:>14.2f}x")
    n_stage = max(stages.images, 1)
    print(f"dattn predict stages per image: pre-process {1e3 * stages.pre / n_stage:.2f} ms, inference "
          f"{1e3 * stages.infer / n_stage:.2f} ms, post-process {1e3 * stages.post / n_stage:.2f} ms")
    nms_ms = {name: 1e3 * statistics.median(s) / n for name, s in nms_seconds.items()}
    print(f"decode + NMS at conf {args.nms_conf} ({candidates / n:.0f} candidates per image): OpenCV NMSBoxes "
          f"{nms_ms['opencv']:.3f} ms/image, numpy {nms_ms['numpy']:.3f} ms/image "
          f"({nms_ms['numpy'] / nms_ms['opencv']:.2f}x); same detections: {'yes' if same else 'NO'}")
    print("goal:")
    print(f"  {'met   ' if speedup >= GOAL_SPEEDUP else 'MISSED'} dattn predict >= {GOAL_SPEEDUP}x ultralytics "
          f"YOLO('best.onnx').predict: {speedup:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
