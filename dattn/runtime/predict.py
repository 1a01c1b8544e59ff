"""`dattn predict`: detections from an exported model (ONNX or TensorRT engine) on images, folders, globs and videos.

    dattn predict --model best.onnx --source images/ --save-dir out --save-json

Writes annotated images (and videos) to --save-dir, one JSON record per image (per frame for videos) with
--save-json, shows a progress bar, and ends with a throughput line split into pre-process, inference and
post-process. A file that cannot be read is named on one line and skipped; the exit code is then 1. A model or
option that cannot work is one line and exit code 2.

Python 3.6 compatible (this file travels to JetPack 4.6 in the Jetson bundle and into Triton's python backend).
"""

import argparse
import collections
import json
import os
import queue
import sys
import threading
import time

from dattn.errors import ConfigError, DattnError
from dattn.runtime.cuda import CudaError
from dattn.runtime.postprocess import check_thresholds, nms_numpy, nms_opencv
from dattn.runtime.sources import expand_source, is_video

NMS_CHOICES = collections.OrderedDict([("opencv", nms_opencv), ("numpy", nms_numpy)])
JSON_NAME = "predictions.json"

Item = collections.namedtuple("Item", ["file", "frame", "image"])  # frame: None for an image file


def build_parser(prog="dattn predict", model=None, plugin=None, metadata=None):
    """The options; `model`, `plugin`, `metadata` give defaults (the Jetson bundle's run.py passes its own files)."""
    p = argparse.ArgumentParser(prog=prog, description="Detect objects with an exported model (ONNX or TensorRT engine), "
                                                       "without PyTorch or ultralytics.")
    p.add_argument("--model", required=model is None, default=model, help="best.onnx or best.engine" +
                   (" (default: {})".format(model) if model else ""))
    p.add_argument("--source", required=True, help="an image, a folder, a glob pattern ('imgs/*.jpg') or a video")
    p.add_argument("--imgsz", type=int, nargs="+", metavar="N",
                   help="input size, H or H W (default: the model's; other sizes for --dynamic exports only)")
    p.add_argument("--conf", type=float, default=0.25, help="confidence threshold, in [0, 1) (default 0.25)")
    p.add_argument("--iou", type=float, default=0.7, help="NMS IoU threshold, in (0, 1] (default 0.7)")
    p.add_argument("--max-det", type=int, default=300, help="detections kept per image (default 300)")
    p.add_argument("--device", help="cpu, cuda, cuda:N or N (default: the best available)")
    p.add_argument("--save-dir", help="write annotated images and videos here")
    p.add_argument("--save-json", nargs="?", const="", metavar="FILE",
                   help="write detections as JSON (default file: SAVE_DIR/{} or ./{})".format(JSON_NAME, JSON_NAME))
    p.add_argument("--plugin", default=plugin, help="the DAttnGridSample plugin library, for engines that use it "
                                                    "(default: the one `dattn plugin build` made)")
    p.add_argument("--metadata", default=metadata, help="JSON with names, stride, imgsz (as in ultralytics' engine "
                                                        "header), for a raw TensorRT plan such as trtexec writes")
    p.add_argument("--threads", type=int, help="CPU threads for ONNX Runtime (default: its own choice)")
    p.add_argument("--nms", choices=tuple(NMS_CHOICES), default="opencv", help="NMS implementation (default opencv)")
    return p


class Progress(object):
    """tqdm when it is installed, else a plain line at every tenth of the way."""

    def __init__(self, total, enabled):
        self.total, self.done, self._next_line = total, 0, 0
        self._bar = None
        self.enabled = enabled and total > 1
        if self.enabled:
            try:
                from tqdm import tqdm
            except ImportError:
                return
            self._bar = tqdm(total=total, unit="img", file=sys.stderr, dynamic_ncols=True)

    def update(self, n=1):
        self.done += n
        if self._bar is not None:
            self._bar.update(n)
        elif self.enabled and self.done >= self._next_line:
            sys.stderr.write("{}/{} images\n".format(self.done, self.total))
            self._next_line = self.done + max(1, self.total // 10)

    def write(self, line):
        if self._bar is not None:
            self._bar.write(line, file=sys.stderr)
        else:
            sys.stderr.write(line + "\n")

    def close(self):
        if self._bar is not None:
            self._bar.close()


class Timings(object):
    """Seconds spent per stage over the run."""

    def __init__(self):
        self.pre = self.infer = self.post = 0.0
        self.images = 0

    def line(self, wall):
        n = max(self.images, 1)
        busy = self.pre + self.infer + self.post
        return ("{} images in {:.2f} s: {:.1f} images/s; per image: pre-process {:.1f} ms (read, letterbox), inference "
                "{:.1f} ms, post-process {:.1f} ms (decode, NMS) = {:.1f} images/s of model work"
                .format(self.images, wall, self.images / wall if wall > 0 else 0.0, 1e3 * self.pre / n,
                        1e3 * self.infer / n, 1e3 * self.post / n, self.images / busy if busy > 0 else 0.0))


def record(item, prediction):
    """The JSON record of one image's (or frame's) detections."""
    out = collections.OrderedDict([("file", item.file)])
    if item.frame is not None:
        out["frame"] = item.frame
    out["boxes"] = [[round(float(v), 2) for v in box] for box in prediction.boxes]
    out["scores"] = [round(float(s), 5) for s in prediction.scores]
    out["class_ids"] = [int(c) for c in prediction.class_ids]
    out["classes"] = list(prediction.class_names)
    return out


def _frame_count(path):
    import cv2

    capture = cv2.VideoCapture(path)
    count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) if capture.isOpened() else 0
    capture.release()
    return max(count, 1)


