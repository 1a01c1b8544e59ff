"""Serve a detector with Triton and measure it: images/s and p50/p99 latency at concurrency 1, 4, 16.

Three ways, side by side in one run, each with the same images (bus.jpg and zidane.jpg, sent encoded), the same
ONNX and the same ONNX Runtime intra-op thread count:

- triton, dynamic batching on: the repository dattn writes, the `<name>_python_ensemble` (letterbox, the detector
  in ONNX Runtime, decode + NMS, each a python-backend model) on a real tritonserver;
- triton, dynamic batching off: the same repository written with dynamic_batching=False;
- in-process: the pipeline of `dattn predict` (decode JPEG, letterbox, ONNX Runtime, decode) on C threads.

The client is bounded: each cell sends requests for --seconds (at most --requests), over loopback, C threads each
keeping one request in flight; --rounds rounds run every cell once, in rotating order, so drifts in the machine's
load hit all cells alike. The server is nvidia-pytriton's tritonserver (python
backend only; see tests/triton_server.py for what it needs: `make` sets it up).

    python benchmarks/bench_triton.py [--weights best.pt] [--imgsz 320] [--threads 1] [--seconds 8] [--rounds 3]

--threads defaults to 1 intra-op thread: where ONNX Runtime's threads already fill every core at concurrency 1
(2 threads on a 2-core machine), concurrency has nothing left to add, with or without batching.

Without --weights it builds yolov8n-dattn from dattn's yaml with calibrated BatchNorm statistics
(bench_onnx_runtime.calibrated_checkpoint). Goal: with dynamic batching, concurrency 16 gives >= 1.5x the
images/s of concurrency 1.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import threading
import time
from pathlib import Path

os.environ.setdefault("YOLO_OFFLINE", "1")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))  # the server launcher the tests use

CONCURRENCY = (1, 4, 16)
GOAL_C16_OVER_C1 = 1.5
NAME_ON, NAME_OFF = "batched", "unbatched"
ON, OFF, IN_PROCESS = "triton, dynamic batching", "triton, no batching", "in-process"


def sample_images() -> list[bytes]:
    import ultralytics

    assets = Path(ultralytics.__file__).parent / "assets"
    return [(assets / name).read_bytes() for name in ("bus.jpg", "zidane.jpg")]


def run_cell(send, concurrency: int, max_requests: int, max_seconds: float) -> tuple[list[float], float]:
    """Closed loop: `concurrency` threads, each sending one request after the other, until `max_requests` were sent
    or `max_seconds` passed (requests in flight then finish); returns (latencies in s, wall time)."""
    budget = max_requests
    lock, latencies, errors = threading.Lock(), [], []
    issued = [0]
    deadline = time.perf_counter() + max_seconds

    def worker() -> None:
        state = send.setup()
        while True:
            with lock:
                if issued[0] >= budget or time.perf_counter() > deadline:
                    return
                k = issued[0]
                issued[0] += 1
            started = time.perf_counter()
            try:
                send(state, k)
            except Exception as error:  # counted and shown; a benchmark with errors is not a result
                errors.append(repr(error))
                continue
            with lock:
                latencies.append(time.perf_counter() - started)

    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise RuntimeError(f"{len(errors)} requests failed, e.g. {errors[0]}")
    return latencies, time.perf_counter() - started


class TritonSender:
    """One tritonclient per thread; each call sends one encoded image to `model` and checks the answer is whole."""

    def __init__(self, url: str, model: str, images: list[bytes]):
        self.url, self.model, self.images = url, model, images

    def setup(self):
        import tritonclient.http as http

        return http.InferenceServerClient(self.url, connection_timeout=120, network_timeout=120)

    def __call__(self, client, k: int) -> None:
        import numpy as np
        import tritonclient.http as http

        data = np.array([[self.images[k % len(self.images)]]], dtype=object)
        tensor = http.InferInput("IMAGE_BYTES", list(data.shape), "BYTES")
        tensor.set_data_from_numpy(data)
        result = client.infer(self.model, [tensor])
        assert result.as_numpy("NUM_DETECTIONS").shape == (1, 1)


class InProcessSender:
    """The `dattn predict` pipeline in this process, one shared ONNX Runtime session (sessions are thread-safe)."""

    def __init__(self, onnx_path: Path, images: list[bytes], imgsz: int, threads: int):
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")  # as the server's detector does
        self.session = onnxruntime.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])
        self.images, self.size = images, (imgsz, imgsz)

    def setup(self):
        return None

    def __call__(self, _, k: int) -> None:
        import cv2
        import numpy as np

        from dattn.runtime.postprocess import decode
        from dattn.runtime.preprocess import Letterbox, to_network_input

        image = cv2.imdecode(np.frombuffer(self.images[k % len(self.images)], np.uint8), cv2.IMREAD_COLOR)
        box = Letterbox(image.shape[:2], self.size)
        output = self.session.run(None, {"images": to_network_input([box.apply(image)])})[0]
        box.boxes_to_image(decode(output)[0].boxes)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", type=Path)
    parser.add_argument("--imgsz", type=int, default=320)
    parser.add_argument("--threads", type=int, default=1, help="ONNX Runtime intra-op threads, server and in-process alike")
    parser.add_argument("--requests", type=int, default=500, help="most requests per cell and round")
    parser.add_argument("--seconds", type=float, default=8, help="most seconds per cell and round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--queue-delay-us", type=int, default=2000)
    args = parser.parse_args(argv)

    from triton_server import missing_reason

    reason = missing_reason()
    if reason:
        print(f"cannot run: {reason}", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="bench-triton-") as folder:
        cells = measure(Path(folder), args)
    report(cells, args)
    return 0


def measure(work: Path, args) -> dict:
    """Export, write the two repositories, start one server with both, and run every cell."""
    import dattn
    from dattn.exporting.triton import write_triton_repository
    from triton_server import TritonServer

    weights = args.weights
    if weights is None:
        from bench_onnx_runtime import calibrated_checkpoint

        weights = calibrated_checkpoint(work / "calibrated.pt")
    onnx_path = dattn.export(weights, imgsz=args.imgsz, output=work / "model.onnx", verify=False, dynamic=True, batch=4)
    common = dict(max_batch_size=max(CONCURRENCY), onnxruntime_threads=args.threads)
    write_triton_repository(work / "on", onnx_path, name=NAME_ON, queue_delay_us=args.queue_delay_us, **common)
    write_triton_repository(work / "off", onnx_path, name=NAME_OFF, dynamic_batching=False, **common)
    images = sample_images()

    extra = (f"--model-repository={work / 'off'}", f"--load-model={NAME_OFF}_python_ensemble", "--exit-timeout-secs=5")
    with TritonServer(work / "on", [f"{NAME_ON}_python_ensemble"], work / "server", extra) as server:
        senders = {ON: TritonSender(server.http_url, f"{NAME_ON}_python_ensemble", images),
                   OFF: TritonSender(server.http_url, f"{NAME_OFF}_python_ensemble", images),
                   IN_PROCESS: InProcessSender(onnx_path, images, args.imgsz, args.threads)}
        detectors = {ON: f"{NAME_ON}_python", OFF: f"{NAME_OFF}_python"}
        for sender in senders.values():  # warm-up: sessions, stubs, first-call allocations
            run_cell(sender, 2, 8, 60)
        cells = {(label, c): {"latencies": [], "wall": 0.0, "runs": {}} for label in senders for c in CONCURRENCY}
        for round_ in range(args.rounds):
            order = list(senders)[round_ % 3:] + list(senders)[:round_ % 3]  # rotate, so drifts in load hit all alike
            for concurrency in CONCURRENCY:
                for label in order:
                    cell = cells[(label, concurrency)]
                    before = _executions(server.http_url, detectors[label]) if label in detectors else {}
                    latencies, wall = run_cell(senders[label], concurrency, args.requests, args.seconds)
                    cell["latencies"] += latencies
                    cell["wall"] += wall
                    if label in detectors:
                        for size, n in _executions(server.http_url, detectors[label]).items():
                            cell["runs"][size] = cell["runs"].get(size, 0) + n - before.get(size, 0)
                    print(f"  round {round_ + 1}: {label:<26} c={concurrency:<3} {len(latencies) / wall:7.1f} images/s",
                          file=sys.stderr, flush=True)
    return cells


def report(cells: dict, args) -> None:
    print(f"\nTriton vs in-process, {platform.machine()}, {os.cpu_count()} CPUs, imgsz {args.imgsz}, ONNX Runtime "
          f"{args.threads} intra-op threads, HTTP over loopback, encoded JPEGs, {args.rounds} interleaved rounds\n")
    print("| mode | concurrency | images/s | p50 ms | p99 ms | images per detector run | requests |")
    print("|---|---|---|---|---|---|---|")
    ips = {}
    for (label, concurrency), cell in cells.items():
        latencies = sorted(cell["latencies"])
        ips[(label, concurrency)] = len(latencies) / cell["wall"]
        pick = lambda q: latencies[min(len(latencies) - 1, int(q * len(latencies)))] * 1000  # noqa: E731
        runs = sum(cell["runs"].values())
        batch = f"{sum(size * n for size, n in cell['runs'].items()) / runs:.2f}" if runs else "-"
        print(f"| {label} | {concurrency} | {ips[(label, concurrency)]:.1f} | {pick(0.5):.0f} | {pick(0.99):.0f} | {batch} "
              f"| {len(latencies)} |")
    print()
    for label in (ON, OFF, IN_PROCESS):
        print(f"{label}: concurrency 16 / concurrency 1 = {ips[(label, 16)] / ips[(label, 1)]:.2f}x")
    ratio = ips[(ON, 16)] / ips[(ON, 1)]
    print(f"goal (dynamic batching, c16 >= {GOAL_C16_OVER_C1}x c1): {'met' if ratio >= GOAL_C16_OVER_C1 else 'NOT met'}")


def _executions(url: str, model: str) -> dict[int, int]:
    import tritonclient.http as http

    with http.InferenceServerClient(url) as client:
        (stats,) = client.get_inference_statistics(model)["model_stats"]
    return {s["batch_size"]: s["compute_infer"]["count"] for s in stats.get("batch_stats", [])}


if __name__ == "__main__":
    sys.exit(main())
