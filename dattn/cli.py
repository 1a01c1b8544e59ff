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
    """dattn-export's options, generated from ExportOptions (each option is stated once, there)."""
    from dattn.exporting.options import flag, option_fields

    p = argparse.ArgumentParser(prog=prog, description="Export a YOLO checkpoint (with DAttention or without) to a verified "
                                "ONNX, a TensorRT engine, a Jetson bundle or a Triton model repository.")
    p.add_argument("--weights", required=True, help="the .pt checkpoint (recipe-trained, dattn-trained or plain YOLO)")
    for option in option_fields():
        help_ = option.metadata["help"] + (f" [{option.metadata['applies'][0]} only]" if option.metadata["applies"] else "")
        if option.type in ("bool", "bool | None") and option.default is not True:
            p.add_argument(flag(option.name), action=argparse.BooleanOptionalAction if option.default is None else "store_true",
                           default=option.default, help=help_)
        elif option.type == "bool":
            p.add_argument(flag(option.name), action=argparse.BooleanOptionalAction, default=True, help=help_)
        else:
            p.add_argument(flag(option.name), default=option.default, help=help_, **option.metadata["cli"])
    p.add_argument("--debug", action="store_true", help="show the traceback of an unexpected error")
    return p


def _export(argv: list[str], prog: str) -> int:
    args = vars(_export_parser(prog).parse_args(argv))
    from dattn.exporting.api import export
    from dattn.exporting.options import ExportOptions

    weights = args.pop("weights")
    args.pop("debug")
    print(export(weights, ExportOptions(**args)))
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
