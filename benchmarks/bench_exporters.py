"""Compare torch's two ONNX exporters on one checkpoint: export time and ONNX Runtime's agreement with PyTorch.

For each image size and static/dynamic export, each round exports with every exporter (in a rotating order,
so drifts in load hit both alike) and the table reports the median seconds: the exporter alone ("raw") and
with dattn's passes and onnxslim ("deployable", what `dattn-export --no-verify` waits for). Agreement is
measured once per case on the deployable model: the sample images and a random batch at the export size,
plus, for dynamic exports, a batch of 2 at half the size; worst box error in pixels (anchors PyTorch is
confident about), worst class-score error, and whether boxes, scores and detections pass verification at FP32.

    python benchmarks/bench_exporters.py --weights best.pt [--imgsz 160 640] [--opset 17] [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from pathlib import Path

os.environ.setdefault("YOLO_OFFLINE", "1")


def agreement(path: Path, reference, size: int, dynamic: bool, conf: float):
    """(worst box error in px of PyTorch's confident anchors, worst score error, whether everything passed FP32's
    verification tolerances) over the verification inputs."""
    import numpy as np

    from dattn.exporting import verify as v

    candidate = v.onnxruntime_runner(path)
    cases = [(p.name, v.letterbox(p, (size, size))[None]) for p in v.sample_image_paths()] + [("random", v.random_batch(1, (size, size)))]
    if dynamic:
        half = size // 2 // 32 * 32
        cases.append(("b2-half", np.concatenate([v.letterbox(p, (half, half))[None] for p in v.sample_image_paths()])[:2]))
    worst_px, worst_score, same = 0.0, 0.0, True
    for name, batch in cases:
        result, _, _ = v.compare(name, batch, reference, candidate, conf, v.TOLERANCES["fp32"])
        worst_px = max(worst_px, result.box_error_px or 0.0)
        worst_score = max(worst_score, result.score_error)
        same = same and result.passed
    return worst_px, worst_score, same


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--weights", required=True, help="a trained checkpoint (the recipe-trained best.pt)")
    parser.add_argument("--imgsz", type=int, nargs="+", default=[160, 640])
    parser.add_argument("--opset", type=int, default=17)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--conf", type=float, default=0.25)
    parser.add_argument("--out", default="bench_exporters_out", help="folder for the exported files")
    args = parser.parse_args()

    import torch

    import dattn
    from dattn.exporting.pipeline import float32_onnx
    from dattn.exporting.targets import EXPORTERS, plan_export
    from dattn.exporting.torch_onnx import export_onnx, prepare_for_export
    from dattn.exporting.verify import torch_runner

    torch.set_num_threads(os.cpu_count() or 1)
    model = dattn.load(args.weights).model
    reference = torch_runner(prepare_for_export(model, dynamic=True))
    plan = plan_export("ort", args.opset)
    out = Path(args.out)
    out.mkdir(exist_ok=True)
    print(f"torch {torch.__version__}, {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
          f"opset {plan.opset}, grid-sample {plan.grid_sample}, {args.rounds} rounds")
    print(f"{'case':<14} {'exporter':<12} {'raw s':>7} {'deployable s':>13} {'box px':>9} {'score':>9}  detections")
    for size in args.imgsz:
        for dynamic in (False, True):
            raw_s, total_s, paths = {e: [] for e in EXPORTERS}, {e: [] for e in EXPORTERS}, {}
            for round_ in range(args.rounds):
                order = EXPORTERS[round_ % len(EXPORTERS):] + EXPORTERS[:round_ % len(EXPORTERS)]
                for exporter in order:
                    started = time.perf_counter()
                    raw = export_onnx(prepare_for_export(model, dynamic), torch.zeros(1, 3, size, size), plan.opset, dynamic, exporter)
                    exported = time.perf_counter()
                    deployable = float32_onnx(raw, plan, simplify=True)
                    raw_s[exporter].append(exported - started)
                    total_s[exporter].append(time.perf_counter() - started)
                    paths[exporter] = out / f"{exporter}-{size}-{'dynamic' if dynamic else 'static'}.onnx"
                    paths[exporter].write_bytes(deployable.SerializeToString())
            case = f"{size} {'dynamic' if dynamic else 'static'}"
            for exporter in EXPORTERS:
                px, score, same = agreement(paths[exporter], reference, size, dynamic, args.conf)
                print(f"{case:<14} {exporter:<12} {statistics.median(raw_s[exporter]):7.1f} {statistics.median(total_s[exporter]):13.1f} "
                      f"{px:9.1e} {score:9.1e}  {'agree' if same else 'DIFFER'}", flush=True)


if __name__ == "__main__":
    main()
