import os
import tempfile

# Keep ultralytics off the network and out of the user's settings before anything imports it.
os.environ.setdefault("YOLO_OFFLINE", "1")
os.environ.setdefault("YOLO_CONFIG_DIR", tempfile.mkdtemp(prefix="dattn-yolo-config-"))
