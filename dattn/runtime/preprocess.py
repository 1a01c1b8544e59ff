"""Images in, network input out: letterboxing as ultralytics' predictor does it, in numpy and OpenCV.

Python 3.6 compatible (this file travels to JetPack 4.6 in the Jetson bundle and into Triton's python backend).
"""

import numpy as np

from dattn.errors import ConfigError

PAD_VALUE = 114  # the grey ultralytics pads with
_JPEG_START, _JPEG_END, _JPEG_SCAN = b"\xff\xd8", b"\xff\xd9", 0xDA


class Letterbox(object):
    """Where an image of `shape` (h, w) goes in a network input of `size` (h, w): scale, resized size, padding.

    auto=True pads only up to the next multiple of `stride` (ultralytics' "minimum rectangle", used for
    dynamic-shape models); else the input is exactly `size`.
    """

    def __init__(self, shape, size, auto=False, stride=32):
        h, w = int(shape[0]), int(shape[1])
        gain = min(size[0] / float(h), size[1] / float(w))
        self.resized = (max(int(round(h * gain)), 1), max(int(round(w * gain)), 1))  # (h, w)
        pad_h, pad_w = size[0] - self.resized[0], size[1] - self.resized[1]
        if auto:
            pad_h, pad_w = pad_h % stride, pad_w % stride
        self.top, self.bottom = int(round(pad_h / 2.0 - 0.1)), int(round(pad_h / 2.0 + 0.1))
        self.left, self.right = int(round(pad_w / 2.0 - 0.1)), int(round(pad_w / 2.0 + 0.1))
        self.shape = (h, w)
        self.input_shape = (self.resized[0] + self.top + self.bottom, self.resized[1] + self.left + self.right)

    def apply(self, image):
        """The letterboxed uint8 image (H, W, 3), same channel order as `image`."""
        import cv2

        if image.shape[:2] != self.resized:
            image = cv2.resize(image, (self.resized[1], self.resized[0]), interpolation=cv2.INTER_LINEAR)
        return cv2.copyMakeBorder(image, self.top, self.bottom, self.left, self.right, cv2.BORDER_CONSTANT,
                                  value=(PAD_VALUE,) * 3)

    def boxes_to_image(self, boxes):
        """xyxy boxes in network-input pixels -> pixels of the original image, clipped to it."""
        boxes = np.array(boxes, dtype=np.float32).reshape(-1, 4)
        gain_y, gain_x = self.resized[0] / float(self.shape[0]), self.resized[1] / float(self.shape[1])
        boxes[:, [0, 2]] = (boxes[:, [0, 2]] - self.left) / gain_x
        boxes[:, [1, 3]] = (boxes[:, [1, 3]] - self.top) / gain_y
        boxes[:, [0, 2]] = boxes[:, [0, 2]].clip(0, self.shape[1])
        boxes[:, [1, 3]] = boxes[:, [1, 3]].clip(0, self.shape[0])
        return boxes


class Stretch(object):
    """An image of `shape` (h, w) resized to exactly `size` (h, w), aspect ratio not kept: RT-DETR's pre-processing
    (ultralytics' scale_fill). Boxes are scaled back by the image's own width and height and, as ultralytics does
    for RT-DETR, not clipped to it."""

    def __init__(self, shape, size):
        self.shape = (int(shape[0]), int(shape[1]))
        self.input_shape = (int(size[0]), int(size[1]))

    def apply(self, image):
        """The resized uint8 image (H, W, 3), same channel order as `image`."""
        import cv2

        if image.shape[:2] == self.input_shape:
            return image
        return cv2.resize(image, (self.input_shape[1], self.input_shape[0]), interpolation=cv2.INTER_LINEAR)

    def boxes_to_image(self, boxes):
        """xyxy boxes in network-input pixels -> pixels of the original image."""
        boxes = np.array(boxes, dtype=np.float32).reshape(-1, 4)
        boxes[:, [0, 2]] *= self.shape[1] / float(self.input_shape[1])
        boxes[:, [1, 3]] *= self.shape[0] / float(self.input_shape[0])
        return boxes


def read_image(path):
    """BGR uint8 (H, W, 3) from an image file; IOError naming the file when it is not a readable image."""
    import cv2

    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise IOError("{}: not a readable image".format(path))
    return image


def as_bgr_image(image):
    """`image` as a BGR uint8 (H, W, 3) array: that as it is, grayscale (H, W) or (H, W, 1) uint8 converted.

    Anything else raises ConfigError (a ValueError) saying what is expected: other dtypes (a float image in
    [0, 1] or a 16-bit one would give wrong detections silently), channel-first or 4-channel arrays, empty ones.
    """
    import cv2

    expected = "expected a BGR uint8 image (H, W, 3) as cv2.imread gives, or grayscale (H, W) uint8"
    if not isinstance(image, np.ndarray):
        raise ConfigError("{}, got {}".format(expected, type(image).__name__))
    if image.dtype != np.uint8:
        raise ConfigError("{}, got dtype {}; scale to 0-255 and convert with .astype(np.uint8)"
                          .format(expected, image.dtype))
    if image.ndim not in (2, 3) or image.ndim == 3 and image.shape[2] not in (1, 3) or image.size == 0:
        channels_first = image.ndim == 3 and image.shape[0] in (1, 3)
        raise ConfigError("{}, got shape {}{}".format(
            expected, image.shape, "; for channels first use image.transpose(1, 2, 0)" if channels_first else ""))
    if image.ndim == 2 or image.shape[2] == 1:
        return cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_GRAY2BGR)
    return np.ascontiguousarray(image)


def _first_scan(data):
    """Offset of a JPEG's first start-of-scan marker, skipping the header segments (an EXIF thumbnail among them)."""
    position = 2
    while position + 4 <= len(data):
        if data[position] != 0xFF:
            return None
        marker = data[position + 1]
        if marker == _JPEG_SCAN:
            return position
        if marker == 0xFF:  # fill byte
            position += 1
        elif marker == 0x01 or 0xD0 <= marker <= 0xD9:  # markers without a length
            position += 2
        else:
            position += 2 + (data[position + 2] << 8 | data[position + 3])
    return None


def jpeg_is_truncated(path):
    """True for a JPEG file without its end-of-image marker (OpenCV decodes such a file, greying what is missing).

    Reads only the first two bytes of other files.
    """
    with open(str(path), "rb") as f:
        if f.read(2) != _JPEG_START:
            return False
        data = _JPEG_START + f.read()
    if data.rstrip(b"\x00").endswith(_JPEG_END):  # the usual case; some writers pad with zeros
        return False
    scan = _first_scan(data)  # entropy-coded data never holds the marker; data appended after the image may
    return scan is None or data.find(_JPEG_END, scan) < 0


def to_network_input(images):
    """Letterboxed BGR uint8 images of one shape -> float32 (N, 3, H, W) RGB in [0, 1], as the model expects."""
    batch = np.stack(images)[..., ::-1].transpose(0, 3, 1, 2)
    return np.ascontiguousarray(batch, dtype=np.float32) / np.float32(255.0)