class Run(object):
    """One `dattn predict` run: reads the sources, predicts in batches, writes what was asked, counts failures."""

    def __init__(self, detector, save_dir, progress, prog="dattn predict"):
        self.detector, self.save_dir, self.progress, self.prog = detector, save_dir, progress, prog
        self.timings = Timings()
        self.records, self.failed, self.counts = [], [], collections.Counter()
        self._writers = {}

    def fail(self, path, reason):
        self.failed.append(path)
        self.progress.update(1)
        self.progress.write("{}: skipped {}: {}".format(self.prog, path, reason))

    def predict(self, items, batch, letterboxes):
        """Run the model on `items` (at most the model's batch, letterboxed), save and record the results."""
        started = time.perf_counter()
        output = self.detector.infer(batch)
        inferred = time.perf_counter()
        predictions = self.detector.postprocess(output, letterboxes)
        self.timings.infer += inferred - started
        self.timings.post += time.perf_counter() - inferred
        self.timings.images += len(items)
        for item, prediction in zip(items, predictions):
            self.records.append(record(item, prediction))
            self.counts.update(prediction.class_names)
            if self.save_dir is not None:
                self._save(item, prediction)
        self.progress.update(len(items))

    def _save(self, item, prediction):
        import cv2

        from dattn.runtime.annotate import draw_predictions

        drawn = draw_predictions(item.image, prediction)
        name = os.path.basename(item.file)
        if item.frame is None:
            cv2.imwrite(os.path.join(self.save_dir, name), drawn)
            return
        writer = self._writers.get(item.file)
        if writer is None:
            capture = cv2.VideoCapture(item.file)
            fps = capture.get(cv2.CAP_PROP_FPS) or 30.0
            capture.release()
            path = os.path.join(self.save_dir, os.path.splitext(name)[0] + ".mp4")
            writer = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*"mp4v"), fps, (drawn.shape[1], drawn.shape[0]))
            self._writers[item.file] = writer
        writer.write(drawn)

    def close_videos(self):
        for writer in self._writers.values():
            writer.release()
        self._writers.clear()


def _items(files, run):
    """Images and video frames as Items, timing the reading as pre-process; unreadable files go to run.fail."""
    import cv2

    from dattn.runtime.preprocess import read_image

    for path in files:
        if is_video(path):
            capture = cv2.VideoCapture(path)
            if not capture.isOpened():
                run.fail(path, "not a readable video")
                continue
            frame = 0
            while True:
                started = time.perf_counter()
                ok, image = capture.read()
                run.timings.pre += time.perf_counter() - started
                if not ok:
                    break
                yield Item(path, frame, image)
                frame += 1
            capture.release()
            if frame == 0:
                run.fail(path, "a video without readable frames")
            continue
        started = time.perf_counter()
        try:
            image = read_image(path)
        except (IOError, OSError) as error:
            run.fail(path, "not a readable image" if "readable" in str(error) else str(error))
            continue
        finally:
            run.timings.pre += time.perf_counter() - started
        yield Item(path, None, image)


def _batches(files, run, detector):
    """(items, network input, letterboxes) per model batch, reading and letterboxing timed as pre-process."""
    pending = []
    for item in _items(files, run):
        pending.append(item)
        if len(pending) == detector.batch:
            yield _prepared(pending, run, detector)
            pending = []
    if pending:
        yield _prepared(pending, run, detector)


def _prepared(items, run, detector):
    started = time.perf_counter()
    batch, letterboxes = detector.preprocess([item.image for item in items])
    run.timings.pre += time.perf_counter() - started
    return items, batch, letterboxes


_DONE = object()


