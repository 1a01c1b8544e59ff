"""Console entry points: `dattn` (subcommands) and `dattn-export`.

Every command reports a failure as one line and a non-zero exit: dattn's own errors with their message (exit 2
for bad input, 1 for a failed check), anything else by category (exit 1), Ctrl-C and SIGTERM as interruptions
(130, 143) after the staged outputs are cleaned up. --debug (or DATTN_DEBUG=1) shows the traceback instead.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys

EXIT_INTERRUPTED, EXIT_TERMINATED = 130, 128 + signal.SIGTERM


def _terminate(signum, frame):
    raise SystemExit(EXIT_TERMINATED)  # unwinds like Ctrl-C does, so `finally` blocks remove temporary files


def run_guarded(prog: str, command, argv: list[str]) -> int:
    """Run `command(argv)` behind the one-line error contract."""
    from dattn.errors import DattnError

    debug = "--debug" in argv or os.environ.get("DATTN_DEBUG") == "1"
    argv = [a for a in argv if a != "--debug"]
    signal.signal(signal.SIGTERM, _terminate)
    try:
        return command(argv)
    except KeyboardInterrupt:
        print(f"{prog}: interrupted; nothing was written", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as error:  # noqa: BLE001  (the command line's contract: one line, whatever went wrong)
        if debug:
            raise
        print(f"{prog}: error: {_one_line(error)}", file=sys.stderr)
        return error.exit_code if isinstance(error, DattnError) else 1


def _one_line(error: Exception) -> str:
    from dattn.errors import DattnError

    text = " ".join(str(error).split()) if str(error).strip() else ""
    if isinstance(error, DattnError):
        return text
    if isinstance(error, OSError) and error.strerror:
        return f"{error.filename + ': ' if error.filename else ''}{error.strerror}"
    if isinstance(error, MemoryError) or "allocate" in text and "memory" in text:
        return f"out of memory ({text[:200] or 'MemoryError'}); try a smaller --imgsz or --batch"
    return f"{type(error).__name__}: {text[:300]} (rerun with --debug for the traceback)"


def _export_parser(prog: str) -> argparse.ArgumentParser:
    from dattn.export.request import FORMATS
    from dattn.export.targets import DEFAULT_EXPORTER, EXPORTERS, GRID_SAMPLE_FORMS, TARGETS

    targets = "; ".join(f"{name}: {t.description}" for name, t in TARGETS.items())
    p = argparse.ArgumentParser(prog=prog, description="Export a YOLO checkpoint (with DAttention or without) to a verified "
                                "ONNX, a TensorRT engine, a Jetson bundle or a Triton model repository.")
    p.add_argument("--weights", required=True, help="the .pt checkpoint (recipe-trained, dattn-trained or plain YOLO)")
    p.add_argument("--format", choices=FORMATS, help="default: onnx, or engine for an --output ending in .engine")
    p.add_argument("--imgsz", type=int, nargs="+", default=[640], metavar="N",
                   help="640, or H W (multiples of 32); for a dynamic engine, the optimal size of its profile")
    p.add_argument("--batch", type=int, default=1, help="batch size; for a dynamic engine, the largest")
    p.add_argument("--dynamic", action="store_true", help="dynamic batch, height and width")
    p.add_argument("--min-imgsz", type=int, nargs="+", metavar="N", help="dynamic engine: smallest size (default imgsz/2)")
    p.add_argument("--max-imgsz", type=int, nargs="+", metavar="N", help="dynamic engine: largest size (default imgsz*2)")
    p.add_argument("--opset", type=int, help="ONNX opset, 11-21 (default: chosen for the target)")
    p.add_argument("--grid-sample", default="auto", choices=GRID_SAMPLE_FORMS, help="how the sampling step is written (default: chosen for target and opset)")
    p.add_argument("--target", choices=tuple(TARGETS), help=f"the runtime the file is for (default: ort, trt for engines). {targets}")
    p.add_argument("--half", action="store_true", help="FP16 (an FP16 ONNX, or TensorRT's FP16 builder flag where it has one)")
    p.add_argument("--int8", action="store_true", help="INT8 by Q/DQ, calibrated on --data")
    p.add_argument("--data", help="calibration images for --int8: an ultralytics data yaml (also measures mAP) or a folder")
    p.add_argument("--calib-images", type=int, default=300, help="calibrate on up to this many images (default 300)")
    p.add_argument("--max-map-drop", type=float, default=1.0, help="fail an INT8 export that loses more mAP50-95 points than this (default 1.0)")
    p.add_argument("--raw-engine", action="store_true", help="write the bare TensorRT plan (for trtexec, DeepStream, C++), without ultralytics' header")
    p.add_argument("--keep-onnx", action="store_true", help="--format engine: keep the ONNX the engine is built from, beside it")
    p.add_argument("--sm", type=int, help="--target trt-rtx: the compute capability to build for, e.g. 86 (default: every one RTX supports)")
    p.add_argument("--name", default="yolo", help="--format triton: the model's name in the repository (default yolo)")
    p.add_argument("--queue-delay-us", type=int, default=500, help="--format triton: dynamic batching waits this long for more requests")
    p.add_argument("--instances", type=int, default=1, help="--format triton: instances of each model")
    p.add_argument("--exporter", default=DEFAULT_EXPORTER, choices=EXPORTERS,
                   help=f"torch's ONNX exporter: torchscript (tracing, deprecated by torch) or dynamo (torch.export); default {DEFAULT_EXPORTER}")
    p.add_argument("--simplify", action=argparse.BooleanOptionalAction, default=True, help="clean the graph with onnxslim")
    p.add_argument("--verify", action=argparse.BooleanOptionalAction, default=True, help="check the export against PyTorch")
    p.add_argument("--conf", type=float, default=0.25, help="confidence threshold for the detection comparison (0-1)")
    p.add_argument("--output", help="where to write (default: beside the weights, named after them)")
    p.add_argument("--device", default="cpu", help="device to trace on: cpu, cuda or cuda:N")
    p.add_argument("--debug", action="store_true", help="show the traceback of an unexpected error")
    return p


def _export(argv: list[str], prog: str) -> int:
    args = _export_parser(prog).parse_args(argv)
    from dattn.export.api import export

    path = export(
        args.weights, format=args.format, imgsz=args.imgsz, batch=args.batch, dynamic=args.dynamic, opset=args.opset,
        grid_sample=args.grid_sample, target=args.target, half=args.half, int8=args.int8, data=args.data,
        calib_images=args.calib_images, max_map_drop=args.max_map_drop, simplify=args.simplify, verify=args.verify,
        conf=args.conf, output=args.output, device=args.device, exporter=args.exporter, raw_engine=args.raw_engine,
        sm=args.sm, min_imgsz=args.min_imgsz, max_imgsz=args.max_imgsz, keep_onnx=args.keep_onnx, name=args.name,
        queue_delay_us=args.queue_delay_us, instances=args.instances,
    )
    print(path)
    return 0


def export_main(argv: list[str] | None = None, prog: str = "dattn-export") -> int:
    return run_guarded(prog, lambda a: _export(a, prog), sys.argv[1:] if argv is None else argv)


def yolo_main(argv: list[str]) -> int:
    """Run ultralytics' own `yolo` CLI with DAttention registered."""
    from ultralytics.cfg import entrypoint

    from dattn.ultralytics.register import register

    register()
    sys.argv[:] = ["yolo", *argv]  # in place: ultralytics keeps a reference to this list as its ARGV
    entrypoint()
    return 0


