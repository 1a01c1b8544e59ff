"""Reduced precision measured: ONNX Runtime (CPU) latency of FP32 and INT8 against PyTorch eager with each one's mAP;
or (--errors) how far FP16 and INT8 exports are from PyTorch on real images, per model, which the verification
tolerances are derived from.

    python benchmarks/bench_precision.py --weights best.pt --data data.yaml [--imgsz 640] [--map-imgsz 160] [--threads 2]
    python benchmarks/bench_precision.py --errors RUN [RUN ...] [--map-imgsz 160]

Latency at --imgsz (640) on one letterboxed image, every runtime on the same threads, rounds interleaved (see
bench_onnx_runtime.py); INT8 in both flavours: "onnxruntime" (uint8 activations, what --target ort writes) and
"tensorrt" (symmetric int8, what TensorRT targets get, run here by ONNX Runtime). mAP50-95 on the dataset's val
split by ultralytics' validator, each precision exported the same way at --map-imgsz (the size the data was made for).
Without --weights/--data it generates the shapes dataset and trains yolov8n-dattn on it first (a few minutes).

--errors: each RUN is a folder with best.pt and data/data.yaml (the layout of the test fixtures, e.g.
$DATTN_TEST_CHECKPOINTS/recipe-*). Each precision is exported as a user would (verified, INT8 gated by mAP and
rescued by the sensitivity scan where it needs it), then compared with PyTorch on ultralytics' two samples and every
validation image by the product's own comparator: the largest raw box and score errors (same anchor or row), the
largest errors of matched detections PyTorch is sure of, and the detections lost near --conf.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import platform
import re
import statistics
import sys
import tempfile
import time
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
ERROR_VARIANTS = {  # name: (precision, export keyword arguments)
    "fp16": ("fp16", {"half": True}),
    "int8 trt": ("int8", {"int8": True, "target": "trt"}),
    "int8 ort": ("int8", {"int8": True}),
}


def trained_detector(folder: Path) -> tuple[Path, Path]:
    from dattn.ultralytics.synthetic import make_dataset, train

    data = make_dataset(folder / "data")
    return train("yolov8n-dattn.yaml", data, folder / "runs"), data


def latency(args) -> int:
    import onnxruntime
    import torch

    import dattn
    from dattn.exporting import verify as v
    from dattn.exporting.accuracy import validation_map
    from dattn.exporting.torch_onnx import prepare_for_export
    from dattn.runtime.heads import HEADS, network_input
    from dattn.runtime.preprocess import read_image

    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory(prefix="dattn-bench-precision-") as tmp:
        tmp = Path(tmp)
        weights, data = (args.weights, args.data) if args.weights else trained_detector(tmp)
        maps, runners = {}, {"torch eager": v.torch_runner(prepare_for_export(dattn.load(weights).model, dynamic=False)[0])}
        maps["torch eager"] = validation_map(weights, data, args.map_imgsz, batch=1)
        for name, options in VARIANTS.items():
            stem = name.split()[0] + ("-trt" if "trt" in name else "")
            print(f"exporting {name} ...", file=sys.stderr, flush=True)
            timed = dattn.export(weights, imgsz=args.imgsz, data=data, verify=False, output=tmp / f"{stem}-{args.imgsz}.onnx", **options)
            measured = dattn.export(weights, imgsz=args.map_imgsz, data=data, verify=False, output=tmp / f"{stem}-{args.map_imgsz}.onnx", **options)
            runners[f"ort {name}"] = onnxruntime_runner(timed, args.threads)
            maps[f"ort {name}"] = validation_map(measured, data, args.map_imgsz, batch=1)
        image = network_input(HEADS["anchors"], read_image(v.sample_image_paths()[0]), (args.imgsz, args.imgsz))
        times, others = time_interleaved_under_load(runners, image[None], args.repeats, args.warmup)

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


def _exported(weights: Path, out: Path, imgsz: int, data: Path, options: dict) -> tuple[Path | None, str]:
    """The export as a user makes it (verified, gated, rescued), and its report; (None, the error) when refused."""
    import dattn
    from dattn.errors import VerificationError

    report = io.StringIO()
    started = time.perf_counter()
    try:
        with contextlib.redirect_stderr(report):
            path = dattn.export(weights, imgsz=imgsz, data=data, output=out, **options)
    except VerificationError as e:
        return None, str(e)
    return path, report.getvalue() + f"\nexport took {time.perf_counter() - started:.0f} s"


def _report_facts(report: str) -> str:
    """mAP, the rescue and the scan's time, as the export's report says them."""
    facts = [line.split("dattn export:")[-1].strip() for line in report.splitlines()
             if "mAP50-95 / mAP50" in line or "kept in float after" in line]
    scan = re.search(r"scanned in (\d+) s", report)
    return "; ".join(facts + ([f"scan {scan.group(1)} s"] if scan else ["no rescue"]))


def errors(args) -> int:
    import onnx

    import dattn
    from dattn.exporting import verify as v
    from dattn.exporting.torch_onnx import prepare_for_export
    from dattn.runtime.heads import head_of, network_input
    from dattn.runtime.preprocess import read_image

    size = (args.map_imgsz, args.map_imgsz)
    with tempfile.TemporaryDirectory(prefix="dattn-bench-errors-") as tmp:
        for run in args.errors:
            weights, data = run / "best.pt", run / "data" / "data.yaml"
            model = dattn.load(weights).model
            reference = v.torch_runner(prepare_for_export(model, True, None, size, weights)[0])
            images = [*v.sample_image_paths(), *sorted((run / "data" / "images" / "val").iterdir())]
            print(f"{run.name}: {len(images)} images at {args.map_imgsz} px")
            for name, (precision, options) in ERROR_VARIANTS.items():
                path, report = _exported(weights, Path(tmp) / f"{run.name}-{name.replace(' ', '-')}.onnx",
                                         args.map_imgsz, data, options)
                if path is None:
                    print(f"  {name:9} refused: {report}")
                    continue
                head = head_of({p.key: p.value for p in onnx.load(str(path)).metadata_props})
                candidate, tol = v.onnxruntime_runner(path), v.TOLERANCES[precision]
                results = [v.compare(p.name, network_input(head, read_image(p), size)[None], reference, candidate,
                                     head, len(model.names), 0.25, tol)[0] for p in images]
                detections = [d for r in results for d in r.detections]
                sure = [d for d in detections if d.sure]
                lost = [s for r in results for s in r.lost]
                print(f"  {name:9} raw box {_largest(r.box_error_px for r in results)} px, raw score "
                      f"{_largest(r.score_error for r in results)}; {sum(d.sure for d in sure)} sure detections: box "
                      f"{_largest(d.box_error_px for d in sure)} px, score {_largest(d.score_error for d in sure)}, "
                      f"{sum(d.swapped for d in detections)} swapped by NMS; lost {len(lost)} (best "
                      f"{max(lost, default=0):.2f}); {sum(not r.passed for r in results)} of {len(results)} beyond "
                      f"{tol.describe(size)}")
                print(f"  {'':9} {_report_facts(report)}")
                if precision == "int8":
                    print(f"  {'':9} {_scan(weights, path, Path(tmp), options, args.map_imgsz, data)}")
    return 0


def _largest(values) -> str:
    """The largest of the values measured (None: nothing to measure), or n/a."""
    measured = [value for value in values if value is not None]
    return f"{max(measured):.3g}" if measured else "n/a"


def _scan(weights: Path, int8: Path, folder: Path, options: dict, imgsz: int, data: Path) -> str:
    """The sensitivity scan run on an INT8 export (as a rescue would run it), timed, with its most sensitive layers."""
    import onnx

    import dattn
    from dattn.exporting import qdq, sensitivity
    from dattn.exporting.dataset import split_images
    from dattn.exporting.quantize import head_nodes
    from dattn.runtime.heads import head_of

    with contextlib.redirect_stderr(io.StringIO()):
        float32 = dattn.export(weights, imgsz=imgsz, verify=False, output=folder / f"{int8.stem}-fp32.onnx",
                               **{k: v for k, v in options.items() if k == "target"})
    quantized, float32 = onnx.load(str(int8)), onnx.load(str(float32))
    head = head_of({p.key: p.value for p in quantized.metadata_props})
    prefix = f"model.{len(dattn.load(weights).model.model) - 1}."
    started = time.perf_counter()
    batches = sensitivity.scan_batches(split_images(data, "train"), (imgsz, imgsz), 1, head)
    ranked = sensitivity.ranked_layers(quantized, float32, head_nodes(float32, prefix), batches)
    return (f"sensitivity scan: {time.perf_counter() - started:.1f} s over {len(qdq.quantized_layers(quantized))} "
            f"layers; most sensitive: " + ", ".join(f"{name} ({error:.3f})" for name, error in ranked[:3]))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", type=Path)
    parser.add_argument("--data", type=Path, help="ultralytics data yaml: calibration (train split) and mAP (val split)")
    parser.add_argument("--errors", type=Path, nargs="+", metavar="RUN", help="folders with best.pt and data/data.yaml")
    parser.add_argument("--imgsz", type=int, default=640, help="input size for the latency (default 640)")
    parser.add_argument("--map-imgsz", type=int, default=160, help="input size for the mAP and the errors (default 160)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=5)
    args = parser.parse_args(argv)
    if (args.weights is None) != (args.data is None):
        parser.error("give --weights and --data together, or neither")
    return errors(args) if args.errors else latency(args)


if __name__ == "__main__":
    sys.exit(main())
