"""Time ONNX Runtime (CPU) on the `native` and `gather` exports against PyTorch eager, side by side in one run.

All three run with the same thread count on the same letterboxed image at 640 px. Repetitions are
interleaved (each round runs every runtime once, in a rotating order) so drifts in clock speed or load hit
all of them alike; the table reports the median of the rounds, after a warm-up.

    python benchmarks/bench_onnx_runtime.py [--weights best.pt | --cfg yolov8n-dattn.yaml] [--threads 2] [--repeats 30]
    python benchmarks/bench_onnx_runtime.py --cfg rtdetr-l.yaml            # RT-DETR's deformable decoder
    python benchmarks/bench_onnx_runtime.py --cfg yolo26n-dattn.yaml --end2end   # YOLO26's NMS-free branch

Without --weights it builds the --cfg yaml (default yolov8n-dattn), calibrates its BatchNorm statistics with a few
train-mode passes on random images (so activations have a trained model's scale), and times that.
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

IMGSZ = 640
GOAL_ORT_VS_TORCH = 0.5  # ONNX Runtime at most half of PyTorch eager
GOAL_GATHER_VS_NATIVE = 1.3  # the pure-ONNX gather form at most 30% slower than native GridSample


def calibrated_checkpoint(cfg: str, path: Path, passes: int = 4, batch: int = 4) -> Path:
    """A model built from the yaml `cfg` with BatchNorm running statistics averaged over random images, saved to `path`."""
    import torch
    from ultralytics import RTDETR, YOLO

    import dattn  # noqa: F401  (registers DAttention, so the yaml builds)

    torch.manual_seed(0)  # the same initial weights every run
    yolo = (RTDETR if "rtdetr" in Path(cfg).name else YOLO)(cfg)
    model = yolo.model
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.reset_running_stats()
            m.momentum = None  # cumulative average over the passes
    generator = torch.Generator().manual_seed(0)
    model.train()
    with torch.no_grad():
        for _ in range(passes):
            model(torch.rand(batch, 3, IMGSZ, IMGSZ, generator=generator))
    model.eval()
    yolo.save(str(path))
    return path


def onnxruntime_runner(path: Path, threads: int):
    """A CPU session on `threads` intra-op threads whose idle threads sleep rather than spin.

    Spinning workers would keep the cores busy after each run and slow whichever runtime comes next.
    """
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    session = onnxruntime.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])
    input_name = session.get_inputs()[0].name
    return lambda batch: session.run(None, {input_name: batch})[0]


def machine_busy_seconds() -> float:
    """CPU seconds all processes have spent busy since boot (Linux /proc/stat), NaN elsewhere."""
    try:
        fields = [int(f) for f in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except (OSError, ValueError):
        return float("nan")
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def time_interleaved_under_load(runners: dict, batch, repeats: int, warmup: int) -> tuple[dict[str, list[float]], float]:
    """time_interleaved, and how many cores other processes kept busy meanwhile (NaN where unknown)."""
    busy, own, wall = machine_busy_seconds(), time.process_time(), time.perf_counter()
    times = time_interleaved(runners, batch, repeats, warmup)
    return times, (machine_busy_seconds() - busy - (time.process_time() - own)) / (time.perf_counter() - wall)


def time_interleaved(runners: dict, batch, repeats: int, warmup: int) -> dict[str, list[float]]:
    """Milliseconds per call for each runner, rounds interleaved with a rotating order."""
    names = list(runners)
    for _ in range(warmup):
        for name in names:
            runners[name](batch)
    times = {name: [] for name in names}
    for round_ in range(repeats):
        shift = round_ % len(names)
        for name in names[shift:] + names[:shift]:
            start = time.perf_counter()
            runners[name](batch)
            times[name].append((time.perf_counter() - start) * 1e3)
    return times


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", type=Path, help="a YOLO or RT-DETR checkpoint; default: the --cfg yaml, calibrated")
    parser.add_argument("--cfg", default="yolov8n-dattn.yaml", help="the model yaml built without --weights "
                        "(default yolov8n-dattn.yaml; e.g. yolo26n-dattn.yaml, rtdetr-l.yaml)")
    parser.add_argument("--end2end", action=argparse.BooleanOptionalAction, default=None,
                        help="the branch of a head with an NMS-free one (default: as built or saved)")
    parser.add_argument("--threads", type=int, default=2, help="threads for torch and ONNX Runtime alike (default 2)")
    parser.add_argument("--repeats", type=int, default=30, help="timed rounds; the median is reported (default 30)")
    parser.add_argument("--warmup", type=int, default=5, help="untimed rounds first (default 5)")
    parser.add_argument("--opset", type=int, default=None, help="export opset (default: the ort target's)")
    args = parser.parse_args(argv)
    if args.threads < 1 or args.repeats < 1 or args.warmup < 0:
        parser.error("--threads and --repeats must be at least 1, --warmup at least 0")

    import onnxruntime
    import torch

    import dattn
    from dattn.exporting import verify as v
    from dattn.exporting.torch_onnx import prepare_for_export
    from dattn.runtime.heads import HEADS, network_input
    from dattn.runtime.preprocess import read_image

    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory(prefix="dattn-bench-ort-") as tmp:
        tmp = Path(tmp)
        if args.weights is None:
            print(f"building {args.cfg} and calibrating BatchNorm on random images ...", file=sys.stderr)
            weights = calibrated_checkpoint(args.cfg, tmp / "model.pt")
        else:
            weights = args.weights
        exports = {}
        for form in ("native", "gather"):
            exports[form] = dattn.export(weights, imgsz=IMGSZ, opset=args.opset, grid_sample=form, end2end=args.end2end,
                                         output=tmp / f"{form}.onnx", verify=False)

        model, head = prepare_for_export(dattn.load(weights).model, False, args.end2end, (IMGSZ, IMGSZ))  # as exported
        torch_run = v.torch_runner(model)
        runners = {
            "torch eager": torch_run,
            "ort native": onnxruntime_runner(exports["native"], args.threads),
            "ort gather": onnxruntime_runner(exports["gather"], args.threads),
        }
        layout = HEADS[head.name]
        batch = network_input(layout, read_image(v.sample_image_paths()[0]), (IMGSZ, IMGSZ))[None]
        for name in ("ort native", "ort gather"):
            result, _, _ = v.compare(name, batch, torch_run, runners[name], layout, len(model.names), 0.25,
                                     v.TOLERANCES["fp32"])
            print(f"{name}: {result.line()}", file=sys.stderr)

        times, others = time_interleaved_under_load(runners, batch, args.repeats, args.warmup)

    median = {name: statistics.median(ms) for name, ms in times.items()}
    torch_ms = median["torch eager"]
    print(f"CPU: {platform.processor() or platform.machine()}, {os.cpu_count()} cores; threads {args.threads}; "
          f"torch {torch.__version__}, onnxruntime {onnxruntime.__version__}")
    print(f"model: {weights if args.weights else args.cfg + ' (BatchNorm calibrated)'}, head {head.module} "
          f"({head.name}); input 1x3x{IMGSZ}x{IMGSZ}; median of {args.repeats} interleaved rounds after {args.warmup} warm-up")
    if others == others:  # not NaN: /proc/stat was readable
        others = max(others, 0.0)  # clock ticks are coarse
        print(f"other processes used {others:.2f} of {os.cpu_count()} cores while timing")
        if others > 0.25:
            print("NOTE: the CPU was shared: multi-threaded torch suffers most from losing a core mid-operator, "
                  "so these ratios favour ONNX Runtime; rerun on an idle machine")
    print(f"{'runtime':12} {'median ms':>10} {'min ms':>8} {'vs torch':>9} {'vs native':>10}")
    for name, ms in median.items():
        vs_native = f"{ms / median['ort native']:.2f}x" if name.startswith("ort") else "-"
        print(f"{name:12} {ms:>10.1f} {min(times[name]):>8.1f} {ms / torch_ms:>8.2f}x {vs_native:>10}")

    goals = [
        (f"ORT native <= {GOAL_ORT_VS_TORCH}x torch eager", median["ort native"] / torch_ms, GOAL_ORT_VS_TORCH),
        (f"ORT gather <= {GOAL_ORT_VS_TORCH}x torch eager", median["ort gather"] / torch_ms, GOAL_ORT_VS_TORCH),
        (f"gather <= {GOAL_GATHER_VS_NATIVE}x native", median["ort gather"] / median["ort native"], GOAL_GATHER_VS_NATIVE),
    ]
    print("goals:")
    for text, ratio, limit in goals:
        print(f"  {'met   ' if ratio <= limit else 'MISSED'} {text}: {ratio:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
