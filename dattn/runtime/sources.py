"""What `--source` names, as a list of files: one image or video, a folder's files, or a glob pattern's matches.

Python 3.6 compatible (this file travels to JetPack 4.6 in the Jetson bundle and into Triton's python backend).
"""

import glob
import os

from dattn.errors import ConfigError

VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv", ".asf", ".ts", ".gif")
_GLOB_CHARACTERS = "*?["


def is_video(path):
    return os.path.splitext(str(path))[1].lower() in VIDEO_SUFFIXES


def video_frame_count(path):
    """The number of frames the video's container announces; 0 when OpenCV cannot open it."""
    import cv2

    capture = cv2.VideoCapture(str(path))
    count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) if capture.isOpened() else 0
    capture.release()
    return max(count, 0)


def expand_source(source):
    """The files to predict on, sorted; ConfigError when `source` names nothing.

    In a folder every visible file is taken (not only known image suffixes): a file that is not an image is
    reported and skipped by the caller, rather than silently ignored.
    """
    source = str(source)
    if any(c in source for c in _GLOB_CHARACTERS) and not os.path.exists(source):
        files = sorted(p for p in glob.glob(source, recursive=True) if os.path.isfile(p))
        if not files:
            raise ConfigError("--source {}: the pattern matches no files".format(source))
        return files
    if os.path.isdir(source):
        files = sorted(os.path.join(source, name) for name in os.listdir(source)
                       if not name.startswith(".") and os.path.isfile(os.path.join(source, name)))
        if not files:
            raise ConfigError("--source {}: the folder holds no files".format(source))
        return files
    if os.path.isfile(source):
        return [source]
    raise ConfigError("--source {}: no such file or folder".format(source))
