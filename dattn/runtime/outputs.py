"""Where `dattn predict` writes, decided and checked before the model runs, and how each file is written.

The rules: annotated files go to --save-dir when it is new or an empty folder, else to the first of DIR2,
DIR3, ... that is (as ultralytics' run folders); --exist-ok writes into DIR itself. A JSON file without a
name goes to that folder, or to a fresh runs/predict, runs/predict2, ... Nothing is ever written over an input,
and each input gets its own output (x.jpg, x_2.jpg, ...). Every file is written under a temporary name beside
its destination and renamed into place when complete, so an interrupted run leaves no half-written file and
a symbolic link at the destination is replaced, never written through.

Python 3.6 compatible (this file travels to JetPack 4.6 in the Jetson bundle and into Triton's python backend).
"""

import collections
import os
import tempfile

from dattn.errors import ConfigError
from dattn.runtime.sources import is_video, video_frame_count

RUN_FOLDER = os.path.join("runs", "predict")
JSON_NAME = "predictions.json"
# Suffixes kept for annotated images: every OpenCV build encodes the first four; the others where
# cv2.haveImageWriter (OpenCV 4.4+) says so. Any other image gets ".jpg" appended.
_ALWAYS_ENCODED = (".jpg", ".jpeg", ".png", ".bmp")
_SOMETIMES_ENCODED = (".tif", ".tiff", ".webp")
_VIDEO_SUFFIX = ".mp4"

Plan = collections.namedtuple("Plan", ["folder", "json_path", "outputs"])
Plan.__doc__ = ("folder: where annotated files go (None: not asked), json_path: the JSON file (None: not asked), "
                "outputs: {input file: its annotated output file}.")


def _usable_folder(path):
    return not os.path.lexists(path) or (os.path.isdir(path) and not os.listdir(path))


def fresh_folder(path):
    """`path` when it is new or an empty folder, else the first of path2, path3, ... that is."""
    n = 2
    candidate = path
    while not _usable_folder(candidate):
        candidate = "{}{}".format(path, n)
        n += 1
    return candidate


def _entry(path):
    """The folder entry `path` names: its folder resolved, its last part kept (a link stays the link)."""
    path = os.path.abspath(path)
    return os.path.join(os.path.realpath(os.path.dirname(path)), os.path.basename(path))


def _image_suffix_kept(suffix):
    import cv2

    if suffix in _ALWAYS_ENCODED:
        return True
    have_writer = getattr(cv2, "haveImageWriter", None)
    return suffix in _SOMETIMES_ENCODED and have_writer is not None and have_writer("x" + suffix)


def output_name(path):
    """The annotated file's name for input `path`: videos become .mp4, images keep a suffix OpenCV writes."""
    name = os.path.basename(path)
    stem, suffix = os.path.splitext(name)
    if is_video(path):
        return stem + _VIDEO_SUFFIX
    return name if _image_suffix_kept(suffix.lower()) else name + ".jpg"


def _numbered(name, n):
    stem, suffix = os.path.splitext(name)
    return "{}_{}{}".format(stem, n, suffix)


class _Locations(object):
    """Checks each output location against the inputs and the outputs already planned."""

    def __init__(self, files):
        # An input is lost when its own entry is replaced, or the file its link points to.
        self.inputs = set(_entry(f) for f in files) | set(os.path.realpath(f) for f in files)
        self.taken = set()

    def claim(self, path, option):
        """Reserve `path` for one output file; ConfigError when it is an input or a folder."""
        if _entry(path) in self.inputs:
            raise ConfigError("{}: the output {} would replace an input; inputs are never written over: name another "
                              "location".format(option, path))
        if os.path.isdir(path) and not os.path.islink(path):
            raise ConfigError("{}: the output {} is a folder; a file is needed there".format(option, path))
        self.taken.add(_entry(path))

    def free(self, path):
        return _entry(path) not in self.taken


def _check_folder_option(path, option):
    if os.path.lexists(path) and not os.path.isdir(path):
        raise ConfigError("{} {}: is a file, not a folder; name a folder (it is made when missing)".format(option, path))


