"""Console entry points: `dattn` (subcommands) and `dattn-export`."""

from __future__ import annotations

import sys


def yolo_main(argv: list[str]) -> int:
    """Run ultralytics' own `yolo` CLI with DAttention registered."""
    import dattn  # noqa: F401  (registers the block)
    from ultralytics.cfg import entrypoint

    sys.argv[:] = ["yolo", *argv]  # in place: ultralytics keeps a reference to this list as its ARGV
    entrypoint()
    return 0


COMMANDS = {"yolo": yolo_main}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in {"-h", "--help"} or argv[0] not in COMMANDS:
        print("usage: dattn {" + ",".join(COMMANDS) + "} ...\n"
              "  yolo ARGS    ultralytics' yolo CLI with DAttention registered, e.g. dattn yolo train model=yolov8n-dattn.yaml data=...")
        return 0 if argv and argv[0] in {"-h", "--help"} else 2
    return COMMANDS[argv[0]](argv[1:])


if __name__ == "__main__":
    sys.exit(main())