def plugin_main(argv: list[str]) -> int:
    from dattn.plugin.build import main

    return main(argv)


def predict_main(argv: list[str]) -> int:
    from dattn.runtime.predict import main

    return main(argv)


def demo_main(argv: list[str]) -> int:
    from dattn.demo import main

    return main(argv)


COMMANDS = {
    "export": (lambda argv: _export(argv, "dattn export"), "same as dattn-export"),
    "yolo": (yolo_main, "ultralytics' yolo CLI with DAttention registered, e.g. dattn yolo train model=yolov8n-dattn.yaml data=..."),
    "plugin": (plugin_main, "build or locate the TensorRT grid-sample plugin: dattn plugin build | path"),
    "predict": (predict_main, "detections from an exported .onnx or .engine on images, folders, globs or videos (no torch)"),
    "demo": (demo_main, "train a tiny DAttention YOLO on generated shapes, export, verify, and compare mAP"),
}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] not in COMMANDS:
        lines = [f"  {name:<7} {help_}" for name, (_, help_) in COMMANDS.items()]
        print("usage: dattn {" + ",".join(COMMANDS) + "} ...\n" + "\n".join(lines))
        return 0 if argv and argv[0] in {"-h", "--help"} else 2
    command = COMMANDS[argv[0]][0]
    if argv[0] == "yolo":  # ultralytics' CLI handles its own errors and output
        return command(argv[1:])
    return run_guarded(f"dattn {argv[0]}", command, argv[1:])


if __name__ == "__main__":
    sys.exit(main())