def plan_outputs(files, save_dir=None, save_json=None, exist_ok=False):
    """The Plan for `files`; ConfigError naming the location when one cannot be used. Makes nothing (see prepare).

    save_json: None (no JSON), "" (predictions.json in the run folder) or a file name.
    """
    locations = _Locations(files)
    folder = None
    if save_dir is not None:
        save_dir = os.path.normpath(save_dir)
        _check_folder_option(save_dir, "--save-dir")
        folder = save_dir if exist_ok else fresh_folder(save_dir)
    elif save_json == "":
        folder = RUN_FOLDER if exist_ok else fresh_folder(RUN_FOLDER)
        _check_folder_option(folder, "--save-json")

    json_path = None
    if save_json == "":
        json_path = os.path.join(folder, JSON_NAME)
        locations.claim(json_path, "--save-json")
    elif save_json is not None:
        json_path = save_json
        locations.claim(json_path, "--save-json " + json_path)
        if os.path.lexists(json_path) and not exist_ok:
            raise ConfigError("--save-json {}: exists; pass --exist-ok to replace it, or name another file"
                              .format(json_path))

    outputs = collections.OrderedDict()
    if save_dir is not None:
        for path in files:
            name = output_name(path)
            candidate, n = os.path.join(folder, name), 2
            while not locations.free(candidate):
                candidate, n = os.path.join(folder, _numbered(name, n)), n + 1
            locations.claim(candidate, "--save-dir " + save_dir)
            outputs[path] = candidate
    return Plan(folder, json_path, outputs)


def _writable_folder(path, option):
    """Make `path` (and its parents) when missing and check a file can be made in it; ConfigError if not."""
    _check_folder_option(path, option + ": the folder")
    try:
        if not os.path.isdir(path):
            os.makedirs(path)
        os.remove(temporary_beside(os.path.join(path, "probe")))
    except (IOError, OSError) as error:
        raise ConfigError("{}: cannot write in the folder {} ({}); name another location"
                          .format(option, path, error.strerror or error))


def prepare(plan):
    """Make the plan's folders and check that files can be written there; ConfigError naming the one that fails."""
    if plan.folder is not None:
        _writable_folder(plan.folder, "--save-dir" if plan.outputs else "--save-json")
    if plan.json_path is not None:
        _writable_folder(os.path.dirname(plan.json_path) or ".", "--save-json " + plan.json_path)


def _file_mode():
    """What a plain open(path, "w") would give: 0o666 less the umask."""
    mask = os.umask(0)  # the only portable way to read it is to set it (files are made in one thread only)
    os.umask(mask)
    return 0o666 & ~mask


def temporary_beside(path):
    """A new empty hidden file in `path`'s folder, ending in `path`'s suffix (OpenCV picks a video's container by it)."""
    folder, name = os.path.split(os.path.abspath(path))
    descriptor, temporary = tempfile.mkstemp(prefix="." + name + ".", suffix=".tmp" + os.path.splitext(name)[1],
                                             dir=folder)
    os.close(descriptor)
    return temporary


def move_into_place(temporary, path):
    """Rename the complete `temporary` to `path`: this replaces a link at `path` itself, never its target."""
    os.chmod(temporary, _file_mode())
    os.replace(temporary, path)


def _remove(path):
    try:
        os.remove(path)
    except OSError:
        pass


def write_atomically(path, data):
    """Write the bytes `data` to `path` through a temporary file beside it; IOError/OSError when that fails."""
    temporary = temporary_beside(path)
    try:
        with open(temporary, "wb") as f:
            f.write(data)
        move_into_place(temporary, path)
    except BaseException:
        _remove(temporary)
        raise


def write_image(path, image):
    """Encode the BGR uint8 `image` in the format `path`'s suffix names and write it atomically; IOError on failure."""
    import cv2

    suffix = os.path.splitext(path)[1]
    try:
        ok, encoded = cv2.imencode(suffix, image)
    except cv2.error as error:
        raise IOError("OpenCV cannot encode a {} image ({})".format(suffix, str(error).strip().splitlines()[-1]))
    if not ok:
        raise IOError("OpenCV cannot encode a {} image".format(suffix))
    write_atomically(path, encoded.tobytes())


class VideoOutput(object):
    """An mp4 written under a temporary name beside `path`; close() checks it holds every frame, then renames it."""

    def __init__(self, path, fps, size):
        import cv2

        self.path, self.frames = path, 0
        self.temporary = temporary_beside(path)
        self.writer = cv2.VideoWriter(self.temporary, cv2.VideoWriter_fourcc(*"mp4v"), fps, size)
        if not self.writer.isOpened():
            self.discard()
            raise IOError("OpenCV cannot write an mp4 video (no mp4v encoder in this build?)")

    def write(self, frame):
        self.writer.write(frame)
        self.frames += 1

    def close(self):
        """Finish the file and move it into place; IOError when it is incomplete (OpenCV reports no write errors)."""
        self.writer.release()
        written = video_frame_count(self.temporary)
        if written != self.frames:
            self.discard()
            raise IOError("the video written holds {} of {} frames (disk full?)".format(written, self.frames))
        move_into_place(self.temporary, self.path)

    def discard(self):
        self.writer.release()
        _remove(self.temporary)
