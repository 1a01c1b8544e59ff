"""Console entry points: `dattn` (subcommands) and `dattn-export`."""

from __future__ import annotations

import argparse
import sys


def _export_parser(prog: str) -> argparse.ArgumentParser:
    from dattn.export.targets import DEFAULT_EXPORTER, EXPORTERS, GRID_SAMPLE_FORMS, TARGETS

    targets = "; ".join(f"{name}: {t.description}" for name, t in TARGETS.items())
    p = argparse.ArgumentParser(prog=prog, description="Export a YOLO checkpoint (with DAttention or without) to deployable ONNX or a TensorRT engine.")
    p.add_argument("--weights", required=True, help="the .pt checkpoint (recipe-trained, dattn-trained or plain YOLO)")
    p.add_argument("--format", default="onnx", choices=("onnx", "engine"))
    p.add_argument("--imgsz", type=int, nargs="+", default=[640], metavar="N", help="640, or H W (multiples of 32)")
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--dynamic", action="store_true", help="dynamic batch, height and width")
    p.add_argument("--opset", type=int, help="ONNX opset, 11-21 (default: chosen for the target)")
    p.add_argument("--grid-sample", default="auto", choices=GRID_SAMPLE_FORMS, help="how the sampling step is written (default: chosen for target and opset)")
    p.add_argument("--target", default="ort", choices=tuple(TARGETS), help=f"the runtime the file is for. {targets}")
    p.add_argument("--simplify", action=argparse.BooleanOptionalAction, default=True, help="clean the graph with onnxslim")
    p.add_argument("--verify", action=argparse.BooleanOptionalAction, default=True, help="check ONNX Runtime against PyTorch")
    p.add_argument("--conf", type=float, default=0.25, help="confidence threshold for the detection comparison")
    p.add_argument("--output", help="where to write (default: the weights' name with .onnx / .engine)")
    p.add_argument("--exporter", default=DEFAULT_EXPORTER, choices=EXPORTERS, help="torch's ONNX exporter: dynamo (torch.export) or torchscript (deprecated by torch)")
    p.add_argument("--device", default="cpu", help="device to trace on: cpu or cuda:0")
    return p


def export_main(argv: list[str] | None = None, prog: str = "dattn-export") -> int:
    args = _export_parser(prog).parse_args(argv)
    from dattn import CheckpointError, ConfigError, VerificationError, export

    try:
        path = export(
            args.weights, format=args.format, imgsz=args.imgsz, batch=args.batch, dynamic=args.dynamic, opset=args.opset,
            grid_sample=args.grid_sample, target=args.target, simplify=args.simplify, verify=args.verify,
            output=args.output, device=args.device, conf=args.conf, exporter=args.exporter,
        )
    except (CheckpointError, ConfigError, VerificationError) as e:
        print(f"{prog}: error: {e}", file=sys.stderr)
        return 2 if not isinstance(e, VerificationError) else 1
    print(path)
    return 0


def yolo_main(argv: list[str]) -> int:
    """Run ultralytics' own `yolo` CLI with DAttention registered."""
    import dattn  # noqa: F401  (registers the block)
    from ultralytics.cfg import entrypoint

    sys.argv[:] = ["yolo", *argv]  # in place: ultralytics keeps a reference to this list as its ARGV
    entrypoint()
    return 0


def plugin_main(argv: list[str]) -> int:
    from dattn.plugin.build import main

    return main(argv)


def demo_main(argv: list[str]) -> int:
    from dattn.demo import main

    return main(argv)


COMMANDS = {
    "export": (lambda argv: export_main(argv, prog="dattn export"), "same as dattn-export"),
    "yolo": (yolo_main, "ultralytics' yolo CLI with DAttention registered, e.g. dattn yolo train model=yolov8n-dattn.yaml data=..."),
    "plugin": (plugin_main, "build or locate the TensorRT grid-sample plugin: dattn plugin build | path"),
    "demo": (demo_main, "train a tiny DAttention YOLO on generated data, reload, predict, export and verify"),
}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] not in COMMANDS:
        lines = [f"  {name:<7} {help_}" for name, (_, help_) in COMMANDS.items()]
        print("usage: dattn {" + ",".join(COMMANDS) + "} ...\n" + "\n".join(lines))
        return 0 if argv and argv[0] in {"-h", "--help"} else 2
    return COMMANDS[argv[0]][0](argv[1:])


if __name__ == "__main__":
    sys.exit(main())
