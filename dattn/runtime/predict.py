"""`dattn predict`: detections from an exported model (ONNX or TensorRT engine) on images, folders, globs and videos.

    dattn predict --model best.onnx --source images/ --save-dir out --save-json

Writes annotated images (and videos) to --save-dir, one JSON record per image (per frame for videos) with
--save-json, shows a progress bar, and ends with a throughput line split into pre-process, inference and
post-process. Where files go is decided and checked before the model runs (dattn.runtime.outputs): a fresh
folder unless --exist-ok, never over an input. A file that cannot be read, or an output that cannot be written,
is named on one line and the run goes on; the exit code is then 1. A model or option that cannot work is one line
and exit code 2.

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
from dattn.runtime.heads import NOT_SERVED
from dattn.runtime.outputs import (JSON_NAME, RUN_FOLDER, VideoOutput, plan_outputs, prepare, write_atomically,
                                   write_image)
from dattn.runtime.postprocess import check_thresholds, nms_numpy, nms_opencv
from dattn.runtime.sources import expand_source, is_video, video_frame_count

NMS_CHOICES = collections.OrderedDict([("opencv", nms_opencv), ("numpy", nms_numpy)])

Item = collections.namedtuple("Item", ["file", "frame", "image"])  # frame: None for an image file


def build_parser(prog="dattn predict", model=None, plugin=None, metadata=None):
    """The options; `model`, `plugin`, `metadata` give defaults (the Jetson bundle's run.py passes its own files)."""
    p = argparse.ArgumentParser(prog=prog, description="Detect objects with an exported model (ONNX or TensorRT engine), "
                                                       "without PyTorch or ultralytics.",
                                epilog="Outputs are checked before the model runs and written whole (a temporary file, "
                                       "then a rename): never over an input, never through a link. Inputs with the same "
                                       "name get x.jpg, x_2.jpg, ...; an image whose suffix OpenCV cannot write gets "
                                       "'.jpg' appended. Exit code 0: done; 1: some inputs could not be read or outputs "
                                       "written; 2: the model or an option cannot work.")
    p.add_argument("--model", required=model is None, default=model, help="best.onnx or best.engine" +
                   (" (default: {})".format(model) if model else ""))
    p.add_argument("--source", required=True, help="an image, a folder, a glob pattern ('imgs/*.jpg') or a video")
    p.add_argument("--imgsz", type=int, nargs="+", metavar="N",
                   help="input size, H or H W (default: the model's; other sizes for --dynamic exports only)")
    p.add_argument("--conf", type=float, default=0.25, help="confidence threshold, in [0, 1) (default 0.25)")
    p.add_argument("--iou", type=float, default=0.7, help="NMS IoU threshold, in (0, 1] (default 0.7)")
    p.add_argument("--max-det", type=int, default=300, help="detections kept per image (default 300)")
    p.add_argument("--device", help="cpu, cuda, cuda:N or N (default: the best available)")
    p.add_argument("--save-dir", metavar="DIR",
                   help="write annotated images and videos here; when DIR is not empty, into a new DIR2, DIR3, ...")
    p.add_argument("--save-json", nargs="?", const="", metavar="FILE",
                   help="write detections as JSON (default file: {} in the --save-dir folder, else in a new {}, "
                        "{}2, ...)".format(JSON_NAME, RUN_FOLDER, RUN_FOLDER))
    p.add_argument("--exist-ok", action="store_true",
                   help="write into --save-dir (or {}) as it is, and replace an existing --save-json FILE; inputs "
                        "are never written over".format(RUN_FOLDER))
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


def record(item, prediction, output=None):
    """The JSON record of one image's (or frame's) detections; `output`: its annotated file, when one is written."""
    out = collections.OrderedDict([("file", item.file)])
    if item.frame is not None:
        out["frame"] = item.frame
    if output is not None:
        out["output"] = output
    out["boxes"] = [[round(float(v), 2) for v in box] for box in prediction.boxes]
    out["scores"] = [round(float(s), 5) for s in prediction.scores]
    out["class_ids"] = [int(c) for c in prediction.class_ids]
    out["classes"] = list(prediction.class_names)
    return out


def _reason(error):
    return getattr(error, "strerror", None) or str(error)  # strerror: without the temporary file's name


class Run(object):
    """One `dattn predict` run: reads the sources, predicts in batches, writes what was asked, counts failures.

    outputs: {input file: its annotated output file}, as dattn.runtime.outputs.plan_outputs decided them.
    """

    def __init__(self, detector, outputs, progress, prog="dattn predict"):
        self.detector, self.outputs, self.progress, self.prog = detector, outputs, progress, prog
        self.timings = Timings()
        self.records, self.failed, self.unwritten, self.counts = [], [], [], collections.Counter()
        self._videos = {}  # input video -> its VideoOutput, or None once writing it failed

    def fail(self, path, reason):
        self.failed.append(path)
        self.progress.update(1)
        self.progress.write("{}: skipped {}: {}".format(self.prog, path, reason))

    def warn(self, path, reason):
        self.progress.write("{}: warning: {}: {}".format(self.prog, path, reason))

    def write_failed(self, path, error):
        self.unwritten.append(path)
        self.progress.write("{}: could not write {}: {}".format(self.prog, path, _reason(error)))

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
            annotated = self.outputs.get(item.file)
            self.records.append(record(item, prediction, annotated))
            self.counts.update(prediction.class_names)
            if annotated is not None:
                self._save(item, prediction, annotated)
        self.progress.update(len(items))

    def _save(self, item, prediction, path):
        from dattn.runtime.annotate import draw_predictions

        drawn = draw_predictions(item.image, prediction)
        if item.frame is None:
            try:
                write_image(path, drawn)
            except (IOError, OSError) as error:
                self.write_failed(path, error)
            return
        if item.file not in self._videos:
            self._videos[item.file] = self._open_video(item.file, path, drawn.shape)
        if self._videos[item.file] is not None:
            self._videos[item.file].write(drawn)

    def _open_video(self, source, path, shape):
        import cv2

        capture = cv2.VideoCapture(source)
        fps = capture.get(cv2.CAP_PROP_FPS) or 30.0
        capture.release()
        try:
            return VideoOutput(path, fps, (shape[1], shape[0]))
        except (IOError, OSError) as error:
            self.write_failed(path, error)
            return None

    def close_videos(self, complete=True):
        """Move the videos written into place; complete=False (an interrupted run) discards them."""
        for video in self._videos.values():
            if video is None:
                continue
            if not complete:
                video.discard()
                continue
            try:
                video.close()
            except (IOError, OSError) as error:
                self.write_failed(video.path, error)
        self._videos.clear()


def _items(files, run):
    """Images and video frames as Items, timing the reading as pre-process; unreadable files go to run.fail."""
    import cv2

    from dattn.runtime.preprocess import jpeg_is_truncated, read_image

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
            truncated = jpeg_is_truncated(path)
        except (IOError, OSError) as error:
            run.fail(path, "not a readable image" if "readable" in str(error) else str(error))
            continue
        finally:
            run.timings.pre += time.perf_counter() - started
        if truncated:
            run.warn(path, "truncated or damaged image data (OpenCV decoded what it could)")
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


def predict_files(detector, files, outputs=None, progress=None, prog="dattn predict", read_ahead=None):
    """Predict on every image and video frame of `files` in batches of the model's size; returns the Run.

    outputs: {input file: annotated output file} (dattn.runtime.outputs.plan_outputs); nothing is written without.
    With the model on a GPU, the next batch is read and letterboxed in a background thread while the model runs
    on the current one. With ONNX Runtime on the CPU, whose workers occupy every core during a run, that thread
    would only compete with them (measured slower on two cores: benchmarks/bench_predict.py). read_ahead=True or
    False overrides the choice.
    """
    run = Run(detector, outputs or {}, progress if progress is not None else Progress(0, enabled=False), prog)
    if read_ahead is None:
        read_ahead = not getattr(detector.runner, "on_cpu", True)
    batches = _batches(files, run, detector)
    complete = False
    try:
        for items, batch, letterboxes in (prefetched(batches) if read_ahead else batches):
            run.predict(items, batch, letterboxes)
        complete = True
    finally:
        run.close_videos(complete)
    return run


def _error(prog, message):
    sys.stderr.write("{}: error: {}\n".format(prog, message))


def _check_options(args):
    """ValueError naming the option whose value cannot work."""
    try:
        check_thresholds(args.conf, args.iou)
    except ValueError as error:
        raise ValueError(str(error).replace("conf must", "--conf must").replace("iou must", "--iou must"))
    if args.max_det < 1:
        raise ValueError("--max-det must be at least 1, got {}".format(args.max_det))
    if args.imgsz is not None and (len(args.imgsz) > 2 or min(args.imgsz) < 1):
        raise ValueError("--imgsz takes one or two positive sizes (H or H W), got {}"
                         .format(" ".join(str(s) for s in args.imgsz)))
    if args.threads is not None and args.threads < 1:
        raise ValueError("--threads must be at least 1, got {}".format(args.threads))


def _read_metadata(path):
    if path is None:
        return None
    try:
        with open(path) as f:
            return json.load(f)
    except (IOError, OSError, ValueError, RecursionError) as error:
        raise ConfigError("--metadata {}: not a readable JSON file ({})".format(path, error))


def _write_json(path, records, run):
    try:
        write_atomically(path, ("[\n" + ",\n".join(json.dumps(r) for r in records) + "\n]\n").encode("utf-8"))
    except (IOError, OSError) as error:
        run.write_failed(path, error)
        return False
    return True


def main(argv=None, prog="dattn predict", model=None, plugin=None, metadata=None):
    """Run `dattn predict`; returns the exit code (0 ok, 1 an input or output failed, 2 unusable model or options)."""
    args = build_parser(prog, model, plugin, metadata).parse_args(argv)
    try:
        _check_options(args)
    except ValueError as error:
        _error(prog, str(error))
        return 2
    try:
        from dattn.runtime.detector import Detector

        files = expand_source(args.source)
        plan = plan_outputs(files, args.save_dir, args.save_json, args.exist_ok)
        detector = Detector(args.model, imgsz=args.imgsz, conf=args.conf, iou=args.iou, max_det=args.max_det,
                            device=args.device, threads=args.threads, plugin_library=args.plugin,
                            nms=NMS_CHOICES[args.nms], metadata=_read_metadata(args.metadata))
        prepare(plan)  # the folders are made only once the model has loaded
    except (DattnError, CudaError, ValueError, OSError) as error:
        _error(prog, str(error))
        return getattr(error, "exit_code", 2)

    info = detector.info
    sys.stderr.write("{}: {} on {}, {}x{} {}, {} classes, head {}, {} file(s){}\n".format(
        prog, args.model, detector.description, detector.imgsz[0], detector.imgsz[1],
        "dynamic" if info.dynamic else "static", len(info.names) or "?", info.head.name, len(files),
        "; a {} model: boxes, scores and classes only, {} are not served".format(info.task, NOT_SERVED[info.task])
        if info.task in NOT_SERVED else ""))
    if args.save_dir is not None and plan.folder != os.path.normpath(args.save_dir):
        sys.stderr.write("{}: {} is not empty: writing to {} (--exist-ok writes into {})\n".format(
            prog, args.save_dir, plan.folder, args.save_dir))
    total = sum(max(video_frame_count(f), 1) if is_video(f) else 1 for f in files)
    progress = Progress(total, enabled=sys.stderr.isatty() or total > 1)
    started = time.perf_counter()
    try:
        run = predict_files(detector, files, plan.outputs, progress, prog)
    except (DattnError, CudaError) as error:
        _error(prog, str(error))
        return getattr(error, "exit_code", 2)
    finally:
        progress.close()

    found = ", ".join("{} {}".format(n, name) for name, n in sorted(run.counts.items())) or "nothing"
    sys.stderr.write("{}: found {}\n".format(prog, found))
    sys.stderr.write("{}: {}\n".format(prog, run.timings.line(time.perf_counter() - started)))
    if plan.json_path is not None and _write_json(plan.json_path, run.records, run):
        sys.stderr.write("{}: detections written to {}\n".format(prog, plan.json_path))
    if plan.outputs:
        sys.stderr.write("{}: annotated images written to {}\n".format(prog, plan.folder))
    code = 0
    if run.failed:
        _error(prog, "{} of {} input files could not be read: {}".format(len(run.failed), len(files), ", ".join(run.failed)))
        code = 1
    if run.unwritten:
        _error(prog, "{} output file(s) could not be written: {}".format(len(run.unwritten), ", ".join(run.unwritten)))
        code = 1
    return code


if __name__ == "__main__":
    sys.exit(main())
