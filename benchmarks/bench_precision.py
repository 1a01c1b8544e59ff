"""ONNX Runtime (CPU) latency of the FP32 and INT8 exports against PyTorch eager, side by side, with each one's mAP.

Latency at --imgsz (640) on one letterboxed image, every runtime on the same threads, rounds interleaved (see
bench_onnx_runtime.py); INT8 in both flavours: "onnxruntime" (uint8 activations, what --target ort writes) and
"tensorrt" (symmetric int8, what TensorRT targets get, run here by ONNX Runtime). mAP50-95 on the dataset's val
split by ultralytics' validator, each precision exported the same way at --map-imgsz (the size the data was made for).

    python benchmarks/bench_precision.py --weights best.pt --data data.yaml [--imgsz 640] [--map-imgsz 160] [--threads 2]

Without --weights/--data it generates the shapes dataset and trains yolov8n-dattn on it first (a few minutes).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("YOLO_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).parent))
from bench_onnx_runtime import onnxruntime_runner, time_interleaved_under_load  # noqa: E402

GOAL_INT8_VS_TORCH = 0.5
GOAL_MAP_DROP = 1.0
VARIANTS = {  # name: export keyword arguments
    "fp32": {},
    "int8 (ort flavour)": {"int8": True},
    "int8 (trt flavour)": {"int8": True, "target": "trt"},
}


def trained_detector(folder: Path) -> tuple[Path, Path]:
    from dattn.ultralytics.synthetic import make_dataset, train

    data = make_dataset(folder / "data")
    return train("yolov8n-dattn.yaml", data, folder / "runs"), data


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", type=Path)
    parser.add_argument("--data", type=Path, help="ultralytics data yaml: calibration (train split) and mAP (val split)")
    parser.add_argument("--imgsz", type=int, default=640, help="input size for the latency (default 640)")
    parser.add_argument("--map-imgsz", type=int, default=160, help="input size for the mAP (default 160)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=5)
    args = parser.parse_args(argv)
    if (args.weights is None) != (args.data is None):
        parser.error("give --weights and --data together, or neither")

    import onnxruntime
    import torch

    import dattn
    from dattn.export import verify as v
    from dattn.export.accuracy import validation_map
    from dattn.export.torch_onnx import prepare_for_export

    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory(prefix="dattn-bench-precision-") as tmp:
        tmp = Path(tmp)
        weights, data = (args.weights, args.data) if args.weights else trained_detector(tmp)
        maps, runners = {}, {"torch eager": v.torch_runner(prepare_for_export(dattn.load(weights).model, dynamic=False))}
        maps["torch eager"] = validation_map(weights, data, args.map_imgsz, batch=1)
        for name, options in VARIANTS.items():
            stem = name.split()[0] + ("-trt" if "trt" in name else "")
            print(f"exporting {name} ...", file=sys.stderr, flush=True)
            timed = dattn.export(weights, imgsz=args.imgsz, data=data, verify=False, output=tmp / f"{stem}-{args.imgsz}.onnx", **options)
            measured = dattn.export(weights, imgsz=args.map_imgsz, data=data, verify=False, output=tmp / f"{stem}-{args.map_imgsz}.onnx", **options)
            runners[f"ort {name}"] = onnxruntime_runner(timed, args.threads)
            maps[f"ort {name}"] = validation_map(measured, data, args.map_imgsz, batch=1)
        batch = v.letterbox(v.sample_image_paths()[0], (args.imgsz, args.imgsz))[None]
        times, others = time_interleaved_under_load(runners, batch, args.repeats, args.warmup)

    median = {name: statistics.median(ms) for name, ms in times.items()}
    torch_ms = median["torch eager"]
    print(f"CPU: {platform.processor() or platform.machine()}, {os.cpu_count()} cores; threads {args.threads}; "
          f"torch {torch.__version__}, onnxruntime {onnxruntime.__version__}")
    print(f"latency: 1x3x{args.imgsz}x{args.imgsz}, median of {args.repeats} interleaved rounds; mAP at {args.map_imgsz} px on {data}")
    if others == others:
        print(f"other processes used {max(others, 0.0):.2f} of {os.cpu_count()} cores while timing")
    print(f"{'runtime':26} {'median ms':>10} {'vs torch':>9} {'mAP50-95':>9} {'mAP50':>7}")
    for name, ms in median.items():
        print(f"{name:26} {ms:>10.1f} {ms / torch_ms:>8.2f}x {maps[name][0]:>9.1f} {maps[name][1]:>7.1f}")
    print("goals:")
    for name in (n for n in median if "int8" in n):
        ratio, drop = median[name] / torch_ms, maps["ort fp32"][0] - maps[name][0]
        print(f"  {'met   ' if ratio <= GOAL_INT8_VS_TORCH and drop <= GOAL_MAP_DROP else 'MISSED'} {name}: "
              f"{ratio:.2f}x torch eager (goal <= {GOAL_INT8_VS_TORCH}), {drop:+.1f} points of mAP50-95 lost (goal <= {GOAL_MAP_DROP})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