def prefetched(iterable, depth=2):
    """Iterate `iterable` in a background thread, up to `depth` values ahead; its exceptions surface here.

    Reading and letterboxing the next images (OpenCV, which releases the GIL) then overlaps with the model
    run (ONNX Runtime and TensorRT release it too).
    """
    values = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def produce():
        try:
            for value in iterable:
                if stop.is_set():
                    return
                values.put((True, value))
        except BaseException as error:  # handed to the consumer, which re-raises it
            values.put((False, error))
            return
        values.put((True, _DONE))

    worker = threading.Thread(target=produce, name="dattn-prefetch")
    worker.daemon = True
    worker.start()
    try:
        while True:
            ok, value = values.get()
            if not ok:
                raise value
            if value is _DONE:
                return
            yield value
    finally:
        stop.set()
        while worker.is_alive():  # unblock a producer waiting on a full queue
            try:
                values.get_nowait()
            except queue.Empty:
                worker.join(0.01)


def predict_files(detector, files, save_dir=None, progress=None, prog="dattn predict", read_ahead=None):
    """Predict on every image and video frame of `files` in batches of the model's size; returns the Run.

    With the model on a GPU, the next batch is read and letterboxed in a background thread while the model runs
    on the current one. With ONNX Runtime on the CPU, whose workers occupy every core during a run, that thread
    would only compete with them (measured slower on two cores: benchmarks/bench_predict.py). read_ahead=True or
    False overrides the choice.
    """
    run = Run(detector, save_dir, progress if progress is not None else Progress(0, enabled=False), prog)
    if read_ahead is None:
        read_ahead = not getattr(detector.runner, "on_cpu", True)
    batches = _batches(files, run, detector)
    try:
        for items, batch, letterboxes in (prefetched(batches) if read_ahead else batches):
            run.predict(items, batch, letterboxes)
    finally:
        run.close_videos()
    return run


def _error(prog, message):
    sys.stderr.write("{}: error: {}\n".format(prog, message))


def _json_path(args):
    if args.save_json is None:
        return None
    if args.save_json:
        return args.save_json
    return os.path.join(args.save_dir or ".", JSON_NAME)


def _read_metadata(path):
    if path is None:
        return None
    try:
        with open(path) as f:
            return json.load(f)
    except (IOError, OSError, ValueError) as error:
        raise ConfigError("--metadata {}: not a readable JSON file ({})".format(path, error))


def main(argv=None, prog="dattn predict", model=None, plugin=None, metadata=None):
    """Run `dattn predict`; returns the exit code (0 ok, 1 some inputs failed, 2 unusable model or options)."""
    args = build_parser(prog, model, plugin, metadata).parse_args(argv)
    try:
        check_thresholds(args.conf, args.iou)
        if args.max_det < 1:
            raise ValueError("--max-det must be at least 1, got {}".format(args.max_det))
    except ValueError as error:
        _error(prog, str(error).replace("conf must", "--conf must").replace("iou must", "--iou must"))
        return 2
    try:
        from dattn.runtime.detector import Detector

        files = expand_source(args.source)
        detector = Detector(args.model, imgsz=args.imgsz, conf=args.conf, iou=args.iou, max_det=args.max_det,
                            device=args.device, threads=args.threads, plugin_library=args.plugin,
                            nms=NMS_CHOICES[args.nms], metadata=_read_metadata(args.metadata))
        if args.save_dir is not None and not os.path.isdir(args.save_dir):
            os.makedirs(args.save_dir)
    except (DattnError, CudaError, ValueError, OSError) as error:
        _error(prog, str(error))
        return getattr(error, "exit_code", 2)

    info = detector.info
    sys.stderr.write("{}: {} on {}, {}x{} {}, {} classes, {} file(s)\n".format(
        prog, args.model, detector.description, detector.imgsz[0], detector.imgsz[1],
        "dynamic" if info.dynamic else "static", len(info.names) or "?", len(files)))
    total = sum(_frame_count(f) if is_video(f) else 1 for f in files)
    progress = Progress(total, enabled=sys.stderr.isatty() or total > 1)
    started = time.perf_counter()
    try:
        run = predict_files(detector, files, args.save_dir, progress, prog)
    except (DattnError, CudaError) as error:
        _error(prog, str(error))
        return getattr(error, "exit_code", 2)
    finally:
        progress.close()

    found = ", ".join("{} {}".format(n, name) for name, n in sorted(run.counts.items())) or "nothing"
    sys.stderr.write("{}: found {}\n".format(prog, found))
    sys.stderr.write("{}: {}\n".format(prog, run.timings.line(time.perf_counter() - started)))
    json_path = _json_path(args)
    if json_path is not None:
        with open(json_path, "w") as f:
            f.write("[\n" + ",\n".join(json.dumps(r) for r in run.records) + "\n]\n")  # one record per line
        sys.stderr.write("{}: detections written to {}\n".format(prog, json_path))
    if args.save_dir is not None:
        sys.stderr.write("{}: annotated images written to {}\n".format(prog, args.save_dir))
    if run.failed:
        _error(prog, "{} of {} input files could not be read: {}".format(len(run.failed), len(files), ", ".join(run.failed)))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
